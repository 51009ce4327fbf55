/*
 * tokenizer.c — the UMT5 prompt tokenizer (see tokenizer.h), a re-implementation of what
 * diffusers 0.42 WanPipeline + transformers 5.23 T5TokenizerFast + tokenizers 0.23 do.
 *
 * Why not libsentencepiece's own Encode: the fast tokenizer is not SentencePiece. It cuts added
 * tokens out of the raw text, applies the model's precompiled char map per *grapheme cluster*
 * (tokenizers' `Precompiled`, which e.g. maps "ﬁ" + U+0301 to "fi", dropping the accent, and
 * does not compose half-width "ｶﾞ" into "ガ"), and its unigram vocabulary contains the control
 * pieces and the 300 sentinels as ordinary pieces of score 0 (so a full-width "＜／ｓ＞" in a
 * prompt normalizes to "</s>" and becomes id 1). libsentencepiece differs on all of these
 * (tests/test_tokenizer.c keeps such cases), and 0.1.97 also breaks exact Viterbi ties the
 * other way ("555" as "55" "5", not "5" "55"). So this file uses the library to load and
 * validate the model and to read the vocabulary and scores, and reproduces the fast
 * tokenizer's pipeline itself, stage by stage, each above the Rust/Python code it follows.
 */
#include "models/tokenizer.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/json.h"
#include "models/spm_shim.h"

struct wr_cp_range {
    unsigned lo, hi;
};

#include "models/html_entities.inc"
#include "models/unicode_tables.inc"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Python's default sys.get_int_max_str_digits(): int() of a longer decimal string raises. */
#define PY_INT_MAX_STR_DIGITS 4300

/* The piece types of sentencepiece_model.proto (ModelProto.SentencePiece.Type). */
enum { SPM_NORMAL = 1, SPM_UNKNOWN = 2, SPM_CONTROL = 3, SPM_USER_DEFINED = 4 };

struct wr_tokenizer {
    char *path;
    wr_spm *spm;
    int32_t n_sp;    /* pieces in spiece.model (0 for tokenizer.json) */
    int32_t n_vocab; /* spiece.model: n_sp + WR_TOKENIZER_EXTRA_IDS; tokenizer.json: its vocab */
    char *arena;     /* every piece, NUL-terminated */
    size_t *off;     /* [n_vocab] piece offsets in arena */
    uint32_t *len;   /* [n_vocab] piece byte lengths */
    double *score;   /* [n_vocab] unigram scores (f32 in the model, f64 in tokenizers) */
    uint8_t *added;  /* [n_vocab] 1 for added tokens (matched in the raw text) */
    int32_t *slots;  /* open-addressing hash: piece bytes -> id; -1 empty */
    size_t slot_mask;
    size_t max_piece; /* longest piece, bytes */
    double min_score;
    uint8_t added_first[256]; /* first bytes of added tokens */
    size_t *added_lens;       /* distinct added-token lengths, longest first */
    size_t n_added_lens;
    uint32_t *units; /* precompiled charsmap: darts-clone double array */
    size_t n_units;  /* 0: the model has no char map (no normalizer) */
    char *norm;      /* the map's NUL-separated replacement strings */
    size_t norm_len;
};

/* ---- UTF-8 ---- */

/* Length (1..4) of the well-formed UTF-8 sequence at s[0..n) and its code point in *cp; 0 when
 * ill-formed (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static int utf8_next(const uint8_t *s, size_t n, uint32_t *cp) {
    const uint8_t b0 = s[0];
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    int len;
    uint32_t c, min;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        len = 2, c = b0 & 0x1Fu, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        len = 3, c = b0 & 0x0Fu, min = 0x800;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4, c = b0 & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

/* Byte offset of the first ill-formed sequence in s[0..n), or n when all is well-formed. */
static size_t utf8_check(const uint8_t *s, size_t n) {
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        const int l = utf8_next(s + i, n - i, &cp);
        if (!l) return i;
        i += (size_t)l;
    }
    return n;
}

static int utf8_put(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static bool in_ranges(const struct wr_cp_range *r, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid].lo)
            hi = mid;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

/* ---- a growable byte buffer; an allocation failure sticks in `oom` ---- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_cp(sbuf *b, uint32_t cp) {
    char u[4];
    sb_put(b, u, (size_t)utf8_put(cp, u));
}

/* ---- html.unescape (CPython 3.11 Lib/html/__init__.py) ----
 *
 * _charref = re.compile(r'&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)'),
 * replaced left to right by _replace_charref; text between matches is copied. */

static int entity_cmp(const char *a, size_t na, const char *b, size_t nb) {
    const int c = memcmp(a, b, na < nb ? na : nb);
    if (c) return c;
    return (na > nb) - (na < nb);
}

static const struct wr_html_entity *entity_find(const char *s, size_t n) {
    if (n == 0 || n > WR_HTML_ENTITY_MAX_NAME + 1) return NULL;
    size_t lo = 0, hi = NELEM(wr_html_entities);
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        const struct wr_html_entity *e = &wr_html_entities[mid];
        const int c = entity_cmp(s, n, e->name, e->name_len);
        if (c < 0)
            hi = mid;
        else if (c > 0)
            lo = mid + 1;
        else
            return e;
    }
    return NULL;
}

/* The numeric branch of _replace_charref; num is saturated at 0x110000. */
static void numeric_charref(sbuf *out, uint32_t num) {
    for (size_t i = 0; i < NELEM(wr_html_invalid_charrefs); i++) {
        if (wr_html_invalid_charrefs[i].cp == num) {
            sb_put(out, wr_html_invalid_charrefs[i].value,
                   strlen(wr_html_invalid_charrefs[i].value));
            return;
        }
    }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
        sb_cp(out, 0xFFFD);
        return;
    }
    if (in_ranges(wr_html_dropped_codepoints, NELEM(wr_html_dropped_codepoints), num)) return;
    sb_cp(out, num);
}

static bool is_dec(uint8_t c) {
    return c >= '0' && c <= '9';
}

static bool is_hex(uint8_t c) {
    return is_dec(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static uint32_t hex_val(uint8_t c) {
    return is_dec(c) ? (uint32_t)(c - '0') : (uint32_t)((c | 0x20) - 'a' + 10);
}

/* Tries _charref at s[a] == '&'. On a match, writes the replacement and sets *end past it;
 * otherwise *end = a. `pass` (1 or 2) only labels messages. */
static wr_status charref_at(const uint8_t *s, size_t n, size_t a, sbuf *out, size_t *end,
                            int pass) {
    *end = a;
    size_t j = a + 1;
    if (j < n && s[j] == '#') {
        j++;
        uint32_t num = 0;
        if (j < n && is_dec(s[j])) {
            const size_t d0 = j;
            while (j < n && is_dec(s[j])) {
                if (num <= 0x10FFFF) num = num * 10 + (uint32_t)(s[j] - '0');
                j++;
            }
            if (j - d0 > PY_INT_MAX_STR_DIGITS)
                return WR_FAIL(WR_ERR_INVALID_ARG,
                               "the prompt has a decimal character reference of %zu digits (byte "
                               "%zu, html.unescape pass %d); Python's int() (so the diffusers "
                               "pipeline) raises on more than %d: shorten it",
                               j - d0, a, pass, PY_INT_MAX_STR_DIGITS);
        } else if (j + 1 < n && (s[j] == 'x' || s[j] == 'X') && is_hex(s[j + 1])) {
            j++;
            while (j < n && is_hex(s[j])) {
                if (num <= 0x10FFFF) num = num * 16 + hex_val(s[j]);
                j++;
            }
        } else {
            return WR_OK; /* "&#" not followed by a number: no match ('#' ends a name too) */
        }
        if (num > 0x10FFFF) num = 0x110000;
        if (j < n && s[j] == ';') j++;
        numeric_charref(out, num);
        *end = j;
        return WR_OK;
    }
    /* named: [^\t\n\f <&#;]{1,32};? — 32 code points at most */
    size_t cps[34]; /* code point offsets within the name, relative to a + 1 */
    int ncp = 0;
    while (j < n && ncp < 32) {
        const uint8_t c = s[j];
        if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' ||
            c == ';')
            break;
        uint32_t cp;
        const int l = utf8_next(s + j, n - j, &cp);
        cps[ncp++] = j - (a + 1);
        j += (size_t)(l ? l : 1);
    }
    if (ncp == 0) return WR_OK;
    if (j < n && s[j] == ';') {
        cps[ncp++] = j - (a + 1);
        j++;
    }
    cps[ncp] = j - (a + 1);
    const char *name = (const char *)s + a + 1;
    const size_t nlen = j - (a + 1);
    const struct wr_html_entity *e = entity_find(name, nlen);
    if (e) {
        sb_put(out, e->value, strlen(e->value));
        *end = j;
        return WR_OK;
    }
    /* the longest prefix of at least 2 code points that is a name (those without ';') */
    for (int x = ncp - 1; x > 1; x--) {
        e = entity_find(name, cps[x]);
        if (e) {
            sb_put(out, e->value, strlen(e->value));
            sb_put(out, name + cps[x], nlen - cps[x]);
            *end = j;
            return WR_OK;
        }
    }
    sb_put(out, s + a, j - a); /* '&' + s: unchanged */
    *end = j;
    return WR_OK;
}

/* html.unescape(s) appended to out. */
static wr_status html_unescape(const uint8_t *s, size_t n, sbuf *out, int pass) {
    size_t i = 0;
    while (i < n) {
        const uint8_t *amp = memchr(s + i, '&', n - i);
        if (!amp) {
            sb_put(out, s + i, n - i);
            break;
        }
        const size_t a = (size_t)(amp - s);
        sb_put(out, s + i, a - i);
        size_t end;
        WR_TRY(charref_at(s, n, a, out, &end, pass));
        if (end == a) {
            sb_put(out, "&", 1);
            i = a + 1;
        } else {
            i = end;
        }
    }
    return WR_OK;
}

/* ---- prompt_clean (diffusers pipeline_wan.py) ----
 *
 * basic_clean: [ftfy.fix_text only if installed: not done], html.unescape(html.unescape(t)),
 * t.strip(); whitespace_clean: re.sub(r"\s+", " ", t).strip(). The module imports
 * `regex as re`, whose \s is Unicode White_Space, while str.strip() removes str.isspace()
 * characters, which also include U+001C..U+001F: so those four are stripped at the ends but
 * kept (not collapsed) inside. White_Space is a subset of isspace, so after the first strip
 * the ends hold no White_Space and the second strip has nothing left to do. */

static wr_status prompt_too_long(const char *what, size_t n) {
    return WR_FAIL(WR_ERR_INVALID_ARG,
                   "%s is %zu bytes, more than the %zu (1 MiB) wanrun accepts: only its first "
                   "%d tokens (a few KB of text) reach the text encoder; shorten it",
                   what, n, WR_TOKENIZER_MAX_PROMPT_BYTES, WR_TOKENIZER_MAX_LEN - 1);
}

wr_status wr_prompt_check(const char *prompt, const char *what) {
    WR_ASSERT(prompt && what);
    const size_t n = strlen(prompt);
    if (n > WR_TOKENIZER_MAX_PROMPT_BYTES) return prompt_too_long(what, n);
    const size_t bad = utf8_check((const uint8_t *)prompt, n);
    if (bad != n)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "%s is not valid UTF-8 (byte %zu: 0x%02X); pass UTF-8 text", what, bad,
                       (unsigned)(uint8_t)prompt[bad]);
    return WR_OK;
}

static wr_status prompt_clean_n(const char *prompt, size_t n, sbuf *out) {
    if (n > WR_TOKENIZER_MAX_PROMPT_BYTES) return prompt_too_long("the prompt", n);
    const size_t bad = utf8_check((const uint8_t *)prompt, n);
    if (bad != n)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "the prompt is not valid UTF-8 (byte %zu: 0x%02X); pass UTF-8 text", bad,
                       (unsigned)(uint8_t)prompt[bad]);
    wr_status st = WR_OK;
    sbuf u1 = {0}, u2 = {0};
    st = html_unescape((const uint8_t *)prompt, n, &u1, 1);
    if (st == WR_OK && !u1.oom) st = html_unescape((const uint8_t *)u1.p, u1.len, &u2, 2);
    if (st == WR_OK && (u1.oom || u2.oom))
        st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory cleaning a %zu-byte prompt", n);
    if (st == WR_OK) {
        /* strip: [b, e) without leading/trailing isspace code points */
        const uint8_t *u = (const uint8_t *)u2.p;
        size_t b = 0, e = u2.len, last_end = 0;
        uint32_t cp;
        while (b < e) {
            const int l = utf8_next(u + b, e - b, &cp);
            WR_ASSERT(l > 0); /* the unescaper only writes well-formed UTF-8 */
            if (!in_ranges(wr_py_isspace, NELEM(wr_py_isspace), cp)) break;
            b += (size_t)l;
        }
        for (size_t i = b; i < e;) { /* find the end of the last non-isspace code point */
            const int l = utf8_next(u + i, e - i, &cp);
            WR_ASSERT(l > 0);
            i += (size_t)l;
            if (!in_ranges(wr_py_isspace, NELEM(wr_py_isspace), cp)) last_end = i;
        }
        e = b < e ? last_end : b;
        /* collapse White_Space runs */
        bool pending = false;
        for (size_t i = b; i < e;) {
            const int l = utf8_next(u + i, e - i, &cp);
            if (in_ranges(wr_regex_space, NELEM(wr_regex_space), cp)) {
                pending = true;
            } else {
                if (pending) sb_put(out, " ", 1);
                pending = false;
                sb_put(out, u + i, (size_t)l);
            }
            i += (size_t)l;
        }
        if (!out->p) sb_put(out, "", 0);
        if (out->oom) st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory cleaning a prompt");
    }
    free(u1.p);
    free(u2.p);
    return st;
}

wr_status wr_prompt_clean(const char *prompt, char **out) {
    WR_ASSERT(prompt && out);
    *out = NULL;
    sbuf b = {0};
    const wr_status st = prompt_clean_n(prompt, strlen(prompt), &b);
    if (st != WR_OK) {
        free(b.p);
        return st;
    }
    *out = b.p;
    return WR_OK;
}

/* ---- vocabulary hash (tokenizers' Unigram token_to_ids) ---- */

#define FNV_BASIS      1469598103934665603ull
#define FNV_STEP(h, c) (((h) ^ (uint8_t)(c)) * 1099511628211ull)

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = FNV_BASIS;
    for (size_t i = 0; i < n; i++) h = FNV_STEP(h, s[i]);
    return h;
}

/* The id of the piece with exactly these bytes (whose fnv1a is h), or -1. */
static int32_t vocab_find_h(const wr_tokenizer *t, const char *s, size_t n, uint64_t h) {
    if (n == 0 || n > t->max_piece) return -1;
    for (size_t i = (size_t)h & t->slot_mask;; i = (i + 1) & t->slot_mask) {
        const int32_t id = t->slots[i];
        if (id < 0) return -1;
        if (t->len[id] == n && memcmp(t->arena + t->off[id], s, n) == 0) return id;
    }
}

static int32_t vocab_find(const wr_tokenizer *t, const char *s, size_t n) {
    return vocab_find_h(t, s, n, fnv1a(s, n));
}

/* Inserts id; a later piece with the same bytes takes the slot (a Rust HashMap insert). */
static void vocab_insert(wr_tokenizer *t, int32_t id) {
    const char *s = t->arena + t->off[id];
    const size_t n = t->len[id];
    for (size_t i = (size_t)fnv1a(s, n) & t->slot_mask;; i = (i + 1) & t->slot_mask) {
        const int32_t cur = t->slots[i];
        if (cur < 0 || (t->len[cur] == n && memcmp(t->arena + t->off[cur], s, n) == 0)) {
            t->slots[i] = id;
            return;
        }
    }
}

/* ---- reading a model file ---- */

/* The largest tokenizer model file read (UMT5: spiece.model 4.5 MB, tokenizer.json ~17 MB; the
 * JSON tree costs a few times the text). */
#define MAX_MODEL_FILE ((size_t)64 << 20)

/* Protocol-buffer wire format, just enough to read piece types and the normalizer's char map
 * (the Debian package ships no sentencepiece_model.pb.h). */
typedef struct pbr {
    const uint8_t *p, *end;
} pbr;

static bool pb_varint(pbr *r, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        const uint8_t b = *r->p++;
        *v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) return true;
    }
    return false;
}

/* Reads a field key; for length-delimited fields also the payload bounds into *sub. */
static bool pb_field(pbr *r, uint32_t *field, uint32_t *wire, pbr *sub, uint64_t *val) {
    uint64_t key;
    if (!pb_varint(r, &key)) return false;
    *field = (uint32_t)(key >> 3);
    *wire = (uint32_t)(key & 7);
    switch (*wire) {
    case 0:
        return pb_varint(r, val);
    case 1:
        if (r->end - r->p < 8) return false;
        r->p += 8;
        return true;
    case 2: {
        uint64_t n;
        if (!pb_varint(r, &n) || n > (uint64_t)(r->end - r->p)) return false;
        sub->p = r->p;
        sub->end = r->p + n;
        r->p += n;
        return true;
    }
    case 5:
        if (r->end - r->p < 4) return false;
        r->p += 4;
        return true;
    default:
        return false; /* groups are not used by sentencepiece_model.proto */
    }
}

/* ModelProto: 1 = repeated SentencePiece {1 piece, 2 score, 3 type}, 3 = NormalizerSpec
 * {2 precompiled_charsmap}. types[n_sp] receives each piece's type (NORMAL when absent). */
static wr_status parse_model_proto(const uint8_t *buf, size_t n, int32_t n_sp, uint8_t *types,
                                   const uint8_t **charsmap, size_t *charsmap_len,
                                   const char *path) {
    pbr r = {buf, buf + n}, sub = {0};
    int32_t k = 0;
    *charsmap = NULL;
    *charsmap_len = 0;
    while (r.p < r.end) {
        uint32_t field, wire;
        uint64_t val;
        if (!pb_field(&r, &field, &wire, &sub, &val)) goto bad;
        if (field == 1 && wire == 2) {
            if (k >= n_sp) goto bad;
            types[k] = SPM_NORMAL;
            while (sub.p < sub.end) {
                pbr unused;
                uint32_t f2, w2;
                uint64_t v2 = 0;
                if (!pb_field(&sub, &f2, &w2, &unused, &v2)) goto bad;
                if (f2 == 3 && w2 == 0) types[k] = (uint8_t)(v2 < 255 ? v2 : 255);
            }
            k++;
        } else if (field == 3 && wire == 2) {
            while (sub.p < sub.end) {
                pbr bytes = {0};
                uint32_t f2, w2;
                uint64_t v2;
                if (!pb_field(&sub, &f2, &w2, &bytes, &v2)) goto bad;
                if (f2 == 2 && w2 == 2) {
                    *charsmap = bytes.p;
                    *charsmap_len = (size_t)(bytes.end - bytes.p);
                }
            }
        }
    }
    if (k != n_sp) goto bad;
    return WR_OK;
bad:
    return WR_FAIL(WR_ERR_FORMAT,
                   "%s: the SentencePiece model's protobuf could not be read back (%d of %d "
                   "pieces); the file is corrupt: take spiece.model from the checkpoint again",
                   path, (int)k, (int)n_sp);
}

/* spm_precompiled::Precompiled::from: le u32 trie byte size, the trie's u32 units, then the
 * replacement strings (must be UTF-8). `field` names the map in details. */
static wr_status parse_charsmap(wr_tokenizer *t, const uint8_t *p, size_t n, const char *field) {
    if (n == 0) return WR_OK; /* no map: T5Tokenizer sets no normalizer */
    if (n < 4) goto bad;
    const uint32_t trie_bytes =
        (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    const size_t nu = trie_bytes / 4;
    if (nu == 0 || nu > (n - 4) / 4) goto bad;
    t->units = malloc(nu * sizeof(uint32_t));
    t->norm_len = n - 4 - nu * 4;
    t->norm = malloc(t->norm_len + 1);
    if (!t->units || !t->norm)
        return WR_FAIL(WR_ERR_OOM_HOST, "%s: out of host memory for the char map", t->path);
    for (size_t i = 0; i < nu; i++) {
        const uint8_t *q = p + 4 + 4 * i;
        t->units[i] =
            (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
    }
    t->n_units = nu;
    memcpy(t->norm, p + 4 + nu * 4, t->norm_len);
    t->norm[t->norm_len] = '\0';
    if (utf8_check((const uint8_t *)t->norm, t->norm_len) != t->norm_len) goto bad;
    return WR_OK;
bad:
    return WR_FAIL(WR_ERR_FORMAT,
                   "%s: the normalizer's char map (%s, %zu bytes) is malformed; the file is "
                   "corrupt: take it from the checkpoint again",
                   t->path, field, n);
}

/* ---- the vocabulary tables, shared by both readers ---- */

static wr_status vocab_alloc(wr_tokenizer *t, size_t nv) {
    t->n_vocab = (int32_t)nv;
    t->off = malloc(nv * sizeof(*t->off));
    t->len = malloc(nv * sizeof(*t->len));
    t->score = malloc(nv * sizeof(*t->score));
    t->added = calloc(nv, 1);
    size_t nslots = 1;
    while (nslots < 2 * nv) nslots *= 2;
    t->slots = malloc(nslots * sizeof(*t->slots));
    if (!t->off || !t->len || !t->score || !t->added || !t->slots)
        return WR_FAIL(WR_ERR_OOM_HOST, "%s: out of host memory (%zu pieces)", t->path, nv);
    t->slot_mask = nslots - 1;
    memset(t->slots, 0xFF, nslots * sizeof(*t->slots));
    return WR_OK;
}

static wr_status add_piece(wr_tokenizer *t, sbuf *arena, int32_t id, const char *s, size_t n,
                           double score) {
    t->off[id] = arena->len;
    t->len[id] = (uint32_t)n;
    t->score[id] = score;
    sb_put(arena, s, n);
    sb_put(arena, "", 1);
    if (n > t->max_piece) t->max_piece = n;
    return arena->oom ? WR_FAIL(WR_ERR_OOM_HOST, "%s: out of host memory", t->path) : WR_OK;
}

/* After every add_piece: takes the arena, fills the piece hash (a later piece with the same
 * bytes wins, as in tokenizers' HashMap) and the minimum score (tokenizers' Unigram::from). */
static void vocab_index(wr_tokenizer *t, sbuf *arena) {
    t->arena = arena->p;
    arena->p = NULL;
    t->min_score = 0.0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (id == 0 || t->score[id] < t->min_score) t->min_score = t->score[id];
        vocab_insert(t, id);
    }
}

/* After the added flags are set: the first bytes and distinct lengths of the added tokens,
 * longest first (leftmost-longest matching). */
static wr_status added_index(wr_tokenizer *t) {
    t->added_lens = calloc(t->max_piece + 1, sizeof(*t->added_lens));
    if (!t->added_lens) return WR_FAIL(WR_ERR_OOM_HOST, "%s: out of host memory", t->path);
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!t->added[id] || t->len[id] == 0) continue;
        t->added_first[(uint8_t)t->arena[t->off[id]]] = 1;
        t->added_lens[t->len[id]] = 1; /* a flag per length for now */
    }
    for (size_t l = t->max_piece; l > 0; l--)
        if (t->added_lens[l]) t->added_lens[t->n_added_lens++] = l;
    return WR_OK;
}

static const char *const t5_specials[3] = {"<pad>", "</s>", "<unk>"};

/* ---- reading spiece.model ---- */

static wr_status open_spiece(wr_tokenizer *t, const uint8_t *buf, size_t nbuf) {
    wr_status st = WR_OK;
    uint8_t *types = NULL;
    sbuf arena = {0};
    WR_TRY(wr_spm_load(&t->spm, buf, nbuf, t->path));
    t->n_sp = wr_spm_piece_count(t->spm);
    for (int i = 0; i < 3; i++) {
        size_t n = 0;
        const char *p = i < t->n_sp ? wr_spm_id_to_piece(t->spm, i, &n) : NULL;
        if (!p || n != strlen(t5_specials[i]) || memcmp(p, t5_specials[i], n) != 0)
            return WR_FAIL(WR_ERR_FORMAT,
                           "%s: piece %d is not '%s': not a T5/UMT5 tokenizer model (<pad>=0, "
                           "</s>=1, <unk>=2); pass the text encoder's tokenizer/spiece.model",
                           t->path, i, t5_specials[i]);
    }
    if (wr_spm_unk_id(t->spm) != 2)
        return WR_FAIL(WR_ERR_FORMAT, "%s: the unknown piece is id %d, not 2: not a T5/UMT5 model",
                       t->path, (int)wr_spm_unk_id(t->spm));
    types = malloc((size_t)t->n_sp);
    if (!types) return WR_FAIL(WR_ERR_OOM_HOST, "%s: out of host memory", t->path);
    const uint8_t *cmap;
    size_t cmap_len;
    WR_TRY_GOTO(st, parse_model_proto(buf, nbuf, t->n_sp, types, &cmap, &cmap_len, t->path), done);
    WR_TRY_GOTO(st, parse_charsmap(t, cmap, cmap_len, "precompiled_charsmap"), done);

    /* the vocabulary: T5Converter.convert_from_spm appends <extra_id_299> .. <extra_id_0> */
    WR_TRY_GOTO(st, vocab_alloc(t, (size_t)t->n_sp + WR_TOKENIZER_EXTRA_IDS), done);
    for (int32_t id = 0; id < t->n_vocab; id++) {
        char name[32];
        const char *p;
        size_t n;
        double sc;
        if (id < t->n_sp) {
            p = wr_spm_id_to_piece(t->spm, id, &n);
            WR_ASSERT(p != NULL);
            sc = (double)wr_spm_score(t->spm, id);
            /* added tokens: <pad> </s> <unk> (T5Tokenizer's special tokens) and the model's
             * control and user-defined pieces (SentencePieceExtractor.extract) */
            t->added[id] = id < 3 || types[id] == SPM_CONTROL || types[id] == SPM_USER_DEFINED;
        } else {
            n = (size_t)snprintf(name, sizeof(name), "<extra_id_%d>",
                                 WR_TOKENIZER_EXTRA_IDS - 1 - (id - t->n_sp));
            p = name;
            sc = 0.0;
            t->added[id] = 1;
        }
        WR_TRY_GOTO(st, add_piece(t, &arena, id, p, n, sc), done);
    }
    vocab_index(t, &arena);
    st = added_index(t);
done:
    free(types);
    free(arena.p);
    return st;
}

/* ---- reading tokenizer.json ----
 *
 * The `tokenizers` 0.23 serialization (tokenizer/serialization.rs and each component's serde)
 * of the tokenizer transformers 5.x's T5Tokenizer builds and save_pretrained writes:
 *   {"version": "1.0", "truncation": null, "padding": null,
 *    "added_tokens": [{"id", "content", "single_word", "lstrip", "rstrip", "normalized",
 *                      "special"}, ...],
 *    "normalizer": {"type": "Precompiled", "precompiled_charsmap": base64} (or null),
 *    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"},
 *        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}]},
 *    "post_processor": {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A",
 *        "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}], "pair": [...],
 *        "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}},
 *    "decoder": {...}, "model": {"type": "Unigram", "unk_id": 2, "vocab": [[piece, score],
 *        ...], "byte_fallback": false}}
 * Every object's keys are checked (an unknown key is refused, a repeated one too: serde
 * rejects duplicate fields), every value's type; what wanrun does not implement is
 * WR_ERR_UNSUPPORTED, what `tokenizers` itself would reject WR_ERR_FORMAT. */

#define TJ_MAX_VOCAB    4000000 /* pieces (UMT5: 256,300) */
#define TJ_MAX_PIECE    1024    /* bytes of one piece (SentencePiece's default limit: 16 chars) */
#define TJ_MAX_TEMPLATE 256     /* entries of post_processor.single / pair / special_tokens */

/* A string value for a message: at most 48 bytes, control bytes and quotes escaped. */
static const char *tj_show(const char *s, char out[80]) {
    size_t k = 0, i = 0;
    for (; s[i] && k < 48; i++) {
        const unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F || c == '"' || c == '\\')
            k += (size_t)snprintf(out + k, 80 - k, "\\x%02X", c);
        else
            out[k++] = (char)c;
    }
    if (s[i]) k += (size_t)snprintf(out + k, 80 - k, "...");
    out[k] = '\0';
    return out;
}

/* path + "." + key (or key alone at the top) */
static const char *tj_join(char *buf, size_t cap, const char *path, const char *key) {
    snprintf(buf, cap, "%s%s%s", path, *path ? "." : "", key);
    return buf;
}

static wr_status tj_type_error(const char *file, const char *path, const char *want,
                               const cJSON *v) {
    if (cJSON_IsNumber(v))
        return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' must be %s, got %.17g", file, path, want,
                       v->valuedouble);
    return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' must be %s, got %s", file, path, want,
                   wr_json_kind_name(v));
}

/* obj must be an object whose keys are all in keys[] and none twice. */
static wr_status tj_object(const char *file, const cJSON *obj, const char *path,
                           const char *const *keys, size_t nkeys) {
    if (!cJSON_IsObject(obj)) return tj_type_error(file, path, "an object", obj);
    for (const cJSON *c = obj->child; c; c = c->next) {
        bool known = false;
        for (size_t k = 0; k < nkeys && !known; k++) known = strcmp(c->string, keys[k]) == 0;
        char p[256], show[80];
        if (!known)
            return WR_FAIL(WR_ERR_UNSUPPORTED,
                           "%s: field '%s' is not one wanrun knows (as transformers 5.x writes "
                           "tokenizer.json for T5/UMT5); refusing it rather than ignoring it",
                           file, tj_join(p, sizeof p, path, tj_show(c->string, show)));
        for (const cJSON *d = obj->child; d != c; d = d->next)
            if (strcmp(d->string, c->string) == 0)
                return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' appears twice", file,
                               tj_join(p, sizeof p, path, tj_show(c->string, show)));
    }
    return WR_OK;
}

/* A required member (WR_ERR_FORMAT naming it when absent). */
static wr_status tj_need(const char *file, const cJSON *obj, const char *path, const char *key,
                         const cJSON **out) {
    *out = cJSON_GetObjectItemCaseSensitive(obj, key);
    char p[256];
    if (!*out)
        return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' is missing", file,
                       tj_join(p, sizeof p, path, key));
    return WR_OK;
}

/* obj[key] (required) must be the string `want`: another string is WR_ERR_UNSUPPORTED. */
static wr_status tj_string_is(const char *file, const cJSON *obj, const char *path, const char *key,
                              const char *want, const char *what) {
    const cJSON *v;
    char p[256], show[80];
    WR_TRY(tj_need(file, obj, path, key, &v));
    tj_join(p, sizeof p, path, key);
    if (!cJSON_IsString(v)) return tj_type_error(file, p, "a string", v);
    if (strcmp(v->valuestring, want) != 0)
        return WR_FAIL(WR_ERR_UNSUPPORTED, "%s: field '%s' is \"%s\": wanrun implements only %s",
                       file, p, tj_show(v->valuestring, show), what);
    return WR_OK;
}

/* An optional boolean obj[key] that must have the value `want` when present. */
static wr_status tj_bool_is(const char *file, const cJSON *obj, const char *path, const char *key,
                            bool want, bool required, const char *why) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    char p[256];
    tj_join(p, sizeof p, path, key);
    if (!v) {
        if (required) return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' is missing", file, p);
        return WR_OK;
    }
    if (!cJSON_IsBool(v)) return tj_type_error(file, p, "a boolean", v);
    if (cJSON_IsTrue(v) != want)
        return WR_FAIL(WR_ERR_UNSUPPORTED, "%s: field '%s' is %s: %s", file, p,
                       want ? "false" : "true", why);
    return WR_OK;
}

/* A number that is an integer in [lo, hi]: 0 and *out, or -1 (not an integer), 1 (range). */
static int tj_int(const cJSON *v, double lo, double hi, int64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    const double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d)) return -1;
    if (d < lo || d > hi) return 1;
    *out = (int64_t)d;
    return 0;
}

static wr_status tj_index(const char *file, const cJSON *v, const char *path, int64_t n,
                          int64_t *out) {
    const int r = tj_int(v, -9e15, 9e15, out);
    if (r < 0) return tj_type_error(file, path, "an integer", v);
    if (r > 0 || *out < 0 || *out >= n)
        return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' is %.17g, outside the vocabulary [0, %lld)",
                       file, path, v->valuedouble, (long long)n);
    return WR_OK;
}

/* Standard base64 with '=' padding (what tokenizers writes), strictly: no whitespace, no
 * missing or extra padding, zero trailing bits. *out malloc'd. 1 decoded, 0 malformed, -1 out
 * of memory. */
static int base64_decode(const char *s, size_t n, uint8_t **out, size_t *nout) {
    *out = NULL;
    *nout = 0;
    if (n % 4 != 0) return 0;
    size_t pad = 0;
    if (n >= 1 && s[n - 1] == '=') pad++;
    if (n >= 2 && s[n - 2] == '=') pad++;
    uint8_t *b = malloc(n / 4 * 3 + 1);
    if (!b) return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        for (size_t j = 0; j < 4; j++) {
            const unsigned char c = (unsigned char)s[i + j];
            uint32_t d;
            if (c >= 'A' && c <= 'Z')
                d = c - 'A';
            else if (c >= 'a' && c <= 'z')
                d = c - 'a' + 26;
            else if (c >= '0' && c <= '9')
                d = c - '0' + 52;
            else if (c == '+')
                d = 62;
            else if (c == '/')
                d = 63;
            else if (c == '=' && i + 4 == n && j >= 4 - pad)
                d = 0;
            else
                goto bad;
            v = v << 6 | d;
        }
        const size_t emit = i + 4 == n ? 3 - pad : 3;
        if (i + 4 == n && pad && (v & (pad == 1 ? 0xFFu : 0xFFFFu)) != 0) goto bad;
        for (size_t j = 0; j < emit; j++) b[k++] = (uint8_t)(v >> (16 - 8 * j));
    }
    *out = b;
    *nout = k;
    return 1;
bad:
    free(b);
    return 0;
}

/* A Precompiled normalizer object at `path`. */
static wr_status tj_precompiled(wr_tokenizer *t, const cJSON *o, const char *path) {
    static const char *const keys[] = {"type", "precompiled_charsmap"};
    const char *file = t->path;
    WR_TRY(tj_object(file, o, path, keys, NELEM(keys)));
    const cJSON *v;
    char p[256];
    WR_TRY(tj_need(file, o, path, "precompiled_charsmap", &v));
    tj_join(p, sizeof p, path, "precompiled_charsmap");
    if (!cJSON_IsString(v)) return tj_type_error(file, p, "a base64 string", v);
    uint8_t *map = NULL;
    size_t nmap = 0;
    const int dec = base64_decode(v->valuestring, strlen(v->valuestring), &map, &nmap);
    if (dec < 0) return WR_FAIL(WR_ERR_OOM_HOST, "%s: out of host memory for '%s'", file, p);
    if (dec == 0)
        return WR_FAIL(WR_ERR_FORMAT,
                       "%s: field '%s' is not valid base64 (standard alphabet, '=' padding, "
                       "%zu characters)",
                       file, p, strlen(v->valuestring));
    wr_status st = WR_OK;
    if (nmap == 0)
        st = WR_FAIL(WR_ERR_FORMAT,
                     "%s: field '%s' is empty: a Precompiled normalizer needs "
                     "its char map",
                     file, p);
    else
        st = parse_charsmap(t, map, nmap, p);
    free(map);
    return st;
}

static wr_status tj_normalizer(wr_tokenizer *t, const cJSON *n) {
    const char *file = t->path;
    if (!n || cJSON_IsNull(n)) return WR_OK; /* no normalizer (a model without a char map) */
    if (!cJSON_IsObject(n)) return tj_type_error(file, "normalizer", "an object or null", n);
    const cJSON *type;
    char show[80];
    WR_TRY(tj_need(file, n, "normalizer", "type", &type));
    if (!cJSON_IsString(type)) return tj_type_error(file, "normalizer.type", "a string", type);
    if (strcmp(type->valuestring, "Precompiled") == 0) return tj_precompiled(t, n, "normalizer");
    if (strcmp(type->valuestring, "Sequence") == 0) {
        static const char *const keys[] = {"type", "normalizers"};
        WR_TRY(tj_object(file, n, "normalizer", keys, NELEM(keys)));
        const cJSON *list;
        WR_TRY(tj_need(file, n, "normalizer", "normalizers", &list));
        if (!cJSON_IsArray(list))
            return tj_type_error(file, "normalizer.normalizers", "an array", list);
        int i = 0;
        for (const cJSON *c = list->child; c; c = c->next, i++) {
            char p[64];
            snprintf(p, sizeof p, "normalizer.normalizers[%d]", i);
            if (!cJSON_IsObject(c)) return tj_type_error(file, p, "an object", c);
            const cJSON *ct = cJSON_GetObjectItemCaseSensitive(c, "type");
            char pt[80];
            snprintf(pt, sizeof pt, "%s.type", p);
            if (!cJSON_IsString(ct)) return tj_type_error(file, pt, "a string", ct);
            if (i > 0 || strcmp(ct->valuestring, "Precompiled") != 0)
                return WR_FAIL(WR_ERR_UNSUPPORTED,
                               "%s: field '%s' is \"%s\": wanrun implements only a Precompiled "
                               "normalizer (alone, or the only one of a Sequence)",
                               file, pt, tj_show(ct->valuestring, show));
            WR_TRY(tj_precompiled(t, c, p));
        }
        return WR_OK;
    }
    return WR_FAIL(WR_ERR_UNSUPPORTED,
                   "%s: field 'normalizer.type' is \"%s\": wanrun implements only the "
                   "Precompiled normalizer (SentencePiece's char map, as T5/UMT5 has)",
                   file, tj_show(type->valuestring, show));
}

static wr_status tj_pre_tokenizer(const char *file, const cJSON *pt) {
    static const char *const seq_keys[] = {"type", "pretokenizers"};
    static const char *const ws_keys[] = {"type"};
    static const char *const ms_keys[] = {"type",  "replacement",      "prepend_scheme",
                                          "split", "add_prefix_space", "str_rep"};
    static const char *const want =
        "Sequence[WhitespaceSplit, Metaspace(replacement '\xE2\x96\x81', prepend_scheme "
        "always, split true)] (what transformers 5.x writes for T5/UMT5)";
    if (!pt || cJSON_IsNull(pt))
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'pre_tokenizer' is %s: wanrun implements only %s", file,
                       pt ? "null" : "missing", want);
    if (!cJSON_IsObject(pt)) return tj_type_error(file, "pre_tokenizer", "an object", pt);
    WR_TRY(tj_string_is(file, pt, "pre_tokenizer", "type", "Sequence", want));
    WR_TRY(tj_object(file, pt, "pre_tokenizer", seq_keys, NELEM(seq_keys)));
    const cJSON *list;
    WR_TRY(tj_need(file, pt, "pre_tokenizer", "pretokenizers", &list));
    if (!cJSON_IsArray(list))
        return tj_type_error(file, "pre_tokenizer.pretokenizers", "an array", list);
    const int n = cJSON_GetArraySize(list);
    if (n != 2)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'pre_tokenizer.pretokenizers' has %d entries: wanrun "
                       "implements only %s",
                       file, n, want);
    const cJSON *ws = list->child, *ms = ws->next;
    if (!cJSON_IsObject(ws))
        return tj_type_error(file, "pre_tokenizer.pretokenizers[0]", "an object", ws);
    WR_TRY(
        tj_string_is(file, ws, "pre_tokenizer.pretokenizers[0]", "type", "WhitespaceSplit", want));
    WR_TRY(tj_object(file, ws, "pre_tokenizer.pretokenizers[0]", ws_keys, NELEM(ws_keys)));
    const char *mp = "pre_tokenizer.pretokenizers[1]";
    if (!cJSON_IsObject(ms)) return tj_type_error(file, mp, "an object", ms);
    WR_TRY(tj_string_is(file, ms, mp, "type", "Metaspace", want));
    WR_TRY(tj_object(file, ms, mp, ms_keys, NELEM(ms_keys)));
    WR_TRY(tj_string_is(file, ms, mp, "replacement", "\xE2\x96\x81", "U+2581 '\xE2\x96\x81'"));
    /* serde defaults (pre_tokenizers/metaspace.rs): prepend_scheme always, split true */
    if (cJSON_GetObjectItemCaseSensitive(ms, "prepend_scheme"))
        WR_TRY(tj_string_is(file, ms, mp, "prepend_scheme", "always", "\"always\""));
    WR_TRY(tj_bool_is(file, ms, mp, "split", true, false,
                      "wanrun implements only split true (words cut before every '\xE2\x96\x81')"));
    WR_TRY(tj_bool_is(file, ms, mp, "add_prefix_space", true, false,
                      "that means prepend_scheme never; wanrun implements only always"));
    if (cJSON_GetObjectItemCaseSensitive(ms, "str_rep"))
        WR_TRY(tj_string_is(file, ms, mp, "str_rep", "\xE2\x96\x81", "U+2581 '\xE2\x96\x81'"));
    return WR_OK;
}

/* One template piece {"Sequence": {"id": "A"|"B", "type_id": n}} or {"SpecialToken": {"id":
 * s, "type_id": n}}; *kind 0 Sequence, 1 SpecialToken; *id borrowed. */
static wr_status tj_template_piece(const char *file, const cJSON *o, const char *path, int *kind,
                                   const char **id) {
    static const char *const outer[] = {"Sequence", "SpecialToken"};
    static const char *const inner[] = {"id", "type_id"};
    WR_TRY(tj_object(file, o, path, outer, NELEM(outer)));
    if (cJSON_GetArraySize(o) != 1)
        return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' must hold one of Sequence, SpecialToken",
                       file, path);
    const cJSON *in = o->child;
    char p[256], q[288];
    tj_join(p, sizeof p, path, in->string);
    *kind = strcmp(in->string, "SpecialToken") == 0;
    WR_TRY(tj_object(file, in, p, inner, NELEM(inner)));
    const cJSON *v;
    WR_TRY(tj_need(file, in, p, "id", &v));
    if (!cJSON_IsString(v))
        return tj_type_error(file, tj_join(q, sizeof q, p, "id"), "a string", v);
    *id = v->valuestring;
    if (*kind == 0 && strcmp(*id, "A") != 0 && strcmp(*id, "B") != 0)
        return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' must be \"A\" or \"B\"", file,
                       tj_join(q, sizeof q, p, "id"));
    WR_TRY(tj_need(file, in, p, "type_id", &v));
    int64_t ti;
    if (tj_int(v, 0, 4294967295.0, &ti) != 0)
        return tj_type_error(file, tj_join(q, sizeof q, p, "type_id"), "an integer >= 0", v);
    return WR_OK; /* type ids only make token_type_ids, which WanPipeline does not use */
}

static wr_status tj_post_processor(const char *file, const cJSON *pp) {
    static const char *const keys[] = {"type", "single", "pair", "special_tokens"};
    static const char *const st_keys[] = {"id", "ids", "tokens"};
    static const char *const want = "TemplateProcessing \"$A </s>\" (T5/UMT5's: </s> appended)";
    if (!pp || cJSON_IsNull(pp))
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'post_processor' is %s: wanrun implements "
                       "only %s",
                       file, pp ? "null" : "missing", want);
    if (!cJSON_IsObject(pp)) return tj_type_error(file, "post_processor", "an object", pp);
    WR_TRY(tj_string_is(file, pp, "post_processor", "type", "TemplateProcessing", want));
    WR_TRY(tj_object(file, pp, "post_processor", keys, NELEM(keys)));
    /* special_tokens: {"name": {"id": name, "ids": [int...], "tokens": [str...]}} */
    const cJSON *sp, *single, *pair;
    WR_TRY(tj_need(file, pp, "post_processor", "special_tokens", &sp));
    WR_TRY(tj_need(file, pp, "post_processor", "single", &single));
    WR_TRY(tj_need(file, pp, "post_processor", "pair", &pair));
    if (!cJSON_IsObject(sp))
        return tj_type_error(file, "post_processor.special_tokens", "an object", sp);
    if (!cJSON_IsArray(single))
        return tj_type_error(file, "post_processor.single", "an array", single);
    if (!cJSON_IsArray(pair)) return tj_type_error(file, "post_processor.pair", "an array", pair);
    /* bounded, so that looking the pair's names up in special_tokens stays cheap */
    static const char *const lists[] = {"special_tokens", "single", "pair"};
    const cJSON *const list_nodes[] = {sp, single, pair};
    for (int k = 0; k < 3; k++)
        if (cJSON_GetArraySize(list_nodes[k]) > TJ_MAX_TEMPLATE)
            return WR_FAIL(WR_ERR_UNSUPPORTED,
                           "%s: field 'post_processor.%s' has %d entries; wanrun takes at most %d",
                           file, lists[k], cJSON_GetArraySize(list_nodes[k]), TJ_MAX_TEMPLATE);
    for (const cJSON *e = sp->child; e; e = e->next) {
        char p[256], q[320], show[80];
        snprintf(p, sizeof p, "post_processor.special_tokens.%s", tj_show(e->string, show));
        WR_TRY(tj_object(file, e, p, st_keys, NELEM(st_keys)));
        const cJSON *id, *ids, *toks;
        WR_TRY(tj_need(file, e, p, "id", &id));
        WR_TRY(tj_need(file, e, p, "ids", &ids));
        WR_TRY(tj_need(file, e, p, "tokens", &toks));
        if (!cJSON_IsString(id))
            return tj_type_error(file, tj_join(q, sizeof q, p, "id"), "a string", id);
        if (!cJSON_IsArray(ids))
            return tj_type_error(file, tj_join(q, sizeof q, p, "ids"), "an array", ids);
        if (!cJSON_IsArray(toks))
            return tj_type_error(file, tj_join(q, sizeof q, p, "tokens"), "an array", toks);
        for (const cJSON *c = ids->child; c; c = c->next) {
            int64_t x;
            if (tj_int(c, 0, 4294967295.0, &x) != 0)
                return tj_type_error(file, tj_join(q, sizeof q, p, "ids[]"), "integers >= 0", c);
        }
        for (const cJSON *c = toks->child; c; c = c->next)
            if (!cJSON_IsString(c))
                return tj_type_error(file, tj_join(q, sizeof q, p, "tokens[]"), "strings", c);
        if (cJSON_GetArraySize(ids) != cJSON_GetArraySize(toks))
            return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' has %d ids but %d tokens", file, p,
                           cJSON_GetArraySize(ids), cJSON_GetArraySize(toks));
    }
    /* single: exactly $A then </s>, and </s> is [1] */
    int kinds[2] = {-1, -1}, i = 0;
    const char *names[2] = {NULL, NULL};
    for (const cJSON *c = single->child; c; c = c->next, i++) {
        char p[64];
        snprintf(p, sizeof p, "post_processor.single[%d]", i);
        int kind;
        const char *name;
        WR_TRY(tj_template_piece(file, c, p, &kind, &name));
        if (i < 2) kinds[i] = kind, names[i] = name;
    }
    if (i != 2 || kinds[0] != 0 || strcmp(names[0], "A") != 0 || kinds[1] != 1 ||
        strcmp(names[1], "</s>") != 0)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'post_processor.single' is not [$A, </s>]: wanrun implements "
                       "only %s",
                       file, want);
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(sp, "</s>");
    if (!eos)
        return WR_FAIL(WR_ERR_FORMAT,
                       "%s: field 'post_processor.special_tokens' has no \"</s>\", which "
                       "post_processor.single uses",
                       file);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(eos, "ids");
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(eos, "tokens");
    if (cJSON_GetArraySize(ids) != 1 || ids->child->valuedouble != 1.0 ||
        strcmp(cJSON_GetObjectItemCaseSensitive(eos, "id")->valuestring, "</s>") != 0 ||
        strcmp(toks->child->valuestring, "</s>") != 0)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'post_processor.special_tokens.</s>' is not {id \"</s>\", ids "
                       "[1], tokens [\"</s>\"]}: wanrun appends </s> as id 1",
                       file);
    /* pair: only for pair inputs, which wanrun does not take; checked for form only */
    i = 0;
    for (const cJSON *c = pair->child; c; c = c->next, i++) {
        char p[64];
        snprintf(p, sizeof p, "post_processor.pair[%d]", i);
        int kind;
        const char *name;
        WR_TRY(tj_template_piece(file, c, p, &kind, &name));
        if (kind == 1 && !cJSON_GetObjectItemCaseSensitive(sp, name))
            return WR_FAIL(WR_ERR_FORMAT,
                           "%s: field '%s' names a special token missing from "
                           "post_processor.special_tokens",
                           file, p);
    }
    return WR_OK;
}

/* model: {"type": "Unigram", "unk_id": 2, "vocab": [[piece, score]...], "byte_fallback"} */
static wr_status tj_model(wr_tokenizer *t, const cJSON *m) {
    static const char *const keys[] = {"type", "unk_id", "vocab", "byte_fallback"};
    const char *file = t->path;
    wr_status st = WR_OK;
    if (!m) return WR_FAIL(WR_ERR_FORMAT, "%s: field 'model' is missing", file);
    if (!cJSON_IsObject(m)) return tj_type_error(file, "model", "an object", m);
    WR_TRY(tj_string_is(file, m, "model", "type", "Unigram",
                        "the Unigram model (T5/UMT5's SentencePiece model)"));
    WR_TRY(tj_object(file, m, "model", keys, NELEM(keys)));
    WR_TRY(tj_bool_is(file, m, "model", "byte_fallback", false, false,
                      "wanrun does not implement byte fallback (T5/UMT5 has none)"));
    const cJSON *vocab, *unk;
    WR_TRY(tj_need(file, m, "model", "vocab", &vocab));
    if (!cJSON_IsArray(vocab))
        return tj_type_error(file, "model.vocab", "an array of [piece, score]", vocab);
    const int nv = cJSON_GetArraySize(vocab);
    if (nv < 3 || nv > TJ_MAX_VOCAB)
        return WR_FAIL(nv < 3 ? WR_ERR_FORMAT : WR_ERR_UNSUPPORTED,
                       "%s: field 'model.vocab' has %d pieces; a T5/UMT5 vocabulary has "
                       "between 3 and %d",
                       file, nv, TJ_MAX_VOCAB);
    WR_TRY(tj_need(file, m, "model", "unk_id", &unk));
    if (cJSON_IsNull(unk))
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'model.unk_id' is null: wanrun needs the T5/UMT5 <unk> (id 2)",
                       file);
    int64_t unk_id;
    WR_TRY(tj_index(file, unk, "model.unk_id", nv, &unk_id));
    if (unk_id != 2)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: field 'model.unk_id' is %lld: wanrun implements the T5/UMT5 layout "
                       "(<unk> = 2)",
                       file, (long long)unk_id);
    WR_TRY(vocab_alloc(t, (size_t)nv));
    sbuf arena = {0};
    int i = 0;
    for (const cJSON *e = vocab->child; e; e = e->next, i++) {
        char p[64], show[80];
        snprintf(p, sizeof p, "model.vocab[%d]", i);
        const cJSON *piece = e->child, *score = piece ? piece->next : NULL;
        if (!cJSON_IsArray(e)) {
            st = tj_type_error(file, p, "an array [piece, score]", e);
            goto fail;
        }
        if (cJSON_GetArraySize(e) != 2) {
            st = WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' must be [piece, score], got %d entries",
                         file, p, cJSON_GetArraySize(e));
            goto fail;
        }
        char pp[80];
        snprintf(pp, sizeof pp, "%s[0]", p);
        if (!cJSON_IsString(piece)) {
            st = tj_type_error(file, pp, "a string", piece);
            goto fail;
        }
        const size_t n = strlen(piece->valuestring);
        const size_t bad = utf8_check((const uint8_t *)piece->valuestring, n);
        if (bad != n) {
            st = WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' is not valid UTF-8 (byte %zu)", file, pp,
                         bad);
            goto fail;
        }
        if (n > TJ_MAX_PIECE) {
            st = WR_FAIL(WR_ERR_UNSUPPORTED,
                         "%s: field '%s' is a %zu-byte piece; wanrun takes pieces of at most %d "
                         "bytes",
                         file, pp, n, TJ_MAX_PIECE);
            goto fail;
        }
        if (i < 3 && strcmp(piece->valuestring, t5_specials[i]) != 0) {
            st = WR_FAIL(WR_ERR_UNSUPPORTED,
                         "%s: field '%s' is \"%s\", not \"%s\": wanrun implements the T5/UMT5 "
                         "layout <pad>=0, </s>=1, <unk>=2",
                         file, pp, tj_show(piece->valuestring, show), t5_specials[i]);
            goto fail;
        }
        snprintf(pp, sizeof pp, "%s[1]", p);
        if (!cJSON_IsNumber(score) || !isfinite(score->valuedouble)) {
            st = tj_type_error(file, pp, "a finite number", score);
            goto fail;
        }
        WR_TRY_GOTO(st, add_piece(t, &arena, i, piece->valuestring, n, score->valuedouble), fail);
    }
    vocab_index(t, &arena);
    return WR_OK;
fail:
    free(arena.p);
    return st;
}

/* added_tokens: each an existing piece, matched on the raw text (all four flags false). */
static wr_status tj_added_tokens(wr_tokenizer *t, const cJSON *a) {
    static const char *const keys[] = {"id",     "content",    "single_word", "lstrip",
                                       "rstrip", "normalized", "special"};
    const char *file = t->path;
    if (!a) return WR_OK;
    if (!cJSON_IsArray(a)) return tj_type_error(file, "added_tokens", "an array", a);
    int i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        char p[64], q[96], show[80];
        snprintf(p, sizeof p, "added_tokens[%d]", i);
        WR_TRY(tj_object(file, e, p, keys, NELEM(keys)));
        const cJSON *idv, *content;
        WR_TRY(tj_need(file, e, p, "id", &idv));
        WR_TRY(tj_need(file, e, p, "content", &content));
        int64_t id;
        WR_TRY(tj_index(file, idv, tj_join(q, sizeof q, p, "id"), t->n_vocab, &id));
        if (!cJSON_IsString(content))
            return tj_type_error(file, tj_join(q, sizeof q, p, "content"), "a string", content);
        const size_t n = strlen(content->valuestring);
        if (n == 0 || utf8_check((const uint8_t *)content->valuestring, n) != n)
            return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' is %s", file,
                           tj_join(q, sizeof q, p, "content"), n ? "not valid UTF-8" : "empty");
        WR_TRY(tj_bool_is(file, e, p, "single_word", false, true,
                          "wanrun implements only added tokens that match anywhere"));
        WR_TRY(tj_bool_is(file, e, p, "lstrip", false, true,
                          "wanrun does not strip whitespace around added tokens"));
        WR_TRY(tj_bool_is(file, e, p, "rstrip", false, true,
                          "wanrun does not strip whitespace around added tokens"));
        WR_TRY(tj_bool_is(file, e, p, "normalized", false, true,
                          "wanrun matches added tokens on the raw text only"));
        const cJSON *sp;
        WR_TRY(tj_need(file, e, p, "special", &sp));
        if (!cJSON_IsBool(sp))
            return tj_type_error(file, tj_join(q, sizeof q, p, "special"), "a boolean", sp);
        /* special or not, an added token is cut out of the text the same way when encoding */
        const int32_t vid = vocab_find(t, content->valuestring, n);
        if (vid < 0)
            return WR_FAIL(WR_ERR_UNSUPPORTED,
                           "%s: field '%s' (\"%s\") is not a piece of model.vocab: wanrun "
                           "implements only added tokens of the model's vocabulary",
                           file, tj_join(q, sizeof q, p, "content"),
                           tj_show(content->valuestring, show));
        if (vid != id)
            return WR_FAIL(WR_ERR_FORMAT,
                           "%s: field '%s' is %lld, but its content \"%s\" is model.vocab id %d",
                           file, tj_join(q, sizeof q, p, "id"), (long long)id,
                           tj_show(content->valuestring, show), (int)vid);
        t->added[id] = 1;
    }
    return WR_OK;
}

static wr_status open_json(wr_tokenizer *t, const char *text, size_t len) {
    static const char *const keys[] = {"version",        "truncation", "padding",
                                       "added_tokens",   "normalizer", "pre_tokenizer",
                                       "post_processor", "decoder",    "model"};
    const char *file = t->path;
    /* cJSON ends strings at U+0000: a piece holding one would be read cut short */
    for (size_t i = 0; i + 1 < len; i++) {
        if (text[i] != '\\') continue;
        if (i + 5 < len && text[i + 1] == 'u' && memcmp(text + i + 2, "0000", 4) == 0)
            return WR_FAIL(WR_ERR_UNSUPPORTED,
                           "%s: a string holds U+0000 (\\u0000 at byte %zu); wanrun does not "
                           "support NUL characters in tokens",
                           file, i);
        i++; /* the escaped character (an escaped backslash is not an escape start) */
    }
    wr_json_doc doc;
    WR_TRY(wr_json_parse(&doc, text, len, file));
    const cJSON *r = doc.root;
    wr_status st = tj_object(file, r, "", keys, NELEM(keys));
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "version");
    if (st == WR_OK && v && (!cJSON_IsString(v) || strcmp(v->valuestring, "1.0") != 0))
        st = cJSON_IsString(v) ? WR_FAIL(WR_ERR_FORMAT,
                                         "%s: field 'version' is \"%s\": tokenizers knows only "
                                         "\"1.0\"",
                                         file, tj_show(v->valuestring, (char[80]){0}))
                               : tj_type_error(file, "version", "a string", v);
    /* truncation and padding: replaced by WanPipeline's call arguments; decoder: unused */
    static const char *const opt_objects[] = {"truncation", "padding", "decoder"};
    for (size_t k = 0; st == WR_OK && k < NELEM(opt_objects); k++) {
        v = cJSON_GetObjectItemCaseSensitive(r, opt_objects[k]);
        if (v && !cJSON_IsNull(v) && !cJSON_IsObject(v))
            st = tj_type_error(file, opt_objects[k], "an object or null", v);
    }
    if (st == WR_OK) st = tj_model(t, cJSON_GetObjectItemCaseSensitive(r, "model"));
    if (st == WR_OK) st = tj_normalizer(t, cJSON_GetObjectItemCaseSensitive(r, "normalizer"));
    if (st == WR_OK)
        st = tj_pre_tokenizer(file, cJSON_GetObjectItemCaseSensitive(r, "pre_tokenizer"));
    if (st == WR_OK)
        st = tj_post_processor(file, cJSON_GetObjectItemCaseSensitive(r, "post_processor"));
    if (st == WR_OK) st = tj_added_tokens(t, cJSON_GetObjectItemCaseSensitive(r, "added_tokens"));
    if (st == WR_OK) st = added_index(t);
    wr_json_free(&doc);
    return st;
}

/* ---- opening ---- */

static bool ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static wr_status tokenizer_new(wr_tokenizer **out, const char *name) {
    *out = calloc(1, sizeof(**out));
    if (!*out) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    (*out)->path = strdup(name);
    if (!(*out)->path) {
        free(*out);
        *out = NULL;
        return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    }
    return WR_OK;
}

wr_status wr_tokenizer_open(wr_tokenizer **out, const char *path) {
    WR_ASSERT(out && path);
    *out = NULL;
    wr_tokenizer *t = NULL;
    char *buf = NULL;
    size_t nbuf = 0;
    WR_TRY(tokenizer_new(&t, path));
    /* a regular file only, of at most MAX_MODEL_FILE bytes (core/fileio.h) */
    wr_status st = wr_read_small_file(&buf, &nbuf, t->path, MAX_MODEL_FILE, "a tokenizer model");
    if (st == WR_OK)
        st = ends_with(path, ".json") ? open_json(t, buf, nbuf)
                                      : open_spiece(t, (const uint8_t *)buf, nbuf);
    free(buf);
    if (st != WR_OK) {
        wr_tokenizer_free(t);
        return st;
    }
    *out = t;
    return WR_OK;
}

wr_status wr_tokenizer_from_json(wr_tokenizer **out, const char *text, size_t len,
                                 const char *name) {
    WR_ASSERT(out && (text || len == 0) && name);
    *out = NULL;
    wr_tokenizer *t = NULL;
    WR_TRY(tokenizer_new(&t, name));
    const wr_status st = open_json(t, text ? text : "", len);
    if (st != WR_OK) {
        wr_tokenizer_free(t);
        return st;
    }
    *out = t;
    return WR_OK;
}

wr_status wr_tokenizer_locate(const char *dir, char *path, size_t cap) {
    WR_ASSERT(dir && path && cap > 0);
    static const char *const names[2] = {"spiece.model", "tokenizer.json"};
    for (int i = 0; i < 2; i++) {
        const int n = snprintf(path, cap, "%s/%s", dir, names[i]);
        if (n < 0 || (size_t)n >= cap)
            return WR_FAIL(WR_ERR_INVALID_ARG, "%s/%s: path too long (%zu bytes at most)", dir,
                           names[i], cap - 1);
        struct stat sb;
        if (stat(path, &sb) == 0) return WR_OK;
        if (errno != ENOENT && errno != ENOTDIR)
            return WR_FAIL(WR_ERR_IO, "%s: %s", path, strerror(errno));
    }
    snprintf(path, cap, "%s/%s", dir, names[0]);
    return WR_FAIL(WR_ERR_NOT_FOUND,
                   "%s/spiece.model: tokenizer model not found, nor %s/tokenizer.json: the "
                   "tokenizer folder needs one of them (SentencePiece's spiece.model, or the "
                   "tokenizer.json transformers writes)",
                   dir, dir);
}

wr_status wr_tokenizer_open_dir(wr_tokenizer **out, const char *dir) {
    WR_ASSERT(out && dir);
    *out = NULL;
    char path[4096 + 32];
    WR_TRY(wr_tokenizer_locate(dir, path, sizeof path));
    return wr_tokenizer_open(out, path);
}

void wr_tokenizer_free(wr_tokenizer *t) {
    if (!t) return;
    wr_spm_free(t->spm);
    free(t->path);
    free(t->arena);
    free(t->off);
    free(t->len);
    free(t->score);
    free(t->added);
    free(t->slots);
    free(t->added_lens);
    free(t->units);
    free(t->norm);
    free(t);
}

int64_t wr_tokenizer_vocab_size(const wr_tokenizer *t) {
    return t->n_vocab;
}

const char *wr_tokenizer_piece(const wr_tokenizer *t, int64_t id) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    return t->arena + t->off[id];
}

/* ---- Precompiled normalizer (tokenizers normalizers/precompiled.rs, spm_precompiled 0.1) ---- */

/* spm_precompiled::DoubleArray::common_prefix_search(key)[0] — the SHORTEST key prefix in the
 * map — and the replacement it points at. Returns 1 (found), 0 (none), -1 (corrupt map: the
 * Rust code would panic on an out-of-range index). */
static int charsmap_first(const wr_tokenizer *t, const uint8_t *key, size_t n, const char **rep,
                          size_t *rep_len) {
    const uint32_t *a = t->units;
#define UNIT_OFFSET(u)   (((u) >> 10) << (((u) & (1u << 9)) >> 6))
#define UNIT_LABEL(u)    ((u) & ((1u << 31) | 0xFFu))
#define UNIT_HAS_LEAF(u) (((u) >> 8) & 1u)
#define UNIT_VALUE(u)    ((u) & ((1u << 31) - 1))
    size_t pos = UNIT_OFFSET(a[0]);
    for (size_t i = 0; i < n; i++) {
        const uint8_t c = key[i];
        if (c == 0) break;
        pos ^= c;
        if (pos >= t->n_units) return -1;
        const uint32_t u = a[pos];
        if (UNIT_LABEL(u) != c) return 0;
        pos ^= UNIT_OFFSET(u);
        if (UNIT_HAS_LEAF(u)) {
            if (pos >= t->n_units) return -1;
            const size_t idx = UNIT_VALUE(a[pos]);
            if (idx > t->norm_len) return -1;
            if (idx < t->norm_len && ((uint8_t)t->norm[idx] & 0xC0) == 0x80) return -1;
            size_t e = idx;
            while (e < t->norm_len && t->norm[e] != '\0') e++;
            *rep = t->norm + idx;
            *rep_len = e - idx;
            return 1;
        }
    }
    return 0;
#undef UNIT_OFFSET
#undef UNIT_LABEL
#undef UNIT_HAS_LEAF
#undef UNIT_VALUE
}

/* Grapheme cluster category of cp as the unicode-segmentation crate looks it up. */
static uint8_t gc_of(uint32_t cp) {
    if (cp <= 0x7E) {
        if (cp >= 0x20) return WR_GC_Any;
        return cp == '\n' ? WR_GC_LF : cp == '\r' ? WR_GC_CR : WR_GC_Control;
    }
    size_t lo = 0, hi = NELEM(wr_gc_table);
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (cp < wr_gc_table[mid].lo)
            hi = mid;
        else if (cp > wr_gc_table[mid].hi)
            lo = mid + 1;
        else
            return wr_gc_table[mid].cat;
    }
    return WR_GC_Any;
}

static bool gc_is_control(uint8_t c) {
    return c == WR_GC_Control || c == WR_GC_CR || c == WR_GC_LF;
}

/* What the backward-looking grapheme rules (GB9c, GB11, GB12/13) need to know about the code
 * points before the current one, kept as the segment is walked forward, so that each boundary
 * costs O(1) (scanning back instead is quadratic: a run of n regional indicators is n^2 / 2
 * steps). */
typedef struct gb_state {
    size_t ri_run;      /* regional indicators ending at the last code point pushed */
    uint8_t lne1, lne2; /* the last category other than Extend up to the last code point pushed
                         * and up to the one before it (GC_NONE: none) */
    bool incb_cons;     /* GB9c: the last code point that is neither an InCB Linker nor InCB
                         * Extend is an InCB Consonant ... */
    bool incb_linker;   /* ... and an InCB Linker came after it */
} gb_state;

#define GC_NONE 0xFF

static void gb_init(gb_state *g) {
    memset(g, 0, sizeof *g);
    g->lne1 = g->lne2 = GC_NONE;
}

/* Appends code point cp of category cat. */
static void gb_push(gb_state *g, uint32_t cp, uint8_t cat) {
    g->ri_run = cat == WR_GC_Regional_Indicator ? g->ri_run + 1 : 0;
    g->lne2 = g->lne1;
    if (cat != WR_GC_Extend) g->lne1 = cat;
    if (in_ranges(wr_incb_linker, NELEM(wr_incb_linker), cp)) {
        g->incb_linker = true;
    } else if (!in_ranges(wr_incb_extend, NELEM(wr_incb_extend), cp)) {
        g->incb_cons = cat == WR_GC_InCB_Consonant;
        g->incb_linker = false;
    }
}

/* Is there an extended grapheme cluster boundary between the last code point pushed (category
 * b) and the next one (a)? unicode-segmentation 1.13 GraphemeCursor::is_boundary /
 * check_pair, rule by rule; g holds what the rules that look further back need. */
static bool grapheme_break(const gb_state *g, uint8_t b, uint8_t a) {
    if (b == WR_GC_CR && a == WR_GC_LF) return false;      /* GB3 */
    if (gc_is_control(b) || gc_is_control(a)) return true; /* GB4, GB5 */
    if (b == WR_GC_L && (a == WR_GC_L || a == WR_GC_V || a == WR_GC_LV || a == WR_GC_LVT))
        return false;                                                                    /* GB6 */
    if ((b == WR_GC_LV || b == WR_GC_V) && (a == WR_GC_V || a == WR_GC_T)) return false; /* GB7 */
    if ((b == WR_GC_LVT || b == WR_GC_T) && a == WR_GC_T) return false;                  /* GB8 */
    if (a == WR_GC_Extend || a == WR_GC_ZWJ) return false;                               /* GB9 */
    if (a == WR_GC_SpacingMark) return false;                                            /* GB9a */
    if (b == WR_GC_Prepend) return false;                                                /* GB9b */
    /* GB9c: Consonant [Extend Linker]* Linker [Extend Linker]* x Consonant */
    if (a == WR_GC_InCB_Consonant) return !(g->incb_cons && g->incb_linker);
    /* GB11: ExtPict Extend* ZWJ x ExtPict (b is the ZWJ; lne2 what precedes it) */
    if (b == WR_GC_ZWJ && a == WR_GC_Extended_Pictographic)
        return g->lne2 != WR_GC_Extended_Pictographic;
    /* GB12, GB13: regional indicators pair up */
    if (b == WR_GC_Regional_Indicator && a == WR_GC_Regional_Indicator) return g->ri_run % 2 == 0;
    return true; /* GB999 */
}

/* Per-encode scratch space. */
typedef struct enc {
    const wr_tokenizer *t;
    int32_t *toks; /* [limit] */
    size_t ntok, limit;
    sbuf norm, word;
    uint32_t *cp;  /* code points of the segment being normalized */
    uint8_t *cat;  /* their grapheme categories */
    size_t *cpoff; /* their byte offsets (+ 1 sentinel) */
    size_t cp_cap;
    double *vscore;  /* Viterbi: best score of a path ending at each byte */
    int64_t *vstart; /* ... where its last piece starts (-1: no path yet) */
    int32_t *vid;    /* ... that piece's id */
    int32_t *vtmp;   /* backtracking stack */
    size_t v_cap;
} enc;

static bool enc_grow(enc *e, size_t ncp, size_t nbytes) {
    if (ncp + 1 > e->cp_cap) {
        size_t cap = e->cp_cap ? e->cp_cap : 64;
        while (cap < ncp + 1) cap *= 2;
        uint32_t *cp = realloc(e->cp, cap * sizeof(*cp));
        if (cp) e->cp = cp;
        uint8_t *cat = realloc(e->cat, cap);
        if (cat) e->cat = cat;
        size_t *off = realloc(e->cpoff, cap * sizeof(*off));
        if (off) e->cpoff = off;
        if (!cp || !cat || !off) return false;
        e->cp_cap = cap;
    }
    if (nbytes + 1 > e->v_cap) {
        size_t cap = e->v_cap ? e->v_cap : 64;
        while (cap < nbytes + 1) cap *= 2;
        double *s = realloc(e->vscore, cap * sizeof(*s));
        if (s) e->vscore = s;
        int64_t *st = realloc(e->vstart, cap * sizeof(*st));
        if (st) e->vstart = st;
        int32_t *id = realloc(e->vid, cap * sizeof(*id));
        if (id) e->vid = id;
        int32_t *tmp = realloc(e->vtmp, cap * sizeof(*tmp));
        if (tmp) e->vtmp = tmp;
        if (!s || !st || !id || !tmp) return false;
        e->v_cap = cap;
    }
    return true;
}

/* normalizers::Precompiled::normalize on seg[0..n) into e->norm (reset first):
 *   for each extended grapheme g: if len(g) < 6 bytes and the map has a prefix of g, g is
 *   replaced WHOLE by the shortest prefix's replacement (the rest of g is dropped); otherwise
 *   each char of g is replaced by its own entry or kept. */
static wr_status normalize_segment(enc *e, const uint8_t *seg, size_t n) {
    const wr_tokenizer *t = e->t;
    e->norm.len = 0;
    if (t->n_units == 0) {
        sb_put(&e->norm, seg, n);
        return WR_OK;
    }
    size_t m = 0;
    if (!enc_grow(e, n, n)) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory (tokenizer)");
    for (size_t i = 0; i < n;) {
        uint32_t c;
        const int l = utf8_next(seg + i, n - i, &c);
        WR_ASSERT(l > 0);
        e->cp[m] = c;
        e->cat[m] = gc_of(c);
        e->cpoff[m++] = i;
        i += (size_t)l;
    }
    e->cpoff[m] = n;
    gb_state gs;
    gb_init(&gs);
    if (m > 0) gb_push(&gs, e->cp[0], e->cat[0]);
    size_t g0 = 0;
    while (g0 < m) {
        size_t g1 = g0 + 1;
        for (; g1 < m; g1++) { /* each code point is pushed once, in order */
            const bool brk = grapheme_break(&gs, e->cat[g1 - 1], e->cat[g1]);
            gb_push(&gs, e->cp[g1], e->cat[g1]);
            if (brk) break;
        }
        const size_t b0 = e->cpoff[g0], b1 = e->cpoff[g1];
        const char *rep;
        size_t rep_len;
        int r = 0;
        if (b1 - b0 < 6) r = charsmap_first(t, seg + b0, b1 - b0, &rep, &rep_len);
        if (r == 1) {
            sb_put(&e->norm, rep, rep_len);
        } else {
            for (size_t k = g0; k < g1 && r >= 0; k++) {
                const size_t c0 = e->cpoff[k], c1 = e->cpoff[k + 1];
                r = charsmap_first(t, seg + c0, c1 - c0, &rep, &rep_len);
                if (r == 1)
                    sb_put(&e->norm, rep, rep_len);
                else
                    sb_put(&e->norm, seg + c0, c1 - c0);
            }
        }
        if (r < 0)
            return WR_FAIL(WR_ERR_FORMAT,
                           "%s: the normalizer's precompiled_charsmap has an entry pointing "
                           "outside the map; the file is corrupt: take it from the checkpoint "
                           "again",
                           t->path);
        g0 = g1;
    }
    if (e->norm.oom) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory (tokenizer)");
    return WR_OK;
}

static void emit(enc *e, int32_t id) {
    if (e->ntok < e->limit) e->toks[e->ntok++] = id;
}

/* ---- Unigram (tokenizers models/unigram/model.rs encode_optimized + tokenize) ----
 *
 * Viterbi over the bytes of one pre-token: from each char start (left to right), every vocab
 * piece that is a prefix there (shortest first) offers score + best-so-far to the position it
 * ends at, replacing the incumbent only when strictly better (or when none); when no piece is
 * exactly that one char, an <unk> of score min_score - 10 is offered for it. Backtracking
 * fuses consecutive <unk> nodes into one string, which is then looked up again (it becomes
 * that piece's id if it happens to be one, else <unk>). */
static void unigram(enc *e, const char *w, size_t size) {
    const wr_tokenizer *t = e->t;
    const double unk_score = t->min_score - 10.0;
    const int32_t unk = 2;
    for (size_t i = 0; i <= size; i++) {
        e->vscore[i] = 0.0;
        e->vstart[i] = -1;
        e->vid[i] = 0;
    }
    for (size_t s = 0; s < size;) {
        const double here = e->vscore[s];
        uint32_t c;
        const int mb = utf8_next((const uint8_t *)w + s, size - s, &c);
        WR_ASSERT(mb > 0);
        bool single = false;
        const size_t maxl = size - s < t->max_piece ? size - s : t->max_piece;
        uint64_t h = FNV_BASIS; /* of w[s .. s + l), grown byte by byte */
        for (size_t l = 1; l <= maxl; l++) {
            h = FNV_STEP(h, w[s + l - 1]);
            const int32_t id = vocab_find_h(t, w + s, l, h);
            if (id < 0) continue;
            const double cand = t->score[id] + here;
            if (e->vstart[s + l] < 0 || cand > e->vscore[s + l]) {
                e->vscore[s + l] = cand;
                e->vstart[s + l] = (int64_t)s;
                e->vid[s + l] = id;
            }
            if (l == (size_t)mb) single = true;
        }
        if (!single) {
            const double cand = unk_score + here;
            if (e->vstart[s + mb] < 0 || cand > e->vscore[s + mb]) {
                e->vscore[s + mb] = cand;
                e->vstart[s + mb] = (int64_t)s;
                e->vid[s + mb] = unk;
            }
        }
        s += (size_t)mb;
    }
    /* backtrack into vtmp (reversed), fusing runs of <unk> */
    size_t nt = 0, end = size;
    while (end > 0) {
        const size_t start = (size_t)e->vstart[end];
        if (e->vid[end] == unk) {
            size_t run_start = start;
            while (run_start > 0 && e->vid[run_start] == unk)
                run_start = (size_t)e->vstart[run_start];
            const int32_t id = vocab_find(t, w + run_start, end - run_start);
            e->vtmp[nt++] = id >= 0 ? id : unk;
            end = run_start;
        } else {
            e->vtmp[nt++] = e->vid[end];
            end = start;
        }
    }
    while (nt > 0) emit(e, e->vtmp[--nt]);
}

/* Rust char::is_whitespace (Unicode White_Space): what pre_tokenizers::WhitespaceSplit cuts. */
static bool rust_whitespace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static const char META[] = "\xE2\x96\x81"; /* U+2581 '▁' */

/* One text segment (between added tokens): Precompiled, then pre_tokenizers Sequence[
 * WhitespaceSplit, Metaspace(replacement '▁', prepend_scheme always, split true)], then the
 * unigram model on every piece. */
static wr_status encode_segment(enc *e, const uint8_t *seg, size_t n) {
    WR_TRY(normalize_segment(e, seg, n));
    const char *s = e->norm.p ? e->norm.p : "";
    const size_t ns = e->norm.len;
    size_t i = 0;
    while (i < ns && e->ntok < e->limit) {
        /* WhitespaceSplit: skip whitespace, take the next run of non-whitespace */
        uint32_t c;
        int l = utf8_next((const uint8_t *)s + i, ns - i, &c);
        WR_ASSERT(l > 0);
        if (rust_whitespace(c)) {
            i += (size_t)l;
            continue;
        }
        size_t j = i;
        while (j < ns) {
            l = utf8_next((const uint8_t *)s + j, ns - j, &c);
            WR_ASSERT(l > 0);
            if (rust_whitespace(c)) break;
            j += (size_t)l;
        }
        /* Metaspace: ' ' -> '▁' (none left here), prepend '▁' unless the word starts with
         * one, then split before every '▁' (MergedWithNext). */
        e->word.len = 0;
        if (j - i < 3 || memcmp(s + i, META, 3) != 0) sb_put(&e->word, META, 3);
        sb_put(&e->word, s + i, j - i);
        if (e->word.oom) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory (tokenizer)");
        if (!enc_grow(e, 0, e->word.len))
            return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory (tokenizer)");
        const char *w = e->word.p;
        const size_t wn = e->word.len;
        size_t p0 = 0;
        while (p0 < wn && e->ntok < e->limit) {
            size_t p1 = p0 + 3;
            while (p1 < wn && !(wn - p1 >= 3 && memcmp(w + p1, META, 3) == 0)) p1++;
            unigram(e, w + p0, p1 - p0);
            p0 = p1;
        }
        i = j;
    }
    return WR_OK;
}

wr_status wr_tokenizer_encode(const wr_tokenizer *t, const char *prompt, int max_len, int32_t *ids,
                              uint8_t *mask, int *n_real) {
    WR_ASSERT(t && prompt && ids && mask && n_real);
    if (max_len < 1)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "max_len %d: the token budget must be at least 1 (room for </s>); the "
                       "pipeline uses %d",
                       max_len, WR_TOKENIZER_MAX_LEN);
    wr_status st = WR_OK;
    enc e = {0};
    e.t = t;
    e.limit = (size_t)max_len - 1;
    sbuf clean = {0};
    WR_TRY_GOTO(st, prompt_clean_n(prompt, strlen(prompt), &clean), done);
    if (e.limit > 0) {
        e.toks = malloc(e.limit * sizeof(*e.toks));
        if (!e.toks) {
            st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory (%d tokens)", max_len);
            goto done;
        }
    }
    /* AddedVocabulary::extract_and_normalize: added tokens are cut out of the raw (cleaned)
     * text, leftmost-longest, with no lstrip/rstrip; the text between goes on. */
    const uint8_t *s = (const uint8_t *)(clean.p ? clean.p : "");
    const size_t n = clean.len;
    size_t seg = 0, p = 0;
    while (p < n && e.ntok < e.limit) {
        int32_t hit = -1;
        size_t hit_len = 0;
        if (t->added_first[s[p]]) {
            for (size_t k = 0; k < t->n_added_lens && hit < 0; k++) {
                const size_t L = t->added_lens[k];
                if (L > n - p) continue;
                const int32_t id = vocab_find(t, (const char *)s + p, L);
                if (id >= 0 && t->added[id]) hit = id, hit_len = L;
            }
        }
        if (hit < 0) {
            p++;
            continue;
        }
        WR_TRY_GOTO(st, encode_segment(&e, s + seg, p - seg), done);
        emit(&e, hit);
        p += hit_len;
        seg = p;
    }
    if (e.ntok < e.limit) WR_TRY_GOTO(st, encode_segment(&e, s + seg, n - seg), done);

    /* TemplateProcessing "$A </s>" after truncation to max_len - 1, then pad to max_len */
    const int32_t eos = 1, pad = 0;
    for (size_t i = 0; i < e.ntok; i++) ids[i] = e.toks[i];
    ids[e.ntok] = eos;
    for (int i = 0; i < max_len; i++) {
        if ((size_t)i > e.ntok) ids[i] = pad;
        mask[i] = (size_t)i <= e.ntok;
    }
    *n_real = (int)e.ntok + 1;
done:
    free(clean.p);
    free(e.toks);
    free(e.norm.p);
    free(e.word.p);
    free(e.cp);
    free(e.cat);
    free(e.cpoff);
    free(e.vscore);
    free(e.vstart);
    free(e.vid);
    free(e.vtmp);
    return st;
}

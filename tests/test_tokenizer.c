/*
 * test_tokenizer.c — the UMT5 prompt tokenizer (src/models/tokenizer.h) against transformers'
 * T5TokenizerFast as diffusers' WanPipeline calls it, on the golden data of
 * `tests/golden/golden_tokenizer.py tests/data/tokenizer` (a 1,500-piece unigram spiece.model
 * with nmt_nfkc normalization + 300 sentinels; 305 prompts; prompts.json holds each prompt and
 * its diffusers prompt_clean, tokenizer_ids.safetensors the real ids per prompt). Every
 * comparison is exact: the cleaned string byte for byte, all 512 ids and all 512 mask bytes.
 *
 * The same comparison from tests/data/tokenizer_json (the same tokenizer as transformers 5.x's
 * save_pretrained writes it: tokenizer.json + tokenizer_config.json, no spiece.model; the
 * generator checked that transformers loading it gives the same golden ids), and the
 * tokenizer.json reader's refusals: each malformed or unsupported field (a mutation of the
 * golden file) with its status and a detail naming the file, the JSON path and the value.
 *
 * Also: the libsentencepiece shim on the prompts where the library's own pipeline agrees with
 * transformers (and a count of those where it does not, which is why tokenizer.c does not use
 * it to encode), truncation, the empty prompt, the tokenizer folder lookup (spiece.model, else
 * tokenizer.json), the prompt length cap, and every error path of the API.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/json.h"
#include "core/safetensors.h"
#include "harness.h"
#include "models/spm_shim.h"
#include "models/tokenizer.h"

#define ML WR_TOKENIZER_MAX_LEN

/* ---- the golden data ---- */

typedef struct golden {
    wr_json_doc doc;
    const cJSON *cases;
    int n;
    int32_t *ids;   /* concatenated real ids */
    int64_t *start; /* [n] offset of case i in ids */
    int32_t *lens;  /* [n] */
    int64_t nids;
} golden;

/* The ids are stored as I16 (the 1,800-id vocabulary fits): widen them. */
static void read_i16(const wr_st_tensor *t, int32_t *dst) {
    ck_assert_int_eq(t->dtype, WR_DTYPE_I16);
    int16_t *tmp = malloc((size_t)t->nelem * sizeof(int16_t) + 1);
    ck_assert(tmp);
    ck_assert_msg(wr_st_read(t, tmp, (size_t)t->nelem * sizeof(int16_t)) == WR_OK, "%s",
                  wr_error_detail());
    for (int64_t i = 0; i < t->nelem; i++) dst[i] = tmp[i];
    free(tmp);
}

static void golden_load(golden *g) {
    memset(g, 0, sizeof(*g));
    ck_assert_msg(wr_json_load(&g->doc, wr_test_data("tokenizer/prompts.json")) == WR_OK, "%s",
                  wr_error_detail());
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(g->doc.root, "max_length");
    ck_assert(cJSON_IsNumber(ml) && ml->valueint == ML);
    g->cases = cJSON_GetObjectItemCaseSensitive(g->doc.root, "cases");
    ck_assert(cJSON_IsArray(g->cases));
    g->n = cJSON_GetArraySize(g->cases);
    ck_assert_int_ge(g->n, 300);

    wr_st_file *f;
    ck_assert_msg(wr_st_open(&f, wr_test_data("tokenizer/tokenizer_ids.safetensors")) == WR_OK,
                  "%s", wr_error_detail());
    const wr_st_tensor *ti = wr_st_find(f, "ids"), *tl = wr_st_find(f, "lens");
    ck_assert(ti && tl);
    g->nids = ti->nelem;
    ck_assert_int_eq(tl->nelem, g->n);
    g->ids = malloc((size_t)g->nids * sizeof(int32_t));
    g->lens = malloc((size_t)g->n * sizeof(int32_t));
    g->start = malloc((size_t)g->n * sizeof(int64_t));
    ck_assert(g->ids && g->lens && g->start);
    read_i16(ti, g->ids);
    read_i16(tl, g->lens);
    wr_st_close(f);
    int64_t off = 0;
    for (int i = 0; i < g->n; i++) {
        ck_assert(g->lens[i] >= 1 && g->lens[i] <= ML);
        g->start[i] = off;
        off += g->lens[i];
    }
    ck_assert_int_eq(off, g->nids);
}

static void golden_free(golden *g) {
    wr_json_free(&g->doc);
    free(g->ids);
    free(g->lens);
    free(g->start);
}

static const char *case_str(const golden *g, int i, const char *key) {
    const cJSON *c = cJSON_GetArrayItem(g->cases, i);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(c, key);
    if (!s && strcmp(key, "clean") == 0) s = cJSON_GetObjectItemCaseSensitive(c, "prompt");
    ck_assert_msg(cJSON_IsString(s), "case %d: no string '%s'", i, key);
    return s->valuestring;
}

static int case_spm_same(const golden *g, int i) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(g->cases, i), "spm_same");
    return cJSON_IsTrue(s);
}

static wr_tokenizer *open_golden(void) {
    wr_tokenizer *t = NULL;
    ck_assert_msg(wr_tokenizer_open(&t, wr_test_data("tokenizer/spiece.model")) == WR_OK, "%s",
                  wr_error_detail());
    return t;
}

/* Prints a prompt with non-printable bytes escaped (for failure messages). */
static void print_escaped(const char *label, const char *s) {
    fprintf(stderr, "  %s: \"", label);
    for (const unsigned char *p = (const unsigned char *)s;
         *p && p - (const unsigned char *)s < 300; p++) {
        if (*p < 0x20 || *p == 0x7F || *p == '"' || *p == '\\')
            fprintf(stderr, "\\x%02X", *p);
        else
            fputc(*p, stderr);
    }
    fprintf(stderr, "\"\n");
}

/* ---- golden comparisons ---- */

START_TEST(test_vocabulary) {
    wr_tokenizer *t = open_golden();
    ck_assert_int_eq(wr_tokenizer_vocab_size(t), 1500 + WR_TOKENIZER_EXTRA_IDS);
    ck_assert_str_eq(wr_tokenizer_piece(t, 0), "<pad>");
    ck_assert_str_eq(wr_tokenizer_piece(t, 1), "</s>");
    ck_assert_str_eq(wr_tokenizer_piece(t, 2), "<unk>");
    /* sentinels in reverse order after the model's pieces (spec §3.5) */
    ck_assert_str_eq(wr_tokenizer_piece(t, 1500), "<extra_id_299>");
    ck_assert_str_eq(wr_tokenizer_piece(t, 1500 + 294), "<extra_id_5>");
    ck_assert_str_eq(wr_tokenizer_piece(t, 1799), "<extra_id_0>");
    ck_assert_ptr_null(wr_tokenizer_piece(t, 1800));
    ck_assert_ptr_null(wr_tokenizer_piece(t, -1));
    wr_tokenizer_free(t);
    wr_tokenizer_free(NULL);
}
END_TEST

START_TEST(test_golden_clean) {
    golden g;
    golden_load(&g);
    int bad = 0;
    for (int i = 0; i < g.n; i++) {
        const char *prompt = case_str(&g, i, "prompt"), *want = case_str(&g, i, "clean");
        char *got = NULL;
        ck_assert_msg(wr_prompt_clean(prompt, &got) == WR_OK, "case %d: %s", i, wr_error_detail());
        if (strcmp(got, want) != 0) {
            if (bad < 5) {
                fprintf(stderr, "clean mismatch, case %d\n", i);
                print_escaped("prompt", prompt);
                print_escaped("python", want);
                print_escaped("wanrun", got);
            }
            bad++;
        }
        free(got);
    }
    ck_assert_msg(bad == 0, "%d of %d cleaned prompts differ from diffusers' prompt_clean", bad,
                  g.n);
    golden_free(&g);
}
END_TEST

/* Every golden prompt through t: all 512 ids and mask bytes equal transformers'. */
static void check_golden_ids(const wr_tokenizer *t, const char *source) {
    golden g;
    golden_load(&g);
    int32_t ids[ML], want_ids[ML];
    uint8_t mask[ML], want_mask[ML];
    int bad = 0, truncated = 0, empty = 0;
    for (int i = 0; i < g.n; i++) {
        const char *prompt = case_str(&g, i, "prompt");
        const int n = g.lens[i];
        /* the full pipeline output: the real ids, then <pad> (0); mask n ones then zeros */
        for (int k = 0; k < ML; k++) {
            want_ids[k] = k < n ? g.ids[g.start[i] + k] : 0;
            want_mask[k] = k < n;
        }
        int n_real = -1;
        ck_assert_msg(wr_tokenizer_encode(t, prompt, ML, ids, mask, &n_real) == WR_OK,
                      "case %d: %s", i, wr_error_detail());
        int first = -1;
        for (int k = 0; k < ML && first < 0; k++)
            if (ids[k] != want_ids[k] || mask[k] != want_mask[k]) first = k;
        if (first >= 0 || n_real != n) {
            if (bad < 5) {
                fprintf(stderr, "ids mismatch, case %d (n_real %d, want %d), first at %d\n", i,
                        n_real, n, first);
                print_escaped("prompt", prompt);
                for (int k = first < 0 ? 0 : first; k < ML && k < (first < 0 ? 0 : first) + 6; k++)
                    fprintf(stderr, "    [%d] want %d '%s' mask %d, got %d '%s' mask %d\n", k,
                            want_ids[k], wr_tokenizer_piece(t, want_ids[k]), want_mask[k], ids[k],
                            wr_tokenizer_piece(t, ids[k]) ? wr_tokenizer_piece(t, ids[k]) : "?",
                            mask[k]);
            }
            bad++;
        }
        truncated += n == ML;
        empty += n == 1;
    }
    ck_assert_msg(bad == 0, "%d of %d prompts tokenize differently from T5TokenizerFast (%s)", bad,
                  g.n, source);
    ck_assert_msg(truncated >= 1 && empty >= 1, "the golden set lost its long or empty prompt");
    golden_free(&g);
}

START_TEST(test_golden_ids) {
    wr_tokenizer *t = open_golden();
    check_golden_ids(t, "spiece.model");
    wr_tokenizer_free(t);
}
END_TEST

/* ---- tokenizer.json (tests/data/tokenizer_json: the same tokenizer as transformers 5.x's
 * save_pretrained writes it, tokenizer.json + tokenizer_config.json only) ---- */

static wr_tokenizer *open_golden_json(void) {
    wr_tokenizer *t = NULL;
    ck_assert_msg(wr_tokenizer_open(&t, wr_test_data("tokenizer_json/tokenizer.json")) == WR_OK,
                  "%s", wr_error_detail());
    return t;
}

/* The same 305 prompts, the same exactness, from the tokenizer.json folder (the generator
 * checked that transformers loading that folder gives these ids too). */
START_TEST(test_golden_ids_json) {
    wr_tokenizer *t = open_golden_json();
    check_golden_ids(t, "tokenizer.json");
    wr_tokenizer_free(t);
}
END_TEST

/* Both sources fill the same tables: the same pieces at the same ids. */
START_TEST(test_json_same_vocab) {
    wr_tokenizer *a = open_golden(), *b = open_golden_json();
    ck_assert_int_eq(wr_tokenizer_vocab_size(a), wr_tokenizer_vocab_size(b));
    for (int64_t id = 0; id < wr_tokenizer_vocab_size(a); id++)
        ck_assert_str_eq(wr_tokenizer_piece(a, id), wr_tokenizer_piece(b, id));
    wr_tokenizer_free(a);
    wr_tokenizer_free(b);
}
END_TEST

/* The shim's own encode (libsentencepiece's pipeline) on the cases where the generator found
 * Python's sentencepiece to agree with transformers; the other cases are where the fast
 * tokenizer is not SentencePiece (added tokens, grapheme-wise normalization, sentinels as
 * vocabulary): they must exist, or the golden set no longer covers them. */
START_TEST(test_spm_shim) {
    golden g;
    golden_load(&g);
    uint8_t *bytes = NULL;
    size_t nbytes = 0;
    {
        FILE *f = fopen(wr_test_data("tokenizer/spiece.model"), "rb");
        ck_assert(f);
        fseek(f, 0, SEEK_END);
        nbytes = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        bytes = malloc(nbytes);
        ck_assert(bytes && fread(bytes, 1, nbytes, f) == nbytes);
        fclose(f);
    }
    wr_spm *m = NULL;
    ck_assert_msg(wr_spm_load(&m, bytes, nbytes, "spiece.model") == WR_OK, "%s", wr_error_detail());
    free(bytes);
    ck_assert_int_eq(wr_spm_piece_count(m), 1500);
    ck_assert_int_eq(wr_spm_unk_id(m), 2);
    size_t len = 0;
    ck_assert_str_eq(wr_spm_id_to_piece(m, 1, &len), "</s>");
    ck_assert_int_eq(len, 4);
    ck_assert_ptr_null(wr_spm_id_to_piece(m, 1500, &len));
    ck_assert_int_eq(wr_spm_piece_to_id(m, "</s>", 4), 1);
    ck_assert_int_eq(wr_spm_piece_to_id(m, "no such piece", 13), -1);
    ck_assert_int_eq(wr_spm_piece_kind(m, 1), WR_SPM_KIND_CONTROL);
    ck_assert_int_eq(wr_spm_piece_kind(m, 2), WR_SPM_KIND_UNKNOWN);
    ck_assert_int_eq(wr_spm_piece_kind(m, 10), WR_SPM_KIND_NORMAL);
    ck_assert(wr_spm_score(m, 10) < 0.0f);

    int same = 0, differ = 0, bad = 0, ties = 0;
    for (int i = 0; i < g.n; i++) {
        if (!case_spm_same(&g, i)) {
            differ++;
            continue;
        }
        const char *clean = case_str(&g, i, "clean");
        int32_t *ids = NULL;
        size_t n = 0;
        ck_assert_msg(wr_spm_encode(m, clean, strlen(clean), &ids, &n) == WR_OK, "%s",
                      wr_error_detail());
        if (n > ML - 1) n = ML - 1;
        const int32_t *want = g.ids + g.start[i];
        const size_t nw = (size_t)g.lens[i] - 1;
        int ok = n == nw;
        for (size_t k = 0; ok && k < n; k++) ok = ids[k] == want[k];
        if (ok) {
            same++;
        } else {
            /* The one way libsentencepiece 0.1.97 may differ here: an exact Viterbi tie
             * (e.g. "555" as "5" "55" or "55" "5", same pieces, same score) broken the other
             * way; transformers, Python sentencepiece 0.2 and tokenizer.c keep the first
             * segmentation found. Same text, same total score. */
            double s_lib = 0.0, s_want = 0.0;
            char a[2048] = "", b[2048] = "";
            for (size_t k = 0; k < n; k++) {
                s_lib += wr_spm_score(m, ids[k]);
                strncat(a, wr_spm_id_to_piece(m, ids[k], &len), sizeof(a) - strlen(a) - 1);
            }
            for (size_t k = 0; k < nw; k++) {
                s_want += wr_spm_score(m, want[k]);
                strncat(b, wr_spm_id_to_piece(m, want[k], &len), sizeof(b) - strlen(b) - 1);
            }
            /* equal up to the summation order of the float scores */
            if (strcmp(a, b) == 0 && fabs(s_lib - s_want) <= 1e-9 * fabs(s_want)) {
                ties++;
            } else if (bad++ < 5) {
                print_escaped("libsentencepiece differs", clean);
            }
        }
        free(ids);
    }
    fprintf(stderr,
            "libsentencepiece: %d agree, %d exact ties broken the other way; %d cases "
            "where the fast tokenizer is not SentencePiece\n",
            same, ties, differ);
    ck_assert_msg(bad == 0, "libsentencepiece 0.1.97 differs from Python sentencepiece on %d", bad);
    ck_assert_int_ge(same, 200);
    ck_assert_int_ge(differ, 20);
    wr_spm_free(m);
    wr_spm_free(NULL);
    golden_free(&g);
}
END_TEST

/* ---- behaviours ---- */

static void encode_ok(const wr_tokenizer *t, const char *prompt, int max_len, int32_t *ids,
                      uint8_t *mask, int *n) {
    ck_assert_msg(wr_tokenizer_encode(t, prompt, max_len, ids, mask, n) == WR_OK, "%s",
                  wr_error_detail());
}

START_TEST(test_truncation) {
    golden g;
    golden_load(&g);
    wr_tokenizer *t = open_golden();
    int last = g.n - 1; /* the long prompt is the last case */
    ck_assert_int_eq(g.lens[last], ML);
    const char *prompt = case_str(&g, last, "prompt");
    const int32_t *want = g.ids + g.start[last];
    int32_t ids[ML];
    uint8_t mask[ML];
    int n = 0;
    encode_ok(t, prompt, ML, ids, mask, &n);
    ck_assert_int_eq(n, ML);
    ck_assert_int_eq(ids[ML - 1], 1); /* 511 tokens + </s> */
    for (int k = 0; k < ML; k++) ck_assert_int_eq(mask[k], 1);
    /* shorter budgets cut the same token stream: max_len - 1 tokens, then </s> */
    for (int ml = 1; ml <= 24; ml++) {
        encode_ok(t, prompt, ml, ids, mask, &n);
        ck_assert_int_eq(n, ml);
        for (int k = 0; k < ml - 1; k++) ck_assert_int_eq(ids[k], want[k]);
        ck_assert_int_eq(ids[ml - 1], 1);
        for (int k = 0; k < ml; k++) ck_assert_int_eq(mask[k], 1);
    }
    /* a short prompt with a long budget pads */
    int32_t big[2000];
    uint8_t bigm[2000];
    encode_ok(t, "a cat", 2000, big, bigm, &n);
    ck_assert(n > 1 && n < 10);
    for (int k = n; k < 2000; k++) ck_assert(big[k] == 0 && bigm[k] == 0);
    wr_tokenizer_free(t);
    golden_free(&g);
}
END_TEST

START_TEST(test_empty) {
    wr_tokenizer *t = open_golden();
    /* all of these clean to "": diffusers' default negative prompt is "" */
    const char *empties[] = {"",         " ",    "\t\n\r ", "\u3000\u00a0",
                             "\x1c\x1f", "&#1;", "&#x20;",  "&nbsp; &NewLine;"};
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        char *c = NULL;
        ck_assert(wr_prompt_clean(empties[i], &c) == WR_OK);
        ck_assert_str_eq(c, "");
        free(c);
        int32_t ids[ML];
        uint8_t mask[ML];
        int n = 0;
        encode_ok(t, empties[i], ML, ids, mask, &n);
        ck_assert_int_eq(n, 1);
        ck_assert_int_eq(ids[0], 1);
        ck_assert_int_eq(mask[0], 1);
        for (int k = 1; k < ML; k++) ck_assert(ids[k] == 0 && mask[k] == 0);
    }
    wr_tokenizer_free(t);
}
END_TEST

START_TEST(test_clean_cases) {
    /* A few of the golden cases spelled out (Python's results, from prompts.json). */
    static const char *const cases[][2] = {
        {"  a   cat\t\twalks\n\non   the\r\ngrass  ", "a cat walks on the grass"},
        {"Tom &amp; Jerry", "Tom & Jerry"},
        {"double escaped &amp;lt;tag&amp;gt;", "double escaped <tag>"},
        {"triple &amp;amp;lt;", "triple &lt;"},
        {"&copy 2024 &notit; &ampx", "\u00a9 2024 \u00acit; &x"},
        {"[&#0;] [&#128;] [&#x9F;] [&#xD800;] [&#1114112;] [&#1;]",
         "[\ufffd] [\u20ac] [\u0178] [\ufffd] [\ufffd] []"},
        {"inside\x1cthe \x1c text \x1f", "inside\x1cthe \x1c text"},
        {"a&nbsp;&nbsp;b\u3000\u2028c", "a b c"},
        {"&#x1F431; &#128512", "\U0001F431 \U0001F600"},
        {"&foo; &; &#; &#x; a&b", "&foo; &; &#; &#x; a&b"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *c = NULL;
        ck_assert_msg(wr_prompt_clean(cases[i][0], &c) == WR_OK, "%s", wr_error_detail());
        ck_assert_str_eq(c, cases[i][1]);
        free(c);
    }
    /* 4,300 decimal digits are fine for Python's int(); 4,301 raise (golden_tokenizer.py
     * checks both against diffusers) */
    char ref[4400];
    strcpy(ref, "&#");
    memset(ref + 2, '0', 4299);
    strcpy(ref + 2 + 4299, "9;");
    char *c = NULL;
    ck_assert_msg(wr_prompt_clean(ref, &c) == WR_OK, "%s", wr_error_detail());
    ck_assert_str_eq(c, ""); /* U+0009, then stripped */
    free(c);
    memset(ref + 2, '1', 4301);
    strcpy(ref + 2 + 4301, ";");
    c = (char *)1;
    ck_assert_int_eq(wr_prompt_clean(ref, &c), WR_ERR_INVALID_ARG);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(wr_error_detail(), "4301 digits") && strstr(wr_error_detail(), "byte 0"),
                  "%s", wr_error_detail());
}
END_TEST

/* ---- errors ---- */

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert(f);
    ck_assert(fwrite(data, 1, n, f) == n);
    fclose(f);
}

static void expect_open_error(const char *path, wr_status want, const char *keyword) {
    wr_tokenizer *t = (wr_tokenizer *)1;
    const wr_status st = wr_tokenizer_open(&t, path);
    ck_assert_msg(st == want, "%s: got %s (%s), want %s", path, wr_status_name(st),
                  wr_error_detail(), wr_status_name(want));
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(wr_error_detail(), path), "detail does not name the file: %s",
                  wr_error_detail());
    ck_assert_msg(strstr(wr_error_detail(), keyword), "detail lacks '%s': %s", keyword,
                  wr_error_detail());
}

START_TEST(test_open_errors) {
    char p[1024];
    snprintf(p, sizeof p, "%s/no_such_spiece.model", wr_test_tmpdir());
    expect_open_error(p, WR_ERR_NOT_FOUND, "cannot open");
    expect_open_error(wr_test_tmpdir(), WR_ERR_IO, "not a regular file");

    snprintf(p, sizeof p, "%s/garbage.model", wr_test_tmpdir());
    write_file(p, "this is not a protobuf \xff\xff\xff\xff", 27);
    expect_open_error(p, WR_ERR_FORMAT, "SentencePiece");
    unlink(p);

    snprintf(p, sizeof p, "%s/empty.model", wr_test_tmpdir());
    write_file(p, "", 0);
    expect_open_error(p, WR_ERR_FORMAT, "SentencePiece");
    unlink(p);

    /* the real model cut in half */
    FILE *f = fopen(wr_test_data("tokenizer/spiece.model"), "rb");
    ck_assert(f);
    static uint8_t buf[1 << 20];
    const size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    ck_assert(n > 1000 && n < sizeof buf);
    snprintf(p, sizeof p, "%s/half.model", wr_test_tmpdir());
    write_file(p, buf, n / 2);
    wr_tokenizer *t = NULL;
    const wr_status st = wr_tokenizer_open(&t, p);
    ck_assert_msg(st == WR_ERR_FORMAT, "half a model: %s (%s)", wr_status_name(st),
                  wr_error_detail());
    ck_assert_ptr_null(t);
    unlink(p);
}
END_TEST

/* Damaged copies of the model: whatever libsentencepiece accepts must not crash or read out
 * of bounds here (run under ASan), and encoding reports WR_ERR_FORMAT or succeeds. */
START_TEST(test_damaged_models) {
    FILE *f = fopen(wr_test_data("tokenizer/spiece.model"), "rb");
    ck_assert(f);
    static uint8_t orig[1 << 20], buf[1 << 20];
    const size_t n = fread(orig, 1, sizeof orig, f);
    fclose(f);
    char p[1024];
    snprintf(p, sizeof p, "%s/damaged.model", wr_test_tmpdir());
    uint64_t rng = 12345;
    int opened = 0;
    for (int trial = 0; trial < 60; trial++) {
        memcpy(buf, orig, n);
        for (int k = 0; k < 8; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            /* most trials hit the char map (the file's tail), which the library barely checks */
            const size_t at =
                trial % 4 == 0 ? (size_t)(rng >> 33) % n : n - 1 - (size_t)(rng >> 33) % (n / 2);
            buf[at] ^= (uint8_t)(1u << ((rng >> 20) & 7));
        }
        write_file(p, buf, n);
        wr_tokenizer *t = NULL;
        const wr_status st = wr_tokenizer_open(&t, p);
        if (st != WR_OK) {
            ck_assert_msg(st == WR_ERR_FORMAT, "%s: %s", wr_status_name(st), wr_error_detail());
            continue;
        }
        opened++;
        int32_t ids[64];
        uint8_t mask[64];
        int nr;
        const char *prompts[] = {"A cat walks on the grass, realistic", "ＡＢＣ ｶﾞ ﬁ\u0301 ①",
                                 "一只猫 Кошка café 🐱 e\u0301\u0302"};
        for (int i = 0; i < 3; i++) {
            const wr_status s2 = wr_tokenizer_encode(t, prompts[i], 64, ids, mask, &nr);
            ck_assert_msg(s2 == WR_OK || s2 == WR_ERR_FORMAT, "%s", wr_error_detail());
        }
        wr_tokenizer_free(t);
    }
    unlink(p);
    fprintf(stderr, "damaged models: %d of 60 opened\n", opened);
}
END_TEST

/* ---- tokenizer.json: malformed and unsupported inputs ---- */

static char *read_text(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f, "%s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(*n + 1);
    ck_assert(b && fread(b, 1, *n, f) == *n);
    b[*n] = '\0';
    fclose(f);
    return b;
}

/* The node at a dotted path ("model.vocab.5.1": keys of objects, indices of arrays); with
 * parent_out, the parent and the last component instead. */
static cJSON *jpath(cJSON *root, const char *path, cJSON **parent_out, char *last, size_t cap) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    cJSON *cur = root, *parent = NULL;
    char *save = NULL;
    const char *comp = NULL;
    for (char *c = strtok_r(buf, ".", &save); c; c = strtok_r(NULL, ".", &save)) {
        parent = cur;
        comp = c;
        cur = cJSON_IsArray(cur) ? cJSON_GetArrayItem(cur, atoi(c))
                                 : cJSON_GetObjectItemCaseSensitive(cur, c);
        if (!cur && parent_out) break;
        ck_assert_msg(cur || parent_out, "no %s in the golden tokenizer.json", path);
    }
    if (parent_out) {
        *parent_out = parent;
        snprintf(last, cap, "%s", comp);
    }
    return cur;
}

/* Sets (value: JSON text) or deletes (value NULL) the node at path. */
static void jset(cJSON *root, const char *path, const char *value) {
    cJSON *parent;
    char last[64];
    jpath(root, path, &parent, last, sizeof last);
    ck_assert(parent);
    if (value == NULL) {
        if (cJSON_IsArray(parent))
            cJSON_DeleteItemFromArray(parent, atoi(last));
        else
            cJSON_DeleteItemFromObjectCaseSensitive(parent, last);
        return;
    }
    cJSON *v = cJSON_Parse(value);
    ck_assert_msg(v, "bad test value %s", value);
    if (cJSON_IsArray(parent)) {
        ck_assert(cJSON_ReplaceItemInArray(parent, atoi(last), v));
    } else if (cJSON_GetObjectItemCaseSensitive(parent, last)) {
        ck_assert(cJSON_ReplaceItemInObjectCaseSensitive(parent, last, v));
    } else {
        cJSON_AddItemToObject(parent, last, v);
    }
}

/* `text` with the first `from` replaced by `to` (malloc'd). */
static char *replace_first(const char *text, const char *from, const char *to) {
    const char *at = strstr(text, from);
    ck_assert_msg(at, "'%s' not in the golden tokenizer.json", from);
    const size_t n = strlen(text), nf = strlen(from), nt = strlen(to);
    char *out = malloc(n - nf + nt + 1);
    ck_assert(out);
    memcpy(out, text, (size_t)(at - text));
    memcpy(out + (at - text), to, nt);
    strcpy(out + (at - text) + nt, at + nf);
    return out;
}

static void expect_json(const char *text, size_t len, wr_status want, const char *k1,
                        const char *k2, const char *what) {
    wr_tokenizer *t = (wr_tokenizer *)1;
    const wr_status st = wr_tokenizer_from_json(&t, text, len, "mut/tokenizer.json");
    ck_assert_msg(st == want, "%s: got %s (%s), want %s", what, wr_status_name(st),
                  st ? wr_error_detail() : "", wr_status_name(want));
    ck_assert_ptr_null(t);
    const char *d = wr_error_detail();
    ck_assert_msg(strstr(d, "mut/tokenizer.json"), "%s: detail does not name the file: %s", what,
                  d);
    ck_assert_msg(!k1 || strstr(d, k1), "%s: detail lacks '%s': %s", what, k1, d);
    ck_assert_msg(!k2 || strstr(d, k2), "%s: detail lacks '%s': %s", what, k2, d);
}

/* tokenizer.json mutations that must be refused: the status, the field's JSON path and the
 * value in the detail. */
START_TEST(test_json_errors) {
    size_t n;
    char *gold = read_text(wr_test_data("tokenizer_json/tokenizer.json"), &n);
    cJSON *root = cJSON_ParseWithLength(gold, n);
    ck_assert(root);
    static const struct {
        const char *path, *value; /* value: JSON text; NULL deletes the field */
        wr_status want;
        const char *k1, *k2;
    } cases[] = {
        /* the model */
        {"model.type", "\"BPE\"", WR_ERR_UNSUPPORTED, "'model.type'", "\"BPE\""},
        {"model.type", "7", WR_ERR_FORMAT, "'model.type'", "a string"},
        {"model.type", NULL, WR_ERR_FORMAT, "'model.type'", "missing"},
        {"model", NULL, WR_ERR_FORMAT, "'model'", "missing"},
        {"model", "[]", WR_ERR_FORMAT, "'model'", "an object"},
        {"model.vocab", NULL, WR_ERR_FORMAT, "'model.vocab'", "missing"},
        {"model.vocab", "{}", WR_ERR_FORMAT, "'model.vocab'", "an array"},
        {"model.vocab", "[[\"<pad>\", 0], [\"</s>\", 0]]", WR_ERR_FORMAT, "'model.vocab'",
         "2 pieces"},
        {"model.vocab.5", "[\"a\"]", WR_ERR_FORMAT, "'model.vocab[5]'", "1 entries"},
        {"model.vocab.5", "\"a\"", WR_ERR_FORMAT, "'model.vocab[5]'", "got a string"},
        {"model.vocab.5.0", "7", WR_ERR_FORMAT, "'model.vocab[5][0]'", "a string"},
        {"model.vocab.5.1", "\"high\"", WR_ERR_FORMAT, "'model.vocab[5][1]'", "a finite number"},
        {"model.vocab.0.0", "\"<s>\"", WR_ERR_UNSUPPORTED, "'model.vocab[0][0]'", "<pad>=0"},
        {"model.vocab.1.0", "\"<eos>\"", WR_ERR_UNSUPPORTED, "'model.vocab[1][0]'", "\"<eos>\""},
        {"model.unk_id", "99999", WR_ERR_FORMAT, "'model.unk_id'", "99999, outside"},
        {"model.unk_id", "-1", WR_ERR_FORMAT, "'model.unk_id'", "outside"},
        {"model.unk_id", "2.5", WR_ERR_FORMAT, "'model.unk_id'", "an integer, got 2.5"},
        {"model.unk_id", "\"2\"", WR_ERR_FORMAT, "'model.unk_id'", "an integer"},
        {"model.unk_id", "3", WR_ERR_UNSUPPORTED, "'model.unk_id'", "is 3"},
        {"model.unk_id", "null", WR_ERR_UNSUPPORTED, "'model.unk_id'", "null"},
        {"model.unk_id", NULL, WR_ERR_FORMAT, "'model.unk_id'", "missing"},
        {"model.byte_fallback", "true", WR_ERR_UNSUPPORTED, "'model.byte_fallback'", "true"},
        {"model.byte_fallback", "0", WR_ERR_FORMAT, "'model.byte_fallback'", "a boolean"},
        {"model.dropout", "0.1", WR_ERR_UNSUPPORTED, "'model.dropout'", "refusing"},
        /* the normalizer */
        {"normalizer.precompiled_charsmap", "\"!!!!\"", WR_ERR_FORMAT,
         "'normalizer.precompiled_charsmap'", "base64"},
        {"normalizer.precompiled_charsmap", "\"QUJD\"", WR_ERR_FORMAT,
         "char map (normalizer.precompiled_charsmap, 3 bytes)", "malformed"},
        {"normalizer.precompiled_charsmap", "\"QQ=\"", WR_ERR_FORMAT,
         "'normalizer.precompiled_charsmap'", "base64"},
        {"normalizer.precompiled_charsmap", "\"QR==\"", WR_ERR_FORMAT,
         "'normalizer.precompiled_charsmap'", "base64"},
        {"normalizer.precompiled_charsmap", "\"\"", WR_ERR_FORMAT,
         "'normalizer.precompiled_charsmap'", "empty"},
        {"normalizer.precompiled_charsmap", "[1, 2]", WR_ERR_FORMAT,
         "'normalizer.precompiled_charsmap'", "a base64 string"},
        {"normalizer.precompiled_charsmap", NULL, WR_ERR_FORMAT,
         "'normalizer.precompiled_charsmap'", "missing"},
        {"normalizer.type", "\"NFKC\"", WR_ERR_UNSUPPORTED, "'normalizer.type'", "\"NFKC\""},
        {"normalizer",
         "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Precompiled\", "
         "\"precompiled_charsmap\": \"\"}, {\"type\": \"Replace\"}]}",
         WR_ERR_FORMAT, "'normalizer.normalizers[0].precompiled_charsmap'", "empty"},
        {"normalizer",
         "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Strip\", \"strip_left\": "
         "false, \"strip_right\": true}]}",
         WR_ERR_UNSUPPORTED, "'normalizer.normalizers[0].type'", "\"Strip\""},
        {"normalizer", "{\"type\": \"Sequence\", \"normalizers\": 3}", WR_ERR_FORMAT,
         "'normalizer.normalizers'", "an array"},
        {"normalizer", "\"Precompiled\"", WR_ERR_FORMAT, "'normalizer'", "an object or null"},
        {"normalizer.extra", "1", WR_ERR_UNSUPPORTED, "'normalizer.extra'", "refusing"},
        /* the pre-tokenizer */
        {"pre_tokenizer.pretokenizers.1.prepend_scheme", "\"first\"", WR_ERR_UNSUPPORTED,
         "'pre_tokenizer.pretokenizers[1].prepend_scheme'", "\"first\""},
        {"pre_tokenizer.pretokenizers.1.prepend_scheme", "\"never\"", WR_ERR_UNSUPPORTED,
         "prepend_scheme", "\"never\""},
        {"pre_tokenizer.pretokenizers.1.split", "false", WR_ERR_UNSUPPORTED,
         "'pre_tokenizer.pretokenizers[1].split'", "false"},
        {"pre_tokenizer.pretokenizers.1.split", "\"yes\"", WR_ERR_FORMAT,
         "'pre_tokenizer.pretokenizers[1].split'", "a boolean"},
        {"pre_tokenizer.pretokenizers.1.replacement", "\"_\"", WR_ERR_UNSUPPORTED,
         "'pre_tokenizer.pretokenizers[1].replacement'", "\"_\""},
        {"pre_tokenizer.pretokenizers.1.replacement", NULL, WR_ERR_FORMAT,
         "'pre_tokenizer.pretokenizers[1].replacement'", "missing"},
        {"pre_tokenizer.pretokenizers.1.add_prefix_space", "false", WR_ERR_UNSUPPORTED,
         "add_prefix_space", "never"},
        {"pre_tokenizer.pretokenizers.0.type", "\"Whitespace\"", WR_ERR_UNSUPPORTED,
         "'pre_tokenizer.pretokenizers[0].type'", "\"Whitespace\""},
        {"pre_tokenizer.pretokenizers.0", NULL, WR_ERR_UNSUPPORTED, "'pre_tokenizer.pretokenizers'",
         "1 entries"},
        {"pre_tokenizer",
         "{\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"prepend_scheme\": "
         "\"always\", \"split\": true}",
         WR_ERR_UNSUPPORTED, "'pre_tokenizer.type'", "\"Metaspace\""},
        {"pre_tokenizer", "null", WR_ERR_UNSUPPORTED, "'pre_tokenizer'", "null"},
        {"pre_tokenizer", NULL, WR_ERR_UNSUPPORTED, "'pre_tokenizer'", "missing"},
        /* the post-processor */
        {"post_processor", "null", WR_ERR_UNSUPPORTED, "'post_processor'", "</s>"},
        {"post_processor.type", "\"BertProcessing\"", WR_ERR_UNSUPPORTED, "'post_processor.type'",
         "\"BertProcessing\""},
        {"post_processor.single.1", NULL, WR_ERR_UNSUPPORTED, "'post_processor.single'",
         "[$A, </s>]"},
        {"post_processor.single.0.Sequence.id", "\"C\"", WR_ERR_FORMAT,
         "'post_processor.single[0].Sequence.id'", "\"A\" or \"B\""},
        {"post_processor.single.1.SpecialToken.type_id", "-1", WR_ERR_FORMAT,
         "'post_processor.single[1].SpecialToken.type_id'", "an integer >= 0"},
        {"post_processor.special_tokens.</s>.ids", "[2]", WR_ERR_UNSUPPORTED,
         "'post_processor.special_tokens.</s>'", "id 1"},
        {"post_processor.special_tokens.</s>.ids", "[1, 1]", WR_ERR_FORMAT,
         "'post_processor.special_tokens.</s>'", "2 ids but 1 tokens"},
        {"post_processor.special_tokens.</s>", NULL, WR_ERR_FORMAT,
         "'post_processor.special_tokens'", "no \"</s>\""},
        {"post_processor.pair", "7", WR_ERR_FORMAT, "'post_processor.pair'", "an array"},
        {"post_processor.single", NULL, WR_ERR_FORMAT, "'post_processor.single'", "missing"},
        /* added tokens */
        {"added_tokens.3.id", "1800", WR_ERR_FORMAT, "'added_tokens[3].id'", "1800, outside"},
        {"added_tokens.3.id", "-5", WR_ERR_FORMAT, "'added_tokens[3].id'", "outside"},
        {"added_tokens.3.id", "7", WR_ERR_FORMAT, "'added_tokens[3].id'", "model.vocab id 1500"},
        {"added_tokens.3.id", "true", WR_ERR_FORMAT, "'added_tokens[3].id'", "an integer"},
        {"added_tokens.3.content", "\"<new_token>\"", WR_ERR_UNSUPPORTED,
         "'added_tokens[3].content'", "<new_token>"},
        {"added_tokens.3.content", "\"\"", WR_ERR_FORMAT, "'added_tokens[3].content'", "empty"},
        {"added_tokens.3.lstrip", "true", WR_ERR_UNSUPPORTED, "'added_tokens[3].lstrip'", "true"},
        {"added_tokens.3.rstrip", "true", WR_ERR_UNSUPPORTED, "'added_tokens[3].rstrip'", "true"},
        {"added_tokens.3.single_word", "true", WR_ERR_UNSUPPORTED, "'added_tokens[3].single_word'",
         "true"},
        {"added_tokens.3.normalized", "true", WR_ERR_UNSUPPORTED, "'added_tokens[3].normalized'",
         "raw text"},
        {"added_tokens.3.special", NULL, WR_ERR_FORMAT, "'added_tokens[3].special'", "missing"},
        {"added_tokens.3.special", "1", WR_ERR_FORMAT, "'added_tokens[3].special'", "a boolean"},
        {"added_tokens.0.foo", "1", WR_ERR_UNSUPPORTED, "'added_tokens[0].foo'", "refusing"},
        {"added_tokens", "{}", WR_ERR_FORMAT, "'added_tokens'", "an array"},
        /* the top level */
        {"extra", "1", WR_ERR_UNSUPPORTED, "'extra'", "refusing"},
        {"version", "\"2.0\"", WR_ERR_FORMAT, "'version'", "\"2.0\""},
        {"version", "1", WR_ERR_FORMAT, "'version'", "a string"},
        {"truncation", "5", WR_ERR_FORMAT, "'truncation'", "an object or null"},
        {"decoder", "\"Metaspace\"", WR_ERR_FORMAT, "'decoder'", "an object or null"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *m = cJSON_Duplicate(root, 1);
        ck_assert(m);
        jset(m, cases[i].path, cases[i].value);
        char *text = cJSON_PrintUnformatted(m);
        ck_assert(text);
        char what[300];
        snprintf(what, sizeof what, "%s = %s", cases[i].path,
                 cases[i].value ? cases[i].value : "(deleted)");
        expect_json(text, strlen(text), cases[i].want, cases[i].k1, cases[i].k2, what);
        free(text);
        cJSON_Delete(m);
    }

    /* mutations of the text itself */
    char *flat = cJSON_PrintUnformatted(root);
    ck_assert(flat);
    static const struct {
        const char *from, *to;
        wr_status want;
        const char *k1, *k2;
    } raw[] = {
        {"{\"version\":\"1.0\"", "{\"version\":\"1.0\",\"version\":\"1.0\"", WR_ERR_FORMAT,
         "'version'", "twice"},
        {"\"byte_fallback\":false", "\"byte_fallback\":false,\"byte_fallback\":true", WR_ERR_FORMAT,
         "'model.byte_fallback'", "twice"},
        {"\"<extra_id_299>\"", "\"<extra\\u0000_299>\"", WR_ERR_UNSUPPORTED, "U+0000", NULL},
        {"\"<extra_id_299>\"", "\"<extra_id_\xff>\"", WR_ERR_FORMAT, "'added_tokens[3].content'",
         "UTF-8"},
        {"[\",\",", "[\"\xc0\xaf\",", WR_ERR_FORMAT, "'model.vocab[3][0]'", "UTF-8"},
        {"[\",\",-2.5806877613067627]", "[\",\",-1e999]", WR_ERR_FORMAT, "'model.vocab[3][1]'",
         "a finite number, got -inf"},
        {"{\"version\"", "[{\"version\"", WR_ERR_FORMAT, "invalid JSON", NULL},
    };
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        char *text = replace_first(flat, raw[i].from, raw[i].to);
        expect_json(text, strlen(text), raw[i].want, raw[i].k1, raw[i].k2, raw[i].to);
        free(text);
    }
    /* a pair template of 300 entries: over the bound */
    {
        cJSON *m = cJSON_Duplicate(root, 1);
        cJSON *pair = jpath(m, "post_processor.pair", NULL, NULL, 0);
        const cJSON *first = cJSON_GetArrayItem(pair, 0);
        for (int k = 0; k < 300; k++) cJSON_AddItemToArray(pair, cJSON_Duplicate(first, 1));
        char *text = cJSON_PrintUnformatted(m);
        expect_json(text, strlen(text), WR_ERR_UNSUPPORTED, "'post_processor.pair'",
                    "304 entries; wanrun takes at most 256", "long pair");
        free(text);
        cJSON_Delete(m);
    }
    /* a top-level array, nothing, a piece longer than any */
    expect_json("[]", 2, WR_ERR_FORMAT, "not a JSON object", NULL, "[]");
    expect_json("", 0, WR_ERR_FORMAT, "invalid JSON", NULL, "empty");
    {
        cJSON *m = cJSON_Duplicate(root, 1);
        char big[1100];
        memset(big, 'a', sizeof big);
        big[0] = '"';
        big[sizeof big - 2] = '"';
        big[sizeof big - 1] = '\0';
        jset(m, "model.vocab.5.0", big);
        char *text = cJSON_PrintUnformatted(m);
        expect_json(text, strlen(text), WR_ERR_UNSUPPORTED, "'model.vocab[5][0]'", "1097-byte",
                    "long piece");
        free(text);
        cJSON_Delete(m);
    }
    free(flat);
    cJSON_Delete(root);
    free(gold);
}
END_TEST

/* Encodes each prompt with a and b: identical ids and masks. */
static void expect_same_ids(const wr_tokenizer *a, const wr_tokenizer *b, const char *what) {
    static const char *const prompts[] = {
        "A cat walks on the grass, realistic",
        "full-width \xef\xbc\x9c\xef\xbc\x8f\xef\xbd\x93"
        "\xef\xbc\x9e and <extra_id_5>",
        "\xef\xbd\xb6\xef\xbe\x9e \xef\xac\x81\xcc\x81 \xe2\x91\xa0 \xe4\xb8\x80\xe5\x8f\xaa",
        "</s><pad><unk> \xe2\x98\x83\xe2\x98\x83 caf\xc3\xa9", ""};
    for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++) {
        int32_t ia[64], ib[64];
        uint8_t ma[64], mb[64];
        int na = 0, nb = 0;
        encode_ok(a, prompts[i], 64, ia, ma, &na);
        encode_ok(b, prompts[i], 64, ib, mb, &nb);
        ck_assert_msg(na == nb && !memcmp(ia, ib, sizeof ia) && !memcmp(ma, mb, sizeof ma),
                      "%s: prompt %zu tokenizes differently", what, i);
    }
}

/* Variants tokenizers reads as the same tokenizer: accepted, and the same ids. */
START_TEST(test_json_equivalent_forms) {
    size_t n;
    char *gold = read_text(wr_test_data("tokenizer_json/tokenizer.json"), &n);
    cJSON *root = cJSON_ParseWithLength(gold, n);
    ck_assert(root);
    wr_tokenizer *ref = open_golden();
    const cJSON *cmap = jpath(root, "normalizer.precompiled_charsmap", NULL, NULL, 0);
    char seq[400000];
    ck_assert(strlen(cmap->valuestring) + 100 < sizeof seq);
    snprintf(seq, sizeof seq,
             "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Precompiled\", "
             "\"precompiled_charsmap\": \"%s\"}]}",
             cmap->valuestring);
    const struct {
        const char *path, *value;
    } ok[] = {
        {"normalizer", seq}, /* a Sequence of the one Precompiled */
        {"pre_tokenizer.pretokenizers.1.prepend_scheme", NULL},     /* serde default: always */
        {"pre_tokenizer.pretokenizers.1.split", NULL},              /* serde default: true */
        {"pre_tokenizer.pretokenizers.1.add_prefix_space", "true"}, /* the legacy field */
        {"pre_tokenizer.pretokenizers.1.str_rep", "\"\\u2581\""},   /* older tokenizers */
        {"truncation", "{\"max_length\": 8, \"strategy\": \"LongestFirst\"}"}, /* replaced */
        {"padding", "{\"strategy\": \"BatchLongest\"}"},                       /* by the call */
        {"decoder", "null"},
        {"version", NULL},
        {"added_tokens.3.special", "false"},
        {"post_processor.single.1.SpecialToken.type_id", "1"}, /* token_type_ids only */
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cJSON *m = cJSON_Duplicate(root, 1);
        jset(m, ok[i].path, ok[i].value);
        char *text = cJSON_PrintUnformatted(m);
        wr_tokenizer *t = NULL;
        ck_assert_msg(wr_tokenizer_from_json(&t, text, strlen(text), "ok.json") == WR_OK, "%s: %s",
                      ok[i].path, wr_error_detail());
        expect_same_ids(ref, t, ok[i].path);
        wr_tokenizer_free(t);
        free(text);
        cJSON_Delete(m);
    }
    /* no normalizer at all: accepted (T5Tokenizer without a char map); full-width text then
     * stays full-width, so the ids differ: only check that it encodes */
    cJSON *m = cJSON_Duplicate(root, 1);
    jset(m, "normalizer", "null");
    char *text = cJSON_PrintUnformatted(m);
    wr_tokenizer *t = NULL;
    ck_assert_msg(wr_tokenizer_from_json(&t, text, strlen(text), "nonorm.json") == WR_OK, "%s",
                  wr_error_detail());
    int32_t ids[8];
    uint8_t mask[8];
    int nr = 0;
    encode_ok(t, "\xef\xbc\xa1 cat", 8, ids, mask, &nr);
    ck_assert_int_ge(nr, 2);
    wr_tokenizer_free(t);
    free(text);
    cJSON_Delete(m);
    wr_tokenizer_free(ref);
    cJSON_Delete(root);
    free(gold);
}
END_TEST

/* A tokenizer folder: spiece.model first, else tokenizer.json, else an error naming both. */
START_TEST(test_locate) {
    char dir[1024], p[1200], got[1300];
    snprintf(dir, sizeof dir, "%s/tokdir", wr_test_tmpdir());
    ck_assert(mkdir(dir, 0755) == 0);
    ck_assert_int_eq(wr_tokenizer_locate(dir, got, sizeof got), WR_ERR_NOT_FOUND);
    ck_assert_msg(strstr(wr_error_detail(), "tokdir/spiece.model") &&
                      strstr(wr_error_detail(), "tokdir/tokenizer.json"),
                  "%s", wr_error_detail());
    wr_tokenizer *t = (wr_tokenizer *)1;
    ck_assert_int_eq(wr_tokenizer_open_dir(&t, dir), WR_ERR_NOT_FOUND);
    ck_assert_ptr_null(t);

    /* only tokenizer.json (a transformers 5.x save_pretrained folder) */
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    ck_assert(symlink(wr_test_data("tokenizer_json/tokenizer.json"), p) == 0);
    ck_assert_int_eq(wr_tokenizer_locate(dir, got, sizeof got), WR_OK);
    ck_assert_str_eq(got, p);
    ck_assert_msg(wr_tokenizer_open_dir(&t, dir) == WR_OK, "%s", wr_error_detail());
    wr_tokenizer *ref = open_golden();
    expect_same_ids(ref, t, "tokenizer.json folder");
    wr_tokenizer_free(t);

    /* both: spiece.model wins, even when it is bad (the error is its own) */
    char sp[1200];
    snprintf(sp, sizeof sp, "%s/spiece.model", dir);
    write_file(sp, "not a model", 11);
    ck_assert_int_eq(wr_tokenizer_locate(dir, got, sizeof got), WR_OK);
    ck_assert_str_eq(got, sp);
    ck_assert_int_eq(wr_tokenizer_open_dir(&t, dir), WR_ERR_FORMAT);
    ck_assert_msg(strstr(wr_error_detail(), sp), "%s", wr_error_detail());
    unlink(sp);
    ck_assert(symlink(wr_test_data("tokenizer/spiece.model"), sp) == 0);
    ck_assert_msg(wr_tokenizer_open_dir(&t, dir) == WR_OK, "%s", wr_error_detail());
    expect_same_ids(ref, t, "spiece.model folder");
    wr_tokenizer_free(t);
    wr_tokenizer_free(ref);

    /* too long a path */
    ck_assert_int_eq(wr_tokenizer_locate(dir, got, 10), WR_ERR_INVALID_ARG);
    unlink(sp);
    unlink(p);
    rmdir(dir);
}
END_TEST

/* tokenizer.json files: the error names the path; a FIFO is refused without blocking. */
START_TEST(test_json_files) {
    char p[1024];
    snprintf(p, sizeof p, "%s/tokenizer.json", wr_test_tmpdir());
    write_file(p, "{\"model\": {\"type\": \"WordPiece\"}}", 33);
    expect_open_error(p, WR_ERR_UNSUPPORTED, "'model.type' is \"WordPiece\"");
    unlink(p);
    snprintf(p, sizeof p, "%s/missing/tokenizer.json", wr_test_tmpdir());
    expect_open_error(p, WR_ERR_NOT_FOUND, "cannot open");
    snprintf(p, sizeof p, "%s/fifo.json", wr_test_tmpdir());
    ck_assert(mkfifo(p, 0600) == 0);
    expect_open_error(p, WR_ERR_IO, "not a regular file");
    unlink(p);
}
END_TEST

/* ---- prompt length and prompt checks ---- */

static char *repeat_text(const char *unit, size_t n) {
    const size_t u = strlen(unit);
    char *s = malloc(n + 1);
    ck_assert(s);
    size_t k = 0;
    while (k + u <= n) {
        memcpy(s + k, unit, u);
        k += u;
    }
    while (k < n) s[k++] = ' ';
    s[n] = '\0';
    return s;
}

START_TEST(test_prompt_cap) {
    wr_tokenizer *t = open_golden();
    int32_t ids[ML];
    uint8_t mask[ML];
    int n = -7;
    /* exactly the cap: accepted, 511 tokens + </s> */
    char *p = repeat_text("A cat walks on the grass, realistic. ", WR_TOKENIZER_MAX_PROMPT_BYTES);
    ck_assert_int_eq(wr_prompt_check(p, "--prompt"), WR_OK);
    encode_ok(t, p, ML, ids, mask, &n);
    ck_assert_int_eq(n, ML);
    /* one byte more: refused by every entry point, naming the limit (and the option) */
    free(p);
    p = repeat_text("A cat walks on the grass, realistic. ", WR_TOKENIZER_MAX_PROMPT_BYTES + 1);
    ck_assert_int_eq(wr_prompt_check(p, "--negative-prompt"), WR_ERR_INVALID_ARG);
    ck_assert_msg(strstr(wr_error_detail(), "--negative-prompt is 1048577 bytes") &&
                      strstr(wr_error_detail(), "1048576"),
                  "%s", wr_error_detail());
    n = -7;
    ck_assert_int_eq(wr_tokenizer_encode(t, p, ML, ids, mask, &n), WR_ERR_INVALID_ARG);
    ck_assert_msg(strstr(wr_error_detail(), "1048576"), "%s", wr_error_detail());
    ck_assert_int_eq(n, -7);
    char *c = (char *)1;
    ck_assert_int_eq(wr_prompt_clean(p, &c), WR_ERR_INVALID_ARG);
    ck_assert_ptr_null(c);
    free(p);
    /* 10 MB: refused by the cap before any cleaning or tokenization */
    p = repeat_text("&amp;lt;\xf0\x9f\x87\xaf", 10u << 20);
    ck_assert_int_eq(wr_prompt_check(p, "--prompt"), WR_ERR_INVALID_ARG);
    ck_assert_msg(strstr(wr_error_detail(), "--prompt is 10485760 bytes"), "%s", wr_error_detail());
    ck_assert_int_eq(wr_tokenizer_encode(t, p, ML, ids, mask, &n), WR_ERR_INVALID_ARG);
    free(p);
    /* the cap's worth of regional indicators (one grapheme run: the boundary rule that looked
     * back over the whole run made this quadratic, ~1e11 steps) */
    p = repeat_text("\xf0\x9f\x87\xaf", WR_TOKENIZER_MAX_PROMPT_BYTES);
    encode_ok(t, p, ML, ids, mask, &n);
    free(p);
    /* not in the vocabulary: one fused <unk> however long the run, as for a short run */
    int32_t ids2[ML];
    uint8_t mask2[ML];
    int n2 = 0;
    p = repeat_text("\xf0\x9f\x87\xaf", 4096);
    encode_ok(t, p, ML, ids2, mask2, &n2);
    free(p);
    ck_assert_int_eq(n, n2);
    ck_assert(!memcmp(ids, ids2, sizeof ids) && !memcmp(mask, mask2, sizeof mask));
    /* wr_prompt_check names which prompt is not UTF-8 */
    ck_assert_int_eq(wr_prompt_check("bad \xff", "--negative-prompt"), WR_ERR_INVALID_ARG);
    ck_assert_msg(strstr(wr_error_detail(), "--negative-prompt is not valid UTF-8 (byte 4: 0xFF)"),
                  "%s", wr_error_detail());
    ck_assert_int_eq(wr_prompt_check("ok", "--prompt"), WR_OK);
    wr_tokenizer_free(t);
}
END_TEST

START_TEST(test_input_errors) {
    wr_tokenizer *t = open_golden();
    int32_t ids[8];
    uint8_t mask[8];
    int n = -7;
    for (int i = 0; i < 8; i++) ids[i] = -5, mask[i] = 9;
    /* ill-formed UTF-8: stray continuation, overlong, surrogate, > U+10FFFF, cut sequence */
    static const struct {
        const char *s;
        const char *where;
    } bad[] = {{"abc\x80", "byte 3"},
               {"ok \xC0\xAF", "byte 3"},
               {"\xED\xA0\x80 surrogate", "byte 0"},
               {"x\xF4\x90\x80\x80", "byte 1"},
               {"cut \xE2\x82", "byte 4"},
               {"\xF5\x80\x80\x80", "byte 0"},
               {"caf\xE9", "byte 3"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(wr_tokenizer_encode(t, bad[i].s, 8, ids, mask, &n), WR_ERR_INVALID_ARG);
        ck_assert_msg(strstr(wr_error_detail(), bad[i].where) && strstr(wr_error_detail(), "UTF-8"),
                      "case %zu: %s", i, wr_error_detail());
        char *c = (char *)1;
        ck_assert_int_eq(wr_prompt_clean(bad[i].s, &c), WR_ERR_INVALID_ARG);
        ck_assert_ptr_null(c);
    }
    ck_assert_int_eq(wr_tokenizer_encode(t, "a cat", 0, ids, mask, &n), WR_ERR_INVALID_ARG);
    ck_assert_msg(strstr(wr_error_detail(), "max_len 0"), "%s", wr_error_detail());
    ck_assert_int_eq(wr_tokenizer_encode(t, "a cat", -3, ids, mask, &n), WR_ERR_INVALID_ARG);
    /* outputs untouched on failure */
    ck_assert_int_eq(n, -7);
    for (int i = 0; i < 8; i++) ck_assert(ids[i] == -5 && mask[i] == 9);
    wr_tokenizer_free(t);
}
END_TEST

Suite *wr_test_suite(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("tokenizer");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_vocabulary);
    tcase_add_test(tc, test_golden_clean);
    tcase_add_test(tc, test_golden_ids);
    tcase_add_test(tc, test_golden_ids_json);
    tcase_add_test(tc, test_json_same_vocab);
    tcase_add_test(tc, test_json_errors);
    tcase_add_test(tc, test_json_equivalent_forms);
    tcase_add_test(tc, test_locate);
    tcase_add_test(tc, test_json_files);
    tcase_add_test(tc, test_prompt_cap);
    tcase_add_test(tc, test_spm_shim);
    tcase_add_test(tc, test_truncation);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_clean_cases);
    tcase_add_test(tc, test_open_errors);
    tcase_add_test(tc, test_damaged_models);
    tcase_add_test(tc, test_input_errors);
    suite_add_tcase(s, tc);
    return s;
}

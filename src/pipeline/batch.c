/*
 * batch.c — the batch file: lines split, each line's JSON object checked and applied over the
 * batch defaults (through wr_gen_opts_from_json, the --config reader, so that a job's value
 * means what the same --config key means), then names and outputs checked unique. See batch.h.
 */
#include "pipeline/batch.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/tokenizer.h"

#define BIT(id) ((uint64_t)1 << (id))

/* The options a line may set; every other option is batch-wide. */
static const uint64_t k_job_opts =
    BIT(WR_OPT_PROMPT) | BIT(WR_OPT_NEGATIVE_PROMPT) | BIT(WR_OPT_SEED) | BIT(WR_OPT_SIZE) |
    BIT(WR_OPT_FRAMES) | BIT(WR_OPT_STEPS) | BIT(WR_OPT_GUIDANCE) | BIT(WR_OPT_SHIFT) |
    BIT(WR_OPT_SCHEDULER) | BIT(WR_OPT_FPS) | BIT(WR_OPT_INIT_NOISE) | BIT(WR_OPT_GUIDANCE_2) |
    BIT(WR_OPT_BOUNDARY_RATIO) | BIT(WR_OPT_IMAGE);

#define K_FIELDS                                                                                   \
    "name, format, prompt, negative_prompt, seed, size, frames, steps, guidance, shift, "          \
    "scheduler, fps, init_noise, guidance_2, boundary_ratio, image"

static int is_format(const char *f) {
    return !strcmp(f, "y4m") || !strcmp(f, "mp4") || !strcmp(f, "png");
}

/* JSON's whitespace (the line's '\n' is already gone). */
static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Records the line's first problem only: "LABEL line N: ...". */
static void bad(wr_batch_job *j, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bad(wr_batch_job *j, const char *label, const char *fmt, ...) {
    if (j->bad) return;
    j->bad = 1;
    const int n = snprintf(j->err, sizeof j->err, "%s line %d: ", label, j->line);
    if (n < 0 || (size_t)n >= sizeof j->err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->err + n, sizeof j->err - (size_t)n, fmt, ap);
    va_end(ap);
}

static const char *json_type(const cJSON *it) {
    if (cJSON_IsNull(it)) return "null";
    if (cJSON_IsBool(it)) return cJSON_IsTrue(it) ? "true" : "false";
    if (cJSON_IsNumber(it)) return "a number";
    if (cJSON_IsString(it)) return "a string";
    if (cJSON_IsArray(it)) return "an array";
    if (cJSON_IsObject(it)) return "an object";
    return "an invalid value";
}

/* 1..WR_BATCH_NAME_MAX bytes of [A-Za-z0-9._-], no leading '.', not the ledger's name. */
static int name_ok(const char *s) {
    const size_t n = strlen(s);
    if (n < 1 || n > WR_BATCH_NAME_MAX || s[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        const char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    /* DIR/results.jsonl is the ledger (pipeline/results.h): "results.jsonl" as a png folder
     * would be it, and "results.*" is kept free for its companions */
    return strcmp(s, "results") != 0 && strncmp(s, "results.", 8) != 0;
}

/* A copy of s owned by g (freed by wr_gen_opts_free), as wr_gen_opts_from_json keeps its. */
static wr_status own_str(wr_gen_opts *g, const char *s, const char **out) {
    if (g->nowned == g->capowned) {
        const int cap = g->capowned ? 2 * g->capowned : 4;
        char **o = realloc(g->owned, sizeof *o * (size_t)cap);
        if (o == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory reading a batch file");
        g->owned = o, g->capowned = cap;
    }
    char *c = strdup(s);
    if (c == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory reading a batch file");
    g->owned[g->nowned++] = c;
    *out = c;
    return WR_OK;
}

/* ---- one line ---- */

/* The keys of the line's object: name and format taken, the option keys checked and renamed
 * to their '-' spelling in place (same length); the first problem recorded in j. */
static void line_keys(wr_batch_job *j, cJSON *doc, const char *label, const char *dir,
                      size_t dirlen, cJSON **name_it, cJSON **format_it) {
    char q[80];
    uint64_t seen = 0;
    int have_name = 0, have_format = 0;
    for (cJSON *it = doc->child; it; it = it->next) {
        const char *key = it->string ? it->string : "";
        char norm[64];
        const size_t kl = strlen(key);
        int id = -1;
        if (kl < sizeof norm) {
            for (size_t i = 0; i <= kl; i++) norm[i] = key[i] == '_' ? '-' : key[i];
            id = wr_gen_opt_find(norm);
        }
        if (kl < sizeof norm && !strcmp(norm, "name")) {
            if (have_name++) {
                bad(j, label, "\"name\" is given twice");
            } else if (!cJSON_IsString(it) || it->valuestring == NULL) {
                bad(j, label, "\"name\" must be a string, got %s", json_type(it));
            } else if (!name_ok(it->valuestring)) {
                bad(j, label,
                    "\"name\" %s is not a safe file name: 1 to %d bytes of A-Z a-z 0-9 . _ -, "
                    "not starting with '.', not \"results\" or \"results.*\"",
                    wr_quote(q, sizeof q, it->valuestring), WR_BATCH_NAME_MAX);
            } else {
                snprintf(j->name, sizeof j->name, "%s", it->valuestring);
                *name_it = it;
            }
        } else if (kl < sizeof norm && !strcmp(norm, "format")) {
            if (have_format++) {
                bad(j, label, "\"format\" is given twice");
            } else if (!cJSON_IsString(it) || it->valuestring == NULL) {
                bad(j, label, "\"format\" must be \"y4m\", \"mp4\" or \"png\", got %s",
                    json_type(it));
                j->format[0] = '\0';
            } else if (!is_format(it->valuestring)) {
                bad(j, label, "\"format\" must be \"y4m\", \"mp4\" or \"png\", got %s",
                    wr_quote(q, sizeof q, it->valuestring));
                j->format[0] = '\0';
            } else {
                snprintf(j->format, sizeof j->format, "%s", it->valuestring);
                *format_it = it;
            }
        } else if (id < 0) {
            bad(j, label, "unknown field %s (a job's fields: " K_FIELDS ")",
                wr_quote(q, sizeof q, key));
        } else if (id == WR_OPT_OUT || id == WR_OPT_SAVE_LATENTS) {
            bad(j, label,
                "\"%s\" is batch-wide: a job's output is %.*s/<name>.<format> (png: a folder "
                "%.*s/<name>), set by \"name\" and \"format\"",
                key, (int)(dirlen > 60 ? 60 : dirlen), dir, (int)(dirlen > 60 ? 60 : dirlen), dir);
        } else if (!(k_job_opts & BIT(id))) {
            bad(j, label, "\"%s\" is batch-wide: give it on the command line", key);
        } else if (seen & BIT(id)) {
            bad(j, label, "\"%s\" is given twice", key);
        } else {
            seen |= BIT(id);
            memcpy(it->string, norm, kl + 1); /* wr_gen_opts_from_json's spelling */
        }
    }
    if (!have_name) bad(j, label, "no \"name\": every job needs a unique name (its output's name)");
}

/* Parses line [s, s + n) into j (j->line set, j->g a copy of the defaults). Only a failure to
 * allocate is returned; the line's problems are recorded in j. */
static wr_status parse_line(wr_batch_job *j, const char *s, size_t n, const char *label,
                            const wr_gen_opts *defaults, const char *dir, size_t dirlen,
                            const char *fmt) {
    char lab[600], pre[640];
    const char *end = NULL;
    wr_status st = WR_OK;
    snprintf(j->format, sizeof j->format, "%s", fmt);
    cJSON *doc = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (doc == NULL) {
        const long off = end && end >= s && end <= s + n ? (long)(end - s) + 1 : 0;
        if (off > 0)
            bad(j, label, "not valid JSON (near byte %ld of the line)", off);
        else
            bad(j, label, "not valid JSON");
        return WR_OK;
    }
    if (end != NULL && end >= s && end <= s + n) {
        const char *p = end;
        while (p < s + n && is_ws(*p)) p++;
        if (p < s + n) {
            bad(j, label,
                "text after the JSON object (byte %ld of the line): one job per line, one "
                "object per job",
                (long)(p - s) + 1);
            goto done;
        }
    }
    if (!cJSON_IsObject(doc)) {
        bad(j, label, "a job is a JSON object {\"name\": ..., \"prompt\": ..., ...}, got %s",
            json_type(doc));
        goto done;
    }
    cJSON *name_it = NULL, *format_it = NULL;
    line_keys(j, doc, label, dir, dirlen, &name_it, &format_it);
    if (j->name[0] && j->format[0]) {
        const int png = !strcmp(j->format, "png");
        snprintf(j->out, sizeof j->out, "%.*s/%s%s%s", (int)dirlen, dir, j->name, png ? "" : ".",
                 png ? "" : j->format);
    }
    if (j->bad) goto done;

    /* the option keys (the rest of the object) as a --config document over the defaults */
    cJSON_Delete(cJSON_DetachItemViaPointer(doc, name_it));
    if (format_it) cJSON_Delete(cJSON_DetachItemViaPointer(doc, format_it));
    char *opts = cJSON_PrintUnformatted(doc);
    if (opts == NULL) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory reading %s", label);
        goto done;
    }
    snprintf(lab, sizeof lab, "%s line %d", label, j->line);
    st = wr_gen_opts_from_json(&j->g, opts, strlen(opts), lab);
    free(opts);
    if (st == WR_ERR_OOM_HOST) goto done;
    if (st != WR_OK) {
        /* "--config LABEL line N: detail" -> "LABEL line N: detail" (bad adds the prefix) */
        const char *d = wr_error_detail();
        const int pl = snprintf(pre, sizeof pre, "--config %s: ", lab);
        if (pl > 0 && (size_t)pl < sizeof pre && !strncmp(d, pre, (size_t)pl)) d += pl;
        bad(j, label, "%s", d);
        st = WR_OK;
        goto done;
    }
    if (j->g.prompt == NULL) {
        bad(j, label, "no \"prompt\": give one in the line, or --prompt for every job");
        goto done;
    }
    if (wr_prompt_check(j->g.prompt, "\"prompt\"") != WR_OK ||
        (j->g.negative && wr_prompt_check(j->g.negative, "\"negative_prompt\"") != WR_OK)) {
        bad(j, label, "%s", wr_error_detail());
        goto done;
    }
    if ((st = own_str(&j->g, j->out, &j->g.out)) != WR_OK) goto done;
    /* the request-size checks of a single generation; the defaults' model is already set
     * (bundled or --model), so finish keeps it and, bundled, its defaults */
    if (wr_gen_opts_finish(&j->g, defaults->model) != WR_OK) {
        bad(j, label, "%s", wr_error_detail());
        goto done;
    }
    j->hash = wr_batch_hash(j);
done:
    cJSON_Delete(doc);
    return st;
}

/* ---- names and outputs unique ---- */

typedef struct key_ref {
    const char *key;
    int idx;
} key_ref;

static int key_cmp(const void *a, const void *b) {
    const key_ref *x = a, *y = b;
    const int c = strcmp(x->key, y->key);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* The second and later jobs with the same name (what = 0) or output (what = 1) are bad,
 * naming the first's line. */
static wr_status check_unique(wr_batch *b, const char *label, int what) {
    key_ref *r = malloc(sizeof *r * (size_t)(b->n ? b->n : 1));
    if (r == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory reading %s", label);
    int m = 0;
    for (int i = 0; i < b->n; i++) {
        const char *k = what ? b->jobs[i].out : b->jobs[i].name;
        if (k[0]) r[m].key = k, r[m].idx = i, m++;
    }
    qsort(r, (size_t)m, sizeof *r, key_cmp);
    for (int i = 1, first = 0; i < m; i++) {
        if (strcmp(r[i].key, r[first].key)) {
            first = i;
            continue;
        }
        wr_batch_job *j = &b->jobs[r[i].idx];
        const wr_batch_job *f = &b->jobs[r[first].idx];
        if (what == 0)
            bad(j, label, "name \"%s\" is already line %d's (names must be unique)", j->name,
                f->line);
        else
            bad(j, label, "its output %s is already line %d's (name \"%s\", format \"%s\")", j->out,
                f->line, f->name, f->format);
    }
    free(r);
    return WR_OK;
}

/* ---- the file ---- */

void wr_batch_free(wr_batch *b) {
    if (b == NULL) return;
    for (int i = 0; i < b->n; i++) wr_gen_opts_free(&b->jobs[i].g);
    free(b->jobs);
    b->jobs = NULL;
    b->n = b->nbad = 0;
}

/* Line [*s, *e) from p: '\n' excluded, a last '\r' too; returns the next line's start. */
static const char *next_line(const char *p, const char *end, const char **s, const char **e) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    *s = p;
    *e = le > p && le[-1] == '\r' ? le - 1 : le;
    return nl ? nl + 1 : end;
}

static int blank(const char *s, const char *e) {
    for (; s < e; s++)
        if (!is_ws(*s)) return 0;
    return 1;
}

wr_status wr_batch_parse(wr_batch *b, const char *text, size_t len, const char *label,
                         const wr_gen_opts *defaults, const char *out_dir, const char *fmt) {
    char q[80];
    memset(b, 0, sizeof *b);
    if (fmt == NULL) fmt = "y4m";
    if (!is_format(fmt))
        return WR_FAIL(WR_ERR_INVALID_ARG, "the batch's format must be y4m, mp4 or png, got %s",
                       wr_quote(q, sizeof q, fmt));
    size_t dirlen = out_dir ? strlen(out_dir) : 0;
    if (dirlen == 0)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--out-dir DIR is required with --batch %s", label);
    if (dirlen > WR_BATCH_DIR_MAX)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--out-dir is %zu bytes, more than %d", dirlen,
                       WR_BATCH_DIR_MAX);
    while (dirlen > 0 && out_dir[dirlen - 1] == '/') dirlen--; /* "/" -> "" + "/name" */

    if (len > 0 && memchr(text, '\0', len)) {
        const char *z = memchr(text, '\0', len);
        int line = 1;
        for (const char *p = text; p < z; p++) line += *p == '\n';
        return WR_FAIL(WR_ERR_FORMAT,
                       "%s is not a text file (a NUL byte on line %d): a batch file is JSON "
                       "lines, one job object per line",
                       label, line);
    }
    const char *p = text, *const end = text + len;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) p += 3; /* a UTF-8 byte-order mark */
    const char *const start = p;

    int n = 0;
    for (const char *s, *e; p < end;) {
        p = next_line(p, end, &s, &e);
        n += !blank(s, e);
        if (n > WR_BATCH_MAX_JOBS) break;
    }
    if (n == 0)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "%s holds no jobs (a job is a line {\"name\": ..., \"prompt\": ...})",
                       label);
    if (n > WR_BATCH_MAX_JOBS)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "%s holds %d jobs, more than the %d a batch may have: split it into "
                       "several files",
                       label, n, WR_BATCH_MAX_JOBS);
    b->jobs = calloc((size_t)n, sizeof *b->jobs);
    if (b->jobs == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory reading %s", label);

    wr_status st = WR_OK;
    int line = 0;
    p = start;
    for (const char *s, *e; p < end && st == WR_OK;) {
        p = next_line(p, end, &s, &e);
        line++;
        if (blank(s, e)) continue;
        wr_batch_job *j = &b->jobs[b->n++];
        j->line = line;
        j->g = *defaults; /* strings borrowed from the defaults; the line's own, owned */
        j->g.owned = NULL, j->g.nowned = j->g.capowned = 0;
        st = parse_line(j, s, (size_t)(e - s), label, defaults, out_dir, dirlen, fmt);
    }
    if (st == WR_OK) st = check_unique(b, label, 0);
    if (st == WR_OK) st = check_unique(b, label, 1);
    if (st != WR_OK) {
        wr_batch_free(b);
        return st;
    }
    for (int i = 0; i < b->n; i++) {
        b->nbad += b->jobs[i].bad;
        if (b->jobs[i].bad) b->jobs[i].hash = 0;
    }
    return WR_OK;
}

/* ---- the parameter hash ---- */

typedef struct fnv {
    uint64_t h;
} fnv;

static void fnv_add(fnv *f, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) f->h = (f->h ^ c[i]) * 0x100000001b3ull;
}

/* "key=<len>:<bytes>\n", or "key=-\n" for NULL: no string can imitate another field */
static void fnv_str(fnv *f, const char *key, const char *s) {
    char buf[48];
    const int n = s ? snprintf(buf, sizeof buf, "%s=%zu:", key, strlen(s))
                    : snprintf(buf, sizeof buf, "%s=-", key);
    fnv_add(f, buf, (size_t)n);
    if (s) fnv_add(f, s, strlen(s));
    fnv_add(f, "\n", 1);
}

static void fnv_fmt(fnv *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fnv_fmt(fnv *f, const char *fmt, ...) {
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fnv_add(f, buf, n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

uint64_t wr_batch_hash(const wr_batch_job *j) {
    const wr_gen_opts *g = &j->g;
    fnv f = {0xcbf29ce484222325ull};
    fnv_str(&f, "model", g->model);
    fnv_str(&f, "prompt", g->prompt);
    fnv_str(&f, "negative_prompt", g->negative);
    fnv_fmt(&f, "width=%lld\nheight=%lld\nframes=%lld\nsteps=%lld\n", (long long)g->width,
            (long long)g->height, (long long)g->frames, (long long)g->steps);
    fnv_fmt(&f, "guidance=%.17g\nshift=%.17g\nfps=%.17g\n", g->guidance, g->shift, g->fps);
    fnv_fmt(&f, "seed=%llu\nscheduler=%d\n", (unsigned long long)g->seed, g->scheduler);
    fnv_fmt(&f, "guidance_2=%.17g\nboundary_ratio=%.17g\n", g->guidance_2, g->boundary_ratio);
    fnv_str(&f, "init_noise", g->init_noise);
    fnv_str(&f, "image", g->image);
    fnv_str(&f, "format", j->format);
    return f.h;
}

/*
 * options.c — the generation options: one table for the flags and the --config keys, the
 * value parsers, the --config JSON reader. See options.h.
 */
#include "pipeline/options.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/dit.h"
#include "models/sched.h"
#include "vram/levels.h"
#include "wanrun.h"

/* What a --config value may be: a JSON string, a number (or its digits as a string), a
 * boolean (a switch), or nothing (--config itself). */
enum { K_TEXT, K_NUM, K_INT, K_SWITCH, K_NONE };

static const struct {
    const char *name;
    int kind;
} k_opts[WR_OPT_COUNT] = {
    [WR_OPT_MODEL] = {"model", K_TEXT},
    [WR_OPT_PROMPT] = {"prompt", K_TEXT},
    [WR_OPT_NEGATIVE_PROMPT] = {"negative-prompt", K_TEXT},
    [WR_OPT_OUT] = {"out", K_TEXT},
    [WR_OPT_SAVE_LATENTS] = {"save-latents", K_TEXT},
    [WR_OPT_INIT_NOISE] = {"init-noise", K_TEXT},
    [WR_OPT_SIZE] = {"size", K_TEXT},
    [WR_OPT_FRAMES] = {"frames", K_INT},
    [WR_OPT_STEPS] = {"steps", K_INT},
    [WR_OPT_GUIDANCE] = {"guidance", K_NUM},
    [WR_OPT_SHIFT] = {"shift", K_NUM},
    [WR_OPT_FPS] = {"fps", K_NUM},
    [WR_OPT_SEED] = {"seed", K_INT},
    [WR_OPT_SCHEDULER] = {"scheduler", K_TEXT},
    [WR_OPT_THREADS] = {"threads", K_INT},
    [WR_OPT_LOW_MEM_LEVEL] = {"low-mem-level", K_INT},
    [WR_OPT_VRAM_LIMIT] = {"vram-limit", K_NUM},
    [WR_OPT_BACKEND] = {"backend", K_TEXT},
    [WR_OPT_CONFIG] = {"config", K_NONE},
    [WR_OPT_CFG_PARALLEL] = {"cfg-parallel", K_INT},
    [WR_OPT_CP_SIZE] = {"cp-size", K_INT},
    [WR_OPT_CP] = {"cp", K_TEXT},
    [WR_OPT_MEM_PROFILE] = {"mem-profile", K_TEXT},
    [WR_OPT_TEXT_ENCODER] = {"text-encoder", K_TEXT},
    [WR_OPT_DIT] = {"dit", K_TEXT},
    [WR_OPT_VAE] = {"vae", K_TEXT},
    [WR_OPT_FP8] = {"fp8", K_TEXT},
    [WR_OPT_TE_DEVICE] = {"te-device", K_TEXT},
    [WR_OPT_DISK_OFFLOAD] = {"disk-offload", K_SWITCH},
    [WR_OPT_VERBOSE] = {"verbose", K_SWITCH},
    [WR_OPT_DEVICE] = {"device", K_INT},
    [WR_OPT_COMPUTE_DTYPE] = {"compute-dtype", K_TEXT},
    [WR_OPT_GUIDANCE_2] = {"guidance-2", K_NUM},
    [WR_OPT_BOUNDARY_RATIO] = {"boundary-ratio", K_NUM},
    [WR_OPT_IMAGE] = {"image", K_TEXT},
};

#define Q(buf, s) wr_quote(buf, sizeof buf, s)

const char *wr_quote(char *dst, size_t cap, const char *s) {
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    if (cap < 8) {
        if (cap) dst[0] = '\0';
        return dst;
    }
    const size_t lim = cap - 6 < 60 ? cap - 6 : 60; /* room for an escape and "..." */
    dst[n++] = '\'';
    for (; s && *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (n >= lim) {
            memcpy(dst + n, "'...", 4);
            n += 4;
            dst[n] = '\0';
            return dst;
        }
        if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\') {
            dst[n++] = '\\';
            dst[n++] = 'x';
            dst[n++] = hex[c >> 4];
            dst[n++] = hex[c & 15];
        } else {
            dst[n++] = (char)c;
        }
    }
    dst[n++] = '\'';
    dst[n] = '\0';
    return dst;
}

int wr_gen_opt_find(const char *name) {
    for (int i = 0; i < WR_OPT_COUNT; i++)
        if (!strcmp(name, k_opts[i].name)) return i;
    return -1;
}

void wr_gen_opts_init(wr_gen_opts *g) {
    memset(g, 0, sizeof *g);
    g->width = 832, g->height = 480, g->frames = 81, g->steps = 50;
    g->guidance = 5.0, g->fps = 16.0;
    g->guidance_2 = g->boundary_ratio = -1.0;
    g->scheduler = -1;
    g->te_stream = g->dit_stream = g->vae_tiled = -1;
    snprintf(g->backend, sizeof g->backend, "auto");
    g->device = -1;
    g->compute_bf16 = -1; /* auto: the backend's GEMM dtype */
}

int wr_gen_opts_bf16(const wr_gen_opts *g) {
    return g->compute_bf16 >= 0 ? g->compute_bf16 : strcmp(g->backend, "cuda") == 0;
}

void wr_gen_opts_free(wr_gen_opts *g) {
    if (g == NULL) return;
    for (int i = 0; i < g->nowned; i++) free(g->owned[i]);
    free(g->owned);
    g->owned = NULL;
    g->nowned = g->capowned = 0;
}

/* ---- value parsers ---- */

/* strtoll / strtod accept leading spaces and '+': a value is refused unless it starts with
 * a digit (or '-' and a digit, or '.'). */
static int starts_number(const char *v) {
    const char *p = v[0] == '-' ? v + 1 : v;
    return (*p >= '0' && *p <= '9') || (*p == '.' && p[1] >= '0' && p[1] <= '9');
}

wr_status wr_parse_i64(const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out) {
    char q[80];
    char *end = NULL;
    errno = 0;
    long long n = starts_number(v) ? strtoll(v, &end, 10) : 0;
    if (end == NULL || end == v || *end != '\0')
        return WR_FAIL(WR_ERR_INVALID_ARG, "--%s must be a whole number in [%lld, %lld], got %s",
                       flag, (long long)lo, (long long)hi, Q(q, v));
    if (errno == ERANGE || n < lo || n > hi)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--%s %s is out of range: it must be in [%lld, %lld]",
                       flag, Q(q, v), (long long)lo, (long long)hi);
    *out = n;
    return WR_OK;
}

wr_status wr_parse_f64(const char *flag, const char *v, double lo, double hi, double *out) {
    char q[80];
    char *end = NULL;
    double d = starts_number(v) ? strtod(v, &end) : 0.0;
    if (end == NULL || end == v || *end != '\0')
        return WR_FAIL(WR_ERR_INVALID_ARG, "--%s must be a number in [%g, %g], got %s", flag, lo,
                       hi, Q(q, v));
    if (!(d >= lo && d <= hi))
        return WR_FAIL(WR_ERR_INVALID_ARG, "--%s %s is out of range: it must be in [%g, %g]", flag,
                       Q(q, v), lo, hi);
    *out = d;
    return WR_OK;
}

wr_status wr_parse_bytes(const char *flag, const char *v, int64_t *out) {
    static const struct {
        const char *suffix;
        double mul;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"K", 1024.0},
                 {"KB", 1024.0},
                 {"KiB", 1024.0},
                 {"M", 1048576.0},
                 {"MB", 1048576.0},
                 {"MiB", 1048576.0},
                 {"G", 1073741824.0},
                 {"GB", 1073741824.0},
                 {"GiB", 1073741824.0},
                 {"T", 1099511627776.0},
                 {"TB", 1099511627776.0},
                 {"TiB", 1099511627776.0}};
    char q[80];
    char *end = NULL;
    double d = starts_number(v) && v[0] != '-' ? strtod(v, &end) : 0.0;
    double mul = 0;
    if (end != NULL && end != v)
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (!strcmp(end, units[i].suffix)) mul = units[i].mul;
    const double bytes = mul > 0 && isfinite(d) ? floor(d * mul) : 0.0;
    if (!(bytes >= 1.0) || bytes > 9.0e18)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "--%s %s: a size is a number of bytes or one with a unit (20GiB, 512MiB, "
                       "64KiB, 1TiB; also G/GB, M/MB, K/KB, T/TB), at least 1 byte and below 8 EiB",
                       flag, Q(q, v));
    *out = (int64_t)bytes;
    return WR_OK;
}

wr_status wr_parse_size(const char *flag, const char *v, int64_t *w, int64_t *h) {
    char q[80];
    const char *x = strchr(v, 'x');
    char *end = NULL;
    long long a = 0, b = 0;
    int ok = x != NULL && v[0] >= '0' && v[0] <= '9' && x[1] >= '0' && x[1] <= '9';
    int range = 0;
    if (ok) {
        errno = 0;
        a = strtoll(v, &end, 10);
        ok = end == x;
        range |= errno == ERANGE;
    }
    if (ok) {
        errno = 0;
        b = strtoll(x + 1, &end, 10);
        ok = *end == '\0';
        range |= errno == ERANGE;
    }
    if (!ok)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--%s must be WIDTHxHEIGHT (e.g. 832x480), got %s", flag,
                       Q(q, v));
    if (range || a < 1 || b < 1)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "--%s %s is out of range: width and height must be positive multiples of "
                       "16, at most %d",
                       flag, Q(q, v), WR_REQUEST_MAX_SIDE);
    *w = a, *h = b;
    return WR_OK;
}

/* ---- one option ---- */

static wr_status parse_int(const char *flag, const char *v, int64_t lo, int64_t hi, int *out) {
    int64_t n;
    WR_TRY(wr_parse_i64(flag, v, lo, hi, &n));
    *out = (int)n;
    return WR_OK;
}

static wr_status parse_switch(const char *flag, const char *v, int *out) {
    char q[80];
    if (strcmp(v, "true") && strcmp(v, "false"))
        return WR_FAIL(WR_ERR_INVALID_ARG, "--%s must be true or false, got %s", flag, Q(q, v));
    *out = !strcmp(v, "true");
    return WR_OK;
}

wr_status wr_gen_opts_set(wr_gen_opts *g, const char *name, const char *v) {
    char q[80];
    const int id = wr_gen_opt_find(name);
    if (id < 0 || id == WR_OPT_CONFIG) {
        char dashed[80];
        snprintf(dashed, sizeof dashed, "--%s", name);
        return WR_FAIL(WR_ERR_INVALID_ARG, "unknown option %s (see wanrun --help)", Q(q, dashed));
    }
    const char *n = k_opts[id].name;
    switch ((wr_gen_opt)id) {
    case WR_OPT_MODEL:
        g->model = v;
        break;
    case WR_OPT_PROMPT:
        g->prompt = v;
        break;
    case WR_OPT_NEGATIVE_PROMPT:
        g->negative = v;
        break;
    case WR_OPT_OUT:
        g->out = v;
        break;
    case WR_OPT_SAVE_LATENTS:
        g->save_latents = v;
        break;
    case WR_OPT_INIT_NOISE:
        g->init_noise = v;
        break;
    case WR_OPT_MEM_PROFILE:
        g->mem_profile = v;
        break;
    case WR_OPT_IMAGE:
        g->image = v;
        break;
    case WR_OPT_SIZE:
        WR_TRY(wr_parse_size(n, v, &g->width, &g->height));
        break;
    case WR_OPT_FRAMES: /* 4k+1 (with the nearest counts); with the size: in _finish */
        WR_TRY(wr_parse_i64(n, v, 1, WR_REQUEST_MAX_FRAMES, &g->frames));
        WR_TRY(wr_request_check_sizes(1, 1, g->frames));
        break;
    case WR_OPT_STEPS:
        WR_TRY(wr_parse_i64(n, v, 1, WR_REQUEST_MAX_STEPS, &g->steps));
        break;
    case WR_OPT_GUIDANCE:
        WR_TRY(wr_parse_f64(n, v, 0.0, 100.0, &g->guidance));
        break;
    case WR_OPT_SHIFT:
        WR_TRY(wr_parse_f64(n, v, 1e-3, 1000.0, &g->shift));
        break;
    case WR_OPT_GUIDANCE_2:
        WR_TRY(wr_parse_f64(n, v, 0.0, 100.0, &g->guidance_2));
        break;
    case WR_OPT_BOUNDARY_RATIO:
        WR_TRY(wr_parse_f64(n, v, 0.0, 1.0, &g->boundary_ratio));
        break;
    case WR_OPT_FPS:
        WR_TRY(wr_parse_f64(n, v, 0.1, 1000.0, &g->fps));
        break;
    case WR_OPT_SEED: {
        int64_t s;
        WR_TRY(wr_parse_i64(n, v, 0, INT64_MAX, &s));
        g->seed = (uint64_t)s;
        break;
    }
    case WR_OPT_SCHEDULER: {
        wr_sched_kind k;
        if (strcmp(v, "unipc") && strcmp(v, "euler"))
            return WR_FAIL(WR_ERR_INVALID_ARG, "--scheduler must be unipc or euler, got %s",
                           Q(q, v));
        WR_TRY(wr_sched_kind_parse(v, &k));
        g->scheduler = (int)k;
        break;
    }
    case WR_OPT_THREADS:
        WR_TRY(parse_int(n, v, 1, 4096, &g->threads));
        break;
    case WR_OPT_DEVICE:
        WR_TRY(parse_int(n, v, 0, 1023, &g->device));
        break;
    case WR_OPT_LOW_MEM_LEVEL:
        if (!strcmp(v, "auto"))
            g->low_mem_level = -1;
        else if (parse_int(n, v, 0, 3, &g->low_mem_level) != WR_OK)
            return WR_FAIL(WR_ERR_INVALID_ARG, "--low-mem-level must be 0, 1, 2, 3 or auto, got %s",
                           Q(q, v));
        break;
    case WR_OPT_TEXT_ENCODER:
    case WR_OPT_DIT:
    case WR_OPT_VAE: {
        const int x = wr_mem_policy_parse(n, v);
        if (x < 0)
            return WR_FAIL(WR_ERR_INVALID_ARG, "--%s must be %s, got %s", n,
                           id == WR_OPT_VAE ? "tiled or untiled" : "resident or stream", Q(q, v));
        *(id == WR_OPT_VAE ? &g->vae_tiled : id == WR_OPT_DIT ? &g->dit_stream : &g->te_stream) = x;
        break;
    }
    case WR_OPT_VRAM_LIMIT:
        WR_TRY(wr_parse_bytes(n, v, &g->vram_limit));
        break;
    case WR_OPT_TE_DEVICE:
        if (strcmp(v, "cpu") && strcmp(v, "device"))
            return WR_FAIL(WR_ERR_INVALID_ARG, "--te-device must be device or cpu, got %s",
                           Q(q, v));
        g->te_cpu = !strcmp(v, "cpu");
        break;
    case WR_OPT_FP8:
        if (!strcmp(v, "compute"))
            return WR_FAIL(WR_ERR_UNSUPPORTED,
                           "--fp8 compute: FP8 GEMMs need a GPU with FP8 tensor cores (the CUDA "
                           "backend); on the CPU use --fp8 storage (FP8 weights, f32 compute)");
        if (strcmp(v, "storage") && strcmp(v, "off"))
            return WR_FAIL(WR_ERR_INVALID_ARG, "--fp8 must be storage, compute or off, got %s",
                           Q(q, v));
        g->fp8 = !strcmp(v, "storage");
        break;
    case WR_OPT_COMPUTE_DTYPE:
        if (strcmp(v, "f32") && strcmp(v, "bf16") && strcmp(v, "auto"))
            return WR_FAIL(WR_ERR_INVALID_ARG, "--compute-dtype must be auto, f32 or bf16, got %s",
                           Q(q, v));
        g->compute_bf16 = !strcmp(v, "auto") ? -1 : !strcmp(v, "bf16");
        break;
    case WR_OPT_DISK_OFFLOAD:
        WR_TRY(parse_switch(n, v, &g->disk_offload));
        break;
    case WR_OPT_VERBOSE:
        WR_TRY(parse_switch(n, v, &g->verbose));
        break;
    case WR_OPT_CFG_PARALLEL:
        WR_TRY(parse_int(n, v, 1, 2, &g->cfg_parallel));
        break;
    case WR_OPT_CP_SIZE:
        WR_TRY(parse_int(n, v, 1, 4096, &g->cp_size));
        break;
    case WR_OPT_CP: {
        const int m = wr_cp_mode_parse(v);
        if (m < 0)
            return WR_FAIL(WR_ERR_INVALID_ARG, "--cp must be auto, ulysses or ring, got %s",
                           Q(q, v));
        g->cp_mode = m;
        break;
    }
    case WR_OPT_BACKEND:
        if (strcmp(v, "auto") && strcmp(v, "cpu") && strcmp(v, "cuda"))
            return WR_FAIL(WR_ERR_INVALID_ARG, "--backend must be auto, cpu or cuda, got %s",
                           Q(q, v));
        snprintf(g->backend, sizeof g->backend, "%s", v);
        break;
    default:
        return WR_FAIL(WR_ERR_INTERNAL, "option --%s has no parser", n);
    }
    g->given |= (uint64_t)1 << id;
    return WR_OK;
}

/* ---- --config ---- */

static const char *json_type(const cJSON *it) {
    if (cJSON_IsNull(it)) return "null";
    if (cJSON_IsBool(it)) return cJSON_IsTrue(it) ? "true" : "false";
    if (cJSON_IsNumber(it)) return "a number";
    if (cJSON_IsString(it)) return "a string";
    if (cJSON_IsArray(it)) return "an array";
    if (cJSON_IsObject(it)) return "an object";
    return "an invalid value";
}

static wr_status keep(wr_gen_opts *g, const char *s, const char **out) {
    if (g->nowned == g->capowned) {
        const int cap = g->capowned ? 2 * g->capowned : 16;
        char **o = realloc(g->owned, sizeof *o * (size_t)cap);
        if (o == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory reading --config");
        g->owned = o, g->capowned = cap;
    }
    char *c = strdup(s);
    if (c == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory reading --config");
    g->owned[g->nowned++] = c;
    *out = c;
    return WR_OK;
}

/* One key of the object: checks the JSON type, turns the value into the option's text. */
static wr_status config_item(wr_gen_opts *g, const cJSON *it, const char *label, uint64_t *seen) {
    char qk[80], num[40];
    const char *key = it->string ? it->string : "";
    const int id = wr_gen_opt_find(key);
    if (id < 0)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "--config %s: unknown option %s (keys are the flags' names without the "
                       "dashes, e.g. \"steps\"; see wanrun --help)",
                       label, Q(qk, key));
    const int kind = k_opts[id].kind;
    if (kind == K_NONE)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--config %s: \"config\": a config cannot name another",
                       label);
    if (*seen & ((uint64_t)1 << id))
        return WR_FAIL(WR_ERR_INVALID_ARG, "--config %s: \"%s\" is given twice", label, key);
    *seen |= (uint64_t)1 << id;
    const char *v = NULL;
    if (cJSON_IsString(it) && it->valuestring && kind != K_SWITCH) {
        WR_TRY(keep(g, it->valuestring, &v));
    } else if (cJSON_IsBool(it) && kind == K_SWITCH) {
        v = cJSON_IsTrue(it) ? "true" : "false";
    } else if (cJSON_IsNumber(it) && (kind == K_NUM || kind == K_INT)) {
        const double d = it->valuedouble;
        if (kind == K_INT && !(fabs(d) <= 9007199254740992.0)) /* 2^53 */
            return WR_FAIL(WR_ERR_INVALID_ARG,
                           "--config %s: \"%s\": %.17g is not a whole number a JSON number holds "
                           "exactly (|n| <= 2^53); give large values as a string",
                           label, key, d);
        /* range-checked before the cast: a double >= 2^63 cannot become a long long */
        if (fabs(d) < 9.0e15 && d == floor(d))
            snprintf(num, sizeof num, "%lld", (long long)d);
        else
            snprintf(num, sizeof num, "%.17g", d);
        WR_TRY(keep(g, num, &v));
    } else {
        return WR_FAIL(WR_ERR_INVALID_ARG, "--config %s: \"%s\" must be %s, got %s", label, key,
                       kind == K_SWITCH ? "true or false"
                       : kind == K_TEXT ? "a string"
                                        : "a number (or a string of one)",
                       json_type(it));
    }
    wr_status st = wr_gen_opts_set(g, key, v);
    if (st != WR_OK) return WR_FAIL(st, "--config %s: %s", label, wr_error_detail());
    return WR_OK;
}

wr_status wr_gen_opts_from_json(wr_gen_opts *g, const char *text, size_t len, const char *label) {
    cJSON *doc = cJSON_ParseWithLength(text, len);
    if (doc == NULL || !cJSON_IsObject(doc)) {
        const char *at = doc == NULL ? cJSON_GetErrorPtr() : NULL;
        const long off = at && at >= text && at <= text + len ? (long)(at - text) : -1;
        cJSON_Delete(doc);
        if (off >= 0)
            return WR_FAIL(WR_ERR_FORMAT, "--config %s: not valid JSON (near byte %ld)", label,
                           off);
        return WR_FAIL(WR_ERR_FORMAT, "--config %s: not a JSON object {\"option\": value, ...}",
                       label);
    }
    uint64_t seen = 0;
    wr_status st = WR_OK;
    for (const cJSON *it = doc->child; it && st == WR_OK; it = it->next)
        st = config_item(g, it, label, &seen);
    cJSON_Delete(doc);
    return st;
}

/* ---- the command line ---- */

wr_status wr_gen_opts_parse_args(wr_gen_opts *g, int argc, char **argv) {
    char q[80];
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0)
            return WR_FAIL(WR_ERR_INVALID_ARG, "unknown command %s (see wanrun --help)",
                           Q(q, argv[i]));
        const char *name = argv[i] + 2;
        const int id = wr_gen_opt_find(name);
        if (id < 0)
            return WR_FAIL(WR_ERR_INVALID_ARG, "unknown option %s (see wanrun --help)",
                           Q(q, argv[i]));
        if (k_opts[id].kind == K_SWITCH) { /* no value */
            WR_TRY(wr_gen_opts_set(g, name, "true"));
            continue;
        }
        if (i + 1 >= argc)
            return WR_FAIL(WR_ERR_INVALID_ARG, "option --%s needs a value (see wanrun --help)",
                           name);
        const char *v = argv[++i];
        if (id == WR_OPT_CONFIG) continue; /* applied first, by the caller */
        WR_TRY(wr_gen_opts_set(g, name, v));
    }
    return WR_OK;
}

wr_status wr_gen_opts_finish(wr_gen_opts *g, const char *default_model) {
    if (!(g->given & ((uint64_t)1 << WR_OPT_MODEL))) {
        g->model = default_model;
        g->bundled = 1;
        if (!(g->given & ((uint64_t)1 << WR_OPT_SIZE)))
            g->width = WR_BUNDLED_WIDTH, g->height = WR_BUNDLED_HEIGHT;
        if (!(g->given & ((uint64_t)1 << WR_OPT_FRAMES))) g->frames = WR_BUNDLED_FRAMES;
        if (!(g->given & ((uint64_t)1 << WR_OPT_STEPS))) g->steps = WR_BUNDLED_STEPS;
    }
    if (g->prompt == NULL)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--prompt TEXT is required (see wanrun --help)");
    if (g->out == NULL)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--out FILE is required: a .mp4, a .y4m or a directory "
                                           "for PNG frames");
    WR_TRY(wr_request_check_sizes(g->width, g->height, g->frames));
    if ((g->given & ((uint64_t)1 << WR_OPT_DEVICE)) && strcmp(g->backend, "cuda") != 0)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "--device %d selects a CUDA device: give it with --backend cuda (--backend "
                       "%s runs on the CPU)",
                       g->device, g->backend);
    if (g->save_latents && !strcmp(g->save_latents, g->out))
        return WR_FAIL(WR_ERR_INVALID_ARG, "--save-latents and --out are the same path: %s",
                       g->out);
    return WR_OK;
}

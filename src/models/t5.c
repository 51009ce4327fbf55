/*
 * t5.c — UMT5 encoder: loading, the relative-position bucket table, and the fp32 forward
 * written straight-line after transformers' UMT5Stack / UMT5Block.
 *
 * Host and device (backend.h's contract): the residual stream and every activation live in the
 * workspace (device memory); the host computes only integers (the ids' check, the buckets of the
 * distances, the mask's length), which reach the ops as issue-time arguments, and copies the
 * prompt's embedding rows where the ops cannot read the mapping. The result and the taps are
 * downloaded into host memory.
 */
#include "models/t5.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/log.h"
#include "kernels/ops.h"
#include "models/loader.h"
#include "vram/stream.h"

#define WR_T5_FFN_CHUNK 512  /* rows of the [*, FF] activations at a time */
#define WR_T5_LUT_MAX   4096 /* distances tabulated at load: more than any prompt's 512 tokens */

/* ---- expected tensors ---- */

typedef void (*tensor_fn)(void *ctx, const char *name, int ndim, const int64_t *shape);

static void emit(tensor_fn fn, void *ctx, int64_t *count, int64_t *params, const char *name,
                 int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    *params += n;
    (*count)++;
    if (fn) fn(ctx, name, ndim, shape);
}

int64_t wr_t5_expected_tensors(const wr_t5_config *c, int64_t *params_out, tensor_fn fn,
                               void *ctx) {
    const int64_t D = c->d_model, I = c->num_heads * c->d_kv, FF = c->d_ff;
    int64_t count = 0, params = 0;
    char name[128];
#define T(n, ...)                                                                                  \
    emit(fn, ctx, &count, &params, n, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),   \
         (const int64_t[]){__VA_ARGS__})
#define BT(suffix, ...)                                                                            \
    do {                                                                                           \
        snprintf(name, sizeof name, "encoder.block.%lld.%s", (long long)l, suffix);                \
        T(name, __VA_ARGS__);                                                                      \
    } while (0)
    T("shared.weight", c->vocab_size, D);
    for (int64_t l = 0; l < c->num_layers; l++) {
        BT("layer.0.layer_norm.weight", D);
        BT("layer.0.SelfAttention.q.weight", I, D);
        BT("layer.0.SelfAttention.k.weight", I, D);
        BT("layer.0.SelfAttention.v.weight", I, D);
        BT("layer.0.SelfAttention.o.weight", D, I);
        BT("layer.0.SelfAttention.relative_attention_bias.weight",
           c->relative_attention_num_buckets, c->num_heads);
        BT("layer.1.layer_norm.weight", D);
        BT("layer.1.DenseReluDense.wi_0.weight", FF, D);
        BT("layer.1.DenseReluDense.wi_1.weight", FF, D);
        BT("layer.1.DenseReluDense.wo.weight", D, FF);
    }
    T("encoder.final_layer_norm.weight", D);
#undef T
#undef BT
    if (params_out) *params_out = params;
    return count;
}

/* ---- the model ---- */

struct wr_t5 {
    wr_backend *be;
    wr_t5_config cfg;
    char dir[WR_PATH_CAP];
    wr_st_set *weights;
    int64_t D, NH, DK, I, FF;
    wr_tensor shared;    /* [V, D] storage dtype, in the mapping: rows gathered per forward */
    wr_t5_block *blocks; /* [num_layers], host tensors (the mapping, the loader's arenas) */
    wr_tensor final_ln;  /* [D] f32, device memory (ld.dev) where the ops cannot read the host */
    /* the loader: the f32 copies of the norms and bias tables, the layers' matrices in e4m3
     * under FP8 storage, and final_ln's device copy (ld.dev: nothing allocated when
     * be->host_visible) */
    wr_loader ld;
    /* without a pool on a backend whose ops cannot read host memory: every layer uploaded once,
     * at the first acquire (NULL until then, and again once a pool is set) */
    wr_t5_block *dev_blocks;
    wr_dev_arena dev_arena;
    int fp8; /* FP8 storage (wr_t5_load_opts) */
    /* bucket of distance n = |j - i| for n < lut_n = min(max_distance, WR_T5_LUT_MAX), without
     * the direction offset (longer distances are computed when asked for) */
    int *bucket_lut;
    int64_t lut_n;
    /* taps */
    wr_t5_tap_fn tap;
    void *tap_ctx;
    /* host scratch of a forward: idx = the buckets of the distances -(L-1) .. L-1 (for idx_L
     * tokens), then 0 .. L-1; host = [L, D] f32 (the staged embedding rows, then the taps) */
    int32_t *idx;
    int64_t idx_cap, idx_L;
    float *host;
    size_t host_cap; /* floats */
    /* workspace */
    wr_workspace ws; /* from the pool when one is set */
    /* the vram layer (wr_t5_set_vram): layers resident or streamed (src/vram/stream.h) */
    wr_vram *vram;
    wr_streamer *stream;
};

/*
 * transformers UMT5Attention._relative_position_bucket, bidirectional, for n = |j - i| (the
 * direction offset is added by the caller). torch evaluates the large-distance branch in
 * float32: log(n / max_exact) / log(max_distance / max_exact) * (buckets/2 - max_exact), the
 * Python scalars rounded to float, then truncates. n = 16, 32, 64 sit exactly on bucket
 * boundaries for the real (32, 128) parameters, which is why this runs once, here, in the
 * same arithmetic, and the golden test compares the whole table with transformers'.
 */
static int bucket_of_distance(int64_t n, int64_t num_buckets, int64_t max_distance) {
    const int64_t half = num_buckets / 2, max_exact = half / 2;
    if (n < max_exact) return (int)n;
    const float ratio = (float)n / (float)max_exact;
    const float denom = (float)log((double)max_distance / (double)max_exact);
    const float v = logf(ratio) / denom * (float)(half - max_exact);
    int64_t large = max_exact + (int64_t)v;
    return (int)(large < half - 1 ? large : half - 1);
}

int wr_t5_bucket(const wr_t5 *m, int64_t rel) {
    const int64_t half = m->cfg.relative_attention_num_buckets / 2;
    const int64_t n = rel < 0 ? -rel : rel;
    const int base = rel > 0 ? (int)half : 0;
    const int64_t md = m->cfg.relative_attention_max_distance;
    if (n < m->lut_n) return base + m->bucket_lut[n];
    if (n < md) return base + bucket_of_distance(n, m->cfg.relative_attention_num_buckets, md);
    return base + (int)half - 1;
}

/* Every tensor but the embedding and the 2-D weight matrices is kept as an f32 copy. */
static int is_f32_copy(const char *name, int ndim) {
    return ndim == 1 || strstr(name, "relative_attention_bias") != NULL;
}

/* The field of `name`, and (for the layers' matrices) the weight it is. */
static wr_tensor *field_for(wr_t5 *m, const char *name, wr_weight **scale) {
    long long l;
    int n = 0;
    if (scale) *scale = NULL;
    if (strcmp(name, "shared.weight") == 0) return &m->shared;
    if (strcmp(name, "encoder.final_layer_norm.weight") == 0) return &m->final_ln;
    if (sscanf(name, "encoder.block.%lld.%n", &l, &n) != 1 || n == 0) return NULL;
    wr_t5_block *b = &m->blocks[l];
    const char *r = name + n;
    const struct {
        const char *suffix;
        wr_tensor *t;
        wr_weight *scale;
    } map[] = {
        {"layer.0.layer_norm.weight", &b->ln0, NULL},
        {"layer.0.SelfAttention.q.weight", &b->q.t, &b->q},
        {"layer.0.SelfAttention.k.weight", &b->k.t, &b->k},
        {"layer.0.SelfAttention.v.weight", &b->v.t, &b->v},
        {"layer.0.SelfAttention.o.weight", &b->o.t, &b->o},
        {"layer.0.SelfAttention.relative_attention_bias.weight", &b->rel_bias, NULL},
        {"layer.1.layer_norm.weight", &b->ln1, NULL},
        {"layer.1.DenseReluDense.wi_0.weight", &b->wi_0.t, &b->wi_0},
        {"layer.1.DenseReluDense.wi_1.weight", &b->wi_1.t, &b->wi_1},
        {"layer.1.DenseReluDense.wo.weight", &b->wo.t, &b->wo},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(r, map[i].suffix) == 0) {
            if (scale) *scale = map[i].scale;
            return map[i].t;
        }
    return NULL;
}

/* A layer's matrix: stored in FP8 under fp8_storage. */
static int is_fp8_candidate(const char *name, int ndim) {
    return ndim == 2 && strncmp(name, "encoder.block.", 14) == 0 && !is_f32_copy(name, ndim);
}

/* Where one expected tensor goes and how it is held (wr_loader): the embedding and the matrices
 * in place in their storage dtype (the matrices in e4m3 under FP8 storage), the norms and bias
 * tables as f32 copies; the final norm resident on the device, the layers left on the host for
 * the vram layer, the embedding on the host for good (the forward gathers the prompt's rows).
 * No per-block upcast here: the FFN runs in chunks of WR_T5_FFN_CHUNK = 512 rows, Wan's text
 * length, so a narrow matrix is converted once per forward as it is; a layer's f32 copy (760 MB
 * for umT5-XXL) would save no conversion. */
static void t5_field(void *model, const char *name, int ndim, wr_load_field *f) {
    wr_t5 *m = model;
    /* the embedding may be stored under its tied alias */
    if (strcmp(name, "shared.weight") == 0 && wr_st_set_find(m->weights, name) == NULL &&
        wr_st_set_find(m->weights, "encoder.embed_tokens.weight") != NULL)
        snprintf(f->key, sizeof f->key, "encoder.embed_tokens.weight");
    f->t = field_for(m, name, &f->w);
    f->f32 = is_f32_copy(name, ndim);
    f->fp8 = is_fp8_candidate(name, ndim);
    f->resident = strcmp(name, "encoder.final_layer_norm.weight") == 0;
}

static int64_t t5_walk(void *model, wr_visit_fn visit, void *ctx) {
    return wr_t5_expected_tensors(&((wr_t5 *)model)->cfg, NULL, visit, ctx);
}

wr_status wr_t5_load(wr_t5 **out, wr_backend *be, const char *dir) {
    return wr_t5_load_ex(out, be, dir, NULL);
}

wr_status wr_t5_load_ex(wr_t5 **out, wr_backend *be, const char *dir, const wr_t5_load_opts *o) {
    *out = NULL;
    wr_status st = WR_OK;
    static const char *const ops[] = {"matmul",    "rms_norm",       "gelu_tanh",
                                      "mul",       "attention",      "gather_rows",
                                      "transpose", "gated_residual", NULL};
    WR_TRY(wr_backend_require(be, "the text encoder", ops));
    wr_t5 *m = calloc(1, sizeof *m);
    if (m == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    m->be = be;
    m->fp8 = o && o->fp8_storage;
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    char path[WR_PATH_CAP + 32];
    snprintf(path, sizeof path, "%s/config.json", dir);
    WR_TRY_GOTO(st, wr_t5_config_read(&m->cfg, path), fail); /* every field checked there */
    m->D = m->cfg.d_model;
    m->NH = m->cfg.num_heads;
    m->DK = m->cfg.d_kv;
    m->I = m->NH * m->DK;
    m->FF = m->cfg.d_ff;
    WR_TRY_GOTO(st, wr_st_set_open(&m->weights, dir), fail);
    WR_TRY_GOTO(st,
                wr_load_check_layers(m->weights, "encoder.block.", m->cfg.num_layers, path,
                                     "num_layers", dir),
                fail);
    m->blocks = calloc((size_t)m->cfg.num_layers, sizeof *m->blocks);
    m->lut_n = m->cfg.relative_attention_max_distance < WR_T5_LUT_MAX
                   ? m->cfg.relative_attention_max_distance
                   : WR_T5_LUT_MAX;
    m->bucket_lut = malloc(sizeof(int) * (size_t)m->lut_n);
    if (m->blocks == NULL || m->bucket_lut == NULL) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory loading %s", dir);
        goto fail;
    }
    for (int64_t n = 0; n < m->lut_n; n++)
        m->bucket_lut[n] = bucket_of_distance(n, m->cfg.relative_attention_num_buckets,
                                              m->cfg.relative_attention_max_distance);
    m->ld = (wr_loader){.set = m->weights,
                        .dir = m->dir,
                        .what = "text encoder",
                        .fp8 = m->fp8,
                        .field = t5_field,
                        .model = m};
    int64_t n = 0;
    WR_TRY_GOTO(st, wr_loader_run(&m->ld, t5_walk, &n), fail);
    int64_t have = wr_st_set_count(m->weights);
    if (wr_st_set_find(m->weights, "shared.weight") &&
        wr_st_set_find(m->weights, "encoder.embed_tokens.weight"))
        have--; /* both names of the tied embedding */
    if (have != n)
        wr_warn("%s: %lld tensors in the checkpoint, %lld used (extra tensors ignored)", dir,
                (long long)have, (long long)n);
    /* the final norm on the device (in place on a backend that reads host memory); the layers
     * are uploaded by the streamer or at the first acquire (t5_upload_blocks), the embedding
     * never (the forward stages the prompt's rows) */
    WR_TRY_GOTO(st, wr_loader_upload(&m->ld, be), fail);
    wr_debug("%s: UMT5 loaded: %lld layers, D=%lld, %lld x %lld heads, FF=%lld, vocab %lld", dir,
             (long long)m->cfg.num_layers, (long long)m->D, (long long)m->NH, (long long)m->DK,
             (long long)m->FF, (long long)m->cfg.vocab_size);
    *out = m;
    return WR_OK;
fail:
    wr_t5_free(m);
    return st;
}

static void t5_vram_release(wr_t5 *m);

static void t5_dev_blocks_free(wr_t5 *m);

void wr_t5_free(wr_t5 *m) {
    if (m == NULL) return;
    t5_vram_release(m);
    t5_dev_blocks_free(m);
    wr_loader_free(&m->ld);
    wr_workspace_release(&m->ws, m->be);
    free(m->idx);
    free(m->host);
    free(m->bucket_lut);
    free(m->blocks);
    wr_st_set_close(m->weights);
    free(m);
}

const wr_t5_config *wr_t5_config_of(const wr_t5 *m) {
    return &m->cfg;
}

typedef struct {
    wr_t5 *m;
    wr_weight_fn fn;
    void *ctx;
} each_weight_ctx;

static void each_weight_visit(void *ctx, const char *name, int ndim, const int64_t *shape) {
    (void)ndim;
    (void)shape;
    each_weight_ctx *e = ctx;
    wr_weight *w = NULL;
    field_for(e->m, name, &w);
    if (w) e->fn(e->ctx, name, w);
}

void wr_t5_each_weight(const wr_t5 *m, wr_weight_fn fn, void *ctx) {
    each_weight_ctx e = {(wr_t5 *)m, fn, ctx};
    wr_t5_expected_tensors(&m->cfg, NULL, each_weight_visit, &e);
}

/* ---- the vram layer: resident and streamed layers ---- */

static int layer_tensors(void *blk, wr_tensor **t) {
    wr_t5_block *b = blk;
    int n = 0;
    t[n++] = &b->ln0, t[n++] = &b->q.t, t[n++] = &b->k.t, t[n++] = &b->v.t, t[n++] = &b->o.t;
    t[n++] = &b->rel_bias, t[n++] = &b->ln1;
    t[n++] = &b->wi_0.t, t[n++] = &b->wi_1.t, t[n++] = &b->wo.t;
    return n;
}

static void t5_vram_release(wr_t5 *m) {
    if (m->vram == NULL) return;
    wr_streamer_free(m->stream);
    m->stream = NULL;
    (void)wr_vram_account(m->vram, WR_MEM_WEIGHTS_RESIDENT,
                          -(int64_t)wr_tensor_nbytes(&m->final_ln));
    wr_workspace_release(&m->ws, m->be); /* it came from the pool */
    m->vram = NULL;
}

/* The layers' device copy without a pool (!be->host_visible): every tensor of every layer in
 * one arena, uploaded once. */
static wr_status t5_upload_blocks(wr_t5 *m) {
    void *copy = NULL;
    WR_TRY(wr_dev_arena_blocks(&m->dev_arena, m->be, m->blocks, sizeof *m->blocks,
                               m->cfg.num_layers, layer_tensors, &copy));
    m->dev_blocks = copy;
    return WR_OK;
}

static void t5_dev_blocks_free(wr_t5 *m) {
    wr_dev_arena_free(&m->dev_arena);
    free(m->dev_blocks);
    m->dev_blocks = NULL;
}

wr_status wr_t5_set_vram(wr_t5 *m, wr_vram *v, int64_t resident) {
    t5_vram_release(m);
    wr_workspace_release(&m->ws, m->be); /* into the pool's accounting on the next forward */
    if (v == NULL) return WR_OK;
    t5_dev_blocks_free(m);             /* the pool's copies from now on */
    WR_TRY(wr_vram_scratch_ensure(v)); /* the ops' scratch, from the pool from now on */
    /* the final norm, used in place and counted (the embedding table never is on the device) */
    WR_TRY(wr_vram_account(v, WR_MEM_WEIGHTS_RESIDENT, (int64_t)wr_tensor_nbytes(&m->final_ln)));
    wr_status st = wr_streamer_create(&m->stream, v, m->blocks, sizeof *m->blocks,
                                      m->cfg.num_layers, layer_tensors, resident);
    if (st != WR_OK) {
        (void)wr_vram_account(v, WR_MEM_WEIGHTS_RESIDENT, -(int64_t)wr_tensor_nbytes(&m->final_ln));
        return st;
    }
    wr_streamer_set_name(m->stream, "text encoder");
    m->vram = v;
    return WR_OK;
}

void wr_t5_release_workspace(wr_t5 *m) {
    wr_workspace_release(&m->ws, m->be);
}

size_t wr_t5_layer_bytes(const wr_t5 *m) {
    return wr_blocks_max_bytes(m->blocks, sizeof *m->blocks, m->cfg.num_layers, layer_tensors);
}

wr_status wr_t5_acquire(wr_t5 *m, int64_t i, const wr_t5_block **out) {
    WR_ASSERT(i >= 0 && i < m->cfg.num_layers);
    if (m->vram == NULL && m->be->host_visible) {
        *out = &m->blocks[i]; /* the checkpoint's own tensors (mapped), read in place */
        return WR_OK;
    }
    if (m->vram == NULL) { /* no pool: the layers' device copy, made once */
        if (m->dev_blocks == NULL) WR_TRY(t5_upload_blocks(m));
        *out = &m->dev_blocks[i];
        return WR_OK;
    }
    const void *b = NULL;
    WR_TRY(wr_streamer_acquire(m->stream, i, &b));
    *out = b;
    return WR_OK;
}

void wr_t5_release(wr_t5 *m, int64_t i) {
    if (m->vram) wr_streamer_release(m->stream, i);
}

void wr_t5_set_tap(wr_t5 *m, wr_t5_tap_fn fn, void *ctx) {
    m->tap = fn;
    m->tap_ctx = ctx;
}

/* Host buffer of at least n floats (kept for the next forward). */
static wr_status host_buf(wr_t5 *m, size_t n) {
    if (m->host_cap >= n) return WR_OK;
    float *p = realloc(m->host, n * sizeof(float));
    if (p == NULL)
        return WR_FAIL(WR_ERR_OOM_HOST, "text encoder: no host memory for %zu floats", n);
    m->host = p;
    m->host_cap = n;
    return WR_OK;
}

/* The tap callback with a host copy of t (device memory). */
static wr_status tap(wr_t5 *m, const char *name, const wr_tensor *t) {
    if (m->tap == NULL) return WR_OK;
    const size_t n = (size_t)wr_tensor_nelem(t);
    WR_TRY(host_buf(m, n));
    WR_TRY(wr_download(m->be, m->host, t->data, n * sizeof(float)));
    const wr_tensor h = wr_tensor_make(m->host, WR_DTYPE_F32, t->ndim, t->shape);
    m->tap(m->tap_ctx, name, &h);
    return WR_OK;
}

/* ---- forward ---- */

typedef struct t5_acts {
    wr_tensor x;       /* [L, D] the residual stream */
    wr_tensor h;       /* [L, D] normed input of a sub-layer, then its output */
    wr_tensor q, k, v; /* [L, I] */
    wr_tensor a;       /* [L, I] attention output */
    wr_tensor g, u;    /* [min(L, chunk), FF] gate and linear branches */
    wr_tensor pbt;     /* [2L - 1, NH] the current layer's bias rows, distance-major */
    wr_tensor pb;      /* [NH, 2L - 1] position bias of the current layer */
} t5_acts;

static void plan(wr_carve *c, const wr_t5 *m, int64_t L, t5_acts *a) {
    const int64_t R = L < WR_T5_FFN_CHUNK ? L : WR_T5_FFN_CHUNK;
    a->x = WR_TAKE(c, L, m->D);
    a->h = WR_TAKE(c, L, m->D);
    a->q = WR_TAKE(c, L, m->I);
    a->k = WR_TAKE(c, L, m->I);
    a->v = WR_TAKE(c, L, m->I);
    a->a = WR_TAKE(c, L, m->I);
    a->g = WR_TAKE(c, R, m->FF);
    a->u = WR_TAKE(c, R, m->FF);
    a->pbt = WR_TAKE(c, 2 * L - 1, m->NH);
    a->pb = WR_TAKE(c, m->NH, 2 * L - 1);
}

size_t wr_t5_plan_workspace(const wr_t5_config *cfg, int64_t L) {
    wr_t5 m = {0}; /* just the dimensions plan() reads */
    m.cfg = *cfg;
    m.D = cfg->d_model, m.NH = cfg->num_heads, m.DK = cfg->d_kv, m.I = m.NH * m.DK;
    m.FF = cfg->d_ff;
    wr_carve c = {0};
    t5_acts a;
    plan(&c, &m, L, &a);
    return c.used * sizeof(float);
}

typedef struct plan_l_ctx {
    int wbytes;
    size_t layer;
} plan_l_ctx;

static void plan_l_one(void *ctx, const char *name, int ndim, const int64_t *shape) {
    plan_l_ctx *c = ctx;
    if (strncmp(name, "encoder.block.0.", 16) != 0) return;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    const size_t bytes = (size_t)n * (size_t)(is_f32_copy(name, ndim) ? 4 : c->wbytes);
    c->layer += (bytes + 63) & ~(size_t)63;
}

size_t wr_t5_plan_layer_bytes(const wr_t5_config *cfg, int wbytes) {
    plan_l_ctx c = {wbytes, 0};
    wr_t5_expected_tensors(cfg, NULL, plan_l_one, &c);
    return c.layer;
}

/* m->idx: [0, 2L-1) the buckets of r = j - i in [-(L-1), L-1], then [2L-1, 3L-1) 0 .. L-1 (the
 * staged embedding rows in order). Host ints, recomputed only when L changes. */
static wr_status fill_indices(wr_t5 *m, int64_t L) {
    if (m->idx_L == L) return WR_OK;
    const int64_t n = 3 * L - 1;
    if (m->idx_cap < n) {
        int32_t *p = realloc(m->idx, sizeof(int32_t) * (size_t)n);
        if (p == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "text encoder: no host memory");
        m->idx = p;
        m->idx_cap = n;
    }
    for (int64_t r = -(L - 1); r <= L - 1; r++) m->idx[r + L - 1] = wr_t5_bucket(m, r);
    for (int64_t l = 0; l < L; l++) m->idx[2 * L - 1 + l] = (int32_t)l;
    m->idx_L = L;
    return WR_OK;
}

static wr_tensor as_heads(const wr_tensor *t, int64_t NH, int64_t DK) {
    return wr_tensor_make(t->data, WR_DTYPE_F32, 3, (int64_t[]){t->shape[0], NH, DK});
}

/* y = x . w^T, w times its scale (FP8 storage) */
static wr_status linear(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_weight *w) {
    return wr_op_matmul_scaled(be, y, x, &w->t, NULL, w->scale);
}

/* transformers UMT5Block.forward (encoder, eval) */
static wr_status block_forward(wr_t5 *m, const wr_t5_block *b, wr_tensor *x, int64_t n_real,
                               t5_acts *a) {
    wr_backend *be = m->be;
    const float eps = (float)m->cfg.layer_norm_epsilon;
    /* (a) self-attention: no 1/sqrt(d_kv), relative position bias (each UMT5 layer has its own
     * table: pb[h, r + L - 1] = rel_bias[bucket(r), h]), keys [n_real, L) (padding) masked */
    WR_TRY(wr_op_gather_rows(be, &a->pbt, &b->rel_bias, m->idx)); /* pbt: [2L - 1, NH] */
    WR_TRY(wr_op_transpose(be, &a->pb, &a->pbt));                 /* pb: [NH, 2L - 1] */
    const wr_attn_params ap = {.scale = 1.0f, .k_valid = n_real, .pos_bias = &a->pb};
    WR_TRY(wr_op_rms_norm(be, &a->h, x, &b->ln0, eps)); /* h: [L, D] */
    WR_TRY(linear(be, &a->q, &a->h, &b->q));            /* q: [L, I] */
    WR_TRY(linear(be, &a->k, &a->h, &b->k));            /* k: [L, I] */
    WR_TRY(linear(be, &a->v, &a->h, &b->v));            /* v: [L, I] */
    wr_tensor qh = as_heads(&a->q, m->NH, m->DK), kh = as_heads(&a->k, m->NH, m->DK);
    wr_tensor vh = as_heads(&a->v, m->NH, m->DK), oh = as_heads(&a->a, m->NH, m->DK);
    WR_TRY(wr_op_attention(be, &oh, NULL, &qh, &kh, &vh, &ap)); /* a: [L, NH, DK] */
    WR_TRY(linear(be, &a->h, &a->a, &b->o));                    /* h: [L, D] */
    WR_TRY(wr_op_gated_residual(be, x, &a->h, NULL));           /* x += h */

    /* (b) gated-GELU FFN in row chunks: h = (gelu_tanh(h wi_0^T) * (h wi_1^T)) wo^T */
    WR_TRY(wr_op_rms_norm(be, &a->h, x, &b->ln1, eps));
    const int64_t L = x->shape[0];
    for (int64_t r0 = 0; r0 < L; r0 += a->g.shape[0]) {
        const int64_t nr = L - r0 < a->g.shape[0] ? L - r0 : a->g.shape[0];
        wr_tensor hin, g, u;
        WR_TRY(wr_tensor_slice0(&hin, &a->h, r0, nr)); /* [nr, D] */
        WR_TRY(wr_tensor_slice0(&g, &a->g, 0, nr));    /* [nr, FF] */
        WR_TRY(wr_tensor_slice0(&u, &a->u, 0, nr));    /* [nr, FF] */
        WR_TRY(linear(be, &g, &hin, &b->wi_0));
        WR_TRY(wr_op_gelu_tanh(be, &g, &g));
        WR_TRY(linear(be, &u, &hin, &b->wi_1));
        WR_TRY(wr_op_mul(be, &g, &g, &u));
        /* the chunk's rows of h are consumed: its FFN output goes in their place */
        WR_TRY(linear(be, &hin, &g, &b->wo));
    }
    WR_TRY(wr_op_gated_residual(be, x, &a->h, NULL)); /* x += ffn */
    return WR_OK;
}

wr_status wr_t5_forward(wr_t5 *m, wr_tensor *out, const int32_t *ids, const uint8_t *mask,
                        int64_t L) {
    wr_backend *be = m->be;
    const wr_t5_config *c = &m->cfg;
    if (L < 1)
        return WR_FAIL(WR_ERR_INVALID_ARG, "text encoder: %lld tokens; need at least one",
                       (long long)L);
    if (out->ndim != 2 || out->shape[0] != L || out->shape[1] != m->D ||
        out->dtype != WR_DTYPE_F32 || out->data == NULL)
        return WR_FAIL(WR_ERR_INVALID_ARG, "text encoder output must be F32 [%lld, %lld]",
                       (long long)L, (long long)m->D);
    for (int64_t l = 0; l < L; l++)
        if (ids[l] < 0 || ids[l] >= c->vocab_size)
            return WR_FAIL(WR_ERR_INVALID_ARG,
                           "token id %d at position %lld is outside the text encoder's "
                           "vocabulary [0, %lld) (%s): tokenizer and encoder do not match",
                           (int)ids[l], (long long)l, (long long)c->vocab_size, m->dir);
    /* the real tokens come first (the tokenizer's layout): the attention masks keys from n on */
    int64_t n = 0;
    while (n < L && (mask == NULL || mask[n] != 0)) n++;
    for (int64_t l = n; l < L; l++)
        if (mask[l] != 0)
            return WR_FAIL(WR_ERR_INVALID_ARG,
                           "text encoder: mask position %lld is a real token after padding at "
                           "position %lld; padding must come after every real token",
                           (long long)l, (long long)n);
    if (n == 0)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "text encoder: mask position 0 is padding; the prompt needs at least one "
                       "real token");

    /* the workspace, planned from L (grown only when a longer input comes) */
    wr_carve c0 = {0};
    t5_acts a;
    plan(&c0, m, L, &a);
    WR_TRY(wr_workspace_ensure(&m->ws, be, m->vram, c0.used * sizeof(float), NULL));
    wr_carve cw = {m->ws.p, 0, m->ws.bytes / sizeof(float)};
    plan(&cw, m, L, &a);
    WR_TRY(fill_indices(m, L));

    /* (1) x = shared[ids]: only these rows of the table are read (pages of the mapping). A
     * backend that reads host memory gathers them in place; otherwise the rows are copied on the
     * host (storage dtype), uploaded into h (free until the first norm; L x D x esz <= its
     * bytes) and converted by the same gather over rows 0 .. L-1. */
    if (be->host_visible) {
        WR_TRY(wr_op_gather_rows(be, &a.x, &m->shared, ids)); /* x: [L, D] */
    } else {
        const size_t row = (size_t)m->D * wr_dtype_size(m->shared.dtype);
        WR_TRY(host_buf(m, (size_t)(L * m->D)));
        for (int64_t l = 0; l < L; l++)
            memcpy((char *)m->host + (size_t)l * row,
                   (const char *)m->shared.data + (size_t)ids[l] * row, row);
        WR_TRY(wr_upload(be, a.h.data, m->host, (size_t)L * row));
        const wr_tensor rows =
            wr_tensor_make(a.h.data, m->shared.dtype, 2, (int64_t[]){L, m->D}); /* [L, D] */
        WR_TRY(wr_op_gather_rows(be, &a.x, &rows, m->idx + 2 * L - 1));         /* x: [L, D] */
    }
    WR_TRY(tap(m, "embed", &a.x));

    /* (2) the layers, residual stream in x */
    for (int64_t i = 0; i < c->num_layers; i++) {
        const wr_t5_block *b;
        WR_TRY(wr_t5_acquire(m, i, &b));
        wr_status st = block_forward(m, b, &a.x, n, &a);
        wr_t5_release(m, i);
        WR_TRY(st);
        char name[32];
        snprintf(name, sizeof name, "block.%lld", (long long)i);
        WR_TRY(tap(m, name, &a.x));
    }

    /* (3) final RMS norm, in place, and the result to the host */
    WR_TRY(wr_op_rms_norm(be, &a.x, &a.x, &m->final_ln, (float)c->layer_norm_epsilon));
    WR_TRY(tap(m, "final_norm", &a.x));
    return wr_download(be, out->data, a.x.data, wr_tensor_nbytes(&a.x));
}

wr_status wr_t5_encode(wr_t5 *m, wr_tensor *out, const int32_t *ids, const uint8_t *mask, int64_t L,
                       int64_t *n_real) {
    WR_TRY(wr_t5_forward(m, out, ids, mask, L));
    int64_t n = 0;
    for (int64_t l = 0; l < L; l++) n += mask == NULL || mask[l] != 0;
    if (n < L) /* host memory: all-zero bytes are +0.0f */
        memset((float *)out->data + n * m->D, 0, sizeof(float) * (size_t)((L - n) * m->D));
    if (n_real) *n_real = n;
    return WR_OK;
}

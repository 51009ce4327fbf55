/*
 * dit.c — Wan2.1 DiT: loading (diffusers or original names), the block accessor, and the
 * fp32 forward written straight-line after diffusers' WanTransformer3DModel.
 */
#include "models/dit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "kernels/ops.h"
#include "models/loader.h"
#include "vram/stream.h"

#define WR_DIT_MAX_PAIRS 512 /* RoPE pairs per head: head dim up to 1024 */

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

int64_t wr_dit_expected_tensors(const wr_dit_config *c, int64_t *params_out, tensor_fn fn,
                                void *ctx) {
    const int64_t D = c->num_attention_heads * c->attention_head_dim, FF = c->ffn_dim;
    const int64_t pt = c->patch_size.v[0], ph = c->patch_size.v[1], pw = c->patch_size.v[2];
    int64_t count = 0, params = 0;
    char name[128];
#define V1(n, a)    emit(fn, ctx, &count, &params, n, 1, (const int64_t[]){a})
#define V2(n, a, b) emit(fn, ctx, &count, &params, n, 2, (const int64_t[]){a, b})
#define LIN(prefix, out, in)                                                                       \
    do {                                                                                           \
        snprintf(name, sizeof name, "%s.weight", prefix);                                          \
        V2(name, out, in);                                                                         \
        snprintf(name, sizeof name, "%s.bias", prefix);                                            \
        V1(name, out);                                                                             \
    } while (0)
    emit(fn, ctx, &count, &params, "patch_embedding.weight", 5,
         (const int64_t[]){D, c->in_channels, pt, ph, pw});
    V1("patch_embedding.bias", D);
    LIN("condition_embedder.time_embedder.linear_1", D, c->freq_dim);
    LIN("condition_embedder.time_embedder.linear_2", D, D);
    LIN("condition_embedder.time_proj", 6 * D, D);
    LIN("condition_embedder.text_embedder.linear_1", D, c->text_dim);
    LIN("condition_embedder.text_embedder.linear_2", D, D);
    for (int64_t i = 0; i < c->num_layers; i++) {
        char p[96];
        snprintf(name, sizeof name, "blocks.%lld.scale_shift_table", (long long)i);
        emit(fn, ctx, &count, &params, name, 3, (const int64_t[]){1, 6, D});
        for (int a = 1; a <= 2; a++) {
            const char *proj[4] = {"to_q", "to_k", "to_v", "to_out.0"};
            for (int j = 0; j < 4; j++) {
                snprintf(p, sizeof p, "blocks.%lld.attn%d.%s", (long long)i, a, proj[j]);
                LIN(p, D, D);
            }
            snprintf(name, sizeof name, "blocks.%lld.attn%d.norm_q.weight", (long long)i, a);
            V1(name, D);
            snprintf(name, sizeof name, "blocks.%lld.attn%d.norm_k.weight", (long long)i, a);
            V1(name, D);
        }
        if (c->cross_attn_norm) { /* else diffusers' norm2 is an nn.Identity: no weights */
            snprintf(name, sizeof name, "blocks.%lld.norm2.weight", (long long)i);
            V1(name, D);
            snprintf(name, sizeof name, "blocks.%lld.norm2.bias", (long long)i);
            V1(name, D);
        }
        snprintf(p, sizeof p, "blocks.%lld.ffn.net.0.proj", (long long)i);
        LIN(p, FF, D);
        snprintf(p, sizeof p, "blocks.%lld.ffn.net.2", (long long)i);
        LIN(p, D, FF);
    }
    LIN("proj_out", c->out_channels * pt * ph * pw, D);
    emit(fn, ctx, &count, &params, "scale_shift_table", 3, (const int64_t[]){1, 2, D});
#undef V1
#undef V2
#undef LIN
    if (params_out) *params_out = params;
    return count;
}

/* ---- original Wan names (spec §2.7) ---- */

static const struct {
    const char *diffusers, *original;
} rename_table[] = {
    {"condition_embedder.time_embedder.linear_1.", "time_embedding.0."},
    {"condition_embedder.time_embedder.linear_2.", "time_embedding.2."},
    {"condition_embedder.time_proj.", "time_projection.1."},
    {"condition_embedder.text_embedder.linear_1.", "text_embedding.0."},
    {"condition_embedder.text_embedder.linear_2.", "text_embedding.2."},
    {".attn1.to_q.", ".self_attn.q."},
    {".attn1.to_k.", ".self_attn.k."},
    {".attn1.to_v.", ".self_attn.v."},
    {".attn1.to_out.0.", ".self_attn.o."},
    {".attn1.norm_q.", ".self_attn.norm_q."},
    {".attn1.norm_k.", ".self_attn.norm_k."},
    {".attn2.to_q.", ".cross_attn.q."},
    {".attn2.to_k.", ".cross_attn.k."},
    {".attn2.to_v.", ".cross_attn.v."},
    {".attn2.to_out.0.", ".cross_attn.o."},
    {".attn2.norm_q.", ".cross_attn.norm_q."},
    {".attn2.norm_k.", ".cross_attn.norm_k."},
    {".norm2.", ".norm3."}, /* the affine cross-attention LayerNorm (deliberate swap) */
    {".ffn.net.0.proj.", ".ffn.0."},
    {".ffn.net.2.", ".ffn.2."},
    {".scale_shift_table", ".modulation"}, /* blocks.N. */
    {"proj_out.", "head.head."},
};

void wr_dit_original_name(char *out, size_t cap, const char *name) {
    if (strcmp(name, "scale_shift_table") == 0) {
        snprintf(out, cap, "head.modulation");
        return;
    }
    for (size_t i = 0; i < sizeof rename_table / sizeof rename_table[0]; i++) {
        const char *hit = strstr(name, rename_table[i].diffusers);
        if (hit) {
            snprintf(out, cap, "%.*s%s%s", (int)(hit - name), name, rename_table[i].original,
                     hit + strlen(rename_table[i].diffusers));
            return;
        }
    }
    snprintf(out, cap, "%s", name);
}

/* ---- the model ---- */

/* Tokens [r0, r0 + n) of a shard, consecutive, all with the k-th distinct timestep of the
 * forward (per-token timesteps; the scalar forward is one run of every token, k = 0). */
typedef struct dit_run {
    int64_t r0, n, k;
} dit_run;

struct wr_dit {
    wr_backend *be;
    wr_dit_config cfg;
    char dir[WR_PATH_CAP];
    wr_st_set *weights;
    int original_names;
    int64_t D, NH, HD, FF;
    /* top-level weights */
    struct {
        wr_tensor weight, bias;
    } patch_embedding;
    struct {
        struct {
            wr_linear linear_1, linear_2;
        } time_embedder, text_embedder;
        wr_linear time_proj;
    } condition_embedder;
    wr_dit_block *blocks;
    wr_linear proj_out;
    wr_tensor scale_shift_table; /* [1, 2, D] */
    int fp8;                     /* FP8 storage (wr_dit_load_opts) */
    /* the loader: the f32 copies of the vectors and tables, the FP8-converted block matrices,
     * and the device copy of the weights outside the blocks (ld.dev) */
    wr_loader ld;
    /* Device copies where the ops cannot read host memory (!be->host_visible; on the plain CPU
     * backend both arenas stay empty and the tensors are used in place): the non-block weights
     * (made at load; the fields above then point into it), and without a pool every block
     * (made on the first acquire; dev_blocks[i] is blocks[i] pointing into it). m->blocks
     * itself always stays host memory: the streamer copies from it. */
    wr_dev_arena barena;
    wr_dit_block *dev_blocks;
    /* host staging of what the forward computes on the host: the timestep sinusoids
     * [K, freq_dim] (one per distinct timestep), the RoPE tables (cos then sin, [L, HD/2] each)
     * and a tap's download */
    float *h_sinus, *h_rope;
    size_t h_sinus_cap, h_rope_cap; /* floats */
    /* per-token timesteps (wr_dit_set_token_timesteps): the most distinct values planned for
     * (0: the scalar forward only), and the host analysis of a forward's shard: its distinct
     * values [<= L] and its runs of equal consecutive tokens [<= L] */
    int64_t tt_n;
    float *h_tval;
    dit_run *h_trun;
    int64_t h_tcap; /* entries of each */
    void *tap_buf;
    size_t tap_cap; /* bytes */
    /* The per-block upcast (DESIGN.md §4's computation state): a block whose matrices are
     * narrower than the GEMM dtype (bf16 / f16 / FP8 on the f32 CPU) has them converted once when
     * it is acquired, into one block's worth of device memory (from the pool's workspace
     * category when there is a pool), instead of inside every matmul (once per FFN chunk). */
    size_t upc_bytes;       /* the buffer's size; 0: no block needs it (or per-use conversion) */
    void *upc;              /* NULL until the first forward / acquire needs it */
    wr_vram *upc_pool;      /* where upc came from; NULL: the backend */
    wr_dit_block upc_block; /* the acquired block, its narrow matrices pointing into upc */
    int32_t *upc_idx;       /* 0 .. the most rows of a matrix - 1 (gather_rows' identity) */
    /* taps */
    wr_dit_tap_fn tap;
    void *tap_ctx;
    /* workspace */
    wr_workspace ws; /* the activations (from the pool when one is set) */
    wr_dtype cdt;    /* the compute dtype (wr_dit_set_compute_dtype) */
    /* the text cache (wr_dit_set_text_cache): per slot and block the cross-attention K and V,
     * [S, D] each in the compute dtype, laid out for tc_rows text rows */
    int tc_n;
    int *tc_full; /* [tc_n] 1: the slot holds its text's K/V */
    int64_t tc_rows;
    wr_workspace tc_ws;
    /* (F', H', W', S, first token, tokens) the RoPE tables in the workspace were built for
     * (S too: the text activations precede them in the plan, so S moves them); [0] = 0: none */
    int64_t rope_key[6];
    /* context parallelism (wr_dit_set_parallel): P ranks of cp, this one cp_rank */
    wr_comm *cp;
    int P, cp_rank;
    wr_cp_mode mode;
    wr_mem_where where;
    /* the vram layer (wr_dit_set_vram): resident and streamed blocks (src/vram/stream.h) */
    wr_vram *vram;
    wr_streamer *stream;
    uint64_t other_acc; /* the non-block weights, counted in the pool */
};

static wr_tensor *lin_weight(wr_linear *l, wr_weight **w) {
    *w = &l->weight;
    return &l->weight.t;
}

/* Resolves one expected tensor into its struct field (*scale: the Linear weight it is). */
static wr_tensor *field_for(wr_dit *m, const char *name, wr_weight **scale) {
    long long bi;
    *scale = NULL;
    int a, n = 0;
    char rest[96];
    if (strcmp(name, "patch_embedding.weight") == 0) return &m->patch_embedding.weight;
    if (strcmp(name, "patch_embedding.bias") == 0) return &m->patch_embedding.bias;
    if (strcmp(name, "scale_shift_table") == 0) return &m->scale_shift_table;
    if (strcmp(name, "proj_out.weight") == 0) return lin_weight(&m->proj_out, scale);
    if (strcmp(name, "proj_out.bias") == 0) return &m->proj_out.bias;
    const struct {
        const char *prefix;
        wr_linear *lin;
    } top[] = {
        {"condition_embedder.time_embedder.linear_1.",
         &m->condition_embedder.time_embedder.linear_1},
        {"condition_embedder.time_embedder.linear_2.",
         &m->condition_embedder.time_embedder.linear_2},
        {"condition_embedder.time_proj.", &m->condition_embedder.time_proj},
        {"condition_embedder.text_embedder.linear_1.",
         &m->condition_embedder.text_embedder.linear_1},
        {"condition_embedder.text_embedder.linear_2.",
         &m->condition_embedder.text_embedder.linear_2},
    };
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
        size_t pl = strlen(top[i].prefix);
        if (strncmp(name, top[i].prefix, pl) == 0)
            return strcmp(name + pl, "weight") == 0 ? lin_weight(top[i].lin, scale)
                                                    : &top[i].lin->bias;
    }
    if (sscanf(name, "blocks.%lld.%n", &bi, &n) != 1 || n == 0) return NULL;
    wr_dit_block *b = &m->blocks[bi];
    const char *r = name + n;
    if (strcmp(r, "scale_shift_table") == 0) return &b->scale_shift_table;
    if (strcmp(r, "norm2.weight") == 0) return &b->norm2.weight;
    if (strcmp(r, "norm2.bias") == 0) return &b->norm2.bias;
    int isw = strlen(r) > 7 && strcmp(r + strlen(r) - 7, ".weight") == 0;
    if (strncmp(r, "ffn.net.0.proj.", 15) == 0)
        return isw ? lin_weight(&b->ffn.net_0_proj, scale) : &b->ffn.net_0_proj.bias;
    if (strncmp(r, "ffn.net.2.", 10) == 0)
        return isw ? lin_weight(&b->ffn.net_2, scale) : &b->ffn.net_2.bias;
    if (sscanf(r, "attn%d.%95s", &a, rest) == 2) {
        wr_dit_attn *at = a == 1 ? &b->attn1 : &b->attn2;
        if (strcmp(rest, "norm_q.weight") == 0) return &at->norm_q;
        if (strcmp(rest, "norm_k.weight") == 0) return &at->norm_k;
        wr_linear *lin = strncmp(rest, "to_q.", 5) == 0   ? &at->to_q
                         : strncmp(rest, "to_k.", 5) == 0 ? &at->to_k
                         : strncmp(rest, "to_v.", 5) == 0 ? &at->to_v
                                                          : &at->to_out;
        return isw ? lin_weight(lin, scale) : &lin->bias;
    }
    return NULL;
}

/* Where one expected tensor goes and how it is held (wr_loader): matrices (2-D, and the 5-D
 * patch embedding) in place in their storage dtype, the blocks' Linear weights in e4m3 under
 * FP8 storage, everything else (vectors, modulation tables) as f32 copies; the tensors outside
 * the blocks resident on the device, the blocks left on the host for the vram layer. */
static void dit_field(void *model, const char *name, int ndim, wr_load_field *f) {
    wr_dit *m = model;
    const int in_block = strncmp(name, "blocks.", 7) == 0;
    f->t = field_for(m, name, &f->w);
    f->f32 = ndim != 2 && ndim != 5;
    f->fp8 = ndim == 2 && in_block;
    f->resident = !in_block;
    if (m->original_names) wr_dit_original_name(f->key, sizeof f->key, name);
}

static int64_t dit_walk(void *model, wr_visit_fn visit, void *ctx) {
    return wr_dit_expected_tensors(&((wr_dit *)model)->cfg, NULL, visit, ctx);
}

/* The weights outside the blocks (embeddings, head); returns the count. */
static int other_tensors(wr_dit *m, wr_tensor **o) {
    int n = 0;
    o[n++] = &m->patch_embedding.weight, o[n++] = &m->patch_embedding.bias;
    wr_linear *l[5] = {&m->condition_embedder.time_embedder.linear_1,
                       &m->condition_embedder.time_embedder.linear_2,
                       &m->condition_embedder.text_embedder.linear_1,
                       &m->condition_embedder.text_embedder.linear_2,
                       &m->condition_embedder.time_proj};
    for (int i = 0; i < 5; i++) o[n++] = &l[i]->weight.t, o[n++] = &l[i]->bias;
    o[n++] = &m->proj_out.weight.t, o[n++] = &m->proj_out.bias;
    o[n++] = &m->scale_shift_table;
    return n;
}
#define DIT_MAX_OTHER 16

/* The matrices of a block (its Linear weights); returns the count. */
#define DIT_BLOCK_MATRICES 10
static int block_matrices(wr_dit_block *b, wr_tensor **t) {
    int n = 0;
    wr_dit_attn *at[2] = {&b->attn1, &b->attn2};
    for (int i = 0; i < 2; i++) {
        t[n++] = &at[i]->to_q.weight.t, t[n++] = &at[i]->to_k.weight.t;
        t[n++] = &at[i]->to_v.weight.t, t[n++] = &at[i]->to_out.weight.t;
    }
    t[n++] = &b->ffn.net_0_proj.weight.t, t[n++] = &b->ffn.net_2.weight.t;
    return n;
}

static int needs_upcast(const wr_tensor *t) {
    return t->data != NULL && t->dtype != WR_DTYPE_F32;
}

static size_t align64(size_t n) {
    return (n + 63) & ~(size_t)63;
}

/* The upcast buffer's size: the largest block's narrow matrices in f32 (0 when every matrix is
 * f32, or when the backend's GEMMs do not take f32: the conversion target would differ), and
 * gather_rows' identity index over the most rows. */
static wr_status upcast_plan(wr_dit *m) {
    if (wr_backend_gemm_dtype(m->be) != WR_DTYPE_F32) return WR_OK;
    size_t most = 0;
    int64_t rows = 0;
    for (int64_t i = 0; i < m->cfg.num_layers; i++) {
        wr_tensor *t[DIT_BLOCK_MATRICES];
        const int n = block_matrices(&m->blocks[i], t);
        size_t bytes = 0;
        for (int j = 0; j < n; j++)
            if (needs_upcast(t[j])) {
                bytes += align64(sizeof(float) * (size_t)wr_tensor_nelem(t[j]));
                if (t[j]->shape[0] > rows) rows = t[j]->shape[0];
            }
        if (bytes > most) most = bytes;
    }
    if (most == 0) return WR_OK;
    m->upc_idx = malloc(sizeof(int32_t) * (size_t)rows);
    if (m->upc_idx == NULL)
        return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for the DiT's upcast index");
    for (int64_t r = 0; r < rows; r++) m->upc_idx[r] = (int32_t)r;
    m->upc_bytes = most;
    return WR_OK;
}

wr_status wr_dit_load(wr_dit **out, wr_backend *be, const char *dir) {
    return wr_dit_load_ex(out, be, dir, NULL);
}

wr_status wr_dit_load_ex(wr_dit **out, wr_backend *be, const char *dir, const wr_dit_load_opts *o) {
    *out = NULL;
    wr_status st = WR_OK;
    static const char *const ops[] = {"matmul",     "layer_norm",  "rms_norm",    "gelu_tanh",
                                      "silu",       "add",         "modulate",    "gated_residual",
                                      "rope",       "attention",   "patch_embed", "attn_merge",
                                      "unpatchify", "gather_rows", NULL};
    WR_TRY(wr_backend_require(be, "the DiT", ops));
    wr_dit *m = calloc(1, sizeof *m);
    if (m == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    m->be = be;
    m->P = 1;
    m->cdt = WR_DTYPE_F32;
    m->fp8 = o && o->fp8_storage;
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    char path[WR_PATH_CAP + 32];
    snprintf(path, sizeof path, "%s/config.json", dir);
    WR_TRY_GOTO(st, wr_dit_config_read(&m->cfg, path), fail);
    m->NH = m->cfg.num_attention_heads;
    m->HD = m->cfg.attention_head_dim;
    m->D = m->NH * m->HD;
    m->FF = m->cfg.ffn_dim;
    if (m->HD / 2 > WR_DIT_MAX_PAIRS) {
        st = WR_FAIL(WR_ERR_CONFIG, "%s: attention_head_dim %lld is larger than supported (%d)",
                     path, (long long)m->HD, 2 * WR_DIT_MAX_PAIRS);
        goto fail;
    }
    WR_TRY_GOTO(st, wr_st_set_open(&m->weights, dir), fail);
    /* before anything loops over the layers (the original names number blocks the same way) */
    WR_TRY_GOTO(
        st, wr_load_check_layers(m->weights, "blocks.", m->cfg.num_layers, path, "num_layers", dir),
        fail);
    m->original_names = wr_st_set_find(m->weights, "time_embedding.0.weight") != NULL ||
                        wr_st_set_find(m->weights, "head.head.weight") != NULL;
    m->blocks = calloc((size_t)m->cfg.num_layers, sizeof *m->blocks);
    m->h_sinus_cap = (size_t)(m->cfg.freq_dim > 0 ? m->cfg.freq_dim : 1);
    m->h_sinus = malloc(sizeof(float) * m->h_sinus_cap);
    if (m->blocks == NULL || m->h_sinus == NULL) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory loading %s", dir);
        goto fail;
    }
    m->ld = (wr_loader){.set = m->weights,
                        .dir = m->dir,
                        .what = "transformer",
                        .fp8 = m->fp8,
                        .field = dit_field,
                        .model = m};
    int64_t n = 0;
    WR_TRY_GOTO(st, wr_loader_run(&m->ld, dit_walk, &n), fail);
    WR_TRY_GOTO(st, wr_loader_upload(&m->ld, be), fail);
    if (!(o && o->upcast_per_use)) WR_TRY_GOTO(st, upcast_plan(m), fail);
    if (wr_st_set_count(m->weights) != n)
        wr_warn("%s: %lld tensors in the checkpoint, %lld used (extra tensors ignored)", dir,
                (long long)wr_st_set_count(m->weights), (long long)n);
    wr_debug("%s: DiT loaded: %lld layers, D=%lld (%lld x %lld), FF=%lld, %s names", dir,
             (long long)m->cfg.num_layers, (long long)m->D, (long long)m->NH, (long long)m->HD,
             (long long)m->FF, m->original_names ? "original Wan" : "diffusers");
    *out = m;
    return WR_OK;
fail:
    wr_dit_free(m);
    return st;
}

static void vram_release_all(wr_dit *m);
static void dev_blocks_free(wr_dit *m);

void wr_dit_free(wr_dit *m) {
    if (m == NULL) return;
    vram_release_all(m);
    wr_dit_release_workspace(m);
    free(m->tc_full);
    dev_blocks_free(m);
    wr_loader_free(&m->ld);
    free(m->h_sinus);
    free(m->h_tval);
    free(m->h_trun);
    free(m->h_rope);
    free(m->tap_buf);
    free(m->upc_idx);
    free(m->blocks);
    wr_st_set_close(m->weights);
    free(m);
}

const wr_dit_config *wr_dit_config_of(const wr_dit *m) {
    return &m->cfg;
}

typedef struct {
    wr_dit *m;
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

void wr_dit_each_weight(const wr_dit *m, wr_weight_fn fn, void *ctx) {
    each_weight_ctx e = {(wr_dit *)m, fn, ctx};
    wr_dit_expected_tensors(&m->cfg, NULL, each_weight_visit, &e);
}

/* ---- the vram layer: resident and streamed blocks ---- */

/* Every weight tensor of a block (absent ones have data NULL); returns the count. */
static int block_tensors(void *blk, wr_tensor **t) {
    wr_dit_block *b = blk;
    int n = 0;
    t[n++] = &b->scale_shift_table;
    wr_dit_attn *at[2] = {&b->attn1, &b->attn2};
    for (int i = 0; i < 2; i++) {
        wr_linear *l[4] = {&at[i]->to_q, &at[i]->to_k, &at[i]->to_v, &at[i]->to_out};
        for (int j = 0; j < 4; j++) t[n++] = &l[j]->weight.t, t[n++] = &l[j]->bias;
        t[n++] = &at[i]->norm_q;
        t[n++] = &at[i]->norm_k;
    }
    t[n++] = &b->norm2.weight;
    t[n++] = &b->norm2.bias;
    t[n++] = &b->ffn.net_0_proj.weight.t, t[n++] = &b->ffn.net_0_proj.bias;
    t[n++] = &b->ffn.net_2.weight.t, t[n++] = &b->ffn.net_2.bias;
    return n;
}

static void vram_release_all(wr_dit *m) {
    if (m->vram == NULL) return;
    wr_streamer_free(m->stream);
    m->stream = NULL;
    if (m->other_acc)
        (void)wr_vram_account(m->vram, WR_MEM_WEIGHTS_RESIDENT, -(int64_t)m->other_acc);
    m->other_acc = 0;
    wr_dit_release_workspace(m); /* it came from the pool */
    m->vram = NULL;
}

size_t wr_dit_other_bytes(const wr_dit *m) {
    if (m->ld.dev.cap) return m->ld.dev.cap; /* the device copy */
    wr_tensor *o[DIT_MAX_OTHER];
    const int n = other_tensors((wr_dit *)m, o);
    size_t other = 0;
    for (int i = 0; i < n; i++)
        if (o[i]->data) other += wr_tensor_nbytes(o[i]);
    return other;
}

size_t wr_dit_block_bytes(const wr_dit *m) {
    return wr_blocks_max_bytes(m->blocks, sizeof *m->blocks, m->cfg.num_layers, block_tensors);
}

/* Without a pool on a backend whose ops cannot read the host: every block's device copy,
 * uploaded once (the first acquire). */
static wr_status dev_blocks_make(wr_dit *m) {
    void *copy = NULL;
    WR_TRY(wr_dev_arena_blocks(&m->barena, m->be, m->blocks, sizeof *m->blocks, m->cfg.num_layers,
                               block_tensors, &copy));
    m->dev_blocks = copy;
    return WR_OK;
}

static void dev_blocks_free(wr_dit *m) {
    wr_dev_arena_free(&m->barena);
    free(m->dev_blocks);
    m->dev_blocks = NULL;
}

wr_status wr_dit_set_vram(wr_dit *m, wr_vram *v, int64_t resident) {
    vram_release_all(m);
    wr_dit_release_workspace(m); /* into the pool's accounting on the next forward */
    if (v == NULL) return WR_OK;
    dev_blocks_free(m);                /* the streamer keeps its own device copies */
    WR_TRY(wr_vram_scratch_ensure(v)); /* the ops' scratch, from the pool from now on */
    /* the embeddings and the head are small: resident (in place on a host-visible backend,
     * else the device arena made at load), counted */
    const uint64_t other = wr_dit_other_bytes(m);
    WR_TRY(wr_vram_account(v, WR_MEM_WEIGHTS_RESIDENT, (int64_t)other));
    wr_status st = wr_streamer_create(&m->stream, v, m->blocks, sizeof *m->blocks,
                                      m->cfg.num_layers, block_tensors, resident);
    if (st != WR_OK) {
        (void)wr_vram_account(v, WR_MEM_WEIGHTS_RESIDENT, -(int64_t)other);
        return st;
    }
    wr_streamer_set_name(m->stream, "dit");
    m->other_acc = other;
    m->vram = v;
    return WR_OK;
}

wr_status wr_dit_handoff_arm(wr_dit *m, const wr_dit *next) {
    if (m->vram == NULL || m->stream == NULL || next->vram != NULL || next == m ||
        next->cfg.num_layers != m->cfg.num_layers)
        return WR_FAIL(WR_ERR_UNSUPPORTED, "no DiT hand-over: the models are not in that state");
    return wr_streamer_handoff(m->stream, next->blocks, sizeof *next->blocks);
}

wr_status wr_dit_take_over(wr_dit *next, wr_dit *m) {
    wr_vram *v = m->vram;
    if (v == NULL || next->vram != NULL)
        return WR_FAIL(WR_ERR_INTERNAL, "DiT take-over: the models are not in that state");
    wr_streamer *ns = NULL;
    wr_status st = wr_streamer_adopt(&ns, m->stream, next->blocks);
    vram_release_all(m); /* its streamer (the memory is ns's now), its non-block weights */
    if (st == WR_OK) st = wr_vram_scratch_ensure(v);
    const uint64_t other = wr_dit_other_bytes(next);
    if (st == WR_OK) st = wr_vram_account(v, WR_MEM_WEIGHTS_RESIDENT, (int64_t)other);
    if (st != WR_OK) {
        wr_streamer_free(ns);
        return st;
    }
    wr_dit_release_workspace(next);
    dev_blocks_free(next); /* the streamer holds its device copies */
    wr_streamer_set_name(ns, "dit");
    next->stream = ns;
    next->other_acc = other;
    next->vram = v;
    return WR_OK;
}

void wr_dit_release_workspace(wr_dit *m) {
    wr_workspace_release(&m->ws, m->be);
    m->rope_key[0] = 0;
    wr_workspace_release(&m->tc_ws, m->be);
    m->tc_rows = 0;
    for (int i = 0; i < m->tc_n; i++) m->tc_full[i] = 0;
    if (m->upc) {
        if (m->upc_pool)
            wr_vram_free(m->upc_pool, m->upc);
        else
            m->be->iface->free(m->be, m->upc);
    }
    m->upc = NULL, m->upc_pool = NULL;
}

/* The upcast buffer, from the pool's workspace category (or the backend) if not there yet. */
static wr_status upcast_ensure(wr_dit *m) {
    if (m->upc_bytes == 0 || m->upc) return WR_OK;
    void *p = NULL;
    if (m->vram)
        WR_TRY(wr_vram_alloc(m->vram, WR_MEM_WORKSPACE, m->upc_bytes, &p));
    else
        WR_TRY(m->be->iface->alloc(m->be, &p, m->upc_bytes));
    m->upc = p, m->upc_pool = m->vram;
    return WR_OK;
}

/* Block b's narrow matrices converted to f32 into the upcast buffer (an op: gather_rows over
 * every row, the conversion the matmul would do per use); *out is b itself when nothing is
 * narrow. The weight scales (FP8 storage) stay with the Linears: the matmul applies them. */
static wr_status upcast_block(wr_dit *m, const wr_dit_block *b, const wr_dit_block **out) {
    *out = b;
    if (m->upc_bytes == 0) return WR_OK;
    WR_TRY(upcast_ensure(m));
    m->upc_block = *b;
    wr_tensor *t[DIT_BLOCK_MATRICES];
    const int n = block_matrices(&m->upc_block, t);
    char *p = m->upc;
    for (int j = 0; j < n; j++) {
        if (!needs_upcast(t[j])) continue;
        wr_tensor y = wr_tensor_make(p, WR_DTYPE_F32, 2, t[j]->shape); /* [N, K] */
        WR_ASSERT(p + align64(wr_tensor_nbytes(&y)) <= (char *)m->upc + m->upc_bytes);
        WR_TRY(wr_op_gather_rows(m->be, &y, t[j], m->upc_idx));
        p += align64(wr_tensor_nbytes(&y));
        *t[j] = y;
    }
    *out = &m->upc_block;
    return WR_OK;
}

wr_status wr_dit_set_compute_dtype(wr_dit *m, wr_dtype dt) {
    const wr_dtype ops[2] = {dt, dt};
    if (dt != WR_DTYPE_F32 && dt != WR_DTYPE_BF16)
        return WR_FAIL(WR_ERR_INVALID_ARG, "DiT compute dtype %s: F32 or BF16 only",
                       wr_dtype_name(dt));
    if (!wr_backend_supports(m->be, "matmul", ops, 2))
        return WR_FAIL(WR_ERR_UNSUPPORTED, "the %s backend has no %s activations",
                       wr_backend_name(m->be->kind), wr_dtype_name(dt));
    if (dt != m->cdt) wr_dit_release_workspace(m); /* every buffer's size changes */
    m->cdt = dt;
    return WR_OK;
}

wr_dtype wr_dit_compute_dtype(const wr_dit *m) {
    return m->cdt;
}

wr_status wr_dit_set_text_cache(wr_dit *m, int n_texts) {
    if (n_texts < 0 || n_texts > WR_DIT_MAX_TEXTS)
        return WR_FAIL(WR_ERR_INVALID_ARG, "DiT text cache of %d texts: 0 to %d", n_texts,
                       WR_DIT_MAX_TEXTS);
    wr_dit_release_workspace(m);
    int *full = n_texts ? calloc((size_t)n_texts, sizeof *full) : NULL;
    if (n_texts && full == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    free(m->tc_full);
    m->tc_full = full;
    m->tc_n = n_texts;
    return WR_OK;
}

void wr_dit_text_cache_clear(wr_dit *m) {
    for (int i = 0; i < m->tc_n; i++) m->tc_full[i] = 0;
}

wr_status wr_dit_set_token_timesteps(wr_dit *m, int64_t n_distinct) {
    if (n_distinct < 0)
        return WR_FAIL(WR_ERR_INVALID_ARG, "DiT per-token timesteps: %lld distinct values",
                       (long long)n_distinct);
    if (n_distinct != m->tt_n) wr_dit_release_workspace(m); /* the modulation rows change */
    m->tt_n = n_distinct;
    return WR_OK;
}

int64_t wr_dit_token_timesteps(const wr_dit *m) {
    return m->tt_n;
}

wr_status wr_dit_acquire(wr_dit *m, int64_t i, const wr_dit_block **out) {
    WR_ASSERT(i >= 0 && i < m->cfg.num_layers);
    if (m->vram == NULL) {
        if (m->be->host_visible)
            return upcast_block(m, &m->blocks[i], out); /* the checkpoint's own tensors */
        if (m->dev_blocks == NULL) WR_TRY(dev_blocks_make(m));
        return upcast_block(m, &m->dev_blocks[i], out);
    }
    const void *b = NULL;
    WR_TRY(wr_streamer_acquire(m->stream, i, &b));
    const wr_status st = upcast_block(m, b, out);
    if (st != WR_OK) wr_streamer_release(m->stream, i);
    return st;
}

void wr_dit_release(wr_dit *m, int64_t i) {
    if (m->vram) wr_streamer_release(m->stream, i);
}

void wr_dit_set_tap(wr_dit *m, wr_dit_tap_fn fn, void *ctx) {
    m->tap = fn;
    m->tap_ctx = ctx;
}

/* A tap: t (device memory) downloaded into the host buffer, handed to the callback. */
static wr_status tap(wr_dit *m, const char *name, const wr_tensor *t) {
    if (m->tap == NULL) return WR_OK;
    const size_t n = wr_tensor_nbytes(t);
    if (n > m->tap_cap) {
        void *p = realloc(m->tap_buf, n);
        if (p == NULL)
            return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for the DiT tap %s (%zu bytes)",
                           name, n);
        m->tap_buf = p, m->tap_cap = n;
    }
    WR_TRY(wr_download(m->be, m->tap_buf, t->data, n));
    wr_tensor h = *t;
    h.data = m->tap_buf;
    m->tap(m->tap_ctx, name, &h);
    return WR_OK;
}

/* ---- forward ---- */

#define FFN_CHUNK 1024

/* Every activation of one forward, in one workspace. The compute dtype (wr_dit_set_compute_dtype)
 * is that of h, q, k, v, a, ffn, kc, vc and the context-parallel q/k/v/out buffers: what the
 * GEMMs and the attention read; everything else is f32. */
typedef struct dit_acts {
    wr_tensor x, h, q, k, v, a; /* [L, D] */
    wr_tensor ffn;              /* [min(L, FFN_CHUNK), FF] */
    wr_tensor hf, ff;           /* [L, D] f32 results on their way into x or h (see plan) */
    wr_tensor o;                /* [L, D] ring attention's running output (see plan) */
    wr_tensor ctx, kc, vc, th;  /* [S, D] */
    /* the modulation, one row per distinct timestep: K rows planned (1 for the scalar forward,
     * up to wr_dit_set_token_timesteps' count), the forward's first nk used */
    wr_tensor sinus;              /* [K, freq_dim] */
    wr_tensor temb, temb_act, t1; /* [K, D] */
    wr_tensor e6;                 /* [K, 6, D] timestep_proj */
    wr_tensor mod;                /* [K, 6, D] per block: scale_shift_table + e6 */
    wr_tensor mod_out;            /* [K, 2, D] the head's: scale_shift_table + temb */
    wr_tensor cos, sin;           /* [L, HD/2] */
    wr_tensor head;               /* [L, Cout*pt*ph*pw] */
    /* context parallelism (L above is this rank's Ls tokens) */
    wr_tensor qg, kg, vg, og; /* Ulysses: [P * Ls, NH / P, HD] gathered by heads */
    wr_tensor pack;           /* Ulysses: [Ls, D] all-to-all staging */
    wr_tensor kv0, kv1;       /* ring: [2, Ls, D] K and V of the shard held / arriving */
    wr_tensor o2;             /* ring: [Ls, D] one shard's attention */
    wr_tensor lse, lse2;      /* ring: [NH, Ls] */
    wr_tensor head_all;       /* [P * Ls, Cout*pt*ph*pw] every rank's head rows */
    /* the forward's input and output (uploaded / downloaded once), flat; last in the plan so
     * that they never move the RoPE tables */
    wr_tensor xin;         /* [C * F * H * W] the latent */
    wr_tensor encin;       /* [S, text_dim] the text */
    wr_tensor outd;        /* [Cout * F * H * W] the velocity */
    int64_t Lg, n0, nreal; /* global tokens, this shard's first token and real tokens */
    const dit_run *runs;   /* this shard's runs of equal timesteps, in token order */
    int64_t nruns, nk;     /* runs, distinct timesteps (rows of the modulation used) */
} dit_acts;

/* Rows of the modulation tables planned for L tokens of a shard: one per distinct timestep a
 * forward may hold there (a shard's values are at most its tokens: padding repeats the last). */
static int64_t tt_rows(const wr_dit *m, int64_t L) {
    return m->tt_n <= 1 ? 1 : m->tt_n < L ? m->tt_n : L;
}

/* The workspace's regions for L tokens of this rank out of Lg, S text rows. */
static void plan(wr_carve *c, const wr_dit *m, int64_t L, int64_t Lg, int64_t S, dit_acts *a) {
    const int64_t D = m->D, P = m->cfg.out_channels * m->cfg.patch_size.v[0] *
                                m->cfg.patch_size.v[1] * m->cfg.patch_size.v[2];
    const wr_dtype cd = m->cdt;
    a->x = WR_TAKE(c, L, D);
    a->h = WR_TAKE_AS(c, cd, L, D);
    a->q = WR_TAKE_AS(c, cd, L, D);
    a->k = WR_TAKE_AS(c, cd, L, D);
    a->v = WR_TAKE_AS(c, cd, L, D);
    a->a = WR_TAKE_AS(c, cd, L, D);
    a->ffn = WR_TAKE_AS(c, cd, L < FFN_CHUNK ? L : FFN_CHUNK, m->FF);
    /* The f32 results on their way into x or a compute-dtype buffer: the LayerNorm before its
     * modulation and to_out's product (hf), ffn.net.2's product (ff). In f32 they are formed
     * where they always were, hf in h and ff in a (no extra memory); else in one f32 buffer. */
    if (cd == WR_DTYPE_F32) {
        a->hf = a->h;
        a->ff = a->a;
    } else {
        a->hf = WR_TAKE(c, L, D);
        a->ff = a->hf;
    }
    a->o = a->a; /* ring attention's own below where the compute dtype is narrower */
    a->ctx = WR_TAKE(c, S, D);
    a->kc = WR_TAKE_AS(c, cd, S, D);
    a->vc = WR_TAKE_AS(c, cd, S, D);
    a->th = WR_TAKE(c, S, D);
    const int64_t K = tt_rows(m, L); /* 1: the sizes of the scalar forward's [D], [6, D] ... */
    a->sinus = WR_TAKE(c, K, m->cfg.freq_dim);
    a->temb = WR_TAKE(c, K, D);
    a->temb_act = WR_TAKE(c, K, D);
    a->t1 = WR_TAKE(c, K, D);
    a->e6 = WR_TAKE(c, K, 6, D);
    a->mod = WR_TAKE(c, K, 6, D);
    a->mod_out = WR_TAKE(c, K, 2, D);
    a->cos = WR_TAKE(c, L, m->HD / 2);
    a->sin = WR_TAKE(c, L, m->HD / 2);
    a->head = WR_TAKE(c, L, P);
    if (m->P > 1) {
        if (m->mode == WR_CP_ULYSSES) {
            a->qg = WR_TAKE_AS(c, cd, m->P * L, m->NH / m->P, m->HD);
            a->kg = WR_TAKE_AS(c, cd, m->P * L, m->NH / m->P, m->HD);
            a->vg = WR_TAKE_AS(c, cd, m->P * L, m->NH / m->P, m->HD);
            a->og = WR_TAKE_AS(c, cd, m->P * L, m->NH / m->P, m->HD);
            a->pack = WR_TAKE_AS(c, cd, L, D);
        } else {
            a->kv0 = WR_TAKE_AS(c, cd, 2, L, D);
            a->kv1 = WR_TAKE_AS(c, cd, 2, L, D);
            /* the shards' attentions merge in f32 (o2 and the running output o: a itself in
             * f32, else its own buffer), which is rounded into a once at the end, as P = 1's
             * attention rounds its output */
            a->o2 = WR_TAKE(c, L, m->NH, m->HD);
            if (cd != WR_DTYPE_F32) a->o = WR_TAKE(c, L, D);
            a->lse = WR_TAKE(c, m->NH, L);
            a->lse2 = WR_TAKE(c, m->NH, L);
        }
        a->head_all = WR_TAKE(c, m->P * L, P);
    }
    const int64_t pp = m->cfg.patch_size.v[0] * m->cfg.patch_size.v[1] * m->cfg.patch_size.v[2];
    a->xin = WR_TAKE(c, m->cfg.in_channels * Lg * pp);
    a->encin = WR_TAKE(c, S, m->cfg.text_dim);
    a->outd = WR_TAKE(c, m->cfg.out_channels * Lg * pp);
}

static size_t plan_bytes(const wr_dit *m, int64_t tokens, int64_t text_rows);

size_t wr_dit_plan_workspace(const wr_dit_config *cfg, int64_t tokens, int64_t text_rows, int P,
                             wr_cp_mode mode) {
    return wr_dit_plan_workspace_ex(cfg, tokens, text_rows, P, mode, WR_DTYPE_F32, 0);
}

size_t wr_dit_plan_workspace_ex(const wr_dit_config *cfg, int64_t tokens, int64_t text_rows, int P,
                                wr_cp_mode mode, wr_dtype compute, int text_cache) {
    return wr_dit_plan_workspace_tokens(cfg, tokens, text_rows, P, mode, compute, text_cache, 0);
}

size_t wr_dit_plan_workspace_tokens(const wr_dit_config *cfg, int64_t tokens, int64_t text_rows,
                                    int P, wr_cp_mode mode, wr_dtype compute, int text_cache,
                                    int64_t t_distinct) {
    wr_dit m = {0}; /* just the dimensions and settings plan() and the text cache read */
    m.cfg = *cfg;
    m.NH = cfg->num_attention_heads, m.HD = cfg->attention_head_dim, m.D = m.NH * m.HD;
    m.FF = cfg->ffn_dim;
    m.P = P > 1 ? P : 1;
    m.mode = P <= 1               ? WR_CP_AUTO
             : mode == WR_CP_AUTO ? (m.NH % P == 0 ? WR_CP_ULYSSES : WR_CP_RING)
                                  : mode;
    m.cdt = compute;
    m.tc_n = text_cache > 0 ? text_cache : 0;
    m.tt_n = t_distinct > 0 ? t_distinct : 0;
    return plan_bytes(&m, tokens, text_rows); /* the planner counts the upcast on its own */
}

typedef struct plan_w_ctx {
    int wbytes;
    size_t block, other;
} plan_w_ctx;

static void plan_w_one(void *ctx, const char *name, int ndim, const int64_t *shape) {
    plan_w_ctx *c = ctx;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    /* as the loader keeps them: matrices in the storage dtype, vectors as f32 */
    const size_t bytes = (size_t)n * (size_t)(ndim == 2 || ndim == 5 ? c->wbytes : 4);
    if (strncmp(name, "blocks.0.", 9) == 0)
        c->block += align64(bytes);
    else if (strncmp(name, "blocks.", 7) != 0)
        c->other += bytes;
    /* FP8 storage: every block matrix's scale stays on the device (the loader's scale array) */
    if (c->wbytes == 1 && ndim == 2 && strncmp(name, "blocks.", 7) == 0) c->other += sizeof(float);
}

void wr_dit_plan_weights(const wr_dit_config *cfg, int wbytes, size_t *block_bytes,
                         size_t *other_bytes) {
    plan_w_ctx c = {wbytes, 0, 0};
    wr_dit_expected_tensors(cfg, NULL, plan_w_one, &c);
    *block_bytes = c.block;
    *other_bytes = c.other;
}

static void plan_upcast_one(void *ctx, const char *name, int ndim, const int64_t *shape) {
    size_t *bytes = ctx;
    if (ndim != 2 || strncmp(name, "blocks.0.", 9) != 0) return; /* block 0's matrices */
    *bytes += align64(sizeof(float) * (size_t)(shape[0] * shape[1]));
}

size_t wr_dit_plan_upcast(const wr_dit_config *cfg) {
    size_t bytes = 0;
    wr_dit_expected_tensors(cfg, NULL, plan_upcast_one, &bytes);
    return bytes;
}

/* One text's K or V of one block in the text cache: [S, D] in the compute dtype, 64-byte
 * aligned. */
static size_t tc_tensor_bytes(const wr_dit *m, int64_t S) {
    return align64((size_t)(S * m->D) * wr_dtype_size(m->cdt));
}

static size_t tc_bytes(const wr_dit *m, int64_t S) {
    return (size_t)m->tc_n * (size_t)m->cfg.num_layers * 2 * tc_tensor_bytes(m, S);
}

static size_t plan_bytes(const wr_dit *m, int64_t tokens, int64_t text_rows) {
    wr_carve c = {0};
    dit_acts a;
    plan(&c, m, (tokens + m->P - 1) / m->P, tokens, text_rows, &a);
    return c.used * sizeof(float) + tc_bytes(m, text_rows);
}

size_t wr_dit_workspace_bytes(const wr_dit *m, int64_t tokens, int64_t text_rows) {
    return plan_bytes(m, tokens, text_rows) + m->upc_bytes;
}

size_t wr_dit_upcast_bytes(const wr_dit *m) {
    return m->upc_bytes;
}

/* diffusers get_timestep_embedding(t, freq_dim, flip_sin_to_cos=True, downscale_freq_shift=0),
 * computed in f32 as PyTorch does: [cos(t*w_j), sin(t*w_j)], w_j = exp(-ln(1e4) * j / half). */
static void timestep_sinusoid(float *s, int64_t dim, float t) {
    const int64_t half = dim / 2;
    const float neg_log = -(float)log(10000.0);
    for (int64_t j = 0; j < half; j++) {
        float w = expf(neg_log * (float)j / (float)half);
        float arg = t * w;
        s[j] = cosf(arg);
        s[half + j] = sinf(arg);
    }
    if (dim % 2) s[dim - 1] = 0.0f;
}

/* RoPE tables for tokens n0 .. n0 + L - 1 of the grid (diffusers WanRotaryPosEmbed; tokens
 * past the grid, a shard's padding, get positions past it): head dim split into
 * t : h : w = HD - 4*(HD/6) : 2*(HD/6) : 2*(HD/6) real dims; pair p of the t part rotates by
 * f * 10000^(-2p / t_dim), computed in double and stored as f32. */
static void rope_tables(float *cosv, float *sinv, int64_t HD, int64_t Hp, int64_t Wp, int64_t n0,
                        int64_t L) {
    const int64_t hdim = 2 * (HD / 6), tdim = HD - 2 * hdim, P = HD / 2;
    double inv[WR_DIT_MAX_PAIRS];
    int axis[WR_DIT_MAX_PAIRS];
    for (int64_t p = 0; p < P; p++) { /* per pair: which axis, and its inverse frequency */
        int64_t j, dim;
        if (p < tdim / 2)
            axis[p] = 0, j = p, dim = tdim;
        else if (p < tdim / 2 + hdim / 2)
            axis[p] = 1, j = p - tdim / 2, dim = hdim;
        else
            axis[p] = 2, j = p - tdim / 2 - hdim / 2, dim = hdim;
        inv[p] = 1.0 / pow(10000.0, (double)(2 * j) / (double)dim);
    }
    for (int64_t i = 0; i < L; i++) { /* tokens n0 .. n0 + L - 1: global positions */
        const int64_t n = n0 + i, pos[3] = {n / (Hp * Wp), (n / Wp) % Hp, n % Wp};
        for (int64_t p = 0; p < P; p++) {
            double ang = (double)pos[axis[p]] * inv[p];
            cosv[i * P + p] = (float)cos(ang);
            sinv[i * P + p] = (float)sin(ang);
        }
    }
}

/* y = linear(x) */
static wr_status lin(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_linear *l) {
    return wr_op_matmul_scaled(be, y, x, &l->weight.t, &l->bias, l->weight.scale);
}

/* y = gelu_tanh(linear(x)) */
static wr_status lin_gelu(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_linear *l) {
    return wr_op_linear_gelu(be, y, x, &l->weight.t, &l->bias, l->weight.scale);
}

/* x += gate * linear(a) (gate NULL: 1); tmp [rows, out] f32 holds the product */
static wr_status lin_residual(wr_backend *be, wr_tensor *x, const wr_tensor *a, const wr_linear *l,
                              const wr_tensor *gate, wr_tensor *tmp) {
    return wr_op_linear_residual(be, x, a, &l->weight.t, &l->bias, l->weight.scale, gate, tmp);
}

static wr_tensor as_heads(const wr_tensor *t, int64_t NH, int64_t HD) {
    return wr_tensor_make(t->data, t->dtype, 3, (int64_t[]){t->shape[0], NH, HD});
}

static wr_tensor row(const wr_tensor *t, int64_t r) {
    wr_tensor v;
    WR_ASSERT(wr_tensor_select(&v, t, 1, (int64_t[]){r}) == WR_OK);
    return v;
}

/* ---- context parallelism ---- */

const char *wr_cp_mode_name(wr_cp_mode mode) {
    return mode == WR_CP_ULYSSES ? "ulysses" : mode == WR_CP_RING ? "ring" : "auto";
}

int wr_cp_mode_parse(const char *s) {
    if (strcmp(s, "auto") == 0) return WR_CP_AUTO;
    if (strcmp(s, "ulysses") == 0) return WR_CP_ULYSSES;
    if (strcmp(s, "ring") == 0) return WR_CP_RING;
    return -1;
}

wr_status wr_dit_set_parallel(wr_dit *m, wr_comm *cp, wr_cp_mode mode) {
    const int P = cp ? wr_comm_size(cp) : 1;
    if (mode == WR_CP_ULYSSES && m->NH % P != 0)
        return WR_FAIL(WR_ERR_CONFIG,
                       "--cp ulysses needs the %lld attention heads to divide by the %d "
                       "context-parallel ranks; use --cp ring (any rank count) or --cp auto",
                       (long long)m->NH, P);
    m->cp = P > 1 ? cp : NULL;
    m->P = P;
    m->cp_rank = P > 1 ? wr_comm_rank(cp) : 0;
    m->mode = P == 1                                 ? WR_CP_AUTO
              : mode == WR_CP_AUTO && m->NH % P == 0 ? WR_CP_ULYSSES
              : mode == WR_CP_AUTO                   ? WR_CP_RING
                                                     : mode;
    /* the collectives read and write the workspace, device memory on every backend (the
     * communicator reaches a CPU "device" through the backend) */
#ifdef WR_COMM_HAS_BACKEND
    if (cp) wr_comm_set_backend(cp, m->be);
    m->where = WR_MEM_DEVICE;
#else
    /* until the communicator takes a backend: host buffers on the CPU backend */
    m->where = m->be->kind == WR_BACKEND_CPU ? WR_MEM_HOST : WR_MEM_DEVICE;
#endif
    wr_dit_release_workspace(m); /* the plan changes: rebuilt on the next forward */
    return WR_OK;
}

wr_cp_mode wr_dit_cp_mode(const wr_dit *m) {
    return m->mode;
}

/* Ulysses: q, k, v [Ls, NH, HD] token shards -> all-to-all -> [P * Ls, NH/P, HD] head shards
 * over the whole (padded) sequence; attention over the L real keys and queries; all-to-all
 * back into a [Ls, NH, HD]. Only data moves here (the attention of a head is that of one rank);
 * the projections around it run on Ls rows instead of L, and a BLAS kernel may give a row other
 * bits with another row count, so the forward matches one rank to an NMSE bound, not bitwise. */
static wr_status attention_ulysses(wr_dit *m, dit_acts *a, const wr_attn_params *ap) {
    wr_backend *be = m->be;
    const int64_t Ls = a->x.shape[0], D = m->D, P = m->P, NHr = m->NH / P, cw = NHr * m->HD;
    const size_t es = wr_dtype_size(a->q.dtype); /* q, k, v, out and the staging alike */
    const size_t block = es * (size_t)(Ls * cw);
    const size_t row = es * (size_t)D, run = es * (size_t)cw;
    wr_tensor *src[3] = {&a->q, &a->k, &a->v};
    /* staging: pack, and og and a, which are free until the attention / the unpack writes them
     * (each [Ls, D] elements); then one grouped exchange of the three (one NCCL group) */
    void *const stage[3] = {a->pack.data, a->og.data, a->a.data};
    void *const recv[3] = {a->qg.data, a->kg.data, a->vg.data};
    for (int i = 0; i < 3; i++) {
        /* pack: plane r = heads r*NHr.. of every token          [Ls, D] -> [P, Ls, cw] */
        const wr_copy3d pack = {.dir = WR_COPY_D2D,
                                .dst = stage[i],
                                .src = src[i]->data,
                                .width = run,
                                .rows = Ls,
                                .planes = P,
                                .dpitch = run,
                                .dplane = block,
                                .spitch = row,
                                .splane = run};
        WR_TRY(wr_copy_3d(be, &pack));
    }
    WR_TRY(wr_comm_alltoall3(m->cp, recv, (const void *const *)stage, block, m->where));
    const int64_t L = a->Lg;
    wr_tensor q, k, v, o;
    WR_TRY(wr_tensor_slice0(&q, &a->qg, 0, L));
    WR_TRY(wr_tensor_slice0(&k, &a->kg, 0, L));
    WR_TRY(wr_tensor_slice0(&v, &a->vg, 0, L));
    WR_TRY(wr_tensor_slice0(&o, &a->og, 0, L));
    WR_TRY(wr_op_attention(be, &o, NULL, &q, &k, &v, ap));
    if (P * Ls > L) /* the padding's rows: defined values, never used */
        WR_TRY(wr_dev_memset0(be, (char *)a->og.data + es * (size_t)(L * cw),
                              es * (size_t)((P * Ls - L) * cw)));
    WR_TRY(wr_comm_alltoall(m->cp, a->pack.data, a->og.data, block, m->where));
    /* unpack: plane r (from rank r) = its heads of my tokens    [P, Ls, cw] -> [Ls, D] */
    const wr_copy3d unpack = {.dir = WR_COPY_D2D,
                              .dst = a->a.data,
                              .src = a->pack.data,
                              .width = run,
                              .rows = Ls,
                              .planes = P,
                              .dpitch = row,
                              .dplane = run,
                              .spitch = run,
                              .splane = block};
    WR_TRY(wr_copy_3d(be, &unpack));
    return WR_OK;
}

/* Ring: K/V shards travel around the ring (to rank + 1, from rank - 1), the next one in flight
 * while this one is used; each shard's attention (over its real keys only) is merged into the
 * running output by log-sum-exp. Any P; the result equals one rank's to rounding. */
static wr_status attention_ring(wr_dit *m, dit_acts *a, const wr_attn_params *ap) {
    wr_backend *be = m->be;
    const int64_t Ls = a->x.shape[0], D = m->D, P = m->P, L = a->Lg;
    const wr_dtype kd = a->k.dtype; /* k, v and the shards alike */
    const size_t half = wr_dtype_size(kd) * (size_t)(Ls * D);
    char *cur = a->kv0.data, *next = a->kv1.data;
    WR_TRY(wr_dev_copy(be, cur, a->k.data, half));
    WR_TRY(wr_dev_copy(be, cur + half, a->v.data, half));
    const int dst = (int)((m->cp_rank + 1) % P), srcr = (int)((m->cp_rank + P - 1) % P);
    wr_tensor qh = as_heads(&a->q, m->NH, m->HD), oh = as_heads(&a->o, m->NH, m->HD);
    wr_tensor o2 = as_heads(&a->o2, m->NH, m->HD);
    int have = 0;
    for (int64_t j = 0; j < P; j++) {
        const int64_t s = (m->cp_rank - j + P) % P; /* the shard held now came from rank s */
        wr_comm_req *req = NULL;
        if (j < P - 1)
            WR_TRY(wr_comm_isendrecv(m->cp, cur, dst, next, srcr, 2 * half, m->where, &req));
        const int64_t ns = L - s * Ls < 0 ? 0 : L - s * Ls < Ls ? L - s * Ls : Ls;
        wr_status st = WR_OK;
        if (ns > 0) {
            wr_tensor k = wr_tensor_make(cur, kd, 3, (int64_t[]){ns, m->NH, m->HD});
            wr_tensor v = wr_tensor_make(cur + half, kd, 3, (int64_t[]){ns, m->NH, m->HD});
            if (!have) {
                st = wr_op_attention(be, &oh, &a->lse, &qh, &k, &v, ap);
                have = 1;
            } else {
                st = wr_op_attention(be, &o2, &a->lse2, &qh, &k, &v, ap);
                if (st == WR_OK) st = wr_op_attn_merge(be, &oh, &a->lse, &o2, &a->lse2);
            }
        }
        wr_status sw = wr_comm_wait(req);
        WR_TRY(st);
        WR_TRY(sw);
        char *t = cur;
        cur = next, next = t;
    }
    if (a->o.data != a->a.data) { /* a := 0 + o: the f32 merge rounded once into a */
        WR_TRY(wr_dev_memset0(be, a->a.data, wr_tensor_nbytes(&a->a)));
        WR_TRY(wr_op_gated_residual(be, &a->a, &a->o, NULL));
    }
    return WR_OK;
}

/* ---- per-token modulation: runs of equal timesteps ---- */

/* The run holding row r of the shard (the runs cover [0, L) in order). */
static int64_t run_at(const dit_acts *a, int64_t r) {
    int64_t lo = 0, hi = a->nruns - 1;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (a->runs[mid].r0 + a->runs[mid].n <= r)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* diffusers `norm(x.float()) * (1 + scale) + shift` with the scale and shift of each token's
 * timestep: per run, rows js (scale) and jh (shift) of its modulation (mod [K, n, D]), over the
 * run's rows. One run (the scalar forward, one timestep): the one call over every row. tmp: as
 * wr_op_layer_norm_modulate's ([L, D] f32), sliced alike. */
static wr_status ln_modulate_runs(wr_dit *m, const dit_acts *a, wr_tensor *y, const wr_tensor *x,
                                  const wr_tensor *mod, int64_t js, int64_t jh, wr_tensor *tmp) {
    const float eps = (float)m->cfg.eps;
    for (int64_t i = 0; i < a->nruns; i++) {
        const dit_run *r = &a->runs[i];
        const wr_tensor mk = row(mod, r->k); /* [n, D] */
        wr_tensor scale = row(&mk, js), shift = row(&mk, jh), ys, xs, ts;
        WR_TRY(wr_tensor_slice0(&ys, y, r->r0, r->n)); /* [run, D] */
        WR_TRY(wr_tensor_slice0(&xs, x, r->r0, r->n));
        WR_TRY(wr_tensor_slice0(&ts, tmp, r->r0, r->n));
        WR_TRY(wr_op_layer_norm_modulate(m->be, &ys, &xs, &scale, &shift, eps, &ts));
    }
    return WR_OK;
}

/* x += linear(act) * gate for rows [r0, r0 + nr) of the shard (x, act and tmp [nr, *] are those
 * rows), the gate row jg of each token's modulation. Rows of one run: the fused op with that
 * run's gate, the call the scalar forward makes; rows of several: the one GEMM into tmp (the
 * fused op's own first half, so every row's product has the bits it has there), then each run's
 * gated residual over its rows. */
static wr_status lin_residual_runs(wr_dit *m, const dit_acts *a, wr_tensor *x, const wr_tensor *act,
                                   const wr_linear *l, const wr_tensor *mod, int64_t jg,
                                   wr_tensor *tmp, int64_t r0) {
    const int64_t nr = x->shape[0];
    int64_t i = run_at(a, r0);
    if (a->runs[i].r0 + a->runs[i].n >= r0 + nr) {
        const wr_tensor mk = row(mod, a->runs[i].k);
        const wr_tensor gate = row(&mk, jg); /* [D] */
        return lin_residual(m->be, x, act, l, &gate, tmp);
    }
    WR_TRY(lin(m->be, tmp, act, l)); /* tmp: [nr, D] */
    for (; i < a->nruns && a->runs[i].r0 < r0 + nr; i++) {
        const dit_run *r = &a->runs[i];
        const int64_t s = r->r0 > r0 ? r->r0 : r0;
        const int64_t e = r->r0 + r->n < r0 + nr ? r->r0 + r->n : r0 + nr;
        const wr_tensor mk = row(mod, r->k);
        wr_tensor gate = row(&mk, jg), xs, ts;
        WR_TRY(wr_tensor_slice0(&xs, x, s - r0, e - s)); /* [e - s, D] */
        WR_TRY(wr_tensor_slice0(&ts, tmp, s - r0, e - s));
        WR_TRY(wr_op_gated_residual(m->be, &xs, &ts, &gate));
    }
    return WR_OK;
}

/* diffusers WanTransformerBlock.forward. kc, vc [S, D]: the text's cross-attention keys and
 * values, computed from a->ctx when text_kv (else already there: the text cache). The
 * modulation per token (temb.ndim == 4, Wan2.2 TI2V) or per forward (ndim 3) is one code path:
 * a row of a->mod per distinct timestep, applied over each run of tokens that have it. */
static wr_status block_forward(wr_dit *m, const wr_dit_block *b, dit_acts *a, wr_tensor *kc,
                               wr_tensor *vc, int text_kv) {
    wr_backend *be = m->be;
    const float eps = (float)m->cfg.eps;
    const wr_attn_params ap = {.scale = 1.0f / sqrtf((float)m->HD)};
    /* mod[k] = scale_shift_table + e6[k] (f32), rows shift1, scale1, gate1, shift2, scale2,
     * gate2                                                 mod: [nk, 6, D] */
    wr_tensor sst =
        wr_tensor_make(b->scale_shift_table.data, WR_DTYPE_F32, 2, (int64_t[]){6, m->D});
    for (int64_t k = 0; k < a->nk; k++) {
        wr_tensor mk = row(&a->mod, k), ek = row(&a->e6, k); /* [6, D] */
        WR_TRY(wr_op_add(be, &mk, &sst, &ek));
    }

    /* (a) self-attention */
    WR_TRY(ln_modulate_runs(m, a, &a->h, &a->x, &a->mod, 1, 0, &a->hf));
    /* h: [L, D] norm1(x)*(1+scale1)+shift1 */
    WR_TRY(lin(be, &a->q, &a->h, &b->attn1.to_q)); /* q: [L, D] */
    WR_TRY(lin(be, &a->k, &a->h, &b->attn1.to_k)); /* k: [L, D] */
    WR_TRY(lin(be, &a->v, &a->h, &b->attn1.to_v)); /* v: [L, D] */
    wr_tensor qh = as_heads(&a->q, m->NH, m->HD), kh = as_heads(&a->k, m->NH, m->HD);
    wr_tensor vh = as_heads(&a->v, m->NH, m->HD), oh = as_heads(&a->a, m->NH, m->HD);
    /* q, k: [L, NH, HD], RMSNorm over the full D, then RoPE */
    WR_TRY(wr_op_rms_norm_rope(be, &qh, &b->attn1.norm_q, eps, &a->cos, &a->sin));
    WR_TRY(wr_op_rms_norm_rope(be, &kh, &b->attn1.norm_k, eps, &a->cos, &a->sin));
    if (m->P == 1)
        WR_TRY(wr_op_attention(be, &oh, NULL, &qh, &kh, &vh, &ap)); /* a: [L, NH, HD] */
    else if (m->mode == WR_CP_ULYSSES)
        WR_TRY(attention_ulysses(m, a, &ap));
    else
        WR_TRY(attention_ring(m, a, &ap));
    WR_TRY(lin_residual_runs(m, a, &a->x, &a->a, &b->attn1.to_out, &a->mod, 2, &a->hf, 0));
    /* x += o*gate1 */

    /* (b) cross-attention: keys and values from the text rows, no mask, no RoPE; norm2 is the
     * affine LayerNorm with cross_attn_norm, an identity without */
    const wr_tensor *xn = &a->x;
    if (m->cfg.cross_attn_norm) {
        WR_TRY(wr_op_layer_norm(be, &a->h, &a->x, &b->norm2.weight, &b->norm2.bias, eps));
        xn = &a->h;
    }
    WR_TRY(lin(be, &a->q, xn, &b->attn2.to_q)); /* q: [L, D] */
    if (text_kv) {
        WR_TRY(lin(be, kc, &a->ctx, &b->attn2.to_k)); /* kc: [S, D] */
        WR_TRY(lin(be, vc, &a->ctx, &b->attn2.to_v)); /* vc: [S, D] */
    }
    WR_TRY(wr_op_rms_norm(be, &a->q, &a->q, &b->attn2.norm_q, eps));
    if (text_kv) WR_TRY(wr_op_rms_norm(be, kc, kc, &b->attn2.norm_k, eps));
    wr_tensor kch = as_heads(kc, m->NH, m->HD), vch = as_heads(vc, m->NH, m->HD);
    WR_TRY(wr_op_attention(be, &oh, NULL, &qh, &kch, &vch, &ap));           /* a: [L, NH, HD] */
    WR_TRY(lin_residual(be, &a->x, &a->a, &b->attn2.to_out, NULL, &a->hf)); /* x += o */

    /* (c) feed-forward, in token chunks so the [*, FF] activation stays bounded */
    WR_TRY(ln_modulate_runs(m, a, &a->h, &a->x, &a->mod, 4, 3, &a->hf)); /* norm3, scale2/shift2 */
    const int64_t L = a->x.shape[0];
    for (int64_t r0 = 0; r0 < L; r0 += a->ffn.shape[0]) {
        const int64_t nr = L - r0 < a->ffn.shape[0] ? L - r0 : a->ffn.shape[0];
        wr_tensor hin, xr, fout, hid;
        WR_TRY(wr_tensor_slice0(&hin, &a->h, r0, nr));   /* [nr, D] */
        WR_TRY(wr_tensor_slice0(&xr, &a->x, r0, nr));    /* [nr, D] */
        WR_TRY(wr_tensor_slice0(&fout, &a->ff, r0, nr)); /* [nr, D] f32 */
        WR_TRY(wr_tensor_slice0(&hid, &a->ffn, 0, nr));  /* [nr, FF] */
        WR_TRY(lin_gelu(be, &hid, &hin, &b->ffn.net_0_proj));
        WR_TRY(lin_residual_runs(m, a, &xr, &hid, &b->ffn.net_2, &a->mod, 5, &fout, r0));
        /* x += f * gate2 */
    }
    return WR_OK;
}

/* The timesteps of this shard's tokens [n0, n0 + L) of the Lg (token g's: tt[g * stride]; the
 * scalar forward: stride 0): their distinct values by bits (-0 is not 0), in the order of first
 * appearance, into m->h_tval (*nk), and the runs of consecutive tokens with the same value into
 * m->h_trun (*nruns). Padding tokens (past Lg) take token Lg - 1's value: they extend the last
 * run. WR_ERR_INVALID_ARG past kmax values (what the workspace has rows for). */
static wr_status token_runs(wr_dit *m, const float *tt, int64_t stride, int64_t Lg, int64_t n0,
                            int64_t L, int64_t kmax, int64_t *nk, int64_t *nruns) {
    *nk = *nruns = 0;
    if (L > m->h_tcap) {
        float *v = realloc(m->h_tval, sizeof(float) * (size_t)L);
        if (v) m->h_tval = v;
        dit_run *r = v ? realloc(m->h_trun, sizeof(dit_run) * (size_t)L) : NULL;
        if (r == NULL)
            return WR_FAIL(WR_ERR_OOM_HOST,
                           "out of host memory for the timesteps of %lld DiT tokens", (long long)L);
        m->h_trun = r, m->h_tcap = L;
    }
    uint32_t prev = 0;
    int64_t K = 0, R = 0;
    for (int64_t i = 0; i < L; i++) {
        const int64_t g = n0 + i < Lg ? n0 + i : Lg - 1;
        const float t = tt[g * stride];
        uint32_t bits;
        memcpy(&bits, &t, sizeof bits);
        if (R > 0 && bits == prev) {
            m->h_trun[R - 1].n++;
            continue;
        }
        int64_t k = 0;
        for (; k < K; k++) {
            uint32_t kb;
            memcpy(&kb, &m->h_tval[k], sizeof kb);
            if (kb == bits) break;
        }
        if (k == K) {
            if (K == kmax)
                return WR_FAIL(WR_ERR_INVALID_ARG,
                               "DiT per-token timesteps: tokens %lld..%lld hold more than %lld "
                               "distinct values, the count the workspace is planned for "
                               "(wr_dit_set_token_timesteps: %lld)",
                               (long long)n0, (long long)(n0 + L - 1), (long long)kmax,
                               (long long)m->tt_n);
            m->h_tval[K++] = t;
        }
        m->h_trun[R++] = (dit_run){.r0 = i, .n = 1, .k = k};
        prev = bits;
    }
    /* their sinusoids' host staging (here: a failure is agreed with the other ranks) */
    const size_t nsin = (size_t)(K * m->cfg.freq_dim);
    if (nsin > m->h_sinus_cap) {
        float *p = realloc(m->h_sinus, sizeof(float) * nsin);
        if (p == NULL)
            return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for %lld timestep sinusoids",
                           (long long)K);
        m->h_sinus = p, m->h_sinus_cap = nsin;
    }
    *nk = K, *nruns = R;
    return WR_OK;
}

static wr_status forward_impl(wr_dit *m, wr_tensor *out, const wr_tensor *latent, const float *tt,
                              int64_t n_tt, const wr_tensor *enc, int text_slot);

wr_status wr_dit_forward(wr_dit *m, wr_tensor *out, const wr_tensor *latent, float timestep,
                         const wr_tensor *enc) {
    return wr_dit_forward_ex(m, out, latent, timestep, enc, -1);
}

wr_status wr_dit_forward_ex(wr_dit *m, wr_tensor *out, const wr_tensor *latent, float timestep,
                            const wr_tensor *enc, int text_slot) {
    return forward_impl(m, out, latent, &timestep, -1, enc, text_slot);
}

wr_status wr_dit_forward_tokens(wr_dit *m, wr_tensor *out, const wr_tensor *latent,
                                const float *t_tokens, int64_t n_tokens, const wr_tensor *enc,
                                int text_slot) {
    if (t_tokens == NULL || n_tokens < 0)
        return WR_FAIL(WR_ERR_INVALID_ARG, "DiT per-token timesteps: t_tokens is %s, n_tokens %lld",
                       t_tokens ? "given" : "NULL", (long long)n_tokens);
    return forward_impl(m, out, latent, t_tokens, n_tokens, enc, text_slot);
}

/* The forward of both: n_tt < 0: one timestep *tt for every token (wr_dit_forward_ex), else
 * n_tt per-token timesteps tt (wr_dit_forward_tokens). */
static wr_status forward_impl(wr_dit *m, wr_tensor *out, const wr_tensor *latent, const float *tt,
                              int64_t n_tt, const wr_tensor *enc, int text_slot) {
    wr_backend *be = m->be;
    const wr_dit_config *c = &m->cfg;
    const int64_t pt = c->patch_size.v[0], ph = c->patch_size.v[1], pw = c->patch_size.v[2];
    if (latent->ndim != 4 || latent->shape[0] != c->in_channels || latent->shape[1] % pt ||
        latent->shape[2] % ph || latent->shape[3] % pw)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "DiT input must be [%lld, F, H, W] with F, H, W "
                       "multiples of the patch (%lld, %lld, %lld)",
                       (long long)c->in_channels, (long long)pt, (long long)ph, (long long)pw);
    if (enc->ndim != 2 || enc->shape[1] != c->text_dim)
        return WR_FAIL(WR_ERR_INVALID_ARG, "DiT text input must be [S, %lld]",
                       (long long)c->text_dim);
    if (out->ndim != 4 || out->shape[0] != c->out_channels || out->shape[1] != latent->shape[1] ||
        out->shape[2] != latent->shape[2] || out->shape[3] != latent->shape[3])
        return WR_FAIL(WR_ERR_INVALID_ARG, "DiT output must be [%lld, F, H, W] like the input",
                       (long long)c->out_channels);
    if (latent->dtype != WR_DTYPE_F32 || enc->dtype != WR_DTYPE_F32 || out->dtype != WR_DTYPE_F32)
        return WR_FAIL(WR_ERR_INVALID_ARG, "DiT input, text and output must be f32");
    if (text_slot < -1 || text_slot >= m->tc_n)
        return WR_FAIL(WR_ERR_INVALID_ARG, "DiT text slot %d: the text cache has %d slots",
                       text_slot, m->tc_n);
    const int64_t Fp = latent->shape[1] / pt, Hp = latent->shape[2] / ph,
                  Wp = latent->shape[3] / pw;
    /* diffusers' RoPE tables hold rope_max_seq_len positions per axis (its forward fails past) */
    if (Fp > c->rope_max_seq_len || Hp > c->rope_max_seq_len || Wp > c->rope_max_seq_len)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "the latent grid of %lld x %lld x %lld patches (frames x height x width) "
                       "is longer on an axis than the transformer's rope_max_seq_len %lld (%s/"
                       "config.json): use fewer frames or a smaller size",
                       (long long)Fp, (long long)Hp, (long long)Wp, (long long)c->rope_max_seq_len,
                       m->dir);
    const int64_t Lg = Fp * Hp * Wp, S = enc->shape[0];
    if (n_tt >= 0 && n_tt != Lg)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "DiT per-token timesteps: t_tokens holds %lld values, the latent %lld "
                       "tokens (%lld x %lld x %lld patches: frames x height x width, diffusers' "
                       "token order)",
                       (long long)n_tt, (long long)Lg, (long long)Fp, (long long)Hp, (long long)Wp);
    /* this rank's shard: tokens [n0, n0 + L) of the Lg, the real ones nreal, padding after */
    const int64_t L = (Lg + m->P - 1) / m->P, n0 = m->cp_rank * L;
    const int64_t nreal = Lg - n0 < 0 ? 0 : Lg - n0 < L ? Lg - n0 : L;

    /* the shard's timesteps: distinct values and runs (host; each rank its own tokens only) */
    int64_t nk = 0, nruns = 0;
    wr_status st = token_runs(m, tt, n_tt < 0 ? 0 : 1, Lg, n0, L, tt_rows(m, L), &nk, &nruns);

    /* the workspace, planned from the shapes (grown only when a larger shape comes) */
    wr_carve c0 = {0};
    dit_acts a;
    plan(&c0, m, L, Lg, S, &a);
    int moved = 0;
    if (st == WR_OK) st = wr_workspace_ensure(&m->ws, be, m->vram, c0.used * sizeof(float), &moved);
    if (moved) m->rope_key[0] = 0; /* the RoPE tables live in it */
    if (st == WR_OK) st = upcast_ensure(m);
    if (st == WR_OK && text_slot >= 0 && m->tc_rows != S) {
        /* the text cache laid out for S rows: every slot empty */
        wr_dit_text_cache_clear(m);
        m->tc_rows = 0;
        st = wr_workspace_ensure(&m->tc_ws, be, m->vram, tc_bytes(m, S), NULL);
        if (st == WR_OK) m->tc_rows = S;
    }
    if (m->cp) st = wr_comm_agree(m->cp, st); /* nobody waits in a collective for a failed rank */
    WR_TRY(st);
    wr_carve cw = {m->ws.p, 0, m->ws.bytes / sizeof(float)};
    plan(&cw, m, L, Lg, S, &a);
    a.Lg = Lg, a.n0 = n0, a.nreal = nreal;
    a.runs = m->h_trun, a.nruns = nruns, a.nk = nk;
    /* the text's K/V: computed in every block (no slot, or an empty one: then kept) or kept */
    const int text_kv = text_slot < 0 || !m->tc_full[text_slot];

    /* (0) the inputs into the workspace: latent [C, F, H, W], text [S, text_dim] */
    wr_tensor xd = *latent, ed = *enc, od = *out;
    xd.data = a.xin.data, ed.data = a.encin.data, od.data = a.outd.data;
    WR_TRY(wr_upload(be, xd.data, latent->data, wr_tensor_nbytes(latent)));
    if (text_kv) WR_TRY(wr_upload(be, ed.data, enc->data, wr_tensor_nbytes(enc)));

    /* (1) RoPE tables (the same every denoising step: built on the host and uploaded once per
     * shape) and (2) patch embedding                                  x: [L, D] */
    if (m->rope_key[0] != Fp || m->rope_key[1] != Hp || m->rope_key[2] != Wp ||
        m->rope_key[3] != S || m->rope_key[4] != n0 || m->rope_key[5] != L) {
        const size_t nt = (size_t)(L * (m->HD / 2)); /* floats per table: [L, HD/2] */
        if (2 * nt > m->h_rope_cap) {
            float *p = realloc(m->h_rope, sizeof(float) * 2 * nt);
            if (p == NULL)
                return WR_FAIL(WR_ERR_OOM_HOST,
                               "out of host memory for the RoPE tables of %lld tokens",
                               (long long)L);
            m->h_rope = p, m->h_rope_cap = 2 * nt;
        }
        rope_tables(m->h_rope, m->h_rope + nt, m->HD, Hp, Wp, n0, L);
        WR_TRY(wr_upload(be, a.cos.data, m->h_rope, sizeof(float) * nt));
        WR_TRY(wr_upload(be, a.sin.data, m->h_rope + nt, sizeof(float) * nt));
        m->rope_key[0] = Fp, m->rope_key[1] = Hp, m->rope_key[2] = Wp, m->rope_key[3] = S;
        m->rope_key[4] = n0, m->rope_key[5] = L;
    }
    if (nreal < L) /* padding tokens: zero rows, carried along and dropped at the end */
        WR_TRY(wr_dev_memset0(be, (float *)a.x.data + nreal * m->D,
                              sizeof(float) * (size_t)((L - nreal) * m->D)));
    if (nreal > 0) {
        wr_tensor xr;
        WR_TRY(wr_tensor_slice0(&xr, &a.x, 0, nreal));
        WR_TRY(wr_op_patch_embed_rows(be, &xr, &xd, &m->patch_embedding.weight,
                                      &m->patch_embedding.bias, n0));
    }
    WR_TRY(tap(m, "patch_embed", &a.x));

    /* (3) time embedding, one row per distinct timestep of the shard (diffusers computes one
     * per token, [L, D] and [L, 6D]: the same rows; the scalar forward is nk = 1)
     *      temb = linear_2(silu(linear_1(sinusoid)))                  temb: [nk, D] */
    const size_t nsin = (size_t)(nk * c->freq_dim); /* m->h_sinus holds them (token_runs) */
    for (int64_t k = 0; k < nk; k++)
        timestep_sinusoid(m->h_sinus + k * c->freq_dim, c->freq_dim, m->h_tval[k]);
    WR_TRY(wr_upload(be, a.sinus.data, m->h_sinus, sizeof(float) * nsin));
    const wr_tensor s2 =
        wr_tensor_make(a.sinus.data, WR_DTYPE_F32, 2, (int64_t[]){nk, c->freq_dim});
    wr_tensor t1 = wr_tensor_make(a.t1.data, WR_DTYPE_F32, 2, (int64_t[]){nk, m->D});
    wr_tensor temb = wr_tensor_make(a.temb.data, WR_DTYPE_F32, 2, (int64_t[]){nk, m->D});
    WR_TRY(lin(be, &t1, &s2, &m->condition_embedder.time_embedder.linear_1));
    WR_TRY(wr_op_silu(be, &t1, &t1));
    WR_TRY(lin(be, &temb, &t1, &m->condition_embedder.time_embedder.linear_2));
    WR_TRY(tap(m, "temb", &temb));
    /* e6 = time_proj(silu(temb))                                     e6: [nk, 6D] */
    wr_tensor tact = wr_tensor_make(a.temb_act.data, WR_DTYPE_F32, 2, (int64_t[]){nk, m->D});
    wr_tensor e6 = wr_tensor_make(a.e6.data, WR_DTYPE_F32, 2, (int64_t[]){nk, 6 * m->D});
    WR_TRY(wr_op_silu(be, &tact, &temb));
    WR_TRY(lin(be, &e6, &tact, &m->condition_embedder.time_proj));
    const wr_tensor e6t =
        wr_tensor_make(a.e6.data, WR_DTYPE_F32, 3, (int64_t[]){nk, 6, m->D}); /* as diffusers */
    WR_TRY(tap(m, "timestep_proj", &e6t));

    /* (4) text projection: ctx = linear_2(gelu_tanh(linear_1(enc)))  ctx: [S, D]
     * (only what the blocks' text K/V are computed from: not when the cache holds them) */
    if (text_kv) {
        WR_TRY(lin(be, &a.th, &ed, &m->condition_embedder.text_embedder.linear_1));
        WR_TRY(wr_op_gelu_tanh(be, &a.th, &a.th));
        WR_TRY(lin(be, &a.ctx, &a.th, &m->condition_embedder.text_embedder.linear_2));
        WR_TRY(tap(m, "text_proj", &a.ctx));
    }

    /* (5) the blocks */
    if (text_slot >= 0) m->tc_full[text_slot] = 0; /* until every block has its K/V */
    for (int64_t i = 0; i < c->num_layers; i++) {
        wr_tensor kc = a.kc, vc = a.vc; /* [S, D] this forward's, or the slot's of block i */
        if (text_slot >= 0) {
            const size_t tb = tc_tensor_bytes(m, S);
            char *p = (char *)m->tc_ws.p +
                      ((size_t)text_slot * (size_t)c->num_layers + (size_t)i) * 2 * tb;
            kc.data = p, vc.data = p + tb;
        }
        const wr_dit_block *b;
        WR_TRY(wr_dit_acquire(m, i, &b));
        st = block_forward(m, b, &a, &kc, &vc, text_kv);
        wr_dit_release(m, i);
        WR_TRY(st);
        char name[32];
        snprintf(name, sizeof name, "block.%lld", (long long)i);
        WR_TRY(tap(m, name, &a.x));
    }
    if (text_slot >= 0) m->tc_full[text_slot] = 1;

    /* (6) head: shift, scale = scale_shift_table[1,2,D] + temb[k] per distinct timestep (f32);
     * proj_out(LN(x)*(1+scale)+shift) with each token's                mod_out: [nk, 2, D] */
    wr_tensor sst =
        wr_tensor_make(m->scale_shift_table.data, WR_DTYPE_F32, 2, (int64_t[]){2, m->D});
    for (int64_t k = 0; k < nk; k++) {
        wr_tensor mk = row(&a.mod_out, k), tk = row(&temb, k); /* [2, D], [D] */
        WR_TRY(wr_op_add(be, &mk, &sst, &tk));
    }
    WR_TRY(ln_modulate_runs(m, &a, &a.h, &a.x, &a.mod_out, 1, 0, &a.hf));
    WR_TRY(lin(be, &a.head, &a.h, &m->proj_out)); /* head: [L, Cout*pt*ph*pw] */
    WR_TRY(tap(m, "head", &a.head));

    /* (7) unpatchify (context-parallel: every rank's head rows first, the padding dropped)
     *                                                                 out: [Cout, F, H, W] */
    wr_tensor head = a.head;
    if (m->P > 1) {
        WR_TRY(wr_comm_allgather(m->cp, a.head_all.data, a.head.data, wr_tensor_nbytes(&a.head),
                                 m->where));
        WR_TRY(wr_tensor_slice0(&head, &a.head_all, 0, Lg));
    }
    WR_TRY(wr_op_unpatchify(be, &od, &head, (int)pt, (int)ph, (int)pw));
    /* (8) the velocity to the caller */
    WR_TRY(wr_download(be, out->data, od.data, wr_tensor_nbytes(out)));
    if (m->tap) m->tap(m->tap_ctx, "output", out); /* host memory already */
    return WR_OK;
}

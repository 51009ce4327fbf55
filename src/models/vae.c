/*
 * vae.c — Wan2.1 VAE decoder: loading, the per-latent-frame causal decode with its feature
 * cache, and tiled decode, written after diffusers' AutoencoderKLWan / WanDecoder3d.
 */
#include "models/vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/log.h"
#include "kernels/ops.h"
#include "models/vae_common.h"
#include "models/loader.h"

/* WR_VAE_MAX_UP, WR_VAE_MAX_RES: core/modeldir.h, whose config reader enforces them */
#define WR_VAE_NBUF 5 /* workspace buffers */

/* A cached causal conv's previous input frames (models/vae_common.h). rep: the upsample3d
 * time_conv state "Rep" (diffusers marks the slot on latent frame 0). */
typedef wr_causal_cache vae_cache;

typedef wr_vae_conv vae_conv;     /* weight in storage dtype, bias f32 */
typedef wr_vae_resnet vae_resnet; /* (vae_common.h) */

enum { UP_NONE = 0, UP_2D = 2, UP_3D = 3 };

typedef struct vae_up {
    int nres, mode;
    int64_t dim; /* out_dim: the resnets' width and the upsampler's input */
    vae_resnet res[WR_VAE_MAX_RES];
    vae_conv resample;  /* upsamplers.0.resample.1: Conv2d dim -> dim/2, 3x3 */
    vae_conv time_conv; /* upsamplers.0.time_conv: (3,1,1) dim -> 2 dim (upsample3d) */
} vae_up;

struct wr_vae {
    wr_backend *be;
    wr_vae_config cfg;
    char dir[WR_PATH_CAP];
    wr_st_set *weights;
    int64_t z, r, out_ch;
    int nup, ntime; /* up blocks; temporal upsamplers */
    vae_conv post_quant, conv_in, conv_out;
    vae_resnet mid[2];
    wr_vae_attn attn;
    vae_up up[WR_VAE_MAX_UP];
    wr_tensor norm_out;
    wr_tensor std_t, mean_t; /* [z] f32: de-normalisation */
    /* the loader: the f32 vectors (host; freed once uploaded) and every weight's device copy
     * (ld.dev: nothing allocated where be->host_visible, the weights used in place) */
    wr_loader ld;
    wr_vae_tap_fn tap;
    void *tap_ctx;
    int tapping; /* taps fire (latent frame 0 of an untiled decode or of the first tile) */
    /* workspace: WR_VAE_NBUF buffers of buf_cap floats each */
    float *buf[WR_VAE_NBUF];
    size_t buf_cap;
    /* bytes held: [0] the decoder (workspace, caches, the tile being decoded), [1] the tile
     * blending margins; and their peaks */
    size_t live[2], peak[2];
    wr_vram *vram;    /* when set, every buffer comes from it (category vae) */
    uint64_t w_bytes; /* the weights' bytes, counted in vram as resident while it is set */
};

/* ---- tracked allocations ---- */

enum { MEM_DECODER = 0, MEM_BLEND = 1 };

static wr_status vae_alloc_kind(wr_vae *m, float **p, size_t floats, int kind) {
    *p = NULL;
    if (floats == 0) return WR_OK;
    if (m->vram)
        WR_TRY(wr_vram_alloc(m->vram, WR_MEM_VAE, floats * sizeof(float), (void **)p));
    else
        WR_TRY(m->be->iface->alloc(m->be, (void **)p, floats * sizeof(float)));
    m->live[kind] += floats * sizeof(float);
    if (m->live[kind] > m->peak[kind]) m->peak[kind] = m->live[kind];
    return WR_OK;
}

static void vae_release_kind(wr_vae *m, float **p, size_t floats, int kind) {
    if (*p == NULL) return;
    if (m->vram)
        wr_vram_free(m->vram, *p);
    else
        m->be->iface->free(m->be, *p);
    m->live[kind] -= floats * sizeof(float);
    *p = NULL;
}

static wr_status vae_alloc(wr_vae *m, float **p, size_t floats) {
    return vae_alloc_kind(m, p, floats, MEM_DECODER);
}

static void vae_release(wr_vae *m, float **p, size_t floats) {
    vae_release_kind(m, p, floats, MEM_DECODER);
}

size_t wr_vae_peak_bytes(const wr_vae *m) {
    return m->peak[MEM_DECODER];
}

size_t wr_vae_blend_peak_bytes(const wr_vae *m) {
    return m->peak[MEM_BLEND];
}

void wr_vae_reset_peak(wr_vae *m) {
    m->peak[0] = m->live[0];
    m->peak[1] = m->live[1];
}

/* ---- the tensor inventory (and binding) ---- */

typedef void (*walk_fn)(void *ctx, const char *name, int ndim, const int64_t *shape,
                        wr_tensor *dst);

typedef struct walker {
    walk_fn fn;
    void *ctx;
    int64_t count, params;
} walker;

static void emit(walker *wk, wr_tensor *dst, const char *name, int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    wk->params += n;
    wk->count++;
    if (wk->fn) wk->fn(wk->ctx, name, ndim, shape, dst);
}

/* prefix.weight [co, ci, kt, kh, kw] (kt = 0: a 4-D Conv2d weight [co, ci, kh, kw]) and .bias */
static void emit_conv(walker *wk, vae_conv *cv, const char *prefix, int64_t co, int64_t ci,
                      int64_t kt, int64_t kh, int64_t kw) {
    char name[160];
    snprintf(name, sizeof name, "%s.weight", prefix);
    if (kt > 0)
        emit(wk, cv ? &cv->w : NULL, name, 5, (const int64_t[]){co, ci, kt, kh, kw});
    else
        emit(wk, cv ? &cv->w : NULL, name, 4, (const int64_t[]){co, ci, kh, kw});
    snprintf(name, sizeof name, "%s.bias", prefix);
    emit(wk, cv ? &cv->b : NULL, name, 1, (const int64_t[]){co});
}

static void emit_resnet(walker *wk, vae_resnet *rs, const char *prefix, int64_t ci, int64_t co) {
    char name[160];
    if (rs) {
        rs->cin = ci;
        rs->cout = co;
        rs->has_sc = ci != co;
    }
    snprintf(name, sizeof name, "%s.norm1.gamma", prefix);
    emit(wk, rs ? &rs->norm1 : NULL, name, 4, (const int64_t[]){ci, 1, 1, 1});
    snprintf(name, sizeof name, "%s.conv1", prefix);
    emit_conv(wk, rs ? &rs->conv1 : NULL, name, co, ci, 3, 3, 3);
    snprintf(name, sizeof name, "%s.norm2.gamma", prefix);
    emit(wk, rs ? &rs->norm2 : NULL, name, 4, (const int64_t[]){co, 1, 1, 1});
    snprintf(name, sizeof name, "%s.conv2", prefix);
    emit_conv(wk, rs ? &rs->conv2 : NULL, name, co, co, 3, 3, 3);
    if (ci != co) {
        snprintf(name, sizeof name, "%s.conv_shortcut", prefix);
        emit_conv(wk, rs ? &rs->sc : NULL, name, co, ci, 1, 1, 1);
    }
}

/* Walks diffusers' WanDecoder3d (Wan2.1, is_residual False) for config c; with m, also fills
 * the layer structure (widths, modes) and hands each tensor's destination to fn. */
static void walk(const wr_vae_config *c, wr_vae *m, walker *wk) {
    const int64_t z = c->z_dim, dim = c->decoder_base_dim, nm = c->dim_mult.n;
    int64_t dims[WR_VAE_MAX_UP + 1];
    dims[0] = dim * c->dim_mult.v[nm - 1];
    for (int64_t i = 0; i < nm; i++) dims[i + 1] = dim * c->dim_mult.v[nm - 1 - i];
    char p[128];
    emit_conv(wk, m ? &m->post_quant : NULL, "post_quant_conv", z, z, 1, 1, 1);
    emit_conv(wk, m ? &m->conv_in : NULL, "decoder.conv_in", dims[0], z, 3, 3, 3);
    emit_resnet(wk, m ? &m->mid[0] : NULL, "decoder.mid_block.resnets.0", dims[0], dims[0]);
    emit(wk, m ? &m->attn.norm : NULL, "decoder.mid_block.attentions.0.norm.gamma", 3,
         (const int64_t[]){dims[0], 1, 1});
    emit_conv(wk, m ? &m->attn.qkv : NULL, "decoder.mid_block.attentions.0.to_qkv", 3 * dims[0],
              dims[0], 0, 1, 1);
    emit_conv(wk, m ? &m->attn.proj : NULL, "decoder.mid_block.attentions.0.proj", dims[0], dims[0],
              0, 1, 1);
    emit_resnet(wk, m ? &m->mid[1] : NULL, "decoder.mid_block.resnets.1", dims[0], dims[0]);
    if (m) m->ntime = 0;
    for (int64_t i = 0; i < nm; i++) {
        int64_t in = i > 0 ? dims[i] / 2 : dims[i];
        const int64_t out = dims[i + 1];
        /* temperal_upsample = temperal_downsample reversed */
        const int up_flag = i != nm - 1;
        const int mode = !up_flag ? UP_NONE : c->temperal_downsample.v[nm - 2 - i] ? UP_3D : UP_2D;
        vae_up *u = m ? &m->up[i] : NULL;
        if (u) {
            u->nres = (int)c->num_res_blocks + 1;
            u->mode = mode;
            u->dim = out;
            if (mode == UP_3D) m->ntime++;
        }
        for (int64_t j = 0; j < c->num_res_blocks + 1; j++) {
            snprintf(p, sizeof p, "decoder.up_blocks.%lld.resnets.%lld", (long long)i,
                     (long long)j);
            emit_resnet(wk, u ? &u->res[j] : NULL, p, in, out);
            in = out;
        }
        if (mode != UP_NONE) {
            snprintf(p, sizeof p, "decoder.up_blocks.%lld.upsamplers.0.resample.1", (long long)i);
            emit_conv(wk, u ? &u->resample : NULL, p, out / 2, out, 0, 3, 3);
        }
        if (mode == UP_3D) {
            snprintf(p, sizeof p, "decoder.up_blocks.%lld.upsamplers.0.time_conv", (long long)i);
            emit_conv(wk, u ? &u->time_conv : NULL, p, 2 * out, out, 3, 1, 1);
        }
    }
    emit(wk, m ? &m->norm_out : NULL, "decoder.norm_out.gamma", 4,
         (const int64_t[]){dims[nm], 1, 1, 1});
    emit_conv(wk, m ? &m->conv_out : NULL, "decoder.conv_out", c->out_channels, dims[nm], 3, 3, 3);
    if (m) m->nup = (int)nm;
}

typedef struct count_ctx {
    void (*fn)(void *ctx, const char *name, int ndim, const int64_t *shape);
    void *ctx;
} count_ctx;

static void forward_public(void *ctx, const char *name, int ndim, const int64_t *shape,
                           wr_tensor *dst) {
    count_ctx *cc = ctx;
    (void)dst;
    if (cc->fn) cc->fn(cc->ctx, name, ndim, shape);
}

int64_t wr_vae_expected_tensors(const wr_vae_config *cfg, int64_t *params,
                                void (*fn)(void *ctx, const char *name, int ndim,
                                           const int64_t *shape),
                                void *ctx) {
    count_ctx cc = {fn, ctx};
    walker wk = {forward_public, &cc, 0, 0};
    walk(cfg, NULL, &wk);
    if (params) *params = wk.params;
    return wk.count;
}

/* ---- loading ---- */

/* Conv weights stay in place; biases and RMS gammas ([C], [C,1,1], [C,1,1,1]) become f32 [C]. */
static int is_vector(const char *name) {
    const size_t n = strlen(name);
    return (n > 5 && strcmp(name + n - 5, ".bias") == 0) ||
           (n > 6 && strcmp(name + n - 6, ".gamma") == 0);
}

/* How the loader holds each tensor: the vectors as f32 [C] copies, the conv weights in place;
 * everything resident (uploaded at load where the ops cannot read host memory). The VAE has
 * no FP8 storage (diffusers' layerwise casting is the transformer's), so its fields are plain
 * tensors, no wr_weight scale. */
static void vae_bind(void *ctx, const char *name, int ndim, const int64_t *shape, wr_tensor *dst) {
    const wr_load_field f = {.t = dst, .f32 = is_vector(name), .flat = 1, .resident = 1};
    wr_loader_bind(ctx, name, ndim, shape, &f);
}

/* The loader's walk: the decoder's walk binds each tensor through vae_bind (visit unused). */
static int64_t vae_walk(void *model, wr_visit_fn visit, void *ctx) {
    wr_vae *m = model;
    (void)visit;
    walker wk = {vae_bind, ctx, 0, 0};
    walk(&m->cfg, m, &wk);
    return wk.count;
}

wr_status wr_vae_load(wr_vae **out, wr_backend *be, const char *dir) {
    *out = NULL;
    wr_status st = WR_OK;
    static const char *const ops[] = {
        "conv3d",         "upsample2x", "rms_norm_channels", "silu",      "add", "clamp",
        "channel_affine", "blend",      "attention",         "transpose", NULL};
    WR_TRY(wr_backend_require(be, "the VAE", ops));
    wr_vae *m = calloc(1, sizeof *m);
    if (m == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    m->be = be;
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    char path[WR_PATH_CAP + 32];
    snprintf(path, sizeof path, "%s/config.json", dir);
    /* every field checked there: the scale factors match the layers, out_channels is 3 */
    WR_TRY_GOTO(st, wr_vae_config_read(&m->cfg, path), fail);
    if (m->cfg.is_residual) {
        st = WR_FAIL(WR_ERR_INVALID_ARG,
                     "%s: the Wan2.2 VAE (is_residual): load it with "
                     "wr_vae22_load (models/vae22.h)",
                     path);
        goto fail;
    }
    m->z = m->cfg.z_dim;
    m->r = m->cfg.scale_factor_spatial;
    m->out_ch = m->cfg.out_channels;
    WR_TRY_GOTO(st, wr_st_set_open(&m->weights, dir), fail);
    m->ld = (wr_loader){.set = m->weights,
                        .dir = m->dir,
                        .what = "VAE decoder",
                        .model = m,
                        .extra_floats = 2 * (size_t)((m->z + 15) & ~(int64_t)15)};
    int64_t count = 0;
    WR_TRY_GOTO(st, wr_loader_run(&m->ld, vae_walk, &count), fail);
    /* de-normalisation z * std + mean (WanPipeline: latents / (1 / std) + mean) */
    WR_TRY_GOTO(st, wr_loader_scratch(&m->ld, m->z, 1, &m->std_t), fail);
    WR_TRY_GOTO(st, wr_loader_scratch(&m->ld, m->z, 1, &m->mean_t), fail);
    float *sd = m->std_t.data, *mn = m->mean_t.data;
    for (int64_t c = 0; c < m->z; c++) {
        sd[c] = 1.0f / (1.0f / (float)m->cfg.latents_std.v[c]);
        mn[c] = (float)m->cfg.latents_mean.v[c];
    }
    WR_TRY_GOTO(st, wr_loader_upload(&m->ld, be), fail);
    if (!be->host_visible) { /* every tensor is on the device: the host copies go */
        wr_loader_drop_host(&m->ld);
        wr_st_set_close(m->weights);
        m->weights = NULL;
    }
    wr_debug("%s: VAE decoder loaded: z=%lld, base %lld, %d up blocks (%d temporal), %lld tensors",
             dir, (long long)m->z, (long long)m->cfg.decoder_base_dim, m->nup, m->ntime,
             (long long)count);
    *out = m;
    return WR_OK;
fail:
    wr_vae_free(m);
    return st;
}

static void free_caches(wr_vae *m);

void wr_vae_free(wr_vae *m) {
    if (m == NULL) return;
    free_caches(m);
    for (int i = 0; i < WR_VAE_NBUF; i++) vae_release(m, &m->buf[i], m->buf_cap);
    if (m->vram && m->w_bytes)
        (void)wr_vram_account(m->vram, WR_MEM_WEIGHTS_RESIDENT, -(int64_t)m->w_bytes);
    wr_loader_free(&m->ld);
    wr_st_set_close(m->weights);
    free(m);
}

static void sum_bytes(void *ctx, const char *name, int ndim, const int64_t *shape, wr_tensor *dst) {
    (void)name, (void)ndim, (void)shape;
    *(uint64_t *)ctx += wr_tensor_nbytes(dst);
}

wr_status wr_vae_set_vram(wr_vae *m, wr_vram *v) {
    free_caches(m); /* buffers kept from an earlier decode go back where they came from */
    for (int i = 0; i < WR_VAE_NBUF; i++) vae_release(m, &m->buf[i], m->buf_cap);
    m->buf_cap = 0;
    if (m->vram && m->w_bytes)
        (void)wr_vram_account(m->vram, WR_MEM_WEIGHTS_RESIDENT, -(int64_t)m->w_bytes);
    m->vram = NULL;
    m->w_bytes = 0;
    if (v == NULL) return WR_OK;
    WR_TRY(wr_vram_scratch_ensure(v)); /* the ops' scratch, from the pool from now on */
    /* the weights' bytes, whether used in place (the plain CPU backend) or copied into the
     * device arena: the planner's number in both cases (the arena's 64-byte alignment padding
     * and its two 16-float de-normalisation vectors, under 4 KiB, are not counted) */
    uint64_t bytes = 0;
    walker wk = {sum_bytes, &bytes, 0, 0};
    walk(&m->cfg, m, &wk);
    WR_TRY(wr_vram_account(v, WR_MEM_WEIGHTS_RESIDENT, (int64_t)bytes));
    m->w_bytes = bytes;
    m->vram = v;
    return WR_OK;
}

const wr_vae_config *wr_vae_config_of(const wr_vae *m) {
    return &m->cfg;
}

int64_t wr_vae_frames(const wr_vae *m, int64_t t) {
    return t < 1 ? 0 : 1 + ((int64_t)1 << m->ntime) * (t - 1);
}

void wr_vae_set_tap(wr_vae *m, wr_vae_tap_fn fn, void *ctx) {
    m->tap = fn;
    m->tap_ctx = ctx;
}

/* The callback gets a host copy of t (downloaded, so valid in the async device mode too). */
static void tap(wr_vae *m, const char *name, const wr_tensor *t) {
    if (m->tap == NULL || !m->tapping) return;
    const size_t n = wr_tensor_nbytes(t);
    wr_tensor h = *t;
    h.data = malloc(n ? n : 1);
    if (h.data == NULL) {
        wr_warn("VAE tap %s: out of host memory for %zu bytes, skipped", name, n);
        return;
    }
    if (wr_download(m->be, h.data, t->data, n) == WR_OK)
        m->tap(m->tap_ctx, name, &h);
    else
        wr_warn("VAE tap %s: download failed (%s), skipped", name, wr_error_detail());
    free(h.data);
}

wr_vae_tiling wr_vae_tiling_default(void) {
    wr_vae_tiling t = {1, 256, 256, 192, 192};
    return t;
}

/* ---- feature caches ---- */

#define FOR_EACH_CONV(m, X)                                                                        \
    do {                                                                                           \
        X(&(m)->conv_in);                                                                          \
        X(&(m)->conv_out);                                                                         \
        for (int r_ = 0; r_ < 2; r_++) {                                                           \
            X(&(m)->mid[r_].conv1);                                                                \
            X(&(m)->mid[r_].conv2);                                                                \
        }                                                                                          \
        for (int u_ = 0; u_ < (m)->nup; u_++) {                                                    \
            for (int r_ = 0; r_ < (m)->up[u_].nres; r_++) {                                        \
                X(&(m)->up[u_].res[r_].conv1);                                                     \
                X(&(m)->up[u_].res[r_].conv2);                                                     \
            }                                                                                      \
            X(&(m)->up[u_].time_conv);                                                             \
        }                                                                                          \
    } while (0)

/* diffusers clear_cache(): every slot empty (keeps the buffers) */
static void clear_caches(wr_vae *m) {
#define CLEAR(cv) ((cv)->cache.n = 0, (cv)->cache.rep = 0)
    FOR_EACH_CONV(m, CLEAR);
#undef CLEAR
}

static void free_caches(wr_vae *m) {
#define FREE(cv) vae_release(m, &(cv)->cache.buf, (cv)->cache.cap)
    FOR_EACH_CONV(m, FREE);
#undef FREE
}

/*
 * The slot takes the last two frames of x ([C, T, H, W]); with T = 1 the previous last frame
 * (or, for a "Rep" time_conv slot, a zero frame) goes in front of it (diffusers' cache_x rule).
 */
/* The slot holds 2 frames of x's size (allocated on first use; a decode's shapes do not grow
 * while it holds frames). */
static wr_status cache_room(void *model, vae_cache *c, size_t need) {
    wr_vae *m = model;
    if (c->cap >= need) return WR_OK;
    if (c->n > 0) return WR_FAIL(WR_ERR_INTERNAL, "VAE cache grew while holding frames");
    vae_release(m, &c->buf, c->cap);
    c->cap = 0;
    WR_TRY(vae_alloc(m, &c->buf, need));
    c->cap = need;
    return WR_OK;
}

static wr_status cache_update(wr_vae *m, vae_cache *c, const wr_tensor *x, int rep_zero) {
    WR_TRY(cache_room(m, c, wr_causal_cache_floats(x)));
    return wr_causal_cache_update(m->be, c, x, rep_zero);
}

/* how vae_common.h runs this model's blocks */
static wr_vae_run run_of(wr_vae *m) {
    return (wr_vae_run){m->be, m->buf_cap, cache_room, m};
}

/* y = the causal conv of x after the slot's frames (2 - n zero frames in front); then the
 * slot takes x's last frames. */
static wr_status cached_conv(wr_vae *m, vae_conv *cv, wr_tensor *y, const wr_tensor *x,
                             int64_t pad_hw) {
    const wr_vae_run r = run_of(m);
    return wr_vae_cached_conv(&r, cv, y, x, pad_hw);
}

/* ---- the decoder, one latent frame ---- */

static wr_tensor view4(float *p, int64_t c, int64_t t, int64_t h, int64_t w) {
    return wr_tensor_make(p, WR_DTYPE_F32, 4, (int64_t[]){c, t, h, w});
}

static wr_tensor flat2(const wr_tensor *t) { /* [C, T*H*W] */
    return wr_tensor_make(t->data, WR_DTYPE_F32, 2,
                          (int64_t[]){t->shape[0], wr_tensor_nelem(t) / t->shape[0]});
}

static void swap(float **a, float **b) {
    float *t = *a;
    *a = *b;
    *b = t;
}

/* diffusers WanResidualBlock: x in P[0] -> result in P[0] (buffers P[1..3] used) */
static wr_status resnet_forward(wr_vae *m, vae_resnet *rs, float **P, wr_tensor *x) {
    const wr_vae_run r = run_of(m);
    return wr_vae_resnet_forward(&r, rs, P, x);
}

/* diffusers WanAttentionBlock on a single frame (T = 1): x in P[0] -> P[0] */
static wr_status attention_forward(wr_vae *m, float **P, wr_tensor *x) {
    const wr_vae_run r = run_of(m);
    return wr_vae_attention_forward(&r, &m->attn, P, x);
}

/* diffusers WanResample (upsample2d / upsample3d): x in P[0] -> P[0] */
static wr_status upsample_forward(wr_vae *m, vae_up *u, float **P, wr_tensor *x) {
    wr_backend *be = m->be;
    const int64_t C = x->shape[0], H = x->shape[2], W = x->shape[3];
    int64_t T = x->shape[1];
    if (u->mode == UP_3D) {
        vae_conv *tc = &u->time_conv;
        if (tc->cache.n == 0 && !tc->cache.rep) {
            tc->cache.rep = 1; /* latent frame 0: "Rep", no temporal upsampling */
        } else {
            wr_tensor y = view4(P[1], 2 * C, T, H, W);
            if (tc->cache.rep) { /* frame 1: no cache (2 zero frames); cache [0, x] */
                const wr_conv_params p = {2, 0, 0};
                WR_TRY(wr_op_conv3d(be, &y, x, NULL, &tc->w, &tc->b, &p));
                WR_TRY(cache_update(m, &tc->cache, x, 1));
                tc->cache.rep = 0;
            } else {
                WR_TRY(cached_conv(m, tc, &y, x, 0));
            }
            /* [2, C, T] -> [C, T, 2]: channel block k of frame t becomes frame 2t + k (one
             * strided copy per k: planes c, rows t) */
            const size_t fb = sizeof(float) * (size_t)(H * W);
            for (int64_t k = 0; k < 2; k++) {
                const wr_copy3d cp = {.dir = WR_COPY_D2D,
                                      .dst = P[2] + k * H * W,
                                      .src = P[1] + k * C * T * H * W,
                                      .width = fb,
                                      .rows = T,
                                      .planes = C,
                                      .dpitch = 2 * fb,
                                      .dplane = 2 * (size_t)T * fb,
                                      .spitch = fb,
                                      .splane = (size_t)T * fb};
                WR_TRY(wr_copy_3d(be, &cp));
            }
            T *= 2;
            swap(&P[0], &P[2]);
            *x = view4(P[0], C, T, H, W);
        }
    }
    /* per frame: nearest x2, then Conv2d 3x3 (pad 1) to C/2 */
    wr_tensor up = view4(P[1], C, T, 2 * H, 2 * W), y = view4(P[2], C / 2, T, 2 * H, 2 * W);
    WR_TRY(wr_op_upsample2x(be, &up, x));
    const wr_conv_params p = {0, 1, 1};
    WR_TRY(wr_op_conv3d(be, &y, &up, NULL, &u->resample.w, &u->resample.b, &p));
    swap(&P[0], &P[2]);
    *x = view4(P[0], C / 2, T, 2 * H, 2 * W);
    return WR_OK;
}

/* WanDecoder3d.forward for one latent frame: x [z, 1, h, w] in P[0] -> frames [out, Tc, rh, rw]
 * written into dst (channel stride N*rh*rw) from frame f0: dst_host 0: device memory (a tile,
 * unclamped); 1: host memory (the output), clamped to [-1, 1] first. */
static wr_status decoder_chunk(wr_vae *m, wr_tensor *x, wr_tensor *dst, int dst_host, int64_t f0) {
    wr_backend *be = m->be;
    float **P = m->buf;
    const int64_t H = x->shape[2], W = x->shape[3];
    wr_tensor y = view4(P[1], m->up[0].res[0].cin, 1, H, W);
    WR_TRY(cached_conv(m, &m->conv_in, &y, x, 1));
    swap(&P[0], &P[1]);
    *x = view4(P[0], y.shape[0], 1, H, W);
    tap(m, "decoder.conv_in", x);
    WR_TRY(resnet_forward(m, &m->mid[0], P, x));
    tap(m, "decoder.mid_block.resnets.0", x);
    WR_TRY(attention_forward(m, P, x));
    tap(m, "decoder.mid_block.attentions.0", x);
    WR_TRY(resnet_forward(m, &m->mid[1], P, x));
    tap(m, "decoder.mid_block", x);
    for (int i = 0; i < m->nup; i++) {
        vae_up *u = &m->up[i];
        for (int j = 0; j < u->nres; j++) WR_TRY(resnet_forward(m, &u->res[j], P, x));
        char name[64];
        snprintf(name, sizeof name, "decoder.up_blocks.%d.resnets", i);
        tap(m, name, x);
        if (u->mode != UP_NONE) WR_TRY(upsample_forward(m, u, P, x));
        snprintf(name, sizeof name, "decoder.up_blocks.%d", i);
        tap(m, name, x);
    }
    /* head: conv_out(silu(norm_out(x))) */
    const int64_t C = x->shape[0], T = x->shape[1], Hs = x->shape[2], Ws = x->shape[3];
    wr_tensor a = view4(P[1], C, T, Hs, Ws), af = flat2(&a), xf = flat2(x);
    WR_TRY(wr_op_rms_norm_channels(be, &af, &xf, &m->norm_out));
    WR_TRY(wr_op_silu(be, &af, &af));
    wr_tensor o = view4(P[2], m->out_ch, T, Hs, Ws);
    WR_TRY(cached_conv(m, &m->conv_out, &o, &a, 1));
    /* frames into dst [out, N, Hs, Ws]: per channel one contiguous run of T frames */
    const int64_t N = dst->shape[1];
    WR_ASSERT(dst->shape[2] == Hs && dst->shape[3] == Ws && f0 + T <= N);
    if (dst_host) WR_TRY(wr_op_clamp(be, &o, &o, -1.0f, 1.0f)); /* o is not read again */
    const size_t run = sizeof(float) * (size_t)(T * Hs * Ws);
    const wr_copy3d cp = {.dir = dst_host ? WR_COPY_D2H : WR_COPY_D2D,
                          .dst = (float *)dst->data + f0 * Hs * Ws,
                          .src = P[2],
                          .width = run,
                          .rows = m->out_ch,
                          .planes = 1,
                          .dpitch = sizeof(float) * (size_t)(N * Hs * Ws),
                          .spitch = run};
    return wr_copy_3d(be, &cp);
}

/* Largest buffer (floats) a latent tile of h x w needs, walking the shapes of a chunk whose
 * frames double at each temporal upsampler (latent frames >= 1). */
static size_t plan_floats(const wr_vae *m, int64_t h, int64_t w) {
    size_t mx = 0;
#define MAXE(v)                                                                                    \
    do {                                                                                           \
        size_t v_ = (size_t)(v);                                                                   \
        if (v_ > mx) mx = v_;                                                                      \
    } while (0)
    int64_t T = 1, H = h, W = w, C = m->up[0].res[0].cin;
    MAXE(m->z * H * W);
    MAXE(3 * C * H * W); /* attention qkv and its token-major copies */
    for (int i = 0; i < m->nup; i++) {
        const vae_up *u = &m->up[i];
        MAXE(u->res[0].cin * T * H * W);
        C = u->dim;
        MAXE(C * T * H * W);
        if (u->mode == UP_3D) {
            MAXE(2 * C * T * H * W);
            T *= 2;
        }
        if (u->mode != UP_NONE) {
            MAXE(C * T * 4 * H * W);
            H *= 2;
            W *= 2;
            C /= 2;
        }
    }
    MAXE(C * T * H * W);
    MAXE(m->out_ch * T * H * W);
#undef MAXE
    return mx;
}

static wr_status ensure_workspace(wr_vae *m, int64_t h, int64_t w) {
    size_t need = plan_floats(m, h, w);
    if (need <= m->buf_cap) return WR_OK;
    for (int i = 0; i < WR_VAE_NBUF; i++) vae_release(m, &m->buf[i], m->buf_cap);
    m->buf_cap = 0;
    for (int i = 0; i < WR_VAE_NBUF; i++) WR_TRY(vae_alloc(m, &m->buf[i], need));
    m->buf_cap = need;
    return WR_OK;
}

/* Decodes every latent frame of z[:, :, y0:y0+h, x0:x0+w] (host) with a fresh cache into dst
 * [out, N, r*h, r*w]: device memory, unclamped (dst_host 0), or host memory, clamped. */
static wr_status decode_region(wr_vae *m, wr_tensor *dst, int dst_host, const wr_tensor *z,
                               int64_t y0, int64_t x0, int64_t h, int64_t w, int taps) {
    wr_backend *be = m->be;
    const int64_t T = z->shape[1], Hz = z->shape[2], Wz = z->shape[3];
    WR_TRY(ensure_workspace(m, h, w));
    clear_caches(m);
    for (int64_t k = 0; k < T; k++) {
        m->tapping = taps && k == 0;
        /* latent frame k of the region -> P[1] [z, 1, h, w]: one upload of z rows of h runs */
        const wr_copy3d up = {.dir = WR_COPY_H2D,
                              .dst = m->buf[1],
                              .src = (const float *)z->data + (k * Hz + y0) * Wz + x0,
                              .width = sizeof(float) * (size_t)w,
                              .rows = h,
                              .planes = m->z,
                              .dpitch = sizeof(float) * (size_t)w,
                              .dplane = sizeof(float) * (size_t)(h * w),
                              .spitch = sizeof(float) * (size_t)Wz,
                              .splane = sizeof(float) * (size_t)(T * Hz * Wz)};
        WR_TRY(wr_copy_3d(be, &up));
        wr_tensor lat = view4(m->buf[1], m->z, 1, h, w), lf = flat2(&lat);
        WR_TRY(wr_op_channel_affine(be, &lf, &lf, &m->std_t, &m->mean_t)); /* z*std + mean */
        tap(m, "latent_vae", &lat);
        wr_tensor x = view4(m->buf[0], m->z, 1, h, w);
        const wr_conv_params p0 = {0, 0, 0};
        WR_TRY(wr_op_conv3d(be, &x, &lat, NULL, &m->post_quant.w, &m->post_quant.b, &p0));
        tap(m, "post_quant_conv", &x);
        const int64_t f0 = k == 0 ? 0 : 1 + ((int64_t)1 << m->ntime) * (k - 1);
        WR_TRY(decoder_chunk(m, &x, dst, dst_host, f0));
    }
    m->tapping = 0;
    clear_caches(m);
    return WR_OK;
}

/* ---- tiled decode ---- */

/* Raster order as diffusers: tile b blends rows [0, e) with the last e rows of the tile above
 * (blend_v: b[y] = a[ah - e + y] (1 - y/e) + b[y] (y/e)), then columns [0, e) with the last e
 * columns of the left one (blend_h), both wr_op_blend on device memory. */
static wr_status decode_tiled(wr_vae *m, wr_tensor *out, const wr_tensor *z,
                              const wr_vae_tiling *t) {
    wr_status st = WR_OK;
    wr_backend *be = m->be;
    const int64_t r = m->r, Hz = z->shape[2], Wz = z->shape[3], N = out->shape[1];
    const int64_t C = m->out_ch, Hs = Hz * r, Ws = Wz * r;
    const int64_t tlh = t->tile_h / r, tlw = t->tile_w / r, slh = t->stride_h / r,
                  slw = t->stride_w / r;
    const int64_t bh = t->tile_h - t->stride_h, bw = t->tile_w - t->stride_w; /* blend, px */
    const int64_t ncol = (Wz + slw - 1) / slw;
    /* device: the tile output, the left tile's right margin, and the previous row's bottom
     * margins */
    float *tile = NULL, *left = NULL, *above = NULL;
    const size_t tile_f = (size_t)(C * N * tlh * r * tlw * r);
    const size_t left_f = (size_t)(C * N * tlh * r * bw),
                 above_f = (size_t)(C * N * bh * ncol * tlw * r);
    int64_t *above_h = calloc((size_t)ncol, sizeof(int64_t)); /* rows kept per column */
    int64_t left_w = 0;
    if (above_h == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "VAE tiling: out of host memory");
    WR_TRY_GOTO(st, vae_alloc(m, &tile, tile_f), done);
    WR_TRY_GOTO(st, vae_alloc_kind(m, &left, left_f, MEM_BLEND), done);
    WR_TRY_GOTO(st, vae_alloc_kind(m, &above, above_f, MEM_BLEND), done);
    const size_t fs = sizeof(float);
    for (int64_t i0 = 0, ri = 0; i0 < Hz; i0 += slh, ri++) {
        for (int64_t j0 = 0, cj = 0; j0 < Wz; j0 += slw, cj++) {
            const int64_t h = Hz - i0 < tlh ? Hz - i0 : tlh, w = Wz - j0 < tlw ? Wz - j0 : tlw;
            const int64_t th = h * r, tw = w * r, CN = C * N;
            wr_tensor tt = view4(tile, C, N, th, tw);
            WR_TRY_GOTO(st, decode_region(m, &tt, 0, z, i0, j0, h, w, ri == 0 && cj == 0), done);
            /* this column's margin (none when stride = tile: no blending, nothing kept) */
            float *ab = above ? above + (size_t)(cj * CN * bh * tlw * r) : NULL;
            if (ri > 0 && ab) { /* rows: tile [CN, th, tw] with the margin [CN, above_h, tw] */
                const int64_t e =
                    above_h[cj] < th ? (above_h[cj] < bh ? above_h[cj] : bh) : (th < bh ? th : bh);
                wr_tensor d3 = wr_tensor_make(tile, WR_DTYPE_F32, 3, (int64_t[]){CN, th, tw});
                wr_tensor a3 =
                    wr_tensor_make(ab, WR_DTYPE_F32, 3, (int64_t[]){CN, above_h[cj], tw});
                WR_TRY_GOTO(st, wr_op_blend(be, &d3, &a3, e), done);
            }
            if (cj > 0 &&
                left) { /* columns: tile [CN th, tw, 1] with the margin [CN th, left_w, 1] */
                const int64_t e = left_w < tw ? (left_w < bw ? left_w : bw) : (tw < bw ? tw : bw);
                wr_tensor d3 = wr_tensor_make(tile, WR_DTYPE_F32, 3, (int64_t[]){CN * th, tw, 1});
                wr_tensor a3 =
                    wr_tensor_make(left, WR_DTYPE_F32, 3, (int64_t[]){CN * th, left_w, 1});
                WR_TRY_GOTO(st, wr_op_blend(be, &d3, &a3, e), done);
            }
            /* keep the margins the next tiles read: the last kr rows (-> ab [CN, kr, tw]) and
             * the last kc columns (-> left [CN th, kc]), one strided copy each */
            const int64_t kr = th < bh ? th : bh, kc = tw < bw ? tw : bw;
            const wr_copy3d rows = {.dir = WR_COPY_D2D,
                                    .dst = ab,
                                    .src = tile + (th - kr) * tw,
                                    .width = fs * (size_t)(kr * tw),
                                    .rows = CN,
                                    .planes = 1,
                                    .dpitch = fs * (size_t)(kr * tw),
                                    .spitch = fs * (size_t)(th * tw)};
            const wr_copy3d cols = {.dir = WR_COPY_D2D,
                                    .dst = left,
                                    .src = tile + tw - kc,
                                    .width = fs * (size_t)kc,
                                    .rows = CN * th,
                                    .planes = 1,
                                    .dpitch = fs * (size_t)kc,
                                    .spitch = fs * (size_t)tw};
            if (ab && kr > 0) WR_TRY_GOTO(st, wr_copy_3d(be, &rows), done);
            if (left && kc > 0) WR_TRY_GOTO(st, wr_copy_3d(be, &cols), done);
            above_h[cj] = kr;
            left_w = kc;
            /* the tile clamped (the margins keep it unclamped), then the crop [:stride_h,
             * :stride_w] straight into out at (ri*stride_h, cj*stride_w): one download */
            WR_TRY_GOTO(st, wr_op_clamp(be, &tt, &tt, -1.0f, 1.0f), done);
            const int64_t oy = ri * t->stride_h, ox = cj * t->stride_w;
            const int64_t ch = th < t->stride_h ? th : t->stride_h,
                          cw = tw < t->stride_w ? tw : t->stride_w;
            const wr_copy3d crop = {.dir = WR_COPY_D2H,
                                    .dst = (float *)out->data + oy * Ws + ox,
                                    .src = tile,
                                    .width = fs * (size_t)(ox + cw <= Ws ? cw : Ws - ox),
                                    .rows = oy + ch <= Hs ? ch : Hs - oy,
                                    .planes = CN,
                                    .dpitch = fs * (size_t)Ws,
                                    .dplane = fs * (size_t)(Hs * Ws),
                                    .spitch = fs * (size_t)tw,
                                    .splane = fs * (size_t)(th * tw)};
            WR_TRY_GOTO(st, wr_copy_3d(be, &crop), done);
        }
    }
done:
    vae_release(m, &tile, tile_f);
    vae_release_kind(m, &left, left_f, MEM_BLEND);
    vae_release_kind(m, &above, above_f, MEM_BLEND);
    free(above_h);
    return st;
}

/* ---- decode ---- */

wr_status wr_vae_decode(wr_vae *m, wr_tensor *out, const wr_tensor *z,
                        const wr_vae_tiling *tiling) {
    const int64_t r = m->r;
    if (z->ndim != 4 || z->shape[0] != m->z || z->dtype != WR_DTYPE_F32 || z->shape[1] < 1 ||
        z->shape[2] < 1 || z->shape[3] < 1)
        return WR_FAIL(WR_ERR_INVALID_ARG, "VAE input must be an F32 latent [%lld, T, H, W]",
                       (long long)m->z);
    const int64_t N = wr_vae_frames(m, z->shape[1]);
    if (out->ndim != 4 || out->dtype != WR_DTYPE_F32 || out->shape[0] != m->out_ch ||
        out->shape[1] != N || out->shape[2] != r * z->shape[2] || out->shape[3] != r * z->shape[3])
        return WR_FAIL(WR_ERR_INVALID_ARG, "VAE output must be F32 [%lld, %lld, %lld, %lld]",
                       (long long)m->out_ch, (long long)N, (long long)(r * z->shape[2]),
                       (long long)(r * z->shape[3]));
    int tiled = 0;
    if (tiling && tiling->enabled) {
        const wr_vae_tiling *t = tiling;
        if (t->tile_h < r || t->tile_w < r || t->tile_h % r || t->tile_w % r || t->stride_h < r ||
            t->stride_w < r || t->stride_h % r || t->stride_w % r || t->stride_h > t->tile_h ||
            t->stride_w > t->tile_w)
            return WR_FAIL(WR_ERR_INVALID_ARG,
                           "VAE tiling %lldx%lld stride %lldx%lld: tile and stride must be "
                           "positive multiples of %lld with stride <= tile",
                           (long long)t->tile_h, (long long)t->tile_w, (long long)t->stride_h,
                           (long long)t->stride_w, (long long)r);
        tiled = z->shape[2] > t->tile_h / r || z->shape[3] > t->tile_w / r;
    }
    /* both clamp on the device, before the frames are downloaded into out */
    if (tiled) return decode_tiled(m, out, z, tiling);
    return decode_region(m, out, 1, z, 0, 0, z->shape[2], z->shape[3], 1);
}

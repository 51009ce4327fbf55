/*
 * vae22.c — the Wan2.2 VAE (diffusers AutoencoderKLWan, is_residual=True, patch_size 2): its
 * config reader, loading, the per-latent-frame causal decode and the per-chunk causal encode,
 * each with its feature cache, written after diffusers' WanDecoder3d / WanEncoder3d.
 *
 * Every activation lives in one of WR_VAE22_NBUF equal device buffers P[0..5] sized for the
 * largest tensor of a latent frame (decode) or chunk (encode): x is in P[0] between layers,
 * P[1..4] are scratch, P[5] holds a residual up/down block's input (x_copy) while its main path
 * runs. The permutations (patchify, unpatchify, DupUp3D, AvgDown3D, the stride-2 subsampling)
 * are strided device copies (wr_copy_3d) around one transpose of a [n, 2] view, which splits or
 * interleaves the even and odd columns: data movement only, the same bits as PyTorch's.
 */
#include "models/vae22.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "kernels/ops.h"
#include "models/vae_common.h"
#include "models/loader.h"

#define CAP_PATH 4096

/* A cached causal conv's previous input frames (models/vae_common.h). rep: the decoder's
 * upsample3d time_conv slot holds diffusers' "Rep" (set on latent frame 0); for the encoder's
 * downsample3d time_conv, n = 1 means the slot is set (the previous chunk's last frame). */
typedef wr_causal_cache v22_cache;

typedef wr_vae_conv v22_conv; /* weight in storage dtype, bias f32 */

/* diffusers WanResidualBlock (vae_common.h) */
typedef wr_vae_resnet v22_resnet;

/* diffusers WanMidBlock (num_layers 1): resnets.0, attentions.0, resnets.1 */
typedef struct v22_mid {
    v22_resnet res[2];
    wr_vae_attn attn;
} v22_mid;

enum { RS_NONE = 0, RS_2D = 2, RS_3D = 3 };

/* diffusers WanResidualUpBlock: resnets, upsampler (WanResample upsample2d/3d with
 * upsample_out_dim = out_dim), and the DupUp3D shortcut of its input when it upsamples */
typedef struct v22_up {
    int nres, mode;
    int64_t cin, cout;
    v22_resnet res[WR_VAE22_MAX_RES];
    v22_conv resample;  /* upsampler.resample.1: Conv2d cout -> cout, 3x3 */
    v22_conv time_conv; /* upsampler.time_conv: (3,1,1) cout -> 2 cout (upsample3d) */
    /* DupUp3D(cin, cout, factor_t = ft, factor_s = 2): output channel o, frame t ft + a, row
     * 2h + b (any column parity) is input channel s o + (4a + 2b) / rep, frame t, row h */
    int64_t ft, rep, s;
} v22_up;

/* diffusers WanResidualDownBlock: resnets, downsampler (downsample2d/3d), and the AvgDown3D
 * shortcut of its input (the identity for the last block) */
typedef struct v22_down {
    int nres, mode;
    int64_t cin, cout;
    v22_resnet res[WR_VAE22_MAX_RES];
    v22_conv resample;  /* downsampler.resample.1: Conv2d cout -> cout, 3x3, stride 2 */
    v22_conv time_conv; /* downsampler.time_conv: (3,1,1) cout -> cout, stride (2,1,1) */
    /* AvgDown3D(cin, cout, ft, fs): factor = ft fs fs, group = cin factor / cout */
    int64_t ft, fs, factor, group;
    wr_tensor avg_scale; /* [cout] f32, 1 / group (resident) */
} v22_down;

struct wr_vae22 {
    wr_backend *be;
    wr_vae22_config cfg;
    char dir[CAP_PATH];
    wr_st_set *weights;
    wr_loader ld;
    int has_enc;
    int64_t z, nblk;
    /* decoder */
    v22_conv post_quant, dconv_in, dconv_out;
    v22_mid dmid;
    v22_up up[WR_VAE22_MAX_BLOCKS];
    wr_tensor dnorm_out;
    /* encoder */
    v22_conv quant, econv_in, econv_out;
    v22_mid emid;
    v22_down down[WR_VAE22_MAX_BLOCKS];
    wr_tensor enorm_out;
    wr_tensor zeros;           /* [max width] f32 zeros (resident): channel_affine's shift */
    float *lat_mean, *lat_std; /* host [z] or NULL */
    wr_vae22_tap_fn tap;
    void *tap_ctx;
    int64_t tap_k;
    int64_t slice_max; /* DupUp3D slice cap in input channels (0: none) */
    /* workspace: WR_VAE22_NBUF buffers of cap floats each (only during a call) */
    float *buf[WR_VAE22_NBUF];
    size_t cap;
    size_t live, peak; /* device bytes of workspace, caches, the tile and its margins */
    int64_t nweights;  /* the walked tensors: the first nweights of ld.res */
    int no_tap;        /* taps off (the tiles after the first) */
    wr_vram *vram;     /* NULL: the backend's allocator, nothing counted */
    uint64_t w_bytes;  /* the weights' bytes, counted in vram while it is set */
};

/* ---- tracked allocations ---- */

static wr_status v22_alloc(wr_vae22 *m, float **p, size_t floats) {
    *p = NULL;
    if (floats == 0) return WR_OK;
    if (m->vram)
        WR_TRY(wr_vram_alloc(m->vram, WR_MEM_VAE, floats * sizeof(float), (void **)p));
    else
        WR_TRY(m->be->iface->alloc(m->be, (void **)p, floats * sizeof(float)));
    m->live += floats * sizeof(float);
    if (m->live > m->peak) m->peak = m->live;
    return WR_OK;
}

static void v22_release(wr_vae22 *m, float **p, size_t floats) {
    if (*p == NULL) return;
    if (m->vram)
        wr_vram_free(m->vram, *p);
    else
        m->be->iface->free(m->be, *p);
    m->live -= floats * sizeof(float);
    *p = NULL;
}

size_t wr_vae22_peak_bytes(const wr_vae22 *m) {
    return m->peak;
}

void wr_vae22_reset_peak(wr_vae22 *m) {
    m->peak = m->live;
}

/* ---- config ---- */

/* diffusers AutoencoderKLWan.__init__'s defaults; decoder_base_dim -1 = None (base_dim),
 * patch_size 0 = None */
static void config_default(wr_vae22_config *c) {
    memset(c, 0, sizeof *c);
    c->base_dim = 96;
    c->decoder_base_dim = -1;
    c->z_dim = 16;
    c->num_res_blocks = 2;
    c->in_channels = 3;
    c->out_channels = 3;
    c->patch_size = 0;
    c->scale_factor_spatial = 8;
    c->scale_factor_temporal = 4;
}

/* what the table reader fills; copied into wr_vae22_config after the checks */
typedef struct cfg_raw {
    char class_name[WR_JSON_STR_CAP];
    int64_t base_dim, decoder_base_dim, z_dim, num_res_blocks;
    int64_t in_channels, out_channels, patch_size, scale_factor_spatial, scale_factor_temporal;
    wr_json_int_array dim_mult, temperal_downsample;
    wr_json_double_array attn_scales;
    int is_residual;
    double dropout;
} cfg_raw;

#define F(member, kind)                                                                            \
    { #member, kind, offsetof(cfg_raw, member), 0, 0 }
static const wr_json_field cfg_fields[] = {
    {"_class_name", WR_JSON_STRING, offsetof(cfg_raw, class_name), 0, 0},
    F(base_dim, WR_JSON_INT),
    F(decoder_base_dim, WR_JSON_INT),
    F(z_dim, WR_JSON_INT),
    F(num_res_blocks, WR_JSON_INT),
    F(in_channels, WR_JSON_INT),
    F(out_channels, WR_JSON_INT),
    F(patch_size, WR_JSON_INT),
    F(scale_factor_spatial, WR_JSON_INT),
    F(scale_factor_temporal, WR_JSON_INT),
    F(dim_mult, WR_JSON_INT_ARRAY),
    F(temperal_downsample, WR_JSON_BOOL_ARRAY),
    F(attn_scales, WR_JSON_DOUBLE_ARRAY),
    F(is_residual, WR_JSON_BOOL),
    F(dropout, WR_JSON_DOUBLE),
};
#undef F

/* latents_mean / latents_std: absent or null -> *out NULL; else z numbers (json.h's arrays stop
 * at 32 entries; TI2V-5B has 48) */
static wr_status read_stats(float **out, const wr_json_doc *doc, const char *field, int64_t z) {
    *out = NULL;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(doc->root, field);
    if (a == NULL || cJSON_IsNull(a)) return WR_OK;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != z)
        return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' must be an array of z_dim = %lld numbers",
                       doc->path, field, (long long)z);
    float *v = malloc(sizeof(float) * (size_t)z);
    if (v == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory reading %s", doc->path);
    int64_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsNumber(e)) {
            free(v);
            return WR_FAIL(WR_ERR_FORMAT, "%s: field '%s' entry %lld must be a number, got %s",
                           doc->path, field, (long long)i, wr_json_kind_name(e));
        }
        v[i++] = (float)e->valuedouble;
    }
    *out = v;
    return WR_OK;
}

/* The checks of a config (diffusers' names; path names the file in the messages), with
 * decoder_base_dim -1 resolved to base_dim. */
static wr_status config_check(cfg_raw *r, const char *path) {
    const int n = r->dim_mult.n;
#define BAD(code, ...) return WR_FAIL(code, __VA_ARGS__)
    if (r->class_name[0] && strcmp(r->class_name, "AutoencoderKLWan") != 0)
        BAD(WR_ERR_UNSUPPORTED,
            "%s: field '_class_name' is \"%s\"; the Wan2.2 VAE is "
            "\"AutoencoderKLWan\"",
            path, r->class_name);
    if (!r->is_residual)
        BAD(WR_ERR_UNSUPPORTED,
            "%s: field 'is_residual' is false: that is the Wan2.1 VAE "
            "(models/vae.h); vae22 runs the residual Wan2.2 VAE (is_residual true)",
            path);
    if (r->patch_size == 0)
        BAD(WR_ERR_UNSUPPORTED, "%s: field 'patch_size' is null or absent; the Wan2.2 VAE has 2",
            path);
    if (r->patch_size != 2)
        BAD(WR_ERR_UNSUPPORTED, "%s: field 'patch_size' is %lld; the Wan2.2 VAE has 2", path,
            (long long)r->patch_size);
    if (r->attn_scales.n != 0)
        BAD(WR_ERR_UNSUPPORTED,
            "%s: field 'attn_scales' must be empty (attention in the down/up "
            "blocks is not supported)",
            path);
    if (n < 2 || n > WR_VAE22_MAX_BLOCKS)
        BAD(WR_ERR_UNSUPPORTED, "%s: field 'dim_mult' has %d entries; 2 to %d are supported", path,
            n, WR_VAE22_MAX_BLOCKS);
    for (int i = 0; i < n; i++)
        if (r->dim_mult.v[i] < 1 || r->dim_mult.v[i] > 64)
            BAD(WR_ERR_CONFIG, "%s: field 'dim_mult' entry %d is %lld", path, i,
                (long long)r->dim_mult.v[i]);
    if (r->temperal_downsample.n != n - 1)
        BAD(WR_ERR_CONFIG,
            "%s: field 'temperal_downsample' has %d entries; dim_mult has %d, so "
            "%d are needed",
            path, r->temperal_downsample.n, n, n - 1);
    int nt = 0;
    for (int i = 0; i < n - 1; i++) nt += r->temperal_downsample.v[i] != 0;
    if (nt != 2)
        BAD(WR_ERR_UNSUPPORTED,
            "%s: field 'temperal_downsample' sets %d flags; 2 are supported "
            "(a temporal factor of 4, which diffusers' 1 + 4k frame chunking assumes)",
            path, nt);
    if (r->decoder_base_dim == -1) r->decoder_base_dim = r->base_dim;
#define POS(f, hi)                                                                                 \
    if (r->f < 1 || r->f > (hi))                                                                   \
    BAD(WR_ERR_CONFIG, "%s: field '" #f "' is %lld", path, (long long)r->f)
    POS(base_dim, 1 << 16);
    POS(decoder_base_dim, 1 << 16);
    POS(z_dim, 1 << 12);
    POS(in_channels, 1 << 12);
    POS(out_channels, 1 << 12);
#undef POS
    if (r->num_res_blocks < 1 || r->num_res_blocks + 1 > WR_VAE22_MAX_RES)
        BAD(WR_ERR_UNSUPPORTED, "%s: field 'num_res_blocks' is %lld; 1 to %d are supported", path,
            (long long)r->num_res_blocks, WR_VAE22_MAX_RES - 1);
    if (r->in_channels % 4 || r->out_channels % 4)
        BAD(WR_ERR_CONFIG,
            "%s: fields 'in_channels' %lld and 'out_channels' %lld must be "
            "multiples of patch_size^2 = 4",
            path, (long long)r->in_channels, (long long)r->out_channels);
    const int64_t sp = (int64_t)2 << (n - 1);
    if (r->scale_factor_spatial != sp)
        BAD(WR_ERR_CONFIG,
            "%s: field 'scale_factor_spatial' is %lld; patch_size 2 and %d "
            "spatial downsamplers make %lld",
            path, (long long)r->scale_factor_spatial, n - 1, (long long)sp);
    if (r->scale_factor_temporal != 4)
        BAD(WR_ERR_CONFIG,
            "%s: field 'scale_factor_temporal' is %lld; two temporal "
            "downsamplers make 4",
            path, (long long)r->scale_factor_temporal);
#undef BAD
    return WR_OK;
}

/* c from a checked r */
static void config_fill(wr_vae22_config *c, const cfg_raw *r) {
    const int n = r->dim_mult.n;
    c->base_dim = r->base_dim;
    c->decoder_base_dim = r->decoder_base_dim;
    c->z_dim = r->z_dim;
    c->num_res_blocks = r->num_res_blocks;
    c->in_channels = r->in_channels;
    c->out_channels = r->out_channels;
    c->patch_size = r->patch_size;
    c->scale_factor_spatial = r->scale_factor_spatial;
    c->scale_factor_temporal = r->scale_factor_temporal;
    c->ndim_mult = n;
    for (int i = 0; i < n; i++) c->dim_mult[i] = r->dim_mult.v[i];
    for (int i = 0; i < n - 1; i++) c->temperal_downsample[i] = r->temperal_downsample.v[i] != 0;
    c->is_residual = 1;
}

/* cfg_raw with diffusers' defaults (config_default's) */
static void raw_default(cfg_raw *r) {
    wr_vae22_config c;
    config_default(&c);
    memset(r, 0, sizeof *r);
    r->base_dim = c.base_dim;
    r->decoder_base_dim = c.decoder_base_dim;
    r->z_dim = c.z_dim;
    r->num_res_blocks = c.num_res_blocks;
    r->in_channels = c.in_channels;
    r->out_channels = c.out_channels;
    r->patch_size = c.patch_size;
    r->scale_factor_spatial = c.scale_factor_spatial;
    r->scale_factor_temporal = c.scale_factor_temporal;
    r->dim_mult = (wr_json_int_array){4, {1, 2, 4, 4}};
    r->temperal_downsample = (wr_json_int_array){3, {0, 1, 1}};
}

/* Reads and checks path into m->cfg (and the latents statistics). */
static wr_status config_read(wr_vae22 *m, const char *path) {
    wr_vae22_config *c = &m->cfg;
    config_default(c);
    cfg_raw r;
    raw_default(&r);
    wr_json_doc doc;
    WR_TRY(wr_json_load(&doc, path));
    wr_status st = wr_json_read_fields(&r, &doc, doc.root, cfg_fields,
                                       (int)(sizeof cfg_fields / sizeof *cfg_fields));
    if (st == WR_OK) st = config_check(&r, path);
    if (st != WR_OK) goto done;
    config_fill(c, &r);
    st = read_stats(&m->lat_mean, &doc, "latents_mean", c->z_dim);
    if (st == WR_OK) st = read_stats(&m->lat_std, &doc, "latents_std", c->z_dim);
    c->has_latents_stats = m->lat_mean != NULL && m->lat_std != NULL;
done:
    wr_json_free(&doc);
    return st;
}

/* ---- the tensor inventory (and binding) ---- */

typedef struct walker {
    wr_loader *ld; /* NULL: count only */
    int64_t count, params, vec_params;
} walker;

static int is_vector(const char *name) {
    const size_t n = strlen(name);
    return (n > 5 && strcmp(name + n - 5, ".bias") == 0) ||
           (n > 6 && strcmp(name + n - 6, ".gamma") == 0);
}

/* Conv weights stay in place (storage dtype); biases and gammas become f32 [C]; all resident. */
static void emit(walker *wk, wr_tensor *dst, const char *name, int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    wk->params += n;
    if (is_vector(name)) wk->vec_params += n;
    wk->count++;
    if (wk->ld == NULL) return;
    const wr_load_field f = {.t = dst, .f32 = is_vector(name), .flat = 1, .resident = 1};
    wr_loader_bind(wk->ld, name, ndim, shape, &f);
}

/* prefix.weight [co, ci, kt, kh, kw] (kt = 0: a Conv2d weight [co, ci, kh, kw]) and .bias */
static void emit_conv(walker *wk, v22_conv *cv, const char *prefix, int64_t co, int64_t ci,
                      int64_t kt, int64_t kh, int64_t kw) {
    char name[192];
    snprintf(name, sizeof name, "%s.weight", prefix);
    if (kt > 0)
        emit(wk, &cv->w, name, 5, (const int64_t[]){co, ci, kt, kh, kw});
    else
        emit(wk, &cv->w, name, 4, (const int64_t[]){co, ci, kh, kw});
    snprintf(name, sizeof name, "%s.bias", prefix);
    emit(wk, &cv->b, name, 1, (const int64_t[]){co});
}

static void emit_resnet(walker *wk, v22_resnet *rs, const char *prefix, int64_t ci, int64_t co) {
    char name[192];
    rs->cin = ci;
    rs->cout = co;
    rs->has_sc = ci != co;
    snprintf(name, sizeof name, "%s.norm1.gamma", prefix);
    emit(wk, &rs->norm1, name, 4, (const int64_t[]){ci, 1, 1, 1});
    snprintf(name, sizeof name, "%s.conv1", prefix);
    emit_conv(wk, &rs->conv1, name, co, ci, 3, 3, 3);
    snprintf(name, sizeof name, "%s.norm2.gamma", prefix);
    emit(wk, &rs->norm2, name, 4, (const int64_t[]){co, 1, 1, 1});
    snprintf(name, sizeof name, "%s.conv2", prefix);
    emit_conv(wk, &rs->conv2, name, co, co, 3, 3, 3);
    if (ci != co) {
        snprintf(name, sizeof name, "%s.conv_shortcut", prefix);
        emit_conv(wk, &rs->sc, name, co, ci, 1, 1, 1);
    }
}

static void emit_mid(walker *wk, v22_mid *mid, const char *prefix, int64_t C) {
    char name[192];
    snprintf(name, sizeof name, "%s.resnets.0", prefix);
    emit_resnet(wk, &mid->res[0], name, C, C);
    snprintf(name, sizeof name, "%s.attentions.0.norm.gamma", prefix);
    emit(wk, &mid->attn.norm, name, 3, (const int64_t[]){C, 1, 1});
    snprintf(name, sizeof name, "%s.attentions.0.to_qkv", prefix);
    emit_conv(wk, &mid->attn.qkv, name, 3 * C, C, 0, 1, 1);
    snprintf(name, sizeof name, "%s.attentions.0.proj", prefix);
    emit_conv(wk, &mid->attn.proj, name, C, C, 0, 1, 1);
    snprintf(name, sizeof name, "%s.resnets.1", prefix);
    emit_resnet(wk, &mid->res[1], name, C, C);
}

/* diffusers WanDecoder3d (is_residual) and post_quant_conv; fills the layer structure. */
static void walk_decoder(wr_vae22 *m, walker *wk) {
    const wr_vae22_config *c = &m->cfg;
    const int n = c->ndim_mult;
    const int64_t z = c->z_dim, dim = c->decoder_base_dim;
    int64_t dims[WR_VAE22_MAX_BLOCKS + 1];
    dims[0] = dim * c->dim_mult[n - 1];
    for (int i = 0; i < n; i++) dims[i + 1] = dim * c->dim_mult[n - 1 - i];
    char p[128];
    emit_conv(wk, &m->post_quant, "post_quant_conv", z, z, 1, 1, 1);
    emit_conv(wk, &m->dconv_in, "decoder.conv_in", dims[0], z, 3, 3, 3);
    emit_mid(wk, &m->dmid, "decoder.mid_block", dims[0]);
    for (int i = 0; i < n; i++) {
        v22_up *u = &m->up[i];
        const int up_flag = i != n - 1;
        /* temperal_upsample = temperal_downsample reversed */
        const int temporal = up_flag && c->temperal_downsample[n - 2 - i];
        u->cin = dims[i];
        u->cout = dims[i + 1];
        u->nres = (int)c->num_res_blocks + 1;
        u->mode = !up_flag ? RS_NONE : temporal ? RS_3D : RS_2D;
        u->ft = temporal ? 2 : 1;
        u->rep = u->cout * 4 * u->ft / u->cin; /* checked in check_shortcuts */
        u->s = u->rep > 0 ? 4 * u->ft / u->rep : 0;
        int64_t in = u->cin;
        for (int j = 0; j < u->nres; j++) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", i, j);
            emit_resnet(wk, &u->res[j], p, in, u->cout);
            in = u->cout;
        }
        if (u->mode != RS_NONE) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.upsampler.resample.1", i);
            emit_conv(wk, &u->resample, p, u->cout, u->cout, 0, 3, 3);
        }
        if (u->mode == RS_3D) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.upsampler.time_conv", i);
            emit_conv(wk, &u->time_conv, p, 2 * u->cout, u->cout, 3, 1, 1);
        }
    }
    emit(wk, &m->dnorm_out, "decoder.norm_out.gamma", 4, (const int64_t[]){dims[n], 1, 1, 1});
    emit_conv(wk, &m->dconv_out, "decoder.conv_out", c->out_channels, dims[n], 3, 3, 3);
}

/* diffusers WanEncoder3d (is_residual) and quant_conv; fills the layer structure. */
static void walk_encoder(wr_vae22 *m, walker *wk) {
    const wr_vae22_config *c = &m->cfg;
    const int n = c->ndim_mult;
    const int64_t z = c->z_dim, dim = c->base_dim;
    int64_t dims[WR_VAE22_MAX_BLOCKS + 1];
    dims[0] = dim;
    for (int i = 0; i < n; i++) dims[i + 1] = dim * c->dim_mult[i];
    char p[128];
    emit_conv(wk, &m->econv_in, "encoder.conv_in", dims[0], c->in_channels, 3, 3, 3);
    for (int i = 0; i < n; i++) {
        v22_down *d = &m->down[i];
        const int down_flag = i != n - 1;
        const int temporal = down_flag && c->temperal_downsample[i];
        d->cin = dims[i];
        d->cout = dims[i + 1];
        d->nres = (int)c->num_res_blocks;
        d->mode = !down_flag ? RS_NONE : temporal ? RS_3D : RS_2D;
        d->ft = temporal ? 2 : 1;
        d->fs = down_flag ? 2 : 1;
        d->factor = d->ft * d->fs * d->fs;
        d->group = d->cin * d->factor / d->cout; /* checked in check_shortcuts */
        int64_t in = d->cin;
        for (int j = 0; j < d->nres; j++) {
            snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d", i, j);
            emit_resnet(wk, &d->res[j], p, in, d->cout);
            in = d->cout;
        }
        if (d->mode != RS_NONE) {
            snprintf(p, sizeof p, "encoder.down_blocks.%d.downsampler.resample.1", i);
            emit_conv(wk, &d->resample, p, d->cout, d->cout, 0, 3, 3);
        }
        if (d->mode == RS_3D) {
            snprintf(p, sizeof p, "encoder.down_blocks.%d.downsampler.time_conv", i);
            emit_conv(wk, &d->time_conv, p, d->cout, d->cout, 3, 1, 1);
        }
    }
    emit_mid(wk, &m->emid, "encoder.mid_block", dims[n]);
    emit(wk, &m->enorm_out, "encoder.norm_out.gamma", 4, (const int64_t[]){dims[n], 1, 1, 1});
    emit_conv(wk, &m->econv_out, "encoder.conv_out", 2 * z, dims[n], 3, 3, 3);
    emit_conv(wk, &m->quant, "quant_conv", 2 * z, 2 * z, 1, 1, 1);
}

/* The residual shortcuts as strided copies (see v22_up / v22_down), as diffusers checks them
 * and beyond: DupUp3D's repeats even (the column parity then never changes the source channel)
 * and dividing 4 ft; AvgDown3D's group dividing its factor. */
static wr_status check_shortcuts(const wr_vae22 *m, const char *path) {
    for (int i = 0; i < m->nblk; i++) {
        const v22_up *u = &m->up[i];
        if (u->mode != RS_NONE && ((u->cout * 4 * u->ft) % u->cin != 0 || u->rep < 2 ||
                                   u->rep % 2 != 0 || (4 * u->ft) % u->rep != 0))
            return WR_FAIL(WR_ERR_UNSUPPORTED,
                           "%s: field 'dim_mult': decoder up block %d's DupUp3D (%lld -> %lld "
                           "channels, factor %lld) is not a channel map vae22 supports",
                           path, i, (long long)u->cin, (long long)u->cout, (long long)(4 * u->ft));
    }
    if (!m->has_enc) return WR_OK;
    for (int i = 0; i < m->nblk; i++) {
        const v22_down *d = &m->down[i];
        if ((d->cin * d->factor) % d->cout != 0 || d->group < 1 || d->factor % d->group != 0)
            return WR_FAIL(WR_ERR_UNSUPPORTED,
                           "%s: field 'dim_mult': encoder down block %d's AvgDown3D (%lld -> %lld "
                           "channels, factor %lld) is not a channel map vae22 supports",
                           path, i, (long long)d->cin, (long long)d->cout, (long long)d->factor);
    }
    return WR_OK;
}

static int64_t v22_walk(void *model, wr_visit_fn visit, void *ctx) {
    wr_vae22 *m = model;
    (void)visit;
    walker wk = {ctx, 0, 0, 0};
    walk_decoder(m, &wk);
    if (m->has_enc) walk_encoder(m, &wk);
    return wk.count;
}

/* ---- loading ---- */

static int64_t max_width(const wr_vae22 *m) {
    int64_t mx = 1;
    for (int i = 0; i < m->nblk; i++)
        if (m->has_enc && m->down[i].cout > mx) mx = m->down[i].cout;
    return mx;
}

wr_status wr_vae22_load(wr_vae22 **out, wr_backend *be, const char *dir) {
    *out = NULL;
    wr_status st = WR_OK;
    static const char *const ops[] = {"conv3d",    "upsample2x", "rms_norm_channels", "silu",
                                      "add",       "clamp",      "channel_affine",    "attention",
                                      "transpose", NULL};
    WR_TRY(wr_backend_require(be, "the Wan2.2 VAE", ops));
    wr_vae22 *m = calloc(1, sizeof *m);
    if (m == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    m->be = be;
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    char path[CAP_PATH + 32];
    snprintf(path, sizeof path, "%s/config.json", dir);
    WR_TRY_GOTO(st, config_read(m, path), fail);
    m->z = m->cfg.z_dim;
    m->nblk = m->cfg.ndim_mult;
    { /* the structure, for the checks (both halves: a config error whatever the checkpoint) */
        walker wk = {NULL, 0, 0, 0};
        m->has_enc = 1;
        walk_decoder(m, &wk);
        walk_encoder(m, &wk);
    }
    WR_TRY_GOTO(st, check_shortcuts(m, path), fail);
    WR_TRY_GOTO(st, wr_st_set_open(&m->weights, dir), fail);
    /* the encoder is loaded when the checkpoint has it (then every tensor of it is required) */
    m->has_enc = wr_st_set_find(m->weights, "encoder.conv_in.weight") != NULL ||
                 wr_st_set_find(m->weights, "quant_conv.weight") != NULL;
    size_t extra = 0;
    const int64_t zw = max_width(m);
    if (m->has_enc) {
        extra += (size_t)((zw + 15) & ~(int64_t)15);
        for (int i = 0; i < m->nblk; i++) extra += (size_t)((m->down[i].cout + 15) & ~(int64_t)15);
    }
    m->ld = (wr_loader){.set = m->weights,
                        .dir = m->dir,
                        .what = m->has_enc ? "Wan2.2 VAE" : "Wan2.2 VAE decoder",
                        .model = m,
                        .extra_floats = extra};
    int64_t count = 0;
    WR_TRY_GOTO(st, wr_loader_run(&m->ld, v22_walk, &count), fail);
    m->nweights = m->ld.nres;
    if (m->has_enc) { /* AvgDown3D's 1 / group per channel, and zeros for the shift */
        WR_TRY_GOTO(st, wr_loader_scratch(&m->ld, zw, 1, &m->zeros), fail);
        memset(m->zeros.data, 0, sizeof(float) * (size_t)zw);
        for (int i = 0; i < m->nblk; i++) {
            v22_down *d = &m->down[i];
            WR_TRY_GOTO(st, wr_loader_scratch(&m->ld, d->cout, 1, &d->avg_scale), fail);
            float *v = d->avg_scale.data;
            for (int64_t k = 0; k < d->cout; k++) v[k] = 1.0f / (float)d->group;
        }
    }
    WR_TRY_GOTO(st, wr_loader_upload(&m->ld, be), fail);
    if (!be->host_visible) { /* every tensor is on the device: the host copies go */
        wr_loader_drop_host(&m->ld);
        wr_st_set_close(m->weights);
        m->weights = NULL;
    }
    wr_debug("%s: Wan2.2 VAE loaded: z=%lld, base %lld / decoder %lld, %lld blocks, %lld tensors%s",
             dir, (long long)m->z, (long long)m->cfg.base_dim, (long long)m->cfg.decoder_base_dim,
             (long long)m->nblk, (long long)count, m->has_enc ? "" : " (no encoder)");
    *out = m;
    return WR_OK;
fail:
    wr_vae22_free(m);
    return st;
}

static void free_buffers(wr_vae22 *m);

void wr_vae22_free(wr_vae22 *m) {
    if (m == NULL) return;
    (void)wr_vae22_set_vram(m, NULL);
    free_buffers(m);
    wr_loader_free(&m->ld);
    wr_st_set_close(m->weights);
    free(m->lat_mean);
    free(m->lat_std);
    free(m);
}

const wr_vae22_config *wr_vae22_config_of(const wr_vae22 *m) {
    return &m->cfg;
}

int wr_vae22_has_encoder(const wr_vae22 *m) {
    return m->has_enc;
}

const float *wr_vae22_latents_mean(const wr_vae22 *m) {
    return m->lat_mean;
}

const float *wr_vae22_latents_std(const wr_vae22 *m) {
    return m->lat_std;
}

int64_t wr_vae22_frames(const wr_vae22 *m, int64_t t) {
    (void)m;
    return t < 1 ? 0 : 1 + 4 * (t - 1);
}

int64_t wr_vae22_latent_frames(const wr_vae22 *m, int64_t n) {
    (void)m;
    return n < 1 || (n - 1) % 4 != 0 ? 0 : 1 + (n - 1) / 4;
}

void wr_vae22_set_slice_channels(wr_vae22 *m, int64_t n) {
    m->slice_max = n > 0 ? n : 0;
}

void wr_vae22_set_tap(wr_vae22 *m, wr_vae22_tap_fn fn, void *ctx) {
    m->tap = fn;
    m->tap_ctx = ctx;
}

/* The callback gets a host copy of t (downloaded, so valid in the async device mode too). */
static void tap(wr_vae22 *m, const char *name, const wr_tensor *t) {
    if (m->tap == NULL || m->no_tap) return;
    const size_t n = wr_tensor_nbytes(t);
    wr_tensor h = *t;
    h.data = malloc(n ? n : 1);
    if (h.data == NULL) {
        wr_warn("VAE tap %s: out of host memory for %zu bytes, skipped", name, n);
        return;
    }
    if (wr_download(m->be, h.data, t->data, n) == WR_OK)
        m->tap(m->tap_ctx, name, m->tap_k, &h);
    else
        wr_warn("VAE tap %s: download failed (%s), skipped", name, wr_error_detail());
    free(h.data);
}

/* ---- feature caches and workspace ---- */

static void resnet_caches(v22_resnet *rs, void (*fn)(wr_vae22 *, v22_cache *), wr_vae22 *m) {
    fn(m, &rs->conv1.cache);
    fn(m, &rs->conv2.cache);
}

/* fn on every cached conv's slot of the decoder and (when loaded) the encoder */
static void each_cache(wr_vae22 *m, void (*fn)(wr_vae22 *, v22_cache *)) {
    fn(m, &m->dconv_in.cache);
    fn(m, &m->dconv_out.cache);
    for (int r = 0; r < 2; r++) resnet_caches(&m->dmid.res[r], fn, m);
    for (int i = 0; i < m->nblk; i++) {
        for (int r = 0; r < m->up[i].nres; r++) resnet_caches(&m->up[i].res[r], fn, m);
        fn(m, &m->up[i].time_conv.cache);
    }
    if (!m->has_enc) return;
    fn(m, &m->econv_in.cache);
    fn(m, &m->econv_out.cache);
    for (int r = 0; r < 2; r++) resnet_caches(&m->emid.res[r], fn, m);
    for (int i = 0; i < m->nblk; i++) {
        for (int r = 0; r < m->down[i].nres; r++) resnet_caches(&m->down[i].res[r], fn, m);
        fn(m, &m->down[i].time_conv.cache);
    }
}

static void clear_one(wr_vae22 *m, v22_cache *c) {
    (void)m;
    c->n = 0;
    c->rep = 0;
}

static void free_one(wr_vae22 *m, v22_cache *c) {
    v22_release(m, &c->buf, c->cap);
    c->cap = 0;
    c->n = 0;
    c->rep = 0;
}

static void free_buffers(wr_vae22 *m) {
    each_cache(m, free_one);
    for (int i = 0; i < WR_VAE22_NBUF; i++) v22_release(m, &m->buf[i], m->cap);
    m->cap = 0;
}

static wr_status ensure_workspace(wr_vae22 *m, size_t need) {
    if (need <= m->cap) return WR_OK;
    for (int i = 0; i < WR_VAE22_NBUF; i++) v22_release(m, &m->buf[i], m->cap);
    m->cap = 0;
    for (int i = 0; i < WR_VAE22_NBUF; i++) WR_TRY(v22_alloc(m, &m->buf[i], need));
    m->cap = need;
    return WR_OK;
}

static wr_status cache_room(void *model, v22_cache *c, size_t need) {
    wr_vae22 *m = model;
    if (c->cap >= need) return WR_OK;
    if (c->n > 0) return WR_FAIL(WR_ERR_INTERNAL, "VAE cache grew while holding frames");
    v22_release(m, &c->buf, c->cap);
    c->cap = 0;
    WR_TRY(v22_alloc(m, &c->buf, need));
    c->cap = need;
    return WR_OK;
}

/* A workspace view [c, t, h, w] of buffer p (within the planned size: our own bug otherwise). */
static wr_tensor ws4(const wr_vae22 *m, float *p, int64_t c, int64_t t, int64_t h, int64_t w) {
    WR_ASSERT((size_t)(c * t * h * w) <= m->cap);
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

/* A strided device copy of planes x rows runs of `width` floats (pitches in floats). */
static wr_status copy_f(wr_backend *be, float *dst, const float *src, int64_t width, int64_t rows,
                        int64_t planes, int64_t dpitch, int64_t dplane, int64_t spitch,
                        int64_t splane) {
    const size_t f = sizeof(float);
    const wr_copy3d c = {.dir = WR_COPY_D2D,
                         .dst = dst,
                         .src = src,
                         .width = f * (size_t)width,
                         .rows = rows,
                         .planes = planes,
                         .dpitch = f * (size_t)dpitch,
                         .dplane = f * (size_t)dplane,
                         .spitch = f * (size_t)spitch,
                         .splane = f * (size_t)splane};
    return wr_copy_3d(be, &c);
}

/* diffusers' cache_x rule (models/vae_common.h), the slot made room for first */
static wr_status cache_update(wr_vae22 *m, v22_cache *c, const wr_tensor *x, int rep_zero) {
    WR_TRY(cache_room(m, c, wr_causal_cache_floats(x)));
    return wr_causal_cache_update(m->be, c, x, rep_zero);
}

/* how vae_common.h runs this model's blocks */
static wr_vae_run run_of(wr_vae22 *m) {
    return (wr_vae_run){m->be, m->cap, cache_room, m};
}

/* diffusers WanCausalConv3d with its slot: y = the causal conv of x after the slot's frames
 * (2 - n zero frames in front); then the slot takes x's last frames. */
static wr_status cached_conv(wr_vae22 *m, v22_conv *cv, wr_tensor *y, const wr_tensor *x,
                             int64_t pad_hw) {
    const wr_vae_run r = run_of(m);
    return wr_vae_cached_conv(&r, cv, y, x, pad_hw);
}

/* ---- blocks shared by the decoder and the encoder (vae_common.h) ---- */

static wr_status resnet_forward(wr_vae22 *m, v22_resnet *rs, float **P, wr_tensor *x) {
    const wr_vae_run r = run_of(m);
    return wr_vae_resnet_forward(&r, rs, P, x);
}

/* diffusers WanMidBlock: x in P[0] -> P[0] */
static wr_status mid_forward(wr_vae22 *m, v22_mid *mid, float **P, wr_tensor *x) {
    WR_TRY(resnet_forward(m, &mid->res[0], P, x));
    const wr_vae_run r = run_of(m);
    WR_TRY(wr_vae_attention_forward(&r, &mid->attn, P, x));
    return resnet_forward(m, &mid->res[1], P, x);
}

/* head: conv_out(silu(norm_out(x))) [x in P[0]] -> y [co, T, H, W] in P[2] */
static wr_status head_forward(wr_vae22 *m, const wr_tensor *norm, v22_conv *conv, int64_t co,
                              float **P, const wr_tensor *x, wr_tensor *y) {
    wr_backend *be = m->be;
    const int64_t C = x->shape[0], T = x->shape[1], H = x->shape[2], W = x->shape[3];
    wr_tensor a = ws4(m, P[1], C, T, H, W), af = flat2(&a), xf = flat2(x);
    WR_TRY(wr_op_rms_norm_channels(be, &af, &xf, norm));
    WR_TRY(wr_op_silu(be, &af, &af));
    *y = ws4(m, P[2], co, T, H, W);
    return cached_conv(m, conv, y, &a, 1);
}

/* ---- the decoder, one latent frame ---- */

/* diffusers WanResample upsample2d / upsample3d (out dim = dim): x in P[0] -> P[0] */
static wr_status upsample_forward(wr_vae22 *m, v22_up *u, float **P, wr_tensor *x) {
    wr_backend *be = m->be;
    const int64_t C = x->shape[0], H = x->shape[2], W = x->shape[3];
    int64_t T = x->shape[1];
    if (u->mode == RS_3D) {
        v22_conv *tc = &u->time_conv;
        if (tc->cache.n == 0 && !tc->cache.rep) {
            tc->cache.rep = 1; /* latent frame 0: "Rep", no temporal upsampling */
        } else {
            wr_tensor y = ws4(m, P[1], 2 * C, T, H, W);
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
            const int64_t HW = H * W;
            (void)ws4(m, P[2], C, 2 * T, H, W);
            for (int64_t k = 0; k < 2; k++)
                WR_TRY(copy_f(be, P[2] + k * HW, P[1] + k * C * T * HW, HW, T, C, 2 * HW,
                              2 * T * HW, HW, T * HW));
            T *= 2;
            swap(&P[0], &P[2]);
            *x = ws4(m, P[0], C, T, H, W);
        }
    }
    /* per frame: nearest x2, then Conv2d 3x3 (pad 1), C -> C */
    wr_tensor up = ws4(m, P[1], C, T, 2 * H, 2 * W), y = ws4(m, P[2], C, T, 2 * H, 2 * W);
    WR_TRY(wr_op_upsample2x(be, &up, x));
    const wr_conv_params p = {0, 1, 1};
    WR_TRY(wr_op_conv3d(be, &y, &up, NULL, &u->resample.w, &u->resample.b, &p));
    swap(&P[0], &P[2]);
    *x = ws4(m, P[0], C, T, 2 * H, 2 * W);
    return WR_OK;
}

/*
 * x += DupUp3D(xc): xc [cin, T, H, W] (P[5]), x [cout, T2, 2H, 2W] (P[0]), T2 = T ft - drop
 * (first_chunk drops the first ft - 1 frames). Input channels in slices of a multiple of s,
 * each: U = nearest x2 of the slice (P[1]); S = its output channels (P[2]): for each a, b, t
 * one strided copy of the rows 2h + b of U's channels s o + k, k = (4a + 2b) / rep, into frame
 * t ft + a - drop; x's slice += S.
 */
static wr_status dupup_add(wr_vae22 *m, const v22_up *u, float **P, wr_tensor *x,
                           const wr_tensor *xc, int first) {
    wr_backend *be = m->be;
    const int64_t T = xc->shape[1], H = xc->shape[2], W = xc->shape[3], HW4 = 4 * H * W;
    const int64_t s = u->s, ft = u->ft, drop = first ? ft - 1 : 0, T2 = T * ft - drop;
    WR_ASSERT(x->shape[0] == u->cout && x->shape[1] == T2 && x->shape[2] == 2 * H &&
              x->shape[3] == 2 * W && xc->shape[0] == u->cin && u->cin == s * u->cout);
    int64_t cs = (int64_t)m->cap / (T * HW4);
    const int64_t cs2 = (int64_t)m->cap / (T2 * HW4) * s;
    if (cs2 < cs) cs = cs2;
    if (m->slice_max > 0 && m->slice_max < cs) cs = m->slice_max;
    cs -= cs % s;
    if (cs < s) cs = s; /* the plan has room for one group */
    if (cs > u->cin) cs = u->cin;
    for (int64_t c0 = 0; c0 < u->cin; c0 += cs) {
        const int64_t n = u->cin - c0 < cs ? u->cin - c0 : cs, no = n / s, o0 = c0 / s;
        wr_tensor in = wr_tensor_make((float *)xc->data + c0 * T * H * W, WR_DTYPE_F32, 4,
                                      (int64_t[]){n, T, H, W});
        wr_tensor U = ws4(m, P[1], n, T, 2 * H, 2 * W);
        WR_TRY(wr_op_upsample2x(be, &U, &in));
        wr_tensor S = ws4(m, P[2], no, T2, 2 * H, 2 * W);
        for (int64_t a = 0; a < ft; a++)
            for (int64_t b = 0; b < 2; b++) {
                const int64_t k = (4 * a + 2 * b) / u->rep;
                for (int64_t t = 0; t < T; t++) {
                    const int64_t tt = t * ft + a - drop;
                    if (tt < 0) continue;
                    WR_TRY(copy_f(be, P[2] + tt * HW4 + b * 2 * W,
                                  P[1] + (k * T + t) * HW4 + b * 2 * W, 2 * W, H, no, 4 * W,
                                  T2 * HW4, 4 * W, s * T * HW4));
                }
            }
        wr_tensor xs = wr_tensor_make((float *)x->data + o0 * T2 * HW4, WR_DTYPE_F32, 4,
                                      (int64_t[]){no, T2, 2 * H, 2 * W});
        WR_TRY(wr_op_add(be, &xs, &xs, &S));
    }
    return WR_OK;
}

/* diffusers WanResidualUpBlock: x in P[0] -> P[0] */
static wr_status up_forward(wr_vae22 *m, v22_up *u, float **P, wr_tensor *x, int first) {
    wr_tensor xc = *x;
    if (u->mode != RS_NONE) { /* x_copy stays in P[5] while the main path runs */
        swap(&P[0], &P[5]);
        xc.data = P[5];
        *x = xc;
    }
    for (int j = 0; j < u->nres; j++) WR_TRY(resnet_forward(m, &u->res[j], P, x));
    if (u->mode == RS_NONE) return WR_OK;
    WR_TRY(upsample_forward(m, u, P, x));
    return dupup_add(m, u, P, x, &xc, first);
}

/* unpatchify: o [4C, T, H, W] (P[2]; channel c*4 + i*2 + j -> pixel (2h + j, 2w + i)) ->
 * [C, T, 2H, 2W] in P[4]: the column pairs (i) as planes of P[3] [2, C, T, 2H, W] (four strided
 * copies), then one transpose [2, n] -> [n, 2] interleaves them */
static wr_status unpatchify(wr_vae22 *m, float **P, const wr_tensor *o, wr_tensor *out) {
    const int64_t C = o->shape[0] / 4, T = o->shape[1], H = o->shape[2], W = o->shape[3];
    const int64_t n = C * T * 2 * H * W;
    (void)ws4(m, P[3], 2 * C, T, 2 * H, W);
    for (int64_t i = 0; i < 2; i++)
        for (int64_t j = 0; j < 2; j++)
            WR_TRY(copy_f(m->be, P[3] + i * n + j * W, P[2] + (i * 2 + j) * T * H * W, W, T * H, C,
                          2 * W, T * 2 * H * W, W, 4 * T * H * W));
    wr_tensor a = wr_tensor_make(P[3], WR_DTYPE_F32, 2, (int64_t[]){2, n});
    wr_tensor b = wr_tensor_make(P[4], WR_DTYPE_F32, 2, (int64_t[]){n, 2});
    WR_TRY(wr_op_transpose(m->be, &b, &a));
    *out = ws4(m, P[4], C, T, 2 * H, 2 * W);
    return WR_OK;
}

/* WanDecoder3d.forward for one latent frame (x [z, 1, h, w] in P[0]), then its frames from
 * frame f0 into either tile (device [4C, N, H/2, W/2], as the decoder gives them: patched,
 * unclamped) or, tile NULL, out [C, N, H, W] (host) unpatchified and clamped */
static wr_status decoder_chunk(wr_vae22 *m, wr_tensor *x, wr_tensor *out, float *tile, int64_t f0,
                               int first) {
    wr_backend *be = m->be;
    float **P = m->buf;
    const int64_t h = x->shape[2], w = x->shape[3];
    wr_tensor y = ws4(m, P[1], m->dmid.res[0].cin, 1, h, w);
    WR_TRY(cached_conv(m, &m->dconv_in, &y, x, 1));
    swap(&P[0], &P[1]);
    *x = ws4(m, P[0], y.shape[0], 1, h, w);
    tap(m, "decoder.conv_in", x);
    WR_TRY(mid_forward(m, &m->dmid, P, x));
    tap(m, "decoder.mid_block", x);
    for (int i = 0; i < m->nblk; i++) {
        WR_TRY(up_forward(m, &m->up[i], P, x, first));
        char name[64];
        snprintf(name, sizeof name, "decoder.up_blocks.%d", i);
        tap(m, name, x);
    }
    wr_tensor o, f;
    WR_TRY(head_forward(m, &m->dnorm_out, &m->dconv_out, m->cfg.out_channels, P, x, &o));
    tap(m, "decoder", &o);
    if (tile) { /* o [4C, T, h', w'] -> tile[:, f0 : f0 + T]: per channel one run */
        const int64_t Tn = o.shape[1], fr = o.shape[2] * o.shape[3], N = out->shape[1];
        WR_ASSERT(f0 + Tn <= N);
        return copy_f(be, tile + f0 * fr, o.data, Tn * fr, o.shape[0], 1, N * fr, 0, Tn * fr, 0);
    }
    WR_TRY(unpatchify(m, P, &o, &f));
    WR_TRY(wr_op_clamp(be, &f, &f, -1.0f, 1.0f));
    /* f [C, T, Hs, Ws] -> out[:, f0 : f0 + T]: per channel one run of T frames */
    const int64_t C = f.shape[0], T = f.shape[1], N = out->shape[1];
    const int64_t fr = f.shape[2] * f.shape[3];
    WR_ASSERT(out->shape[0] == C && out->shape[2] == f.shape[2] && out->shape[3] == f.shape[3] &&
              f0 + T <= N);
    const size_t run = sizeof(float) * (size_t)(T * fr);
    const wr_copy3d cp = {.dir = WR_COPY_D2H,
                          .dst = (float *)out->data + f0 * fr,
                          .src = f.data,
                          .width = run,
                          .rows = C,
                          .planes = 1,
                          .dpitch = sizeof(float) * (size_t)(N * fr),
                          .spitch = run};
    return wr_copy_3d(be, &cp);
}

#define MAXE(v)                                                                                    \
    do {                                                                                           \
        const size_t v_ = (size_t)(v);                                                             \
        if (v_ > mx) mx = v_;                                                                      \
    } while (0)

/* What a decode of latent frames of h x w allocates: the largest buffer (floats) over the shapes
 * of decoder_chunk for the first latent frame and, when later (T > 1), for a later one (frames
 * double at each temporal upsampler); and the feature caches (floats: two input frames of every
 * cached conv; the time_conv slots fill from latent frame 1 on). */
typedef struct v22_plan {
    size_t buf, cache;
} v22_plan;

static v22_plan plan_decode(const wr_vae22 *m, int64_t h, int64_t w, int later) {
    size_t mx = 0, cache = 0;
    for (int pass = 0; pass <= later; pass++) {
        int64_t T = 1, H = h, W = w, C = m->dmid.res[0].cin;
        const int count = pass == 0; /* the caches once: their size does not depend on T */
        MAXE(m->z * H * W);
        MAXE(3 * C * H * W); /* attention: qkv and its token-major copies */
        if (count) cache += (size_t)(2 * (m->z + 4 * C) * H * W); /* conv_in, the mid block */
        for (int i = 0; i < m->nblk; i++) {
            const v22_up *u = &m->up[i];
            MAXE(u->cin * T * H * W);
            MAXE(u->cout * T * H * W);
            for (int j = 0; count && j < u->nres; j++)
                cache += (size_t)(2 * (u->res[j].cin + u->cout) * H * W);
            if (u->mode == RS_NONE) continue;
            MAXE(u->s * T * 4 * H * W); /* one DupUp3D slice */
            if (u->mode == RS_3D && count && later) cache += (size_t)(2 * u->cout * H * W);
            if (u->mode == RS_3D && pass == 1) {
                MAXE(2 * u->cout * T * H * W); /* time_conv output */
                T *= 2;
            }
            MAXE(u->cout * T * 4 * H * W);
            H *= 2;
            W *= 2;
        }
        MAXE(m->cfg.out_channels * T * H * W); /* conv_out, unpatchify's planes and output */
        if (count) cache += (size_t)(2 * m->up[m->nblk - 1].cout * H * W); /* conv_out */
    }
    return (v22_plan){mx, cache};
}

/* ---- the encoder, one chunk ---- */

/* diffusers WanResample downsample2d / downsample3d: x [C, T, H, W] in P[0] -> P[0].
 * ZeroPad2d((0,1,0,1)) + Conv2d(3, stride 2) is the stride-1 conv with pad 1 at the odd rows
 * and columns: the conv (P[1]), its odd rows (P[2]), a transpose that splits the columns by
 * parity (P[3]), the odd half back to P[0]. downsample3d then: chunk 0 keeps its last frame in
 * the slot; later chunks convolve (slot frame, x) in time with stride 2 (the stride-1 conv's
 * even frames) and keep their last frame. */
static wr_status downsample_forward(wr_vae22 *m, v22_down *d, float **P, wr_tensor *x) {
    wr_backend *be = m->be;
    const int64_t C = x->shape[0], T = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t Ho = H / 2, Wo = W / 2, n = C * T * Ho * Wo;
    WR_ASSERT(H % 2 == 0 && W % 2 == 0);
    wr_tensor y1 = ws4(m, P[1], C, T, H, W);
    const wr_conv_params p = {0, 1, 1};
    WR_TRY(wr_op_conv3d(be, &y1, x, NULL, &d->resample.w, &d->resample.b, &p));
    (void)ws4(m, P[2], C, T, Ho, W);
    WR_TRY(copy_f(be, P[2], P[1] + W, W, C * T * Ho, 1, W, 0, 2 * W, 0)); /* odd rows */
    wr_tensor a = wr_tensor_make(P[2], WR_DTYPE_F32, 2, (int64_t[]){n, 2});
    wr_tensor b = wr_tensor_make(P[3], WR_DTYPE_F32, 2, (int64_t[]){2, n});
    (void)ws4(m, P[3], 2 * C, T, Ho, Wo);
    WR_TRY(wr_op_transpose(be, &b, &a));
    WR_TRY(wr_dev_copy(be, P[0], P[3] + n, sizeof(float) * (size_t)n)); /* odd columns */
    *x = ws4(m, P[0], C, T, Ho, Wo);
    if (d->mode != RS_3D) return WR_OK;
    v22_cache *c = &d->time_conv.cache;
    const int64_t HW = Ho * Wo;
    if (c->n > 0) {
        WR_ASSERT(T >= 2);
        const wr_tensor cache = wr_tensor_make(c->buf, WR_DTYPE_F32, 4, (int64_t[]){C, 1, Ho, Wo});
        wr_tensor y = ws4(m, P[1], C, T - 1, Ho, Wo);
        const wr_conv_params p0 = {0, 0, 0};
        WR_TRY(wr_op_conv3d(be, &y, x, &cache, &d->time_conv.w, &d->time_conv.b, &p0));
    }
    /* the slot: x's last frame */
    WR_TRY(cache_room(m, c, (size_t)(C * HW)));
    WR_TRY(copy_f(be, c->buf, P[0] + (T - 1) * HW, HW, C, 1, HW, 0, T * HW, 0));
    if (c->n == 0) { /* chunk 0: no time conv */
        c->n = 1;
        return WR_OK;
    }
    /* stride 2: the stride-1 output's frames 0, 2, ... */
    const int64_t To = (T - 2) / 2 + 1;
    WR_TRY(copy_f(be, P[0], P[1], HW, To, C, HW, To * HW, 2 * HW, (T - 1) * HW));
    *x = ws4(m, P[0], C, To, Ho, Wo);
    return WR_OK;
}

/*
 * x += AvgDown3D(xc): xc [cin, T, H, W] in P[5], x [cout, T', H/fs, W/fs] in P[0]. The input is
 * padded in front with pad = (ft - T % ft) % ft zero frames; output channel o = p / group over
 * the permuted index p = c factor + (a fs + b) fs + d (input channel c, frame t' ft + a - pad,
 * pixel (fs h + b, fs w + d)). With group dividing factor, term g (p % group = g) is a strided
 * copy per (rem, t') from the column-split input (P[1]); S (P[2]) = ((t_0 + t_1) + ...) (term
 * t_g > 0 in P[3]), times 1 / group, is added to x.
 */
static wr_status avgdown_add(wr_vae22 *m, const v22_down *d, float **P, wr_tensor *x,
                             const wr_tensor *xc) {
    wr_backend *be = m->be;
    if (d->factor == 1) { /* the last block: the identity (group 1) */
        WR_ASSERT(wr_tensor_same_shape(x, xc));
        return wr_op_add(be, x, x, xc);
    }
    const int64_t T = xc->shape[1], H = xc->shape[2], W = xc->shape[3], ft = d->ft;
    const int64_t pad = (ft - T % ft) % ft, To = (T + pad) / ft, Ho = H / 2, Wo = W / 2;
    const int64_t X = d->cin * T * H * W, G = d->group, R = d->factor / G, HWo = Ho * Wo;
    WR_ASSERT(d->fs == 2 && x->shape[0] == d->cout && x->shape[1] == To && x->shape[2] == Ho &&
              x->shape[3] == Wo);
    wr_tensor xa = wr_tensor_make(xc->data, WR_DTYPE_F32, 2, (int64_t[]){X / 2, 2});
    wr_tensor xt = wr_tensor_make(P[1], WR_DTYPE_F32, 2, (int64_t[]){2, X / 2});
    (void)ws4(m, P[1], d->cin, T, H, W);
    WR_TRY(wr_op_transpose(be, &xt, &xa)); /* [d][c, t, row, w'] */
    wr_tensor S = ws4(m, P[2], d->cout, To, Ho, Wo), term = ws4(m, P[3], d->cout, To, Ho, Wo);
    const size_t tb = sizeof(float) * (size_t)wr_tensor_nelem(&S);
    for (int64_t g = 0; g < G; g++) {
        float *dst = g == 0 ? P[2] : P[3];
        WR_TRY(wr_dev_memset0(be, dst, tb));
        for (int64_t rb = 0; rb < R; rb++) {
            const int64_t rem = rb * G + g, a = rem / 4, b = (rem / 2) % 2, dd = rem % 2;
            for (int64_t t = 0; t < To; t++) {
                const int64_t tf = t * ft + a - pad;
                if (tf < 0) continue; /* a zero frame in front */
                WR_TRY(copy_f(be, dst + (rb * To + t) * HWo,
                              P[1] + dd * (X / 2) + (tf * H + b) * Wo, Wo, Ho, d->cin, Wo,
                              R * To * HWo, 2 * Wo, T * H * Wo));
            }
        }
        if (g > 0) WR_TRY(wr_op_add(be, &S, &S, &term));
    }
    wr_tensor sf = flat2(&S);
    const wr_tensor zero = wr_tensor_make(m->zeros.data, WR_DTYPE_F32, 1, (int64_t[]){d->cout});
    WR_TRY(wr_op_channel_affine(be, &sf, &sf, &d->avg_scale, &zero)); /* the mean */
    return wr_op_add(be, x, x, &S);
}

/* diffusers WanResidualDownBlock: x in P[0] -> P[0] */
static wr_status down_forward(wr_vae22 *m, v22_down *d, float **P, wr_tensor *x) {
    swap(&P[0], &P[5]); /* x_copy stays in P[5] while the main path runs */
    wr_tensor xc = *x;
    xc.data = P[5];
    *x = xc;
    for (int j = 0; j < d->nres; j++) WR_TRY(resnet_forward(m, &d->res[j], P, x));
    if (d->mode != RS_NONE) WR_TRY(downsample_forward(m, d, P, x));
    return avgdown_add(m, d, P, x, &xc);
}

/* patchify: video chunk [C, T, H, W] in P[1] -> [4C, T, H/2, W/2] in P[0] (channel c*4 + q*2 + r
 * = pixel (2h + r, 2w + q)): one transpose [n, 2] -> [2, n] splits the columns by parity (P[2]),
 * then four strided copies pick the rows */
static wr_status patchify(wr_vae22 *m, float **P, int64_t C, int64_t T, int64_t H, int64_t W,
                          wr_tensor *x) {
    const int64_t n = C * T * H * W / 2, Ho = H / 2, Wo = W / 2;
    wr_tensor a = wr_tensor_make(P[1], WR_DTYPE_F32, 2, (int64_t[]){n, 2});
    wr_tensor b = wr_tensor_make(P[2], WR_DTYPE_F32, 2, (int64_t[]){2, n});
    (void)ws4(m, P[2], C, T, H, W);
    WR_TRY(wr_op_transpose(m->be, &b, &a));
    (void)ws4(m, P[0], 4 * C, T, Ho, Wo);
    for (int64_t q = 0; q < 2; q++)
        for (int64_t r = 0; r < 2; r++)
            WR_TRY(copy_f(m->be, P[0] + (q * 2 + r) * T * Ho * Wo, P[2] + q * n + r * Wo, Wo,
                          T * Ho, C, Wo, 4 * T * Ho * Wo, 2 * Wo, T * H * Wo));
    *x = ws4(m, P[0], 4 * C, T, Ho, Wo);
    return WR_OK;
}

/* WanEncoder3d.forward for one chunk (x [4C, Tc, H/2, W/2] in P[0]) and quant_conv: the mean
 * (first z channels) of the one latent frame into mean [z, T, h, w] (host) at frame k */
/* WanEncoder3d.forward and quant_conv for chunk k (x in P[0], patchified), its
 * latent_dist.mean (channels [0, z)) into frame k of either tile (device [z, T, h, w]) or, tile
 * NULL, mean (host [z, T, h, w]) */
static wr_status encoder_chunk(wr_vae22 *m, wr_tensor *x, wr_tensor *mean, float *tile, int64_t k) {
    wr_backend *be = m->be;
    float **P = m->buf;
    const int64_t T = x->shape[1], H = x->shape[2], W = x->shape[3];
    wr_tensor y = ws4(m, P[1], m->down[0].cin, T, H, W);
    WR_TRY(cached_conv(m, &m->econv_in, &y, x, 1));
    swap(&P[0], &P[1]);
    *x = ws4(m, P[0], y.shape[0], T, H, W);
    tap(m, "encoder.conv_in", x);
    for (int i = 0; i < m->nblk; i++) {
        WR_TRY(down_forward(m, &m->down[i], P, x));
        char name[64];
        snprintf(name, sizeof name, "encoder.down_blocks.%d", i);
        tap(m, name, x);
    }
    WR_TRY(mid_forward(m, &m->emid, P, x));
    tap(m, "encoder.mid_block", x);
    wr_tensor o;
    WR_TRY(head_forward(m, &m->enorm_out, &m->econv_out, 2 * m->z, P, x, &o));
    tap(m, "encoder", &o);
    const int64_t h = o.shape[2], w = o.shape[3];
    WR_ASSERT(o.shape[1] == 1 && (tile || (mean->shape[2] == h && mean->shape[3] == w)));
    wr_tensor q = ws4(m, P[3], 2 * m->z, 1, h, w);
    const wr_conv_params p0 = {0, 0, 0};
    WR_TRY(wr_op_conv3d(be, &q, &o, NULL, &m->quant.w, &m->quant.b, &p0));
    /* latent_dist.mean: channels [0, z) -> mean[:, k] */
    const size_t run = sizeof(float) * (size_t)(h * w);
    const wr_copy3d cp = {.dir = tile ? WR_COPY_D2D : WR_COPY_D2H,
                          .dst = (tile ? tile : (float *)mean->data) + k * h * w,
                          .src = P[3],
                          .width = run,
                          .rows = m->z,
                          .planes = 1,
                          .dpitch = run * (size_t)mean->shape[1],
                          .spitch = run};
    return wr_copy_3d(be, &cp);
}

/* The same for an encode of video frames of Hv x Wv: chunk 0 (1 frame) and, when later (N > 1),
 * a chunk of 4; the caches (two input frames of every cached conv, one output frame of each
 * downsample3d). */
static v22_plan plan_encode(const wr_vae22 *m, int64_t Hv, int64_t Wv, int later) {
    size_t mx = 0, cache = 0;
    for (int pass = 0; pass <= later; pass++) {
        int64_t T = pass ? 4 : 1, H = Hv / 2, W = Wv / 2;
        const int count = pass == 0;
        MAXE(m->cfg.in_channels * T * H * W); /* the chunk, its column split, patchified */
        if (count) cache += (size_t)(2 * m->cfg.in_channels * H * W); /* conv_in */
        for (int i = 0; i < m->nblk; i++) {
            const v22_down *d = &m->down[i];
            MAXE(d->cin * T * H * W); /* x_copy and its column split */
            MAXE(d->cout * T * H * W);
            for (int j = 0; count && j < d->nres; j++)
                cache += (size_t)(2 * (d->res[j].cin + d->cout) * H * W);
            if (d->mode == RS_NONE) continue;
            H /= 2;
            W /= 2;
            if (d->mode == RS_3D && count) cache += (size_t)(d->cout * H * W);
            if (d->mode == RS_3D && pass == 1) {
                MAXE(d->cout * (T - 1) * H * W);
                T = (T - 2) / 2 + 1;
            }
        }
        const int64_t C = m->down[m->nblk - 1].cout;
        MAXE(3 * C * T * H * W); /* attention */
        MAXE(2 * m->z * T * H * W);
        if (count) cache += (size_t)(2 * 5 * C * H * W); /* the mid block, conv_out */
    }
    return (v22_plan){mx, cache};
}

#undef MAXE

/* ---- decode / encode ---- */

static void clear_caches(wr_vae22 *m) {
    each_cache(m, clear_one);
}

/* Every latent frame of z[:, :, y0 : y0 + h, x0 : x0 + w] (host) decoded with a fresh cache:
 * into tile (device [4C, N, 8 h, 8 w], patched, unclamped) or, tile NULL, into out (host,
 * the whole latent: y0 = x0 = 0) unpatchified and clamped. The workspace and the caches are
 * kept for the next region (the first region is the largest). */
static wr_status decode_region(wr_vae22 *m, wr_tensor *out, float *tile, const wr_tensor *z,
                               int64_t y0, int64_t x0, int64_t h, int64_t w) {
    wr_backend *be = m->be;
    const int64_t T = z->shape[1], Hz = z->shape[2], Wz = z->shape[3];
    WR_TRY(ensure_workspace(m, plan_decode(m, h, w, T > 1).buf));
    clear_caches(m);
    for (int64_t k = 0; k < T; k++) {
        m->tap_k = k;
        /* latent frame k of the region -> P[1] [z, 1, h, w]: z planes of h runs of w floats */
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
        wr_tensor lat = ws4(m, m->buf[1], m->z, 1, h, w), x = ws4(m, m->buf[0], m->z, 1, h, w);
        const wr_conv_params p0 = {0, 0, 0};
        WR_TRY(wr_op_conv3d(be, &x, &lat, NULL, &m->post_quant.w, &m->post_quant.b, &p0));
        tap(m, "post_quant_conv", &x);
        const int64_t f0 = k == 0 ? 0 : 1 + 4 * (k - 1);
        WR_TRY(decoder_chunk(m, &x, out, tile, f0, k == 0));
    }
    clear_caches(m);
    return WR_OK;
}

/* ---- tiling (diffusers' tiled_decode / tiled_encode) ---- */

/* The blending of a tiled pass in raster order (diffusers' blend_v, then blend_h): a tile's
 * first rows blend with the last rows of the tile above, its first columns with the last
 * columns of the left one (ramps over bh / bw pixels: wr_op_blend). Only the margins the next
 * tiles read are kept: the last bh rows of every tile of the row above (above, cols slots of
 * CN x min(bh, th0) x tw0) and the last bw columns of the left tile (left). th0 x tw0: the first
 * (largest) tile. */
typedef struct v22_blend {
    float *left, *above;
    size_t left_f, above_f; /* floats */
    int64_t *above_h;       /* rows kept per column */
    int64_t left_w, CN, bh, bw, slot;
} v22_blend;

static void blend_floats(int64_t CN, int64_t th0, int64_t tw0, int64_t bh, int64_t bw, int64_t cols,
                         size_t *left, size_t *above) {
    *left = (size_t)(CN * th0 * (bw < tw0 ? bw : tw0));
    *above = (size_t)(CN * (bh < th0 ? bh : th0) * cols * tw0);
}

static wr_status blend_open(wr_vae22 *m, v22_blend *b, int64_t CN, int64_t th0, int64_t tw0,
                            int64_t bh, int64_t bw, int64_t cols) {
    memset(b, 0, sizeof *b);
    b->CN = CN, b->bh = bh, b->bw = bw, b->slot = CN * (bh < th0 ? bh : th0) * tw0;
    blend_floats(CN, th0, tw0, bh, bw, cols, &b->left_f, &b->above_f);
    b->above_h = calloc((size_t)cols, sizeof(int64_t));
    if (b->above_h == NULL)
        return WR_FAIL(WR_ERR_OOM_HOST, "Wan2.2 VAE tiling: out of host memory");
    WR_TRY(v22_alloc(m, &b->left, b->left_f));
    return v22_alloc(m, &b->above, b->above_f);
}

static void blend_close(wr_vae22 *m, v22_blend *b) {
    v22_release(m, &b->left, b->left_f);
    v22_release(m, &b->above, b->above_f);
    free(b->above_h);
    b->above_h = NULL;
}

/* tile [CN, th, tw] (device) of row ri, column cj: blended in place, its margins kept */
static wr_status blend_tile(wr_vae22 *m, v22_blend *b, float *tile, int64_t th, int64_t tw,
                            int64_t ri, int64_t cj) {
    wr_backend *be = m->be;
    const int64_t CN = b->CN, bh = b->bh, bw = b->bw;
    /* this column's margin (none when stride = tile: no blending, nothing kept) */
    float *ab = b->above ? b->above + (size_t)(cj * b->slot) : NULL;
    if (ri > 0 && ab) { /* rows: tile [CN, th, tw] with the margin [CN, above_h, tw] */
        const int64_t a = b->above_h[cj], e = a < th ? (a < bh ? a : bh) : (th < bh ? th : bh);
        wr_tensor d3 = wr_tensor_make(tile, WR_DTYPE_F32, 3, (int64_t[]){CN, th, tw});
        wr_tensor a3 = wr_tensor_make(ab, WR_DTYPE_F32, 3, (int64_t[]){CN, a, tw});
        WR_TRY(wr_op_blend(be, &d3, &a3, e));
    }
    if (cj > 0 && b->left) { /* columns: tile [CN th, tw, 1] with the margin [CN th, left_w, 1] */
        const int64_t l = b->left_w, e = l < tw ? (l < bw ? l : bw) : (tw < bw ? tw : bw);
        wr_tensor d3 = wr_tensor_make(tile, WR_DTYPE_F32, 3, (int64_t[]){CN * th, tw, 1});
        wr_tensor a3 = wr_tensor_make(b->left, WR_DTYPE_F32, 3, (int64_t[]){CN * th, l, 1});
        WR_TRY(wr_op_blend(be, &d3, &a3, e));
    }
    /* the last kr rows (-> ab [CN, kr, tw]) and the last kc columns (-> left [CN th, kc]) */
    const int64_t kr = th < bh ? th : bh, kc = tw < bw ? tw : bw;
    if (ab && kr > 0)
        WR_TRY(copy_f(be, ab, tile + (th - kr) * tw, kr * tw, CN, 1, kr * tw, 0, th * tw, 0));
    if (b->left && kc > 0)
        WR_TRY(copy_f(be, b->left, tile + tw - kc, kc, CN * th, 1, kc, 0, tw, 0));
    b->above_h[cj] = kr;
    b->left_w = kc;
    return WR_OK;
}

/* A tiled pass's geometry in the tiled tensor's own pixels (decode: the decoder's patched
 * output; encode: the latent) and in the input's (decode: latent; encode: video): tiles of
 * in_t with stride in_s over an input of in_h x in_w, each giving a tile of out_t with stride
 * out_s and blend out_b. */
typedef struct v22_tiles {
    int64_t in_th, in_tw, in_sh, in_sw;     /* input tile and stride */
    int64_t out_per_in_num, out_per_in_den; /* output pixels per input pixel */
    int64_t out_sh, out_sw, bh, bw;         /* output stride and blend */
    int64_t rows, cols;
} v22_tiles;

/* diffusers' numbers (t in video pixels): decode — latent tiles of tile/16, stride/16, blending
 * and cropping in the patched space, (tile - stride) / 2 and stride / 2 pixels; encode — tiles
 * of the patchified video of tile x tile (2 tile video pixels), stride likewise, latents of
 * tile/8 with stride/8 and blend (tile - stride)/8. */
static v22_tiles tiles_of(const wr_vae22 *m, const wr_vae_tiling *t, int enc, int64_t in_h,
                          int64_t in_w) {
    const int64_t r = m->cfg.scale_factor_spatial;
    v22_tiles g;
    if (!enc) {
        g.in_th = t->tile_h / r, g.in_tw = t->tile_w / r;
        g.in_sh = t->stride_h / r, g.in_sw = t->stride_w / r;
        g.out_per_in_num = r / 2, g.out_per_in_den = 1;
        g.out_sh = t->stride_h / 2, g.out_sw = t->stride_w / 2;
        g.bh = t->tile_h / 2 - g.out_sh, g.bw = t->tile_w / 2 - g.out_sw;
    } else {
        g.in_th = 2 * t->tile_h, g.in_tw = 2 * t->tile_w;
        g.in_sh = 2 * t->stride_h, g.in_sw = 2 * t->stride_w;
        g.out_per_in_num = 1, g.out_per_in_den = r;
        g.out_sh = t->stride_h / (r / 2), g.out_sw = t->stride_w / (r / 2);
        g.bh = t->tile_h / (r / 2) - g.out_sh, g.bw = t->tile_w / (r / 2) - g.out_sw;
    }
    g.rows = (in_h + g.in_sh - 1) / g.in_sh, g.cols = (in_w + g.in_sw - 1) / g.in_sw;
    return g;
}

/* the output size of an input region of n pixels */
static int64_t tile_out(const v22_tiles *g, int64_t n) {
    return n * g->out_per_in_num / g->out_per_in_den;
}

/* the first (largest) tile's input region */
static void first_region(const v22_tiles *g, int64_t in_h, int64_t in_w, int64_t *h, int64_t *w) {
    *h = in_h < g->in_th ? in_h : g->in_th;
    *w = in_w < g->in_tw ? in_w : g->in_tw;
}

/* A tiled pass (tiles_of's geometry over an input of in_h x in_w): each tile's input region
 * run into the tile buffer (device [CN, th, tw]), blended (v22_blend), and its crop
 * [:, :out_sh, :out_sw], within the output's out_h x out_w, put into its place. */
typedef struct v22_pass {
    /* tile <- the input region [i0, i0 + h) x [j0, j0 + w) */
    wr_status (*run)(wr_vae22 *m, void *ctx, float *tile, int64_t i0, int64_t j0, int64_t h,
                     int64_t w);
    /* out[:, oy : oy + ch, ox : ox + cw] <- tile [CN, th, tw] [:, :ch, :cw] */
    wr_status (*put)(wr_vae22 *m, void *ctx, const float *tile, int64_t th, int64_t tw, int64_t oy,
                     int64_t ox, int64_t ch, int64_t cw);
    void *ctx;
    int64_t CN, out_h, out_w;
} v22_pass;

static wr_status run_tiled(wr_vae22 *m, const v22_tiles *g, int64_t in_h, int64_t in_w,
                           const v22_pass *ps) {
    wr_status st = WR_OK;
    int64_t h0, w0;
    first_region(g, in_h, in_w, &h0, &w0);
    const int64_t th0 = tile_out(g, h0), tw0 = tile_out(g, w0);
    const size_t tile_f = (size_t)(ps->CN * th0 * tw0);
    float *tile = NULL;
    v22_blend bl;
    WR_TRY_GOTO(st, blend_open(m, &bl, ps->CN, th0, tw0, g->bh, g->bw, g->cols), done);
    WR_TRY_GOTO(st, v22_alloc(m, &tile, tile_f), done);
    for (int64_t i0 = 0, ri = 0; i0 < in_h; i0 += g->in_sh, ri++) {
        for (int64_t j0 = 0, cj = 0; j0 < in_w; j0 += g->in_sw, cj++) {
            const int64_t h = in_h - i0 < g->in_th ? in_h - i0 : g->in_th,
                          w = in_w - j0 < g->in_tw ? in_w - j0 : g->in_tw;
            const int64_t th = tile_out(g, h), tw = tile_out(g, w);
            m->no_tap = ri > 0 || cj > 0;
            WR_TRY_GOTO(st, ps->run(m, ps->ctx, tile, i0, j0, h, w), done);
            WR_TRY_GOTO(st, blend_tile(m, &bl, tile, th, tw, ri, cj), done);
            const int64_t oy = ri * g->out_sh, ox = cj * g->out_sw;
            int64_t ch = th < g->out_sh ? th : g->out_sh, cw = tw < g->out_sw ? tw : g->out_sw;
            if (oy + ch > ps->out_h) ch = ps->out_h - oy;
            if (ox + cw > ps->out_w) cw = ps->out_w - ox;
            if (ch > 0 && cw > 0)
                WR_TRY_GOTO(st, ps->put(m, ps->ctx, tile, th, tw, oy, ox, ch, cw), done);
        }
    }
done:
    m->no_tap = 0;
    v22_release(m, &tile, tile_f);
    blend_close(m, &bl);
    return st;
}

/* diffusers' tiled_decode: latent tiles, each decoded over every frame with a fresh cache into
 * the patched space (12 channels, half the pixels), blended, cropped to stride / 2, then
 * unpatchified, clamped and downloaded into its place, frame by frame. */
typedef struct v22_dec_pass {
    wr_tensor *out;
    const wr_tensor *z;
} v22_dec_pass;

static wr_status dec_run(wr_vae22 *m, void *ctx, float *tile, int64_t i0, int64_t j0, int64_t h,
                         int64_t w) {
    const v22_dec_pass *d = ctx;
    return decode_region(m, d->out, tile, d->z, i0, j0, h, w);
}

/* per frame into P[2] [4C, 1, ch, cw], unpatchified (P[4] [C, 1, 2ch, 2cw]), clamped, into
 * out at (2 oy, 2 ox) */
static wr_status dec_put(wr_vae22 *m, void *ctx, const float *tile, int64_t th, int64_t tw,
                         int64_t oy, int64_t ox, int64_t ch, int64_t cw) {
    const v22_dec_pass *d = ctx;
    wr_backend *be = m->be;
    const int64_t C4 = m->cfg.out_channels, C = C4 / 4, N = d->out->shape[1];
    const int64_t Hs = d->out->shape[2], Ws = d->out->shape[3];
    const size_t fs = sizeof(float);
    for (int64_t f = 0; f < N; f++) {
        WR_TRY(copy_f(be, m->buf[2], tile + f * th * tw, cw, ch, C4, cw, ch * cw, tw, N * th * tw));
        wr_tensor o = ws4(m, m->buf[2], C4, 1, ch, cw), u;
        WR_TRY(unpatchify(m, m->buf, &o, &u));
        WR_TRY(wr_op_clamp(be, &u, &u, -1.0f, 1.0f));
        const wr_copy3d dl = {.dir = WR_COPY_D2H,
                              .dst = (float *)d->out->data + (f * Hs + 2 * oy) * Ws + 2 * ox,
                              .src = u.data,
                              .width = fs * (size_t)(2 * cw),
                              .rows = 2 * ch,
                              .planes = C,
                              .dpitch = fs * (size_t)Ws,
                              .dplane = fs * (size_t)(N * Hs * Ws),
                              .spitch = fs * (size_t)(2 * cw),
                              .splane = fs * (size_t)(4 * ch * cw)};
        WR_TRY(wr_copy_3d(be, &dl));
    }
    return WR_OK;
}

static wr_status decode_tiled(wr_vae22 *m, wr_tensor *out, const wr_tensor *z,
                              const wr_vae_tiling *t) {
    const int64_t Hz = z->shape[2], Wz = z->shape[3];
    const v22_tiles g = tiles_of(m, t, 0, Hz, Wz);
    v22_dec_pass d = {out, z};
    const v22_pass ps = {dec_run,          dec_put,         &d, m->cfg.out_channels * out->shape[1],
                         tile_out(&g, Hz), tile_out(&g, Wz)};
    return run_tiled(m, &g, Hz, Wz, &ps);
}

/* Whether a decode of an h x w latent tiles (diffusers: only when larger than one tile); a
 * tiling diffusers would not run the same way is refused. */
static wr_status tiling_check(const wr_vae22 *m, const wr_vae_tiling *t, int enc, int64_t h,
                              int64_t w, int *tiled) {
    *tiled = 0;
    if (t == NULL || !t->enabled) return WR_OK;
    const int64_t r = m->cfg.scale_factor_spatial;
    if (t->tile_h < r || t->tile_w < r || t->tile_h % r || t->tile_w % r || t->stride_h < r ||
        t->stride_w < r || t->stride_h % r || t->stride_w % r || t->stride_h > t->tile_h ||
        t->stride_w > t->tile_w)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "Wan2.2 VAE tiling %lldx%lld stride %lldx%lld: tile and stride must be "
                       "positive multiples of %lld with stride <= tile",
                       (long long)t->tile_h, (long long)t->tile_w, (long long)t->stride_h,
                       (long long)t->stride_w, (long long)r);
    /* decode: the latent against the tile's; encode: the video against the tile, in video
     * pixels (diffusers' _encode compares the unpatchified size) */
    *tiled = enc ? h > t->tile_h || w > t->tile_w : h > t->tile_h / r || w > t->tile_w / r;
    return WR_OK;
}

wr_status wr_vae22_decode(wr_vae22 *m, wr_tensor *out, const wr_tensor *z,
                          const wr_vae_tiling *tiling) {
    const int64_t r = m->cfg.scale_factor_spatial, C = m->cfg.out_channels / 4;
    if (z->ndim != 4 || z->shape[0] != m->z || z->dtype != WR_DTYPE_F32 || z->shape[1] < 1 ||
        z->shape[2] < 1 || z->shape[3] < 1)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "Wan2.2 VAE decode: the latent must be F32 [%lld, T, h, w]",
                       (long long)m->z);
    const int64_t T = z->shape[1], h = z->shape[2], w = z->shape[3], N = wr_vae22_frames(m, T);
    if (out->ndim != 4 || out->dtype != WR_DTYPE_F32 || out->shape[0] != C || out->shape[1] != N ||
        out->shape[2] != r * h || out->shape[3] != r * w)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "Wan2.2 VAE decode: the output must be F32 [%lld, %lld, %lld, %lld]",
                       (long long)C, (long long)N, (long long)(r * h), (long long)(r * w));
    int tiled;
    WR_TRY(tiling_check(m, tiling, 0, h, w, &tiled));
    const wr_status st =
        tiled ? decode_tiled(m, out, z, tiling) : decode_region(m, out, NULL, z, 0, 0, h, w);
    free_buffers(m); /* after the last download: nothing queued reads them */
    return st;
}

/* Every chunk of video[:, :, y0 : y0 + Hr, x0 : x0 + Wr] (host) encoded with a fresh cache into
 * tile (device [z, T, Hr/16, Wr/16]) or, tile NULL, mean (host, the whole video: y0 = x0 = 0).
 * The workspace and the caches are kept for the next region (the first is the largest). */
static wr_status encode_region(wr_vae22 *m, wr_tensor *mean, float *tile, const wr_tensor *video,
                               int64_t y0, int64_t x0, int64_t Hr, int64_t Wr) {
    wr_backend *be = m->be;
    const int64_t C = video->shape[0], N = video->shape[1], H = video->shape[2],
                  W = video->shape[3];
    const int64_t T = wr_vae22_latent_frames(m, N);
    WR_TRY(ensure_workspace(m, plan_encode(m, Hr, Wr, N > 1).buf));
    clear_caches(m);
    const size_t fs = sizeof(float);
    for (int64_t k = 0; k < T; k++) {
        m->tap_k = k;
        const int64_t f0 = k == 0 ? 0 : 1 + 4 * (k - 1), Tc = k == 0 ? 1 : 4;
        /* frames [f0, f0 + Tc) of the region -> P[1] [C, Tc, Hr, Wr]: per channel Tc planes of
         * Hr runs of Wr floats */
        (void)ws4(m, m->buf[1], C, Tc, Hr, Wr);
        for (int64_t c = 0; c < C; c++) {
            const wr_copy3d up = {.dir = WR_COPY_H2D,
                                  .dst = m->buf[1] + c * Tc * Hr * Wr,
                                  .src =
                                      (const float *)video->data + ((c * N + f0) * H + y0) * W + x0,
                                  .width = fs * (size_t)Wr,
                                  .rows = Hr,
                                  .planes = Tc,
                                  .dpitch = fs * (size_t)Wr,
                                  .dplane = fs * (size_t)(Hr * Wr),
                                  .spitch = fs * (size_t)W,
                                  .splane = fs * (size_t)(H * W)};
            WR_TRY(wr_copy_3d(be, &up));
        }
        wr_tensor x;
        WR_TRY(patchify(m, m->buf, C, Tc, Hr, Wr, &x));
        WR_TRY(encoder_chunk(m, &x, mean, tile, k));
    }
    clear_caches(m);
    return WR_OK;
}

/* diffusers' tiled_encode (with patch_size 2 it tiles the patchified video: tiles of 2 tile
 * video pixels with stride 2 stride): each tile encoded over every chunk with a fresh cache into
 * latents of tile/8, blended ((tile - stride)/8 latent pixels), cropped to stride/8 and
 * downloaded into its place. */
typedef struct v22_enc_pass {
    wr_tensor *mean;
    const wr_tensor *video;
} v22_enc_pass;

static wr_status enc_run(wr_vae22 *m, void *ctx, float *tile, int64_t i0, int64_t j0, int64_t h,
                         int64_t w) {
    const v22_enc_pass *e = ctx;
    return encode_region(m, e->mean, tile, e->video, i0, j0, h, w);
}

static wr_status enc_put(wr_vae22 *m, void *ctx, const float *tile, int64_t th, int64_t tw,
                         int64_t oy, int64_t ox, int64_t ch, int64_t cw) {
    const v22_enc_pass *e = ctx;
    const int64_t h = e->mean->shape[2], w = e->mean->shape[3];
    const size_t fs = sizeof(float);
    const wr_copy3d dl = {.dir = WR_COPY_D2H,
                          .dst = (float *)e->mean->data + oy * w + ox,
                          .src = tile,
                          .width = fs * (size_t)cw,
                          .rows = ch,
                          .planes = m->z * e->mean->shape[1],
                          .dpitch = fs * (size_t)w,
                          .dplane = fs * (size_t)(h * w),
                          .spitch = fs * (size_t)tw,
                          .splane = fs * (size_t)(th * tw)};
    return wr_copy_3d(m->be, &dl);
}

static wr_status encode_tiled(wr_vae22 *m, wr_tensor *mean, const wr_tensor *video,
                              const wr_vae_tiling *t) {
    const int64_t H = video->shape[2], W = video->shape[3];
    const v22_tiles g = tiles_of(m, t, 1, H, W);
    v22_enc_pass e = {mean, video};
    const v22_pass ps = {enc_run,        enc_put,       &e, m->z * mean->shape[1],
                         mean->shape[2], mean->shape[3]};
    return run_tiled(m, &g, H, W, &ps);
}

wr_status wr_vae22_encode(wr_vae22 *m, wr_tensor *mean, const wr_tensor *video,
                          const wr_vae_tiling *tiling) {
    if (!m->has_enc)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: the checkpoint has no encoder (encoder.*, "
                       "quant_conv.*): Wan2.2 VAE encode needs them",
                       m->dir);
    const int64_t r = m->cfg.scale_factor_spatial, C = m->cfg.in_channels / 4;
    if (video->ndim != 4 || video->dtype != WR_DTYPE_F32 || video->shape[0] != C ||
        wr_vae22_latent_frames(m, video->shape[1]) < 1 || video->shape[2] < r ||
        video->shape[2] % r || video->shape[3] < r || video->shape[3] % r)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "Wan2.2 VAE encode: the video must be F32 [%lld, 1 + 4k, H, W] with H and W "
                       "positive multiples of %lld",
                       (long long)C, (long long)r);
    const int64_t N = video->shape[1], H = video->shape[2], W = video->shape[3];
    const int64_t T = wr_vae22_latent_frames(m, N), h = H / r, w = W / r;
    if (mean->ndim != 4 || mean->dtype != WR_DTYPE_F32 || mean->shape[0] != m->z ||
        mean->shape[1] != T || mean->shape[2] != h || mean->shape[3] != w)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "Wan2.2 VAE encode: the mean must be F32 [%lld, %lld, %lld, %lld]",
                       (long long)m->z, (long long)T, (long long)h, (long long)w);
    int tiled;
    WR_TRY(tiling_check(m, tiling, 1, H, W, &tiled));
    const wr_status st = tiled ? encode_tiled(m, mean, video, tiling)
                               : encode_region(m, mean, NULL, video, 0, 0, H, W);
    free_buffers(m); /* after the last download: nothing queued reads them */
    return st;
}

/* ---- memory: the planner's numbers ---- */

/* a pass's bytes (decode: T latent frames of h x w; encode: T video frames of h x w): the
 * workspace and caches of the first (largest) region, and when tiled the tile and the blending
 * margins */
static size_t pass_bytes(const wr_vae22 *m, int enc, int64_t T, int64_t h, int64_t w, int tiled,
                         const wr_vae_tiling *t) {
    const int later = T > 1;
    if (!tiled) {
        const v22_plan p = enc ? plan_encode(m, h, w, later) : plan_decode(m, h, w, later);
        return sizeof(float) * (WR_VAE22_NBUF * p.buf + p.cache);
    }
    const v22_tiles g = tiles_of(m, t, enc, h, w);
    int64_t rh, rw;
    first_region(&g, h, w, &rh, &rw);
    const v22_plan p = enc ? plan_encode(m, rh, rw, later) : plan_decode(m, rh, rw, later);
    const int64_t th0 = tile_out(&g, rh), tw0 = tile_out(&g, rw);
    const int64_t CN =
        enc ? m->z * wr_vae22_latent_frames(m, T) : m->cfg.out_channels * wr_vae22_frames(m, T);
    size_t left, above;
    blend_floats(CN, th0, tw0, g.bh, g.bw, g.cols, &left, &above);
    return sizeof(float) *
           (WR_VAE22_NBUF * p.buf + p.cache + (size_t)(CN * th0 * tw0) + left + above);
}

size_t wr_vae22_decode_bytes(const wr_vae22 *m, int64_t T, int64_t h, int64_t w,
                             const wr_vae_tiling *tiling) {
    int tiled = 0;
    if (tiling_check(m, tiling, 0, h, w, &tiled) != WR_OK) {
        wr_error_clear(); /* wr_vae22_decode refuses it */
        tiled = 0;
    }
    return pass_bytes(m, 0, T, h, w, tiled, tiling);
}

size_t wr_vae22_encode_bytes(const wr_vae22 *m, int64_t N, int64_t H, int64_t W,
                             const wr_vae_tiling *tiling) {
    int tiled = 0;
    if (tiling_check(m, tiling, 1, H, W, &tiled) != WR_OK) {
        wr_error_clear(); /* wr_vae22_encode refuses it */
        tiled = 0;
    }
    return pass_bytes(m, 1, N, H, W, tiled, tiling);
}

wr_status wr_vae22_set_vram(wr_vae22 *m, wr_vram *v) {
    free_buffers(m); /* nothing is kept between calls; they go back where they came from */
    if (m->vram && m->w_bytes)
        (void)wr_vram_account(m->vram, WR_MEM_WEIGHTS_RESIDENT, -(int64_t)m->w_bytes);
    m->vram = NULL;
    m->w_bytes = 0;
    if (v == NULL) return WR_OK;
    WR_TRY(wr_vram_scratch_ensure(v)); /* the ops' scratch, from the pool from now on */
    /* the walked tensors' bytes (in place or copied into the device arena; the arena's padding
     * and the encoder's small f32 helper vectors are not counted) */
    uint64_t bytes = 0;
    for (int64_t i = 0; i < m->nweights; i++) bytes += wr_tensor_nbytes(m->ld.res[i]);
    WR_TRY(wr_vram_account(v, WR_MEM_WEIGHTS_RESIDENT, (int64_t)bytes));
    m->w_bytes = bytes;
    m->vram = v;
    return WR_OK;
}

wr_status wr_vae22_plan(const wr_vae_config *vc, const char *path, int encoder, int wbytes,
                        const wr_vae22_plan_req *req, wr_vae22_mem *out) {
    memset(out, 0, sizeof *out);
    cfg_raw r;
    raw_default(&r);
    r.base_dim = vc->base_dim;
    r.decoder_base_dim = vc->decoder_base_dim;
    r.z_dim = vc->z_dim;
    r.num_res_blocks = vc->num_res_blocks;
    r.in_channels = vc->in_channels;
    r.out_channels = vc->out_channels;
    r.patch_size = vc->patch_size;
    r.scale_factor_spatial = vc->scale_factor_spatial;
    r.scale_factor_temporal = vc->scale_factor_temporal;
    r.dim_mult = vc->dim_mult;
    r.temperal_downsample = vc->temperal_downsample;
    r.attn_scales = vc->attn_scales;
    r.is_residual = vc->is_residual;
    WR_TRY(config_check(&r, path));
    wr_vae22 *m = calloc(1, sizeof *m);
    if (m == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    config_fill(&m->cfg, &r);
    m->z = m->cfg.z_dim;
    m->nblk = m->cfg.ndim_mult;
    m->has_enc = encoder != 0;
    walker wk = {NULL, 0, 0, 0};
    walk_decoder(m, &wk);
    if (m->has_enc) walk_encoder(m, &wk);
    wr_status st = check_shortcuts(m, path);
    int tiled = 0;
    const int64_t rr = m->cfg.scale_factor_spatial;
    int etiled = 0;
    if (st == WR_OK) st = tiling_check(m, req->tiling, 0, req->h, req->w, &tiled);
    if (st == WR_OK) st = tiling_check(m, req->tiling, 1, req->h * rr, req->w * rr, &etiled);
    if (st == WR_OK) {
        out->weights =
            (uint64_t)(wk.params - wk.vec_params) * (uint64_t)wbytes + (uint64_t)wk.vec_params * 4u;
        out->decode = pass_bytes(m, 0, req->T, req->h, req->w, tiled, req->tiling);
        if (m->has_enc && req->image)
            out->encode = pass_bytes(m, 1, 1, req->h * rr, req->w * rr, etiled, req->tiling);
    }
    free(m);
    return st;
}

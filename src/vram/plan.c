/*
 * plan.c — the memory planner (see plan.h).
 */
#include "vram/plan.h"

#include <string.h>

#include "core/checked.h"
#include "models/t5.h"
#include "models/vae22.h"
#include "vram/levels.h"

const char *wr_plan_phase_name(int phase) {
    return phase == WR_PLAN_ENCODE    ? "encode"
           : phase == WR_PLAN_IMAGE   ? "image"
           : phase == WR_PLAN_DENOISE ? "denoise"
           : phase == WR_PLAN_DECODE  ? "decode"
                                      : "?";
}

/* ---- the VAE decoder (vae.c's buffers, per latent pixel of the decoded region) ---- */

typedef struct vae_coef {
    int64_t ws, caches, timec; /* floats per latent pixel */
} vae_coef;

/* Walks diffusers' WanDecoder3d for config c (Wan2.1 layout, as vae.c's walk()) at a 1 x 1
 * latent: the largest workspace buffer (vae.c keeps 5 of them) and every feature cache (2
 * frames of each causal conv's input; the time_conv ones exist from the second latent frame). */
static vae_coef vae_coefficients(const wr_vae_config *c) {
    const int64_t nm = c->dim_mult.n, base = c->decoder_base_dim, z = c->z_dim;
    int64_t dims[17];
    dims[0] = base * c->dim_mult.v[nm - 1];
    for (int64_t i = 0; i < nm; i++) dims[i + 1] = base * c->dim_mult.v[nm - 1 - i];
    int64_t ws = 0, caches = 0, timec = 0, T = 1, A = 1, C = dims[0];
#define MAXE(v) (ws = (v) > ws ? (v) : ws)
    MAXE(z * A);
    MAXE(3 * C * A);             /* mid-block attention: qkv and its token-major copies */
    caches += 2 * z * A;         /* conv_in */
    caches += 2 * 2 * 2 * C * A; /* mid block: 2 resnets x (conv1, conv2), width C */
    for (int64_t i = 0; i < nm; i++) {
        const int64_t out = dims[i + 1];
        int64_t in = i > 0 ? dims[i] / 2 : dims[i];
        const int up = i != nm - 1, up3d = up && c->temperal_downsample.v[nm - 2 - i];
        MAXE(in * T * A);
        for (int64_t j = 0; j <= c->num_res_blocks; j++) {
            caches += 2 * in * A + 2 * out * A; /* conv1 reads the input width, conv2 out */
            in = out;
        }
        MAXE(out * T * A);
        if (up3d) {
            timec += 2 * out * A;
            MAXE(2 * out * T * A); /* time_conv output, 2 x channels */
            T *= 2;
        }
        if (up) {
            MAXE(out * T * 4 * A); /* nearest x2, before the 3x3 conv to out/2 */
            A *= 4;
            C = out / 2;
        } else {
            C = out;
        }
    }
    MAXE(C * T * A);
    MAXE(c->out_channels * T * A);
#undef MAXE
    caches += 2 * C * A; /* conv_out */
    return (vae_coef){ws, caches + timec, timec};
}

int64_t wr_plan_vae_frames(const wr_vae_config *c, int64_t T) {
    int k = 0;
    for (int i = 0; i + 1 < c->dim_mult.n && i < c->temperal_downsample.n; i++)
        k += c->temperal_downsample.v[i] != 0;
    return T < 1 ? 0 : 1 + ((int64_t)1 << k) * (T - 1);
}

void wr_plan_vae(const wr_vae_config *c, int64_t T, int64_t H, int64_t W, const wr_vae_tiling *t,
                 uint64_t *decoder_bytes, uint64_t *blend_bytes) {
    const vae_coef k = vae_coefficients(c);
    const int64_t r = c->scale_factor_spatial > 0 ? c->scale_factor_spatial : 8,
                  oc = c->out_channels, N = wr_plan_vae_frames(c, T);
    int64_t rh = H, rw = W;
    uint64_t tile = 0, blend = 0;
    if (t && t->enabled && (H > t->tile_h / r || W > t->tile_w / r)) {
        const int64_t tlh = t->tile_h / r, tlw = t->tile_w / r, slw = t->stride_w / r;
        const int64_t bh = t->tile_h - t->stride_h, bw = t->tile_w - t->stride_w;
        const int64_t ncol = (W + slw - 1) / slw;
        rh = H < tlh ? H : tlh;
        rw = W < tlw ? W : tlw;
        const uint64_t per_frame = wr_mul_sat_u64(sizeof(float) * (uint64_t)oc, (uint64_t)N);
        tile = wr_mul_sat_u64(per_frame, (uint64_t)t->tile_h * (uint64_t)t->tile_w);
        blend = wr_mul_sat_u64(per_frame, (uint64_t)(t->tile_h * bw + bh * ncol * t->tile_w));
    }
    const int64_t cache = T >= 2 ? k.caches : k.caches - k.timec;
    /* saturating: an absurd request plans as "more than exists", never as a wrapped number */
    const uint64_t per_px = sizeof(float) * (uint64_t)(5 * k.ws + cache);
    *decoder_bytes =
        wr_add_sat_u64(wr_mul_sat_u64(wr_mul_sat_u64(per_px, (uint64_t)rh), (uint64_t)rw), tile);
    *blend_bytes = blend;
}

/* ---- weights ---- */

wr_status wr_plan_level(const wr_plan_in *in, int level, uint64_t budget, wr_plan_out *o) {
    wr_mem_policy pol;
    WR_TRY(wr_mem_policy_of_level(level, &pol));
    return wr_plan_policy(in, &pol, budget, o);
}

/* What the arithmetic below relies on: the three configs as the config readers leave them
 * (a model directory without one of the components leaves it zero), and a request whose
 * sizes fit. */
static wr_status plan_check(const wr_plan_in *in) {
    const wr_dit_config *d = &in->dit;
    const wr_vae_config *v = &in->vae;
    const char *none = NULL;
    const wr_dit_config *d2 = &in->dit2;
    if (d->num_layers < 1 || d->num_attention_heads < 1 || d->attention_head_dim < 1 ||
        d->patch_size.n != 3 || d->patch_size.v[0] < 1 || d->patch_size.v[1] < 1 ||
        d->patch_size.v[2] < 1 || d->in_channels < 1 || d->text_dim < 1)
        none = "transformer";
    else if (in->experts == 2 &&
             (d2->num_layers < 1 || d2->num_attention_heads < 1 || d2->attention_head_dim < 1 ||
              d2->in_channels < 1 || d2->text_dim < 1))
        none = "transformer_2";
    else if (in->t5.num_layers < 1 || in->t5.d_model < 1 || in->t5.num_heads < 1)
        none = "text_encoder";
    else if (v->dim_mult.n < 1 || v->dim_mult.n > WR_VAE_MAX_UP ||
             v->temperal_downsample.n != v->dim_mult.n - 1 || v->scale_factor_spatial < 1 ||
             v->scale_factor_temporal < 1 || v->z_dim < 1 || v->decoder_base_dim < 1)
        none = "vae";
    if (!none && v->is_residual != in->ti2v)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       v->is_residual
                           ? "plan: the Wan2.2 VAE (is_residual) without expand_timesteps: "
                             "wanrun runs it only in the TI2V pipeline"
                           : "plan: TI2V (expand_timesteps) needs the Wan2.2 VAE (is_residual)");
    if (none)
        return WR_FAIL(WR_ERR_CONFIG,
                       "plan: no usable %s config: the model directory has no %s/ component "
                       "(model_index.json does not list it); planning needs the transformer, "
                       "the text encoder and the VAE",
                       none, none);
    if (in->width < 1 || in->height < 1 || in->frames < 1 || in->width > WR_PLAN_MAX_SIDE ||
        in->height > WR_PLAN_MAX_SIDE || in->frames > WR_PLAN_MAX_FRAMES ||
        wr_mul_sat_i64(
            wr_mul_sat_i64(d->in_channels, (in->frames - 1) / v->scale_factor_temporal + 1),
            wr_mul_sat_i64(in->height / v->scale_factor_spatial,
                           in->width / v->scale_factor_spatial)) > ((int64_t)1 << 40))
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "plan: a request of %lldx%lld, %lld frames: sides must be in [1, %d], "
                       "frames in [1, %d], and the latent at most 2^40 values",
                       (long long)in->width, (long long)in->height, (long long)in->frames,
                       WR_PLAN_MAX_SIDE, WR_PLAN_MAX_FRAMES);
    return WR_OK;
}

void wr_plan_in_model(wr_plan_in *in, const wr_model_dir *md) {
    in->dit = md->dit, in->t5 = md->t5, in->vae = md->vae;
    in->experts = md->has[WR_COMP_TRANSFORMER_2] && md->boundary_ratio >= 0.0 ? 2 : 1;
    in->ti2v = md->expand_timesteps;
    if (in->experts == 2) in->dit2 = md->dit2;
}

int wr_pipeline_text_cache(int dit_stream, int cfg, int cfg_parallel) {
    if (dit_stream) return 0;
    return cfg && cfg_parallel != 2 ? 2 : 1;
}

wr_status wr_plan_policy(const wr_plan_in *in, const wr_mem_policy *pol, uint64_t budget,
                         wr_plan_out *o) {
    memset(o, 0, sizeof *o);
    WR_TRY(plan_check(in));
    const wr_dit_config *d = &in->dit;
    const int64_t r8 = in->vae.scale_factor_spatial, tf = in->vae.scale_factor_temporal;
    const int64_t T = (in->frames - 1) / tf + 1, Hl = in->height / r8, Wl = in->width / r8;
    const int64_t pt = d->patch_size.v[0], ph = d->patch_size.v[1], pw = d->patch_size.v[2];
    const int64_t L = (T / pt) * (Hl / ph) * (Wl / pw); /* <= 2^40: plan_check bounds the latent */
    const int cp = in->cp > 1 ? in->cp : 1;
    o->tokens = L;

    /* the DiT: blocks, the rest, the workspace of this rank's shard, each buffer in its own
     * dtype (act_bytes 2: bf16 activations, the residual stream and the rest f32; else f32) */
    size_t blk = 0, dit_other = 0;
    wr_dit_plan_weights(d, in->dit_wbytes, &blk, &dit_other);
    /* with the blocks resident, the text cache keeps every block's cross-attention K/V of each
     * text this rank runs (the pipeline's rule, wr_pipeline_text_cache) */
    const int ntext = wr_pipeline_text_cache(pol->dit_stream, !in->no_cfg, in->cfg_parallel);
    const uint64_t dit_ws = (uint64_t)wr_dit_plan_workspace_ex(
        d, L, 512, cp, in->cp_mode,
        (in->dit_act_bytes ? in->dit_act_bytes : in->act_bytes) == 2 ? WR_DTYPE_BF16 : WR_DTYPE_F32,
        ntext);
    /* the per-block upcast buffer (DESIGN.md's "computation" state): block matrices stored
     * narrower than the compute dtype (a bf16 checkpoint on the f32 CPU, FP8 storage anywhere)
     * are converted once per acquire into one block's matrices in the compute dtype (64-byte
     * aligned: wr_dit_plan_upcast, the DiT's own number, scaled from f32), a workspace while
     * the DiT computes, whether its blocks stream or stay resident */
    const uint64_t upcast = in->dit_wbytes < in->act_bytes || in->fp8_upcast
                                ? (uint64_t)wr_dit_plan_upcast(d) / 4 * (uint64_t)in->act_bytes
                                : 0;
    /* the text encoder: its layers (t5.c's layout) and final norm, never the embedding table
     * (its rows are gathered on the host); the workspace of 512 tokens */
    const int64_t t5L = in->t5.num_layers;
    const uint64_t t5_layer = (uint64_t)wr_t5_plan_layer_bytes(&in->t5, in->t5_wbytes);
    /* FP8 storage: the seven matrices' scales of every layer stay on the device */
    const uint64_t t5_all = t5_layer * (uint64_t)t5L + 4 * (uint64_t)in->t5.d_model +
                            (in->t5_wbytes == 1 ? 7 * 4 * (uint64_t)t5L : 0);
    const uint64_t t5_ws =
        (uint64_t)wr_t5_plan_workspace(&in->t5, 512) / 4 * (uint64_t)in->act_bytes;
    const uint64_t t5_upcast =
        in->fp8_upcast && !in->te_cpu ? t5_layer / (uint64_t)in->t5_wbytes * in->act_bytes : 0;
    /* the VAE: Wan2.1's (vae.c), or TI2V's Wan2.2 VAE (vae22.c: its own plan, f32 buffers)
     * with the encoder's weights and, with an image, one frame's encode (tiled as the decode) */
    uint64_t vae_w = 0, vae_dec = 0, vae_blend = 0, vae_enc = 0;
    if (in->ti2v) {
        const wr_vae22_plan_req q = {.T = T,
                                     .h = Hl,
                                     .w = Wl,
                                     .tiling = pol->vae_tiled ? &in->tiling : NULL,
                                     .image = in->image};
        wr_vae22_mem vm;
        WR_TRY(wr_vae22_plan(&in->vae, "plan: the vae config", 1, in->vae_wbytes, &q, &vm));
        vae_w = vm.weights, vae_dec = vm.decode, vae_enc = vm.encode;
    } else {
        int64_t vae_params = 0;
        wr_vae_expected_tensors(&in->vae, &vae_params, NULL, NULL);
        vae_w = (uint64_t)vae_params * (uint64_t)in->vae_wbytes;
        wr_plan_vae(&in->vae, T, Hl, Wl, pol->vae_tiled ? &in->tiling : NULL, &vae_dec, &vae_blend);
        vae_dec = vae_dec / 4 * (uint64_t)in->act_bytes; /* vae.c's buffers are f32 */
        vae_blend = vae_blend / 4 * (uint64_t)in->act_bytes;
    }
    /* TI2V's buffers from the per-token timesteps on to the end of denoising: the timesteps
     * (one per token) and, with an image, its latent [C, 1, h, w] and the DiT's input */
    const uint64_t ti2v_ws =
        in->ti2v ? (uint64_t)in->act_bytes *
                       ((uint64_t)L + (in->image ? (uint64_t)(d->in_channels * Hl * Wl) +
                                                       (uint64_t)(d->in_channels * T * Hl * Wl)
                                                 : 0))
                 : 0;
    /* the pipeline's buffers: the text embeddings (prompt, negative prompt) from encoding to
     * the end of denoising; the latent x, the velocity v (both branches' with CFG-parallel)
     * and the unconditional one while denoising, x until decoded (f32 on the CPU backend) */
    const uint64_t latent = (uint64_t)in->act_bytes * (uint64_t)(d->in_channels * T * Hl * Wl);
    const uint64_t emb = (uint64_t)in->act_bytes * 512 * (uint64_t)d->text_dim;
    const int nemb = in->no_cfg ? 1 : 2;
    const int nlat = in->no_cfg ? 2 : in->cfg_parallel == 2 ? 4 : 3;

    const uint64_t dit_all = blk * (uint64_t)d->num_layers + dit_other;
    /* Wan2.2 A14B: the waiting expert (the pipeline's count_waiting) */
    size_t blk2 = 0, other2 = 0;
    if (in->experts == 2) wr_dit_plan_weights(&in->dit2, in->dit_wbytes, &blk2, &other2);
    const uint64_t wait_host = in->experts == 2 && !in->disk_offload
                                   ? wr_mul_sat_u64((uint64_t)blk2, (uint64_t)in->dit2.num_layers)
                                   : 0;
    /* the sums saturate: the VAE's term of a huge untiled request may be UINT64_MAX */
#define ADD(x, v) ((x) = wr_add_sat_u64((x), (v)))
    for (int p = 0; p < WR_PLAN_PHASES; p++) {
        uint64_t *c = o->dev[p];
        if (p == WR_PLAN_IMAGE && !(in->ti2v && in->image)) continue; /* no such phase */
        /* weights present on the device during phase p (the image is encoded after the text
         * encoder's streamed layers are gone and before a streamed DiT is set up) */
        ADD(c[WR_MEM_WEIGHTS_RESIDENT], vae_w);
        if (in->te_cpu) { /* on the host, as long as the policy keeps it */
            if (!pol->te_stream || p == WR_PLAN_ENCODE) ADD(o->host[p], t5_all);
        } else {
            if (!pol->te_stream) ADD(c[WR_MEM_WEIGHTS_RESIDENT], t5_all);
            if (pol->te_stream && p == WR_PLAN_ENCODE) {
                ADD(c[WR_MEM_WEIGHTS_STREAMING], 2 * t5_layer);
                ADD(c[WR_MEM_WEIGHTS_RESIDENT], t5_all - t5_layer * (uint64_t)t5L); /* final norm */
                if (!in->disk_offload) ADD(o->host[p], t5_layer * (uint64_t)t5L);
                ADD(o->host[p], in->staging);
            }
        }
        if (!pol->dit_stream) ADD(c[WR_MEM_WEIGHTS_RESIDENT], dit_all);
        if (pol->dit_stream && p == WR_PLAN_DENOISE) ADD(c[WR_MEM_WEIGHTS_RESIDENT], dit_other);
        ADD(c[WR_MEM_WEIGHTS_RESIDENT], (uint64_t)other2); /* the waiting expert's */
        ADD(o->host[p], wait_host);
        if (in->experts == 2 && !pol->dit_stream && in->resident_copies && p == WR_PLAN_DENOISE)
            ADD(o->host[p], in->staging); /* the swap's copies */
        /* activations of the phase */
        if (p == WR_PLAN_ENCODE && !in->te_cpu) ADD(c[WR_MEM_ACTIVATIONS], t5_ws);
        if (p == WR_PLAN_DENOISE) ADD(c[WR_MEM_ACTIVATIONS], dit_ws);
        if (p == WR_PLAN_ENCODE) ADD(c[WR_MEM_WORKSPACE], t5_upcast);
        if (p == WR_PLAN_DENOISE) ADD(c[WR_MEM_WORKSPACE], upcast);
        if (p != WR_PLAN_DECODE) ADD(c[WR_MEM_WORKSPACE], (uint64_t)nemb * emb); /* embeddings */
        if (p == WR_PLAN_DENOISE || p == WR_PLAN_IMAGE)
            ADD(c[WR_MEM_WORKSPACE], (uint64_t)nlat * latent + ti2v_ws);
        if (p == WR_PLAN_IMAGE) ADD(c[WR_MEM_VAE], vae_enc);
        if (p == WR_PLAN_DECODE) ADD(c[WR_MEM_VAE], wr_add_sat_u64(vae_dec, vae_blend));
        if (p == WR_PLAN_DECODE) ADD(c[WR_MEM_WORKSPACE], latent); /* x */
        ADD(c[WR_MEM_WORKSPACE], in->scratch);                     /* the ops' scratch arena */
    }
    if (pol->dit_stream) { /* the DiT's blocks while denoising: two slots, and as many resident as
                         the budget leaves */
        uint64_t *c = o->dev[WR_PLAN_DENOISE];
        uint64_t used = 2 * blk; /* as the pipeline chooses (setup_streaming) */
        for (int k = 0; k < WR_MEM_CAT_COUNT; k++) ADD(used, c[k]);
        int64_t res = 0;
        if (budget > used && blk > 0) res = (int64_t)((budget - used) / blk);
        if (res >= d->num_layers) {
            res = d->num_layers; /* all resident: no slots */
        } else {
            ADD(c[WR_MEM_WEIGHTS_STREAMING], 2 * blk);
            ADD(o->host[WR_PLAN_DENOISE], in->staging);
        }
        o->resident_blocks = res;
        ADD(c[WR_MEM_WEIGHTS_RESIDENT], (uint64_t)res * blk);
        if (!in->disk_offload) /* the streamed blocks wait in host memory while denoising */
            ADD(o->host[WR_PLAN_DENOISE], (uint64_t)(d->num_layers - res) * blk);
    }
    for (int p = 0; p < WR_PLAN_PHASES; p++) {
        for (int k = 0; k < WR_MEM_CAT_COUNT; k++) ADD(o->dev_total[p], o->dev[p][k]);
        if (o->dev_total[p] > o->peak_device) o->peak_device = o->dev_total[p], o->peak_phase = p;
        if (o->host[p] > o->peak_host) o->peak_host = o->host[p];
    }
#undef ADD
    return WR_OK;
}

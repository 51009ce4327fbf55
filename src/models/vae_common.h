/*
 * vae_common.h — what the Wan2.1 VAE (models/vae.c) and the Wan2.2 VAE (models/vae22.c) share:
 * diffusers' feature cache of a causal conv3d (WanCausalConv3d called with feat_cache /
 * feat_idx), the residual block (WanResidualBlock) and the mid block's single-frame attention
 * (WanAttentionBlock), over a model's workspace buffers P[0..4].
 *
 * The cache: the decoder (one latent frame a call) and the encoder (chunks of 1 then 4 frames)
 * keep, per conv, the last input frames of the previous call, and the next call convolves after
 * them (padding in front with 2 - n zero frames). The slot's memory is the model's (its
 * allocator, its counter: wr_vae_run.room makes c->buf hold 2 C H W floats, as
 * wr_causal_cache_floats says, before a call). Everything is device memory touched only by ops
 * and copies on the compute stream.
 */
#ifndef WR_MODELS_VAE_COMMON_H
#define WR_MODELS_VAE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/backend.h"

/* [C, n, H, W] compact, n in 0..2. rep: a temporal upsampler's "Rep" state (the model's). */
typedef struct wr_causal_cache {
    float *buf;
    size_t cap; /* floats */
    int n, rep;
} wr_causal_cache;

/* The floats a slot needs for an input x [C, T, H, W]: 2 C H W. */
size_t wr_causal_cache_floats(const wr_tensor *x);

/*
 * The slot after a call on x [C, T, H, W] (device), diffusers' cache_x rule: x's last two
 * frames; with T = 1 the previous last frame in front of x (none before: x alone, n = 1), or,
 * rep_zero, a zero frame (a decoder time_conv after "Rep"). Data movement only.
 */
wr_status wr_causal_cache_update(wr_backend *be, wr_causal_cache *c, const wr_tensor *x,
                                 int rep_zero);

/* y = the causal conv (w, b: kernel depth 3) of x after the slot's frames, spatial padding
 * pad_hw; then the slot takes x's frames (wr_causal_cache_update). */
wr_status wr_causal_conv(wr_backend *be, wr_causal_cache *c, wr_tensor *y, const wr_tensor *x,
                         const wr_tensor *w, const wr_tensor *b, int64_t pad_hw);

/* A conv with its cache slot: weight in storage dtype, bias f32 (in place or device copies). */
typedef struct wr_vae_conv {
    wr_tensor w, b;
    wr_causal_cache cache;
} wr_vae_conv;

/* diffusers WanResidualBlock: RMS norms' gammas f32 [cin] / [cout]; conv_shortcut 1x1x1 when
 * cin != cout (has_sc) */
typedef struct wr_vae_resnet {
    int64_t cin, cout;
    int has_sc;
    wr_tensor norm1, norm2;
    wr_vae_conv conv1, conv2, sc;
} wr_vae_resnet;

/* diffusers WanAttentionBlock: norm gamma f32 [C], to_qkv and proj 1x1 */
typedef struct wr_vae_attn {
    wr_tensor norm;
    wr_vae_conv qkv, proj;
} wr_vae_attn;

/* How a model runs these: its backend, its workspace buffers' size in floats (every view is
 * checked against it: our own bug otherwise), and its allocator for a slot (room: c->buf holds
 * at least `floats`, or fails; it may only grow an empty slot). */
typedef struct wr_vae_run {
    wr_backend *be;
    size_t cap;
    wr_status (*room)(void *model, wr_causal_cache *c, size_t floats);
    void *model;
} wr_vae_run;

/* wr_causal_conv with the slot made room for first */
wr_status wr_vae_cached_conv(const wr_vae_run *r, wr_vae_conv *cv, wr_tensor *y, const wr_tensor *x,
                             int64_t pad_hw);
/* The residual block: x [cin, T, H, W] (any buffer but P[1..3]) -> P[0] [cout, T, H, W]
 * (P[0] and P[2] swapped). */
wr_status wr_vae_resnet_forward(const wr_vae_run *r, wr_vae_resnet *rs, float **P, wr_tensor *x);
/* The attention on a single frame (T = 1): x in P[0] -> P[0] (P[1..4] scratch). */
wr_status wr_vae_attention_forward(const wr_vae_run *r, const wr_vae_attn *a, float **P,
                                   wr_tensor *x);

#endif /* WR_MODELS_VAE_COMMON_H */

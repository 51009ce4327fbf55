/*
 * vae.h — the Wan2.1 VAE decoder (diffusers AutoencoderKLWan, decode path), fp32 compute.
 *
 * Loading reads vae/ (config.json + weights; F32/BF16/F16 per tensor; the encoder's tensors
 * may be absent) and checks every decoder tensor (post_quant_conv + decoder.*) for presence
 * and shape, reporting the first few problems. Conv weights keep their storage dtype; biases and
 * RMS gammas are converted to f32 once. Where the backend's ops read host memory
 * (be->host_visible: the plain CPU backend) the weights are used in place (the mapped
 * checkpoint); elsewhere they are uploaded once into one device arena and the checkpoint is
 * closed.
 *
 * Decoding follows diffusers exactly: the model-space latent is de-normalised per channel
 * (z * std + mean), post_quant_conv, then the decoder runs once per latent frame with the
 * per-conv feature cache (spec §4.5), so activation memory does not grow with the number of
 * frames; the frames are concatenated and clamped to [-1, 1]. Latent frame 0 gives 1 frame,
 * each later one 2^k (k = temporal upsamplers; 4 for Wan2.1): 21 latent frames -> 81.
 *
 * Tiled decode (low_mem_level 1) is diffusers' enable_tiling(): latent tiles of
 * tile/ratio with stride stride/ratio (ratio = scale_factor_spatial), each decoded with a fresh
 * cache, blended in raster order in place (vertical with the tile above, then horizontal with
 * the left one, linear ramps over tile - stride pixels: wr_op_blend), cropped to the stride and
 * assembled; only the margins needed for blending are kept, never all the tiles.
 *
 * Memory: the latent z and the frames out are HOST memory; everything else (weights, workspace,
 * caches, the tile and its margins) is device memory that only ops and copies touch. Each
 * latent frame of the decoded region is uploaded from z (one strided copy); the decoded
 * frames are clamped on the device and downloaded into out (untiled: per latent frame; tiled:
 * each cropped tile straight to its place, one strided copy).
 *
 * Letters: z latent channels, T latent frames, H/W latent size, N = output frames, C width.
 * Lifetime: a wr_vae owns its weight set (or their device copies), f32 gammas, caches and
 * workspace; the backend is borrowed. Not thread-safe.
 */
#ifndef WR_MODELS_VAE_H
#define WR_MODELS_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "core/modeldir.h"
#include "core/safetensors.h"
#include "kernels/backend.h"
#include "vram/vram.h"

typedef struct wr_vae wr_vae;

/* Tiling in output pixels (diffusers' tile_sample_min_* / tile_sample_stride_*). enabled = 0:
 * untiled. Tiling applies only when the latent is larger than one tile (as diffusers). */
typedef struct wr_vae_tiling {
    int enabled;
    int64_t tile_h, tile_w;     /* default 256 x 256 */
    int64_t stride_h, stride_w; /* default 192 x 192 */
} wr_vae_tiling;

/* diffusers' defaults: 256 x 256 tiles, stride 192 (64-pixel blend). */
wr_vae_tiling wr_vae_tiling_default(void);

/* Called with named taps during the decode of latent frame 0 only ("latent_vae",
 * "post_quant_conv", "decoder.conv_in", "decoder.mid_block.resnets.0",
 * "decoder.mid_block.attentions.0", "decoder.mid_block", "decoder.up_blocks.<i>.resnets",
 * "decoder.up_blocks.<i>"); t is [C, T, H, W], a HOST copy (downloaded for the call) valid
 * during the call. */
typedef void (*wr_vae_tap_fn)(void *ctx, const char *name, const wr_tensor *t);

/* Enumerates the decoder tensors a config implies (post_quant_conv and decoder.*):
 * fn(ctx, name, ndim, shape) (fn may be NULL). Returns the count; *params the total. */
int64_t wr_vae_expected_tensors(const wr_vae_config *cfg, int64_t *params,
                                void (*fn)(void *ctx, const char *name, int ndim,
                                           const int64_t *shape),
                                void *ctx);

/*
 * Loads the decoder from `dir` (a vae/ folder). Failures: WR_ERR_NOT_FOUND / WR_ERR_FORMAT
 * naming the folder and the first few missing or mis-shaped tensors; WR_ERR_CONFIG for an
 * unsupported config (attention scales, Wan2.2's residual VAE); WR_ERR_UNSUPPORTED on a
 * non-CPU backend (so far); WR_ERR_OOM_*.
 */
wr_status wr_vae_load(wr_vae **out, wr_backend *be, const char *dir);
void wr_vae_free(wr_vae *m);

const wr_vae_config *wr_vae_config_of(const wr_vae *m);

/* Output frames for T latent frames: 1 + 2^k (T - 1). */
int64_t wr_vae_frames(const wr_vae *m, int64_t latent_frames);

void wr_vae_set_tap(wr_vae *m, wr_vae_tap_fn fn, void *ctx);

/*
 * Decodes z [z_dim, T, H, W] (model space, f32, host memory, borrowed) into out
 * [out_channels, N, r*H, r*W] (f32 host memory, clamped to [-1, 1]; r = scale_factor_spatial;
 * complete when this returns, also on an asynchronous backend). tiling NULL or disabled:
 * untiled. Tile and stride must be positive multiples of r with stride <= tile
 * (WR_ERR_INVALID_ARG otherwise).
 */
wr_status wr_vae_decode(wr_vae *m, wr_tensor *out, const wr_tensor *z, const wr_vae_tiling *tiling);

/*
 * Memory accounting (every buffer the decoder allocates goes through a counter):
 * wr_vae_peak_bytes — the decoder's activations: workspace, feature caches and, when tiled, the
 * tile being decoded; set by the (tile) size, not the video's area. wr_vae_blend_peak_bytes —
 * tiled decode's blending margins: the last (tile - stride) rows of the previous row of tiles
 * and the last columns of the left tile, out_channels * N * blend * width floats, a strip of
 * the output. Peaks since load or the last reset. The op-internal scratch of conv3d (at most
 * 16 MiB of columns, the weight rearranged in f32, and briefly an f32 copy of a narrower
 * weight) is not counted.
 */
size_t wr_vae_peak_bytes(const wr_vae *m);
/* From now on the decoder's buffers come from the pool v (category vae) and its weights are
 * counted there (weights-resident: the device arena's bytes, or the tensors' bytes where they
 * are used in place); NULL: the backend, nothing counted. */
wr_status wr_vae_set_vram(wr_vae *m, wr_vram *v);
size_t wr_vae_blend_peak_bytes(const wr_vae *m);
void wr_vae_reset_peak(wr_vae *m);

#endif /* WR_MODELS_VAE_H */

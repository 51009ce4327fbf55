/*
 * vae22.h — the Wan2.2 VAE (TI2V-5B's 48-channel VAE: diffusers AutoencoderKLWan with
 * is_residual=True and patch_size 2), decoder and encoder, fp32 compute.
 *
 * Loading reads vae/config.json with its own reader (core/json.h: the fields below are checked;
 * others are ignored, as diffusers ignores them) and the weights (F32/BF16/F16 per tensor) of
 * post_quant_conv + decoder.* and, when all are present, quant_conv + encoder.* (a decoder-only
 * checkpoint loads; wr_vae22_encode then fails with WR_ERR_UNSUPPORTED). Conv weights keep their
 * storage dtype; biases and RMS gammas become f32 once. Where the backend's ops read host memory
 * (be->host_visible: the plain CPU backend) the weights are used in place (the mapping);
 * elsewhere they are uploaded once into one device arena and the checkpoint is closed (the
 * loader skeleton of models/loader.h, as vae.h).
 *
 * Config: is_residual must be true and patch_size 2 (else WR_ERR_UNSUPPORTED naming the field:
 * the Wan2.1 VAE is models/vae.h); attn_scales empty; temperal_downsample of dim_mult.n - 1 flags
 * with exactly two set (the 1 + 4k frame chunking of diffusers assumes a temporal factor of 4);
 * in/out_channels divisible by 4 (the video has in_channels / 4 and out_channels / 4 channels:
 * 3 for TI2V-5B's 12); scale_factor_spatial = 2 * 2^(dim_mult.n - 1), scale_factor_temporal 4
 * (WR_ERR_CONFIG otherwise); the residual shortcuts' channel maps must be plain strided copies
 * (DupUp3D: repeats even and dividing 4 * factor_t; AvgDown3D: group dividing its factor;
 * WR_ERR_UNSUPPORTED naming dim_mult otherwise; TI2V-5B's repeats 8, 8, 2 and groups 4, 4, 4, 1
 * pass). latents_mean / latents_std (z_dim numbers each) are read when present
 * (wr_vae22_latents_mean / _std) but not applied: decode and encode are diffusers' decode and
 * encode, which take and give VAE-space latents (WanPipeline de-normalises z / (1 / std) + mean
 * before vae.decode; the Wan2.1 wr_vae_decode does that itself, this one does not).
 *
 * Decoding follows diffusers' _decode: post_quant_conv, then the decoder once per latent frame
 * with the per-conv feature cache (the first frame with first_chunk: upsample3d's "Rep" slot and
 * DupUp3D's dropped leading frames), unpatchify (12 -> 3 channels, 2x in H and W), clamp to
 * [-1, 1]. Encoding follows _encode: patchify, the encoder on frame 0 then on chunks of 4 frames
 * with its feature cache, quant_conv; the result is latent_dist.mean (the first z_dim channels).
 * Every latent frame / chunk is uploaded from the host input and its result downloaded into the
 * host output, so activation memory does not grow with the number of frames.
 *
 * Tiled decode (low_mem_level >= 1): diffusers' tiled_decode (enable_tiling): latent tiles of
 * tile/16 with stride stride/16, each decoded over every frame with a fresh cache; the blending
 * (ramps over (tile - stride) / 2 pixels) and the crop (stride / 2) happen in the patched space
 * (12 channels, half the pixels) as diffusers does them, then unpatchify and the clamp; only the
 * margins the next tiles read are kept. Tiled encode: diffusers' tiled_encode, which with
 * patch_size 2 tiles the patchified video (a tile covers 2 x tile video pixels, stride 2 x
 * stride; tiling when the video is larger than one tile), each tile encoded over every chunk
 * with a fresh cache into latents of tile/8, blended over (tile - stride)/8 and cropped to
 * stride/8.
 *
 * Not in this version: the CUDA backend (untested: the ops and copies are the ones vae.c uses),
 * a bf16 compute path (f32 everywhere, like vae.c). The encoder's stride-2 convs run as
 * stride-1 convs subsampled afterwards (4x the FLOPs of those three Conv2d; a strided conv3d
 * slot would remove that).
 *
 * Memory: inputs and outputs are HOST memory; everything else (weights, workspace, caches, the
 * tile and its margins) is device memory that only ops and copies touch, from the backend or,
 * after wr_vae22_set_vram, from a pool (category vae; the weights counted there). The buffers
 * are made at the start of each decode / encode and freed at its end: between calls a wr_vae22
 * holds only its weights.
 *
 * Letters: z latent channels, T latent frames, h/w latent size, N video frames, H/W video size.
 * Lifetime: a wr_vae22 owns its weight set (or their device copies); the backend is borrowed and
 * must outlive it. Not thread-safe.
 */
#ifndef WR_MODELS_VAE22_H
#define WR_MODELS_VAE22_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/backend.h"
#include "models/vae.h"
#include "vram/vram.h"

#define WR_VAE22_MAX_BLOCKS 8 /* dim_mult entries */
#define WR_VAE22_MAX_RES    8 /* num_res_blocks + 1 */
#define WR_VAE22_NBUF       6 /* workspace buffers (wr_vae22_peak_bytes) */

typedef struct wr_vae22 wr_vae22;

/* What the loader read from config.json (diffusers' names). */
typedef struct wr_vae22_config {
    int64_t base_dim, decoder_base_dim, z_dim, num_res_blocks;
    int64_t in_channels, out_channels, patch_size, scale_factor_spatial, scale_factor_temporal;
    int ndim_mult;
    int64_t dim_mult[WR_VAE22_MAX_BLOCKS];
    int temperal_downsample[WR_VAE22_MAX_BLOCKS]; /* ndim_mult - 1 flags */
    int is_residual;
    int has_latents_stats; /* latents_mean / latents_std were present */
} wr_vae22_config;

/*
 * Loads dir (a vae/ folder: config.json + safetensors). Failures: WR_ERR_NOT_FOUND (no config or
 * weights), WR_ERR_FORMAT (malformed config.json naming the field; missing or mis-shaped tensors:
 * the first few named), WR_ERR_UNSUPPORTED (a config field this module does not run, named;
 * a backend without the ops), WR_ERR_CONFIG (inconsistent fields, named), WR_ERR_OOM_*.
 * *out is NULL on failure.
 */
wr_status wr_vae22_load(wr_vae22 **out, wr_backend *be, const char *dir);
/* NULL does nothing. */
void wr_vae22_free(wr_vae22 *m);

const wr_vae22_config *wr_vae22_config_of(const wr_vae22 *m);
/* 1 when the encoder's tensors were loaded. */
int wr_vae22_has_encoder(const wr_vae22 *m);
/* [z_dim] host floats from config.json (borrowed, the model's life), NULL when absent. */
const float *wr_vae22_latents_mean(const wr_vae22 *m);
const float *wr_vae22_latents_std(const wr_vae22 *m);

/* Video frames for T latent frames: 1 + 4 (T - 1) (0 for T < 1); the inverse for the encoder:
 * latent frames for N = 1 + 4k video frames, 0 for any other N. */
int64_t wr_vae22_frames(const wr_vae22 *m, int64_t latent_frames);
int64_t wr_vae22_latent_frames(const wr_vae22 *m, int64_t frames);

/*
 * Decodes z [z_dim, T, h, w] (VAE space, F32 host memory, borrowed) into out [C, N, H, W] (F32
 * host memory, clamped to [-1, 1]; C = out_channels / 4, N = 1 + 4 (T - 1), H = 16 h, W = 16 w
 * for TI2V-5B: H = scale_factor_spatial * h), as diffusers' vae.decode(z).sample. tiling NULL
 * or disabled: untiled; else diffusers' enable_tiling(tile_h, tile_w, stride_h, stride_w) in
 * video pixels, which must be positive multiples of scale_factor_spatial with stride <= tile.
 * Complete when this returns, also on an asynchronous backend. Failures: WR_ERR_INVALID_ARG
 * naming the shape expected or the tiling; WR_ERR_OOM_*.
 */
wr_status wr_vae22_decode(wr_vae22 *m, wr_tensor *out, const wr_tensor *z,
                          const wr_vae_tiling *tiling);

/*
 * Encodes video [C, N, H, W] (F32 host memory in [-1, 1], borrowed; C = in_channels / 4,
 * N = 1 + 4 k, H and W multiples of scale_factor_spatial) into mean [z_dim, T, H/16, W/16] (F32
 * host memory; T = 1 + k), as diffusers' vae.encode(video).latent_dist.mean; tiling NULL or
 * disabled: untiled, else as enable_tiling() (the same checks as decode). Failures:
 * WR_ERR_INVALID_ARG naming the shapes or the tiling; WR_ERR_UNSUPPORTED when the encoder was
 * not loaded; WR_ERR_OOM_*.
 */
wr_status wr_vae22_encode(wr_vae22 *m, wr_tensor *mean, const wr_tensor *video,
                          const wr_vae_tiling *tiling);

/* Called with named taps: name is the diffusers module ("post_quant_conv", "decoder.conv_in",
 * "decoder.mid_block", "decoder.up_blocks.<i>", "encoder.conv_in", "encoder.down_blocks.<i>",
 * "encoder.mid_block"; "decoder" and "encoder": their outputs before unpatchify / quant_conv),
 * k the latent frame (decode) or chunk (encode) it belongs to; t [C, T, H, W] is a HOST copy
 * valid during the call. NULL: none (the default). Each tap is a download: tests only. */
typedef void (*wr_vae22_tap_fn)(void *ctx, const char *name, int64_t k, const wr_tensor *t);
void wr_vae22_set_tap(wr_vae22 *m, wr_vae22_tap_fn fn, void *ctx);

/* Tests: caps DupUp3D's slices at n input channels (rounded down to its channel group; 0: as
 * the workspace allows, the default). The output is the same bits either way. */
void wr_vae22_set_slice_channels(wr_vae22 *m, int64_t n);

/*
 * Memory (device bytes; the planner's numbers): what a decode of T latent frames of h x w / an
 * encode of N video frames of H x W allocates, all of it held until the call returns:
 * WR_VAE22_NBUF workspace buffers of the largest activation of one latent frame / chunk each,
 * and the feature caches (two input frames of every cached conv). Weights and the ops'
 * internal scratch (wr_backend_scratch_bytes) are not included. Linear in the area; for
 * TI2V-5B's widths (decoder 256, encoder 160):
 *   - decode, T > 1: 4 (6 * 131072 + 456800) h w bytes, 4.74 MiB per latent pixel (17.5 GB for
 *     21 x 44 x 80 latents, 81 x 704 x 1280 frames); T = 1: 4 (6 * 32768 + 446560) h w, 2.45 MiB;
 *   - encode, N > 1: 4 (6 * 640 + 2354) H W / 4 bytes, 6.0 KiB per video pixel; N = 1:
 *     4 (6 * 160 + 2354) H W / 4, 3.2 KiB (3.0 GB for one 704 x 1280 image untiled; tiled
 *     with 256/192 px the region is at most 512 x 512 video pixels).
 * Tiled (a tiling the input exceeds): the above for the first (largest) tile's region, plus the
 * tile (decode: 4C N x its patched size; encode: z T x its latent size, floats) and the margins
 * (the last blend rows of one row of tiles, the last blend columns of one tile): a decode of
 * 121 frames at 704p with diffusers' 256/192 px tiles takes 1,486 MiB (16.7 GB untiled).
 * wr_vae22_peak_bytes is the largest such total of the calls since load or the last reset
 * (equal to these functions' values: a test checks it).
 */
size_t wr_vae22_decode_bytes(const wr_vae22 *m, int64_t T, int64_t h, int64_t w,
                             const wr_vae_tiling *tiling);
size_t wr_vae22_encode_bytes(const wr_vae22 *m, int64_t N, int64_t H, int64_t W,
                             const wr_vae_tiling *tiling);
size_t wr_vae22_peak_bytes(const wr_vae22 *m);
void wr_vae22_reset_peak(wr_vae22 *m);

/* From now on the buffers come from the pool v (category vae) and the weights are counted there
 * (weights-resident: the walked tensors' bytes, in place or device copies); NULL: the backend's
 * allocator, nothing counted (the default). Frees nothing but buffers (none are kept between
 * calls). Failures: WR_ERR_OOM_DEVICE (the pool's limit). */
wr_status wr_vae22_set_vram(wr_vae22 *m, wr_vram *v);

/* The planner's view from a model directory's vae config alone (no weights read; path names
 * the file in errors): the same walk and plans as a loaded model. */
typedef struct wr_vae22_plan_req {
    int64_t T, h, w;             /* the latent to decode */
    const wr_vae_tiling *tiling; /* NULL: untiled */
    int image;                   /* 1: one frame of r h x r w is encoded first (--image) */
} wr_vae22_plan_req;

typedef struct wr_vae22_mem {
    uint64_t weights; /* post_quant_conv + decoder (+ quant_conv + encoder): conv weights at
                       * wbytes per element, biases and gammas f32 */
    uint64_t decode;  /* wr_vae22_decode_bytes */
    uint64_t encode;  /* wr_vae22_encode_bytes(1, r h, r w) with image, else 0 */
} wr_vae22_mem;

/* Failures: the config errors wr_vae22_load gives (naming path), WR_ERR_INVALID_ARG for a
 * tiling wr_vae22_decode refuses. */
wr_status wr_vae22_plan(const wr_vae_config *vc, const char *path, int encoder, int wbytes,
                        const wr_vae22_plan_req *req, wr_vae22_mem *out);

#endif /* WR_MODELS_VAE22_H */

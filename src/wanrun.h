/*
 * wanrun.h — the library's public C API: text-to-video as diffusers' WanPipeline does it.
 *
 *   wr_options opt;  wr_options_defaults(&opt);
 *   wr_context *ctx; wr_context_create(&ctx, "Wan2.1-T2V-1.3B-Diffusers", &opt);
 *   wr_request req;  wr_request_defaults(&req);  req.prompt = "a red fox in the snow";
 *   wr_video v;      wr_generate(ctx, &req, &v);   ... v.frames [3, n, h, w] in [0, 1]
 *   wr_video_free(&v); wr_context_free(ctx);
 *
 * A context opens a diffusers model directory (model_index.json, tokenizer/, text_encoder/,
 * transformer/, vae/, scheduler/) and loads its components (weights mapped lazily). Each
 * wr_generate: clean + tokenize + encode the prompt (and the negative prompt when guidance
 * > 1), draw the initial noise (seeded, or from a file), denoise with classifier-free
 * guidance and the scheduler, decode with the VAE, and map [-1, 1] to [0, 1].
 *
 * Host and device: the latents, the noise, the scheduler, the guidance combine, the text
 * embeddings between encoding and denoising and the frames live in host memory (the scheduler
 * stays bit-for-bit diffusers'); the models take and return host tensors and move them to and
 * from the backend's memory themselves (models/dit.h, t5.h, vae.h), so per denoising step only
 * the DiT's input and its velocity cross. The pipeline's MPI traffic (embeddings, velocities)
 * is on host memory; the DiT's context-parallel traffic is on device memory through its
 * communicator's backend (parallel/comm.h). Errors are
 * wr_status values with a detail naming the file, tensor or option (core/status.h).
 * Not thread-safe: one generation at a time per context.
 */
#ifndef WR_WANRUN_H
#define WR_WANRUN_H

#include <stdint.h>

#include "core/status.h"
#include "kernels/backend.h"
#include "parallel/comm.h"
#include "vram/vram.h"
#include "models/vae.h"

typedef struct wr_context wr_context;

typedef struct wr_options {
    /* the compute backend: WR_BACKEND_CPU (0, the default) or WR_BACKEND_CUDA (its kernels
     * compile for sm_80 / sm_90a; WR_ERR_NO_DEVICE where no GPU can be used). The CPU backend's
     * strict and async device modes come from WR_STRICT_DEVICE (kernels/backend.h). */
    wr_backend_kind backend;
    /* CUDA: the device index; -1 (wr_options_defaults): this rank's node-local rank
     * (wr_world.local_rank) modulo the devices visible */
    int device;
    int threads;       /* CPU threads; 0: $OMP_NUM_THREADS or all cores */
    int low_mem_level; /* 0..3; >= 1 decodes the video in tiles (the VAE's enable_tiling);
                          3 streams the DiT's blocks through the vram pool */
    /* overrides of the level's preset (configs/levels.json): -1 = the level's */
    int te_stream;   /* text encoder: 0 resident, 1 streamed and freed after encoding */
    int dit_stream;  /* DiT: 0 resident, 1 streamed while denoising */
    int vae_tiled;   /* VAE: 0 untiled, 1 tiled */
    int fp8_storage; /* the DiT blocks' Linear weights in float8_e4m3, per-tensor scale */
    /* the DiT's activation dtype between GEMMs (normed hidden states, q/k/v, attention output,
     * FFN hidden): WR_DTYPE_F32 (the default) or WR_DTYPE_BF16 (a GPU's rounding points; the
     * residual stream, norms' statistics, modulation, RoPE, softmax and the scheduler stay f32) */
    wr_dtype compute_dtype;
    int te_cpu;           /* the text encoder runs from host memory, never on the device */
    int disk_offload;     /* streamed weights are read from the files when needed: host memory stays
                             bounded by a few blocks (vram.h, wr_vram_set_disk_offload) */
    uint64_t vram_limit;  /* bytes of device memory per rank (0: none); at level 3 as many DiT
                             blocks stay resident as fit beside two streaming slots and the
                             activations */
    wr_vae_tiling tiling; /* the tiles for low_mem_level >= 1 (default 256/192 px) */
    /* Distributed execution (DESIGN.md §5). world NULL or of size 1: one process. Else
     * wr_context_create is collective over the world, which is split into replicas x
     * cfg_parallel x cp_size ranks (replicas = the rest; a layout that does not divide the
     * world is WR_ERR_INVALID_ARG). Each replica generates the request with seed + replica;
     * its ranks shard the DiT's tokens (cp_mode, a wr_cp_mode of models/dit.h) and, with
     * cfg_parallel 2, split the conditional / unconditional passes. The text encoder and the
     * VAE live only on each replica's first rank (the writer). */
    const wr_world *world;
    /* NULL, or a directory for the memory profile: per rank a Chrome trace and an SVG plot of
     * device (by category) and host memory over time with the phases; rank 0 logs a table of
     * every rank's peaks (src/vram/memprof.h) */
    const char *mem_profile_dir;
    int cfg_parallel; /* 1 (default when 0) or 2 */
    int cp_size;      /* 0: world size / cfg_parallel (one replica) */
    int cp_mode;      /* WR_CP_AUTO (0), WR_CP_ULYSSES, WR_CP_RING */
    /* 1: the replicas run different requests, each at its own pace (wanrun --batch):
     * wr_generate is then collective over this rank's replica only (its agreements and the
     * memory profile's table too); 0: over the world, every replica the same request */
    int independent_replicas;
} wr_options;

/* Where this process sits in the layout. */
typedef struct wr_role {
    int replica, replicas; /* this rank's replica group, and how many there are */
    int writer;            /* 1 on the replica's first rank: it encodes, decodes, writes */
    int cfg, cp;           /* the layout */
    int cfg_rank, cp_rank;
    int cp_mode; /* the wr_cp_mode in use (0 when cp == 1) */
} wr_role;

typedef void (*wr_progress_fn)(void *ctx, int64_t step, int64_t steps, float timestep,
                               double step_seconds, double eta_seconds);

typedef struct wr_request {
    const char *prompt;          /* UTF-8; required ("" allowed) */
    const char *negative_prompt; /* NULL: "" (diffusers' default) */
    int64_t width, height;       /* multiples of 16; default 832 x 480 */
    int64_t frames;              /* 4k + 1; default 81 */
    int64_t steps;               /* default 50 */
    double guidance;             /* default 5.0; <= 1: no classifier-free guidance */
    double shift;                /* <= 0: the scheduler config's (Wan2.1: 3.0) */
    int scheduler;               /* -1: the config's; else a wr_sched_kind (models/sched.h) */
    uint64_t seed;               /* for the initial noise (wanrun's own generator) */
    const char *init_noise;      /* NULL, or a .safetensors with tensor "noise" [16, T, H/8, W/8] */
    const float *noise;          /* or the initial noise itself, [16, T, H/8, W/8] (wins) */
    float *latents_out;          /* NULL, or [16, T, H/8, W/8] to receive the final latents */
    const char *save_latents;    /* NULL, or a .safetensors to write the final latents to */
    wr_progress_fn progress;     /* called after every denoising step (NULL: none) */
    void *progress_ctx;
    /* NULL, or a flag (set by a signal handler) read before every denoising step: once it is
     * non-zero on any rank of the replica, the generation stops there with WR_ERR_INTERRUPTED
     * (agreed), nothing written */
    const volatile int *stop;
    /* Wan2.2 two experts (T2V-A14B, wr_context_experts() == 2): the low-noise expert's guidance
     * (diffusers' guidance_scale_2; < 0: guidance, as diffusers' default) and the switch
     * (boundary_ratio; < 0: model_index.json's). The high-noise expert (transformer/) runs the
     * steps with t >= boundary_ratio x num_train_timesteps, transformer_2/ the others; whether
     * there is classifier-free guidance at all follows guidance alone, as in diffusers. Either
     * set on a one-expert model is WR_ERR_INVALID_ARG (diffusers refuses guidance_scale_2). */
    double guidance_2;
    double boundary_ratio;
    /* Wan2.2 TI2V (expand_timesteps): NULL, or a PNG / JPEG that conditions the first frame
     * (diffusers' WanImageToVideoPipeline: read as PIL, resized to the request's size with PIL's
     * Lanczos, VAE-encoded; its latent is the first latent frame, whose tokens get t = 0) */
    const char *image;
} wr_request;

typedef struct wr_video {
    float *frames; /* [3, n, h, w] RGB in [0, 1] */
    int64_t n, h, w;
    /* seconds of the phases on this rank (wall clock; 0 where it took no part) */
    double sec_encode, sec_denoise, sec_decode;
} wr_video;

void wr_options_defaults(wr_options *o);
void wr_request_defaults(wr_request *r);

/* WR_ERR_NOT_FOUND / FORMAT / CONFIG naming the directory, component or file. */
wr_status wr_context_create(wr_context **out, const char *model_dir, const wr_options *opt);
void wr_context_free(wr_context *ctx);
void wr_context_role(const wr_context *ctx, wr_role *out);
/* This rank's device memory pool counters (current and peak bytes by category) since the
 * context was created. */
void wr_context_vram_stats(const wr_context *ctx, wr_vram_stats *out);
/* The DiT experts of the model: 1 (Wan2.1), 2 (Wan2.2 A14B: transformer/ and transformer_2/,
 * only one of them on the device at a time). */
int wr_context_experts(const wr_context *ctx);
/* Agrees on a status over the whole world (wr_comm_agree); returns st alone. */
wr_status wr_context_agree(wr_context *ctx, wr_status st);
/* The communicators of a distributed context (world, replica, cp, cfg), or NULL for a single
 * process: for callers that coordinate several generations (wanrun --batch). */
struct wr_groups;
const struct wr_groups *wr_context_groups(const wr_context *ctx);
/* The same within this rank's replica (wr_groups.group). */
wr_status wr_context_agree_replica(wr_context *ctx, wr_status st);
/* Starts the peaks of wr_context_vram_stats again from the current values (a batch's next
 * job: its own peaks). */
void wr_context_reset_peaks(wr_context *ctx);
/* With mem_profile_dir: the next generation's profile goes to `dir` (created if absent), the
 * samples so far dropped (a batch's job: DIR/<name>); WR_OK and nothing done without one. */
wr_status wr_context_profile_to(wr_context *ctx, const char *dir);

/* Bounds on a request, whatever the model (sane sizes, far from any overflow): a side at most
 * 8192, at most 4001 frames, frames x height x width at most 2^32 pixels (the decoded video
 * alone is 48 GiB of floats there), at most 1000 steps. */
#define WR_REQUEST_MAX_SIDE   8192
#define WR_REQUEST_MAX_FRAMES 4001
#define WR_REQUEST_MAX_PIXELS ((int64_t)1 << 32)
#define WR_REQUEST_MAX_STEPS  1000

/* Checks the sizes of a request that need no model: width and height in [1, 8192], frames
 * 4k+1 in [1, 4001] (the message gives the nearest valid counts), the pixel count within
 * WR_REQUEST_MAX_PIXELS (overflow-checked). WR_ERR_INVALID_ARG naming --size or --frames. */
wr_status wr_request_check_sizes(int64_t width, int64_t height, int64_t frames);

/* Checks a request against the model (sizes: wr_request_check_sizes and multiples of the
 * model's 16; steps, guidance; the prompts' length and UTF-8): WR_ERR_INVALID_ARG with a
 * one-line reason naming the option. wr_generate calls it first. */
wr_status wr_request_check(const wr_context *ctx, const wr_request *r);

/* The shape of the request's latents, [C, T, H/8, W/8] (C the transformer's in_channels, 16
 * for Wan; T = (frames-1)/4+1; 8 the VAE's spatial factor): what latents_out receives.
 * Call after wr_request_check succeeded. */
void wr_request_latent_shape(const wr_context *ctx, const wr_request *r, int64_t shape[4]);

/* Collective over the world when distributed (every rank calls it with the same request;
 * over the replica with independent_replicas); a failure on one rank is agreed, so every rank
 * (of the replica) returns the same status and detail. Only the
 * replica's writer gets frames (elsewhere out->frames stays NULL, n = 0); latents_out is
 * filled on every rank, save_latents written by the writer only, and only after the whole
 * generation has succeeded (non-finite latents or frames: WR_ERR_CONFIG, nothing written). */
wr_status wr_generate(wr_context *ctx, const wr_request *r, wr_video *out);
void wr_video_free(wr_video *v);

#endif /* WR_WANRUN_H */

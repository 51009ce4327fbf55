/*
 * plan.h — the memory planner (DESIGN.md §4): per-rank device and host bytes of a generation,
 * by category and phase, for each low_mem_level, from the model configs and the request alone.
 *
 * It walks the same schedule as the engine with shapes only, using the models' own planning
 * functions (the DiT's workspace plan and block layout, the VAE decoder's buffers and caches),
 * so the DiT, text encoder and VAE terms equal what the pool measures (test_vram). What
 * it assumes, per level (DESIGN.md's table), which is what the pipeline does:
 *   0, 1  text encoder (without its embedding table, whose rows are gathered on the host),
 *         DiT and VAE weights resident on the device for the whole run; 1 tiles the decode;
 *   2     the text encoder on the host, its layers streamed through two device slots during
 *         encoding, freed after; DiT and VAE resident; tiled decode;
 *   3     as 2, and the DiT on the device only while denoising: its blocks streamed through two
 *         slots (plus as many resident as the budget allows, when one is given).
 * The backend's op scratch arena (backend.h) is in the workspace category of every phase: the
 * pipeline takes it from the pool when the pool is made.
 * Two experts (Wan2.2 A14B): the one not denoising waits, its blocks in host memory, its
 * embeddings and head on the device; the active one is planned as the level says.
 * TI2V (Wan2.2 5B, ti2v): the Wan2.2 VAE (models/vae22.h: its own weights, decode buffers and
 * tiling; the encoder's weights counted, as a diffusers checkpoint has them), the per-token
 * timesteps and, with an image, its latent and the DiT's input while denoising; the image is
 * encoded in a phase of its own between encode and denoise (one frame, tiled as the decode).
 * Phases: encode (text encoder), encode image (TI2V with an image; else all zero), denoise
 * (DiT), decode (VAE); the peak is the largest. Host bytes count the weights a level keeps in
 * host memory (offloaded), not the mapped files.
 */
#ifndef WR_VRAM_PLAN_H
#define WR_VRAM_PLAN_H

#include <stdint.h>

#include "core/modeldir.h"
#include "models/dit.h"
#include "models/vae.h"
#include "vram/levels.h"
#include "vram/vram.h"

typedef struct wr_plan_in {
    wr_dit_config dit;
    /* Wan2.2 A14B (experts 2): the second expert. One expert is in the pool at a time (the
     * level's DiT terms are dit's; the two share their shapes); the waiting one keeps its
     * embeddings and head on the device (weights-resident, every phase) and its blocks in host
     * memory (every phase, not under disk offload). 0 or 1: one expert. */
    int experts;
    wr_dit_config dit2;
    wr_t5_config t5;
    wr_vae_config vae;
    int64_t width, height, frames;
    int cp;           /* context-parallel ranks of one generation (>= 1) */
    int cfg_parallel; /* 1 or 2 (with CFG, a rank holds both branches' velocities) */
    int no_cfg;       /* 1: guidance <= 1 (one text embedding, no unconditional pass) */
    int te_cpu;       /* the text encoder runs from host memory (--te-device cpu) */
    int disk_offload; /* streamed weights are read from the files: not held in host memory */
    wr_cp_mode cp_mode;
    int dit_wbytes; /* bytes per DiT matrix element in device memory: 4 f32, 2 bf16, 1 fp8 */
    int t5_wbytes;
    int vae_wbytes;
    int act_bytes; /* activations: 4 on the CPU backend (f32) */
    /* the DiT's compute dtype (--compute-dtype): 2 bf16 GEMM / attention activations, 4 f32;
     * 0: act_bytes */
    int dit_act_bytes;
    /* FP8 storage (GPU): one DiT block and one text encoder layer upcast to the compute dtype
     * (act_bytes), workspace while their model computes. The DiT's upcast buffer is counted
     * also without it whenever dit_wbytes < act_bytes (a bf16 checkpoint on the f32 CPU): one
     * block with its matrices at act_bytes, vectors f32 (wr_dit_plan_weights(act_bytes)) */
    int fp8_upcast;
    uint64_t scratch; /* the backend's op scratch (wr_backend_scratch_bytes), every phase */
    uint64_t staging; /* pinned staging buffers (2 WR_VRAM_STAGING_CHUNK where the pool wants
                       * them: a GPU, or disk offload), host bytes while a model streams */
    /* 1: resident weights are device copies (a GPU, the strict CPU modes), so two experts'
     * swap copies the incoming one's blocks through the staging buffers while denoising; 0:
     * used in place (the plain CPU backend) */
    int resident_copies;
    wr_vae_tiling tiling;
    int ti2v;  /* Wan2.2 TI2V (expand_timesteps with the residual VAE) */
    int image; /* TI2V with --image: one frame encoded before denoising */
} wr_plan_in;

enum { WR_PLAN_ENCODE = 0, WR_PLAN_IMAGE, WR_PLAN_DENOISE, WR_PLAN_DECODE, WR_PLAN_PHASES };

typedef struct wr_plan_out {
    uint64_t dev[WR_PLAN_PHASES][WR_MEM_CAT_COUNT]; /* device bytes by phase and category */
    uint64_t dev_total[WR_PLAN_PHASES];
    uint64_t host[WR_PLAN_PHASES]; /* offloaded weights held in host memory */
    uint64_t peak_device, peak_host;
    int peak_phase;
    int64_t resident_blocks; /* DiT blocks resident at level 3 */
    int64_t tokens;          /* the DiT's sequence (whole, before sharding) */
} wr_plan_out;

const char *wr_plan_phase_name(int phase);

/* in's model part from an opened directory: the three configs, the second expert where the
 * pipeline loads one (transformer_2/ with a boundary_ratio), ti2v. */
void wr_plan_in_model(wr_plan_in *in, const wr_model_dir *md);

/* The texts whose cross-attention K/V the DiT keeps across the denoising steps
 * (wr_dit_set_text_cache): none while its blocks stream (level 3 keeps memory down), else one
 * per branch this rank runs (CFG: prompt and negative prompt; CFG-parallel: its own branch). */
int wr_pipeline_text_cache(int dit_stream, int cfg, int cfg_parallel);

/* Output frames for T latent frames, from the config: 1 + 2^k (T - 1), k = the temporal
 * upsamplers (wr_vae_frames for a loaded model). */
int64_t wr_plan_vae_frames(const wr_vae_config *c, int64_t T);

/* The VAE decoder's buffers (vae.c), the formula bench_vae checks against its counter:
 * decoder (workspace + caches + the tile buffer when tiled) and blend margins, in bytes, for a
 * latent of T frames, Hl x Wl. */
void wr_plan_vae(const wr_vae_config *c, int64_t T, int64_t Hl, int64_t Wl,
                 const wr_vae_tiling *tiling, uint64_t *decoder_bytes, uint64_t *blend_bytes);

/* Request bounds of the planner (sides in pixels, frames): beyond them WR_ERR_INVALID_ARG. */
#define WR_PLAN_MAX_SIDE   65536
#define WR_PLAN_MAX_FRAMES 65537

/* budget: device bytes per rank (0: none; with a streamed DiT it decides the resident blocks).
 * _level: the level's preset (configs/levels.json); _policy: any policy (overrides).
 * Failures: WR_ERR_CONFIG when a config is missing (zero: the model directory has no such
 * component), WR_ERR_INVALID_ARG for a request outside the bounds above; byte counts that do
 * not fit 64 bits saturate at UINT64_MAX. */
wr_status wr_plan_level(const wr_plan_in *in, int level, uint64_t budget, wr_plan_out *out);
wr_status wr_plan_policy(const wr_plan_in *in, const wr_mem_policy *pol, uint64_t budget,
                         wr_plan_out *out);

#endif /* WR_VRAM_PLAN_H */

/*
 * dit.h — the Wan2.1 diffusion transformer (diffusers WanTransformer3DModel), f32 or bf16
 * activations (wr_dit_set_compute_dtype).
 *
 * Loading reads transformer/ (a single file or a sharded index; F32/BF16/F16/F8 per tensor;
 * diffusers key names or the original Wan names through the rename table of spec §2.7) and
 * checks every expected tensor's presence and shape, reporting the first few problems.
 * Weights are reached through wr_dit_acquire/wr_dit_release per block. Matrices keep their
 * storage dtype; 1-D tensors are converted to f32 once. On a backend whose ops read host memory
 * (be->host_visible: the plain CPU backend) every weight is used in place (the mapped
 * checkpoint, or the converted copies); on any other (strict CPU, CUDA) the weights outside
 * the blocks are uploaded at load into one device arena, and without a vram pool every block
 * is uploaded once, on the first acquire (with a pool, the streamer places them). The forward
 * plans one activation workspace (device memory) up front from the shapes.
 *
 * Host and device: wr_dit_forward's latent, text and output are host tensors; the forward
 * uploads the latent and the text into its workspace, computes the timestep sinusoid (one per
 * distinct timestep with wr_dit_forward_tokens) and the
 * RoPE tables on the host and uploads them (the tables only when the shape changes), and
 * downloads the velocity: per forward, one upload of the latent and the text and one download,
 * nothing else crosses (context parallelism's collectives run on the workspace).
 *
 * Activations: in the compute dtype (F32 by default; BF16 where a GPU wants its GEMM inputs)
 * are the blocks' normed hidden states, q/k/v (self and cross), the attention output and the
 * FFN hidden: what the GEMMs and the attention read. f32 always: the residual stream, the norm
 * statistics, the modulation vectors (temb, timestep_proj, each block's shift/scale/gate), the
 * RoPE tables and rotation math, the softmax, the products that are added into the residual
 * (to_out, ffn.net.2: one f32 accumulation with the gate), the embeddings outside the blocks,
 * the head's output and every tap.
 *
 * Dimension letters: D = NH * HD width, NH heads, HD head dim, FF ffn dim, L tokens,
 * S text rows, C latent channels, F/H/W latent frames/height/width.
 *
 * Lifetime: a wr_dit owns its converted vectors, its weight set (the mapping) and its
 * workspace; the backend is borrowed and must outlive it. Not thread-safe.
 */
#ifndef WR_MODELS_DIT_H
#define WR_MODELS_DIT_H

#include <stdint.h>

#include "core/modeldir.h"
#include "core/safetensors.h"
#include "kernels/backend.h"
#include "models/loader.h"
#include "parallel/comm.h"
#include "vram/vram.h"

typedef struct wr_linear {
    wr_weight weight; /* [out, in], storage dtype, with its FP8 storage scale */
    wr_tensor bias;   /* [out], f32 */
} wr_linear;

/* diffusers WanAttention (attn1 = self, attn2 = cross) */
typedef struct wr_dit_attn {
    wr_linear to_q, to_k, to_v, to_out; /* to_out = to_out.0 */
    wr_tensor norm_q, norm_k;           /* [D] RMSNorm weights, f32 */
} wr_dit_attn;

/* diffusers WanTransformerBlock */
typedef struct wr_dit_block {
    wr_tensor scale_shift_table; /* [1, 6, D] f32 */
    wr_dit_attn attn1, attn2;
    struct {
        wr_tensor weight, bias; /* [D] f32: the affine LayerNorm before cross-attention */
    } norm2;
    struct {
        wr_linear net_0_proj; /* ffn.net.0.proj: D -> FF */
        wr_linear net_2;      /* ffn.net.2: FF -> D */
    } ffn;
} wr_dit_block;

typedef struct wr_dit wr_dit;

/* Called with each named tap ("patch_embed", "temb", "timestep_proj", "text_proj",
 * "block.<i>", "head", "output"); t is a host tensor (the activation downloaded into a buffer
 * the model owns, reused by the next tap), valid only during the call. Under context
 * parallelism the token taps are this rank's shard. */
typedef void (*wr_dit_tap_fn)(void *ctx, const char *name, const wr_tensor *t);

/* Enumerates every tensor a config implies, in diffusers order: fn(ctx, name, ndim, shape).
 * Returns the count; *params (optional) receives the parameter total. */
int64_t wr_dit_expected_tensors(const wr_dit_config *cfg, int64_t *params,
                                void (*fn)(void *ctx, const char *name, int ndim,
                                           const int64_t *shape),
                                void *ctx);

/* The original Wan name of a diffusers DiT key (spec §2.7); writes it into out. */
void wr_dit_original_name(char *out, size_t cap, const char *diffusers_name);

/*
 * Loads the transformer from `dir` (a transformer/ folder holding config.json and weights).
 * Failures: WR_ERR_NOT_FOUND / WR_ERR_FORMAT naming the folder and the first few missing or
 * mis-shaped tensors; WR_ERR_CONFIG for an unsupported config; WR_ERR_OOM_*.
 */
wr_status wr_dit_load(wr_dit **out, wr_backend *be, const char *dir);
/* fp8_storage: the blocks' Linear weights (what diffusers' layerwise casting stores in FP8,
 * its skip patterns keeping patch_embedding, condition_embedder and the norms) are converted at
 * load to float8_e4m3 with a per-tensor scale (amax / 448, so the largest value uses the whole
 * range; diffusers casts without one); e4m3 tensors in the checkpoint are used as they are.
 * Biases stay f32.
 * Upcast: a block whose matrices are narrower than the backend's GEMM dtype (a bf16 / f16
 * checkpoint or FP8 storage on the f32 CPU) has them converted to f32 once when it is acquired,
 * into a buffer of one block's matrices (wr_dit_upcast_bytes: device memory from the pool's
 * workspace category, else the backend; given back with the workspace), and the matmuls use
 * that copy (the FP8 scale still applied by the matmul). upcast_per_use keeps the narrow
 * matrices in the matmuls, which convert them per use (no buffer; the conversion is repeated
 * per FFN token chunk): the same values, for memory-tight runs and benchmarks. */
typedef struct wr_dit_load_opts {
    int fp8_storage;
    int upcast_per_use;
} wr_dit_load_opts;
wr_status wr_dit_load_ex(wr_dit **out, wr_backend *be, const char *dir, const wr_dit_load_opts *o);
void wr_dit_free(wr_dit *m);

const wr_dit_config *wr_dit_config_of(const wr_dit *m);
/* fn(ctx, name, weight) for each Linear weight, in the checkpoint's order (diffusers' names):
 * the storage tensor, its scale and device scale, as loaded (tests and tools). */
void wr_dit_each_weight(const wr_dit *m, wr_weight_fn fn, void *ctx);

/*
 * The vram layer (DESIGN.md §4): with a pool, blocks [0, resident) are copied into its device
 * memory once (weights-resident) and the others stream through two slots of the largest
 * block's size (weights-streaming): acquiring block i waits for its copy and starts copying
 * the next streamed block (wrapping to the first, for the next forward) on the pool's copy
 * thread, so copies overlap compute. resident < 0 or >= layers: all resident. The workspace
 * is then allocated from the pool (activations). On the plain CPU backend, whose device memory
 * is host memory, resident blocks are the checkpoint's mapped tensors used in place and only
 * counted (weights-resident); streamed blocks are really copied into the slots. The non-block
 * weights are counted as weights-resident (wr_dit_other_bytes). v NULL: back to the
 * checkpoint's own tensors (not host-visible: their device copies, made on the next acquire).
 * The pool must outlive the model or be detached first.
 */
wr_status wr_dit_set_vram(wr_dit *m, wr_vram *v, int64_t resident);
/*
 * Wan2.2's expert swap overlapped with the first expert's last forward: m in a pool with every
 * block resident as device copies (not the plain CPU backend's in-place blocks, not streamed),
 * next of the same layout and out of the pool. Armed, m's next forward hands each block's
 * device memory over as soon as the block's ops are issued (next's block of the same index is
 * copied there behind them: stream.h's wr_streamer_handoff); that forward must be m's last.
 * WR_ERR_UNSUPPORTED where it does not apply (then swap with wr_dit_set_vram as before);
 * nothing changes on failure.
 */
wr_status wr_dit_handoff_arm(wr_dit *m, const wr_dit *next);
/* After the armed forward: next in m's pool with all blocks resident in m's device memory (the
 * host waits for the copies still running), its non-block weights counted; m out of the pool
 * (as wr_dit_set_vram(m, NULL, 0)). On failure m is out of the pool too and next is not in it:
 * attach next again with wr_dit_set_vram. */
wr_status wr_dit_take_over(wr_dit *next, wr_dit *m);
/* Gives the activation workspace back (the next forward plans it again). */
void wr_dit_release_workspace(wr_dit *m);
/* The weights outside the blocks (embeddings, head), as held in memory: their device arena
 * where the backend is not host-visible, else the tensors used in place. */
size_t wr_dit_other_bytes(const wr_dit *m);
/* The largest block's weights in device memory (one streaming slot). */
size_t wr_dit_block_bytes(const wr_dit *m);
/* The device memory a forward of `tokens` tokens (all ranks' together; this rank's share under
 * context parallelism is counted) and `text_rows` text rows allocates: the activation
 * workspace (with the latent, text and output copies, and the modulation rows of
 * wr_dit_set_token_timesteps) in the model's compute dtype, its text cache
 * (wr_dit_set_text_cache) for text_rows rows, and the upcast buffer. */
size_t wr_dit_workspace_bytes(const wr_dit *m, int64_t tokens, int64_t text_rows);
/* The per-block upcast buffer (wr_dit_load_opts): one block's narrow matrices in f32, 0 when
 * none are narrow or with upcast_per_use. */
size_t wr_dit_upcast_bytes(const wr_dit *m);
/* Weights of block i in device memory for the duration (acquire/release pair). Without a pool
 * on a backend that is not host-visible, the first acquire uploads every block (once). */
wr_status wr_dit_acquire(wr_dit *m, int64_t i, const wr_dit_block **out);
void wr_dit_release(wr_dit *m, int64_t i);

void wr_dit_set_tap(wr_dit *m, wr_dit_tap_fn fn, void *ctx);

/* The dtype of the activations listed at the top (the GEMM and attention inputs): WR_DTYPE_F32
 * (the default, the bits of an f32-only forward) or WR_DTYPE_BF16 (on the CPU backend: the
 * rounding points of a GPU running bf16 activations, each BF16 output rounded to nearest even).
 * A change gives the workspace and the text cache back. WR_ERR_INVALID_ARG for another dtype,
 * WR_ERR_UNSUPPORTED when the backend's ops do not take it. */
wr_status wr_dit_set_compute_dtype(wr_dit *m, wr_dtype dt);
wr_dtype wr_dit_compute_dtype(const wr_dit *m);

/*
 * The text cache: the cross-attention keys and values of a text (to_k / to_v of the projected
 * text, norm_k) are the same at every denoising step. With n_texts slots (CFG: 2, the prompt and
 * the negative prompt), wr_dit_forward_ex(..., slot) computes them in the first forward with an
 * empty slot and keeps them for the following ones, which then skip the text projection and
 * those GEMMs (and the "text_proj" tap). The caller promises that every forward naming a full
 * slot passes the same text as the one that filled it; a new text needs
 * wr_dit_text_cache_clear (or another slot). Slots are emptied by clear, by a text of another row
 * count, by wr_dit_release_workspace and whatever releases it (set_vram, set_parallel,
 * set_compute_dtype). Memory: n_texts * num_layers * 2 * [S, D] in the compute dtype, device
 * memory next to the workspace (from the pool when one is set), counted by
 * wr_dit_workspace_bytes. n_texts 0 (the default): no cache, today's memory. WR_ERR_INVALID_ARG
 * outside [0, WR_DIT_MAX_TEXTS].
 */
#define WR_DIT_MAX_TEXTS 8
wr_status wr_dit_set_text_cache(wr_dit *m, int n_texts);
void wr_dit_text_cache_clear(wr_dit *m);

/* Context parallelism over the ranks of `cp` (DESIGN.md §5): each rank holds ceil(L/P)
 * contiguous tokens (the last ranks padded at the end; padded keys never enter self-attention,
 * so the output does not depend on P); only self-attention communicates. */
typedef enum wr_cp_mode {
    WR_CP_AUTO = 0, /* Ulysses when the heads divide by P, else ring */
    WR_CP_ULYSSES,  /* all-to-all tokens -> heads and back (heads % P == 0) */
    WR_CP_RING      /* K/V shards around the ring, log-sum-exp merge (any P) */
} wr_cp_mode;
const char *wr_cp_mode_name(wr_cp_mode mode);
/* Parses "auto" | "ulysses" | "ring"; -1 otherwise. */
int wr_cp_mode_parse(const char *s);
/* cp NULL or of size 1: no context parallelism. WR_ERR_CONFIG for Ulysses when the heads do not
 * divide by P. The communicator is borrowed. Every rank of cp must call wr_dit_forward with the
 * same inputs; each gets the whole output. */
wr_status wr_dit_set_parallel(wr_dit *m, wr_comm *cp, wr_cp_mode mode);
/* The mode in use (WR_CP_ULYSSES / WR_CP_RING; WR_CP_AUTO when not parallel). */
wr_cp_mode wr_dit_cp_mode(const wr_dit *m);

/* Planning from a config alone (the vram planner): the workspace of a forward (the activation
 * workspace alone: the planner counts the upcast buffer itself), and one block's
 * device bytes (a streaming slot; matrices in `wbytes` per element, vectors f32, 64-byte
 * aligned tensors, as wr_dit_block_bytes measures) and the non-block weights' bytes. */
size_t wr_dit_plan_workspace(const wr_dit_config *cfg, int64_t tokens, int64_t text_rows, int P,
                             wr_cp_mode mode);
/* The same in a compute dtype (F32: wr_dit_plan_workspace) with a text cache of text_cache
 * slots (0: none), as wr_dit_workspace_bytes counts a model so set. */
size_t wr_dit_plan_workspace_ex(const wr_dit_config *cfg, int64_t tokens, int64_t text_rows, int P,
                                wr_cp_mode mode, wr_dtype compute, int text_cache);
/* The same for a model set to t_distinct per-token timesteps (wr_dit_set_token_timesteps; 0:
 * wr_dit_plan_workspace_ex), as wr_dit_workspace_bytes counts it. */
size_t wr_dit_plan_workspace_tokens(const wr_dit_config *cfg, int64_t tokens, int64_t text_rows,
                                    int P, wr_cp_mode mode, wr_dtype compute, int text_cache,
                                    int64_t t_distinct);
void wr_dit_plan_weights(const wr_dit_config *cfg, int wbytes, size_t *block_bytes,
                         size_t *other_bytes);
/* The upcast buffer of a checkpoint whose block matrices are all narrower than f32: one
 * block's matrices in f32, 64-byte aligned each (what wr_dit_upcast_bytes then reports). */
size_t wr_dit_plan_upcast(const wr_dit_config *cfg);
/*
 * One forward pass (batch 1): latent [C, F, H, W], timestep (the scheduler's value),
 * enc [S, text_dim] (UMT5 output, padded rows zero) -> out [C_out, F, H, W], the flow
 * velocity. All three are f32 HOST tensors (borrowed; uploaded into / downloaded from the
 * workspace, whose size wr_dit_workspace_bytes counts them in); out is written when the call
 * returns WR_OK. F, H, W must be multiples of the patch size (WR_ERR_INVALID_ARG otherwise).
 */
wr_status wr_dit_forward(wr_dit *m, wr_tensor *out, const wr_tensor *latent, float timestep,
                         const wr_tensor *enc);
/* The same with the text in slot text_slot of the text cache (see wr_dit_set_text_cache; -1:
 * none, wr_dit_forward). WR_ERR_INVALID_ARG for a slot outside [-1, n_texts). */
wr_status wr_dit_forward_ex(wr_dit *m, wr_tensor *out, const wr_tensor *latent, float timestep,
                            const wr_tensor *enc, int text_slot);

/*
 * Per-token timesteps: diffusers' WanTransformer3DModel given a timestep of shape [1, L]
 * (Wan2.2 TI2V-5B: WanPipeline's expand_timesteps, one timestep per token, the first latent
 * frame's tokens t = 0 when an image conditions it). Each token's modulation comes from its own
 * timestep, as diffusers computes it (all f32): temb = time_embedder(sinusoid(t)) and
 * timestep_proj = time_proj(silu(temb)) per token; in each block scale_shift_table + timestep_proj
 * (its shift/scale/gate rows) per token; at the head scale_shift_table + temb per token.
 *
 * How: the embedding MLP runs once per DISTINCT timestep (matched by bits) of this rank's
 * tokens, not once per token: nk rows ([nk, D], [nk, 6D], each block's [nk, 6, D]) where
 * diffusers has L (the same values; a row's GEMM bits may depend on the row count nk, as in any
 * BLAS), and each modulation applies over every run of consecutive tokens with the same
 * timestep (one op per run: TI2V has 2 runs, the first frame and the rest; a timestep per
 * frame, F' runs; all tokens different, L runs of one token, correct but slow). A forward whose
 * tokens all have the same timestep t is nk = 1 with one run: the very ops, on the same shapes,
 * of wr_dit_forward_ex(t), so bitwise its result (no special case). Under context parallelism
 * each rank analyses and embeds only its own shard's timesteps (padding tokens repeat the last
 * token's); nothing more is communicated.
 *
 * Memory: the workspace holds K = min(n_distinct, ceil(L / P)) rows (1 for the scalar forward)
 * of the sinusoid [freq_dim], temb, its SiLU and linear_1's output [D] each, timestep_proj and a
 * block's modulation [6, D] each and the head's [2, D]: K * (freq_dim + 17 D) floats (each
 * buffer 64-byte aligned), counted by wr_dit_workspace_bytes and
 * wr_dit_plan_workspace_tokens. Host: L / P * 28 bytes for the runs, K * freq_dim floats.
 *
 * wr_dit_set_token_timesteps: n_distinct, the most distinct timesteps any rank's shard of a
 * forward holds (TI2V: 2; the whole sequence's count always suffices); 0 (the default): the
 * scalar forward only. A change gives the workspace back. WR_ERR_INVALID_ARG when negative.
 */
wr_status wr_dit_set_token_timesteps(wr_dit *m, int64_t n_distinct);
int64_t wr_dit_token_timesteps(const wr_dit *m);
/* wr_dit_forward_ex with t_tokens (a host array, borrowed, n_tokens f32 values) one timestep per
 * token in diffusers' order after patching: token (f, h, w) of the F/pt x H/ph x W/pw grid is
 * t_tokens[(f * H/ph + h) * W/pw + w]. Every rank of a context-parallel group passes the whole
 * array. WR_ERR_INVALID_ARG, besides wr_dit_forward_ex's: t_tokens NULL, n_tokens other than the
 * latent's token count (the message names both), or a shard holding more distinct timesteps than
 * wr_dit_set_token_timesteps planned for (agreed over the ranks). */
wr_status wr_dit_forward_tokens(wr_dit *m, wr_tensor *out, const wr_tensor *latent,
                                const float *t_tokens, int64_t n_tokens, const wr_tensor *enc,
                                int text_slot);

#endif /* WR_MODELS_DIT_H */

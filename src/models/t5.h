/*
 * t5.h — the UMT5 text encoder (transformers UMT5EncoderModel, encoder only), fp32 compute.
 *
 * Loading reads text_encoder/ (config.json + a single file or a sharded index; F32/BF16/F16/F8
 * per tensor; HF key names, spec §3.4) and checks every expected tensor's presence and shape,
 * reporting the first few problems. The token embedding (256,384 x 4,096 in the real model,
 * 2.1 GB in bf16) is never read whole and never on the device: the forward gathers the rows of
 * the prompt's ids straight from the mapped file (an op reading the mapping in place where the
 * backend's ops read host memory; else the rows are copied on the host, uploaded into the
 * workspace and converted there). Matrices are used in place in their storage dtype; the norm
 * weights and the per-layer relative-position-bias tables are converted to f32 once.
 *
 * Host and device (backend.h): on a backend whose ops cannot read host memory
 * (!be->host_visible) every tensor an op reads is device memory: the final norm is uploaded at
 * load; the layers come from the vram streamer (wr_t5_set_vram) or, without a pool, are all
 * uploaded once at the first acquire. On the plain CPU backend nothing is copied. The residual
 * stream and every activation live in the workspace; the forward's output and the taps are host
 * memory.
 *
 * The relative position bucket of every distance is computed once at load into a table
 * (transformers' float32 formula, evaluated the way torch evaluates it), never with log at run
 * time; each forward lists the buckets of the distances -(L-1) .. L-1 on the host (ints) and
 * expands each layer's table to a [NH, 2L - 1] bias with ops (gather_rows, transpose).
 *
 * Dimension letters: D = d_model, NH heads, DK = d_kv, I = NH * DK inner width, FF = d_ff,
 * L tokens (512 in the pipeline), V vocab rows.
 *
 * Lifetime: a wr_t5 owns its f32 vectors, its weight set (the mapping) and its workspace; the
 * backend is borrowed and must outlive it. Not thread-safe.
 */
#ifndef WR_MODELS_T5_H
#define WR_MODELS_T5_H

#include <stdint.h>

#include "core/modeldir.h"
#include "core/safetensors.h"
#include "kernels/backend.h"
#include "models/loader.h"
#include "vram/vram.h"

/* transformers UMT5Block: layer.0 (self-attention) and layer.1 (gated-GELU FFN) */
typedef struct wr_t5_block {
    wr_tensor ln0;      /* layer.0.layer_norm.weight [D] f32 */
    wr_weight q, k, v;  /* SelfAttention.{q,k,v}.weight [I, D], storage dtype and FP8 scale */
    wr_weight o;        /* SelfAttention.o.weight [D, I] */
    wr_tensor rel_bias; /* SelfAttention.relative_attention_bias.weight [buckets, NH] f32 */
    wr_tensor ln1;      /* layer.1.layer_norm.weight [D] f32 */
    wr_weight wi_0;     /* DenseReluDense.wi_0.weight [FF, D]: the GELU branch */
    wr_weight wi_1;     /* DenseReluDense.wi_1.weight [FF, D]: the linear branch */
    wr_weight wo;       /* DenseReluDense.wo.weight [D, FF] */
} wr_t5_block;

typedef struct wr_t5 wr_t5;

/* Called with each named tap ("embed", "block.<i>", "final_norm"); t is a host copy [L, D] f32
 * (owned by the model), valid only during the call. */
typedef void (*wr_t5_tap_fn)(void *ctx, const char *name, const wr_tensor *t);

/* Enumerates every tensor a config implies, in HF order: fn(ctx, name, ndim, shape) (fn may be
 * NULL). Returns the count; *params (optional) receives the parameter total. */
int64_t wr_t5_expected_tensors(const wr_t5_config *cfg, int64_t *params,
                               void (*fn)(void *ctx, const char *name, int ndim,
                                          const int64_t *shape),
                               void *ctx);

/*
 * Loads the encoder from `dir` (a text_encoder/ folder holding config.json and weights).
 * Failures: WR_ERR_NOT_FOUND / WR_ERR_FORMAT naming the folder and the first few missing or
 * mis-shaped tensors; WR_ERR_CONFIG for a config wanrun does not run (not UMT5, not gated
 * GELU-tanh); WR_ERR_UNSUPPORTED on a non-CPU backend (so far); WR_ERR_OOM_*.
 */
wr_status wr_t5_load(wr_t5 **out, wr_backend *be, const char *dir);
/* fp8_storage: the layers' seven matrices (what diffusers' layerwise casting would store in FP8
 * with the embeddings, the relative-position tables and the norms skipped) are converted at load
 * to float8_e4m3 with a per-tensor scale (wr_load_fp8); e4m3 matrices in the checkpoint are used
 * as they are. The matmul upcasts per use and applies the scale. */
typedef struct wr_t5_load_opts {
    int fp8_storage;
} wr_t5_load_opts;
wr_status wr_t5_load_ex(wr_t5 **out, wr_backend *be, const char *dir, const wr_t5_load_opts *o);
void wr_t5_free(wr_t5 *m);

const wr_t5_config *wr_t5_config_of(const wr_t5 *m);
/* fn(ctx, name, weight) for each layer matrix (q, k, v, o, wi_0, wi_1, wo), in the
 * checkpoint's order: the storage tensor, its scale and device scale, as loaded. */
void wr_t5_each_weight(const wr_t5 *m, wr_weight_fn fn, void *ctx);

/* transformers' bidirectional _relative_position_bucket of j - i, from the load-time table. */
int wr_t5_bucket(const wr_t5 *m, int64_t rel);

/* The vram layer: layers [0, resident) resident, the others streamed through two slots with
 * the next one prefetched (src/vram/stream.h); the workspace then comes from the pool. v NULL:
 * back to the checkpoint's tensors (or, when the ops cannot read host memory, their device
 * copy made at the next acquire). The shared embedding table is never on the device: the
 * prompt's rows are gathered from the mapping per forward. */
wr_status wr_t5_set_vram(wr_t5 *m, wr_vram *v, int64_t resident);
/* Gives the workspace back (the next forward plans it again). */
void wr_t5_release_workspace(wr_t5 *m);
/* One layer's device bytes (a streaming slot). */
size_t wr_t5_layer_bytes(const wr_t5 *m);
/* Planning from a config alone: the workspace for L tokens, one layer's device bytes. */
size_t wr_t5_plan_workspace(const wr_t5_config *cfg, int64_t L);
size_t wr_t5_plan_layer_bytes(const wr_t5_config *cfg, int wbytes);
/* Weights of block i, device memory for the duration (acquire/release pair): the streamer's,
 * or without a pool the checkpoint's own tensors (host_visible) / the layers' device copy,
 * uploaded at the first acquire (failures: WR_ERR_OOM_DEVICE, WR_ERR_OOM_HOST). */
wr_status wr_t5_acquire(wr_t5 *m, int64_t i, const wr_t5_block **out);
void wr_t5_release(wr_t5 *m, int64_t i);

void wr_t5_set_tap(wr_t5 *m, wr_t5_tap_fn fn, void *ctx);

/*
 * The encoder (UMT5EncoderModel(ids, mask).last_hidden_state, batch 1): ids [L] and mask [L]
 * (nonzero = real token, 0 = padding: padded keys are masked, padded query rows still computed;
 * NULL: all real) in host memory, borrowed for the call; out [L, D] f32 HOST memory (caller's),
 * written by a download of the result (the residual stream lives in the workspace). The padding
 * must come after the real tokens (the tokenizer's layout: the attention takes the real length,
 * not a byte mask). WR_ERR_INVALID_ARG: an id outside [0, vocab_size) naming its position; a
 * mask that is not a nonempty prefix of real tokens, naming the first position out of place.
 */
wr_status wr_t5_forward(wr_t5 *m, wr_tensor *out, const int32_t *ids, const uint8_t *mask,
                        int64_t L);

/*
 * What WanPipeline feeds the transformer (_get_t5_prompt_embeds): the forward, then rows
 * [n, L) of the host tensor out set to exact zeros, n = the number of nonzero mask entries (the
 * real tokens, which the tokenizer puts first). *n_real (optional) receives n.
 */
wr_status wr_t5_encode(wr_t5 *m, wr_tensor *out, const int32_t *ids, const uint8_t *mask, int64_t L,
                       int64_t *n_real);

#endif /* WR_MODELS_T5_H */

/*
 * convert.h — `wanrun convert`: a model directory rewritten once in a narrower dtype, so that
 * every later run maps the smaller files (and the ranks of a node share one page-cache copy of
 * them) instead of each converting its own copy at load.
 *
 * The output is a complete diffusers directory: every file of the source copied (model_index.json,
 * the configs, the tokenizer, the scheduler; symbolic links followed), and each weight component
 * (transformer/, transformer_2/, text_encoder/, vae/) rewritten tensor by tensor:
 *   bf16   every F32 / F64 tensor as BF16 (PyTorch's round-to-nearest-even, as .to(bfloat16)),
 *          the others as they are: what diffusers' bf16 releases hold;
 *   fp8    the matrices wanrun's --fp8 storage converts at load (the DiT blocks' Linear
 *          weights, the text encoder layers' matrices) as float8_e4m3 with the same per-tensor
 *          scale (amax / 448), stored beside each as "MODULE.scale_weight" (an F32 of one
 *          element, which the loaders read: loader.h); everything else as it is. A run on the
 *          output therefore gives the same bits as --fp8 storage on the source.
 * Streaming: one tensor in memory at a time (its source read, its converted bytes), never a
 * whole model. Shards: at most shard_bytes each (a tensor larger than that alone), named as
 * diffusers names them ("diffusion_pytorch_model-00001-of-00003.safetensors", "model-..." for
 * the text encoder) with an index "*.safetensors.index.json" when there are several.
 * All or nothing: everything is written under a hidden temporary directory beside the
 * destination (".NAME.wanrun-tmp.PID"), each file fsync'ed, and renamed into place at the end;
 * on any failure (or when *stop becomes non-zero, checked between tensors) the temporary is
 * removed and nothing is left. The destination must not exist.
 */
#ifndef WR_PIPELINE_CONVERT_H
#define WR_PIPELINE_CONVERT_H

#include <stdint.h>

#include "core/dtype.h"
#include "core/status.h"

#define WR_CONVERT_SHARD_BYTES ((uint64_t)5000000000) /* diffusers max_shard_size="5GB" */

typedef struct wr_convert_opts {
    wr_dtype dtype;           /* WR_DTYPE_BF16 or WR_DTYPE_F8_E4M3 */
    uint64_t shard_bytes;     /* 0: WR_CONVERT_SHARD_BYTES */
    const volatile int *stop; /* NULL, or a flag a signal handler sets: WR_ERR_INTERRUPTED */
    /* called after each tensor (NULL: none): component, tensors done / total of it */
    void (*progress)(void *ctx, const char *component, int64_t done, int64_t total);
    void *progress_ctx;
} wr_convert_opts;

typedef struct wr_convert_stats {
    int64_t tensors, converted;   /* written, of which in another dtype */
    uint64_t bytes_in, bytes_out; /* the weight components' tensor bytes */
    int64_t shards;               /* safetensors files written */
} wr_convert_stats;

/* src: a model directory (wr_model_dir_open checks it first); dst: the new directory.
 * Failures: those of wr_model_dir_open and of the weight files (naming them); WR_ERR_INVALID_ARG
 * (dst exists, or cannot be an output; a dtype other than the two); WR_ERR_IO (writing, naming
 * the file); WR_ERR_OOM_HOST; WR_ERR_INTERRUPTED (stopped). stats may be NULL. */
wr_status wr_convert(const char *src, const char *dst, const wr_convert_opts *o,
                     wr_convert_stats *stats);

#endif /* WR_PIPELINE_CONVERT_H */

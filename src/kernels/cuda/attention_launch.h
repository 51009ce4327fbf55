/*
 * attention_launch.h — the attention kernel's launcher (attention.cu), called by its host glue
 * (attention_cuda.c). Device pointers; q/k/v/out [L, NH, HD] with dtypes F32 or BF16 (the
 * wr_dtype values as ints), lse [NH, Lq] f32 or NULL, mask [Lk] device bytes or NULL, keys
 * [kv, Lk) masked, bias [NH, Lq + Lk - 1] f32 or NULL; HD <= 128. Runs on `stream` (a
 * cudaStream_t) without waiting; returns a cudaError_t as int.
 */
#ifndef WR_KERNELS_CUDA_ATTENTION_LAUNCH_H
#define WR_KERNELS_CUDA_ATTENTION_LAUNCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int wr_cuda_attention_launch(void *out, int odt, float *lse, const void *q, int qdt, const void *k,
                             int kdt, const void *v, int vdt, int64_t Lq, int64_t Lk, int NH,
                             int HD, float scale, const uint8_t *mask, int64_t kv,
                             const float *bias, void *stream);

#ifdef __cplusplus
}
#endif

#endif /* WR_KERNELS_CUDA_ATTENTION_LAUNCH_H */

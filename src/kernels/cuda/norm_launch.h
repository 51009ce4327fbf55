/*
 * norm_launch.h — the launchers of norm.cu (LayerNorm, RMSNorm, the channel RMSNorm, RoPE and
 * the attention merge), called by norm_cuda.c. Each takes raw device pointers, element counts,
 * dtype codes (wr_dtype values: WR_DTYPE_F32 or WR_DTYPE_BF16 per operand; weights F32) and the
 * stream to launch on, launches without synchronising and returns the cudaError_t of the launch
 * as int (cudaSuccess = 0). Zero counts launch nothing and return cudaSuccess. Arithmetic is f32
 * with the statistics in double, operation by operation as the CPU twins (kernels/cpu/norm.c,
 * attention.c, elementwise.c); a BF16 output is rounded to nearest even once (NaN -> 0xFFFF).
 */
#ifndef WR_KERNELS_CUDA_NORM_LAUNCH_H
#define WR_KERNELS_CUDA_NORM_LAUNCH_H

#include <cuda_runtime.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y [R, D] (ydt) = layer_norm(x [R, D] (xdt)) (* w [D] + b [D] where not NULL, f32); y may
 * alias x when ydt == xdt */
int wr_cuda_layer_norm_launch(void *y, int ydt, const void *x, int xdt, const float *w,
                              const float *b, int64_t R, int64_t D, float eps, cudaStream_t s);
/* y [R, D] = x / sqrt(mean(x^2) + eps) (* w [D] where not NULL), x and y of dtype dt; y may
 * alias x */
int wr_cuda_rms_norm_launch(void *y, const void *x, int dt, const float *w, int64_t R, int64_t D,
                            float eps, cudaStream_t s);
/* y [C, P] = x / max(||x[:, p]||, 1e-12) * scale * gamma[c], x and y of dtype dt; scale is
 * sqrtf((float)C) from the caller; y may alias x */
int wr_cuda_rms_norm_channels_launch(void *y, const void *x, int dt, const float *gamma, int64_t C,
                                     int64_t P, float scale, cudaStream_t s);
/* x [L, NH, 2P] (xdt) rotated in place by pairs with cos, sin [L, P] (cdt) */
int wr_cuda_rope_launch(void *x, int xdt, const void *cos, const void *sin, int cdt, int64_t L,
                        int64_t NH, int64_t P, cudaStream_t s);
/* o [Lq, NH, HD] and lse [NH, Lq] := the merge with o2, lse2; o, o2 of dtype odt, lse, lse2
 * of dtype ldt (two launches: o first, then lse, which o's weights read) */
int wr_cuda_attn_merge_launch(void *o, void *lse, const void *o2, const void *lse2, int odt,
                              int ldt, int64_t Lq, int64_t NH, int64_t HD, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif /* WR_KERNELS_CUDA_NORM_LAUNCH_H */

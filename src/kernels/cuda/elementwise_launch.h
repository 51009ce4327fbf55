/*
 * elementwise_launch.h — the launchers of elementwise.cu (elementwise, blend and patch-layout
 * kernels), called by the slots in elementwise_cuda.c.
 *
 * Every launcher takes device pointers (borrowed; contiguous, row-major), element counts and
 * shapes as int64_t, each activation operand's dtype as an int (WR_DTYPE_F32 or WR_DTYPE_BF16:
 * loaded to f32, the result rounded once to nearest-even when stored as BF16), and the stream
 * it launches on; it returns the launch's cudaError_t as int (cudaSuccess, 0, when nothing was
 * launched because the tensor is empty). Nothing synchronises. Vector operands (modulate's
 * scale / shift, the gate, channel_affine's scale / shift) are f32, as the wrappers require.
 */
#ifndef WR_KERNELS_CUDA_ELEMENTWISE_LAUNCH_H
#define WR_KERNELS_CUDA_ELEMENTWISE_LAUNCH_H

#include <cuda_runtime.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y[i] = gelu_tanh(x[i]) / silu(x[i]), i < n (y may be x) */
int wr_cuda_gelu_tanh_launch(void *y, int ydt, const void *x, int xdt, int64_t n, cudaStream_t s);
int wr_cuda_silu_launch(void *y, int ydt, const void *x, int xdt, int64_t n, cudaStream_t s);
/* y[i] = a[i] + b[j] / a[i] * b[j], j = i when bn == n, else i % bn (a row broadcast) */
int wr_cuda_add_launch(void *y, int ydt, const void *a, int adt, const void *b, int bdt, int64_t n,
                       int64_t bn, cudaStream_t s);
int wr_cuda_mul_launch(void *y, int ydt, const void *a, int adt, const void *b, int bdt, int64_t n,
                       int64_t bn, cudaStream_t s);
/* y[i] = x[i] * (1 + scale[i % D]) + shift[i % D] */
int wr_cuda_modulate_launch(void *y, int ydt, const void *x, int xdt, const float *scale,
                            const float *shift, int64_t n, int64_t D, cudaStream_t s);
/* x[i] += a[i] * gate[i % D] (gate NULL: x[i] += a[i]) */
int wr_cuda_gated_residual_launch(void *x, int xdt, const void *a, int adt, const float *gate,
                                  int64_t n, int64_t D, cudaStream_t s);
/* y[i] = min(max(x[i], lo), hi), NaN kept */
int wr_cuda_clamp_launch(void *y, int ydt, const void *x, int xdt, float lo, float hi, int64_t n,
                         cudaStream_t s);
/* y[c * P + p] = x[c * P + p] * scale[c] + shift[c], n = C * P */
int wr_cuda_channel_affine_launch(void *y, int ydt, const void *x, int xdt, const float *scale,
                                  const float *shift, int64_t n, int64_t P, cudaStream_t s);
/* y [N, M] = x [M, N]^T */
int wr_cuda_transpose_launch(void *y, int ydt, const void *x, int xdt, int64_t M, int64_t N,
                             cudaStream_t s);
/* dst[r * dld + c] = src[r * sld + c], f32 */
int wr_cuda_copy2d_launch(float *dst, int64_t dld, const float *src, int64_t sld, int64_t rows,
                          int64_t cols, cudaStream_t s);
/* y [CT, 2H, 2W] = nearest x2 of x [CT, H, W] */
int wr_cuda_upsample2x_launch(void *y, int ydt, const void *x, int xdt, int64_t CT, int64_t H,
                              int64_t W, cudaStream_t s);
/* y [n, D] = table [V, D] (table_dt: F32, F16, BF16, F8_E4M3, F8_E5M2 or F64) rows idx[0..n-1];
 * idx is HOST memory, read before this returns (passed to the kernels by value, in chunks) */
int wr_cuda_gather_rows_launch(void *y, int ydt, const void *table, int table_dt, int64_t D,
                               const int32_t *idx, int64_t n, cudaStream_t s);
/* out [C, F, H, W] from y [L, pt*ph*pw*C] (patch.c's layout) */
int wr_cuda_unpatchify_launch(void *out, int odt, const void *y, int ydt, int64_t C, int64_t F,
                              int64_t H, int64_t W, int64_t pt, int64_t ph, int64_t pw,
                              cudaStream_t s);
/* dst [P, Ld, Q], a [P, La, Q]: for i < e, dst[p, i, q] = a[p, La - e + i, q] * wa + dst * wb */
int wr_cuda_blend_launch(void *dst, int ddt, const void *a, int adt, int64_t P, int64_t Ld,
                         int64_t Q, int64_t La, int64_t e, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif /* WR_KERNELS_CUDA_ELEMENTWISE_LAUNCH_H */

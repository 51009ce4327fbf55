/*
 * conv_launch.h — the convolution family's launchers (conv.cu), called by conv_cuda.c: the
 * column gathers that turn conv3d and patch embedding into GEMMs, and the per-channel bias.
 * Device pointers, dtypes as wr_dtype ints (activations F32 or BF16), a cudaStream_t as
 * `stream`; each returns a cudaError_t as int and does not wait.
 */
#ifndef WR_KERNELS_CUDA_CONV_LAUNCH_H
#define WR_KERNELS_CUDA_CONV_LAUNCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* cols[r, K] (dtype cdt), r = 0..np-1 the output positions p0 + r of y [Co, To, Ho, Wo], K =
 * Ci * kt * kh * kw in w's order ((ci * kt + a) * kh + b) * kw + e: the input value under tap
 * (a, b, e), frames [pad_t zeros | cache (Tc frames) | x (T frames)], zero outside H x W. */
int wr_cuda_conv_cols_launch(void *cols, int cdt, const void *x, int xdt, const void *cache,
                             int cachedt, int64_t Ci, int64_t T, int64_t Tc, int64_t H, int64_t W,
                             int64_t kt, int64_t kh, int64_t kw, int64_t pad_t, int64_t pad_h,
                             int64_t pad_w, int64_t To, int64_t Ho, int64_t Wo, int64_t p0,
                             int64_t np, void *stream);
/* patches[r, P] (dtype cdt) of tokens n0 + r, r = 0..nr-1: x [C, F, H, W] cut into pt x ph x
 * pw patches, P = C * pt * ph * pw in w's order, tokens (f, h, w) row-major. */
int wr_cuda_patch_cols_launch(void *cols, int cdt, const void *x, int xdt, int64_t C, int64_t F,
                              int64_t H, int64_t W, int64_t pt, int64_t ph, int64_t pw, int64_t n0,
                              int64_t nr, void *stream);
/* y[c, p0 + r] += b[c] for c < Co, r < np; y rows of P elements (dtype ydt) */
int wr_cuda_bias_rows_launch(void *y, int ydt, int64_t P, const float *b, int64_t Co, int64_t p0,
                             int64_t np, void *stream);

#ifdef __cplusplus
}
#endif

#endif /* WR_KERNELS_CUDA_CONV_LAUNCH_H */

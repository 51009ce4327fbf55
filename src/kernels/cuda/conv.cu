// conv.cu — the column gathers of conv3d (the VAE's causal 3x3x3 and 1x1x1 convolutions, with
// the causal frame cache and zero padding) and of patch embedding, and a per-channel bias: the
// CUDA twins of the gathers in kernels/cpu/conv.c and patch.c. The products themselves are
// cuBLASLt GEMMs (conv_cuda.c); gathering a chunk of output positions at a time bounds the
// column buffer to the op scratch (an implicit GEMM on tensor cores replaces this pair once it
// can be measured on a GPU).
#include <cuda_runtime.h>
#include <stdint.h>

#include "core/dtype.h"
#include "kernels/cuda/conv_launch.h"

namespace {

constexpr int kThreads = 256;

unsigned grid_for(int64_t n) {
    int64_t g = (n + kThreads - 1) / kThreads;
    return (unsigned)(g > 65535 * 4 ? 65535 * 4 : (g < 1 ? 1 : g));
}

__device__ __forceinline__ float load_act(const void *p, int dt, int64_t i) {
    return dt == WR_DTYPE_BF16 ? __uint_as_float((uint32_t)((const uint16_t *)p)[i] << 16)
                               : ((const float *)p)[i];
}

__device__ __forceinline__ void store_act(void *p, int dt, int64_t i, float f) {
    if (dt == WR_DTYPE_BF16) {
        const uint32_t u = __float_as_uint(f), a = u & 0x7FFFFFFFu;
        ((uint16_t *)p)[i] =
            a > 0x7F800000u ? 0xFFFFu : (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    } else {
        ((float *)p)[i] = f;
    }
}

__global__ void conv_cols_kernel(void *cols, int cdt, const void *x, int xdt, const void *cache,
                                 int cachedt, int64_t Ci, int64_t T, int64_t Tc, int64_t H,
                                 int64_t W, int64_t kt, int64_t kh, int64_t kw, int64_t pad_t,
                                 int64_t pad_h, int64_t pad_w, int64_t Ho, int64_t Wo, int64_t p0,
                                 int64_t np) {
    const int64_t K = Ci * kt * kh * kw, n = np * K;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < n;
         t += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = t / K, c = t % K;
        const int64_t p = p0 + r, wo = p % Wo, ho = (p / Wo) % Ho, to = p / (Wo * Ho);
        const int64_t e = c % kw, b = (c / kw) % kh, a = (c / (kw * kh)) % kt,
                      ci = c / (kw * kh * kt);
        const int64_t f = to + a - pad_t, hi = ho + b - pad_h, wi = wo + e - pad_w;
        float v = 0.0f;
        if (f >= 0 && hi >= 0 && hi < H && wi >= 0 && wi < W) {
            if (f < Tc)
                v = load_act(cache, cachedt, ((ci * Tc + f) * H + hi) * W + wi);
            else if (f - Tc < T)
                v = load_act(x, xdt, ((ci * T + (f - Tc)) * H + hi) * W + wi);
        }
        store_act(cols, cdt, t, v);
    }
}

__global__ void patch_cols_kernel(void *cols, int cdt, const void *x, int xdt, int64_t C, int64_t F,
                                  int64_t H, int64_t W, int64_t pt, int64_t ph, int64_t pw,
                                  int64_t n0, int64_t nr) {
    const int64_t P = C * pt * ph * pw, n = nr * P, Hp = H / ph, Wp = W / pw;
    (void)F;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < n;
         t += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = t / P, c = t % P;
        const int64_t tok = n0 + r, f = tok / (Hp * Wp), h = (tok / Wp) % Hp, w = tok % Wp;
        const int64_t j = c % pw, i = (c / pw) % ph, a = (c / (pw * ph)) % pt,
                      ch = c / (pw * ph * pt);
        store_act(cols, cdt, t,
                  load_act(x, xdt, ((ch * F + f * pt + a) * H + h * ph + i) * W + w * pw + j));
    }
}

__global__ void bias_rows_kernel(void *y, int ydt, int64_t P, const float *b, int64_t Co,
                                 int64_t p0, int64_t np) {
    const int64_t n = Co * np;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < n;
         t += (int64_t)gridDim.x * blockDim.x) {
        const int64_t c = t / np, i = c * P + p0 + t % np;
        store_act(y, ydt, i, load_act(y, ydt, i) + b[c]);
    }
}

} // namespace

extern "C" int wr_cuda_conv_cols_launch(void *cols, int cdt, const void *x, int xdt,
                                        const void *cache, int cachedt, int64_t Ci, int64_t T,
                                        int64_t Tc, int64_t H, int64_t W, int64_t kt, int64_t kh,
                                        int64_t kw, int64_t pad_t, int64_t pad_h, int64_t pad_w,
                                        int64_t To, int64_t Ho, int64_t Wo, int64_t p0, int64_t np,
                                        void *stream) {
    (void)To;
    const int64_t n = np * Ci * kt * kh * kw;
    if (n <= 0) return cudaSuccess;
    conv_cols_kernel<<<grid_for(n), kThreads, 0, (cudaStream_t)stream>>>(
        cols, cdt, x, xdt, cache, cachedt, Ci, T, Tc, H, W, kt, kh, kw, pad_t, pad_h, pad_w, Ho, Wo,
        p0, np);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_patch_cols_launch(void *cols, int cdt, const void *x, int xdt, int64_t C,
                                         int64_t F, int64_t H, int64_t W, int64_t pt, int64_t ph,
                                         int64_t pw, int64_t n0, int64_t nr, void *stream) {
    const int64_t n = nr * C * pt * ph * pw;
    if (n <= 0) return cudaSuccess;
    patch_cols_kernel<<<grid_for(n), kThreads, 0, (cudaStream_t)stream>>>(cols, cdt, x, xdt, C, F,
                                                                          H, W, pt, ph, pw, n0, nr);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_bias_rows_launch(void *y, int ydt, int64_t P, const float *b, int64_t Co,
                                        int64_t p0, int64_t np, void *stream) {
    const int64_t n = Co * np;
    if (n <= 0) return cudaSuccess;
    bias_rows_kernel<<<grid_for(n), kThreads, 0, (cudaStream_t)stream>>>(y, ydt, P, b, Co, p0, np);
    return (int)cudaGetLastError();
}

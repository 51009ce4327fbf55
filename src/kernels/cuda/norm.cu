// norm.cu — LayerNorm, RMSNorm, the channel RMSNorm, RoPE and the attention merge on CUDA: the
// kernels and their extern "C" launchers (norm_launch.h). Each kernel follows its CPU twin
// (kernels/cpu/norm.c, elementwise.c: rope, attention.c: attn_merge) operation by operation:
// the statistics and the merge in double, the rest in f32 with explicit round-to-nearest
// intrinsics (__fmul_rn, ...) so that nvcc contracts nothing into an FMA the CPU does not have.
// Only the order of the double row sums differs from the CPU (a block reduction). Operands are
// F32 or BF16 (a dtype code per operand); a BF16 output is rounded to nearest even once, NaN
// stored as 0xFFFF (src/core/dtype.c). Every launch goes on the caller's stream; nothing here
// synchronises or allocates.
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "core/dtype.h"
#include "kernels/cuda/norm_launch.h"

namespace {

constexpr int kThreads = 256;         // a multiple of 32: full-warp shuffles in block_sum
constexpr int64_t kMaxGrid = 1 << 20; // grid-stride loops beyond this

// ---- loads and stores ----

__device__ __forceinline__ float load_f32(const void *p, int dt, int64_t i) {
    if (dt == WR_DTYPE_BF16) return __uint_as_float((uint32_t)((const uint16_t *)p)[i] << 16);
    return ((const float *)p)[i];
}

__device__ __forceinline__ void store_f32(void *p, int dt, int64_t i, float f) {
    if (dt == WR_DTYPE_BF16) {
        const uint32_t u = __float_as_uint(f);
        ((uint16_t *)p)[i] = (u & 0x7FFFFFFFu) > 0x7F800000u
                                 ? (uint16_t)0xFFFFu
                                 : (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    } else {
        ((float *)p)[i] = f;
    }
}

// ---- block reduction ----

__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xFFFFFFFFu, v, o);
    return v;
}

// The sum of v over the block, returned to every thread. sh: 33 doubles of shared memory.
// Ends with a barrier, so every thread's reads before the call are done when it returns (a
// norm may then write its output over its input).
__device__ double block_sum(double v, double *sh) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        v = warp_sum(lane < nw ? sh[lane] : 0.0);
        if (lane == 0) sh[32] = v;
    }
    __syncthreads();
    const double r = sh[32];
    __syncthreads(); // sh is reused by the next call
    return r;
}

// ---- kernels ----

// One block per row (grid-stride over rows): mean, then the biased variance about it, both in
// double; y = (x - (float)mean) * (float)(1 / sqrt(var + eps)) (* w) (+ b) in f32.
__global__ void layer_norm_kernel(void *y, int ydt, const void *x, int xdt, const float *w,
                                  const float *b, int64_t R, int64_t D, float eps) {
    __shared__ double sh[33];
    for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
        const int64_t o = r * D;
        double s = 0.0;
        for (int64_t i = threadIdx.x; i < D; i += blockDim.x) s += (double)load_f32(x, xdt, o + i);
        const double mean = block_sum(s, sh) / (double)D;
        double v = 0.0;
        for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
            const double d = (double)load_f32(x, xdt, o + i) - mean;
            v += d * d;
        }
        const double var = block_sum(v, sh) / (double)D;
        const float m = (float)mean, inv = (float)(1.0 / sqrt(var + (double)eps));
        for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
            float t = __fmul_rn(__fsub_rn(load_f32(x, xdt, o + i), m), inv);
            if (w) t = __fmul_rn(t, w[i]);
            if (b) t = __fadd_rn(t, b[i]);
            store_f32(y, ydt, o + i, t);
        }
    }
}

// One block per row: the sum of squares in double (each square of an f32 is exact in double,
// so a contracted FMA changes nothing); y = x * (float)(1 / sqrt(ss / D + eps)) (* w) in f32.
__global__ void rms_norm_kernel(void *y, const void *x, int dt, const float *w, int64_t R,
                                int64_t D, float eps) {
    __shared__ double sh[33];
    for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
        const int64_t o = r * D;
        double s = 0.0;
        for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
            const double t = (double)load_f32(x, dt, o + i);
            s += t * t;
        }
        const double ss = block_sum(s, sh);
        const float inv = (float)(1.0 / sqrt(ss / (double)D + (double)eps));
        for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
            float t = __fmul_rn(load_f32(x, dt, o + i), inv);
            if (w) t = __fmul_rn(t, w[i]);
            store_f32(y, dt, o + i, t);
        }
    }
}

// One thread per position p (coalesced over p), the channels summed in order in double as the
// CPU does; F.normalize's clamp of the norm at 1e-12 in f32 (a NaN norm becomes 1e-12, as on
// the CPU); y = x / nrm * scale * gamma[c] in f32, left to right.
__global__ void rms_norm_channels_kernel(void *y, const void *x, int dt, const float *gamma,
                                         int64_t C, int64_t P, float scale) {
    for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < P;
         p += (int64_t)gridDim.x * blockDim.x) {
        double ss = 0.0;
        for (int64_t c = 0; c < C; c++) {
            const double t = (double)load_f32(x, dt, c * P + p);
            ss += t * t;
        }
        const float nrm = (float)sqrt(ss);
        const float inv = nrm > 1e-12f ? nrm : 1e-12f;
        for (int64_t c = 0; c < C; c++) {
            const float t = __fdiv_rn(load_f32(x, dt, c * P + p), inv);
            store_f32(y, dt, c * P + p, __fmul_rn(__fmul_rn(t, scale), gamma[c]));
        }
    }
}

// One thread per pair q of x [L, NH, P, 2] (element 2q, 2q + 1); cos/sin [L, P].
__global__ void rope_kernel(void *x, int xdt, const void *cos, const void *sin, int cdt, int64_t NH,
                            int64_t P, int64_t n) {
    for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < n;
         q += (int64_t)gridDim.x * blockDim.x) {
        const int64_t l = q / (NH * P), p = q % P, ci = l * P + p;
        const float cc = load_f32(cos, cdt, ci), ss = load_f32(sin, cdt, ci);
        const float x1 = load_f32(x, xdt, 2 * q), x2 = load_f32(x, xdt, 2 * q + 1);
        store_f32(x, xdt, 2 * q, __fsub_rn(__fmul_rn(x1, cc), __fmul_rn(x2, ss)));
        store_f32(x, xdt, 2 * q + 1, __fadd_rn(__fmul_rn(x1, ss), __fmul_rn(x2, cc)));
    }
}

// The merge of o: one thread per element of o [Lq, NH, HD], reading lse / lse2 [NH, Lq] (not
// yet updated: attn_merge_lse_kernel runs after this one on the stream). A side with lse =
// -inf has no keys: l2 = -inf leaves o as it is, l1 = -inf takes o2. With m = max(l1, l2) (a
// NaN l1 picks l2, as the CPU's l1 > l2 ? l1 : l2), in double:
// o = (o1 e^(l1 - m) + o2 e^(l2 - m)) / (e^(l1 - m) + e^(l2 - m)).
__global__ void attn_merge_o_kernel(void *o, const void *lse, const void *o2, const void *lse2,
                                    int odt, int ldt, int64_t Lq, int64_t NH, int64_t HD,
                                    int64_t n) {
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < n;
         k += (int64_t)gridDim.x * blockDim.x) {
        const int64_t row = k / HD, i = row / NH, h = row % NH, li = h * Lq + i;
        const double l1 = (double)load_f32(lse, ldt, li), l2 = (double)load_f32(lse2, ldt, li);
        if (l2 == -INFINITY) continue;
        if (l1 == -INFINITY) {
            store_f32(o, odt, k, load_f32(o2, odt, k));
            continue;
        }
        const double m = l1 > l2 ? l1 : l2, w1 = exp(l1 - m), w2 = exp(l2 - m),
                     inv = 1.0 / (w1 + w2);
        const double a = (double)load_f32(o, odt, k), b2 = (double)load_f32(o2, odt, k);
        store_f32(o, odt, k, (float)__dmul_rn(__dadd_rn(__dmul_rn(a, w1), __dmul_rn(b2, w2)), inv));
    }
}

// The merge of lse [NH, Lq] (n entries): l = m + log(e^(l1 - m) + e^(l2 - m)) in double.
__global__ void attn_merge_lse_kernel(void *lse, const void *lse2, int ldt, int64_t n) {
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < n;
         k += (int64_t)gridDim.x * blockDim.x) {
        const double l1 = (double)load_f32(lse, ldt, k), l2 = (double)load_f32(lse2, ldt, k);
        if (l2 == -INFINITY) continue;
        if (l1 == -INFINITY) {
            store_f32(lse, ldt, k, (float)l2);
            continue;
        }
        const double m = l1 > l2 ? l1 : l2, w1 = exp(l1 - m), w2 = exp(l2 - m);
        store_f32(lse, ldt, k, (float)(m + log(w1 + w2)));
    }
}

// blocks for n elements, one per thread
int grid_elems(int64_t n) {
    const int64_t g = (n + kThreads - 1) / kThreads;
    return (int)(g > kMaxGrid ? kMaxGrid : (g < 1 ? 1 : g));
}

// blocks for R rows, one per block
int grid_rows(int64_t R) {
    return (int)(R > kMaxGrid ? kMaxGrid : (R < 1 ? 1 : R));
}

} // namespace

// ---- launchers ----

extern "C" int wr_cuda_layer_norm_launch(void *y, int ydt, const void *x, int xdt, const float *w,
                                         const float *b, int64_t R, int64_t D, float eps,
                                         cudaStream_t s) {
    if (R <= 0 || D <= 0) return (int)cudaSuccess;
    layer_norm_kernel<<<grid_rows(R), kThreads, 0, s>>>(y, ydt, x, xdt, w, b, R, D, eps);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_rms_norm_launch(void *y, const void *x, int dt, const float *w, int64_t R,
                                       int64_t D, float eps, cudaStream_t s) {
    if (R <= 0 || D <= 0) return (int)cudaSuccess;
    rms_norm_kernel<<<grid_rows(R), kThreads, 0, s>>>(y, x, dt, w, R, D, eps);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_rms_norm_channels_launch(void *y, const void *x, int dt, const float *gamma,
                                                int64_t C, int64_t P, float scale, cudaStream_t s) {
    if (C <= 0 || P <= 0) return (int)cudaSuccess;
    rms_norm_channels_kernel<<<grid_elems(P), kThreads, 0, s>>>(y, x, dt, gamma, C, P, scale);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_rope_launch(void *x, int xdt, const void *cos, const void *sin, int cdt,
                                   int64_t L, int64_t NH, int64_t P, cudaStream_t s) {
    const int64_t n = L * NH * P;
    if (L <= 0 || NH <= 0 || P <= 0) return (int)cudaSuccess;
    rope_kernel<<<grid_elems(n), kThreads, 0, s>>>(x, xdt, cos, sin, cdt, NH, P, n);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_attn_merge_launch(void *o, void *lse, const void *o2, const void *lse2,
                                         int odt, int ldt, int64_t Lq, int64_t NH, int64_t HD,
                                         cudaStream_t s) {
    if (Lq <= 0 || NH <= 0) return (int)cudaSuccess;
    const int64_t n = Lq * NH * HD, nl = Lq * NH;
    if (HD > 0) {
        attn_merge_o_kernel<<<grid_elems(n), kThreads, 0, s>>>(o, lse, o2, lse2, odt, ldt, Lq, NH,
                                                               HD, n);
        const cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return (int)e;
    }
    attn_merge_lse_kernel<<<grid_elems(nl), kThreads, 0, s>>>(lse, lse2, ldt, nl);
    return (int)cudaGetLastError();
}

// elementwise.cu — the CUDA twins of kernels/cpu/elementwise.c, blend.c, the layout half of
// patch.c (unpatchify, gather_rows) and conv.c's upsample2x: grid-stride loops over int64
// indices, f32 arithmetic in the CPU's order, activations loaded from F32 or BF16 and a BF16
// result rounded once to nearest-even (src/core/dtype.c's rule, NaN -> 0xFFFF). The launchers
// (elementwise_launch.h) run on the stream they are given and never synchronise.
#include <cuda_runtime.h>
#include <stdint.h>

#include "core/dtype.h"
#include "kernels/cuda/elementwise_launch.h"

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535 * 4;
constexpr int kGatherChunk = 512; // indices per gather launch, passed by value (2 KiB)
constexpr int kTile = 32;         // transpose tile (kTile x kTile), kTile x kRows threads
constexpr int kRows = 8;

unsigned grid_for(int64_t n) {
    int64_t g = (n + kThreads - 1) / kThreads;
    return (unsigned)(g > kMaxBlocks ? kMaxBlocks : (g < 1 ? 1 : g));
}

// ---- loads and stores (cast.cu's / dtype.c's bit rules) ----

__device__ __forceinline__ float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e == 0x1F) return __uint_as_float(sign | 0x7F800000u | (m ? 0x400000u | (m << 13) : 0));
    if (e == 0) {
        float v = (float)m * 0x1p-24f;
        return sign ? -v : v;
    }
    return __uint_as_float(sign | ((e + 112u) << 23) | (m << 13));
}

// any float dtype (gather_rows' table)
__device__ __forceinline__ float load_any(const void *src, int dtype, int64_t i) {
    switch (dtype) {
    case WR_DTYPE_F32:
        return ((const float *)src)[i];
    case WR_DTYPE_BF16:
        return __uint_as_float((uint32_t)((const uint16_t *)src)[i] << 16);
    case WR_DTYPE_F16:
        return f16_to_f32(((const uint16_t *)src)[i]);
    case WR_DTYPE_F8_E5M2:
        return f16_to_f32((uint16_t)(((const uint8_t *)src)[i] << 8));
    case WR_DTYPE_F8_E4M3: {
        uint8_t v = ((const uint8_t *)src)[i];
        uint32_t sign = (uint32_t)(v & 0x80u) << 24, e = (v >> 3) & 0xFu, m = v & 0x7u;
        if (e == 0xF && m == 0x7) return __uint_as_float(sign | 0x7FF00000u);
        if (e == 0) {
            float x = (float)m * 0x1p-9f;
            return sign ? -x : x;
        }
        return __uint_as_float(sign | ((e + 120u) << 23) | (m << 20));
    }
    case WR_DTYPE_F64:
        return (float)((const double *)src)[i];
    default:
        return __uint_as_float(0x7FC00000u);
    }
}

// an activation: F32 or BF16
__device__ __forceinline__ float load_act(const void *src, int dtype, int64_t i) {
    if (dtype == WR_DTYPE_BF16) return __uint_as_float((uint32_t)((const uint16_t *)src)[i] << 16);
    return ((const float *)src)[i];
}

__device__ __forceinline__ void store_act(void *dst, int dtype, int64_t i, float f) {
    if (dtype == WR_DTYPE_BF16) {
        uint32_t u = __float_as_uint(f);
        ((uint16_t *)dst)[i] = (u & 0x7FFFFFFFu) > 0x7F800000u
                                   ? (uint16_t)0xFFFFu
                                   : (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    } else {
        ((float *)dst)[i] = f;
    }
}

#define GRID_STRIDE(i, n)                                                                          \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n);                      \
         i += (int64_t)gridDim.x * blockDim.x)

// ---- activations ----

__global__ void gelu_tanh_kernel(void *y, int ydt, const void *x, int xdt, int64_t n) {
    const float k0 = 0.7978845608028654f; // sqrt(2/pi)
    GRID_STRIDE(i, n) {
        float v = load_act(x, xdt, i);
        float u = k0 * (v + 0.044715f * v * v * v);
        // 0.5 v (1 + tanh(u)) = v / (1 + e^(-2u)), as elementwise.c computes it
        store_act(y, ydt, i, v / (1.0f + expf(-2.0f * u)));
    }
}

__global__ void silu_kernel(void *y, int ydt, const void *x, int xdt, int64_t n) {
    GRID_STRIDE(i, n) {
        float v = load_act(x, xdt, i);
        store_act(y, ydt, i, v / (1.0f + expf(-v)));
    }
}

// ---- broadcasts, modulation, residuals ----

template <bool kMul>
__global__ void binary_kernel(void *y, int ydt, const void *a, int adt, const void *b, int bdt,
                              int64_t n, int64_t bn) {
    GRID_STRIDE(i, n) {
        float av = load_act(a, adt, i), bv = load_act(b, bdt, bn == n ? i : i % bn);
        store_act(y, ydt, i, kMul ? av * bv : av + bv);
    }
}

__global__ void modulate_kernel(void *y, int ydt, const void *x, int xdt, const float *scale,
                                const float *shift, int64_t n, int64_t D) {
    GRID_STRIDE(i, n) {
        const int64_t c = i % D;
        store_act(y, ydt, i, load_act(x, xdt, i) * (1.0f + scale[c]) + shift[c]);
    }
}

__global__ void gated_residual_kernel(void *x, int xdt, const void *a, int adt, const float *gate,
                                      int64_t n, int64_t D) {
    GRID_STRIDE(i, n) {
        float av = load_act(a, adt, i);
        store_act(x, xdt, i, load_act(x, xdt, i) + (gate ? av * gate[i % D] : av));
    }
}

__global__ void clamp_kernel(void *y, int ydt, const void *x, int xdt, float lo, float hi,
                             int64_t n) {
    GRID_STRIDE(i, n) { // torch.clamp: NaN stays NaN (no fminf / fmaxf)
        float v = load_act(x, xdt, i);
        v = v < lo ? lo : v;
        store_act(y, ydt, i, v > hi ? hi : v);
    }
}

__global__ void channel_affine_kernel(void *y, int ydt, const void *x, int xdt, const float *scale,
                                      const float *shift, int64_t n, int64_t P) {
    GRID_STRIDE(i, n) {
        const int64_t c = i / P;
        store_act(y, ydt, i, load_act(x, xdt, i) * scale[c] + shift[c]);
    }
}

// ---- data movement ----

// y [N, M] = x [M, N]^T through a shared tile: reads and writes both along rows. One block per
// tile (grid-stride over the tiles); the loop bound is the same for every thread of a block.
__global__ void transpose_kernel(void *y, int ydt, const void *x, int xdt, int64_t M, int64_t N) {
    __shared__ float tile[kTile][kTile + 1];
    const int64_t tiles_n = (N + kTile - 1) / kTile, tiles = ((M + kTile - 1) / kTile) * tiles_n;
    const int tx = threadIdx.x, ty = threadIdx.y;
    for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
        const int64_t i0 = (t / tiles_n) * kTile, j0 = (t % tiles_n) * kTile;
        for (int k = ty; k < kTile; k += kRows) {
            const int64_t i = i0 + k, j = j0 + tx;
            if (i < M && j < N) tile[k][tx] = load_act(x, xdt, i * N + j);
        }
        __syncthreads();
        for (int k = ty; k < kTile; k += kRows) {
            const int64_t j = j0 + k, i = i0 + tx;
            if (j < N && i < M) store_act(y, ydt, j * M + i, tile[tx][k]);
        }
        __syncthreads();
    }
}

__global__ void copy2d_kernel(float *dst, int64_t dld, const float *src, int64_t sld, int64_t rows,
                              int64_t cols) {
    GRID_STRIDE(i, rows * cols) {
        const int64_t r = i / cols, c = i % cols;
        dst[r * dld + c] = src[r * sld + c];
    }
}

// y [CT, 2H, 2W]: y[ct, oh, ow] = x[ct, oh / 2, ow / 2]
__global__ void upsample2x_kernel(void *y, int ydt, const void *x, int xdt, int64_t CT, int64_t H,
                                  int64_t W) {
    const int64_t W2 = 2 * W, H2 = 2 * H;
    GRID_STRIDE(o, CT * H2 * W2) {
        const int64_t ow = o % W2, oh = (o / W2) % H2, ct = o / (H2 * W2);
        store_act(y, ydt, o, load_act(x, xdt, (ct * H + oh / 2) * W + ow / 2));
    }
}

struct gather_idx {
    int32_t v[kGatherChunk];
};

// y rows r0 .. r0 + nr - 1 = table rows idx.v[0 .. nr - 1]
__global__ void gather_rows_kernel(void *y, int ydt, const void *table, int tdt, int64_t D,
                                   int64_t r0, int64_t nr, gather_idx idx) {
    GRID_STRIDE(o, nr * D) {
        const int64_t r = o / D, d = o % D;
        store_act(y, ydt, (r0 + r) * D + d, load_any(table, tdt, (int64_t)idx.v[r] * D + d));
    }
}

// out[c, pt*f + a, ph*h + i, pw*w + j] = y[n(f, h, w), ((a*ph + i)*pw + j)*C + c], one thread
// per output element (patch.c)
__global__ void unpatchify_kernel(void *out, int odt, const void *y, int ydt, int64_t C, int64_t F,
                                  int64_t H, int64_t W, int64_t pt, int64_t ph, int64_t pw) {
    const int64_t Hp = H / ph, Wp = W / pw, P = pt * ph * pw * C;
    GRID_STRIDE(o, C * F * H * W) {
        const int64_t ow = o % W, oh = (o / W) % H, of = (o / (W * H)) % F, c = o / (W * H * F);
        const int64_t f = of / pt, a = of % pt, h = oh / ph, i = oh % ph, w = ow / pw, j = ow % pw;
        const int64_t n = (f * Hp + h) * Wp + w;
        store_act(out, odt, o, load_act(y, ydt, n * P + ((a * ph + i) * pw + j) * C + c));
    }
}

// dst [P, Ld, Q], a [P, La, Q]: dst[p, i, q] = a[p, La - e + i, q] * wa + dst[p, i, q] * wb for
// i < e, wa = (float)(1 - i/e), wb = (float)(i/e) in double (blend.c)
__global__ void blend_kernel(void *dst, int ddt, const void *a, int adt, int64_t P, int64_t Ld,
                             int64_t Q, int64_t La, int64_t e) {
    GRID_STRIDE(o, P * e * Q) {
        const int64_t q = o % Q, i = (o / Q) % e, p = o / (Q * e);
        const float wa = (float)(1.0 - (double)i / (double)e), wb = (float)((double)i / (double)e);
        const int64_t di = (p * Ld + i) * Q + q;
        const float sv = load_act(a, adt, (p * La + La - e + i) * Q + q);
        store_act(dst, ddt, di, sv * wa + load_act(dst, ddt, di) * wb);
    }
}

#undef GRID_STRIDE

} // namespace

// ---- launchers ----

extern "C" int wr_cuda_gelu_tanh_launch(void *y, int ydt, const void *x, int xdt, int64_t n,
                                        cudaStream_t s) {
    if (n <= 0) return (int)cudaSuccess;
    gelu_tanh_kernel<<<grid_for(n), kThreads, 0, s>>>(y, ydt, x, xdt, n);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_silu_launch(void *y, int ydt, const void *x, int xdt, int64_t n,
                                   cudaStream_t s) {
    if (n <= 0) return (int)cudaSuccess;
    silu_kernel<<<grid_for(n), kThreads, 0, s>>>(y, ydt, x, xdt, n);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_add_launch(void *y, int ydt, const void *a, int adt, const void *b, int bdt,
                                  int64_t n, int64_t bn, cudaStream_t s) {
    if (n <= 0 || bn <= 0) return (int)cudaSuccess;
    binary_kernel<false><<<grid_for(n), kThreads, 0, s>>>(y, ydt, a, adt, b, bdt, n, bn);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_mul_launch(void *y, int ydt, const void *a, int adt, const void *b, int bdt,
                                  int64_t n, int64_t bn, cudaStream_t s) {
    if (n <= 0 || bn <= 0) return (int)cudaSuccess;
    binary_kernel<true><<<grid_for(n), kThreads, 0, s>>>(y, ydt, a, adt, b, bdt, n, bn);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_modulate_launch(void *y, int ydt, const void *x, int xdt, const float *scale,
                                       const float *shift, int64_t n, int64_t D, cudaStream_t s) {
    if (n <= 0 || D <= 0) return (int)cudaSuccess;
    modulate_kernel<<<grid_for(n), kThreads, 0, s>>>(y, ydt, x, xdt, scale, shift, n, D);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_gated_residual_launch(void *x, int xdt, const void *a, int adt,
                                             const float *gate, int64_t n, int64_t D,
                                             cudaStream_t s) {
    if (n <= 0 || D <= 0) return (int)cudaSuccess;
    gated_residual_kernel<<<grid_for(n), kThreads, 0, s>>>(x, xdt, a, adt, gate, n, D);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_clamp_launch(void *y, int ydt, const void *x, int xdt, float lo, float hi,
                                    int64_t n, cudaStream_t s) {
    if (n <= 0) return (int)cudaSuccess;
    clamp_kernel<<<grid_for(n), kThreads, 0, s>>>(y, ydt, x, xdt, lo, hi, n);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_channel_affine_launch(void *y, int ydt, const void *x, int xdt,
                                             const float *scale, const float *shift, int64_t n,
                                             int64_t P, cudaStream_t s) {
    if (n <= 0 || P <= 0) return (int)cudaSuccess;
    channel_affine_kernel<<<grid_for(n), kThreads, 0, s>>>(y, ydt, x, xdt, scale, shift, n, P);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_transpose_launch(void *y, int ydt, const void *x, int xdt, int64_t M,
                                        int64_t N, cudaStream_t s) {
    if (M <= 0 || N <= 0) return (int)cudaSuccess;
    const int64_t tiles = ((M + kTile - 1) / kTile) * ((N + kTile - 1) / kTile);
    const unsigned grid = (unsigned)(tiles > kMaxBlocks ? kMaxBlocks : tiles);
    transpose_kernel<<<grid, dim3(kTile, kRows), 0, s>>>(y, ydt, x, xdt, M, N);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_copy2d_launch(float *dst, int64_t dld, const float *src, int64_t sld,
                                     int64_t rows, int64_t cols, cudaStream_t s) {
    if (rows <= 0 || cols <= 0) return (int)cudaSuccess;
    copy2d_kernel<<<grid_for(rows * cols), kThreads, 0, s>>>(dst, dld, src, sld, rows, cols);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_upsample2x_launch(void *y, int ydt, const void *x, int xdt, int64_t CT,
                                         int64_t H, int64_t W, cudaStream_t s) {
    if (CT <= 0 || H <= 0 || W <= 0) return (int)cudaSuccess;
    upsample2x_kernel<<<grid_for(CT * 4 * H * W), kThreads, 0, s>>>(y, ydt, x, xdt, CT, H, W);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_gather_rows_launch(void *y, int ydt, const void *table, int table_dt,
                                          int64_t D, const int32_t *idx, int64_t n,
                                          cudaStream_t s) {
    if (n <= 0 || D <= 0) return (int)cudaSuccess;
    for (int64_t r0 = 0; r0 < n; r0 += kGatherChunk) {
        const int64_t nr = n - r0 < kGatherChunk ? n - r0 : kGatherChunk;
        gather_idx chunk;
        for (int64_t r = 0; r < kGatherChunk; r++) chunk.v[r] = r < nr ? idx[r0 + r] : 0;
        gather_rows_kernel<<<grid_for(nr * D), kThreads, 0, s>>>(y, ydt, table, table_dt, D, r0, nr,
                                                                 chunk);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return (int)e;
    }
    return (int)cudaSuccess;
}

extern "C" int wr_cuda_unpatchify_launch(void *out, int odt, const void *y, int ydt, int64_t C,
                                         int64_t F, int64_t H, int64_t W, int64_t pt, int64_t ph,
                                         int64_t pw, cudaStream_t s) {
    if (C <= 0 || F <= 0 || H <= 0 || W <= 0 || pt <= 0 || ph <= 0 || pw <= 0)
        return (int)cudaSuccess;
    unpatchify_kernel<<<grid_for(C * F * H * W), kThreads, 0, s>>>(out, odt, y, ydt, C, F, H, W, pt,
                                                                   ph, pw);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_blend_launch(void *dst, int ddt, const void *a, int adt, int64_t P,
                                    int64_t Ld, int64_t Q, int64_t La, int64_t e, cudaStream_t s) {
    if (P <= 0 || Q <= 0 || e <= 0) return (int)cudaSuccess;
    blend_kernel<<<grid_for(P * e * Q), kThreads, 0, s>>>(dst, ddt, a, adt, P, Ld, Q, La, e);
    return (int)cudaGetLastError();
}

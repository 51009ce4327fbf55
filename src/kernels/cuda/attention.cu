// attention.cu — softmax(q k^T * scale + bias, masked) v per head with an online softmax
// (the CUDA twin of kernels/cpu/attention.c): no Lq x Lk matrix, f32 arithmetic, q/k/v/out
// F32 or BF16, an optional log-sum-exp per (head, query) for ring attention's merge.
//
// A block of kWarps warps takes kWarps queries of one head; key tiles of kTile keys (K and V
// as f32 in shared memory, K rows padded by one float so that the 32 lanes reading 32 keys hit
// 32 banks) are shared by its warps. Per tile, lane j scores key j against the warp's query,
// the warp folds the tile into its running (max, sum) as the CPU folds a key block, and each
// lane accumulates its share of the head dimension (d = lane, lane + 32, ...; HD <= 128) with
// the tile's probabilities broadcast by shuffles. A masked key (key_mask 0, or at or past
// k_valid) has score -inf and weight exactly 0; a query with no key gets zeros and lse -inf.
//
// This is the plain (CUDA-core) kernel: correct at every shape the models use; the
// tensor-core (mma.sync) version replaces its inner products once it can be measured on a GPU.
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "core/dtype.h"
#include "kernels/cuda/attention_launch.h"

namespace {

constexpr int kWarps = 8;   // queries per block
constexpr int kTile = 32;   // keys per tile (one per lane)
constexpr int kMaxHD = 128; // head dims a lane's registers hold (4 per lane)

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

__global__ void __launch_bounds__(kWarps * 32)
    attention_kernel(void *out, int odt, float *lse, const void *q, int qdt, const void *k, int kdt,
                     const void *v, int vdt, int64_t Lq, int64_t Lk, int NH, int HD, float scale,
                     const uint8_t *mask, int64_t kv, const float *bias) {
    extern __shared__ float smem[];
    const int kst = HD + 1;       // padded K row
    float *ks = smem;             // [kTile][HD + 1]
    float *vs = ks + kTile * kst; // [kTile][HD]
    float *qs = vs + kTile * HD;  // [kWarps][HD]
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int h = blockIdx.y;
    const int64_t i = (int64_t)blockIdx.x * kWarps + warp; // this warp's query
    const int64_t ld = (int64_t)NH * HD;
    const bool active = i < Lq;
    for (int d = lane; d < HD; d += 32)
        qs[warp * HD + d] = active ? load_act(q, qdt, i * ld + (int64_t)h * HD + d) : 0.0f;
    float acc[kMaxHD / 32];
#pragma unroll
    for (int c = 0; c < kMaxHD / 32; c++) acc[c] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    const int64_t nb = Lq + Lk - 1;
    for (int64_t j0 = 0; j0 < kv; j0 += kTile) {
        const int nk = kv - j0 < kTile ? (int)(kv - j0) : kTile;
        __syncthreads(); // the previous tile's readers are done (and qs is written)
        for (int t = threadIdx.x; t < nk * HD; t += blockDim.x) {
            const int jj = t / HD, d = t % HD;
            const int64_t g = (j0 + jj) * ld + (int64_t)h * HD + d;
            ks[jj * kst + d] = load_act(k, kdt, g);
            vs[jj * HD + d] = load_act(v, vdt, g);
        }
        __syncthreads();
        if (!active) continue;
        // lane j: the score of key j0 + j
        float s = -INFINITY;
        if (lane < nk) {
            const float *kr = ks + lane * kst, *qr = qs + warp * HD;
            float dot = 0.0f;
            for (int d = 0; d < HD; d++) dot = fmaf(qr[d], kr[d], dot);
            s = dot * scale;
            if (bias) s += bias[(int64_t)h * nb + (j0 + lane - i + Lq - 1)];
            if (mask && !mask[j0 + lane]) s = -INFINITY;
        }
        float mx = s;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xFFFFFFFFu, mx, o));
        mx = fmaxf(mx, m);
        if (mx == -INFINITY) continue; // every key so far masked: nothing to accumulate
        const float alpha = m == -INFINITY ? 0.0f : expf(m - mx);
        const float p = s == -INFINITY ? 0.0f : expf(s - mx);
        float sum = p;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xFFFFFFFFu, sum, o);
        l = l * alpha + sum;
        m = mx;
#pragma unroll
        for (int c = 0; c < kMaxHD / 32; c++) acc[c] *= alpha;
        for (int j = 0; j < nk; j++) {
            const float pj = __shfl_sync(0xFFFFFFFFu, p, j);
#pragma unroll
            for (int c = 0; c < kMaxHD / 32; c++) {
                const int d = lane + 32 * c;
                if (d < HD) acc[c] = fmaf(pj, vs[j * HD + d], acc[c]);
            }
        }
    }
    if (!active) return;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int c = 0; c < kMaxHD / 32; c++) {
        const int d = lane + 32 * c;
        if (d < HD) store_act(out, odt, i * ld + (int64_t)h * HD + d, acc[c] * inv);
    }
    if (lse && lane == 0) lse[(int64_t)h * Lq + i] = l > 0.0f ? m + logf(l) : -INFINITY;
}

// out = 0 and lse = -inf for queries that see no key at all (kv == 0)
__global__ void attention_empty_kernel(void *out, int odt, float *lse, int64_t n, int64_t nl) {
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < n;
         t += (int64_t)gridDim.x * blockDim.x)
        store_act(out, odt, t, 0.0f);
    if (lse)
        for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < nl;
             t += (int64_t)gridDim.x * blockDim.x)
            lse[t] = -INFINITY;
}

} // namespace

extern "C" int wr_cuda_attention_launch(void *out, int odt, float *lse, const void *q, int qdt,
                                        const void *k, int kdt, const void *v, int vdt, int64_t Lq,
                                        int64_t Lk, int NH, int HD, float scale,
                                        const uint8_t *mask, int64_t kv, const float *bias,
                                        void *stream) {
    cudaStream_t st = (cudaStream_t)stream;
    if (Lq <= 0 || NH <= 0 || HD <= 0) return cudaSuccess;
    if (HD > kMaxHD || Lq / kWarps + 1 > 0x7FFFFFFF || NH > 65535) return cudaErrorInvalidValue;
    if (kv <= 0) {
        const int64_t n = Lq * NH * HD;
        int64_t g = (n + 255) / 256;
        attention_empty_kernel<<<(unsigned)(g > 65535 ? 65535 : g), 256, 0, st>>>(out, odt, lse, n,
                                                                                  NH * Lq);
        return (int)cudaGetLastError();
    }
    const size_t shm = sizeof(float) * (size_t)(kTile * (HD + 1) + kTile * HD + kWarps * HD);
    const dim3 grid((unsigned)((Lq + kWarps - 1) / kWarps), (unsigned)NH);
    attention_kernel<<<grid, kWarps * 32, shm, st>>>(out, odt, lse, q, qdt, k, kdt, v, vdt, Lq, Lk,
                                                     NH, HD, scale, mask, kv, bias);
    return (int)cudaGetLastError();
}

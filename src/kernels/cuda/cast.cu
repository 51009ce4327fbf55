// cast.cu — dtype cast kernels with the bit-exact rules of src/core/dtype.c (which documents
// them); integer-only rounding so results do not depend on the device's FP modes.
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernels/cuda/cuda_device.h"

namespace {

__device__ __forceinline__ uint32_t round_to_format(uint32_t a, int mbits, int bias) {
    if ((a >> 23) == 0) return 0;
    int e = (int)(a >> 23) - 127;
    uint32_t frac = a & 0x7FFFFFu;
    uint32_t m = frac | 0x800000u;
    int shift;
    uint32_t base;
    if (e >= 1 - bias) {
        shift = 23 - mbits;
        base = (uint32_t)(e + bias) << mbits;
        m = frac;
    } else {
        shift = 24 - bias - mbits - e;
        base = 0;
        if (shift >= 25) return 0;
    }
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return base + q;
}

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

__device__ __forceinline__ float load_as_f32(const void *src, int dtype, int64_t i) {
    switch (dtype) {
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
    default:
        return __uint_as_float(0x7FC00000u);
    }
}

__device__ __forceinline__ void store_from_f32(void *dst, int dtype, int64_t i, float f) {
    uint32_t u = __float_as_uint(f), a = u & 0x7FFFFFFFu;
    switch (dtype) {
    case WR_DTYPE_BF16:
        ((uint16_t *)dst)[i] =
            a > 0x7F800000u ? 0xFFFFu : (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
        break;
    case WR_DTYPE_F16: {
        uint16_t s = (uint16_t)((u >> 16) & 0x8000u);
        uint16_t r = a > 0x7F800000u    ? (uint16_t)(0x7E00u | ((a >> 13) & 0x3FFu))
                     : a >= 0x47800000u ? (uint16_t)0x7C00u
                                        : (uint16_t)round_to_format(a, 10, 15);
        ((uint16_t *)dst)[i] = s | r;
        break;
    }
    case WR_DTYPE_F8_E4M3: {
        uint8_t s = (uint8_t)((u >> 24) & 0x80u);
        uint32_t r = a > 0x7F800000u ? 0x7Fu : a >= 0x43E80000u ? 0x7Eu : round_to_format(a, 3, 7);
        ((uint8_t *)dst)[i] = s | (uint8_t)r;
        break;
    }
    case WR_DTYPE_F8_E5M2: {
        uint8_t s = (uint8_t)((u >> 24) & 0x80u);
        uint8_t r = a > 0x7F800000u    ? 0x7Fu
                    : a >= 0x47800000u ? 0x7Cu
                                       : (uint8_t)round_to_format(a, 2, 15);
        ((uint8_t *)dst)[i] = s | r;
        break;
    }
    default:
        break;
    }
}

__global__ void cast_to_f32_kernel(float *dst, const void *src, int dtype, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = load_as_f32(src, dtype, i);
}

__global__ void cast_from_f32_kernel(void *dst, int dtype, const float *src, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        store_from_f32(dst, dtype, i, src[i]);
}

// any float dtype to any other through f32 (an F32 side moves as is)
__global__ void cast_kernel(void *dst, int dst_dtype, const void *src, int src_dtype, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float f =
            src_dtype == WR_DTYPE_F32 ? ((const float *)src)[i] : load_as_f32(src, src_dtype, i);
        if (dst_dtype == WR_DTYPE_F32)
            ((float *)dst)[i] = f;
        else
            store_from_f32(dst, dst_dtype, i, f);
    }
}

int grid_for(int64_t n) {
    int64_t g = (n + 255) / 256;
    return (int)(g > 65535 ? 65535 : (g < 1 ? 1 : g));
}

} // namespace

extern "C" int wr_cuda_cast_to_f32_launch(float *dst, const void *src, int src_dtype, int64_t n) {
    if (n <= 0) return cudaSuccess;
    cast_to_f32_kernel<<<grid_for(n), 256>>>(dst, src, src_dtype, n);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_cast_from_f32_launch(void *dst, int dst_dtype, const float *src, int64_t n) {
    if (n <= 0) return cudaSuccess;
    cast_from_f32_kernel<<<grid_for(n), 256>>>(dst, dst_dtype, src, n);
    return (int)cudaGetLastError();
}

extern "C" int wr_cuda_cast_launch(void *dst, int dst_dtype, const void *src, int src_dtype,
                                   int64_t n, void *stream) {
    if (n <= 0) return cudaSuccess;
    cast_kernel<<<grid_for(n), 256, 0, (cudaStream_t)stream>>>(dst, dst_dtype, src, src_dtype, n);
    return (int)cudaGetLastError();
}

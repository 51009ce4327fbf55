/* cuda_device.c — CUDA runtime probe and cast dispatch (host side, C11). */
#include "kernels/cuda/cuda_device.h"

#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

wr_status wr_cuda_probe(wr_device_info *out) {
    memset(out, 0, sizeof *out);
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice ||
        e == cudaErrorInitializationError || e == cudaErrorCompatNotSupportedOnDevice) {
        (void)cudaGetLastError();
        return WR_FAIL(WR_ERR_NO_DEVICE, "no usable CUDA device: %s", cudaGetErrorString(e));
    }
    if (e != cudaSuccess)
        return WR_FAIL(WR_ERR_DEVICE, "cudaGetDeviceCount failed: %s", cudaGetErrorString(e));
    if (n == 0) return WR_FAIL(WR_ERR_NO_DEVICE, "no CUDA device is visible");
    struct cudaDeviceProp p;
    e = cudaGetDeviceProperties(&p, 0);
    if (e != cudaSuccess)
        return WR_FAIL(WR_ERR_DEVICE, "cudaGetDeviceProperties failed: %s", cudaGetErrorString(e));
    out->count = n;
    snprintf(out->name, sizeof out->name, "%s", p.name);
    out->cc_major = p.major;
    out->cc_minor = p.minor;
    out->total_bytes = p.totalGlobalMem;
    return WR_OK;
}

static int cast_supported(wr_dtype t) {
    return t == WR_DTYPE_BF16 || t == WR_DTYPE_F16 || t == WR_DTYPE_F8_E4M3 ||
           t == WR_DTYPE_F8_E5M2;
}

wr_status wr_cuda_convert(void *dst, wr_dtype dt, const void *src, wr_dtype st, int64_t n) {
    int e;
    if (dt == WR_DTYPE_F32 && cast_supported(st))
        e = wr_cuda_cast_to_f32_launch(dst, src, (int)st, n);
    else if (st == WR_DTYPE_F32 && cast_supported(dt))
        e = wr_cuda_cast_from_f32_launch(dst, (int)dt, src, n);
    else
        return WR_FAIL(WR_ERR_UNSUPPORTED, "CUDA conversion from %s to %s is not supported",
                       wr_dtype_name(st), wr_dtype_name(dt));
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    if (e != cudaSuccess)
        return WR_FAIL(WR_ERR_DEVICE, "CUDA cast %s -> %s of %lld elements failed: %s",
                       wr_dtype_name(st), wr_dtype_name(dt), (long long)n,
                       cudaGetErrorString((cudaError_t)e));
    return WR_OK;
}

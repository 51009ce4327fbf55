/* backend_cuda.c — the CUDA backend's vtable: device memory and copies through the CUDA
 * runtime (host glue in C11). Op slots are NULL for now (see cuda_device.h). */
#include <cuda_runtime.h>
#include <stdlib.h>

#include "kernels/cuda/cuda_device.h"

#define CUDA_TRY(call, what)                                                                       \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return WR_FAIL(e_ == cudaErrorMemoryAllocation ? WR_ERR_OOM_DEVICE : WR_ERR_DEVICE,    \
                           "%s: %s", what, cudaGetErrorString(e_));                                \
    } while (0)

static wr_status alloc_cuda(wr_backend *be, void **out, size_t nbytes) {
    (void)be;
    *out = NULL;
    if (nbytes == 0) return WR_OK;
    cudaError_t e = cudaMalloc(out, nbytes);
    if (e != cudaSuccess) {
        *out = NULL;
        (void)cudaGetLastError();
        return WR_FAIL(e == cudaErrorMemoryAllocation ? WR_ERR_OOM_DEVICE : WR_ERR_DEVICE,
                       "cudaMalloc of %.3f GiB failed: %s", (double)nbytes / (1024.0 * 1024 * 1024),
                       cudaGetErrorString(e));
    }
    return WR_OK;
}

static void free_cuda(wr_backend *be, void *p) {
    (void)be;
    if (p) cudaFree(p);
}

static wr_status upload_cuda(wr_backend *be, void *dst, const void *src, size_t n) {
    (void)be;
    CUDA_TRY(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice), "host-to-device copy");
    return WR_OK;
}

static wr_status download_cuda(wr_backend *be, void *dst, const void *src, size_t n) {
    (void)be;
    CUDA_TRY(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost), "device-to-host copy");
    return WR_OK;
}

static wr_status copy_cuda(wr_backend *be, void *dst, const void *src, size_t n) {
    (void)be;
    CUDA_TRY(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToDevice), "device-to-device copy");
    return WR_OK;
}

static wr_status memset0_cuda(wr_backend *be, void *dst, size_t n) {
    (void)be;
    CUDA_TRY(cudaMemset(dst, 0, n), "cudaMemset");
    return WR_OK;
}

static wr_status sync_cuda(wr_backend *be) {
    (void)be;
    CUDA_TRY(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    return WR_OK;
}

static const wr_backend_iface cuda_iface = {
    .alloc = alloc_cuda,
    .free = free_cuda,
    .upload = upload_cuda,
    .download = download_cuda,
    .copy = copy_cuda,
    .memset0 = memset0_cuda,
    .sync = sync_cuda,
    /* op slots: NULL until the CUDA kernels land */
};

wr_status wr_backend_cuda_init(wr_backend *be, int threads) {
    wr_device_info di;
    WR_TRY(wr_cuda_probe(&di));
    CUDA_TRY(cudaSetDevice(0), "cudaSetDevice(0)");
    be->iface = &cuda_iface;
    be->kind = WR_BACKEND_CUDA;
    be->threads = threads;
    return WR_OK;
}

void wr_backend_cuda_release(wr_backend *be) {
    (void)be;
}

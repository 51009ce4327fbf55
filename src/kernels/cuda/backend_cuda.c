/* backend_cuda.c — the CUDA backend's vtable: device memory, copies through the CUDA runtime,
 * and the copy stream the vram layer stages weights through (pinned host buffers, async
 * uploads, an event per staging buffer); host glue in C11. Op slots are NULL for now (see
 * cuda_device.h). */
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

/* The copy stream: one non-blocking stream per backend and an event per staging buffer, made by
 * the thread that first copies (the vram layer's copy thread, which must select the device). */
typedef struct cuda_impl {
    int device;
    cudaStream_t copy;
    cudaEvent_t done[2];
    int ready;
} cuda_impl;

static wr_status copy_stream(wr_backend *be, cuda_impl **out) {
    cuda_impl *ci = be->impl;
    CUDA_TRY(cudaSetDevice(ci->device), "cudaSetDevice (copy thread)");
    if (!ci->ready) {
        CUDA_TRY(cudaStreamCreateWithFlags(&ci->copy, cudaStreamNonBlocking), "copy stream");
        for (int k = 0; k < 2; k++)
            CUDA_TRY(cudaEventCreateWithFlags(&ci->done[k], cudaEventDisableTiming), "copy event");
        ci->ready = 1;
    }
    *out = ci;
    return WR_OK;
}

static wr_status host_alloc_cuda(wr_backend *be, void **out, size_t n) {
    (void)be;
    *out = NULL;
    if (n == 0) return WR_OK;
    cudaError_t e = cudaHostAlloc(out, n, cudaHostAllocDefault);
    if (e != cudaSuccess) {
        *out = NULL;
        (void)cudaGetLastError();
        return WR_FAIL(WR_ERR_OOM_HOST, "cudaHostAlloc of %.1f MiB (pinned staging) failed: %s",
                       (double)n / 1048576.0, cudaGetErrorString(e));
    }
    return WR_OK;
}

static void host_free_cuda(wr_backend *be, void *p) {
    (void)be;
    if (p) cudaFreeHost(p);
}

static wr_status upload_async_cuda(wr_backend *be, void *dst, const void *src, size_t n, int buf) {
    cuda_impl *ci = NULL;
    WR_TRY(copy_stream(be, &ci));
    CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, ci->copy), "staged upload");
    CUDA_TRY(cudaEventRecord(ci->done[buf & 1], ci->copy), "cudaEventRecord (copy stream)");
    return WR_OK;
}

static wr_status upload_wait_cuda(wr_backend *be, int buf) {
    cuda_impl *ci = NULL;
    WR_TRY(copy_stream(be, &ci));
    if (buf < 0)
        CUDA_TRY(cudaStreamSynchronize(ci->copy), "cudaStreamSynchronize (copy stream)");
    else
        CUDA_TRY(cudaEventSynchronize(ci->done[buf & 1]), "cudaEventSynchronize (copy stream)");
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
    .host_alloc = host_alloc_cuda,
    .host_free = host_free_cuda,
    .upload_async = upload_async_cuda,
    .upload_wait = upload_wait_cuda,
    /* op slots: NULL until the CUDA kernels land */
};

wr_status wr_backend_cuda_init(wr_backend *be, int threads) {
    wr_device_info di;
    WR_TRY(wr_cuda_probe(&di));
    if (be->device < 0 || be->device >= di.count)
        return WR_FAIL(WR_ERR_NO_DEVICE, "CUDA device %d: %d device(s) are visible", be->device,
                       di.count);
    CUDA_TRY(cudaSetDevice(be->device), "cudaSetDevice");
    cuda_impl *ci = calloc(1, sizeof *ci);
    if (ci == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    ci->device = be->device;
    be->impl = ci;
    be->iface = &cuda_iface;
    be->kind = WR_BACKEND_CUDA;
    be->threads = threads;
    return WR_OK;
}

void *wr_cuda_compute_stream(wr_backend *be) {
    (void)be;
    return NULL; /* the legacy default stream (cudaMemcpy's) until the backend has its own */
}

void wr_backend_cuda_release(wr_backend *be) {
    cuda_impl *ci = be->impl;
    if (ci == NULL) return;
    if (ci->ready) {
        (void)cudaStreamSynchronize(ci->copy);
        for (int k = 0; k < 2; k++) (void)cudaEventDestroy(ci->done[k]);
        (void)cudaStreamDestroy(ci->copy);
    }
    free(ci);
    be->impl = NULL;
}

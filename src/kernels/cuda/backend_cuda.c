/* backend_cuda.c — the CUDA backend's vtable: device memory, copies through the CUDA runtime,
 * the copy stream the vram layer stages weights through (pinned host buffers, async uploads,
 * an event per staging buffer), and the op slots (cuda_ops.h: each family's kernels and glue
 * in its own files); host glue in C11. */
#include <cuda_runtime.h>
#include <stdlib.h>

#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_ops.h"

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

/* The copy stream: one non-blocking stream per backend and an event per staging buffer, made by
 * the thread that first copies (the vram layer's copy thread, which must select the device). */
typedef struct cuda_impl {
    int device;
    cudaStream_t compute; /* every op, memset and synchronous copy, in issue order */
    cudaStream_t copy;
    cudaEvent_t done[2];
    int ready;
    wr_cuda_gemm *gemm; /* cuBLASLt (matmul_cuda.c) */
} cuda_impl;

static cudaStream_t compute_of(wr_backend *be) {
    return ((cuda_impl *)be->impl)->compute;
}

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

/* ---- memory calls, stream-ordered on the compute stream ---- */

/* synchronous ones finish before they return (the host buffer may be reused at once) */
static wr_status upload_cuda(wr_backend *be, void *dst, const void *src, size_t n) {
    cudaStream_t s = compute_of(be);
    CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, s), "host-to-device copy");
    CUDA_TRY(cudaStreamSynchronize(s), "host-to-device copy (sync)");
    return WR_OK;
}

static wr_status download_cuda(wr_backend *be, void *dst, const void *src, size_t n) {
    cudaStream_t s = compute_of(be);
    CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, s), "device-to-host copy");
    CUDA_TRY(cudaStreamSynchronize(s), "device-to-host copy (sync)");
    return WR_OK;
}

static wr_status download_async_cuda(wr_backend *be, void *dst, const void *src, size_t n) {
    CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, compute_of(be)),
             "async device-to-host copy");
    return WR_OK;
}

static wr_status copy_cuda(wr_backend *be, void *dst, const void *src, size_t n) {
    CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, compute_of(be)),
             "device-to-device copy");
    return WR_OK;
}

static wr_status memset0_cuda(wr_backend *be, void *dst, size_t n) {
    CUDA_TRY(cudaMemsetAsync(dst, 0, n, compute_of(be)), "cudaMemsetAsync");
    return WR_OK;
}

static wr_status copy3d_cuda(wr_backend *be, const wr_copy3d *c) {
    cudaStream_t s = compute_of(be);
    const enum cudaMemcpyKind kind = c->dir == WR_COPY_H2D   ? cudaMemcpyHostToDevice
                                     : c->dir == WR_COPY_D2H ? cudaMemcpyDeviceToHost
                                                             : cudaMemcpyDeviceToDevice;
    const size_t dp = c->rows > 1 ? c->dpitch : c->width, sp = c->rows > 1 ? c->spitch : c->width;
    /* planes that continue the row pattern are one 2-D copy; else one per plane */
    const int flat =
        c->planes == 1 || (c->dplane == (size_t)c->rows * dp && c->splane == (size_t)c->rows * sp);
    if (flat)
        CUDA_TRY(cudaMemcpy2DAsync(c->dst, dp, c->src, sp, c->width, (size_t)(c->rows * c->planes),
                                   kind, s),
                 "strided copy");
    else
        for (int64_t p = 0; p < c->planes; p++)
            CUDA_TRY(cudaMemcpy2DAsync((char *)c->dst + (size_t)p * c->dplane, dp,
                                       (const char *)c->src + (size_t)p * c->splane, sp, c->width,
                                       (size_t)c->rows, kind, s),
                     "strided copy");
    if (c->dir != WR_COPY_D2D) CUDA_TRY(cudaStreamSynchronize(s), "strided copy (sync)");
    return WR_OK;
}

static wr_status sync_cuda(wr_backend *be) {
    CUDA_TRY(cudaSetDevice(((cuda_impl *)be->impl)->device), "cudaSetDevice");
    CUDA_TRY(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    return WR_OK;
}

/* ---- events ---- */

static cudaStream_t stream_of(wr_backend *be, int stream, wr_status *st) {
    cuda_impl *ci = be->impl;
    *st = WR_OK;
    if (stream == WR_STREAM_COMPUTE) return ci->compute;
    if (!ci->ready) *st = copy_stream(be, &ci);
    return ci->copy;
}

static wr_status event_create_cuda(wr_backend *be, wr_event **out) {
    (void)be;
    cudaEvent_t e;
    CUDA_TRY(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    *out = (wr_event *)e;
    return WR_OK;
}

static void event_free_cuda(wr_backend *be, wr_event *ev) {
    (void)be;
    (void)cudaEventDestroy((cudaEvent_t)ev);
}

static wr_status event_record_cuda(wr_backend *be, wr_event *ev, int stream) {
    wr_status st;
    cudaStream_t s = stream_of(be, stream, &st);
    WR_TRY(st);
    CUDA_TRY(cudaEventRecord((cudaEvent_t)ev, s), "cudaEventRecord");
    return WR_OK;
}

static wr_status stream_wait_cuda(wr_backend *be, int stream, wr_event *ev) {
    wr_status st;
    cudaStream_t s = stream_of(be, stream, &st);
    WR_TRY(st);
    CUDA_TRY(cudaStreamWaitEvent(s, (cudaEvent_t)ev, 0), "cudaStreamWaitEvent");
    return WR_OK;
}

static wr_status event_sync_cuda(wr_backend *be, wr_event *ev) {
    (void)be;
    CUDA_TRY(cudaEventSynchronize((cudaEvent_t)ev), "cudaEventSynchronize");
    return WR_OK;
}

static wr_status upload_on_cuda(wr_backend *be, int stream, void *dst, const void *src, size_t n) {
    wr_status st;
    cudaStream_t s = stream_of(be, stream, &st);
    WR_TRY(st);
    CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, s), "host-to-device copy");
    CUDA_TRY(cudaStreamSynchronize(s), "host-to-device copy (sync)");
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

/* Page-locks a range of existing host memory: read-only first (a checkpoint mapped PROT_READ
 * can only be registered so), else default (a writable arena). */
static wr_status host_register_cuda(wr_backend *be, void *p, size_t n) {
    (void)be;
    cudaError_t e = cudaHostRegister(p, n, cudaHostRegisterReadOnly);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        e = cudaHostRegister(p, n, cudaHostRegisterDefault);
    }
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return WR_FAIL(WR_ERR_DEVICE, "cudaHostRegister of %.1f MiB failed: %s",
                       (double)n / 1048576.0, cudaGetErrorString(e));
    }
    return WR_OK;
}

static void host_unregister_cuda(wr_backend *be, void *p) {
    (void)be;
    if (cudaHostUnregister(p) != cudaSuccess) (void)cudaGetLastError();
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
    .host_register = host_register_cuda,
    .host_unregister = host_unregister_cuda,
    .upload_async = upload_async_cuda,
    .upload_wait = upload_wait_cuda,
    .event_create = event_create_cuda,
    .event_free = event_free_cuda,
    .event_record = event_record_cuda,
    .stream_wait = stream_wait_cuda,
    .event_sync = event_sync_cuda,
    .upload_on = upload_on_cuda,
    .download_async = download_async_cuda,
    .copy3d = copy3d_cuda,
    /* ---- ops (cuda_ops.h) ---- */
    .matmul = wr_cuda_matmul,
    .layer_norm = wr_cuda_layer_norm,
    .rms_norm = wr_cuda_rms_norm,
    .gelu_tanh = wr_cuda_gelu_tanh,
    .silu = wr_cuda_silu,
    .add = wr_cuda_add,
    .mul = wr_cuda_mul,
    .modulate = wr_cuda_modulate,
    .gated_residual = wr_cuda_gated_residual,
    .rope = wr_cuda_rope,
    .attention = wr_cuda_attention,
    .patch_embed = wr_cuda_patch_embed,
    .conv3d = wr_cuda_conv3d,
    .attn_merge = wr_cuda_attn_merge,
    .copy2d = wr_cuda_copy2d,
    .unpatchify = wr_cuda_unpatchify,
    .upsample2x = wr_cuda_upsample2x,
    .rms_norm_channels = wr_cuda_rms_norm_channels,
    .gather_rows = wr_cuda_gather_rows,
    .transpose = wr_cuda_transpose,
    .clamp = wr_cuda_clamp,
    .channel_affine = wr_cuda_channel_affine,
    .blend = wr_cuda_blend,
};

wr_status wr_backend_cuda_init(wr_backend *be, int threads) {
    wr_device_info di;
    WR_TRY(wr_cuda_probe(&di));
    if (be->device < 0 || be->device >= di.count)
        return WR_FAIL(WR_ERR_INVALID_ARG, "--device %d: this machine has %d CUDA device%s (0..%d)",
                       be->device, di.count, di.count == 1 ? "" : "s", di.count - 1);
    CUDA_TRY(cudaSetDevice(be->device), "cudaSetDevice");
    cuda_impl *ci = calloc(1, sizeof *ci);
    if (ci == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    ci->device = be->device;
    cudaError_t e = cudaStreamCreateWithFlags(&ci->compute, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        free(ci);
        return WR_FAIL(WR_ERR_DEVICE, "compute stream: %s", cudaGetErrorString(e));
    }
    be->impl = ci;
    be->host_visible = 0;
    be->iface = &cuda_iface;
    be->kind = WR_BACKEND_CUDA;
    be->threads = threads;
    return WR_OK;
}

void wr_backend_cuda_release(wr_backend *be) {
    cuda_impl *ci = be->impl;
    if (ci == NULL) return;
    (void)cudaStreamSynchronize(ci->compute);
    wr_cuda_gemm_free(ci->gemm);
    (void)cudaStreamDestroy(ci->compute);
    if (ci->ready) {
        (void)cudaStreamSynchronize(ci->copy);
        for (int k = 0; k < 2; k++) (void)cudaEventDestroy(ci->done[k]);
        (void)cudaStreamDestroy(ci->copy);
    }
    free(ci);
    be->impl = NULL;
}

wr_cuda_gemm **wr_cuda_gemm_slot(wr_backend *be) {
    return &((cuda_impl *)be->impl)->gemm;
}

wr_status wr_cuda_launch_status(int cuda_error, const char *op) {
    if (cuda_error == (int)cudaSuccess) return WR_OK;
    const cudaError_t e = (cudaError_t)cuda_error;
    return WR_FAIL(e == cudaErrorMemoryAllocation ? WR_ERR_OOM_DEVICE : WR_ERR_DEVICE,
                   "%s on CUDA: %s (%s)", op, cudaGetErrorName(e), cudaGetErrorString(e));
}

void *wr_cuda_compute_stream(wr_backend *be) {
    return be->kind == WR_BACKEND_CUDA && be->impl ? (void *)compute_of(be) : NULL;
}

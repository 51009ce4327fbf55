/*
 * cuda_device.h — CUDA runtime glue (C11, compiled against the CUDA headers): device probe and
 * the dtype cast launchers whose kernels live in cast.cu. Only compiled when WR_HAVE_CUDA.
 */
#ifndef WR_KERNELS_CUDA_CUDA_DEVICE_H
#define WR_KERNELS_CUDA_CUDA_DEVICE_H

#include <stdint.h>

#include "core/dtype.h"
#include "core/status.h"
#include "kernels/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* See wr_backend_probe_cuda. */
wr_status wr_cuda_probe(wr_device_info *out);

/* Fills the CUDA backend on device be->device (the pipeline picks the node-local rank's GPU),
 * with its compute stream (non-blocking; every op and memory call, in issue order) and the
 * vram layer's copy stream (made by the copy thread on first use); events are CUDA events.
 * The op slots are cuda_ops.h's; those without a kernel yet are NULL, so a model that needs one
 * fails with WR_ERR_UNSUPPORTED naming the op. */
wr_status wr_backend_cuda_init(wr_backend *be, int threads);
void wr_backend_cuda_release(wr_backend *be);
/* The backend's compute stream (a cudaStream_t) for NCCL and the kernels; NULL if not CUDA. */
void *wr_cuda_compute_stream(wr_backend *be);

/*
 * Converts n elements on the device (dst and src are device pointers) from st to dt, with the
 * same bit-exact rules as wr_dtype_convert (f32 <-> bf16/f16/e4m3/e5m2). Launches on the
 * default stream and synchronises. WR_ERR_UNSUPPORTED for other pairs, WR_ERR_DEVICE naming
 * the CUDA error otherwise.
 */
wr_status wr_cuda_convert(void *dst, wr_dtype dt, const void *src, wr_dtype st, int64_t n);

/* Launchers (cast.cu). Return a cudaError_t as int. */
int wr_cuda_cast_to_f32_launch(float *dst, const void *src, int src_dtype, int64_t n);
int wr_cuda_cast_from_f32_launch(void *dst, int dst_dtype, const float *src, int64_t n);
/* n elements from src_dtype to dst_dtype (F32, BF16, F16, F8_E4M3, F8_E5M2; through f32 with
 * the rules above) on `stream` (a cudaStream_t), not waited. */
int wr_cuda_cast_launch(void *dst, int dst_dtype, const void *src, int src_dtype, int64_t n,
                        void *stream);

#ifdef __cplusplus
}
#endif

#endif /* WR_KERNELS_CUDA_CUDA_DEVICE_H */

/*
 * cuda_ops.h — the CUDA backend's op slots (the wr_backend_iface signatures, backend.h), one
 * group per op family. Each family is a kernel file `<stem>.cu` (the kernels and their
 * extern "C" launchers, which take raw device pointers, sizes and a cudaStream_t and return a
 * cudaError_t as int) and a host-glue file `<stem>_cuda.c` (C11: the slots below, which read
 * the tensors, pick the launcher for the operand dtypes and turn a CUDA error into a
 * wr_status naming the op). The stems are those of the CPU twins (src/kernels/cpu/).
 *
 * Every slot launches on the backend's compute stream (wr_cuda_compute_stream) and returns
 * without synchronising; tensors are device memory from the backend's alloc, contiguous,
 * row-major, shapes already checked by the wr_op_* wrappers (ops.c). Activations are F32 or
 * BF16 per operand (wr_backend_supports), arithmetic in f32, a BF16 output rounded to
 * nearest-even once, as the CPU backend does.
 */
#ifndef WR_KERNELS_CUDA_CUDA_OPS_H
#define WR_KERNELS_CUDA_CUDA_OPS_H

#include "kernels/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A launch's error (cudaGetLastError after it, or the launcher's return) as WR_ERR_DEVICE
 * "OP on CUDA: the CUDA error"; WR_OK for cudaSuccess (0). */
wr_status wr_cuda_launch_status(int cuda_error, const char *op);

/* ---- matmul (matmul_cuda.c: cuBLASLt) ---- */
/* The backend's cuBLASLt state (handle, the algorithms cached per shape): made on first use,
 * freed with the backend (backend_cuda.c keeps the slot). */
typedef struct wr_cuda_gemm wr_cuda_gemm;
wr_cuda_gemm **wr_cuda_gemm_slot(wr_backend *be);
void wr_cuda_gemm_free(wr_cuda_gemm *g);
wr_status wr_cuda_matmul(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                         const wr_tensor *b, float alpha);
/* The same on raw operands, for the ops built on a GEMM (conv3d, patch_embed): y[M, N] (row
 * stride ldy >= N elements, F32 or BF16) = alpha * x[M, K] . w[N, K]^T (+ bias[N], f32 or NULL);
 * x and w contiguous, any float dtype. */
wr_status wr_cuda_gemm_rows(wr_backend *be, void *y, wr_dtype ydt, int64_t ldy, const void *x,
                            wr_dtype xdt, const void *w, wr_dtype wdt, int64_t M, int64_t N,
                            int64_t K, const float *bias, float alpha);
/* The same with the GEMM's input type t given (F32 or BF16; F32 only with an F32 y): an
 * operand in another dtype is converted to t panel by panel. wr_cuda_gemm_rows takes F32 when
 * x and y are F32, else BF16. */
wr_status wr_cuda_gemm_rows_as(wr_backend *be, wr_dtype t, void *y, wr_dtype ydt, int64_t ldy,
                               const void *x, wr_dtype xdt, const void *w, wr_dtype wdt, int64_t M,
                               int64_t N, int64_t K, const float *bias, float alpha);

/* ---- elementwise (elementwise.cu, elementwise_cuda.c; blend and patch ops too) ---- */
wr_status wr_cuda_gelu_tanh(wr_backend *be, wr_tensor *y, const wr_tensor *x);
wr_status wr_cuda_silu(wr_backend *be, wr_tensor *y, const wr_tensor *x);
wr_status wr_cuda_add(wr_backend *be, wr_tensor *y, const wr_tensor *a, const wr_tensor *b);
wr_status wr_cuda_mul(wr_backend *be, wr_tensor *y, const wr_tensor *a, const wr_tensor *b);
wr_status wr_cuda_modulate(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *scale,
                           const wr_tensor *shift);
wr_status wr_cuda_gated_residual(wr_backend *be, wr_tensor *x, const wr_tensor *a,
                                 const wr_tensor *gate);
wr_status wr_cuda_clamp(wr_backend *be, wr_tensor *y, const wr_tensor *x, float lo, float hi);
wr_status wr_cuda_channel_affine(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                                 const wr_tensor *scale, const wr_tensor *shift);
wr_status wr_cuda_transpose(wr_backend *be, wr_tensor *y, const wr_tensor *x);
wr_status wr_cuda_copy2d(wr_backend *be, float *dst, int64_t dld, const float *src, int64_t sld,
                         int64_t rows, int64_t cols);
wr_status wr_cuda_upsample2x(wr_backend *be, wr_tensor *y, const wr_tensor *x);
wr_status wr_cuda_gather_rows(wr_backend *be, wr_tensor *y, const wr_tensor *table,
                              const int32_t *idx);
wr_status wr_cuda_unpatchify(wr_backend *be, wr_tensor *out, const wr_tensor *y, int pt, int ph,
                             int pw);
wr_status wr_cuda_blend(wr_backend *be, wr_tensor *dst, const wr_tensor *a, int64_t e);

/* ---- attention (attention.cu, attention_cuda.c: the online-softmax kernel) ---- */
wr_status wr_cuda_attention(wr_backend *be, wr_tensor *out, wr_tensor *lse, const wr_tensor *q,
                            const wr_tensor *k, const wr_tensor *v, const wr_attn_params *p);

/* ---- convolutions (conv.cu, conv_cuda.c: column gathers and cuBLASLt GEMMs) ---- */
wr_status wr_cuda_conv3d(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *cache,
                         const wr_tensor *w, const wr_tensor *b, const wr_conv_params *p);
wr_status wr_cuda_patch_embed(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                              const wr_tensor *b, int64_t n0);

/* ---- norms, RoPE and the attention merge (norm.cu, norm_cuda.c) ---- */
wr_status wr_cuda_layer_norm(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                             const wr_tensor *b, float eps);
wr_status wr_cuda_rms_norm(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                           float eps);
wr_status wr_cuda_rms_norm_channels(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                                    const wr_tensor *gamma);
wr_status wr_cuda_rope(wr_backend *be, wr_tensor *x, const wr_tensor *cos, const wr_tensor *sin);
wr_status wr_cuda_attn_merge(wr_backend *be, wr_tensor *o, wr_tensor *lse, const wr_tensor *o2,
                             const wr_tensor *lse2);

#ifdef __cplusplus
}
#endif

#endif /* WR_KERNELS_CUDA_CUDA_OPS_H */

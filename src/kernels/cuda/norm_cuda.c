/* norm_cuda.c — the CUDA slots for LayerNorm, RMSNorm, the channel RMSNorm, RoPE and the
 * attention merge (cuda_ops.h): read the tensors the wr_op_* wrappers checked, pick the
 * operands' dtypes and launch norm.cu's kernels on the compute stream, without synchronising.
 * Activations are F32 or BF16 per operand, as the wrappers let through (y and x of rms_norm and
 * rms_norm_channels, o and o2, lse and lse2 share a dtype; layer_norm's y and x need not); w,
 * b and gamma are F32 (expect_vec). cos/sin and lse, whose dtype no wrapper checks, are F32 or
 * BF16 here (the CPU backend converts exactly those), WR_ERR_UNSUPPORTED otherwise. */
#include <math.h>

#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/norm_launch.h"
#include "kernels/ops.h"

static cudaStream_t stream_of(wr_backend *be) {
    return (cudaStream_t)wr_cuda_compute_stream(be);
}

/* WR_OK when t is F32 or BF16; WR_ERR_UNSUPPORTED naming op and operand otherwise */
static wr_status check_act(const char *op, const char *what, const wr_tensor *t) {
    if (t->dtype == WR_DTYPE_F32 || t->dtype == WR_DTYPE_BF16) return WR_OK;
    return WR_FAIL(WR_ERR_UNSUPPORTED, "%s on CUDA: %s is %s; F32 or BF16 only", op, what,
                   wr_dtype_name(t->dtype));
}

/* WR_OK when t is absent or F32 (a weight vector) */
static wr_status check_vec(const char *op, const char *what, const wr_tensor *t) {
    if (t == NULL || t->dtype == WR_DTYPE_F32) return WR_OK;
    return WR_FAIL(WR_ERR_UNSUPPORTED, "%s on CUDA: %s is %s; F32 only", op, what,
                   wr_dtype_name(t->dtype));
}

wr_status wr_cuda_layer_norm(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                             const wr_tensor *b, float eps) {
    WR_TRY(check_act("layer_norm", "x", x));
    WR_TRY(check_act("layer_norm", "y", y));
    WR_TRY(check_vec("layer_norm", "w", w));
    WR_TRY(check_vec("layer_norm", "b", b));
    if (wr_tensor_nelem(x) == 0) return WR_OK;
    /* x, y: [R, D] */
    const int64_t R = wr_rows(x), D = wr_cols(x);
    return wr_cuda_launch_status(
        wr_cuda_layer_norm_launch(y->data, (int)y->dtype, x->data, (int)x->dtype,
                                  w ? (const float *)w->data : NULL,
                                  b ? (const float *)b->data : NULL, R, D, eps, stream_of(be)),
        "layer_norm");
}

wr_status wr_cuda_rms_norm(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                           float eps) {
    WR_TRY(check_act("rms_norm", "x", x));
    WR_TRY(check_vec("rms_norm", "w", w));
    if (wr_tensor_nelem(x) == 0) return WR_OK;
    /* x, y: [R, D], one dtype (wr_tensor_same_shape) */
    const int64_t R = wr_rows(x), D = wr_cols(x);
    return wr_cuda_launch_status(wr_cuda_rms_norm_launch(y->data, x->data, (int)x->dtype,
                                                         w ? (const float *)w->data : NULL, R, D,
                                                         eps, stream_of(be)),
                                 "rms_norm");
}

wr_status wr_cuda_rms_norm_channels(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                                    const wr_tensor *gamma) {
    WR_TRY(check_act("rms_norm_channels", "x", x));
    WR_TRY(check_vec("rms_norm_channels", "gamma", gamma));
    const int64_t n = wr_tensor_nelem(x);
    if (n == 0) return WR_OK;
    /* x, y: [C, P] with P the product of the other dims */
    const int64_t C = x->shape[0], P = n / C;
    const float scale = sqrtf((float)C); /* as the CPU: f32 sqrt of the f32 channel count */
    return wr_cuda_launch_status(wr_cuda_rms_norm_channels_launch(y->data, x->data, (int)x->dtype,
                                                                  (const float *)gamma->data, C, P,
                                                                  scale, stream_of(be)),
                                 "rms_norm_channels");
}

wr_status wr_cuda_rope(wr_backend *be, wr_tensor *x, const wr_tensor *cos, const wr_tensor *sin) {
    WR_TRY(check_act("rope", "x", x));
    WR_TRY(check_act("rope", "cos", cos));
    if (sin->dtype != cos->dtype)
        return WR_FAIL(WR_ERR_UNSUPPORTED, "rope on CUDA: cos is %s and sin %s; one dtype",
                       wr_dtype_name(cos->dtype), wr_dtype_name(sin->dtype));
    if (wr_tensor_nelem(x) == 0) return WR_OK;
    /* x: [L, NH, HD], cos, sin: [L, HD/2] */
    const int64_t L = x->shape[0], NH = x->shape[1], P = x->shape[2] / 2;
    return wr_cuda_launch_status(wr_cuda_rope_launch(x->data, (int)x->dtype, cos->data, sin->data,
                                                     (int)cos->dtype, L, NH, P, stream_of(be)),
                                 "rope");
}

wr_status wr_cuda_attn_merge(wr_backend *be, wr_tensor *o, wr_tensor *lse, const wr_tensor *o2,
                             const wr_tensor *lse2) {
    WR_TRY(check_act("attn_merge", "o", o));
    WR_TRY(check_act("attn_merge", "lse", lse));
    if (o2->dtype != o->dtype || lse2->dtype != lse->dtype)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "attn_merge on CUDA: o %s, o2 %s, lse %s, lse2 %s; o2 must be o's dtype "
                       "and lse2 lse's",
                       wr_dtype_name(o->dtype), wr_dtype_name(o2->dtype), wr_dtype_name(lse->dtype),
                       wr_dtype_name(lse2->dtype));
    /* o, o2: [Lq, NH, HD]; lse, lse2: [NH, Lq] (updated even when HD = 0, as on the CPU) */
    const int64_t Lq = o->shape[0], NH = o->shape[1], HD = o->shape[2];
    if (Lq == 0 || NH == 0) return WR_OK;
    return wr_cuda_launch_status(wr_cuda_attn_merge_launch(o->data, lse->data, o2->data, lse2->data,
                                                           (int)o->dtype, (int)lse->dtype, Lq, NH,
                                                           HD, stream_of(be)),
                                 "attn_merge");
}

/* elementwise_cuda.c — the CUDA backend's elementwise, blend and patch-layout slots (cuda_ops.h):
 * read the tensors, pick the launcher (elementwise_launch.h) for the operand dtypes, launch on
 * the compute stream without synchronising, and name the op in a CUDA error. Shapes were
 * checked by the wrappers (ops.c); an activation in a dtype other than F32 / BF16 is
 * WR_ERR_UNSUPPORTED naming the op. */
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/elementwise_launch.h"
#include "kernels/ops.h"

static cudaStream_t stream_of(wr_backend *be) {
    return (cudaStream_t)wr_cuda_compute_stream(be);
}

static int is_act(const wr_tensor *t) {
    return t->dtype == WR_DTYPE_F32 || t->dtype == WR_DTYPE_BF16;
}

/* WR_OK when every given tensor (NULL ends the list early) is an F32 / BF16 activation */
static wr_status check_acts(const char *op, const wr_tensor *a, const wr_tensor *b,
                            const wr_tensor *c) {
    const wr_tensor *t[3] = {a, b, c};
    for (int i = 0; i < 3 && t[i]; i++)
        if (!is_act(t[i]))
            return WR_FAIL(WR_ERR_UNSUPPORTED, "%s on CUDA: activation dtype %s (F32 or BF16 only)",
                           op, wr_dtype_name(t[i]->dtype));
    return WR_OK;
}

/* WR_OK when every given vector is F32 (the wrappers' expect_vec) */
static wr_status check_vecs(const char *op, const wr_tensor *a, const wr_tensor *b) {
    const wr_tensor *t[2] = {a, b};
    for (int i = 0; i < 2; i++)
        if (t[i] && t[i]->dtype != WR_DTYPE_F32)
            return WR_FAIL(WR_ERR_UNSUPPORTED, "%s on CUDA: vector dtype %s (F32 only)", op,
                           wr_dtype_name(t[i]->dtype));
    return WR_OK;
}

/* ---- activations ---- */

wr_status wr_cuda_gelu_tanh(wr_backend *be, wr_tensor *y, const wr_tensor *x) {
    WR_TRY(check_acts("gelu_tanh", y, x, NULL));
    return wr_cuda_launch_status(wr_cuda_gelu_tanh_launch(y->data, (int)y->dtype, x->data,
                                                          (int)x->dtype, wr_tensor_nelem(x),
                                                          stream_of(be)),
                                 "gelu_tanh");
}

wr_status wr_cuda_silu(wr_backend *be, wr_tensor *y, const wr_tensor *x) {
    WR_TRY(check_acts("silu", y, x, NULL));
    return wr_cuda_launch_status(wr_cuda_silu_launch(y->data, (int)y->dtype, x->data, (int)x->dtype,
                                                     wr_tensor_nelem(x), stream_of(be)),
                                 "silu");
}

/* ---- broadcasts, modulation, residuals ---- */

wr_status wr_cuda_add(wr_backend *be, wr_tensor *y, const wr_tensor *a, const wr_tensor *b) {
    WR_TRY(check_acts("add", y, a, b));
    return wr_cuda_launch_status(wr_cuda_add_launch(y->data, (int)y->dtype, a->data, (int)a->dtype,
                                                    b->data, (int)b->dtype, wr_tensor_nelem(a),
                                                    wr_tensor_nelem(b), stream_of(be)),
                                 "add");
}

wr_status wr_cuda_mul(wr_backend *be, wr_tensor *y, const wr_tensor *a, const wr_tensor *b) {
    WR_TRY(check_acts("mul", y, a, b));
    return wr_cuda_launch_status(wr_cuda_mul_launch(y->data, (int)y->dtype, a->data, (int)a->dtype,
                                                    b->data, (int)b->dtype, wr_tensor_nelem(a),
                                                    wr_tensor_nelem(b), stream_of(be)),
                                 "mul");
}

wr_status wr_cuda_modulate(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *scale,
                           const wr_tensor *shift) {
    WR_TRY(check_acts("modulate", y, x, NULL));
    WR_TRY(check_vecs("modulate", scale, shift));
    return wr_cuda_launch_status(
        wr_cuda_modulate_launch(y->data, (int)y->dtype, x->data, (int)x->dtype, scale->data,
                                shift->data, wr_tensor_nelem(x), wr_cols(x), stream_of(be)),
        "modulate");
}

wr_status wr_cuda_gated_residual(wr_backend *be, wr_tensor *x, const wr_tensor *a,
                                 const wr_tensor *gate) {
    WR_TRY(check_acts("gated_residual", x, a, NULL));
    WR_TRY(check_vecs("gated_residual", gate, NULL));
    return wr_cuda_launch_status(
        wr_cuda_gated_residual_launch(x->data, (int)x->dtype, a->data, (int)a->dtype,
                                      gate ? (const float *)gate->data : NULL, wr_tensor_nelem(x),
                                      wr_cols(x), stream_of(be)),
        "gated_residual");
}

wr_status wr_cuda_clamp(wr_backend *be, wr_tensor *y, const wr_tensor *x, float lo, float hi) {
    WR_TRY(check_acts("clamp", y, x, NULL));
    return wr_cuda_launch_status(wr_cuda_clamp_launch(y->data, (int)y->dtype, x->data,
                                                      (int)x->dtype, lo, hi, wr_tensor_nelem(x),
                                                      stream_of(be)),
                                 "clamp");
}

wr_status wr_cuda_channel_affine(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                                 const wr_tensor *scale, const wr_tensor *shift) {
    WR_TRY(check_acts("channel_affine", y, x, NULL));
    WR_TRY(check_vecs("channel_affine", scale, shift));
    const int64_t n = wr_tensor_nelem(x), C = x->ndim ? x->shape[0] : 1;
    if (n == 0 || C == 0) return WR_OK;
    return wr_cuda_launch_status(
        wr_cuda_channel_affine_launch(y->data, (int)y->dtype, x->data, (int)x->dtype, scale->data,
                                      shift->data, n, n / C, stream_of(be)),
        "channel_affine");
}

/* ---- data movement ---- */

wr_status wr_cuda_transpose(wr_backend *be, wr_tensor *y, const wr_tensor *x) {
    WR_TRY(check_acts("transpose", y, x, NULL));
    return wr_cuda_launch_status(wr_cuda_transpose_launch(y->data, (int)y->dtype, x->data,
                                                          (int)x->dtype, x->shape[0], x->shape[1],
                                                          stream_of(be)),
                                 "transpose");
}

wr_status wr_cuda_copy2d(wr_backend *be, float *dst, int64_t dld, const float *src, int64_t sld,
                         int64_t rows, int64_t cols) {
    return wr_cuda_launch_status(
        wr_cuda_copy2d_launch(dst, dld, src, sld, rows, cols, stream_of(be)), "copy2d");
}

wr_status wr_cuda_upsample2x(wr_backend *be, wr_tensor *y, const wr_tensor *x) {
    WR_TRY(check_acts("upsample2x", y, x, NULL));
    /* x [C, T, H, W] -> y [C, T, 2H, 2W] */
    return wr_cuda_launch_status(wr_cuda_upsample2x_launch(y->data, (int)y->dtype, x->data,
                                                           (int)x->dtype, x->shape[0] * x->shape[1],
                                                           x->shape[2], x->shape[3], stream_of(be)),
                                 "upsample2x");
}

wr_status wr_cuda_gather_rows(wr_backend *be, wr_tensor *y, const wr_tensor *table,
                              const int32_t *idx) {
    WR_TRY(check_acts("gather_rows", y, NULL, NULL));
    switch (table->dtype) {
    case WR_DTYPE_F32:
    case WR_DTYPE_F16:
    case WR_DTYPE_BF16:
    case WR_DTYPE_F8_E4M3:
    case WR_DTYPE_F8_E5M2:
    case WR_DTYPE_F64:
        break;
    default:
        return WR_FAIL(WR_ERR_UNSUPPORTED, "gather_rows on CUDA: table dtype %s",
                       wr_dtype_name(table->dtype));
    }
    /* y [n, D] = table [V, D] rows idx[0..n-1]; the launcher copies idx into the launches */
    return wr_cuda_launch_status(wr_cuda_gather_rows_launch(y->data, (int)y->dtype, table->data,
                                                            (int)table->dtype, y->shape[1], idx,
                                                            y->shape[0], stream_of(be)),
                                 "gather_rows");
}

wr_status wr_cuda_unpatchify(wr_backend *be, wr_tensor *out, const wr_tensor *y, int pt, int ph,
                             int pw) {
    WR_TRY(check_acts("unpatchify", out, y, NULL));
    /* y [L, pt*ph*pw*C] -> out [C, F, H, W] */
    return wr_cuda_launch_status(
        wr_cuda_unpatchify_launch(out->data, (int)out->dtype, y->data, (int)y->dtype, out->shape[0],
                                  out->shape[1], out->shape[2], out->shape[3], pt, ph, pw,
                                  stream_of(be)),
        "unpatchify");
}

wr_status wr_cuda_blend(wr_backend *be, wr_tensor *dst, const wr_tensor *a, int64_t e) {
    WR_TRY(check_acts("blend", dst, a, NULL));
    /* dst [P, Ld, Q], a [P, La, Q] */
    return wr_cuda_launch_status(wr_cuda_blend_launch(dst->data, (int)dst->dtype, a->data,
                                                      (int)a->dtype, dst->shape[0], dst->shape[1],
                                                      dst->shape[2], a->shape[1], e, stream_of(be)),
                                 "blend");
}

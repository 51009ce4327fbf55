/* conv_cuda.c — the CUDA conv3d and patch_embed slots (host glue, C11): a chunk of output
 * positions at a time, the columns gathered into the op scratch (conv.cu) and multiplied with
 * the weight by cuBLASLt (wr_cuda_gemm_rows); conv3d's bias added per channel after its GEMM
 * (its output is channel-first, which the GEMM's bias epilogue does not broadcast along: a
 * BF16 y is then rounded twice, after the product and after the bias, where the CPU rounds
 * once), patch_embed's fused into the GEMM. */
#include "kernels/cuda/conv_launch.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_ops.h"

static int act_ok(const wr_tensor *t) {
    return t->dtype == WR_DTYPE_F32 || t->dtype == WR_DTYPE_BF16;
}

/* rows of `row_bytes` that fit in half the scratch left (>= 1; a multiple of 64 when more) */
static int64_t chunk_rows(wr_backend *be, size_t row_bytes, int64_t total) {
    int64_t n = (int64_t)(wr_scratch_left(be) / 2 / (row_bytes ? row_bytes : 1));
    if (n > total) n = total;
    if (n >= 128) n &= ~(int64_t)63;
    return n < 1 ? 1 : n;
}

wr_status wr_cuda_conv3d(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *cache,
                         const wr_tensor *w, const wr_tensor *b, const wr_conv_params *p) {
    if (!act_ok(x) || !act_ok(y) || (cache && !act_ok(cache)))
        return WR_FAIL(WR_ERR_UNSUPPORTED, "conv3d on CUDA: activations must be F32 or BF16");
    const int64_t Co = w->shape[0], Ci = x->shape[0], T = x->shape[1], H = x->shape[2],
                  W = x->shape[3];
    const int64_t kt = w->ndim == 5 ? w->shape[2] : 1, kh = w->shape[w->ndim - 2],
                  kw = w->shape[w->ndim - 1];
    const int64_t Tc = cache ? cache->shape[1] : 0;
    const int64_t To = y->shape[1], Ho = y->shape[2], Wo = y->shape[3], P = To * Ho * Wo;
    const int64_t K = Ci * kt * kh * kw;
    if (Co == 0 || P == 0) return WR_OK;
    /* the GEMM's input type from the activations, as matmul's (F32 when x, the cache and y
     * are): the columns are gathered in it, the weight converted to it if narrower */
    const wr_dtype cdt = x->dtype == WR_DTYPE_F32 && y->dtype == WR_DTYPE_F32 &&
                                 (cache == NULL || cache->dtype == WR_DTYPE_F32)
                             ? WR_DTYPE_F32
                             : WR_DTYPE_BF16;
    const size_t ys = wr_dtype_size(y->dtype);
    void *stream = wr_cuda_compute_stream(be);
    const wr_scratch_mark mark = wr_scratch_save(be);
    wr_status st = WR_OK;
    const int64_t rows = chunk_rows(be, (size_t)K * wr_dtype_size(cdt), P);
    void *cols = NULL;
    WR_TRY_GOTO(
        st, wr_scratch_get(be, (size_t)(rows * K) * wr_dtype_size(cdt), "conv3d (columns)", &cols),
        done);
    for (int64_t p0 = 0; p0 < P; p0 += rows) {
        const int64_t np = P - p0 < rows ? P - p0 : rows;
        WR_TRY_GOTO(st,
                    wr_cuda_launch_status(
                        wr_cuda_conv_cols_launch(
                            cols, (int)cdt, x->data, (int)x->dtype, cache ? cache->data : NULL,
                            cache ? (int)cache->dtype : (int)WR_DTYPE_F32, Ci, T, Tc, H, W, kt, kh,
                            kw, p->pad_t, p->pad_h, p->pad_w, To, Ho, Wo, p0, np, stream),
                        "conv3d (columns)"),
                    done);
        /* y[:, p0 .. p0 + np) (rows of P) = w [Co, K] . cols [np, K]^T */
        WR_TRY_GOTO(st,
                    wr_cuda_gemm_rows_as(be, cdt, (char *)y->data + (size_t)p0 * ys, y->dtype, P,
                                         w->data, w->dtype, cols, cdt, Co, np, K, NULL, 1.0f),
                    done);
        if (b)
            WR_TRY_GOTO(st,
                        wr_cuda_launch_status(wr_cuda_bias_rows_launch(y->data, (int)y->dtype, P,
                                                                       b->data, Co, p0, np, stream),
                                              "conv3d (bias)"),
                        done);
    }
done:
    wr_scratch_restore(be, mark);
    return st;
}

wr_status wr_cuda_patch_embed(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                              const wr_tensor *b, int64_t n0) {
    if (!act_ok(x) || !act_ok(y))
        return WR_FAIL(WR_ERR_UNSUPPORTED, "patch_embed on CUDA: activations must be F32 or BF16");
    const int64_t C = x->shape[0], F = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t D = w->shape[0], pt = w->shape[2], ph = w->shape[3], pw = w->shape[4];
    const int64_t L = y->shape[0], P = C * pt * ph * pw;
    if (L == 0 || D == 0) return WR_OK;
    /* gathered straight in the GEMM's input type (F32 when x and y are, else BF16) */
    const wr_dtype cdt =
        x->dtype == WR_DTYPE_F32 && y->dtype == WR_DTYPE_F32 ? WR_DTYPE_F32 : WR_DTYPE_BF16;
    const size_t ys = wr_dtype_size(y->dtype);
    void *stream = wr_cuda_compute_stream(be);
    const wr_scratch_mark mark = wr_scratch_save(be);
    wr_status st = WR_OK;
    const int64_t rows = chunk_rows(be, (size_t)P * wr_dtype_size(cdt), L);
    void *cols = NULL;
    WR_TRY_GOTO(
        st,
        wr_scratch_get(be, (size_t)(rows * P) * wr_dtype_size(cdt), "patch_embed (patches)", &cols),
        done);
    for (int64_t r0 = 0; r0 < L; r0 += rows) {
        const int64_t nr = L - r0 < rows ? L - r0 : rows;
        WR_TRY_GOTO(st,
                    wr_cuda_launch_status(wr_cuda_patch_cols_launch(cols, (int)cdt, x->data,
                                                                    (int)x->dtype, C, F, H, W, pt,
                                                                    ph, pw, n0 + r0, nr, stream),
                                          "patch_embed (patches)"),
                    done);
        WR_TRY_GOTO(st,
                    wr_cuda_gemm_rows(be, (char *)y->data + (size_t)(r0 * D) * ys, y->dtype, D,
                                      cols, cdt, w->data, w->dtype, nr, D, P, b ? b->data : NULL,
                                      1.0f),
                    done);
    }
done:
    wr_scratch_restore(be, mark);
    return st;
}

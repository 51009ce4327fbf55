/*
 * matmul.c — y[M,N] = x[M,K] . w[N,K]^T + b[N] through OpenBLAS sgemm.
 *
 * f32 weights go to sgemm straight from where they live (e.g. the mmap'd checkpoint). Weights
 * stored narrower (bf16/f16/fp8) are converted to f32 in panels of rows of w, at most
 * WR_MATMUL_PANEL_BYTES at a time and no more than the op scratch has left (backend.h), so no
 * second full-size copy of a weight ever exists; each panel fills the matching column block of
 * y (ldc = N). With a bias, y is first filled with it
 * and sgemm accumulates (beta = 1): one pass over y instead of sgemm's zeroing plus an add.
 */
#include <cblas.h>
#include <string.h>

#include "core/dtype.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/ops.h"

#define WR_MATMUL_PANEL_BYTES ((size_t)16 << 20)

static void fill_bias(float *y, const float *b, int64_t M, int64_t N) {
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++) memcpy(y + m * N, b, sizeof(float) * (size_t)N);
}

static wr_status matmul_run(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                            const wr_tensor *b, float alpha);

wr_status matmul_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                     const wr_tensor *b, float alpha) {
    const wr_scratch_mark mark = wr_scratch_save(be);
    const wr_status st = matmul_run(be, y, x, w, b, alpha);
    wr_scratch_restore(be, mark);
    return st;
}

static wr_status matmul_run(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                            const wr_tensor *b, float alpha) {
    const int64_t M = wr_rows(x), K = wr_cols(x), N = w->shape[0];
    float *yd = y->data;
    const float *xd = x->data;
    if (M == 0 || N == 0) return WR_OK;
    const float beta = b ? 1.0f : 0.0f;
    if (b) fill_bias(yd, b->data, M, N);
    if (w->dtype == WR_DTYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, alpha, xd,
                    (int)K, (const float *)w->data, (int)K, beta, yd, (int)N);
    } else {
        size_t pb = wr_scratch_left(be);
        if (pb > WR_MATMUL_PANEL_BYTES) pb = WR_MATMUL_PANEL_BYTES;
        int64_t rows = (int64_t)(pb / ((size_t)K * sizeof(float)));
        if (rows < 16) rows = 16;
        if (rows > N) rows = N;
        float *panel = NULL;
        WR_TRY(wr_scratch_get(be, (size_t)rows * (size_t)K * sizeof(float), "matmul (weight panel)",
                              (void **)&panel));
        const size_t esz = wr_dtype_size(w->dtype);
        for (int64_t n0 = 0; n0 < N; n0 += rows) {
            int64_t nb = N - n0 < rows ? N - n0 : rows;
            const char *src = (const char *)w->data + (size_t)(n0 * K) * esz;
            /* convert the panel in parallel, one row of w per iteration */
#pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < nb; r++)
                wr_dtype_convert(panel + r * K, WR_DTYPE_F32, src + (size_t)(r * K) * esz, w->dtype,
                                 K);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)nb, (int)K, alpha, xd,
                        (int)K, panel, (int)K, beta, yd + n0, (int)N);
        }
    }
    return WR_OK;
}

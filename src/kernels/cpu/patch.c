/*
 * patch.c — patch embedding (conv3d with kernel = stride) and its inverse layout.
 *
 * patch_embed: y[n, d] = b[d] + sum_{c,a,i,j} w[d, c, a, i, j] * x[c, pt*f + a, ph*h + i, pw*w + j]
 * with token n = (f * H' + h) * W' + w, for the tokens n0 .. n0 + rows - 1. Implemented as a gather
 * into patches [rows, C*pt*ph*pw] (the weight's own order) followed by a matmul against w viewed
 * as [D, C*pt*ph*pw], in chunks of rows that take at most half of the op scratch left (the
 * matmul may need the other half for a weight panel).
 *
 * unpatchify: out[c, pt*f + a, ph*h + i, pw*w + j] = y[n(f, h, w), ((a*ph + i)*pw + j)*C + c]
 * (channel fastest), diffusers' reshape/permute of WanTransformer3DModel.
 */
#include "kernels/cpu/cpu_internal.h"
#include "kernels/ops.h"

wr_status patch_embed_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                          const wr_tensor *b, int64_t n0) {
    const int64_t C = x->shape[0], F = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t D = w->shape[0], pt = w->shape[2], ph = w->shape[3], pw = w->shape[4];
    const int64_t Hp = H / ph, Wp = W / pw, L = y->shape[0]; /* tokens n0 .. n0 + L - 1 */
    const int64_t P = C * pt * ph * pw;
    if (L == 0) return WR_OK;
    int64_t rows = (int64_t)(wr_scratch_left(be) / 2 / (sizeof(float) * (size_t)P));
    if (rows < 1) rows = 1;
    if (rows > L) rows = L;
    const wr_scratch_mark mark = wr_scratch_save(be);
    float *patches = NULL;
    wr_status st = wr_scratch_get(be, sizeof(float) * (size_t)(rows * P), "patch_embed (patches)",
                                  (void **)&patches);
    const float *xd = x->data;
    const int64_t wshape[2] = {D, P};
    const wr_tensor w2 = wr_tensor_make(w->data, w->dtype, 2, wshape);
    for (int64_t r0 = 0; st == WR_OK && r0 < L; r0 += rows) {
        const int64_t nr = L - r0 < rows ? L - r0 : rows;
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < nr; r++) {
            const int64_t n = n0 + r0 + r, f = n / (Hp * Wp), h = (n / Wp) % Hp, ww = n % Wp;
            float *row = patches + r * P;
            for (int64_t c = 0; c < C; c++)
                for (int64_t a = 0; a < pt; a++)
                    for (int64_t i = 0; i < ph; i++)
                        for (int64_t j = 0; j < pw; j++)
                            *row++ = xd[((c * F + f * pt + a) * H + h * ph + i) * W + ww * pw + j];
        }
        const int64_t pshape[2] = {nr, P}, yshape[2] = {nr, D};
        const wr_tensor pt_t = wr_tensor_make(patches, WR_DTYPE_F32, 2, pshape);
        wr_tensor yc = wr_tensor_make((float *)y->data + r0 * D, WR_DTYPE_F32, 2, yshape);
        st = matmul_cpu(be, &yc, &pt_t, &w2, b, 1.0f);
    }
    wr_scratch_restore(be, mark);
    return st;
}

wr_status unpatchify_cpu(wr_backend *be, wr_tensor *out, const wr_tensor *y, int pt, int ph,
                         int pw) {
    (void)be;
    const int64_t C = out->shape[0], F = out->shape[1], H = out->shape[2], W = out->shape[3];
    const int64_t Hp = H / ph, Wp = W / pw, L = y->shape[0], P = y->shape[1];
    const float *yd = y->data;
    float *od = out->data;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < L; n++) {
        const int64_t f = n / (Hp * Wp), h = (n / Wp) % Hp, w = n % Wp;
        for (int64_t a = 0; a < pt; a++)
            for (int64_t i = 0; i < ph; i++)
                for (int64_t j = 0; j < pw; j++)
                    for (int64_t c = 0; c < C; c++)
                        od[((c * F + f * pt + a) * H + h * ph + i) * W + w * pw + j] =
                            yd[n * P + ((a * ph + i) * pw + j) * C + c];
    }
    return WR_OK;
}

wr_status gather_rows_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *table,
                          const int32_t *idx) {
    (void)be;
    const int64_t n = y->shape[0], D = y->shape[1];
    const size_t esz = wr_dtype_size(table->dtype);
#pragma omp parallel for schedule(static) if (n * D > 65536)
    for (int64_t i = 0; i < n; i++)
        wr_dtype_convert((float *)y->data + i * D, WR_DTYPE_F32,
                         (const char *)table->data + (size_t)idx[i] * (size_t)D * esz, table->dtype,
                         D);
    return WR_OK;
}

/* elementwise.c — activations, broadcasts, AdaLN modulation and gated residuals (f32). */
#include <math.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/vmath.h"
#include "kernels/ops.h"

WR_VMATH_CLONES static void gelu_span(float *y, const float *x, int64_t n) {
    const float k0 = 0.7978845608028654f; /* sqrt(2/pi) */
    /* 0.5 v (1 + tanh(u)) = v * sigmoid(2u) = v / (1 + e^(-2u)): one vector exp, no tanhf call */
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float u = k0 * (v + 0.044715f * v * v * v);
        y[i] = v / (1.0f + wr_vexpf(-2.0f * u));
    }
}

wr_status gelu_tanh_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x) {
    (void)be;
    const int64_t n = wr_tensor_nelem(x), span = 4096;
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t i0 = 0; i0 < n; i0 += span)
        gelu_span(yd + i0, xd + i0, n - i0 < span ? n - i0 : span);
    return WR_OK;
}

WR_VMATH_CLONES static void silu_span(float *y, const float *x, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + wr_vexpf(-x[i]));
}

wr_status silu_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x) {
    (void)be;
    const int64_t n = wr_tensor_nelem(x), span = 4096;
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t i0 = 0; i0 < n; i0 += span)
        silu_span(yd + i0, xd + i0, n - i0 < span ? n - i0 : span);
    return WR_OK;
}

/* y = a op b with b full-size or a row vector broadcast over a's rows. */
static void binary(float *y, const float *a, const float *b, int64_t n, int64_t bn, int mul) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float bv = b[bn == n ? i : i % bn];
        y[i] = mul ? a[i] * bv : a[i] + bv;
    }
}

wr_status add_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *a, const wr_tensor *b) {
    (void)be;
    binary(y->data, a->data, b->data, wr_tensor_nelem(a), wr_tensor_nelem(b), 0);
    return WR_OK;
}

wr_status mul_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *a, const wr_tensor *b) {
    (void)be;
    binary(y->data, a->data, b->data, wr_tensor_nelem(a), wr_tensor_nelem(b), 1);
    return WR_OK;
}

wr_status modulate_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *scale,
                       const wr_tensor *shift) {
    (void)be;
    const int64_t R = wr_rows(x), D = wr_cols(x);
    const float *xd = x->data, *sc = scale->data, *sh = shift->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++)
        for (int64_t i = 0; i < D; i++) yd[r * D + i] = xd[r * D + i] * (1.0f + sc[i]) + sh[i];
    return WR_OK;
}

wr_status gated_residual_cpu(wr_backend *be, wr_tensor *x, const wr_tensor *a,
                             const wr_tensor *gate) {
    (void)be;
    const int64_t R = wr_rows(x), D = wr_cols(x);
    float *xd = x->data;
    const float *ad = a->data, *g = gate ? gate->data : NULL;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++)
        for (int64_t i = 0; i < D; i++) xd[r * D + i] += g ? ad[r * D + i] * g[i] : ad[r * D + i];
    return WR_OK;
}

wr_status rope_cpu(wr_backend *be, wr_tensor *x, const wr_tensor *cos, const wr_tensor *sin) {
    (void)be;
    const int64_t L = x->shape[0], NH = x->shape[1], HD = x->shape[2], P = HD / 2;
    float *xd = x->data;
    const float *c = cos->data, *s = sin->data;
#pragma omp parallel for schedule(static)
    for (int64_t l = 0; l < L; l++) {
        for (int64_t h = 0; h < NH; h++) {
            float *v = xd + (l * NH + h) * HD;
            for (int64_t p = 0; p < P; p++) {
                float x1 = v[2 * p], x2 = v[2 * p + 1], cc = c[l * P + p], ss = s[l * P + p];
                v[2 * p] = x1 * cc - x2 * ss;
                v[2 * p + 1] = x1 * ss + x2 * cc;
            }
        }
    }
    return WR_OK;
}

wr_status transpose_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x) {
    (void)be;
    const int64_t M = x->shape[0], N = x->shape[1], B = 32;
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t i0 = 0; i0 < M; i0 += B)
        for (int64_t j0 = 0; j0 < N; j0 += B)
            for (int64_t i = i0; i < M && i < i0 + B; i++)
                for (int64_t j = j0; j < N && j < j0 + B; j++) yd[j * M + i] = xd[i * N + j];
    return WR_OK;
}

wr_status clamp_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x, float lo, float hi) {
    (void)be;
    const int64_t n = wr_tensor_nelem(x);
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) { /* torch.clamp: NaN stays NaN */
        float v = xd[i];
        v = v < lo ? lo : v;
        yd[i] = v > hi ? hi : v;
    }
    return WR_OK;
}

wr_status channel_affine_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                             const wr_tensor *scale, const wr_tensor *shift) {
    (void)be;
    const int64_t C = x->shape[0], P = wr_tensor_nelem(x) / C;
    const float *xd = x->data, *a = scale->data, *b = shift->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < P; i++) yd[c * P + i] = xd[c * P + i] * a[c] + b[c];
    return WR_OK;
}

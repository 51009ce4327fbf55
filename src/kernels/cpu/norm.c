/*
 * norm.c — LayerNorm (optional affine) and RMSNorm over the last dimension, f32 in and out,
 * statistics accumulated in double (at least as accurate as PyTorch's f32 kernels).
 */
#include <math.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/ops.h"

wr_status layer_norm_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                         const wr_tensor *b, float eps) {
    (void)be;
    const int64_t R = wr_rows(x), D = wr_cols(x);
    const float *xd = x->data, *wd = w ? w->data : NULL, *bd = b ? b->data : NULL;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = xd + r * D;
        float *yr = yd + r * D;
        double mean = 0.0, var = 0.0;
        for (int64_t i = 0; i < D; i++) mean += xr[i];
        mean /= (double)D;
        for (int64_t i = 0; i < D; i++) {
            double d = xr[i] - mean;
            var += d * d;
        }
        var /= (double)D; /* biased, as torch.nn.LayerNorm */
        const float m = (float)mean, inv = (float)(1.0 / sqrt(var + eps));
        for (int64_t i = 0; i < D; i++) {
            float v = (xr[i] - m) * inv;
            if (wd) v *= wd[i];
            if (bd) v += bd[i];
            yr[i] = v;
        }
    }
    return WR_OK;
}

wr_status rms_norm_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                       float eps) {
    (void)be;
    const int64_t R = wr_rows(x), D = wr_cols(x);
    const float *xd = x->data, *wd = w ? w->data : NULL;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = xd + r * D;
        float *yr = yd + r * D;
        double ss = 0.0;
        for (int64_t i = 0; i < D; i++) ss += (double)xr[i] * xr[i];
        const float inv = (float)(1.0 / sqrt(ss / (double)D + eps));
        for (int64_t i = 0; i < D; i++) yr[i] = wd ? xr[i] * inv * wd[i] : xr[i] * inv;
    }
    return WR_OK;
}

wr_status rms_norm_channels_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                                const wr_tensor *gamma) {
    (void)be;
    const int64_t C = x->shape[0], P = wr_tensor_nelem(x) / C;
    const float *xd = x->data, *g = gamma->data;
    float *yd = y->data;
    const float scale = sqrtf((float)C);
    const int64_t blk = 256; /* positions per task: channel-strided reads stay in cache lines */
#pragma omp parallel for schedule(static)
    for (int64_t p0 = 0; p0 < P; p0 += blk) {
        const int64_t n = P - p0 < blk ? P - p0 : blk;
        double ss[256];
        for (int64_t j = 0; j < n; j++) ss[j] = 0.0;
        for (int64_t c = 0; c < C; c++) {
            const float *r = xd + c * P + p0;
            for (int64_t j = 0; j < n; j++) ss[j] += (double)r[j] * r[j];
        }
        float inv[256];
        for (int64_t j = 0; j < n; j++) { /* F.normalize: x / max(||x||, 1e-12) */
            float nrm = (float)sqrt(ss[j]);
            inv[j] = nrm > 1e-12f ? nrm : 1e-12f;
        }
        for (int64_t c = 0; c < C; c++) {
            const float *r = xd + c * P + p0;
            float *o = yd + c * P + p0;
            for (int64_t j = 0; j < n; j++) o[j] = r[j] / inv[j] * scale * g[c];
        }
    }
    return WR_OK;
}

/*
 * conv.c — causal conv3d (stride 1) as an implicit GEMM, and nearest x2 upsampling (f32).
 *
 * conv3d: the input time axis is [pad_t zero frames | cache frames | x frames]; output frame t
 * reads input frames t .. t + kt - 1. The output pixels are taken in column blocks; for each
 * block, every real input frame's spatial receptive fields are gathered once into
 * col [frame, K2, n] (K2 = Ci*kh*kw in the weight's (ci, dh, dw) order, zeros where the
 * padding is); frames being consecutive there, each output frame is one sgemm over its taps,
 * y[:, t, block] += w [Co, taps*K2] . col[t + dt0 ..], onto the bias already in y (beta = 1),
 * the taps on zero frames left out. A frame is gathered once however many output frames use it,
 * and col is bounded by WR_CONV_COL_BYTES and by the op scratch left (backend.h), so memory does
 * not grow with the image. 1x1x1 convs without padding or cache need no gather: one sgemm over
 * all frames. The weight is rearranged per call to [Co, kt, K2] (f32, at most 15.2 MiB for the
 * Wan VAE). Every temporary comes from the op scratch.
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "kernels/cpu/conv_internal.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/ops.h"

#define WR_CONV_COL_BYTES ((size_t)16 << 20)

/* y[c, :] = b[c] (or 0) over rows of length n, channel stride ld */
static void fill_bias_rows(float *y, const float *b, int64_t C, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        float v = b ? b[c] : 0.0f;
        float *r = y + c * n;
        for (int64_t i = 0; i < n; i++) r[i] = v;
    }
}

static wr_status conv3d_gemm(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                             const wr_tensor *cache, const wr_tensor *w, const wr_tensor *b,
                             const wr_conv_params *p);

wr_status wr_conv_weight_f32(wr_backend *be, const wr_tensor *w, int64_t n, const float **wf) {
    *wf = w->data;
    if (w->dtype == WR_DTYPE_F32) return WR_OK;
    float *conv = NULL;
    WR_TRY(wr_scratch_get(be, sizeof(float) * (size_t)n, "conv3d (f32 weight)", (void **)&conv));
    wr_dtype_convert(conv, WR_DTYPE_F32, w->data, w->dtype, n);
    *wf = conv;
    return WR_OK;
}

static int g_impl = -1; /* WR_CONV_AUTO.. ; -1: not read from the environment yet */

void wr_conv_set_impl(int impl) {
    g_impl = impl;
}

static int conv_impl(void) {
    if (g_impl < 0) {
        const char *e = getenv("WR_CONV_IMPL");
        g_impl = e && strcmp(e, "gemm") == 0     ? WR_CONV_GEMM
                 : e && strcmp(e, "direct") == 0 ? WR_CONV_DIRECT
                                                 : WR_CONV_AUTO;
    }
    return g_impl;
}

wr_status conv3d_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *cache,
                     const wr_tensor *w, const wr_tensor *b, const wr_conv_params *p) {
    const int impl = conv_impl();
    const int pointwise = w->shape[w->ndim - 1] == 1 && w->shape[w->ndim - 2] == 1 &&
                          (w->ndim == 4 || w->shape[2] == 1) && p->pad_t == 0 && p->pad_h == 0 &&
                          p->pad_w == 0 && cache == NULL;
    const wr_scratch_mark mark = wr_scratch_save(be);
    wr_status st;
    if (impl == WR_CONV_DIRECT ||
        (impl == WR_CONV_AUTO && !pointwise && wr_conv_direct_supported()))
        st = wr_conv3d_direct(be, y, x, cache, w, b, p);
    else
        st = conv3d_gemm(be, y, x, cache, w, b, p);
    wr_scratch_restore(be, mark); /* the temporaries of either */
    return st;
}

/* The implicit GEMM over OpenBLAS (any CPU); 1x1x1 convolutions are one plain GEMM. */
static wr_status conv3d_gemm(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                             const wr_tensor *cache, const wr_tensor *w, const wr_tensor *b,
                             const wr_conv_params *p) {
    const int64_t Ci = x->shape[0], Tx = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t Co = w->shape[0], kt = w->ndim == 5 ? w->shape[2] : 1, kh = w->shape[w->ndim - 2],
                  kw = w->shape[w->ndim - 1];
    const int64_t Tc = cache ? cache->shape[1] : 0;
    const int64_t To = y->shape[1], Ho = y->shape[2], Wo = y->shape[3];
    const int64_t K = Ci * kt * kh * kw, HWi = H * W, HWo = Ho * Wo;
    const float *xd = x->data, *cd = cache ? cache->data : NULL;
    float *yd = y->data;
    if (To == 0 || HWo == 0 || Co == 0) return WR_OK;

    const float *wf = NULL;
    WR_TRY(wr_conv_weight_f32(be, w, Co * K, &wf));
    fill_bias_rows(yd, b ? b->data : NULL, Co, To * HWo);

    if (K == Ci && p->pad_t == 0 && p->pad_h == 0 && p->pad_w == 0 && Tc == 0) {
        /* 1x1x1: y [Co, Tx*HW] += w [Co, Ci] . x [Ci, Tx*HW] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Co, (int)(Tx * HWi), (int)Ci,
                    1.0f, wf, (int)Ci, xd, (int)(Tx * HWi), 1.0f, yd, (int)(Tx * HWi));
        return WR_OK;
    }

    /* The weight as [Co, kt, K2] (K2 = Ci*kh*kw): the taps of an output row side by side. */
    const int64_t K2 = Ci * kh * kw;
    float *wt = NULL;
    WR_TRY(wr_scratch_get(be, sizeof(float) * (size_t)(Co * K), "conv3d (rearranged weight)",
                          (void **)&wt));
#pragma omp parallel for schedule(static)
    for (int64_t co = 0; co < Co; co++)
        for (int64_t ci = 0; ci < Ci; ci++)
            for (int64_t dt = 0; dt < kt; dt++)
                memcpy(wt + (co * kt + dt) * K2 + ci * kh * kw,
                       wf + ((co * Ci + ci) * kt + dt) * kh * kw,
                       sizeof(float) * (size_t)(kh * kw));

    /* The real input frames (cache, then x; the pad_t zero frames contribute nothing): each is
     * gathered once per column block into colf [Tin, K2, n] and used by every output frame
     * whose window covers it. */
    const int64_t Tin = Tc + Tx;
    size_t cb = wr_scratch_left(be);
    if (cb > WR_CONV_COL_BYTES) cb = WR_CONV_COL_BYTES;
    int64_t n = (int64_t)(cb / (sizeof(float) * (size_t)(K2 * Tin)));
    if (n < 64) n = 64;
    if (n > HWo) n = HWo;
    float *col = NULL;
    WR_TRY(wr_scratch_get(be, sizeof(float) * (size_t)(Tin * K2 * n), "conv3d (column block)",
                          (void **)&col));
    for (int64_t p0 = 0; p0 < HWo; p0 += n) {
        const int64_t nb = HWo - p0 < n ? HWo - p0 : n;
#pragma omp parallel for schedule(static)
        for (int64_t fk = 0; fk < Tin * K2; fk++) {
            const int64_t f = fk / K2, k = fk % K2;
            const int64_t dw = k % kw, dh = (k / kw) % kh, ci = k / (kw * kh);
            const float *src =
                f < Tc ? cd + ci * Tc * HWi + f * HWi : xd + ci * Tx * HWi + (f - Tc) * HWi;
            float *row = col + (f * K2 + k) * nb;
            /* walk the block's output rows: valid input columns are a contiguous run */
            const int64_t ow_lo = p->pad_w - dw > 0 ? p->pad_w - dw : 0;
            const int64_t ow_hi = W + p->pad_w - dw < Wo ? W + p->pad_w - dw : Wo;
            for (int64_t j = 0; j < nb;) {
                const int64_t pp = p0 + j, oh = pp / Wo, ow0 = pp % Wo;
                const int64_t run = Wo - ow0 < nb - j ? Wo - ow0 : nb - j;
                const int64_t ih = oh + dh - p->pad_h;
                float *dst = row + j;
                if (ih < 0 || ih >= H) {
                    memset(dst, 0, sizeof(float) * (size_t)run);
                } else {
                    const float *sr = src + ih * W - p->pad_w + dw;
                    for (int64_t o = 0; o < run; o++) {
                        const int64_t ow = ow0 + o;
                        dst[o] = ow >= ow_lo && ow < ow_hi ? sr[ow] : 0.0f;
                    }
                }
                j += run;
            }
        }
        /* y[:, t, block] += w [Co, taps*K2] . col[frames t+dt0-pad_t ..] (taps dt0..kt-1 over
         * the real frames: consecutive in col, so one GEMM per output frame) */
        for (int64_t t = 0; t < To; t++) {
            const int64_t dt0 = p->pad_t - t > 0 ? p->pad_t - t : 0; /* taps on zero frames */
            if (dt0 >= kt) continue;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Co, (int)nb,
                        (int)((kt - dt0) * K2), 1.0f, wt + dt0 * K2, (int)(kt * K2),
                        col + (t + dt0 - p->pad_t) * K2 * nb, (int)nb, 1.0f, yd + t * HWo + p0,
                        (int)(To * HWo));
        }
    }
    return WR_OK;
}

wr_status upsample2x_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x) {
    (void)be;
    const int64_t CT = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < CT * H; r++) { /* one input row -> two output rows */
        const float *s = xd + r * W;
        float *d0 = yd + (r / H) * 4 * H * W + (r % H) * 2 * (2 * W);
        for (int64_t i = 0; i < W; i++) d0[2 * i] = d0[2 * i + 1] = s[i];
        memcpy(d0 + 2 * W, d0, sizeof(float) * (size_t)(2 * W));
    }
    return WR_OK;
}

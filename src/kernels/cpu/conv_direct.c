/*
 * conv_direct.c — causal conv3d (stride 1) as a direct convolution with an AVX-512
 * micro-kernel: no im2col columns, no second packing pass.
 *
 * The input frames [cache | x] are copied, a band of output rows at a time, into a zero-padded
 * buffer band [Tin][Ci][BR][Wp] (BR = band rows + kh - 1, Wp = W + 2 pad_w). For an output
 * pixel run of <= 16 pixels in one row, tap k = (ci, dt, dh, dw) of the weight's own order
 * then reads 16 consecutive floats at band + base + off[k]: a shifted, unaligned vector load.
 * The micro-kernel computes a 12 (output channels) x 32 (two such runs) tile of y:
 * per tap, 2 vector loads, 12 broadcasts of w[co + r, k] read straight from the weight's
 * [Co, K] rows, and 24 FMAs into 24 accumulators. Taps are walked through a table (k, off)
 * built per call, which also leaves out taps on the pad_t zero frames (one table per number
 * of such taps; its offsets are relative to the first real frame the window reads).
 *
 * Channels <= 4 (the last convolution, 3 channels) use a 4 x 96 tile instead (6 runs).
 *
 * The work items are (output frame, tile, group of 12-channel panels), spread over the OpenMP
 * threads; a tile runs over all K taps at once (measured: chunking K to keep weights in L1 was
 * slower). The band is bounded (WR_CONV_BAND_BYTES and what the op scratch has left, at least
 * one output row), so memory does not grow with the image. Every temporary (band, tap tables,
 * runs, an f32 copy of a narrower weight) comes from the op scratch (backend.h).
 */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/dtype.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/conv_internal.h"

#define WR_CONV_BAND_BYTES ((size_t)8 << 20)
#define MR                 12 /* output channels per tile */
#define RUN                16 /* pixels per vector */
#define PF_TAPS            16 /* the 12 x 32 kernel prefetches the input this many taps ahead */
#define SMALL_RUNS         6  /* runs per tile of the <= 4-channel kernel */

typedef struct run {
    int64_t band; /* band index of the run's first pixel, frame t - pad_t, tap (0, 0, 0, 0) */
    int64_t y;    /* y index of the run's first pixel, channel 0 */
    int n;        /* pixels (1..16; 0 for the dummy partner of an odd last run) */
} run;

int wr_conv_direct_supported(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return cached;
#else
    return 0;
#endif
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#define ACC_DECL(r) __m512 a##r##0 = _mm512_setzero_ps(), a##r##1 = _mm512_setzero_ps()
#define ACC_FMA(r)                                                                                 \
    do {                                                                                           \
        const __m512 wv = _mm512_set1_ps(w##r[k]);                                                 \
        a##r##0 = _mm512_fmadd_ps(wv, x0, a##r##0);                                                \
        a##r##1 = _mm512_fmadd_ps(wv, x1, a##r##1);                                                \
    } while (0)
#define ACC_STORE(r)                                                                               \
    do {                                                                                           \
        if (r < mr) {                                                                              \
            const __m512 bv = _mm512_set1_ps(bias ? bias[r] : 0.0f);                               \
            _mm512_mask_storeu_ps(y + (int64_t)(r)*ldy + r0->y, m0, _mm512_add_ps(a##r##0, bv));   \
            _mm512_mask_storeu_ps(y + (int64_t)(r)*ldy + r1->y, m1, _mm512_add_ps(a##r##1, bv));   \
        }                                                                                          \
    } while (0)

/* y[r, run pixels] = bias[r] + sum over taps i of w[r, kidx[i]] * band[run.band + off[i] + j]
 * for r < mr (rows past mr repeat the last valid row and are not stored), for runs r0, r1. */
__attribute__((target("avx512f,fma"))) static void
tile_12x32(const float *band, const int32_t *off, const int32_t *kidx, int64_t nt, const float *w,
           int64_t K, int mr, const run *r0, const run *r1, float *y, int64_t ldy,
           const float *bias) {
    const float *w0 = w, *w1 = w + (mr > 1 ? 1 : mr - 1) * K, *w2 = w + (mr > 2 ? 2 : mr - 1) * K,
                *w3 = w + (mr > 3 ? 3 : mr - 1) * K, *w4 = w + (mr > 4 ? 4 : mr - 1) * K,
                *w5 = w + (mr > 5 ? 5 : mr - 1) * K, *w6 = w + (mr > 6 ? 6 : mr - 1) * K,
                *w7 = w + (mr > 7 ? 7 : mr - 1) * K, *w8 = w + (mr > 8 ? 8 : mr - 1) * K,
                *w9 = w + (mr > 9 ? 9 : mr - 1) * K, *w10 = w + (mr > 10 ? 10 : mr - 1) * K,
                *w11 = w + (mr > 11 ? 11 : mr - 1) * K;
    const float *b0 = band + r0->band, *b1 = band + r1->band;
    ACC_DECL(0);
    ACC_DECL(1);
    ACC_DECL(2);
    ACC_DECL(3);
    ACC_DECL(4);
    ACC_DECL(5);
    ACC_DECL(6);
    ACC_DECL(7);
    ACC_DECL(8);
    ACC_DECL(9);
    ACC_DECL(10);
    ACC_DECL(11);
    for (int64_t i = 0; i < nt; i++) {
        const int32_t o = off[i], k = kidx[i];
        const int32_t opf = off[i + PF_TAPS];
        _mm_prefetch((const char *)(b0 + opf), _MM_HINT_T0);
        _mm_prefetch((const char *)(b1 + opf), _MM_HINT_T0);
        const __m512 x0 = _mm512_loadu_ps(b0 + o), x1 = _mm512_loadu_ps(b1 + o);
        ACC_FMA(0);
        ACC_FMA(1);
        ACC_FMA(2);
        ACC_FMA(3);
        ACC_FMA(4);
        ACC_FMA(5);
        ACC_FMA(6);
        ACC_FMA(7);
        ACC_FMA(8);
        ACC_FMA(9);
        ACC_FMA(10);
        ACC_FMA(11);
    }
    const __mmask16 m0 = (__mmask16)((1u << r0->n) - 1u), m1 = (__mmask16)((1u << r1->n) - 1u);
    ACC_STORE(0);
    ACC_STORE(1);
    ACC_STORE(2);
    ACC_STORE(3);
    ACC_STORE(4);
    ACC_STORE(5);
    ACC_STORE(6);
    ACC_STORE(7);
    ACC_STORE(8);
    ACC_STORE(9);
    ACC_STORE(10);
    ACC_STORE(11);
}

/* The same for up to 4 output channels and 6 runs (96 pixels): the narrow last convolution
 * (3 channels) would use a quarter of the 12-row tile. */
__attribute__((target("avx512f,fma"))) static void
tile_4x96(const float *band, const int32_t *off, const int32_t *kidx, int64_t nt, const float *w,
          int64_t K, int mr, const run *rs, float *y, int64_t ldy, const float *bias) {
    const float *w0 = w, *w1 = w + (mr > 1 ? 1 : mr - 1) * K, *w2 = w + (mr > 2 ? 2 : mr - 1) * K,
                *w3 = w + (mr > 3 ? 3 : mr - 1) * K;
    const float *b[SMALL_RUNS];
    __m512 acc[4][SMALL_RUNS];
    for (int j = 0; j < SMALL_RUNS; j++) {
        b[j] = band + rs[j].band;
        for (int r = 0; r < 4; r++) acc[r][j] = _mm512_setzero_ps();
    }
    for (int64_t i = 0; i < nt; i++) {
        const int32_t o = off[i], k = kidx[i];
        const __m512 v0 = _mm512_set1_ps(w0[k]), v1 = _mm512_set1_ps(w1[k]),
                     v2 = _mm512_set1_ps(w2[k]), v3 = _mm512_set1_ps(w3[k]);
#pragma GCC unroll 6
        for (int j = 0; j < SMALL_RUNS; j++) {
            const __m512 x = _mm512_loadu_ps(b[j] + o);
            acc[0][j] = _mm512_fmadd_ps(v0, x, acc[0][j]);
            acc[1][j] = _mm512_fmadd_ps(v1, x, acc[1][j]);
            acc[2][j] = _mm512_fmadd_ps(v2, x, acc[2][j]);
            acc[3][j] = _mm512_fmadd_ps(v3, x, acc[3][j]);
        }
    }
    for (int r = 0; r < mr; r++) {
        const __m512 bv = _mm512_set1_ps(bias ? bias[r] : 0.0f);
        for (int j = 0; j < SMALL_RUNS; j++)
            _mm512_mask_storeu_ps(y + r * ldy + rs[j].y, (__mmask16)((1u << rs[j].n) - 1u),
                                  _mm512_add_ps(acc[r][j], bv));
    }
}

/* Copies input rows [ih0, ih0 + BR) (in padded coordinates: row ih0 + br is input row
 * ih0 + br - pad_h) of every real frame into band [Tin][Ci][FS / Wp][Wp], zeros outside the
 * input. */
static void fill_band(float *band, const float *cd, int64_t Tc, const float *xd, int64_t Tx,
                      int64_t Ci, int64_t H, int64_t W, int64_t ph, int64_t pw, int64_t ih0,
                      int64_t BR, int64_t Wp, int64_t FS) {
    const int64_t Tin = Tc + Tx, HW = H * W;
#pragma omp parallel for schedule(static)
    for (int64_t fc = 0; fc < Tin * Ci; fc++) {
        const int64_t f = fc / Ci, ci = fc % Ci;
        const float *src = f < Tc ? cd + (ci * Tc + f) * HW : xd + (ci * Tx + (f - Tc)) * HW;
        float *dst = band + fc * FS;
        for (int64_t br = 0; br < BR; br++) {
            const int64_t ih = ih0 + br - ph;
            float *d = dst + br * Wp;
            if (ih < 0 || ih >= H) {
                memset(d, 0, sizeof(float) * (size_t)Wp);
                continue;
            }
            if (pw > 0) {
                memset(d, 0, sizeof(float) * (size_t)pw);
                memset(d + pw + W, 0, sizeof(float) * (size_t)pw);
            }
            memcpy(d + pw, src + ih * W, sizeof(float) * (size_t)W);
        }
    }
}

wr_status wr_conv3d_direct(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *cache,
                           const wr_tensor *w, const wr_tensor *b, const wr_conv_params *p) {
    const int64_t Ci = x->shape[0], Tx = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t Co = w->shape[0], kt = w->ndim == 5 ? w->shape[2] : 1, kh = w->shape[w->ndim - 2],
                  kw = w->shape[w->ndim - 1];
    const int64_t Tc = cache ? cache->shape[1] : 0, Tin = Tc + Tx;
    const int64_t To = y->shape[1], Ho = y->shape[2], Wo = y->shape[3], HWo = Ho * Wo;
    const int64_t K = Ci * kt * kh * kw, Wp = W + 2 * p->pad_w;
    const float *bias = b ? b->data : NULL;
    float *yd = y->data;
    if (To == 0 || HWo == 0 || Co == 0) return WR_OK;

    const float *wf = NULL;
    WR_TRY(wr_conv_weight_f32(be, w, Co * K, &wf));

    /* tap tables for each dt0 (taps on dt < dt0 are zero frames), weight order (ci, dt, dh, dw) */
    const int64_t ndt0 = p->pad_t < kt ? p->pad_t + 1 : kt;
    int32_t *kidx = NULL, *off = NULL;
    int64_t *ntaps = NULL;
    WR_TRY(
        wr_scratch_get(be, sizeof(int32_t) * (size_t)(ndt0 * K), "conv3d (taps)", (void **)&kidx));
    WR_TRY(wr_scratch_get(be, sizeof(int32_t) * (size_t)(ndt0 * K + PF_TAPS), /* + prefetch */
                          "conv3d (tap offsets)", (void **)&off));
    WR_TRY(wr_scratch_get(be, sizeof(int64_t) * (size_t)ndt0, "conv3d (taps)", (void **)&ntaps));
    memset(off, 0, sizeof(int32_t) * (size_t)(ndt0 * K + PF_TAPS));

    /* band rows: as many output rows (each with its runs) as fit WR_CONV_BAND_BYTES and the
     * scratch left, at least one */
    const int64_t runs_per_row = (Wo + RUN - 1) / RUN;
    const int64_t row_bytes = (int64_t)sizeof(float) * Tin * Ci * Wp;
    const int64_t fixed = (kh - 1) * row_bytes + (int64_t)sizeof(float) * (2 * RUN + kw) +
                          (int64_t)sizeof(run) * SMALL_RUNS + 192; /* + alignment */
    int64_t budget = (int64_t)wr_scratch_left(be);
    if (budget > (int64_t)WR_CONV_BAND_BYTES) budget = (int64_t)WR_CONV_BAND_BYTES;
    int64_t rows = (budget - fixed) / (row_bytes + (int64_t)sizeof(run) * runs_per_row);
    if (rows < 1) rows = 1;
    if (rows > Ho) rows = Ho;
    const int64_t BR = rows + kh - 1, FS = BR * Wp;
    const int64_t max_runs = rows * runs_per_row + SMALL_RUNS;
    float *band = NULL;
    run *runs = NULL;
    WR_TRY(wr_scratch_get(be, sizeof(float) * (size_t)(Tin * Ci * FS + 2 * RUN + kw),
                          "conv3d (input band)", (void **)&band));
    WR_TRY(wr_scratch_get(be, sizeof(run) * (size_t)max_runs, "conv3d (runs)", (void **)&runs));
    memset(band + Tin * Ci * FS, 0, sizeof(float) * (size_t)(2 * RUN + kw));
    for (int64_t d0 = 0; d0 < ndt0; d0++) {
        int64_t n = 0;
        for (int64_t ci = 0; ci < Ci; ci++)
            for (int64_t dt = d0; dt < kt; dt++)
                for (int64_t dh = 0; dh < kh; dh++)
                    for (int64_t dw = 0; dw < kw; dw++) {
                        kidx[d0 * K + n] = (int32_t)(((ci * kt + dt) * kh + dh) * kw + dw);
                        /* relative to frame t - pad_t + d0, the first real frame read */
                        off[d0 * K + n] = (int32_t)(((dt - d0) * Ci + ci) * FS + dh * Wp + dw);
                        n++;
                    }
        ntaps[d0] = n;
    }

    for (int64_t oh0 = 0; oh0 < Ho; oh0 += rows) {
        const int64_t nrows = Ho - oh0 < rows ? Ho - oh0 : rows;
        fill_band(band, cache ? cache->data : NULL, Tc, x->data, Tx, Ci, H, W, p->pad_h, p->pad_w,
                  oh0, nrows + kh - 1, Wp, FS);
        /* the band's runs, frame 0 (a frame adds t * (Ci * FS) / t * HWo) */
        int64_t nr = 0;
        for (int64_t r = 0; r < nrows; r++)
            for (int64_t ow = 0; ow < Wo; ow += RUN) {
                runs[nr].band = r * Wp + ow;
                runs[nr].y = (oh0 + r) * Wo + ow;
                runs[nr].n = (int)(Wo - ow < RUN ? Wo - ow : RUN);
                nr++;
            }
        /* work items: (output frame, tile of runs, group of panels), enough to balance */
        const int small = Co <= 4;
        const int64_t per_tile = small ? SMALL_RUNS : 2, mr_tile = small ? 4 : MR;
        const int64_t npanels = (Co + mr_tile - 1) / mr_tile;
        const int64_t ntiles = (nr + per_tile - 1) / per_tile;
        for (int64_t j = nr; j < ntiles * per_tile; j++) { /* dummy partners: nothing stored */
            runs[j] = runs[nr - 1];
            runs[j].n = 0;
        }
#ifdef _OPENMP
        const int64_t items_wanted = 8 * (int64_t)omp_get_max_threads();
#else
        const int64_t items_wanted = 1;
#endif
        int64_t ngroups = (items_wanted + To * ntiles - 1) / (To * ntiles);
        if (ngroups > npanels) ngroups = npanels;
        const int64_t per_group = (npanels + ngroups - 1) / ngroups;
        const int64_t nitems = To * ntiles * ngroups;
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t it = 0; it < nitems; it++) {
            const int64_t t = it / (ntiles * ngroups), tl = (it / ngroups) % ntiles,
                          grp = it % ngroups;
            const int64_t d0 = p->pad_t - t > 0 ? p->pad_t - t : 0;
            if (d0 >= kt) continue; /* only zero frames: the bias, set below */
            const int64_t nt = ntaps[d0];
            const int32_t *ki = kidx + d0 * K, *of = off + d0 * K;
            const int64_t fbase = (t - p->pad_t + d0) * Ci * FS, ybase = t * HWo;
            run rr[SMALL_RUNS];
            for (int64_t j = 0; j < per_tile; j++) {
                rr[j] = runs[tl * per_tile + j];
                rr[j].band += fbase;
                rr[j].y += ybase;
            }
            const int64_t p_lo = grp * per_group,
                          p_hi = p_lo + per_group < npanels ? p_lo + per_group : npanels;
            for (int64_t pn = p_lo; pn < p_hi; pn++) {
                const int64_t co = pn * mr_tile;
                const int mr = (int)(Co - co < mr_tile ? Co - co : mr_tile);
                if (small)
                    tile_4x96(band, of, ki, nt, wf + co * K, K, mr, rr, yd + co * To * HWo,
                              To * HWo, bias ? bias + co : NULL);
                else
                    tile_12x32(band, of, ki, nt, wf + co * K, K, mr, &rr[0], &rr[1],
                               yd + co * To * HWo, To * HWo, bias ? bias + co : NULL);
            }
        }
    }
    /* output frames whose whole window is zero frames: the bias alone */
    for (int64_t t = 0; t < To && p->pad_t - t >= kt; t++)
        for (int64_t c = 0; c < Co; c++) {
            float *r = yd + c * To * HWo + t * HWo;
            for (int64_t i = 0; i < HWo; i++) r[i] = bias ? bias[c] : 0.0f;
        }
    return WR_OK;
}

#else

wr_status wr_conv3d_direct(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *cache,
                           const wr_tensor *w, const wr_tensor *b, const wr_conv_params *p) {
    (void)be, (void)y, (void)x, (void)cache, (void)w, (void)b, (void)p;
    return WR_FAIL(WR_ERR_UNSUPPORTED, "conv3d: the direct kernel needs x86-64 AVX-512");
}

#endif

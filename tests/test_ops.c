/*
 * test_ops.c — CPU backend ops on paths the DiT goldens do not reach: attention with a key
 * mask, the log-sum-exp output, chunk sizes that do not divide the lengths, fully masked
 * rows; matmul with every weight dtype and odd panel splits; patch embedding and unpatchify
 * as exact inverses; the vectorised exp behind GELU, SiLU and softmax (vmath.h) over its whole
 * range, and GELU/SiLU in their tails; conv3d (both CPU implementations: implicit GEMM and the
 * direct AVX-512 kernel) over paddings, caches, zero frames, odd widths, channel counts off the
 * kernel's tile and several row bands. References are plain float64 loops written here (the
 * straight definition of each op); model math itself is checked against PyTorch in test_dit.c.
 * The backend is wr_backend_create's (WR_STRICT_DEVICE picks the strict / async CPU modes): every
 * tensor is device memory, filled by wr_upload and read back by wr_download.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "harness.h"
#include "kernels/backend.h"
#include "kernels/cpu/conv_internal.h"
#include "kernels/cpu/vmath.h"
#include "kernels/ops.h"

static wr_backend *g_be;
static uint64_t g_rng = 88172645463325252ull;

static float frand(void) { /* xorshift64, uniform in [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *randv(int64_t n) {
    float *p = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

/* ---- device memory: every tensor an op sees comes from the backend's alloc, reached only
 * through wr_upload / wr_download, so the tests hold on the strict and async device modes
 * (WR_STRICT_DEVICE=1 / async) too ---- */

/* A device tensor of the shape, with host's bytes uploaded (host NULL: uninitialised). */
static wr_tensor dev_tensor(const void *host, wr_dtype dt, int ndim, const int64_t *shape) {
    wr_tensor t = wr_tensor_make(NULL, dt, ndim, shape);
    const size_t nb = wr_tensor_nbytes(&t);
    ck_assert_int_eq(g_be->iface->alloc(g_be, &t.data, nb ? nb : 1), WR_OK);
    if (host) ck_assert_int_eq(wr_upload(g_be, t.data, host, nb), WR_OK);
    return t;
}

/* t's bytes into host */
static void dev_read(void *host, const wr_tensor *t) {
    ck_assert_int_eq(wr_download(g_be, host, t->data, wr_tensor_nbytes(t)), WR_OK);
}

static void dev_free(wr_tensor *t) {
    if (t->data) g_be->iface->free(g_be, t->data);
    t->data = NULL;
}

static double nmse(const float *a, const double *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += b[i] * b[i];
    }
    return den > 0 ? num / den : num;
}

/* float64 reference attention with mask and position bias pb [NH, Lq + Lk - 1] (j - i + Lq - 1)
 * or NULL; lse [NH, Lq] */
static void attn_ref(double *out, double *lse, const float *q, const float *k, const float *v,
                     const uint8_t *mask, const float *pb, int64_t Lq, int64_t Lk, int64_t NH,
                     int64_t HD, double scale) {
    double *s = malloc(sizeof(double) * (size_t)Lk);
    for (int64_t h = 0; h < NH; h++)
        for (int64_t i = 0; i < Lq; i++) {
            double mx = -INFINITY;
            for (int64_t j = 0; j < Lk; j++) {
                double d = 0;
                for (int64_t e = 0; e < HD; e++)
                    d += (double)q[(i * NH + h) * HD + e] * k[(j * NH + h) * HD + e];
                double bias = pb ? pb[h * (Lq + Lk - 1) + j - i + Lq - 1] : 0.0;
                s[j] = mask && !mask[j] ? -INFINITY : d * scale + bias;
                if (s[j] > mx) mx = s[j];
            }
            double sum = 0;
            for (int64_t j = 0; j < Lk; j++) sum += s[j] == -INFINITY ? 0 : exp(s[j] - mx);
            for (int64_t e = 0; e < HD; e++) {
                double acc = 0;
                for (int64_t j = 0; j < Lk; j++)
                    if (s[j] != -INFINITY) acc += exp(s[j] - mx) / sum * v[(j * NH + h) * HD + e];
                out[(i * NH + h) * HD + e] = sum > 0 ? acc : 0.0;
            }
            lse[h * Lq + i] = sum > 0 ? mx + log(sum) : -INFINITY;
        }
    free(s);
}

START_TEST(test_attention_mask_chunks_lse) {
    const int64_t Lq = 37, Lk = 53, NH = 3, HD = 8;
    float *q = randv(Lq * NH * HD), *k = randv(Lk * NH * HD), *v = randv(Lk * NH * HD);
    uint8_t mask[53];
    for (int j = 0; j < Lk; j++) mask[j] = (j % 5) != 3 && j < 50; /* holes and a padded tail */
    double *ro = malloc(sizeof(double) * (size_t)(Lq * NH * HD)),
           *rl = malloc(sizeof(double) * (size_t)(NH * Lq));
    const double scale = 1.0 / sqrt((double)HD);
    float *pb = randv(NH * (Lq + Lk - 1));
    wr_tensor pbt = dev_tensor(pb, WR_DTYPE_F32, 2, (int64_t[]){NH, Lq + Lk - 1});
    wr_tensor qt = dev_tensor(q, WR_DTYPE_F32, 3, (int64_t[]){Lq, NH, HD});
    wr_tensor kt = dev_tensor(k, WR_DTYPE_F32, 3, (int64_t[]){Lk, NH, HD});
    wr_tensor vt = dev_tensor(v, WR_DTYPE_F32, 3, (int64_t[]){Lk, NH, HD});
    wr_tensor ot = dev_tensor(NULL, WR_DTYPE_F32, 3, (int64_t[]){Lq, NH, HD});
    wr_tensor lt = dev_tensor(NULL, WR_DTYPE_F32, 2, (int64_t[]){NH, Lq});
    const int64_t chunks[][2] = {{0, 0}, {1, 1}, {5, 7}, {16, 64}, {64, 3}};
    for (size_t c = 0; c < 2 * sizeof chunks / sizeof chunks[0]; c++) {
        /* the first pass without, the second with a relative position bias */
        const int with_bias = c >= sizeof chunks / sizeof chunks[0];
        const int64_t *ch = chunks[c % (sizeof chunks / sizeof chunks[0])];
        if (c == 0 || c == sizeof chunks / sizeof chunks[0])
            attn_ref(ro, rl, q, k, v, mask, with_bias ? pb : NULL, Lq, Lk, NH, HD, scale);
        float *o = calloc((size_t)(Lq * NH * HD), sizeof(float));
        float *l = calloc((size_t)(NH * Lq), sizeof(float));
        wr_attn_params p = {(float)scale, mask, ch[0], ch[1], with_bias ? &pbt : NULL, 0};
        ck_assert_int_eq(wr_op_attention(g_be, &ot, &lt, &qt, &kt, &vt, &p), WR_OK);
        dev_read(o, &ot);
        dev_read(l, &lt);
        double e_o = nmse(o, ro, Lq * NH * HD), e_l = nmse(l, rl, NH * Lq);
        /* f32 vs f64 of the same sums: measured ~1e-14; 1e-10 leaves room for BLAS kernels */
        ck_assert_msg(e_o < 1e-10 && e_l < 1e-10,
                      "chunks %lld/%lld bias %d: nmse out %.3e lse %.3e", (long long)ch[0],
                      (long long)ch[1], with_bias, e_o, e_l);
        free(o);
        free(l);
    }
    /* every key masked: output zeros, lse -inf, no NaN */
    memset(mask, 0, sizeof mask);
    float *o = malloc(sizeof(float) * (size_t)(Lq * NH * HD)),
          *l = malloc(sizeof(float) * (size_t)(NH * Lq));
    wr_attn_params p = {(float)scale, mask, 4, 4, &pbt, 0};
    ck_assert_int_eq(wr_op_attention(g_be, &ot, &lt, &qt, &kt, &vt, &p), WR_OK);
    dev_read(o, &ot);
    dev_read(l, &lt);
    for (int64_t i = 0; i < Lq * NH * HD; i++) ck_assert(o[i] == 0.0f);
    for (int64_t i = 0; i < NH * Lq; i++) ck_assert(isinf(l[i]) && l[i] < 0);
    free(o);
    free(l);
    dev_free(&pbt);
    dev_free(&qt);
    dev_free(&kt);
    dev_free(&vt);
    dev_free(&ot);
    dev_free(&lt);
    free(q);
    free(k);
    free(v);
    free(ro);
    free(rl);
    free(pb);
}
END_TEST

START_TEST(test_matmul_weight_dtypes) {
    const int64_t M = 19, K = 37, N = 23;
    float *x = randv(M * K), *w = randv(N * K), *b = randv(N);
    const wr_dtype kinds[] = {WR_DTYPE_F32, WR_DTYPE_BF16, WR_DTYPE_F16, WR_DTYPE_F8_E4M3,
                              WR_DTYPE_F8_E5M2};
    for (size_t kk = 0; kk < 5; kk++) {
        wr_dtype d = kinds[kk];
        void *wn = malloc(wr_dtype_size(d) * (size_t)(N * K));
        float *wq = malloc(sizeof(float) * (size_t)(N * K));
        wr_dtype_convert(wn, d, w, WR_DTYPE_F32, N * K);
        wr_dtype_convert(wq, WR_DTYPE_F32, wn, d, N * K); /* the values the op must use */
        double *ref = malloc(sizeof(double) * (size_t)(M * N));
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double acc = b[n];
                for (int64_t i = 0; i < K; i++) acc += (double)x[m * K + i] * wq[n * K + i];
                ref[m * N + n] = acc;
            }
        float *y = malloc(sizeof(float) * (size_t)(M * N));
        wr_tensor xt = dev_tensor(x, WR_DTYPE_F32, 2, (int64_t[]){M, K});
        wr_tensor wt = dev_tensor(wn, d, 2, (int64_t[]){N, K});
        wr_tensor bt = dev_tensor(b, WR_DTYPE_F32, 1, (int64_t[]){N});
        wr_tensor yt = dev_tensor(NULL, WR_DTYPE_F32, 2, (int64_t[]){M, N});
        ck_assert_int_eq(wr_op_matmul(g_be, &yt, &xt, &wt, &bt), WR_OK);
        dev_read(y, &yt);
        dev_free(&xt);
        dev_free(&wt);
        dev_free(&bt);
        dev_free(&yt);
        double e = nmse(y, ref, M * N);
        ck_assert_msg(e < 1e-12, "%s weights: nmse %.3e", wr_dtype_name(d), e);
        free(wn);
        free(wq);
        free(ref);
        free(y);
    }
    free(x);
    free(w);
    free(b);
}
END_TEST

START_TEST(test_patchify_roundtrip) {
    /* identity patch embedding (D = C*pt*ph*pw, w = I) followed by unpatchify returns x */
    const int64_t C = 3, F = 4, H = 6, W = 10, pt = 2, ph = 2, pw = 2, P = C * pt * ph * pw;
    const int64_t L = (F / pt) * (H / ph) * (W / pw);
    float *x = randv(C * F * H * W), *w = calloc((size_t)(P * P), sizeof(float));
    float *y = malloc(sizeof(float) * (size_t)(L * P)),
          *back = malloc(sizeof(float) * (size_t)(C * F * H * W));
    /* patch feature order is (c, a, i, j); unpatchify expects (a, i, j, c): permute in w */
    for (int64_t c = 0; c < C; c++)
        for (int64_t r = 0; r < pt * ph * pw; r++) w[(r * C + c) * P + c * pt * ph * pw + r] = 1.0f;
    wr_tensor xt = dev_tensor(x, WR_DTYPE_F32, 4, (int64_t[]){C, F, H, W});
    wr_tensor wt = dev_tensor(w, WR_DTYPE_F32, 5, (int64_t[]){P, C, pt, ph, pw});
    wr_tensor yt = dev_tensor(NULL, WR_DTYPE_F32, 2, (int64_t[]){L, P});
    wr_tensor bt = dev_tensor(NULL, WR_DTYPE_F32, 4, (int64_t[]){C, F, H, W});
    ck_assert_int_eq(wr_op_patch_embed(g_be, &yt, &xt, &wt, NULL), WR_OK);
    ck_assert_int_eq(wr_op_unpatchify(g_be, &bt, &yt, (int)pt, (int)ph, (int)pw), WR_OK);
    dev_read(y, &yt);
    dev_read(back, &bt);
    dev_free(&xt);
    dev_free(&wt);
    dev_free(&yt);
    dev_free(&bt);
    ck_assert(memcmp(x, back, sizeof(float) * (size_t)(C * F * H * W)) == 0);
    free(x);
    free(w);
    free(y);
    free(back);
}
END_TEST

/* distance in units in the last place of the float nearest to ref */
static double ulps(float y, double ref) {
    float r = (float)ref;
    double ulp = (double)nextafterf(r, INFINITY) - (double)r;
    return fabs((double)y - ref) / ulp;
}

START_TEST(test_vexpf) {
    /* every 97th float in [-87, 88] (~10 M values, all binades): < 1 ulp of the exact e^x */
    double worst = 0;
    float at = 0;
    for (float x = -87.0f; x <= 88.0f;) {
        double e = ulps(wr_vexpf(x), exp((double)x));
        if (e > worst) worst = e, at = x;
        uint32_t u;
        memcpy(&u, &x, sizeof u);
        u = x < 0 ? (u > 97u + 0x80000000u ? u - 97u : 0u) : u + 97u;
        memcpy(&x, &u, sizeof x);
    }
    ck_assert_msg(worst < 1.0, "wr_vexpf: %.3f ulp at %a", worst, (double)at);
    ck_assert_float_eq(wr_vexpf(0.0f), 1.0f);
    ck_assert(isnan(wr_vexpf(NAN)));
    /* outside the clamp: a tiny positive floor below, e^88 above, never inf or a denormal */
    ck_assert(wr_vexpf(-1000.0f) > 0.0f && wr_vexpf(-1000.0f) < 2e-38f);
    ck_assert(wr_vexpf(-INFINITY) > 0.0f && wr_vexpf(-INFINITY) < 2e-38f);
    ck_assert_float_eq(wr_vexpf(1000.0f), wr_vexpf(88.0f));
    ck_assert(isfinite(wr_vexpf(INFINITY)));
}
END_TEST

START_TEST(test_gelu_silu_range) {
    /* the ops run the vectorised loops; compare with the textbook float64 formulas */
    const int64_t n = 40001;
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = -20.0f + 40.0f * (float)i / (float)(n - 1);
    x[0] = -1e4f, x[1] = 1e4f, x[2] = -0.0f, x[3] = 1e-30f;
    wr_tensor xt = dev_tensor(x, WR_DTYPE_F32, 1, (int64_t[]){n});
    wr_tensor yt = dev_tensor(NULL, WR_DTYPE_F32, 1, (int64_t[]){n});
    for (int op = 0; op < 2; op++) {
        ck_assert_int_eq(op ? wr_op_silu(g_be, &yt, &xt) : wr_op_gelu_tanh(g_be, &yt, &xt), WR_OK);
        dev_read(y, &yt);
        for (int64_t i = 0; i < n; i++) {
            double v = x[i];
            double ref =
                op ? v / (1.0 + exp(-v))
                   : 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
            /* relative 1e-6: the float rounding of the exp argument, amplified by |2u| <= 87 in
               the negative tail; absolute 1e-7 where the value is below float's resolution */
            ck_assert_msg(fabs(y[i] - ref) <= 1e-6 * fabs(ref) + 1e-7, "%s(%a) = %a, want %a",
                          op ? "silu" : "gelu_tanh", v, (double)y[i], ref);
        }
    }
    dev_free(&xt);
    dev_free(&yt);
    free(x);
    free(y);
}
END_TEST

typedef struct conv_case {
    int64_t ci, co, tc, tx, h, w, kt, kh, kw, pad_t, ph, pw;
    int w4d, bf16, bias;
} conv_case;

/* float64 reference: frames [pad_t zeros | cache | x], stride 1 */
static void conv_ref(double *y, const float *x, const float *cache, const float *wt, const float *b,
                     const conv_case *c, int64_t To, int64_t Ho, int64_t Wo) {
    const int64_t Tin = c->pad_t + c->tc + c->tx;
    for (int64_t o = 0; o < c->co; o++)
        for (int64_t t = 0; t < To; t++)
            for (int64_t oh = 0; oh < Ho; oh++)
                for (int64_t ow = 0; ow < Wo; ow++) {
                    double acc = b ? b[o] : 0.0;
                    for (int64_t i = 0; i < c->ci; i++)
                        for (int64_t dt = 0; dt < c->kt; dt++) {
                            const int64_t f = t + dt;
                            if (f < c->pad_t || f >= Tin) continue;
                            const int64_t fr = f - c->pad_t;
                            const float *src = fr < c->tc
                                                   ? cache + (i * c->tc + fr) * c->h * c->w
                                                   : x + (i * c->tx + fr - c->tc) * c->h * c->w;
                            for (int64_t dh = 0; dh < c->kh; dh++)
                                for (int64_t dw = 0; dw < c->kw; dw++) {
                                    const int64_t ih = oh + dh - c->ph, iw = ow + dw - c->pw;
                                    if (ih < 0 || ih >= c->h || iw < 0 || iw >= c->w) continue;
                                    acc +=
                                        (double)wt[(((o * c->ci + i) * c->kt + dt) * c->kh + dh) *
                                                       c->kw +
                                                   dw] *
                                        src[ih * c->w + iw];
                                }
                        }
                    y[((o * To) + t) * Ho * Wo + oh * Wo + ow] = acc;
                }
}

START_TEST(test_conv3d_impls) {
    static const conv_case cases[] = {
        /* ci co tc tx h  w  kt kh kw pt ph pw w4d bf16 bias */
        {5, 7, 0, 1, 6, 9, 3, 3, 3, 2, 1, 1, 0, 0, 1},     /* first frame: two zero frames */
        {13, 25, 2, 1, 5, 37, 3, 3, 3, 0, 1, 1, 0, 1, 1},  /* cache, runs 16+16+5, 3 panels */
        {8, 12, 2, 2, 3, 16, 3, 3, 3, 0, 1, 1, 0, 0, 1},   /* two output frames share inputs */
        {16, 13, 1, 2, 4, 4, 3, 1, 1, 0, 0, 0, 0, 0, 0},   /* time conv, no bias */
        {6, 5, 0, 3, 7, 5, 1, 3, 3, 0, 1, 1, 1, 0, 1},     /* 2-D weight over 3 frames */
        {4, 3, 0, 2, 2, 2, 3, 3, 3, 4, 1, 1, 0, 0, 1},     /* frames with only zero taps */
        {9, 14, 0, 2, 5, 5, 1, 1, 1, 0, 0, 0, 0, 1, 1},    /* pointwise */
        {3, 2, 1, 1, 4, 33, 3, 3, 3, 1, 0, 2, 0, 0, 1},    /* unequal paddings, wide pad */
        {64, 5, 2, 1, 40, 300, 3, 3, 3, 0, 1, 1, 0, 0, 1}, /* several row bands */
        {7, 3, 2, 1, 9, 21, 3, 3, 3, 0, 1, 1, 0, 1, 1},    /* 3 channels: the 4 x 96 tile */
        {5, 4, 0, 2, 3, 50, 3, 3, 3, 2, 1, 1, 0, 0, 0},    /* 4 channels, 4 runs per row */
    };
    const int impls[2] = {WR_CONV_GEMM, WR_CONV_DIRECT};
    for (size_t ic = 0; ic < sizeof cases / sizeof cases[0]; ic++) {
        const conv_case *c = &cases[ic];
        const int64_t To = c->pad_t + c->tc + c->tx - c->kt + 1;
        const int64_t Ho = c->h + 2 * c->ph - c->kh + 1, Wo = c->w + 2 * c->pw - c->kw + 1;
        const int64_t K = c->ci * c->kt * c->kh * c->kw, ny = c->co * To * Ho * Wo;
        float *x = randv(c->ci * c->tx * c->h * c->w);
        float *cache = c->tc ? randv(c->ci * c->tc * c->h * c->w) : NULL;
        float *wt = randv(c->co * K), *b = randv(c->co);
        uint16_t *wb = malloc(sizeof(uint16_t) * (size_t)(c->co * K));
        if (c->bf16) { /* the values the op must use */
            wr_dtype_convert(wb, WR_DTYPE_BF16, wt, WR_DTYPE_F32, c->co * K);
            wr_dtype_convert(wt, WR_DTYPE_F32, wb, WR_DTYPE_BF16, c->co * K);
        }
        double *ref = malloc(sizeof(double) * (size_t)ny);
        conv_ref(ref, x, cache, wt, c->bias ? b : NULL, c, To, Ho, Wo);
        float *out[2];
        for (int m = 0; m < 2; m++) {
            if (impls[m] == WR_CONV_DIRECT && !wr_conv_direct_supported()) {
                out[m] = NULL;
                continue;
            }
            wr_conv_set_impl(impls[m]);
            out[m] = malloc(sizeof(float) * (size_t)ny);
            for (int64_t i = 0; i < ny; i++) out[m][i] = NAN; /* every output must be written */
            wr_tensor tx = dev_tensor(x, WR_DTYPE_F32, 4, (int64_t[]){c->ci, c->tx, c->h, c->w});
            wr_tensor tcache =
                wr_tensor_make(NULL, WR_DTYPE_F32, 4, (int64_t[]){c->ci, c->tc, c->h, c->w});
            if (c->tc)
                tcache = dev_tensor(cache, WR_DTYPE_F32, 4, (int64_t[]){c->ci, c->tc, c->h, c->w});
            wr_tensor tw =
                c->w4d
                    ? dev_tensor(c->bf16 ? (void *)wb : wt, c->bf16 ? WR_DTYPE_BF16 : WR_DTYPE_F32,
                                 4, (int64_t[]){c->co, c->ci, c->kh, c->kw})
                    : dev_tensor(c->bf16 ? (void *)wb : wt, c->bf16 ? WR_DTYPE_BF16 : WR_DTYPE_F32,
                                 5, (int64_t[]){c->co, c->ci, c->kt, c->kh, c->kw});
            wr_tensor tb = dev_tensor(b, WR_DTYPE_F32, 1, (int64_t[]){c->co});
            wr_tensor ty = dev_tensor(out[m], WR_DTYPE_F32, 4, (int64_t[]){c->co, To, Ho, Wo});
            wr_conv_params p = {c->pad_t, c->ph, c->pw};
            ck_assert_int_eq(
                wr_op_conv3d(g_be, &ty, &tx, c->tc ? &tcache : NULL, &tw, c->bias ? &tb : NULL, &p),
                WR_OK);
            dev_read(out[m], &ty);
            dev_free(&tx);
            dev_free(&tcache);
            dev_free(&tw);
            dev_free(&tb);
            dev_free(&ty);
            const double e = nmse(out[m], ref, ny);
            ck_assert_msg(e <= 1e-11, "conv case %zu (%s): nmse %.3g", ic, m ? "direct" : "gemm",
                          e);
        }
        wr_conv_set_impl(WR_CONV_AUTO);
        for (int m = 0; m < 2; m++) free(out[m]);
        free(x), free(cache), free(wt), free(b), free(wb), free(ref);
    }
    if (!wr_conv_direct_supported())
        fprintf(stderr, "test_conv3d_impls: this CPU has no AVX-512F; the direct kernel was not "
                        "tested\n");
}
END_TEST

START_TEST(test_unsupported_slot) {
    /* a backend without a slot answers WR_ERR_UNSUPPORTED naming the op, never a fallback */
    wr_backend_iface partial = *g_be->iface;
    partial.gelu_tanh = NULL;
    wr_backend be = *g_be;
    be.iface = &partial;
    wr_tensor t = dev_tensor(NULL, WR_DTYPE_F32, 1, (int64_t[]){4});
    ck_assert_int_eq(wr_op_gelu_tanh(&be, &t, &t), WR_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "gelu_tanh"));
    dev_free(&t);
}
END_TEST

static void setup(void) {
    ck_assert_int_eq(wr_backend_create(&g_be, WR_BACKEND_CPU, 0), WR_OK);
}

static void teardown(void) {
    wr_backend_free(g_be);
}

Suite *wr_test_suite(void) {
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("cpu");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_attention_mask_chunks_lse);
    tcase_add_test(tc, test_matmul_weight_dtypes);
    tcase_add_test(tc, test_patchify_roundtrip);
    tcase_add_test(tc, test_unsupported_slot);
    tcase_add_test(tc, test_vexpf);
    tcase_add_test(tc, test_gelu_silu_range);
    tcase_add_test(tc, test_conv3d_impls);
    suite_add_tcase(s, tc);
    return s;
}

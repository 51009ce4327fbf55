/* matmul_cuda.c — the CUDA matmul slot through cuBLASLt (host glue, C11).
 *
 * y[M,N] = alpha * x[M,K] . w[N,K]^T (+ b[N]), f32 accumulation (CUBLAS_COMPUTE_32F, no TF32),
 * the bias fused as cuBLASLt's BIAS epilogue. The GEMM's input type T is F32 when x and y are
 * both F32 (the f32 path the CPU backend's sgemm gives) and BF16 otherwise (the GPU's GEMM
 * dtype). An operand stored in another dtype is converted into T panel by panel in the op
 * scratch (rows of w, rows of x), one GEMM per panel pair: the models' per-block upcast hands
 * narrow block weights over already in the compute dtype, so this is the path of the odd
 * weight (an FP8 or f16 matrix outside the blocks, an f32 one with bf16 activations).
 *
 * Row-major to cuBLAS's column-major: y row-major [M, N] is D column-major N x M (ld N) =
 * op(A) . op(B) with A = w as a K x N column-major matrix (ld K) transposed and B = x as a
 * K x M column-major matrix (ld K); the bias has D's row count N, as the epilogue wants.
 *
 * The algorithm is cuBLASLt's first heuristic answer for the shape, types, epilogue and
 * pointer alignments, cached per backend; the workspace comes from the op scratch, so it is
 * accounted with the rest of the device memory and nothing is allocated per call.
 */
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/ops.h"

#define GEMM_WS_MAX ((size_t)4 << 20) /* cuBLASLt workspace taken from the scratch, at most */
#define GEMM_CACHE  128               /* algorithms remembered per backend */

typedef struct gemm_key {
    int64_t m, n, k, ldd;
    int t, dt, bias, align; /* input and output types, the epilogue (0 none, 1 a bias in D's
                               type, 2 an f32 bias), the pointers' alignment */
    size_t ws;
} gemm_key;

typedef struct gemm_entry {
    gemm_key key;
    cublasLtMatmulAlgo_t algo;
} gemm_entry;

struct wr_cuda_gemm {
    cublasLtHandle_t lt;
    gemm_entry cache[GEMM_CACHE];
    int n, next; /* entries filled; the next to replace once full */
};

void wr_cuda_gemm_free(wr_cuda_gemm *g) {
    if (g == NULL) return;
    if (g->lt) cublasLtDestroy(g->lt);
    free(g);
}

static wr_status lt_fail(cublasStatus_t s, const char *what) {
    return WR_FAIL(s == CUBLAS_STATUS_ALLOC_FAILED ? WR_ERR_OOM_DEVICE : WR_ERR_DEVICE,
                   "matmul on CUDA: %s: %s (%s)", what, cublasLtGetStatusName(s),
                   cublasLtGetStatusString(s));
}

#define LT_TRY(call, what)                                                                         \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            st = lt_fail(s_, what);                                                                \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

static cudaDataType_t cuda_type(wr_dtype t) {
    return t == WR_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

/* the largest power of two (<= 256) dividing the address */
static int align_of(const void *p) {
    uintptr_t a = (uintptr_t)p;
    int al = 1;
    while (al < 256 && (a & (uintptr_t)al) == 0) al <<= 1;
    return al;
}

static int min_align(const void *a, const void *b, const void *d, const void *bias) {
    int al = align_of(a);
    if (align_of(b) < al) al = align_of(b);
    if (align_of(d) < al) al = align_of(d);
    if (bias && align_of(bias) < al) al = align_of(bias);
    return al;
}

static wr_status gemm_state(wr_backend *be, wr_cuda_gemm **out) {
    wr_cuda_gemm **slot = wr_cuda_gemm_slot(be);
    if (*slot == NULL) {
        wr_cuda_gemm *g = calloc(1, sizeof *g);
        if (g == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
        const cublasStatus_t s = cublasLtCreate(&g->lt);
        if (s != CUBLAS_STATUS_SUCCESS) {
            free(g);
            return lt_fail(s, "cublasLtCreate");
        }
        *slot = g;
    }
    *out = *slot;
    return WR_OK;
}

/* D (nr x nc column-major, ld ldd, type dt) = alpha * A^T B (+ bias over D's rows): A [K, nr]
 * and B [K, nc] column-major (ld K) in type t; bias32: the bias is f32 (else D's type).
 * WR_ERR_UNSUPPORTED when cuBLASLt has no algorithm for it. */
static wr_status gemm_one(wr_backend *be, wr_cuda_gemm *g, wr_dtype t, wr_dtype dt, int64_t nr,
                          int64_t nc, int64_t K, const void *A, const void *B, void *D, int64_t ldd,
                          const void *bias, int bias32, float alpha, void *ws, size_t wsb) {
    wr_status st = WR_OK;
    cudaStream_t stream = (cudaStream_t)wr_cuda_compute_stream(be);
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT_TRY(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmul descriptor");
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta),
           "TRANSA");
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb),
           "TRANSB");
    if (bias) {
        const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi),
               "the bias epilogue");
        LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                              sizeof bias),
               "the bias pointer");
        if (bias32) {
            const int32_t bt = CUDA_R_32F;
            LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt,
                                                  sizeof bt),
                   "the bias type");
        }
    }
    LT_TRY(cublasLtMatrixLayoutCreate(&la, cuda_type(t), (uint64_t)K, (uint64_t)nr, K), "layout A");
    LT_TRY(cublasLtMatrixLayoutCreate(&lb, cuda_type(t), (uint64_t)K, (uint64_t)nc, K), "layout B");
    LT_TRY(cublasLtMatrixLayoutCreate(&ld, cuda_type(dt), (uint64_t)nr, (uint64_t)nc, ldd),
           "layout D");
    const gemm_key key = {
        nr, nc, K, ldd, (int)t, (int)dt, bias ? 1 + (bias32 != 0) : 0, min_align(A, B, D, bias),
        wsb};
    const cublasLtMatmulAlgo_t *algo = NULL;
    for (int i = 0; i < g->n && algo == NULL; i++)
        if (memcmp(&g->cache[i].key, &key, sizeof key) == 0) algo = &g->cache[i].algo;
    if (algo == NULL) {
        LT_TRY(cublasLtMatmulPreferenceCreate(&pref), "preference");
        LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &wsb, sizeof wsb),
               "workspace preference");
        const uint32_t al = (uint32_t)key.align;
        const cublasLtMatmulPreferenceAttributes_t which[4] = {
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
        for (int i = 0; i < 4; i++)
            LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, which[i], &al, sizeof al),
                   "alignment preference");
        cublasLtMatmulHeuristicResult_t res;
        int found = 0;
        memset(&res, 0, sizeof res);
        const cublasStatus_t hs =
            cublasLtMatmulAlgoGetHeuristic(g->lt, op, la, lb, ld, ld, pref, 1, &res, &found);
        if (hs != CUBLAS_STATUS_SUCCESS && hs != CUBLAS_STATUS_NOT_SUPPORTED) {
            st = lt_fail(hs, "the algorithm heuristic");
            goto done;
        }
        if (hs == CUBLAS_STATUS_NOT_SUPPORTED || found < 1 || res.state != CUBLAS_STATUS_SUCCESS) {
            st = WR_FAIL(WR_ERR_UNSUPPORTED,
                         "matmul on CUDA: cuBLASLt has no algorithm for [%lld x %lld] . [%lld x "
                         "%lld]^T in %s -> %s%s (pointer alignment %d bytes)",
                         (long long)nc, (long long)K, (long long)nr, (long long)K, wr_dtype_name(t),
                         wr_dtype_name(dt),
                         bias ? (bias32 ? " with an f32 bias" : " with a bias") : "", key.align);
            goto done;
        }
        const int slot = g->n < GEMM_CACHE ? g->n++ : g->next++ % GEMM_CACHE;
        g->cache[slot].key = key;
        g->cache[slot].algo = res.algo;
        algo = &g->cache[slot].algo;
    }
    const float beta = 0.0f;
    LT_TRY(
        cublasLtMatmul(g->lt, op, &alpha, A, la, B, lb, &beta, D, ld, D, ld, algo, ws, wsb, stream),
        "cublasLtMatmul");
done:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (ld) cublasLtMatrixLayoutDestroy(ld);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return st;
}

static wr_status cast_on(wr_backend *be, void *dst, wr_dtype dt, const void *src, wr_dtype st,
                         int64_t n) {
    return wr_cuda_launch_status(
        wr_cuda_cast_launch(dst, (int)dt, src, (int)st, n, wr_cuda_compute_stream(be)), "matmul");
}

wr_status wr_cuda_matmul(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                         const wr_tensor *b, float alpha) {
    const int64_t M = wr_rows(x), K = wr_cols(x), N = w->shape[0];
    return wr_cuda_gemm_rows(be, y->data, y->dtype, N, x->data, x->dtype, w->data, w->dtype, M, N,
                             K, b ? b->data : NULL, alpha);
}

wr_status wr_cuda_gemm_rows(wr_backend *be, void *yd, wr_dtype ydt, int64_t ldy, const void *xd,
                            wr_dtype xdt, const void *wd, wr_dtype wdt, int64_t M, int64_t N,
                            int64_t K, const float *bd, float alpha) {
    const wr_dtype t = xdt == WR_DTYPE_F32 && ydt == WR_DTYPE_F32 ? WR_DTYPE_F32 : WR_DTYPE_BF16;
    return wr_cuda_gemm_rows_as(be, t, yd, ydt, ldy, xd, xdt, wd, wdt, M, N, K, bd, alpha);
}

wr_status wr_cuda_gemm_rows_as(wr_backend *be, wr_dtype t, void *yd, wr_dtype ydt, int64_t ldy,
                               const void *xd, wr_dtype xdt, const void *wd, wr_dtype wdt,
                               int64_t M, int64_t N, int64_t K, const float *bd, float alpha) {
    if (M == 0 || N == 0) return WR_OK;
    if (K == 0)
        return WR_FAIL(WR_ERR_UNSUPPORTED, "matmul on CUDA: an empty inner dimension (K = 0)");
    wr_cuda_gemm *g = NULL;
    WR_TRY(gemm_state(be, &g));
    if (t == WR_DTYPE_F32 && ydt != WR_DTYPE_F32)
        return WR_FAIL(WR_ERR_UNSUPPORTED, "matmul on CUDA: an f32 GEMM writes f32, not %s",
                       wr_dtype_name(ydt));
    const size_t ts = wr_dtype_size(t), xs = wr_dtype_size(xdt), wsz = wr_dtype_size(wdt),
                 ys = wr_dtype_size(ydt);
    const int conv_x = xdt != t, conv_w = wdt != t;
    const wr_scratch_mark mark = wr_scratch_save(be);
    wr_status st = WR_OK;
    /* the bias: f32 (added to the f32 accumulator, then one rounding, as the CPU does); where
     * cuBLASLt has no BF16-output algorithm with an f32 bias, a BF16 copy (D's type) */
    const void *bias = bd;
    int bias32 = bd && ydt == WR_DTYPE_BF16;
    void *bb = NULL;
    if (bias32)
        WR_TRY_GOTO(st, wr_scratch_get(be, (size_t)N * 2, "matmul: the bias in bf16", &bb), done);
    /* the panels: what is left of the scratch after the workspace, halved when both convert */
    size_t left = wr_scratch_left(be);
    const size_t wsb = left / 4 < GEMM_WS_MAX ? (left / 4) & ~(size_t)255 : GEMM_WS_MAX;
    void *ws = NULL; /* 256-byte aligned (cuBLAS 12.9+ wants it; the scratch gives 64) */
    if (wsb) {
        WR_TRY_GOTO(st, wr_scratch_get(be, wsb + 256, "matmul: the cuBLASLt workspace", &ws), done);
        ws = (void *)(((uintptr_t)ws + 255) & ~(uintptr_t)255);
    }
    left = left > wsb + 512 ? left - wsb - 512 : 0;
    const size_t share = conv_x && conv_w ? left / 2 : left;
    const size_t row = (size_t)K * ts;
    int64_t nb = N, mb = M;
    if (conv_w) {
        nb = (int64_t)(share / (row + 64));
        if (nb > N) nb = N;
        if (nb < 1) nb = 1; /* a one-off piece (wr_scratch_get) */
        nb = nb >= 16 ? nb & ~(int64_t)15 : nb;
    }
    if (conv_x) {
        mb = (int64_t)(share / (row + 64));
        if (mb > M) mb = M;
        if (mb < 1) mb = 1;
        mb = mb >= 16 ? mb & ~(int64_t)15 : mb;
    }
    void *wbuf = NULL, *xbuf = NULL;
    if (conv_w)
        WR_TRY_GOTO(st, wr_scratch_get(be, (size_t)nb * row, "matmul: a weight panel", &wbuf),
                    done);
    if (conv_x)
        WR_TRY_GOTO(st, wr_scratch_get(be, (size_t)mb * row, "matmul: an input panel", &xbuf),
                    done);
    for (int64_t n0 = 0; n0 < N; n0 += nb) {
        const int64_t nr = N - n0 < nb ? N - n0 : nb;
        const char *wp = (const char *)wd + (size_t)n0 * (size_t)K * wsz;
        if (conv_w) {
            WR_TRY_GOTO(st, cast_on(be, wbuf, t, wp, wdt, nr * K), done);
            wp = wbuf;
        }
        for (int64_t m0 = 0; m0 < M; m0 += mb) {
            const int64_t mr = M - m0 < mb ? M - m0 : mb;
            const char *xp = (const char *)xd + (size_t)m0 * (size_t)K * xs;
            if (conv_x) {
                WR_TRY_GOTO(st, cast_on(be, xbuf, t, xp, xdt, mr * K), done);
                xp = xbuf;
            }
            char *d = (char *)yd + ((size_t)m0 * (size_t)ldy + (size_t)n0) * ys;
            const size_t bsz = bias32 ? 4 : wr_dtype_size(ydt);
            const void *bp = bias ? (const char *)bias + (size_t)n0 * bsz : NULL;
            st = gemm_one(be, g, t, ydt, nr, mr, K, wp, xp, d, ldy, bp, bias32, alpha, ws, wsb);
            if (st == WR_ERR_UNSUPPORTED && bias32) { /* once: the bias in BF16 from now on */
                wr_debug("matmul on CUDA: no BF16-output algorithm with an f32 bias; the bias is "
                         "rounded to BF16 (%s)",
                         wr_error_detail());
                WR_TRY_GOTO(st, cast_on(be, bb, WR_DTYPE_BF16, bd, WR_DTYPE_F32, N), done);
                bias = bb, bias32 = 0;
                bp = (const char *)bias + (size_t)n0 * 2;
                st = gemm_one(be, g, t, ydt, nr, mr, K, wp, xp, d, ldy, bp, 0, alpha, ws, wsb);
            }
            if (st != WR_OK) goto done;
        }
    }
done:
    wr_scratch_restore(be, mark);
    return st;
}

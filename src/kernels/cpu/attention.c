/*
 * attention.c — softmax(q k^T * scale) v per head, f32, with an optional key mask: host bytes
 * (key_mask) and/or a valid-key length (k_valid: keys from k_valid on are padding). Both mask a
 * key the same way (its score -inf before the block's max), so a prefix mask and its length give
 * the same bits.
 *
 * Queries are processed in chunks of qc rows and keys in blocks of kc with an online softmax
 * (running max m, running sum l, rescaled accumulator o), so the working set per step is
 * qc x kc scores and qc x HD outputs — never an Lq x Lk matrix. The (head, query chunk) tasks
 * are spread over the OpenMP threads, each with its own slice of the op scratch (backend.h; as
 * many threads as have a slice in it); both products per block are
 * OpenBLAS sgemm calls on strided head slices (ld = NH*HD), which OpenBLAS's OpenMP build runs
 * single-threaded inside a parallel region, so the threads never wait on each other between
 * the small GEMMs. The softmax update vectorises (vmath.h). Optionally writes the log-sum-exp
 * per (head, query) for merging partial attentions (ring attention).
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/vmath.h"

#define WR_ATTN_QC 128
#define WR_ATTN_KC 512

typedef struct {
    float *s; /* [qc, kc] scores, then probabilities */
    float *o; /* [qc, HD] unnormalised output */
    float *m; /* [qc] running max */
    float *l; /* [qc] running sum */
} attn_scratch;

/*
 * One online-softmax step for row si[0..nk): add the position bias row (if any), mask keys
 * (mask[j] == 0, and every j >= nvalid), fold the block into (m, l), turn si into e^(s - m_new),
 * and return the factor the row's accumulator must be scaled by.
 */
WR_VMATH_CLONES static float softmax_step(float *si, int64_t nk, const float *bias,
                                          const uint8_t *mask, int64_t nvalid, float *m, float *l) {
    float mx = *m;
    if (bias) {
#pragma omp simd
        for (int64_t j = 0; j < nk; j++) si[j] += bias[j];
    }
    if (mask) {
        for (int64_t j = 0; j < nk; j++)
            if (!mask[j]) si[j] = -INFINITY;
    }
    for (int64_t j = nvalid < 0 ? 0 : nvalid; j < nk; j++) si[j] = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < nk; j++) mx = si[j] > mx ? si[j] : mx;
    if (mx == -INFINITY) { /* every key so far masked: keep zeros, nothing to accumulate */
        memset(si, 0, sizeof(float) * (size_t)nk);
        return 1.0f;
    }
    const float alpha = *m == -INFINITY ? 0.0f : wr_vexpf(*m - mx);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < nk; j++) {
        /* a masked key (-inf) is exactly 0, not wr_vexpf's floor e^(-87) */
        float e = si[j] == -INFINITY ? 0.0f : wr_vexpf(si[j] - mx);
        si[j] = e;
        sum += e;
    }
    *l = *l * alpha + sum;
    *m = mx;
    return alpha;
}

wr_status attention_cpu(wr_backend *be, wr_tensor *out, wr_tensor *lse, const wr_tensor *q,
                        const wr_tensor *k, const wr_tensor *v, const wr_attn_params *p) {
    const int64_t Lq = q->shape[0], NH = q->shape[1], HD = q->shape[2], Lk = k->shape[0];
    const int64_t ld = NH * HD;
    const int64_t qc = p && p->q_chunk > 0 ? p->q_chunk : WR_ATTN_QC;
    const int64_t kc = p && p->k_chunk > 0 ? p->k_chunk : WR_ATTN_KC;
    const float scale = p ? p->scale : 1.0f / sqrtf((float)HD);
    const uint8_t *mask = p ? p->key_mask : NULL;
    /* keys [kv, Lk) are padding (k_valid 0 or >= Lk: none) */
    const int64_t kv = p && p->k_valid > 0 && p->k_valid < Lk ? p->k_valid : Lk;
    const float *pb = p && p->pos_bias ? p->pos_bias->data : NULL;
    const int64_t nb = Lq + Lk - 1; /* bias entries per head */
    const float *qd = q->data, *kd = k->data, *vd = v->data;
    float *od = out->data, *ld_out = lse ? lse->data : NULL;
    const int64_t nchunks = (Lq + qc - 1) / qc, ntasks = NH * nchunks;
    /* per thread: s [qc, kc], o [qc, HD], m [qc], l [qc], each 64-byte aligned */
    const size_t fs = sizeof(float);
    const size_t sz_s = (fs * (size_t)(qc * kc) + 63) & ~(size_t)63;
    const size_t sz_o = (fs * (size_t)(qc * HD) + 63) & ~(size_t)63;
    const size_t sz_v = (fs * (size_t)qc + 63) & ~(size_t)63;
    const size_t per = sz_s + sz_o + 2 * sz_v;
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    if ((int64_t)nt > ntasks) nt = ntasks > 0 ? (int)ntasks : 1;
    const size_t fit = wr_scratch_left(be) / per;
    if ((size_t)nt > fit) nt = fit > 0 ? (int)fit : 1;
    const wr_scratch_mark mark = wr_scratch_save(be);
    char *scr = NULL;
    WR_TRY(wr_scratch_get(be, per * (size_t)nt, "attention (score blocks)", (void **)&scr));

#pragma omp parallel num_threads(nt)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        char *mine = scr + per * (size_t)tid;
        attn_scratch w;
        w.s = (float *)mine;
        w.o = (float *)(mine + sz_s);
        w.m = (float *)(mine + sz_s + sz_o);
        w.l = (float *)(mine + sz_s + sz_o + sz_v);
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntasks; t++) {
            const int64_t h = t / nchunks, i0 = (t % nchunks) * qc;
            const int64_t nq = Lq - i0 < qc ? Lq - i0 : qc;
            for (int64_t i = 0; i < nq; i++) {
                w.m[i] = -INFINITY;
                w.l[i] = 0.0f;
            }
            memset(w.o, 0, sizeof(float) * (size_t)(nq * HD));
            for (int64_t j0 = 0; j0 < Lk; j0 += kc) {
                const int64_t nk = Lk - j0 < kc ? Lk - j0 : kc;
                /* s[nq, nk] = scale * q_h[i0:] . k_h[j0:]^T */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)HD,
                            scale, qd + i0 * ld + h * HD, (int)ld, kd + j0 * ld + h * HD, (int)ld,
                            0.0f, w.s, (int)nk);
                for (int64_t i = 0; i < nq; i++) {
                    /* bias of (i0 + i, j0 + j) sits at j0 + j - (i0 + i) + Lq - 1 */
                    const float *bi = pb ? pb + h * nb + (j0 - (i0 + i) + Lq - 1) : NULL;
                    float alpha = softmax_step(w.s + i * nk, nk, bi, mask ? mask + j0 : NULL,
                                               kv - j0, &w.m[i], &w.l[i]);
                    if (alpha != 1.0f) {
                        float *oi = w.o + i * HD;
#pragma omp simd
                        for (int64_t d = 0; d < HD; d++) oi[d] *= alpha;
                    }
                }
                /* o[nq, HD] += p[nq, nk] . v_h[j0:, :] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)HD, (int)nk,
                            1.0f, w.s, (int)nk, vd + j0 * ld + h * HD, (int)ld, 1.0f, w.o, (int)HD);
            }
            for (int64_t i = 0; i < nq; i++) {
                const float inv = w.l[i] > 0.0f ? 1.0f / w.l[i] : 0.0f;
                float *dst = od + (i0 + i) * ld + h * HD;
                for (int64_t d = 0; d < HD; d++) dst[d] = w.o[i * HD + d] * inv;
                if (ld_out)
                    ld_out[h * Lq + i0 + i] = w.l[i] > 0.0f ? w.m[i] + logf(w.l[i]) : -INFINITY;
            }
        }
    }
    wr_scratch_restore(be, mark);
    return WR_OK;
}

/* Merges two partial attentions of the same queries over disjoint keys: with m = max(l1, l2),
 * o = (o1 e^(l1 - m) + o2 e^(l2 - m)) / (e^(l1 - m) + e^(l2 - m)), l = m + log(sum). A side
 * with lse = -inf (no keys) has weight 0. In double, then stored as f32. */
wr_status attn_merge_cpu(wr_backend *be, wr_tensor *o, wr_tensor *lse, const wr_tensor *o2,
                         const wr_tensor *lse2) {
    (void)be;
    const int64_t Lq = o->shape[0], NH = o->shape[1], HD = o->shape[2];
    float *od = o->data, *ld = lse->data;
    const float *o2d = o2->data, *l2d = lse2->data;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < Lq; i++)
        for (int64_t h = 0; h < NH; h++) {
            const double l1 = ld[h * Lq + i], l2 = l2d[h * Lq + i];
            if (l2 == -INFINITY) continue;
            float *a = od + (i * NH + h) * HD;
            const float *b2 = o2d + (i * NH + h) * HD;
            if (l1 == -INFINITY) {
                memcpy(a, b2, sizeof(float) * (size_t)HD);
                ld[h * Lq + i] = (float)l2;
                continue;
            }
            const double m = l1 > l2 ? l1 : l2, w1 = exp(l1 - m), w2 = exp(l2 - m),
                         inv = 1.0 / (w1 + w2);
            for (int64_t e = 0; e < HD; e++)
                a[e] = (float)(((double)a[e] * w1 + (double)b2[e] * w2) * inv);
            ld[h * Lq + i] = (float)(m + log(w1 + w2));
        }
    return WR_OK;
}

wr_status copy2d_cpu(wr_backend *be, float *dst, int64_t dld, const float *src, int64_t sld,
                     int64_t rows, int64_t cols) {
    (void)be;
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (int64_t r = 0; r < rows; r++)
        memcpy(dst + r * dld, src + r * sld, sizeof(float) * (size_t)cols);
    return WR_OK;
}

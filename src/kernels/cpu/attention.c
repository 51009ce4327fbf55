/*
 * attention.c — softmax(q k^T * scale) v per head, f32, with an optional key mask.
 *
 * Queries are processed in chunks of qc rows and keys in blocks of kc with an online softmax
 * (running max m, running sum l, rescaled accumulator o), so the working set per step is
 * qc x kc scores and qc x HD outputs — never an Lq x Lk matrix. Both products per block are
 * OpenBLAS sgemm calls on strided head slices (ld = NH*HD); the softmax update is an OpenMP
 * loop over the chunk's rows. Optionally writes the log-sum-exp per (head, query) for merging
 * partial attentions (ring attention).
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"

#define WR_ATTN_QC 256
#define WR_ATTN_KC 512

wr_status attention_cpu(wr_backend *be, wr_tensor *out, wr_tensor *lse, const wr_tensor *q,
                        const wr_tensor *k, const wr_tensor *v, const wr_attn_params *p) {
    (void)be;
    const int64_t Lq = q->shape[0], NH = q->shape[1], HD = q->shape[2], Lk = k->shape[0];
    const int64_t ld = NH * HD;
    const int64_t qc = p && p->q_chunk > 0 ? p->q_chunk : WR_ATTN_QC;
    const int64_t kc = p && p->k_chunk > 0 ? p->k_chunk : WR_ATTN_KC;
    const float scale = p ? p->scale : 1.0f / sqrtf((float)HD);
    const uint8_t *mask = p ? p->key_mask : NULL;
    const float *qd = q->data, *kd = k->data, *vd = v->data;
    float *od = out->data, *ld_out = lse ? lse->data : NULL;

    float *s = malloc(sizeof(float) * (size_t)(qc * kc));
    float *o = malloc(sizeof(float) * (size_t)(qc * HD));
    float *m = malloc(sizeof(float) * (size_t)qc);
    float *l = malloc(sizeof(float) * (size_t)qc);
    if (!s || !o || !m || !l) {
        free(s);
        free(o);
        free(m);
        free(l);
        return WR_FAIL(WR_ERR_OOM_HOST, "attention: no memory for a %lld x %lld block",
                       (long long)qc, (long long)kc);
    }
    for (int64_t h = 0; h < NH; h++) {
        for (int64_t i0 = 0; i0 < Lq; i0 += qc) {
            const int64_t nq = Lq - i0 < qc ? Lq - i0 : qc;
            for (int64_t i = 0; i < nq; i++) {
                m[i] = -INFINITY;
                l[i] = 0.0f;
            }
            memset(o, 0, sizeof(float) * (size_t)(nq * HD));
            for (int64_t j0 = 0; j0 < Lk; j0 += kc) {
                const int64_t nk = Lk - j0 < kc ? Lk - j0 : kc;
                /* s[nq, nk] = scale * q_h[i0:] . k_h[j0:]^T */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)HD,
                            scale, qd + i0 * ld + h * HD, (int)ld, kd + j0 * ld + h * HD, (int)ld,
                            0.0f, s, (int)nk);
#pragma omp parallel for schedule(static)
                for (int64_t i = 0; i < nq; i++) {
                    float *si = s + i * nk;
                    float mx = m[i];
                    for (int64_t j = 0; j < nk; j++) {
                        if (mask && !mask[j0 + j]) si[j] = -INFINITY;
                        if (si[j] > mx) mx = si[j];
                    }
                    /* all keys so far masked: keep zeros, nothing to accumulate */
                    const float alpha = mx == -INFINITY ? 1.0f : expf(m[i] - mx);
                    float sum = 0.0f;
                    for (int64_t j = 0; j < nk; j++) {
                        float e = mx == -INFINITY ? 0.0f : expf(si[j] - mx);
                        si[j] = e;
                        sum += e;
                    }
                    l[i] = l[i] * alpha + sum;
                    m[i] = mx;
                    float *oi = o + i * HD;
                    for (int64_t d = 0; d < HD; d++) oi[d] *= alpha;
                }
                /* o[nq, HD] += p[nq, nk] . v_h[j0:, :] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)HD, (int)nk,
                            1.0f, s, (int)nk, vd + j0 * ld + h * HD, (int)ld, 1.0f, o, (int)HD);
            }
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < nq; i++) {
                const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
                float *dst = od + (i0 + i) * ld + h * HD;
                for (int64_t d = 0; d < HD; d++) dst[d] = o[i * HD + d] * inv;
                if (ld_out) ld_out[h * Lq + i0 + i] = l[i] > 0.0f ? m[i] + logf(l[i]) : -INFINITY;
            }
        }
    }
    free(s);
    free(o);
    free(m);
    free(l);
    return WR_OK;
}

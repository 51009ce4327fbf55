/* blend.c — the linear cross-fade of a tile's leading rows or columns with the margin of its
 * neighbour (tiled VAE decode; diffusers' blend_v / blend_h), f32. */
#include "kernels/cpu/cpu_internal.h"

/* dst [P, Ld, Q], a [P, La, Q]: for i < e, dst[p, i, q] = a[p, La - e + i, q] * wa + dst * wb
 * with wa = (float)(1 - i/e), wb = (float)(i/e) computed in double (ops.h). */
wr_status blend_cpu(wr_backend *be, wr_tensor *dst, const wr_tensor *a, int64_t e) {
    (void)be;
    const int64_t P = dst->shape[0], Ld = dst->shape[1], Q = dst->shape[2], La = a->shape[1];
    float *d = dst->data;
    const float *s = a->data;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < P; p++)
        for (int64_t i = 0; i < e; i++) {
            const float wa = (float)(1.0 - (double)i / (double)e),
                        wb = (float)((double)i / (double)e);
            float *dr = d + (p * Ld + i) * Q;
            const float *sr = s + (p * La + La - e + i) * Q;
            for (int64_t q = 0; q < Q; q++) dr[q] = sr[q] * wa + dr[q] * wb;
        }
    return WR_OK;
}

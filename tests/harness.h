/*
 * harness.h — the one test main of wanrun (tests/harness.c), after STYLE.md: MPI is
 * initialised, Check runs in CK_NOFORK mode (MPI and CUDA do not survive fork), failures are
 * reduced over ranks and every rank returns the same exit code (77 when the suite skips).
 *
 * Each test program defines wr_test_suite(). Assertions that precede a collective must be
 * collective (WR_CK_ALL): a rank-local failure would leave the other ranks waiting.
 */
#ifndef WR_TESTS_HARNESS_H
#define WR_TESTS_HARNESS_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#define WR_TEST_SKIP 77

Suite *wr_test_suite(void);

int wr_test_rank(void);
int wr_test_size(void);
/* Marks the whole program as skipped (exit 77 on every rank); call from wr_test_suite(). */
void wr_test_skip(const char *why);
/* tests/data/<rel> in the source tree; returns a static buffer (one per call site use). */
const char *wr_test_data(const char *rel);
/* A fresh empty temporary directory for this rank (removed at exit only if empty). */
const char *wr_test_tmpdir(void);
/* A fresh directory <tmpdir>/<name> (wr_test_tmpdir) in buf[n], made now; returns buf. */
const char *wr_test_dir(const char *name, char *buf, size_t n);
/* Removes dir and everything under it (symbolic links are removed, not followed). */
void wr_test_rmtree(const char *dir);
/* Entries of dir whose name contains needle ("" counts all); -1 when dir cannot be read. */
int wr_test_count_entries(const char *dir, const char *needle);
/* sum (a - b)^2 / sum b^2 in double (sum (a - b)^2 when b is all zero); INFINITY when either
 * holds a NaN or an infinity, so a non-finite output never passes a bound. */
double wr_test_nmse(const float *a, const float *b, int64_t n);
/*
 * Context parallelism against one rank: each rank's GEMMs get L/P rows instead of L, and a BLAS
 * kernel may give a row other bits depending on M (OpenBLAS's Haswell sgemm does: 12 of 45 rows
 * differ between one M = 45 call and M = 23 + 22; cuBLAS picks algorithms per shape), ring
 * attention also reorders the softmax sums. So N ranks of context parallelism match one rank to
 * an NMSE bound, never bitwise; bitwise is asserted only where ranks run the same calls on the
 * same shapes as one rank and only data moves (CFG-parallel, replica groups, P = 1).
 * Measured 2026-12-02 on a 2-core AMD EPYC (OpenBLAS 0.3.21) at np 2, 3 and 4:
 *   - one DiT forward (test_cp): at most 7.6e-14 (Haswell, Cooperlake = this CPU's default,
 *     Sandybridge);
 *   - 3 pipeline steps (test_parallel): at most 1.1e-12 (Haswell, Cooperlake, Sandybridge, Zen,
 *     Prescott, SkylakeX);
 *   - the CLI's latents, 3 steps at 64x64, 80x48 and 96x64, Ulysses on 2 and ring on 4 ranks: at
 *     most 7.7e-13 (Haswell, Cooperlake, Sandybridge; some cases bitwise, some not).
 * The bound leaves three orders of magnitude for other kernels; a wrong shard, a lost token or
 * an unmasked padding key moves the NMSE far above it.
 */
#define WR_TEST_CP_NMSE 1e-9
/* FP8 storage against diffusers' layerwise casting (test_vram, test_t5): ours = our FP8 output,
 * dif = diffusers' FP8 output, ref = the f32 output, n floats. Prints the three NMSEs and asserts
 * the tolerance both tests justify: ours really quantized (> 1e-9), within 1.5x diffusers' own
 * error against f32, and the two FP8 outputs within 4x the larger error of each other. */
void wr_test_check_fp8(const char *name, const float *ours, const float *ref, const float *dif,
                       int64_t n);
/* The device copies of FP8 weights' scales (wr_dit_each_weight / wr_t5_each_weight with
 * wr_test_dscale_visit, ctx a wr_test_dscales with be set): each e4m3 weight's dscale is
 * downloaded from be and compared with its scale bit for bit (data movement); a weight in
 * another dtype must have none. n: weights seen, n8: e4m3 ones, scaled: e4m3 ones whose scale
 * is not 1, bad: mismatches, the first described in first. */
typedef struct wr_test_dscales {
    struct wr_backend *be;
    int64_t n, n8, scaled, bad;
    char first[256];
} wr_test_dscales;
struct wr_weight;
void wr_test_dscale_visit(void *ctx, const char *name, const struct wr_weight *w);
/* 1 when cond holds on every rank (MPI_Allreduce MIN). */
int wr_ck_all(int cond);

#define WR_CK_ALL(cond)                                                                            \
    ck_assert_msg(wr_ck_all(!!(cond)), "collective check failed on at least one rank: %s", #cond)

#endif /* WR_TESTS_HARNESS_H */

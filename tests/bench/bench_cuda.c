/*
 * bench_cuda.c — GPU figures of the CUDA backend (issue #16), printed for BENCHMARKS.md by
 * tests/gpu/run.sh; not a test (no thresholds). Exit 77 without a CUDA device.
 *
 *   gemm   wr_op_matmul (cuBLASLt, bf16 in, f32 accumulate, bf16 out, with a bias) at the
 *          DiT's shapes of Wan2.1 1.3B and 14B at 480p x 81 frames (32,760 tokens), next to
 *          an 8192^3 GEMM through the same path (the peak this GPU gives cuBLASLt here)
 *   h2d    host-to-device copies of 256 MiB from page-locked and from pageable memory
 *
 * Each figure is the median of `reps` timed runs after two warm-ups, timed on the host around
 * a device synchronisation.
 *
 * Usage: bench_cuda [gemm|h2d|all] [reps]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "kernels/backend.h"
#include "kernels/ops.h"

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static void die(const char *what) {
    fprintf(stderr, "bench_cuda: %s: %s\n", what, wr_error_detail());
    exit(1);
}

/* a device buffer of n elements of dtype dt, filled with small pseudo-random values */
static void *dev_random(wr_backend *be, wr_dtype dt, int64_t n, uint64_t seed) {
    float *h = malloc(sizeof(float) * (size_t)n);
    void *hc = malloc((size_t)n * wr_dtype_size(dt));
    if (h == NULL || hc == NULL) die("host memory");
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        h[i] = (float)((double)(s >> 11) * 0x1p-53 - 0.5) * 0.1f;
    }
    if (wr_dtype_convert(hc, dt, h, WR_DTYPE_F32, n) != WR_OK) die("convert");
    void *d = NULL;
    if (be->iface->alloc(be, &d, (size_t)n * wr_dtype_size(dt)) != WR_OK) die("device memory");
    if (wr_upload(be, d, hc, (size_t)n * wr_dtype_size(dt)) != WR_OK) die("upload");
    free(h);
    free(hc);
    return d;
}

static double time_gemm(wr_backend *be, int64_t M, int64_t N, int64_t K, int reps) {
    void *x = dev_random(be, WR_DTYPE_BF16, M * K, 1), *w = dev_random(be, WR_DTYPE_BF16, N * K, 2);
    void *b = dev_random(be, WR_DTYPE_F32, N, 3), *y = NULL;
    if (be->iface->alloc(be, &y, (size_t)(M * N) * 2) != WR_OK) die("device memory");
    wr_tensor xt = wr_tensor_make(x, WR_DTYPE_BF16, 2, (int64_t[]){M, K});
    wr_tensor wt = wr_tensor_make(w, WR_DTYPE_BF16, 2, (int64_t[]){N, K});
    wr_tensor bt = wr_tensor_make(b, WR_DTYPE_F32, 1, (int64_t[]){N});
    wr_tensor yt = wr_tensor_make(y, WR_DTYPE_BF16, 2, (int64_t[]){M, N});
    double t[64];
    if (reps > 64) reps = 64;
    for (int r = -2; r < reps; r++) {
        if (be->iface->sync(be) != WR_OK) die("sync");
        const double t0 = wr_now_s();
        if (wr_op_matmul(be, &yt, &xt, &wt, &bt) != WR_OK) die("matmul");
        if (be->iface->sync(be) != WR_OK) die("sync");
        if (r >= 0) t[r] = wr_now_s() - t0;
    }
    be->iface->free(be, x);
    be->iface->free(be, w);
    be->iface->free(be, b);
    be->iface->free(be, y);
    return median(t, reps);
}

static void bench_gemm(wr_backend *be, int reps) {
    static const struct {
        const char *name;
        int64_t M, N, K;
    } shapes[] = {
        {"peak 8192^3", 8192, 8192, 8192},
        {"1.3B q/k/v/o  32760x1536x1536", 32760, 1536, 1536},
        {"1.3B ffn up   32760x8960x1536", 32760, 8960, 1536},
        {"1.3B ffn down 32760x1536x8960", 32760, 1536, 8960},
        {"14B q/k/v/o   32760x5120x5120", 32760, 5120, 5120},
        {"14B ffn up    32760x13824x5120", 32760, 13824, 5120},
        {"14B ffn down  32760x5120x13824", 32760, 5120, 13824},
        {"text k/v      512x5120x5120", 512, 5120, 5120},
    };
    double peak = 0;
    printf("gemm (bf16 in, f32 accumulate, bf16 out, bias; median of %d)\n", reps);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const double s = time_gemm(be, shapes[i].M, shapes[i].N, shapes[i].K, reps);
        const double tf =
            2.0 * (double)shapes[i].M * (double)shapes[i].N * (double)shapes[i].K / s / 1e12;
        if (i == 0) peak = tf;
        printf("  %-34s %9.3f ms %8.1f TFLOP/s  %5.1f %% of the 8192^3 figure\n", shapes[i].name,
               s * 1e3, tf, 100.0 * tf / peak);
        fflush(stdout);
    }
}

static void bench_h2d(wr_backend *be, int reps) {
    const size_t n = (size_t)256 << 20;
    void *d = NULL, *pinned = NULL, *pageable = malloc(n);
    if (pageable == NULL || be->iface->alloc(be, &d, n) != WR_OK) die("memory");
    if (be->iface->host_alloc == NULL || be->iface->host_alloc(be, &pinned, n) != WR_OK)
        die("page-locked memory");
    memset(pageable, 1, n);
    memset(pinned, 1, n);
    printf("h2d (256 MiB per copy; median of %d)\n", reps);
    for (int k = 0; k < 2; k++) {
        double t[64];
        const int nr = reps > 64 ? 64 : reps;
        for (int r = -2; r < nr; r++) {
            const double t0 = wr_now_s();
            if (wr_upload(be, d, k == 0 ? pinned : pageable, n) != WR_OK) die("upload");
            if (r >= 0) t[r] = wr_now_s() - t0;
        }
        const double s = median(t, nr);
        printf("  %-10s %8.3f ms %7.1f GB/s\n", k == 0 ? "pinned" : "pageable", s * 1e3,
               (double)n / s / 1e9);
    }
    be->iface->host_free(be, pinned);
    be->iface->free(be, d);
    free(pageable);
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "all";
    const int reps = argc > 2 ? atoi(argv[2]) : 10;
    if (reps < 1 || (strcmp(what, "gemm") && strcmp(what, "h2d") && strcmp(what, "all"))) {
        fprintf(stderr, "usage: bench_cuda [gemm|h2d|all] [reps >= 1]\n");
        return 2;
    }
    wr_device_info di;
    if (wr_backend_probe_cuda(&di) != WR_OK || di.count < 1) {
        fprintf(stderr, "bench_cuda: no CUDA device: %s\n", wr_error_detail());
        return 77;
    }
    printf("device 0: %s (sm_%d%d, %.1f GiB)\n", di.name, di.cc_major, di.cc_minor,
           (double)di.total_bytes / (1024.0 * 1024 * 1024));
    wr_backend *be = NULL;
    const wr_backend_opts o = {.kind = WR_BACKEND_CUDA, .device = 0};
    if (wr_backend_create_ex(&be, &o) != WR_OK) die("the CUDA backend");
    if (!strcmp(what, "gemm") || !strcmp(what, "all")) bench_gemm(be, reps);
    if (!strcmp(what, "h2d") || !strcmp(what, "all")) bench_h2d(be, reps);
    wr_backend_free(be);
    return 0;
}

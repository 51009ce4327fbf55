/* harness.c — shared main for every Check test program; see harness.h. */
#include "harness.h"

#include <dirent.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "models/loader.h"

#ifndef WR_TEST_DATA_DIR
#error "WR_TEST_DATA_DIR must be defined by the build"
#endif

static int g_rank, g_size, g_skip, g_tmp_made;

int wr_test_rank(void) {
    return g_rank;
}
int wr_test_size(void) {
    return g_size;
}

void wr_test_skip(const char *why) {
    g_skip = 1;
    if (g_rank == 0) fprintf(stderr, "SKIP: %s\n", why);
}

const char *wr_test_data(const char *rel) {
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", WR_TEST_DATA_DIR, rel);
    return b;
}

const char *wr_test_tmpdir(void) {
    static char dir[4096];
    if (dir[0] == '\0') {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/wrtest-r%d-XXXXXX", base && *base ? base : "/tmp", g_rank);
        if (mkdtemp(dir) == NULL) {
            perror("mkdtemp");
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        g_tmp_made = 1;
    }
    return dir;
}

int wr_ck_all(int cond) {
    int in = cond ? 1 : 0, out = 0;
    MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return out;
}

int main(int argc, char **argv) {
    int provided = 0; /* as wr_world_init asks: the heartbeat thread of src/parallel runs */
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    wr_log_set_rank(g_rank, g_size);
    wr_log_init();

    Suite *s = wr_test_suite();
    int skip = 0;
    MPI_Allreduce(&g_skip, &skip, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    int failed = 0;
    if (!skip) {
        SRunner *sr = srunner_create(s);
        srunner_set_fork_status(sr, CK_NOFORK);
        srunner_run_all(sr, CK_SILENT);
        failed = srunner_ntests_failed(sr);
        if (g_rank == 0 || failed) {
            if (g_size > 1) printf("[rank %d/%d] ", g_rank, g_size);
            srunner_print(sr, failed ? CK_VERBOSE : CK_NORMAL);
        }
        fflush(stdout);
        srunner_free(sr);
    } else {
        srunner_free(srunner_create(s)); /* frees the suite */
    }
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (g_tmp_made) rmdir(wr_test_tmpdir());
    MPI_Finalize();
    if (skip) return WR_TEST_SKIP;
    return any ? 1 : 0;
}

const char *wr_test_dir(const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", wr_test_tmpdir(), name);
    ck_assert_msg(mkdir(buf, 0755) == 0, "mkdir %s failed", buf);
    return buf;
}

void wr_test_rmtree(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    char p[4400];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            wr_test_rmtree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int wr_test_count_entries(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    if (d == NULL) return -1;
    struct dirent *e;
    int k = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (strstr(e->d_name, needle) != NULL) k++;
    }
    closedir(d);
    return k;
}

double wr_test_nmse(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return INFINITY; /* NaN never passes */
        const double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0 ? num / den : num;
}

void wr_test_check_fp8(const char *name, const float *ours, const float *ref, const float *dif,
                       int64_t n) {
    const double e_ours = wr_test_nmse(ours, ref, n), e_diff = wr_test_nmse(dif, ref, n),
                 e_cross = wr_test_nmse(ours, dif, n);
    fprintf(stderr,
            "%s FP8 storage: nmse vs f32 %.3e (diffusers' layerwise casting %.3e), vs diffusers' "
            "FP8 %.3e\n",
            name, e_ours, e_diff, e_cross);
    ck_assert_msg(isfinite(e_ours) && e_ours > 1e-9, "%s: not quantized (nmse %.3e)", name, e_ours);
    ck_assert_msg(e_ours <= 1.5 * e_diff, "%s: %.3e > 1.5 x %.3e", name, e_ours, e_diff);
    ck_assert_msg(e_cross <= 4 * (e_ours > e_diff ? e_ours : e_diff),
                  "%s: the two FP8 outputs "
                  "differ by %.3e",
                  name, e_cross);
}

void wr_test_dscale_visit(void *ctx, const char *name, const wr_weight *w) {
    wr_test_dscales *c = ctx;
    c->n++;
    char why[160] = "";
    if (w->t.dtype != WR_DTYPE_F8_E4M3) {
        if (w->dscale != NULL)
            snprintf(why, sizeof why, "a %s weight has a device scale", wr_dtype_name(w->t.dtype));
    } else if (w->dscale == NULL) {
        snprintf(why, sizeof why, "an e4m3 weight has no device scale");
    } else {
        c->n8++;
        if (w->scale != 1.0f) c->scaled++;
        float d = NAN;
        const wr_status st = wr_download(c->be, &d, w->dscale, sizeof d);
        if (st != WR_OK)
            snprintf(why, sizeof why, "download: %s", wr_error_detail());
        else if (memcmp(&d, &w->scale, sizeof d) != 0)
            snprintf(why, sizeof why, "device scale %.9g, scale %.9g", (double)d, (double)w->scale);
    }
    if (why[0] && c->bad++ == 0) snprintf(c->first, sizeof c->first, "%s: %s", name, why);
}

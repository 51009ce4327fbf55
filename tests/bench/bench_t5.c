/*
 * bench_t5.c — one UMT5 text-encoder forward on the CPU backend, timed per layer through the
 * taps.
 *
 *   bench_t5 TEXT_ENCODER_DIR IO.safetensors [--threads N] [--repeat K] [--profile]
 *            [--real-rows] [--cold]
 *
 * IO.safetensors holds input.ids [L] (I32), input.mask [L] (U8) and (optionally) ref.output
 * [L, D], transformers' last_hidden_state for the same weights and inputs (written by
 * bench_t5_transformers.py): the NMSE against it is printed, so a fast but wrong run shows.
 * Prints the load time, the median forward time of K runs after a warm-up, the median time per
 * layer (embed tap to block.0 tap, block.i to block.i+1) with its GFLOP/s against this machine's
 * sgemm peak (OpenBLAS, the same threads) on the FFN GEMM shape, and the process's peak RSS:
 * the token embedding (2.1 GB for the real 256,384 rows in bf16) stays in the mapped file and
 * only the prompt's rows are read, so the peak stays near the layer weights' size; how much of
 * the table ended up mapped into the process is counted exactly from /proc/self/pagemap.
 * RSS figures are MiB (ru_maxrss and /proc/self/status are in KiB).
 *
 * On a shared machine other processes take cores in the middle of a run, so every timed run
 * also records the share of the machine's CPU time that went to other processes (and to the
 * hypervisor: steal) during it, from /proc/stat less this process's getrusage; runs under 5 %
 * are "clean" and their median is printed too (bench_t5_transformers.py does the same).
 *
 * --cold evicts the weight files from the page cache before loading (posix_fadvise), so the
 * warm-up forward shows what the first use of the mapped table costs: its gather time and the
 * bytes read from storage are printed (read_bytes of /proc/self/io, readahead included).
 *
 * --profile adds one more forward, untimed, that logs the time per op (wr_op_profile_*).
 * --real-rows also times a forward over the real (unpadded) tokens alone, the rows
 * wr_t5_encode keeps, and compares them with transformers' rows.
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/safetensors.h"
#include "kernels/backend.h"
#include "kernels/ops.h"
#include "models/t5.h"

#define MAX_REPEAT  64
#define CLEAN_SHARE 0.05 /* a run is clean when others took < 5 % of the machine's CPU time */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- interference: CPU time of other processes during a run ---- */

typedef struct cpu_mark {
    double wall, own, busy; /* seconds: monotonic clock, this process's CPU, all CPUs' non-idle */
} cpu_mark;

static cpu_mark cpu_mark_now(void) {
    cpu_mark c = {now(), 0, -1};
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    c.own = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
            (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0};
    if (f && fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                    &v[4], &v[5], &v[6], &v[7]) == 8) /* user nice system idle iowait irq softirq
                                                         steal */
        c.busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
    if (f) fclose(f);
    return c;
}

/* Share of the machine's CPU time between a and b spent outside this process (-1: unknown). */
static double others_share(const cpu_mark *a, const cpu_mark *b) {
    if (a->busy < 0 || b->busy < 0) return -1;
    const double cap = (b->wall - a->wall) * (double)sysconf(_SC_NPROCESSORS_ONLN);
    const double s = ((b->busy - a->busy) - (b->own - a->own)) / cap;
    return s < 0 ? 0 : s;
}

/* ---- timing ---- */

typedef struct timing {
    double start, last, layers_total;
    int nlayers;
    double embed_s;        /* forward start to the "embed" tap: the gather of the rows */
    long long embed_bytes; /* storage bytes read meanwhile (/proc/self/io read_bytes) */
    long long start_bytes;
} timing;

/* Bytes this process has caused to be read from storage, page-fault readahead included
 * (read_bytes of /proc/self/io); -1 where unknown. */
static long long io_read_bytes(void) {
    FILE *f = fopen("/proc/self/io", "r");
    long long v = -1;
    char line[128];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "read_bytes: %lld", &v) == 1) break;
    if (f) fclose(f);
    return v;
}

static void on_tap(void *ctx, const char *name, const wr_tensor *t) {
    timing *tm = ctx;
    (void)t;
    double n = now();
    if (strcmp(name, "embed") == 0) { /* the layers start after the gather */
        tm->last = n;
        tm->embed_s = n - tm->start;
        const long long b = io_read_bytes();
        tm->embed_bytes = b >= 0 && tm->start_bytes >= 0 ? b - tm->start_bytes : -1;
    }
    if (strncmp(name, "block.", 6) == 0) {
        tm->nlayers++;
        tm->layers_total += n - tm->last;
        tm->last = n;
    }
}

/* K timed runs: the forward, the mean per layer, the others' CPU share, in run order. */
typedef struct runs {
    int n;
    double first;                /* the warm-up */
    double first_embed_s;        /* its gather of the embedding rows */
    long long first_embed_bytes; /* and the storage bytes that gather read */
    double tot[MAX_REPEAT], lay[MAX_REPEAT], oth[MAX_REPEAT];
} runs;

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of v[i] over the runs with oth[i] < max_share (all runs: max_share > 1); -1 if none.
 * The mean of the middle two for an even count, like Python's statistics.median. */
static double median_of(const runs *r, const double *v, double max_share, int *count) {
    double s[MAX_REPEAT];
    int n = 0;
    for (int i = 0; i < r->n; i++)
        if (r->oth[i] < max_share) s[n++] = v[i];
    if (count) *count = n;
    if (n == 0) return -1;
    qsort(s, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static double min_of(const double *v, int n) {
    double m = v[0];
    for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
    return m;
}

/* "2.351(0%) 2.204(31%) ..." in run order. */
static const char *runs_str(char *buf, size_t cap, const runs *r) {
    buf[0] = 0;
    for (int i = 0; i < r->n && strlen(buf) + 24 < cap; i++)
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%.3f(%.0f%%)", i ? " " : "", r->tot[i],
                 100.0 * r->oth[i]);
    return buf;
}

/* One warm-up forward (page faults of the weights), then r->n timed ones. */
static wr_status run_forwards(wr_t5 *m, wr_tensor *out, const int32_t *ids, const uint8_t *mask,
                              int64_t L, timing *tm, runs *r) {
    for (int i = -1; i < r->n; i++) {
        memset(tm, 0, sizeof *tm);
        tm->start_bytes = io_read_bytes();
        const cpu_mark a = cpu_mark_now();
        tm->start = a.wall;
        WR_TRY(wr_t5_forward(m, out, ids, mask, L));
        const cpu_mark b = cpu_mark_now();
        if (i < 0) {
            r->first = b.wall - a.wall;
            r->first_embed_s = tm->embed_s;
            r->first_embed_bytes = tm->embed_bytes;
            continue;
        }
        r->tot[i] = b.wall - a.wall;
        r->lay[i] = tm->nlayers ? tm->layers_total / tm->nlayers : 0;
        r->oth[i] = others_share(&a, &b);
    }
    return WR_OK;
}

/* OpenBLAS sgemm C[M,N] = A[M,K] B[N,K]^T (the layout of a matmul with a weight), 3 times: the
 * best GFLOP/s of the clean repeats (others' share < CLEAN_SHARE), else of all; *share gets the
 * others' share during the repeat returned. */
static double sgemm_gflops(int64_t M, int64_t N, int64_t K, double *share) {
    float *a = malloc(sizeof(float) * (size_t)(M * K)),
          *b = malloc(sizeof(float) * (size_t)(N * K));
    float *c = malloc(sizeof(float) * (size_t)(M * N));
    for (int64_t i = 0; i < M * K; i++) a[i] = (float)(i % 7) * 0.1f;
    for (int64_t i = 0; i < N * K; i++) b[i] = (float)(i % 5) * 0.1f;
    double best = 1e30, best_share = 1, best_clean = 1e30;
    for (int r = 0; r < 3; r++) {
        const cpu_mark m0 = cpu_mark_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, a,
                    (int)K, b, (int)K, 0.0f, c, (int)N);
        const cpu_mark m1 = cpu_mark_now();
        const double t = m1.wall - m0.wall, sh = others_share(&m0, &m1);
        if (sh < CLEAN_SHARE && t < best_clean) best_clean = t;
        if (t < best) best = t, best_share = sh;
    }
    free(a);
    free(b);
    free(c);
    *share = best_clean < 1e30 ? 0 : best_share;
    if (best_clean < 1e30) best = best_clean;
    return 2.0 * (double)M * (double)N * (double)K / best / 1e9;
}

/* NMSE of a against b over n floats (INFINITY if anything is NaN: NaN never passes). */
static double nmse_of(const float *a, const float *b, int64_t n, double *maxabs) {
    double num = 0, den = 0;
    *maxabs = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
        if (!(fabs(d) <= *maxabs)) *maxabs = d != d ? INFINITY : fabs(d);
    }
    return num != num || den <= 0 ? INFINITY : num / den;
}

/* ---- memory ---- */

static double maxrss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

/* "RssAnon: ... kB" and "RssFile: ... kB" of /proc/self/status in MiB (-1 where absent). */
static void rss_now_mb(double *anon, double *file) {
    *anon = *file = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) return;
    char line[256];
    long long kb;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "RssAnon: %lld", &kb) == 1) *anon = (double)kb / 1024.0;
        if (sscanf(line, "RssFile: %lld", &kb) == 1) *file = (double)kb / 1024.0;
    }
    fclose(f);
}

/*
 * Bytes of tensor t's pages that are mapped into this process through the model's own mapping
 * of t's file: the mapping of the same inode (from offset 0) other than `other_base` (the
 * bench's second, untouched mapping), found in /proc/self/maps, then its pages' present bits
 * in /proc/self/pagemap (readable unprivileged for file pages). -1 if it cannot be told.
 */
static double mapped_bytes(const wr_st_tensor *t, const void *other_base) {
    struct stat sb;
    if (stat(wr_st_path(t->file), &sb) != 0) return -1;
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL) return -1;
    char line[4600];
    unsigned long long lo, hi, foff, ino, base = 0;
    while (fgets(line, sizeof line, f)) /* start-end perms offset dev inode path */
        if (sscanf(line, "%llx-%llx %*s %llx %*s %llu", &lo, &hi, &foff, &ino) == 4 &&
            ino == (unsigned long long)sb.st_ino && foff == 0 && lo != (uintptr_t)other_base &&
            hi - lo >= t->offset + t->nbytes)
            base = lo;
    fclose(f);
    const long pg = sysconf(_SC_PAGESIZE);
    int fd = base ? open("/proc/self/pagemap", O_RDONLY) : -1;
    if (fd < 0) return -1;
    const uint64_t p0 = (base + t->offset) / (uint64_t)pg,
                   p1 = (base + t->offset + t->nbytes + (uint64_t)pg - 1) / (uint64_t)pg;
    uint64_t ent[4096];
    int64_t present = 0;
    for (uint64_t p = p0; p < p1;) {
        const size_t n = p1 - p < 4096 ? (size_t)(p1 - p) : 4096;
        if (pread(fd, ent, n * sizeof ent[0], (off_t)(p * sizeof ent[0])) !=
            (ssize_t)(n * sizeof ent[0])) {
            close(fd);
            return -1;
        }
        for (size_t i = 0; i < n; i++) present += (int64_t)(ent[i] >> 63);
        p += n;
    }
    close(fd);
    return (double)present * (double)pg;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_t5 TEXT_ENCODER_DIR IO.safetensors [--threads N] "
                        "[--repeat K] [--profile] [--real-rows] [--cold]\n");
        return 2;
    }
    int threads = 0, repeat = 3, profile = 0, real_rows = 0, cold = 0;
    const char *io_path = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
            repeat = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--profile") == 0) {
            profile = 1;
        } else if (strcmp(argv[i], "--real-rows") == 0) {
            real_rows = 1;
        } else if (strcmp(argv[i], "--cold") == 0) {
            cold = 1;
        } else if (io_path == NULL) {
            io_path = argv[i];
        } else {
            fprintf(stderr, "bench_t5: unexpected argument %s\n", argv[i]);
            return 2;
        }
    }
    repeat = repeat < 1 ? 1 : repeat > MAX_REPEAT ? MAX_REPEAT : repeat;
    if (io_path == NULL) {
        fprintf(stderr, "bench_t5: give IO.safetensors\n");
        return 2;
    }
    wr_log_init();
    wr_backend *be = NULL;
    wr_t5 *m = NULL;
    wr_st_file *io = NULL;
    wr_st_set *files = NULL;
    /* a second mapping of the weights, never touched: byte counts, and the files to evict */
    wr_status st = wr_st_set_open(&files, argv[1]);
    for (int pass = 0; st == WR_OK && cold && pass < 2; pass++) { /* best effort: twice */
        if (pass) nanosleep(&(struct timespec){0, 200000000}, NULL);
        for (int64_t i = 0; i < wr_st_set_nfiles(files); i++) {
            const char *path = wr_st_path(wr_st_set_file(files, i));
            const int fd = open(path, O_RDONLY);
            if (fd < 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0)
                fprintf(stderr, "bench_t5: cannot evict %s from the page cache\n", path);
            if (fd >= 0) close(fd);
        }
    }
    if (st == WR_OK) st = wr_backend_create(&be, WR_BACKEND_CPU, threads);
    double tl = now();
    if (st == WR_OK) st = wr_t5_load(&m, be, argv[1]);
    tl = now() - tl;
    double anon_load, file_load;
    rss_now_mb(&anon_load, &file_load);
    if (st == WR_OK) st = wr_st_open(&io, io_path);
    if (st != WR_OK) {
        fprintf(stderr, "bench_t5: %s: %s\n", wr_status_name(st), wr_error_detail());
        return 1;
    }
    const wr_t5_config *c = wr_t5_config_of(m);
    const wr_st_tensor *tids = wr_st_find(io, "input.ids"), *tmask = wr_st_find(io, "input.mask");
    const wr_st_tensor *ref = wr_st_find(io, "ref.output");
    if (!tids || !tmask || tids->dtype != WR_DTYPE_I32 || tmask->dtype != WR_DTYPE_U8 ||
        tids->ndim != 1 || tmask->ndim != 1 || tids->nelem != tmask->nelem) {
        fprintf(stderr, "bench_t5: %s lacks input.ids [L] I32 and input.mask [L] U8\n", io_path);
        return 1;
    }
    const int32_t *ids = wr_st_tensor_data(tids);
    const uint8_t *mask = wr_st_tensor_data(tmask);
    const wr_st_tensor *emb = wr_st_set_find(files, "shared.weight");
    /* t5.h's I (the inner width NH x DK) is spelled Inner here: cblas.h brings complex.h's I */
    const int64_t L = tids->nelem, D = c->d_model, Inner = c->num_heads * c->d_kv, FF = c->d_ff;
    int64_t n_real = 0, n_lead = 0;
    for (int64_t l = 0; l < L; l++) n_real += mask[l] != 0;
    while (n_lead < L && mask[n_lead]) n_lead++;
    int64_t n_ids = 0; /* distinct ids: the embedding rows a forward reads */
    for (int64_t l = 0; l < L; l++) {
        int64_t k = 0;
        while (k < l && ids[k] != ids[l]) k++;
        n_ids += k == l;
    }
    const float *refp =
        ref && ref->dtype == WR_DTYPE_F32 && ref->nelem == L * D ? wr_st_tensor_data(ref) : NULL;
    float *outbuf = malloc(sizeof(float) * (size_t)(L * D));
    wr_tensor out = wr_tensor_make(outbuf, WR_DTYPE_F32, 2, (int64_t[]){L, D});
    /* FLOPs of one layer (2 per multiply-add): the q,k,v,o projections; QK^T and PV over all
     * L x L pairs (padded query rows are computed, padded keys masked); the gated FFN's three
     * matrices */
    const double fl_layer = 2.0 * (4.0 * L * D * Inner + 2.0 * L * L * Inner + 3.0 * L * D * FF);
    const int64_t R = L < 512 ? L : 512; /* the FFN runs in chunks of 512 rows */
    timing tm;
    wr_t5_set_tap(m, on_tap, &tm);
    runs rf = {.n = repeat};
    st = run_forwards(m, &out, ids, mask, L, &tm, &rf);
    if (st == WR_OK && profile) {
        wr_op_profile_start();
        st = wr_t5_forward(m, &out, ids, mask, L);
        wr_op_profile_stop();
        wr_op_profile_log();
    }
    if (st != WR_OK) {
        fprintf(stderr, "bench_t5: forward: %s\n", wr_error_detail());
        return 1;
    }
    double anon_end, file_end;
    rss_now_mb(&anon_end, &file_end);
    const double rss_peak = maxrss_mb();
    const double emb_mapped =
        emb ? mapped_bytes(emb, (const char *)wr_st_tensor_data(emb) - emb->offset) : -1;
    double maxabs = -1;
    const double nmse = refp ? nmse_of(outbuf, refp, L * D, &maxabs) : -1;
    /* the sgemm peak (after the RSS reading: its buffers are not the model's); a neighbour's
     * burst must not decide the percentage, so up to 5 tries, a second apart, for a clean one */
    double peak = 0, peak_share = 1;
    for (int tries = 0; tries < 5 && !(peak_share < CLEAN_SHARE); tries++) {
        double sh;
        if (tries) nanosleep(&(struct timespec){1, 0}, NULL);
        const double p = sgemm_gflops(R, FF, D, &sh);
        if ((sh < CLEAN_SHARE) > (peak_share < CLEAN_SHARE) || p > peak) peak = p, peak_share = sh;
    }
    char peak_note[64] = "";
    if (!(peak_share < CLEAN_SHARE))
        snprintf(peak_note, sizeof peak_note, ", contended: others %.0f %%", 100 * peak_share);
    int nclean = 0;
    const double t_med = median_of(&rf, rf.tot, 2, NULL), l_med = median_of(&rf, rf.lay, 2, NULL);
    const double t_clean = median_of(&rf, rf.tot, CLEAN_SHARE, &nclean);
    const double l_clean = median_of(&rf, rf.lay, CLEAN_SHARE, NULL);
    const double gf = fl_layer / l_med / 1e9, gf_clean = l_clean > 0 ? fl_layer / l_clean / 1e9 : 0;
    char buf[1024];
    printf("wanrun: L=%lld (%lld real) D=%lld heads=%lldx%lld FF=%lld layers=%lld vocab=%lld "
           "threads=%d, load %.4f s\n",
           (long long)L, (long long)n_real, (long long)D, (long long)c->num_heads,
           (long long)c->d_kv, (long long)FF, (long long)c->num_layers, (long long)c->vocab_size,
           be->threads, tl);
    printf("wanrun: runs (others' CPU share): %s; warm-up %.3f s (%s), its gather of "
           "the embedding rows %.4f s reading %.1f MiB from storage\n",
           runs_str(buf, sizeof buf, &rf), rf.first,
           cold ? "weights evicted from the page cache" : "page cache as found", rf.first_embed_s,
           rf.first_embed_bytes >= 0 ? (double)rf.first_embed_bytes / 1048576.0 : -1.0);
    if (cold && rf.first_embed_bytes == 0)
        printf("wanrun: note: the gather read nothing from storage: the eviction did not take\n");
    printf("wanrun: forward %.3f s (median of %d), %.3f s per layer, %.1f GFLOP/s per layer, "
           "sgemm peak %.1f GFLOP/s%s (%.0f %%), nmse vs transformers %.2e (max abs %.2e)\n",
           t_med, repeat, l_med, gf, peak, peak_note, 100.0 * gf / peak, nmse, maxabs);
    if (nclean)
        printf(
            "wanrun: clean runs (others < %.0f %%): %d, median forward %.3f s, %.3f s per layer, "
            "%.1f GFLOP/s (%.0f %% of peak)\n",
            100 * CLEAN_SHARE, nclean, t_clean, l_clean, gf_clean, 100.0 * gf_clean / peak);
    else
        printf("wanrun: no clean run (others >= %.0f %% in all)\n", 100 * CLEAN_SHARE);
    printf("wanrun: weights %.2f GB in %lld file(s), embedding %s %.2f GB of which %.1f MiB mapped "
           "after the forwards (%lld distinct ids, %.1f MiB of rows); RSS after load: anon %.0f "
           "MiB, file %.0f MiB; after the forwards: anon %.0f MiB, file %.0f MiB; peak RSS %.0f "
           "MiB\n",
           (double)wr_st_set_nbytes(files) / 1e9, (long long)wr_st_set_nfiles(files),
           emb ? wr_dtype_name(emb->dtype) : "?", emb ? (double)emb->nbytes / 1e9 : 0.0,
           emb_mapped / 1048576.0, (long long)n_ids,
           emb ? (double)n_ids * (double)(emb->nbytes / (size_t)emb->shape[0]) / 1048576.0 : 0.0,
           anon_load, file_load, anon_end, file_end, rss_peak);

    /* Rows [0, n) depend only on the unmasked keys, i.e. on tokens [0, n) when the real tokens
     * come first (the tokenizer's layout): a forward over those n tokens alone gives the rows
     * wr_t5_encode keeps. Shown for what it would save; compared with transformers' rows. */
    if (real_rows && n_lead == n_real && n_real > 0 && n_real < L) {
        wr_tensor out_n = wr_tensor_make(outbuf, WR_DTYPE_F32, 2, (int64_t[]){n_real, D});
        runs rn = {.n = repeat};
        if (run_forwards(m, &out_n, ids, NULL, n_real, &tm, &rn) != WR_OK) {
            fprintf(stderr, "bench_t5: forward: %s\n", wr_error_detail());
            return 1;
        }
        double ma_n = -1;
        const double nmse_n = refp ? nmse_of(outbuf, refp, n_real * D, &ma_n) : -1;
        printf("wanrun: the %lld real tokens alone (the rows wr_t5_encode keeps): forward %.3f s "
               "(median of %d: %s), nmse vs transformers' rows [0, %lld) %.2e (max abs %.2e)\n",
               (long long)n_real, median_of(&rn, rn.tot, 2, NULL), repeat,
               runs_str(buf, sizeof buf, &rn), (long long)n_real, nmse_n, ma_n);
    }
    printf("RESULT forward_s=%.4f layer_s=%.4f gflops=%.2f peak=%.2f nmse=%.3e maxrss_mb=%.0f "
           "min_s=%.4f clean_s=%.4f nclean=%d load_s=%.4f emb_mapped_mb=%.1f\n",
           t_med, l_med, gf, peak, nmse, rss_peak, min_of(rf.tot, rf.n), t_clean, nclean, tl,
           emb_mapped / 1048576.0);
    free(outbuf);
    wr_st_set_close(files);
    wr_st_close(io);
    wr_t5_free(m);
    wr_backend_free(be);
    return 0;
}

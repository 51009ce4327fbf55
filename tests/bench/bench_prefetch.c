/*
 * bench_prefetch.c — how much of the streamed blocks' copies the prefetch hides behind the
 * compute (src/vram/stream.c: block i + 1 is copied on the pool's copy thread while block i
 * computes), on the CPU backend. Not a test: these are wall-clock numbers, which depend on the
 * machine and its load; tests/test_vram.c checks the prefetch's order (test_prefetch_order).
 *
 *   bench_prefetch [--layers N] [--tokens F,H,W] [--width heads,head_dim,ffn] [--threads N]
 *                  [--repeat K] [--dir DIR]
 *
 * Writes a random DiT (the tiny3 config of tests/data/dit with N blocks, default 6, of the given
 * width, default 6 x 64, FFN 1536: 9.4 MB of f32 weights per block) into DIR (default a new
 * folder under /tmp, removed at the end), then times forwards on a latent [16, F, H, W] (default
 * 5 x 24 x 40: 1,200 tokens), each the median of K (default 3):
 *   - resident: no pool, the checkpoint's tensors used in place (the compute alone);
 *   - streamed: every block streamed through the two slots, the copy thread given an extra
 *     delay per copy (wr_vram_set_copy_delay, the "slow link") so that a forward's copies take
 *     0, 0.25, 0.5, 1 and 2 times the resident forward measured first;
 * resident and streamed forwards in turn, as the load of a shared machine drifts. Per row: the
 * resident and the streamed forward; the copy thread's time on the copies submitted during the
 * streamed one (the delays plus the memcpy, from each copy's recorded start and end) and its
 * ratio to the row's resident forward; their sum (what no overlap would take); their max
 * (perfect overlap); the time the caller was blocked in wr_vram_copy_wait; and the share of the
 * copies hidden: (sum - streamed) / copies.
 *
 * --swap (Wan2.2's two experts, issue #18; needs WR_STRICT_DEVICE=1 or async, where resident
 * blocks are device copies): a second DiT from the same files (expert B), every block resident,
 * and per delay (the copies of all blocks 0.25 .. 2 times a forward) the expert swap timed both
 * ways, each a forward of A, the swap, a forward of B:
 *   - between the steps: wr_dit_set_vram(A, NULL) then wr_dit_set_vram(B) (every copy waited);
 *   - overlapped: wr_dit_handoff_arm(A, B) before A's forward, whose released blocks take B's
 *     copies, then wr_dit_take_over (waits for the copies still running);
 * per row A's forward (its workspace made), the swap between the steps, A's armed forward, the
 * take-over, the overlapped swap's cost (armed - plain forward, plus the take-over) and the
 * share of the swap hidden: 1 - cost / between.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/safetensors.h"
#include "kernels/backend.h"
#include "models/dit.h"
#include "vram/vram.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct gen {
    wr_st_writer *w;
    float **bufs;
    int n;
    uint64_t rng;
    int failed;
} gen;

static void gen_tensor(void *ctx, const char *name, int ndim, const int64_t *shape) {
    gen *g = ctx;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *b = malloc(sizeof(float) * (size_t)n);
    float **nb = realloc(g->bufs, sizeof(float *) * (size_t)(g->n + 1));
    if (b == NULL || nb == NULL) {
        free(b);
        g->failed = 1;
        return;
    }
    g->bufs = nb;
    g->bufs[g->n++] = b;
    for (int64_t i = 0; i < n; i++) {
        g->rng = g->rng * 6364136223846793005ull + 1442695040888963407ull;
        b[i] = (float)((double)(g->rng >> 40) / 16777216.0 - 0.5) * 0.2f;
    }
    if (wr_st_writer_add(g->w, name, WR_DTYPE_F32, ndim, shape, b) != WR_OK) g->failed = 1;
}

/* DIR/transformer/{config.json, diffusion_pytorch_model.safetensors}: a random DiT. */
static int write_model(const char *dir, int layers, int heads, int hd, int ffn) {
    char p[4400];
    snprintf(p, sizeof p, "%s/transformer", dir);
    if (mkdir(p, 0755) != 0) return 0;
    snprintf(p, sizeof p, "%s/transformer/config.json", dir);
    FILE *f = fopen(p, "w");
    if (f == NULL) return 0;
    fprintf(f,
            "{\"_class_name\": \"WanTransformer3DModel\", \"added_kv_proj_dim\": null,\n"
            " \"attention_head_dim\": %d, \"cross_attn_norm\": true, \"eps\": 1e-06,\n"
            " \"ffn_dim\": %d, \"freq_dim\": 32, \"image_dim\": null, \"in_channels\": 16,\n"
            " \"num_attention_heads\": %d, \"num_layers\": %d, \"out_channels\": 16,\n"
            " \"patch_size\": [1, 2, 2], \"pos_embed_seq_len\": null,\n"
            " \"qk_norm\": \"rms_norm_across_heads\", \"rope_max_seq_len\": 1024,\n"
            " \"text_dim\": 40}\n",
            hd, ffn, heads, layers);
    fclose(f);
    wr_dit_config c;
    if (wr_dit_config_read(&c, p) != WR_OK) return 0;
    gen g = {0};
    g.rng = 12345;
    if (wr_st_writer_init(&g.w) != WR_OK) return 0;
    wr_dit_expected_tensors(&c, NULL, gen_tensor, &g);
    snprintf(p, sizeof p, "%s/transformer/diffusion_pytorch_model.safetensors", dir);
    const int ok = !g.failed && wr_st_writer_write(g.w, p) == WR_OK;
    wr_st_writer_free(g.w);
    for (int i = 0; i < g.n; i++) free(g.bufs[i]);
    free(g.bufs);
    return ok;
}

typedef struct run {
    wr_dit *m;
    wr_tensor *out, *x, *enc;
} run;

typedef struct sample {
    double t, blocked, busy;
    uint64_t copies;
} sample;

/* One forward: its time; with a pool also its time in wr_vram_copy_wait (blocked), the copy
 * thread's time (delays and memcpy: start to end of each copy, from the pool's record) on the
 * copies submitted during it (busy), and their count. */
static sample one_forward(const run *r, wr_vram *v) {
    sample x = {0};
    wr_vram_stats s0, s1;
    memset(&s0, 0, sizeof s0), memset(&s1, 0, sizeof s1);
    uint64_t first = 0, last = 0;
    if (v) wr_vram_get_stats(v, &s0), wr_vram_copy_counts(v, &first, NULL);
    const double t0 = now();
    if (wr_dit_forward(r->m, r->out, r->x, 500.0f, r->enc) != WR_OK) {
        fprintf(stderr, "bench_prefetch: forward failed: %s\n", wr_error_detail());
        exit(1);
    }
    x.t = now() - t0;
    if (v == NULL) return x;
    wr_vram_get_stats(v, &s1), wr_vram_copy_counts(v, &last, NULL);
    x.blocked = s1.copy_wait_s - s0.copy_wait_s;
    x.copies = last - first;
    (void)wr_vram_copy_drain(v); /* (after the timing) every copy's end recorded */
    for (uint64_t q = first + 1; q <= last; q++) {
        double c0 = 0, c1 = 0;
        wr_vram_copy_times(v, q, &c0, &c1);
        x.busy += c1 - c0;
    }
    return x;
}

static double median(double *a, int k) {
    qsort(a, (size_t)k, sizeof(double), cmp_d);
    return k % 2 ? a[k / 2] : 0.5 * (a[k / 2 - 1] + a[k / 2]);
}

static void must(wr_status st, const char *what) {
    if (st == WR_OK) return;
    fprintf(stderr, "bench_prefetch: %s: %s\n", what, wr_error_detail());
    exit(1);
}

/* --swap: the two ways of swapping A for B (see the top), per copy delay. */
static void bench_swap(run *a, run *b, wr_vram *v, double tfwd, int repeat, int layers) {
    const double ratios[] = {0.25, 0.5, 1, 2};
    uint64_t c0 = 0, c1 = 0; /* the copies of one attach (one per block tensor) */
    wr_vram_copy_counts(v, &c0, NULL);
    must(wr_dit_set_vram(a->m, v, -1), "attach A");
    wr_vram_copy_counts(v, &c1, NULL);
    const double ncopies = (double)(c1 > c0 ? c1 - c0 : 1);
    printf("expert swap (%d blocks, all resident device copies), median of %d:\n", layers, repeat);
    printf("| copies / forward | A's forward s | swap between the steps s | A's armed forward s "
           "| take-over s | overlapped swap's cost s | copies hidden |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t k = 0; k < sizeof ratios / sizeof ratios[0]; k++) {
        double tf[16], ts[16], ta[16], tt[16];
        wr_vram_set_copy_delay(v, ratios[k] * tfwd / ncopies);
        for (int i = 0; i < repeat; i++) {
            /* between the steps: A's forward, then detach A and attach B (every copy waited) */
            must(wr_dit_set_vram(b->m, NULL, 0), "detach B");
            must(wr_dit_set_vram(a->m, v, -1), "attach A");
            (void)one_forward(a, NULL); /* (its workspace made, as in a run's later steps) */
            tf[i] = one_forward(a, NULL).t;
            double t0 = now();
            must(wr_dit_set_vram(a->m, NULL, 0), "detach A");
            must(wr_dit_set_vram(b->m, v, -1), "attach B");
            ts[i] = now() - t0;
            /* overlapped: A's last forward armed, then the take-over */
            must(wr_dit_set_vram(b->m, NULL, 0), "detach B");
            must(wr_dit_set_vram(a->m, v, -1), "attach A");
            (void)one_forward(a, NULL);
            t0 = now();
            must(wr_dit_handoff_arm(a->m, b->m), "arm");
            (void)one_forward(a, NULL);
            ta[i] = now() - t0;
            t0 = now();
            must(wr_dit_take_over(b->m, a->m), "take over");
            tt[i] = now() - t0;
            (void)one_forward(b, NULL); /* B computes on the copies: a wrong order would crash
                                           nothing here; test_vram checks the bytes */
        }
        wr_vram_set_copy_delay(v, 0);
        const double fw = median(tf, repeat), sw = median(ts, repeat);
        const double ar = median(ta, repeat), to = median(tt, repeat);
        const double cost = (ar - fw > 0 ? ar - fw : 0) + to;
        printf("| %.2f | %.3f | %.3f | %.3f | %.3f | %.3f | %.0f %% |\n", ratios[k], fw, sw, ar, to,
               cost, 100 * (1 - cost / sw));
    }
    must(wr_dit_set_vram(b->m, NULL, 0), "detach B");
}

int main(int argc, char **argv) {
    int layers = 6, threads = 0, repeat = 3, heads = 6, hd = 64, ffn = 1536;
    long long F = 5, H = 24, W = 40;
    const char *dir_arg = NULL;
    int swap = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--swap"))
            swap = 1;
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc)
            layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir_arg = argv[++i];
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc &&
                 sscanf(argv[i + 1], "%lld,%lld,%lld", &F, &H, &W) == 3)
            i++;
        else if (!strcmp(argv[i], "--width") && i + 1 < argc &&
                 sscanf(argv[i + 1], "%d,%d,%d", &heads, &hd, &ffn) == 3)
            i++;
        else {
            fprintf(stderr, "usage: bench_prefetch [--layers N] [--tokens F,H,W] "
                            "[--width heads,head_dim,ffn] [--threads N] [--repeat K] [--dir DIR] "
                            "[--swap]\n");
            return 2;
        }
    }
    if (layers < 2 || layers > 9 || repeat < 1 || F < 1 || H < 2 || W < 2 || H % 2 || W % 2) {
        fprintf(stderr, "bench_prefetch: --layers 2..9, --repeat >= 1, H and W even\n");
        return 2;
    }
    char dir[4096];
    if (dir_arg) {
        snprintf(dir, sizeof dir, "%s", dir_arg);
        mkdir(dir, 0755);
    } else {
        snprintf(dir, sizeof dir, "/tmp/wanrun-bench-prefetch-XXXXXX");
        if (mkdtemp(dir) == NULL) {
            perror("bench_prefetch: mkdtemp");
            return 1;
        }
    }
    if (!write_model(dir, layers, heads, hd, ffn)) {
        fprintf(stderr, "bench_prefetch: could not write the model into %s (%s)\n", dir,
                wr_error_detail());
        return 1;
    }
    wr_backend *be = NULL;
    if (wr_backend_create(&be, WR_BACKEND_CPU, threads) != WR_OK) {
        fprintf(stderr, "bench_prefetch: %s\n", wr_error_detail());
        return 1;
    }
    char tdir[4400];
    snprintf(tdir, sizeof tdir, "%s/transformer", dir);
    run r = {0};
    if (wr_dit_load(&r.m, be, tdir) != WR_OK) {
        fprintf(stderr, "bench_prefetch: %s\n", wr_error_detail());
        return 1;
    }
    const int64_t C = 16, S = 16, TD = 40, nx = C * F * H * W;
    float *xb = malloc(sizeof(float) * (size_t)nx), *ob = malloc(sizeof(float) * (size_t)nx);
    float *eb = malloc(sizeof(float) * (size_t)(S * TD));
    for (int64_t i = 0; i < nx; i++) xb[i] = (float)sin((double)i * 0.37);
    for (int64_t i = 0; i < S * TD; i++) eb[i] = (float)cos((double)i * 0.13);
    wr_tensor x = wr_tensor_make(xb, WR_DTYPE_F32, 4, (int64_t[]){C, F, H, W});
    wr_tensor o = wr_tensor_make(ob, WR_DTYPE_F32, 4, (int64_t[]){C, F, H, W});
    wr_tensor e = wr_tensor_make(eb, WR_DTYPE_F32, 2, (int64_t[]){S, TD});
    r.x = &x, r.out = &o, r.enc = &e;
    const size_t blk = wr_dit_block_bytes(r.m);

    (void)one_forward(&r, NULL); /* warm-up */
    double tr[16];
    if (repeat > 16) repeat = 16;
    for (int i = 0; i < repeat; i++) tr[i] = one_forward(&r, NULL).t;
    const double tres0 = median(tr, repeat); /* sets the delays */
    wr_vram *v = NULL;
    if (wr_vram_create(&v, be, 0) != WR_OK) {
        fprintf(stderr, "bench_prefetch: %s\n", wr_error_detail());
        return 1;
    }
    const double ratios[] = {0, 0.25, 0.5, 1, 2};
    uint64_t ncopies = 0;
    printf("bench_prefetch: %d blocks of %.1f MB (f32), %lld tokens, %d threads, median of %d\n",
           layers, (double)blk / 1e6, (long long)(F * (H / 2) * (W / 2)), be->threads, repeat);
    if (swap) {
        if (be->host_visible) {
            fprintf(stderr, "bench_prefetch --swap: resident blocks are used in place on this "
                            "backend; run it with WR_STRICT_DEVICE=1\n");
            return 2;
        }
        run b = r;
        must(wr_dit_load(&b.m, be, tdir), "load B");
        bench_swap(&r, &b, v, tres0, repeat, layers);
        wr_dit_free(b.m);
    }
    if (swap) goto end; /* (the prefetch table is the run without --swap) */
    printf("| delay for copies / compute | resident s | streamed s | copies s | copies / resident "
           "| sum s | max s | blocked s | copies hidden |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t k = 0; k < sizeof ratios / sizeof ratios[0]; k++) {
        double ts[16], tb[16], tc[16];
        for (int i = 0; i < repeat; i++) { /* resident and streamed in turn (the load drifts) */
            wr_dit_set_vram(r.m, NULL, 0);
            tr[i] = one_forward(&r, NULL).t;
            if (wr_dit_set_vram(r.m, v, 0) != WR_OK) {
                fprintf(stderr, "bench_prefetch: %s\n", wr_error_detail());
                return 1;
            }
            const sample w = one_forward(&r, v); /* fills the prefetch of the first block */
            if (ncopies == 0) ncopies = w.copies;
            wr_vram_set_copy_delay(v, ratios[k] * tres0 / (double)(ncopies ? ncopies : 1));
            (void)one_forward(&r, v); /* the delayed copies of the first block start */
            const sample smp = one_forward(&r, v);
            ts[i] = smp.t, tb[i] = smp.blocked, tc[i] = smp.busy;
            wr_vram_set_copy_delay(v, 0);
        }
        const double res = median(tr, repeat), st = median(ts, repeat);
        const double busy = median(tc, repeat), blocked = median(tb, repeat);
        const double sum = res + busy, mx = res > busy ? res : busy;
        char hidden[32] = "-"; /* (meaningless when the copies are only the memcpy) */
        if (ratios[k] > 0) snprintf(hidden, sizeof hidden, "%.0f %%", 100 * (sum - st) / busy);
        printf("| %.2f | %.3f | %.3f | %.3f | %.2f | %.3f | %.3f | %.4f | %s |\n", ratios[k], res,
               st, busy, busy / res, sum, mx, blocked, hidden);
    }
    printf("(%llu copies per streamed forward)\n", (unsigned long long)ncopies);
end:
    wr_dit_set_vram(r.m, NULL, 0);
    wr_vram_free_pool(v);
    wr_dit_free(r.m);
    wr_backend_free(be);
    free(xb), free(ob), free(eb);
    if (!dir_arg) {
        char p[4400];
        snprintf(p, sizeof p, "%s/transformer/config.json", dir);
        unlink(p);
        snprintf(p, sizeof p, "%s/transformer/diffusion_pytorch_model.safetensors", dir);
        unlink(p);
        snprintf(p, sizeof p, "%s/transformer", dir);
        rmdir(p);
        rmdir(dir);
    }
    return 0;
}

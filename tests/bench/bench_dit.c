/*
 * bench_dit.c — one DiT forward on the CPU backend, timed per block through the taps.
 *
 *   bench_dit TRANSFORMER_DIR IO.safetensors [--threads N] [--repeat K] [--profile]
 *   bench_dit TRANSFORMER_DIR --random F,H,W,S [--threads N] [--repeat K] [--profile]
 *             [--make-bf16 LAYERS] [--per-use | --compare]
 *
 * The second form runs on seeded random inputs (latent [16,F,H,W], S text rows): it shows a
 * full-size checkpoint (e.g. the generated 1.3B one of bench_load.sh) loads and runs, and
 * prints the load time. --make-bf16 LAYERS first writes a random bf16 checkpoint of the
 * Wan2.1-1.3B width (D=1536, 12 heads x 128, FFN 8960, text 4096) with LAYERS blocks into
 * TRANSFORMER_DIR (config.json + one safetensors file; matrices uniform in +-1/sqrt(fan-in),
 * norm weights 1 +- 0.05, the rest +-0.05, seeded).
 *
 * The per-block upcast (issue #15 §4): by default narrow block matrices are converted to f32
 * once per acquired block; --per-use loads with wr_dit_load_opts.upcast_per_use (the matmuls
 * convert per use, once per FFN chunk: the behaviour before); --compare loads the checkpoint
 * both ways, runs their forwards alternately and prints both times, the speed-up and whether
 * the outputs are bitwise equal (else their NMSE).
 *
 * IO.safetensors holds input.hidden_states [1,16,F,H,W], input.timestep [1],
 * input.encoder_hidden_states [1,S,text_dim] and (optionally) ref.output, diffusers' output for
 * the same weights and inputs (written by bench_dit_diffusers.py): the NMSE against it is
 * printed, so a fast but wrong run shows. Also measures this machine's sgemm peak (OpenBLAS,
 * the same threads) on the forward's largest GEMM shape, for the GFLOP/s ratio. --profile adds
 * one more forward, untimed, that logs the time per op (wr_op_profile_*).
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/dtype.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "kernels/backend.h"
#include "kernels/ops.h"
#include "models/dit.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct timing {
    double t0, last, blocks_total;
    double block[64];
    int nblocks;
} timing;

static void on_tap(void *ctx, const char *name, const wr_tensor *t) {
    timing *tm = ctx;
    (void)t;
    double n = now();
    if (strcmp(name, "text_proj") == 0) tm->last = n; /* blocks start after the text projection */
    if (strncmp(name, "block.", 6) == 0 && tm->nblocks < 64) {
        tm->block[tm->nblocks++] = n - tm->last;
        tm->blocks_total += n - tm->last;
        tm->last = n;
    }
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double sgemm_gflops(int64_t M, int64_t N, int64_t K) {
    float *a = malloc(sizeof(float) * (size_t)(M * K)),
          *b = malloc(sizeof(float) * (size_t)(N * K));
    float *c = malloc(sizeof(float) * (size_t)(M * N));
    for (int64_t i = 0; i < M * K; i++) a[i] = (float)(i % 7) * 0.1f;
    for (int64_t i = 0; i < N * K; i++) b[i] = (float)(i % 5) * 0.1f;
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, a,
                    (int)K, b, (int)K, 0.0f, c, (int)N);
        t = now() - t;
        if (t < best) best = t;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * (double)M * (double)N * (double)K / best / 1e9;
}

/* ---- --make-bf16: a random checkpoint of the 1.3B width ---- */

typedef struct gen_ctx {
    wr_st_writer *w;
    uint16_t **bufs;
    int n, cap;
    uint64_t seed;
    wr_status st;
} gen_ctx;

static double urand(uint64_t *s) { /* [-1, 1) */
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 4503599627370496.0 - 1.0;
}

static void gen_one(void *ctx, const char *name, int ndim, const int64_t *shape) {
    gen_ctx *g = ctx;
    if (g->st != WR_OK) return;
    int64_t n = 1, fan_in = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    for (int i = 1; i < ndim; i++) fan_in *= shape[i];
    uint16_t *b = malloc(sizeof(uint16_t) * (size_t)n);
    if (b == NULL || g->n == g->cap) {
        free(b);
        g->st = WR_FAIL(WR_ERR_OOM_HOST, "--make-bf16: out of host memory");
        return;
    }
    const int matrix = ndim == 2 || ndim == 5, norm = ndim == 1 && strstr(name, "norm") != NULL;
    const double a = matrix ? 1.0 / sqrt((double)fan_in) : 0.05;
    for (int64_t i = 0; i < n; i++)
        b[i] = wr_f32_to_bf16((float)((norm ? 1.0 : 0.0) + a * urand(&g->seed)));
    g->bufs[g->n++] = b;
    g->st = wr_st_writer_add(g->w, name, WR_DTYPE_BF16, ndim, shape, b);
}

static wr_status make_bf16(const char *dir, int layers) {
    char path[4200];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) return WR_FAIL(WR_ERR_IO, "--make-bf16: cannot write %s", path);
    fprintf(f,
            "{\"_class_name\": \"WanTransformer3DModel\", \"added_kv_proj_dim\": null, "
            "\"attention_head_dim\": 128, \"cross_attn_norm\": true, \"eps\": 1e-06, "
            "\"ffn_dim\": 8960, \"freq_dim\": 256, \"image_dim\": null, \"in_channels\": 16, "
            "\"num_attention_heads\": 12, \"num_layers\": %d, \"out_channels\": 16, "
            "\"patch_size\": [1, 2, 2], \"qk_norm\": \"rms_norm_across_heads\", "
            "\"rope_max_seq_len\": 1024, \"text_dim\": 4096}\n",
            layers);
    if (fclose(f) != 0) return WR_FAIL(WR_ERR_IO, "--make-bf16: cannot write %s", path);
    wr_dit_config cfg;
    WR_TRY(wr_dit_config_read(&cfg, path));
    gen_ctx g = {.seed = 0x5eed, .st = WR_OK};
    g.cap = (int)wr_dit_expected_tensors(&cfg, NULL, NULL, NULL);
    g.bufs = calloc((size_t)g.cap, sizeof *g.bufs);
    wr_status st = g.bufs ? wr_st_writer_init(&g.w) : WR_FAIL(WR_ERR_OOM_HOST, "out of memory");
    if (st == WR_OK) {
        wr_dit_expected_tensors(&cfg, NULL, gen_one, &g);
        st = g.st;
    }
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    if (st == WR_OK) st = wr_st_writer_write(g.w, path);
    wr_st_writer_free(g.w);
    for (int i = 0; i < g.n; i++) free(g.bufs[i]);
    free(g.bufs);
    return st;
}

/* One timed forward; the taps fill tm. */
static wr_status timed_forward(wr_dit *m, timing *tm, wr_tensor *out, const wr_tensor *x, float t,
                               const wr_tensor *e, double *dt) {
    memset(tm, 0, sizeof *tm);
    wr_dit_set_tap(m, on_tap, tm);
    const double t0 = now();
    const wr_status st = wr_dit_forward(m, out, x, t, e);
    *dt = now() - t0;
    return st;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_dit TRANSFORMER_DIR (IO.safetensors | --random F,H,W,S) "
                        "[--threads N] [--repeat K] [--profile]\n");
        return 2;
    }
    int threads = 0, repeat = 3, profile = 0, make_layers = 0, per_use = 0, compare = 0;
    int64_t rnd[4] = {0, 0, 0, 0};
    const char *io_path = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
            repeat = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--profile") == 0) {
            profile = 1;
        } else if (strcmp(argv[i], "--make-bf16") == 0 && i + 1 < argc) {
            make_layers = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--per-use") == 0) {
            per_use = 1;
        } else if (strcmp(argv[i], "--compare") == 0) {
            compare = 1;
        } else if (strcmp(argv[i], "--random") == 0 && i + 1 < argc) {
            long long a, b, c2, d;
            if (sscanf(argv[++i], "%lld,%lld,%lld,%lld", &a, &b, &c2, &d) != 4) {
                fprintf(stderr, "bench_dit: --random needs F,H,W,S\n");
                return 2;
            }
            rnd[0] = a, rnd[1] = b, rnd[2] = c2, rnd[3] = d;
        } else {
            io_path = argv[i];
        }
    }
    if (repeat < 1) repeat = 1;
    wr_log_init();
    wr_backend *be = NULL;
    wr_dit *m = NULL, *m2 = NULL; /* m2: --compare's per-use model */
    wr_st_file *io = NULL;
    wr_status st = make_layers > 0 ? make_bf16(argv[1], make_layers) : WR_OK;
    if (st == WR_OK) st = wr_backend_create(&be, WR_BACKEND_CPU, threads);
    const wr_dit_load_opts lo = {.upcast_per_use = per_use}, lo2 = {.upcast_per_use = 1};
    double tl = now();
    if (st == WR_OK) st = wr_dit_load_ex(&m, be, argv[1], &lo);
    tl = now() - tl;
    if (st == WR_OK && compare) st = wr_dit_load_ex(&m2, be, argv[1], &lo2);
    if (st == WR_OK && io_path) st = wr_st_open(&io, io_path);
    if (st != WR_OK) {
        fprintf(stderr, "bench_dit: %s: %s\n", wr_status_name(st), wr_error_detail());
        return 1;
    }
    const wr_dit_config *c = wr_dit_config_of(m);
    const wr_st_tensor *lat = NULL, *ts = NULL, *enc = NULL, *ref = NULL;
    int64_t ls[5], es[3];
    float *xbuf = NULL, *ebuf = NULL, tval = 500.0f;
    if (io) {
        lat = wr_st_find(io, "input.hidden_states");
        ts = wr_st_find(io, "input.timestep");
        enc = wr_st_find(io, "input.encoder_hidden_states");
        ref = wr_st_find(io, "ref.output");
        if (!lat || !ts || !enc || lat->ndim != 5 || enc->ndim != 3) {
            fprintf(stderr, "bench_dit: %s lacks input tensors\n", io_path);
            return 1;
        }
        memcpy(ls, lat->shape, sizeof ls);
        memcpy(es, enc->shape, sizeof es);
        xbuf = (float *)wr_st_tensor_data(lat);
        ebuf = (float *)wr_st_tensor_data(enc);
        tval = ((const float *)wr_st_tensor_data(ts))[0];
    } else {
        if (rnd[0] <= 0) {
            fprintf(stderr, "bench_dit: give IO.safetensors or --random F,H,W,S\n");
            return 2;
        }
        const int64_t l5[5] = {1, c->in_channels, rnd[0], rnd[1], rnd[2]};
        const int64_t e3[3] = {1, rnd[3], c->text_dim};
        memcpy(ls, l5, sizeof ls);
        memcpy(es, e3, sizeof es);
        xbuf = malloc(sizeof(float) * (size_t)(ls[1] * ls[2] * ls[3] * ls[4]));
        ebuf = malloc(sizeof(float) * (size_t)(es[1] * es[2]));
        uint64_t r = 12345;
        for (int64_t i = 0; i < ls[1] * ls[2] * ls[3] * ls[4]; i++)
            xbuf[i] = (float)((r = r * 6364136223846793005ull + 1442695040888963407ull) >> 40) /
                          8388608.0f -
                      1.0f;
        for (int64_t i = 0; i < es[1] * es[2]; i++)
            ebuf[i] = (float)((r = r * 6364136223846793005ull + 1442695040888963407ull) >> 40) /
                          8388608.0f -
                      1.0f;
    }
    wr_tensor x = wr_tensor_make(xbuf, WR_DTYPE_F32, 4, (int64_t[]){ls[1], ls[2], ls[3], ls[4]});
    wr_tensor e = wr_tensor_make(ebuf, WR_DTYPE_F32, 2, (int64_t[]){es[1], es[2]});
    float *outbuf = malloc(sizeof(float) * (size_t)(c->out_channels * ls[2] * ls[3] * ls[4]));
    wr_tensor out =
        wr_tensor_make(outbuf, WR_DTYPE_F32, 4, (int64_t[]){c->out_channels, ls[2], ls[3], ls[4]});
    const int64_t D = c->num_attention_heads * c->attention_head_dim, FF = c->ffn_dim;
    const int64_t L =
        (ls[2] / c->patch_size.v[0]) * (ls[3] / c->patch_size.v[1]) * (ls[4] / c->patch_size.v[2]);
    const int64_t S = es[1];
    /* FLOPs of one block (2 per multiply-add): self-attn q,k,v,o projections; QK^T and PV;
     * cross-attn q,o over L and k,v over S; its QK^T and PV; the FFN */
    const double fl_block = 2.0 * (4.0 * L * D * D + 2.0 * L * L * D + 2.0 * L * D * D +
                                   2.0 * S * D * D + 2.0 * L * S * D + 2.0 * L * D * FF);
    timing tm;
    double *tot = calloc((size_t)repeat + 1, sizeof(double)),
           *blk = calloc((size_t)repeat + 1, sizeof(double));
    double *tot2 = calloc((size_t)repeat + 1, sizeof(double)),
           *blk2 = calloc((size_t)repeat + 1, sizeof(double));
    float *out2buf = compare ? malloc(wr_tensor_nbytes(&out)) : NULL;
    wr_tensor out2 = out;
    out2.data = out2buf;
    const float t = tval;
    /* run 0 is a warm-up (page faults of the weights); --compare alternates the two models */
    for (int r = 0; r <= repeat; r++) {
        double dt = 0;
        st = timed_forward(m, &tm, &out, &x, t, &e, &dt);
        if (st == WR_OK && r > 0) {
            tot[r - 1] = dt;
            blk[r - 1] = tm.blocks_total / tm.nblocks;
        }
        if (st == WR_OK && compare) {
            st = timed_forward(m2, &tm, &out2, &x, t, &e, &dt);
            if (r > 0) tot2[r - 1] = dt, blk2[r - 1] = tm.blocks_total / tm.nblocks;
        }
        if (st != WR_OK) {
            fprintf(stderr, "bench_dit: forward: %s\n", wr_error_detail());
            return 1;
        }
    }
    if (profile) {
        wr_op_profile_start();
        st = wr_dit_forward(m, &out, &x, t, &e);
        wr_op_profile_stop();
        if (st != WR_OK) {
            fprintf(stderr, "bench_dit: forward: %s\n", wr_error_detail());
            return 1;
        }
        wr_op_profile_log();
    }
    qsort(tot, (size_t)repeat, sizeof(double), cmp_d);
    qsort(blk, (size_t)repeat, sizeof(double), cmp_d);
    qsort(tot2, (size_t)repeat, sizeof(double), cmp_d);
    qsort(blk2, (size_t)repeat, sizeof(double), cmp_d);
    double nmse = -1;
    if (ref && ref->nelem == wr_tensor_nelem(&out)) {
        const float *b = wr_st_tensor_data(ref);
        double num = 0, den = 0;
        for (int64_t i = 0; i < ref->nelem; i++) {
            num += ((double)outbuf[i] - b[i]) * ((double)outbuf[i] - b[i]);
            den += (double)b[i] * b[i];
        }
        nmse = num / den;
    }
    double peak = sgemm_gflops(L, FF, D);
    printf("wanrun: L=%lld S=%lld D=%lld FF=%lld blocks=%lld threads=%d, load %.3f s\n",
           (long long)L, (long long)S, (long long)D, (long long)FF, (long long)c->num_layers,
           be->threads, tl);
    printf("wanrun: forward %.3f s (median of %d), %.3f s per block, %.1f GFLOP/s per block, "
           "sgemm peak %.1f GFLOP/s (%.0f %%), nmse vs diffusers %.2e\n",
           tot[repeat / 2], repeat, blk[repeat / 2], fl_block / blk[repeat / 2] / 1e9, peak,
           100.0 * fl_block / blk[repeat / 2] / 1e9 / peak, nmse);
    printf("RESULT forward_s=%.4f block_s=%.4f gflops=%.2f peak=%.2f nmse=%.3e\n", tot[repeat / 2],
           blk[repeat / 2], fl_block / blk[repeat / 2] / 1e9, peak, nmse);
    if (compare) {
        const int64_t n = wr_tensor_nelem(&out);
        const int same = memcmp(outbuf, out2buf, wr_tensor_nbytes(&out)) == 0;
        double num = 0, den = 0;
        for (int64_t i = 0; i < n; i++) {
            num += ((double)outbuf[i] - out2buf[i]) * ((double)outbuf[i] - out2buf[i]);
            den += (double)out2buf[i] * out2buf[i];
        }
        printf("wanrun: upcast once per block (%.1f MiB buffer): forward %.3f s, %.3f s per block; "
               "per use: forward %.3f s, %.3f s per block; speed-up %.3fx per block; outputs %s "
               "(nmse %.3e)\n",
               (double)wr_dit_upcast_bytes(m) / 1048576.0, tot[repeat / 2], blk[repeat / 2],
               tot2[repeat / 2], blk2[repeat / 2], blk2[repeat / 2] / blk[repeat / 2],
               same ? "bitwise equal" : "differ", den > 0 ? num / den : num);
        printf("RESULT upcast_block_s=%.4f peruse_block_s=%.4f speedup=%.4f bitwise=%d\n",
               blk[repeat / 2], blk2[repeat / 2], blk2[repeat / 2] / blk[repeat / 2], same);
    }
    free(tot);
    free(blk);
    free(tot2);
    free(blk2);
    free(out2buf);
    wr_dit_free(m2);
    free(outbuf);
    if (!io) {
        free(xbuf);
        free(ebuf);
    }
    wr_st_close(io);
    wr_dit_free(m);
    wr_backend_free(be);
    return 0;
}

/*
 * bench_cp.c — the context-parallel DiT forward (issue #7) on the CPU backend: time, bytes
 * communicated per block against the Ulysses / ring formulas, and the output against a
 * one-rank run's.
 *
 *   [mpirun -np P] bench_cp TRANSFORMER_DIR (IO.safetensors | --random F,H,W,S)
 *                  [--threads N] [--repeat K] [--cp auto|ulysses|ring]
 *                  [--save OUT.safetensors] [--ref REF.safetensors] [--profile]
 *   bench_cp --plan
 *
 * The model runs over all ranks of the job (layout {cfg = 1, cp = world size}); a plain start
 * is one rank. Inputs as bench_dit (the same seeded generator for --random, so every run of a
 * shape sees the same latent and text). Each timed forward starts after a barrier and counts
 * the slowest rank; the median of K after one warm-up is reported. --save (rank 0) writes the
 * output as tensor "output"; --ref compares this run's output with such a file: bitwise
 * for Ulysses (only data moves), else NMSE <= 1e-7 (ring reorders the softmax sums; one rank
 * with other threads may split a GEMM differently; STYLE.md's bound). The exit status is 1 on
 * every rank when the check fails. --profile adds one untimed forward with per-op timing on rank 0
 * (wr_op_profile_*): what the ops do not account for is communication and waiting.
 *
 * --plan prints the GPU projection of issue #7 (no model needed): per-block Ulysses volume and
 * its time over NVLink and PCIe next to the compute time estimated from FLOPs, for the 1.3B and
 * 14B models at 480p and 720p, P = 2, 4, 8.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/safetensors.h"
#include "kernels/backend.h"
#include "kernels/ops.h"
#include "models/dit.h"
#include "parallel/comm.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct timing {
    double last, blocks_total;
    int nblocks;
} timing;

static void on_tap(void *ctx, const char *name, const wr_tensor *t) {
    timing *tm = ctx;
    (void)t;
    double n = now();
    if (strcmp(name, "text_proj") == 0) tm->last = n; /* blocks start after the text projection */
    if (strncmp(name, "block.", 6) == 0) {
        tm->blocks_total += n - tm->last;
        tm->nblocks++;
        tm->last = n;
    }
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- the GPU projection (--plan) ---- */

typedef struct plan_model {
    const char *name;
    int64_t D, NH, FF, blocks;
} plan_model;

/* FLOPs of one block on one of P ranks (2 per multiply-add): self-attention q, k, v, out
 * projections 4·2·L·D² and QK^T + PV 2·2·L²·D; cross-attention q, out 2·2·L·D² and its scores
 * 2·2·L·S·D; the FFN 2·2·L·D·FF — all divided by P (each rank has L/P queries) — plus the
 * cross-attention k, v over the S text rows, 2·2·S·D², which every rank computes whole. */
static double plan_block_flops(const plan_model *pm, int64_t L, int64_t S, int P) {
    const double D = (double)pm->D, FF = (double)pm->FF, l = (double)L, s = (double)S;
    const double shard = 4.0 * 2.0 * l * D * D + 2.0 * 2.0 * l * l * D + 2.0 * 2.0 * l * D * D +
                         2.0 * 2.0 * l * s * D + 2.0 * 2.0 * l * D * FF;
    return shard / P + 2.0 * 2.0 * s * D * D;
}

static void print_plan(void) {
    const double tflops = 400e12, nvlink = 370e9, pcie = 25e9, wire = 2.0; /* bf16 on the wire */
    const int64_t S = 512;
    const plan_model models[2] = {{"Wan2.1-T2V-1.3B", 1536, 12, 8960, 30},
                                  {"Wan2.1-T2V-14B", 5120, 40, 13824, 40}};
    const struct {
        const char *name;
        int64_t L;
    } videos[2] = {{"832x480x81 video, latent 21x60x104, patch 1x2x2", 21 * 30 * 52},
                   {"1280x720x81 video, latent 21x90x160, patch 1x2x2", 21 * 45 * 80}};
    printf("GPU projection (issue #7): per block and rank; compute = FLOPs / %.0f TFLOP/s "
           "(assumed sustained bf16 on an H100);\n",
           tflops / 1e12);
    printf("Ulysses volume 4 all-to-alls x (P-1)/P x Ls x D x %.0f B (bf16), Ls = ceil(L/P); "
           "NVLink %.0f GB/s, PCIe %.0f GB/s per GPU (assumed);\n",
           wire, nvlink / 1e9, pcie / 1e9);
    printf("ring (where the heads do not divide by P) (P-1) x 2 x Ls x D x %.0f B. Text S = %lld "
           "rows.\n",
           wire, (long long)S);
    for (int mi = 0; mi < 2; mi++) {
        const plan_model *pm = &models[mi];
        printf("\n%s: D=%lld, %lld heads, FF %lld, %lld blocks\n\n", pm->name, (long long)pm->D,
               (long long)pm->NH, (long long)pm->FF, (long long)pm->blocks);
        printf("| video | L | P | mode | MB sent / block / rank | compute ms/block | comm ms/block "
               "NVLink | comm ms/block PCIe | comm/compute NVLink | comm/compute PCIe |\n");
        printf("|---|---|---|---|---|---|---|---|---|---|\n");
        for (int vi = 0; vi < 2; vi++) {
            const int Ps[3] = {2, 4, 8};
            for (int pi = 0; pi < 3; pi++) {
                const int P = Ps[pi];
                const int64_t L = videos[vi].L, Ls = (L + P - 1) / P;
                const int ulysses = pm->NH % P == 0;
                const double bytes = ulysses ? 4.0 * (P - 1) / P * (double)Ls * pm->D * wire
                                             : (P - 1) * 2.0 * (double)Ls * pm->D * wire;
                const double tc = plan_block_flops(pm, L, S, P) / tflops * 1e3;
                const double tn = bytes / nvlink * 1e3, tp = bytes / pcie * 1e3;
                printf("| %s | %lld | %d | %s | %.1f | %.2f | %.3f | %.2f | %.3f | %.2f |\n",
                       vi == 0 ? "480p" : "720p", (long long)L, P, ulysses ? "Ulysses" : "ring",
                       bytes / 1e6, tc, tn, tp, tn / tc, tp / tc);
            }
        }
    }
    printf("\n480p: %s; 720p: %s\n", videos[0].name, videos[1].name);
}

/* ---- the benchmark ---- */

static wr_status save_output(const char *path, const wr_tensor *out) {
    wr_st_writer *w = NULL;
    wr_status st = wr_st_writer_init(&w);
    if (st == WR_OK)
        st = wr_st_writer_add(w, "output", WR_DTYPE_F32, out->ndim, out->shape, out->data);
    if (st == WR_OK) st = wr_st_writer_write(w, path);
    wr_st_writer_free(w);
    return st;
}

typedef struct cmp_result {
    int have, bitwise;
    double nmse, max_abs;
} cmp_result;

static cmp_result compare(const float *got, const float *ref, int64_t n) {
    cmp_result r = {.have = 1};
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)got[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
        if (fabs(d) > r.max_abs || isnan(d)) r.max_abs = isnan(d) ? INFINITY : fabs(d);
    }
    r.nmse = den > 0 ? num / den : num;
    r.bitwise = memcmp(got, ref, sizeof(float) * (size_t)n) == 0;
    return r;
}

static int usage(void) {
    fprintf(stderr, "usage: bench_cp TRANSFORMER_DIR (IO.safetensors | --random F,H,W,S) "
                    "[--threads N] [--repeat K] [--cp auto|ulysses|ring] [--save OUT] [--ref REF] "
                    "[--profile]\n       bench_cp --plan\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--plan") == 0) {
        print_plan();
        return 0;
    }
    if (argc < 3) return usage();
    int threads = 0, repeat = 3, profile = 0, mode = WR_CP_AUTO;
    int64_t rnd[4] = {0, 0, 0, 0};
    const char *io_path = NULL, *save_path = NULL, *ref_path = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
            repeat = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--profile") == 0) {
            profile = 1;
        } else if (strcmp(argv[i], "--cp") == 0 && i + 1 < argc) {
            mode = wr_cp_mode_parse(argv[++i]);
            if (mode < 0) return usage();
        } else if (strcmp(argv[i], "--save") == 0 && i + 1 < argc) {
            save_path = argv[++i];
        } else if (strcmp(argv[i], "--ref") == 0 && i + 1 < argc) {
            ref_path = argv[++i];
        } else if (strcmp(argv[i], "--random") == 0 && i + 1 < argc) {
            long long a, b, c2, d;
            if (sscanf(argv[++i], "%lld,%lld,%lld,%lld", &a, &b, &c2, &d) != 4) return usage();
            rnd[0] = a, rnd[1] = b, rnd[2] = c2, rnd[3] = d;
        } else if (argv[i][0] == '-') {
            return usage();
        } else {
            io_path = argv[i];
        }
    }
    if (repeat < 1) repeat = 1;
    if (!io_path && rnd[0] <= 0) return usage();

    wr_log_init();
    wr_world world;
    wr_groups groups;
    memset(&groups, 0, sizeof groups);
    wr_status st = wr_world_init(&world, &argc, &argv);
    if (st != WR_OK) {
        fprintf(stderr, "bench_cp: %s: %s\n", wr_status_name(st), wr_error_detail());
        return 1;
    }
    const wr_layout lay = {.cfg = 1, .cp = world.size};
    st = wr_groups_create(&groups, &world, lay, -1);
    if (st != WR_OK) {
        fprintf(stderr, "bench_cp: %s: %s\n", wr_status_name(st), wr_error_detail());
        wr_world_abort(&world, 1);
    }
    wr_comm *cp = groups.cp;
    const int P = wr_comm_size(cp), rank = wr_comm_rank(cp);

    wr_backend *be = NULL;
    wr_dit *m = NULL;
    wr_st_file *io = NULL, *reff = NULL;
    st = wr_backend_create(&be, WR_BACKEND_CPU, threads);
    if (st == WR_OK) st = wr_dit_load(&m, be, argv[1]);
    if (st == WR_OK && io_path) st = wr_st_open(&io, io_path);
    if (st == WR_OK) st = wr_dit_set_parallel(m, cp, (wr_cp_mode)mode);
    st = wr_comm_agree(cp, st);
    if (st != WR_OK) {
        if (rank == 0) fprintf(stderr, "bench_cp: %s: %s\n", wr_status_name(st), wr_error_detail());
        wr_world_finalize(&world);
        return 1;
    }
    const wr_dit_config *c = wr_dit_config_of(m);
    const wr_st_tensor *diff_ref = NULL;
    int64_t ls[5], es[3];
    float *xbuf = NULL, *ebuf = NULL, tval = 500.0f;
    if (io) {
        const wr_st_tensor *lat = wr_st_find(io, "input.hidden_states");
        const wr_st_tensor *ts = wr_st_find(io, "input.timestep");
        const wr_st_tensor *enc = wr_st_find(io, "input.encoder_hidden_states");
        diff_ref = wr_st_find(io, "ref.output");
        if (!lat || !ts || !enc || lat->ndim != 5 || enc->ndim != 3) {
            fprintf(stderr, "bench_cp: %s lacks input tensors\n", io_path);
            wr_world_abort(&world, 1); /* the same file on every rank: all of them fail here */
        }
        memcpy(ls, lat->shape, sizeof ls);
        memcpy(es, enc->shape, sizeof es);
        xbuf = (float *)wr_st_tensor_data(lat);
        ebuf = (float *)wr_st_tensor_data(enc);
        tval = ((const float *)wr_st_tensor_data(ts))[0];
    } else { /* bench_dit's generator: the same inputs for the same shape */
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
    const int64_t nout = c->out_channels * ls[2] * ls[3] * ls[4];
    float *outbuf = malloc(sizeof(float) * (size_t)nout);
    wr_tensor out =
        wr_tensor_make(outbuf, WR_DTYPE_F32, 4, (int64_t[]){c->out_channels, ls[2], ls[3], ls[4]});
    const int64_t pt = c->patch_size.v[0], ph = c->patch_size.v[1], pw = c->patch_size.v[2];
    const int64_t D = c->num_attention_heads * c->attention_head_dim, FF = c->ffn_dim;
    const int64_t L = (ls[2] / pt) * (ls[3] / ph) * (ls[4] / pw), Ls = (L + P - 1) / P;
    const int64_t S = es[1], blocks = c->num_layers;
    const wr_cp_mode used = wr_dit_cp_mode(m);

    /* ---- timed forwards: run 0 is a warm-up (page faults of the weights, the workspace) ---- */
    timing tm;
    wr_dit_set_tap(m, on_tap, &tm);
    double *tot = calloc((size_t)repeat, sizeof(double)),
           *blk = calloc((size_t)repeat, sizeof(double));
    uint64_t sent = 0;
    for (int r = 0; r <= repeat && st == WR_OK; r++) {
        memset(&tm, 0, sizeof tm);
        st = wr_comm_barrier(cp);
        if (st != WR_OK) break;
        wr_comm_bytes_reset();
        double t0 = now();
        st = wr_dit_forward(m, &out, &x, tval, &e);
        float dt[2] = {(float)(now() - t0),
                       (float)(tm.blocks_total / (tm.nblocks ? tm.nblocks : 1))};
        sent = wr_comm_bytes_sent(); /* before the reduction below, which sends too */
        st = wr_comm_agree(cp, st);
        if (st == WR_OK) st = wr_comm_allreduce_f32(cp, dt, 2, WR_REDUCE_MAX, WR_MEM_HOST);
        if (st == WR_OK && r > 0) tot[r - 1] = dt[0], blk[r - 1] = dt[1];
    }
    double prof_fwd = 0;
    if (st == WR_OK && profile) {
        st = wr_comm_barrier(cp);
        if (rank == 0) wr_op_profile_start();
        double t0 = now();
        if (st == WR_OK) st = wr_dit_forward(m, &out, &x, tval, &e);
        prof_fwd = now() - t0;
        if (rank == 0) wr_op_profile_stop();
        st = wr_comm_agree(cp, st);
    }
    if (st != WR_OK) {
        if (rank == 0) fprintf(stderr, "bench_cp: forward: %s\n", wr_error_detail());
        wr_world_finalize(&world);
        return 1;
    }
    qsort(tot, (size_t)repeat, sizeof(double), cmp_d);
    qsort(blk, (size_t)repeat, sizeof(double), cmp_d);

    /* ---- bytes per block and rank: the forward's minus the head's all-gather ---- */
    const uint64_t head_bytes =
        P > 1 ? (uint64_t)(Ls * c->out_channels * pt * ph * pw) * (uint64_t)(P - 1) * 4 : 0;
    const double per_block = (double)(sent - head_bytes) / (double)blocks;
    const double theory = P == 1               ? 0.0
                          : used == WR_CP_RING ? (double)(P - 1) * 2.0 * (double)(Ls * D) * 4.0
                                               : 4.0 * (double)(Ls * D / P * (P - 1)) * 4.0;

    /* ---- checks (rank 0 holds the whole output like every rank; it decides for all) ---- */
    int64_t fail = 0;
    cmp_result vs_ref = {0}, vs_diff = {0};
    if (rank == 0) {
        if (ref_path) {
            const wr_st_tensor *rt = NULL;
            st = wr_st_open(&reff, ref_path);
            if (st == WR_OK && (!(rt = wr_st_find(reff, "output")) || rt->nelem != nout ||
                                rt->dtype != WR_DTYPE_F32)) {
                fprintf(stderr, "bench_cp: %s: no f32 tensor \"output\" of %lld elements\n",
                        ref_path, (long long)nout);
                fail = 1;
            } else if (st != WR_OK) {
                fprintf(stderr, "bench_cp: %s: %s\n", ref_path, wr_error_detail());
                fail = 1;
            } else {
                vs_ref = compare(outbuf, wr_st_tensor_data(rt), nout);
                /* Ulysses only moves data: bitwise (STYLE.md, N ranks vs 1 rank). Ring merges
                 * the softmax sums in another order, and one rank with other threads may split
                 * a GEMM differently: NMSE <= 1e-7 (STYLE.md's bound for a changed order). */
                if (P > 1 && used == WR_CP_ULYSSES ? !vs_ref.bitwise : !(vs_ref.nmse <= 1e-7))
                    fail = 1;
            }
        }
        if (diff_ref && diff_ref->nelem == nout)
            vs_diff = compare(outbuf, wr_st_tensor_data(diff_ref), nout);
        if (save_path && !fail) {
            st = save_output(save_path, &out);
            if (st != WR_OK) {
                fprintf(stderr, "bench_cp: %s: %s\n", save_path, wr_error_detail());
                fail = 1;
            }
        }
    }
    if (wr_comm_allreduce_i64(cp, &fail, 1, WR_REDUCE_MAX) != WR_OK) fail = 1;

    if (rank == 0) {
        const double fl_block =
            plan_block_flops(&(plan_model){"", D, c->num_attention_heads, FF, blocks}, L, S, 1);
        printf("bench_cp: L=%lld S=%lld D=%lld FF=%lld blocks=%lld, %d rank(s) x %d thread(s), "
               "%s, Ls=%lld\n",
               (long long)L, (long long)S, (long long)D, (long long)FF, (long long)blocks, P,
               be->threads, P == 1 ? "no context parallelism" : wr_cp_mode_name(used),
               (long long)Ls);
        printf("bench_cp: forward %.3f s (median of %d, slowest rank), %.3f s per block, "
               "%.1f GFLOP/s per block (all ranks)\n",
               tot[repeat / 2], repeat, blk[repeat / 2], fl_block / blk[repeat / 2] / 1e9);
        if (P > 1)
            printf("bench_cp: sent by rank 0 %llu B per forward, head all-gather %llu B, "
                   "%.0f B per block (theory %.0f B, %s)\n",
                   (unsigned long long)sent, (unsigned long long)head_bytes, per_block, theory,
                   per_block == theory ? "equal" : "DIFFERENT");
        if (vs_ref.have)
            printf("bench_cp: vs %s: %s, nmse %.3e, max abs %.3e -> %s\n", ref_path,
                   vs_ref.bitwise ? "bitwise equal" : "not bitwise equal", vs_ref.nmse,
                   vs_ref.max_abs, fail ? "FAIL" : "ok");
        if (vs_diff.have) printf("bench_cp: nmse vs diffusers' ref.output %.3e\n", vs_diff.nmse);
        if (profile) {
            fflush(stdout); /* the op table goes to stderr */
            wr_op_profile_log();
            printf("bench_cp: profiled forward %.3f s on rank 0 (the ops' total in the log; the "
                   "rest is communication and waiting)\n",
                   prof_fwd);
        }
        printf("RESULT ranks=%d threads=%d mode=%s L=%lld forward_s=%.4f block_s=%.4f "
               "bytes_block=%.0f theory_block=%.0f bitwise=%d nmse=%.3e check=%s\n",
               P, be->threads, P == 1 ? "none" : wr_cp_mode_name(used), (long long)L,
               tot[repeat / 2], blk[repeat / 2], P > 1 ? per_block : 0.0, theory,
               vs_ref.have ? vs_ref.bitwise : -1, vs_ref.have ? vs_ref.nmse : -1.0,
               fail          ? "FAIL"
               : vs_ref.have ? "ok"
                             : "none");
        fflush(stdout);
    }
    free(tot);
    free(blk);
    free(outbuf);
    if (!io) {
        free(xbuf);
        free(ebuf);
    }
    wr_st_close(reff);
    wr_st_close(io);
    wr_dit_free(m);
    wr_backend_free(be);
    wr_groups_free(&groups);
    wr_world_finalize(&world);
    return fail ? 1 : 0;
}

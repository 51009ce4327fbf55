/*
 * bench_vae.c — the Wan VAE decoder on the CPU backend: decode time against diffusers, and the
 * decoder's activation memory against the formula derived from src/models/vae.c.
 *
 *   bench_vae VAE_DIR IO.safetensors [--threads N] [--repeat K] [--tiled TILE,STRIDE] [--profile]
 *   bench_vae VAE_DIR --mem H,W[,T] [--tiled TILE,STRIDE] [--threads N] [--plan]
 *
 * Decode mode: IO.safetensors holds input.latent [z, T, H, W] (model space) and, written by
 * bench_vae_diffusers.py, diffusers' frames for it: ref.output (untiled) or
 * ref.tiled.TILE_STRIDE. Prints the median decode time of K after one warm-up, the NMSE and
 * max |d| against diffusers (so a fast but wrong decode shows), the counted peaks
 * (wr_vae_peak_bytes / wr_vae_blend_peak_bytes) and the process's peak RSS. --profile adds one
 * more decode, untimed, that logs the time per op (wr_op_profile_*).
 *
 * Memory mode: decodes one seeded random latent [z, T, H, W] (T default 2: latent frame 1 is
 * the first to allocate the temporal upsamplers' caches, so more frames add nothing) and
 * prints the counted peaks next to the formula below; --plan prints the formula alone without
 * loading weights or decoding (VAE_DIR needs only config.json), for sizes too large to decode.
 *
 * The formula (floats, for a decoded region of h x w latent pixels, A = h w; every term is
 * linear in A because each buffer is a width times an area):
 *   workspace  5 x the largest activation of one latent frame's chunk, the frames doubling at
 *              each temporal upsampler (WR_VAE_NBUF buffers of plan_floats())
 *   caches     2 frames of every cached causal conv's input, at that conv's resolution:
 *              conv_in, the mid block's and every up block's resnet convs, the temporal
 *              upsamplers' time_conv (only once T >= 2) and conv_out
 *   tiled      + the tile being decoded, out_channels x N x tile_h x tile_w (N output frames),
 *              the region being the first (largest) tile, min(H, tile/r) x min(W, tile/r);
 *   blending   out_channels x N x (tile_h x blend_w + blend_h x ncol x tile_w), ncol = the
 *              tiles per row (counted apart: wr_vae_blend_peak_bytes).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "core/log.h"
#include "core/modeldir.h"
#include "core/safetensors.h"
#include "kernels/backend.h"
#include "kernels/ops.h"
#include "models/vae.h"
#include "vram/plan.h"

static double mib(double bytes) {
    return bytes / (1024.0 * 1024.0);
}

static float lcg_uniform(uint64_t *r) { /* [-1, 1) */
    *r = *r * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(*r >> 40) / 8388608.0f - 1.0f;
}

/* ---- the memory formula ---- */

typedef struct mem_plan {
    uint64_t per_px, per_px_t1; /* bytes per latent pixel of the decoded region: T >= 2, T = 1 */
    int64_t rh, rw;             /* the decoded region (latent) */
    int tiled;
    size_t decoder_bytes, tile_bytes, blend_bytes;
} mem_plan;

/* The formula is the planner's (src/vram/plan.c, wr_plan_vae); this adds the region and the
 * per-pixel figures for printing. */
static void plan_memory(mem_plan *p, const wr_vae_config *c, int64_t T, int64_t H, int64_t W,
                        const wr_vae_tiling *t) {
    memset(p, 0, sizeof *p);
    uint64_t none = 0;
    wr_plan_vae(c, 2, 1, 1, NULL, &p->per_px, &none);
    wr_plan_vae(c, 1, 1, 1, NULL, &p->per_px_t1, &none);
    uint64_t dec = 0, blend = 0;
    wr_plan_vae(c, T, H, W, t, &dec, &blend);
    p->decoder_bytes = (size_t)dec;
    p->blend_bytes = (size_t)blend;
    const int64_t r = c->scale_factor_spatial;
    p->rh = H;
    p->rw = W;
    if (t && t->enabled && (H > t->tile_h / r || W > t->tile_w / r)) {
        p->tiled = 1;
        p->rh = H < t->tile_h / r ? H : t->tile_h / r;
        p->rw = W < t->tile_w / r ? W : t->tile_w / r;
        p->tile_bytes = sizeof(float) * (size_t)(c->out_channels * wr_plan_vae_frames(c, T) *
                                                 t->tile_h * t->tile_w);
    }
}

static void print_plan(const mem_plan *p, const wr_vae_config *c, int64_t T, int64_t H, int64_t W,
                       const wr_vae_tiling *t) {
    const int64_t r = c->scale_factor_spatial;
    printf("formula (wr_plan_vae): %llu B per latent pixel of the decoded region (%llu with one "
           "latent frame: no time_conv caches yet)\n",
           (unsigned long long)p->per_px, (unsigned long long)p->per_px_t1);
    printf("formula: latent [%lld, %lld, %lld] (%lld x %lld px, %lld frames), %s: region %lld x "
           "%lld, decoder %.1f MiB (tile buffer %.1f MiB), blend margins %.1f MiB, total %.1f "
           "MiB\n",
           (long long)T, (long long)H, (long long)W, (long long)(H * r), (long long)(W * r),
           (long long)wr_plan_vae_frames(c, T), p->tiled ? "tiled" : "untiled", (long long)p->rh,
           (long long)p->rw, mib((double)p->decoder_bytes), mib((double)p->tile_bytes),
           mib((double)p->blend_bytes), mib((double)(p->decoder_bytes + p->blend_bytes)));
    if (p->tiled)
        printf("formula: tiling %lldx%lld stride %lldx%lld px\n", (long long)t->tile_h,
               (long long)t->tile_w, (long long)t->stride_h, (long long)t->stride_w);
}

/* ---- per-layer conv timing (--profile) ---- */

/* One conv shape of a steady-state chunk (a latent frame after the first two: every cache
 * holds 2 frames, the frames doubling at each temporal upsampler): x [ci, t, s h, s w]. */
typedef struct conv_shape {
    char name[48];
    int64_t ci, co, kt, kh, s, t, count;
    int cached; /* 2 cache frames in front (causal conv), else pad_t 0 */
} conv_shape;

static int conv_shapes(conv_shape *v, int cap, const wr_vae_config *c) {
    const int64_t nm = c->dim_mult.n, base = c->decoder_base_dim;
    int64_t dims[17], s = 1, t = 1;
    int n = 0;
    dims[0] = base * c->dim_mult.v[nm - 1];
    for (int64_t i = 0; i < nm; i++) dims[i + 1] = base * c->dim_mult.v[nm - 1 - i];
#define ADD(nm_, ci_, co_, kt_, kh_, cached_, count_)                                              \
    do {                                                                                           \
        if (n < cap) {                                                                             \
            conv_shape *e_ = &v[n++];                                                              \
            snprintf(e_->name, sizeof e_->name, "%s", nm_);                                        \
            e_->ci = ci_, e_->co = co_, e_->kt = kt_, e_->kh = kh_, e_->s = s, e_->t = t;          \
            e_->cached = cached_, e_->count = count_;                                              \
        }                                                                                          \
    } while (0)
    ADD("conv_in", c->z_dim, dims[0], 3, 3, 1, 1);
    ADD("mid.resnets (4 convs)", dims[0], dims[0], 3, 3, 1, 4);
    for (int64_t i = 0; i < nm; i++) {
        const int64_t out = dims[i + 1], in = i > 0 ? dims[i] / 2 : dims[i];
        const int up = i != nm - 1, up3d = up && c->temperal_downsample.v[nm - 2 - i];
        char nmb[48];
        if (in != out) {
            snprintf(nmb, sizeof nmb, "up%lld.resnets.0.conv1", (long long)i);
            ADD(nmb, in, out, 3, 3, 1, 1);
            snprintf(nmb, sizeof nmb, "up%lld.resnets.0.conv_shortcut", (long long)i);
            ADD(nmb, in, out, 1, 1, 0, 1);
        }
        snprintf(nmb, sizeof nmb, "up%lld.resnets (%lld convs)", (long long)i,
                 (long long)(2 * (c->num_res_blocks + 1) - (in != out)));
        ADD(nmb, out, out, 3, 3, 1, 2 * (c->num_res_blocks + 1) - (in != out));
        if (up3d) {
            snprintf(nmb, sizeof nmb, "up%lld.time_conv", (long long)i);
            ADD(nmb, out, 2 * out, 3, 1, 1, 1);
            t *= 2;
        }
        if (up) {
            s *= 2;
            snprintf(nmb, sizeof nmb, "up%lld.resample (2-D)", (long long)i);
            ADD(nmb, out, out / 2, 1, 3, 0, 1);
        }
    }
    ADD("conv_out", dims[nm], c->out_channels, 3, 3, 1, 1);
#undef ADD
    return n;
}

/* A device copy of n host floats (NULL on failure, reported). */
static float *to_device(wr_backend *be, const float *h, size_t n) {
    void *d = NULL;
    if (n == 0) return NULL;
    if (be->iface->alloc(be, &d, n * sizeof(float)) != WR_OK ||
        wr_upload(be, d, h, n * sizeof(float)) != WR_OK) {
        fprintf(stderr, "bench_vae: conv sweep: %s\n", wr_error_detail());
        if (d) be->iface->free(be, d);
        return NULL;
    }
    return d;
}

/* Times every conv shape of one steady-state latent frame at latent h x w (median of 3 after a
 * warm-up; random data; device operands) and prints the per-layer table. */
static void conv_sweep(wr_backend *be, const wr_vae_config *c, int64_t h, int64_t w) {
    conv_shape v[64];
    const int n = conv_shapes(v, 64, c);
    double ts[64], fl[64], tot = 0, ftot = 0;
    uint64_t rs = 777;
    for (int i = 0; i < n; i++) {
        const conv_shape *e = &v[i];
        const int64_t H = e->s * h, W = e->s * w, pad = e->kh / 2, tc = e->cached ? 2 : 0;
        const int64_t To = tc + e->t - e->kt + 1;
        const size_t nx = (size_t)(e->ci * e->t * H * W), nc = (size_t)(e->ci * tc * H * W),
                     nw = (size_t)(e->co * e->ci * e->kt * e->kh * e->kh),
                     ny = (size_t)(e->co * To * H * W);
        float *x = malloc(sizeof(float) * nx), *cb = nc ? malloc(sizeof(float) * nc) : NULL,
              *wt = malloc(sizeof(float) * nw), *b = malloc(sizeof(float) * (size_t)e->co),
              *y = malloc(sizeof(float) * ny);
        if (!x || (nc && !cb) || !wt || !b || !y) {
            fprintf(stderr, "bench_vae: conv sweep: out of memory\n");
            return;
        }
        for (size_t k = 0; k < nx; k++) x[k] = lcg_uniform(&rs);
        for (size_t k = 0; k < nc; k++) cb[k] = lcg_uniform(&rs);
        for (size_t k = 0; k < nw; k++) wt[k] = 0.01f * lcg_uniform(&rs);
        for (int64_t k = 0; k < e->co; k++) b[k] = 0.0f;
        /* the operands in device memory (the op contract; a copy on the plain CPU backend) */
        float *hx = x, *hc = cb, *hw = wt, *hb = b, *hy = y;
        x = to_device(be, hx, nx), cb = to_device(be, hc, nc), wt = to_device(be, hw, nw);
        b = to_device(be, hb, (size_t)e->co), y = to_device(be, hy, ny);
        free(hx), free(hc), free(hw), free(hb), free(hy);
        if (!x || (nc && !cb) || !wt || !b || !y) return;
        wr_tensor xt = wr_tensor_make(x, WR_DTYPE_F32, 4, (int64_t[]){e->ci, e->t, H, W});
        wr_tensor ct = wr_tensor_make(cb, WR_DTYPE_F32, 4, (int64_t[]){e->ci, tc, H, W});
        wr_tensor wtt = e->kt == 1 && e->kh == 3
                            ? wr_tensor_make(wt, WR_DTYPE_F32, 4, (int64_t[]){e->co, e->ci, 3, 3})
                            : wr_tensor_make(wt, WR_DTYPE_F32, 5,
                                             (int64_t[]){e->co, e->ci, e->kt, e->kh, e->kh});
        wr_tensor bt = wr_tensor_make(b, WR_DTYPE_F32, 1, (int64_t[]){e->co});
        wr_tensor yt = wr_tensor_make(y, WR_DTYPE_F32, 4, (int64_t[]){e->co, To, H, W});
        const wr_conv_params p = {0, pad, pad};
        double r3[4];
        for (int k = 0; k < 4; k++) {
            double t0 = bench_now();
            wr_status st = wr_op_conv3d(be, &yt, &xt, tc ? &ct : NULL, &wtt, &bt, &p);
            r3[k] = bench_now() - t0;
            if (st != WR_OK) {
                fprintf(stderr, "bench_vae: conv sweep: %s\n", wr_error_detail());
                return;
            }
        }
        qsort(r3 + 1, 3, sizeof(double), bench_cmp_d);
        ts[i] = r3[2] * (double)e->count;
        fl[i] =
            2.0 * (double)(e->co * e->ci * e->kt * e->kh * e->kh * To * H * W) * (double)e->count;
        tot += ts[i];
        ftot += fl[i];
        be->iface->free(be, x);
        if (cb) be->iface->free(be, cb);
        be->iface->free(be, wt);
        be->iface->free(be, b);
        be->iface->free(be, y);
    }
    printf("conv3d per layer, one steady-state latent frame at latent %lldx%lld (median of 3, "
           "random data):\n",
           (long long)h, (long long)w);
    printf("  %-32s %5s %5s %6s %4s %9s %9s %8s %6s\n", "layer", "Ci", "Co", "kernel", "T", "H x W",
           "time ms", "GFLOP/s", "share");
    for (int i = 0; i < n; i++) {
        const conv_shape *e = &v[i];
        char hw[24], k[8];
        snprintf(hw, sizeof hw, "%lldx%lld", (long long)(e->s * h), (long long)(e->s * w));
        snprintf(k, sizeof k, "%lldx%lldx%lld", (long long)e->kt, (long long)e->kh,
                 (long long)e->kh);
        printf("  %-32s %5lld %5lld %6s %4lld %9s %9.1f %8.1f %5.1f%%\n", e->name, (long long)e->ci,
               (long long)e->co, k, (long long)e->t, hw, 1e3 * ts[i], fl[i] / ts[i] / 1e9,
               100.0 * ts[i] / tot);
    }
    printf("  %-32s %5s %5s %6s %4s %9s %9.1f %8.1f\n", "total", "", "", "", "", "", 1e3 * tot,
           ftot / tot / 1e9);
}

/* ---- main ---- */

static int parse_i64s(const char *s, int64_t *v, int max) {
    int n = 0;
    char *end;
    while (n < max) {
        long long x = strtoll(s, &end, 10);
        if (end == s) return 0;
        v[n++] = x;
        if (*end != ',') break;
        s = end + 1;
    }
    return *end == '\0' ? n : 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_vae VAE_DIR IO.safetensors [--threads N] [--repeat K] "
                        "[--tiled TILE,STRIDE] [--profile]\n"
                        "       bench_vae VAE_DIR --mem H,W[,T] [--tiled TILE,STRIDE] "
                        "[--threads N] [--plan]\n");
        return 2;
    }
    int threads = 0, repeat = 3, profile = 0, plan_only = 0;
    int64_t memv[3] = {0, 0, 2};
    int mem = 0;
    wr_vae_tiling tiling = {0, 0, 0, 0, 0};
    const char *io_path = NULL;
    for (int i = 2; i < argc; i++) {
        int64_t v[3];
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
            repeat = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--profile") == 0) {
            profile = 1;
        } else if (strcmp(argv[i], "--plan") == 0) {
            plan_only = 1;
        } else if (strcmp(argv[i], "--tiled") == 0 && i + 1 < argc) {
            if (parse_i64s(argv[++i], v, 2) != 2) {
                fprintf(stderr, "bench_vae: --tiled needs TILE,STRIDE (pixels)\n");
                return 2;
            }
            tiling = (wr_vae_tiling){1, v[0], v[0], v[1], v[1]};
        } else if (strcmp(argv[i], "--mem") == 0 && i + 1 < argc) {
            const int n = parse_i64s(argv[++i], v, 3);
            if (n < 2 || v[0] < 1 || v[1] < 1 || (n == 3 && v[2] < 1)) {
                fprintf(stderr, "bench_vae: --mem needs H,W[,T] (latent, positive)\n");
                return 2;
            }
            memv[0] = v[0], memv[1] = v[1], memv[2] = n == 3 ? v[2] : 2;
            mem = 1;
        } else if (argv[i][0] != '-' && io_path == NULL) {
            io_path = argv[i];
        } else {
            fprintf(stderr, "bench_vae: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (repeat < 1) repeat = 1;
    if (!mem && io_path == NULL) {
        fprintf(stderr, "bench_vae: give IO.safetensors or --mem H,W[,T]\n");
        return 2;
    }
    wr_log_init();

    if (mem && plan_only) { /* the formula alone: config.json, no weights */
        char path[4200];
        wr_vae_config c;
        snprintf(path, sizeof path, "%s/config.json", argv[1]);
        if (wr_vae_config_read(&c, path) != WR_OK) {
            fprintf(stderr, "bench_vae: %s\n", wr_error_detail());
            return 1;
        }
        if (c.dim_mult.n < 1 || c.dim_mult.n > 16 || c.temperal_downsample.n < c.dim_mult.n - 1) {
            fprintf(stderr, "bench_vae: %s: dim_mult / temperal_downsample not as Wan2.1's\n",
                    path);
            return 1;
        }
        mem_plan p;
        plan_memory(&p, &c, memv[2], memv[0], memv[1], &tiling);
        print_plan(&p, &c, memv[2], memv[0], memv[1], &tiling);
        printf("RESULT plan_decoder_bytes=%zu plan_tile_bytes=%zu plan_blend_bytes=%zu\n",
               p.decoder_bytes, p.tile_bytes, p.blend_bytes);
        return 0;
    }

    wr_backend *be = NULL;
    wr_vae *m = NULL;
    wr_st_file *io = NULL;
    wr_status st = wr_backend_create(&be, WR_BACKEND_CPU, threads);
    double tl = bench_now();
    if (st == WR_OK) st = wr_vae_load(&m, be, argv[1]);
    tl = bench_now() - tl;
    if (st == WR_OK && !mem) st = wr_st_open(&io, io_path);
    if (st != WR_OK) {
        fprintf(stderr, "bench_vae: %s: %s\n", wr_status_name(st), wr_error_detail());
        return 1;
    }
    const wr_vae_config *c = wr_vae_config_of(m);
    const int64_t r = c->scale_factor_spatial;
    int64_t zs[4];
    float *zbuf = NULL;
    const wr_st_tensor *ref = NULL;
    char ref_key[64] = "ref.output";
    if (io) {
        const wr_st_tensor *lat = wr_st_find(io, "input.latent");
        if (lat == NULL || lat->ndim != 4 || lat->dtype != WR_DTYPE_F32) {
            fprintf(stderr, "bench_vae: %s lacks input.latent (F32 [z, T, H, W])\n", io_path);
            return 1;
        }
        memcpy(zs, lat->shape, sizeof zs);
        zbuf = (float *)wr_st_tensor_data(lat);
        if (tiling.enabled)
            snprintf(ref_key, sizeof ref_key, "ref.tiled.%lld_%lld", (long long)tiling.tile_h,
                     (long long)tiling.stride_h);
        ref = wr_st_find(io, ref_key);
    } else {
        const int64_t z4[4] = {c->z_dim, memv[2], memv[0], memv[1]};
        memcpy(zs, z4, sizeof zs);
        zbuf = malloc(sizeof(float) * (size_t)(zs[0] * zs[1] * zs[2] * zs[3]));
        if (zbuf == NULL) return 1;
        uint64_t rs = 12345;
        for (int64_t i = 0; i < zs[0] * zs[1] * zs[2] * zs[3]; i++) zbuf[i] = lcg_uniform(&rs);
    }
    const int64_t N = wr_vae_frames(m, zs[1]);
    const int64_t o4[4] = {c->out_channels, N, r * zs[2], r * zs[3]};
    const int64_t onel = o4[0] * o4[1] * o4[2] * o4[3];
    wr_tensor z = wr_tensor_make(zbuf, WR_DTYPE_F32, 4, zs);
    float *obuf = malloc(sizeof(float) * (size_t)onel);
    if (obuf == NULL) return 1;
    wr_tensor out = wr_tensor_make(obuf, WR_DTYPE_F32, 4, o4);
    const wr_vae_tiling *tp = tiling.enabled ? &tiling : NULL;
    const double rss_load = bench_maxrss_mb();

    if (mem) {
        wr_vae_reset_peak(m);
        double t0 = bench_now();
        st = wr_vae_decode(m, &out, &z, tp);
        t0 = bench_now() - t0;
        if (st != WR_OK) {
            fprintf(stderr, "bench_vae: decode: %s\n", wr_error_detail());
            return 1;
        }
        const size_t pk = wr_vae_peak_bytes(m), bl = wr_vae_blend_peak_bytes(m);
        mem_plan p;
        plan_memory(&p, c, zs[1], zs[2], zs[3], tp);
        printf("wanrun: latent [%lld, %lld, %lld, %lld] -> [%lld, %lld, %lld, %lld]%s, decode "
               "%.2f s, threads %d\n",
               (long long)zs[0], (long long)zs[1], (long long)zs[2], (long long)zs[3],
               (long long)o4[0], (long long)o4[1], (long long)o4[2], (long long)o4[3],
               tp ? " tiled" : "", t0, be->threads);
        print_plan(&p, c, zs[1], zs[2], zs[3], tp);
        printf("measured: decoder peak %zu B (%.1f MiB), blend margins %zu B (%.1f MiB); "
               "formula %zu / %zu B: %s; peak RSS %.0f MiB\n",
               pk, mib((double)pk), bl, mib((double)bl), p.decoder_bytes, p.blend_bytes,
               pk == p.decoder_bytes && bl == p.blend_bytes ? "exact match" : "MISMATCH",
               bench_maxrss_mb());
        printf("RESULT peak_bytes=%zu blend_bytes=%zu plan_decoder_bytes=%zu plan_blend_bytes=%zu "
               "match=%d decode_s=%.3f maxrss_mb=%.0f\n",
               pk, bl, p.decoder_bytes, p.blend_bytes, pk == p.decoder_bytes && bl == p.blend_bytes,
               t0, bench_maxrss_mb());
    } else {
        double *tot = calloc((size_t)repeat, sizeof(double));
        if (tot == NULL) return 1;
        wr_vae_reset_peak(m);
        cpu_snap c0 = cpu_snap_now();
        for (int k = 0; k <= repeat; k++) { /* run 0 is a warm-up (weight page faults) */
            if (k == 1) c0 = cpu_snap_now();
            double t0 = bench_now();
            st = wr_vae_decode(m, &out, &z, tp);
            const double dt = bench_now() - t0;
            if (st != WR_OK) {
                fprintf(stderr, "bench_vae: decode: %s\n", wr_error_detail());
                return 1;
            }
            if (k > 0) tot[k - 1] = dt;
        }
        const double oth = others_share(c0, cpu_snap_now());
        const size_t pk = wr_vae_peak_bytes(m), bl = wr_vae_blend_peak_bytes(m);
        double nmse = -1, maxabs = 0;
        int64_t clamped = 0;
        for (int64_t i = 0; i < onel; i++) clamped += fabsf(obuf[i]) >= 1.0f;
        if (ref && ref->nelem == onel && ref->dtype == WR_DTYPE_F32) {
            const float *b = wr_st_tensor_data(ref);
            double num = 0, den = 0;
            for (int64_t i = 0; i < onel; i++) {
                const double d = (double)obuf[i] - b[i];
                if (isnan(obuf[i])) num = INFINITY;
                num += d * d;
                den += (double)b[i] * b[i];
                if (fabs(d) > maxabs) maxabs = fabs(d);
            }
            nmse = num / den;
        } else {
            fprintf(stderr, "bench_vae: %s has no %s of %lld floats: no comparison\n", io_path,
                    ref_key, (long long)onel);
        }
        char times[256] = "";
        for (int k = 0; k < repeat && strlen(times) < sizeof times - 16; k++)
            snprintf(times + strlen(times), sizeof times - strlen(times), "%s%.3f", k ? " " : "",
                     tot[k]);
        qsort(tot, (size_t)repeat, sizeof(double), bench_cmp_d);
        const double med = tot[repeat / 2];
        printf("wanrun: decode [%lld, %lld, %lld, %lld] -> [%lld, %lld, %lld, %lld]%s %.3f s "
               "(median of %d: %s), threads %d, load %.3f s; other processes used %.0f %% of "
               "the CPUs meanwhile\n",
               (long long)zs[0], (long long)zs[1], (long long)zs[2], (long long)zs[3],
               (long long)o4[0], (long long)o4[1], (long long)o4[2], (long long)o4[3],
               tp ? " tiled" : "", med, repeat, times, be->threads, tl, 100.0 * oth);
        printf("wanrun: vs diffusers (%s): nmse %.3e, max |d| %.3e (%.2f %% of the output "
               "clamped to +-1)\n",
               ref_key, nmse, maxabs, 100.0 * (double)clamped / (double)onel);
        printf("wanrun: counted peak %.1f MiB (decoder) + %.1f MiB (blend margins); peak RSS "
               "%.0f MiB (%.0f MiB after loading)\n",
               mib((double)pk), mib((double)bl), bench_maxrss_mb(), rss_load);
        printf("RESULT decode_s=%.4f nmse=%.3e maxabs=%.3e peak_bytes=%zu blend_bytes=%zu "
               "maxrss_mb=%.0f others=%.3f\n",
               med, nmse, maxabs, pk, bl, bench_maxrss_mb(), oth);
        free(tot);
        if (profile) {
            wr_op_profile_start();
            st = wr_vae_decode(m, &out, &z, tp);
            wr_op_profile_stop();
            if (st != WR_OK) {
                fprintf(stderr, "bench_vae: decode: %s\n", wr_error_detail());
                return 1;
            }
            fflush(stdout);
            wr_op_profile_log();
            conv_sweep(be, c, zs[2], zs[3]);
        }
    }
    free(obuf);
    if (!io) free(zbuf);
    wr_st_close(io);
    wr_vae_free(m);
    wr_backend_free(be);
    return 0;
}

/*
 * bench_vae22.c — the Wan2.2 VAE (TI2V-5B's, models/vae22.h) on the CPU backend: decode and
 * encode time against diffusers, NMSE against diffusers' outputs, and the counted activation
 * peak against the planner's numbers (wr_vae22_decode_bytes / wr_vae22_encode_bytes).
 *
 *   bench_vae22 VAE_DIR IO.safetensors [--threads N] [--repeat K] [--profile]
 *
 * IO.safetensors (written by bench_vae22_diffusers.py) holds input.latent [z, T, h, w] (VAE
 * space: what diffusers' vae.decode takes), input.video [C, N, H, W] (in [-1, 1]) and
 * diffusers' outputs for them: ref.decode (vae.decode(latent).sample) and ref.encode
 * (vae.encode(video).latent_dist.mean). Times wr_vae22_decode (untiled) and wr_vae22_encode,
 * each the median of K after one warm-up (weight page faults), and prints the NMSE and max |d|
 * against diffusers (so a fast but wrong result shows), the counted peak of each
 * (wr_vae22_peak_bytes, reset before each) next to the planner's bytes for that shape, the
 * process's peak RSS and the CPU share other processes took during each timed region (a noise
 * indicator on a shared host). --profile adds one more decode and encode, untimed, each logging
 * the time per op (wr_op_profile_*).
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
#include "core/safetensors.h"
#include "kernels/backend.h"
#include "kernels/ops.h"
#include "models/vae22.h"

static double mib(double bytes) {
    return bytes / (1024.0 * 1024.0);
}

/* NMSE and max |d| of a [n] against ref (F32, n floats); -1 when ref is absent or mis-sized. */
static double nmse_of(const float *a, const wr_st_tensor *ref, int64_t n, double *maxabs) {
    *maxabs = 0;
    if (ref == NULL || ref->nelem != n || ref->dtype != WR_DTYPE_F32) return -1;
    const float *b = wr_st_tensor_data(ref);
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)a[i] - b[i];
        if (isnan(a[i])) num = INFINITY;
        num += d * d;
        den += (double)b[i] * b[i];
        if (fabs(d) > *maxabs) *maxabs = fabs(d);
    }
    return num / den;
}

typedef struct timing {
    double med, others;
    size_t peak;
    char times[256];
} timing;

enum { DECODE, ENCODE };

static wr_status run_one(wr_vae22 *m, int what, wr_tensor *out, const wr_tensor *in) {
    return what == DECODE ? wr_vae22_decode(m, out, in, NULL) : wr_vae22_encode(m, out, in, NULL);
}

/* One warm-up, then K timed calls: the median, the others' share over the timed ones and the
 * counted peak (reset before the warm-up). */
static int time_calls(wr_vae22 *m, int what, wr_tensor *out, const wr_tensor *in, int repeat,
                      timing *t) {
    double *v = calloc((size_t)repeat, sizeof(double));
    if (v == NULL) return 1;
    wr_vae22_reset_peak(m);
    cpu_snap c0 = cpu_snap_now();
    for (int k = 0; k <= repeat; k++) {
        if (k == 1) c0 = cpu_snap_now();
        const double t0 = bench_now();
        const wr_status st = run_one(m, what, out, in);
        const double dt = bench_now() - t0;
        if (st != WR_OK) {
            fprintf(stderr, "bench_vae22: %s: %s: %s\n", what == DECODE ? "decode" : "encode",
                    wr_status_name(st), wr_error_detail());
            free(v);
            return 1;
        }
        if (k > 0) v[k - 1] = dt;
    }
    t->others = others_share(c0, cpu_snap_now());
    t->peak = wr_vae22_peak_bytes(m);
    t->times[0] = '\0';
    for (int k = 0; k < repeat && strlen(t->times) < sizeof t->times - 16; k++)
        snprintf(t->times + strlen(t->times), sizeof t->times - strlen(t->times), "%s%.3f",
                 k ? " " : "", v[k]);
    qsort(v, (size_t)repeat, sizeof(double), bench_cmp_d);
    t->med = v[repeat / 2];
    free(v);
    return 0;
}

static const wr_st_tensor *input_of(wr_st_file *io, const char *path, const char *key) {
    const wr_st_tensor *t = wr_st_find(io, key);
    if (t == NULL || t->ndim != 4 || t->dtype != WR_DTYPE_F32) {
        fprintf(stderr, "bench_vae22: %s lacks %s (F32, 4 dimensions)\n", path, key);
        return NULL;
    }
    return t;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_vae22 VAE_DIR IO.safetensors [--threads N] [--repeat K] "
                        "[--profile]\n");
        return 2;
    }
    int threads = 0, repeat = 3, profile = 0;
    const char *io_path = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
            repeat = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--profile") == 0) {
            profile = 1;
        } else if (argv[i][0] != '-' && io_path == NULL) {
            io_path = argv[i];
        } else {
            fprintf(stderr, "bench_vae22: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (repeat < 1) repeat = 1;
    if (io_path == NULL) {
        fprintf(stderr, "bench_vae22: give IO.safetensors\n");
        return 2;
    }
    wr_log_init();

    wr_backend *be = NULL;
    wr_vae22 *m = NULL;
    wr_st_file *io = NULL;
    wr_status st = wr_backend_create(&be, WR_BACKEND_CPU, threads);
    double tl = bench_now();
    if (st == WR_OK) st = wr_vae22_load(&m, be, argv[1]);
    tl = bench_now() - tl;
    if (st == WR_OK) st = wr_st_open(&io, io_path);
    if (st != WR_OK) {
        fprintf(stderr, "bench_vae22: %s: %s\n", wr_status_name(st), wr_error_detail());
        return 1;
    }
    if (!wr_vae22_has_encoder(m)) {
        fprintf(stderr, "bench_vae22: %s has no encoder\n", argv[1]);
        return 1;
    }
    const wr_vae22_config *c = wr_vae22_config_of(m);
    const int64_t r = c->scale_factor_spatial;
    const wr_st_tensor *lat = input_of(io, io_path, "input.latent");
    const wr_st_tensor *vid = input_of(io, io_path, "input.video");
    if (lat == NULL || vid == NULL) return 1;
    const int64_t *zs = lat->shape, *vs = vid->shape;
    const int64_t N = wr_vae22_frames(m, zs[1]), T = wr_vae22_latent_frames(m, vs[1]);
    const int64_t o4[4] = {c->out_channels / 4, N, r * zs[2], r * zs[3]};
    const int64_t e4[4] = {c->z_dim, T, vs[2] / r, vs[3] / r};
    const int64_t onel = o4[0] * o4[1] * o4[2] * o4[3], enel = e4[0] * e4[1] * e4[2] * e4[3];
    wr_tensor z = wr_tensor_make((void *)wr_st_tensor_data(lat), WR_DTYPE_F32, 4, zs);
    wr_tensor x = wr_tensor_make((void *)wr_st_tensor_data(vid), WR_DTYPE_F32, 4, vs);
    float *obuf = malloc(sizeof(float) * (size_t)onel),
          *ebuf = malloc(sizeof(float) * (size_t)enel);
    if (obuf == NULL || ebuf == NULL) return 1;
    wr_tensor out = wr_tensor_make(obuf, WR_DTYPE_F32, 4, o4);
    wr_tensor mean = wr_tensor_make(ebuf, WR_DTYPE_F32, 4, e4);
    const double rss_load = bench_maxrss_mb();

    timing td, te;
    if (time_calls(m, DECODE, &out, &z, repeat, &td)) return 1;
    const double rss_dec = bench_maxrss_mb();
    if (time_calls(m, ENCODE, &mean, &x, repeat, &te)) return 1;
    const size_t plan_d = wr_vae22_decode_bytes(m, zs[1], zs[2], zs[3], NULL);
    const size_t plan_e = wr_vae22_encode_bytes(m, vs[1], vs[2], vs[3], NULL);

    double dmax, emax;
    const double dn = nmse_of(obuf, wr_st_find(io, "ref.decode"), onel, &dmax);
    const double en = nmse_of(ebuf, wr_st_find(io, "ref.encode"), enel, &emax);
    if (dn < 0 || en < 0)
        fprintf(stderr,
                "bench_vae22: %s lacks ref.decode [%lld floats] or ref.encode [%lld "
                "floats]: no comparison (run bench_vae22_diffusers.py time first)\n",
                io_path, (long long)onel, (long long)enel);
    int64_t clamped = 0;
    for (int64_t i = 0; i < onel; i++) clamped += fabsf(obuf[i]) >= 1.0f;

    printf("wanrun: decode [%lld, %lld, %lld, %lld] -> [%lld, %lld, %lld, %lld] %.3f s (median "
           "of %d: %s), threads %d, load %.3f s; other processes used %.0f %% of the CPUs "
           "meanwhile\n",
           (long long)zs[0], (long long)zs[1], (long long)zs[2], (long long)zs[3], (long long)o4[0],
           (long long)o4[1], (long long)o4[2], (long long)o4[3], td.med, repeat, td.times,
           be->threads, tl, 100.0 * td.others);
    printf("wanrun: encode [%lld, %lld, %lld, %lld] -> [%lld, %lld, %lld, %lld] %.3f s (median "
           "of %d: %s); other processes used %.0f %% of the CPUs meanwhile\n",
           (long long)vs[0], (long long)vs[1], (long long)vs[2], (long long)vs[3], (long long)e4[0],
           (long long)e4[1], (long long)e4[2], (long long)e4[3], te.med, repeat, te.times,
           100.0 * te.others);
    printf("wanrun: vs diffusers: decode nmse %.3e, max |d| %.3e (%.2f %% of the output clamped "
           "to +-1); encode nmse %.3e, max |d| %.3e\n",
           dn, dmax, 100.0 * (double)clamped / (double)onel, en, emax);
    printf("wanrun: counted peak decode %zu B (%.1f MiB), wr_vae22_decode_bytes %zu B: %s; "
           "encode %zu B (%.1f MiB), wr_vae22_encode_bytes %zu B: %s\n",
           td.peak, mib((double)td.peak), plan_d, td.peak == plan_d ? "exact match" : "MISMATCH",
           te.peak, mib((double)te.peak), plan_e, te.peak == plan_e ? "exact match" : "MISMATCH");
    printf("wanrun: peak RSS %.0f MiB (%.0f MiB after loading, %.0f MiB after the decodes)\n",
           bench_maxrss_mb(), rss_load, rss_dec);
    printf("RESULT decode_s=%.4f encode_s=%.4f decode_nmse=%.3e encode_nmse=%.3e "
           "decode_maxabs=%.3e encode_maxabs=%.3e decode_peak_bytes=%zu decode_plan_bytes=%zu "
           "encode_peak_bytes=%zu encode_plan_bytes=%zu match=%d maxrss_mb=%.0f "
           "load_rss_mb=%.0f decode_others=%.3f encode_others=%.3f others=%.3f\n",
           td.med, te.med, dn, en, dmax, emax, td.peak, plan_d, te.peak, plan_e,
           td.peak == plan_d && te.peak == plan_e, bench_maxrss_mb(), rss_load, td.others,
           te.others, td.others > te.others ? td.others : te.others);

    if (profile) {
        for (int what = DECODE; what <= ENCODE; what++) {
            fflush(stdout);
            fprintf(stderr, "-- wanrun per-op profile: one %s\n",
                    what == DECODE ? "decode" : "encode");
            wr_op_profile_start();
            st = what == DECODE ? run_one(m, DECODE, &out, &z) : run_one(m, ENCODE, &mean, &x);
            wr_op_profile_stop();
            if (st != WR_OK) {
                fprintf(stderr, "bench_vae22: profile: %s\n", wr_error_detail());
                return 1;
            }
            wr_op_profile_log();
        }
    }
    free(obuf);
    free(ebuf);
    wr_st_close(io);
    wr_vae22_free(m);
    wr_backend_free(be);
    return 0;
}

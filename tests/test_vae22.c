/*
 * test_vae22.c — the Wan2.2 VAE (models/vae22.h) on the CPU backend against diffusers'
 * AutoencoderKLWan(is_residual=True, patch_size=2) at tiny widths (tests/data/vae22/tiny from
 * tests/golden/golden_vae22.py, BF16 weights): decodes of 1 and 3 latent frames, encodes of 1
 * and 5 video frames, each with its taps (per latent frame / chunk); tiled decodes and encodes
 * (diffusers' enable_tiling: partial edge tiles, blending across rows and columns); the
 * planner's numbers (wr_vae22_plan from the config) against the allocations and the pool; the
 * same decode from an F32 copy of the checkpoint; a decoder-only checkpoint; config and
 * argument errors.
 *
 * Tolerance: NMSE <= 2e-11 for outputs and taps. Measured 2026-12-03 (OpenBLAS, 2-core AMD
 * EPYC without AVX-512, goldens regenerated there; printed by this test): decode 4.9e-13 (1
 * latent frame) / 1.2e-12 (3), tiled 5.8e-13 / 1.5e-12, encode 1.8e-12 (1 frame) / 2.5e-12 (5),
 * tiled 3.5e-12 / 1.3e-12, the largest tap 6.2e-12 (enc.multi chunk 1, down block 2). The
 * reference moves with the machine: the same script on an AVX-512 EPYC gave goldens 1e-12 away
 * (against those the largest tap was 2.7e-12), and PyTorch's own fp32 error against float64 on
 * these inputs is 4.2e-13..5.4e-12 (metadata nmse_fp32_vs_f64): the bound is 3x our largest
 * and 4x the reference's own. A wrong channel map,
 * cache frame or first-chunk rule gives NMSE > 1e-3.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/safetensors.h"
#include "harness.h"
#include "kernels/backend.h"
#include "models/vae22.h"

#define NMSE_BOUND 2e-11

static wr_backend *g_be;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double maxabs_f32(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        if (d > m) m = d;
    }
    return m;
}

static const char *tiny_dir(char *buf, size_t n) {
    snprintf(buf, n, "%s/vae", wr_test_data("vae22/tiny"));
    return buf;
}

static wr_st_file *open_io(void) {
    char p[4300];
    snprintf(p, sizeof p, "%s/io.safetensors", wr_test_data("vae22/tiny"));
    wr_st_file *io = NULL;
    ck_assert_msg(wr_st_open(&io, p) == WR_OK, "%s", wr_error_detail());
    return io;
}

static const wr_st_tensor *need(wr_st_file *io, const char *name) {
    const wr_st_tensor *t = wr_st_find(io, name);
    ck_assert_msg(t != NULL && t->dtype == WR_DTYPE_F32 && t->ndim == 4, "golden tensor %s missing",
                  name);
    return t;
}

/* ---- taps: tap.<case>.<k>.<name> when recorded ---- */

typedef struct tap_check {
    wr_st_file *io;
    const char *prefix; /* "dec.single" */
    int checked, failed;
    double worst;
    char first_bad[128];
} tap_check;

static void on_tap(void *ctx, const char *name, int64_t k, const wr_tensor *t) {
    tap_check *tc = ctx;
    char key[160];
    snprintf(key, sizeof key, "tap.%s.%lld.%s", tc->prefix, (long long)k, name);
    const wr_st_tensor *ref = wr_st_find(tc->io, key);
    if (ref == NULL) return; /* not recorded */
    const int64_t n = wr_tensor_nelem(t);
    int same = ref->ndim == t->ndim;
    for (int i = 0; same && i < t->ndim; i++) same = ref->shape[i] == t->shape[i];
    const double e = same ? wr_test_nmse(t->data, wr_st_tensor_data(ref), n) : INFINITY;
    fprintf(stderr, "    %-46s nmse %.3e  max|d| %.3e%s\n", key, e,
            same ? maxabs_f32(t->data, wr_st_tensor_data(ref), n) : INFINITY,
            e <= NMSE_BOUND ? "" : "  <-- FAIL");
    tc->checked++;
    if (e > tc->worst) tc->worst = e;
    if (!(e <= NMSE_BOUND) && !tc->failed) {
        tc->failed = 1;
        snprintf(tc->first_bad, sizeof tc->first_bad, "%s", key);
    }
}

/* decodes dec.<name>.z and compares with dec.<name>.out; returns the output (caller frees) */
static float *decode_tiled_case(wr_vae22 *m, wr_st_file *io, const char *name, int taps,
                                double *nmse, const wr_vae_tiling *tl) {
    char key[64];
    snprintf(key, sizeof key, "dec.%s.z", name);
    const wr_st_tensor *in = need(io, key);
    snprintf(key, sizeof key, "dec.%s.out", name);
    const wr_st_tensor *ref = need(io, key);
    tap_check tc = {.io = io};
    snprintf(key, sizeof key, "dec.%s", name);
    tc.prefix = key;
    wr_vae22_set_tap(m, taps ? on_tap : NULL, &tc);
    ck_assert_int_eq(wr_vae22_frames(m, in->shape[1]), ref->shape[1]);
    wr_tensor z = wr_tensor_make((void *)wr_st_tensor_data(in), WR_DTYPE_F32, 4, in->shape);
    float *o = malloc(sizeof(float) * (size_t)ref->nelem);
    wr_tensor ot = wr_tensor_make(o, WR_DTYPE_F32, 4, ref->shape);
    wr_vae22_reset_peak(m);
    const double t0 = now_s();
    const wr_status s = wr_vae22_decode(m, &ot, &z, tl);
    const double dt = now_s() - t0;
    wr_vae22_set_tap(m, NULL, NULL);
    ck_assert_msg(s == WR_OK, "decode %s: %s", name, wr_error_detail());
    /* the planner's number is what the decode allocated */
    ck_assert_uint_eq(wr_vae22_peak_bytes(m),
                      wr_vae22_decode_bytes(m, in->shape[1], in->shape[2], in->shape[3], tl));
    const double e = wr_test_nmse(o, wr_st_tensor_data(ref), ref->nelem);
    fprintf(stderr, "  dec.%-8s out [%lld,%lld,%lld,%lld] nmse %.3e  max|d| %.3e  %.3f s%s\n", name,
            (long long)ref->shape[0], (long long)ref->shape[1], (long long)ref->shape[2],
            (long long)ref->shape[3], e, maxabs_f32(o, wr_st_tensor_data(ref), ref->nelem), dt,
            taps ? "" : " (no taps)");
    if (taps) {
        ck_assert_msg(!tc.failed, "dec.%s: first failing tap %s", name, tc.first_bad);
        ck_assert_int_ge(tc.checked, 6);
    }
    ck_assert_msg(e <= NMSE_BOUND, "dec.%s.out nmse %.3e", name, e);
    for (int64_t i = 0; i < ref->nelem; i++)
        ck_assert_msg(o[i] >= -1.0f && o[i] <= 1.0f, "dec.%s: output %lld = %g not clamped", name,
                      (long long)i, (double)o[i]);
    if (nmse) *nmse = e;
    return o;
}

static float *decode_case(wr_vae22 *m, wr_st_file *io, const char *name, int taps, double *nmse) {
    return decode_tiled_case(m, io, name, taps, nmse, NULL);
}

static void encode_tiled_case(wr_vae22 *m, wr_st_file *io, const char *name,
                              const wr_vae_tiling *tl) {
    char key[64];
    snprintf(key, sizeof key, "enc.%s.x", name);
    const wr_st_tensor *in = need(io, key);
    snprintf(key, sizeof key, "enc.%s.mean", name);
    const wr_st_tensor *ref = need(io, key);
    tap_check tc = {.io = io};
    snprintf(key, sizeof key, "enc.%s", name);
    tc.prefix = key;
    wr_vae22_set_tap(m, tl ? NULL : on_tap, &tc);
    ck_assert_int_eq(wr_vae22_latent_frames(m, in->shape[1]), ref->shape[1]);
    wr_tensor x = wr_tensor_make((void *)wr_st_tensor_data(in), WR_DTYPE_F32, 4, in->shape);
    float *o = malloc(sizeof(float) * (size_t)ref->nelem);
    wr_tensor ot = wr_tensor_make(o, WR_DTYPE_F32, 4, ref->shape);
    wr_vae22_reset_peak(m);
    const double t0 = now_s();
    const wr_status s = wr_vae22_encode(m, &ot, &x, tl);
    const double dt = now_s() - t0;
    wr_vae22_set_tap(m, NULL, NULL);
    ck_assert_msg(s == WR_OK, "encode %s: %s", name, wr_error_detail());
    ck_assert_uint_eq(wr_vae22_peak_bytes(m),
                      wr_vae22_encode_bytes(m, in->shape[1], in->shape[2], in->shape[3], tl));
    const double e = wr_test_nmse(o, wr_st_tensor_data(ref), ref->nelem);
    fprintf(stderr, "  enc.%-8s mean [%lld,%lld,%lld,%lld] nmse %.3e  max|d| %.3e  %.3f s\n", name,
            (long long)ref->shape[0], (long long)ref->shape[1], (long long)ref->shape[2],
            (long long)ref->shape[3], e, maxabs_f32(o, wr_st_tensor_data(ref), ref->nelem), dt);
    if (!tl) {
        ck_assert_msg(!tc.failed, "enc.%s: first failing tap %s", name, tc.first_bad);
        ck_assert_int_ge(tc.checked, 7);
    }
    ck_assert_msg(e <= NMSE_BOUND, "enc.%s.mean nmse %.3e", name, e);
    free(o);
}

static void encode_case(wr_vae22 *m, wr_st_file *io, const char *name) {
    encode_tiled_case(m, io, name, NULL);
}

START_TEST(test_decode) {
    char dir[4300];
    wr_vae22 *m = NULL;
    ck_assert_msg(wr_vae22_load(&m, g_be, tiny_dir(dir, sizeof dir)) == WR_OK, "%s",
                  wr_error_detail());
    const wr_vae22_config *c = wr_vae22_config_of(m);
    ck_assert_int_eq(c->z_dim, 8);
    ck_assert_int_eq(c->scale_factor_spatial, 16);
    ck_assert(wr_vae22_has_encoder(m));
    ck_assert_ptr_nonnull(wr_vae22_latents_mean(m));
    ck_assert_ptr_nonnull(wr_vae22_latents_std(m));
    wr_st_file *io = open_io();
    free(decode_case(m, io, "single", 1, NULL));
    float *a = decode_case(m, io, "multi", 1, NULL);
    /* again without taps, on the same model: the same bits (the caches start empty) */
    float *b = decode_case(m, io, "multi", 0, NULL);
    ck_assert_msg(memcmp(a, b, sizeof(float) * 3 * 9 * 16 * 32) == 0, "a second decode differs");
    /* DupUp3D one channel group at a time (the real model's up block 2 needs two slices): the
     * same bits */
    free(b);
    wr_vae22_set_slice_channels(m, 1);
    b = decode_case(m, io, "multi", 0, NULL);
    wr_vae22_set_slice_channels(m, 0);
    ck_assert_msg(memcmp(a, b, sizeof(float) * 3 * 9 * 16 * 32) == 0, "sliced DupUp3D differs");
    fprintf(stderr, "  decode of 3 latent frames: %zu device bytes (workspace + caches)\n",
            wr_vae22_peak_bytes(m));
    free(a);
    free(b);
    wr_st_close(io);
    wr_vae22_free(m);
}
END_TEST

/* diffusers' enable_tiling (the goldens' TILED_CASES): blending and cropping in the patched
 * space, partial edge tiles in both directions, one and three latent frames */
START_TEST(test_tiled) {
    char dir[4300];
    wr_vae22 *m = NULL;
    ck_assert_msg(wr_vae22_load(&m, g_be, tiny_dir(dir, sizeof dir)) == WR_OK, "%s",
                  wr_error_detail());
    wr_st_file *io = open_io();
    const wr_vae_tiling t3 = {1, 32, 48, 16, 32}, t1 = {1, 48, 48, 32, 32};
    float *a = decode_tiled_case(m, io, "tiled", 0, NULL, &t3);
    const size_t peak3 = wr_vae22_peak_bytes(m);
    /* the same latent untiled differs (the tiles' seams are blended, not decoded whole) */
    const wr_st_tensor *zin = need(io, "dec.tiled.z");
    const int64_t n3 = 3 * 9 * 48 * 80;
    float *u = malloc(sizeof(float) * (size_t)n3);
    wr_tensor z = wr_tensor_make((void *)wr_st_tensor_data(zin), WR_DTYPE_F32, 4, zin->shape);
    wr_tensor ut = wr_tensor_make(u, WR_DTYPE_F32, 4, (int64_t[]){3, 9, 48, 80});
    ck_assert_int_eq(wr_vae22_decode(m, &ut, &z, NULL), WR_OK);
    const double du = wr_test_nmse(a, u, n3);
    fprintf(stderr, "  tiled vs untiled: nmse %.3e; peaks %zu tiled, %zu untiled\n", du, peak3,
            wr_vae22_peak_bytes(m));
    ck_assert_msg(du > 1e-6, "tiling changed nothing (nmse %.3e)", du);
    /* a tile larger than the latent: untiled, the same bits (as diffusers) */
    const wr_vae_tiling big = {1, 64, 96, 16, 16};
    float *b = malloc(sizeof(float) * (size_t)n3);
    wr_tensor bt = wr_tensor_make(b, WR_DTYPE_F32, 4, (int64_t[]){3, 9, 48, 80});
    ck_assert_int_eq(wr_vae22_decode(m, &bt, &z, &big), WR_OK);
    ck_assert(memcmp(b, u, sizeof(float) * (size_t)n3) == 0);
    free(b);
    free(u);
    free(a);
    free(decode_tiled_case(m, io, "tiled1", 0, NULL, &t1));
    /* tiled encodes (diffusers tiles the patchified video: 2 x tile video pixels a tile): five
     * frames in 2 x 3 tiles (blended across columns only), one frame in 3 x 2 (across rows
     * only), both with partial edge tiles */
    const wr_vae_tiling e5 = {1, 16, 32, 16, 16}, e1 = {1, 32, 16, 16, 16};
    encode_tiled_case(m, io, "tiled", &e5);
    encode_tiled_case(m, io, "tiled1", &e1);
    { /* the same video untiled differs; a tile as large as the video is untiled */
        const wr_st_tensor *xin = need(io, "enc.tiled.x"), *mr = need(io, "enc.tiled.mean");
        wr_tensor xt = wr_tensor_make((void *)wr_st_tensor_data(xin), WR_DTYPE_F32, 4, xin->shape);
        float *q = malloc(sizeof(float) * (size_t)mr->nelem),
              *q2 = malloc(sizeof(float) * (size_t)mr->nelem);
        wr_tensor qt = wr_tensor_make(q, WR_DTYPE_F32, 4, mr->shape),
                  qt2 = wr_tensor_make(q2, WR_DTYPE_F32, 4, mr->shape);
        ck_assert_int_eq(wr_vae22_encode(m, &qt, &xt, NULL), WR_OK);
        const double de = wr_test_nmse(q, wr_st_tensor_data(mr), mr->nelem);
        fprintf(stderr, "  enc.tiled untiled vs the tiled golden: nmse %.3e\n", de);
        ck_assert_msg(de > 1e-6, "tiled encode equals the untiled one (nmse %.3e)", de);
        const wr_vae_tiling whole = {1, 48, 96, 16, 16};
        ck_assert_int_eq(wr_vae22_encode(m, &qt2, &xt, &whole), WR_OK);
        ck_assert(memcmp(q, q2, sizeof(float) * (size_t)mr->nelem) == 0);
        free(q);
        free(q2);
    }
    /* the tiled buffers grow with the frames and the row of tiles, not with the height: a
     * latent twice as tall allocates the same (3 latent frames, 5 wide) */
    float *zz = calloc(8 * 3 * 6 * 5, sizeof(float));
    float *oo = malloc(sizeof(float) * 3 * 9 * 96 * 80);
    wr_tensor zt = wr_tensor_make(zz, WR_DTYPE_F32, 4, (int64_t[]){8, 3, 6, 5});
    wr_tensor ot = wr_tensor_make(oo, WR_DTYPE_F32, 4, (int64_t[]){3, 9, 96, 80});
    wr_vae22_reset_peak(m);
    ck_assert_int_eq(wr_vae22_decode(m, &ot, &zt, &t3), WR_OK);
    ck_assert_uint_eq(wr_vae22_peak_bytes(m), peak3);
    ck_assert_uint_eq(wr_vae22_decode_bytes(m, 3, 6, 5, &t3), peak3);
    /* tilings diffusers would not run alike are refused */
    const wr_vae_tiling odd = {1, 40, 48, 16, 32}, wide = {1, 32, 48, 48, 32};
    wr_tensor ot3 = wr_tensor_make(oo, WR_DTYPE_F32, 4, (int64_t[]){3, 9, 48, 80});
    ck_assert_int_eq(wr_vae22_decode(m, &ot3, &z, &odd), WR_ERR_INVALID_ARG);
    ck_assert_msg(strstr(wr_error_detail(), "multiples of 16"), "%s", wr_error_detail());
    ck_assert_int_eq(wr_vae22_decode(m, &ot3, &z, &wide), WR_ERR_INVALID_ARG);
    free(zz);
    free(oo);
    wr_st_close(io);
    wr_vae22_free(m);
}
END_TEST

/* the planner's view (wr_vae22_plan from the config alone) against a loaded model: the weights
 * counted in a pool, and the buffers of decodes and of an image encode */
START_TEST(test_plan) {
    char dir[4300], cfgp[4400];
    wr_vae22 *m = NULL;
    ck_assert_int_eq(wr_vae22_load(&m, g_be, tiny_dir(dir, sizeof dir)), WR_OK);
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    wr_vae_config vc;
    ck_assert_msg(wr_vae_config_read(&vc, cfgp) == WR_OK, "%s", wr_error_detail());
    wr_vram *v = NULL;
    ck_assert_int_eq(wr_vram_create(&v, g_be, 0), WR_OK);
    ck_assert_int_eq(wr_vae22_set_vram(m, v), WR_OK);
    wr_vram_stats vs;
    wr_vram_get_stats(v, &vs);
    const uint64_t base = vs.total; /* the weights and the ops' scratch */
    const wr_vae_tiling t3 = {1, 32, 48, 16, 32};
    wr_vae22_mem mem;
    const wr_vae22_plan_req q3 = {.T = 3, .h = 3, .w = 5, .tiling = &t3, .image = 1};
    ck_assert_msg(wr_vae22_plan(&vc, cfgp, 1, 2, &q3, &mem) == WR_OK, "%s", wr_error_detail());
    fprintf(stderr, "  plan: weights %llu B (pool %llu), decode %llu B, encode %llu B\n",
            (unsigned long long)mem.weights,
            (unsigned long long)vs.current[WR_MEM_WEIGHTS_RESIDENT], (unsigned long long)mem.decode,
            (unsigned long long)mem.encode);
    ck_assert_uint_eq(mem.weights, vs.current[WR_MEM_WEIGHTS_RESIDENT]); /* BF16 convs */
    ck_assert_uint_eq(mem.decode, wr_vae22_decode_bytes(m, 3, 3, 5, &t3));
    ck_assert_uint_eq(mem.encode, wr_vae22_encode_bytes(m, 1, 48, 80, &t3));
    /* from the pool: the decode's buffers are its vae category, to the byte, and go back */
    float *zz = calloc(8 * 3 * 3 * 5, sizeof(float)), *oo = malloc(sizeof(float) * 3 * 9 * 48 * 80);
    wr_tensor zt = wr_tensor_make(zz, WR_DTYPE_F32, 4, (int64_t[]){8, 3, 3, 5});
    wr_tensor ot = wr_tensor_make(oo, WR_DTYPE_F32, 4, (int64_t[]){3, 9, 48, 80});
    ck_assert_int_eq(wr_vae22_decode(m, &ot, &zt, &t3), WR_OK);
    wr_vram_get_stats(v, &vs);
    ck_assert_uint_eq(vs.peak[WR_MEM_VAE], mem.decode);
    ck_assert_uint_eq(vs.current[WR_MEM_VAE], 0);
    /* untiled, and without the image */
    const wr_vae22_plan_req q0 = {.T = 3, .h = 3, .w = 5};
    ck_assert_int_eq(wr_vae22_plan(&vc, cfgp, 1, 2, &q0, &mem), WR_OK);
    ck_assert_uint_eq(mem.decode, wr_vae22_decode_bytes(m, 3, 3, 5, NULL));
    ck_assert_uint_eq(mem.encode, 0);
    wr_vram_reset_peaks(v);
    ck_assert_int_eq(wr_vae22_decode(m, &ot, &zt, NULL), WR_OK);
    wr_vram_get_stats(v, &vs);
    ck_assert_uint_eq(vs.peak[WR_MEM_VAE], mem.decode);
    /* the decoder alone, f32 weights: fewer bytes, all f32 */
    wr_vae22_mem dec32;
    ck_assert_int_eq(wr_vae22_plan(&vc, cfgp, 0, 4, &q0, &dec32), WR_OK);
    ck_assert_uint_lt(dec32.weights, 2 * mem.weights);
    /* a pool limit below the decode's buffers: refused, nothing left allocated */
    ck_assert_int_eq(wr_vae22_set_vram(m, NULL), WR_OK);
    wr_vram_free_pool(v);
    ck_assert_int_eq(wr_vram_create(&v, g_be, base + mem.decode / 2), WR_OK);
    ck_assert_int_eq(wr_vae22_set_vram(m, v), WR_OK);
    ck_assert_int_eq(wr_vae22_decode(m, &ot, &zt, NULL), WR_ERR_OOM_DEVICE);
    fprintf(stderr, "  under a limit: %s\n", wr_error_detail());
    wr_vram_get_stats(v, &vs);
    ck_assert_uint_eq(vs.current[WR_MEM_VAE], 0);
    /* a tiling the decode refuses is refused by the plan too */
    const wr_vae_tiling odd = {1, 40, 48, 16, 32};
    const wr_vae22_plan_req qb = {.T = 3, .h = 3, .w = 5, .tiling = &odd};
    ck_assert_int_eq(wr_vae22_plan(&vc, cfgp, 1, 2, &qb, &mem), WR_ERR_INVALID_ARG);
    free(zz);
    free(oo);
    wr_vae22_free(m); /* gives its weights and buffers back to the pool first */
    wr_vram_free_pool(v);
}
END_TEST

START_TEST(test_encode) {
    char dir[4300];
    wr_vae22 *m = NULL;
    ck_assert_msg(wr_vae22_load(&m, g_be, tiny_dir(dir, sizeof dir)) == WR_OK, "%s",
                  wr_error_detail());
    wr_st_file *io = open_io();
    encode_case(m, io, "single");
    encode_case(m, io, "multi");
    encode_case(m, io, "single"); /* after a multi-chunk encode: the caches start empty */
    fprintf(stderr, "  encode of 1 frame: %zu device bytes (workspace + caches)\n",
            wr_vae22_peak_bytes(m));
    wr_st_close(io);
    wr_vae22_free(m);
}
END_TEST

/* ---- other checkpoints: F32 weights, decoder only ---- */

/* dir/config.json and dir/diffusion_pytorch_model.safetensors from the tiny checkpoint: every
 * tensor as F32 (f32 = 1) or as is, without those whose name starts with a prefix of drop[]. */
static void write_copy(const char *dst, int f32, const char *const *drop) {
    char src[4300], cmd[9000];
    tiny_dir(src, sizeof src);
    snprintf(cmd, sizeof cmd, "cp %s/config.json %s/", src, dst);
    ck_assert_int_eq(system(cmd), 0);
    wr_st_set *set = NULL;
    ck_assert_int_eq(wr_st_set_open(&set, src), WR_OK);
    wr_st_writer *w = NULL;
    ck_assert_int_eq(wr_st_writer_init(&w), WR_OK);
    float *conv[512] = {0};
    int nconv = 0;
    for (int64_t i = 0; i < wr_st_set_count(set); i++) {
        const wr_st_tensor *t = wr_st_set_at(set, i);
        int skip = 0;
        for (int k = 0; drop && drop[k]; k++)
            skip |= strncmp(t->name, drop[k], strlen(drop[k])) == 0;
        if (skip) continue;
        if (f32 && t->dtype == WR_DTYPE_BF16) {
            ck_assert_int_lt(nconv, 512);
            float *v = malloc(sizeof(float) * (size_t)t->nelem);
            const uint16_t *h = wr_st_tensor_data(t);
            for (int64_t j = 0; j < t->nelem; j++) v[j] = wr_bf16_to_f32(h[j]);
            conv[nconv++] = v;
            ck_assert_int_eq(wr_st_writer_add(w, t->name, WR_DTYPE_F32, t->ndim, t->shape, v),
                             WR_OK);
        } else {
            ck_assert_int_eq(
                wr_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, wr_st_tensor_data(t)),
                WR_OK);
        }
    }
    snprintf(cmd, sizeof cmd, "%s/diffusion_pytorch_model.safetensors", dst);
    ck_assert_msg(wr_st_writer_write(w, cmd) == WR_OK, "%s", wr_error_detail());
    wr_st_writer_free(w);
    for (int k = 0; k < nconv; k++) free(conv[k]);
    wr_st_set_close(set);
}

START_TEST(test_other_checkpoints) {
    char dir[4300], d32[4300], ddec[4300];
    wr_st_file *io = open_io();
    wr_vae22 *m = NULL;
    ck_assert_int_eq(wr_vae22_load(&m, g_be, tiny_dir(dir, sizeof dir)), WR_OK);
    float *ref = decode_case(m, io, "single", 0, NULL);
    wr_vae22_free(m);

    /* F32 weights: the kernels convert BF16 to F32 exactly, so the same bits */
    write_copy(wr_test_dir("vae22_f32", d32, sizeof d32), 1, NULL);
    ck_assert_msg(wr_vae22_load(&m, g_be, d32) == WR_OK, "%s", wr_error_detail());
    float *o = decode_case(m, io, "single", 0, NULL);
    ck_assert_msg(memcmp(o, ref, sizeof(float) * 3 * 32 * 48) == 0,
                  "F32 checkpoint decodes other bits than BF16");
    free(o);
    encode_case(m, io, "single");
    wr_vae22_free(m);

    /* decoder only (encoder.*, quant_conv.* stripped): decodes; encode is refused */
    static const char *const enc[] = {"encoder.", "quant_conv.", NULL};
    write_copy(wr_test_dir("vae22_dec", ddec, sizeof ddec), 0, enc);
    ck_assert_msg(wr_vae22_load(&m, g_be, ddec) == WR_OK, "%s", wr_error_detail());
    ck_assert(!wr_vae22_has_encoder(m));
    o = decode_case(m, io, "single", 0, NULL);
    ck_assert(memcmp(o, ref, sizeof(float) * 3 * 32 * 48) == 0);
    free(o);
    float x[3 * 16 * 16] = {0}, mean[8] = {0};
    wr_tensor xt = wr_tensor_make(x, WR_DTYPE_F32, 4, (int64_t[]){3, 1, 16, 16});
    wr_tensor mt = wr_tensor_make(mean, WR_DTYPE_F32, 4, (int64_t[]){8, 1, 1, 1});
    ck_assert_int_eq(wr_vae22_encode(m, &mt, &xt, NULL), WR_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(wr_error_detail(), "no encoder"), "%s", wr_error_detail());
    wr_vae22_free(m);

    /* a missing encoder tensor is named (the encoder is required once any of it is there) */
    static const char *const one[] = {"encoder.down_blocks.1.downsampler.time_conv.weight", NULL};
    char dbad[4300];
    write_copy(wr_test_dir("vae22_bad", dbad, sizeof dbad), 0, one);
    ck_assert_int_eq(wr_vae22_load(&m, g_be, dbad), WR_ERR_FORMAT);
    ck_assert_msg(
        strstr(wr_error_detail(), "encoder.down_blocks.1.downsampler.time_conv.weight missing"),
        "%s", wr_error_detail());
    ck_assert_ptr_null(m);
    free(ref);
    wr_st_close(io);
    wr_test_rmtree(d32);
    wr_test_rmtree(ddec);
    wr_test_rmtree(dbad);
}
END_TEST

/* ---- errors ---- */

/* the tiny config with `from` replaced by `to` (must occur) into a fresh folder; loads it and
 * expects code with `needle` in the detail */
static void config_case(const char *name, const char *from, const char *to, wr_status code,
                        const char *needle) {
    char dir[4300], p[4400], src[4400];
    snprintf(src, sizeof src, "%s/vae/config.json", wr_test_data("vae22/tiny"));
    FILE *f = fopen(src, "rb");
    ck_assert_ptr_nonnull(f);
    char text[8192];
    const size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char *at = strstr(text, from);
    ck_assert_msg(at != NULL, "%s not in the config", from);
    wr_test_dir(name, dir, sizeof dir);
    snprintf(p, sizeof p, "%s/config.json", dir);
    f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(text, 1, (size_t)(at - text), f);
    fputs(to, f);
    fputs(at + strlen(from), f);
    fclose(f);
    wr_vae22 *m = NULL;
    const wr_status s = wr_vae22_load(&m, g_be, dir);
    fprintf(stderr, "  %s: %s\n", name, wr_error_detail());
    ck_assert_msg(s == code, "%s: status %d, want %d (%s)", name, (int)s, (int)code,
                  wr_error_detail());
    ck_assert_msg(strstr(wr_error_detail(), needle), "%s: %s", name, wr_error_detail());
    ck_assert_ptr_null(m);
    wr_test_rmtree(dir);
}

START_TEST(test_config_errors) {
    config_case("not_residual", "\"is_residual\": true", "\"is_residual\": false",
                WR_ERR_UNSUPPORTED, "field 'is_residual'");
    config_case("patch1", "\"patch_size\": 2", "\"patch_size\": 1", WR_ERR_UNSUPPORTED,
                "field 'patch_size' is 1");
    config_case("patch_null", "\"patch_size\": 2", "\"patch_size\": null", WR_ERR_UNSUPPORTED,
                "field 'patch_size'");
    config_case("attn", "\"attn_scales\": []", "\"attn_scales\": [0.5]", WR_ERR_UNSUPPORTED,
                "field 'attn_scales'");
    config_case("three_time", "\"temperal_downsample\": [\n    false,",
                "\"temperal_downsample\": [\n    true,", WR_ERR_UNSUPPORTED,
                "field 'temperal_downsample'");
    config_case("scale", "\"scale_factor_spatial\": 16", "\"scale_factor_spatial\": 8",
                WR_ERR_CONFIG, "field 'scale_factor_spatial'");
    config_case("z_type", "\"z_dim\": 8", "\"z_dim\": \"8\"", WR_ERR_FORMAT, "z_dim");
    config_case("stats", "\"latents_mean\": [", "\"latents_mean\": [1.0, ", WR_ERR_FORMAT,
                "field 'latents_mean'");
    /* dim_mult [1, 3, 4, 4]: valid for diffusers, but up block 2's DupUp3D (12 -> 9 channels)
     * has repeats 3, which no strided copy maps */
    config_case("dupup", "\"dim_mult\": [\n    1,\n    2,", "\"dim_mult\": [\n    1,\n    3,",
                WR_ERR_UNSUPPORTED, "field 'dim_mult'");
}
END_TEST

START_TEST(test_arg_errors) {
    char dir[4300];
    wr_vae22 *m = NULL;
    ck_assert_int_eq(wr_vae22_load(&m, g_be, tiny_dir(dir, sizeof dir)), WR_OK);
    float z[8 * 2 * 1 * 1] = {0}, o[3 * 5 * 16 * 16];
    wr_tensor zt = wr_tensor_make(z, WR_DTYPE_F32, 4, (int64_t[]){8, 2, 1, 1});
    wr_tensor bad = wr_tensor_make(o, WR_DTYPE_F32, 4, (int64_t[]){3, 4, 16, 16});
    ck_assert_int_eq(wr_vae22_decode(m, &bad, &zt, NULL), WR_ERR_INVALID_ARG);
    ck_assert_msg(strstr(wr_error_detail(), "[3, 5, 16, 16]"), "%s", wr_error_detail());
    wr_tensor z16 = wr_tensor_make(z, WR_DTYPE_F32, 4, (int64_t[]){16, 1, 1, 1});
    wr_tensor ot = wr_tensor_make(o, WR_DTYPE_F32, 4, (int64_t[]){3, 1, 16, 16});
    ck_assert_int_eq(wr_vae22_decode(m, &ot, &z16, NULL), WR_ERR_INVALID_ARG);
    ck_assert_msg(strstr(wr_error_detail(), "[8, T, h, w]"), "%s", wr_error_detail());
    /* encode: 4 frames (not 1 + 4k), 24 pixels (not a multiple of 16), a wrong mean */
    float v[3 * 5 * 32 * 32] = {0}, mean[8 * 2 * 2 * 2];
    wr_tensor v4 = wr_tensor_make(v, WR_DTYPE_F32, 4, (int64_t[]){3, 4, 32, 32});
    wr_tensor mt = wr_tensor_make(mean, WR_DTYPE_F32, 4, (int64_t[]){8, 1, 2, 2});
    ck_assert_int_eq(wr_vae22_encode(m, &mt, &v4, NULL), WR_ERR_INVALID_ARG);
    ck_assert_msg(strstr(wr_error_detail(), "1 + 4k"), "%s", wr_error_detail());
    wr_tensor v24 = wr_tensor_make(v, WR_DTYPE_F32, 4, (int64_t[]){3, 1, 24, 32});
    ck_assert_int_eq(wr_vae22_encode(m, &mt, &v24, NULL), WR_ERR_INVALID_ARG);
    wr_tensor v5 = wr_tensor_make(v, WR_DTYPE_F32, 4, (int64_t[]){3, 5, 32, 32});
    ck_assert_int_eq(wr_vae22_encode(m, &mt, &v5, NULL), WR_ERR_INVALID_ARG);
    ck_assert_msg(strstr(wr_error_detail(), "[8, 2, 2, 2]"), "%s", wr_error_detail());
    ck_assert_int_eq(wr_vae22_frames(m, 21), 81);
    ck_assert_int_eq(wr_vae22_latent_frames(m, 81), 21);
    ck_assert_int_eq(wr_vae22_latent_frames(m, 80), 0);
    wr_vae22_free(m);
}
END_TEST

static void setup(void) {
    ck_assert_int_eq(wr_backend_create(&g_be, WR_BACKEND_CPU, 0), WR_OK);
}

static void teardown(void) {
    wr_backend_free(g_be);
    g_be = NULL;
}

Suite *wr_test_suite(void) {
    Suite *s = suite_create("vae22");
    TCase *tc = tcase_create("golden");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_decode);
    tcase_add_test(tc, test_encode);
    tcase_add_test(tc, test_tiled);
    tcase_add_test(tc, test_plan);
    tcase_add_test(tc, test_other_checkpoints);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_arg_errors);
    suite_add_tcase(s, tc);
    return s;
}

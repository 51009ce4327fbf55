/*
 * test_vae.c — the Wan VAE decoder on the CPU backend against diffusers' AutoencoderKLWan
 * (tests/data/vae/<case>/io.safetensors from tests/golden/golden_vae.py): the taps of a
 * 1-latent-frame decode, an untiled 4-latent-frame decode (13 frames), and a tiled decode with
 * the generator's tile/stride; the real decoder's inventory from configs/ alone; memory of
 * tiled vs untiled decode; the blend op against its definition (bitwise); loader and argument
 * errors.
 *
 * Tolerance: NMSE <= 1e-6 for every frame tensor and tap (the bound), max |d| printed.
 * The generator measured fp32 PyTorch against float64 at 1e-15..1e-10 (the largest where an
 * RMS norm over 2 channels divides by a near-zero norm, tiny_a's last block); ours against
 * PyTorch fp32 is printed by this test (ctest --verbose) and is of the same order. A wrong op (a
 * cache frame off by one, the Rep rule, the blend order) gives NMSE > 1e-3.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/modeldir.h"
#include "core/safetensors.h"
#include "harness.h"
#include "kernels/backend.h"
#include "kernels/ops.h"
#include "models/vae.h"

static wr_backend *g_be;

static double nmse_f32(const float *a, const float *b, int64_t n, double *maxabs) {
    double num = 0, den = 0;
    *maxabs = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        if (isnan(a[i])) return INFINITY;
        num += d * d;
        den += (double)b[i] * b[i];
        if (fabs(d) > *maxabs) *maxabs = fabs(d);
    }
    return den > 0 ? num / den : num;
}

START_TEST(test_inventory_wan21) {
    char p[4300];
    snprintf(p, sizeof p, "%s/../../configs/vae-wan21.json", wr_test_data(""));
    wr_vae_config c;
    ck_assert_msg(wr_vae_config_read(&c, p) == WR_OK, "%s", wr_error_detail());
    int64_t params = 0, n = wr_vae_expected_tensors(&c, &params, NULL, NULL);
    /* reference/wan21-spec.md §4.7: decoder + post_quant_conv, 108 tensors, 73,295,603 params */
    ck_assert_int_eq(n, 108);
    ck_assert_int_eq(params, 73295603LL);
}
END_TEST

typedef struct tap_check {
    wr_st_file *io;
    int checked, failed;
    char first_bad[96];
} tap_check;

static void on_tap(void *ctx, const char *name, const wr_tensor *t) {
    tap_check *tc = ctx;
    char key[128];
    snprintf(key, sizeof key, "tap.single.%s", name);
    const wr_st_tensor *ref = wr_st_find(tc->io, key);
    if (ref == NULL) return; /* not recorded */
    const int64_t n = wr_tensor_nelem(t);
    double maxabs = 0,
           e = ref->nelem == n ? nmse_f32(t->data, wr_st_tensor_data(ref), n, &maxabs) : INFINITY;
    fprintf(stderr, "  %-44s nmse %.3e  max|d| %.3e%s\n", key, e, maxabs,
            e <= 1e-6 ? "" : "  <-- FAIL");
    tc->checked++;
    if (!(e <= 1e-6) && !tc->failed) {
        tc->failed = 1;
        snprintf(tc->first_bad, sizeof tc->first_bad, "%s", key);
    }
}

static const wr_st_tensor *need(wr_st_file *io, const char *name) {
    const wr_st_tensor *t = wr_st_find(io, name);
    ck_assert_msg(t != NULL && t->dtype == WR_DTYPE_F32, "golden tensor %s missing", name);
    return t;
}

/* decodes input.<name> and compares with out.<name> */
static void decode_and_compare(wr_vae *m, wr_st_file *io, const char *name,
                               const wr_vae_tiling *tiling) {
    char key[64];
    snprintf(key, sizeof key, "input.%s", name);
    const wr_st_tensor *in = need(io, key);
    snprintf(key, sizeof key, "out.%s", name);
    const wr_st_tensor *ref = need(io, key);
    wr_tensor z = wr_tensor_make((void *)wr_st_tensor_data(in), WR_DTYPE_F32, 4, in->shape);
    float *o = malloc(sizeof(float) * (size_t)ref->nelem);
    wr_tensor ot = wr_tensor_make(o, WR_DTYPE_F32, 4, ref->shape);
    ck_assert_int_eq(wr_vae_frames(m, in->shape[1]), ref->shape[1]);
    wr_status s = wr_vae_decode(m, &ot, &z, tiling);
    ck_assert_msg(s == WR_OK, "decode %s: %s", name, wr_error_detail());
    double maxabs, e = nmse_f32(o, wr_st_tensor_data(ref), ref->nelem, &maxabs);
    fprintf(stderr, "  out.%-40s nmse %.3e  max|d| %.3e  [%lld,%lld,%lld,%lld]\n", name, e, maxabs,
            (long long)ref->shape[0], (long long)ref->shape[1], (long long)ref->shape[2],
            (long long)ref->shape[3]);
    ck_assert_msg(e <= 1e-6, "%s: out.%s nmse %.3e", wr_vae_config_of(m)->dim_mult.n ? "" : "",
                  name, e);
    free(o);
}

/* tiling from the golden metadata (diffusers' enable_tiling arguments) */
static wr_vae_tiling golden_tiling(wr_st_file *io) {
    const char *js = wr_st_metadata(io, "tiling");
    ck_assert_ptr_nonnull(js);
    cJSON *j = cJSON_Parse(js);
    ck_assert_ptr_nonnull(j);
    wr_vae_tiling t = {1, 0, 0, 0, 0};
    t.tile_h = (int64_t)cJSON_GetObjectItem(j, "tile_sample_min_height")->valuedouble;
    t.tile_w = (int64_t)cJSON_GetObjectItem(j, "tile_sample_min_width")->valuedouble;
    t.stride_h = (int64_t)cJSON_GetObjectItem(j, "tile_sample_stride_height")->valuedouble;
    t.stride_w = (int64_t)cJSON_GetObjectItem(j, "tile_sample_stride_width")->valuedouble;
    cJSON_Delete(j);
    return t;
}

static void run_case(const char *name) {
    char dir[4300], io_path[4300];
    snprintf(dir, sizeof dir, "%s/vae", wr_test_data(name));
    snprintf(io_path, sizeof io_path, "%s/io.safetensors", wr_test_data(name));
    fprintf(stderr, "%s\n", name);
    wr_vae *m = NULL;
    wr_status s = wr_vae_load(&m, g_be, dir);
    ck_assert_msg(s == WR_OK, "%s: %s", name, wr_error_detail());
    tap_check tc = {0};
    ck_assert_int_eq(wr_st_open(&tc.io, io_path), WR_OK);
    wr_vae_set_tap(m, on_tap, &tc);
    decode_and_compare(m, tc.io, "single", NULL);
    ck_assert_msg(!tc.failed, "%s: first failing tap %s", name, tc.first_bad);
    ck_assert_int_ge(tc.checked, 8);
    wr_vae_set_tap(m, NULL, NULL);
    decode_and_compare(m, tc.io, "multi", NULL);
    wr_vae_tiling t = golden_tiling(tc.io);
    decode_and_compare(m, tc.io, "tiled", &t);
    /* the same model decodes the untiled cases again bit for bit after a tiled one */
    decode_and_compare(m, tc.io, "multi", NULL);
    wr_st_close(tc.io);
    wr_vae_free(m);
}

START_TEST(test_tiny_a) {
    run_case("vae/tiny_a");
}
END_TEST
START_TEST(test_tiny_b_bf16) {
    run_case("vae/tiny_b");
}
END_TEST

/* ---- memory: tiled decode's activations do not grow with the area; untiled ones do ---- */

static size_t decode_peak(wr_vae *m, int64_t T, int64_t H, int64_t W, const wr_vae_tiling *t,
                          size_t *blend) {
    const wr_vae_config *c = wr_vae_config_of(m);
    const int64_t r = c->scale_factor_spatial, N = wr_vae_frames(m, T);
    float *z = malloc(sizeof(float) * (size_t)(c->z_dim * T * H * W));
    float *o = malloc(sizeof(float) * (size_t)(c->out_channels * N * H * r * W * r));
    for (int64_t i = 0; i < c->z_dim * T * H * W; i++) z[i] = (float)sin(0.37 * (double)i);
    wr_tensor zt = wr_tensor_make(z, WR_DTYPE_F32, 4, (int64_t[]){c->z_dim, T, H, W});
    wr_tensor ot =
        wr_tensor_make(o, WR_DTYPE_F32, 4, (int64_t[]){c->out_channels, N, H * r, W * r});
    wr_vae_reset_peak(m);
    ck_assert_msg(wr_vae_decode(m, &ot, &zt, t) == WR_OK, "%s", wr_error_detail());
    size_t p = wr_vae_peak_bytes(m);
    if (blend) *blend = wr_vae_blend_peak_bytes(m);
    free(z);
    free(o);
    return p;
}

START_TEST(test_memory_tiled_flat) {
    wr_vae *small = NULL, *large = NULL;
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/vae", wr_test_data("vae/tiny_a"));
    ck_assert_int_eq(wr_vae_load(&small, g_be, dir), WR_OK);
    ck_assert_int_eq(wr_vae_load(&large, g_be, dir), WR_OK);
    const wr_vae_tiling t = {1, 32, 32, 24, 24}; /* latent tile 4, stride 3 */
    size_t bs = 0, bl = 0;
    const size_t ts = decode_peak(small, 3, 8, 10, &t, &bs);
    const size_t tl = decode_peak(large, 3, 16, 20, &t, &bl); /* 4x the area */
    fprintf(stderr, "tiled: peak %zu B at 8x10, %zu B at 16x20 (blend margins %zu / %zu B)\n", ts,
            tl, bs, bl);
    ck_assert_msg(tl <= ts + ts / 10, "tiled peak grew from %zu to %zu bytes", ts, tl);
    wr_vae_free(small);
    wr_vae_free(large);
    ck_assert_int_eq(wr_vae_load(&small, g_be, dir), WR_OK);
    ck_assert_int_eq(wr_vae_load(&large, g_be, dir), WR_OK);
    const size_t us = decode_peak(small, 3, 8, 10, NULL, NULL);
    const size_t ul = decode_peak(large, 3, 16, 20, NULL, NULL);
    fprintf(stderr, "untiled: peak %zu B at 8x10, %zu B at 16x20\n", us, ul);
    ck_assert_msg(ul > 3 * us, "untiled peak should grow with the area: %zu -> %zu", us, ul);
    /* and more frames do not change the untiled peak either (one latent frame at a time) */
    wr_vae_free(small);
    ck_assert_int_eq(wr_vae_load(&small, g_be, dir), WR_OK);
    const size_t u5 = decode_peak(small, 5, 8, 10, NULL, NULL);
    ck_assert_msg(u5 == us, "untiled peak with 5 latent frames %zu != with 3 %zu", u5, us);
    wr_vae_free(small);
    wr_vae_free(large);
}
END_TEST

/* ---- the blend op (tiled decode's cross-fade) against its definition in ops.h ---- */

/* device copy of n host floats */
static float *dev_copy(const float *h, size_t n) {
    void *d = NULL;
    ck_assert_int_eq(g_be->iface->alloc(g_be, &d, n * sizeof(float)), WR_OK);
    ck_assert_int_eq(wr_upload(g_be, d, h, n * sizeof(float)), WR_OK);
    return d;
}

START_TEST(test_blend_op) {
    /* {P, Ld, La, Q, e}: rows of a [C N, H, W] tile (Q = W), its columns (Q = 1), e below both
     * lengths, e = the margin's whole length, e = 1 (weights 1 and 0) and e = 0 */
    const int64_t cases[][5] = {
        {6, 9, 5, 7, 4}, {42, 11, 3, 1, 3}, {5, 4, 8, 3, 4}, {3, 6, 6, 5, 1}, {2, 3, 3, 4, 0}};
    uint64_t rs = 99;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const int64_t P = cases[k][0], Ld = cases[k][1], La = cases[k][2], Q = cases[k][3],
                      e = cases[k][4];
        const size_t nd = (size_t)(P * Ld * Q), na = (size_t)(P * La * Q);
        float *hd = malloc(nd * sizeof(float)), *ha = malloc(na * sizeof(float)),
              *want = malloc(nd * sizeof(float)), *got = malloc(nd * sizeof(float));
        for (size_t i = 0; i < nd; i++)
            hd[i] = (float)((rs = rs * 6364136223846793005ULL + 1) >> 40) / 16777216.0f - 0.5f;
        for (size_t i = 0; i < na; i++)
            ha[i] = (float)((rs = rs * 6364136223846793005ULL + 1) >> 40) / 16777216.0f + 2.0f;
        memcpy(want, hd, nd * sizeof(float));
        for (int64_t p = 0; p < P; p++)
            for (int64_t i = 0; i < e; i++)
                for (int64_t q = 0; q < Q; q++) {
                    const float wa = (float)(1.0 - (double)i / (double)e),
                                wb = (float)((double)i / (double)e);
                    float *d = &want[(p * Ld + i) * Q + q];
                    *d = ha[(p * La + La - e + i) * Q + q] * wa + *d * wb;
                }
        float *dd = dev_copy(hd, nd), *da = dev_copy(ha, na);
        wr_tensor td = wr_tensor_make(dd, WR_DTYPE_F32, 3, (int64_t[]){P, Ld, Q});
        wr_tensor ta = wr_tensor_make(da, WR_DTYPE_F32, 3, (int64_t[]){P, La, Q});
        ck_assert_int_eq(wr_op_blend(g_be, &td, &ta, e), WR_OK);
        ck_assert_int_eq(wr_download(g_be, got, dd, nd * sizeof(float)), WR_OK);
        /* the same expression: bitwise; rows >= e untouched */
        ck_assert_msg(memcmp(got, want, nd * sizeof(float)) == 0, "blend case %zu differs", k);
        g_be->iface->free(g_be, dd);
        g_be->iface->free(g_be, da);
        free(hd), free(ha), free(want), free(got);
    }
}
END_TEST

/* ---- errors ---- */

START_TEST(test_errors) {
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/vae", wr_test_data("vae/tiny_a"));
    wr_vae *m = NULL;
    ck_assert_int_eq(wr_vae_load(&m, g_be, dir), WR_OK);
    const wr_vae_config *c = wr_vae_config_of(m);
    float z[16 * 2 * 3 * 3] = {0}, o[3 * 5 * 24 * 24];
    wr_tensor zt = wr_tensor_make(z, WR_DTYPE_F32, 4, (int64_t[]){c->z_dim, 2, 3, 3});
    wr_tensor bad = wr_tensor_make(o, WR_DTYPE_F32, 4, (int64_t[]){3, 4, 24, 24});
    ck_assert_int_eq(wr_vae_decode(m, &bad, &zt, NULL), WR_ERR_INVALID_ARG);
    ck_assert_msg(strstr(wr_error_detail(), "[3, 5, 24, 24]"), "%s", wr_error_detail());
    wr_tensor ot = wr_tensor_make(o, WR_DTYPE_F32, 4, (int64_t[]){3, 5, 24, 24});
    const wr_vae_tiling odd = {1, 20, 20, 16, 16}; /* not a multiple of 8 */
    ck_assert_int_eq(wr_vae_decode(m, &ot, &zt, &odd), WR_ERR_INVALID_ARG);
    ck_assert_msg(strstr(wr_error_detail(), "multiples of 8"), "%s", wr_error_detail());
    const wr_vae_tiling wide = {1, 16, 16, 24, 24}; /* stride > tile */
    ck_assert_int_eq(wr_vae_decode(m, &ot, &zt, &wide), WR_ERR_INVALID_ARG);
    wr_vae_free(m);

    /* a missing decoder tensor is named */
    char bdir[4300], cmd[9000];
    snprintf(bdir, sizeof bdir, "%s/vae_broken", wr_test_tmpdir());
    mkdir(bdir, 0755);
    snprintf(cmd, sizeof cmd, "cp %s/config.json %s/", dir, bdir);
    ck_assert_int_eq(system(cmd), 0);
    wr_st_set *set = NULL;
    ck_assert_int_eq(wr_st_set_open(&set, dir), WR_OK);
    wr_st_writer *w = NULL;
    wr_st_writer_init(&w);
    for (int64_t i = 0; i < wr_st_set_count(set); i++) {
        const wr_st_tensor *t = wr_st_set_at(set, i);
        if (strcmp(t->name, "decoder.up_blocks.1.upsamplers.0.time_conv.weight") == 0) continue;
        wr_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, wr_st_tensor_data(t));
    }
    snprintf(cmd, sizeof cmd, "%s/diffusion_pytorch_model.safetensors", bdir);
    ck_assert_int_eq(wr_st_writer_write(w, cmd), WR_OK);
    wr_st_writer_free(w);
    wr_st_set_close(set);
    ck_assert_int_eq(wr_vae_load(&m, g_be, bdir), WR_ERR_FORMAT);
    ck_assert_msg(
        strstr(wr_error_detail(), "decoder.up_blocks.1.upsamplers.0.time_conv.weight missing"),
        "%s", wr_error_detail());
    ck_assert_ptr_null(m);
    unlink(cmd);
    snprintf(cmd, sizeof cmd, "%s/config.json", bdir);
    unlink(cmd);
    rmdir(bdir);
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
    Suite *s = suite_create("vae");
    TCase *tc = tcase_create("golden");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_inventory_wan21);
    tcase_add_test(tc, test_tiny_a);
    tcase_add_test(tc, test_tiny_b_bf16);
    tcase_add_test(tc, test_memory_tiled_flat);
    tcase_add_test(tc, test_blend_op);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}

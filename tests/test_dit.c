/*
 * test_dit.c — the Wan DiT on the CPU backend against diffusers' WanTransformer3DModel, tap by
 * tap (tests/data/dit/<case>/io.safetensors from `tests/golden/gen_golden.py dit`), plus the
 * 1.3B / 14B tensor inventories counted from configs/ alone, and loader errors.
 *
 * Tolerances (NMSE = sum((a-b)^2) / sum(b^2)): <= 1e-6 per tap up to the last block and
 * <= 1e-5 for the head and the output. How they were chosen: the generator measured fp32
 * PyTorch against a float64 run of the same model (`nmse_fp32_vs_f64.*` in each io file's
 * metadata), which is the size of honest fp32 rounding differences; our result, also fp32 but
 * with different summation orders (OpenBLAS, double-accumulated norms), is measured against
 * PyTorch fp32 at the values printed by this test (`--verbose` of ctest), well below both
 * limits; a wrong op (a missing scale, a swapped shift/scale, a RoPE pair off by one) gives
 * NMSE > 1e-2.
 */
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
#include "models/dit.h"

static wr_backend *g_be;

/* ---- inventories from the configs alone ---- */

static void check_inventory(const char *cfg, int64_t want_n, int64_t want_params) {
    char p[4300];
    snprintf(p, sizeof p, "%s/../../configs/%s", wr_test_data(""), cfg);
    wr_dit_config c;
    ck_assert_msg(wr_dit_config_read(&c, p) == WR_OK, "%s", wr_error_detail());
    int64_t params = 0, n = wr_dit_expected_tensors(&c, &params, NULL, NULL);
    ck_assert_msg(n == want_n, "%s: %lld tensors, spec says %lld", cfg, (long long)n,
                  (long long)want_n);
    ck_assert_msg(params == want_params, "%s: %lld params, spec says %lld", cfg, (long long)params,
                  (long long)want_params);
}

START_TEST(test_inventories) {
    /* reference/wan21-spec.md §2.6: counts verified against the diffusers module tree */
    check_inventory("dit-1.3b.json", 825, 1418996800LL);
    check_inventory("dit-14b.json", 1095, 14288491584LL);
}
END_TEST

START_TEST(test_original_names) {
    char o[160];
    wr_dit_original_name(o, sizeof o, "blocks.7.attn1.to_out.0.weight");
    ck_assert_str_eq(o, "blocks.7.self_attn.o.weight");
    wr_dit_original_name(o, sizeof o, "blocks.0.norm2.bias");
    ck_assert_str_eq(o, "blocks.0.norm3.bias");
    wr_dit_original_name(o, sizeof o, "blocks.12.scale_shift_table");
    ck_assert_str_eq(o, "blocks.12.modulation");
    wr_dit_original_name(o, sizeof o, "scale_shift_table");
    ck_assert_str_eq(o, "head.modulation");
    wr_dit_original_name(o, sizeof o, "condition_embedder.time_proj.bias");
    ck_assert_str_eq(o, "time_projection.1.bias");
    wr_dit_original_name(o, sizeof o, "blocks.3.ffn.net.0.proj.weight");
    ck_assert_str_eq(o, "blocks.3.ffn.0.weight");
    wr_dit_original_name(o, sizeof o, "patch_embedding.bias");
    ck_assert_str_eq(o, "patch_embedding.bias");
}
END_TEST

/* ---- golden parity ---- */

typedef struct tap_check {
    wr_st_file *io;
    int failed; /* first failing tap stops the comparison */
    int checked;
    double worst_block, worst_out;
    char first_bad[64];
} tap_check;

static void on_tap(void *ctx, const char *name, const wr_tensor *t) {
    tap_check *tc = ctx;
    if (tc->failed) return;
    char key[96];
    snprintf(key, sizeof key, "tap.%s", name);
    const wr_st_tensor *ref = wr_st_find(tc->io, key);
    if (ref == NULL) return; /* a tap the generator did not record */
    const int64_t n = wr_tensor_nelem(t);
    if (ref->nelem != n || ref->dtype != WR_DTYPE_F32) {
        fprintf(stderr, "%s: %lld elements here, %lld in the golden file\n", key, (long long)n,
                (long long)ref->nelem);
        tc->failed = 1;
        snprintf(tc->first_bad, sizeof tc->first_bad, "%s", key);
        return;
    }
    const float *a = t->data, *b = wr_st_tensor_data(ref);
    double num = 0, den = 0, maxabs = 0;
    int nan = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        nan |= isnan(a[i]);
        num += d * d;
        den += (double)b[i] * b[i];
        if (fabs(d) > maxabs) maxabs = fabs(d);
    }
    double nmse = den > 0 ? num / den : num;
    int final = strcmp(name, "head") == 0 || strcmp(name, "output") == 0;
    double tol = final ? 1e-5 : 1e-6;
    fprintf(stderr, "  %-16s nmse %.3e  max|d| %.3e%s\n", key, nmse, maxabs,
            nan || !(nmse <= tol) ? "  <-- FAIL" : "");
    if (final && nmse > tc->worst_out) tc->worst_out = nmse;
    if (!final && nmse > tc->worst_block) tc->worst_block = nmse;
    tc->checked++;
    if (nan || !(nmse <= tol)) {
        tc->failed = 1;
        snprintf(tc->first_bad, sizeof tc->first_bad, "%s", key);
        for (int64_t i = 0, shown = 0; i < n && shown < 4; i++)
            if (fabs((double)a[i] - b[i]) > 1e-3 * (fabs(b[i]) + 1e-3))
                fprintf(stderr, "    [%lld] got %.7g want %.7g\n", (long long)i, a[i], b[i]),
                    shown++;
    }
}

static void run_case(const char *name) {
    char dir[4300], io_path[4300];
    snprintf(dir, sizeof dir, "%s", wr_test_data(name));
    strcat(dir, "/transformer");
    snprintf(io_path, sizeof io_path, "%s/io.safetensors", wr_test_data(name));
    fprintf(stderr, "%s\n", name);
    wr_dit *m = NULL;
    wr_status s = wr_dit_load(&m, g_be, dir);
    ck_assert_msg(s == WR_OK, "%s: %s", name, wr_error_detail());
    tap_check tc = {0};
    ck_assert_int_eq(wr_st_open(&tc.io, io_path), WR_OK);
    const wr_st_tensor *lat = wr_st_find(tc.io, "input.hidden_states");
    const wr_st_tensor *ts = wr_st_find(tc.io, "input.timestep");
    const wr_st_tensor *enc = wr_st_find(tc.io, "input.encoder_hidden_states");
    ck_assert(lat && ts && enc && lat->ndim == 5 && lat->shape[0] == 1 && enc->ndim == 3);
    const int64_t *ls = lat->shape;
    wr_tensor x = wr_tensor_make((void *)wr_st_tensor_data(lat), WR_DTYPE_F32, 4,
                                 (int64_t[]){ls[1], ls[2], ls[3], ls[4]});
    wr_tensor e = wr_tensor_make((void *)wr_st_tensor_data(enc), WR_DTYPE_F32, 2,
                                 (int64_t[]){enc->shape[1], enc->shape[2]});
    const wr_dit_config *cfg = wr_dit_config_of(m);
    float *outbuf = malloc(sizeof(float) * (size_t)(cfg->out_channels * ls[2] * ls[3] * ls[4]));
    wr_tensor out = wr_tensor_make(outbuf, WR_DTYPE_F32, 4,
                                   (int64_t[]){cfg->out_channels, ls[2], ls[3], ls[4]});
    wr_dit_set_tap(m, on_tap, &tc);
    float t = ((const float *)wr_st_tensor_data(ts))[0];
    s = wr_dit_forward(m, &out, &x, t, &e);
    ck_assert_msg(s == WR_OK, "%s: forward: %s", name, wr_error_detail());
    ck_assert_msg(!tc.failed, "%s: first failing tap %s", name, tc.first_bad);
    ck_assert_msg(tc.checked >= 6 + cfg->num_layers, "%s: only %d taps compared", name, tc.checked);
    fprintf(stderr, "  worst: blocks %.3e, head/output %.3e\n", tc.worst_block, tc.worst_out);
    /* The forward caches its RoPE tables across calls: after this shape, another grid and text
     * length on the same model must give bit for bit what a freshly loaded model gives. */
    wr_dit_set_tap(m, NULL, NULL);
    const int64_t pt = cfg->patch_size.v[0], F2 = ls[2] > pt ? ls[2] - pt : ls[2];
    wr_tensor x2 = x, e2 = e;
    x2.shape[1] = F2;
    e2.shape[0] = enc->shape[1] - 1;
    const size_t n2 = (size_t)(cfg->out_channels * F2 * ls[3] * ls[4]);
    float *o2 = malloc(sizeof(float) * n2), *o3 = malloc(sizeof(float) * n2);
    wr_tensor out2 =
        wr_tensor_make(o2, WR_DTYPE_F32, 4, (int64_t[]){cfg->out_channels, F2, ls[3], ls[4]});
    wr_tensor out3 = out2;
    out3.data = o3;
    ck_assert_int_eq(wr_dit_forward(m, &out2, &x2, t, &e2), WR_OK);
    wr_dit *fresh = NULL;
    ck_assert_int_eq(wr_dit_load(&fresh, g_be, dir), WR_OK);
    ck_assert_int_eq(wr_dit_forward(fresh, &out3, &x2, t, &e2), WR_OK);
    ck_assert_msg(memcmp(o2, o3, sizeof(float) * n2) == 0,
                  "%s: a second shape on a used model differs from a fresh model", name);
    wr_dit_free(fresh);
    free(o2);
    free(o3);
    free(outbuf);
    wr_st_close(tc.io);
    wr_dit_free(m);
}

START_TEST(test_tiny2) {
    run_case("dit/tiny2");
}
END_TEST
START_TEST(test_tiny3_odd_frames_nonsquare) {
    run_case("dit/tiny3");
}
END_TEST
START_TEST(test_sharded) {
    run_case("dit/tiny2_sharded");
}
END_TEST
START_TEST(test_bf16_weights) {
    run_case("dit/tiny2_bf16");
}
END_TEST
START_TEST(test_original_key_names) {
    run_case("dit/tiny2_orig");
}
END_TEST
/* cross_attn_norm false: diffusers' norm2 is an nn.Identity, the checkpoint has no norm2.* and
 * the cross-attention reads the residual stream itself */
START_TEST(test_no_cross_attn_norm) {
    run_case("dit/nocross");
}
END_TEST

/* ---- the per-block upcast ---- */

/* One forward of case `name` (its golden inputs) with the given load options; returns the
 * output (malloc'd) and its element count, and the model's upcast buffer size. */
static float *forward_with(const char *name, const wr_dit_load_opts *o, int64_t *n,
                           size_t *upcast) {
    char dir[4300], io_path[4300];
    snprintf(dir, sizeof dir, "%s/transformer", wr_test_data(name));
    snprintf(io_path, sizeof io_path, "%s/io.safetensors", wr_test_data(name));
    wr_dit *m = NULL;
    ck_assert_msg(wr_dit_load_ex(&m, g_be, dir, o) == WR_OK, "%s", wr_error_detail());
    wr_st_file *io = NULL;
    ck_assert_int_eq(wr_st_open(&io, io_path), WR_OK);
    const wr_st_tensor *lat = wr_st_find(io, "input.hidden_states");
    const wr_st_tensor *ts = wr_st_find(io, "input.timestep");
    const wr_st_tensor *enc = wr_st_find(io, "input.encoder_hidden_states");
    ck_assert(lat && ts && enc);
    const int64_t *ls = lat->shape;
    wr_tensor x = wr_tensor_make((void *)wr_st_tensor_data(lat), WR_DTYPE_F32, 4,
                                 (int64_t[]){ls[1], ls[2], ls[3], ls[4]});
    wr_tensor e = wr_tensor_make((void *)wr_st_tensor_data(enc), WR_DTYPE_F32, 2,
                                 (int64_t[]){enc->shape[1], enc->shape[2]});
    const wr_dit_config *cfg = wr_dit_config_of(m);
    *n = cfg->out_channels * ls[2] * ls[3] * ls[4];
    float *buf = malloc(sizeof(float) * (size_t)*n);
    wr_tensor out =
        wr_tensor_make(buf, WR_DTYPE_F32, 4, (int64_t[]){cfg->out_channels, ls[2], ls[3], ls[4]});
    ck_assert_msg(wr_dit_forward(m, &out, &x, ((const float *)wr_st_tensor_data(ts))[0], &e) ==
                      WR_OK,
                  "%s", wr_error_detail());
    *upcast = wr_dit_upcast_bytes(m);
    /* the planner's count from the config alone, when every block matrix is narrow */
    if (*upcast) ck_assert_uint_eq(*upcast, wr_dit_plan_upcast(wr_dit_config_of(m)));
    /* the workspace the caller plans for counts the buffer */
    ck_assert_uint_ge(wr_dit_workspace_bytes(m, 1, 1), *upcast);
    wr_st_close(io);
    wr_dit_free(m);
    return buf;
}

/* Narrow block matrices (a bf16 checkpoint, FP8 storage) are converted once per acquired block
 * into the upcast buffer; the matmul then runs the same sgemm on the same f32 values as when it
 * converts per use (one weight panel at these sizes): bitwise the same output. f32 matrices
 * need no buffer. */
START_TEST(test_upcast_once_per_block) {
    const struct {
        const char *name;
        int fp8, narrow;
    } cases[] = {{"dit/tiny2_bf16", 0, 1}, {"dit/tiny2", 1, 1}, {"dit/tiny2", 0, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const wr_dit_load_opts once = {.fp8_storage = cases[k].fp8},
                               per_use = {.fp8_storage = cases[k].fp8, .upcast_per_use = 1};
        int64_t n1 = 0, n2 = 0;
        size_t u1 = 0, u2 = 0;
        float *a = forward_with(cases[k].name, &once, &n1, &u1);
        float *b = forward_with(cases[k].name, &per_use, &n2, &u2);
        ck_assert_int_eq(n1, n2);
        ck_assert_msg(cases[k].narrow ? u1 > 0 : u1 == 0, "%s fp8 %d: upcast buffer %zu bytes",
                      cases[k].name, cases[k].fp8, u1);
        ck_assert_uint_eq(u2, 0);
        ck_assert_msg(memcmp(a, b, sizeof(float) * (size_t)n1) == 0,
                      "%s fp8 %d: upcast once differs from per-use conversion", cases[k].name,
                      cases[k].fp8);
        free(a);
        free(b);
    }
}
END_TEST

/* ---- loader errors ---- */

START_TEST(test_missing_and_misshaped) {
    /* copy tiny2 minus one tensor and with one tensor of the wrong shape */
    char src[4300], dir[4300], path[4400];
    snprintf(src, sizeof src, "%s", wr_test_data("dit/tiny2/transformer"));
    snprintf(dir, sizeof dir, "%s/broken", wr_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "cp %s/config.json %s/", src, dir);
    ck_assert_int_eq(system(path), 0);
    wr_st_set *set = NULL;
    ck_assert_int_eq(wr_st_set_open(&set, src), WR_OK);
    wr_st_writer *w = NULL;
    wr_st_writer_init(&w);
    float junk[7] = {0};
    for (int64_t i = 0; i < wr_st_set_count(set); i++) {
        const wr_st_tensor *t = wr_st_set_at(set, i);
        if (strcmp(t->name, "blocks.1.attn2.to_k.weight") == 0) continue;
        if (strcmp(t->name, "blocks.0.norm2.bias") == 0) {
            wr_st_writer_add(w, t->name, WR_DTYPE_F32, 1, (int64_t[]){7}, junk);
            continue;
        }
        wr_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, wr_st_tensor_data(t));
    }
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    ck_assert_int_eq(wr_st_writer_write(w, path), WR_OK);
    wr_st_writer_free(w);
    wr_st_set_close(set);
    wr_dit *m = NULL;
    ck_assert_int_eq(wr_dit_load(&m, g_be, dir), WR_ERR_FORMAT);
    const char *d = wr_error_detail();
    ck_assert_msg(strstr(d, "blocks.1.attn2.to_k.weight missing") != NULL, "%s", d);
    ck_assert_msg(strstr(d, "blocks.0.norm2.bias is F32 [7], expected") != NULL, "%s", d);
    ck_assert_msg(strstr(d, "broken") != NULL, "%s", d);
    ck_assert_ptr_null(m);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
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
    Suite *s = suite_create("dit");
    TCase *tc = tcase_create("golden");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_inventories);
    tcase_add_test(tc, test_original_names);
    tcase_add_test(tc, test_tiny2);
    tcase_add_test(tc, test_tiny3_odd_frames_nonsquare);
    tcase_add_test(tc, test_sharded);
    tcase_add_test(tc, test_bf16_weights);
    tcase_add_test(tc, test_original_key_names);
    tcase_add_test(tc, test_no_cross_attn_norm);
    tcase_add_test(tc, test_upcast_once_per_block);
    tcase_add_test(tc, test_missing_and_misshaped);
    suite_add_tcase(s, tc);
    return s;
}

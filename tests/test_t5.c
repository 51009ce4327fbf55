/*
 * test_t5.c — the UMT5 encoder on the CPU backend against transformers' UMT5EncoderModel, tap
 * by tap, and against diffusers' WanPipeline._get_t5_prompt_embeds for whole prompts
 * (tests/data/t5/<case>/io.safetensors from `tests/golden/gen_golden.py t5`); the relative
 * position buckets against transformers' own function; the real UMT5-XXL inventory from
 * configs/ alone; loader and input errors; FP8 storage against diffusers' layerwise casting
 * of the same encoder (tests/data/t5/<case>/fp8.safetensors from `gen_golden.py fp8`).
 *
 * Tolerance: NMSE = sum((a-b)^2) / sum(b^2) <= 1e-6 for every tap and pipeline output (the
 * issue's bound). How it relates to what is measured: the generator records fp32 PyTorch
 * against a float64 run of the same model (`nmse_fp32_vs_f64.*`, 1e-14..1e-13 for these
 * sizes); this test prints ours against PyTorch fp32 (ctest --verbose), of the same order. A
 * wrong op (a 1/sqrt(d) scale, a bucket off by one, the mask ignored) gives NMSE > 1e-3.
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
#include "models/t5.h"
#include "models/tokenizer.h"
#include "vram/vram.h"

static wr_backend *g_be;

static double nmse_f32(const float *a, const float *b, int64_t n, double *maxabs, int *nan) {
    double num = 0, den = 0;
    *maxabs = 0;
    *nan = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        *nan |= isnan(a[i]);
        num += d * d;
        den += (double)b[i] * b[i];
        if (fabs(d) > *maxabs) *maxabs = fabs(d);
    }
    return den > 0 ? num / den : num;
}

/* ---- the real inventory from configs/ alone ---- */

START_TEST(test_inventory_umt5_xxl) {
    char p[4300];
    snprintf(p, sizeof p, "%s/../../configs/umt5-xxl.json", wr_test_data(""));
    wr_t5_config c;
    ck_assert_msg(wr_t5_config_read(&c, p) == WR_OK, "%s", wr_error_detail());
    int64_t params = 0, n = wr_t5_expected_tensors(&c, &params, NULL, NULL);
    /* reference/wan21-spec.md §3.4's table: 10 tensors per layer (its "24 * 9 + 2 = 218" miscounts
     * its own rows; transformers writes 2 * 10 + 2 = 22 for the 2-layer tiny_a, checked below) +
     * embedding + final norm = 242; ~5.68 B parameters, of which the [256384, 4096] embedding is
     * 1.05 B */
    ck_assert_int_eq(n, 24 * 10 + 2);
    ck_assert_msg(params > 5675000000LL && params < 5685000000LL, "%lld params", (long long)params);
    ck_assert_int_eq(c.vocab_size * c.d_model, 1050148864LL);
    /* the same enumeration on a file transformers wrote */
    wr_t5_config tc;
    snprintf(p, sizeof p, "%s/config.json", wr_test_data("t5/tiny_a/text_encoder"));
    ck_assert_int_eq(wr_t5_config_read(&tc, p), WR_OK);
    wr_st_set *set = NULL;
    ck_assert_int_eq(wr_st_set_open(&set, wr_test_data("t5/tiny_a/text_encoder")), WR_OK);
    ck_assert_int_eq(wr_t5_expected_tensors(&tc, NULL, NULL, NULL), wr_st_set_count(set));
    wr_st_set_close(set);
}
END_TEST

/* ---- golden parity ---- */

typedef struct tap_check {
    wr_st_file *io;
    int failed, checked;
    double worst;
    char first_bad[64];
} tap_check;

static void on_tap(void *ctx, const char *name, const wr_tensor *t) {
    tap_check *tc = ctx;
    if (tc->failed) return;
    char key[96];
    snprintf(key, sizeof key, "tap.%s", name);
    const wr_st_tensor *ref = wr_st_find(tc->io, key);
    ck_assert_msg(ref != NULL, "the golden file has no %s", key);
    const int64_t n = wr_tensor_nelem(t);
    ck_assert_msg(ref->nelem == n && ref->dtype == WR_DTYPE_F32, "%s: %lld elements vs %lld", key,
                  (long long)n, (long long)ref->nelem);
    double maxabs;
    int nan;
    double e = nmse_f32(t->data, wr_st_tensor_data(ref), n, &maxabs, &nan);
    fprintf(stderr, "  %-16s nmse %.3e  max|d| %.3e%s\n", key, e, maxabs,
            nan || !(e <= 1e-6) ? "  <-- FAIL" : "");
    if (e > tc->worst) tc->worst = e;
    tc->checked++;
    if (nan || !(e <= 1e-6)) {
        tc->failed = 1;
        snprintf(tc->first_bad, sizeof tc->first_bad, "%s", key);
    }
}

static const wr_st_tensor *need(wr_st_file *io, const char *name, wr_dtype dt) {
    const wr_st_tensor *t = wr_st_find(io, name);
    ck_assert_msg(t != NULL && t->dtype == dt, "golden tensor %s missing or not %s", name,
                  wr_dtype_name(dt));
    return t;
}

static void run_case(const char *name) {
    char dir[4300], io_path[4300];
    snprintf(dir, sizeof dir, "%s/text_encoder", wr_test_data(name));
    snprintf(io_path, sizeof io_path, "%s/io.safetensors", wr_test_data(name));
    fprintf(stderr, "%s\n", name);
    wr_t5 *m = NULL;
    wr_status s = wr_t5_load(&m, g_be, dir);
    ck_assert_msg(s == WR_OK, "%s: %s", name, wr_error_detail());
    const wr_t5_config *cfg = wr_t5_config_of(m);
    tap_check tc = {0};
    ck_assert_int_eq(wr_st_open(&tc.io, io_path), WR_OK);

    /* buckets: transformers' _relative_position_bucket for j - i in [-R, R] */
    const wr_st_tensor *bk = need(tc.io, "buckets", WR_DTYPE_I32);
    const int32_t *bv = wr_st_tensor_data(bk);
    const int64_t R = (bk->nelem - 1) / 2;
    for (int64_t r = -R; r <= R; r++)
        ck_assert_msg(wr_t5_bucket(m, r) == bv[r + R], "%s: bucket(%lld) = %d, transformers %d",
                      name, (long long)r, wr_t5_bucket(m, r), bv[r + R]);

    /* taps: one padded prompt */
    const wr_st_tensor *ids = need(tc.io, "input.ids", WR_DTYPE_I32);
    const wr_st_tensor *mask = need(tc.io, "input.mask", WR_DTYPE_U8);
    const int64_t L = ids->nelem;
    float *out = malloc(sizeof(float) * (size_t)(L * cfg->d_model));
    wr_tensor ot = wr_tensor_make(out, WR_DTYPE_F32, 2, (int64_t[]){L, cfg->d_model});
    wr_t5_set_tap(m, on_tap, &tc);
    s = wr_t5_forward(m, &ot, wr_st_tensor_data(ids), wr_st_tensor_data(mask), L);
    ck_assert_msg(s == WR_OK, "%s: forward: %s", name, wr_error_detail());
    ck_assert_msg(!tc.failed, "%s: first failing tap %s", name, tc.first_bad);
    ck_assert_int_eq(tc.checked, 2 + cfg->num_layers);
    wr_t5_set_tap(m, NULL, NULL);
    free(out);

    /* the pipeline's processed output, prompt by prompt, at 512 tokens */
    int prompts = 0;
    for (int k = 0;; k++) {
        char key[64];
        snprintf(key, sizeof key, "pipe.%d.ids", k);
        if (wr_st_find(tc.io, key) == NULL) break;
        const wr_st_tensor *pi = need(tc.io, key, WR_DTYPE_I32);
        snprintf(key, sizeof key, "pipe.%d.mask", k);
        const wr_st_tensor *pm = need(tc.io, key, WR_DTYPE_U8);
        snprintf(key, sizeof key, "pipe.%d.out", k);
        const wr_st_tensor *po = need(tc.io, key, WR_DTYPE_F32);
        const int64_t PL = pi->nelem, D = cfg->d_model, n = po->shape[0];
        float *e = malloc(sizeof(float) * (size_t)(PL * D));
        wr_tensor et = wr_tensor_make(e, WR_DTYPE_F32, 2, (int64_t[]){PL, D});
        int64_t n_real = -1;
        s = wr_t5_encode(m, &et, wr_st_tensor_data(pi), wr_st_tensor_data(pm), PL, &n_real);
        ck_assert_msg(s == WR_OK, "%s pipe %d: %s", name, k, wr_error_detail());
        ck_assert_int_eq(n_real, n);
        double maxabs;
        int nan;
        double err = nmse_f32(e, wr_st_tensor_data(po), n * D, &maxabs, &nan);
        fprintf(stderr, "  pipe.%d (%lld real rows) nmse %.3e  max|d| %.3e\n", k, (long long)n, err,
                maxabs);
        ck_assert_msg(!nan && err <= 1e-6, "%s pipe %d: nmse %.3e", name, k, err);
        for (int64_t i = n * D; i < PL * D; i++)
            ck_assert_msg(e[i] == 0.0f && !signbit(e[i]), "%s pipe %d: padded row %lld not zero",
                          name, k, (long long)(i / D));
        free(e);
        prompts++;
    }
    ck_assert_int_ge(prompts, 3);
    fprintf(stderr, "  worst tap nmse %.3e\n", tc.worst);
    wr_st_close(tc.io);
    wr_t5_free(m);
}

/* End to end as `wanrun encode`: the golden prompts through wanrun's own tokenizer (the tiny
 * spiece.model the goldens were made with) and encoder, against the pipeline's output. */
static void run_end_to_end(const char *name) {
    char dir[4300], io_path[4300], spm[4300];
    snprintf(dir, sizeof dir, "%s/text_encoder", wr_test_data(name));
    snprintf(io_path, sizeof io_path, "%s/io.safetensors", wr_test_data(name));
    snprintf(spm, sizeof spm, "%s", wr_test_data("tokenizer/spiece.model"));
    wr_t5 *m = NULL;
    wr_tokenizer *tok = NULL;
    wr_st_file *io = NULL;
    ck_assert_int_eq(wr_t5_load(&m, g_be, dir), WR_OK);
    ck_assert_msg(wr_tokenizer_open(&tok, spm) == WR_OK, "%s", wr_error_detail());
    ck_assert_int_eq(wr_st_open(&io, io_path), WR_OK);
    cJSON *prompts = cJSON_Parse(wr_st_metadata(io, "pipe_prompts"));
    ck_assert_ptr_nonnull(prompts);
    const int64_t D = wr_t5_config_of(m)->d_model;
    float *e = malloc(sizeof(float) * (size_t)(512 * D));
    for (int k = 0; k < cJSON_GetArraySize(prompts); k++) {
        const char *prompt = cJSON_GetArrayItem(prompts, k)->valuestring;
        int32_t ids[512];
        uint8_t mask[512];
        int n = 0;
        ck_assert_int_eq(wr_tokenizer_encode(tok, prompt, 512, ids, mask, &n), WR_OK);
        char key[64];
        snprintf(key, sizeof key, "pipe.%d.ids", k);
        ck_assert_msg(memcmp(ids, wr_st_tensor_data(need(io, key, WR_DTYPE_I32)), sizeof ids) == 0,
                      "%s prompt %d: ids differ from the tokenizer the golden used", name, k);
        wr_tensor et = wr_tensor_make(e, WR_DTYPE_F32, 2, (int64_t[]){512, D});
        int64_t n_real = 0;
        ck_assert_int_eq(wr_t5_encode(m, &et, ids, mask, 512, &n_real), WR_OK);
        snprintf(key, sizeof key, "pipe.%d.out", k);
        const wr_st_tensor *po = need(io, key, WR_DTYPE_F32);
        ck_assert_int_eq(n_real, po->shape[0]);
        double maxabs;
        int nan;
        double err = nmse_f32(e, wr_st_tensor_data(po), n_real * D, &maxabs, &nan);
        ck_assert_msg(!nan && err <= 1e-6, "%s prompt %d: nmse %.3e", name, k, err);
    }
    free(e);
    cJSON_Delete(prompts);
    wr_st_close(io);
    wr_tokenizer_free(tok);
    wr_t5_free(m);
}

START_TEST(test_end_to_end_prompts) {
    run_end_to_end("t5/tiny_a");
    run_end_to_end("t5/tiny_b");
}
END_TEST

/* FP8 storage (--fp8 storage): the layers' seven matrices in e4m3 with a per-tensor scale.
 * diffusers' apply_layerwise_casting(float8_e4m3fn, float32) on transformers' encoder stores the
 * same matrices as a plain cast (no scale); both are compared with the f32 output. Tolerance:
 * ours must be at most 1.5x diffusers' error (measured: 3.8e-3 vs 3.6e-3 on tiny_a, 7.7e-3 vs
 * 1.1e-2 on tiny_b), and the two FP8 outputs within 4x the larger error of each other (they round
 * differently, so they cannot agree more closely than each agrees with f32). A cast that did
 * not happen gives 0, a wrong scale an NMSE near 1. Streaming the layers gives the same bits. */
START_TEST(test_fp8_storage) {
    const char *cases[2] = {"t5/tiny_a", "t5/tiny_b"};
    for (int k = 0; k < 2; k++) {
        char dir[4300], path[4300];
        snprintf(dir, sizeof dir, "%s/text_encoder", wr_test_data(cases[k]));
        wr_t5 *m = NULL;
        const wr_t5_load_opts lo = {.fp8_storage = 1};
        ck_assert_msg(wr_t5_load_ex(&m, g_be, dir, &lo) == WR_OK, "%s", wr_error_detail());
        /* the layers' seven matrices each are e4m3, with their scale on the device */
        wr_test_dscales ds = {.be = g_be};
        wr_t5_each_weight(m, wr_test_dscale_visit, &ds);
        ck_assert_msg(ds.bad == 0, "%s: %lld device scales wrong, first %s", cases[k],
                      (long long)ds.bad, ds.first);
        ck_assert_int_eq(ds.n8, 7 * wr_t5_config_of(m)->num_layers);
        ck_assert_int_eq(ds.n8, ds.n);
        ck_assert_int_eq(ds.scaled, ds.n8);
        snprintf(path, sizeof path, "%s/io.safetensors", wr_test_data(cases[k]));
        wr_st_file *io = NULL, *g = NULL;
        ck_assert_int_eq(wr_st_open(&io, path), WR_OK);
        snprintf(path, sizeof path, "%s/fp8.safetensors", wr_test_data(cases[k]));
        ck_assert_int_eq(wr_st_open(&g, path), WR_OK);
        const wr_st_tensor *ids = need(io, "input.ids", WR_DTYPE_I32);
        const wr_st_tensor *mask = need(io, "input.mask", WR_DTYPE_U8);
        const int64_t L = ids->nelem, D = wr_t5_config_of(m)->d_model, n = L * D;
        const float *ref = wr_st_tensor_data(need(g, "output.fp32", WR_DTYPE_F32));
        const float *dif = wr_st_tensor_data(need(g, "output.fp8_layerwise", WR_DTYPE_F32));
        ck_assert_int_eq(need(g, "output.fp32", WR_DTYPE_F32)->nelem, n);
        float *out = malloc(sizeof(float) * (size_t)n), *out2 = malloc(sizeof(float) * (size_t)n);
        wr_tensor ot = wr_tensor_make(out, WR_DTYPE_F32, 2, (int64_t[]){L, D});
        ck_assert_int_eq(wr_t5_forward(m, &ot, wr_st_tensor_data(ids), wr_st_tensor_data(mask), L),
                         WR_OK);
        wr_test_check_fp8(cases[k], out, ref, dif, n);
        /* streamed through two slots: the same bits, one byte per matrix element in the slots */
        wr_vram *v = NULL;
        ck_assert_int_eq(wr_vram_create(&v, g_be, 0), WR_OK);
        ck_assert_int_eq(wr_t5_set_vram(m, v, 0), WR_OK);
        const wr_t5_config *c = wr_t5_config_of(m);
        const size_t mats =
            (size_t)(4 * c->d_model * c->num_heads * c->d_kv + 3 * c->d_model * c->d_ff);
        ck_assert_uint_lt(wr_t5_layer_bytes(m), 2 * mats); /* f32 / bf16 would be >= 2 bytes each */
        ck_assert_uint_eq(wr_t5_layer_bytes(m), wr_t5_plan_layer_bytes(c, 1));
        wr_tensor ot2 = wr_tensor_make(out2, WR_DTYPE_F32, 2, (int64_t[]){L, D});
        ck_assert_int_eq(wr_t5_forward(m, &ot2, wr_st_tensor_data(ids), wr_st_tensor_data(mask), L),
                         WR_OK);
        ck_assert_int_eq(memcmp(out, out2, sizeof(float) * (size_t)n), 0);
        wr_t5_set_vram(m, NULL, 0);
        wr_vram_free_pool(v);
        free(out), free(out2);
        wr_st_close(g);
        wr_st_close(io);
        wr_t5_free(m);
    }
}
END_TEST

START_TEST(test_tiny_a) {
    run_case("t5/tiny_a");
}
END_TEST
START_TEST(test_tiny_b_bf16_inner_width) {
    run_case("t5/tiny_b");
}
END_TEST

/* ---- the device path ---- */

typedef struct tap_rec {
    float *buf;
    size_t n, cap; /* floats */
} tap_rec;

static void on_tap_rec(void *ctx, const char *name, const wr_tensor *t) {
    (void)name;
    tap_rec *r = ctx;
    const size_t n = (size_t)wr_tensor_nelem(t);
    if (r->n + n > r->cap) {
        r->cap = 2 * (r->n + n);
        r->buf = realloc(r->buf, r->cap * sizeof(float));
        ck_assert_ptr_nonnull(r->buf);
    }
    memcpy(r->buf + r->n, t->data, n * sizeof(float)); /* a host tensor: readable here */
    r->n += n;
}

/* One forward with every tap recorded: output, then the taps, into r (cleared first). */
static void forward_rec(wr_t5 *m, tap_rec *r, const wr_st_tensor *ids, const wr_st_tensor *mask) {
    const int64_t L = ids->nelem, D = wr_t5_config_of(m)->d_model;
    r->n = 0;
    float *out = malloc(sizeof(float) * (size_t)(L * D));
    wr_tensor ot = wr_tensor_make(out, WR_DTYPE_F32, 2, (int64_t[]){L, D});
    wr_t5_set_tap(m, on_tap_rec, r);
    ck_assert_msg(wr_t5_forward(m, &ot, wr_st_tensor_data(ids), wr_st_tensor_data(mask), L) ==
                      WR_OK,
                  "%s", wr_error_detail());
    wr_t5_set_tap(m, NULL, NULL);
    wr_tensor whole = wr_tensor_make(out, WR_DTYPE_F32, 2, (int64_t[]){L, D});
    on_tap_rec(r, "output", &whole);
    free(out);
}

/* A backend whose ops cannot read host memory (be->host_visible cleared on a CPU backend: its
 * ops still could, so only the model's side of the contract changes): the final norm in device
 * memory from load, the layers uploaded once without a pool or streamed with one, the prompt's
 * embedding rows staged and uploaded. The same ops in the same order, so the output and every
 * tap must equal the in-place path's bit for bit (f32 and FP8 storage, both cases). */
START_TEST(test_device_path_same_bits) {
    wr_backend *dev = NULL;
    ck_assert_int_eq(wr_backend_create(&dev, WR_BACKEND_CPU, 0), WR_OK);
    dev->host_visible = 0;
    const char *cases[2] = {"t5/tiny_a", "t5/tiny_b"};
    tap_rec want = {0}, got = {0};
    for (int k = 0; k < 4; k++) {
        char dir[4300], path[4300];
        snprintf(dir, sizeof dir, "%s/text_encoder", wr_test_data(cases[k / 2]));
        snprintf(path, sizeof path, "%s/io.safetensors", wr_test_data(cases[k / 2]));
        const wr_t5_load_opts lo = {.fp8_storage = k % 2};
        wr_t5 *a = NULL, *b = NULL;
        ck_assert_int_eq(wr_t5_load_ex(&a, g_be, dir, &lo), WR_OK);
        ck_assert_int_eq(wr_t5_load_ex(&b, dev, dir, &lo), WR_OK);
        wr_st_file *io = NULL;
        ck_assert_int_eq(wr_st_open(&io, path), WR_OK);
        const wr_st_tensor *ids = need(io, "input.ids", WR_DTYPE_I32);
        const wr_st_tensor *mask = need(io, "input.mask", WR_DTYPE_U8);
        forward_rec(a, &want, ids, mask);
        const int64_t ntaps = 3 + wr_t5_config_of(a)->num_layers; /* embed, blocks, norm, out */
        ck_assert_uint_eq(want.n, (size_t)(ntaps * ids->nelem * wr_t5_config_of(a)->d_model));
        /* no pool (the layers' device copy), a pool streaming every layer, and no pool again
         * (the copy made anew) */
        wr_vram *v = NULL;
        ck_assert_int_eq(wr_vram_create(&v, dev, 0), WR_OK);
        for (int pass = 0; pass < 3; pass++) {
            if (pass == 1) ck_assert_int_eq(wr_t5_set_vram(b, v, 0), WR_OK);
            if (pass == 2) ck_assert_int_eq(wr_t5_set_vram(b, NULL, 0), WR_OK);
            forward_rec(b, &got, ids, mask);
            ck_assert_uint_eq(got.n, want.n);
            ck_assert_msg(memcmp(got.buf, want.buf, want.n * sizeof(float)) == 0,
                          "%s%s pass %d: the device path differs", cases[k / 2],
                          k % 2 ? " fp8" : "", pass);
        }
        wr_vram_free_pool(v);
        wr_st_close(io);
        wr_t5_free(a);
        wr_t5_free(b);
    }
    free(want.buf);
    free(got.buf);
    wr_backend_free(dev);
}
END_TEST

/* The attention takes the real length, not a byte mask: padding must come at the end (the
 * tokenizer's layout), anything else is refused naming the position; so is a prompt without a
 * real token. */
START_TEST(test_mask_layout) {
    wr_t5 *m = NULL;
    ck_assert_int_eq(wr_t5_load(&m, g_be, wr_test_data("t5/tiny_a/text_encoder")), WR_OK);
    const int64_t D = wr_t5_config_of(m)->d_model;
    float *o = malloc(sizeof(float) * (size_t)(4 * D));
    wr_tensor t = wr_tensor_make(o, WR_DTYPE_F32, 2, (int64_t[]){4, D});
    const int32_t ids[4] = {5, 17, 42, 1};
    const uint8_t hole[4] = {1, 0, 1, 0}, none[4] = {0, 0, 0, 0}, ok[4] = {1, 1, 0, 0};
    ck_assert_int_eq(wr_t5_forward(m, &t, ids, hole, 4), WR_ERR_INVALID_ARG);
    ck_assert_msg(strstr(wr_error_detail(), "position 2") &&
                      strstr(wr_error_detail(), "position 1"),
                  "%s", wr_error_detail());
    ck_assert_int_eq(wr_t5_forward(m, &t, ids, none, 4), WR_ERR_INVALID_ARG);
    ck_assert_msg(strstr(wr_error_detail(), "position 0"), "%s", wr_error_detail());
    int64_t n = 0;
    ck_assert_int_eq(wr_t5_encode(m, &t, ids, ok, 4, &n), WR_OK);
    ck_assert_int_eq(n, 2);
    free(o);
    wr_t5_free(m);
}
END_TEST

/* ---- errors ---- */

/* Writes tiny_a's tensors to DIR/model.safetensors, dropping `drop`, renaming `from` to `to`,
 * with config.json copied (edited by `sed` when given). */
static void make_variant(const char *dir, const char *drop, const char *from, const char *to,
                         const char *sed) {
    char src[4300], cmd[9000];
    snprintf(src, sizeof src, "%s", wr_test_data("t5/tiny_a/text_encoder"));
    mkdir(dir, 0755);
    snprintf(cmd, sizeof cmd, "cp %s/config.json %s/", src, dir);
    ck_assert_int_eq(system(cmd), 0);
    if (sed) {
        snprintf(cmd, sizeof cmd, "sed -i '%s' %s/config.json", sed, dir);
        ck_assert_int_eq(system(cmd), 0);
    }
    wr_st_set *set = NULL;
    ck_assert_int_eq(wr_st_set_open(&set, src), WR_OK);
    wr_st_writer *w = NULL;
    wr_st_writer_init(&w);
    for (int64_t i = 0; i < wr_st_set_count(set); i++) {
        const wr_st_tensor *t = wr_st_set_at(set, i);
        if (drop && strcmp(t->name, drop) == 0) continue;
        const char *nm = from && strcmp(t->name, from) == 0 ? to : t->name;
        wr_st_writer_add(w, nm, t->dtype, t->ndim, t->shape, wr_st_tensor_data(t));
    }
    snprintf(cmd, sizeof cmd, "%s/model.safetensors", dir);
    ck_assert_int_eq(wr_st_writer_write(w, cmd), WR_OK);
    wr_st_writer_free(w);
    wr_st_set_close(set);
}

static void remove_variant(const char *dir) {
    char p[4400];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    rmdir(dir);
}

START_TEST(test_missing_tensor_and_alias) {
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/t5_broken", wr_test_tmpdir());
    make_variant(dir, "encoder.block.1.layer.1.DenseReluDense.wo.weight", NULL, NULL, NULL);
    wr_t5 *m = NULL;
    ck_assert_int_eq(wr_t5_load(&m, g_be, dir), WR_ERR_FORMAT);
    const char *d = wr_error_detail();
    ck_assert_msg(strstr(d, "encoder.block.1.layer.1.DenseReluDense.wo.weight missing") &&
                      strstr(d, "t5_broken"),
                  "%s", d);
    ck_assert_ptr_null(m);
    remove_variant(dir);

    /* the embedding under its tied alias loads and gives the same output */
    snprintf(dir, sizeof dir, "%s/t5_alias", wr_test_tmpdir());
    make_variant(dir, NULL, "shared.weight", "encoder.embed_tokens.weight", NULL);
    wr_t5 *a = NULL, *b = NULL;
    ck_assert_msg(wr_t5_load(&a, g_be, dir) == WR_OK, "%s", wr_error_detail());
    ck_assert_int_eq(wr_t5_load(&b, g_be, wr_test_data("t5/tiny_a/text_encoder")), WR_OK);
    const int32_t ids[5] = {5, 17, 42, 1, 0};
    const uint8_t mask[5] = {1, 1, 1, 1, 0};
    const int64_t D = wr_t5_config_of(a)->d_model;
    float *oa = malloc(sizeof(float) * (size_t)(5 * D)),
          *ob = malloc(sizeof(float) * (size_t)(5 * D));
    wr_tensor ta = wr_tensor_make(oa, WR_DTYPE_F32, 2, (int64_t[]){5, D});
    wr_tensor tb = wr_tensor_make(ob, WR_DTYPE_F32, 2, (int64_t[]){5, D});
    ck_assert_int_eq(wr_t5_encode(a, &ta, ids, mask, 5, NULL), WR_OK);
    ck_assert_int_eq(wr_t5_encode(b, &tb, ids, mask, 5, NULL), WR_OK);
    ck_assert(memcmp(oa, ob, sizeof(float) * (size_t)(5 * D)) == 0);

    /* an id outside the vocabulary names its position; nothing crashes */
    const int32_t bad[3] = {5, (int32_t)wr_t5_config_of(a)->vocab_size, 1};
    wr_tensor t3 = wr_tensor_make(oa, WR_DTYPE_F32, 2, (int64_t[]){3, D});
    ck_assert_int_eq(wr_t5_forward(a, &t3, bad, NULL, 3), WR_ERR_INVALID_ARG);
    ck_assert_msg(strstr(wr_error_detail(), "position 1"), "%s", wr_error_detail());
    free(oa);
    free(ob);
    wr_t5_free(a);
    wr_t5_free(b);
    remove_variant(dir);
}
END_TEST

START_TEST(test_unsupported_configs) {
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/t5_plain", wr_test_tmpdir());
    make_variant(dir, NULL, NULL, NULL, "s/\"umt5\"/\"t5\"/");
    wr_t5 *m = NULL;
    ck_assert_int_eq(wr_t5_load(&m, g_be, dir), WR_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(wr_error_detail(), "model_type") &&
                      strstr(wr_error_detail(), "config.json"),
                  "%s", wr_error_detail());
    remove_variant(dir);
    make_variant(dir, NULL, NULL, NULL, "s/\"gelu_new\"/\"relu\"/");
    ck_assert_int_eq(wr_t5_load(&m, g_be, dir), WR_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(wr_error_detail(), "dense_act_fn"), "%s", wr_error_detail());
    ck_assert_ptr_null(m);
    remove_variant(dir);
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
    Suite *s = suite_create("t5");
    TCase *tc = tcase_create("golden");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_inventory_umt5_xxl);
    tcase_add_test(tc, test_tiny_a);
    tcase_add_test(tc, test_tiny_b_bf16_inner_width);
    tcase_add_test(tc, test_end_to_end_prompts);
    tcase_add_test(tc, test_missing_tensor_and_alias);
    tcase_add_test(tc, test_unsupported_configs);
    tcase_add_test(tc, test_fp8_storage);
    tcase_add_test(tc, test_device_path_same_bits);
    tcase_add_test(tc, test_mask_layout);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * test_convert.c — wanrun convert (pipeline/convert.h) on tests/data/wan22-tiny (two experts,
 * the text encoder in bf16, the VAE): every tensor of the output against its source (bf16: the
 * source's F32 values through the conversion test_dtype checks against PyTorch's table, bit
 * for bit; fp8: the loader's own quantisation and scale, bit for bit, the scale beside it), the
 * other files copied byte for byte, sharding with an index that loads, and what must leave
 * nothing behind: an existing destination, a stop request, a corrupt source.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/safetensors.h"
#include "harness.h"
#include "models/loader.h"
#include "pipeline/convert.h"

static const char *const k_comps[] = {"transformer", "transformer_2", "text_encoder", "vae"};

static int fp8_rule(const char *comp, const wr_st_tensor *t) {
    if (t->ndim != 2 || t->dtype == WR_DTYPE_F8_E4M3) return 0;
    if (!strncmp(comp, "transformer", 11)) return !strncmp(t->name, "blocks.", 7);
    if (!strcmp(comp, "text_encoder"))
        return !strncmp(t->name, "encoder.block.", 14) && !strstr(t->name, "relative_attention");
    return 0;
}

/* Every source tensor has its counterpart in out/comp, converted as dtype says. */
static void check_component(const char *out, const char *comp, wr_dtype dtype, int64_t *conv) {
    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/%s", wr_test_data("wan22-tiny"), comp);
    snprintf(b, sizeof b, "%s/%s", out, comp);
    wr_st_set *src = NULL, *dst = NULL;
    ck_assert_int_eq(wr_st_set_open(&src, a), WR_OK);
    ck_assert_msg(wr_st_set_open(&dst, b) == WR_OK, "%s", wr_error_detail());
    int64_t scales = 0;
    for (int64_t i = 0; i < wr_st_set_count(src); i++) {
        const wr_st_tensor *s = wr_st_set_at(src, i), *d = wr_st_set_find(dst, s->name);
        ck_assert_msg(d != NULL, "%s: %s missing", comp, s->name);
        ck_assert_int_eq(d->ndim, s->ndim);
        for (int k = 0; k < s->ndim; k++) ck_assert_int_eq(d->shape[k], s->shape[k]);
        uint8_t *want = malloc(s->nelem * 4 + 8), *got = malloc(s->nelem * 4 + 8);
        wr_dtype wt = s->dtype;
        if (dtype == WR_DTYPE_BF16 && s->dtype == WR_DTYPE_F32) {
            wt = WR_DTYPE_BF16;
            float *f = malloc(sizeof(float) * (size_t)s->nelem);
            ck_assert_int_eq(wr_st_read(s, f, s->nbytes), WR_OK);
            for (int64_t k = 0; k < s->nelem; k++) ((uint16_t *)want)[k] = wr_f32_to_bf16(f[k]);
            free(f);
        } else if (dtype == WR_DTYPE_F8_E4M3 && fp8_rule(comp, s)) {
            wt = WR_DTYPE_F8_E4M3;
            float sc = 0.0f;
            ck_assert_int_eq(wr_load_fp8(s, want, &sc), WR_OK);
            char sn[200];
            wr_fp8_scale_name(sn, sizeof sn, s->name);
            const wr_st_tensor *st = wr_st_set_find(dst, sn);
            ck_assert_msg(st != NULL && st->dtype == WR_DTYPE_F32 && st->nelem == 1, "%s", sn);
            float got_sc = 0.0f;
            ck_assert_int_eq(wr_st_read(st, &got_sc, 4), WR_OK);
            ck_assert_msg(memcmp(&got_sc, &sc, 4) == 0, "%s: scale %g, want %g", sn, (double)got_sc,
                          (double)sc);
            scales++;
        } else {
            ck_assert_int_eq(wr_st_read(s, want, s->nbytes), WR_OK);
        }
        ck_assert_msg(d->dtype == wt, "%s: %s is %s, want %s", comp, s->name,
                      wr_dtype_name(d->dtype), wr_dtype_name(wt));
        ck_assert_int_eq(wr_st_read(d, got, d->nbytes), WR_OK);
        ck_assert_msg(memcmp(got, want, d->nbytes) == 0, "%s: %s differs", comp, s->name);
        if (wt != s->dtype) (*conv)++;
        free(want);
        free(got);
    }
    ck_assert_int_eq(wr_st_set_count(dst), wr_st_set_count(src) + scales);
    wr_st_set_close(src);
    wr_st_set_close(dst);
}

static int same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        const int ca = fgetc(fa), cb = fgetc(fb);
        same = ca == cb;
        if (ca == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

/* No entry of dir but `keep` (the temporaries are gone). */
static void only(const char *dir, const char *keep) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        ck_assert_msg(keep && !strcmp(e->d_name, keep), "%s/%s left behind", dir, e->d_name);
    }
    closedir(d);
}

START_TEST(test_bf16_and_fp8) {
    char work[4200], out[4400];
    wr_test_dir("convert", work, sizeof work);
    for (int k = 0; k < 2; k++) {
        const wr_dtype dt = k ? WR_DTYPE_F8_E4M3 : WR_DTYPE_BF16;
        snprintf(out, sizeof out, "%s/%s", work, k ? "fp8" : "bf16");
        wr_convert_opts o = {.dtype = dt};
        wr_convert_stats s;
        ck_assert_msg(wr_convert(wr_test_data("wan22-tiny"), out, &o, &s) == WR_OK, "%s",
                      wr_error_detail());
        int64_t conv = 0;
        for (size_t c = 0; c < sizeof k_comps / sizeof k_comps[0]; c++)
            check_component(out, k_comps[c], dt, &conv);
        ck_assert_int_eq(s.converted, conv);
        ck_assert_int_gt(conv, k ? 40 : 200); /* 2 x 20 DiT + 21 encoder / every f32 tensor */
        ck_assert_int_eq(s.shards, 4);
        ck_assert_uint_lt(s.bytes_out, s.bytes_in);
        /* the other files: byte for byte */
        const char *files[] = {"model_index.json",          "transformer/config.json",
                               "transformer_2/config.json", "scheduler/scheduler_config.json",
                               "tokenizer/spiece.model",    "tokenizer/tokenizer_config.json",
                               "vae/config.json",           "text_encoder/config.json"};
        for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
            char a[4500], b[4500];
            snprintf(a, sizeof a, "%s/%s", wr_test_data("wan22-tiny"), files[f]);
            snprintf(b, sizeof b, "%s/%s", out, files[f]);
            ck_assert_msg(same_file(a, b), "%s differs from %s", b, a);
        }
        fprintf(stderr, "%s: %lld tensors, %lld converted, %llu -> %llu bytes\n",
                k ? "fp8" : "bf16", (long long)s.tensors, (long long)s.converted,
                (unsigned long long)s.bytes_in, (unsigned long long)s.bytes_out);
    }
    /* an existing destination: refused, untouched */
    wr_convert_opts o = {.dtype = WR_DTYPE_BF16};
    snprintf(out, sizeof out, "%s/bf16", work);
    ck_assert_int_eq(wr_convert(wr_test_data("wan22-tiny"), out, &o, NULL), WR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "exists"));
    check_component(out, "vae", WR_DTYPE_BF16, &(int64_t){0});
    wr_test_rmtree(work);
}
END_TEST

START_TEST(test_shards) {
    char work[4200], out[4400], p[4500];
    wr_test_dir("convert_shards", work, sizeof work);
    snprintf(out, sizeof out, "%s/fp8", work);
    wr_convert_opts o = {.dtype = WR_DTYPE_F8_E4M3, .shard_bytes = 40000};
    wr_convert_stats s;
    ck_assert_msg(wr_convert(wr_test_data("wan22-tiny"), out, &o, &s) == WR_OK, "%s",
                  wr_error_detail());
    ck_assert_int_gt(s.shards, 8);
    snprintf(p, sizeof p, "%s/transformer/diffusion_pytorch_model.safetensors.index.json", out);
    ck_assert_int_eq(access(p, R_OK), 0);
    snprintf(p, sizeof p, "%s/text_encoder/model.safetensors.index.json", out);
    ck_assert_int_eq(access(p, R_OK), 0);
    int64_t conv = 0;
    for (size_t c = 0; c < sizeof k_comps / sizeof k_comps[0]; c++)
        check_component(out, k_comps[c], WR_DTYPE_F8_E4M3, &conv);
    ck_assert_int_eq(conv, s.converted);
    wr_test_rmtree(work);
}
END_TEST

START_TEST(test_nothing_left) {
    char work[4200], out[4400], bad[4400], p[4600];
    wr_test_dir("convert_fail", work, sizeof work);
    /* stopped: nothing at the destination, no temporary */
    static volatile int stop = 1;
    snprintf(out, sizeof out, "%s/out", work);
    wr_convert_opts o = {.dtype = WR_DTYPE_BF16, .stop = &stop};
    ck_assert_int_eq(wr_convert(wr_test_data("wan22-tiny"), out, &o, NULL), WR_ERR_INTERRUPTED);
    only(work, NULL);
    /* a corrupt source: transformer_2's weights cut to half, the error names the file */
    snprintf(bad, sizeof bad, "%s/src", work);
    ck_assert_int_eq(mkdir(bad, 0755), 0);
    const char *links[] = {"model_index.json", "transformer", "text_encoder", "vae",
                           "scheduler",        "tokenizer"};
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        char t[4500];
        snprintf(p, sizeof p, "%s/%s", bad, links[i]);
        snprintf(t, sizeof t, "%s/%s", wr_test_data("wan22-tiny"), links[i]);
        ck_assert_int_eq(symlink(t, p), 0);
    }
    snprintf(p, sizeof p, "%s/transformer_2", bad);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    char a[4600];
    snprintf(a, sizeof a, "%s/transformer_2/config.json", wr_test_data("wan22-tiny"));
    snprintf(p, sizeof p, "%s/transformer_2/config.json", bad);
    ck_assert_int_eq(symlink(a, p), 0);
    snprintf(a, sizeof a, "%s/transformer_2/diffusion_pytorch_model.safetensors",
             wr_test_data("wan22-tiny"));
    snprintf(p, sizeof p, "%s/transformer_2/diffusion_pytorch_model.safetensors", bad);
    FILE *in = fopen(a, "rb"), *o2 = fopen(p, "wb");
    ck_assert(in && o2);
    static char buf[1 << 20];
    const size_t n = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, n / 2, o2);
    fclose(in);
    fclose(o2);
    o.stop = NULL;
    const wr_status st = wr_convert(bad, out, &o, NULL);
    ck_assert_msg(st == WR_ERR_FORMAT, "%s: %s", wr_status_name(st), wr_error_detail());
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "transformer_2"));
    only(work, "src");
    wr_test_rmtree(work);
}
END_TEST

Suite *wr_test_suite(void) {
    Suite *s = suite_create("convert");
    TCase *tc = tcase_create("convert");
    tcase_add_test(tc, test_bf16_and_fp8);
    tcase_add_test(tc, test_shards);
    tcase_add_test(tc, test_nothing_left);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * test_image.c — the --image reader and resize (src/io/image.c) against Pillow
 * (tests/golden/golden_image.py, tests/data/image): every file decoded to the same RGB bytes as
 * Image.open(f).convert("RGB") (PNG: RGB, RGBA, gray, palette, interlaced, 16-bit; JPEG: 4:2:0,
 * 4:4:4, gray), and Image.resize(LANCZOS) to 7 sizes (up, down, one side, the same) bit for bit;
 * errors: a missing file, a file of another kind, a truncated PNG, a size out of bounds.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"
#include "harness.h"
#include "io/image.h"

static wr_st_file *g_gold;

static void same_pixels(const wr_image *im, const char *key) {
    const wr_st_tensor *t = wr_st_find(g_gold, key);
    ck_assert_msg(t != NULL, "golden %s missing", key);
    ck_assert_int_eq(t->shape[0], im->h);
    ck_assert_int_eq(t->shape[1], im->w);
    const uint8_t *want = wr_st_tensor_data(t);
    int64_t diff = 0, first = -1;
    for (int64_t i = 0; i < (int64_t)im->w * im->h * 3; i++)
        if (im->rgb[i] != want[i]) diff++, first = first < 0 ? i : first;
    if (getenv("WR_IMAGE_ALL")) {
        fprintf(stderr, "%s: %lld differ\n", key, (long long)diff);
        return;
    }
    ck_assert_msg(diff == 0, "%s: %lld of %d bytes differ (first at %lld: %d, want %d)", key,
                  (long long)diff, im->w * im->h * 3, (long long)first,
                  first >= 0 ? im->rgb[first] : 0, first >= 0 ? want[first] : 0);
}

START_TEST(test_against_pillow) {
    ck_assert_int_eq(wr_st_open(&g_gold, wr_test_data("image/golden.safetensors")), WR_OK);
    cJSON *files = cJSON_Parse(wr_st_metadata(g_gold, "files"));
    cJSON *sizes = cJSON_Parse(wr_st_metadata(g_gold, "sizes"));
    ck_assert(files && sizes && cJSON_GetArraySize(files) >= 9);
    int resized = 0;
    for (int i = 0; i < cJSON_GetArraySize(files); i++) {
        const char *name = cJSON_GetArrayItem(files, i)->valuestring;
        char rel[128], key[160];
        snprintf(rel, sizeof rel, "image/%s", name);
        wr_image im;
        ck_assert_msg(wr_image_load(&im, wr_test_data(rel)) == WR_OK, "%s: %s", name,
                      wr_error_detail());
        snprintf(key, sizeof key, "decode.%s", name);
        same_pixels(&im, key);
        for (int s = 0; s < cJSON_GetArraySize(sizes); s++) {
            const cJSON *wh = cJSON_GetArrayItem(sizes, s);
            const int w = cJSON_GetArrayItem(wh, 0)->valueint,
                      h = cJSON_GetArrayItem(wh, 1)->valueint;
            snprintf(key, sizeof key, "resize.%s.%dx%d", name, w, h);
            if (wr_st_find(g_gold, key) == NULL) continue;
            wr_image r;
            ck_assert_int_eq(wr_image_resize(&r, &im, w, h), WR_OK);
            same_pixels(&r, key);
            wr_image_free(&r);
            resized++;
        }
        wr_image_free(&im);
    }
    ck_assert_int_eq(resized, 30);
    cJSON_Delete(files);
    cJSON_Delete(sizes);
    wr_st_close(g_gold);
}
END_TEST

START_TEST(test_errors) {
    wr_image im;
    ck_assert_int_eq(wr_image_load(&im, "/nonexistent/x.png"), WR_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "/nonexistent/x.png"));
    ck_assert_int_eq(wr_image_load(&im, wr_test_data("image/golden.safetensors")), WR_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "neither a PNG nor a JPEG"));
    /* a PNG and a JPEG cut in half */
    const char *names[2] = {"rgb.png", "q90.jpg"};
    for (int k = 0; k < 2; k++) {
        char rel[64], path[4300];
        snprintf(rel, sizeof rel, "image/%s", names[k]);
        FILE *in = fopen(wr_test_data(rel), "rb");
        static unsigned char buf[1 << 16];
        const size_t n = fread(buf, 1, sizeof buf, in);
        fclose(in);
        snprintf(path, sizeof path, "%s/cut.%s", wr_test_tmpdir(), names[k] + 4);
        FILE *o = fopen(path, "wb");
        fwrite(buf, 1, n / 2, o);
        fclose(o);
        const wr_status st = wr_image_load(&im, path);
        if (k == 0) { /* libpng stops; libjpeg pads a short JPEG (as PIL, with LOAD_TRUNCATED) */
            ck_assert_int_eq(st, WR_ERR_FORMAT);
            ck_assert_ptr_nonnull(strstr(wr_error_detail(), "cut.png"));
        } else if (st == WR_OK) {
            wr_image_free(&im);
        }
        remove(path);
    }
    wr_image src = {0};
    ck_assert_int_eq(wr_image_load(&src, wr_test_data("image/rgb.png")), WR_OK);
    ck_assert_int_eq(wr_image_resize(&im, &src, 0, 16), WR_ERR_INVALID_ARG);
    ck_assert_int_eq(wr_image_resize(&im, &src, WR_IMAGE_MAX_SIDE + 1, 16), WR_ERR_INVALID_ARG);
    wr_image_free(&src);
}
END_TEST

Suite *wr_test_suite(void) {
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("image");
    tcase_add_test(tc, test_against_pillow);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}

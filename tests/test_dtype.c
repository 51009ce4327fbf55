/*
 * test_dtype.c — dtype conversions against PyTorch, exhaustively.
 *
 * tests/data/dtype/dtype_tables.safetensors was produced by `tests/golden/gen_golden.py dtype`
 * (torch's own casts of contiguous CPU tensors). Every comparison is on bit patterns: all
 * 65,536 bf16 and f16 patterns and all 256 patterns of each fp8 type to f32 and back, and
 * ~14k f32 edge inputs (every narrow value, every rounding midpoint +-1 ulp, the saturation
 * boundaries, subnormals, +-0, inf, NaN, random patterns) to each narrow type.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/safetensors.h"
#include "harness.h"

static wr_st_file *g_tables;

/* A table of bit patterns: I32 (f32 results), I16 (f16/bf16) or U8 (fp8), zero-extended. */
typedef struct dtable {
    const void *p;
    wr_dtype dtype;
} dtable;

static uint32_t at(dtable t, int64_t i) {
    switch (t.dtype) {
    case WR_DTYPE_I32:
        return ((const uint32_t *)t.p)[i];
    case WR_DTYPE_I16:
        return ((const uint16_t *)t.p)[i];
    default:
        return ((const uint8_t *)t.p)[i];
    }
}

static dtable table(const char *name, int64_t *n) {
    const wr_st_tensor *t = wr_st_find(g_tables, name);
    ck_assert_msg(t != NULL, "table %s missing from dtype_tables.safetensors", name);
    ck_assert(t->dtype == WR_DTYPE_I32 || t->dtype == WR_DTYPE_I16 || t->dtype == WR_DTYPE_U8);
    *n = t->nelem;
    return (dtable){wr_st_tensor_data(t), t->dtype};
}

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Reports the first few mismatches and the count. */
#define EXPECT_TABLE(label, count, expected_expr, got_expr)                                        \
    do {                                                                                           \
        int64_t bad_ = 0;                                                                          \
        for (int64_t i = 0; i < (count); i++) {                                                    \
            uint32_t e_ = (uint32_t)(expected_expr), g_ = (uint32_t)(got_expr);                    \
            if (e_ != g_ && bad_++ < 5)                                                            \
                fprintf(stderr, "%s[%lld]: expected 0x%08x got 0x%08x\n", label, (long long)i, e_, \
                        g_);                                                                       \
        }                                                                                          \
        ck_assert_msg(bad_ == 0, "%s: %lld of %lld patterns differ from PyTorch", label,           \
                      (long long)bad_, (long long)(count));                                        \
    } while (0)

START_TEST(test_to_f32_all_patterns) {
    int64_t n;
    dtable t = table("bf16_to_f32", &n);
    ck_assert_int_eq(n, 65536);
    EXPECT_TABLE("bf16_to_f32", n, at(t, i), bits(wr_bf16_to_f32((uint16_t)i)));
    t = table("f16_to_f32", &n);
    ck_assert_int_eq(n, 65536);
    EXPECT_TABLE("f16_to_f32", n, at(t, i), bits(wr_f16_to_f32((uint16_t)i)));
    t = table("e4m3_to_f32", &n);
    ck_assert_int_eq(n, 256);
    EXPECT_TABLE("e4m3_to_f32", n, at(t, i), bits(wr_e4m3_to_f32((uint8_t)i)));
    t = table("e5m2_to_f32", &n);
    ck_assert_int_eq(n, 256);
    EXPECT_TABLE("e5m2_to_f32", n, at(t, i), bits(wr_e5m2_to_f32((uint8_t)i)));
}
END_TEST

START_TEST(test_roundtrip_all_patterns) {
    int64_t n;
    dtable t = table("bf16_roundtrip", &n);
    EXPECT_TABLE("bf16_roundtrip", n, at(t, i), wr_f32_to_bf16(wr_bf16_to_f32((uint16_t)i)));
    t = table("f16_roundtrip", &n);
    EXPECT_TABLE("f16_roundtrip", n, at(t, i), wr_f32_to_f16(wr_f16_to_f32((uint16_t)i)));
    t = table("e4m3_roundtrip", &n);
    EXPECT_TABLE("e4m3_roundtrip", n, at(t, i), wr_f32_to_e4m3(wr_e4m3_to_f32((uint8_t)i)));
    t = table("e5m2_roundtrip", &n);
    EXPECT_TABLE("e5m2_roundtrip", n, at(t, i), wr_f32_to_e5m2(wr_e5m2_to_f32((uint8_t)i)));
}
END_TEST

START_TEST(test_f32_edges) {
    int64_t n, m;
    dtable x = table("edge_f32", &n);
    ck_assert_int_gt(n, 10000);
    dtable t = table("edge_to_bf16", &m);
    ck_assert_int_eq(m, n);
    EXPECT_TABLE("edge_to_bf16", n, at(t, i), wr_f32_to_bf16(from_bits(at(x, i))));
    t = table("edge_to_f16", &m);
    EXPECT_TABLE("edge_to_f16", n, at(t, i), wr_f32_to_f16(from_bits(at(x, i))));
    t = table("edge_to_e4m3", &m);
    EXPECT_TABLE("edge_to_e4m3", n, at(t, i), wr_f32_to_e4m3(from_bits(at(x, i))));
    t = table("edge_to_e5m2", &m);
    EXPECT_TABLE("edge_to_e5m2", n, at(t, i), wr_f32_to_e5m2(from_bits(at(x, i))));
}
END_TEST

/* The bulk converter must agree with the scalar functions for every pair and pattern. */
START_TEST(test_bulk_matches_scalar) {
    int64_t n;
    dtable x = table("edge_f32", &n);
    float *src = malloc((size_t)n * 4), *back = malloc((size_t)n * 4);
    uint8_t *narrow = malloc((size_t)n * 2);
    for (int64_t i = 0; i < n; i++) src[i] = from_bits(at(x, i));
    const wr_dtype kinds[] = {WR_DTYPE_BF16, WR_DTYPE_F16, WR_DTYPE_F8_E4M3, WR_DTYPE_F8_E5M2};
    for (int k = 0; k < 4; k++) {
        wr_dtype d = kinds[k];
        ck_assert_int_eq(wr_dtype_convert(narrow, d, src, WR_DTYPE_F32, n), WR_OK);
        ck_assert_int_eq(wr_dtype_convert(back, WR_DTYPE_F32, narrow, d, n), WR_OK);
        for (int64_t i = 0; i < n; i++) {
            uint32_t want_n, got_n;
            float want_b;
            switch (d) {
            case WR_DTYPE_BF16:
                want_n = wr_f32_to_bf16(src[i]);
                got_n = ((uint16_t *)narrow)[i];
                want_b = wr_bf16_to_f32((uint16_t)want_n);
                break;
            case WR_DTYPE_F16:
                want_n = wr_f32_to_f16(src[i]);
                got_n = ((uint16_t *)narrow)[i];
                want_b = wr_f16_to_f32((uint16_t)want_n);
                break;
            case WR_DTYPE_F8_E4M3:
                want_n = wr_f32_to_e4m3(src[i]);
                got_n = narrow[i];
                want_b = wr_e4m3_to_f32((uint8_t)want_n);
                break;
            default:
                want_n = wr_f32_to_e5m2(src[i]);
                got_n = narrow[i];
                want_b = wr_e5m2_to_f32((uint8_t)want_n);
                break;
            }
            ck_assert_msg(want_n == got_n && bits(want_b) == bits(back[i]),
                          "%s element %lld differs between bulk and scalar", wr_dtype_name(d),
                          (long long)i);
        }
    }
    /* Integer pairs are refused with a status, never a silent cast. */
    ck_assert_int_eq(wr_dtype_convert(back, WR_DTYPE_F32, narrow, WR_DTYPE_I32, 1),
                     WR_ERR_UNSUPPORTED);
    /* f64 <-> f32 */
    double d64[3] = {1.5, -2.25, 1e300};
    float f3[3];
    ck_assert_int_eq(wr_dtype_convert(f3, WR_DTYPE_F32, d64, WR_DTYPE_F64, 3), WR_OK);
    ck_assert(f3[0] == 1.5f && f3[1] == -2.25f && bits(f3[2]) == 0x7F800000u);
    free(src);
    free(back);
    free(narrow);
}
END_TEST

START_TEST(test_names_and_sizes) {
    for (int d = 0; d < WR_DTYPE_COUNT; d++) {
        wr_dtype back;
        ck_assert_int_eq(wr_dtype_parse(wr_dtype_name((wr_dtype)d), &back), 0);
        ck_assert_int_eq(back, d);
        ck_assert_uint_gt(wr_dtype_size((wr_dtype)d), 0);
    }
    wr_dtype tmp;
    ck_assert_int_eq(wr_dtype_parse("F33", &tmp), -1);
    ck_assert_int_eq(wr_dtype_parse("f32", &tmp), -1); /* safetensors spelling is upper case */
    ck_assert_uint_eq(wr_dtype_size(WR_DTYPE_BF16), 2);
    ck_assert_uint_eq(wr_dtype_size(WR_DTYPE_F8_E4M3), 1);
    ck_assert_uint_eq(wr_dtype_size(WR_DTYPE_I64), 8);
}
END_TEST

static void setup(void) {
    wr_status s = wr_st_open(&g_tables, wr_test_data("dtype/dtype_tables.safetensors"));
    ck_assert_msg(s == WR_OK, "cannot open the dtype tables: %s", wr_error_detail());
}

static void teardown(void) {
    wr_st_close(g_tables);
    g_tables = NULL;
}

Suite *wr_test_suite(void) {
    Suite *s = suite_create("dtype");
    TCase *tc = tcase_create("pytorch_tables");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_to_f32_all_patterns);
    tcase_add_test(tc, test_roundtrip_all_patterns);
    tcase_add_test(tc, test_f32_edges);
    tcase_add_test(tc, test_bulk_matches_scalar);
    tcase_add_test(tc, test_names_and_sizes);
    suite_add_tcase(s, tc);
    return s;
}

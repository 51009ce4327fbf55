/* test_tensor.c — buffers and outer-dimension views. */
#include <stdint.h>
#include <string.h>

#include "core/tensor.h"
#include "harness.h"

START_TEST(test_buffer) {
    wr_buffer b;
    ck_assert_int_eq(wr_buffer_calloc(&b, 1000), WR_OK);
    ck_assert_ptr_nonnull(b.data);
    ck_assert_uint_eq((uintptr_t)b.data % 64, 0);
    ck_assert_uint_eq(b.nbytes, 1000);
    for (int i = 0; i < 1000; i++) ck_assert_int_eq(((uint8_t *)b.data)[i], 0);
    wr_buffer_free(&b);
    ck_assert_ptr_null(b.data);
    wr_buffer_free(&b);   /* twice is fine */
    wr_buffer_free(NULL); /* NULL-safe */
    ck_assert_int_eq(wr_buffer_alloc(&b, 0), WR_OK);
    ck_assert_ptr_null(b.data);
    ck_assert_int_eq(wr_buffer_alloc(&b, SIZE_MAX - 8), WR_ERR_OOM_HOST);
}
END_TEST

START_TEST(test_views) {
    float data[2 * 3 * 4];
    for (int i = 0; i < 24; i++) data[i] = (float)i;
    const int64_t shape[3] = {2, 3, 4};
    wr_tensor t = wr_tensor_make(data, WR_DTYPE_F32, 3, shape);
    ck_assert_int_eq(wr_tensor_nelem(&t), 24);
    ck_assert_uint_eq(wr_tensor_nbytes(&t), 96);
    char s[64];
    ck_assert_str_eq(wr_shape_str(s, sizeof s, t.ndim, t.shape), "[2, 3, 4]");

    wr_tensor v;
    ck_assert_int_eq(wr_tensor_slice0(&v, &t, 1, 1), WR_OK);
    ck_assert_int_eq(v.shape[0], 1);
    ck_assert(((float *)v.data)[0] == 12.0f);
    ck_assert_int_eq(wr_tensor_slice0(&v, &t, 2, 0), WR_OK); /* empty at the end is fine */
    ck_assert_int_eq(wr_tensor_slice0(&v, &t, 1, 2), WR_ERR_INVALID_ARG);
    ck_assert_int_eq(wr_tensor_slice0(&v, &t, -1, 1), WR_ERR_INVALID_ARG);

    const int64_t idx[2] = {1, 2};
    ck_assert_int_eq(wr_tensor_select(&v, &t, 2, idx), WR_OK);
    ck_assert_int_eq(v.ndim, 1);
    ck_assert_int_eq(v.shape[0], 4);
    ck_assert(((float *)v.data)[0] == 20.0f);
    const int64_t bad[1] = {2};
    ck_assert_int_eq(wr_tensor_select(&v, &t, 1, bad), WR_ERR_INVALID_ARG);

    const int64_t rs[2] = {6, -1};
    ck_assert_int_eq(wr_tensor_reshape(&v, &t, 2, rs), WR_OK);
    ck_assert_int_eq(v.shape[1], 4);
    const int64_t rs_bad[2] = {5, -1};
    ck_assert_int_eq(wr_tensor_reshape(&v, &t, 2, rs_bad), WR_ERR_INVALID_ARG);
    const int64_t rs_bad2[2] = {5, 5};
    ck_assert_int_eq(wr_tensor_reshape(&v, &t, 2, rs_bad2), WR_ERR_INVALID_ARG);

    wr_tensor u = wr_tensor_make(data, WR_DTYPE_F32, 3, shape);
    ck_assert(wr_tensor_same_shape(&t, &u));
    u.shape[2] = 5;
    ck_assert(!wr_tensor_same_shape(&t, &u));
    wr_tensor sc = wr_tensor_make(data, WR_DTYPE_F32, 0, NULL); /* a scalar */
    ck_assert_int_eq(wr_tensor_nelem(&sc), 1);
    ck_assert_str_eq(wr_shape_str(s, sizeof s, 0, NULL), "[]");
}
END_TEST

Suite *wr_test_suite(void) {
    Suite *s = suite_create("tensor");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_buffer);
    tcase_add_test(tc, test_views);
    suite_add_tcase(s, tc);
    return s;
}

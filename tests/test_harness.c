/*
 * test_harness.c — the multi-rank harness itself (run under -n 1, 2, 4): collective checks
 * agree on every rank, and a condition false on one rank fails on all, so no rank is left in a
 * collective.
 */
#include <mpi.h>

#include "harness.h"

START_TEST(test_collective_true) {
    WR_CK_ALL(1);
    ck_assert_int_eq(wr_ck_all(wr_test_rank() >= 0), 1);
}
END_TEST

START_TEST(test_collective_false_on_one_rank) {
    /* false on the last rank only: every rank must see 0 */
    int v = wr_ck_all(wr_test_rank() != wr_test_size() - 1);
    ck_assert_int_eq(v, 0);
    int all = 0;
    MPI_Allreduce(&v, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    ck_assert_int_eq(all, 0);
}
END_TEST

START_TEST(test_data_paths) {
    WR_CK_ALL(wr_test_data("dtype/dtype_tables.safetensors")[0] == '/');
    WR_CK_ALL(wr_test_tmpdir()[0] != '\0');
}
END_TEST

Suite *wr_test_suite(void) {
    Suite *s = suite_create("harness");
    TCase *tc = tcase_create("mpi");
    tcase_add_test(tc, test_collective_true);
    tcase_add_test(tc, test_collective_false_on_one_rank);
    tcase_add_test(tc, test_data_paths);
    suite_add_tcase(s, tc);
    return s;
}

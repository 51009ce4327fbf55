/* test_status.c — status names, error details, WR_TRY propagation, log level parsing. */
#include <string.h>

#include "core/log.h"
#include "core/status.h"
#include "harness.h"

static wr_status inner(int fail) {
    if (fail) return WR_FAIL(WR_ERR_FORMAT, "inner failed on %s", "x.safetensors");
    return WR_OK;
}

static int g_after_try;

static wr_status outer(int fail) {
    g_after_try = 0;
    WR_TRY(inner(fail));
    g_after_try = 1;
    return WR_OK;
}

static wr_status outer_goto(int fail, int *cleaned) {
    wr_status st;
    WR_TRY_GOTO(st, inner(fail), fail_label);
    *cleaned = 0;
    return WR_OK;
fail_label:
    *cleaned = 1;
    return st;
}

START_TEST(test_names) {
    ck_assert_str_eq(wr_status_name(WR_OK), "OK");
    ck_assert_str_eq(wr_status_name(WR_ERR_FORMAT), "ERR_FORMAT");
    ck_assert_str_eq(wr_status_name(WR_ERR_OOM_DEVICE), "ERR_OOM_DEVICE");
    ck_assert_str_eq(wr_status_name((wr_status)999), "UNKNOWN");
    for (int s = 0; s < WR_STATUS_COUNT; s++)
        ck_assert_str_ne(wr_status_name((wr_status)s), "UNKNOWN");
}
END_TEST

START_TEST(test_detail_and_try) {
    wr_error_clear();
    ck_assert_int_eq(outer(0), WR_OK);
    ck_assert_int_eq(g_after_try, 1);
    ck_assert_int_eq(outer(1), WR_ERR_FORMAT);
    ck_assert_int_eq(g_after_try, 0);
    ck_assert_str_eq(wr_error_detail(), "inner failed on x.safetensors");
    ck_assert_ptr_nonnull(strstr(wr_error_where(), "test_status.c:"));
    int cleaned = -1;
    ck_assert_int_eq(outer_goto(1, &cleaned), WR_ERR_FORMAT);
    ck_assert_int_eq(cleaned, 1);
    ck_assert_int_eq(outer_goto(0, &cleaned), WR_OK);
    ck_assert_int_eq(cleaned, 0);
    wr_error_prefix("loading %s", "transformer");
    ck_assert_str_eq(wr_error_detail(), "loading transformer: inner failed on x.safetensors");
    ck_assert_int_eq(wr_fail(WR_OK, "ignored"), WR_OK);
    ck_assert_str_eq(wr_error_detail(), "");
    /* long details are truncated, never overflow */
    char big[3000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    wr_fail(WR_ERR_IO, "%s", big);
    ck_assert_uint_eq(strlen(wr_error_detail()), 1023);
    /* issue 14: a detail formatted from the current detail keeps it (was formatted into
     * itself, losing the inner part, e.g. the --config key's name) */
    wr_fail(WR_ERR_INVALID_ARG, "--steps must be a whole number, got 'x'");
    ck_assert_int_eq(WR_FAIL(WR_ERR_INVALID_ARG, "--config %s: %s", "c.json", wr_error_detail()),
                     WR_ERR_INVALID_ARG);
    ck_assert_str_eq(wr_error_detail(), "--config c.json: --steps must be a whole number, got 'x'");
    wr_fail(WR_ERR_IO, "%s and again %s", wr_error_detail(), wr_error_detail());
    ck_assert_str_eq(wr_error_detail(), "--config c.json: --steps must be a whole number, got 'x' "
                                        "and again --config c.json: --steps must be a whole "
                                        "number, got 'x'");
}
END_TEST

START_TEST(test_log_levels) {
    ck_assert_int_eq(wr_log_level_parse("error"), WR_LOG_ERROR);
    ck_assert_int_eq(wr_log_level_parse("DEBUG"), WR_LOG_DEBUG);
    ck_assert_int_eq(wr_log_level_parse("4"), WR_LOG_TRACE);
    ck_assert_int_eq(wr_log_level_parse("5"), -1);
    ck_assert_int_eq(wr_log_level_parse("loud"), -1);
    ck_assert_int_eq(wr_log_level_parse(""), -1);
    wr_log_level old = wr_log_get_level();
    wr_log_set_level(WR_LOG_WARN);
    ck_assert_int_eq(wr_log_get_level(), WR_LOG_WARN);
    wr_log_set_level(old);
}
END_TEST

Suite *wr_test_suite(void) {
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_detail_and_try);
    tcase_add_test(tc, test_log_levels);
    suite_add_tcase(s, tc);
    return s;
}

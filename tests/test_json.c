/* test_json.c — the typed config reader: values, defaults, and errors naming file and field. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "harness.h"

typedef struct cfg {
    int64_t layers;
    double eps;
    int flag;
    char name[WR_JSON_STR_CAP];
    wr_json_int_array dims;
    wr_json_double_array mean;
    wr_json_int_array down;
    int has_eps;
} cfg;

static const wr_json_field fields[] = {
    {"layers", WR_JSON_INT, offsetof(cfg, layers), 1, 0},
    {"eps", WR_JSON_DOUBLE, offsetof(cfg, eps), 0, offsetof(cfg, has_eps) + 1},
    {"flag", WR_JSON_BOOL, offsetof(cfg, flag), 0, 0},
    {"name", WR_JSON_STRING, offsetof(cfg, name), 0, 0},
    {"dims", WR_JSON_INT_ARRAY, offsetof(cfg, dims), 0, 0},
    {"mean", WR_JSON_DOUBLE_ARRAY, offsetof(cfg, mean), 0, 0},
    {"down", WR_JSON_BOOL_ARRAY, offsetof(cfg, down), 0, 0},
};
#define NF ((int)(sizeof fields / sizeof fields[0]))

static wr_status read_text(cfg *c, const char *text) {
    wr_json_doc d;
    WR_TRY(wr_json_parse(&d, text, strlen(text), "cfg.json"));
    wr_status s = wr_json_read_fields(c, &d, d.root, fields, NF);
    wr_json_free(&d);
    return s;
}

START_TEST(test_values) {
    cfg c;
    memset(&c, 0, sizeof c);
    c.eps = 7.0; /* default kept when absent */
    ck_assert_int_eq(read_text(&c, "{\"layers\": 30, \"flag\": true, \"name\": \"umt5\", "
                                   "\"dims\": [1,2,4,4], \"mean\": [-0.5, 1], \"down\": "
                                   "[false,true], \"unknown\": {\"x\": 1}}"),
                     WR_OK);
    ck_assert_int_eq(c.layers, 30);
    ck_assert(c.eps == 7.0);
    ck_assert_int_eq(c.has_eps, 0);
    ck_assert_int_eq(c.flag, 1);
    ck_assert_str_eq(c.name, "umt5");
    ck_assert_int_eq(c.dims.n, 4);
    ck_assert_int_eq(c.dims.v[2], 4);
    ck_assert_int_eq(c.mean.n, 2);
    ck_assert(c.mean.v[0] == -0.5);
    ck_assert_int_eq(c.down.n, 2);
    ck_assert_int_eq(c.down.v[1], 1);
    ck_assert_int_eq(read_text(&c, "{\"layers\": 2, \"eps\": 1e-06, \"name\": null}"), WR_OK);
    ck_assert(c.eps == 1e-6);
    ck_assert_int_eq(c.has_eps, 1);
    ck_assert_str_eq(c.name, "umt5"); /* null keeps the default */
}
END_TEST

static void expect_error(const char *text, wr_status code, const char *needle) {
    cfg c;
    memset(&c, 0, sizeof c);
    wr_status s = read_text(&c, text);
    ck_assert_msg(s == code, "%s: got %s (%s)", text, wr_status_name(s), wr_error_detail());
    ck_assert_msg(strstr(wr_error_detail(), needle) != NULL, "detail '%s' lacks '%s'",
                  wr_error_detail(), needle);
    ck_assert_msg(strstr(wr_error_detail(), "cfg.json") != NULL, "detail '%s' lacks the file",
                  wr_error_detail());
}

START_TEST(test_errors) {
    expect_error("{\"eps\": 1}", WR_ERR_NOT_FOUND, "missing required field 'layers'");
    expect_error("{\"layers\": \"30\"}", WR_ERR_FORMAT,
                 "field 'layers' must be an integer, got a "
                 "string");
    expect_error("{\"layers\": 1.5}", WR_ERR_FORMAT, "field 'layers' must be an integer");
    expect_error("{\"layers\": 1, \"flag\": 1}", WR_ERR_FORMAT, "field 'flag' must be a boolean");
    expect_error("{\"layers\": 1, \"dims\": [1, \"a\"]}", WR_ERR_FORMAT, "field 'dims'[1]");
    expect_error("{\"layers\": 1, \"dims\": 3}", WR_ERR_FORMAT, "field 'dims' must be an array");
    expect_error("{\"layers\": 1,}", WR_ERR_FORMAT, "invalid JSON");
    expect_error("[1, 2]", WR_ERR_FORMAT, "not a JSON object");
    char longname[200];
    snprintf(longname, sizeof longname, "{\"layers\": 1, \"name\": \"%0100d\"}", 0);
    expect_error(longname, WR_ERR_FORMAT, "field 'name' is longer");
}
END_TEST

START_TEST(test_files) {
    wr_json_doc d;
    char path[4200];
    snprintf(path, sizeof path, "%s/none.json", wr_test_tmpdir());
    ck_assert_int_eq(wr_json_load(&d, path), WR_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "none.json"));
    snprintf(path, sizeof path, "%s/c.json", wr_test_tmpdir());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\n  \"layers\": 3,\n  \"eps\": oops\n}\n", f);
    fclose(f);
    ck_assert_int_eq(wr_json_load(&d, path), WR_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "line 3"));
    f = fopen(path, "w");
    fputs("{\"layers\": 3}", f);
    fclose(f);
    ck_assert_int_eq(wr_json_load(&d, path), WR_OK);
    cfg c;
    memset(&c, 0, sizeof c);
    ck_assert_int_eq(wr_json_read_fields(&c, &d, d.root, fields, NF), WR_OK);
    ck_assert_int_eq(c.layers, 3);
    wr_json_free(&d);
    wr_json_free(&d);
    remove(path);
}
END_TEST

Suite *wr_test_suite(void) {
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_files);
    suite_add_tcase(s, tc);
    return s;
}

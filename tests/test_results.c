/*
 * test_results.c — the batch mode's results.jsonl (pipeline/results.h): records round-trip
 * (the hash as 16 hex digits, peaks as exact integers), a torn last line is skipped and the
 * next append starts a line of its own, damaged middle lines are counted and skipped, a
 * missing file is empty, the last record of a name wins, and two processes appending 200
 * records each at once leave 400 whole lines.
 *
 * CK_FORK is off (MPI does not survive Check's fork); the concurrent test forks children that
 * only append and _exit, the parent waits for them.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/status.h"
#include "harness.h"
#include "pipeline/results.h"
#include "wr_build_config.h"

static wr_job_record rec(const char *name, const char *status, uint64_t hash) {
    wr_job_record r;
    memset(&r, 0, sizeof r);
    r.name = name;
    r.status = status;
    r.hash = hash;
    r.replica = -1;
    r.sec_encode = r.sec_denoise = r.sec_decode = r.sec_write = -1;
    return r;
}

static void append_raw(const char *path, const char *text) {
    FILE *f = fopen(path, "a");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

/* The file's text (malloc'd, NUL-terminated). */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    for (;;) {
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        const size_t got = fread(buf + n, 1, cap - n - 1, f);
        if (got == 0) break;
        n += got;
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The k-th line (0-based) of text parsed as JSON (caller deletes), or NULL when it is not. */
static cJSON *line_json(const char *text, int k) {
    const char *s = text;
    for (int i = 0; i < k; i++) {
        s = strchr(s, '\n');
        if (s == NULL) return NULL;
        s++;
    }
    const char *e = strchr(s, '\n');
    if (e == NULL) return NULL;
    return cJSON_ParseWithLength(s, (size_t)(e - s));
}

static int count_lines(const char *text) {
    int n = 0;
    for (const char *p = text; *p; p++) n += *p == '\n';
    return n;
}

START_TEST(test_hash_hex) {
    char buf[17];
    ck_assert_str_eq(wr_results_hash_format(buf, 0x0123456789abcdefULL), "0123456789abcdef");
    ck_assert_str_eq(wr_results_hash_format(buf, 0), "0000000000000000");
    ck_assert_str_eq(wr_results_hash_format(buf, UINT64_MAX), "ffffffffffffffff");
    uint64_t h = 7;
    ck_assert_int_eq(wr_results_hash_parse(&h, "0123456789ABCDEF"), 1);
    ck_assert(h == 0x0123456789abcdefULL);
    h = 7;
    ck_assert_int_eq(wr_results_hash_parse(&h, "0123456789abcde"), 0);   /* 15 digits */
    ck_assert_int_eq(wr_results_hash_parse(&h, "0123456789abcdef0"), 0); /* 17 digits */
    ck_assert_int_eq(wr_results_hash_parse(&h, "0123456789abcdeg"), 0);
    ck_assert_int_eq(wr_results_hash_parse(&h, "0x23456789abcdef"), 0);
    ck_assert(h == 7);
}
END_TEST

START_TEST(test_roundtrip) {
    char dir[4200], path[4300];
    wr_test_dir("roundtrip", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/results.jsonl", dir);
    const mode_t old = umask(022);

    const uint64_t pd[2] = {(1ULL << 60) + 1, 123456789}; /* past 2^53: exact only as text */
    const uint64_t ph[2] = {42, 0};
    wr_job_record a = rec("fox-in-snow", "ok", 0xfedcba9876543210ULL);
    a.line = 3;
    a.replica = 1;
    a.output = "out/fox-in-snow.mp4";
    a.sec_encode = 1.5;
    a.sec_denoise = 120.25;
    a.sec_decode = 7;
    a.sec_write = 0;
    a.nranks = 2;
    a.peak_device = pd;
    a.peak_host = ph;
    ck_assert_int_eq(wr_results_append(path, &a), WR_OK);

    wr_job_record b = rec("broken \"quoted\"\nname", "failed", 1);
    b.error = "ERR_IO: model.safetensors: short read\nsecond line";
    b.line = 4;
    b.sec_encode = 0.5; /* the others not reached */
    ck_assert_int_eq(wr_results_append(path, &b), WR_OK);

    wr_job_record c = rec("caf\xc3\xa9", "interrupted", 0);
    c.output = "bad-utf8-\xff.mp4"; /* replaced by U+FFFD */
    ck_assert_int_eq(wr_results_append(path, &c), WR_OK);

    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0644);
    umask(old);

    wr_results r;
    ck_assert_int_eq(wr_results_load(path, &r), WR_OK);
    ck_assert_int_eq(r.n, 3);
    ck_assert_int_eq(r.torn, 0);
    ck_assert_str_eq(r.e[0].name, "fox-in-snow");
    ck_assert_str_eq(r.e[0].status, "ok");
    ck_assert(r.e[0].hash == 0xfedcba9876543210ULL);
    ck_assert_int_eq(r.e[0].line, 3);
    ck_assert_str_eq(r.e[1].name, "broken \"quoted\"\nname");
    ck_assert_str_eq(r.e[1].status, "failed");
    ck_assert(r.e[1].hash == 1);
    ck_assert_int_eq(r.e[1].line, 4);
    ck_assert_str_eq(r.e[2].name, "caf\xc3\xa9");
    ck_assert_str_eq(r.e[2].status, "interrupted");
    ck_assert(r.e[2].hash == 0);
    ck_assert_int_eq(r.e[2].line, 0);
    wr_results_free(&r);
    wr_results_free(&r); /* twice: harmless */
    wr_results_free(NULL);

    /* the keys on disk: one object per line */
    char *text = slurp(path);
    ck_assert_int_eq(count_lines(text), 3);
    cJSON *o = line_json(text, 0);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "hash")->valuestring, "fedcba9876543210");
    ck_assert_ptr_null(cJSON_GetObjectItem(o, "error"));
    ck_assert_int_eq(cJSON_GetObjectItem(o, "replica")->valueint, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "output")->valuestring, "out/fox-in-snow.mp4");
    const cJSON *sec = cJSON_GetObjectItem(o, "seconds");
    ck_assert_int_eq(cJSON_GetArraySize(sec), 4);
    ck_assert(cJSON_GetObjectItem(sec, "denoise")->valuedouble == 120.25);
    ck_assert(cJSON_GetObjectItem(sec, "write")->valuedouble == 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "peak_device_bytes")), 2);
    ck_assert_int_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "peak_host_bytes"), 0)->valueint,
                     42);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "wanrun")->valuestring, WR_VERSION_STRING);
    const char *t = cJSON_GetObjectItem(o, "time")->valuestring;
    ck_assert_int_eq(strlen(t), 20); /* 2026-01-02T03:04:05Z */
    ck_assert(t[4] == '-' && t[10] == 'T' && t[19] == 'Z');
    cJSON_Delete(o);
    ck_assert_ptr_nonnull(strstr(text, "\"peak_device_bytes\":[1152921504606846977,123456789]"));

    o = line_json(text, 1);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "error")->valuestring,
                     "ERR_IO: model.safetensors: short read\nsecond line");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "output")));
    ck_assert_int_eq(cJSON_GetObjectItem(o, "replica")->valueint, -1);
    sec = cJSON_GetObjectItem(o, "seconds");
    ck_assert_int_eq(cJSON_GetArraySize(sec), 1);
    ck_assert(cJSON_GetObjectItem(sec, "encode")->valuedouble == 0.5);
    ck_assert_ptr_null(cJSON_GetObjectItem(o, "peak_device_bytes"));
    ck_assert_ptr_null(cJSON_GetObjectItem(o, "peak_host_bytes"));
    cJSON_Delete(o);

    o = line_json(text, 2);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "output")->valuestring, "bad-utf8-\xef\xbf\xbd.mp4");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "seconds")), 0);
    cJSON_Delete(o);
    free(text);
    wr_test_rmtree(dir);
}
END_TEST

START_TEST(test_torn_last_line) {
    char dir[4200], path[4300];
    wr_test_dir("torn", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/results.jsonl", dir);
    wr_job_record a = rec("a", "ok", 10), b = rec("b", "failed", 11);
    ck_assert_int_eq(wr_results_append(path, &a), WR_OK);
    ck_assert_int_eq(wr_results_append(path, &b), WR_OK);
    append_raw(path, "{\"name\":\"c\",\"status\":\"ok\",\"hash\":\"00000000"); /* a crash */

    wr_results r;
    ck_assert_int_eq(wr_results_load(path, &r), WR_OK);
    ck_assert_int_eq(r.n, 2);
    ck_assert_int_eq(r.torn, 1);
    ck_assert_str_eq(r.e[0].name, "a");
    ck_assert_str_eq(r.e[1].name, "b");
    ck_assert_ptr_null(wr_results_last(&r, "c"));
    wr_results_free(&r);

    /* the next append ends the torn line first */
    wr_job_record c = rec("c", "ok", 12);
    ck_assert_int_eq(wr_results_append(path, &c), WR_OK);
    char *text = slurp(path);
    ck_assert_int_eq(count_lines(text), 4);
    cJSON *o = line_json(text, 3);
    ck_assert_ptr_nonnull(o); /* the new record is a line of its own */
    ck_assert_str_eq(cJSON_GetObjectItem(o, "name")->valuestring, "c");
    cJSON_Delete(o);
    free(text);

    ck_assert_int_eq(wr_results_load(path, &r), WR_OK);
    ck_assert_int_eq(r.n, 3);
    ck_assert_int_eq(r.torn, 1); /* the torn line, now ended, is still not a record */
    ck_assert_str_eq(r.e[2].name, "c");
    ck_assert(r.e[2].hash == 12);
    wr_results_free(&r);

    /* a whole record without its '\n' (cut just before it) is torn too */
    append_raw(path, "{\"name\":\"d\",\"status\":\"ok\",\"hash\":\"000000000000000d\"}");
    ck_assert_int_eq(wr_results_load(path, &r), WR_OK);
    ck_assert_int_eq(r.n, 3);
    ck_assert_int_eq(r.torn, 2);
    ck_assert_ptr_null(wr_results_last(&r, "d"));
    wr_results_free(&r);
    wr_test_rmtree(dir);
}
END_TEST

START_TEST(test_bad_middle_lines) {
    char dir[4200], path[4300];
    wr_test_dir("bad", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/results.jsonl", dir);
    wr_job_record a = rec("a", "ok", 1), z = rec("z", "ok", 2);
    ck_assert_int_eq(wr_results_append(path, &a), WR_OK);
    append_raw(path, "garbage\n"
                     "[1, 2]\n"
                     "{\"name\":\"x\",\"status\":\"ok\"}\n"                  /* no hash */
                     "{\"name\":\"x\",\"status\":\"ok\",\"hash\":\"xyz\"}\n" /* bad hash */
                     "{\"name\":\"x\",\"status\":\"ok\",\"hash\":12}\n"      /* a number */
                     "{\"name\":\"x\",\"status\":\"ok\",\"hash\":\"0000000000000001\"} {}\n"
                     "\n"
                     "   \n"); /* blank lines: skipped, not counted */
    ck_assert_int_eq(wr_results_append(path, &z), WR_OK);
    wr_results r;
    ck_assert_int_eq(wr_results_load(path, &r), WR_OK);
    ck_assert_int_eq(r.n, 2);
    ck_assert_int_eq(r.torn, 6);
    ck_assert_str_eq(r.e[0].name, "a");
    ck_assert_str_eq(r.e[1].name, "z");
    ck_assert_ptr_null(wr_results_last(&r, "x"));
    wr_results_free(&r);
    wr_test_rmtree(dir);
}
END_TEST

START_TEST(test_missing_and_errors) {
    char dir[4200], path[4300];
    wr_test_dir("missing", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/none.jsonl", dir);
    wr_results r;
    ck_assert_int_eq(wr_results_load(path, &r), WR_OK);
    ck_assert_int_eq(r.n, 0);
    ck_assert_int_eq(r.torn, 0);
    ck_assert_ptr_null(wr_results_last(&r, "a"));
    wr_results_free(&r);

    /* a directory is not a results file */
    ck_assert_int_eq(wr_results_load(dir, &r), WR_ERR_IO);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), dir));
    ck_assert_int_eq(r.n, 0);
    wr_results_free(&r);

    wr_job_record a = rec("a", "ok", 1);
    snprintf(path, sizeof path, "%s/no/such/dir/results.jsonl", dir);
    ck_assert_int_eq(wr_results_append(path, &a), WR_ERR_IO);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), path));

    snprintf(path, sizeof path, "%s/results.jsonl", dir);
    char longname[WR_RESULTS_NAME_MAX + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    wr_job_record l = rec(longname, "ok", 1);
    ck_assert_int_eq(wr_results_append(path, &l), WR_ERR_INVALID_ARG);
    longname[WR_RESULTS_NAME_MAX] = '\0'; /* the longest allowed */
    ck_assert_int_eq(wr_results_append(path, &l), WR_OK);
    wr_job_record bad = rec("x\xff", "ok", 1);
    ck_assert_int_eq(wr_results_append(path, &bad), WR_ERR_INVALID_ARG);
    ck_assert_int_eq(wr_results_load(path, &r), WR_OK);
    ck_assert_int_eq(r.n, 1);
    ck_assert_str_eq(r.e[0].name, longname);
    wr_results_free(&r);
    wr_test_rmtree(dir);
}
END_TEST

START_TEST(test_last_wins) {
    char dir[4200], path[4300];
    wr_test_dir("last", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/results.jsonl", dir);
    wr_job_record j1 = rec("job", "failed", 0xaaaa), other = rec("other", "ok", 3),
                  j2 = rec("job", "ok", 0xbbbb);
    j1.line = 1;
    j2.line = 1;
    ck_assert_int_eq(wr_results_append(path, &j1), WR_OK);
    ck_assert_int_eq(wr_results_append(path, &other), WR_OK);
    ck_assert_int_eq(wr_results_append(path, &j2), WR_OK);
    wr_results r;
    ck_assert_int_eq(wr_results_load(path, &r), WR_OK);
    ck_assert_int_eq(r.n, 3);
    const wr_results_entry *e = wr_results_last(&r, "job");
    ck_assert_ptr_eq(e, &r.e[2]);
    ck_assert_str_eq(e->status, "ok");
    ck_assert(e->hash == 0xbbbb);
    ck_assert_ptr_eq(wr_results_last(&r, "other"), &r.e[1]);
    ck_assert_ptr_null(wr_results_last(&r, "jo"));
    ck_assert_ptr_null(wr_results_last(NULL, "job"));
    wr_results_free(&r);
    wr_test_rmtree(dir);
}
END_TEST

/* 200 records from each of two processes at once: every line whole. The error text makes
 * each line ~4 KiB, so an append split into several writes would interleave visibly. */
#define PER_CHILD 200
START_TEST(test_concurrent_appenders) {
    char dir[4200], path[4300];
    wr_test_dir("concurrent", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/results.jsonl", dir);
    static char err[4096];
    memset(err, 'e', sizeof err - 1);
    err[sizeof err - 1] = '\0';
    pid_t kid[2];
    for (int c = 0; c < 2; c++) {
        kid[c] = fork();
        ck_assert_int_ge(kid[c], 0);
        if (kid[c] == 0) {
            for (int i = 0; i < PER_CHILD; i++) {
                char name[32];
                snprintf(name, sizeof name, "%c-%d", 'a' + c, i);
                wr_job_record r = rec(name, "ok", (uint64_t)c << 32 | (uint64_t)i);
                r.error = err;
                r.line = i + 1;
                r.replica = c;
                if (wr_results_append(path, &r) != WR_OK) _exit(1);
            }
            _exit(0);
        }
    }
    for (int c = 0; c < 2; c++) {
        int ws = 0;
        ck_assert_int_eq(waitpid(kid[c], &ws, 0), kid[c]);
        ck_assert_msg(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "appender %d failed (status %d)", c,
                      ws);
    }

    char *text = slurp(path);
    ck_assert_int_eq(count_lines(text), 2 * PER_CHILD);
    for (int k = 0; k < 2 * PER_CHILD; k++) {
        cJSON *o = line_json(text, k);
        ck_assert_msg(o != NULL, "line %d is not JSON", k + 1);
        ck_assert_str_eq(cJSON_GetObjectItem(o, "error")->valuestring, err);
        cJSON_Delete(o);
    }
    free(text);

    wr_results r;
    ck_assert_int_eq(wr_results_load(path, &r), WR_OK);
    ck_assert_int_eq(r.n, 2 * PER_CHILD);
    ck_assert_int_eq(r.torn, 0);
    int next[2] = {0, 0}; /* each child's records appear in its own order */
    for (int k = 0; k < r.n; k++) {
        const int c = r.e[k].name[0] - 'a';
        ck_assert(c == 0 || c == 1);
        char want[32];
        snprintf(want, sizeof want, "%c-%d", 'a' + c, next[c]);
        ck_assert_str_eq(r.e[k].name, want);
        ck_assert(r.e[k].hash == ((uint64_t)c << 32 | (uint64_t)next[c]));
        ck_assert_int_eq(r.e[k].line, next[c] + 1);
        next[c]++;
    }
    ck_assert_int_eq(next[0], PER_CHILD);
    ck_assert_int_eq(next[1], PER_CHILD);
    wr_results_free(&r);
    wr_test_rmtree(dir);
}
END_TEST

Suite *wr_test_suite(void) {
    Suite *s = suite_create("results");
    TCase *tc = tcase_create("results");
    tcase_add_test(tc, test_hash_hex);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_torn_last_line);
    tcase_add_test(tc, test_bad_middle_lines);
    tcase_add_test(tc, test_missing_and_errors);
    tcase_add_test(tc, test_last_wins);
    tcase_add_test(tc, test_concurrent_appenders);
    suite_add_tcase(s, tc);
    return s;
}

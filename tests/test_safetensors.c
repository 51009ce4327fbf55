/*
 * test_safetensors.c — the reader against files written by the reference `safetensors`
 * package (tests/data/good, MANIFEST.json), the malformed corpus (tests/data/bad,
 * EXPECTED.tsv: status and keyword per case, plus the file named in the detail), the writer
 * (round trip, padding, atomic replace) and sharded sets. Runs under 1, 2 and 4 ranks: every
 * rank opens the same files; all checks are collective.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/json.h"
#include "core/safetensors.h"
#include "harness.h"

#define CHECK(cond, ...) ck_assert_msg(wr_ck_all(cond), __VA_ARGS__)

/* ---- good files written by the reference implementation ---- */

/* The value rule of tests/data/make_corpus.py: element i is (i % 7) - 3; BOOL is i % 2 == 1;
 * U8 holds (i % 7) - 3 wrapped modulo 256. */
static double fixture_value(wr_dtype d, int64_t i) {
    if (d == WR_DTYPE_BOOL) return (double)(i % 2 == 1);
    if (d == WR_DTYPE_U8) return (double)(uint8_t)((i % 7) - 3);
    return (double)(i % 7) - 3.0;
}

static int check_values(const wr_st_tensor *t) {
    const char *p = wr_st_tensor_data(t);
    float *f = NULL;
    if (wr_dtype_is_float(t->dtype) && t->nelem > 0) {
        f = malloc((size_t)t->nelem * 4);
        if (wr_st_read_as(t, WR_DTYPE_F32, f, (size_t)t->nelem * 4) != WR_OK) {
            fprintf(stderr, "%s: read_as F32 failed: %s\n", t->name, wr_error_detail());
            free(f);
            return 0;
        }
    }
    int ok = 1;
    for (int64_t i = 0; i < t->nelem && ok; i++) {
        double got;
        switch (t->dtype) {
        case WR_DTYPE_BOOL:
        case WR_DTYPE_U8:
            got = (uint8_t)p[i];
            break;
        case WR_DTYPE_I8:
            got = (int8_t)p[i];
            break;
        case WR_DTYPE_I16: {
            int16_t v;
            memcpy(&v, p + 2 * i, 2);
            got = v;
            break;
        }
        case WR_DTYPE_I32: {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            got = v;
            break;
        }
        case WR_DTYPE_I64: {
            int64_t v;
            memcpy(&v, p + 8 * i, 8);
            got = (double)v;
            break;
        }
        default:
            got = f[i];
            break;
        }
        double want = fixture_value(t->dtype, i);
        if (got != want) {
            fprintf(stderr, "%s[%lld] = %g, expected %g\n", t->name, (long long)i, got, want);
            ok = 0;
        }
    }
    free(f);
    return ok;
}

static int shape_matches(const wr_st_tensor *t, const cJSON *shape) {
    if (cJSON_GetArraySize(shape) != t->ndim) return 0;
    for (int d = 0; d < t->ndim; d++)
        if ((int64_t)cJSON_GetArrayItem(shape, d)->valuedouble != t->shape[d]) return 0;
    return 1;
}

START_TEST(test_good_manifest) {
    wr_json_doc doc;
    wr_status s = wr_json_load(&doc, wr_test_data("good/MANIFEST.json"));
    CHECK(s == WR_OK, "MANIFEST.json: %s", wr_error_detail());
    const cJSON *files = cJSON_GetObjectItem(doc.root, "files"), *fe;
    int nfiles = 0;
    cJSON_ArrayForEach(fe, files) {
        const char *rel = cJSON_GetObjectItem(fe, "path")->valuestring;
        char rp[600];
        snprintf(rp, sizeof rp, "good/%s", rel);
        wr_st_set *set = NULL;
        s = wr_st_set_open(&set, wr_test_data(rp));
        CHECK(s == WR_OK, "%s: %s", rel, wr_error_detail());
        const cJSON *tensors = cJSON_GetObjectItem(fe, "tensors"), *te;
        CHECK(wr_st_set_count(set) == cJSON_GetArraySize(tensors), "%s: tensor count", rel);
        cJSON_ArrayForEach(te, tensors) {
            const char *name = cJSON_GetObjectItem(te, "name")->valuestring;
            const wr_st_tensor *t = wr_st_set_find(set, name);
            CHECK(t != NULL, "%s: tensor %s missing", rel, name);
            wr_dtype want;
            CHECK(wr_dtype_parse(cJSON_GetObjectItem(te, "dtype")->valuestring, &want) == 0 &&
                      t->dtype == want,
                  "%s: %s dtype", rel, name);
            CHECK(shape_matches(t, cJSON_GetObjectItem(te, "shape")), "%s: %s shape", rel, name);
            CHECK(check_values(t), "%s: %s values", rel, name);
        }
        const cJSON *meta = cJSON_GetObjectItem(fe, "metadata"), *me;
        cJSON_ArrayForEach(me, meta) {
            const char *v = wr_st_metadata(wr_st_set_file(set, 0), me->string);
            CHECK(v != NULL && strcmp(v, me->valuestring) == 0, "%s: metadata %s", rel, me->string);
        }
        wr_st_set_close(set);
        nfiles++;
    }
    CHECK(nfiles >= 2, "MANIFEST.json lists %d files", nfiles);
    wr_json_free(&doc);
}
END_TEST

/* ---- the malformed corpus ---- */

static int contains_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n) return 1;
    }
    return 0;
}

START_TEST(test_bad_corpus) {
    FILE *f = fopen(wr_test_data("bad/EXPECTED.tsv"), "r");
    CHECK(f != NULL, "cannot open bad/EXPECTED.tsv");
    char line[1024];
    int cases = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\r\n")] = '\0';
        char *path = strtok(line, "\t"), *status = strtok(NULL, "\t"), *kw = strtok(NULL, "\t");
        if (!path || !status || !kw) continue;
        char rp[600];
        snprintf(rp, sizeof rp, "bad/%s", path);
        wr_st_set *set = NULL;
        wr_error_clear();
        wr_status s = wr_st_set_open(&set, wr_test_data(rp));
        char want[64];
        snprintf(want, sizeof want, "ERR_%s", status);
        /* The detail must name the offending file: the case's file, or for a folder case
         * (an index and its shards) a path inside that folder. */
        char folder[600];
        snprintf(folder, sizeof folder, "%s", path);
        char *slash = strrchr(folder, '/');
        if (slash) slash[1] = '\0';
        int named = strstr(wr_error_detail(), path) != NULL ||
                    (slash && strstr(wr_error_detail(), folder) != NULL);
        if (strcmp(wr_status_name(s), want) != 0 || !contains_ci(wr_error_detail(), kw) || !named) {
            fprintf(stderr, "bad/%s: expected %s with '%s', got %s: %s\n", path, want, kw,
                    wr_status_name(s), wr_error_detail());
            bad++;
        }
        wr_st_set_close(set);
        cases++;
    }
    fclose(f);
    CHECK(cases >= 20, "only %d cases in EXPECTED.tsv", cases);
    CHECK(bad == 0, "%d of %d malformed cases gave the wrong error", bad, cases);
}
END_TEST

/* The same validation runs on in-memory images (the fuzzer's entry point). */
START_TEST(test_memory_matches_file) {
    const char *p = wr_test_data("good/all_dtypes.safetensors");
    FILE *f = fopen(p, "rb");
    CHECK(f != NULL, "open %s", p);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n, "read");
    fclose(f);
    wr_st_file *a = NULL, *b = NULL;
    CHECK(wr_st_open(&a, p) == WR_OK, "%s", wr_error_detail());
    CHECK(wr_st_open_memory(&b, buf, (size_t)n, "mem") == WR_OK, "%s", wr_error_detail());
    CHECK(wr_st_count(a) == wr_st_count(b), "count");
    for (int64_t i = 0; i < wr_st_count(a); i++) {
        const wr_st_tensor *x = wr_st_at(a, i), *y = wr_st_at(b, i);
        CHECK(strcmp(x->name, y->name) == 0 && x->nbytes == y->nbytes &&
                  memcmp(wr_st_tensor_data(x), wr_st_tensor_data(y), x->nbytes) == 0,
              "tensor %lld", (long long)i);
    }
    /* every truncation of a valid file is rejected, never crashes */
    int rejected = 0;
    for (long k = 0; k < n; k++) {
        wr_st_file *c = NULL;
        if (wr_st_open_memory(&c, buf, (size_t)k, "trunc") != WR_OK) rejected++;
        wr_st_close(c);
    }
    CHECK(rejected == n, "%d of %ld truncations accepted", (int)(n - rejected), n);
    wr_st_close(a);
    wr_st_close(b);
    free(buf);
}
END_TEST

/* ---- names: every JSON escape decodes, nothing else gets through ---- */

/* An in-memory image of one U8 [1] tensor named by the JSON string body `name_json`. */
static wr_status open_named(wr_st_file **f, const char *name_json) {
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr,
                     "{\"%s\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", name_json);
    while (n % 8) hdr[n++] = ' ';
    uint8_t img[600];
    for (int i = 0; i < 8; i++) img[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(img + 8, hdr, (size_t)n);
    img[8 + n] = 7;
    return wr_st_open_memory(f, img, (size_t)n + 9, "names");
}

START_TEST(test_names_escapes) {
    static const struct {
        const char *json, *name;
    } ok[] = {
        {"a\\u00e9", "a\xC3\xA9"},                /* \u escape = the raw character */
        {"a\xC3\xA9", "a\xC3\xA9"},               /* raw UTF-8 */
        {"\\ud83d\\ude00", "\xF0\x9F\x98\x80"},   /* a surrogate pair */
        {"q\\\"b\\\\s\\/", "q\"b\\s/"},           /* quote, backslash, slash */
        {"c\\u0001\\n\\t", "c\x01\n\t"},          /* escaped control characters */
        {"\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF"}, /* U+10FFFF, the last one */
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        wr_st_file *f = NULL;
        wr_status st = open_named(&f, ok[i].json);
        CHECK(st == WR_OK, "name %zu refused: %s", i, wr_error_detail());
        CHECK(wr_st_count(f) == 1 && strcmp(wr_st_at(f, 0)->name, ok[i].name) == 0 &&
                  wr_st_find(f, ok[i].name) != NULL,
              "name %zu decoded wrong", i);
        wr_st_close(f);
    }
    static const char *const bad[] = {
        "a\xF4\x90\x80\x80", /* past U+10FFFF */
        "a\xF5\x80\x80\x80", /* F5 never starts a sequence */
        "a\x80",             /* a stray continuation byte */
        "a\xE0\x80\xAF",     /* overlong */
        "a\xC3",             /* cut short by the closing quote */
        "a\\u00",            /* a short \u escape */
        "a\\uD800\\u0041",   /* a high surrogate, then no low one */
        "a\x7F\x01",         /* a raw control character */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wr_st_file *f = NULL;
        wr_status st = open_named(&f, bad[i]);
        CHECK(st == WR_ERR_FORMAT && strstr(wr_error_detail(), "names: tensor name") != NULL,
              "bad name %zu: %s %s", i, wr_status_name(st), wr_error_detail());
        wr_st_close(f);
    }
    /* the writer escapes what it must, and what it writes reads back */
    char path[4200];
    snprintf(path, sizeof path, "%s/names.safetensors", wr_test_tmpdir());
    const char *names[] = {"q\"b\\s", "c\x01\x1F", "\xE4\xB8\x80\xF0\x9F\x98\x80"};
    uint8_t v = 1;
    wr_st_writer *w = NULL;
    CHECK(wr_st_writer_init(&w) == WR_OK, "init");
    for (int i = 0; i < 3; i++)
        CHECK(wr_st_writer_add(w, names[i], WR_DTYPE_U8, 0, NULL, &v) == WR_OK, "add %d", i);
    CHECK(wr_st_writer_meta(w, "k\x02", "v\"\x03") == WR_OK, "meta");
    CHECK(wr_st_writer_write(w, path) == WR_OK, "write: %s", wr_error_detail());
    wr_st_writer_free(w);
    wr_st_file *f = NULL;
    CHECK(wr_st_open(&f, path) == WR_OK, "reopen: %s", wr_error_detail());
    for (int i = 0; i < 3; i++) CHECK(wr_st_find(f, names[i]) != NULL, "name %d round trip", i);
    CHECK(wr_st_metadata(f, "k\x02") && strcmp(wr_st_metadata(f, "k\x02"), "v\"\x03") == 0,
          "metadata round trip");
    wr_st_close(f);
    unlink(path);
}
END_TEST

/* ---- writer ---- */

START_TEST(test_writer_roundtrip) {
    char path[4200];
    snprintf(path, sizeof path, "%s/w.safetensors", wr_test_tmpdir());
    float a[6] = {1, -2, 3.5f, 0, -0.0f, 1e-30f};
    uint16_t b[3] = {0x3F80, 0xC000, 0x7FC0};
    uint8_t c[5] = {1, 2, 3, 4, 5};
    int64_t d = -7;
    const int64_t sa[2] = {2, 3}, sb[1] = {3}, sc[3] = {5, 1, 1}, sz[2] = {0, 4};
    wr_st_writer *w = NULL;
    CHECK(wr_st_writer_init(&w) == WR_OK, "init");
    CHECK(wr_st_writer_add(w, "blocks.0.attn1.to_q.weight", WR_DTYPE_F32, 2, sa, a) == WR_OK,
          "add");
    CHECK(wr_st_writer_add(w, "b", WR_DTYPE_BF16, 1, sb, b) == WR_OK, "add");
    CHECK(wr_st_writer_add(w, "c", WR_DTYPE_F8_E4M3, 3, sc, c) == WR_OK, "add");
    CHECK(wr_st_writer_add(w, "scalar", WR_DTYPE_I64, 0, NULL, &d) == WR_OK, "add");
    CHECK(wr_st_writer_add(w, "empty", WR_DTYPE_F16, 2, sz, NULL) == WR_OK, "add");
    CHECK(wr_st_writer_add(w, "b", WR_DTYPE_F32, 1, sb, a) == WR_ERR_INVALID_ARG, "dup");
    CHECK(wr_st_writer_meta(w, "format", "pt") == WR_OK, "meta");
    CHECK(wr_st_writer_meta(w, "note", "quote \" and \\ and \xC3\xA9") == WR_OK, "meta");
    CHECK(wr_st_writer_write(w, path) == WR_OK, "write: %s", wr_error_detail());
    wr_st_writer_free(w);

    wr_st_file *f = NULL;
    CHECK(wr_st_open(&f, path) == WR_OK, "reopen: %s", wr_error_detail());
    CHECK(wr_st_count(f) == 5, "count");
    const wr_st_tensor *t = wr_st_find(f, "blocks.0.attn1.to_q.weight");
    CHECK(t && t->dtype == WR_DTYPE_F32 && t->ndim == 2 && t->shape[1] == 3 &&
              memcmp(wr_st_tensor_data(t), a, sizeof a) == 0,
          "f32 tensor");
    CHECK((t->offset % 8) == 0, "the header is padded so data starts 8-aligned");
    t = wr_st_find(f, "b");
    CHECK(t && memcmp(wr_st_tensor_data(t), b, sizeof b) == 0, "bf16 tensor");
    float up[3];
    CHECK(wr_st_read_as(t, WR_DTYPE_F32, up, sizeof up) == WR_OK && up[0] == 1.0f &&
              up[1] == -2.0f && up[2] != up[2],
          "bf16 -> f32");
    t = wr_st_find(f, "scalar");
    int64_t dv = 0;
    CHECK(t && t->ndim == 0 && t->nelem == 1 && wr_st_read(t, &dv, sizeof dv) == WR_OK && dv == -7,
          "scalar");
    t = wr_st_find(f, "empty");
    CHECK(t && t->nelem == 0 && t->nbytes == 0, "empty");
    CHECK(strcmp(wr_st_metadata(f, "note"), "quote \" and \\ and \xC3\xA9") == 0, "metadata");
    CHECK(wr_st_find(f, "nope") == NULL, "absent");
    /* ranged reads and their bounds */
    t = wr_st_find(f, "c");
    uint8_t part[2] = {0, 0};
    CHECK(wr_st_read_range(t, 2, 2, part) == WR_OK && part[0] == 3 && part[1] == 4, "range");
    CHECK(wr_st_read_range(t, 4, 2, part) == WR_ERR_INVALID_ARG, "range past the end");
    CHECK(wr_st_read(t, part, 2) == WR_ERR_INVALID_ARG, "small buffer");
    wr_st_close(f);
    unlink(path);
}
END_TEST

static int tmp_leftovers(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) n += strstr(e->d_name, WR_ATOMIC_TMP_TAG) != NULL;
    if (d) closedir(d);
    return n;
}

START_TEST(test_writer_atomic) {
    char path[4200], dir[4200];
    const int64_t s1[1] = {4};
    float v[4] = {1, 2, 3, 4};
    wr_st_writer *w = NULL;
    wr_st_writer_init(&w);
    wr_st_writer_add(w, "x", WR_DTYPE_F32, 1, s1, v);
    /* a missing folder: an error naming the path, nothing created */
    snprintf(path, sizeof path, "%s/no/such/dir/x.safetensors", wr_test_tmpdir());
    CHECK(wr_st_writer_write(w, path) == WR_ERR_IO, "missing dir");
    CHECK(strstr(wr_error_detail(), "x.safetensors") != NULL, "detail names the file");
    /* the target is a directory: refused before writing, the target untouched, no temp left */
    snprintf(dir, sizeof dir, "%s/target.safetensors", wr_test_tmpdir());
    mkdir(dir, 0755);
    CHECK(wr_st_writer_write(w, dir) == WR_ERR_INVALID_ARG, "a directory is not replaced");
    struct stat sb;
    CHECK(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode), "target untouched");
    CHECK(tmp_leftovers(wr_test_tmpdir()) == 0, "no temporary left behind");
    rmdir(dir);
    /* an existing file is replaced whole */
    snprintf(path, sizeof path, "%s/replace.safetensors", wr_test_tmpdir());
    FILE *f = fopen(path, "w");
    fputs("old", f);
    fclose(f);
    CHECK(wr_st_writer_write(w, path) == WR_OK, "replace");
    wr_st_file *rf = NULL;
    CHECK(wr_st_open(&rf, path) == WR_OK, "replaced file reads");
    wr_st_close(rf);
    unlink(path);
    wr_st_writer_free(w);
}
END_TEST

/* ---- sets ---- */

START_TEST(test_sets) {
    wr_st_set *s = NULL;
    CHECK(wr_st_set_open(&s, wr_test_data("good/sharded")) == WR_OK, "dir with index: %s",
          wr_error_detail());
    CHECK(wr_st_set_nfiles(s) == 2, "two shards");
    for (int64_t i = 1; i < wr_st_set_count(s); i++)
        CHECK(strcmp(wr_st_set_at(s, i - 1)->name, wr_st_set_at(s, i)->name) < 0, "sorted");
    const wr_st_tensor *t = NULL;
    CHECK(wr_st_set_get(&t, s, "no.such.tensor") == WR_ERR_NOT_FOUND &&
              strstr(wr_error_detail(), "no.such.tensor") != NULL,
          "missing tensor named");
    uint64_t sum = 0;
    for (int64_t i = 0; i < wr_st_set_count(s); i++) sum += wr_st_set_at(s, i)->nbytes;
    CHECK(sum == wr_st_set_nbytes(s), "nbytes");
    wr_st_set_close(s);
    wr_st_set_close(NULL);
    CHECK(wr_st_set_open(&s, wr_test_data("no/such/path")) == WR_ERR_NOT_FOUND, "missing path");
    CHECK(wr_st_set_open(&s, wr_test_data("good")) != WR_OK, "a folder with several files is "
                                                             "ambiguous");
    /* A folder with exactly one .safetensors file */
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/single", wr_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    wr_st_writer *w = NULL;
    float v = 1.0f;
    wr_st_writer_init(&w);
    wr_st_writer_add(w, "v", WR_DTYPE_F32, 0, NULL, &v);
    CHECK(wr_st_writer_write(w, path) == WR_OK, "write");
    wr_st_writer_free(w);
    CHECK(wr_st_set_open(&s, dir) == WR_OK && wr_st_set_count(s) == 1, "single-file folder");
    wr_st_set_close(s);
    unlink(path);
    rmdir(dir);
}
END_TEST

Suite *wr_test_suite(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("reader");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_good_manifest);
    tcase_add_test(tc, test_bad_corpus);
    tcase_add_test(tc, test_memory_matches_file);
    tcase_add_test(tc, test_names_escapes);
    tcase_add_test(tc, test_writer_roundtrip);
    tcase_add_test(tc, test_writer_atomic);
    tcase_add_test(tc, test_sets);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * fuzz_st_header.c — libFuzzer target for the safetensors header validator.
 *
 * Feeds each input to wr_st_open_memory() as a whole file image. A rejected input must fail
 * with WR_ERR_FORMAT (or WR_ERR_OOM_HOST) and a detail naming the file. An accepted one is
 * walked completely — every tensor through wr_st_at, wr_st_find, wr_st_tensor_data (each byte
 * touched, so ASan sees any span outside the image), wr_st_tensor_view, wr_st_read, and every
 * metadata pair — and must satisfy the contract of safetensors.h: shapes and byte sizes agree,
 * spans lie inside the file in data-offset order without overlap or gap, names resolve to
 * themselves, every name, metadata key and value is well-formed UTF-8 (what `inspect --json`
 * prints must be valid JSON). A broken promise traps, so the fuzzer reports it as a crash with
 * the input.
 *
 * Built by tests/fuzz/CMakeLists.txt (clang, -fsanitize=fuzzer); run by tests/fuzz/run_fuzz.sh.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/safetensors.h"

#define FUZZ_NAME "fuzz-input"

/* Always on, unlike assert(): a violated contract is a finding. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_utf8(const char *s) {
    const size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        const size_t k = wr_utf8_char_len((const unsigned char *)s + i, n - i);
        if (k == 0) return 0;
        i += k;
    }
    return 1;
}

static void check_tensor(const wr_st_file *f, const wr_st_tensor *t, size_t size,
                         uint64_t *prev_end) {
    FUZZ_CHECK(t != NULL && t->name != NULL && t->file == f);
    FUZZ_CHECK((int)t->dtype >= 0 && t->dtype < WR_DTYPE_COUNT);
    FUZZ_CHECK(t->ndim >= 0 && t->ndim <= WR_MAX_DIMS);

    /* nelem and nbytes agree with the shape, computed without overflow. */
    uint64_t nelem = 1;
    for (int d = 0; d < t->ndim; d++) {
        FUZZ_CHECK(t->shape[d] >= 0);
        FUZZ_CHECK(!__builtin_mul_overflow(nelem, (uint64_t)t->shape[d], &nelem));
    }
    FUZZ_CHECK(t->nelem >= 0 && (uint64_t)t->nelem == nelem);
    uint64_t nbytes = 0;
    FUZZ_CHECK(!__builtin_mul_overflow(nelem, (uint64_t)wr_dtype_size(t->dtype), &nbytes));
    FUZZ_CHECK((uint64_t)t->nbytes == nbytes);

    /* The span is inside the image and follows the previous one without overlap or gap. */
    FUZZ_CHECK(t->offset >= 8 && t->offset <= size && t->nbytes <= size - t->offset);
    if (*prev_end != 0) FUZZ_CHECK(t->offset == *prev_end);
    *prev_end = t->offset + t->nbytes;

    FUZZ_CHECK(wr_st_find(f, t->name) == t);
    FUZZ_CHECK(is_utf8(t->name));

    const uint8_t *p = wr_st_tensor_data(t);
    FUZZ_CHECK(t->nbytes == 0 || p != NULL);
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < t->nbytes; i++) sink ^= p[i];
    (void)sink;

    wr_tensor v = wr_st_tensor_view(t);
    FUZZ_CHECK(v.dtype == t->dtype && v.ndim == t->ndim);
    FUZZ_CHECK(wr_tensor_nbytes(&v) == t->nbytes);

    /* The copying path must agree with the mapping; an in-memory file may refuse it. */
    if (t->nbytes > 0) {
        void *buf = malloc(t->nbytes);
        if (buf != NULL) {
            if (wr_st_read(t, buf, t->nbytes) == WR_OK) FUZZ_CHECK(memcmp(buf, p, t->nbytes) == 0);
            free(buf);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    wr_st_file *f = NULL;
    wr_status st = wr_st_open_memory(&f, data, size, FUZZ_NAME);
    if (st != WR_OK) {
        FUZZ_CHECK(st == WR_ERR_FORMAT || st == WR_ERR_OOM_HOST);
        FUZZ_CHECK(strstr(wr_error_detail(), FUZZ_NAME) != NULL);
        wr_error_clear();
        return 0;
    }
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(wr_st_file_size(f) == size);

    int64_t n = wr_st_count(f);
    FUZZ_CHECK(n >= 0);
    uint64_t prev_end = 0;
    for (int64_t i = 0; i < n; i++) check_tensor(f, wr_st_at(f, i), size, &prev_end);
    if (n > 0) FUZZ_CHECK(prev_end == size); /* no trailing bytes */

    int64_t nm = wr_st_metadata_count(f);
    FUZZ_CHECK(nm >= 0);
    for (int64_t i = 0; i < nm; i++) {
        const char *key = NULL, *value = NULL;
        wr_st_metadata_at(f, i, &key, &value);
        FUZZ_CHECK(key != NULL && value != NULL);
        FUZZ_CHECK(wr_st_metadata(f, key) != NULL);
        FUZZ_CHECK(is_utf8(key) && is_utf8(value));
        volatile size_t len = strlen(key) + strlen(value);
        (void)len;
    }

    wr_st_close(f);
    wr_error_clear();
    return 0;
}

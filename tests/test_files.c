/*
 * test_files.c — the files wanrun reads, when they are not what they should be:
 *   - wr_read_small_file (every JSON config, index and --config): a FIFO, a directory and
 *     /dev/zero are refused at once as "not a regular file", a file over the cap before it is
 *     read, a file whose size is not what fstat said (/proc) as "changed size"; the JSON loader,
 *     the model directory (model_index.json, a component config) and the safetensors reader (a
 *     shard, an index) go through it and refuse the same way, naming the file;
 *   - a mapped safetensors file truncated while open (the SIGBUS guard, safetensors.h): reading
 *     through the mapping survives (zeros), wr_st_check_faults names the file (from fstat before
 *     any page faulted, and from the handler's record even once the file has its size back),
 *     pread paths and conversions report it, a closed file's fault is reported once; a SIGBUS
 *     that is not ours still reaches the handler installed before.
 * One rank (the cases are about one process's files). Nothing here may block: a FIFO that the
 * code opened for reading would hang the test until CTest's timeout, which counts as failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/json.h"
#include "core/modeldir.h"
#include "core/safetensors.h"
#include "harness.h"

static char g_path[8][4300];

/* tmpdir/name in one of eight static buffers */
static const char *tmp(int slot, const char *name) {
    snprintf(g_path[slot], sizeof g_path[slot], "%s/%s", wr_test_tmpdir(), name);
    return g_path[slot];
}

static void put(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "create %s", path);
    fputs(text, f);
    fclose(f);
}

static int has(const char *needle) {
    return strstr(wr_error_detail(), needle) != NULL;
}

#define EXPECT(call, code, ...)                                                                    \
    do {                                                                                           \
        wr_error_clear();                                                                          \
        const wr_status got_ = (call);                                                             \
        ck_assert_msg(got_ == (code), "%s: got %s (%s), expected %s", #call, wr_status_name(got_), \
                      wr_error_detail(), wr_status_name(code));                                    \
        const char *const want_[] = {"", __VA_ARGS__};                                             \
        for (size_t i_ = 0; i_ < sizeof want_ / sizeof want_[0]; i_++)                             \
            ck_assert_msg(has(want_[i_]), "%s: detail lacks '%s': %s", #call, want_[i_],           \
                          wr_error_detail());                                                      \
    } while (0)

/* ---- a SIGBUS that is not ours goes to the handler installed before (runs first: the guard
 * is installed by the first wr_st_open of the process and saves what was there) ---- */

static sigjmp_buf g_jmp;
static volatile sig_atomic_t g_foreign_bus, g_armed;

/* The "previous" handler the guard chains to. Armed only inside test_sigbus_chains; after it
 * (the guard keeps chaining here) it gives a fault the default action. */
static void foreign_handler(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    if (!g_armed) {
        signal(sig, SIG_DFL);
        return;
    }
    g_foreign_bus++;
    if (si != NULL && si->si_code > 0) siglongjmp(g_jmp, 1); /* a real fault: skip the access */
}

START_TEST(test_sigbus_chains) {
    struct sigaction mine, prev;
    memset(&mine, 0, sizeof mine);
    mine.sa_sigaction = foreign_handler;
    mine.sa_flags = SA_SIGINFO;
    sigemptyset(&mine.sa_mask);
    ck_assert(sigaction(SIGBUS, &mine, &prev) == 0);
    g_armed = 1;
    /* a safetensors file opened: the guard goes in above our handler */
    const char *st_path = tmp(0, "chain.safetensors");
    wr_st_writer *w = NULL;
    float v[4] = {1, 2, 3, 4};
    ck_assert(wr_st_writer_init(&w) == WR_OK);
    ck_assert(wr_st_writer_add(w, "v", WR_DTYPE_F32, 1, (int64_t[]){4}, v) == WR_OK);
    ck_assert(wr_st_writer_write(w, st_path) == WR_OK);
    wr_st_writer_free(w);
    wr_st_file *f = NULL;
    ck_assert_msg(wr_st_open(&f, st_path) == WR_OK, "%s", wr_error_detail());
    struct sigaction now;
    ck_assert(sigaction(SIGBUS, NULL, &now) == 0);
    const int guard_first = (now.sa_flags & SA_SIGINFO) && now.sa_sigaction != foreign_handler;
    /* a sent SIGBUS (si_code <= 0) is not a fault on our mappings */
    g_foreign_bus = 0;
    raise(SIGBUS);
    ck_assert_msg(g_foreign_bus == 1, "a raised SIGBUS did not reach the previous handler");
    /* a real fault on a mapping that is not ours: a file of our own, truncated under it */
    const char *other = tmp(1, "other.bin");
    int fd = open(other, O_RDWR | O_CREAT | O_TRUNC, 0644);
    ck_assert(fd >= 0 && ftruncate(fd, 8192) == 0);
    volatile const char *m = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
    ck_assert(m != MAP_FAILED);
    ck_assert(ftruncate(fd, 0) == 0);
    g_foreign_bus = 0;
    volatile char sink = 0;
    if (sigsetjmp(g_jmp, 1) == 0) sink = m[4096];
    (void)sink;
    ck_assert_msg(g_foreign_bus == 1, "a fault outside our mappings did not reach the previous "
                                      "handler");
    munmap((void *)m, 8192);
    close(fd);
    unlink(other);
    ck_assert_msg(wr_st_check_faults() == WR_OK, "a foreign fault was taken for ours: %s",
                  wr_error_detail());
    wr_st_close(f);
    unlink(st_path);
    g_armed = 0;
    (void)prev;
    ck_assert_msg(guard_first, "the guard did not install itself over the previous handler");
}
END_TEST

/* ---- small files ---- */

START_TEST(test_small_file_reader) {
    char *buf = NULL;
    size_t n = 0;
    const char *p = tmp(0, "ok.json");
    put(p, "{\"a\": 1}");
    EXPECT(wr_read_small_file(&buf, &n, p, 64, "a config"), WR_OK);
    ck_assert(n == 8 && strcmp(buf, "{\"a\": 1}") == 0);
    free(buf);
    /* the cap, to the byte */
    EXPECT(wr_read_small_file(&buf, &n, p, 8, "a config"), WR_OK);
    free(buf);
    EXPECT(wr_read_small_file(&buf, &n, p, 7, "a config"), WR_ERR_FORMAT, p, "larger than");
    ck_assert(buf == NULL && n == 0);
    /* absent, a directory, a FIFO, a device */
    EXPECT(wr_read_small_file(&buf, &n, tmp(1, "absent.json"), 64, "a config"), WR_ERR_NOT_FOUND,
           "absent.json");
    EXPECT(wr_read_small_file(&buf, &n, wr_test_tmpdir(), 64, "a config"), WR_ERR_IO,
           "not a regular file (a directory)");
    const char *fifo = tmp(2, "fifo.json");
    ck_assert(mkfifo(fifo, 0644) == 0);
    EXPECT(wr_read_small_file(&buf, &n, fifo, 64, "a config"), WR_ERR_IO, fifo,
           "not a regular file (a FIFO)");
    EXPECT(wr_read_small_file(&buf, &n, "/dev/zero", WR_CONFIG_MAX_BYTES, "a config"), WR_ERR_IO,
           "/dev/zero", "not a regular file (a character device)");
    /* over the 16 MiB config cap: refused before a byte is read (a sparse file) */
    const char *big = tmp(3, "big.json");
    int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert(fd >= 0 && ftruncate(fd, (off_t)WR_CONFIG_MAX_BYTES + 1) == 0);
    close(fd);
    EXPECT(wr_read_small_file(&buf, &n, big, WR_CONFIG_MAX_BYTES, "a config"), WR_ERR_FORMAT, big,
           "larger than the 16 MiB limit for a config");
    /* a file longer than fstat says (a /proc file reports size 0) */
    struct stat sb;
    if (stat("/proc/self/status", &sb) == 0 && sb.st_size == 0)
        EXPECT(wr_read_small_file(&buf, &n, "/proc/self/status", 64, "a config"), WR_ERR_IO,
               "changed size while being read");
    /* the JSON loader is the same reader */
    wr_json_doc doc;
    EXPECT(wr_json_load(&doc, fifo), WR_ERR_IO, fifo, "not a regular file (a FIFO)");
    EXPECT(wr_json_load(&doc, big), WR_ERR_FORMAT, "larger than the 16 MiB limit for a config");
    EXPECT(wr_json_load(&doc, "/dev/zero"), WR_ERR_IO, "character device");
    EXPECT(wr_json_load_max(&doc, p, 4), WR_ERR_FORMAT, "larger than the 4-byte limit");
    EXPECT(wr_json_load(&doc, p), WR_OK);
    wr_json_free(&doc);
    unlink(p);
    unlink(fifo);
    unlink(big);
}
END_TEST

/* A JSON config or index with a key twice: Python's json (diffusers) would take the last value,
 * cJSON the first; refused instead, naming the key and where it is. */
START_TEST(test_json_duplicate_keys) {
    wr_json_doc doc;
    const char *p = tmp(0, "dup.json");
    put(p, "{\"num_layers\": 2, \"x\": {\"a\": 1}, \"num_layers\": 30}");
    EXPECT(wr_json_load(&doc, p), WR_ERR_FORMAT, p, "key 'num_layers' appears twice");
    put(p, "{\"a\": [1, {\"dim\": 1, \"dim\": 2}]}");
    EXPECT(wr_json_load(&doc, p), WR_ERR_FORMAT, "key 'a[1].dim' appears twice");
    /* many keys (the sorted path of the check) */
    char big[4096];
    int n = snprintf(big, sizeof big, "{");
    for (int i = 0; i < 100; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "\"k%d\": %d, ", i, i);
    snprintf(big + n, sizeof big - (size_t)n, "\"k57\": 0}");
    put(p, big);
    EXPECT(wr_json_load(&doc, p), WR_ERR_FORMAT, "key 'k57' appears twice");
    big[n] = '\0';
    snprintf(big + n, sizeof big - (size_t)n, "\"k100\": 0}");
    put(p, big);
    EXPECT(wr_json_load(&doc, p), WR_OK);
    wr_json_free(&doc);
    /* a safetensors index */
    const char *index = tmp(1, "model.safetensors.index.json");
    put(index, "{\"weight_map\": {\"a\": \"x.safetensors\"}, \"weight_map\": {}}");
    wr_st_set *s = NULL;
    EXPECT(wr_st_set_open(&s, index), WR_ERR_FORMAT, "key 'weight_map' appears twice");
    unlink(index);
    unlink(p);
}
END_TEST

/* A model directory whose model_index.json, or a component's config.json, is a FIFO. */
START_TEST(test_modeldir_fifo) {
    const char *dir = tmp(0, "model");
    ck_assert(mkdir(dir, 0755) == 0);
    const char *index = tmp(1, "model/model_index.json");
    ck_assert(mkfifo(index, 0644) == 0);
    wr_model_dir *md = calloc(1, sizeof *md);
    /* before: a FIFO index was taken as "no index" and the directory read without one */
    EXPECT(wr_model_dir_open(md, dir), WR_ERR_IO, "model_index.json", "not a regular file");
    unlink(index);
    const char *tdir = tmp(2, "model/transformer");
    ck_assert(mkdir(tdir, 0755) == 0);
    const char *cfg = tmp(3, "model/transformer/config.json");
    ck_assert(mkfifo(cfg, 0644) == 0);
    EXPECT(wr_model_dir_open(md, dir), WR_ERR_IO, "transformer/config.json",
           "not a regular file (a FIFO)");
    free(md);
    unlink(cfg);
    rmdir(tdir);
    rmdir(dir);
}
END_TEST

/* A shard, an index, or a .safetensors path that is a FIFO or a device. */
START_TEST(test_safetensors_not_regular) {
    wr_st_file *f = NULL;
    wr_st_set *s = NULL;
    const char *fifo = tmp(0, "w.safetensors");
    ck_assert(mkfifo(fifo, 0644) == 0);
    EXPECT(wr_st_open(&f, fifo), WR_ERR_IO, fifo, "not a regular file (a FIFO)");
    EXPECT(wr_st_set_open(&s, fifo), WR_ERR_IO, "not a regular file");
    EXPECT(wr_st_open(&f, "/dev/zero"), WR_ERR_IO, "/dev/zero", "character device");
    /* an index naming a FIFO shard */
    const char *index = tmp(1, "model.safetensors.index.json");
    put(index, "{\"metadata\": {}, \"weight_map\": {\"a\": \"w.safetensors\"}}");
    EXPECT(wr_st_set_open(&s, index), WR_ERR_IO, "w.safetensors", "not a regular file (a FIFO)");
    unlink(index);
    /* the index itself a FIFO */
    ck_assert(mkfifo(index, 0644) == 0);
    EXPECT(wr_st_set_open(&s, index), WR_ERR_IO, "model.safetensors.index.json",
           "not a regular file (a FIFO)");
    unlink(index);
    unlink(fifo);
}
END_TEST

/* ---- a mapped file truncated while open ---- */

/* A file: "x" F16 [N] then "y" F32 [N] (so y lies past most of x). */
#define NT 8192
static void write_two(const char *path) {
    static uint16_t x[NT];
    static float y[NT];
    for (int i = 0; i < NT; i++) x[i] = 0x3C00, y[i] = 1.0f; /* 1.0 */
    wr_st_writer *w = NULL;
    ck_assert(wr_st_writer_init(&w) == WR_OK);
    ck_assert(wr_st_writer_add(w, "x", WR_DTYPE_F16, 1, (int64_t[]){NT}, x) == WR_OK);
    ck_assert(wr_st_writer_add(w, "y", WR_DTYPE_F32, 1, (int64_t[]){NT}, y) == WR_OK);
    ck_assert(wr_st_writer_write(w, path) == WR_OK);
    wr_st_writer_free(w);
}

static double sum_f32(const wr_st_tensor *t) {
    const volatile float *p = wr_st_tensor_data(t);
    double s = 0;
    for (int64_t i = 0; i < t->nelem; i++) s += p[i];
    return s;
}

START_TEST(test_truncated_while_mapped) {
    const char *path = tmp(0, "cut.safetensors");
    write_two(path);
    wr_st_file *f = NULL;
    ck_assert_msg(wr_st_open(&f, path) == WR_OK, "%s", wr_error_detail());
    const wr_st_tensor *x = wr_st_find(f, "x"), *y = wr_st_find(f, "y");
    ck_assert(x && y);
    ck_assert(sum_f32(y) == NT);
    ck_assert_msg(wr_st_check_faults() == WR_OK, "%s", wr_error_detail());
    const off_t full = (off_t)wr_st_file_size(f);
    /* cut the file inside x: all of y and most of x are gone */
    ck_assert(truncate(path, (off_t)x->offset + 64) == 0);
    /* the check finds it from fstat alone, before any page faulted */
    EXPECT(wr_st_check_faults(), WR_ERR_IO, path, "changed size while in use", "truncated");
    /* reading the mapping past the end: SIGBUS, which the guard turns into zeros */
    ck_assert_msg(sum_f32(y) == 0.0, "the pages past the end did not read as zeros");
    /* the fault is remembered: with the size restored the file still reports */
    ck_assert(truncate(path, full) == 0);
    EXPECT(wr_st_check_faults(), WR_ERR_IO, path, "changed size while in use");
    EXPECT(wr_st_check_faults(), WR_ERR_IO, path); /* while it is open, every time */
    /* a conversion from the mapping names the file and the tensor */
    static float xf[NT];
    EXPECT(wr_st_read_as(x, WR_DTYPE_F32, xf, sizeof xf), WR_ERR_IO, path, "tensor 'x'",
           "changed size while in use");
    wr_st_close(f);
    /* reported while open: not again once closed */
    ck_assert_msg(wr_st_check_faults() == WR_OK, "%s", wr_error_detail());
    unlink(path);
}
END_TEST

/* pread paths (wr_st_read, disk offload's wr_st_pread_mapped) see the short read. */
START_TEST(test_truncated_pread) {
    const char *path = tmp(0, "cut2.safetensors");
    write_two(path);
    wr_st_file *f = NULL;
    ck_assert_msg(wr_st_open(&f, path) == WR_OK, "%s", wr_error_detail());
    const wr_st_tensor *y = wr_st_find(f, "y");
    static float buf[NT];
    EXPECT(wr_st_read(y, buf, sizeof buf), WR_OK);
    EXPECT(wr_st_pread_mapped(wr_st_tensor_data(y), y->nbytes, buf), WR_OK);
    ck_assert(truncate(path, (off_t)y->offset + 100) == 0);
    EXPECT(wr_st_read(y, buf, sizeof buf), WR_ERR_IO, path, "tensor 'y'",
           "changed size while in use");
    EXPECT(wr_st_pread_mapped(wr_st_tensor_data(y), y->nbytes, buf), WR_ERR_IO, path,
           "disk offload", "changed size while in use");
    EXPECT(wr_st_check_faults(), WR_ERR_IO, path);
    wr_st_close(f);
    ck_assert_msg(wr_st_check_faults() == WR_OK, "%s", wr_error_detail());
    unlink(path);
}
END_TEST

/* A file that faulted and was closed before any check (the text encoder is freed after
 * encoding): the next check reports it, once. */
START_TEST(test_fault_after_close) {
    const char *path = tmp(0, "cut3.safetensors");
    write_two(path);
    wr_st_file *f = NULL;
    ck_assert_msg(wr_st_open(&f, path) == WR_OK, "%s", wr_error_detail());
    const wr_st_tensor *y = wr_st_find(f, "y");
    const off_t full = (off_t)wr_st_file_size(f);
    ck_assert(truncate(path, 8) == 0);
    ck_assert(sum_f32(y) == 0.0);
    ck_assert(truncate(path, full) == 0);
    wr_st_close(f);
    EXPECT(wr_st_check_faults(), WR_ERR_IO, path, "changed size while in use");
    ck_assert_msg(wr_st_check_faults() == WR_OK, "reported twice: %s", wr_error_detail());
    unlink(path);
}
END_TEST

Suite *wr_test_suite(void) {
    Suite *s = suite_create("files");
    TCase *tc = tcase_create("files");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sigbus_chains); /* first: before any wr_st_open of the process */
    tcase_add_test(tc, test_small_file_reader);
    tcase_add_test(tc, test_json_duplicate_keys);
    tcase_add_test(tc, test_modeldir_fifo);
    tcase_add_test(tc, test_safetensors_not_regular);
    tcase_add_test(tc, test_truncated_while_mapped);
    tcase_add_test(tc, test_truncated_pread);
    tcase_add_test(tc, test_fault_after_close);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * safetensors.c — validated lazy reader, sharded sets, atomic writer. See safetensors.h.
 */
#define _GNU_SOURCE /* pread/pwrite, O_CLOEXEC, mmap flags */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "json.h"
#include "log.h"

struct wr_st_file {
    char *path;
    int fd;              /* -1 for an in-memory image */
    const uint8_t *base; /* whole file: mmap'd, or the in-memory copy */
    size_t map_len;
    int mapped;
    int slot;            /* its map_slot, -1 when not mapped */
    uint64_t file_size;  /* at open */
    uint64_t data_start; /* 8 + header length */
    int64_t count;
    wr_st_tensor *tensors; /* sorted by data offset */
    int64_t *by_name;      /* indices into tensors, sorted by name */
    int64_t nmeta;
    char **meta_keys;
    char **meta_vals;
};

/* ---- the mappings: disk offload's reads and the SIGBUS guard ---- */

/*
 * Every live mapping has a slot: disk offload finds the file behind a pointer into it
 * (wr_st_pread_mapped), and the SIGBUS handler finds whether a faulting address is ours.
 *
 * Why a handler: a mapped file that shrinks under the process (truncated, or rewritten in place
 * by a copy) makes every access to a page past its new end raise SIGBUS. The mapping is read
 * in many places (the matrices used in place, such as patch_embedding, even with disk offload;
 * the upload of resident blocks; dtype conversions), and reading all of it through pread would
 * give up the zero-copy views. So a process-wide handler (sigaction, SA_SIGINFO, installed once
 * at the first wr_st_open) looks si_addr up in the slots with atomic loads only; when it lies in
 * one of our mappings it maps anonymous zero pages from the faulting page to the end of that
 * mapping (mmap MAP_FIXED: the access is retried and reads zeros, and every later page past
 * the end costs no further signal), sets the slot's `faulted` flag and returns. Any other
 * SIGBUS goes to the handler that was installed before ours (Open MPI's, ASan's), or takes the
 * default action. mmap is not on POSIX's async-signal-safe list; on Linux it is a plain system
 * call that takes no user-space lock, which is what matters here.
 *
 * The zeros are never taken for weights: wr_st_check_faults() (called by the pipeline after
 * loading, after each denoising step, after decoding and before anything is written, by the
 * CLI before it writes, and by wr_st_read_as after a conversion from the mapping) reports
 * WR_ERR_IO naming the file. It also fstat()s every open file, so a file that shrank is
 * reported even before a page of it faulted; pread paths (wr_st_read*, disk offload) report a
 * short read the same way.
 */
#define WR_ST_MAX_MAPS 4096 /* files mapped at once; wr_st_open refuses more */
#define WR_DETAIL_NAME 320  /* "tensor 'NAME'" in a read error */

typedef struct map_slot {
    _Atomic uintptr_t base; /* the mapping; 0: the slot is free */
    _Atomic size_t len;
    _Atomic int faulted; /* set by the SIGBUS handler or a short pread */
    wr_st_file *file;    /* the rest under g_maps_mu */
    int reported;        /* the fault was returned as an error already */
} map_slot;

static map_slot g_slots[WR_ST_MAX_MAPS];
static _Atomic size_t g_nslots; /* slots [0, g_nslots) have been used */
static pthread_mutex_t g_maps_mu = PTHREAD_MUTEX_INITIALIZER;
static char *g_lost_fault; /* the path of a faulted file closed before a check reported it */

static struct sigaction g_old_bus;
static uintptr_t g_page = 4096;
static pthread_once_t g_guard_once = PTHREAD_ONCE_INIT;

/* Not ours: the previous handler, or the default action (a fault repeats on return and kills;
 * a signal sent with kill(2) is raised again, delivered once this handler returns). */
static void chain_sigbus(int sig, siginfo_t *si, void *uc) {
    if (g_old_bus.sa_flags & SA_SIGINFO) {
        if (g_old_bus.sa_sigaction != NULL) {
            g_old_bus.sa_sigaction(sig, si, uc);
            return;
        }
    } else if (g_old_bus.sa_handler != SIG_DFL && g_old_bus.sa_handler != SIG_IGN) {
        g_old_bus.sa_handler(sig);
        return;
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    if (si == NULL || si->si_code <= 0) raise(sig);
}

static void on_sigbus(int sig, siginfo_t *si, void *uc) {
    const int saved_errno = errno;
    if (si != NULL && si->si_code > 0) { /* raised by the kernel for an access */
        const uintptr_t a = (uintptr_t)si->si_addr;
        const size_t n = atomic_load_explicit(&g_nslots, memory_order_acquire);
        for (size_t i = 0; i < n; i++) {
            const uintptr_t b = atomic_load_explicit(&g_slots[i].base, memory_order_acquire);
            const size_t len = atomic_load_explicit(&g_slots[i].len, memory_order_acquire);
            if (b == 0 || a < b || a - b >= len) continue;
            if (atomic_load_explicit(&g_slots[i].base, memory_order_acquire) != b) continue;
            const uintptr_t page = a & ~(g_page - 1);
            const uintptr_t end = (b + len + g_page - 1) & ~(g_page - 1);
            if (mmap((void *)page, end - page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                     -1, 0) == MAP_FAILED)
                break;
            atomic_store(&g_slots[i].faulted, 1);
            errno = saved_errno;
            return;
        }
    }
    errno = saved_errno;
    chain_sigbus(sig, si, uc);
}

static void guard_install(void) {
    const long pg = sysconf(_SC_PAGESIZE);
    if (pg > 0) g_page = (uintptr_t)pg;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &g_old_bus) != 0)
        wr_warn("cannot install the SIGBUS handler (%s): a model file truncated during the run "
                "will end it with SIGBUS",
                strerror(errno));
}

/* A slot for f's mapping (f->base, f->map_len); -1 when all are taken. */
static int maps_add(wr_st_file *f) {
    pthread_once(&g_guard_once, guard_install);
    pthread_mutex_lock(&g_maps_mu);
    const size_t n = atomic_load(&g_nslots);
    size_t i = 0;
    while (i < n && g_slots[i].file != NULL) i++;
    if (i == WR_ST_MAX_MAPS) {
        pthread_mutex_unlock(&g_maps_mu);
        return -1;
    }
    if (i == n) atomic_store_explicit(&g_nslots, n + 1, memory_order_release);
    g_slots[i].file = f;
    g_slots[i].reported = 0;
    atomic_store(&g_slots[i].faulted, 0);
    atomic_store_explicit(&g_slots[i].len, f->map_len, memory_order_release);
    atomic_store_explicit(&g_slots[i].base, (uintptr_t)f->base, memory_order_release);
    pthread_mutex_unlock(&g_maps_mu);
    return (int)i;
}

/* Frees f's slot; a fault no check has reported yet is kept for the next one. */
static void maps_remove(wr_st_file *f) {
    pthread_mutex_lock(&g_maps_mu);
    map_slot *s = &g_slots[f->slot];
    atomic_store_explicit(&s->base, 0, memory_order_release);
    if (atomic_load(&s->faulted) && !s->reported && g_lost_fault == NULL)
        g_lost_fault = strdup(f->path);
    atomic_store(&s->faulted, 0);
    s->file = NULL;
    pthread_mutex_unlock(&g_maps_mu);
}

/* The error for a file that changed under the run: `ctx` "" or what was being read ("reading
 * X at byte N: "); now_size < 0 when not known. */
static wr_status fault_error(const char *path, const char *ctx, long long now_size,
                             uint64_t open_size) {
    char sizes[96] = "";
    if (now_size >= 0)
        snprintf(sizes, sizeof sizes, ": %lld bytes now, %llu when opened", now_size,
                 (unsigned long long)open_size);
    return WR_FAIL(WR_ERR_IO,
                   "%s: %sthe file changed size while in use (it was truncated or replaced%s); "
                   "the data read from it is void, so the run stops: restore the file and run "
                   "again",
                   path, ctx, now_size >= 0 ? sizes : ", or its storage failed");
}

/* f's fault, if any (its mapping faulted, a pread came short, or it is smaller than at open):
 * the error, which marks it reported. Under g_maps_mu. */
static wr_status file_fault_locked(wr_st_file *f) {
    map_slot *s = &g_slots[f->slot];
    struct stat sb;
    const int shrunk = fstat(f->fd, &sb) == 0 && (uint64_t)sb.st_size < f->file_size;
    if (!shrunk && !atomic_load(&s->faulted)) return WR_OK;
    atomic_store(&s->faulted, 1); /* sticky: its pages past the end are zeros now */
    s->reported = 1;
    return fault_error(f->path, "", shrunk ? (long long)sb.st_size : -1, f->file_size);
}

static wr_status file_fault(wr_st_file *f) {
    if (f->slot < 0) return WR_OK;
    pthread_mutex_lock(&g_maps_mu);
    const wr_status st = file_fault_locked(f);
    pthread_mutex_unlock(&g_maps_mu);
    return st;
}

wr_status wr_st_check_faults(void) {
    wr_status st = WR_OK;
    pthread_mutex_lock(&g_maps_mu);
    const size_t n = atomic_load(&g_nslots);
    for (size_t i = 0; i < n && st == WR_OK; i++)
        if (g_slots[i].file != NULL) st = file_fault_locked(g_slots[i].file);
    if (st == WR_OK && g_lost_fault != NULL) {
        st = fault_error(g_lost_fault, "", -1, 0);
        free(g_lost_fault);
        g_lost_fault = NULL;
    }
    pthread_mutex_unlock(&g_maps_mu);
    return st;
}

static wr_status pread_full(wr_st_file *f, void *dst, size_t n, uint64_t off, const char *what);

wr_status wr_st_pread_mapped(const void *p, size_t n, void *dst) {
    wr_st_file *f = NULL;
    uint64_t off = 0;
    pthread_mutex_lock(&g_maps_mu);
    const size_t ns = atomic_load(&g_nslots);
    for (size_t i = 0; i < ns; i++) {
        const char *b = (const char *)atomic_load(&g_slots[i].base);
        if (b != NULL && (const char *)p >= b && (const char *)p + n <= b + g_slots[i].len) {
            f = g_slots[i].file;
            off = (uint64_t)((const char *)p - b);
            break;
        }
    }
    pthread_mutex_unlock(&g_maps_mu);
    if (f == NULL) return WR_ERR_NOT_FOUND; /* not in a mapped file: no error recorded */
    return pread_full(f, dst, n, off, "weights (disk offload)");
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* The largest integer a double holds exactly; JSON numbers beyond it are refused. */
#define WR_JSON_MAX_INT 9007199254740992.0

/* 1 and *out when `item` is a JSON number holding a non-negative integer <= 2^53. */
static int json_uint(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double d = item->valuedouble;
    if (!(d >= 0.0) || d > WR_JSON_MAX_INT || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

static _Thread_local const wr_st_file *g_sort_file; /* qsort has no context argument in C11 */

static int cmp_by_name(const void *a, const void *b) {
    const wr_st_tensor *t = g_sort_file->tensors;
    return strcmp(t[*(const int64_t *)a].name, t[*(const int64_t *)b].name);
}

static int cmp_by_offset(const void *a, const void *b) {
    const wr_st_tensor *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}

/* ---- header parsing and validation ---- */

/* The raw bytes of a header string (between its quotes) for an error message: well-formed
 * UTF-8 kept, any other byte and control characters as \xNN, cut at ~80 bytes. */
static void printable(char *dst, size_t cap, const unsigned char *p, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < cap;) {
        const size_t k = wr_utf8_char_len(p + i, n - i);
        if (o > 80) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        if (k == 0 || p[i] < 0x20 || p[i] == 0x7F) {
            o += (size_t)snprintf(dst + o, cap - o, "\\x%02X", p[i]);
            i++;
        } else {
            memcpy(dst + o, p + i, k);
            o += k, i += k;
        }
    }
    dst[o] = '\0';
}

static int hex4(const unsigned char *p, const unsigned char *end, unsigned *out) {
    if (end - p < 4) return 0;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        const unsigned c = p[i];
        const unsigned d = c >= '0' && c <= '9'   ? c - '0'
                           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                  : 16;
        if (d == 16) return 0;
        v = v * 16 + d;
    }
    *out = v;
    return 1;
}

/* One header string starting after its opening quote at p: the first problem with it (NULL if
 * none) at *bad, and the position of its closing quote (or the end) at *close. */
static const char *string_problem(const unsigned char *p, const unsigned char *end,
                                  const unsigned char **bad, const unsigned char **close) {
    const char *why = NULL;
    while (p < end && *p != '"') {
        if (*p == '\\') {
            if (end - p >= 2 && p[1] == 'u') {
                unsigned cp = 0, lo = 0;
                if (!hex4(p + 2, end, &cp)) {
                    if (!why) why = "an invalid \\u escape (four hex digits needed)", *bad = p;
                    p += 2;
                    continue;
                }
                if (cp == 0 && !why)
                    why = "the escape \\u0000 (NUL), which a C string cannot hold", *bad = p;
                if (cp >= 0xDC00 && cp <= 0xDFFF && !why)
                    why = "an unpaired UTF-16 surrogate escape (a low surrogate first)", *bad = p;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (end - p >= 12 && p[6] == '\\' && p[7] == 'u' && hex4(p + 8, end, &lo) &&
                        lo >= 0xDC00 && lo <= 0xDFFF) {
                        p += 12;
                        continue;
                    }
                    if (!why)
                        why = "an unpaired UTF-16 surrogate escape (no low surrogate after it)",
                        *bad = p;
                }
                p += 6;
                continue;
            }
            p += end - p >= 2 ? 2 : 1; /* other escapes: cJSON checks them */
            continue;
        }
        if (*p < 0x20) {
            if (!why) why = "a raw control character (JSON needs it escaped)", *bad = p;
            p++;
            continue;
        }
        const size_t k = wr_utf8_char_len(p, (size_t)(end - p));
        if (k == 0) {
            if (!why) why = "bytes that are not UTF-8", *bad = p;
            p++;
            continue;
        }
        p += k;
    }
    *close = p;
    return why;
}

/*
 * What cJSON lets through: the header must be UTF-8 (the reference reader, safetensors' Rust
 * crate, refuses anything else, and `inspect --json` would print it into invalid JSON), and no
 * string may decode to something a C string cannot hold or that is not Unicode (\u0000, lone
 * surrogates: cJSON would keep a NUL, cutting the name short, or turn a bad \u escape into
 * one). Scans the raw text, string by string, keeping the current top-level key so the error
 * names the tensor; runs before cJSON, which reports plain syntax errors.
 */
static wr_status check_header_text(const char *path, const char *hdr, size_t hlen) {
    const unsigned char *p = (const unsigned char *)hdr, *end = p + hlen;
    const unsigned char *key = NULL, *key_end = NULL;
    int depth = 0, expect_key = 0;
    while (p < end) {
        const unsigned c = *p;
        if (c == '"') {
            const unsigned char *s0 = p + 1, *bad = NULL, *close = NULL;
            const int is_key = depth == 1 && expect_key;
            const char *why = string_problem(s0, end, &bad, &close);
            if (why != NULL) {
                char name[128];
                if (is_key) {
                    printable(name, sizeof name, s0, (size_t)(close - s0));
                    return WR_FAIL(WR_ERR_FORMAT, "%s: tensor name '%s' holds %s (header byte %zu)",
                                   path, name, why, (size_t)(bad - (const unsigned char *)hdr));
                }
                if (key != NULL && key_end - key == 12 && memcmp(key, "__metadata__", 12) == 0)
                    return WR_FAIL(WR_ERR_FORMAT,
                                   "%s: __metadata__: a string holds %s (header byte %zu)", path,
                                   why, (size_t)(bad - (const unsigned char *)hdr));
                if (key != NULL) {
                    printable(name, sizeof name, key, (size_t)(key_end - key));
                    return WR_FAIL(WR_ERR_FORMAT,
                                   "%s: tensor '%s': a string in its entry holds %s (header byte "
                                   "%zu)",
                                   path, name, why, (size_t)(bad - (const unsigned char *)hdr));
                }
                return WR_FAIL(WR_ERR_FORMAT, "%s: header string holds %s (header byte %zu)", path,
                               why, (size_t)(bad - (const unsigned char *)hdr));
            }
            if (is_key) key = s0, key_end = close, expect_key = 0;
            p = close < end ? close + 1 : end;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
            if (depth == 1) expect_key = c == '{';
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',' && depth == 1) {
            expect_key = 1;
        } else if (c >= 0x80 && wr_utf8_char_len(p, (size_t)(end - p)) == 0) {
            return WR_FAIL(WR_ERR_FORMAT,
                           "%s: header holds bytes that are not UTF-8 (header byte %zu)", path,
                           (size_t)(p - (const unsigned char *)hdr));
        }
        p++;
    }
    return WR_OK;
}

/* Parses one tensor entry into *t (name already set). data_size bounds the offsets. */
static wr_status parse_entry(wr_st_tensor *t, const cJSON *e, const char *path, uint64_t data_size,
                             uint64_t data_start) {
    const char *name = t->name;
    if (!cJSON_IsObject(e))
        return WR_FAIL(WR_ERR_FORMAT, "%s: tensor '%s': header entry is not a JSON object", path,
                       name);
    int oom = 0;
    const char *dup = wr_json_duplicate_key(e, &oom);
    if (oom) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory reading %s", path);
    if (dup != NULL)
        return WR_FAIL(WR_ERR_FORMAT,
                       "%s: tensor '%s': duplicate key \"%.40s\" in its entry (JSON readers "
                       "disagree on which one counts)",
                       path, name, dup);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(jd))
        return WR_FAIL(WR_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", path,
                       name);
    if (wr_dtype_parse(jd->valuestring, &t->dtype) != 0)
        return WR_FAIL(WR_ERR_FORMAT, "%s: tensor '%s': unknown dtype \"%.32s\"", path, name,
                       jd->valuestring);
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsArray(js))
        return WR_FAIL(WR_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", path,
                       name);
    int nd = cJSON_GetArraySize(js);
    if (nd > WR_MAX_DIMS)
        return WR_FAIL(WR_ERR_FORMAT, "%s: tensor '%s': shape has %d dimensions (at most %d)", path,
                       name, nd, WR_MAX_DIMS);
    t->ndim = nd;
    int64_t nelem = 1;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, js) {
        uint64_t d;
        if (!json_uint(it, &d))
            return WR_FAIL(WR_ERR_FORMAT,
                           "%s: tensor '%s': shape dimension %d is not an integer in [0, 2^53]",
                           path, name, i);
        t->shape[i++] = (int64_t)d;
        if (__builtin_mul_overflow(nelem, (int64_t)d, &nelem))
            return WR_FAIL(WR_ERR_FORMAT,
                           "%s: tensor '%s': element count of the shape overflows "
                           "64 bits",
                           path, name);
    }
    t->nelem = nelem;
    size_t nbytes;
    if (__builtin_mul_overflow((uint64_t)nelem, (uint64_t)wr_dtype_size(t->dtype), &nbytes) ||
        nbytes > (size_t)INT64_MAX)
        return WR_FAIL(WR_ERR_FORMAT, "%s: tensor '%s': byte size of the shape overflows 64 bits",
                       path, name);
    t->nbytes = nbytes;
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    uint64_t b, en;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 ||
        !json_uint(cJSON_GetArrayItem(jo, 0), &b) || !json_uint(cJSON_GetArrayItem(jo, 1), &en))
        return WR_FAIL(WR_ERR_FORMAT,
                       "%s: tensor '%s': \"data_offsets\" must be two non-negative "
                       "integers [begin, end]",
                       path, name);
    if (b > en)
        return WR_FAIL(WR_ERR_FORMAT, "%s: tensor '%s': data_offsets begin %llu > end %llu", path,
                       name, (unsigned long long)b, (unsigned long long)en);
    if (en > data_size)
        return WR_FAIL(WR_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets end %llu is past the end of "
                       "the data region (%llu bytes; file truncated?)",
                       path, name, (unsigned long long)en, (unsigned long long)data_size);
    if (en - b != nbytes) {
        char sh[160];
        return WR_FAIL(WR_ERR_FORMAT,
                       "%s: tensor '%s': byte span %llu does not match dtype %s x shape %s = %zu "
                       "bytes",
                       path, name, (unsigned long long)(en - b), wr_dtype_name(t->dtype),
                       wr_shape_str(sh, sizeof sh, t->ndim, t->shape), nbytes);
    }
    t->offset = data_start + b;
    return WR_OK;
}

static wr_status parse_metadata(wr_st_file *f, const cJSON *m) {
    if (!cJSON_IsObject(m))
        return WR_FAIL(WR_ERR_FORMAT, "%s: __metadata__ is not a JSON object", f->path);
    int oom = 0;
    const char *dup = wr_json_duplicate_key(m, &oom);
    if (oom) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory reading %s", f->path);
    if (dup != NULL)
        return WR_FAIL(WR_ERR_FORMAT, "%s: __metadata__: duplicate key '%.80s'", f->path, dup);
    int n = cJSON_GetArraySize(m);
    f->meta_keys = calloc((size_t)n + 1, sizeof(char *));
    f->meta_vals = calloc((size_t)n + 1, sizeof(char *));
    if (!f->meta_keys || !f->meta_vals) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, m) {
        if (!cJSON_IsString(it))
            return WR_FAIL(WR_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", f->path,
                           it->string);
        int64_t k = f->nmeta;
        f->meta_keys[k] = xstrdup(it->string);
        f->meta_vals[k] = xstrdup(it->valuestring);
        if (!f->meta_keys[k] || !f->meta_vals[k])
            return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
        f->nmeta++;
    }
    return WR_OK;
}

/* Parses and validates the header JSON `hdr` (hlen bytes) of file f. */
static wr_status parse_header(wr_st_file *f, const char *hdr, size_t hlen) {
    wr_status st = WR_OK;
    WR_TRY(check_header_text(f->path, hdr, hlen));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
    if (root == NULL)
        return WR_FAIL(WR_ERR_FORMAT, "%s: header is invalid JSON (near byte %lld of %zu)", f->path,
                       end ? (long long)(end - hdr) : -1LL, hlen);
    for (const char *p = end; p < hdr + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return WR_FAIL(WR_ERR_FORMAT,
                           "%s: header is invalid JSON (trailing bytes after the "
                           "object at byte %lld)",
                           f->path, (long long)(p - hdr));
        }
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return WR_FAIL(WR_ERR_FORMAT, "%s: header is not a JSON object", f->path);
    }
    /* A name twice (a tensor, or __metadata__): refused before either entry is read, so the
     * message is about the name whatever else the entries hold. */
    int oom = 0;
    const char *dup = wr_json_duplicate_key(root, &oom);
    if (oom || dup != NULL) {
        if (oom)
            st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory reading %s", f->path);
        else if (strcmp(dup, "__metadata__") == 0)
            st = WR_FAIL(WR_ERR_FORMAT, "%s: duplicate __metadata__ entry", f->path);
        else
            st = WR_FAIL(WR_ERR_FORMAT, "%s: tensor '%.200s': duplicate tensor name in the header",
                         f->path, dup);
        cJSON_Delete(root);
        return st;
    }
    uint64_t data_size = f->file_size - f->data_start;
    int n = cJSON_GetArraySize(root);
    f->tensors = calloc((size_t)n + 1, sizeof *f->tensors);
    f->by_name = calloc((size_t)n + 1, sizeof *f->by_name);
    if (!f->tensors || !f->by_name) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory reading %s", f->path);
        goto done;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (it->string == NULL) {
            st = WR_FAIL(WR_ERR_FORMAT, "%s: header entry without a name", f->path);
            goto done;
        }
        if (strcmp(it->string, "__metadata__") == 0) {
            if (f->meta_keys != NULL) {
                st = WR_FAIL(WR_ERR_FORMAT, "%s: duplicate __metadata__ entry", f->path);
                goto done;
            }
            WR_TRY_GOTO(st, parse_metadata(f, it), done);
            continue;
        }
        wr_st_tensor *t = &f->tensors[f->count];
        t->file = f;
        t->name = xstrdup(it->string);
        if (t->name == NULL) {
            st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
            goto done;
        }
        f->count++;
        WR_TRY_GOTO(st, parse_entry(t, it, f->path, data_size, f->data_start), done);
    }
    /* Spans: sorted by offset they must tile [0, data_size) exactly. */
    qsort(f->tensors, (size_t)f->count, sizeof *f->tensors, cmp_by_offset);
    uint64_t pos = f->data_start;
    for (int64_t i = 0; i < f->count; i++) {
        const wr_st_tensor *t = &f->tensors[i];
        if (t->offset < pos) {
            st = WR_FAIL(WR_ERR_FORMAT,
                         "%s: tensor '%s': its bytes [%llu, %llu) overlap the "
                         "previous tensor '%s'",
                         f->path, t->name, (unsigned long long)(t->offset - f->data_start),
                         (unsigned long long)(t->offset - f->data_start + t->nbytes),
                         f->tensors[i - 1].name);
            goto done;
        }
        if (t->offset > pos) {
            st = WR_FAIL(WR_ERR_FORMAT,
                         "%s: tensor '%s': gap of %llu unused bytes before it in "
                         "the data region",
                         f->path, t->name, (unsigned long long)(t->offset - pos));
            goto done;
        }
        pos = t->offset + t->nbytes;
    }
    if (pos != f->file_size) {
        st = WR_FAIL(WR_ERR_FORMAT, "%s: %llu trailing bytes after the last tensor's data", f->path,
                     (unsigned long long)(f->file_size - pos));
        goto done;
    }
    for (int64_t i = 0; i < f->count; i++) f->by_name[i] = i;
    g_sort_file = f;
    qsort(f->by_name, (size_t)f->count, sizeof *f->by_name, cmp_by_name);
    for (int64_t i = 1; i < f->count; i++) {
        const char *a = f->tensors[f->by_name[i - 1]].name, *b = f->tensors[f->by_name[i]].name;
        if (strcmp(a, b) == 0) {
            st = WR_FAIL(WR_ERR_FORMAT, "%s: tensor '%s': duplicate tensor name in the header",
                         f->path, a);
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    return st;
}

/* Validates the 8-byte length prefix against the file size; sets data_start. */
static wr_status check_prefix(wr_st_file *f, const uint8_t prefix[8], uint64_t *hlen) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | prefix[i];
    if (n > WR_ST_MAX_HEADER)
        return WR_FAIL(WR_ERR_FORMAT,
                       "%s: header length %llu exceeds the %llu-byte limit "
                       "(not a safetensors file?)",
                       f->path, (unsigned long long)n, (unsigned long long)WR_ST_MAX_HEADER);
    if (n > f->file_size - 8)
        return WR_FAIL(WR_ERR_FORMAT,
                       "%s: header length %llu is larger than the file (%llu bytes; "
                       "truncated?)",
                       f->path, (unsigned long long)n, (unsigned long long)f->file_size);
    *hlen = n;
    f->data_start = 8 + n;
    return WR_OK;
}

/* n bytes at offset off of f into dst. End of file before them: f shrank since it was opened,
 * reported as such (and remembered for wr_st_check_faults). */
static wr_status pread_full(wr_st_file *f, void *dst, size_t n, uint64_t off, const char *what) {
    uint8_t *p = dst;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t r = pread(f->fd, p, chunk, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return WR_FAIL(WR_ERR_IO, "%s: reading %s: %s", f->path, what, strerror(errno));
        if (r == 0) {
            struct stat sb;
            const long long now = fstat(f->fd, &sb) == 0 ? (long long)sb.st_size : -1;
            if (f->slot >= 0) {
                pthread_mutex_lock(&g_maps_mu);
                atomic_store(&g_slots[f->slot].faulted, 1);
                g_slots[f->slot].reported = 1;
                pthread_mutex_unlock(&g_maps_mu);
            }
            char ctx[160];
            snprintf(ctx, sizeof ctx, "reading %s at byte %llu: ", what, (unsigned long long)off);
            return fault_error(f->path, ctx, now, f->file_size);
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return WR_OK;
}

static wr_st_file *file_new(const char *path) {
    wr_st_file *f = calloc(1, sizeof *f);
    if (f == NULL) return NULL;
    f->fd = -1;
    f->slot = -1;
    f->path = xstrdup(path);
    if (f->path == NULL) {
        free(f);
        return NULL;
    }
    return f;
}

wr_status wr_st_open(wr_st_file **out, const char *path) {
    *out = NULL;
    wr_status st = WR_OK;
    char *hdr = NULL;
    wr_st_file *f = file_new(path);
    if (f == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    /* Only a regular file: stat before opening (a device is never opened), O_NONBLOCK (a FIFO
     * put in its place meanwhile cannot block the open), fstat of what was opened. */
    struct stat sb;
    if (stat(path, &sb) != 0) {
        st = wr_fail(errno == ENOENT ? WR_ERR_NOT_FOUND : WR_ERR_IO, "%s: cannot open: %s", path,
                     strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = WR_FAIL(WR_ERR_IO, "%s: not a regular file (%s); a .safetensors file is needed", path,
                     wr_file_kind((unsigned)sb.st_mode));
        goto fail;
    }
    f->fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (f->fd < 0) {
        st = wr_fail(errno == ENOENT ? WR_ERR_NOT_FOUND : WR_ERR_IO, "%s: cannot open: %s", path,
                     strerror(errno));
        goto fail;
    }
    if (fstat(f->fd, &sb) != 0) {
        st = WR_FAIL(WR_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = WR_FAIL(WR_ERR_IO, "%s: not a regular file (%s); a .safetensors file is needed", path,
                     wr_file_kind((unsigned)sb.st_mode));
        goto fail;
    }
    f->file_size = (uint64_t)sb.st_size;
    if (f->file_size < 8) {
        st = WR_FAIL(WR_ERR_FORMAT, "%s: file too small (%llu bytes) to hold a safetensors header",
                     path, (unsigned long long)f->file_size);
        goto fail;
    }
    uint8_t prefix[8];
    uint64_t hlen = 0;
    WR_TRY_GOTO(st, pread_full(f, prefix, 8, 0, "the header length"), fail);
    WR_TRY_GOTO(st, check_prefix(f, prefix, &hlen), fail);
    hdr = malloc(hlen + 1);
    if (hdr == NULL) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "%s: out of host memory for a %llu-byte header", path,
                     (unsigned long long)hlen);
        goto fail;
    }
    WR_TRY_GOTO(st, pread_full(f, hdr, hlen, 8, "the header"), fail);
    WR_TRY_GOTO(st, parse_header(f, hdr, hlen), fail);
    free(hdr);
    hdr = NULL;
    /* Map the whole file read-only: nothing is read until a tensor's pages are touched. */
    f->map_len = (size_t)f->file_size;
    void *m = mmap(NULL, f->map_len, PROT_READ, MAP_SHARED, f->fd, 0);
    if (m == MAP_FAILED) {
        st = WR_FAIL(WR_ERR_IO, "%s: cannot mmap %llu bytes: %s", path,
                     (unsigned long long)f->file_size, strerror(errno));
        goto fail;
    }
    f->base = m;
    f->mapped = 1;
    f->slot = maps_add(f);
    if (f->slot < 0) {
        st = WR_FAIL(WR_ERR_IO, "%s: more than %d safetensors files are open at once", path,
                     WR_ST_MAX_MAPS);
        goto fail;
    }
    *out = f;
    return WR_OK;
fail:
    free(hdr);
    wr_st_close(f);
    return st;
}

wr_status wr_st_open_memory(wr_st_file **out, const void *bytes, size_t nbytes, const char *name) {
    *out = NULL;
    wr_status st;
    wr_st_file *f = file_new(name);
    if (f == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    f->file_size = nbytes;
    if (nbytes < 8) {
        st = WR_FAIL(WR_ERR_FORMAT, "%s: file too small (%zu bytes) to hold a safetensors header",
                     name, nbytes);
        goto fail;
    }
    uint64_t hlen = 0;
    WR_TRY_GOTO(st, check_prefix(f, bytes, &hlen), fail);
    WR_TRY_GOTO(st, parse_header(f, (const char *)bytes + 8, hlen), fail);
    uint8_t *copy = malloc(nbytes);
    if (copy == NULL) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
        goto fail;
    }
    memcpy(copy, bytes, nbytes);
    f->base = copy;
    f->map_len = nbytes;
    *out = f;
    return WR_OK;
fail:
    wr_st_close(f);
    return st;
}

void wr_st_close(wr_st_file *f) {
    if (f == NULL) return;
    if (f->base) {
        if (f->mapped) {
            if (f->slot >= 0) maps_remove(f);
            munmap((void *)f->base, f->map_len);
        } else
            free((void *)f->base);
    }
    if (f->fd >= 0) close(f->fd);
    for (int64_t i = 0; i < f->count; i++) free((char *)f->tensors[i].name);
    for (int64_t i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->tensors);
    free(f->by_name);
    free(f->path);
    free(f);
}

const char *wr_st_path(const wr_st_file *f) {
    return f->path;
}
uint64_t wr_st_file_size(const wr_st_file *f) {
    return f->file_size;
}
int64_t wr_st_count(const wr_st_file *f) {
    return f->count;
}

const wr_st_tensor *wr_st_at(const wr_st_file *f, int64_t i) {
    WR_ASSERT(i >= 0 && i < f->count);
    return &f->tensors[i];
}

const wr_st_tensor *wr_st_find(const wr_st_file *f, const char *name) {
    int64_t lo = 0, hi = f->count - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        const wr_st_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *wr_st_metadata(const wr_st_file *f, const char *key) {
    for (int64_t i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

int64_t wr_st_metadata_count(const wr_st_file *f) {
    return f->nmeta;
}

void wr_st_metadata_at(const wr_st_file *f, int64_t i, const char **key, const char **value) {
    WR_ASSERT(i >= 0 && i < f->nmeta);
    *key = f->meta_keys[i];
    *value = f->meta_vals[i];
}

/* ---- tensor access ---- */

const void *wr_st_tensor_data(const wr_st_tensor *t) {
    return t->file->base + t->offset;
}

wr_tensor wr_st_tensor_view(const wr_st_tensor *t) {
    return wr_tensor_make((void *)(uintptr_t)wr_st_tensor_data(t), t->dtype, t->ndim, t->shape);
}

wr_status wr_st_read_range(const wr_st_tensor *t, uint64_t offset, size_t nbytes, void *dst) {
    if (offset > t->nbytes || nbytes > t->nbytes - offset)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "%s: tensor '%s': range [%llu, +%zu) outside its %zu "
                       "bytes",
                       t->file->path, t->name, (unsigned long long)offset, nbytes, t->nbytes);
    if (nbytes == 0) return WR_OK;
    if (t->file->fd < 0) {
        memcpy(dst, t->file->base + t->offset + offset, nbytes);
        return WR_OK;
    }
    char what[WR_DETAIL_NAME];
    snprintf(what, sizeof what, "tensor '%s'", t->name);
    return pread_full(t->file, dst, nbytes, t->offset + offset, what);
}

wr_status wr_st_read(const wr_st_tensor *t, void *dst, size_t dst_bytes) {
    if (dst_bytes < t->nbytes)
        return WR_FAIL(WR_ERR_INVALID_ARG, "%s: tensor '%s' needs %zu bytes, buffer has %zu",
                       t->file->path, t->name, t->nbytes, dst_bytes);
    return wr_st_read_range(t, 0, t->nbytes, dst);
}

wr_status wr_st_read_as(const wr_st_tensor *t, wr_dtype dtype, void *dst, size_t dst_bytes) {
    size_t need = (size_t)t->nelem * wr_dtype_size(dtype);
    if (dst_bytes < need)
        return WR_FAIL(WR_ERR_INVALID_ARG, "%s: tensor '%s' as %s needs %zu bytes, buffer has %zu",
                       t->file->path, t->name, wr_dtype_name(dtype), need, dst_bytes);
    if (dtype == t->dtype) return wr_st_read(t, dst, dst_bytes);
    wr_status st = wr_dtype_convert(dst, dtype, wr_st_tensor_data(t), t->dtype, t->nelem);
    if (st != WR_OK) {
        wr_error_prefix("%s: tensor '%s'", t->file->path, t->name);
        return st;
    }
    /* converted from the mapping: the SIGBUS guard has zeroed what no longer exists */
    if ((st = file_fault(t->file)) != WR_OK) wr_error_prefix("tensor '%s'", t->name);
    return st;
}

/* ---- sets ---- */

struct wr_st_set {
    char *path;
    char *index_path;
    int64_t nfiles;
    wr_st_file **files;
    int64_t count;
    const wr_st_tensor **sorted; /* by name */
};

static int cmp_tensor_ptr_name(const void *a, const void *b) {
    return strcmp((*(const wr_st_tensor *const *)a)->name, (*(const wr_st_tensor *const *)b)->name);
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (slash == NULL) return xstrdup(".");
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 2);
    if (d == NULL) return NULL;
    if (n == 0) {
        strcpy(d, "/");
        return d;
    }
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

static wr_status set_finish(wr_st_set *s) {
    s->count = 0;
    for (int64_t i = 0; i < s->nfiles; i++) s->count += wr_st_count(s->files[i]);
    s->sorted = calloc((size_t)s->count + 1, sizeof *s->sorted);
    if (s->sorted == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    int64_t k = 0;
    for (int64_t i = 0; i < s->nfiles; i++)
        for (int64_t j = 0; j < wr_st_count(s->files[i]); j++)
            s->sorted[k++] = wr_st_at(s->files[i], j);
    qsort(s->sorted, (size_t)s->count, sizeof *s->sorted, cmp_tensor_ptr_name);
    for (int64_t i = 1; i < s->count; i++)
        if (strcmp(s->sorted[i - 1]->name, s->sorted[i]->name) == 0)
            return WR_FAIL(WR_ERR_FORMAT, "%s: tensor '%s' appears in both %s and %s (duplicate)",
                           s->path, s->sorted[i]->name, s->sorted[i - 1]->file->path,
                           s->sorted[i]->file->path);
    return WR_OK;
}

typedef struct map_entry {
    const char *tensor;
    const char *shard;
} map_entry;

static int cmp_map_entry(const void *a, const void *b) {
    return strcmp(((const map_entry *)a)->tensor, ((const map_entry *)b)->tensor);
}

static wr_status open_index(wr_st_set *s, const char *index_path) {
    wr_status st = WR_OK;
    char *text = NULL, *dir = NULL;
    cJSON *root = NULL;
    map_entry *map = NULL;
    size_t len = 0;
    s->index_path = xstrdup(index_path);
    if (s->index_path == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    WR_TRY_GOTO(
        st, wr_read_small_file(&text, &len, index_path, WR_CONFIG_MAX_BYTES, "a safetensors index"),
        done);
    wr_json_doc doc; /* syntax errors by line, an object at the top, no key twice */
    WR_TRY_GOTO(st, wr_json_parse(&doc, text, len, index_path), done);
    root = doc.root;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        st = WR_FAIL(WR_ERR_FORMAT, "%s: index has no \"weight_map\" object", index_path);
        goto done;
    }
    int n = cJSON_GetArraySize(wm);
    map = calloc((size_t)n + 1, sizeof *map);
    s->files = calloc((size_t)n + 1, sizeof *s->files);
    dir = dir_of(index_path);
    if (map == NULL || s->files == NULL || dir == NULL) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
        goto done;
    }
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it) || it->valuestring[0] == '\0') {
            st = WR_FAIL(WR_ERR_FORMAT, "%s: weight_map entry '%s' is not a shard file name",
                         index_path, it->string);
            goto done;
        }
        const char *shard = it->valuestring;
        if (strchr(shard, '/') != NULL || strcmp(shard, "..") == 0 || strcmp(shard, ".") == 0) {
            st = WR_FAIL(WR_ERR_FORMAT,
                         "%s: weight_map entry '%s': shard '%s' must be a file name "
                         "in the index's folder",
                         index_path, it->string, shard);
            goto done;
        }
        map[k].tensor = it->string;
        map[k].shard = shard;
        k++;
        /* open each distinct shard once */
        int64_t f = 0;
        for (; f < s->nfiles; f++)
            if (strcmp(strrchr(s->files[f]->path, '/') + 1, shard) == 0) break;
        if (f == s->nfiles) {
            char *sp = path_join(dir, shard);
            if (sp == NULL) {
                st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
                goto done;
            }
            struct stat sb;
            if (stat(sp, &sb) != 0) {
                st = WR_FAIL(WR_ERR_NOT_FOUND, "%s: shard '%s' (for tensor '%s') not found: %s",
                             index_path, sp, it->string, strerror(errno));
                free(sp);
                goto done;
            }
            st = wr_st_open(&s->files[s->nfiles], sp);
            free(sp);
            if (st != WR_OK) goto done;
            s->nfiles++;
        }
    }
    qsort(map, (size_t)k, sizeof *map, cmp_map_entry);
    for (int i = 1; i < k; i++) {
        if (strcmp(map[i - 1].tensor, map[i].tensor) == 0) {
            st = WR_FAIL(WR_ERR_FORMAT, "%s: tensor '%s': duplicate weight_map entry", index_path,
                         map[i].tensor);
            goto done;
        }
    }
    /* Every mapped tensor is in its shard ... */
    for (int i = 0; i < k; i++) {
        wr_st_file *f = NULL;
        for (int64_t j = 0; j < s->nfiles; j++)
            if (strcmp(strrchr(s->files[j]->path, '/') + 1, map[i].shard) == 0) f = s->files[j];
        if (f == NULL || wr_st_find(f, map[i].tensor) == NULL) {
            st = WR_FAIL(WR_ERR_FORMAT,
                         "%s: tensor '%s' is mapped to shard '%s', which does not "
                         "contain it",
                         index_path, map[i].tensor, map[i].shard);
            goto done;
        }
    }
    /* ... and every shard tensor is in the map, mapped to that shard. */
    for (int64_t j = 0; j < s->nfiles; j++) {
        const char *base = strrchr(s->files[j]->path, '/') + 1;
        for (int64_t t = 0; t < wr_st_count(s->files[j]); t++) {
            map_entry key = {wr_st_at(s->files[j], t)->name, NULL};
            const map_entry *m = bsearch(&key, map, (size_t)k, sizeof *map, cmp_map_entry);
            if (m == NULL || strcmp(m->shard, base) != 0) {
                st = WR_FAIL(WR_ERR_FORMAT,
                             "%s: tensor '%s' is not listed for this shard in the "
                             "weight_map of %s",
                             s->files[j]->path, key.tensor, index_path);
                goto done;
            }
        }
    }
    st = set_finish(s);
done:
    free(map);
    free(dir);
    free(text);
    cJSON_Delete(root);
    return st;
}

/* Picks the index or the single safetensors file inside a directory. */
static wr_status resolve_dir(char **out, const char *dir) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (d == NULL) return WR_FAIL(WR_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    char *index = NULL, *single = NULL;
    int nindex = 0, nsingle = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (ends_with(e->d_name, ".safetensors.index.json")) {
            nindex++;
            if (index == NULL) index = xstrdup(e->d_name);
        } else if (ends_with(e->d_name, ".safetensors")) {
            nsingle++;
            if (single == NULL) single = xstrdup(e->d_name);
        }
    }
    closedir(d);
    wr_status st = WR_OK;
    const char *pick = NULL;
    if (nindex == 1)
        pick = index;
    else if (nindex > 1)
        st = WR_FAIL(WR_ERR_CONFIG,
                     "%s: holds %d *.safetensors.index.json files; pass the one to "
                     "use",
                     dir, nindex);
    else if (nsingle == 1)
        pick = single;
    else if (nsingle > 1)
        st = WR_FAIL(WR_ERR_CONFIG,
                     "%s: holds %d *.safetensors files and no index; pass the one to "
                     "use",
                     dir, nsingle);
    else
        st =
            WR_FAIL(WR_ERR_NOT_FOUND, "%s: no *.safetensors or *.safetensors.index.json file", dir);
    if (pick != NULL) {
        *out = path_join(dir, pick);
        if (*out == NULL) st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    }
    free(index);
    free(single);
    return st;
}

wr_status wr_st_set_open(wr_st_set **out, const char *path) {
    *out = NULL;
    wr_status st = WR_OK;
    char *resolved = NULL;
    wr_st_set *s = calloc(1, sizeof *s);
    if (s == NULL || (s->path = xstrdup(path)) == NULL) {
        free(s);
        return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        st = wr_fail(errno == ENOENT ? WR_ERR_NOT_FOUND : WR_ERR_IO, "%s: %s", path,
                     strerror(errno));
        goto fail;
    }
    const char *file = path;
    if (S_ISDIR(sb.st_mode)) {
        WR_TRY_GOTO(st, resolve_dir(&resolved, path), fail);
        file = resolved;
    }
    if (ends_with(file, ".json")) {
        WR_TRY_GOTO(st, open_index(s, file), fail);
    } else {
        s->files = calloc(1, sizeof *s->files);
        if (s->files == NULL) {
            st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
            goto fail;
        }
        WR_TRY_GOTO(st, wr_st_open(&s->files[0], file), fail);
        s->nfiles = 1;
        WR_TRY_GOTO(st, set_finish(s), fail);
    }
    free(resolved);
    *out = s;
    return WR_OK;
fail:
    free(resolved);
    wr_st_set_close(s);
    return st;
}

void wr_st_set_close(wr_st_set *s) {
    if (s == NULL) return;
    for (int64_t i = 0; i < s->nfiles; i++) wr_st_close(s->files[i]);
    free(s->files);
    free(s->sorted);
    free(s->index_path);
    free(s->path);
    free(s);
}

const char *wr_st_set_path(const wr_st_set *s) {
    return s->path;
}
int64_t wr_st_set_count(const wr_st_set *s) {
    return s->count;
}
int64_t wr_st_set_nfiles(const wr_st_set *s) {
    return s->nfiles;
}
wr_st_file *wr_st_set_file(const wr_st_set *s, int64_t i) {
    WR_ASSERT(i >= 0 && i < s->nfiles);
    return s->files[i];
}

const wr_st_tensor *wr_st_set_at(const wr_st_set *s, int64_t i) {
    WR_ASSERT(i >= 0 && i < s->count);
    return s->sorted[i];
}

const wr_st_tensor *wr_st_set_find(const wr_st_set *s, const char *name) {
    int64_t lo = 0, hi = s->count - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, s->sorted[mid]->name);
        if (c == 0) return s->sorted[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

wr_status wr_st_set_get(const wr_st_tensor **out, const wr_st_set *s, const char *name) {
    *out = wr_st_set_find(s, name);
    if (*out == NULL) return WR_FAIL(WR_ERR_NOT_FOUND, "%s: tensor '%s' not found", s->path, name);
    return WR_OK;
}

uint64_t wr_st_set_nbytes(const wr_st_set *s) {
    uint64_t n = 0;
    for (int64_t i = 0; i < s->count; i++) n += s->sorted[i]->nbytes;
    return n;
}

/* ---- writer ---- */

typedef struct writer_entry {
    char *name;
    wr_dtype dtype;
    int ndim;
    int64_t shape[WR_MAX_DIMS];
    size_t nbytes;
    const void *data;
} writer_entry;

struct wr_st_writer {
    writer_entry *e;
    int64_t n, cap;
    cJSON *meta;
};

wr_status wr_st_writer_init(wr_st_writer **out) {
    *out = calloc(1, sizeof **out);
    if (*out == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    return WR_OK;
}

void wr_st_writer_free(wr_st_writer *w) {
    if (w == NULL) return;
    for (int64_t i = 0; i < w->n; i++) free(w->e[i].name);
    free(w->e);
    cJSON_Delete(w->meta);
    free(w);
}

wr_status wr_st_writer_add(wr_st_writer *w, const char *name, wr_dtype dtype, int ndim,
                           const int64_t *shape, const void *data) {
    if (ndim < 0 || ndim > WR_MAX_DIMS || (unsigned)dtype >= WR_DTYPE_COUNT ||
        strcmp(name, "__metadata__") == 0)
        return WR_FAIL(WR_ERR_INVALID_ARG, "writer: bad tensor '%s'", name);
    for (int64_t i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return WR_FAIL(WR_ERR_INVALID_ARG, "writer: duplicate tensor name '%s'", name);
    if (w->n == w->cap) {
        int64_t nc = w->cap ? w->cap * 2 : 64;
        writer_entry *ne = realloc(w->e, (size_t)nc * sizeof *ne);
        if (ne == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
        w->e = ne;
        w->cap = nc;
    }
    writer_entry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    size_t nb = wr_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(nb, (size_t)shape[i], &nb))
            return WR_FAIL(WR_ERR_INVALID_ARG, "writer: tensor '%s' has a bad shape", name);
        e->shape[i] = shape[i];
    }
    e->name = xstrdup(name);
    if (e->name == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    e->dtype = dtype;
    e->ndim = ndim;
    e->nbytes = nb;
    e->data = data;
    w->n++;
    return WR_OK;
}

wr_status wr_st_writer_meta(wr_st_writer *w, const char *key, const char *value) {
    if (w->meta == NULL && (w->meta = cJSON_CreateObject()) == NULL)
        return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    cJSON_DeleteItemFromObjectCaseSensitive(w->meta, key);
    if (cJSON_AddStringToObject(w->meta, key, value) == NULL)
        return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    return WR_OK;
}

/* Integers are emitted as raw text so values past 2^31 (and 2^53) print exactly. */
static cJSON *raw_uint(uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return cJSON_CreateRaw(buf);
}

static char *writer_header(const wr_st_writer *w) {
    cJSON *root = cJSON_CreateObject();
    if (root == NULL) return NULL;
    if (w->meta) cJSON_AddItemToObject(root, "__metadata__", cJSON_Duplicate(w->meta, 1));
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n; i++) {
        const writer_entry *e = &w->e[i];
        cJSON *o = cJSON_CreateObject(), *sh = cJSON_CreateArray(), *of = cJSON_CreateArray();
        if (!o || !sh || !of) goto oom_item;
        cJSON_AddStringToObject(o, "dtype", wr_dtype_name(e->dtype));
        for (int d = 0; d < e->ndim; d++) cJSON_AddItemToArray(sh, raw_uint((uint64_t)e->shape[d]));
        cJSON_AddItemToObject(o, "shape", sh);
        cJSON_AddItemToArray(of, raw_uint(off));
        cJSON_AddItemToArray(of, raw_uint(off + e->nbytes));
        cJSON_AddItemToObject(o, "data_offsets", of);
        cJSON_AddItemToObject(root, e->name, o);
        off += e->nbytes;
        continue;
    oom_item:
        cJSON_Delete(o);
        cJSON_Delete(sh);
        cJSON_Delete(of);
        cJSON_Delete(root);
        return NULL;
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static wr_status write_full(int fd, const void *src, size_t n, const char *path) {
    const uint8_t *p = src;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t r = write(fd, p, chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return WR_FAIL(WR_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        p += r;
        n -= (size_t)r;
    }
    return WR_OK;
}

wr_status wr_st_writer_stage(wr_st_writer *w, const char *path, wr_atomic *pending) {
    memset(pending, 0, sizeof *pending);
    pending->fd = pending->slot = -1;
    wr_status st = WR_OK;
    char *hdr = writer_header(w);
    if (hdr == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory building a header");
    size_t hlen = strlen(hdr);
    size_t padded = (hlen + 7) & ~(size_t)7;
    char *hbuf = malloc(8 + padded);
    if (hbuf == NULL) {
        free(hdr);
        return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    }
    for (int i = 0; i < 8; i++) hbuf[i] = (char)(((uint64_t)padded >> (8 * i)) & 0xFF);
    memcpy(hbuf + 8, hdr, hlen);
    memset(hbuf + 8 + hlen, ' ', padded - hlen);
    WR_TRY_GOTO(st, wr_atomic_begin(pending, path, WR_ATOMIC_FILE), done);
    const char *tmp = pending->tmp;
    WR_TRY_GOTO(st, write_full(pending->fd, hbuf, 8 + padded, tmp), done);
    for (int64_t i = 0; i < w->n; i++)
        WR_TRY_GOTO(st, write_full(pending->fd, w->e[i].data, w->e[i].nbytes, tmp), done);
    if (fsync(pending->fd) != 0)
        st = WR_FAIL(WR_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
done:
    if (st != WR_OK) wr_atomic_discard(pending);
    free(hbuf);
    free(hdr);
    return st;
}

wr_status wr_st_writer_write(wr_st_writer *w, const char *path) {
    wr_atomic pending;
    WR_TRY(wr_st_writer_stage(w, path, &pending));
    return wr_atomic_commit(&pending);
}

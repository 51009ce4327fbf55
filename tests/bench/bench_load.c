/*
 * bench_load.c — how fast does a safetensors set load into host memory? (issue #2)
 *
 *   bench_load PATH [--mode pread|mmap|touch|memcpy] [--memcpy] [--threads N] [--cold]
 *              [--repeat K] [--chunk MiB] [--evict auto|drop|fadvise] [--fadvise none|willneed]
 *              [--madvise none|seq|willneed|populate] [--prefetch MiB] [--hugepages]
 *              [--warm cat|self] [--verify]
 *   bench_load PATH --evict-only | --warm-only [--evict auto|drop|fadvise]
 *
 * PATH is what wr_st_set_open takes: a directory, a *.index.json or one .safetensors file.
 * One destination arena holds every tensor (64-byte aligned slots, tensors in name order). It
 * is allocated and pre-touched once and reused by every repeat, so the page faults of the
 * destination cost nothing in any mode. One repeat, the timed region, is:
 *
 *   wr_st_set_open(PATH)  (header parse + validation + mmap)  and then every tensor byte:
 *   pread   wr_st_read_range(tensor, off, n, arena + slot + off)
 *   mmap    memcpy(arena + slot + off, wr_st_tensor_data(tensor) + off, n)
 *   touch   no copy: one byte of every 4 KiB page of wr_st_tensor_data(tensor) is read, so
 *           every page is mapped and resident (the zero-copy path, and what
 *           safetensors.torch.load_file's default mmap backend delivers once touched)
 *   memcpy  memcpy(arena + slot + off, source + slot + off, n) from a pre-touched source
 *           buffer of the same size (the bandwidth ceiling; no file involved)
 *
 * Work items are tensors cut into pieces of at most --chunk MiB (default 16), ordered by file
 * and file offset; N threads (default 1) take the next item from a shared atomic counter, so
 * neighbouring threads read neighbouring file ranges. The set is closed (unmapped) after each
 * repeat outside the timed region, so every mmap repeat pays its page faults like a fresh
 * process would.
 *
 * --cold evicts the shard files from the page cache before each repeat: "drop" writes 3 to
 * /proc/sys/vm/drop_caches (needs root), "fadvise" calls posix_fadvise(DONTNEED) on every
 * shard; "auto" (default) tries drop, then fadvise. After evicting, mincore() on a fresh
 * mapping measures how much of the files is still resident, and the run says so.
 *
 * Hot (no --cold): the files are evicted and read once sequentially the way `cat` reads them
 * (128 KiB read()s after POSIX_FADV_SEQUENTIAL; --warm cat, the default), then one untimed
 * repeat of the method itself runs before the timed ones. Why not warm with the method alone:
 * on this kernel the page cache keeps whatever folio sizes the first reader created (read-
 * ahead builds 2 MiB folios, 4 KiB mmap faults do not), and mapping 2 MiB folios is ~10x
 * cheaper than 4 KiB ones, so the warm-up would decide the result. Every hot measurement of
 * bench_load.sh (cat, bench_load, load_file) starts from the same cat-warmed cache.
 * --warm self skips the eviction and the cat pass. --warm-only / --evict-only do just that
 * step and exit (bench_load.sh uses them before `cat` and python).
 *
 * Cold-read helpers: --fadvise willneed calls posix_fadvise(WILLNEED) on every shard at the
 * start of the timed region; --prefetch MiB runs one extra thread that keeps readahead(2)
 * requests that many MiB ahead of the copying threads; --madvise applies to the mappings in
 * mmap/touch modes.
 *
 * Output: a human-readable summary on stdout and one line
 *   RESULT mode=.. threads=.. cold=.. bytes=.. best_s=.. median_s=.. best_gbs=.. median_gbs=..
 * for scripts. GB/s are 1e9 bytes (the tensor bytes of the set) per second.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/safetensors.h"
#include "core/status.h"

#define ARENA_ALIGN 64
#define MAX_REPEAT  64

enum mode { MODE_PREAD, MODE_MMAP, MODE_TOUCH, MODE_MEMCPY };
enum evict { EVICT_AUTO, EVICT_DROP, EVICT_FADVISE };
enum madv { MADV_OPT_NONE, MADV_OPT_SEQ, MADV_OPT_WILLNEED, MADV_OPT_POPULATE };

typedef struct opts {
    const char *path;
    enum mode mode;
    int threads;
    int cold;
    int repeat;
    size_t chunk;
    enum evict evict;
    int fadvise_willneed;
    enum madv madvise;
    int hugepages;
    int verify;
    int evict_only;
    int warm_only;
    int warm_self;   /* --warm self */
    size_t prefetch; /* bytes ahead; 0: off */
} opts;

/* One piece of one tensor. */
typedef struct item {
    const wr_st_tensor *t; /* NULL in memcpy mode */
    int file;              /* index in the set, for ordering */
    uint64_t foff;         /* file offset of the piece, for ordering */
    uint64_t off;          /* offset inside the tensor */
    size_t n;
    size_t dst;   /* offset in the arena (and in the memcpy source) */
    uint64_t pos; /* bytes of all items before this one, in item order */
} item;

typedef struct job {
    const item *items;
    int64_t nitems;
    enum mode mode;
    unsigned char *arena;
    const unsigned char *src; /* memcpy mode */
    size_t prefetch;          /* the prefetch thread's lead in bytes; 0: no thread */
    const int *fds;           /* per file of the set, for readahead */
    atomic_llong next;
    atomic_int failed;
    atomic_ullong checksum; /* touch mode: keeps the reads alive */
    pthread_mutex_t lock;
    wr_status st;
    char detail[1024];
} job;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_item(const void *a, const void *b) {
    const item *x = a, *y = b;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    return (x->foff > y->foff) - (x->foff < y->foff);
}

/* ---- the arena and the work list ---- */

static size_t align_up(size_t x, size_t a) {
    return (x + a - 1) / a * a;
}

/* Slots in name order (wr_st_set_at order, stable across opens). */
static wr_status layout(size_t **slots_out, size_t *arena_bytes, const wr_st_set *s) {
    int64_t n = wr_st_set_count(s);
    size_t *slots = malloc((size_t)(n ? n : 1) * sizeof(*slots));
    if (!slots) return WR_FAIL(WR_ERR_OOM_HOST, "%" PRId64 " arena slots", n);
    size_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        slots[i] = off;
        off = align_up(off + wr_st_set_at(s, i)->nbytes, ARENA_ALIGN);
    }
    *slots_out = slots;
    *arena_bytes = off;
    return WR_OK;
}

static wr_status make_items(item **out, int64_t *nout, const wr_st_set *s, const size_t *slots,
                            size_t chunk) {
    int64_t n = wr_st_set_count(s), cap = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t nb = wr_st_set_at(s, i)->nbytes;
        cap += nb ? (int64_t)((nb + chunk - 1) / chunk) : 0;
    }
    item *v = malloc((size_t)(cap ? cap : 1) * sizeof(*v));
    if (!v) return WR_FAIL(WR_ERR_OOM_HOST, "%" PRId64 " work items", cap);
    int64_t nfiles = wr_st_set_nfiles(s), k = 0;
    for (int64_t i = 0; i < n; i++) {
        const wr_st_tensor *t = wr_st_set_at(s, i);
        int file = 0;
        for (int64_t j = 0; j < nfiles; j++)
            if (wr_st_set_file(s, j) == t->file) file = (int)j;
        for (uint64_t off = 0; off < t->nbytes; off += chunk) {
            size_t len = t->nbytes - off < chunk ? (size_t)(t->nbytes - off) : chunk;
            v[k++] = (item){.t = t,
                            .file = file,
                            .foff = t->offset + off,
                            .off = off,
                            .n = len,
                            .dst = slots[i] + (size_t)off};
        }
    }
    qsort(v, (size_t)k, sizeof(*v), cmp_item);
    uint64_t pos = 0;
    for (int64_t i = 0; i < k; i++) {
        v[i].pos = pos;
        pos += v[i].n;
    }
    *out = v;
    *nout = k;
    return WR_OK;
}

/* Anonymous, optionally THP-backed, pre-touched memory. */
static wr_status alloc_touched(unsigned char **out, size_t nbytes, int hugepages, int fill) {
    void *p = mmap(NULL, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return WR_FAIL(WR_ERR_OOM_HOST, "mmap %zu bytes", nbytes);
    if (hugepages) madvise(p, nbytes, MADV_HUGEPAGE);
    memset(p, fill, nbytes);
    *out = p;
    return WR_OK;
}

/* ---- page cache ---- */

/* Fraction of the file's pages in the page cache, by mincore on a fresh mapping. */
static double resident_fraction(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    struct stat sb;
    double frac = -1;
    if (fstat(fd, &sb) == 0 && sb.st_size > 0) {
        size_t len = (size_t)sb.st_size, pg = (size_t)sysconf(_SC_PAGESIZE);
        size_t npages = (len + pg - 1) / pg;
        void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        unsigned char *vec = malloc(npages);
        if (m != MAP_FAILED && vec && mincore(m, len, vec) == 0) {
            size_t in = 0;
            for (size_t i = 0; i < npages; i++) in += vec[i] & 1;
            frac = (double)in / (double)npages;
        }
        free(vec);
        if (m != MAP_FAILED) munmap(m, len);
    }
    close(fd);
    return frac;
}

static int drop_caches(void) {
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0) return -1;
    int ok = write(fd, "3", 1) == 1;
    close(fd);
    return ok ? 0 : -1;
}

static int fadvise_all(char **paths, int64_t n, int advice) {
    int rc = 0;
    for (int64_t i = 0; i < n; i++) {
        int fd = open(paths[i], O_RDONLY);
        if (fd < 0) {
            rc = -1;
            continue;
        }
        if (posix_fadvise(fd, 0, 0, advice) != 0) rc = -1;
        close(fd);
    }
    return rc;
}

/* Evicts the files; returns the method used ("drop_caches", "fadvise") or NULL. */
static const char *evict(char **paths, int64_t n, enum evict how) {
    if (how != EVICT_FADVISE && drop_caches() == 0) return "drop_caches";
    if (how == EVICT_DROP) return NULL;
    return fadvise_all(paths, n, POSIX_FADV_DONTNEED) == 0 ? "fadvise(DONTNEED)" : NULL;
}

/* Reads every file once, sequentially, as `cat` does (coreutils 9: fadvise SEQUENTIAL, 128 KiB
 * reads). Returns 0, or -1 when a file cannot be read. */
static int read_like_cat(char **paths, int64_t n) {
    enum { BUF = 128 << 10 };
    char *buf = malloc(BUF);
    int rc = buf ? 0 : -1;
    for (int64_t i = 0; i < n && rc == 0; i++) {
        int fd = open(paths[i], O_RDONLY);
        if (fd < 0) {
            rc = -1;
            break;
        }
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        ssize_t r;
        while ((r = read(fd, buf, BUF)) > 0) {}
        if (r < 0) rc = -1;
        close(fd);
    }
    free(buf);
    return rc;
}

static double resident_all(char **paths, int64_t n) {
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t i = 0; i < n; i++) {
        double f = resident_fraction(paths[i]);
        if (f >= 0) {
            sum += f;
            cnt++;
        }
    }
    return cnt ? sum / (double)cnt : -1;
}

/* madvise over each file's mapped tensor span (reached through the tensors' pointers). */
static void advise_mappings(const wr_st_set *s, enum madv how) {
    if (how == MADV_OPT_NONE) return;
    int64_t nfiles = wr_st_set_nfiles(s);
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int64_t j = 0; j < nfiles; j++) {
        wr_st_file *f = wr_st_set_file(s, j);
        uintptr_t lo = UINTPTR_MAX, hi = 0;
        for (int64_t i = 0; i < wr_st_count(f); i++) {
            const wr_st_tensor *t = wr_st_at(f, i);
            if (!t->nbytes) continue;
            uintptr_t p = (uintptr_t)wr_st_tensor_data(t);
            if (p < lo) lo = p;
            if (p + t->nbytes > hi) hi = p + t->nbytes;
        }
        if (hi <= lo) continue;
        lo &= ~(pg - 1);
        hi = (hi + pg - 1) & ~(pg - 1);
        int adv = how == MADV_OPT_SEQ        ? MADV_SEQUENTIAL
                  : how == MADV_OPT_WILLNEED ? MADV_WILLNEED
                                             :
#ifdef MADV_POPULATE_READ
                                             MADV_POPULATE_READ;
#else
                                             MADV_WILLNEED;
#endif
        madvise((void *)lo, hi - lo, adv);
    }
}

/* ---- the copy loop ---- */

/* Keeps readahead(2) requests up to jb->prefetch bytes ahead of the workers' position. */
static void *prefetcher(void *arg) {
    job *jb = arg;
    for (int64_t i = 0; i < jb->nitems; i++) {
        const item *it = &jb->items[i];
        for (;;) {
            if (atomic_load(&jb->failed)) return NULL;
            long long nx = atomic_load(&jb->next);
            if (nx >= jb->nitems) return NULL;
            if (it->pos <= jb->items[nx].pos + jb->prefetch) break;
            nanosleep(&(struct timespec){0, 100000}, NULL); /* 0.1 ms */
        }
        readahead(jb->fds[it->file], (off64_t)it->foff, it->n);
    }
    return NULL;
}

static void *worker(void *arg) {
    job *jb = arg;
    for (;;) {
        if (atomic_load(&jb->failed)) break;
        long long i = atomic_fetch_add(&jb->next, 1);
        if (i >= jb->nitems) break;
        const item *it = &jb->items[i];
        unsigned char *dst = jb->arena + it->dst;
        if (jb->mode == MODE_PREAD) {
            wr_status st = wr_st_read_range(it->t, it->off, it->n, dst);
            if (st != WR_OK) {
                pthread_mutex_lock(&jb->lock);
                if (!atomic_load(&jb->failed)) {
                    jb->st = st;
                    snprintf(jb->detail, sizeof(jb->detail), "%s", wr_error_detail());
                }
                atomic_store(&jb->failed, 1);
                pthread_mutex_unlock(&jb->lock);
                break;
            }
        } else if (jb->mode == MODE_MMAP) {
            memcpy(dst, (const unsigned char *)wr_st_tensor_data(it->t) + it->off, it->n);
        } else if (jb->mode == MODE_TOUCH) {
            const volatile unsigned char *p =
                (const unsigned char *)wr_st_tensor_data(it->t) + it->off;
            unsigned long long sum = 0;
            for (size_t k = 0; k < it->n; k += 4096) sum += p[k];
            sum += p[it->n - 1];
            atomic_fetch_add(&jb->checksum, sum);
        } else {
            memcpy(dst, jb->src + it->dst, it->n);
        }
    }
    return NULL;
}

static wr_status run_job(job *jb, int threads) {
    atomic_store(&jb->next, 0);
    atomic_store(&jb->failed, 0);
    jb->st = WR_OK;
    pthread_t tid[64], pf;
    int started = 0, pf_started = 0;
    if (jb->prefetch && jb->fds) pf_started = pthread_create(&pf, NULL, prefetcher, jb) == 0;
    for (int i = 1; i < threads; i++) {
        if (pthread_create(&tid[started], NULL, worker, jb) != 0) break;
        started++;
    }
    worker(jb); /* the calling thread works too */
    for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
    if (pf_started) {
        atomic_store(&jb->next, jb->nitems); /* a failed run: stop the prefetcher too */
        pthread_join(pf, NULL);
    }
    if (jb->st != WR_OK) return wr_fail(jb->st, "%s", jb->detail);
    return WR_OK;
}

/* ---- one repeat ---- */

typedef struct bench {
    opts o;
    size_t *slots;
    size_t arena_bytes;
    uint64_t data_bytes;
    unsigned char *arena, *src;
    item *fixed_items; /* memcpy mode: built once */
    int64_t nfixed;
    char **paths;
    int64_t npaths;
    int *fds; /* our own read-only fds of the shards, for readahead(2) */
    const char *evicted_with;
} bench;

/* Evicts the shards from the page cache (and says how, and what is left), then with `warm`
 * reads them once like `cat`. */
static wr_status evict_and_warm(bench *b, int warm) {
    b->evicted_with = evict(b->paths, b->npaths, b->o.evict);
    if (!b->evicted_with)
        return WR_FAIL(WR_ERR_IO, "cannot evict the files from the page cache (drop_caches and "
                                  "fadvise both failed)");
    printf("evicted with %s: %.1f%% still resident\n", b->evicted_with,
           100.0 * resident_all(b->paths, b->npaths));
    if (!warm) return WR_OK;
    double t0 = now_s();
    if (read_like_cat(b->paths, b->npaths) != 0)
        return WR_FAIL(WR_ERR_IO, "cannot read the shards (%s, ...): %s", b->paths[0],
                       strerror(errno));
    printf("warmed like cat in %.3f s: %.1f%% resident\n", now_s() - t0,
           100.0 * resident_all(b->paths, b->npaths));
    return WR_OK;
}

/* One timed repeat; *secs and *open_secs out. */
static wr_status one_repeat(bench *b, double *secs, double *open_secs, int verify) {
    wr_st_set *s = NULL;
    item *items = NULL;
    int64_t nitems = 0;
    wr_status st = WR_OK;
    job jb = {.mode = b->o.mode,
              .arena = b->arena,
              .src = b->src,
              .prefetch = b->o.prefetch,
              .fds = b->fds};
    pthread_mutex_init(&jb.lock, NULL);

    double t0 = now_s();
    if (b->o.mode == MODE_MEMCPY) {
        jb.items = b->fixed_items;
        jb.nitems = b->nfixed;
        *open_secs = 0;
    } else {
        if (b->o.fadvise_willneed) fadvise_all(b->paths, b->npaths, POSIX_FADV_WILLNEED);
        WR_TRY_GOTO(st, wr_st_set_open(&s, b->o.path), done);
        *open_secs = now_s() - t0;
        WR_TRY_GOTO(st, make_items(&items, &nitems, s, b->slots, b->o.chunk), done);
        if (b->o.mode == MODE_MMAP || b->o.mode == MODE_TOUCH) advise_mappings(s, b->o.madvise);
        jb.items = items;
        jb.nitems = nitems;
    }
    WR_TRY_GOTO(st, run_job(&jb, b->o.threads), done);
    *secs = now_s() - t0;

    if (verify && s &&
        b->o.mode != MODE_TOUCH) { /* untimed: the arena must equal the file's bytes */
        for (int64_t i = 0; i < wr_st_set_count(s); i++) {
            const wr_st_tensor *t = wr_st_set_at(s, i);
            if (t->nbytes && memcmp(b->arena + b->slots[i], wr_st_tensor_data(t), t->nbytes)) {
                st = WR_FAIL(WR_ERR_INTERNAL, "verify: tensor %s differs from the file", t->name);
                goto done;
            }
        }
        printf("verify: all %" PRId64 " tensors equal the file bytes\n", wr_st_set_count(s));
    }
done:
    free(items);
    wr_st_set_close(s);
    pthread_mutex_destroy(&jb.lock);
    return st;
}

/* ---- main ---- */

static void usage(void) {
    fprintf(stderr,
            "usage: bench_load PATH [--mode pread|mmap|touch|memcpy] [--memcpy] [--threads N] "
            "[--cold]\n"
            "       [--repeat K] [--chunk MiB] [--evict auto|drop|fadvise] "
            "[--fadvise none|willneed]\n"
            "       [--madvise none|seq|willneed|populate] [--prefetch MiB] [--hugepages]\n"
            "       [--warm cat|self] [--verify]\n"
            "       bench_load PATH --evict-only | --warm-only [--evict auto|drop|fadvise]\n");
}

static int parse_args(opts *o, int argc, char **argv) {
    *o = (opts){.mode = MODE_PREAD, .threads = 1, .repeat = 3, .chunk = (size_t)16 << 20};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--mode") && v) {
            i++;
            if (!strcmp(v, "pread"))
                o->mode = MODE_PREAD;
            else if (!strcmp(v, "mmap"))
                o->mode = MODE_MMAP;
            else if (!strcmp(v, "touch"))
                o->mode = MODE_TOUCH;
            else if (!strcmp(v, "memcpy"))
                o->mode = MODE_MEMCPY;
            else
                return -1;
        } else if (!strcmp(a, "--memcpy")) {
            o->mode = MODE_MEMCPY;
        } else if (!strcmp(a, "--threads") && v) {
            o->threads = atoi(argv[++i]);
            if (o->threads < 1 || o->threads > 64) return -1;
        } else if (!strcmp(a, "--repeat") && v) {
            o->repeat = atoi(argv[++i]);
            if (o->repeat < 1 || o->repeat > MAX_REPEAT) return -1;
        } else if (!strcmp(a, "--chunk") && v) {
            double mib = atof(argv[++i]);
            if (mib <= 0) return -1;
            o->chunk = align_up((size_t)(mib * 1048576.0), 4096);
        } else if (!strcmp(a, "--cold")) {
            o->cold = 1;
        } else if (!strcmp(a, "--evict") && v) {
            i++;
            if (!strcmp(v, "auto"))
                o->evict = EVICT_AUTO;
            else if (!strcmp(v, "drop"))
                o->evict = EVICT_DROP;
            else if (!strcmp(v, "fadvise"))
                o->evict = EVICT_FADVISE;
            else
                return -1;
        } else if (!strcmp(a, "--fadvise") && v) {
            i++;
            if (!strcmp(v, "willneed"))
                o->fadvise_willneed = 1;
            else if (strcmp(v, "none"))
                return -1;
        } else if (!strcmp(a, "--madvise") && v) {
            i++;
            if (!strcmp(v, "none"))
                o->madvise = MADV_OPT_NONE;
            else if (!strcmp(v, "seq"))
                o->madvise = MADV_OPT_SEQ;
            else if (!strcmp(v, "willneed"))
                o->madvise = MADV_OPT_WILLNEED;
            else if (!strcmp(v, "populate"))
                o->madvise = MADV_OPT_POPULATE;
            else
                return -1;
        } else if (!strcmp(a, "--hugepages")) {
            o->hugepages = 1;
        } else if (!strcmp(a, "--verify")) {
            o->verify = 1;
        } else if (!strcmp(a, "--evict-only")) {
            o->evict_only = 1;
        } else if (!strcmp(a, "--warm-only")) {
            o->warm_only = 1;
        } else if (!strcmp(a, "--warm") && v) {
            i++;
            if (!strcmp(v, "self"))
                o->warm_self = 1;
            else if (strcmp(v, "cat"))
                return -1;
        } else if (!strcmp(a, "--prefetch") && v) {
            double mib = atof(argv[++i]);
            if (mib < 0) return -1;
            o->prefetch = (size_t)(mib * 1048576.0);
        } else if (a[0] != '-' && !o->path) {
            o->path = a;
        } else {
            return -1;
        }
    }
    return o->path ? 0 : -1;
}

static const char *mode_name(enum mode m) {
    return m == MODE_PREAD   ? "pread"
           : m == MODE_MMAP  ? "mmap"
           : m == MODE_TOUCH ? "touch"
                             : "memcpy";
}

static wr_status run(bench *b) {
    wr_st_set *s = NULL;
    wr_status st = WR_OK;
    double secs[MAX_REPEAT], opens[MAX_REPEAT];
    const opts *o = &b->o;

    /* Untimed setup: the layout, the shard paths, the arena (and the memcpy source). */
    WR_TRY_GOTO(st, wr_st_set_open(&s, o->path), done);
    WR_TRY_GOTO(st, layout(&b->slots, &b->arena_bytes, s), done);
    b->data_bytes = wr_st_set_nbytes(s);
    b->npaths = wr_st_set_nfiles(s);
    b->paths = calloc((size_t)b->npaths, sizeof(*b->paths));
    if (!b->paths) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "path list");
        goto done;
    }
    for (int64_t j = 0; j < b->npaths; j++) {
        b->paths[j] = strdup(wr_st_path(wr_st_set_file(s, j)));
        if (!b->paths[j]) {
            st = WR_FAIL(WR_ERR_OOM_HOST, "path list");
            goto done;
        }
    }
    wr_st_set_close(s); /* unmapped, so that eviction can drop every page */
    s = NULL;
    if (o->evict_only || o->warm_only) { /* the same steps for `cat` and python */
        WR_TRY_GOTO(st, evict_and_warm(b, o->warm_only), done);
        goto done;
    }
    if (o->prefetch) {
        b->fds = malloc((size_t)b->npaths * sizeof(*b->fds));
        if (!b->fds) {
            st = WR_FAIL(WR_ERR_OOM_HOST, "fd list");
            goto done;
        }
        for (int64_t j = 0; j < b->npaths; j++) b->fds[j] = open(b->paths[j], O_RDONLY);
    }
    WR_TRY_GOTO(st, wr_st_set_open(&s, o->path), done);
    printf("set %s: %" PRId64 " tensors in %" PRId64 " file(s), %" PRIu64 " bytes of data\n",
           o->path, wr_st_set_count(s), b->npaths, b->data_bytes);
    WR_TRY_GOTO(st, alloc_touched(&b->arena, b->arena_bytes ? b->arena_bytes : 1, o->hugepages, 0),
                done);
    if (o->mode == MODE_MEMCPY) {
        WR_TRY_GOTO(st,
                    alloc_touched(&b->src, b->arena_bytes ? b->arena_bytes : 1, o->hugepages, 0x5a),
                    done);
        WR_TRY_GOTO(st, make_items(&b->fixed_items, &b->nfixed, s, b->slots, o->chunk), done);
    }
    wr_st_set_close(s);
    s = NULL;

    printf("mode %s, %d thread(s), %s%s, chunk %.1f MiB, %d repeat(s), prefetch %.0f MiB%s%s%s%s\n",
           mode_name(o->mode), o->threads, o->cold ? "cold" : "hot",
           o->cold || o->mode == MODE_MEMCPY ? ""
           : o->warm_self                    ? " (warm: self)"
                                             : " (warm: cat)",
           (double)o->chunk / 1048576.0, o->repeat, (double)o->prefetch / 1048576.0,
           o->hugepages ? ", THP arena" : "", o->fadvise_willneed ? ", fadvise WILLNEED" : "",
           o->madvise == MADV_OPT_SEQ        ? ", madvise SEQUENTIAL"
           : o->madvise == MADV_OPT_WILLNEED ? ", madvise WILLNEED"
           : o->madvise == MADV_OPT_POPULATE ? ", madvise POPULATE_READ"
                                             : "",
           o->verify ? ", verify" : "");

    const char *how = "none";
    if (!o->cold && o->mode != MODE_MEMCPY) { /* warm-up: fills the page cache */
        double w, wo;
        if (!o->warm_self) WR_TRY_GOTO(st, evict_and_warm(b, 1), done);
        WR_TRY_GOTO(st, one_repeat(b, &w, &wo, 0), done);
        printf("warm-up: %.3f s (%.2f GB/s)\n", w, (double)b->data_bytes / w / 1e9);
    }
    for (int r = 0; r < o->repeat; r++) {
        if (o->cold && o->mode != MODE_MEMCPY) {
            WR_TRY_GOTO(st, evict_and_warm(b, 0), done);
            how = b->evicted_with;
        }
        WR_TRY_GOTO(st, one_repeat(b, &secs[r], &opens[r], o->verify && r == o->repeat - 1), done);
        printf("repeat %d: %.3f s (open %.1f ms), %.2f GB/s\n", r + 1, secs[r], 1e3 * opens[r],
               (double)b->data_bytes / secs[r] / 1e9);
    }
    qsort(secs, (size_t)o->repeat, sizeof(double), cmp_double);
    double best = secs[0];
    double med =
        o->repeat % 2 ? secs[o->repeat / 2] : 0.5 * (secs[o->repeat / 2 - 1] + secs[o->repeat / 2]);
    printf("best %.2f GB/s, median %.2f GB/s\n", (double)b->data_bytes / best / 1e9,
           (double)b->data_bytes / med / 1e9);
    printf("RESULT mode=%s threads=%d cold=%d evict=%s bytes=%" PRIu64
           " best_s=%.4f median_s=%.4f best_gbs=%.3f median_gbs=%.3f\n",
           mode_name(o->mode), o->threads, o->cold, o->cold ? how : "none", b->data_bytes, best,
           med, (double)b->data_bytes / best / 1e9, (double)b->data_bytes / med / 1e9);
done:
    wr_st_set_close(s);
    return st;
}

int main(int argc, char **argv) {
    bench b = {0};
    if (parse_args(&b.o, argc, argv) != 0) {
        usage();
        return 2;
    }
    wr_status st = run(&b);
    if (st != WR_OK) fprintf(stderr, "bench_load: %s: %s\n", wr_status_name(st), wr_error_detail());
    if (b.arena) munmap(b.arena, b.arena_bytes ? b.arena_bytes : 1);
    if (b.src) munmap(b.src, b.arena_bytes ? b.arena_bytes : 1);
    for (int64_t j = 0; j < b.npaths; j++) {
        free(b.paths[j]);
        if (b.fds && b.fds[j] >= 0) close(b.fds[j]);
    }
    free(b.fds);
    free(b.paths);
    free(b.slots);
    free(b.fixed_items);
    return st == WR_OK ? 0 : 1;
}

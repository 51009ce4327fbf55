/*
 * bench_load.c — how fast does a safetensors set load into host memory? (issue #2)
 *
 *   bench_load PATH [--mode pread|mmap|touch|direct|memcpy] [--memcpy] [--threads N] [--cold]
 *              [--repeat K] [--chunk MiB] [--pair-memcpy] [--fresh-arena] [--hugepages]
 *              [--evict auto|drop|fadvise] [--warm cat|self] [--fadvise none|willneed]
 *              [--madvise none|seq|willneed|populate] [--prefetch MiB] [--verify]
 *   bench_load PATH --evict-only | --warm-only [--evict auto|drop|fadvise]
 *
 * PATH is what wr_st_set_open takes: a directory, a *.index.json or one .safetensors file.
 * One destination arena holds every tensor (64-byte aligned slots, tensors in name order). It
 * is allocated and pre-touched once and reused by every repeat, so the page faults of the
 * destination cost nothing in any mode (--hugepages: the arena is MADV_HUGEPAGE). One repeat,
 * the timed region, is:
 *
 *   wr_st_set_open(PATH)  (header parse + validation + mmap)  and then every tensor byte:
 *   pread   wr_st_read_range(tensor, off, n, arena + slot + off)
 *   mmap    memcpy(arena + slot + off, wr_st_tensor_data(tensor) + off, n)
 *   touch   no copy: one byte of every 4 KiB page of wr_st_tensor_data(tensor) is read, so
 *           every page is mapped and resident (the zero-copy path, and what
 *           safetensors.torch.load_file's default mmap backend delivers once touched)
 *   direct  not the library's read path: bench_load opens each shard itself with O_DIRECT and
 *           preads the whole file, in --chunk pieces, into the arena (laid out as the file
 *           images, each rounded up to a whole chunk; a tensor then sits at its file offset).
 *           The page cache is bypassed: no page cache pages to allocate, no second copy.
 *           (The library's header parse and validation still run, in wr_st_set_open.)
 *   memcpy  memcpy(arena + slot + off, source + slot + off, n) from a pre-touched source
 *           buffer of the same size (the bandwidth ceiling; no file involved)
 *
 * Work items are tensors cut into pieces of at most --chunk MiB (default 16), ordered by file
 * and file offset; N threads (default 1) take the next item from a shared atomic counter, so
 * neighbouring threads read neighbouring file ranges. The set is closed (unmapped) after each
 * repeat outside the timed region, so every mmap repeat pays its page faults like a fresh
 * process would.
 *
 * --cold evicts the shard files from the page cache before each repeat: "fadvise" calls
 * posix_fadvise(DONTNEED) on every shard, "drop" writes 3 to /proc/sys/vm/drop_caches (needs
 * root), "auto" (default) does fadvise and falls back to drop_caches when more than 0.1 % of
 * the pages stay resident. After evicting, mincore() on a fresh mapping measures how much of
 * the files is still resident, and the run prints it.
 *
 * Hot (no --cold): the files are evicted and read once sequentially the way `cat` reads them
 * (128 KiB read()s after POSIX_FADV_SEQUENTIAL; --warm cat, the default), then one untimed
 * repeat of the method itself runs before the timed ones. Why not warm with the method alone:
 * the page cache keeps the folio sizes its first reader's I/O path created (large folios,
 * up to 2 MiB, on this 6.18 kernel), and the cost of mapping a cached file changes with them
 * by an order of magnitude (a PMD-mapped 2 MiB folio is one fault instead of 512), so the
 * warm-up method would decide the hot result. Every hot measurement of bench_load.sh (cat,
 * bench_load, load_file) starts from the same cat-warmed cache.
 * --warm self skips the eviction and the cat pass. --warm-only / --evict-only do just that
 * step and exit (bench_load.sh uses them before `cat` and python).
 *
 * Cold-read helpers: --fadvise willneed calls posix_fadvise(WILLNEED) on every shard at the
 * start of the timed region; --prefetch MiB runs one extra thread that keeps readahead(2)
 * requests that many MiB ahead of the copying threads; --madvise applies to the mappings in
 * mmap/touch modes.
 *
 * --fresh-arena: the arena is mmap'd (not touched) inside each timed repeat and unmapped after
 * it, so the destination's page faults are paid like a loader that allocates its tensors
 * (safetensors.torch.load_file does); not with --pair-memcpy.
 *
 * --pair-memcpy (hot only): after each timed repeat, the same items are memcpy'd from a
 * pre-touched source buffer into the same arena with the same threads, and the ratio of the
 * two is reported per repeat: a measurement that drifts with the machine's load is compared
 * with a baseline taken seconds apart, not minutes.
 *
 * Output: a human-readable summary on stdout and one line
 *   RESULT mode=.. threads=.. cold=.. bytes=.. best_s=.. median_s=.. best_gbs=.. median_gbs=..
 *          [memcpy_median_gbs=.. pct_of_memcpy=..]
 * for scripts. GB/s are 1e9 bytes (the tensor bytes of the set) per second. --verify compares
 * the arena with the file bytes after the last repeat (untimed).
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

enum mode { MODE_PREAD, MODE_MMAP, MODE_TOUCH, MODE_DIRECT, MODE_MEMCPY };
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
    int pair_memcpy;
    int fresh_arena;
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
    const int *dfds;          /* direct mode: O_DIRECT fds per file */
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

/* Sorts v[0..n) in place and returns its median. */
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
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

/* Direct mode: every file whole, in chunk pieces (chunk is a multiple of 4096, so offsets,
 * lengths and destinations stay O_DIRECT-aligned); file j lands at arena + base[j]. */
static wr_status make_direct_items(item **out, int64_t *nout, const wr_st_set *s,
                                   const size_t *base, size_t chunk) {
    int64_t nfiles = wr_st_set_nfiles(s), cap = 0, k = 0;
    for (int64_t j = 0; j < nfiles; j++)
        cap += (int64_t)((wr_st_file_size(wr_st_set_file(s, j)) + chunk - 1) / chunk);
    item *v = malloc((size_t)(cap ? cap : 1) * sizeof(*v));
    if (!v) return WR_FAIL(WR_ERR_OOM_HOST, "%" PRId64 " work items", cap);
    uint64_t pos = 0;
    for (int64_t j = 0; j < nfiles; j++) {
        uint64_t size = wr_st_file_size(wr_st_set_file(s, j));
        for (uint64_t off = 0; off < size; off += chunk) {
            v[k++] =
                (item){.file = (int)j, .foff = off, .n = chunk, .dst = base[j] + off, .pos = pos};
            pos += chunk;
        }
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

static double resident_all(char **paths, int64_t n);

/* Evicts the files; returns the method used or NULL, and the fraction still resident. "auto"
 * first drops just these files (fadvise DONTNEED: the files are clean and, with the set
 * closed, unmapped), and only when pages stay resident drops the whole page cache: on a
 * shared machine drop_caches throws away every other process's cache too. */
static const char *evict(char **paths, int64_t n, enum evict how, double *resident) {
    const char *used = NULL;
    if (how != EVICT_DROP && fadvise_all(paths, n, POSIX_FADV_DONTNEED) == 0)
        used = "fadvise(DONTNEED)";
    *resident = resident_all(paths, n);
    if (how == EVICT_DROP || (how == EVICT_AUTO && (!used || *resident > 0.001))) {
        used = drop_caches() == 0 ? (used ? "fadvise(DONTNEED)+drop_caches" : "drop_caches") : used;
        *resident = resident_all(paths, n);
    }
    return used;
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
        } else if (jb->mode == MODE_DIRECT) {
            size_t done = 0;
            while (done < it->n) {
                ssize_t r =
                    pread(jb->dfds[it->file], dst + done, it->n - done, (off_t)(it->foff + done));
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) { /* 0: end of file, the last piece is rounded up */
                    if (r < 0) {
                        pthread_mutex_lock(&jb->lock);
                        if (!atomic_load(&jb->failed)) {
                            jb->st = WR_ERR_IO;
                            snprintf(jb->detail, sizeof(jb->detail),
                                     "O_DIRECT pread of file %d at %llu: %s", it->file,
                                     (unsigned long long)(it->foff + done), strerror(errno));
                        }
                        atomic_store(&jb->failed, 1);
                        pthread_mutex_unlock(&jb->lock);
                    }
                    break;
                }
                done += (size_t)r;
            }
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
    int *fds;          /* our own read-only fds of the shards, for readahead(2) */
    size_t *file_base; /* direct mode: where each file image starts in the arena */
    const char *evicted_with;
} bench;

/* Evicts the shards from the page cache (and says how, and what is left), then with `warm`
 * reads them once like `cat`. */
static wr_status evict_and_warm(bench *b, int warm) {
    double resident;
    b->evicted_with = evict(b->paths, b->npaths, b->o.evict, &resident);
    if (!b->evicted_with)
        return WR_FAIL(WR_ERR_IO, "cannot evict the files from the page cache (drop_caches and "
                                  "fadvise both failed)");
    printf("evicted with %s: %.1f%% still resident\n", b->evicted_with, 100.0 * resident);
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
    int *dfds = NULL;
    wr_status st = WR_OK;
    job jb = {.mode = b->o.mode,
              .arena = b->arena,
              .src = b->src,
              .prefetch = b->o.prefetch,
              .fds = b->fds};
    pthread_mutex_init(&jb.lock, NULL);

    double t0 = now_s();
    if (b->o.fresh_arena) {
        void *p = mmap(NULL, b->arena_bytes ? b->arena_bytes : 1, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            st = WR_FAIL(WR_ERR_OOM_HOST, "mmap %zu bytes", b->arena_bytes);
            goto done;
        }
        if (b->o.hugepages) madvise(p, b->arena_bytes, MADV_HUGEPAGE);
        b->arena = jb.arena = p;
    }
    if (b->o.mode == MODE_MEMCPY) {
        jb.items = b->fixed_items;
        jb.nitems = b->nfixed;
        *open_secs = 0;
    } else {
        if (b->o.fadvise_willneed) fadvise_all(b->paths, b->npaths, POSIX_FADV_WILLNEED);
        WR_TRY_GOTO(st, wr_st_set_open(&s, b->o.path), done);
        *open_secs = now_s() - t0;
        if (b->o.mode == MODE_DIRECT) {
            dfds = malloc((size_t)b->npaths * sizeof(*dfds));
            if (!dfds) {
                st = WR_FAIL(WR_ERR_OOM_HOST, "fd list");
                goto done;
            }
            for (int64_t j = 0; j < b->npaths; j++) dfds[j] = -1;
            for (int64_t j = 0; j < b->npaths; j++) {
                dfds[j] = open(b->paths[j], O_RDONLY | O_DIRECT | O_CLOEXEC);
                if (dfds[j] < 0) {
                    st = WR_FAIL(WR_ERR_IO, "%s: open with O_DIRECT: %s", b->paths[j],
                                 strerror(errno));
                    goto done;
                }
            }
            jb.dfds = dfds;
            WR_TRY_GOTO(st, make_direct_items(&items, &nitems, s, b->file_base, b->o.chunk), done);
        } else {
            WR_TRY_GOTO(st, make_items(&items, &nitems, s, b->slots, b->o.chunk), done);
        }
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
            size_t at = b->slots[i];
            if (b->o.mode == MODE_DIRECT)
                for (int64_t j = 0; j < b->npaths; j++)
                    if (wr_st_set_file(s, j) == t->file) at = b->file_base[j] + t->offset;
            if (t->nbytes && memcmp(b->arena + at, wr_st_tensor_data(t), t->nbytes)) {
                st = WR_FAIL(WR_ERR_INTERNAL, "verify: tensor %s differs from the file", t->name);
                goto done;
            }
        }
        printf("verify: all %" PRId64 " tensors equal the file bytes\n", wr_st_set_count(s));
    }
done:
    if (b->o.fresh_arena && b->arena) {
        munmap(b->arena, b->arena_bytes ? b->arena_bytes : 1);
        b->arena = NULL;
    }
    for (int64_t j = 0; dfds && j < b->npaths; j++)
        if (dfds[j] >= 0) close(dfds[j]);
    free(dfds);
    free(items);
    wr_st_set_close(s);
    pthread_mutex_destroy(&jb.lock);
    return st;
}

/* ---- main ---- */

static void usage(void) {
    fprintf(
        stderr,
        "usage: bench_load PATH [--mode pread|mmap|touch|direct|memcpy] [--memcpy] [--threads N]\n"
        "         [--cold] [--repeat K] [--chunk MiB] [--pair-memcpy] [--fresh-arena] "
        "[--hugepages]\n"
        "         [--evict auto|drop|fadvise] [--warm cat|self] [--fadvise none|willneed]\n"
        "         [--madvise none|seq|willneed|populate] [--prefetch MiB] [--verify]\n"
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
            else if (!strcmp(v, "direct"))
                o->mode = MODE_DIRECT;
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
        } else if (!strcmp(a, "--fresh-arena")) {
            o->fresh_arena = 1;
        } else if (!strcmp(a, "--pair-memcpy")) {
            o->pair_memcpy = 1;
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
    return m == MODE_PREAD    ? "pread"
           : m == MODE_MMAP   ? "mmap"
           : m == MODE_TOUCH  ? "touch"
           : m == MODE_DIRECT ? "direct"
                              : "memcpy";
}

static wr_status run(bench *b) {
    wr_st_set *s = NULL;
    wr_status st = WR_OK;
    double secs[MAX_REPEAT], opens[MAX_REPEAT], msecs[MAX_REPEAT], ratio[MAX_REPEAT];
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
    if (o->fresh_arena && (o->pair_memcpy || o->mode == MODE_MEMCPY)) {
        st = WR_FAIL(WR_ERR_INVALID_ARG, "--fresh-arena does not go with memcpy or --pair-memcpy");
        goto done;
    }
    if (o->mode == MODE_DIRECT) { /* the arena holds the file images, chunk-rounded */
        b->file_base = malloc((size_t)b->npaths * sizeof(*b->file_base));
        if (!b->file_base) {
            st = WR_FAIL(WR_ERR_OOM_HOST, "file list");
            goto done;
        }
        size_t base = 0;
        for (int64_t j = 0; j < b->npaths; j++) {
            b->file_base[j] = base;
            base += align_up((size_t)wr_st_file_size(wr_st_set_file(s, j)), o->chunk);
        }
        b->arena_bytes = base;
    }
    int pair = o->pair_memcpy && !o->cold && o->mode != MODE_MEMCPY;
    if (!o->fresh_arena && (o->mode != MODE_TOUCH || pair)) /* touch mode copies nothing */
        WR_TRY_GOTO(st,
                    alloc_touched(&b->arena, b->arena_bytes ? b->arena_bytes : 1, o->hugepages, 0),
                    done);
    if (o->mode == MODE_MEMCPY || pair) {
        WR_TRY_GOTO(st,
                    alloc_touched(&b->src, b->arena_bytes ? b->arena_bytes : 1, o->hugepages, 0x5a),
                    done);
        if (o->mode == MODE_DIRECT)
            WR_TRY_GOTO(st,
                        make_direct_items(&b->fixed_items, &b->nfixed, s, b->file_base, o->chunk),
                        done);
        else
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
           o->fresh_arena ? (o->hugepages ? ", fresh THP arena" : ", fresh arena")
           : o->hugepages ? ", THP arena"
                          : "",
           o->fadvise_willneed ? ", fadvise WILLNEED" : "",
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
        if (pair) {
            job mj = {.mode = MODE_MEMCPY,
                      .arena = b->arena,
                      .src = b->src,
                      .items = b->fixed_items,
                      .nitems = b->nfixed};
            pthread_mutex_init(&mj.lock, NULL);
            double t0 = now_s();
            st = run_job(&mj, o->threads);
            msecs[r] = now_s() - t0;
            pthread_mutex_destroy(&mj.lock);
            if (st != WR_OK) goto done;
            ratio[r] = msecs[r] / secs[r];
            printf("  paired memcpy: %.3f s, %.2f GB/s; %s = %.1f %% of memcpy\n", msecs[r],
                   (double)b->data_bytes / msecs[r] / 1e9, mode_name(o->mode), 100.0 * ratio[r]);
        }
    }
    double med = median(secs, o->repeat), best = secs[0]; /* sorted by median() */
    printf("best %.2f GB/s, median %.2f GB/s\n", (double)b->data_bytes / best / 1e9,
           (double)b->data_bytes / med / 1e9);
    printf("RESULT mode=%s threads=%d cold=%d evict=%s bytes=%" PRIu64
           " best_s=%.4f median_s=%.4f best_gbs=%.3f median_gbs=%.3f",
           mode_name(o->mode), o->threads, o->cold, o->cold ? how : "none", b->data_bytes, best,
           med, (double)b->data_bytes / best / 1e9, (double)b->data_bytes / med / 1e9);
    if (pair) {
        double mmed = median(msecs, o->repeat), rmed = median(ratio, o->repeat);
        printf(" memcpy_median_gbs=%.3f pct_of_memcpy=%.1f", (double)b->data_bytes / mmed / 1e9,
               100.0 * rmed);
    }
    printf("\n");
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
    free(b.file_base);
    free(b.paths);
    free(b.slots);
    free(b.fixed_items);
    return st == WR_OK ? 0 : 1;
}

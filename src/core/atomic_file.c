/*
 * atomic_file.c — temporaries next to the destination, rename into place, and the registry
 * the fatal-signal handler cleans up. See atomic_file.h.
 */
#include "atomic_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* Digits reserved for the pid whatever its length, so that the cut (and with it the name
 * shared by every pid's temporary of one destination) does not depend on the pid. */
#define PID_DIGITS 10
#define HASH_LEN   9 /* "~" and 8 hex digits */
#define MAX_SLOTS  32
#define CHILD_CAP  (PATH_MAX + 64)

/* ---- the registry the signal handler reads ---- */

enum { SLOT_FREE = 0, SLOT_CLAIMED = 1, SLOT_LIVE = 2 };

typedef struct slot {
    _Atomic int state;
    int kind;
    _Atomic long nchild; /* WR_ATOMIC_DIR: children 0 .. nchild-1 may exist */
    char tmp[PATH_MAX];
    char prefix[32], suffix[16];
} slot;

static slot g_slots[MAX_SLOTS];

/* "<dir>/<prefix><index, >= 5 digits><suffix>" without stdio (async-signal-safe). Returns 0,
 * or -1 when it does not fit. */
static int child_path(char *dst, size_t cap, const char *dir, const char *prefix, long index,
                      const char *suffix) {
    char digits[24];
    int nd = 0;
    unsigned long v = (unsigned long)index;
    do {
        digits[nd++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (nd < 5) digits[nd++] = '0';
    size_t n = 0;
    for (const char *s = dir; *s; s++)
        if (n + 1 < cap)
            dst[n++] = *s;
        else
            return -1;
    const char *parts[2] = {"/", prefix};
    for (int p = 0; p < 2; p++)
        for (const char *s = parts[p]; *s; s++)
            if (n + 1 < cap)
                dst[n++] = *s;
            else
                return -1;
    while (nd > 0)
        if (n + 1 < cap)
            dst[n++] = digits[--nd];
        else
            return -1;
    for (const char *s = suffix; *s; s++)
        if (n + 1 < cap)
            dst[n++] = *s;
        else
            return -1;
    dst[n] = '\0';
    return 0;
}

/* Removes a slot's temporary: only unlink/rmdir on prepared paths (async-signal-safe). */
static void slot_remove(slot *s) {
    if (s->kind == WR_ATOMIC_DIR) {
        char p[CHILD_CAP];
        const long n = atomic_load(&s->nchild);
        for (long i = 0; i < n; i++)
            if (child_path(p, sizeof p, s->tmp, s->prefix, i, s->suffix) == 0) unlink(p);
        rmdir(s->tmp);
    } else {
        unlink(s->tmp);
    }
}

static int slot_claim(const char *tmp, int kind, const char *prefix, const char *suffix) {
    for (int i = 0; i < MAX_SLOTS; i++) {
        int want = SLOT_FREE;
        if (!atomic_compare_exchange_strong(&g_slots[i].state, &want, SLOT_CLAIMED)) continue;
        slot *s = &g_slots[i];
        s->kind = kind;
        atomic_store(&s->nchild, 0);
        snprintf(s->tmp, sizeof s->tmp, "%s", tmp);
        snprintf(s->prefix, sizeof s->prefix, "%s", prefix ? prefix : "");
        snprintf(s->suffix, sizeof s->suffix, "%s", suffix ? suffix : "");
        atomic_store(&s->state, SLOT_LIVE); /* the handler may act on it from now on */
        return i;
    }
    return -1;
}

static void slot_release(int i) {
    if (i >= 0 && i < MAX_SLOTS) atomic_store(&g_slots[i].state, SLOT_FREE);
}

/* ---- the fatal-signal handler ---- */

static const int k_signals[] = {
    SIGHUP,    SIGINT,  SIGQUIT, SIGILL,  SIGTRAP, SIGABRT, SIGBUS,    SIGFPE,  SIGUSR1, SIGSEGV,
    SIGUSR2,   SIGPIPE, SIGALRM, SIGTERM, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGSYS,
#ifdef SIGSTKFLT
    SIGSTKFLT,
#endif
#ifdef SIGPWR
    SIGPWR,
#endif
#ifdef SIGPOLL
    SIGPOLL,
#endif
};

static void on_fatal_signal(int sig) {
    const int saved = errno;
    for (int i = 0; i < MAX_SLOTS; i++)
        if (atomic_load(&g_slots[i].state) == SLOT_LIVE) slot_remove(&g_slots[i]);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    /* blocked while this handler runs: delivered, with the default action, on return (a
     * fault re-executes the instruction and faults again) */
    raise(sig);
    errno = saved;
}

int wr_atomic_handle_signals(void) {
    static _Atomic int installed = -1;
    int done = atomic_load(&installed);
    if (done >= 0) return done;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof k_signals / sizeof k_signals[0]; i++)
        sigaddset(&sa.sa_mask, k_signals[i]);
    int n = 0;
    for (size_t i = 0; i < sizeof k_signals / sizeof k_signals[0]; i++) {
        struct sigaction old;
        if (sigaction(k_signals[i], NULL, &old) != 0) continue;
        /* ignored, or someone else's handler: not ours to change */
        if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL) continue;
        if (sigaction(k_signals[i], &sa, NULL) == 0) n++;
    }
    atomic_store(&installed, n);
    return n;
}

/* ---- names ---- */

static uint32_t fnv1a(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* The directory part of `path` ("." when none), for pathconf. */
static long dir_name_max(const char *path, size_t dirlen) {
    char d[PATH_MAX];
    if (dirlen == 0)
        snprintf(d, sizeof d, ".");
    else if (dirlen < sizeof d)
        snprintf(d, sizeof d, "%.*s", (int)dirlen, path);
    else
        return NAME_MAX;
    errno = 0;
    long m = pathconf(d, _PC_NAME_MAX);
    return m > 0 ? m : NAME_MAX;
}

int wr_atomic_temp_name(char *dst, size_t cap, const char *path, long pid, long name_max) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t b = len;
    while (b > 0 && path[b - 1] != '/') b--;
    const char *base = path + b;
    size_t blen = len - b;
    if (blen == 0) return -1;
    if (name_max <= 0) name_max = dir_name_max(path, b);
    const size_t tag = strlen(WR_ATOMIC_TMP_TAG);
    int n;
    if (1 + blen + tag + PID_DIGITS <= (size_t)name_max) {
        n = snprintf(dst, cap, "%.*s.%.*s%s%ld", (int)b, path, (int)blen, base, WR_ATOMIC_TMP_TAG,
                     pid);
    } else {
        long keep = name_max - (long)(1 + HASH_LEN + tag + PID_DIGITS);
        if (keep < 0) keep = 0;
        size_t k = (size_t)keep < blen ? (size_t)keep : blen;
        /* not inside a UTF-8 sequence */
        while (k > 0 && ((unsigned char)base[k] & 0xC0) == 0x80) k--;
        n = snprintf(dst, cap, "%.*s.%.*s~%08x%s%ld", (int)b, path, (int)k, base,
                     (unsigned)fnv1a(base, blen), WR_ATOMIC_TMP_TAG, pid);
    }
    if (n < 0 || (size_t)n >= cap) return -1;
    return n;
}

/* `path` without trailing slashes (a copy), NULL when out of memory. */
static char *strip_slashes(const char *path) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    char *s = malloc(len + 1);
    if (s == NULL) return NULL;
    memcpy(s, path, len);
    s[len] = '\0';
    return s;
}

/* ---- checks ---- */

wr_status wr_atomic_check(const char *path, wr_atomic_kind kind) {
    if (path == NULL || path[0] == '\0') return WR_FAIL(WR_ERR_INVALID_ARG, "an empty output path");
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t b = len;
    while (b > 0 && path[b - 1] != '/') b--;
    const size_t blen = len - b;
    if (blen == 0 || (blen == 1 && path[b] == '.') || (blen == 2 && !strncmp(path + b, "..", 2)))
        return WR_FAIL(WR_ERR_INVALID_ARG, "%s: not a usable output path: name a new file%s", path,
                       kind == WR_ATOMIC_DIR ? " or directory" : "");
    if (len + 1 + HASH_LEN + strlen(WR_ATOMIC_TMP_TAG) + PID_DIGITS + 2 >= PATH_MAX)
        return WR_FAIL(WR_ERR_INVALID_ARG, "%.80s...: the path is longer than %d bytes", path,
                       PATH_MAX - 64);
    char dir[PATH_MAX];
    if (b == 0)
        snprintf(dir, sizeof dir, ".");
    else if (b == 1)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(b - 1), path);
    const long name_max = dir_name_max(path, b);
    if ((long)blen > name_max)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "%s: the file name is %zu bytes, more than the %ld this file system allows",
                       path, blen, name_max);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return WR_FAIL(WR_ERR_IO,
                       "%s: the output directory %s does not exist: %s (create it first)", path,
                       dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return WR_FAIL(WR_ERR_IO, "%s: %s is not a directory", path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return WR_FAIL(WR_ERR_IO, "%s: cannot write in %s: %s", path, dir, strerror(errno));
    char *p = strip_slashes(path);
    if (p == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    wr_status st = WR_OK;
    if (stat(p, &sb) == 0) {
        if (kind == WR_ATOMIC_FILE && S_ISDIR(sb.st_mode))
            st = WR_FAIL(WR_ERR_INVALID_ARG, "%s: is a directory, not a file: choose another path",
                         path);
        else if (kind == WR_ATOMIC_FILE && !S_ISREG(sb.st_mode))
            st = WR_FAIL(WR_ERR_INVALID_ARG,
                         "%s: exists and is not a regular file (a device, FIFO or socket): "
                         "choose another path",
                         path);
        else if (kind == WR_ATOMIC_DIR && !S_ISDIR(sb.st_mode))
            st = WR_FAIL(WR_ERR_INVALID_ARG,
                         "%s: exists and is not a directory: remove it or choose another path",
                         path);
    }
    free(p);
    return st;
}

/* ---- begin / commit / discard ---- */

/* Removes a directory temporary and its plain entries (not from a signal handler). */
static void remove_dir_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d != NULL) {
        char p[CHILD_CAP];
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Warns about stale temporaries of this destination (other pids, gone); removes one with our
 * own pid (its owner is dead: the pid was reused). */
static void sweep_stale(const char *tmp) {
    const char *slash = strrchr(tmp, '/');
    char dir[PATH_MAX];
    const char *base = slash ? slash + 1 : tmp;
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == tmp)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - tmp), tmp);
    /* the name without the pid: ".NAME.wanrun-tmp." */
    size_t plen = strlen(base);
    while (plen > 0 && base[plen - 1] >= '0' && base[plen - 1] <= '9') plen--;
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    const long me = (long)getpid();
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, base, plen) != 0) continue;
        const char *digits = e->d_name + plen;
        char *end = NULL;
        errno = 0;
        long pid = strtol(digits, &end, 10);
        if (*digits < '0' || *digits > '9' || *end != '\0' || errno != 0 || pid <= 0) continue;
        char p[CHILD_CAP];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (pid == me) {
            wr_debug("%s: a stale temporary with this process's pid (its owner is gone): "
                     "replacing it",
                     p);
            struct stat sb;
            if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
                remove_dir_tree(p);
            else
                unlink(p);
        } else if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            wr_warn("%s: a stale temporary of a killed wanrun (pid %ld, gone); it is never read: "
                    "remove it",
                    p, pid);
        }
    }
    closedir(d);
}

static wr_status begin(wr_atomic *a, const char *path, wr_atomic_kind kind, const char *prefix,
                       const char *suffix) {
    memset(a, 0, sizeof *a);
    a->fd = a->slot = -1;
    WR_TRY(wr_atomic_check(path, kind));
    char tmp[PATH_MAX];
    if (wr_atomic_temp_name(tmp, sizeof tmp, path, (long)getpid(), 0) < 0)
        return WR_FAIL(WR_ERR_INVALID_ARG, "%s: no room for a temporary name", path);
    wr_status st = WR_OK;
    a->path = strip_slashes(path);
    a->tmp = strdup(tmp);
    if (a->path == NULL || a->tmp == NULL) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
        goto fail;
    }
    a->kind = kind;
    if (prefix) snprintf(a->child_prefix, sizeof a->child_prefix, "%s", prefix);
    if (suffix) snprintf(a->child_suffix, sizeof a->child_suffix, "%s", suffix);
    sweep_stale(a->tmp);
    a->slot = slot_claim(a->tmp, kind, a->child_prefix, a->child_suffix);
    if (a->slot < 0) {
        st = WR_FAIL(WR_ERR_INTERNAL, "%s: more than %d outputs in progress at once", path,
                     MAX_SLOTS);
        goto fail;
    }
    if (kind == WR_ATOMIC_DIR) {
        if (mkdir(a->tmp, 0755) != 0) {
            st = WR_FAIL(WR_ERR_IO, "%s: cannot create the temporary directory %s: %s", path,
                         a->tmp, strerror(errno));
            goto fail_noremove;
        }
    } else {
        a->fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (a->fd < 0) {
            st = WR_FAIL(WR_ERR_IO, "%s: cannot create the temporary %s: %s", path, a->tmp,
                         strerror(errno));
            goto fail_noremove;
        }
    }
    return WR_OK;
fail_noremove: /* nothing of ours exists: do not remove what someone else made */
    slot_release(a->slot);
    a->slot = -1;
fail:
    if (a->slot >= 0) slot_release(a->slot);
    free(a->path);
    free(a->tmp);
    memset(a, 0, sizeof *a);
    a->fd = a->slot = -1;
    return st;
}

wr_status wr_atomic_begin(wr_atomic *a, const char *path, wr_atomic_kind kind) {
    return begin(a, path, kind, "", "");
}

wr_status wr_atomic_begin_dir(wr_atomic *a, const char *path, const char *child_prefix,
                              const char *child_suffix) {
    if (child_prefix == NULL || child_suffix == NULL || strlen(child_prefix) >= 32 ||
        strlen(child_suffix) >= 16 || strchr(child_prefix, '/') || strchr(child_suffix, '/'))
        return WR_FAIL(WR_ERR_INVALID_ARG, "%s: bad child name pattern", path ? path : "(null)");
    return begin(a, path, WR_ATOMIC_DIR, child_prefix, child_suffix);
}

wr_status wr_atomic_child(wr_atomic *a, int64_t index, char *dst, size_t cap) {
    if (a == NULL || a->path == NULL || a->kind != WR_ATOMIC_DIR || index < 0 ||
        index > (int64_t)LONG_MAX - 1)
        return WR_FAIL(WR_ERR_INVALID_ARG, "wr_atomic_child: not a directory output or index %lld",
                       (long long)index);
    if (child_path(dst, cap, a->tmp, a->child_prefix, (long)index, a->child_suffix) != 0)
        return WR_FAIL(WR_ERR_INVALID_ARG, "%s: child %lld: path too long", a->tmp,
                       (long long)index);
    if (a->slot >= 0) {
        _Atomic long *n = &g_slots[a->slot].nchild;
        if (atomic_load(n) < (long)index + 1) atomic_store(n, (long)index + 1);
    }
    return WR_OK;
}

int wr_atomic_take_fd(wr_atomic *a) {
    const int fd = a->fd;
    a->fd = -1;
    return fd;
}

static void release(wr_atomic *a) {
    if (a->fd >= 0) close(a->fd);
    slot_release(a->slot);
    free(a->path);
    free(a->tmp);
    memset(a, 0, sizeof *a);
    a->fd = a->slot = -1;
}

void wr_atomic_discard(wr_atomic *a) {
    if (a == NULL || a->path == NULL) return;
    if (a->fd >= 0) close(a->fd);
    a->fd = -1;
    if (a->kind == WR_ATOMIC_DIR)
        remove_dir_tree(a->tmp);
    else
        unlink(a->tmp);
    release(a);
}

/* Makes a rename durable. Best effort: some file systems refuse fsync on a directory, and
 * the output is complete and in place when this runs. */
static void fsync_dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        if (fsync(fd) != 0) wr_debug("%s: fsync of the directory failed: %s", dir, strerror(errno));
        close(fd);
    }
}

wr_status wr_atomic_commit(wr_atomic *a) {
    if (a == NULL || a->path == NULL)
        return WR_FAIL(WR_ERR_INVALID_ARG, "wr_atomic_commit: no output in progress");
    if (a->fd >= 0) {
        const int rc = close(a->fd);
        a->fd = -1;
        if (rc != 0) {
            wr_status st = WR_FAIL(WR_ERR_IO, "%s: close failed: %s", a->tmp, strerror(errno));
            wr_atomic_discard(a);
            return st;
        }
    }
    if (a->kind == WR_ATOMIC_DIR) {
        int fd = open(a->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0) {
            const int e = errno;
            if (fd >= 0) close(fd);
            wr_status st = WR_FAIL(WR_ERR_IO, "%s: fsync failed: %s", a->tmp, strerror(e));
            wr_atomic_discard(a);
            return st;
        }
        close(fd);
    }
    if (rename(a->tmp, a->path) != 0) {
        const int e = errno;
        wr_status st = WR_FAIL(
            WR_ERR_IO, "%s: cannot rename %s into place: %s%s", a->path, a->tmp, strerror(e),
            e == ENOTEMPTY || e == EEXIST ? " (the directory was filled meanwhile)" : "");
        wr_atomic_discard(a);
        return st;
    }
    fsync_dir_of(a->path);
    release(a);
    return WR_OK;
}

/*
 * atomic_file.h — all-or-nothing outputs: a temporary next to the destination, renamed into
 * place only when complete, and removed on failure or on a fatal signal. Every writer of
 * wanrun (video.c, safetensors.c's writer, memprof.c) goes through it.
 *
 * Temporary names. For a destination DIR/NAME the temporary is DIR/.NAME.wanrun-tmp.PID: the
 * same directory (so rename() is atomic), hidden, and recognisable by ".wanrun-tmp.". When
 * that would exceed the directory's NAME_MAX (a legal NAME of up to 255 bytes plus the
 * suffix), NAME is cut and "~" and 8 hex digits of a hash of the whole NAME are put in its
 * place, so every legal destination name can be written (wr_atomic_temp_name).
 *
 * Signals. wr_atomic_handle_signals() (called once by the CLI's main) installs a handler for
 * every catchable signal whose action is still the default one and terminates the process
 * (SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGALRM, SIGUSR1/2, SIGXCPU, SIGXFSZ, SIGSEGV,
 * SIGBUS, SIGFPE, SIGILL, SIGABRT, ...); signals that are ignored or already handled by
 * someone else are left alone. The handler is async-signal-safe: it unlinks the temporaries
 * in progress (paths prepared in advance in a fixed registry; for a directory, the children
 * named by wr_atomic_child so far, then the directory), restores the default action and
 * re-raises the signal, so the exit status is the signal's.
 *
 * Stale temporaries. A process killed with SIGKILL (or by the kernel) cannot clean up: its
 * .NAME.wanrun-tmp.PID stays. It is harmless: hidden, never read, and the destination itself
 * is never partial. The next wr_atomic_begin for the same destination logs a warning naming
 * every such temporary whose process is gone (remove them by hand; they are not deleted
 * automatically, since on a shared file system the pid may be another host's). One that
 * carries this process's own pid (a reused pid: its owner is dead) is removed and replaced.
 *
 * Threading: the registry may be used from several threads; one wr_atomic from one thread.
 */
#ifndef WR_CORE_ATOMIC_FILE_H
#define WR_CORE_ATOMIC_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define WR_ATOMIC_TMP_TAG ".wanrun-tmp."

typedef enum wr_atomic_kind {
    WR_ATOMIC_FILE = 1, /* a regular file */
    WR_ATOMIC_DIR = 2   /* a directory of files named by wr_atomic_child */
} wr_atomic_kind;

/* One output in progress. Fields are read-only for the caller. */
typedef struct wr_atomic {
    char *path; /* the destination without trailing slashes (owned) */
    char *tmp;  /* the temporary (owned) */
    int kind;   /* wr_atomic_kind */
    int fd;     /* WR_ATOMIC_FILE: the temporary, open for writing (O_WRONLY), or -1 */
    int slot;   /* registry slot, -1 when none */
    char child_prefix[32], child_suffix[16];
} wr_atomic;

/*
 * The temporary's name for `path` with process id `pid`, in `dst` (capacity `cap`): the
 * directory part of `path`, then "." NAME ".wanrun-tmp." PID, NAME cut to fit `name_max`
 * bytes as described above (name_max <= 0: the directory's NAME_MAX, 255 if unknown).
 * Returns the length, or -1 when `dst` is too small or `path` has no file name.
 */
int wr_atomic_temp_name(char *dst, size_t cap, const char *path, long pid, long name_max);

/*
 * Checks, without writing anything, that `path` can be written as a `kind` output: not
 * empty, not "/", "." or "..", its name within NAME_MAX and the whole path within PATH_MAX;
 * the directory holding it exists, is a directory and is writable; an existing `path` is a
 * regular file (WR_ATOMIC_FILE) or a directory (WR_ATOMIC_DIR). `path` is borrowed.
 * Failures: WR_ERR_INVALID_ARG (a name that cannot be an output, an existing path of the
 * other kind), WR_ERR_IO (the directory missing, not a directory, or not writable; errno
 * text). The detail names `path`; callers prefix the flag (wr_error_prefix).
 */
wr_status wr_atomic_check(const char *path, wr_atomic_kind kind);

/*
 * Starts an output at `path`: checks it (wr_atomic_check), warns about stale temporaries of
 * the same destination, creates the temporary exclusively (a regular file open in a->fd, or
 * an empty directory 0755) and registers it for cleanup on a fatal signal. On failure
 * nothing is left and *a is zeroed (a->slot = a->fd = -1). `path` is borrowed.
 * Failures: those of wr_atomic_check, WR_ERR_IO (create), WR_ERR_OOM_HOST, WR_ERR_INTERNAL
 * (more than 32 outputs in progress at once).
 */
wr_status wr_atomic_begin(wr_atomic *a, const char *path, wr_atomic_kind kind);
/* The same for a directory whose files are named child_prefix + index (at least 5 digits,
 * zero-padded) + child_suffix, e.g. "frame_" and ".png": frame_00000.png, frame_00001.png...
 * (prefix < 32 bytes, suffix < 16, neither with '/'). */
wr_status wr_atomic_begin_dir(wr_atomic *a, const char *path, const char *child_prefix,
                              const char *child_suffix);

/* The path of child `index` of a WR_ATOMIC_DIR temporary in `dst`; records that it may
 * exist (a signal removes children 0 .. the highest index asked for). WR_ERR_INVALID_ARG
 * when `dst` is too small or index < 0. */
wr_status wr_atomic_child(wr_atomic *a, int64_t index, char *dst, size_t cap);

/* Hands the temporary's descriptor to the caller (who closes it); a->fd becomes -1. */
int wr_atomic_take_fd(wr_atomic *a);

/*
 * Renames the complete temporary over the destination (the caller has fsync'ed its data; a
 * directory temporary is fsync'ed here), fsyncs the directory (best effort) and releases
 * `a`. On failure the temporary is removed, the destination is untouched, and the status is
 * WR_ERR_IO naming both. a->fd, if still open, is closed first. Either way *a is released.
 */
wr_status wr_atomic_commit(wr_atomic *a);

/* Removes the temporary (a directory with its children) and releases `a`. Safe on a zeroed
 * or already released wr_atomic (does nothing). */
void wr_atomic_discard(wr_atomic *a);

/* Installs the fatal-signal cleanup (see above). Idempotent; returns the number of signals
 * handled. */
int wr_atomic_handle_signals(void);

#endif /* WR_CORE_ATOMIC_FILE_H */

/*
 * status.h — status codes, error details and the checking macros of wanrun.
 *
 * Every fallible function returns a wr_status. A failing function records a human-readable
 * detail with wr_fail()/WR_FAIL() (naming the file, tensor, field or flag and what to do) and
 * returns the code; callers propagate with WR_TRY / WR_TRY_GOTO without rewriting the detail.
 * The detail is thread-local: one per thread, overwritten by the next failure on that thread.
 *
 * WR_ASSERT is for our own bugs (violated preconditions). It is always on: it prints
 * "[rank r] file:line: assertion failed" and calls MPI_Abort when MPI is up, abort() otherwise.
 * Capacity and environment failures are never asserts: they are statuses.
 */
#ifndef WR_CORE_STATUS_H
#define WR_CORE_STATUS_H

#include <stdarg.h>

typedef enum wr_status {
    WR_OK = 0,
    WR_ERR_INVALID_ARG, /* a bad flag, option or argument value */
    WR_ERR_IO,          /* open/read/write/mmap failed (errno text in the detail) */
    WR_ERR_FORMAT,      /* a file's content is malformed (safetensors, JSON, config) */
    WR_ERR_NOT_FOUND,   /* a required file, tensor or field is absent */
    WR_ERR_CONFIG,      /* a config is well-formed but inconsistent or unsupported */
    WR_ERR_UNSUPPORTED, /* a valid request this build or backend cannot do */
    WR_ERR_OOM_HOST,    /* host allocation failed */
    WR_ERR_OOM_DEVICE,  /* device allocation or budget exceeded */
    WR_ERR_NO_DEVICE,   /* no usable GPU (no driver, no device) */
    WR_ERR_DEVICE,      /* a CUDA / cuBLAS call failed */
    WR_ERR_COMM,        /* an MPI / NCCL call failed or a peer rank failed */
    WR_ERR_INTERNAL,    /* should not happen; a bug reported as a status */
    WR_ERR_INTERRUPTED, /* stopped on request (a signal in batch mode): resumable */
    WR_STATUS_COUNT
} wr_status;

/* The enum name without the WR_ prefix, e.g. "ERR_FORMAT"; "UNKNOWN" for an out-of-range code. */
const char *wr_status_name(wr_status s);

/*
 * Records a printf-formatted detail for this thread and returns `code` (so callers write
 * `return WR_FAIL(WR_ERR_IO, "...")`). WR_OK clears the detail. The detail is truncated to
 * 1023 bytes. The arguments may include wr_error_detail() itself (to add context to the
 * current detail: `WR_FAIL(st, "--config %s: %s", path, wr_error_detail())`).
 */
wr_status wr_fail(wr_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
wr_status wr_vfail(wr_status code, const char *fmt, va_list ap);

/* Same, also recording the source position (shown by `wanrun --verbose`). */
wr_status wr_fail_at(const char *file, int line, wr_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define WR_FAIL(code, ...) wr_fail_at(__FILE__, __LINE__, (code), __VA_ARGS__)

/* Prepends "context: " to this thread's current detail (e.g. the file being loaded). */
void wr_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* This thread's last detail ("" if none). Borrowed; valid until the next wr_fail on the thread. */
const char *wr_error_detail(void);
/* "file:line" of the last WR_FAIL on this thread, or "" when recorded without a position. */
const char *wr_error_where(void);
void wr_error_clear(void);

#define WR_TRY(expr)                                                                               \
    do {                                                                                           \
        wr_status wr_try_s_ = (expr);                                                              \
        if (wr_try_s_ != WR_OK) return wr_try_s_;                                                  \
    } while (0)

#define WR_TRY_GOTO(st, expr, label)                                                               \
    do {                                                                                           \
        (st) = (expr);                                                                             \
        if ((st) != WR_OK) goto label;                                                             \
    } while (0)

/* Never returns. */
void wr_assert_fail(const char *cond, const char *file, int line) __attribute__((noreturn));
#define WR_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) wr_assert_fail(#cond, __FILE__, __LINE__);                                    \
    } while (0)

#endif /* WR_CORE_STATUS_H */

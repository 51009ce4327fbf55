/* status.c — status names, thread-local error details, the always-on assertion. */
#include "status.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define WR_DETAIL_CAP 1024

static _Thread_local char tl_detail[WR_DETAIL_CAP];
static _Thread_local char tl_where[256];

static const char *const status_names[WR_STATUS_COUNT] = {
    [WR_OK] = "OK",
    [WR_ERR_INVALID_ARG] = "ERR_INVALID_ARG",
    [WR_ERR_IO] = "ERR_IO",
    [WR_ERR_FORMAT] = "ERR_FORMAT",
    [WR_ERR_NOT_FOUND] = "ERR_NOT_FOUND",
    [WR_ERR_CONFIG] = "ERR_CONFIG",
    [WR_ERR_UNSUPPORTED] = "ERR_UNSUPPORTED",
    [WR_ERR_OOM_HOST] = "ERR_OOM_HOST",
    [WR_ERR_OOM_DEVICE] = "ERR_OOM_DEVICE",
    [WR_ERR_NO_DEVICE] = "ERR_NO_DEVICE",
    [WR_ERR_DEVICE] = "ERR_DEVICE",
    [WR_ERR_COMM] = "ERR_COMM",
    [WR_ERR_INTERNAL] = "ERR_INTERNAL",
    [WR_ERR_INTERRUPTED] = "ERR_INTERRUPTED",
};

const char *wr_status_name(wr_status s) {
    if ((int)s < 0 || s >= WR_STATUS_COUNT) return "UNKNOWN";
    return status_names[s];
}

wr_status wr_vfail(wr_status code, const char *fmt, va_list ap) {
    tl_where[0] = '\0';
    if (code == WR_OK || fmt == NULL) {
        tl_detail[0] = '\0';
        return code;
    }
    /* formatted into a local copy first: the arguments may point into tl_detail itself
     * (WR_FAIL(st, "--config %s: %s", path, wr_error_detail()) adds context to a detail) */
    char buf[WR_DETAIL_CAP];
    vsnprintf(buf, sizeof buf, fmt, ap);
    memcpy(tl_detail, buf, sizeof buf);
    return code;
}

wr_status wr_fail(wr_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    wr_vfail(code, fmt, ap);
    va_end(ap);
    return code;
}

wr_status wr_fail_at(const char *file, int line, wr_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    wr_vfail(code, fmt, ap);
    va_end(ap);
    if (code != WR_OK) snprintf(tl_where, sizeof tl_where, "%s:%d", file, line);
    return code;
}

void wr_error_prefix(const char *fmt, ...) {
    char prefix[512];
    char old[WR_DETAIL_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, tl_detail, sizeof old);
    snprintf(tl_detail, sizeof tl_detail, "%s: %s", prefix, old);
}

const char *wr_error_detail(void) {
    return tl_detail;
}

const char *wr_error_where(void) {
    return tl_where;
}

void wr_error_clear(void) {
    tl_detail[0] = '\0';
    tl_where[0] = '\0';
}

void wr_assert_fail(const char *cond, const char *file, int line) {
    int up = 0, down = 0;
    MPI_Initialized(&up);
    if (up) MPI_Finalized(&down);
    fprintf(stderr, "[rank %d] %s:%d: assertion failed: %s\n", wr_log_rank(), file, line, cond);
    fflush(stderr);
    if (up && !down) MPI_Abort(MPI_COMM_WORLD, 134);
    abort();
}

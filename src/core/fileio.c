/* fileio.c — wr_read_small_file: a small file read whole, refusing what is not one. See fileio.h.
 */
#define _GNU_SOURCE /* O_CLOEXEC, O_NOCTTY */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *wr_file_kind(unsigned mode) {
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a file";
}

/* "16 MiB" for whole MiB, else "N-byte". */
static void limit_str(char *buf, size_t cap, size_t max_bytes) {
    if (max_bytes >= ((size_t)1 << 20) && max_bytes % ((size_t)1 << 20) == 0)
        snprintf(buf, cap, "%zu MiB", max_bytes >> 20);
    else
        snprintf(buf, cap, "%zu-byte", max_bytes);
}

wr_status wr_read_small_file(char **out, size_t *len, const char *path, size_t max_bytes,
                             const char *what) {
    *out = NULL;
    *len = 0;
    struct stat sb;
    /* stat first: a device or a FIFO is refused without being opened at all */
    if (stat(path, &sb) != 0)
        return WR_FAIL(errno == ENOENT ? WR_ERR_NOT_FOUND : WR_ERR_IO, "%s: cannot open: %s", path,
                       strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return WR_FAIL(WR_ERR_IO, "%s: not a regular file (%s); give the path of %s file", path,
                       wr_file_kind((unsigned)sb.st_mode), what);
    /* O_NONBLOCK: should the name have become a FIFO since, open does not wait for a writer */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return WR_FAIL(errno == ENOENT ? WR_ERR_NOT_FOUND : WR_ERR_IO, "%s: cannot open: %s", path,
                       strerror(errno));
    wr_status st = WR_OK;
    char *buf = NULL;
    char lim[32];
    limit_str(lim, sizeof lim, max_bytes);
    if (fstat(fd, &sb) != 0) {
        st = WR_FAIL(WR_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = WR_FAIL(WR_ERR_IO, "%s: not a regular file (%s); give the path of %s file", path,
                     wr_file_kind((unsigned)sb.st_mode), what);
        goto done;
    }
    if (sb.st_size < 0 || (uint64_t)sb.st_size > (uint64_t)max_bytes) {
        st = WR_FAIL(WR_ERR_FORMAT, "%s: %lld bytes, larger than the %s limit for %s", path,
                     (long long)sb.st_size, lim, what);
        goto done;
    }
    const size_t size = (size_t)sb.st_size;
    buf = malloc(size + 1);
    if (buf == NULL) {
        st = WR_FAIL(WR_ERR_OOM_HOST, "%s: out of host memory for %zu bytes", path, size);
        goto done;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = WR_FAIL(WR_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            goto done;
        }
        if (r == 0) {
            st = WR_FAIL(WR_ERR_IO,
                         "%s: the file changed size while being read (%zu of the %zu bytes it had "
                         "when opened); read it again once it is no longer being written",
                         path, got, size);
            goto done;
        }
        got += (size_t)r;
    }
    /* one byte more must be end of file: a file that grew (or a /proc-like file whose st_size
     * says nothing) is refused rather than parsed as a truncated snapshot */
    for (;;) {
        char extra;
        ssize_t r = read(fd, &extra, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = WR_FAIL(WR_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            goto done;
        }
        if (r > 0) {
            st = WR_FAIL(WR_ERR_IO,
                         "%s: the file changed size while being read (it is longer than the %zu "
                         "bytes it had when opened); read it again once it is no longer being "
                         "written",
                         path, size);
            goto done;
        }
        break;
    }
    buf[size] = '\0';
    *out = buf;
    *len = size;
    buf = NULL;
done:
    free(buf);
    close(fd);
    return st;
}

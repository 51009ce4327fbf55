/*
 * results.c — the batch mode's results.jsonl: one-write appends, a reader that survives a torn
 * or damaged line. See results.h.
 */
#include "pipeline/results.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "wr_build_config.h"

/* Warnings about ignored lines per load; a badly damaged file gets one summary after these. */
#define WARN_MAX 20

/* fcntl locks belong to the process, and closing any descriptor of the file drops them all:
 * threads of one process are kept apart by this mutex, held from open to close. */
static pthread_mutex_t g_file_mu = PTHREAD_MUTEX_INITIALIZER;

/* Locks the whole file (F_WRLCK or F_RDLCK), waiting for the holder. 0, or errno when the
 * file system has no locks (ENOLCK, EOPNOTSUPP...): the caller then goes on without one. */
static int lock_file(int fd, short type) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET; /* l_start 0, l_len 0: all of it, also what is appended later */
    while (fcntl(fd, F_SETLKW, &fl) != 0)
        if (errno != EINTR) return errno;
    return 0;
}

/* ---- hashes ---- */

char *wr_results_hash_format(char out[17], uint64_t h) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, h >>= 4) out[i] = hex[h & 15];
    out[16] = '\0';
    return out;
}

int wr_results_hash_parse(uint64_t *h, const char *s) {
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        const char c = s[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return 0; /* also the NUL of a short string */
        v = v << 4 | (uint64_t)d;
    }
    if (s[16] != '\0') return 0;
    *h = v;
    return 1;
}

/* ---- append ---- */

static int valid_status(const char *s) {
    return strcmp(s, "ok") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "skipped") == 0 ||
           strcmp(s, "interrupted") == 0;
}

static int is_utf8(const char *s) {
    const size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        const size_t k = wr_utf8_char_len((const unsigned char *)s + i, n - i);
        if (k == 0) return 0;
        i += k;
    }
    return 1;
}

/* Adds key: s as a UTF-8 JSON string (ill-formed bytes replaced), or null for s == NULL.
 * 0 when out of memory. */
static int add_text(cJSON *obj, const char *key, const char *s) {
    if (s == NULL) return cJSON_AddNullToObject(obj, key) != NULL;
    char *u = wr_utf8_sanitize(s);
    if (u == NULL) return 0;
    const int ok = cJSON_AddStringToObject(obj, key, u) != NULL;
    free(u);
    return ok;
}

/* Adds key: [v[0], ..., v[n-1]] as exact integers (a double would round past 2^53). */
static int add_u64_array(cJSON *obj, const char *key, const uint64_t *v, int n) {
    cJSON *a = cJSON_AddArrayToObject(obj, key);
    if (a == NULL) return 0;
    for (int i = 0; i < n; i++) {
        char num[24];
        snprintf(num, sizeof num, "%llu", (unsigned long long)v[i]);
        cJSON *it = cJSON_CreateRaw(num);
        if (it == NULL || !cJSON_AddItemToArray(a, it)) {
            cJSON_Delete(it);
            return 0;
        }
    }
    return 1;
}

/* The record as one unformatted JSON object (no newline inside: cJSON escapes control
 * characters in strings). Owned by the caller (free()); NULL when out of memory. */
static char *record_json(const wr_job_record *r) {
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    if (o == NULL) return NULL;
    char hash[17], when[32];
    wr_results_hash_format(hash, r->hash);
    const time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL || strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(when, sizeof when, "unknown");

    if (!cJSON_AddStringToObject(o, "name", r->name)) goto done; /* checked UTF-8 */
    if (!cJSON_AddStringToObject(o, "status", r->status)) goto done;
    if (r->error && !add_text(o, "error", r->error)) goto done;
    if (!cJSON_AddNumberToObject(o, "line", r->line)) goto done;
    if (!cJSON_AddNumberToObject(o, "replica", r->replica)) goto done;
    if (!cJSON_AddStringToObject(o, "hash", hash)) goto done;
    if (!add_text(o, "output", r->output)) goto done;
    cJSON *sec = cJSON_AddObjectToObject(o, "seconds");
    if (sec == NULL) goto done;
    const struct {
        const char *key;
        double v;
    } secs[] = {{"encode", r->sec_encode},
                {"denoise", r->sec_denoise},
                {"decode", r->sec_decode},
                {"write", r->sec_write}};
    for (size_t i = 0; i < sizeof secs / sizeof secs[0]; i++)
        if (secs[i].v >= 0 && !cJSON_AddNumberToObject(sec, secs[i].key, secs[i].v)) goto done;
    if (r->nranks > 0 && r->peak_device &&
        !add_u64_array(o, "peak_device_bytes", r->peak_device, r->nranks))
        goto done;
    if (r->nranks > 0 && r->peak_host &&
        !add_u64_array(o, "peak_host_bytes", r->peak_host, r->nranks))
        goto done;
    if (!cJSON_AddStringToObject(o, "wanrun", WR_VERSION_STRING)) goto done;
    if (!cJSON_AddStringToObject(o, "time", when)) goto done;
    text = cJSON_PrintUnformatted(o);
done:
    cJSON_Delete(o);
    return text;
}

wr_status wr_results_append(const char *path, const wr_job_record *r) {
    WR_ASSERT(path && r && r->name && r->status);
    WR_ASSERT(valid_status(r->status));
    WR_ASSERT(r->nranks >= 0);
    const size_t nl = strlen(r->name);
    if (nl == 0 || nl > WR_RESULTS_NAME_MAX || !is_utf8(r->name))
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "%s: job name of %zu bytes: a results record needs 1 to %d bytes of UTF-8",
                       path, nl, WR_RESULTS_NAME_MAX);

    char *json = record_json(r);
    if (json == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "%s: out of memory for a record", path);
    const size_t jl = strlen(json);
    /* room for a leading '\n' (a torn last line before us), the object and its '\n' */
    char *buf = malloc(jl + 2);
    if (buf == NULL) {
        free(json);
        return WR_FAIL(WR_ERR_OOM_HOST, "%s: out of memory for a record", path);
    }
    memcpy(buf + 1, json, jl);
    buf[1 + jl] = '\n';
    free(json);

    wr_status st = WR_OK;
    pthread_mutex_lock(&g_file_mu);
    /* O_RDWR: the last byte is read back (pread) to see whether the file ends in a torn line.
     * O_NONBLOCK: a FIFO put in the file's place fails instead of blocking the open. */
    const int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
    if (fd < 0) {
        st = WR_FAIL(WR_ERR_IO, "%s: cannot open to append a result: %s", path, strerror(errno));
        goto done;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = WR_FAIL(WR_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = WR_FAIL(WR_ERR_IO, "%s: not a regular file (%s)", path,
                     wr_file_kind((unsigned)sb.st_mode));
        goto done;
    }
    /* The lock makes "look at the last byte, then append" one step: without it another
     * appender's write in progress shows a size mid-line (measured: ~15 blank lines per 400
     * concurrent appends on ext4). On NFS it is also what orders the appends (O_APPEND is not
     * atomic there). Where there are no locks, go on: at worst a blank line. */
    const int le = lock_file(fd, F_WRLCK);
    if (le != 0) wr_debug("%s: no file lock (%s); appending without", path, strerror(le));
    if (le == 0 && fstat(fd, &sb) != 0) {
        st = WR_FAIL(WR_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    const char *line = buf + 1;
    size_t len = jl + 1;
    if (sb.st_size > 0) {
        char last = '\n';
        ssize_t got;
        do {
            got = pread(fd, &last, 1, sb.st_size - 1);
        } while (got < 0 && errno == EINTR);
        if (got < 0) {
            st = WR_FAIL(WR_ERR_IO, "%s: cannot read its last byte: %s", path, strerror(errno));
            goto done;
        }
        if (got == 1 && last != '\n') {
            buf[0] = '\n'; /* end the torn line: this record starts a line of its own */
            line = buf;
            len++;
        }
    }
    /* one write: O_APPEND moves to the end and writes atomically with respect to other
     * appenders. A short write (disk full) leaves a torn line, which the next append ends. */
    ssize_t w;
    do {
        w = write(fd, line, len);
    } while (w < 0 && errno == EINTR);
    if (w < 0) {
        st = WR_FAIL(WR_ERR_IO, "%s: cannot append a result: %s", path, strerror(errno));
        goto done;
    }
    if ((size_t)w != len) {
        st = WR_FAIL(WR_ERR_IO, "%s: short write appending a result (%zd of %zu bytes; disk full?)",
                     path, w, len);
        goto done;
    }
    if (fsync(fd) != 0) {
        st = WR_FAIL(WR_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
        goto done;
    }
done:
    /* closing drops the lock, after the fsync: the next holder sees the record on disk */
    if (fd >= 0 && close(fd) != 0 && st == WR_OK)
        st = WR_FAIL(WR_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    pthread_mutex_unlock(&g_file_mu);
    free(buf);
    return st;
}

/* ---- load ---- */

void wr_results_free(wr_results *r) {
    if (r == NULL) return;
    free(r->e);
    r->e = NULL;
    r->n = 0;
    r->torn = 0;
}

/* All of the file at fd into a new NUL-terminated buffer (*out, *len). Unlike
 * wr_read_small_file this does not require the size to stay put: the file may be appended to
 * while read, and a record cut by the end of what was read is merely torn. */
static wr_status read_all(char **out, size_t *len, int fd, size_t hint, const char *path) {
    size_t cap = hint + 4096, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "%s: out of memory reading it", path);
    for (;;) {
        if (cap - n < 2) {
            char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                return WR_FAIL(WR_ERR_OOM_HOST, "%s: out of memory reading it", path);
            }
            buf = nb;
            cap *= 2;
        }
        const ssize_t got = read(fd, buf + n, cap - n - 1);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            const int e = errno;
            free(buf);
            return WR_FAIL(WR_ERR_IO, "%s: cannot read: %s", path, strerror(e));
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return WR_OK;
}

/* Parses one line (NUL-terminated in place of its '\n', len bytes before the NUL) into *e.
 * NULL, or why it is not a record. */
static const char *parse_record(wr_results_entry *e, const char *text, size_t len) {
    if (memchr(text, '\0', len)) return "a NUL byte in the line";
    /* len + 1 with require_null_terminated: trailing text after the object is refused */
    cJSON *o = cJSON_ParseWithLengthOpts(text, len + 1, NULL, 1);
    const char *why = NULL;
    if (o == NULL) return "not JSON";
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return "not a JSON object";
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(o, "status");
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(o, "hash");
    const cJSON *line = cJSON_GetObjectItemCaseSensitive(o, "line");
    memset(e, 0, sizeof *e);
    if (!cJSON_IsString(name) || name->valuestring == NULL)
        why = "no string \"name\"";
    else if (!cJSON_IsString(status) || status->valuestring == NULL)
        why = "no string \"status\"";
    else if (!cJSON_IsString(hash) || hash->valuestring == NULL)
        why = "no string \"hash\"";
    else if (strlen(name->valuestring) > WR_RESULTS_NAME_MAX)
        why = "\"name\" too long";
    else if (strlen(status->valuestring) >= sizeof e->status)
        why = "\"status\" too long";
    else if (!wr_results_hash_parse(&e->hash, hash->valuestring))
        why = "\"hash\" is not 16 hex digits";
    if (why == NULL) {
        strcpy(e->name, name->valuestring);
        strcpy(e->status, status->valuestring);
        if (cJSON_IsNumber(line) && line->valuedouble >= 0 && line->valuedouble <= 2147483647.0)
            e->line = (int)line->valuedouble;
    }
    cJSON_Delete(o);
    return why;
}

static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

wr_status wr_results_load(const char *path, wr_results *out) {
    WR_ASSERT(path && out);
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0;
    wr_status st = WR_OK;
    pthread_mutex_lock(&g_file_mu);
    const int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat sb;
    if (fd < 0) {
        if (errno != ENOENT) st = WR_FAIL(WR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    } else if (fstat(fd, &sb) != 0) {
        st = WR_FAIL(WR_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        st = WR_FAIL(WR_ERR_IO, "%s: not a regular file (%s)", path,
                     wr_file_kind((unsigned)sb.st_mode));
    } else {
        /* a shared lock: no append is half done while we read (best effort, as above) */
        (void)lock_file(fd, F_RDLCK);
        st = read_all(&text, &len, fd, (size_t)sb.st_size, path);
    }
    if (fd >= 0) close(fd);
    pthread_mutex_unlock(&g_file_mu);
    if (st != WR_OK || text == NULL) return st; /* text NULL: no file, an empty result */

    int cap = 0, lineno = 0;
    for (size_t at = 0; at < len; lineno++) {
        char *s = text + at;
        char *nl = memchr(s, '\n', len - at);
        const size_t n = nl ? (size_t)(nl - s) : len - at;
        at += n + (nl != NULL);
        if (blank(s, n)) continue;
        const char *why;
        wr_results_entry e;
        if (nl == NULL) {
            why = "a torn last line (no newline: an append cut short)";
        } else {
            *nl = '\0';
            why = parse_record(&e, s, n);
        }
        if (why) {
            if (out->torn < WARN_MAX)
                wr_warn("%s:%d: ignoring the line: %s", path, lineno + 1, why);
            out->torn++;
            continue;
        }
        if (out->n == cap) {
            const int nc = cap ? cap * 2 : 64;
            wr_results_entry *ne = realloc(out->e, (size_t)nc * sizeof *ne);
            if (ne == NULL) {
                st = WR_FAIL(WR_ERR_OOM_HOST, "%s: out of memory for %d records", path, nc);
                break;
            }
            out->e = ne;
            cap = nc;
        }
        out->e[out->n++] = e;
    }
    if (st == WR_OK && out->torn > WARN_MAX)
        wr_warn("%s: %d lines ignored in all (only the first %d shown)", path, out->torn, WARN_MAX);
    free(text);
    if (st != WR_OK) wr_results_free(out);
    return st;
}

const wr_results_entry *wr_results_last(const wr_results *r, const char *name) {
    if (r == NULL || name == NULL) return NULL;
    for (int i = r->n - 1; i >= 0; i--)
        if (strcmp(r->e[i].name, name) == 0) return &r->e[i];
    return NULL;
}

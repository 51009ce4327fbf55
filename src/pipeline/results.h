/*
 * results.h — the batch mode's ledger: `wanrun --batch jobs.jsonl --out-dir DIR` appends one
 * JSON object per finished job to DIR/results.jsonl, and a restarted batch reads it back to
 * skip the jobs already done.
 *
 * One record is one line. wr_results_append builds the whole line (with its '\n') in memory
 * and writes it with a single write(2) on an O_APPEND descriptor, then fsyncs it, all under an
 * exclusive fcntl lock of the file: several appenders (the leaders of several replica groups,
 * in several processes, or threads of one) never interleave their lines, and a crash leaves at
 * most one torn last line (no '\n'). The next append starts with a '\n' when the file does not
 * end with one, so the torn line stays alone and the new record is whole. The lock is what
 * makes "look at the last byte, then append" one step (a concurrent write in progress would
 * otherwise show a size mid-line) and what orders appends on NFS, where O_APPEND is not
 * atomic. On a file system without locks (ENOLCK) the append goes on unlocked: on a local
 * file system the single O_APPEND write still keeps lines whole, at worst adding a blank line.
 *
 * wr_results_load reads every complete record, under a shared lock (the same best effort). It
 * does not fail on a damaged file: a torn last line (no '\n') or a line that is not a record is
 * skipped, counted in `torn` and logged with wr_warn naming the file and the line number (the
 * first 20, then a count). Blank lines are skipped silently.
 *
 * Not done here: deciding which jobs to rerun (the batch driver does, with wr_results_last and
 * the job's parameter hash), locking, rotation.
 *
 * Thread-safe: one process-wide mutex serialises this module's file accesses (fcntl locks
 * belong to the process, and any close of the file drops them); a wr_results is used by one
 * thread at a time.
 */
#ifndef WR_PIPELINE_RESULTS_H
#define WR_PIPELINE_RESULTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* The longest job name a record may carry, in bytes (wr_results_entry.name holds it + NUL). */
#define WR_RESULTS_NAME_MAX 127

/* One finished job, as the batch driver reports it. Every pointer is borrowed for the call. */
typedef struct wr_job_record {
    const char *name;   /* the job's name: UTF-8, 1 to WR_RESULTS_NAME_MAX bytes */
    const char *status; /* "ok" | "failed" | "skipped" | "interrupted" */
    const char *error;  /* error text, or NULL (then no "error" key) */
    int line;           /* the job's line in the batch file (1-based), 0 unknown */
    int replica;        /* the replica group that ran it, -1 none */
    uint64_t hash;      /* the job's parameter hash */
    const char *output; /* the file written (path), or NULL (then "output": null) */
    double sec_encode, sec_denoise, sec_decode, sec_write; /* seconds; < 0: not reached (omitted) */
    int nranks;                              /* ranks of the replica whose peaks follow (0: none) */
    const uint64_t *peak_device, *peak_host; /* [nranks] bytes each; NULL: that key omitted */
} wr_job_record;

/*
 * Appends r as one JSON line to `path` (borrowed; created with mode 0644, less the umask, when
 * missing). Keys, in this order:
 *   "name", "status", "error" (only when r->error is set), "line", "replica",
 *   "hash" (a string of 16 lowercase hex digits), "output" (a string or null),
 *   "seconds": {"encode", "denoise", "decode", "write"} (only the ones >= 0),
 *   "peak_device_bytes": [..] and "peak_host_bytes": [..] (nranks > 0 and the array given),
 *   "wanrun" (WR_VERSION_STRING), "time" (ISO-8601 UTC, "2026-01-02T03:04:05Z").
 * error and output are written as UTF-8 (bytes that are not are replaced by U+FFFD).
 * Failures: WR_ERR_INVALID_ARG (a name that is empty, longer than WR_RESULTS_NAME_MAX or not
 * UTF-8: it could not be read back and matched); WR_ERR_IO naming the path (open, stat, write,
 * a short write, fsync; errno text); WR_ERR_OOM_HOST. A NULL r, name or status, or a status
 * outside the four, is our bug (WR_ASSERT).
 */
wr_status wr_results_append(const char *path, const wr_job_record *r);

/* One record as read back. */
typedef struct wr_results_entry {
    char name[WR_RESULTS_NAME_MAX + 1];
    char status[16];
    uint64_t hash;
    int line; /* the record's "line" (the job's line in the batch file); 0 when absent */
} wr_results_entry;

typedef struct wr_results {
    wr_results_entry *e; /* [n], in file order; owned */
    int n;
    int torn; /* lines ignored: torn or not a record (each logged with wr_warn) */
} wr_results;

/*
 * Reads every complete record of `path` (borrowed) into *out (initialised here; release with
 * wr_results_free, also after a failure). A missing file is an empty result (WR_OK).
 * A record is a line ending in '\n' holding a JSON object with strings "name" (at most
 * WR_RESULTS_NAME_MAX bytes), "status" (at most 15 bytes) and "hash" (16 hex digits); any
 * other non-blank line, and a last line without '\n', is counted in out->torn and skipped.
 * Without file locks, a record being appended while the file is read may be seen torn.
 * Failures: WR_ERR_IO naming the path (not a regular file, cannot open or read);
 * WR_ERR_OOM_HOST. On failure *out is empty.
 */
wr_status wr_results_load(const char *path, wr_results *out);

/* The LAST entry named `name` (a later record supersedes an earlier one), or NULL. Borrowed
 * from r: valid until wr_results_free. */
const wr_results_entry *wr_results_last(const wr_results *r, const char *name);

/* Frees the entries and empties r; NULL-safe, and safe to call twice. */
void wr_results_free(wr_results *r);

/* h as 16 lowercase hex digits and a NUL in out[17]; returns out. */
char *wr_results_hash_format(char out[17], uint64_t h);
/* Parses exactly 16 hex digits (either case) and nothing else into *h: 1, or 0 (*h untouched). */
int wr_results_hash_parse(uint64_t *h, const char *s);

#endif /* WR_PIPELINE_RESULTS_H */

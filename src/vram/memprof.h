/*
 * memprof.h — the per-rank memory profiler (--mem-profile DIR).
 *
 * Attached to a vram pool, it records a sample on every change of the pool's counters (device
 * bytes by category) together with this process's resident host memory, and named spans
 * (load, encode, step N, decode) that the pipeline opens and closes. wr_memprof_write writes
 *   DIR/memprof.rank<R>.json  a Chrome trace (Perfetto / chrome://tracing open it): counter
 *                             tracks "device memory" (one series per category) and "host
 *                             memory" (RSS, and the offloaded weights the pool counts), the
 *                             spans as slices, and the block timeline: each streamed block's
 *                             compute and its copy on the copy thread, as slices on two tracks;
 *   DIR/memprof.rank<R>.svg   device total and host RSS over time, the spans shaded;
 * each written atomically, and returns the rank's peaks with the span each fell in.
 */
#ifndef WR_VRAM_MEMPROF_H
#define WR_VRAM_MEMPROF_H

#include <stdint.h>

#include "core/status.h"
#include "vram/vram.h"

typedef struct wr_memprof wr_memprof;

typedef struct wr_memprof_peaks {
    uint64_t device, host;
    char device_at[32], host_at[32]; /* the innermost span open at each peak ("" if none) */
} wr_memprof_peaks;

/* dir must exist or be creatable (created, mode 0755): wr_memprof_check first (its failures,
 * the detail prefixed with "--mem-profile"). */
wr_status wr_memprof_create(wr_memprof **out, const char *dir, int rank);
/* Checks, creating nothing, that wr_memprof_create(dir) can succeed and its files can be
 * written: dir is a writable directory, or absent with a legal name in a writable directory.
 * WR_ERR_IO (a file there, not writable, the parent missing) or WR_ERR_INVALID_ARG (not a
 * usable name), naming dir. */
wr_status wr_memprof_check(const char *dir);
/* Starts over into another directory (created if absent, as create's): the samples, spans and
 * block timeline so far are dropped, times count from now (a batch's next job). */
wr_status wr_memprof_restart(wr_memprof *p, const char *dir);
void wr_memprof_free(wr_memprof *p);
/* Samples on every change of v's counters (replaces v's observer). */
void wr_memprof_attach(wr_memprof *p, wr_vram *v);
void wr_memprof_begin(wr_memprof *p, const char *span);
void wr_memprof_end(wr_memprof *p);     /* closes the innermost open span */
void wr_memprof_end_all(wr_memprof *p); /* closes every open span (error paths) */
wr_status wr_memprof_write(wr_memprof *p, wr_memprof_peaks *out);
/* The block timeline so far (times in seconds since the profiler's creation; copy times -1 when
 * unknown), in the order the blocks finished computing. */
size_t wr_memprof_blocks(const wr_memprof *p, const wr_block_event **out);

#endif /* WR_VRAM_MEMPROF_H */

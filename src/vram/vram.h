/*
 * vram.h — the vram layer's accounting pool and copy engine (DESIGN.md §4).
 *
 * A wr_vram wraps one backend's "device" memory (host memory on the CPU backend, accounted the
 * same way): every allocation names a category; the pool keeps the current and peak bytes per
 * category and in total, and refuses an allocation that would pass the limit with
 * WR_ERR_OOM_DEVICE and the numbers (never a crash).
 *
 * The copy engine runs copies into device memory on its own thread, which issues them on the
 * backend's copy stream (wr_upload_on(WR_STREAM_COPY); on the plain CPU backend a memcpy on
 * that thread): wr_vram_copy_async returns a ticket; wr_vram_copy_wait blocks until that copy
 * and every earlier one is done. Copies run in submission order. "Done" means issued on the
 * copy stream: on a synchronous backend (backend.h: no event slots) the bytes have then
 * arrived; on an asynchronous one (CUDA, the strict CPU device mode's async variant) they
 * arrive in the copy stream's order, and whatever reads them waits for an event recorded
 * behind the copy (wr_vram_copy_async_ev), not for the ticket alone.
 *
 * Not thread-safe except where said: one thread allocates and submits; the copy thread only
 * copies.
 */
#ifndef WR_VRAM_VRAM_H
#define WR_VRAM_VRAM_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "kernels/backend.h"

typedef enum wr_mem_cat {
    WR_MEM_WEIGHTS_RESIDENT = 0, /* weights that stay on the device for the whole phase */
    WR_MEM_WEIGHTS_STREAMING,    /* the slots streamed blocks pass through */
    WR_MEM_ACTIVATIONS,
    WR_MEM_WORKSPACE,
    WR_MEM_COMM,
    WR_MEM_VAE,
    WR_MEM_CAT_COUNT
} wr_mem_cat;

const char *wr_mem_cat_name(wr_mem_cat c);

/* Host memory the vram layer keeps weights in: pinned (page-locked: the staging buffers for
 * copies to a GPU, and the streamed blocks' host copies where the backend registered them;
 * none on the CPU backend) and pageable (weights offloaded from the device: streamed blocks
 * between their uses where they are not registered, a text encoder run on the host). */
typedef enum wr_host_cat { WR_HOST_PINNED = 0, WR_HOST_PAGEABLE, WR_HOST_CAT_COUNT } wr_host_cat;

typedef struct wr_vram wr_vram;

typedef struct wr_vram_stats {
    uint64_t current[WR_MEM_CAT_COUNT], peak[WR_MEM_CAT_COUNT];
    uint64_t total, total_peak; /* all categories together */
    uint64_t limit;             /* 0: none */
    uint64_t copies, copy_bytes;
    uint64_t staged_copies; /* of those, through the staging buffers */
    uint64_t pinned_bytes;  /* host memory registered by wr_vram_pin now */
    double copy_wait_s;     /* time callers spent blocked in wr_vram_copy_wait */
    uint64_t host[WR_HOST_CAT_COUNT], host_peak[WR_HOST_CAT_COUNT], host_total_peak;
} wr_vram_stats;

/* limit_bytes 0: no limit. The backend is borrowed. */
wr_status wr_vram_create(wr_vram **out, wr_backend *be, uint64_t limit_bytes);
/* Every allocation must have been freed (asserted); waits for the copy thread. */
void wr_vram_free_pool(wr_vram *v);

wr_status wr_vram_alloc(wr_vram *v, wr_mem_cat cat, size_t bytes, void **out);
/* Counts bytes the pool did not allocate but that live in device memory (on the CPU backend,
 * the checkpoint's mapped weights used in place): + to add, - to remove. Checked against the
 * limit like an allocation when adding. */
wr_status wr_vram_account(wr_vram *v, wr_mem_cat cat, int64_t delta);
/* Counts host bytes holding offloaded weights (+ add, - remove); no limit. */
void wr_vram_host_account(wr_vram *v, wr_host_cat cat, int64_t delta);
/* Called after every change of the counters (the memory profiler). */
typedef void (*wr_vram_observer)(void *ctx, const wr_vram *v);
void wr_vram_set_observer(wr_vram *v, wr_vram_observer fn, void *ctx);
void wr_vram_free(wr_vram *v, void *p); /* NULL is a no-op */
wr_backend *wr_vram_backend(const wr_vram *v);
/* The backend's op scratch arena (backend.h) from this pool's workspace category, allocated
 * now if it is not yet: every model given a pool calls it, so the arena is there from the
 * first phase to the pool's end (the planner counts it in every phase). The pool gives it
 * back when freed. */
wr_status wr_vram_scratch_ensure(wr_vram *v);
/* Bytes still allocatable under the limit (UINT64_MAX without one). */
uint64_t wr_vram_available(const wr_vram *v);
void wr_vram_get_stats(const wr_vram *v, wr_vram_stats *out);
/* Peaks := current (a new phase's measurement starts here). */
void wr_vram_reset_peaks(wr_vram *v);

/* A model's activation workspace: from the pool (activations) when one is given, else from the
 * backend. ensure() keeps it when it is large enough and from the same place, else gives it
 * back and allocates `bytes` (*moved = 1, when moved is not NULL: contents and addresses
 * changed). */
typedef struct wr_workspace {
    void *p;
    size_t bytes;
    wr_vram *pool; /* where p came from; NULL: the backend */
} wr_workspace;
wr_status wr_workspace_ensure(wr_workspace *w, wr_backend *be, wr_vram *pool, size_t bytes,
                              int *moved);
void wr_workspace_release(wr_workspace *w, wr_backend *be);

/* Copies host_src (host memory, must stay valid until waited) into device memory dst on the
 * copy thread; *ticket orders it. Tickets are 1, 2, 3, ... in submission order. Whoever
 * submits a copy must wait for it (or a later ticket) before dst or host_src go away, and
 * the backend must outlive the pool. */
wr_status wr_vram_copy_async(wr_vram *v, void *dst, const void *host_src, size_t bytes,
                             uint64_t *ticket);
/* The same, ordered against the other streams by events (backend.h; either may be NULL): the
 * copy stream waits for `after` (e.g. recorded on the compute stream behind the last op that
 * reads dst) before the copy writes dst, and `record` is recorded on the copy stream behind the
 * copy, so it completes when the bytes arrived. Both events are borrowed and must stay valid
 * until the ticket is done; once it is, `record` has been recorded (the compute stream may then
 * wait for it: wr_stream_wait) and `after` was waited for (the caller may record it again). */
wr_status wr_vram_copy_async_ev(wr_vram *v, void *dst, const void *host_src, size_t bytes,
                                wr_event *after, wr_event *record, uint64_t *ticket);
wr_status wr_vram_copy_wait(wr_vram *v, uint64_t ticket);
/* Waits for every copy submitted so far (the copy thread is idle after it). */
wr_status wr_vram_copy_drain(wr_vram *v);
/* The copy order as counters: tickets handed out so far (the last one) and copies finished
 * (every ticket <= *done is finished). Either pointer may be NULL. */
void wr_vram_copy_counts(wr_vram *v, uint64_t *submitted, uint64_t *done);
/* Disk offload: copies of weights that lie in a mapped checkpoint read them from the file with
 * pread into the staging buffers (below), never through the mapping, so streamed weights do
 * not become part of this process and host memory stays bounded by a few blocks. Set before
 * any copy (streamers hold the staging buffers whenever they copy). */
void wr_vram_set_disk_offload(wr_vram *v, int on);
int wr_vram_disk_offload(const wr_vram *v);
/* Staging: two page-locked host buffers of WR_VRAM_STAGING_CHUNK bytes (host_alloc of the
 * backend; plain host memory on the CPU backend), counted as pinned host bytes, that copies go
 * through while any streamer holds them: on a backend with page-locked host memory (a GPU:
 * pread / copy into one buffer while the other uploads) or with disk offload (the pread
 * target). acquire and release are reference counted and do nothing where staging is not
 * wanted; release only after the holder's copies were waited (the last release then waits,
 * on the host, for the copy stream's last upload from each buffer before freeing them). */
#define WR_VRAM_STAGING_CHUNK ((size_t)8 << 20)
int wr_vram_wants_staging(const wr_vram *v);
/* Registered host memory: a copy whose source lies wholly inside a range pinned here skips the
 * staging buffers (the copy engine reads the source directly). wr_vram_pin page-locks
 * [p, p + n) through the backend's host_register (p and n page-aligned, not overlapping another
 * pinned range) and returns 1; 0 where it cannot (no slot, disk offload, whose copies pread
 * through the staging buffers, or the backend refused: copies from the range keep staging).
 * wr_vram_unpin only after every copy from the range was waited. */
int wr_vram_pin(wr_vram *v, void *p, size_t n);
void wr_vram_unpin(wr_vram *v, void *p);
/* 1 when [p, p + n) lies inside one range pinned by wr_vram_pin */
int wr_vram_is_pinned(wr_vram *v, const void *p, size_t n);
wr_status wr_vram_staging_acquire(wr_vram *v);
void wr_vram_staging_release(wr_vram *v);

/* The block timeline: for every streamed block a streamer hands out, when its copy started and
 * ended on the copy thread and when its compute started (acquire returned) and ended (release,
 * or the next acquire), in seconds of CLOCK_MONOTONIC (the memory profiler draws these); and
 * the same points in the pool's copy order, with no clock (the tests check the prefetch with
 * these): its copies are the tickets copy_first..copy_last; when its compute started,
 * issued0 copies had been submitted (wr_vram_copy_counts) and done0 finished; when it ended,
 * issued1 had been submitted. slot: which of the streamer's two slots held it. */
typedef struct wr_block_event {
    const char *model; /* "dit", "text encoder", ... (static storage) */
    int64_t block;
    double copy_t0, copy_t1, compute_t0, compute_t1;
    uint64_t copy_first, copy_last, issued0, done0, issued1;
    int slot;
} wr_block_event;
typedef void (*wr_vram_block_fn)(void *ctx, const wr_block_event *e);
void wr_vram_set_block_observer(wr_vram *v, wr_vram_block_fn fn, void *ctx);
/* Streamers report here. */
void wr_vram_block_event(wr_vram *v, const wr_block_event *e);
/* When copy `ticket` started and finished (0 when unknown: not finished, or too long ago). */
void wr_vram_copy_times(wr_vram *v, uint64_t ticket, double *t0, double *t1);

/* Tests and benchmarks: every copy also sleeps this long (the "slow link"). */
void wr_vram_set_copy_delay(wr_vram *v, double seconds);
/* Tests: while paused the copy thread starts no copy (a wait for a copy not yet started would
 * block until resumed; freeing the pool resumes it). */
void wr_vram_set_copy_paused(wr_vram *v, int paused);
/* Tests: the submission after `after` more successful ones fails with WR_ERR_OOM_HOST, as when
 * its job cannot be allocated (the error paths of the streamer), once; -1: never (the
 * default). */
void wr_vram_fail_copy_submit(wr_vram *v, int64_t after);

#endif /* WR_VRAM_VRAM_H */

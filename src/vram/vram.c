/*
 * vram.c — the accounting pool and the copy thread (see vram.h).
 *
 * Allocations are recorded in a small table (pointer, bytes, category): the engine makes a few
 * dozen at most (workspaces, slots, resident blocks), so a linear search on free is fine.
 * The copy thread takes jobs from a FIFO under a mutex; `done` counts finished jobs, and a
 * waiter sleeps on a condition variable until done reaches its ticket.
 *
 * Every upload is issued on the backend's copy stream (wr_upload_on(WR_STREAM_COPY)): on a
 * synchronous backend (the plain CPU one: no event slots) it has arrived when the call returns;
 * on an asynchronous one it arrives later, in the copy stream's order, and a job is "done" once
 * it is issued: what reads the bytes orders itself after them by the job's `record` event. A
 * job's `after` event is waited by the copy stream (not the host) before the job's upload.
 *
 * Staged copies (while a streamer holds the staging buffers, on a backend with page-locked host
 * memory or with disk offload): a job goes through two staging buffers of WR_VRAM_STAGING_CHUNK
 * bytes in turn; each chunk is read into a buffer (pread from the checkpoint file under disk
 * offload, else copied from host memory), then uploaded from it on the copy stream, and an
 * event recorded behind that upload; the copy thread waits for the buffer's event (the host
 * side, as the host refills it) before it fills the buffer again, and the pool waits for both
 * before it gives the buffers back.
 */
#include "vram/vram.h"

#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/safetensors.h"

#define WR_VRAM_TIMES 4096 /* copies whose times are kept */

typedef struct rec {
    void *p;
    size_t bytes;
    wr_mem_cat cat;
} rec;

typedef struct job {
    void *dst;
    const void *src;
    size_t bytes;
    int from_file;    /* disk offload: read the source from its checkpoint file */
    int staged;       /* through the staging buffers */
    wr_event *after;  /* the copy stream waits for it before the upload (NULL: none) */
    wr_event *record; /* recorded on the copy stream behind the upload (NULL: none) */
    struct job *next;
} job;

struct wr_vram {
    wr_backend *be;
    uint64_t limit;
    rec *recs;
    size_t nrec, caprec;
    uint64_t cur[WR_MEM_CAT_COUNT], peak[WR_MEM_CAT_COUNT], total, total_peak;
    /* the records and counters: an op's one-off scratch piece is allocated and freed on the
     * async CPU mode's compute thread while the host thread allocates */
    pthread_mutex_t acct;
    /* copy engine */
    pthread_t thread;
    int started, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv_job, cv_done;
    job *head, *tail;
    uint64_t submitted, done, copies, copy_bytes, staged_copies;
    /* wr_vram_pin's ranges (under mu) */
    struct {
        char *p;
        size_t n;
    } * pins;
    int npins, pins_cap;
    uint64_t pinned_bytes;
    double wait_s;
    wr_status copy_status;
    char copy_error[256];
    double delay_s;
    int paused;          /* tests: no copy starts while set */
    int64_t fail_submit; /* tests: submissions that still succeed, -1: all */
    wr_vram_observer obs;
    void *obs_ctx;
    int disk_offload;
    int scratch;             /* the backend's op scratch comes from this pool */
    void *staging[2];        /* pinned staging buffers, WR_VRAM_STAGING_CHUNK each */
    wr_event *staging_ev[2]; /* behind the last upload from each (copy stream) */
    int staging_used[2];     /* staging_ev[k] recorded since the buffers were made */
    double job_t0[WR_VRAM_TIMES], job_t1[WR_VRAM_TIMES]; /* by ticket % WR_VRAM_TIMES */
    uint64_t taken;                                      /* jobs taken by the copy thread */
    wr_vram_block_fn block_fn;
    void *block_ctx;
    int staging_refs;
    uint64_t host[WR_HOST_CAT_COUNT], host_peak[WR_HOST_CAT_COUNT], host_total_peak;
};

const char *wr_mem_cat_name(wr_mem_cat c) {
    static const char *const names[WR_MEM_CAT_COUNT] = {
        "weights-resident", "weights-streaming", "activations", "workspace", "comm", "vae"};
    return c >= 0 && c < WR_MEM_CAT_COUNT ? names[c] : "?";
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {}
}

/* One job through the staging buffers (see the top of the file). */
static wr_status staged_copy(wr_vram *v, const job *j) {
    wr_backend *be = v->be;
    const char *src = j->src;
    char *dst = j->dst;
    int k = 0;
    for (size_t off = 0; off < j->bytes; off += WR_VRAM_STAGING_CHUNK, k ^= 1) {
        const size_t c =
            j->bytes - off < WR_VRAM_STAGING_CHUNK ? j->bytes - off : WR_VRAM_STAGING_CHUNK;
        if (v->staging_used[k]) /* buffer k's last upload is done */
            WR_TRY(wr_event_sync(be, v->staging_ev[k]));
        wr_status st =
            j->from_file ? wr_st_pread_mapped(src + off, c, v->staging[k]) : WR_ERR_NOT_FOUND;
        if (st == WR_ERR_NOT_FOUND) /* not in a file (e.g. converted to FP8 at load) */
            memcpy(v->staging[k], src + off, c);
        else if (st != WR_OK)
            return st;
        WR_TRY(wr_upload_on(be, WR_STREAM_COPY, dst + off, v->staging[k], c));
        WR_TRY(wr_event_record(be, v->staging_ev[k], WR_STREAM_COPY));
        v->staging_used[k] = 1;
    }
    return WR_OK;
}

/* One job on the copy stream: its wait, its upload, its event. */
static wr_status run_job(wr_vram *v, const job *j) {
    if (j->after) WR_TRY(wr_stream_wait(v->be, WR_STREAM_COPY, j->after));
    if (j->staged)
        WR_TRY(staged_copy(v, j));
    else
        WR_TRY(wr_upload_on(v->be, WR_STREAM_COPY, j->dst, j->src, j->bytes));
    if (j->record) WR_TRY(wr_event_record(v->be, j->record, WR_STREAM_COPY));
    return WR_OK;
}

static void *copy_main(void *arg) {
    wr_vram *v = arg;
    pthread_mutex_lock(&v->mu);
    for (;;) {
        while (!v->stop && (v->head == NULL || v->paused)) pthread_cond_wait(&v->cv_job, &v->mu);
        if (v->head == NULL) break; /* stopped, every job done */
        job *j = v->head;
        v->head = j->next;
        if (v->head == NULL) v->tail = NULL;
        v->taken++;
        v->job_t0[v->taken % WR_VRAM_TIMES] = wr_now_s();
        const double delay = v->delay_s;
        pthread_mutex_unlock(&v->mu);
        sleep_s(delay);
        const wr_status st = run_job(v, j);
        pthread_mutex_lock(&v->mu);
        if (st != WR_OK && v->copy_status == WR_OK) {
            v->copy_status = st;
            snprintf(v->copy_error, sizeof v->copy_error, "%s", wr_error_detail());
        }
        v->done++;
        v->job_t1[v->done % WR_VRAM_TIMES] = wr_now_s();
        v->copies++;
        v->copy_bytes += j->bytes;
        free(j);
        pthread_cond_broadcast(&v->cv_done);
    }
    pthread_mutex_unlock(&v->mu);
    return NULL;
}

wr_status wr_vram_create(wr_vram **out, wr_backend *be, uint64_t limit_bytes) {
    *out = NULL;
    wr_vram *v = calloc(1, sizeof *v);
    if (v == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    v->be = be;
    v->limit = limit_bytes;
    v->fail_submit = -1;
    pthread_mutex_init(&v->mu, NULL);
    pthread_mutex_init(&v->acct, NULL);
    pthread_cond_init(&v->cv_job, NULL);
    pthread_cond_init(&v->cv_done, NULL);
    *out = v;
    return WR_OK;
}

void wr_vram_free_pool(wr_vram *v) {
    if (v == NULL) return;
    if (v->scratch && v->be->scratch.prov.ctx == v)
        wr_scratch_detach(v->be); /* gives the arena back to this pool */
    if (v->started) {
        pthread_mutex_lock(&v->mu);
        v->stop = 1;
        pthread_cond_broadcast(&v->cv_job);
        pthread_mutex_unlock(&v->mu);
        pthread_join(v->thread, NULL);
    }
    WR_ASSERT(v->nrec == 0); /* every allocation returned (accounted bytes too) */
    WR_ASSERT(v->total == 0);
    for (int k = 0; k < WR_HOST_CAT_COUNT; k++) WR_ASSERT(v->host[k] == 0);
    WR_ASSERT(v->npins == 0); /* every pinned range unpinned */
    free(v->pins);
    pthread_mutex_destroy(&v->mu);
    pthread_mutex_destroy(&v->acct);
    pthread_cond_destroy(&v->cv_job);
    pthread_cond_destroy(&v->cv_done);
    free(v->recs);
    free(v);
}

wr_status wr_vram_alloc(wr_vram *v, wr_mem_cat cat, size_t bytes, void **out) {
    *out = NULL;
    WR_ASSERT(cat >= 0 && cat < WR_MEM_CAT_COUNT);
    if (bytes == 0) return WR_OK;
    pthread_mutex_lock(&v->acct);
    if (v->limit && v->total + bytes > v->limit) {
        const uint64_t total = v->total;
        pthread_mutex_unlock(&v->acct);
        return WR_FAIL(WR_ERR_OOM_DEVICE,
                       "%s: %.1f MiB more would take the device memory to %.1f MiB, over the "
                       "%.1f MiB limit (--vram-limit); in use: %.1f MiB; raise the limit or use "
                       "a higher --low-mem-level",
                       wr_mem_cat_name(cat), (double)bytes / 1048576.0,
                       (double)(total + bytes) / 1048576.0, (double)v->limit / 1048576.0,
                       (double)total / 1048576.0);
    }
    if (v->nrec == v->caprec) {
        size_t cap = v->caprec ? 2 * v->caprec : 32;
        rec *r = realloc(v->recs, cap * sizeof *r);
        if (r == NULL) {
            pthread_mutex_unlock(&v->acct);
            return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
        }
        v->recs = r, v->caprec = cap;
    }
    wr_status st = v->be->iface->alloc(v->be, out, bytes);
    if (st == WR_OK) {
        v->recs[v->nrec++] = (rec){*out, bytes, cat};
        v->cur[cat] += bytes;
        v->total += bytes;
        if (v->cur[cat] > v->peak[cat]) v->peak[cat] = v->cur[cat];
        if (v->total > v->total_peak) v->total_peak = v->total;
        if (v->obs) v->obs(v->obs_ctx, v);
    }
    pthread_mutex_unlock(&v->acct);
    return st;
}

wr_status wr_vram_account(wr_vram *v, wr_mem_cat cat, int64_t delta) {
    WR_ASSERT(cat >= 0 && cat < WR_MEM_CAT_COUNT);
    if (delta > 0) {
        if (v->limit && v->total + (uint64_t)delta > v->limit)
            return WR_FAIL(WR_ERR_OOM_DEVICE,
                           "%s: %.1f MiB more would take the device memory to %.1f MiB, over "
                           "the %.1f MiB limit (--vram-limit); raise the limit or use a higher "
                           "--low-mem-level",
                           wr_mem_cat_name(cat), (double)delta / 1048576.0,
                           (double)(v->total + (uint64_t)delta) / 1048576.0,
                           (double)v->limit / 1048576.0);
        v->cur[cat] += (uint64_t)delta;
        v->total += (uint64_t)delta;
    } else {
        WR_ASSERT((uint64_t)-delta <= v->cur[cat]);
        v->cur[cat] -= (uint64_t)-delta;
        v->total -= (uint64_t)-delta;
    }
    if (v->cur[cat] > v->peak[cat]) v->peak[cat] = v->cur[cat];
    if (v->total > v->total_peak) v->total_peak = v->total;
    if (v->obs) v->obs(v->obs_ctx, v);
    return WR_OK;
}

void wr_vram_host_account(wr_vram *v, wr_host_cat cat, int64_t delta) {
    WR_ASSERT(cat >= 0 && cat < WR_HOST_CAT_COUNT);
    WR_ASSERT(delta >= 0 || (uint64_t)-delta <= v->host[cat]);
    v->host[cat] = delta >= 0 ? v->host[cat] + (uint64_t)delta : v->host[cat] - (uint64_t)-delta;
    if (v->host[cat] > v->host_peak[cat]) v->host_peak[cat] = v->host[cat];
    uint64_t t = 0;
    for (int k = 0; k < WR_HOST_CAT_COUNT; k++) t += v->host[k];
    if (t > v->host_total_peak) v->host_total_peak = t;
    if (v->obs) v->obs(v->obs_ctx, v);
}

void wr_vram_set_observer(wr_vram *v, wr_vram_observer fn, void *ctx) {
    v->obs = fn;
    v->obs_ctx = ctx;
}

void wr_vram_free(wr_vram *v, void *p) {
    if (p == NULL) return;
    pthread_mutex_lock(&v->acct);
    for (size_t i = 0; i < v->nrec; i++)
        if (v->recs[i].p == p) {
            v->cur[v->recs[i].cat] -= v->recs[i].bytes;
            v->total -= v->recs[i].bytes;
            v->recs[i] = v->recs[--v->nrec];
            if (v->obs) v->obs(v->obs_ctx, v);
            pthread_mutex_unlock(&v->acct);
            /* outside the lock: a free waits for queued work, which may allocate */
            v->be->iface->free(v->be, p);
            return;
        }
    pthread_mutex_unlock(&v->acct);
    WR_ASSERT(!"wr_vram_free: pointer not from this pool");
}

static wr_status scratch_alloc(void *ctx, size_t bytes, void **out) {
    return wr_vram_alloc(ctx, WR_MEM_WORKSPACE, bytes, out);
}

static void scratch_free(void *ctx, void *p) {
    wr_vram_free(ctx, p);
}

wr_status wr_vram_scratch_ensure(wr_vram *v) {
    if (!v->scratch || v->be->scratch.prov.ctx != v) { /* (another pool may have taken it) */
        const wr_scratch_provider prov = {scratch_alloc, scratch_free, v};
        wr_scratch_attach(v->be, &prov, 0);
        v->scratch = 1;
    }
    return wr_scratch_reserve(v->be);
}

wr_backend *wr_vram_backend(const wr_vram *v) {
    return v->be;
}

uint64_t wr_vram_available(const wr_vram *v) {
    if (!v->limit) return UINT64_MAX;
    return v->total < v->limit ? v->limit - v->total : 0;
}

void wr_vram_get_stats(const wr_vram *v, wr_vram_stats *out) {
    memset(out, 0, sizeof *out);
    memcpy(out->current, v->cur, sizeof v->cur);
    memcpy(out->peak, v->peak, sizeof v->peak);
    out->total = v->total;
    out->total_peak = v->total_peak;
    out->limit = v->limit;
    pthread_mutex_lock((pthread_mutex_t *)&v->mu);
    out->copies = v->copies;
    out->copy_bytes = v->copy_bytes;
    out->staged_copies = v->staged_copies;
    out->pinned_bytes = v->pinned_bytes;
    out->copy_wait_s = v->wait_s;
    memcpy(out->host, v->host, sizeof v->host);
    memcpy(out->host_peak, v->host_peak, sizeof v->host_peak);
    out->host_total_peak = v->host_total_peak;
    pthread_mutex_unlock((pthread_mutex_t *)&v->mu);
}

void wr_vram_reset_peaks(wr_vram *v) {
    memcpy(v->peak, v->cur, sizeof v->cur);
    v->total_peak = v->total;
    memcpy(v->host_peak, v->host, sizeof v->host);
    v->host_total_peak = 0;
    for (int k = 0; k < WR_HOST_CAT_COUNT; k++) v->host_total_peak += v->host[k];
}

wr_status wr_vram_copy_async(wr_vram *v, void *dst, const void *host_src, size_t bytes,
                             uint64_t *ticket) {
    return wr_vram_copy_async_ev(v, dst, host_src, bytes, NULL, NULL, ticket);
}

wr_status wr_vram_copy_async_ev(wr_vram *v, void *dst, const void *host_src, size_t bytes,
                                wr_event *after, wr_event *record, uint64_t *ticket) {
    job *j = v->fail_submit == 0 ? NULL : malloc(sizeof *j);
    if (v->fail_submit >= 0) v->fail_submit--; /* the injected failure is one-shot (-1 after) */
    if (j == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for a copy job");
    const int staged = v->staging[0] != NULL && !wr_vram_is_pinned(v, host_src, bytes);
    *j = (job){dst, host_src, bytes, v->disk_offload, staged, after, record, NULL};
    if (!v->started) {
        if (pthread_create(&v->thread, NULL, copy_main, v) != 0) {
            free(j);
            return WR_FAIL(WR_ERR_INTERNAL, "could not start the copy thread");
        }
        v->started = 1;
    }
    pthread_mutex_lock(&v->mu);
    if (v->tail)
        v->tail->next = j;
    else
        v->head = j;
    v->tail = j;
    *ticket = ++v->submitted;
    v->staged_copies += (uint64_t)staged;
    pthread_cond_signal(&v->cv_job);
    pthread_mutex_unlock(&v->mu);
    return WR_OK;
}

wr_status wr_vram_copy_wait(wr_vram *v, uint64_t ticket) {
    pthread_mutex_lock(&v->mu);
    if (v->done < ticket) {
        const double t0 = wr_now_s();
        while (v->done < ticket) pthread_cond_wait(&v->cv_done, &v->mu);
        v->wait_s += wr_now_s() - t0;
    }
    const wr_status st = v->copy_status;
    char msg[256];
    snprintf(msg, sizeof msg, "%s", v->copy_error);
    pthread_mutex_unlock(&v->mu);
    if (st != WR_OK) return WR_FAIL(st, "a copy to the device failed: %s", msg);
    return WR_OK;
}

wr_status wr_vram_copy_drain(wr_vram *v) {
    uint64_t last = 0;
    wr_vram_copy_counts(v, &last, NULL);
    return wr_vram_copy_wait(v, last);
}

void wr_vram_copy_counts(wr_vram *v, uint64_t *submitted, uint64_t *done) {
    pthread_mutex_lock(&v->mu);
    if (submitted) *submitted = v->submitted;
    if (done) *done = v->done;
    pthread_mutex_unlock(&v->mu);
}

int wr_vram_wants_staging(const wr_vram *v) {
    return v->disk_offload || v->be->iface->host_alloc != NULL;
}

int wr_vram_is_pinned(wr_vram *v, const void *p, size_t n) {
    const char *c = p;
    int in = 0;
    pthread_mutex_lock(&v->mu);
    for (int i = 0; !in && i < v->npins; i++)
        in = c >= v->pins[i].p && n <= v->pins[i].n &&
             (size_t)(c - v->pins[i].p) <= v->pins[i].n - n;
    pthread_mutex_unlock(&v->mu);
    return in;
}

int wr_vram_pin(wr_vram *v, void *p, size_t n) {
    const wr_backend_iface *f = v->be->iface;
    if (f->host_register == NULL || f->host_unregister == NULL || v->disk_offload || n == 0)
        return 0;
    pthread_mutex_lock(&v->mu);
    if (v->npins == v->pins_cap) {
        const int cap = v->pins_cap ? 2 * v->pins_cap : 8;
        void *r = realloc(v->pins, sizeof *v->pins * (size_t)cap);
        if (r == NULL) {
            pthread_mutex_unlock(&v->mu);
            return 0;
        }
        v->pins = r;
        v->pins_cap = cap;
    }
    pthread_mutex_unlock(&v->mu);
    if (f->host_register(v->be, p, n) != WR_OK) {
        wr_debug("pinning %.1f MiB of host weights failed (%s): their copies are staged",
                 (double)n / 1048576.0, wr_error_detail());
        return 0;
    }
    pthread_mutex_lock(&v->mu);
    v->pins[v->npins].p = p;
    v->pins[v->npins].n = n;
    v->npins++;
    v->pinned_bytes += n;
    pthread_mutex_unlock(&v->mu);
    return 1;
}

void wr_vram_unpin(wr_vram *v, void *p) {
    pthread_mutex_lock(&v->mu);
    int i = 0;
    while (i < v->npins && v->pins[i].p != p) i++;
    WR_ASSERT(i < v->npins);
    v->pinned_bytes -= v->pins[i].n;
    v->pins[i] = v->pins[--v->npins];
    pthread_mutex_unlock(&v->mu);
    v->be->iface->host_unregister(v->be, p);
}

wr_status wr_vram_staging_acquire(wr_vram *v) {
    if (!wr_vram_wants_staging(v)) return WR_OK;
    if (v->staging_refs++ > 0) return WR_OK;
    const wr_backend_iface *f = v->be->iface;
    for (int k = 0; k < 2; k++) {
        wr_status st = WR_OK;
        if (f->host_alloc)
            st = f->host_alloc(v->be, &v->staging[k], WR_VRAM_STAGING_CHUNK);
        else if ((v->staging[k] = aligned_alloc(64, WR_VRAM_STAGING_CHUNK)) == NULL)
            st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for a %.0f MiB staging buffer",
                         (double)WR_VRAM_STAGING_CHUNK / 1048576.0);
        if (st == WR_OK) {
            wr_vram_host_account(v, WR_HOST_PINNED, (int64_t)WR_VRAM_STAGING_CHUNK);
            st = wr_event_create(v->be, &v->staging_ev[k]);
        }
        if (st != WR_OK) {
            v->staging_refs = 1;
            wr_vram_staging_release(v);
            return st;
        }
    }
    return WR_OK;
}

void wr_vram_staging_release(wr_vram *v) {
    if (!wr_vram_wants_staging(v) || v->staging_refs == 0 || --v->staging_refs > 0) return;
    for (int k = 0; k < 2; k++) {
        /* the copy stream's last upload from the buffer is done (the holders waited their
         * tickets: the copy thread issued everything and touches neither any more) */
        if (v->staging_used[k]) (void)wr_event_sync(v->be, v->staging_ev[k]);
        wr_event_free(v->be, v->staging_ev[k]);
        v->staging_ev[k] = NULL;
        v->staging_used[k] = 0;
        if (v->staging[k] == NULL) continue;
        if (v->be->iface->host_free)
            v->be->iface->host_free(v->be, v->staging[k]);
        else
            free(v->staging[k]);
        v->staging[k] = NULL;
        wr_vram_host_account(v, WR_HOST_PINNED, -(int64_t)WR_VRAM_STAGING_CHUNK);
    }
}

void wr_vram_set_disk_offload(wr_vram *v, int on) {
    v->disk_offload = on;
}

int wr_vram_disk_offload(const wr_vram *v) {
    return v->disk_offload;
}

void wr_vram_set_block_observer(wr_vram *v, wr_vram_block_fn fn, void *ctx) {
    v->block_fn = fn;
    v->block_ctx = ctx;
}

void wr_vram_block_event(wr_vram *v, const wr_block_event *e) {
    if (v->block_fn) v->block_fn(v->block_ctx, e);
}

void wr_vram_copy_times(wr_vram *v, uint64_t ticket, double *t0, double *t1) {
    pthread_mutex_lock(&v->mu);
    const int known = ticket > 0 && ticket <= v->done && v->done - ticket < WR_VRAM_TIMES;
    *t0 = known ? v->job_t0[ticket % WR_VRAM_TIMES] : 0;
    *t1 = known ? v->job_t1[ticket % WR_VRAM_TIMES] : 0;
    pthread_mutex_unlock(&v->mu);
}

void wr_vram_set_copy_delay(wr_vram *v, double seconds) {
    pthread_mutex_lock(&v->mu);
    v->delay_s = seconds;
    pthread_mutex_unlock(&v->mu);
}

void wr_vram_set_copy_paused(wr_vram *v, int paused) {
    pthread_mutex_lock(&v->mu);
    v->paused = paused;
    pthread_cond_broadcast(&v->cv_job);
    pthread_mutex_unlock(&v->mu);
}

void wr_vram_fail_copy_submit(wr_vram *v, int64_t after) {
    v->fail_submit = after < 0 ? -1 : after;
}

wr_status wr_workspace_ensure(wr_workspace *w, wr_backend *be, wr_vram *pool, size_t bytes,
                              int *moved) {
    if (moved) *moved = 0;
    if (w->p && w->pool == pool && w->bytes >= bytes) return WR_OK;
    wr_workspace_release(w, be);
    if (moved) *moved = 1;
    WR_TRY(pool ? wr_vram_alloc(pool, WR_MEM_ACTIVATIONS, bytes, &w->p)
                : be->iface->alloc(be, &w->p, bytes));
    w->bytes = bytes;
    w->pool = pool;
    return WR_OK;
}

void wr_workspace_release(wr_workspace *w, wr_backend *be) {
    if (w->p) {
        if (w->pool)
            wr_vram_free(w->pool, w->p);
        else
            be->iface->free(be, w->p);
    }
    memset(w, 0, sizeof *w);
}

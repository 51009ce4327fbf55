/*
 * stream.c — resident and streamed blocks (see stream.h).
 *
 * Lifetimes against the copy thread: a copy reads a block's host tensors and writes a slot (or
 * the resident copies) after wr_vram_copy_async returned, until its ticket is done. So the
 * streamer remembers the last ticket it was handed (last_ticket, whatever the copy was for)
 * and wr_streamer_free waits for it, and then for the backend (every stream), before it gives
 * any slot, resident copy or staging buffer back.
 *
 * Ordering against the compute stream, by events (backend.h; no-ops on a synchronous backend,
 * where an op has finished when it returns and a copy when its ticket is done):
 *   - a slot is refilled only after the ops that read the block it held: when block i is
 *     released (wr_streamer_release, or the next acquire), freed[k] is recorded on the compute
 *     stream behind the ops issued for it; the refill's first copy makes the copy stream wait
 *     for it (the copy thread issues that wait, the host does not block);
 *   - a block's ops read its slot only after its copies arrived: the fill's last copy records
 *     ready[k] on the copy stream, and acquire makes the compute stream wait for it once the
 *     copy thread has issued the fill (its ticket), instead of the host waiting for the bytes;
 *   - the resident copies (a backend whose ops cannot read host memory) are waited on the
 *     host once, when the streamer is made.
 * freed[k] is recorded again only when a later block of slot k is released, which is after
 * its acquire waited the fill's ticket, so the copy thread has issued the wait for the
 * previous record by then (ready[k] likewise: recorded again only by the next fill of slot k,
 * submitted after the acquire issued its wait).
 */
#include "vram/stream.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

struct wr_streamer {
    wr_vram *v;
    wr_backend *be;
    char *blocks; /* the model's structs */
    size_t ssz;
    int64_t n, resident;
    wr_block_tensors_fn tensors;
    size_t slot_bytes;
    int in_place;         /* be->host_visible: resident blocks are the model's tensors, counted */
    uint64_t accounted;   /* in place: resident bytes counted, not copied */
    uint64_t host;        /* streamed blocks' bytes, counted as host memory: */
    uint64_t host_pinned; /* those of it in pinned ranges (the rest pageable) */
    void *res_mem;        /* otherwise: the resident blocks' copies */
    char *res_views;      /* [resident] structs pointing at the resident blocks */
    void *slot[2];
    char *slot_view; /* [2] structs */
    int64_t slot_block[2];
    uint64_t slot_ticket[2];
    wr_event *ready[2]; /* copy stream: behind slot k's fill (ready_rec: one is queued) */
    wr_event *freed[2]; /* compute stream: behind the ops of slot k's last released block */
    int ready_rec[2], freed_rec[2];
    wr_event *res_ready;    /* copy stream: behind the resident copies */
    wr_status release_st;   /* a failed record at release, returned by the next acquire */
    int staging;            /* holds the pool's staging buffers (while blocks stream) */
    uint64_t slot_first[2]; /* the first copy of the slot's block */
    const char *name;       /* for the block timeline */
    int64_t cur;            /* the streamed block computing now, -1: none (timeline) */
    int64_t computing;      /* the block acquired and not released (any), -1: none */
    int comp_slot;          /* its slot, -1: resident (or none) */
    void **pins;            /* the streamed blocks' host ranges pinned (wr_vram_pin) */
    int npins;
    uint64_t cur_first, cur_last;
    double cur_t0;
    uint64_t cur_issued0, cur_done0; /* the copy order when the current compute began */
    int cur_slot;
    uint64_t last_ticket; /* the last copy this streamer submitted (0: none) */
    /* the hand-over (wr_streamer_handoff): the next model's structs (NULL: not armed), views of
     * them in res_mem, each block's place there, an event per block behind its last ops, how
     * many were handed, and the last copy's ticket */
    char *hand_blocks;
    char *hand_views;
    size_t *res_off;
    wr_event **hand_ev;
    int64_t handed;
    uint64_t hand_ticket;
};

/* The block computing now is done: its timeline event. */
static void finish_current(wr_streamer *s) {
    if (s->cur < 0) return;
    wr_block_event e = {.model = s->name,
                        .block = s->cur,
                        .compute_t0 = s->cur_t0,
                        .compute_t1 = wr_now_s(),
                        .copy_first = s->cur_first,
                        .copy_last = s->cur_last,
                        .issued0 = s->cur_issued0,
                        .done0 = s->cur_done0,
                        .slot = s->cur_slot};
    wr_vram_copy_counts(s->v, &e.issued1, NULL);
    double t;
    wr_vram_copy_times(s->v, s->cur_first, &e.copy_t0, &t);
    wr_vram_copy_times(s->v, s->cur_last, &t, &e.copy_t1);
    s->cur = -1;
    wr_vram_block_event(s->v, &e);
}

static size_t align64(size_t n) {
    return (n + 63) & ~(size_t)63;
}

static size_t one_block_bytes(void *block, wr_block_tensors_fn fn) {
    wr_tensor *t[WR_STREAM_MAX_TENSORS];
    const int k = fn(block, t);
    size_t bytes = 0;
    for (int i = 0; i < k; i++)
        if (t[i]->data) bytes += align64(wr_tensor_nbytes(t[i]));
    return bytes;
}

size_t wr_blocks_max_bytes(void *blocks, size_t ssz, int64_t n, wr_block_tensors_fn fn) {
    size_t mx = 0;
    for (int64_t i = 0; i < n; i++) {
        const size_t b = one_block_bytes((char *)blocks + (size_t)i * ssz, fn);
        if (b > mx) mx = b;
    }
    return mx;
}

/* Starts copying block i's tensors into mem; *view (a struct) gets them pointing there. The
 * first copy waits for `after`, the last one records `record` (either NULL: none); *ticket is
 * the last copy's (0: the block has no tensor). */
static wr_status copy_block(wr_streamer *s, void *src_block, void *mem, void *view, wr_event *after,
                            wr_event *record, uint64_t *first, uint64_t *ticket) {
    memcpy(view, src_block, s->ssz);
    wr_tensor *src[WR_STREAM_MAX_TENSORS], *dst[WR_STREAM_MAX_TENSORS];
    const int k = s->tensors(src_block, src);
    s->tensors(view, dst);
    int last = -1;
    for (int j = 0; j < k; j++)
        if (src[j]->data) last = j;
    size_t off = 0;
    *ticket = 0;
    for (int j = 0; j < k; j++) {
        if (src[j]->data == NULL) continue;
        const size_t bytes = wr_tensor_nbytes(src[j]);
        dst[j]->data = (char *)mem + off;
        WR_TRY(wr_vram_copy_async_ev(s->v, dst[j]->data, src[j]->data, bytes,
                                     off == 0 ? after : NULL, j == last ? record : NULL, ticket));
        s->last_ticket = *ticket; /* waited by wr_streamer_free even if a later one fails */
        if (first && off == 0) *first = *ticket;
        off += align64(bytes);
    }
    return WR_OK;
}

/* The block acquired last no longer computes: the timeline's event, and for a streamed block
 * the event its slot's refill waits for, behind the ops issued for it. */
static wr_status hand_block(wr_streamer *s, int64_t i);

static wr_status end_compute(wr_streamer *s) {
    finish_current(s);
    const int k = s->computing >= 0 ? s->comp_slot : -1;
    const int64_t i = s->computing;
    s->computing = -1, s->comp_slot = -1;
    if (s->hand_blocks && i >= 0 && k < 0) return hand_block(s, i); /* armed: its place goes */
    if (k < 0) return WR_OK;
    const wr_status st = wr_event_record(s->be, s->freed[k], WR_STREAM_COMPUTE);
    s->freed_rec[k] = st == WR_OK;
    return st;
}

void wr_streamer_free(wr_streamer *s) {
    if (s == NULL) return;
    (void)end_compute(s);
    /* every copy it started, also one into a slot whose fill failed half way (slot_block -1)
     * or into the resident copies when creating failed: the copy thread must be done with
     * them before the memory goes back (copies finish in order); then, on an asynchronous
     * backend, the copies it issued and the ops that read the slots */
    if (s->last_ticket) (void)wr_vram_copy_wait(s->v, s->last_ticket);
    if (s->be->iface->sync) (void)s->be->iface->sync(s->be);
    for (int i = 0; i < s->npins; i++) wr_vram_unpin(s->v, s->pins[i]);
    free(s->pins);
    for (int k = 0; k < 2; k++) wr_vram_free(s->v, s->slot[k]);
    if (s->staging) wr_vram_staging_release(s->v); /* after the waits above */
    wr_vram_free(s->v, s->res_mem);
    if (s->accounted) (void)wr_vram_account(s->v, WR_MEM_WEIGHTS_RESIDENT, -(int64_t)s->accounted);
    if (s->host_pinned) wr_vram_host_account(s->v, WR_HOST_PINNED, -(int64_t)s->host_pinned);
    if (s->host > s->host_pinned)
        wr_vram_host_account(s->v, WR_HOST_PAGEABLE, -(int64_t)(s->host - s->host_pinned));
    for (int k = 0; k < 2; k++) {
        wr_event_free(s->be, s->ready[k]);
        wr_event_free(s->be, s->freed[k]);
    }
    wr_event_free(s->be, s->res_ready);
    for (int64_t i = 0; s->hand_ev && i < s->n; i++) wr_event_free(s->be, s->hand_ev[i]);
    free(s->hand_ev);
    free(s->hand_views);
    free(s->res_off);
    free(s->res_views);
    free(s->slot_view);
    free(s);
}

/* The resident blocks' device copies (a backend whose ops read device memory only), waited
 * on the host: made once, with the model. */
static wr_status copy_resident(wr_streamer *s, size_t total) {
    WR_TRY(wr_vram_alloc(s->v, WR_MEM_WEIGHTS_RESIDENT, total, &s->res_mem));
    int64_t last = -1; /* the last block with a tensor records the event */
    for (int64_t i = 0; i < s->resident; i++)
        if (one_block_bytes(s->blocks + (size_t)i * s->ssz, s->tensors)) last = i;
    uint64_t t = 0;
    size_t off = 0;
    for (int64_t i = 0; i < s->resident; i++) {
        uint64_t ti = 0;
        WR_TRY(copy_block(s, s->blocks + (size_t)i * s->ssz, (char *)s->res_mem + off,
                          s->res_views + (size_t)i * s->ssz, NULL, i == last ? s->res_ready : NULL,
                          NULL, &ti));
        if (ti) t = ti;
        off += one_block_bytes(s->blocks + (size_t)i * s->ssz, s->tensors);
    }
    if (t == 0) return WR_OK;
    WR_TRY(wr_vram_copy_wait(s->v, t));        /* issued, res_ready recorded behind it */
    return wr_event_sync(s->be, s->res_ready); /* arrived */
}

typedef struct span {
    uintptr_t a, b;
} span;

static int span_cmp(const void *x, const void *y) {
    const span *p = x, *q = y;
    return p->a < q->a ? -1 : p->a > q->a;
}

/* The streamed blocks' host tensors page-locked where the backend can (a GPU's copy engine then
 * reads them directly, with no staging memcpy): their pages, merged into runs, each run pinned
 * once. Where pinning fails the run's copies keep going through the staging buffers; with disk
 * offload nothing is pinned (the copies pread from the file). */
static void pin_streamed(wr_streamer *s) {
    if (s->be->iface->host_register == NULL || wr_vram_disk_offload(s->v) || s->resident >= s->n)
        return;
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    int64_t cnt = 0, k = 0;
    wr_tensor *t[WR_STREAM_MAX_TENSORS];
    for (int64_t i = s->resident; i < s->n; i++)
        cnt += s->tensors(s->blocks + (size_t)i * s->ssz, t);
    span *sp = malloc(sizeof *sp * (size_t)(cnt ? cnt : 1));
    if (sp == NULL) return; /* staged */
    for (int64_t i = s->resident; i < s->n; i++) {
        const int m = s->tensors(s->blocks + (size_t)i * s->ssz, t);
        for (int j = 0; j < m; j++) {
            if (t[j]->data == NULL) continue;
            const uintptr_t a = (uintptr_t)t[j]->data, b = a + wr_tensor_nbytes(t[j]);
            sp[k++] = (span){a & ~(pg - 1), (b + pg - 1) & ~(pg - 1)};
        }
    }
    qsort(sp, (size_t)k, sizeof *sp, span_cmp);
    int64_t runs = 0;
    for (int64_t i = 0; i < k; i++) /* merge overlapping and touching spans */
        if (runs > 0 && sp[i].a <= sp[runs - 1].b) {
            if (sp[i].b > sp[runs - 1].b) sp[runs - 1].b = sp[i].b;
        } else {
            sp[runs++] = sp[i];
        }
    s->pins = malloc(sizeof *s->pins * (size_t)(runs ? runs : 1));
    for (int64_t i = 0; s->pins && i < runs; i++)
        if (wr_vram_pin(s->v, (void *)sp[i].a, (size_t)(sp[i].b - sp[i].a)))
            s->pins[s->npins++] = (void *)sp[i].a;
    free(sp);
}

wr_status wr_streamer_create(wr_streamer **out, wr_vram *v, void *blocks, size_t ssz, int64_t n,
                             wr_block_tensors_fn fn, int64_t resident) {
    *out = NULL;
    if (resident < 0 || resident > n) resident = n;
    wr_streamer *s = calloc(1, sizeof *s);
    if (s == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    s->v = v, s->blocks = blocks, s->ssz = ssz, s->n = n, s->resident = resident, s->tensors = fn;
    s->be = wr_vram_backend(v);
    s->in_place = s->be->host_visible;
    s->slot_block[0] = s->slot_block[1] = -1;
    s->cur = s->computing = -1;
    s->comp_slot = -1;
    s->name = "blocks";
    s->slot_bytes = wr_blocks_max_bytes(blocks, ssz, n, fn);
    s->res_views = calloc((size_t)(resident ? resident : 1), ssz);
    s->slot_view = calloc(2, ssz);
    wr_status st =
        s->res_views && s->slot_view ? WR_OK : WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    for (int k = 0; st == WR_OK && k < 2; k++) {
        st = wr_event_create(s->be, &s->ready[k]);
        if (st == WR_OK) st = wr_event_create(s->be, &s->freed[k]);
    }
    if (st == WR_OK) st = wr_event_create(s->be, &s->res_ready);
    /* the staging buffers the copies go through (while anything is copied) */
    const int copies = resident < n || (!s->in_place && resident > 0);
    if (st == WR_OK && copies && wr_vram_wants_staging(v)) {
        st = wr_vram_staging_acquire(v);
        s->staging = st == WR_OK;
    }
    size_t total = 0;
    for (int64_t i = 0; i < resident; i++)
        total += one_block_bytes(s->blocks + (size_t)i * ssz, fn);
    if (st == WR_OK && resident > 0 && s->in_place) {
        st = wr_vram_account(v, WR_MEM_WEIGHTS_RESIDENT, (int64_t)total);
        if (st == WR_OK) {
            s->accounted = total;
            memcpy(s->res_views, blocks, ssz * (size_t)resident);
        }
    } else if (st == WR_OK && resident > 0) {
        st = copy_resident(s, total);
    }
    if (st == WR_OK && s->staging && resident == n) { /* nothing streams: not needed any more */
        wr_vram_staging_release(v);
        s->staging = 0;
    }
    for (int k = 0; st == WR_OK && resident < n && k < 2; k++)
        st = wr_vram_alloc(v, WR_MEM_WEIGHTS_STREAMING, s->slot_bytes, &s->slot[k]);
    if (st == WR_OK) pin_streamed(s);
    if (st == WR_OK && !wr_vram_disk_offload(v)) { /* the streamed blocks wait in host memory */
        wr_tensor *t[WR_STREAM_MAX_TENSORS];
        for (int64_t i = resident; i < n; i++) { /* page-locked or pageable, tensor by tensor */
            const int k = fn(s->blocks + (size_t)i * ssz, t);
            for (int j = 0; j < k; j++) {
                if (t[j]->data == NULL) continue;
                const size_t b = align64(wr_tensor_nbytes(t[j]));
                s->host += b;
                if (s->npins && wr_vram_is_pinned(v, t[j]->data, wr_tensor_nbytes(t[j])))
                    s->host_pinned += b;
            }
        }
        if (s->host_pinned) wr_vram_host_account(v, WR_HOST_PINNED, (int64_t)s->host_pinned);
        if (s->host > s->host_pinned)
            wr_vram_host_account(v, WR_HOST_PAGEABLE, (int64_t)(s->host - s->host_pinned));
    }
    if (st != WR_OK) {
        wr_streamer_free(s);
        return st;
    }
    *out = s;
    return WR_OK;
}

const char *wr_weight_state_name(wr_weight_state st) {
    static const char *const names[] = {"offload", "onload", "preparing", "computation"};
    return st >= WR_WEIGHTS_OFFLOAD && st <= WR_WEIGHTS_COMPUTATION ? names[st] : "?";
}

wr_weight_state wr_streamer_state(const wr_streamer *s, int64_t i) {
    WR_ASSERT(i >= 0 && i < s->n);
    if (s->computing == i) return WR_WEIGHTS_COMPUTATION;
    if (i < s->resident || s->slot_block[0] == i || s->slot_block[1] == i)
        return WR_WEIGHTS_PREPARING;
    return wr_vram_disk_offload(s->v) ? WR_WEIGHTS_OFFLOAD : WR_WEIGHTS_ONLOAD;
}

void wr_streamer_set_name(wr_streamer *s, const char *name) {
    s->name = name;
}

void wr_streamer_release(wr_streamer *s, int64_t i) {
    if (s == NULL) return;
    if (s->cur == i) finish_current(s);
    if (s->computing == i) {
        const wr_status st = end_compute(s);
        if (st != WR_OK && s->release_st == WR_OK) s->release_st = st;
    }
}

/* Starts copying block j into slot k, behind the ops that read the slot's previous block and
 * after the slot's previous copy, if any. */
static wr_status fill_slot(wr_streamer *s, int k, int64_t j) {
    if (s->slot_block[k] >= 0) WR_TRY(wr_vram_copy_wait(s->v, s->slot_ticket[k]));
    s->slot_block[k] = -1;
    s->ready_rec[k] = 0;
    WR_TRY(copy_block(s, s->blocks + (size_t)j * s->ssz, s->slot[k],
                      s->slot_view + (size_t)k * s->ssz, s->freed_rec[k] ? s->freed[k] : NULL,
                      s->ready[k], &s->slot_first[k], &s->slot_ticket[k]));
    s->ready_rec[k] = s->slot_ticket[k] != 0;
    s->slot_block[k] = j;
    return WR_OK;
}

wr_status wr_streamer_acquire(wr_streamer *s, int64_t i, const void **out) {
    WR_ASSERT(i >= 0 && i < s->n);
    /* the previous block's compute is over (if it was not released) */
    wr_status st = end_compute(s);
    if (st == WR_OK && s->hand_blocks && i < s->handed)
        st = WR_FAIL(WR_ERR_INTERNAL, "%s block %lld was acquired after it was handed over",
                     s->name, (long long)i);
    if (st == WR_OK) st = s->release_st;
    s->release_st = WR_OK;
    WR_TRY(st);
    s->computing = i;
    if (i < s->resident) {
        /* the last resident block: the first streamed one starts copying */
        const int64_t j = s->resident;
        if (i == j - 1 && j < s->n && s->slot_block[0] != j && s->slot_block[1] != j)
            WR_TRY(fill_slot(s, 0, j));
        *out = s->res_views + (size_t)i * s->ssz;
        return WR_OK;
    }
    int k = s->slot_block[0] == i ? 0 : s->slot_block[1] == i ? 1 : -1;
    if (k < 0) { /* not prefetched (the first use): load it now into slot 0 */
        k = 0;
        WR_TRY(fill_slot(s, 0, i));
    }
    /* the fill issued (on a synchronous backend: arrived); block i's ops wait for its bytes */
    WR_TRY(wr_vram_copy_wait(s->v, s->slot_ticket[k]));
    if (s->ready_rec[k]) WR_TRY(wr_stream_wait(s->be, WR_STREAM_COMPUTE, s->ready[k]));
    s->comp_slot = k;
    s->cur = i, s->cur_first = s->slot_first[k], s->cur_last = s->slot_ticket[k];
    s->cur_slot = k;
    s->cur_t0 = wr_now_s();
    wr_vram_copy_counts(s->v, &s->cur_issued0, &s->cur_done0); /* (if the fill below fails) */
    /* the next streamed block (wrapping to the first, for the next pass) into the other slot,
     * behind the ops of block i - 1, which it held (their event was recorded when this acquire
     * began, or at its release) */
    const int64_t j = i + 1 < s->n ? i + 1 : s->resident;
    if (j != i && s->slot_block[1 - k] != j) WR_TRY(fill_slot(s, 1 - k, j));
    wr_vram_copy_counts(s->v, &s->cur_issued0, &s->cur_done0); /* block i's compute begins */
    *out = s->slot_view + (size_t)k * s->ssz;
    return WR_OK;
}

/* ---- the hand-over (Wan2.2's expert swap) ---- */

/* Block i's ops are issued: an event behind them on the compute stream, then the next model's
 * block i copied into its place, the copy stream waiting for that event. */
static wr_status hand_block(wr_streamer *s, int64_t i) {
    if (i != s->handed)
        return WR_FAIL(WR_ERR_INTERNAL,
                       "%s: the hand-over needs the blocks in order (%lld after "
                       "%lld)",
                       s->name, (long long)i, (long long)s->handed);
    WR_TRY(wr_event_record(s->be, s->hand_ev[i], WR_STREAM_COMPUTE));
    uint64_t t = 0;
    WR_TRY(copy_block(s, s->hand_blocks + (size_t)i * s->ssz, (char *)s->res_mem + s->res_off[i],
                      s->hand_views + (size_t)i * s->ssz, s->hand_ev[i],
                      i == s->n - 1 ? s->res_ready : NULL, NULL, &t));
    if (t) s->hand_ticket = t;
    s->handed = i + 1;
    return WR_OK;
}

wr_status wr_streamer_handoff(wr_streamer *s, void *blocks, size_t struct_size) {
    if (s->in_place || s->resident < s->n || s->handed || s->hand_blocks)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "%s: a hand-over needs every block resident as device copies, once",
                       s->name);
    if (struct_size != s->ssz)
        return WR_FAIL(WR_ERR_UNSUPPORTED, "%s: a hand-over needs blocks of the same struct",
                       s->name);
    s->res_off = calloc((size_t)s->n, sizeof *s->res_off);
    s->hand_views = calloc((size_t)s->n, s->ssz);
    s->hand_ev = calloc((size_t)s->n, sizeof *s->hand_ev);
    wr_status st = s->res_off && s->hand_views && s->hand_ev
                       ? WR_OK
                       : WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    size_t off = 0;
    for (int64_t i = 0; st == WR_OK && i < s->n; i++) {
        /* the same bytes in the same order: each tensor lands where the old one was */
        wr_tensor *a[WR_STREAM_MAX_TENSORS], *b[WR_STREAM_MAX_TENSORS];
        const int na = s->tensors(s->blocks + (size_t)i * s->ssz, a);
        const int nb = s->tensors((char *)blocks + (size_t)i * s->ssz, b);
        int same = na == nb;
        for (int j = 0; same && j < na; j++)
            same = (a[j]->data == NULL) == (b[j]->data == NULL) &&
                   (a[j]->data == NULL ||
                    align64(wr_tensor_nbytes(a[j])) == align64(wr_tensor_nbytes(b[j])));
        if (!same)
            st = WR_FAIL(WR_ERR_UNSUPPORTED,
                         "%s: block %lld of the next model is laid out differently (dtype or "
                         "shape): no hand-over",
                         s->name, (long long)i);
        s->res_off[i] = off;
        off += one_block_bytes(s->blocks + (size_t)i * s->ssz, s->tensors);
        if (st == WR_OK) st = wr_event_create(s->be, &s->hand_ev[i]);
    }
    /* the copies go through the staging buffers where the pool wants them */
    if (st == WR_OK && !s->staging && wr_vram_wants_staging(s->v)) {
        st = wr_vram_staging_acquire(s->v);
        s->staging = st == WR_OK;
    }
    if (st != WR_OK) {
        for (int64_t i = 0; s->hand_ev && i < s->n; i++) wr_event_free(s->be, s->hand_ev[i]);
        free(s->hand_ev), free(s->hand_views), free(s->res_off);
        s->hand_ev = NULL, s->hand_views = NULL, s->res_off = NULL;
        return st;
    }
    s->hand_blocks = blocks;
    return WR_OK;
}

wr_status wr_streamer_adopt(wr_streamer **out, wr_streamer *old, void *blocks) {
    *out = NULL;
    if (old->release_st != WR_OK) return old->release_st; /* a hand-over copy failed */
    if (old->hand_blocks != blocks || old->handed != old->n)
        return WR_FAIL(WR_ERR_INTERNAL, "%s: adopted after %lld of %lld blocks were handed over",
                       old->name, (long long)old->handed, (long long)old->n);
    (void)end_compute(old);
    /* the copies still running: issued, then arrived (res_ready behind the last one) */
    if (old->hand_ticket) {
        WR_TRY(wr_vram_copy_wait(old->v, old->hand_ticket));
        WR_TRY(wr_event_sync(old->be, old->res_ready));
    }
    wr_streamer *s = calloc(1, sizeof *s);
    if (s == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    wr_status st = WR_OK;
    for (int k = 0; st == WR_OK && k < 2; k++) {
        st = wr_event_create(old->be, &s->ready[k]);
        if (st == WR_OK) st = wr_event_create(old->be, &s->freed[k]);
    }
    if (st == WR_OK) st = wr_event_create(old->be, &s->res_ready);
    s->slot_view = calloc(2, old->ssz);
    if (st == WR_OK && s->slot_view == NULL) st = WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    if (st != WR_OK) {
        for (int k = 0; k < 2; k++) {
            wr_event_free(old->be, s->ready[k]);
            wr_event_free(old->be, s->freed[k]);
        }
        wr_event_free(old->be, s->res_ready);
        free(s->slot_view);
        free(s);
        return st;
    }
    s->v = old->v, s->be = old->be, s->blocks = blocks, s->ssz = old->ssz, s->n = old->n;
    s->resident = old->n, s->tensors = old->tensors, s->in_place = 0;
    s->slot_bytes = old->slot_bytes;
    s->slot_block[0] = s->slot_block[1] = -1;
    s->cur = s->computing = -1;
    s->comp_slot = -1;
    s->name = old->name;
    /* the memory and its views move; old gives nothing back but its events and staging */
    s->res_mem = old->res_mem, old->res_mem = NULL;
    s->res_views = old->hand_views, old->hand_views = NULL;
    *out = s;
    return WR_OK;
}

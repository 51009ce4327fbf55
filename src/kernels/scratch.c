/* scratch.c — the op scratch arena of a backend (see backend.h). */
#include <string.h>

#include "core/log.h"
#include "kernels/backend.h"

#define WR_SCRATCH_DEFAULT ((size_t)32 << 20)

size_t wr_backend_scratch_bytes(wr_backend_kind kind) {
    (void)kind; /* the same on both so far; the planner asks per kind */
    return WR_SCRATCH_DEFAULT;
}

static wr_status arena_alloc(wr_backend *be, size_t bytes, void **out) {
    wr_scratch *s = &be->scratch;
    return s->prov.alloc ? s->prov.alloc(s->prov.ctx, bytes, out)
                         : be->iface->alloc(be, out, bytes);
}

static void arena_free(wr_backend *be, void *p) {
    wr_scratch *s = &be->scratch;
    if (s->prov.free)
        s->prov.free(s->prov.ctx, p);
    else
        be->iface->free(be, p);
}

static void release_arena(wr_backend *be) {
    wr_scratch *s = &be->scratch;
    WR_ASSERT(s->used == 0 && s->nbig == 0); /* no op holds a piece */
    if (s->base) arena_free(be, s->base);
    s->base = NULL;
    s->owned = 0;
}

/* No queued op may hold the arena while it changes hands (the async CPU mode). */
static void quiesce(wr_backend *be) {
    if (be->iface && be->iface->event_create && be->iface->sync) (void)be->iface->sync(be);
}

void wr_scratch_attach(wr_backend *be, const wr_scratch_provider *prov, size_t cap) {
    quiesce(be);
    release_arena(be);
    be->scratch.prov = *prov;
    be->scratch.cap = cap ? cap : wr_backend_scratch_bytes(be->kind);
}

void wr_scratch_detach(wr_backend *be) {
    quiesce(be);
    release_arena(be);
    memset(&be->scratch.prov, 0, sizeof be->scratch.prov);
    be->scratch.cap = wr_backend_scratch_bytes(be->kind);
}

wr_status wr_scratch_reserve(wr_backend *be) {
    wr_scratch *s = &be->scratch;
    if (s->base) return WR_OK;
    if (s->cap == 0) s->cap = wr_backend_scratch_bytes(be->kind);
    void *p = NULL;
    WR_TRY(arena_alloc(be, s->cap, &p));
    s->base = p;
    s->owned = s->prov.alloc == NULL;
    return WR_OK;
}

wr_scratch_mark wr_scratch_save(const wr_backend *be) {
    return (wr_scratch_mark){be->scratch.used, be->scratch.nbig};
}

void wr_scratch_restore(wr_backend *be, wr_scratch_mark m) {
    wr_scratch *s = &be->scratch;
    WR_ASSERT(m.used <= s->used && m.nbig <= s->nbig);
    while (s->nbig > m.nbig) arena_free(be, s->big[--s->nbig]);
    s->used = m.used;
}

size_t wr_scratch_left(const wr_backend *be) {
    const wr_scratch *s = &be->scratch;
    const size_t cap = s->cap ? s->cap : wr_backend_scratch_bytes(be->kind);
    return cap - s->used;
}

wr_status wr_scratch_get(wr_backend *be, size_t bytes, const char *what, void **out) {
    wr_scratch *s = &be->scratch;
    *out = NULL;
    WR_TRY(wr_scratch_reserve(be));
    const size_t n = (bytes + 63) & ~(size_t)63;
    if (n < bytes) return WR_FAIL(WR_ERR_OOM_DEVICE, "%s: %zu bytes of scratch", what, bytes);
    if (n <= s->cap - s->used) {
        *out = be->scratch_view ? be->scratch_view(be, s->base + s->used) : s->base + s->used;
        s->used += n;
        if (s->used > s->high) s->high = s->used;
        return WR_OK;
    }
    if (s->nbig == WR_SCRATCH_MAX_BIG)
        return WR_FAIL(WR_ERR_INTERNAL, "%s: more than %d one-off scratch pieces", what,
                       WR_SCRATCH_MAX_BIG);
    wr_debug("%s: %.1f MiB of scratch, more than the %.1f MiB left in the arena: a one-off "
             "allocation",
             what, (double)n / 1048576.0, (double)(s->cap - s->used) / 1048576.0);
    void *p = NULL;
    WR_TRY(arena_alloc(be, n, &p));
    s->big[s->nbig++] = p;
    s->oversize++;
    *out = be->scratch_view ? be->scratch_view(be, p) : p;
    return WR_OK;
}

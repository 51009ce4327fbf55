/* backend_common.c — events and memory calls on any backend (backend.h): a synchronous
 * backend leaves the stream slots NULL, and these then run the synchronous call. */
#include <string.h>

#include "kernels/backend.h"

wr_status wr_event_create(wr_backend *be, wr_event **out) {
    *out = NULL;
    if (be->iface->event_create == NULL) {
        *out = (wr_event *)(void *)be; /* any non-NULL token: nothing to wait for */
        return WR_OK;
    }
    return be->iface->event_create(be, out);
}

void wr_event_free(wr_backend *be, wr_event *ev) {
    if (ev && be->iface->event_free) be->iface->event_free(be, ev);
}

wr_status wr_event_record(wr_backend *be, wr_event *ev, int stream) {
    WR_ASSERT(stream >= 0 && stream < WR_STREAM_COUNT);
    return be->iface->event_record ? be->iface->event_record(be, ev, stream) : WR_OK;
}

wr_status wr_stream_wait(wr_backend *be, int stream, wr_event *ev) {
    WR_ASSERT(stream >= 0 && stream < WR_STREAM_COUNT);
    return be->iface->stream_wait ? be->iface->stream_wait(be, stream, ev) : WR_OK;
}

wr_status wr_event_sync(wr_backend *be, wr_event *ev) {
    return be->iface->event_sync ? be->iface->event_sync(be, ev) : WR_OK;
}

wr_status wr_upload(wr_backend *be, void *dst, const void *host_src, size_t nbytes) {
    return nbytes ? be->iface->upload(be, dst, host_src, nbytes) : WR_OK;
}

wr_status wr_download(wr_backend *be, void *host_dst, const void *src, size_t nbytes) {
    return nbytes ? be->iface->download(be, host_dst, src, nbytes) : WR_OK;
}

wr_status wr_dev_copy(wr_backend *be, void *dst, const void *src, size_t nbytes) {
    return nbytes ? be->iface->copy(be, dst, src, nbytes) : WR_OK;
}

wr_status wr_dev_memset0(wr_backend *be, void *dst, size_t nbytes) {
    return nbytes ? be->iface->memset0(be, dst, nbytes) : WR_OK;
}

wr_status wr_upload_on(wr_backend *be, int stream, void *dst, const void *host_src, size_t nbytes) {
    WR_ASSERT(stream >= 0 && stream < WR_STREAM_COUNT);
    if (nbytes == 0) return WR_OK;
    if (be->iface->upload_on) return be->iface->upload_on(be, stream, dst, host_src, nbytes);
    return be->iface->upload(be, dst, host_src, nbytes);
}

wr_status wr_download_async(wr_backend *be, void *host_dst, const void *src, size_t nbytes) {
    if (nbytes == 0) return WR_OK;
    if (be->iface->download_async) return be->iface->download_async(be, host_dst, src, nbytes);
    return be->iface->download(be, host_dst, src, nbytes);
}

/* The plain loop, for a backend without a copy3d slot: one call per run. */
wr_status wr_copy_3d(wr_backend *be, const wr_copy3d *c) {
    WR_ASSERT(c->rows >= 0 && c->planes >= 0);
    if (c->width == 0 || c->rows == 0 || c->planes == 0) return WR_OK;
    WR_ASSERT(c->rows == 1 || (c->dpitch >= c->width && c->spitch >= c->width));
    if (be->iface->copy3d) return be->iface->copy3d(be, c);
    for (int64_t p = 0; p < c->planes; p++)
        for (int64_t r = 0; r < c->rows; r++) {
            char *d = (char *)c->dst + (size_t)p * c->dplane + (size_t)r * c->dpitch;
            const char *s = (const char *)c->src + (size_t)p * c->splane + (size_t)r * c->spitch;
            wr_status st = c->dir == WR_COPY_H2D   ? be->iface->upload(be, d, s, c->width)
                           : c->dir == WR_COPY_D2H ? be->iface->download(be, d, s, c->width)
                                                   : be->iface->copy(be, d, s, c->width);
            if (st != WR_OK) return st;
        }
    return WR_OK;
}

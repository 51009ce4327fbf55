/* tensor.c — host buffers and contiguous tensor views. */
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

wr_status wr_buffer_alloc(wr_buffer *out, size_t nbytes) {
    out->data = NULL;
    out->nbytes = 0;
    if (nbytes == 0) return WR_OK;
    size_t rounded = (nbytes + 63) & ~(size_t)63;
    if (rounded < nbytes) return WR_FAIL(WR_ERR_OOM_HOST, "cannot allocate %zu bytes", nbytes);
    void *p = aligned_alloc(64, rounded);
    if (p == NULL)
        return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory allocating %.3f GiB",
                       (double)nbytes / (1024.0 * 1024.0 * 1024.0));
    out->data = p;
    out->nbytes = nbytes;
    return WR_OK;
}

wr_status wr_buffer_calloc(wr_buffer *out, size_t nbytes) {
    WR_TRY(wr_buffer_alloc(out, nbytes));
    if (out->data) memset(out->data, 0, nbytes);
    return WR_OK;
}

void wr_buffer_free(wr_buffer *b) {
    if (b == NULL) return;
    free(b->data);
    b->data = NULL;
    b->nbytes = 0;
}

wr_tensor wr_tensor_make(void *data, wr_dtype dtype, int ndim, const int64_t *shape) {
    WR_ASSERT(ndim >= 0 && ndim <= WR_MAX_DIMS);
    WR_ASSERT((unsigned)dtype < WR_DTYPE_COUNT);
    wr_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dtype;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        WR_ASSERT(shape[i] >= 0);
        t.shape[i] = shape[i];
    }
    return t;
}

int64_t wr_tensor_nelem(const wr_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t wr_tensor_nbytes(const wr_tensor *t) {
    return (size_t)wr_tensor_nelem(t) * wr_dtype_size(t->dtype);
}

int wr_tensor_same_shape(const wr_tensor *a, const wr_tensor *b) {
    if (a->dtype != b->dtype || a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

char *wr_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t used = 0;
    if (cap == 0) return buf;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used +=
            (size_t)snprintf(buf + used, cap - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
    return buf;
}

/* Elements in one index of the k outermost dimensions. */
static int64_t inner_elems(const wr_tensor *t, int k) {
    int64_t n = 1;
    for (int i = k; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

wr_status wr_tensor_slice0(wr_tensor *out, const wr_tensor *t, int64_t start, int64_t len) {
    if (t->ndim < 1 || start < 0 || len < 0 || start > t->shape[0] || len > t->shape[0] - start)
        return WR_FAIL(WR_ERR_INVALID_ARG, "slice [%lld, %lld) outside dimension 0 of size %lld",
                       (long long)start, (long long)(start + len),
                       (long long)(t->ndim ? t->shape[0] : 0));
    *out = *t;
    out->shape[0] = len;
    out->data = (char *)t->data + (size_t)(start * inner_elems(t, 1)) * wr_dtype_size(t->dtype);
    return WR_OK;
}

wr_status wr_tensor_select(wr_tensor *out, const wr_tensor *t, int k, const int64_t *idx) {
    if (k < 0 || k > t->ndim)
        return WR_FAIL(WR_ERR_INVALID_ARG, "select of %d dims from %d", k, t->ndim);
    int64_t off = 0;
    for (int i = 0; i < k; i++) {
        if (idx[i] < 0 || idx[i] >= t->shape[i])
            return WR_FAIL(WR_ERR_INVALID_ARG, "index %lld outside dimension %d of size %lld",
                           (long long)idx[i], i, (long long)t->shape[i]);
        off = off * t->shape[i] + idx[i];
    }
    wr_tensor r = wr_tensor_make(NULL, t->dtype, t->ndim - k, t->shape + k);
    r.data = (char *)t->data + (size_t)(off * inner_elems(t, k)) * wr_dtype_size(t->dtype);
    *out = r;
    return WR_OK;
}

wr_status wr_tensor_reshape(wr_tensor *out, const wr_tensor *t, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > WR_MAX_DIMS)
        return WR_FAIL(WR_ERR_INVALID_ARG, "reshape to %d dimensions", ndim);
    int64_t known = 1;
    int infer = -1;
    int64_t s[WR_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1 && infer < 0)
            infer = i;
        else if (s[i] < 0)
            return WR_FAIL(WR_ERR_INVALID_ARG, "reshape: bad dimension %lld", (long long)s[i]);
        else
            known *= s[i];
    }
    int64_t n = wr_tensor_nelem(t);
    if (infer >= 0) {
        if (known == 0 || n % known != 0)
            return WR_FAIL(WR_ERR_INVALID_ARG,
                           "reshape: cannot infer a dimension for %lld "
                           "elements",
                           (long long)n);
        s[infer] = n / known;
        known *= s[infer];
    }
    if (known != n)
        return WR_FAIL(WR_ERR_INVALID_ARG, "reshape: %lld elements into a shape of %lld",
                       (long long)n, (long long)known);
    *out = wr_tensor_make(t->data, t->dtype, ndim, s);
    return WR_OK;
}

/*
 * tensor.h — host buffers (which own memory) and tensors (which never do).
 *
 * A wr_tensor is a typed, contiguous, row-major view (PyTorch order) of memory owned by
 * someone else: a wr_buffer, a mmap'd safetensors file, a workspace. Views select ranges or
 * indices along the outer dimensions only, so every view stays contiguous.
 */
#ifndef WR_CORE_TENSOR_H
#define WR_CORE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "status.h"

#define WR_MAX_DIMS 8

/* Host memory, 64-byte aligned. Owns `data`. */
typedef struct wr_buffer {
    void *data;
    size_t nbytes;
} wr_buffer;

/* Allocates nbytes (0 allowed: data is NULL). WR_ERR_OOM_HOST naming the size on failure. */
wr_status wr_buffer_alloc(wr_buffer *out, size_t nbytes);
/* Same, zero-filled. */
wr_status wr_buffer_calloc(wr_buffer *out, size_t nbytes);
/* NULL-safe; leaves *b zeroed. */
void wr_buffer_free(wr_buffer *b);

typedef struct wr_tensor {
    void *data; /* borrowed */
    wr_dtype dtype;
    int ndim;
    int64_t shape[WR_MAX_DIMS];
} wr_tensor;

/* A tensor over `data` (borrowed). WR_ASSERTs 0 <= ndim <= WR_MAX_DIMS and shape[i] >= 0. */
wr_tensor wr_tensor_make(void *data, wr_dtype dtype, int ndim, const int64_t *shape);
int64_t wr_tensor_nelem(const wr_tensor *t);
size_t wr_tensor_nbytes(const wr_tensor *t);
/* 1 when dtype, ndim and every dimension agree. */
int wr_tensor_same_shape(const wr_tensor *a, const wr_tensor *b);
/* Writes "[2, 3, 4]" into buf (always terminated); returns buf. */
char *wr_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);

/* Rows [start, start+len) of dimension 0. WR_ERR_INVALID_ARG when out of range. */
wr_status wr_tensor_slice0(wr_tensor *out, const wr_tensor *t, int64_t start, int64_t len);
/* Index the k outermost dimensions (idx[0..k-1]), dropping them. WR_ERR_INVALID_ARG if out of
 * range or k > ndim. */
wr_status wr_tensor_select(wr_tensor *out, const wr_tensor *t, int k, const int64_t *idx);
/* Same data, new shape with the same element count (one dimension may be -1). */
wr_status wr_tensor_reshape(wr_tensor *out, const wr_tensor *t, int ndim, const int64_t *shape);

#endif /* WR_CORE_TENSOR_H */

/*
 * safetensors.h — validated, lazy reading of safetensors files and sharded indexes; a writer.
 *
 * Reading. wr_st_open() reads and validates the header only (with pread) and maps the file
 * read-only; no tensor byte is touched until asked for (lazy access, DiffSynth's DiskMap idea).
 * Tensor bytes are reached either through the mapping (wr_st_tensor_data: zero-copy, the page
 * cache does the I/O) or copied into a caller's buffer with pread (wr_st_read / _read_range:
 * the path for pinned staging and disk offload).
 *
 * Every file is untrusted. Validation (DESIGN.md §6): a regular file (a FIFO or a device is
 * refused without blocking: WR_ERR_IO), ≥ 8 bytes, header length ≤ WR_ST_MAX_HEADER and ≤ file
 * size - 8, header is UTF-8 (as the reference reader requires) and a JSON object (trailing
 * spaces allowed) whose strings hold no \u0000 and no unpaired surrogate escape, no raw control
 * character; each entry is an object without a duplicate key, with a known dtype, a shape of
 * non-negative integers whose element count and byte size do not overflow, data_offsets
 * [begin, end] with end - begin == byte size, inside the data region; the spans do not overlap
 * and cover the data region without gaps; no name appears twice (a tensor or `__metadata__`);
 * `__metadata__` is an object of strings without a duplicate key. Every violation is
 * WR_ERR_FORMAT with a detail naming the file and the tensor. So every name and metadata string
 * an opened file hands out is NUL-free UTF-8, safe to emit as a JSON string.
 *
 * A file that changes under the process. The mapping of a file truncated (or rewritten in
 * place) while open raises SIGBUS when a page past its new end is touched. wr_st_open installs,
 * once per process, a SIGBUS handler that recognises our mappings, maps zero pages over the
 * rest of the faulting one (the access completes, reading zeros) and records the fault; a
 * SIGBUS elsewhere goes to the handler installed before (or the default action). The zeros are
 * never used as a result: wr_st_check_faults() reports the fault, and must be called before
 * anything computed from mapped weights is trusted or written. pread paths report a short read
 * the same way. See safetensors.c for the design.
 *
 * Sets. A wr_st_set is what a model component is made of: one .safetensors file, or a
 * `*.safetensors.index.json` and its shards. Lookup by name is O(log n). Opening an index
 * validates that every listed shard exists and holds each tensor the weight_map assigns to it,
 * and that no shard holds a tensor the map does not list.
 *
 * Lifetime: tensors (wr_st_tensor) and their names are owned by the file/set and live until
 * wr_st_close / wr_st_set_close. Threading: after open, all read functions are thread-safe
 * (pread on a shared fd, read-only mapping).
 */
#ifndef WR_CORE_SAFETENSORS_H
#define WR_CORE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "atomic_file.h"
#include "dtype.h"
#include "status.h"
#include "tensor.h"

#define WR_ST_MAX_HEADER ((uint64_t)100 << 20) /* 100 MiB */

typedef struct wr_st_file wr_st_file;

typedef struct wr_st_tensor {
    const char *name;
    wr_dtype dtype;
    int ndim;
    int64_t shape[WR_MAX_DIMS];
    int64_t nelem;
    size_t nbytes;
    uint64_t offset; /* absolute file offset of the first byte */
    wr_st_file *file;
} wr_st_tensor;

/* ---- one file ---- */

/*
 * Opens and validates `path`. On success *out owns the fd, the mapping and the parsed header.
 * Failures: WR_ERR_NOT_FOUND (no such file), WR_ERR_IO (not a regular file; cannot
 * open/stat/map; more than 4096 files open at once), WR_ERR_FORMAT (see above).
 */
wr_status wr_st_open(wr_st_file **out, const char *path);
/* Validates an in-memory image of a whole file (used by the fuzzer and tests). `name` is used
 * in error details. The bytes are copied; nothing is mapped. */
wr_status wr_st_open_memory(wr_st_file **out, const void *bytes, size_t nbytes, const char *name);
/* NULL-safe. */
void wr_st_close(wr_st_file *f);

const char *wr_st_path(const wr_st_file *f);
uint64_t wr_st_file_size(const wr_st_file *f);
int64_t wr_st_count(const wr_st_file *f);
/* Tensors in data-offset order, i in [0, count). */
const wr_st_tensor *wr_st_at(const wr_st_file *f, int64_t i);
/* NULL when absent. */
const wr_st_tensor *wr_st_find(const wr_st_file *f, const char *name);
/* `__metadata__` value for key, or NULL. Borrowed. */
const char *wr_st_metadata(const wr_st_file *f, const char *key);
int64_t wr_st_metadata_count(const wr_st_file *f);
/* i-th metadata pair (key and value borrowed). */
void wr_st_metadata_at(const wr_st_file *f, int64_t i, const char **key, const char **value);

/* ---- tensor access ---- */

/* Pointer to the tensor's bytes inside the read-only mapping (no copy; pages fault in on
 * first touch). Never NULL for an opened tensor with nbytes > 0. */
const void *wr_st_tensor_data(const wr_st_tensor *t);
/* A wr_tensor viewing the mapping (const-cast: do not write through it). */
wr_tensor wr_st_tensor_view(const wr_st_tensor *t);
/* Copies the whole tensor into dst (dst_bytes >= nbytes) with pread. WR_ERR_IO on a short read
 * (the file shrank: "changed size while in use") or error, naming file and tensor;
 * WR_ERR_INVALID_ARG if dst_bytes is too small. */
wr_status wr_st_read(const wr_st_tensor *t, void *dst, size_t dst_bytes);
/* Copies bytes [offset, offset+nbytes) of the tensor into dst. WR_ERR_INVALID_ARG if the
 * range is outside the tensor. */
wr_status wr_st_read_range(const wr_st_tensor *t, uint64_t offset, size_t nbytes, void *dst);
/* Reads the tensor and converts it to `dtype` into dst (dst_bytes >= nelem*size(dtype)); a
 * conversion reads the mapping, and a fault of the file is then WR_ERR_IO naming the file and
 * the tensor (see wr_st_check_faults). */
wr_status wr_st_read_as(const wr_st_tensor *t, wr_dtype dtype, void *dst, size_t dst_bytes);

/* ---- sets: a single file or a sharded index ---- */

typedef struct wr_st_set wr_st_set;

/*
 * Opens `path`: a .safetensors file, a *.index.json, or a directory holding exactly one of
 * `*.safetensors.index.json` or one `*.safetensors` file. Failures: WR_ERR_NOT_FOUND (path or
 * a shard missing, named), WR_ERR_IO, WR_ERR_FORMAT (any file's validation; index JSON without
 * a weight_map object, a map entry whose shard lacks the tensor, ...).
 */
wr_status wr_st_set_open(wr_st_set **out, const char *path);
/*
 * WR_ERR_IO naming the file when any open safetensors file (or one closed since the last call)
 * faulted through its mapping (SIGBUS), came short in a pread, or is now smaller than when it
 * was opened: "FILE: the file changed size while in use (it was truncated or replaced ...)".
 * WR_OK otherwise. A fault stays reported while its file is open (its pages past the end read
 * as zeros); a closed file's is reported once. Process-wide, thread-safe; costs one fstat per
 * open file. Called by the pipeline after loading, after each denoising step and before its
 * results are written, by the CLI before writing, and by wr_st_read_as after a conversion.
 */
wr_status wr_st_check_faults(void);
/* Disk offload: the n bytes at p, inside the mapping of an open safetensors file, read from the
 * file with pread into dst (the mapping's pages are not touched, so they never become part of
 * this process). WR_ERR_NOT_FOUND, with no error recorded, when p is not in a mapped file;
 * WR_ERR_IO naming the file when the read fails. Thread-safe; the file must stay open. */
wr_status wr_st_pread_mapped(const void *p, size_t n, void *dst);
void wr_st_set_close(wr_st_set *s);

/* The path as given, and the index path or NULL for a single file. */
const char *wr_st_set_path(const wr_st_set *s);
int64_t wr_st_set_count(const wr_st_set *s);
/* Tensors sorted by name. */
const wr_st_tensor *wr_st_set_at(const wr_st_set *s, int64_t i);
const wr_st_tensor *wr_st_set_find(const wr_st_set *s, const char *name);
/* Finds `name` or fails WR_ERR_NOT_FOUND naming the set and the tensor. */
wr_status wr_st_set_get(const wr_st_tensor **out, const wr_st_set *s, const char *name);
int64_t wr_st_set_nfiles(const wr_st_set *s);
wr_st_file *wr_st_set_file(const wr_st_set *s, int64_t i);
/* Sum of tensor bytes. */
uint64_t wr_st_set_nbytes(const wr_st_set *s);

/* ---- writer ---- */

typedef struct wr_st_writer wr_st_writer;

wr_status wr_st_writer_init(wr_st_writer **out);
void wr_st_writer_free(wr_st_writer *w);
/* Adds a tensor. `name` is copied; `data` (nelem*size(dtype) bytes) is borrowed until
 * wr_st_writer_write returns. Duplicate names are WR_ERR_INVALID_ARG. */
wr_status wr_st_writer_add(wr_st_writer *w, const char *name, wr_dtype dtype, int ndim,
                           const int64_t *shape, const void *data);
/* Adds a `__metadata__` string pair (both copied). */
wr_status wr_st_writer_meta(wr_st_writer *w, const char *key, const char *value);
/* Writes the file atomically (core/atomic_file.h): a temporary ".NAME.wanrun-tmp.<pid>" in
 * the same directory, fsync, rename. On failure nothing is left at `path` (an existing file
 * there is untouched) and the temporary is removed. Tensors are packed contiguously in the
 * order added (safetensors allows no gaps); the header is padded with spaces to a multiple
 * of 8 bytes. The same data pointer may be passed for many tensors. Failures: those of
 * wr_atomic_begin (the path: WR_ERR_INVALID_ARG / WR_ERR_IO), WR_ERR_IO (write, fsync,
 * rename), WR_ERR_OOM_HOST. */
wr_status wr_st_writer_write(wr_st_writer *w, const char *path);
/* The same without the rename: the complete, fsync'ed temporary is left in *pending for the
 * caller to wr_atomic_commit (or wr_atomic_discard), e.g. once its other outputs are ready.
 * On failure nothing is left and *pending is released. */
wr_status wr_st_writer_stage(wr_st_writer *w, const char *path, wr_atomic *pending);

#endif /* WR_CORE_SAFETENSORS_H */

/*
 * backend.h — the compute backend interface (one vtable per backend, after ggml-backend) and
 * the registry of compiled backends.
 *
 * A backend owns "device" memory (host memory on the CPU backend) and implements the ops.
 * Callers use the wr_op_* wrappers (ops.h), which check shapes and dtypes once and then call
 * the slot. A NULL slot means "unsupported on this backend" and is WR_ERR_UNSUPPORTED naming
 * the op and the backend — never a silent host fallback.
 *
 * Activations are f32, contiguous, row-major. Weights given to matmul / patch_embed may be
 * f32, bf16, f16, f8_e4m3 or f8_e5m2; backends convert them per use (never keeping a second
 * copy).
 *
 * Threading: one backend object is used by one thread at a time; ops may use threads inside
 * (OpenMP on the CPU backend, streams on CUDA).
 */
#ifndef WR_KERNELS_BACKEND_H
#define WR_KERNELS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"

typedef enum wr_backend_kind {
    WR_BACKEND_CPU = 0,
    WR_BACKEND_CUDA,
    WR_BACKEND_COUNT
} wr_backend_kind;

typedef struct wr_device_info {
    int count;      /* CUDA devices visible */
    char name[128]; /* device 0's name */
    int cc_major, cc_minor;
    size_t total_bytes; /* device 0's memory */
} wr_device_info;

typedef struct wr_backend wr_backend;

/* Streams of a backend: ops, uploads/downloads and memsets a caller issues run in issue order on
 * the compute stream; the vram layer's copy thread issues its weight copies on the copy stream.
 * Nothing orders the two streams but events. */
#define WR_STREAM_COMPUTE 0
#define WR_STREAM_COPY    1
#define WR_STREAM_COUNT   2

/* An event: a point in a stream's order (ggml-backend's / CUDA's). Opaque. */
typedef struct wr_event wr_event;

/* A strided byte copy (cudaMemcpy3D's shape): planes x rows runs of `width` contiguous bytes;
 * pitches are the bytes between rows and between planes, each side its own. */
typedef enum wr_copy_dir { WR_COPY_D2D = 0, WR_COPY_H2D, WR_COPY_D2H } wr_copy_dir;
typedef struct wr_copy3d {
    wr_copy_dir dir;
    void *dst;
    const void *src;
    size_t width;          /* bytes per run */
    int64_t rows, planes;  /* runs per plane, planes (>= 1 each; 0 copies nothing) */
    size_t dpitch, dplane; /* dst bytes between runs, between planes */
    size_t spitch, splane; /* src bytes between runs, between planes */
} wr_copy3d;

/* How a backend is made (wr_backend_create_ex). */
typedef struct wr_backend_opts {
    wr_backend_kind kind;
    int device;  /* CUDA: device index (a rank takes its node-local rank modulo the count) */
    int threads; /* <= 0: OMP_NUM_THREADS, else the cores (CPU) */
    /* CPU only. strict: "device" memory the host cannot touch (addresses in a PROT_NONE
     * reservation; the ops reach it through a private mapping): a host read of device memory
     * is a SIGSEGV. async (implies strict): every stream's work runs on its own worker thread,
     * so a missing wait or a host read before a sync gives wrong results. -1 each: from the
     * environment, WR_STRICT_DEVICE=1 (strict) or =async. */
    int strict, async;
} wr_backend_opts;

/* Attention parameters (see wr_op_attention). */
typedef struct wr_attn_params {
    float scale;             /* usually 1/sqrt(HD) */
    const uint8_t *key_mask; /* [Lk] host bytes, 1 = attend, 0 = masked; NULL = all keys */
    int64_t q_chunk;         /* queries per chunk (0: backend default) */
    int64_t k_chunk;         /* keys per online-softmax block (0: backend default) */
    /* [NH, Lq + Lk - 1] f32 backend memory, or NULL: added to score (i, j) of head h after the
     * scale, at [h, j - i + Lq - 1] (T5's relative position bias, a function of j - i) */
    const wr_tensor *pos_bias;
    int64_t k_valid; /* keys [k_valid, Lk) are masked (padding at the end); 0: all */
} wr_attn_params;

/* Convolution parameters (see wr_op_conv3d). */
typedef struct wr_conv_params {
    int64_t pad_t; /* zero frames in front (after nothing, before the cache) */
    int64_t pad_h; /* zero rows above and below */
    int64_t pad_w; /* zero columns left and right */
} wr_conv_params;

typedef struct wr_backend_iface {
    /* ---- memory ---- */
    wr_status (*alloc)(wr_backend *be, void **out, size_t nbytes);
    void (*free)(wr_backend *be, void *p);
    wr_status (*upload)(wr_backend *be, void *dst, const void *host_src, size_t nbytes);
    wr_status (*download)(wr_backend *be, void *host_dst, const void *src, size_t nbytes);
    wr_status (*copy)(wr_backend *be, void *dst, const void *src, size_t nbytes);
    wr_status (*memset0)(wr_backend *be, void *dst, size_t nbytes);
    /* waits until every stream's work so far is done */
    wr_status (*sync)(wr_backend *be);
    /* ---- streams and events (NULL everywhere on a synchronous backend: every call has
     * finished when it returns; the wr_event_* wrappers then do nothing) ---- */
    wr_status (*event_create)(wr_backend *be, wr_event **out);
    void (*event_free)(wr_backend *be, wr_event *ev);
    /* the event completes when everything issued to `stream` before it is done */
    wr_status (*event_record)(wr_backend *be, wr_event *ev, int stream);
    /* work issued to `stream` after this starts only once ev completed (no host block) */
    wr_status (*stream_wait)(wr_backend *be, int stream, wr_event *ev);
    /* blocks the host until ev completed */
    wr_status (*event_sync)(wr_backend *be, wr_event *ev);
    /* upload / download / memset / copy3d on a stream: upload, download and memset0 above
     * are these on the compute stream, finished before they return */
    wr_status (*upload_on)(wr_backend *be, int stream, void *dst, const void *host_src,
                           size_t nbytes);
    /* the host bytes are valid only after an event recorded behind it completed */
    wr_status (*download_async)(wr_backend *be, void *host_dst, const void *src, size_t nbytes);
    wr_status (*copy3d)(wr_backend *be, const wr_copy3d *c);
    /* The host-addressable alias of device memory, or NULL when there is none (CUDA). Only
     * the transports use it (MPI over a CPU "device", after a sync): never model code. */
    void *(*host_alias)(wr_backend *be, const void *dev);
    /* ---- the copy stream (the vram layer's copy thread calls these; NULL: plain host memory
     * and synchronous uploads, as on the CPU backend) ---- */
    /* page-locked host memory (staging for copies to the device) */
    wr_status (*host_alloc)(wr_backend *be, void **out, size_t nbytes);
    void (*host_free)(wr_backend *be, void *p);
    /* page-locks existing host memory [p, p + nbytes) (page-aligned: a range of a mapped
     * checkpoint, a loader arena) so that copies read it directly instead of through staging;
     * an error where the memory cannot be locked (the caller then stages). NULL: never (the
     * CPU backend, whose copies are memcpy). host_unregister takes the same p, after every
     * copy from the range completed. */
    wr_status (*host_register)(wr_backend *be, void *p, size_t nbytes);
    void (*host_unregister)(wr_backend *be, void *p);
    /* queues a copy of n bytes from page-locked host src into device dst on the copy stream
     * and marks `buf` (0 or 1, the staging buffer src lies in) busy until it is done */
    wr_status (*upload_async)(wr_backend *be, void *dst, const void *src, size_t n, int buf);
    /* waits until staging buffer buf (-1: every copy queued) may be reused / has arrived */
    wr_status (*upload_wait)(wr_backend *be, int buf);

    /* ---- ops (shapes already checked by the wrappers in ops.c) ---- */
    /* y[M,N] = alpha * x[M,K] . w[N,K]^T (+ b[N]); alpha is a per-tensor weight scale (FP8
     * storage), 1 otherwise */
    wr_status (*matmul)(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                        const wr_tensor *b, float alpha);
    /* over the last dim: (x - mean) / sqrt(var + eps) (* w + b when given) */
    wr_status (*layer_norm)(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                            const wr_tensor *b, float eps);
    /* over the last dim: x / sqrt(mean(x^2) + eps) * w */
    wr_status (*rms_norm)(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                          float eps);
    wr_status (*gelu_tanh)(wr_backend *be, wr_tensor *y, const wr_tensor *x);
    wr_status (*silu)(wr_backend *be, wr_tensor *y, const wr_tensor *x);
    /* y = a + b, y = a * b; b either a's shape or a's last dim (broadcast over rows) */
    wr_status (*add)(wr_backend *be, wr_tensor *y, const wr_tensor *a, const wr_tensor *b);
    wr_status (*mul)(wr_backend *be, wr_tensor *y, const wr_tensor *a, const wr_tensor *b);
    /* y[r,:] = x[r,:] * (1 + scale) + shift; scale, shift [D] */
    wr_status (*modulate)(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *scale,
                          const wr_tensor *shift);
    /* x[r,:] += a[r,:] * gate (gate [D], or NULL for a plain residual add) */
    wr_status (*gated_residual)(wr_backend *be, wr_tensor *x, const wr_tensor *a,
                                const wr_tensor *gate);
    /* interleaved-pair rotation in place: x [L, NH, HD], cos/sin [L, HD/2] */
    wr_status (*rope)(wr_backend *be, wr_tensor *x, const wr_tensor *cos, const wr_tensor *sin);
    /* out[Lq,NH,HD] = softmax(q k^T * scale, masked) v per head; lse [NH, Lq] optional */
    wr_status (*attention)(wr_backend *be, wr_tensor *out, wr_tensor *lse, const wr_tensor *q,
                           const wr_tensor *k, const wr_tensor *v, const wr_attn_params *p);
    /* conv3d with kernel = stride: x [C, F, H, W], w [D, C, pt, ph, pw], b [D] -> y [n, D],
     * the tokens n0 .. n0 + n - 1 of the L = (F/pt)(H/ph)(W/pw) */
    wr_status (*patch_embed)(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                             const wr_tensor *b, int64_t n0);
    /* o [Lq, NH, HD], lse [NH, Lq] := the softmax merge of (o, lse) and (o2, lse2), two
     * attentions of the same queries over disjoint key sets (ring attention) */
    wr_status (*attn_merge)(wr_backend *be, wr_tensor *o, wr_tensor *lse, const wr_tensor *o2,
                            const wr_tensor *lse2);
    /* rows x cols f32: dst[r * dld + c] = src[r * sld + c] (backend memory, no overlap) */
    wr_status (*copy2d)(wr_backend *be, float *dst, int64_t dld, const float *src, int64_t sld,
                        int64_t rows, int64_t cols);
    /* y [L, pt*ph*pw*C] -> out [C, F, H, W] */
    wr_status (*unpatchify)(wr_backend *be, wr_tensor *out, const wr_tensor *y, int pt, int ph,
                            int pw);
    /* causal conv3d, stride 1 (see wr_op_conv3d): frames [pad_t zeros | cache | x] */
    wr_status (*conv3d)(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *cache,
                        const wr_tensor *w, const wr_tensor *b, const wr_conv_params *p);
    /* y [C, T, 2H, 2W] = nearest x2 of x [C, T, H, W] in H and W */
    wr_status (*upsample2x)(wr_backend *be, wr_tensor *y, const wr_tensor *x);
    /* y[c, p] = x[c, p] / max(||x[:, p]||_2, 1e-12) * sqrt(C) * gamma[c]; x [C, P] */
    wr_status (*rms_norm_channels)(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                                   const wr_tensor *gamma);
    /* y [n, D] f32 = table [V, D] (any float dtype) rows idx[0..n-1] (host ints, read at
     * issue time like kernel arguments; 0 <= idx < V checked by the wrapper) */
    wr_status (*gather_rows)(wr_backend *be, wr_tensor *y, const wr_tensor *table,
                             const int32_t *idx);
    /* y [N, M] = x [M, N]^T */
    wr_status (*transpose)(wr_backend *be, wr_tensor *y, const wr_tensor *x);
    /* y = min(max(x, lo), hi) */
    wr_status (*clamp)(wr_backend *be, wr_tensor *y, const wr_tensor *x, float lo, float hi);
    /* y[c, :] = x[c, :] * scale[c] + shift[c]; x [C, P] */
    wr_status (*channel_affine)(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                                const wr_tensor *scale, const wr_tensor *shift);
    /* dst [P, Ld, Q] := the cross-fade of its first e rows of axis 1 with the last e of
     * a [P, La, Q] (wr_op_blend) */
    wr_status (*blend)(wr_backend *be, wr_tensor *dst, const wr_tensor *a, int64_t e);
} wr_backend_iface;

/*
 * Op scratch: the temporary device memory ops use inside one call (weight conversion panels,
 * convolution input bands and tap tables, attention's per-thread score blocks, gathered
 * patches). It is one arena of wr_backend_scratch_bytes(kind), used as a stack: an op saves
 * the mark, takes pieces with wr_scratch_get (nested ops take theirs after it) and restores
 * the mark before it returns. A vram pool provides the arena from its workspace category
 * (wr_vram_scratch_ensure), so these bytes are accounted, limited and planned like every
 * other device byte; without a provider the backend allocates the arena itself on first use.
 * Ops size their chunks to what is left (wr_scratch_left); a piece that cannot fit at all (an
 * image row wider than the arena) is a one-off allocation from the provider, counted in
 * `oversize`, and freed at the restore.
 */
#define WR_SCRATCH_MAX_BIG 8
typedef struct wr_scratch_provider {
    wr_status (*alloc)(void *ctx, size_t bytes, void **out);
    void (*free)(void *ctx, void *p);
    void *ctx;
} wr_scratch_provider;

typedef struct wr_scratch {
    char *base;       /* the arena (NULL until first use or until a provider gives it) */
    size_t cap, used; /* bytes */
    int owned;        /* base came from the backend's own alloc */
    wr_scratch_provider prov;
    void *big[WR_SCRATCH_MAX_BIG]; /* one-off pieces, freed at the restore */
    int nbig;
    size_t high;       /* the most arena bytes in use at once */
    uint64_t oversize; /* one-off pieces so far */
} wr_scratch;

typedef struct wr_scratch_mark {
    size_t used;
    int nbig;
} wr_scratch_mark;

struct wr_backend {
    const wr_backend_iface *iface;
    wr_backend_kind kind;
    int threads; /* CPU: worker threads for OpenMP and OpenBLAS */
    int device;  /* CUDA device index */
    /* 1: the ops read host memory in place (the plain CPU backend): a loader may hand them a
     * mapped checkpoint's tensors without a copy. 0 (strict CPU, CUDA): every tensor an op
     * reads must be device memory from alloc. */
    int host_visible;
    int strict, async; /* CPU strict / async device mode (wr_backend_opts) */
    void *impl;        /* backend-private state */
    /* strict CPU: the ops' view of scratch memory (NULL: identity) */
    void *(*scratch_view)(wr_backend *be, void *dev);
    wr_scratch scratch;
};

/* The arena size of a backend kind: 32 MiB on both (the CPU backend's largest piece is a
 * 16 MiB weight panel or an f32 copy of a VAE convolution's weight plus an 8 MiB band; on CUDA,
 * cuBLASLt's recommended workspace on Hopper). The planner counts it in every phase. */
size_t wr_backend_scratch_bytes(wr_backend_kind kind);
/* The arena from the provider from now on (its alloc is called on the next wr_scratch_get,
 * for the whole arena once, and for one-off pieces); a backend-owned arena is given back first.
 * cap 0: wr_backend_scratch_bytes. Not while pieces are taken. */
void wr_scratch_attach(wr_backend *be, const wr_scratch_provider *prov, size_t cap);
/* Gives the arena back to whoever provided it; the backend allocates its own on next use. */
void wr_scratch_detach(wr_backend *be);
/* Allocates the arena now (through the provider, if any). */
wr_status wr_scratch_reserve(wr_backend *be);
wr_scratch_mark wr_scratch_save(const wr_backend *be);
void wr_scratch_restore(wr_backend *be, wr_scratch_mark m);
/* bytes (rounded up to 64) from the arena, 64-byte aligned; WR_ERR_OOM_DEVICE naming `what`
 * when neither the arena nor a one-off piece can be had. */
wr_status wr_scratch_get(wr_backend *be, size_t bytes, const char *what, void **out);
/* Arena bytes not yet taken (the whole arena before its first use). */
size_t wr_scratch_left(const wr_backend *be);

/* 1 when the backend was compiled into this build. */
int wr_backend_compiled(wr_backend_kind kind);
const char *wr_backend_name(wr_backend_kind kind);

/*
 * Creates a backend. threads <= 0 takes OMP_NUM_THREADS, else the number of cores (CPU).
 * Failures: WR_ERR_UNSUPPORTED (not compiled), WR_ERR_NO_DEVICE (CUDA without a GPU).
 * The caller owns *out (wr_backend_free).
 */
wr_status wr_backend_create(wr_backend **out, wr_backend_kind kind, int threads);
/* The same with every option (kind, device, threads, strict / async CPU modes). */
wr_status wr_backend_create_ex(wr_backend **out, const wr_backend_opts *o);
void wr_backend_free(wr_backend *be);
/* What WR_STRICT_DEVICE asks for: 0 (unset or 0), 1 (strict), 2 (async). */
int wr_backend_strict_env(void);

/* Events and copies on any backend (a synchronous backend's slots are NULL: every call has
 * then already finished, and these do nothing / run the synchronous copy). ev may be NULL
 * in free. */
wr_status wr_event_create(wr_backend *be, wr_event **out);
void wr_event_free(wr_backend *be, wr_event *ev);
wr_status wr_event_record(wr_backend *be, wr_event *ev, int stream);
wr_status wr_stream_wait(wr_backend *be, int stream, wr_event *ev);
wr_status wr_event_sync(wr_backend *be, wr_event *ev);
/* synchronous (finished on return) memory calls on the compute stream */
wr_status wr_upload(wr_backend *be, void *dst, const void *host_src, size_t nbytes);
wr_status wr_download(wr_backend *be, void *host_dst, const void *src, size_t nbytes);
wr_status wr_dev_copy(wr_backend *be, void *dst, const void *src, size_t nbytes);
wr_status wr_dev_memset0(wr_backend *be, void *dst, size_t nbytes);
/* upload on the copy stream (the vram copy thread): ordered against compute only by events */
wr_status wr_upload_on(wr_backend *be, int stream, void *dst, const void *host_src, size_t nbytes);
/* async download on the compute stream; complete after an event recorded behind it */
wr_status wr_download_async(wr_backend *be, void *host_dst, const void *src, size_t nbytes);
/* strided copy on the compute stream (finished on return for H2D / D2H) */
wr_status wr_copy_3d(wr_backend *be, const wr_copy3d *c);

/*
 * Asks the CUDA runtime for devices. WR_ERR_UNSUPPORTED when built without CUDA,
 * WR_ERR_NO_DEVICE when there is no driver or no device (the detail says which), WR_OK with
 * *out filled otherwise.
 */
wr_status wr_backend_probe_cuda(wr_device_info *out);

/* Tests: the async CPU mode's stream runs no job while paused (a host wait on it then blocks
 * until resumed; freeing the backend resumes it). */
void wr_backend_stream_pause(wr_backend *be, int stream, int paused);

/* Backend constructors (registry use only). */
wr_status wr_backend_cpu_init(wr_backend *be, int threads);
void wr_backend_cpu_release(wr_backend *be);
#endif /* WR_KERNELS_BACKEND_H */

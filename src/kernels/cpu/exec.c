/*
 * exec.c — how the CPU backend runs what it is given: the vtable every CPU backend has.
 *
 * Every op and memory call becomes a job: its tensors and parameters copied by value (small
 * host arrays too: a key mask, gather indices), so it can run later. Three modes:
 *
 *   plain   jobs run at once on the caller's thread; "device" memory is host memory
 *           (be->host_visible: a loader may hand the ops a mapped checkpoint in place).
 *   strict  device memory is an address range reserved PROT_NONE: a host read or write of it
 *           is a SIGSEGV. The jobs reach it through a second, private mapping of the same size
 *           at a fixed offset (translation: priv + (p - dev)). A tensor an op is given that is
 *           neither NULL nor in the range is a host pointer: an abort naming the op (a weight
 *           used in place from the mapping, a host buffer handed to an op).
 *   async   strict, and each stream (compute, copy) runs its jobs on its own worker thread,
 *           each job no earlier than WR_ASYNC_LAG_S after it was issued unless the host is
 *           waiting: a host read of a download before its event, or a refill of a buffer
 *           before the op reading it ran, gives wrong bits in the tests instead of passing
 *           by luck. Synchronous calls (upload, download, free, sync) drain the compute
 *           stream first, as cudaMemcpy / cudaFree do.
 *
 * In every mode, operands in BF16 are converted to f32 before the f32 kernel runs and
 * outputs in BF16 rounded back after it (round to nearest even): the CPU emulates the
 * rounding points of a GPU running bf16 activations. Weights (matmul / conv3d / patch_embed
 * w, gather_rows' table) are converted inside the kernels as before.
 *
 * Failures of a job run on a worker are sticky: the next synchronous call returns them with
 * their detail (as a CUDA error surfaces at the next sync).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "core/log.h"
#include "kernels/cpu/cpu_internal.h"

#define WR_STRICT_DEFAULT_GIB 64 /* device address space of a strict backend */
#define WR_STRICT_PAGE        ((size_t)4096)
#define WR_ASYNC_LAG_S        0.002
#define WR_STRICT_FILL_MAX    ((size_t)64 << 20) /* new memory filled with 0xff (NaN), up to */

/* ---- the strict device space ---- */

typedef struct extent {
    size_t off, len;
} extent;

typedef struct dev_space {
    char *dev, *priv;
    size_t size;
    pthread_mutex_t mu;
    extent *fr; /* free extents, sorted by offset, coalesced */
    int nfr, capfr;
    extent *live; /* allocations */
    int nlive, caplive;
    size_t in_use;
} dev_space;

/* ---- jobs ---- */

enum {
    J_MATMUL = 0,
    J_LAYER_NORM,
    J_RMS_NORM,
    J_GELU,
    J_SILU,
    J_ADD,
    J_MUL,
    J_MODULATE,
    J_GATED,
    J_ROPE,
    J_ATTN,
    J_PATCH,
    J_MERGE,
    J_UNPATCH,
    J_CONV,
    J_UPS,
    J_RMSC,
    J_GATHER,
    J_TRANSPOSE,
    J_CLAMP,
    J_AFFINE,
    J_BLEND,
    J_OPS, /* ops end here; memory jobs follow */
    J_COPY,
    J_MEMSET,
    J_COPY3D,
    J_RECORD,
    J_WAIT,
    J_MARK,
};

#define NT 6 /* tensor operands at most */

/* operand roles per op, in iface argument order: o = written (maybe read), i = read,
 * w = a weight (any float dtype, converted by the kernel), - = none */
static const char *const roles[J_OPS] = {
    [J_MATMUL] = "oiwi", [J_LAYER_NORM] = "oiii", [J_RMS_NORM] = "oii", [J_GELU] = "oi",
    [J_SILU] = "oi",     [J_ADD] = "oii",         [J_MUL] = "oii",      [J_MODULATE] = "oiii",
    [J_GATED] = "oii",   [J_ROPE] = "oii",        [J_ATTN] = "ooiiii",  [J_PATCH] = "oiwi",
    [J_MERGE] = "ooii",  [J_UNPATCH] = "oi",      [J_CONV] = "oiiwi",   [J_UPS] = "oi",
    [J_RMSC] = "oii",    [J_GATHER] = "ow",       [J_TRANSPOSE] = "oi", [J_CLAMP] = "oi",
    [J_AFFINE] = "oiii", [J_BLEND] = "oi",
};

typedef struct wr_event {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t recorded, completed;
} ev_t;

typedef struct job {
    int kind;
    wr_tensor t[NT];
    int has[NT];
    float f[2];
    int64_t n0;
    int ip[3];
    wr_attn_params ap;
    uint8_t *mask; /* owned copy */
    int32_t *idx;  /* owned copy */
    wr_conv_params cp;
    wr_copy3d c3;
    void *dst;
    const void *src;
    size_t n;
    ev_t *ev;
    uint64_t gen;
    double t_issue;
    struct job *next;
} job;

typedef struct stream_q {
    pthread_t th;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv, done_cv;
    job *head, *tail;
    uint64_t issued, completed;
    int flush, stop, paused;
    wr_status err;
    char detail[1024];
    struct cpu_exec *ex;
} stream_q;

typedef struct cpu_exec {
    dev_space sp;
    stream_q q[WR_STREAM_COUNT];
    wr_backend *be;
} cpu_exec;

static cpu_exec *EX(const wr_backend *be) {
    return be->impl;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- translation ---- */

static const char *job_name(int kind) {
    static const char *const names[] = {"matmul",
                                        "layer_norm",
                                        "rms_norm",
                                        "gelu_tanh",
                                        "silu",
                                        "add",
                                        "mul",
                                        "modulate",
                                        "gated_residual",
                                        "rope",
                                        "attention",
                                        "patch_embed",
                                        "attn_merge",
                                        "unpatchify",
                                        "conv3d",
                                        "upsample2x",
                                        "rms_norm_channels",
                                        "gather_rows",
                                        "transpose",
                                        "clamp",
                                        "channel_affine",
                                        "blend",
                                        "-",
                                        "copy",
                                        "memset0",
                                        "copy3d",
                                        "event_record",
                                        "stream_wait",
                                        "mark"};
    return kind >= 0 && kind < (int)(sizeof names / sizeof names[0]) ? names[kind] : "?";
}

static int in_space(const dev_space *sp, const void *p) {
    return (const char *)p >= sp->dev && (const char *)p < sp->dev + sp->size;
}

/* The jobs' view of device pointer p (identity outside the strict mode). */
static void *xl(const wr_backend *be, const void *p, const char *what) {
    if (!be->strict || p == NULL) return (void *)p;
    const dev_space *sp = &EX(be)->sp;
    if (!in_space(sp, p)) {
        wr_error("strict device mode: %s was given %p, which is not device memory of this "
                 "backend (host memory used in place of an upload?)",
                 what, p);
        wr_assert_fail("operand is device memory", __FILE__, __LINE__);
    }
    return sp->priv + ((const char *)p - sp->dev);
}

static void *scratch_view(wr_backend *be, void *dev) {
    return xl(be, dev, "op scratch");
}

/* ---- the strict allocator (first fit over sorted free extents) ---- */

static int ext_push(extent **a, int *n, int *cap, int at, extent e) {
    if (*n == *cap) {
        int nc = *cap ? 2 * *cap : 64;
        extent *g = realloc(*a, sizeof *g * (size_t)nc);
        if (g == NULL) return -1;
        *a = g, *cap = nc;
    }
    memmove(*a + at + 1, *a + at, sizeof **a * (size_t)(*n - at));
    (*a)[at] = e;
    (*n)++;
    return 0;
}

static void ext_del(extent *a, int *n, int at) {
    memmove(a + at, a + at + 1, sizeof *a * (size_t)(*n - at - 1));
    (*n)--;
}

/* Reserves the device range and its private view: WR_STRICT_DEVICE_GIB (default 64) GiB,
 * halved while the address space (ulimit -v) refuses it, down to 256 MiB: a small "device". */
static wr_status space_init(dev_space *sp) {
    memset(sp, 0, sizeof *sp);
    size_t gib = WR_STRICT_DEFAULT_GIB;
    const char *e = getenv("WR_STRICT_DEVICE_GIB");
    if (e && atoll(e) > 0) gib = (size_t)atoll(e);
    const int fixed = e && atoll(e) > 0;
    int err = 0;
    for (size_t size = gib << 30; size >= ((size_t)256 << 20); size /= 2) {
        void *d = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        void *p = d == MAP_FAILED ? MAP_FAILED
                                  : mmap(NULL, size, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p != MAP_FAILED) {
            sp->dev = d, sp->priv = p, sp->size = size;
            break;
        }
        err = errno;
        if (d != MAP_FAILED) munmap(d, size);
        if (fixed) break;
    }
    if (sp->dev == NULL)
        return WR_FAIL(WR_ERR_OOM_DEVICE,
                       "strict device mode: cannot reserve %zu GiB of address space (%s); set "
                       "WR_STRICT_DEVICE_GIB smaller",
                       gib, strerror(err));
    if (sp->size != gib << 30)
        wr_debug("strict device mode: %.2f GiB of device space (the address space refused %zu "
                 "GiB)",
                 (double)sp->size / 1073741824.0, gib);
    pthread_mutex_init(&sp->mu, NULL);
    extent all = {0, sp->size};
    if (ext_push(&sp->fr, &sp->nfr, &sp->capfr, 0, all) != 0)
        return WR_FAIL(WR_ERR_OOM_HOST, "strict device mode: out of host memory");
    return WR_OK;
}

static void space_release(dev_space *sp) {
    if (sp->dev == NULL) return;
    if (sp->nlive)
        wr_debug("strict device mode: %d allocations (%zu bytes) not freed at backend end",
                 sp->nlive, sp->in_use);
    munmap(sp->dev, sp->size);
    munmap(sp->priv, sp->size);
    free(sp->fr);
    free(sp->live);
    pthread_mutex_destroy(&sp->mu);
    memset(sp, 0, sizeof *sp);
}

static wr_status space_alloc(dev_space *sp, size_t nbytes, void **out) {
    const size_t n = (nbytes + WR_STRICT_PAGE - 1) & ~(WR_STRICT_PAGE - 1);
    if (n < nbytes) return WR_FAIL(WR_ERR_OOM_DEVICE, "strict device mode: %zu bytes", nbytes);
    pthread_mutex_lock(&sp->mu);
    int at = -1;
    for (int i = 0; i < sp->nfr; i++)
        if (sp->fr[i].len >= n) {
            at = i;
            break;
        }
    if (at < 0) {
        pthread_mutex_unlock(&sp->mu);
        return WR_FAIL(WR_ERR_OOM_DEVICE,
                       "strict device mode: cannot allocate %.3f GiB: no room in the %.2f GiB "
                       "device space (%.3f GiB in use); set WR_STRICT_DEVICE_GIB larger",
                       (double)nbytes / 1073741824.0, (double)sp->size / 1073741824.0,
                       (double)sp->in_use / 1073741824.0);
    }
    extent e = {sp->fr[at].off, n};
    int li = 0;
    while (li < sp->nlive && sp->live[li].off < e.off) li++;
    if (ext_push(&sp->live, &sp->nlive, &sp->caplive, li, e) != 0) {
        pthread_mutex_unlock(&sp->mu);
        return WR_FAIL(WR_ERR_OOM_HOST, "strict device mode: out of host memory");
    }
    sp->fr[at].off += n;
    sp->fr[at].len -= n;
    if (sp->fr[at].len == 0) ext_del(sp->fr, &sp->nfr, at);
    sp->in_use += n;
    pthread_mutex_unlock(&sp->mu);
    /* uninitialised device memory reads as NaN, not as a lucky zero */
    memset(sp->priv + e.off, 0xff, n < WR_STRICT_FILL_MAX ? n : WR_STRICT_FILL_MAX);
    *out = sp->dev + e.off;
    return WR_OK;
}

static void space_free(dev_space *sp, void *p) {
    const size_t off = (size_t)((char *)p - sp->dev);
    pthread_mutex_lock(&sp->mu);
    int li = 0;
    while (li < sp->nlive && sp->live[li].off != off) li++;
    if (li == sp->nlive) {
        pthread_mutex_unlock(&sp->mu);
        wr_error("strict device mode: free of %p, which is not a live allocation", p);
        wr_assert_fail("free of a live allocation", __FILE__, __LINE__);
    }
    extent e = sp->live[li];
    ext_del(sp->live, &sp->nlive, li);
    sp->in_use -= e.len;
    madvise(sp->priv + e.off, e.len, MADV_DONTNEED); /* the pages go back */
    int at = 0;
    while (at < sp->nfr && sp->fr[at].off < e.off) at++;
    if (at > 0 && sp->fr[at - 1].off + sp->fr[at - 1].len == e.off) {
        sp->fr[at - 1].len += e.len;
        if (at < sp->nfr && e.off + e.len == sp->fr[at].off) {
            sp->fr[at - 1].len += sp->fr[at].len;
            ext_del(sp->fr, &sp->nfr, at);
        }
    } else if (at < sp->nfr && e.off + e.len == sp->fr[at].off) {
        sp->fr[at].off = e.off;
        sp->fr[at].len += e.len;
    } else if (ext_push(&sp->fr, &sp->nfr, &sp->capfr, at, e) != 0) {
        wr_warn("strict device mode: out of host memory: %zu device bytes lost", e.len);
    }
    pthread_mutex_unlock(&sp->mu);
}

/* ---- running a job ---- */

/* A converted operand: the f32 copy a BF16 tensor is read / written through. */
typedef struct conv_slot {
    void *orig; /* the jobs' view of the original */
    float *tmp;
    int64_t n;
    int write;
} conv_slot;

static wr_status run_op(wr_backend *be, job *j) {
    const char *r = roles[j->kind];
    const char *name = job_name(j->kind);
    wr_tensor t[NT];
    conv_slot cs[NT];
    int ncs = 0;
    wr_status st = WR_OK;
    for (int i = 0; i < NT; i++) {
        t[i] = j->t[i];
        if (!j->has[i]) continue;
        t[i].data = xl(be, j->t[i].data, name);
        const char role = r[i];
        if (role == 'w' || t[i].dtype != WR_DTYPE_BF16 || t[i].data == NULL) continue;
        int k = 0;
        while (k < ncs && cs[k].orig != t[i].data) k++;
        if (k == ncs) {
            const int64_t n = wr_tensor_nelem(&t[i]);
            float *tmp = malloc(sizeof(float) * (size_t)(n ? n : 1));
            if (tmp == NULL) {
                st = WR_FAIL(WR_ERR_OOM_HOST,
                             "%s: BF16 operand of %lld elements: out of host "
                             "memory",
                             name, (long long)n);
                goto done;
            }
            (void)wr_dtype_convert(tmp, WR_DTYPE_F32, t[i].data, WR_DTYPE_BF16, n);
            cs[ncs++] = (conv_slot){t[i].data, tmp, n, 0};
        }
        if (role == 'o') cs[k].write = 1;
        t[i].data = cs[k].tmp;
        t[i].dtype = WR_DTYPE_F32;
    }
    wr_attn_params ap = j->ap;
    wr_tensor pb;
    if (j->kind == J_ATTN) {
        ap.key_mask = j->mask;
        ap.pos_bias = NULL;
        if (j->has[5]) {
            pb = t[5];
            ap.pos_bias = &pb;
        }
    }
#define T(i) (j->has[i] ? &t[i] : NULL)
    switch (j->kind) {
    case J_MATMUL:
        st = matmul_cpu(be, T(0), T(1), T(2), T(3), j->f[0]);
        break;
    case J_LAYER_NORM:
        st = layer_norm_cpu(be, T(0), T(1), T(2), T(3), j->f[0]);
        break;
    case J_RMS_NORM:
        st = rms_norm_cpu(be, T(0), T(1), T(2), j->f[0]);
        break;
    case J_GELU:
        st = gelu_tanh_cpu(be, T(0), T(1));
        break;
    case J_SILU:
        st = silu_cpu(be, T(0), T(1));
        break;
    case J_ADD:
        st = add_cpu(be, T(0), T(1), T(2));
        break;
    case J_MUL:
        st = mul_cpu(be, T(0), T(1), T(2));
        break;
    case J_MODULATE:
        st = modulate_cpu(be, T(0), T(1), T(2), T(3));
        break;
    case J_GATED:
        st = gated_residual_cpu(be, T(0), T(1), T(2));
        break;
    case J_ROPE:
        st = rope_cpu(be, T(0), T(1), T(2));
        break;
    case J_ATTN:
        st = attention_cpu(be, T(0), T(1), T(2), T(3), T(4), &ap);
        break;
    case J_PATCH:
        st = patch_embed_cpu(be, T(0), T(1), T(2), T(3), j->n0);
        break;
    case J_MERGE:
        st = attn_merge_cpu(be, T(0), T(1), T(2), T(3));
        break;
    case J_UNPATCH:
        st = unpatchify_cpu(be, T(0), T(1), j->ip[0], j->ip[1], j->ip[2]);
        break;
    case J_CONV:
        st = conv3d_cpu(be, T(0), T(1), T(2), T(3), T(4), &j->cp);
        break;
    case J_UPS:
        st = upsample2x_cpu(be, T(0), T(1));
        break;
    case J_RMSC:
        st = rms_norm_channels_cpu(be, T(0), T(1), T(2));
        break;
    case J_GATHER:
        st = gather_rows_cpu(be, T(0), T(1), j->idx);
        break;
    case J_TRANSPOSE:
        st = transpose_cpu(be, T(0), T(1));
        break;
    case J_CLAMP:
        st = clamp_cpu(be, T(0), T(1), j->f[0], j->f[1]);
        break;
    case J_AFFINE:
        st = channel_affine_cpu(be, T(0), T(1), T(2), T(3));
        break;
    case J_BLEND:
        st = blend_cpu(be, T(0), T(1), j->n0);
        break;
    default:
        st = WR_FAIL(WR_ERR_INTERNAL, "CPU backend: job %d is not an op", j->kind);
        break;
    }
#undef T
    for (int k = 0; k < ncs && st == WR_OK; k++)
        if (cs[k].write)
            (void)wr_dtype_convert(cs[k].orig, WR_DTYPE_BF16, cs[k].tmp, WR_DTYPE_F32, cs[k].n);
done:
    for (int k = 0; k < ncs; k++) free(cs[k].tmp);
    return st;
}

static void copy3d_run(const wr_copy3d *c, char *d, const char *s) {
    for (int64_t p = 0; p < c->planes; p++)
        for (int64_t r = 0; r < c->rows; r++)
            memcpy(d + (size_t)p * c->dplane + (size_t)r * c->dpitch,
                   s + (size_t)p * c->splane + (size_t)r * c->spitch, c->width);
}

static void ev_complete(ev_t *e, uint64_t gen) {
    pthread_mutex_lock(&e->mu);
    if (gen > e->completed) e->completed = gen;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static void ev_wait(ev_t *e, uint64_t gen) {
    pthread_mutex_lock(&e->mu);
    while (e->completed < gen) pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
}

static wr_status run_job(wr_backend *be, job *j) {
    if (j->kind < J_OPS) return run_op(be, j);
    switch (j->kind) {
    case J_COPY: /* dst / src already in the jobs' view (device or host) */
        if (j->n) memmove(j->dst, j->src, j->n);
        return WR_OK;
    case J_MEMSET:
        if (j->n) memset(j->dst, 0, j->n);
        return WR_OK;
    case J_COPY3D:
        copy3d_run(&j->c3, j->dst, j->src);
        return WR_OK;
    case J_RECORD:
        ev_complete(j->ev, j->gen);
        return WR_OK;
    case J_WAIT:
        ev_wait(j->ev, j->gen);
        return WR_OK;
    case J_MARK:
        return WR_OK;
    default:
        return WR_FAIL(WR_ERR_INTERNAL, "CPU backend: unknown job %d", j->kind);
    }
}

static void job_free(job *j) {
    free(j->mask);
    free(j->idx);
    free(j);
}

/* ---- the async streams ---- */

/* 1 on a stream's worker thread: a job that frees memory (an op's one-off scratch piece) is
 * itself the queued work a free would wait for */
static _Thread_local int tl_worker;

static void *worker(void *arg) {
    stream_q *q = arg;
    tl_worker = 1;
    wr_backend *be = q->ex->be;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while ((q->head == NULL || q->paused) && !q->stop) pthread_cond_wait(&q->cv, &q->mu);
        if (q->head == NULL && q->stop) break;
        job *j = q->head;
        const double due = j->t_issue + WR_ASYNC_LAG_S;
        if (!q->flush && !q->stop && now_s() < due) { /* not yet: let the host run ahead */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            const double wait = due - now_s();
            ts.tv_nsec += (long)(wait * 1e9);
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&q->cv, &q->mu, &ts);
            continue;
        }
        q->head = j->next;
        if (q->head == NULL) q->tail = NULL;
        pthread_mutex_unlock(&q->mu);
        wr_status st = run_job(be, j);
        job_free(j);
        pthread_mutex_lock(&q->mu);
        if (st != WR_OK && q->err == WR_OK) {
            q->err = st;
            snprintf(q->detail, sizeof q->detail, "%s", wr_error_detail());
        }
        q->completed++;
        pthread_cond_broadcast(&q->done_cv);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static wr_status q_start(cpu_exec *ex, int s) {
    stream_q *q = &ex->q[s];
    memset(q, 0, sizeof *q);
    q->ex = ex;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    pthread_cond_init(&q->done_cv, NULL);
    if (pthread_create(&q->th, NULL, worker, q) != 0)
        return WR_FAIL(WR_ERR_INTERNAL, "async device mode: cannot start a stream thread");
    q->started = 1;
    return WR_OK;
}

static void q_stop(stream_q *q) {
    if (!q->started) return;
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->th, NULL);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    pthread_cond_destroy(&q->done_cv);
    q->started = 0;
}

/* Queues a heap copy of *j on stream s (async mode). */
static wr_status q_push(wr_backend *be, int s, const job *j) {
    stream_q *q = &EX(be)->q[s];
    job *h = malloc(sizeof *h);
    if (h == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "async device mode: out of host memory");
    *h = *j;
    h->next = NULL;
    h->t_issue = now_s();
    pthread_mutex_lock(&q->mu);
    if (q->tail)
        q->tail->next = h;
    else
        q->head = h;
    q->tail = h;
    q->issued++;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return WR_OK;
}

/* Waits until every job issued to stream s so far ran; returns (and clears) a sticky error. */
static wr_status q_drain(wr_backend *be, int s) {
    if (!be->async) return WR_OK;
    stream_q *q = &EX(be)->q[s];
    pthread_mutex_lock(&q->mu);
    const uint64_t target = q->issued;
    q->flush++;
    pthread_cond_broadcast(&q->cv);
    while (q->completed < target) pthread_cond_wait(&q->done_cv, &q->mu);
    q->flush--;
    wr_status st = q->err;
    char detail[1024];
    snprintf(detail, sizeof detail, "%s", q->detail);
    q->err = WR_OK;
    pthread_mutex_unlock(&q->mu);
    if (st != WR_OK)
        return WR_FAIL(st, "%s (an operation run asynchronously on the %s stream)", detail,
                       s == WR_STREAM_COMPUTE ? "compute" : "copy");
    return WR_OK;
}

static wr_status drain_all(wr_backend *be) {
    wr_status st = WR_OK;
    for (int s = 0; s < WR_STREAM_COUNT; s++) {
        wr_status e = q_drain(be, s);
        if (st == WR_OK) st = e;
    }
    return st;
}

/* An op job: queued on the compute stream (async), else run now. */
static wr_status submit(wr_backend *be, job *j) {
    if (be->async) return q_push(be, WR_STREAM_COMPUTE, j);
    wr_status st = run_job(be, j);
    free(j->mask);
    free(j->idx);
    return st;
}

static void put(job *j, int i, const wr_tensor *t) {
    if (t == NULL) return;
    j->t[i] = *t;
    j->has[i] = 1;
}

/* ---- the vtable: memory ---- */

static wr_status x_alloc(wr_backend *be, void **out, size_t nbytes) {
    *out = NULL;
    if (nbytes == 0) return WR_OK;
    if (be->strict) return space_alloc(&EX(be)->sp, nbytes, out);
    size_t rounded = (nbytes + 63) & ~(size_t)63;
    if (rounded < nbytes || (*out = aligned_alloc(64, rounded)) == NULL)
        return WR_FAIL(WR_ERR_OOM_DEVICE, "CPU backend: cannot allocate %.3f GiB",
                       (double)nbytes / (1024.0 * 1024 * 1024));
    return WR_OK;
}

static void x_free(wr_backend *be, void *p) {
    if (p == NULL) return;
    if (!be->strict) {
        free(p);
        return;
    }
    /* as cudaFree: nothing queued may still use it */
    if (!tl_worker) {
        wr_status st = drain_all(be);
        if (st != WR_OK) wr_warn("%s", wr_error_detail());
    }
    space_free(&EX(be)->sp, p);
}

static wr_status x_sync(wr_backend *be) {
    return drain_all(be);
}

static wr_status x_upload_on(wr_backend *be, int stream, void *dst, const void *src, size_t n) {
    void *d = xl(be, dst, "upload");
    if (!be->async) {
        memcpy(d, src, n);
        return WR_OK;
    }
    if (stream == WR_STREAM_COMPUTE) { /* synchronous: after what the stream holds */
        WR_TRY(q_drain(be, stream));
        memcpy(d, src, n);
        return WR_OK;
    }
    /* the copy stream: in its order (behind its event waits), finished on return */
    job j = {.kind = J_COPY, .dst = d, .src = src, .n = n};
    WR_TRY(q_push(be, stream, &j));
    return q_drain(be, stream);
}

static wr_status x_upload(wr_backend *be, void *dst, const void *src, size_t n) {
    return x_upload_on(be, WR_STREAM_COMPUTE, dst, src, n);
}

static wr_status x_download(wr_backend *be, void *dst, const void *src, size_t n) {
    const void *s = xl(be, src, "download");
    WR_TRY(q_drain(be, WR_STREAM_COMPUTE));
    memcpy(dst, s, n);
    return WR_OK;
}

static wr_status x_download_async(wr_backend *be, void *dst, const void *src, size_t n) {
    job j = {.kind = J_COPY, .dst = dst, .src = xl(be, src, "download"), .n = n};
    return submit(be, &j);
}

static wr_status x_copy(wr_backend *be, void *dst, const void *src, size_t n) {
    job j = {.kind = J_COPY, .dst = xl(be, dst, "copy"), .src = xl(be, src, "copy"), .n = n};
    return submit(be, &j);
}

static wr_status x_memset0(wr_backend *be, void *dst, size_t n) {
    job j = {.kind = J_MEMSET, .dst = xl(be, dst, "memset0"), .n = n};
    return submit(be, &j);
}

static wr_status x_copy3d(wr_backend *be, const wr_copy3d *c) {
    job j = {.kind = J_COPY3D, .c3 = *c};
    j.dst = c->dir == WR_COPY_D2H ? c->dst : xl(be, c->dst, "copy3d");
    j.src = c->dir == WR_COPY_H2D ? c->src : xl(be, c->src, "copy3d");
    if (c->dir == WR_COPY_D2D) return submit(be, &j);
    /* to or from the host: synchronous, after what the compute stream holds */
    WR_TRY(q_drain(be, WR_STREAM_COMPUTE));
    copy3d_run(c, j.dst, j.src);
    return WR_OK;
}

static void *x_host_alias(wr_backend *be, const void *dev) {
    return xl(be, dev, "host_alias");
}

/* ---- the vtable: events ---- */

static wr_status x_event_create(wr_backend *be, wr_event **out) {
    (void)be;
    ev_t *e = calloc(1, sizeof *e);
    if (e == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    *out = e;
    return WR_OK;
}

static void x_event_free(wr_backend *be, wr_event *ev) {
    (void)drain_all(be); /* no queued job may still touch it */
    pthread_mutex_destroy(&ev->mu);
    pthread_cond_destroy(&ev->cv);
    free(ev);
}

static wr_status x_event_record(wr_backend *be, wr_event *ev, int stream) {
    pthread_mutex_lock(&ev->mu);
    const uint64_t gen = ++ev->recorded;
    pthread_mutex_unlock(&ev->mu);
    if (!be->async) {
        ev_complete(ev, gen);
        return WR_OK;
    }
    job j = {.kind = J_RECORD, .ev = ev, .gen = gen};
    return q_push(be, stream, &j);
}

static wr_status x_stream_wait(wr_backend *be, int stream, wr_event *ev) {
    pthread_mutex_lock(&ev->mu);
    const uint64_t gen = ev->recorded;
    pthread_mutex_unlock(&ev->mu);
    if (!be->async) return WR_OK; /* recorded means completed */
    job j = {.kind = J_WAIT, .ev = ev, .gen = gen};
    return q_push(be, stream, &j);
}

static wr_status x_event_sync(wr_backend *be, wr_event *ev) {
    pthread_mutex_lock(&ev->mu);
    const uint64_t gen = ev->recorded;
    pthread_mutex_unlock(&ev->mu);
    if (!be->async) return WR_OK;
    /* let the streams run without their lag while the host waits */
    cpu_exec *ex = EX(be);
    for (int s = 0; s < WR_STREAM_COUNT; s++) {
        pthread_mutex_lock(&ex->q[s].mu);
        ex->q[s].flush++;
        pthread_cond_broadcast(&ex->q[s].cv);
        pthread_mutex_unlock(&ex->q[s].mu);
    }
    ev_wait(ev, gen);
    wr_status st = WR_OK;
    for (int s = 0; s < WR_STREAM_COUNT; s++) {
        stream_q *q = &ex->q[s];
        pthread_mutex_lock(&q->mu);
        q->flush--;
        if (q->err != WR_OK && st == WR_OK) {
            st = WR_FAIL(q->err, "%s (an operation run asynchronously)", q->detail);
            q->err = WR_OK;
        }
        pthread_mutex_unlock(&q->mu);
    }
    return st;
}

/* ---- the vtable: ops ---- */

static wr_status x_matmul(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                          const wr_tensor *b, float alpha) {
    job j = {.kind = J_MATMUL, .f = {alpha}};
    put(&j, 0, y), put(&j, 1, x), put(&j, 2, w), put(&j, 3, b);
    return submit(be, &j);
}

static wr_status x_layer_norm(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                              const wr_tensor *b, float eps) {
    job j = {.kind = J_LAYER_NORM, .f = {eps}};
    put(&j, 0, y), put(&j, 1, x), put(&j, 2, w), put(&j, 3, b);
    return submit(be, &j);
}

static wr_status x_rms_norm(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                            float eps) {
    job j = {.kind = J_RMS_NORM, .f = {eps}};
    put(&j, 0, y), put(&j, 1, x), put(&j, 2, w);
    return submit(be, &j);
}

static wr_status unary(wr_backend *be, int kind, wr_tensor *y, const wr_tensor *x) {
    job j = {.kind = kind};
    put(&j, 0, y), put(&j, 1, x);
    return submit(be, &j);
}

static wr_status x_gelu(wr_backend *be, wr_tensor *y, const wr_tensor *x) {
    return unary(be, J_GELU, y, x);
}
static wr_status x_silu(wr_backend *be, wr_tensor *y, const wr_tensor *x) {
    return unary(be, J_SILU, y, x);
}
static wr_status x_upsample(wr_backend *be, wr_tensor *y, const wr_tensor *x) {
    return unary(be, J_UPS, y, x);
}
static wr_status x_transpose(wr_backend *be, wr_tensor *y, const wr_tensor *x) {
    return unary(be, J_TRANSPOSE, y, x);
}

static wr_status ternary(wr_backend *be, int kind, wr_tensor *y, const wr_tensor *a,
                         const wr_tensor *b) {
    job j = {.kind = kind};
    put(&j, 0, y), put(&j, 1, a), put(&j, 2, b);
    return submit(be, &j);
}

static wr_status x_add(wr_backend *be, wr_tensor *y, const wr_tensor *a, const wr_tensor *b) {
    return ternary(be, J_ADD, y, a, b);
}
static wr_status x_mul(wr_backend *be, wr_tensor *y, const wr_tensor *a, const wr_tensor *b) {
    return ternary(be, J_MUL, y, a, b);
}
static wr_status x_gated(wr_backend *be, wr_tensor *x, const wr_tensor *a, const wr_tensor *g) {
    return ternary(be, J_GATED, x, a, g);
}
static wr_status x_rope(wr_backend *be, wr_tensor *x, const wr_tensor *c, const wr_tensor *s) {
    return ternary(be, J_ROPE, x, c, s);
}
static wr_status x_rmsc(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *g) {
    return ternary(be, J_RMSC, y, x, g);
}

static wr_status quad(wr_backend *be, int kind, wr_tensor *y, const wr_tensor *x,
                      const wr_tensor *a, const wr_tensor *b) {
    job j = {.kind = kind};
    put(&j, 0, y), put(&j, 1, x), put(&j, 2, a), put(&j, 3, b);
    return submit(be, &j);
}

static wr_status x_modulate(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                            const wr_tensor *scale, const wr_tensor *shift) {
    return quad(be, J_MODULATE, y, x, scale, shift);
}
static wr_status x_affine(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *scale,
                          const wr_tensor *shift) {
    return quad(be, J_AFFINE, y, x, scale, shift);
}
static wr_status x_merge(wr_backend *be, wr_tensor *o, wr_tensor *lse, const wr_tensor *o2,
                         const wr_tensor *lse2) {
    return quad(be, J_MERGE, o, lse, o2, lse2);
}

static wr_status x_attention(wr_backend *be, wr_tensor *out, wr_tensor *lse, const wr_tensor *q,
                             const wr_tensor *k, const wr_tensor *v, const wr_attn_params *p) {
    job j = {.kind = J_ATTN};
    put(&j, 0, out), put(&j, 1, lse), put(&j, 2, q), put(&j, 3, k), put(&j, 4, v);
    if (p) {
        j.ap = *p;
        if (p->pos_bias) put(&j, 5, p->pos_bias);
        if (p->key_mask) { /* host bytes, read at issue time */
            const size_t n = (size_t)k->shape[0];
            if ((j.mask = malloc(n ? n : 1)) == NULL)
                return WR_FAIL(WR_ERR_OOM_HOST, "attention: out of host memory");
            memcpy(j.mask, p->key_mask, n);
        }
    } else {
        j.ap.scale = 1.0f / sqrtf((float)q->shape[2]);
    }
    return submit(be, &j);
}

static wr_status x_patch(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                         const wr_tensor *b, int64_t n0) {
    job j = {.kind = J_PATCH, .n0 = n0};
    put(&j, 0, y), put(&j, 1, x), put(&j, 2, w), put(&j, 3, b);
    return submit(be, &j);
}

static wr_status x_copy2d(wr_backend *be, float *dst, int64_t dld, const float *src, int64_t sld,
                          int64_t rows, int64_t cols) {
    const wr_copy3d c = {.dir = WR_COPY_D2D,
                         .dst = dst,
                         .src = src,
                         .width = sizeof(float) * (size_t)cols,
                         .rows = rows,
                         .planes = 1,
                         .dpitch = sizeof(float) * (size_t)dld,
                         .spitch = sizeof(float) * (size_t)sld};
    return x_copy3d(be, &c);
}

static wr_status x_unpatch(wr_backend *be, wr_tensor *out, const wr_tensor *y, int pt, int ph,
                           int pw) {
    job j = {.kind = J_UNPATCH, .ip = {pt, ph, pw}};
    put(&j, 0, out), put(&j, 1, y);
    return submit(be, &j);
}

static wr_status x_conv(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *cache,
                        const wr_tensor *w, const wr_tensor *b, const wr_conv_params *p) {
    job j = {.kind = J_CONV, .cp = *p};
    put(&j, 0, y), put(&j, 1, x), put(&j, 2, cache), put(&j, 3, w), put(&j, 4, b);
    return submit(be, &j);
}

static wr_status x_gather(wr_backend *be, wr_tensor *y, const wr_tensor *table,
                          const int32_t *idx) {
    job j = {.kind = J_GATHER};
    put(&j, 0, y), put(&j, 1, table);
    const size_t n = (size_t)y->shape[0];
    if ((j.idx = malloc(sizeof *j.idx * (n ? n : 1))) == NULL)
        return WR_FAIL(WR_ERR_OOM_HOST, "gather_rows: out of host memory");
    memcpy(j.idx, idx, sizeof *j.idx * n);
    return submit(be, &j);
}

static wr_status x_clamp(wr_backend *be, wr_tensor *y, const wr_tensor *x, float lo, float hi) {
    job j = {.kind = J_CLAMP, .f = {lo, hi}};
    put(&j, 0, y), put(&j, 1, x);
    return submit(be, &j);
}

static wr_status x_blend(wr_backend *be, wr_tensor *dst, const wr_tensor *a, int64_t e) {
    job j = {.kind = J_BLEND, .n0 = e};
    put(&j, 0, dst), put(&j, 1, a);
    return submit(be, &j);
}

static const wr_backend_iface cpu_iface = {
    .alloc = x_alloc,
    .free = x_free,
    .upload = x_upload,
    .download = x_download,
    .copy = x_copy,
    .memset0 = x_memset0,
    .sync = x_sync,
    .upload_on = x_upload_on,
    .download_async = x_download_async,
    .copy3d = x_copy3d,
    .host_alias = x_host_alias,
    .matmul = x_matmul,
    .layer_norm = x_layer_norm,
    .rms_norm = x_rms_norm,
    .gelu_tanh = x_gelu,
    .silu = x_silu,
    .add = x_add,
    .mul = x_mul,
    .modulate = x_modulate,
    .gated_residual = x_gated,
    .rope = x_rope,
    .attention = x_attention,
    .patch_embed = x_patch,
    .attn_merge = x_merge,
    .copy2d = x_copy2d,
    .unpatchify = x_unpatch,
    .conv3d = x_conv,
    .upsample2x = x_upsample,
    .rms_norm_channels = x_rmsc,
    .gather_rows = x_gather,
    .transpose = x_transpose,
    .clamp = x_clamp,
    .channel_affine = x_affine,
    .blend = x_blend,
};

/* the same with events: only the async mode has real ones (a synchronous mode's NULL slots
 * make the wr_event_* wrappers no-ops) */
static wr_backend_iface cpu_iface_async;

wr_status wr_cpu_exec_init(wr_backend *be) {
    cpu_exec *ex = calloc(1, sizeof *ex);
    if (ex == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    ex->be = be;
    be->impl = ex;
    be->iface = &cpu_iface;
    be->host_visible = !be->strict;
    if (!be->strict) return WR_OK;
    wr_status st = space_init(&ex->sp);
    if (st != WR_OK) {
        free(ex);
        be->impl = NULL;
        return st;
    }
    be->scratch_view = scratch_view;
    if (!be->async) return WR_OK;
    cpu_iface_async = cpu_iface;
    cpu_iface_async.event_create = x_event_create;
    cpu_iface_async.event_free = x_event_free;
    cpu_iface_async.event_record = x_event_record;
    cpu_iface_async.stream_wait = x_stream_wait;
    cpu_iface_async.event_sync = x_event_sync;
    be->iface = &cpu_iface_async;
    for (int s = 0; s < WR_STREAM_COUNT; s++)
        if ((st = q_start(ex, s)) != WR_OK) {
            for (int k = 0; k < s; k++) q_stop(&ex->q[k]);
            space_release(&ex->sp);
            free(ex);
            be->impl = NULL;
            return st;
        }
    return WR_OK;
}

void wr_cpu_exec_release(wr_backend *be) {
    cpu_exec *ex = EX(be);
    if (ex == NULL) return;
    if (be->async) {
        for (int s = 0; s < WR_STREAM_COUNT; s++) wr_backend_stream_pause(be, s, 0);
        (void)drain_all(be);
        for (int s = 0; s < WR_STREAM_COUNT; s++) q_stop(&ex->q[s]);
    }
    space_release(&ex->sp);
    free(ex);
    be->impl = NULL;
}

void wr_backend_stream_pause(wr_backend *be, int stream, int paused) {
    WR_ASSERT(be->kind == WR_BACKEND_CPU && be->async && stream >= 0 && stream < WR_STREAM_COUNT);
    stream_q *q = &EX(be)->q[stream];
    pthread_mutex_lock(&q->mu);
    q->paused = paused;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

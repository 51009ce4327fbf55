/*
 * comm_nccl.c — the device side of the communicators (comm_internal.h): one NCCL communicator
 * per group, its unique id broadcast over MPI, non-blocking initialisation, collectives on the
 * backend's compute stream (wr_cuda_compute_stream of c->be; the legacy default stream without
 * a CUDA backend), point-to-point for ring attention on the communicator's own non-blocking
 * stream behind an event recorded on the compute stream, and a polling wait that checks NCCL's
 * asynchronous error state with a timeout (WR_NCCL_TIMEOUT_S seconds, default 300) and aborts
 * the communicator on an error or a timeout, so a dead peer ends in WR_ERR_COMM instead of a
 * hang. NCCL's asynchronous error state is also checked when every call begins.
 *
 * The host waits are the sync points where errors and the timeout are seen: each collective
 * returns once its transfer has completed (so it also waits for the compute stream's earlier
 * work); an isendrecv returns at once and its wait polls the communicator's stream.
 * TODO(#16): a watchdog thread that aborts the communicator on an error or a timeout, so that
 * collectives can return before completion and the host keeps issuing ahead of the device.
 *
 * A communicator of size 1 has a stream but no NCCL communicator: its collectives are device
 * copies.
 *
 * Without NCCL in the build (WR_HAVE_NCCL == 0) only stubs remain: creating a device side is
 * WR_ERR_UNSUPPORTED, so the others are never reached.
 *
 * UNTESTED on a GPU so far: this file compiles and links against CUDA 13 / NCCL 2.28, but no
 * test here has run it (tests/test_comm.c checks only the host paths and, in a build without a
 * device, that device collectives fail cleanly).
 */
#include "wr_build_config.h"

#include "core/status.h"
#include "parallel/comm_internal.h"

#if WR_HAVE_NCCL

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "kernels/backend.h"
#include "kernels/cuda/cuda_device.h"

struct wr_comm_dev {
    int device;
    cudaStream_t stream; /* non-blocking, for isendrecv: ordered after the compute stream by */
    cudaEvent_t ready;   /* this event, recorded there before each isendrecv */
    ncclComm_t nccl;     /* NULL for a size-1 communicator, and after an abort */
    int aborted;         /* 1 once ncclCommAbort ran: every later call fails */
};

/* Where the collectives go: the CUDA backend's compute stream, else the legacy default stream
 * (NULL). */
static cudaStream_t compute_stream(const wr_comm *c) {
    if (c->be != NULL && c->be->kind == WR_BACKEND_CUDA)
        return (cudaStream_t)wr_cuda_compute_stream(c->be);
    return NULL;
}

#define WR_NCCL_TIMEOUT_DEFAULT_S 300.0

static double timeout_s(void) {
    const char *s = getenv("WR_NCCL_TIMEOUT_S");
    if (s == NULL || *s == '\0') return WR_NCCL_TIMEOUT_DEFAULT_S;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v > 0)) {
        static int warned;
        if (!warned)
            wr_warn("WR_NCCL_TIMEOUT_S='%s' is not a positive number of seconds; using %g", s,
                    WR_NCCL_TIMEOUT_DEFAULT_S);
        warned = 1;
        return WR_NCCL_TIMEOUT_DEFAULT_S;
    }
    return v;
}

/* Spins for the first polls (most transfers finish in microseconds), then sleeps 50 us. */
static void backoff(unsigned *polls) {
    if (*polls < 2000) {
        (*polls)++;
        return;
    }
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
}

/* Aborts the NCCL communicator (if any) and records the failure. */
static wr_status dev_fail(wr_comm *c, const char *what, const char *reason) {
    wr_comm_dev *d = c->dev;
    const int had_nccl = d->nccl != NULL;
    if (had_nccl) {
        ncclCommAbort(d->nccl);
        d->nccl = NULL;
        d->aborted = 1;
    }
    return WR_FAIL(WR_ERR_COMM, "%s on the %s communicator (size %d): %s%s", what, c->name, c->size,
                   reason, had_nccl ? "; the NCCL communicator was aborted" : "");
}

static wr_status nccl_fail(wr_comm *c, const char *what, ncclResult_t r) {
    char reason[512];
    const char *last = c->dev->nccl ? ncclGetLastError(c->dev->nccl) : ncclGetLastError(NULL);
    snprintf(reason, sizeof reason, "NCCL: %s%s%s", ncclGetErrorString(r),
             last && *last ? ": " : "", last ? last : "");
    return dev_fail(c, what, reason);
}

static wr_status timeout_fail(wr_comm *c, const char *what, double limit) {
    char reason[256];
    snprintf(reason, sizeof reason,
             "did not complete within %g s (WR_NCCL_TIMEOUT_S): a peer rank may have failed or "
             "stopped",
             limit);
    return dev_fail(c, what, reason);
}

/* Waits until the non-blocking communicator leaves ncclInProgress (after init, a group end or
 * any call that returned ncclInProgress). */
static wr_status wait_comm(wr_comm *c, const char *what) {
    wr_comm_dev *d = c->dev;
    const double t0 = wr_now_s(), limit = timeout_s();
    for (unsigned polls = 0;;) {
        ncclResult_t state = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(d->nccl, &state);
        if (r != ncclSuccess) state = r;
        if (state == ncclSuccess) return WR_OK;
        if (state != ncclInProgress) return nccl_fail(c, what, state);
        if (wr_now_s() - t0 > limit) return timeout_fail(c, what, limit);
        backoff(&polls);
    }
}

/* The result of an NCCL call on a non-blocking communicator. */
static wr_status check_nccl(wr_comm *c, const char *what, ncclResult_t r) {
    if (r == ncclSuccess) return WR_OK;
    if (r == ncclInProgress) return wait_comm(c, what);
    return nccl_fail(c, what, r);
}

static wr_status check_cuda(wr_comm *c, const char *what, cudaError_t e) {
    if (e == cudaSuccess) return WR_OK;
    (void)cudaGetLastError();
    char reason[256];
    snprintf(reason, sizeof reason, "CUDA: %s", cudaGetErrorString(e));
    return dev_fail(c, what, reason);
}

/* The cudaStreamSynchronize of this layer: polls the stream, and the communicator's
 * asynchronous error state, until done, an error, or the timeout. */
static wr_status wait_stream(wr_comm *c, const char *what, cudaStream_t stream) {
    wr_comm_dev *d = c->dev;
    const double t0 = wr_now_s(), limit = timeout_s();
    for (unsigned polls = 0;;) {
        cudaError_t e = cudaStreamQuery(stream);
        if (e == cudaSuccess) return WR_OK;
        if (e != cudaErrorNotReady) return check_cuda(c, what, e);
        if (d->nccl != NULL) {
            ncclResult_t state = ncclSuccess;
            ncclResult_t r = ncclCommGetAsyncError(d->nccl, &state);
            if (r != ncclSuccess) state = r;
            if (state != ncclSuccess && state != ncclInProgress) return nccl_fail(c, what, state);
        }
        if (wr_now_s() - t0 > limit) return timeout_fail(c, what, limit);
        backoff(&polls);
    }
}

static wr_status dev_begin(wr_comm *c, const char *what) {
    wr_comm_dev *d = c->dev;
    if (d->aborted)
        return WR_FAIL(WR_ERR_COMM,
                       "%s on the %s communicator (size %d): its NCCL communicator was aborted "
                       "after an earlier failure",
                       what, c->name, c->size);
    cudaError_t e = cudaSetDevice(d->device);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return WR_FAIL(WR_ERR_DEVICE, "%s on the %s communicator: cudaSetDevice(%d): %s", what,
                       c->name, d->device, cudaGetErrorString(e));
    }
    if (d->nccl != NULL) { /* an error of earlier work (an isendrecv not yet waited for) */
        ncclResult_t state = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(d->nccl, &state);
        if (r != ncclSuccess) state = r;
        if (state != ncclSuccess && state != ncclInProgress) return nccl_fail(c, what, state);
    }
    return WR_OK;
}

static wr_status copy_async(wr_comm *c, const char *what, void *dst, const void *src, size_t bytes,
                            cudaStream_t stream) {
    if (bytes == 0 || dst == src) return WR_OK;
    return check_cuda(c, what, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
}

/* ---- set-up and tear-down ---- */

/* The local part: device, stream. */
static wr_status dev_setup(wr_comm *c, int cuda_device) {
    cudaError_t e = cudaSetDevice(cuda_device);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return WR_FAIL(WR_ERR_DEVICE, "cudaSetDevice(%d) for the %s communicator: %s", cuda_device,
                       c->name, cudaGetErrorString(e));
    }
    wr_comm_dev *d = calloc(1, sizeof *d);
    if (d == NULL)
        return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for the %s device communicator",
                       c->name);
    d->device = cuda_device;
    e = cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) {
        e = cudaEventCreateWithFlags(&d->ready, cudaEventDisableTiming);
        if (e != cudaSuccess) cudaStreamDestroy(d->stream);
    }
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        free(d);
        return WR_FAIL(
            WR_ERR_DEVICE,
            "cudaStreamCreate / cudaEventCreate for the %s communicator on device %d: %s", c->name,
            cuda_device, cudaGetErrorString(e));
    }
    c->dev = d;
    return WR_OK;
}

wr_status wr_comm_dev_create(wr_comm *c, int cuda_device) {
    WR_ASSERT(c != NULL && c->dev == NULL && cuda_device >= 0);
    /* Agreed before the id broadcast: a rank that failed here must not leave the others in an
     * MPI_Bcast it never joins (it would meet them in a different collective). */
    wr_status st = dev_setup(c, cuda_device);
    if (c->size > 1) st = wr_comm_agree(c, st);
    if (st != WR_OK) {
        wr_comm_dev_free(c);
        return st;
    }
    if (c->size == 1) return WR_OK;
    wr_comm_dev *d = c->dev;

    /* rank 0 makes the id and broadcasts it with its own success, so a failure there is
     * everyone's failure instead of a hang in ncclCommInitRank */
    struct {
        int32_t ok;
        char why[124];
        ncclUniqueId id;
    } msg;
    memset(&msg, 0, sizeof msg);
    if (c->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&msg.id);
        msg.ok = r == ncclSuccess;
        if (!msg.ok) snprintf(msg.why, sizeof msg.why, "%s", ncclGetErrorString(r));
    }
    MPI_Request req = MPI_REQUEST_NULL;
    const char *what = "MPI_Ibcast (the NCCL unique id)";
    int rc = MPI_Ibcast(&msg, (int)sizeof msg, MPI_BYTE, 0, c->mpi, &req);
    st = rc != MPI_SUCCESS ? WR_COMM_MPI_FAIL(c, what, rc)
                           : wr_comm_watch_wait(c, what, 1, &req, sizeof msg);
    if (st != WR_OK) {
        /* the detail is recorded */
    } else if (!msg.ok) {
        msg.why[sizeof msg.why - 1] = '\0';
        st = WR_FAIL(WR_ERR_COMM, "ncclGetUniqueId on rank 0 of the %s communicator (size %d): %s",
                     c->name, c->size, msg.why);
    } else {
        ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
        config.blocking = 0; /* returns at once; wait_comm polls with the timeout */
        ncclResult_t r = ncclCommInitRankConfig(&d->nccl, c->size, msg.id, c->rank, &config);
        if (r != ncclSuccess && r != ncclInProgress)
            st = nccl_fail(c, "ncclCommInitRankConfig", r);
        else
            st = wait_comm(c, "ncclCommInitRankConfig");
    }
    if (st != WR_OK) wr_comm_dev_free(c); /* the detail above is kept */
    return st;
}

void wr_comm_dev_free(wr_comm *c) {
    if (c == NULL || c->dev == NULL) return;
    wr_comm_dev *d = c->dev;
    cudaSetDevice(d->device);
    if (d->nccl != NULL) {
        /* Finalize flushes outstanding work (there is none: every call waited); polled with the
         * timeout, aborted when it fails. Warnings only: this thread's error detail may be the
         * failure being reported. */
        ncclResult_t r = ncclCommFinalize(d->nccl);
        const double t0 = wr_now_s(), limit = timeout_s();
        unsigned polls = 0;
        while (r == ncclInProgress) {
            ncclResult_t state = ncclSuccess;
            ncclResult_t q = ncclCommGetAsyncError(d->nccl, &state);
            r = q != ncclSuccess ? q : state;
            if (r == ncclInProgress && wr_now_s() - t0 > limit) {
                r = ncclInternalError;
                break;
            }
            backoff(&polls);
        }
        if (r == ncclSuccess) {
            ncclCommDestroy(d->nccl);
        } else {
            wr_warn("ncclCommFinalize on the %s communicator: %s; aborting it", c->name,
                    ncclGetErrorString(r));
            ncclCommAbort(d->nccl);
        }
        d->nccl = NULL;
    }
    if (d->stream != NULL) cudaStreamDestroy(d->stream);
    if (d->ready != NULL) cudaEventDestroy(d->ready);
    (void)cudaGetLastError();
    free(d);
    c->dev = NULL;
}

/* ---- collectives ---- */

wr_status wr_comm_dev_allgather(wr_comm *c, void *recv, const void *send, size_t bytes) {
    const char *what = "ncclAllGather";
    WR_TRY(dev_begin(c, what));
    wr_comm_dev *d = c->dev;
    if (bytes == 0) return WR_OK;
    cudaStream_t cs = compute_stream(c);
    if (d->nccl == NULL) {
        WR_TRY(copy_async(c, what, recv, send, bytes, cs));
    } else {
        WR_TRY(check_nccl(c, what, ncclAllGather(send, recv, bytes, ncclChar, d->nccl, cs)));
    }
    return wait_stream(c, what, cs);
}

/* n all-to-alls as one group of ncclSend/ncclRecv (ncclAlltoAll exists only in recent NCCL
 * releases); the own blocks are device copies on the same stream. */
wr_status wr_comm_dev_alltoall_n(wr_comm *c, int n, void *const recv[], const void *const send[],
                                 size_t bytes) {
    const char *what =
        n == 1 ? "alltoall (grouped ncclSend/ncclRecv)" : "alltoall x3 (grouped ncclSend/ncclRecv)";
    WR_ASSERT(n >= 1 && n <= 3);
    WR_TRY(dev_begin(c, what));
    wr_comm_dev *d = c->dev;
    if (bytes == 0) return WR_OK;
    cudaStream_t cs = compute_stream(c);
    const size_t me = (size_t)c->rank * bytes;
    for (int k = 0; k < n; k++)
        WR_TRY(copy_async(c, what, (char *)recv[k] + me, (const char *)send[k] + me, bytes, cs));
    if (d->nccl != NULL) {
        ncclResult_t r = ncclGroupStart();
        if (r != ncclSuccess) return nccl_fail(c, what, r);
        ncclResult_t first = ncclSuccess;
        for (int k = 0; k < n; k++) {
            char *rb = recv[k];
            const char *sb = send[k];
            for (int j = 0; j < c->size; j++) {
                if (j == c->rank) continue;
                const size_t off = (size_t)j * bytes;
                r = ncclSend(sb + off, bytes, ncclChar, j, d->nccl, cs);
                if (r != ncclSuccess && r != ncclInProgress && first == ncclSuccess) first = r;
                r = ncclRecv(rb + off, bytes, ncclChar, j, d->nccl, cs);
                if (r != ncclSuccess && r != ncclInProgress && first == ncclSuccess) first = r;
            }
        }
        r = ncclGroupEnd(); /* always closed, even after a failed call inside */
        if (first != ncclSuccess) return nccl_fail(c, what, first);
        WR_TRY(check_nccl(c, what, r));
    }
    return wait_stream(c, what, cs);
}

wr_status wr_comm_dev_alltoall(wr_comm *c, void *recv, const void *send, size_t bytes) {
    void *const r[1] = {recv};
    const void *const s[1] = {send};
    return wr_comm_dev_alltoall_n(c, 1, r, s, bytes);
}

wr_status wr_comm_dev_bcast(wr_comm *c, void *buf, size_t bytes, int root) {
    const char *what = "ncclBroadcast";
    WR_TRY(dev_begin(c, what));
    wr_comm_dev *d = c->dev;
    if (bytes == 0 || d->nccl == NULL) return WR_OK;
    cudaStream_t cs = compute_stream(c);
    WR_TRY(check_nccl(c, what, ncclBroadcast(buf, buf, bytes, ncclChar, root, d->nccl, cs)));
    return wait_stream(c, what, cs);
}

wr_status wr_comm_dev_allreduce_f32(wr_comm *c, float *buf, size_t n, wr_reduce_op op) {
    const char *what = "ncclAllReduce (f32)";
    WR_TRY(dev_begin(c, what));
    wr_comm_dev *d = c->dev;
    if (n == 0 || d->nccl == NULL) return WR_OK;
    cudaStream_t cs = compute_stream(c);
    ncclRedOp_t nop = op == WR_REDUCE_MAX ? ncclMax : op == WR_REDUCE_MIN ? ncclMin : ncclSum;
    WR_TRY(check_nccl(c, what, ncclAllReduce(buf, buf, n, ncclFloat32, nop, d->nccl, cs)));
    return wait_stream(c, what, cs);
}

/* One send and one receive as a group on `stream`. */
static wr_status sendrecv_on(wr_comm *c, const char *what, const void *send, int dst, void *recv,
                             int src, size_t bytes, cudaStream_t stream) {
    wr_comm_dev *d = c->dev;
    if (d->nccl == NULL) return copy_async(c, what, recv, send, bytes, stream); /* size 1 */
    ncclResult_t r = ncclGroupStart();
    if (r != ncclSuccess) return nccl_fail(c, what, r);
    ncclResult_t first = ncclSuccess;
    r = ncclSend(send, bytes, ncclChar, dst, d->nccl, stream);
    if (r != ncclSuccess && r != ncclInProgress) first = r;
    r = ncclRecv(recv, bytes, ncclChar, src, d->nccl, stream);
    if (r != ncclSuccess && r != ncclInProgress && first == ncclSuccess) first = r;
    r = ncclGroupEnd();
    if (first != ncclSuccess) return nccl_fail(c, what, first);
    return check_nccl(c, what, r);
}

wr_status wr_comm_dev_sendrecv(wr_comm *c, const void *send, int dst, void *recv, int src,
                               size_t bytes) {
    const char *what = "sendrecv (grouped ncclSend/ncclRecv)";
    WR_TRY(dev_begin(c, what));
    if (bytes == 0) return WR_OK;
    cudaStream_t cs = compute_stream(c);
    WR_TRY(sendrecv_on(c, what, send, dst, recv, src, bytes, cs));
    return wait_stream(c, what, cs);
}

/* On the communicator's stream, after the compute stream's work so far (the buffers' producers):
 * the compute stream's later ops run beside the transfer. */
wr_status wr_comm_dev_isendrecv(wr_comm *c, const void *send, int dst, void *recv, int src,
                                size_t bytes) {
    const char *what = "isendrecv (grouped ncclSend/ncclRecv)";
    WR_TRY(dev_begin(c, what));
    wr_comm_dev *d = c->dev;
    if (bytes == 0) return WR_OK;
    WR_TRY(check_cuda(c, what, cudaEventRecord(d->ready, compute_stream(c))));
    WR_TRY(check_cuda(c, what, cudaStreamWaitEvent(d->stream, d->ready, 0)));
    return sendrecv_on(c, what, send, dst, recv, src, bytes, d->stream);
}

wr_status wr_comm_dev_wait(wr_comm *c) {
    const char *what = "isendrecv (waiting)";
    WR_TRY(dev_begin(c, what));
    return wait_stream(c, what, c->dev->stream);
}

#else /* !WR_HAVE_NCCL */

wr_status wr_comm_dev_create(wr_comm *c, int cuda_device) {
    return WR_FAIL(WR_ERR_UNSUPPORTED,
                   "device communicators (CUDA device %d, the %s communicator) need NCCL, and "
                   "this build has none; rebuild with CUDA and NCCL (WR_CUDA=ON) or run with "
                   "host buffers",
                   cuda_device, c->name);
}

void wr_comm_dev_free(wr_comm *c) {
    (void)c; /* c->dev is always NULL here */
}

/* Unreachable: comm.c calls these only when c->dev != NULL, which needs NCCL. */
wr_status wr_comm_dev_allgather(wr_comm *c, void *recv, const void *send, size_t bytes) {
    return WR_FAIL(WR_ERR_UNSUPPORTED, "no NCCL in this build");
}
wr_status wr_comm_dev_alltoall(wr_comm *c, void *recv, const void *send, size_t bytes) {
    return WR_FAIL(WR_ERR_UNSUPPORTED, "no NCCL in this build");
}
wr_status wr_comm_dev_bcast(wr_comm *c, void *buf, size_t bytes, int root) {
    return WR_FAIL(WR_ERR_UNSUPPORTED, "no NCCL in this build");
}
wr_status wr_comm_dev_allreduce_f32(wr_comm *c, float *buf, size_t n, wr_reduce_op op) {
    return WR_FAIL(WR_ERR_UNSUPPORTED, "no NCCL in this build");
}
wr_status wr_comm_dev_alltoall_n(wr_comm *c, int n, void *const recv[], const void *const send[],
                                 size_t bytes) {
    return WR_FAIL(WR_ERR_UNSUPPORTED, "no NCCL in this build");
}
wr_status wr_comm_dev_sendrecv(wr_comm *c, const void *send, int dst, void *recv, int src,
                               size_t bytes) {
    return WR_FAIL(WR_ERR_UNSUPPORTED, "no NCCL in this build");
}
wr_status wr_comm_dev_isendrecv(wr_comm *c, const void *send, int dst, void *recv, int src,
                                size_t bytes) {
    return WR_FAIL(WR_ERR_UNSUPPORTED, "no NCCL in this build");
}
wr_status wr_comm_dev_wait(wr_comm *c) {
    return WR_FAIL(WR_ERR_UNSUPPORTED, "no NCCL in this build");
}

#endif /* WR_HAVE_NCCL */

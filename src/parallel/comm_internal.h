/*
 * comm_internal.h — what comm.c (bootstrap, groups, MPI host paths, agreement, counters) and
 * comm_nccl.c (NCCL device paths) share. Not part of the public API: only those two files and
 * the tests include it.
 *
 * A wr_comm is one communicator: an MPI communicator (MPI_COMM_NULL in a process without MPI,
 * where the communicator has size 1 and collectives are local copies), its short name for
 * messages, and optionally a device side (a CUDA stream plus an NCCL communicator when the
 * size is above 1). Only the main thread uses a wr_comm; the heartbeat thread of comm_watch.c
 * uses only its own control communicator.
 */
#ifndef WR_PARALLEL_COMM_INTERNAL_H
#define WR_PARALLEL_COMM_INTERNAL_H

#include <mpi.h>
#include <stddef.h>

#include "parallel/comm.h"

typedef struct wr_comm_dev wr_comm_dev; /* comm_nccl.c */

struct wr_comm {
    MPI_Comm mpi; /* owned (freed by wr_groups_free); MPI_COMM_NULL without MPI */
    int rank, size;
    int world_rank, world_size; /* of this process, for "rank R: " in agreed errors */
    int *world_of;              /* owned: world rank of each member; NULL: the identity */
    char name[8];               /* "world", "group", "cp", "cfg" */
    wr_comm_dev *dev;           /* owned; NULL: host buffers only */
    int staged;     /* device buffers travel through host copies and MPI (no NCCL: ranks sharing a
                       GPU, a build without NCCL, or WR_COMM_STAGED=1) */
    wr_backend *be; /* borrowed (wr_comm_set_backend); NULL: none */
};

/* Records WR_ERR_COMM "<what> on the <name> communicator (size N): <MPI error text>". */
wr_status wr_comm_mpi_fail_at(const char *file, int line, const wr_comm *c, const char *what,
                              int mpi_rc);
#define WR_COMM_MPI_FAIL(c, what, rc) wr_comm_mpi_fail_at(__FILE__, __LINE__, (c), (what), (rc))

/*
 * Device side (comm_nccl.c). With WR_HAVE_NCCL == 0, _create fails with WR_ERR_UNSUPPORTED
 * and the others are never reached (c->dev stays NULL); _free(c) with c->dev == NULL does
 * nothing.
 *
 * The collectives are enqueued on the compute stream of c->be when it is a CUDA backend (else
 * the legacy default stream), so they follow the work issued there; each returns once its
 * transfer has completed (the stream is polled with the WR_NCCL_TIMEOUT_S timeout and NCCL's
 * asynchronous error state). _isendrecv enqueues on the communicator's own non-blocking
 * stream behind an event recorded on the compute stream and returns at once; _wait polls that
 * stream the same way. On an NCCL error or a timeout the NCCL communicator is aborted and every
 * later device call on it fails.
 */
wr_status wr_comm_dev_create(wr_comm *c, int cuda_device); /* collective over c */
void wr_comm_dev_free(wr_comm *c);
wr_status wr_comm_dev_allgather(wr_comm *c, void *recv, const void *send, size_t bytes);
wr_status wr_comm_dev_alltoall(wr_comm *c, void *recv, const void *send, size_t bytes);
/* n (1..3) all-to-alls in one NCCL group */
wr_status wr_comm_dev_alltoall_n(wr_comm *c, int n, void *const recv[], const void *const send[],
                                 size_t bytes);
wr_status wr_comm_dev_bcast(wr_comm *c, void *buf, size_t bytes, int root);
wr_status wr_comm_dev_allreduce_f32(wr_comm *c, float *buf, size_t n, wr_reduce_op op);
wr_status wr_comm_dev_sendrecv(wr_comm *c, const void *send, int dst, void *recv, int src,
                               size_t bytes);
wr_status wr_comm_dev_isendrecv(wr_comm *c, const void *send, int dst, void *recv, int src,
                                size_t bytes);
/* completes every _isendrecv issued on c so far */
wr_status wr_comm_dev_wait(wr_comm *c);

/*
 * The watched wait (comm_watch.c; comm.h, "Waiting and stopped ranks").
 *
 * _start: collective over MPI_COMM_WORLD, called by wr_world_init once MPI is up: makes the
 * control communicator (a duplicate of the world), hooks its teardown into MPI_Finalize, and
 * starts the heartbeat thread when the world has more than one rank and every rank has
 * MPI_THREAD_MULTIPLE and WR_COMM_TIMEOUT_S other than 0 (agreed; the largest timeout is
 * used). A second call does nothing.
 *
 * _wait: completes the n requests (MPI_Testall), spinning briefly, then sleeping with a growing
 * interval (20 us to 2 ms, up to 10 ms in a wait of over 0.1 s); `bytes` (the transfer's size)
 * lengthens the spin. While it waits,
 * it checks every 50 ms whether a member of c has sent no heartbeat for WR_COMM_TIMEOUT_S
 * seconds; if so it logs "rank K has not answered for N s (stopped or hung?) in <what> on the
 * <c> communicator; aborting the job (WR_COMM_TIMEOUT_S=T)" and ends the job with
 * MPI_Abort(WR_COMM_ABORT_EXIT). An MPI error is WR_ERR_COMM naming `what`.
 *
 * _barrier: a watched barrier over the world on the control communicator (collective), before
 * the blocking MPI calls that cannot be made non-blocking (communicator creation, finalize), so
 * a rank stopped before them is caught here. WR_OK at once without the control communicator.
 */
wr_status wr_comm_watch_start(void);
wr_status wr_comm_watch_wait(const wr_comm *c, const char *what, int n, MPI_Request *reqs,
                             size_t bytes);
wr_status wr_comm_watch_barrier(const char *what);
/* WR_COMM_TIMEOUT_S as read (once, lazily; the agreed value once the heartbeat runs); _parse:
 * the rule (NULL or "": the default 300; a number >= 0; else a warning and the default). */
double wr_comm_timeout_s(void);
double wr_comm_timeout_parse(const char *s);
/* 1 when the heartbeat thread runs in this process (tests). */
int wr_comm_heartbeat_on(void);

/*
 * Tests only: the largest count passed to one MPI call (default INT_MAX). Byte counts above it
 * go through a derived datatype, element counts above it (allreduce) in chunks; a small value
 * lets the tests cover those paths with small buffers. 0 restores the default.
 */
void wr_comm_test_set_max_count(size_t max_count);

#endif /* WR_PARALLEL_COMM_INTERNAL_H */

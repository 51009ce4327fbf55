/*
 * comm.h — the distributed layer (DESIGN.md §5): world bootstrap, the group layout
 * (replicas x CFG-parallel x context-parallel), one communicator per group, collectives on
 * host buffers (MPI) and device buffers (NCCL), and collective agreement on failures.
 *
 * Layout: world = replicas x cfg x cp, world rank r = (replica * cfg + cfg_rank) * cp + cp_rank.
 * A rank belongs to:
 *   - group : the cfg * cp ranks of its replica (one generation);
 *   - cp    : the cp ranks with the same replica and cfg_rank (one token sequence, sharded);
 *   - cfg   : the cfg ranks with the same replica and cp_rank (exchange velocities);
 *   - world : everybody.
 * A layout that does not divide the world size is WR_ERR_INVALID_ARG naming the numbers.
 *
 * Without MPI (a plain `wanrun ...`, or world size 1) every communicator has size 1 and every
 * collective is a local copy: callers never special-case it.
 *
 * Buffers: every collective takes a `where` (WR_MEM_HOST or WR_MEM_DEVICE). Host buffers go
 * through MPI. Device buffers are memory of the communicator's backend (wr_comm_set_backend):
 *   - a CPU backend (plain, strict or async mode): the backend is synchronised (every op
 *     issued before the call has run), then the MPI host path runs on the backend's host
 *     alias of the buffers (be->iface->host_alias: the strict mode's private view; the plain
 *     mode's identity). The transports are the only code allowed that alias. A device pointer
 *     that is not the backend's memory aborts in the strict mode.
 *   - a CUDA backend: NCCL (groups made with a cuda_device), enqueued on the backend's compute
 *     stream, after the work issued there before the call.
 *   - no backend set: NCCL when the groups were made with a cuda_device, else
 *     WR_ERR_UNSUPPORTED naming the communicator.
 * Byte counts are per rank. All calls are collective over the communicator unless said
 * otherwise. Errors are WR_ERR_COMM with the MPI/NCCL text.
 *
 * NCCL errors and the timeout (WR_NCCL_TIMEOUT_S) are checked where the host waits: every
 * device collective waits for its transfer before it returns (a sync point of the compute
 * stream), and wr_comm_wait for an isendrecv; isendrecv runs on the communicator's own stream,
 * after the compute stream's earlier work, so the compute stream's later ops overlap it.
 *
 * Waiting and stopped ranks (comm_watch.c). Every host collective and point-to-point call is
 * posted non-blocking (MPI_Iallgather, MPI_Ialltoall, MPI_Ibcast, MPI_Iallreduce, MPI_Ibarrier,
 * MPI_Isend/MPI_Irecv) and completed by a polling wait that spins for at most ~10 ms, then
 * sleeps 20 us growing to 2 ms between polls (10 ms in a long wait): a rank waiting for
 * another (the non-writer ranks while the writer loads, encodes, decodes and writes) costs
 * about 1 % of a core instead of a whole one (measured over 5 s of waiting with Open MPI 4.1
 * on one node: 0.6 %, against 99 % in the blocking calls). The data moved is the same as with
 * the blocking calls (bitwise); reductions are elementwise over the same operands (a sum of
 * floats may be associated differently by the non-blocking algorithm; wanrun itself reduces
 * only integers and flags).
 *
 * A stopped rank is told from a busy one by a heartbeat: a thread in every process sends a
 * tiny message to every other rank every WR_COMM_TIMEOUT_S / 10 seconds (at most 1 s), on a
 * communicator of its own. A rank that computes, reads a file, or sleeps for hours keeps
 * answering (the thread runs beside its main thread), so no legitimate wait, however long, is
 * ever cut short: the timeout is not a limit on how long a collective may take. A rank whose
 * process is stopped (SIGSTOP, a debugger holding it), frozen, or unreachable stops answering;
 * a rank waiting in a collective with it then logs
 *   "[r/R] error: rank K has not answered for N s (stopped or hung?) in <call> on the <c>
 *    communicator; aborting the job (WR_COMM_TIMEOUT_S=T)"
 * and ends the whole job with MPI_Abort(WR_COMM_ABORT_EXIT): this is not a status a caller
 * could agree on (the silent rank would never join the agreement).
 *
 * WR_COMM_TIMEOUT_S is in seconds, default 300 (as WR_NCCL_TIMEOUT_S; long enough for a loaded
 * or swapping machine to deschedule a process without a false abort); 0 turns the deadline
 * (and the thread) off. The ranks agree on it at start-up: 0 on any rank turns it off on all,
 * else the largest value counts. Raise it, or set 0, to hold a rank in a debugger for longer.
 * Not detected: a rank whose process is alive but whose main thread never reaches the
 * collective (a deadlock, an endless loop, a mismatched collective): use the launcher's or
 * the scheduler's time limit for those. The heartbeat needs MPI_THREAD_MULTIPLE, which
 * wr_world_init asks for; when MPI was started by someone else with less, waits still sleep
 * but have no deadline. The blocking calls that have no non-blocking form (communicator
 * creation, MPI_Finalize) are preceded by a watched barrier, so a rank stopped before them is
 * caught there.
 */
#ifndef WR_PARALLEL_COMM_H
#define WR_PARALLEL_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef enum wr_mem_where { WR_MEM_HOST = 0, WR_MEM_DEVICE = 1 } wr_mem_where;

typedef struct wr_comm wr_comm;
typedef struct wr_backend wr_backend; /* kernels/backend.h */

/* The communicators take a backend (wr_comm_set_backend) and have the grouped all-to-all
 * (wr_comm_alltoall3). */
#define WR_COMM_HAS_BACKEND 1

/* Set once per process. */
typedef struct wr_world {
    int mpi;        /* 1: MPI was initialised by wr_world_init (and is finalised by _finalize) */
    int rank, size; /* in MPI_COMM_WORLD (0, 1 without MPI) */
    int local_rank; /* among the ranks on this node (MPI_Comm_split_type SHARED): picks the GPU */
    int local_size;
    char host[64]; /* this node's name */
} wr_world;

/* The exit code of a job ended because a rank stopped answering (launch/wanrun.c's 5, device
 * or communication failure). */
#define WR_COMM_ABORT_EXIT 5

/*
 * Initialises MPI when this process was started by an MPI launcher (mpirun/mpiexec/srun set
 * OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK, PMI_SIZE or MPI_LOCALNRANKS) or WR_FORCE_MPI is
 * set; otherwise a single-process world. Thread level MPI_THREAD_MULTIPLE: only the main thread
 * uses the communicators, the heartbeat thread its own (above). With MPI already initialised
 * (by the caller), it uses that MPI and starts the heartbeat if its thread level allows.
 * Collective over MPI_COMM_WORLD. Errors return (MPI_ERRORS_RETURN on every communicator),
 * never abort silently. _finalize waits (watched) for every rank, then calls MPI_Finalize if
 * _init called MPI_Init; the heartbeat ends in MPI_Finalize, whoever calls it.
 */
wr_status wr_world_init(wr_world *w, int *argc, char ***argv);
void wr_world_finalize(wr_world *w);
/* Ends every rank of the job now (MPI_Abort), e.g. after a failure that could not be agreed. */
void wr_world_abort(const wr_world *w, int exit_code) __attribute__((noreturn));

typedef struct wr_layout {
    int cfg; /* 1 or 2 */
    int cp;  /* >= 1 */
} wr_layout;

typedef struct wr_groups {
    wr_layout layout;
    int replicas; /* world size / (cfg * cp) */
    int replica;  /* this rank's replica group */
    int cfg_rank; /* 0: conditional pass, 1: unconditional (when cfg == 2) */
    int cp_rank;
    wr_comm *world; /* all ranks */
    wr_comm *group; /* the ranks of this replica */
    wr_comm *cp;    /* same replica and cfg_rank */
    wr_comm *cfg;   /* same replica and cp_rank */
} wr_groups;

/* Builds the groups. `cuda_device` >= 0 also creates NCCL communicators on that device (unique
 * id broadcast over MPI), -1 for host-only. Collective over the world. */
wr_status wr_groups_create(wr_groups *g, const wr_world *w, wr_layout layout, int cuda_device);
void wr_groups_free(wr_groups *g);

int wr_comm_rank(const wr_comm *c);
int wr_comm_size(const wr_comm *c);

/* The backend whose memory this communicator's WR_MEM_DEVICE buffers are (above, "Buffers").
 * Borrowed: it must outlive every device call on c (and any request still to be waited on);
 * NULL: none. Not collective; set it on every rank alike. _groups_: on the four
 * communicators of g. */
void wr_comm_set_backend(wr_comm *c, wr_backend *be);
void wr_groups_set_backend(wr_groups *g, wr_backend *be);

/* Every rank's `bytes` from `send` land at recv + rank * bytes (recv holds size * bytes). */
wr_status wr_comm_allgather(wr_comm *c, void *recv, const void *send, size_t bytes,
                            wr_mem_where where);
/* Block j (bytes each) of `send` goes to rank j, landing at recv + my_rank * bytes there. */
wr_status wr_comm_alltoall(wr_comm *c, void *recv, const void *send, size_t bytes,
                           wr_mem_where where);
/* Three all-to-alls of the same block size in one call (Ulysses' q, k, v): recv[k] and send[k]
 * as wr_comm_alltoall's, k = 0, 1, 2, no two buffers overlapping. Host: the three posted
 * together and waited for together; device: one NCCL group (one launch, one wait); a CPU
 * backend's device buffers: one sync, then the host path. The data moved is the same as three
 * wr_comm_alltoall calls (bitwise). */
wr_status wr_comm_alltoall3(wr_comm *c, void *const recv[3], const void *const send[3],
                            size_t bytes, wr_mem_where where);
wr_status wr_comm_bcast(wr_comm *c, void *buf, size_t bytes, int root, wr_mem_where where);

typedef enum wr_reduce_op { WR_REDUCE_SUM = 0, WR_REDUCE_MAX, WR_REDUCE_MIN } wr_reduce_op;
/* In place over n f32 values. */
wr_status wr_comm_allreduce_f32(wr_comm *c, float *buf, size_t n, wr_reduce_op op,
                                wr_mem_where where);
/* In place over n int64 values (host only): sizes, byte counts, flags. */
wr_status wr_comm_allreduce_i64(wr_comm *c, int64_t *buf, size_t n, wr_reduce_op op);

/* Point-to-point for ring attention: sends `bytes` of `send` to rank dst and receives `bytes`
 * from rank src into `recv` (send != recv). The nonblocking form returns a request to wait on,
 * so compute can overlap the transfer: neither buffer may be touched (by the host or by an
 * op) until wr_comm_wait returned. Device buffers: the request remembers c's backend; on a
 * CPU backend the backend is synchronised when the call is made, so ops issued after it may
 * run during the transfer; once wr_comm_wait returns, recv holds the data for ops issued
 * after it. */
typedef struct wr_comm_req wr_comm_req;
wr_status wr_comm_sendrecv(wr_comm *c, const void *send, int dst, void *recv, int src, size_t bytes,
                           wr_mem_where where);
wr_status wr_comm_isendrecv(wr_comm *c, const void *send, int dst, void *recv, int src,
                            size_t bytes, wr_mem_where where, wr_comm_req **req);
wr_status wr_comm_wait(wr_comm_req *req); /* frees req; NULL is a no-op */

wr_status wr_comm_barrier(wr_comm *c);

/*
 * A counter shared by the members of c (a batch's next job: whichever replica is free first
 * takes the next number, and no two ever get the same one): MPI one-sided, a window on c's
 * rank 0 updated with MPI_Fetch_and_op under a shared lock, so the members take numbers at
 * their own pace with no collective. create and free are collective over c; next is not. On a
 * communicator of size 1 (or c NULL: a single process) a plain local counter.
 */
typedef struct wr_counter wr_counter;
wr_status wr_counter_create(wr_counter **out, wr_comm *c);
/* *value = the counter, then the counter + 1 (atomically) */
wr_status wr_counter_next(wr_counter *k, int64_t *value);
void wr_counter_free(wr_counter *k);

/*
 * Collective agreement on a status (DESIGN.md §5): every rank passes its own; all return the
 * same result: WR_OK if every rank had WR_OK, else the status of the lowest failing rank, with
 * that rank's error detail installed on every rank, prefixed "rank R: " (so every rank prints
 * the same clear error). A communication failure here is WR_ERR_COMM.
 */
wr_status wr_comm_agree(wr_comm *c, wr_status st);

/* Bytes this process has sent through collectives and point-to-point since the last reset
 * (the benchmark's communication volume; counted by the sender, the own block excluded). */
uint64_t wr_comm_bytes_sent(void);
void wr_comm_bytes_reset(void);

#endif /* WR_PARALLEL_COMM_H */

/*
 * comm.c — the distributed layer's host side (comm.h): world bootstrap, the group layout,
 * MPI collectives on host buffers, the single-process fallback (local copies), collective
 * agreement on a status, and the byte counters. Device buffers are memory of the
 * communicator's backend: on a CPU backend they take the MPI host path on the backend's host
 * alias after a sync (device_path); on a staged communicator (c->staged: ranks that share a
 * GPU, where NCCL refuses, a build without NCCL, or WR_COMM_STAGED=1 to test the path on the
 * CPU) they are downloaded into host copies, moved by MPI and uploaded; otherwise they are
 * dispatched to comm_nccl.c.
 *
 * Conventions:
 *   - MPI is "active" when MPI_Init has run (here or by the caller, e.g. the test harness) and
 *     MPI_Finalize has not; otherwise every communicator has size 1 and MPI_COMM_NULL inside.
 *   - Every communicator we create gets MPI_ERRORS_RETURN, so an MPI failure becomes
 *     WR_ERR_COMM naming the call, the communicator and MPI's own text.
 *   - Byte counts above INT_MAX (an MPI count is an int) travel as one derived datatype of
 *     exactly `bytes` bytes; element counts above it (allreduce) in chunks.
 *   - allgather accepts `send == recv + rank * bytes` (in place, MPI_IN_PLACE); for alltoall
 *     and sendrecv the send and receive buffers must not overlap.
 */
#include "parallel/comm.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "kernels/backend.h"
#include "wr_build_config.h"
#include "parallel/comm_internal.h"

/* Tag of every point-to-point message: MPI keeps messages with the same (source, tag,
 * communicator) in order, so a ring's successive isendrecv calls match in posting order. */
#define WR_COMM_TAG 0x5752

static uint64_t g_bytes_sent;        /* only the main thread communicates */
static size_t g_max_count = INT_MAX; /* see wr_comm_test_set_max_count */

static int mpi_active(void) {
    int up = 0, down = 0;
    MPI_Initialized(&up);
    if (up) MPI_Finalized(&down);
    return up && !down;
}

static void count_sent(uint64_t bytes) {
    g_bytes_sent += bytes;
}

uint64_t wr_comm_bytes_sent(void) {
    return g_bytes_sent;
}

void wr_comm_bytes_reset(void) {
    g_bytes_sent = 0;
}

void wr_comm_test_set_max_count(size_t max_count) {
    g_max_count = max_count == 0 || max_count > INT_MAX ? (size_t)INT_MAX : max_count;
}

wr_status wr_comm_mpi_fail_at(const char *file, int line, const wr_comm *c, const char *what,
                              int mpi_rc) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(mpi_rc, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error code %d", mpi_rc);
    return wr_fail_at(file, line, WR_ERR_COMM, "%s on the %s communicator (size %d): %s", what,
                      c ? c->name : "world", c ? c->size : 0, text);
}

/* ---- world ---- */

/* Variables an MPI launcher sets (Open MPI's mpirun, PMIx/PMI launchers such as srun, MPICH's
 * Hydra), plus WR_FORCE_MPI to ask for MPI anyway. */
static int launched_by_mpi(void) {
    static const char *const vars[] = {
        "OMPI_COMM_WORLD_SIZE", "PMIX_RANK",   "PMI_RANK", "PMI_SIZE",
        "MPI_LOCALNRANKS",      "WR_FORCE_MPI"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

wr_status wr_world_init(wr_world *w, int *argc, char ***argv) {
    WR_ASSERT(w != NULL);
    memset(w, 0, sizeof *w);
    w->size = 1;
    w->local_size = 1;
    if (gethostname(w->host, sizeof w->host) != 0) snprintf(w->host, sizeof w->host, "unknown");
    w->host[sizeof w->host - 1] = '\0';

    if (!mpi_active()) {
        if (!launched_by_mpi()) {
            wr_log_set_rank(0, 1);
            return WR_OK;
        }
        int provided = 0;
        /* MULTIPLE: the heartbeat thread (comm_watch.c) calls MPI beside the main thread */
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
        if (rc != MPI_SUCCESS)
            return WR_FAIL(WR_ERR_COMM,
                           "MPI_Init_thread failed (error %d): the MPI launcher's environment is "
                           "set but MPI could not start; run without mpirun, or check the MPI "
                           "installation",
                           rc);
        w->mpi = 1;
        if (provided < MPI_THREAD_MULTIPLE)
            wr_warn("MPI provides thread level %d, below MPI_THREAD_MULTIPLE: no heartbeat, so a "
                    "stopped rank is not detected (WR_COMM_TIMEOUT_S has no effect)",
                    provided);
    }
    wr_comm wc = {.mpi = MPI_COMM_WORLD, .size = 0, .name = "world"};
    int rc = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (rc != MPI_SUCCESS) return WR_COMM_MPI_FAIL(&wc, "MPI_Comm_set_errhandler", rc);
    rc = MPI_Comm_rank(MPI_COMM_WORLD, &w->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(MPI_COMM_WORLD, &w->size);
    if (rc != MPI_SUCCESS) return WR_COMM_MPI_FAIL(&wc, "MPI_Comm_rank/size", rc);
    wc.size = w->size;
    wr_log_set_rank(w->rank, w->size);
    WR_TRY(wr_comm_watch_start());
    WR_TRY(wr_comm_watch_barrier("MPI_Ibarrier (before MPI_Comm_split_type)"));

    MPI_Comm local = MPI_COMM_NULL;
    rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w->rank, MPI_INFO_NULL, &local);
    if (rc != MPI_SUCCESS) return WR_COMM_MPI_FAIL(&wc, "MPI_Comm_split_type(SHARED)", rc);
    MPI_Comm_set_errhandler(local, MPI_ERRORS_RETURN);
    rc = MPI_Comm_rank(local, &w->local_rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(local, &w->local_size);
    MPI_Comm_free(&local);
    if (rc != MPI_SUCCESS) return WR_COMM_MPI_FAIL(&wc, "MPI_Comm_rank/size (node-local)", rc);
    return WR_OK;
}

void wr_world_finalize(wr_world *w) {
    if (w == NULL) return;
    if (w->mpi && mpi_active()) {
        /* MPI_Finalize blocks (and spins) until every rank is there: a rank still writing the
         * video is waited for here, at low CPU, and a stopped one ends the job */
        wr_status st = wr_comm_watch_barrier("MPI_Ibarrier (before MPI_Finalize)");
        if (st != WR_OK) wr_warn("%s", wr_error_detail());
        MPI_Finalize();
    }
    w->mpi = 0;
}

void wr_world_abort(const wr_world *w, int exit_code) {
    (void)w;
    fflush(stdout);
    fflush(stderr);
    if (mpi_active()) MPI_Abort(MPI_COMM_WORLD, exit_code);
    /* Without MPI (or if MPI_Abort returned) this process is the whole job: end it with the
     * same code. _Exit skips atexit handlers, as MPI_Abort would. */
    _Exit(exit_code);
}

/* ---- communicators and groups ---- */

static void comm_free(wr_comm *c) {
    if (c == NULL) return;
    wr_comm_dev_free(c);
    if (c->mpi != MPI_COMM_NULL && mpi_active()) MPI_Comm_free(&c->mpi);
    free(c->world_of);
    free(c);
}

/* Takes ownership of `m` (MPI_COMM_NULL: a single-process communicator). */
static wr_status comm_wrap(wr_comm **out, MPI_Comm m, const char *name, const wr_world *w) {
    *out = NULL;
    wr_comm *c = calloc(1, sizeof *c);
    if (c == NULL) {
        if (m != MPI_COMM_NULL) MPI_Comm_free(&m);
        return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory creating the %s communicator", name);
    }
    c->mpi = m;
    c->rank = 0;
    c->size = 1;
    c->world_rank = w->rank;
    c->world_size = w->size;
    snprintf(c->name, sizeof c->name, "%s", name);
    if (m != MPI_COMM_NULL) {
        int rc = MPI_Comm_set_errhandler(m, MPI_ERRORS_RETURN);
        if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(m, &c->rank);
        if (rc == MPI_SUCCESS) rc = MPI_Comm_size(m, &c->size);
        if (rc != MPI_SUCCESS) {
            wr_status st = WR_COMM_MPI_FAIL(c, "MPI_Comm_set_errhandler/rank/size", rc);
            comm_free(c);
            return st;
        }
        /* the members' world ranks: whose heartbeat a wait on c watches */
        c->world_of = malloc(sizeof(int) * 2 * (size_t)c->size);
        if (c->world_of == NULL) {
            comm_free(c);
            return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory creating the %s communicator",
                           name);
        }
        int *mine = c->world_of + c->size;
        for (int i = 0; i < c->size; i++) mine[i] = i;
        MPI_Group gm = MPI_GROUP_NULL, gw = MPI_GROUP_NULL;
        rc = MPI_Comm_group(m, &gm);
        if (rc == MPI_SUCCESS) rc = MPI_Comm_group(MPI_COMM_WORLD, &gw);
        if (rc == MPI_SUCCESS) rc = MPI_Group_translate_ranks(gm, c->size, mine, gw, c->world_of);
        if (gm != MPI_GROUP_NULL) MPI_Group_free(&gm);
        if (gw != MPI_GROUP_NULL) MPI_Group_free(&gw);
        if (rc != MPI_SUCCESS) {
            wr_status st = WR_COMM_MPI_FAIL(c, "MPI_Group_translate_ranks", rc);
            comm_free(c);
            return st;
        }
    }
    *out = c;
    return WR_OK;
}

static wr_status comm_split(wr_comm **out, const wr_world *w, int color, int key,
                            const char *name) {
    MPI_Comm m = MPI_COMM_NULL;
    if (mpi_active()) {
        char arrive[80];
        snprintf(arrive, sizeof arrive, "MPI_Ibarrier (before making the %s communicator)", name);
        WR_TRY(wr_comm_watch_barrier(arrive));
        int rc = MPI_Comm_split(MPI_COMM_WORLD, color, key, &m);
        if (rc != MPI_SUCCESS) {
            wr_comm wc = {.mpi = MPI_COMM_WORLD, .size = w->size, .name = "world"};
            char what[64];
            snprintf(what, sizeof what, "MPI_Comm_split (making the %s communicator)", name);
            return WR_COMM_MPI_FAIL(&wc, what, rc);
        }
    }
    return comm_wrap(out, m, name, w);
}

static wr_status layout_check(wr_layout layout, int world_size) {
    if (layout.cfg != 1 && layout.cfg != 2)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "--cfg-parallel %d is not supported: use 1 (both guidance passes on each "
                       "rank) or 2 (conditional and unconditional passes on different ranks)",
                       layout.cfg);
    if (layout.cp < 1)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "--cp-size %d is invalid: the context-parallel size must be at least 1",
                       layout.cp);
    if (world_size % (layout.cfg * layout.cp) != 0) {
        const int per = layout.cfg * layout.cp;
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "--cfg-parallel %d x --cp-size %d = %d ranks per replica does not divide "
                       "the %d rank%s of the job; use a world size that is a multiple of %d",
                       layout.cfg, layout.cp, per, world_size, world_size == 1 ? "" : "s", per);
    }
    return WR_OK;
}

/* *shared = 1 when two ranks of the job use the same GPU (the same node name and device
 * index), which NCCL refuses; the same answer on every rank. */
static wr_status shared_device(wr_comm *world, const wr_world *w, int cuda_device, int *shared) {
    typedef struct {
        char host[64];
        int32_t device;
    } where_t;
    *shared = 0;
    if (world->size == 1) return WR_OK;
    where_t mine;
    memset(&mine, 0, sizeof mine);
    snprintf(mine.host, sizeof mine.host, "%s", w->host);
    mine.device = cuda_device;
    where_t *all = calloc((size_t)world->size, sizeof *all);
    if (all == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    wr_status st = wr_comm_allgather(world, all, &mine, sizeof mine, WR_MEM_HOST);
    for (int i = 0; st == WR_OK && i < world->size && !*shared; i++)
        for (int j = i + 1; j < world->size && !*shared; j++)
            *shared = all[i].device == all[j].device &&
                      strncmp(all[i].host, all[j].host, sizeof all[i].host) == 0;
    free(all);
    return st;
}

wr_status wr_groups_create(wr_groups *g, const wr_world *w, wr_layout layout, int cuda_device) {
    WR_ASSERT(g != NULL && w != NULL);
    memset(g, 0, sizeof *g);
    if (mpi_active()) {
        int size = 0;
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        WR_ASSERT(size == w->size); /* w comes from wr_world_init */
    } else {
        WR_ASSERT(w->size == 1 && w->rank == 0);
    }
    WR_TRY(layout_check(layout, w->size));

    const int cfg = layout.cfg, cp = layout.cp, r = w->rank;
    g->layout = layout;
    g->replicas = w->size / (cfg * cp);
    g->replica = r / (cfg * cp);
    g->cfg_rank = (r / cp) % cfg;
    g->cp_rank = r % cp;

    wr_status st = WR_OK;
    MPI_Comm dup = MPI_COMM_NULL;
    if (mpi_active()) {
        /* our own copy of the world: our messages never match the caller's */
        WR_TRY(wr_comm_watch_barrier("MPI_Ibarrier (before making the world communicator)"));
        int rc = MPI_Comm_dup(MPI_COMM_WORLD, &dup);
        if (rc != MPI_SUCCESS) {
            wr_comm wc = {.mpi = MPI_COMM_WORLD, .size = w->size, .name = "world"};
            return WR_COMM_MPI_FAIL(&wc, "MPI_Comm_dup", rc);
        }
    }
    WR_TRY_GOTO(st, comm_wrap(&g->world, dup, "world", w), fail);
    WR_TRY_GOTO(st, comm_split(&g->group, w, g->replica, r, "group"), fail);
    WR_TRY_GOTO(st, comm_split(&g->cp, w, g->replica * cfg + g->cfg_rank, g->cp_rank, "cp"), fail);
    WR_TRY_GOTO(st, comm_split(&g->cfg, w, g->replica * cp + g->cp_rank, g->cfg_rank, "cfg"), fail);

    wr_comm *all[4] = {g->world, g->group, g->cp, g->cfg};
    const char *env = getenv("WR_COMM_STAGED");
    int staged = env != NULL && strcmp(env, "1") == 0;
    if (cuda_device >= 0 && !staged) {
        WR_TRY_GOTO(st, shared_device(g->world, w, cuda_device, &staged), fail);
        if (!WR_HAVE_NCCL) staged = 1;
        if (staged && w->rank == 0)
            wr_info("%s: device collectives go through host memory and MPI",
                    WR_HAVE_NCCL ? "ranks share a GPU (NCCL needs one GPU per rank)"
                                 : "this build has no NCCL");
    }
    if (staged) {
        for (int i = 0; i < 4; i++) all[i]->staged = 1;
    } else if (cuda_device >= 0) {
        /* One at a time, in the same order on every rank, agreed after each: a rank that
         * failed does not leave the others waiting in the next communicator's set-up. */
        for (int i = 0; i < 4; i++) {
            st = wr_comm_agree(g->world, wr_comm_dev_create(all[i], cuda_device));
            if (st != WR_OK) goto fail;
        }
    }
    wr_debug("groups: replica %d of %d, cfg_rank %d of %d, cp_rank %d of %d%s", g->replica,
             g->replicas, g->cfg_rank, cfg, g->cp_rank, cp,
             staged             ? ", device buffers staged through host memory"
             : cuda_device >= 0 ? ", NCCL device communicators"
                                : "");
    return WR_OK;

fail:
    wr_groups_free(g);
    return st;
}

void wr_groups_free(wr_groups *g) {
    if (g == NULL) return;
    comm_free(g->cfg);
    comm_free(g->cp);
    comm_free(g->group);
    comm_free(g->world);
    g->cfg = g->cp = g->group = g->world = NULL;
}

void wr_comm_set_backend(wr_comm *c, wr_backend *be) {
    WR_ASSERT(c != NULL);
    c->be = be;
}

void wr_groups_set_backend(wr_groups *g, wr_backend *be) {
    WR_ASSERT(g != NULL);
    wr_comm *all[4] = {g->world, g->group, g->cp, g->cfg};
    for (int i = 0; i < 4; i++)
        if (all[i]) wr_comm_set_backend(all[i], be);
}

int wr_comm_rank(const wr_comm *c) {
    WR_ASSERT(c != NULL);
    return c->rank;
}

int wr_comm_size(const wr_comm *c) {
    WR_ASSERT(c != NULL);
    return c->size;
}

/* ---- byte counts as MPI (count, datatype) ---- */

typedef struct byte_type {
    MPI_Datatype type;
    int count;
    int owned; /* 1: a derived type to free */
} byte_type;

/* `bytes` as (count, type): MPI_BYTE up to g_max_count, else one derived type holding exactly
 * `bytes` bytes with extent `bytes`, so that rank i's block still starts at i * bytes. */
static wr_status byte_type_make(byte_type *bt, const wr_comm *c, const char *what, size_t bytes) {
    bt->type = MPI_BYTE;
    bt->count = 0;
    bt->owned = 0;
    if (bytes <= g_max_count) {
        bt->count = (int)bytes;
        return WR_OK;
    }
    const size_t q = bytes / g_max_count, rem = bytes % g_max_count;
    if (q > INT_MAX || bytes > (size_t)PTRDIFF_MAX)
        return WR_FAIL(WR_ERR_INVALID_ARG,
                       "%s on the %s communicator: %zu bytes per rank is more than one MPI "
                       "message can describe",
                       what, c->name, bytes);
    MPI_Datatype chunk = MPI_DATATYPE_NULL, body = MPI_DATATYPE_NULL, sized = MPI_DATATYPE_NULL;
    int rc = MPI_Type_contiguous((int)g_max_count, MPI_BYTE, &chunk);
    if (rc == MPI_SUCCESS) {
        int lens[2] = {(int)q, (int)rem};
        MPI_Aint disps[2] = {0, (MPI_Aint)(q * g_max_count)};
        MPI_Datatype types[2] = {chunk, MPI_BYTE};
        rc = MPI_Type_create_struct(rem ? 2 : 1, lens, disps, types, &body);
    }
    if (rc == MPI_SUCCESS) rc = MPI_Type_create_resized(body, 0, (MPI_Aint)bytes, &sized);
    if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&sized);
    if (chunk != MPI_DATATYPE_NULL) MPI_Type_free(&chunk);
    if (body != MPI_DATATYPE_NULL) MPI_Type_free(&body);
    if (rc != MPI_SUCCESS) {
        if (sized != MPI_DATATYPE_NULL) MPI_Type_free(&sized);
        char w2[96];
        snprintf(w2, sizeof w2, "%s (building a %zu-byte datatype)", what, bytes);
        return WR_COMM_MPI_FAIL(c, w2, rc);
    }
    bt->type = sized;
    bt->count = 1;
    bt->owned = 1;
    return WR_OK;
}

static void byte_type_free(byte_type *bt) {
    if (bt->owned) MPI_Type_free(&bt->type);
    bt->owned = 0;
}

static wr_status device_required(const wr_comm *c, const char *what) {
    if (c->dev != NULL) return WR_OK;
    return WR_FAIL(WR_ERR_UNSUPPORTED,
                   "%s of device buffers on the %s communicator (size %d): the groups were made "
                   "without a CUDA device (wr_groups_create cuda_device -1) or this build has no "
                   "NCCL; use host buffers or a CUDA + NCCL build",
                   what, c->name, c->size);
}

/* How c moves device buffers. PATH_STAGED on a staged communicator with a backend: through
 * host copies (stage_in / stage_out, each a synchronous download / upload on the compute
 * stream, so they follow the ops issued before and precede those issued after). PATH_ALIAS on
 * a CPU backend, synchronised here (every op issued so far has run, so the buffers hold their
 * bytes and no op touches them during the transfer): the caller then runs the host path on
 * host_view()s. PATH_NCCL: c->dev, or WR_ERR_UNSUPPORTED when c has no device side. */
enum { PATH_NCCL = 0, PATH_ALIAS = 1, PATH_STAGED = 2 };

static wr_status device_path(wr_comm *c, const char *what, int *host) {
    wr_backend *be = c->be;
    if (c->staged && be != NULL) {
        *host = PATH_STAGED;
        return WR_OK;
    }
    *host = be != NULL && be->kind == WR_BACKEND_CPU ? PATH_ALIAS : PATH_NCCL;
    if (!*host) return device_required(c, what);
    if (be->iface->sync == NULL) return WR_OK;
    wr_status st = be->iface->sync(be);
    if (st != WR_OK)
        wr_error_prefix("%s on the %s communicator: syncing the backend", what, c->name);
    return st;
}

/* The host-addressable view of CPU-backend device memory p (the strict mode's private mapping;
 * the plain mode's p itself). Only after device_path's sync. */
static void *host_view(const wr_comm *c, const void *p) {
    wr_backend *be = c->be;
    if (p == NULL || be->iface->host_alias == NULL) return (void *)p;
    return be->iface->host_alias(be, p);
}

/* A host copy of n bytes for a staged transfer: downloaded from dev when dev is not NULL. */
static wr_status stage_in(wr_comm *c, void **h, const void *dev, size_t n, const char *what) {
    *h = malloc(n ? n : 1);
    if (*h == NULL)
        return WR_FAIL(WR_ERR_OOM_HOST,
                       "%s on the %s communicator: out of host memory staging %zu bytes", what,
                       c->name, n);
    if (dev == NULL || n == 0) return WR_OK;
    const wr_status st = wr_download(c->be, *h, dev, n);
    if (st != WR_OK) {
        free(*h);
        *h = NULL;
        wr_error_prefix("%s on the %s communicator: staging a device buffer", what, c->name);
    }
    return st;
}

static wr_status stage_out(wr_comm *c, void *dev, const void *h, size_t n, const char *what) {
    if (n == 0) return WR_OK;
    const wr_status st = wr_upload(c->be, dev, h, n);
    if (st != WR_OK)
        wr_error_prefix("%s on the %s communicator: the received bytes to the device", what,
                        c->name);
    return st;
}

static void copy_bytes(void *dst, const void *src, size_t bytes) {
    if (bytes > 0 && dst != src) memmove(dst, src, bytes);
}

/* ---- collectives ---- */

static wr_status allgather_host(wr_comm *c, void *recv, const void *send, size_t bytes) {
    if (bytes == 0) return WR_OK; /* the same on every rank: nothing to exchange */
    char *mine = (char *)recv + (size_t)c->rank * bytes;
    if (c->mpi == MPI_COMM_NULL) {
        copy_bytes(mine, send, bytes);
        return WR_OK;
    }
    byte_type bt;
    WR_TRY(byte_type_make(&bt, c, "MPI_Iallgather", bytes));
    const void *sb = send == mine ? MPI_IN_PLACE : send;
    MPI_Request r = MPI_REQUEST_NULL;
    int rc = MPI_Iallgather(sb, bt.count, bt.type, recv, bt.count, bt.type, c->mpi, &r);
    byte_type_free(&bt); /* a pending operation keeps its own reference */
    if (rc != MPI_SUCCESS) return WR_COMM_MPI_FAIL(c, "MPI_Iallgather", rc);
    return wr_comm_watch_wait(c, "MPI_Iallgather", 1, &r, bytes * (size_t)c->size);
}

wr_status wr_comm_allgather(wr_comm *c, void *recv, const void *send, size_t bytes,
                            wr_mem_where where) {
    WR_ASSERT(c != NULL);
    WR_ASSERT(bytes == 0 || (recv != NULL && send != NULL));
    WR_ASSERT(bytes <= SIZE_MAX / (size_t)c->size);
    wr_status st;
    int host = 0;
    if (where == WR_MEM_DEVICE) WR_TRY(device_path(c, "allgather", &host));
    if (host == PATH_STAGED) {
        void *hs = NULL, *hr = NULL;
        st = stage_in(c, &hs, send, bytes, "allgather");
        if (st == WR_OK) st = stage_in(c, &hr, NULL, bytes * (size_t)c->size, "allgather");
        if (st == WR_OK) st = allgather_host(c, hr, hs, bytes);
        if (st == WR_OK) st = stage_out(c, recv, hr, bytes * (size_t)c->size, "allgather");
        free(hs);
        free(hr);
    } else if (host) {
        st = allgather_host(c, host_view(c, recv), host_view(c, send), bytes);
    } else if (where == WR_MEM_DEVICE) {
        st = wr_comm_dev_allgather(c, recv, send, bytes);
    } else {
        st = allgather_host(c, recv, send, bytes);
    }
    if (st == WR_OK) count_sent((uint64_t)bytes * (uint64_t)(c->size - 1));
    return st;
}

static wr_status alltoall_host(wr_comm *c, void *recv, const void *send, size_t bytes) {
    if (c->mpi == MPI_COMM_NULL) {
        copy_bytes(recv, send, bytes);
        return WR_OK;
    }
    byte_type bt;
    WR_TRY(byte_type_make(&bt, c, "MPI_Ialltoall", bytes));
    MPI_Request r = MPI_REQUEST_NULL;
    int rc = MPI_Ialltoall(send, bt.count, bt.type, recv, bt.count, bt.type, c->mpi, &r);
    byte_type_free(&bt);
    if (rc != MPI_SUCCESS) return WR_COMM_MPI_FAIL(c, "MPI_Ialltoall", rc);
    return wr_comm_watch_wait(c, "MPI_Ialltoall", 1, &r, bytes * (size_t)c->size);
}

wr_status wr_comm_alltoall(wr_comm *c, void *recv, const void *send, size_t bytes,
                           wr_mem_where where) {
    WR_ASSERT(c != NULL);
    WR_ASSERT(bytes == 0 || (recv != NULL && send != NULL && recv != send));
    WR_ASSERT(bytes <= SIZE_MAX / (size_t)c->size);
    wr_status st;
    int host = 0;
    if (where == WR_MEM_DEVICE) WR_TRY(device_path(c, "alltoall", &host));
    if (host == PATH_STAGED) {
        void *hs = NULL, *hr = NULL;
        const size_t all = bytes * (size_t)c->size;
        st = stage_in(c, &hs, send, all, "alltoall");
        if (st == WR_OK) st = stage_in(c, &hr, NULL, all, "alltoall");
        if (st == WR_OK) st = alltoall_host(c, hr, hs, bytes);
        if (st == WR_OK) st = stage_out(c, recv, hr, all, "alltoall");
        free(hs);
        free(hr);
    } else if (host) {
        st = alltoall_host(c, host_view(c, recv), host_view(c, send), bytes);
    } else if (where == WR_MEM_DEVICE) {
        st = wr_comm_dev_alltoall(c, recv, send, bytes);
    } else {
        st = alltoall_host(c, recv, send, bytes);
    }
    if (st == WR_OK) count_sent((uint64_t)bytes * (uint64_t)(c->size - 1));
    return st;
}

/* The three all-to-alls posted together, then waited for together. */
static wr_status alltoall3_host(wr_comm *c, void *const recv[3], const void *const send[3],
                                size_t bytes) {
    if (c->mpi == MPI_COMM_NULL) {
        for (int k = 0; k < 3; k++) copy_bytes(recv[k], send[k], bytes);
        return WR_OK;
    }
    byte_type bt;
    WR_TRY(byte_type_make(&bt, c, "MPI_Ialltoall (x3)", bytes));
    MPI_Request r[3] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    int rc = MPI_SUCCESS, k = 0;
    for (; k < 3 && rc == MPI_SUCCESS; k++)
        rc = MPI_Ialltoall(send[k], bt.count, bt.type, recv[k], bt.count, bt.type, c->mpi, &r[k]);
    byte_type_free(&bt);
    if (rc != MPI_SUCCESS) {
        /* the ones posted before must still complete: every rank posted them too (the failed
         * post is this rank's alone, and is reported) */
        wr_status st = WR_COMM_MPI_FAIL(c, "MPI_Ialltoall (x3)", rc);
        if (k > 1) (void)wr_comm_watch_wait(c, "MPI_Ialltoall (x3)", k - 1, r, 0);
        return st;
    }
    return wr_comm_watch_wait(c, "MPI_Ialltoall (x3)", 3, r, 3 * bytes * (size_t)c->size);
}

wr_status wr_comm_alltoall3(wr_comm *c, void *const recv[3], const void *const send[3],
                            size_t bytes, wr_mem_where where) {
    WR_ASSERT(c != NULL && recv != NULL && send != NULL);
    WR_ASSERT(bytes <= SIZE_MAX / 3 / (size_t)c->size);
    for (int k = 0; k < 3; k++)
        WR_ASSERT(bytes == 0 || (recv[k] != NULL && send[k] != NULL && recv[k] != send[k]));
    if (bytes == 0) return WR_OK;
    wr_status st;
    int host = 0;
    if (where == WR_MEM_DEVICE) WR_TRY(device_path(c, "alltoall (x3)", &host));
    if (host == PATH_STAGED) {
        void *hs[3] = {NULL, NULL, NULL}, *hr[3] = {NULL, NULL, NULL};
        const size_t all = bytes * (size_t)c->size;
        st = WR_OK;
        for (int k = 0; st == WR_OK && k < 3; k++) {
            st = stage_in(c, &hs[k], send[k], all, "alltoall (x3)");
            if (st == WR_OK) st = stage_in(c, &hr[k], NULL, all, "alltoall (x3)");
        }
        if (st == WR_OK) st = alltoall3_host(c, hr, (const void *const *)hs, bytes);
        for (int k = 0; st == WR_OK && k < 3; k++)
            st = stage_out(c, recv[k], hr[k], all, "alltoall (x3)");
        for (int k = 0; k < 3; k++) free(hs[k]), free(hr[k]);
    } else if (host) {
        void *hr[3];
        const void *hs[3];
        for (int k = 0; k < 3; k++) hr[k] = host_view(c, recv[k]), hs[k] = host_view(c, send[k]);
        st = alltoall3_host(c, hr, hs, bytes);
    } else if (where == WR_MEM_DEVICE) {
        st = wr_comm_dev_alltoall_n(c, 3, recv, send, bytes);
    } else {
        st = alltoall3_host(c, recv, send, bytes);
    }
    if (st == WR_OK) count_sent(3 * (uint64_t)bytes * (uint64_t)(c->size - 1));
    return st;
}

wr_status wr_comm_bcast(wr_comm *c, void *buf, size_t bytes, int root, wr_mem_where where) {
    WR_ASSERT(c != NULL);
    WR_ASSERT(root >= 0 && root < c->size);
    WR_ASSERT(bytes == 0 || buf != NULL);
    wr_status st = WR_OK;
    int host = 0;
    if (where == WR_MEM_DEVICE) WR_TRY(device_path(c, "bcast", &host));
    void *dev = buf, *staged = NULL;
    if (host == PATH_STAGED) {
        WR_TRY(stage_in(c, &staged, c->rank == root ? buf : NULL, bytes, "bcast"));
        buf = staged;
    } else if (host) {
        buf = host_view(c, buf);
    }
    if (where == WR_MEM_DEVICE && !host) {
        st = wr_comm_dev_bcast(c, buf, bytes, root);
    } else if (c->mpi != MPI_COMM_NULL) {
        byte_type bt;
        st = byte_type_make(&bt, c, "MPI_Ibcast", bytes);
        if (st == WR_OK) {
            MPI_Request r = MPI_REQUEST_NULL;
            int rc = MPI_Ibcast(buf, bt.count, bt.type, root, c->mpi, &r);
            byte_type_free(&bt);
            if (rc != MPI_SUCCESS)
                st = WR_COMM_MPI_FAIL(c, "MPI_Ibcast", rc);
            else
                st = wr_comm_watch_wait(c, "MPI_Ibcast", 1, &r, bytes);
        }
    }
    if (staged) {
        if (st == WR_OK && c->rank != root) st = stage_out(c, dev, staged, bytes, "bcast");
        free(staged);
    }
    if (st == WR_OK && c->rank == root) count_sent((uint64_t)bytes * (uint64_t)(c->size - 1));
    return st;
}

static MPI_Op mpi_op(wr_reduce_op op) {
    switch (op) {
    case WR_REDUCE_SUM:
        return MPI_SUM;
    case WR_REDUCE_MAX:
        return MPI_MAX;
    case WR_REDUCE_MIN:
        return MPI_MIN;
    }
    WR_ASSERT(!"unknown wr_reduce_op");
    return MPI_OP_NULL;
}

/* In place, in chunks of at most g_max_count elements (elementwise, so chunking is exact). */
static wr_status allreduce_host(wr_comm *c, void *buf, size_t n, size_t elem, MPI_Datatype t,
                                wr_reduce_op op, const char *what) {
    MPI_Op mop = mpi_op(op);
    if (c->mpi == MPI_COMM_NULL) return WR_OK;
    for (size_t off = 0; off < n;) {
        size_t k = n - off < g_max_count ? n - off : g_max_count;
        MPI_Request r = MPI_REQUEST_NULL;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + off * elem, (int)k, t, mop, c->mpi, &r);
        if (rc != MPI_SUCCESS) return WR_COMM_MPI_FAIL(c, what, rc);
        WR_TRY(wr_comm_watch_wait(c, what, 1, &r, k * elem));
        off += k;
    }
    return WR_OK;
}

/* What a ring allreduce sends per rank: reduce-scatter plus all-gather, each (size-1)/size of
 * the buffer. */
static uint64_t ring_allreduce_bytes(const wr_comm *c, size_t nbytes) {
    return 2u * (uint64_t)nbytes * (uint64_t)(c->size - 1) / (uint64_t)c->size;
}

wr_status wr_comm_allreduce_f32(wr_comm *c, float *buf, size_t n, wr_reduce_op op,
                                wr_mem_where where) {
    WR_ASSERT(c != NULL);
    WR_ASSERT(n == 0 || buf != NULL);
    wr_status st;
    int host = 0;
    if (where == WR_MEM_DEVICE) WR_TRY(device_path(c, "allreduce", &host));
    float *dev = buf;
    void *staged = NULL;
    if (host == PATH_STAGED) {
        WR_TRY(stage_in(c, &staged, buf, n * sizeof(float), "allreduce"));
        buf = staged;
    } else if (host) {
        buf = host_view(c, buf);
    }
    if (where == WR_MEM_DEVICE && !host) {
        st = wr_comm_dev_allreduce_f32(c, buf, n, op);
    } else {
        st = allreduce_host(c, buf, n, sizeof(float), MPI_FLOAT, op, "MPI_Iallreduce (f32)");
    }
    if (staged) {
        if (st == WR_OK) st = stage_out(c, dev, staged, n * sizeof(float), "allreduce");
        free(staged);
    }
    if (st == WR_OK) count_sent(ring_allreduce_bytes(c, n * sizeof(float)));
    return st;
}

wr_status wr_comm_allreduce_i64(wr_comm *c, int64_t *buf, size_t n, wr_reduce_op op) {
    WR_ASSERT(c != NULL);
    WR_ASSERT(n == 0 || buf != NULL);
    wr_status st =
        allreduce_host(c, buf, n, sizeof(int64_t), MPI_INT64_T, op, "MPI_Iallreduce (i64)");
    if (st == WR_OK) count_sent(ring_allreduce_bytes(c, n * sizeof(int64_t)));
    return st;
}

/* ---- point-to-point ---- */

struct wr_comm_req {
    wr_comm *c;     /* borrowed: must outlive the request */
    wr_backend *be; /* c's backend when the buffers are device memory (borrowed), else NULL */
    int dev;        /* 1: an NCCL isendrecv on c's own stream (wr_comm_dev_wait) */
    int n;          /* active MPI requests (0: completed already) */
    size_t bytes;
    MPI_Request r[2];
    void *hs, *hr;  /* staged: the host copies MPI moves (owned) */
    void *dev_recv; /* staged: where hr goes at the wait */
};

static void sendrecv_check(const wr_comm *c, const void *send, int dst, const void *recv, int src,
                           size_t bytes) {
    WR_ASSERT(c != NULL);
    WR_ASSERT(dst >= 0 && dst < c->size && src >= 0 && src < c->size);
    WR_ASSERT(bytes == 0 || (send != NULL && recv != NULL && send != recv));
}

/* Posts the receive, then the send (so the matching send never has to be buffered). */
static wr_status post_sendrecv(wr_comm *c, const void *send, int dst, void *recv, int src,
                               size_t bytes, MPI_Request r[2]) {
    r[0] = r[1] = MPI_REQUEST_NULL;
    byte_type bt;
    WR_TRY(byte_type_make(&bt, c, "MPI_Isend/MPI_Irecv", bytes));
    wr_status st = WR_OK;
    int rc = MPI_Irecv(recv, bt.count, bt.type, src, WR_COMM_TAG, c->mpi, &r[0]);
    if (rc != MPI_SUCCESS) {
        st = WR_COMM_MPI_FAIL(c, "MPI_Irecv", rc);
    } else {
        rc = MPI_Isend(send, bt.count, bt.type, dst, WR_COMM_TAG, c->mpi, &r[1]);
        if (rc != MPI_SUCCESS) {
            st = WR_COMM_MPI_FAIL(c, "MPI_Isend", rc);
            MPI_Cancel(&r[0]);
            MPI_Wait(&r[0], MPI_STATUS_IGNORE);
        }
    }
    byte_type_free(&bt); /* pending operations keep their own reference */
    return st;
}

wr_status wr_comm_sendrecv(wr_comm *c, const void *send, int dst, void *recv, int src, size_t bytes,
                           wr_mem_where where) {
    sendrecv_check(c, send, dst, recv, src, bytes);
    wr_status st = WR_OK;
    int host = 0;
    if (where == WR_MEM_DEVICE) WR_TRY(device_path(c, "sendrecv", &host));
    void *hs = NULL, *hr = NULL, *dev_recv = recv;
    if (host == PATH_STAGED) {
        WR_TRY(stage_in(c, &hs, send, bytes, "sendrecv"));
        st = stage_in(c, &hr, NULL, bytes, "sendrecv");
        if (st != WR_OK) {
            free(hs);
            return st;
        }
        send = hs, recv = hr;
    } else if (host) {
        send = host_view(c, send), recv = host_view(c, recv);
    }
    if (where == WR_MEM_DEVICE && !host) {
        st = wr_comm_dev_sendrecv(c, send, dst, recv, src, bytes);
    } else if (c->mpi == MPI_COMM_NULL) {
        copy_bytes(recv, send, bytes); /* size 1: dst == src == 0 */
    } else {
        MPI_Request r[2];
        st = post_sendrecv(c, send, dst, recv, src, bytes, r);
        if (st == WR_OK) st = wr_comm_watch_wait(c, "MPI_Isend/MPI_Irecv (sendrecv)", 2, r, bytes);
    }
    if (hr) {
        if (st == WR_OK) st = stage_out(c, dev_recv, hr, bytes, "sendrecv");
        free(hs);
        free(hr);
    }
    if (st == WR_OK && dst != c->rank) count_sent(bytes);
    return st;
}

wr_status wr_comm_isendrecv(wr_comm *c, const void *send, int dst, void *recv, int src,
                            size_t bytes, wr_mem_where where, wr_comm_req **req) {
    sendrecv_check(c, send, dst, recv, src, bytes);
    WR_ASSERT(req != NULL);
    *req = NULL;
    wr_comm_req *q = calloc(1, sizeof *q);
    if (q == NULL)
        return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for a request on the %s communicator",
                       c->name);
    q->c = c;
    q->r[0] = q->r[1] = MPI_REQUEST_NULL;
    wr_status st = WR_OK;
    int host = 0;
    if (where == WR_MEM_DEVICE) {
        q->be = c->be;
        st = device_path(c, "isendrecv", &host);
        if (st == WR_OK && !host) { /* NCCL, on c's own stream: completed by wr_comm_wait */
            st = wr_comm_dev_isendrecv(c, send, dst, recv, src, bytes);
            q->dev = st == WR_OK;
            if (st == WR_OK && dst != c->rank) count_sent(bytes);
        }
        if (st != WR_OK || !host) {
            if (st != WR_OK) free(q);
            *req = st == WR_OK ? q : NULL;
            return st;
        }
        if (host == PATH_STAGED) { /* host copies; the received one is uploaded at the wait */
            st = stage_in(c, &q->hs, send, bytes, "isendrecv");
            if (st == WR_OK) st = stage_in(c, &q->hr, NULL, bytes, "isendrecv");
            if (st != WR_OK) {
                free(q->hs);
                free(q);
                return st;
            }
            q->dev_recv = recv;
            send = q->hs, recv = q->hr;
        } else {
            /* a CPU backend, synchronised: MPI on the host views (ops issued from now on may
             * run beside the transfer; they must not touch the two buffers until the wait) */
            send = host_view(c, send), recv = host_view(c, recv);
        }
    }
    if (c->mpi == MPI_COMM_NULL) { /* size 1: dst == src == 0, a copy */
        copy_bytes(recv, send, bytes);
        q->bytes = bytes;
        *req = q;
        return WR_OK;
    }
    st = post_sendrecv(c, send, dst, recv, src, bytes, q->r);
    if (st != WR_OK) {
        free(q->hs);
        free(q->hr);
        free(q);
        return st;
    }
    q->n = 2;
    q->bytes = bytes;
    if (dst != c->rank) count_sent(bytes);
    *req = q;
    return WR_OK;
}

wr_status wr_comm_wait(wr_comm_req *req) {
    if (req == NULL) return WR_OK;
    wr_status st = WR_OK;
    if (req->dev) {
        st = wr_comm_dev_wait(req->c);
    } else if (req->n > 0) {
        /* on a CPU backend nothing more is needed: the host views are the memory the ops
         * issued after the wait read */
        st = wr_comm_watch_wait(req->c, "MPI_Isend/MPI_Irecv (isendrecv)", req->n, req->r,
                                req->bytes);
    }
    if (req->hr && st == WR_OK)
        st = stage_out(req->c, req->dev_recv, req->hr, req->bytes, "isendrecv");
    free(req->hs);
    free(req->hr);
    free(req);
    return st;
}

wr_status wr_comm_barrier(wr_comm *c) {
    WR_ASSERT(c != NULL);
    if (c->mpi == MPI_COMM_NULL) return WR_OK;
    MPI_Request r = MPI_REQUEST_NULL;
    int rc = MPI_Ibarrier(c->mpi, &r);
    if (rc != MPI_SUCCESS) return WR_COMM_MPI_FAIL(c, "MPI_Ibarrier", rc);
    return wr_comm_watch_wait(c, "MPI_Ibarrier", 1, &r, 0);
}

/* ---- agreement ---- */

/* What the lowest failing rank broadcasts: its status, world rank, error position and detail
 * (wr_error_detail is at most 1023 bytes). */
typedef struct agree_msg {
    int32_t code;
    int32_t world_rank;
    char where[256];
    char detail[1024];
} agree_msg;

/* 1 when `detail` starts with "rank <digits>: ", i.e. it was agreed before (possibly over a
 * sub-communicator, or re-agreed by ranks that all carry the agreed failure). */
static int names_a_rank(const char *detail) {
    if (strncmp(detail, "rank ", 5) != 0) return 0;
    const char *p = detail + 5;
    if (*p < '0' || *p > '9') return 0;
    while (*p >= '0' && *p <= '9') p++;
    return p[0] == ':' && p[1] == ' ';
}

/* Installs the agreed error as this thread's detail: "rank R: <detail>" in a job of more than
 * one process (a single process needs no rank), not prefixed again when the detail already
 * names a rank (an error agreed over a sub-communicator, then over the world; or ranks that
 * all pass on the agreed failure). The position is kept, so `--verbose` shows the same
 * "failed at" on every rank. */
static wr_status agree_install(const wr_comm *c, agree_msg *m) {
    wr_status code =
        m->code > WR_OK && m->code < WR_STATUS_COUNT ? (wr_status)m->code : WR_ERR_INTERNAL;
    m->where[sizeof m->where - 1] = '\0';
    m->detail[sizeof m->detail - 1] = '\0';
    char prefix[32] = "";
    if (c->world_size > 1 && !names_a_rank(m->detail))
        snprintf(prefix, sizeof prefix, "rank %d: ", (int)m->world_rank);
    const char *detail = m->detail[0] ? m->detail : "(no detail recorded)";
    char *colon = strrchr(m->where, ':');
    if (colon != NULL && colon != m->where) {
        *colon = '\0';
        return wr_fail_at(m->where, atoi(colon + 1), code, "%s%s", prefix, detail);
    }
    return wr_fail(code, "%s%s", prefix, detail);
}

wr_status wr_comm_agree(wr_comm *c, wr_status st) {
    WR_ASSERT(c != NULL);
    if (c->mpi == MPI_COMM_NULL) return st; /* the only rank: its own status and detail */
    int mine = st == WR_OK ? c->size : c->rank, lowest = c->size;
    const char *what = "MPI_Iallreduce (agreeing on a status)";
    MPI_Request r = MPI_REQUEST_NULL;
    int rc = MPI_Iallreduce(&mine, &lowest, 1, MPI_INT, MPI_MIN, c->mpi, &r);
    if (rc != MPI_SUCCESS) return WR_COMM_MPI_FAIL(c, what, rc);
    WR_TRY(wr_comm_watch_wait(c, what, 1, &r, sizeof mine));
    if (lowest == c->size) return WR_OK;

    agree_msg m;
    memset(&m, 0, sizeof m);
    if (c->rank == lowest) {
        m.code = (int32_t)st;
        m.world_rank = c->world_rank;
        snprintf(m.where, sizeof m.where, "%s", wr_error_where());
        snprintf(m.detail, sizeof m.detail, "%s", wr_error_detail());
    }
    what = "MPI_Ibcast (the agreed error)";
    rc = MPI_Ibcast(&m, (int)sizeof m, MPI_BYTE, lowest, c->mpi, &r);
    if (rc != MPI_SUCCESS) return WR_COMM_MPI_FAIL(c, what, rc);
    WR_TRY(wr_comm_watch_wait(c, what, 1, &r, sizeof m));
    return agree_install(c, &m);
}

/* ---- the shared counter ---- */

struct wr_counter {
    wr_comm *c;
    MPI_Win win; /* MPI_WIN_NULL: size 1, `local` */
    int64_t *base;
    int64_t local;
};

wr_status wr_counter_create(wr_counter **out, wr_comm *c) {
    *out = NULL;
    wr_counter *k = calloc(1, sizeof *k);
    if (k == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    k->c = c;
    k->win = MPI_WIN_NULL;
    if (c != NULL && c->mpi != MPI_COMM_NULL) {
        const MPI_Aint sz = c->rank == 0 ? (MPI_Aint)sizeof(int64_t) : 0;
        int rc =
            MPI_Win_allocate(sz, (int)sizeof(int64_t), MPI_INFO_NULL, c->mpi, &k->base, &k->win);
        if (rc != MPI_SUCCESS) {
            free(k);
            return WR_COMM_MPI_FAIL(c, "MPI_Win_allocate (the shared counter)", rc);
        }
        MPI_Win_set_errhandler(k->win, MPI_ERRORS_RETURN); /* a window's default is fatal */
        if (c->rank == 0) {
            MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, k->win);
            *k->base = 0;
            MPI_Win_unlock(0, k->win);
        }
        const wr_status st = wr_comm_barrier(c); /* set to 0 before anyone takes a number */
        if (st != WR_OK) {
            MPI_Win_free(&k->win);
            free(k);
            return st;
        }
    }
    *out = k;
    return WR_OK;
}

wr_status wr_counter_next(wr_counter *k, int64_t *value) {
    if (k->win == MPI_WIN_NULL) {
        *value = k->local++;
        return WR_OK;
    }
    const int64_t one = 1;
    int rc = MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, k->win);
    if (rc == MPI_SUCCESS) {
        rc = MPI_Fetch_and_op(&one, value, MPI_INT64_T, 0, 0, MPI_SUM, k->win);
        const int rc2 = MPI_Win_unlock(0, k->win);
        if (rc == MPI_SUCCESS) rc = rc2;
    }
    if (rc != MPI_SUCCESS)
        return WR_COMM_MPI_FAIL(k->c, "MPI_Fetch_and_op (the shared counter)", rc);
    return WR_OK;
}

void wr_counter_free(wr_counter *k) {
    if (k == NULL) return;
    if (k->win != MPI_WIN_NULL) MPI_Win_free(&k->win);
    free(k);
}

/*
 * comm_fail.c — failure handling of the distributed layer, as whole jobs (run by
 * tests/comm_fail.sh, which checks exit codes, timing and output):
 *
 *   comm_fail kill    (mpiexec -n 2) rank 1 does a few allreduces, then raises SIGKILL while
 *                     rank 0 waits in the next allreduce: the job must end with a non-zero exit
 *                     (the launcher notices the dead rank and ends the others), not hang.
 *   comm_fail agree   (mpiexec -n 2) rank 1 fails to open a file that does not exist; both ranks
 *                     agree with wr_comm_agree, print "[rank R] agreed: STATUS: DETAIL" on
 *                     stderr and exit with 10 + the status code, so every rank reports the same.
 *   comm_fail local   (no launcher) the single-process world: no MPI is initialised and every
 *                     communicator is a local copy; prints the failed checks, exits 0 or 1.
 *
 * Not a Check program: it starts MPI itself through wr_world_init (the harness would do it
 * instead), so this is also the test of that path.
 */
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/safetensors.h"
#include "core/status.h"
#include "parallel/comm.h"

static int failures;

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "comm_fail.c:%d: check failed: %s: ", __LINE__, #cond);                \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int run_kill(wr_world *w, wr_groups *g) {
    float x[256];
    for (int it = 0; it < 5; it++) {
        for (int i = 0; i < 256; i++) x[i] = (float)(w->rank + i);
        wr_status st = wr_comm_allreduce_f32(g->world, x, 256, WR_REDUCE_SUM, WR_MEM_HOST);
        if (st != WR_OK) {
            fprintf(stderr, "[rank %d] allreduce %d: %s: %s\n", w->rank, it, wr_status_name(st),
                    wr_error_detail());
            wr_world_abort(w, 5);
        }
    }
    if (w->rank == 1) {
        sleep_ms(300); /* let rank 0 enter the next allreduce first */
        fprintf(stderr, "[rank 1] raising SIGKILL\n");
        fflush(stderr);
        raise(SIGKILL);
    }
    fprintf(stderr, "[rank %d] waiting in an allreduce that rank 1 never joins\n", w->rank);
    for (;;) {
        wr_status st = wr_comm_allreduce_f32(g->world, x, 256, WR_REDUCE_SUM, WR_MEM_HOST);
        if (st != WR_OK) {
            /* an MPI that reports the dead peer: end the job with the error */
            fprintf(stderr, "[rank %d] %s: %s\n", w->rank, wr_status_name(st), wr_error_detail());
            wr_world_abort(w, 5);
        }
    }
}

static int run_agree(wr_world *w, wr_groups *g) {
    wr_status st = WR_OK;
    if (w->rank == 1) {
        wr_st_file *f = NULL;
        st = wr_st_open(&f, "/nonexistent/wanrun-comm-fail/model.safetensors");
        wr_st_close(f);
    }
    st = wr_comm_agree(g->world, st);
    fprintf(stderr, "[rank %d] agreed: %s: %s\n", w->rank, wr_status_name(st),
            st == WR_OK ? "" : wr_error_detail());
    return st == WR_OK ? 0 : 10 + (int)st;
}

/* ---- the single-process world ---- */

static void fill(unsigned char *p, size_t n, int seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)((seed * 131 + (int)i * 7) % 251);
}

static int run_local(wr_world *w) {
    int up = 1;
    MPI_Initialized(&up);
    EXPECT(!up && w->mpi == 0, "MPI must not start without a launcher (initialised %d)", up);
    EXPECT(w->rank == 0 && w->size == 1 && w->local_rank == 0 && w->local_size == 1,
           "rank %d/%d local %d/%d", w->rank, w->size, w->local_rank, w->local_size);

    wr_groups g;
    wr_status st = wr_groups_create(&g, w, (wr_layout){.cfg = 2, .cp = 1}, -1);
    EXPECT(st == WR_ERR_INVALID_ARG && strstr(wr_error_detail(), "the 1 rank of the job"),
           "2x1 on one process: %s: %s", wr_status_name(st), wr_error_detail());
    st = wr_groups_create(&g, w, (wr_layout){.cfg = 1, .cp = 1}, -1);
    EXPECT(st == WR_OK, "groups: %s", wr_error_detail());
    if (st != WR_OK) return 1;
    wr_comm *all[4] = {g.world, g.group, g.cp, g.cfg};
    for (int i = 0; i < 4; i++)
        EXPECT(wr_comm_size(all[i]) == 1 && wr_comm_rank(all[i]) == 0, "comm %d", i);
    EXPECT(g.replicas == 1 && g.replica == 0 && g.cfg_rank == 0 && g.cp_rank == 0, "ranks");

    enum { N = 101 };
    unsigned char a[N], b[N], want[N];
    fill(a, N, 1);
    memcpy(want, a, N);
    wr_comm_bytes_reset();
    memset(b, 0, N);
    EXPECT(wr_comm_allgather(g.world, b, a, N, WR_MEM_HOST) == WR_OK && !memcmp(b, want, N),
           "allgather copies");
    EXPECT(wr_comm_allgather(g.world, b, b, N, WR_MEM_HOST) == WR_OK && !memcmp(b, want, N),
           "allgather in place");
    memset(b, 0, N);
    EXPECT(wr_comm_alltoall(g.cp, b, a, N, WR_MEM_HOST) == WR_OK && !memcmp(b, want, N),
           "alltoall copies");
    EXPECT(wr_comm_bcast(g.cfg, a, N, 0, WR_MEM_HOST) == WR_OK && !memcmp(a, want, N), "bcast");
    float f[3] = {1, -2, 3};
    int64_t v[2] = {INT64_C(1) << 40, -5};
    EXPECT(wr_comm_allreduce_f32(g.group, f, 3, WR_REDUCE_SUM, WR_MEM_HOST) == WR_OK && f[0] == 1 &&
               f[1] == -2 && f[2] == 3,
           "allreduce f32 is the identity");
    EXPECT(wr_comm_allreduce_i64(g.group, v, 2, WR_REDUCE_MAX) == WR_OK &&
               v[0] == (INT64_C(1) << 40) && v[1] == -5,
           "allreduce i64 is the identity");
    memset(b, 0, N);
    EXPECT(wr_comm_sendrecv(g.world, a, 0, b, 0, N, WR_MEM_HOST) == WR_OK && !memcmp(b, want, N),
           "sendrecv to self copies");
    wr_comm_req *req = NULL;
    memset(b, 0, N);
    EXPECT(wr_comm_isendrecv(g.world, a, 0, b, 0, N, WR_MEM_HOST, &req) == WR_OK &&
               wr_comm_wait(req) == WR_OK && !memcmp(b, want, N),
           "isendrecv to self copies");
    EXPECT(wr_comm_barrier(g.world) == WR_OK, "barrier");
    EXPECT(wr_comm_bytes_sent() == 0, "a single process sends nothing (%llu counted)",
           (unsigned long long)wr_comm_bytes_sent());

    wr_error_clear();
    EXPECT(wr_comm_agree(g.world, WR_OK) == WR_OK, "agree on OK");
    st = WR_FAIL(WR_ERR_IO, "x.bin: read failed");
    st = wr_comm_agree(g.world, st);
    EXPECT(st == WR_ERR_IO && strcmp(wr_error_detail(), "x.bin: read failed") == 0,
           "one process keeps its own error, unprefixed: %s", wr_error_detail());

    st = wr_comm_allgather(g.world, b, a, N, WR_MEM_DEVICE);
    EXPECT(st == WR_ERR_UNSUPPORTED, "device buffers on host-only groups: %s", wr_status_name(st));
    wr_groups_free(&g);
    wr_groups_free(&g); /* twice: the pointers were cleared */

    /* device communicators without a GPU (or without NCCL) fail cleanly */
    st = wr_groups_create(&g, w, (wr_layout){.cfg = 1, .cp = 1}, 0);
    if (st == WR_OK) {
        fprintf(stderr, "local: this machine has a GPU; device groups created\n");
        wr_groups_free(&g);
    } else {
        EXPECT(g.world == NULL, "no communicators after a failed create");
        fprintf(stderr, "local: device groups: %s: %s\n", wr_status_name(st), wr_error_detail());
    }
    return failures ? 1 : 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "kill") != 0 && strcmp(mode, "agree") != 0 && strcmp(mode, "local") != 0) {
        fprintf(stderr, "usage: comm_fail kill|agree|local\n");
        return 2;
    }
    wr_world w;
    wr_status st = wr_world_init(&w, &argc, &argv);
    if (st != WR_OK) {
        fprintf(stderr, "wr_world_init: %s: %s\n", wr_status_name(st), wr_error_detail());
        return 1;
    }
    int code;
    if (strcmp(mode, "local") == 0) {
        code = run_local(&w);
        if (code == 0) fprintf(stderr, "local: all checks passed\n");
    } else {
        if (!w.mpi || w.size != 2) {
            fprintf(stderr, "comm_fail %s: run it with mpiexec -n 2 (mpi %d, size %d)\n", mode,
                    w.mpi, w.size);
            wr_world_finalize(&w);
            return 2;
        }
        wr_groups g;
        st = wr_groups_create(&g, &w, (wr_layout){.cfg = 1, .cp = 1}, -1);
        if (st != WR_OK) {
            fprintf(stderr, "[rank %d] groups: %s\n", w.rank, wr_error_detail());
            wr_world_abort(&w, 1);
        }
        code = strcmp(mode, "kill") == 0 ? run_kill(&w, &g) : run_agree(&w, &g);
        wr_groups_free(&g);
    }
    wr_world_finalize(&w);
    return code;
}

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
 *   comm_fail stop    (mpiexec -n 2, WR_COMM_TIMEOUT_S small) rank 1 prints its pid and stops
 *                     itself with SIGSTOP while rank 0 waits in wr_comm_agree on the group: the
 *                     heartbeat falls silent, and rank 0 must end the job (exit 5) with a
 *                     message naming rank 1 instead of waiting forever.
 *   comm_fail busy    (mpiexec -n 2, WR_COMM_TIMEOUT_S small) rank 1 sleeps, then computes, for
 *                     longer than the timeout each, before joining an allreduce and an agreement
 *                     (as a writer encoding or decoding does): a busy rank is alive, so the job
 *                     must end normally (exit 0) with the right sums. Rank 0 prints the CPU time
 *                     its waits took (information, not checked). With WR_TEST_BUSY_S set,
 *                     rank 1 is busy that long instead (the ranks' timeouts may then differ).
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
#include <unistd.h>

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

/* The timeout the test runs with (comm_fail.sh sets it). */
static double test_timeout(void) {
    const char *s = getenv("WR_COMM_TIMEOUT_S");
    double t = s ? atof(s) : 0;
    if (!(t > 0) || t > 60) {
        fprintf(stderr, "comm_fail: set WR_COMM_TIMEOUT_S to a few seconds (got '%s')\n",
                s ? s : "");
        exit(2);
    }
    return t;
}

static int run_stop(wr_world *w, wr_groups *g) {
    (void)test_timeout();
    float x[64];
    for (int it = 0; it < 3; it++) {
        for (int i = 0; i < 64; i++) x[i] = (float)(w->rank + i);
        wr_status st = wr_comm_allreduce_f32(g->world, x, 64, WR_REDUCE_SUM, WR_MEM_HOST);
        if (st != WR_OK) {
            fprintf(stderr, "[rank %d] allreduce %d: %s\n", w->rank, it, wr_error_detail());
            wr_world_abort(w, 1);
        }
    }
    if (w->rank == 1) {
        sleep_ms(200); /* let rank 0 enter the agreement first (either order must work) */
        fprintf(stderr, "[rank 1] stopping itself (SIGSTOP)\n");
        fflush(stderr);
        raise(SIGSTOP);
        /* continued: only comm_fail.sh's clean-up does that, after the job should have ended */
        fprintf(stderr, "[rank 1] continued\n");
    } else {
        fprintf(stderr, "[rank 0] waiting in wr_comm_agree for rank 1\n");
    }
    wr_status st = wr_comm_agree(g->group, WR_OK);
    fprintf(stderr, "[rank %d] wr_comm_agree returned %s: the stopped rank was not detected\n",
            w->rank, wr_status_name(st));
    return 1;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Rank 1 is busy for 2.5 x the timeout before each call; rank 0 waits in it. */
static int run_busy(wr_world *w, wr_groups *g) {
    /* WR_TEST_BUSY_S: for ranks started with different timeouts (comm_fail.sh busy-mixed) */
    const char *b = getenv("WR_TEST_BUSY_S");
    const double busy = b ? atof(b) : 2.5 * test_timeout();
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = (float)(w->rank * 100 + i);
    double c0 = cpu_s(), t0 = wall_s();
    if (w->rank == 1) {
        fprintf(stderr, "[rank 1] sleeping %.1f s before the allreduce\n", busy);
        sleep_ms((long)(busy * 1000));
    }
    wr_status st = wr_comm_allreduce_f32(g->world, x, 64, WR_REDUCE_SUM, WR_MEM_HOST);
    EXPECT(st == WR_OK, "allreduce after a sleeping rank: %s", wr_error_detail());
    for (int i = 0; i < 64; i++) EXPECT(x[i] == (float)(100 + 2 * i), "sum %d: %g", i, x[i]);
    if (w->rank == 0)
        fprintf(stderr, "[rank 0] waited %.1f s in the allreduce using %.3f s of CPU\n",
                wall_s() - t0, cpu_s() - c0);

    c0 = cpu_s(), t0 = wall_s();
    if (w->rank == 1) {
        fprintf(stderr, "[rank 1] computing %.1f s before the agreement\n", busy);
        volatile double acc = 0;
        while (wall_s() - t0 < busy)
            for (int i = 0; i < 100000; i++) acc += 1e-9 * i;
    }
    st = wr_comm_agree(g->group, WR_OK);
    EXPECT(st == WR_OK, "agreement after a computing rank: %s", wr_error_detail());
    if (w->rank == 0)
        fprintf(stderr, "[rank 0] waited %.1f s in wr_comm_agree using %.3f s of CPU\n",
                wall_s() - t0, cpu_s() - c0);
    if (failures == 0) fprintf(stderr, "[rank %d] busy: ok\n", w->rank);
    return failures ? 1 : 0;
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
    static const char *const modes[] = {"kill", "agree", "stop", "busy", "local"};
    int known = 0;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) known |= !strcmp(mode, modes[i]);
    if (!known) {
        fprintf(stderr, "usage: comm_fail kill|agree|stop|busy|local\n");
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
        fprintf(stderr, "[rank %d] pid %ld\n", w.rank, (long)getpid()); /* for clean-up */
        /* stop, busy: one replica of cp 2, so the group (the pipeline's writer and its peer)
         * holds both ranks */
        const int one_group = !strcmp(mode, "stop") || !strcmp(mode, "busy");
        st = wr_groups_create(&g, &w, (wr_layout){.cfg = 1, .cp = one_group ? 2 : 1}, -1);
        if (st != WR_OK) {
            fprintf(stderr, "[rank %d] groups: %s\n", w.rank, wr_error_detail());
            wr_world_abort(&w, 1);
        }
        if (strcmp(mode, "kill") == 0)
            code = run_kill(&w, &g);
        else if (strcmp(mode, "stop") == 0)
            code = run_stop(&w, &g);
        else if (strcmp(mode, "busy") == 0)
            code = run_busy(&w, &g);
        else
            code = run_agree(&w, &g);
        wr_groups_free(&g);
    }
    wr_world_finalize(&w);
    return code;
}

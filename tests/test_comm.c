/*
 * test_comm.c — the distributed layer (src/parallel/comm.h) under 1, 2, 3 and 4 ranks.
 *
 * Data is verifiable in the nccl-tests manner: element i of rank r's buffer for seed s is an
 * integer-valued number derived from (s, r, i), so every rank can compute what every other
 * rank sent and each result is compared bitwise (memcmp) with the expected buffer, with guard
 * bytes after every receive buffer. Reductions use integer-valued floats small enough
 * (< 2^24 after summing) that the sum is exact in any order.
 *
 * Covered: allgather (also in place), alltoall, the grouped alltoall3 (against three
 * alltoalls), bcast from every root, allreduce sum/max/min
 * f32 and i64, sendrecv and isendrecv around a ring, barrier, byte counts above the MPI count
 * limit (lowered for the test), wr_comm_agree (all OK, one failing rank, two failing ranks,
 * sub-communicators), every valid and invalid layout of this world size, the byte counters,
 * and device buffers: WR_ERR_UNSUPPORTED on host-only groups; memory of a CPU backend in its
 * plain, strict and async modes (from be->iface->alloc, produced by a queued op just before
 * each call, so a transport that did not sync the backend first sends stale bytes); on a
 * machine with enough GPUs, the NCCL paths compared the same way. The watched wait:
 * WR_COMM_TIMEOUT_S's parsing, the heartbeat running at np > 1, and every communicator's members'
 * world ranks (whom a wait watches and names; with the layouts). A stopped or busy peer is tested
 * as a whole job (comm_fail stop, busy).
 *
 * All checks are collective (CHECK reduces over the ranks) and every rank runs the same ones.
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/backend.h"
#include "parallel/comm.h"
#include "parallel/comm_internal.h"
#include "wr_build_config.h"

#if WR_HAVE_CUDA
#include <cuda_runtime.h>
#endif

#define CHECK(cond, ...) ck_assert_msg(wr_ck_all(cond), __VA_ARGS__)

#define GUARD      16
#define GUARD_BYTE 0xA5

/* ---- verifiable data ---- */

static int64_t pattern(int seed, int rank, size_t i) {
    return ((int64_t)seed * 131 + (int64_t)rank * 1009 + (int64_t)i * 7) % 8191;
}

static float fval(int seed, int rank, size_t i) {
    return (float)pattern(seed, rank, i);
}

/* spans more than 32 bits and both signs */
static int64_t ival(int seed, int rank, size_t i) {
    return (pattern(seed, rank, i) - 4000) * ((int64_t)1 << 33);
}

static uint8_t bval(int seed, int rank, size_t i) {
    return (uint8_t)(pattern(seed, rank, i) % 251);
}

static void fill_bytes(uint8_t *p, size_t n, int seed, int rank) {
    for (size_t i = 0; i < n; i++) p[i] = bval(seed, rank, i);
}

/* n bytes followed by GUARD guard bytes; the n bytes hold 0x5A (never the expected data
 * everywhere, so a missing write shows) */
static uint8_t *guarded(size_t n) {
    uint8_t *p = malloc(n + GUARD);
    ck_assert_ptr_nonnull(p);
    memset(p, 0x5A, n);
    memset(p + n, GUARD_BYTE, GUARD);
    return p;
}

static int guard_intact(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < GUARD; i++)
        if (p[n + i] != GUARD_BYTE) return 0;
    return 1;
}

/* 1 when s is the same string on every rank of the world */
static int same_on_all_ranks(const char *s) {
    enum { CAP = 1200 };
    const int size = wr_test_size();
    char mine[CAP];
    memset(mine, 0, sizeof mine);
    snprintf(mine, sizeof mine, "%s", s);
    char *all = calloc((size_t)size, CAP);
    ck_assert_ptr_nonnull(all);
    MPI_Allgather(mine, CAP, MPI_CHAR, all, CAP, MPI_CHAR, MPI_COMM_WORLD);
    int same = 1;
    for (int r = 0; r < size; r++)
        if (memcmp(all + (size_t)r * CAP, all, CAP) != 0) same = 0;
    free(all);
    return same;
}

static const wr_world *world(void) {
    static wr_world w;
    static int done;
    if (!done) {
        wr_status st = wr_world_init(&w, NULL, NULL);
        CHECK(st == WR_OK, "wr_world_init: %s", wr_error_detail());
        done = 1;
    }
    return &w;
}

static void groups(wr_groups *g, int cfg, int cp) {
    wr_status st = wr_groups_create(g, world(), (wr_layout){.cfg = cfg, .cp = cp}, -1);
    CHECK(st == WR_OK, "wr_groups_create(cfg %d, cp %d): %s", cfg, cp, wr_error_detail());
}

static const size_t k_sizes[] = {0, 1, 3, 17, 1000, 4101};
#define NSIZES (sizeof k_sizes / sizeof k_sizes[0])

/* ---- world ---- */

START_TEST(test_world) {
    const wr_world *w = world();
    CHECK(w->rank == wr_test_rank() && w->size == wr_test_size(), "rank %d size %d", w->rank,
          w->size);
    CHECK(w->mpi == 0, "the harness initialised MPI: wr_world_init must not own it");
    /* CTest runs every rank on this one node */
    CHECK(w->local_rank == w->rank && w->local_size == w->size, "local rank %d of %d",
          w->local_rank, w->local_size);
    CHECK(w->host[0] != '\0', "host name");
    int eh_ok = 0;
    MPI_Errhandler eh;
    if (MPI_Comm_get_errhandler(MPI_COMM_WORLD, &eh) == MPI_SUCCESS) {
        eh_ok = eh == MPI_ERRORS_RETURN;
        MPI_Errhandler_free(&eh);
    }
    CHECK(eh_ok, "MPI_COMM_WORLD has MPI_ERRORS_RETURN");
}
END_TEST

/* ---- collectives on host buffers ---- */

static void check_allgather(wr_comm *c, int seed, size_t bytes, int in_place) {
    const int n = wr_comm_size(c), me = wr_comm_rank(c);
    uint8_t *recv = guarded((size_t)n * bytes);
    uint8_t *want = malloc((size_t)n * bytes + 1);
    uint8_t *send = malloc(bytes + 1);
    for (int r = 0; r < n; r++) fill_bytes(want + (size_t)r * bytes, bytes, seed, r);
    fill_bytes(send, bytes, seed, me);
    const void *src = send;
    if (in_place) {
        fill_bytes(recv + (size_t)me * bytes, bytes, seed, me);
        src = recv + (size_t)me * bytes;
    }
    wr_status st = wr_comm_allgather(c, recv, src, bytes, WR_MEM_HOST);
    CHECK(st == WR_OK, "allgather %zu bytes on %s: %s", bytes, "comm", wr_error_detail());
    CHECK(memcmp(recv, want, (size_t)n * bytes) == 0 && guard_intact(recv, (size_t)n * bytes),
          "allgather of %zu bytes%s: wrong data or guard overwritten", bytes,
          in_place ? " (in place)" : "");
    free(recv);
    free(want);
    free(send);
}

START_TEST(test_allgather) {
    wr_groups g;
    groups(&g, 1, 1);
    for (size_t k = 0; k < NSIZES; k++) {
        check_allgather(g.world, (int)k + 1, k_sizes[k], 0);
        check_allgather(g.world, (int)k + 11, k_sizes[k], 1);
    }
    /* floats travel as bytes: a gathered f32 buffer is bitwise the senders' */
    const int n = wr_comm_size(g.world), me = wr_comm_rank(g.world);
    enum { NF = 257 };
    float send[NF], *recv = malloc(sizeof(float) * NF * (size_t)n),
                    *want = malloc(sizeof(float) * NF * (size_t)n);
    for (size_t i = 0; i < NF; i++) send[i] = fval(5, me, i);
    for (int r = 0; r < n; r++)
        for (size_t i = 0; i < NF; i++) want[(size_t)r * NF + i] = fval(5, r, i);
    CHECK(wr_comm_allgather(g.world, recv, send, sizeof send, WR_MEM_HOST) == WR_OK, "%s",
          wr_error_detail());
    CHECK(memcmp(recv, want, sizeof(float) * NF * (size_t)n) == 0, "f32 allgather");
    free(recv);
    free(want);
    wr_groups_free(&g);
}
END_TEST

/* block j of rank r's send buffer (for rank j) holds the pattern of "rank" r * 64 + j */
static void check_alltoall(wr_comm *c, int seed, size_t bytes) {
    const int n = wr_comm_size(c), me = wr_comm_rank(c);
    const size_t total = (size_t)n * bytes;
    uint8_t *send = malloc(total + 1), *want = malloc(total + 1), *recv = guarded(total);
    for (int j = 0; j < n; j++) {
        fill_bytes(send + (size_t)j * bytes, bytes, seed, me * 64 + j);
        fill_bytes(want + (size_t)j * bytes, bytes, seed, j * 64 + me);
    }
    wr_status st = wr_comm_alltoall(c, recv, send, bytes, WR_MEM_HOST);
    CHECK(st == WR_OK, "alltoall %zu bytes: %s", bytes, wr_error_detail());
    CHECK(memcmp(recv, want, total) == 0 && guard_intact(recv, total),
          "alltoall of %zu bytes per block: wrong data or guard overwritten", bytes);
    free(send);
    free(want);
    free(recv);
}

START_TEST(test_alltoall) {
    wr_groups g;
    groups(&g, 1, 1);
    for (size_t k = 0; k < NSIZES; k++) check_alltoall(g.world, (int)k + 21, k_sizes[k]);
    wr_groups_free(&g);
}
END_TEST

/* three all-to-alls at once: each as check_alltoall's with its own seed, and bitwise what three
 * wr_comm_alltoall calls give */
static void check_alltoall3(wr_comm *c, int seed, size_t bytes) {
    const int n = wr_comm_size(c), me = wr_comm_rank(c);
    const size_t total = (size_t)n * bytes;
    uint8_t *send[3], *want[3], *recv[3];
    for (int k = 0; k < 3; k++) {
        send[k] = malloc(total + 1), want[k] = malloc(total + 1), recv[k] = guarded(total);
        for (int j = 0; j < n; j++) {
            fill_bytes(send[k] + (size_t)j * bytes, bytes, seed + k, me * 64 + j);
            fill_bytes(want[k] + (size_t)j * bytes, bytes, seed + k, j * 64 + me);
        }
    }
    void *const rv[3] = {recv[0], recv[1], recv[2]};
    const void *const sv[3] = {send[0], send[1], send[2]};
    wr_status st = wr_comm_alltoall3(c, rv, sv, bytes, WR_MEM_HOST);
    CHECK(st == WR_OK, "alltoall3 %zu bytes: %s", bytes, wr_error_detail());
    uint8_t *one = guarded(total);
    for (int k = 0; k < 3; k++) {
        CHECK(memcmp(recv[k], want[k], total) == 0 && guard_intact(recv[k], total),
              "alltoall3 buffer %d, %zu bytes per block: wrong data or guard overwritten", k,
              bytes);
        st = wr_comm_alltoall(c, one, send[k], bytes, WR_MEM_HOST);
        CHECK(st == WR_OK && memcmp(one, recv[k], total) == 0,
              "alltoall3 buffer %d differs from one alltoall", k);
        free(send[k]);
        free(want[k]);
        free(recv[k]);
    }
    free(one);
}

START_TEST(test_alltoall3) {
    wr_groups g;
    groups(&g, 1, 1);
    for (size_t k = 0; k < NSIZES; k++) check_alltoall3(g.world, (int)k * 3 + 121, k_sizes[k]);
    /* over a sub-communicator too (cp of a cfg-parallel layout, when the world divides) */
    if (wr_comm_size(g.world) % 2 == 0) {
        wr_groups g2;
        groups(&g2, 2, wr_comm_size(g.world) / 2);
        check_alltoall3(g2.cp, 171, 1000);
        wr_groups_free(&g2);
    }
    wr_groups_free(&g);
}
END_TEST

static void check_bcast(wr_comm *c, int seed, size_t bytes, int root) {
    const int me = wr_comm_rank(c);
    uint8_t *buf = guarded(bytes), *want = malloc(bytes + 1);
    fill_bytes(want, bytes, seed, root);
    if (me == root) memcpy(buf, want, bytes);
    wr_status st = wr_comm_bcast(c, buf, bytes, root, WR_MEM_HOST);
    CHECK(st == WR_OK, "bcast %zu bytes from %d: %s", bytes, root, wr_error_detail());
    CHECK(memcmp(buf, want, bytes) == 0 && guard_intact(buf, bytes),
          "bcast of %zu bytes from root %d: wrong data or guard overwritten", bytes, root);
    free(buf);
    free(want);
}

START_TEST(test_bcast) {
    wr_groups g;
    groups(&g, 1, 1);
    for (int root = 0; root < wr_comm_size(g.world); root++)
        for (size_t k = 0; k < NSIZES; k++) check_bcast(g.world, (int)k + 31, k_sizes[k], root);
    wr_groups_free(&g);
}
END_TEST

static void check_allreduce(wr_comm *c, int seed, size_t n) {
    const int size = wr_comm_size(c), me = wr_comm_rank(c);
    static const wr_reduce_op ops[] = {WR_REDUCE_SUM, WR_REDUCE_MAX, WR_REDUCE_MIN};
    static const char *const names[] = {"sum", "max", "min"};
    float *f = malloc(sizeof(float) * n + 1), *fw = malloc(sizeof(float) * n + 1);
    int64_t *v = malloc(sizeof(int64_t) * n + 1), *vw = malloc(sizeof(int64_t) * n + 1);
    for (int o = 0; o < 3; o++) {
        for (size_t i = 0; i < n; i++) {
            f[i] = fval(seed, me, i);
            v[i] = ival(seed, me, i);
            float a = fval(seed, 0, i);
            int64_t b = ival(seed, 0, i);
            for (int r = 1; r < size; r++) {
                float x = fval(seed, r, i);
                int64_t y = ival(seed, r, i);
                a = o == 0 ? a + x : o == 1 ? (x > a ? x : a) : (x < a ? x : a);
                b = o == 0 ? b + y : o == 1 ? (y > b ? y : b) : (y < b ? y : b);
            }
            fw[i] = a;
            vw[i] = b;
        }
        wr_status st = wr_comm_allreduce_f32(c, f, n, ops[o], WR_MEM_HOST);
        CHECK(st == WR_OK, "allreduce f32 %s: %s", names[o], wr_error_detail());
        CHECK(memcmp(f, fw, sizeof(float) * n) == 0, "allreduce f32 %s of %zu values", names[o], n);
        st = wr_comm_allreduce_i64(c, v, n, ops[o]);
        CHECK(st == WR_OK, "allreduce i64 %s: %s", names[o], wr_error_detail());
        CHECK(memcmp(v, vw, sizeof(int64_t) * n) == 0, "allreduce i64 %s of %zu values", names[o],
              n);
    }
    free(f);
    free(fw);
    free(v);
    free(vw);
}

START_TEST(test_allreduce) {
    wr_groups g;
    groups(&g, 1, 1);
    check_allreduce(g.world, 41, 0);
    check_allreduce(g.world, 42, 1);
    check_allreduce(g.world, 43, 1001);
    wr_groups_free(&g);
}
END_TEST

static void check_sendrecv(wr_comm *c, int seed, size_t bytes, int nonblocking) {
    const int n = wr_comm_size(c), me = wr_comm_rank(c);
    const int dst = (me + 1) % n, src = (me - 1 + n) % n;
    uint8_t *send = malloc(bytes + 1), *want = malloc(bytes + 1), *recv = guarded(bytes);
    fill_bytes(send, bytes, seed, me);
    fill_bytes(want, bytes, seed, src);
    wr_status st;
    if (nonblocking) {
        /* two transfers in flight, waited for in the opposite order */
        uint8_t *send2 = malloc(bytes + 1), *want2 = malloc(bytes + 1), *recv2 = guarded(bytes);
        fill_bytes(send2, bytes, seed + 1000, me);
        fill_bytes(want2, bytes, seed + 1000, src);
        wr_comm_req *r1 = NULL, *r2 = NULL;
        st = wr_comm_isendrecv(c, send, dst, recv, src, bytes, WR_MEM_HOST, &r1);
        CHECK(st == WR_OK && r1 != NULL, "isendrecv 1: %s", wr_error_detail());
        st = wr_comm_isendrecv(c, send2, dst, recv2, src, bytes, WR_MEM_HOST, &r2);
        CHECK(st == WR_OK && r2 != NULL, "isendrecv 2: %s", wr_error_detail());
        CHECK(wr_comm_wait(r2) == WR_OK, "wait 2: %s", wr_error_detail());
        CHECK(wr_comm_wait(r1) == WR_OK, "wait 1: %s", wr_error_detail());
        CHECK(memcmp(recv2, want2, bytes) == 0 && guard_intact(recv2, bytes),
              "second isendrecv of %zu bytes around the ring", bytes);
        free(send2);
        free(want2);
        free(recv2);
    } else {
        st = wr_comm_sendrecv(c, send, dst, recv, src, bytes, WR_MEM_HOST);
        CHECK(st == WR_OK, "sendrecv: %s", wr_error_detail());
    }
    CHECK(memcmp(recv, want, bytes) == 0 && guard_intact(recv, bytes),
          "%ssendrecv of %zu bytes around the ring", nonblocking ? "i" : "", bytes);
    free(send);
    free(want);
    free(recv);
}

START_TEST(test_sendrecv_ring) {
    wr_groups g;
    groups(&g, 1, 1);
    for (size_t k = 0; k < NSIZES; k++) {
        check_sendrecv(g.world, (int)k + 51, k_sizes[k], 0);
        check_sendrecv(g.world, (int)k + 61, k_sizes[k], 1);
    }
    CHECK(wr_comm_wait(NULL) == WR_OK, "wr_comm_wait(NULL)");
    wr_groups_free(&g);
}
END_TEST

START_TEST(test_barrier) {
    wr_groups g;
    groups(&g, 1, 1);
    for (int i = 0; i < 3; i++)
        CHECK(wr_comm_barrier(g.world) == WR_OK && wr_comm_barrier(g.cp) == WR_OK, "barrier: %s",
              wr_error_detail());
    wr_groups_free(&g);
}
END_TEST

/* With the per-call count limit lowered to 7, every byte count above it goes through the
 * derived datatype (23 = 3 x 7 + 2, 21 = 3 x 7 exactly) and allreduce through chunks. */
START_TEST(test_large_count_paths) {
    wr_groups g;
    groups(&g, 1, 1);
    wr_comm_test_set_max_count(7);
    static const size_t sizes[] = {5, 7, 8, 21, 23, 1001};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        check_allgather(g.world, 70 + (int)k, sizes[k], 0);
        check_allgather(g.world, 80 + (int)k, sizes[k], 1);
        check_alltoall(g.world, 90 + (int)k, sizes[k]);
        check_bcast(g.world, 100 + (int)k, sizes[k], wr_comm_size(g.world) - 1);
        check_sendrecv(g.world, 110 + (int)k, sizes[k], 0);
        check_sendrecv(g.world, 120 + (int)k, sizes[k], 1);
        check_allreduce(g.world, 130 + (int)k, sizes[k]);
    }
    wr_comm_test_set_max_count(0);
    wr_groups_free(&g);
}
END_TEST

/* ---- agreement ---- */

START_TEST(test_agree_all_ok) {
    wr_groups g;
    groups(&g, 1, 1);
    wr_error_clear();
    CHECK(wr_comm_agree(g.world, WR_OK) == WR_OK, "agree on all OK");
    CHECK(wr_error_detail()[0] == '\0', "no detail after agreeing on OK: '%s'", wr_error_detail());
    wr_groups_free(&g);
}
END_TEST

static wr_status fail_as(int rank) {
    return WR_FAIL(rank % 2 ? WR_ERR_NOT_FOUND : WR_ERR_IO,
                   "/nonexistent/shard-%d.safetensors: cannot open: No such file or directory",
                   rank);
}

/* ranks in `failing` fail; every rank must end with the lowest one's status and text */
static void check_agree(const int *failing, int nfailing) {
    wr_groups g;
    groups(&g, 1, 1);
    const int me = wr_test_rank(), size = wr_test_size();
    int lowest = size;
    wr_status st = WR_OK;
    wr_error_clear();
    for (int i = 0; i < nfailing; i++) {
        if (failing[i] < lowest) lowest = failing[i];
        if (failing[i] == me) st = fail_as(me);
    }
    /* a single process needs no "rank R: " */
    char body[256], want[512];
    snprintf(body, sizeof body,
             "/nonexistent/shard-%d.safetensors: cannot open: No such file or directory", lowest);
    if (size > 1)
        snprintf(want, sizeof want, "rank %d: %s", lowest, body);
    else
        snprintf(want, sizeof want, "%s", body);
    const wr_status want_code = lowest % 2 ? WR_ERR_NOT_FOUND : WR_ERR_IO;
    wr_status got = wr_comm_agree(g.world, st);
    CHECK(got == want_code, "agreed status %s, expected %s", wr_status_name(got),
          wr_status_name(want_code));
    CHECK(strcmp(wr_error_detail(), want) == 0, "agreed detail '%s', expected '%s'",
          wr_error_detail(), want);
    CHECK(same_on_all_ranks(wr_error_detail()), "the agreed detail differs between ranks");
    CHECK(strstr(wr_error_where(), "test_comm.c:") != NULL && same_on_all_ranks(wr_error_where()),
          "the failing position is kept on every rank: '%s'", wr_error_where());
    /* agreeing again (e.g. over the world after a sub-communicator) adds no second prefix */
    got = wr_comm_agree(g.world, got);
    CHECK(got == want_code && strcmp(wr_error_detail(), want) == 0, "re-agreed detail '%s'",
          wr_error_detail());
    wr_groups_free(&g);
}

START_TEST(test_agree_one_fails) {
    const int last = wr_test_size() - 1;
    check_agree(&last, 1);
}
END_TEST

START_TEST(test_agree_two_fail) {
    const int size = wr_test_size();
    /* two failing ranks where there are: the higher one is listed first */
    int failing[2] = {size - 1, size >= 3 ? 1 : 0};
    check_agree(failing, size >= 2 ? 2 : 1);
}
END_TEST

/* Over a sub-communicator only its members fail; then over the world everybody does, with the
 * world rank in the text and no second prefix. */
START_TEST(test_agree_subcomm) {
    const int size = wr_test_size(), me = wr_test_rank();
    if (size % 2 != 0) return; /* the same on every rank: no collective is skipped by some */
    wr_groups g;
    groups(&g, 1, 2);
    wr_status st = me == 1 ? WR_FAIL(WR_ERR_CONFIG, "config.json: num_heads 7 is odd") : WR_OK;
    wr_status got = wr_comm_agree(g.cp, st);
    const int in_replica0 = g.replica == 0;
    CHECK(got == (in_replica0 ? WR_ERR_CONFIG : WR_OK), "sub-communicator agreement: %s",
          wr_status_name(got));
    CHECK(!in_replica0 || strcmp(wr_error_detail(), "rank 1: config.json: num_heads 7 is odd") == 0,
          "detail over cp: '%s'", wr_error_detail());
    got = wr_comm_agree(g.world, got);
    CHECK(got == WR_ERR_CONFIG &&
              strcmp(wr_error_detail(), "rank 1: config.json: num_heads 7 is odd") == 0,
          "detail over the world: '%s'", wr_error_detail());
    wr_groups_free(&g);
}
END_TEST

/* ---- layouts ---- */

/* world ranks of the members of c, as the allgather of world ranks sees them, and as c records
 * them (whom a wait on c watches, and names when one stops answering) */
static int check_members(wr_comm *c, const int *want, int n) {
    int me = wr_test_rank();
    int *got = calloc((size_t)n + 1, sizeof(int));
    wr_status st = wr_comm_allgather(c, got, &me, sizeof me, WR_MEM_HOST);
    int ok = st == WR_OK && wr_comm_size(c) == n && memcmp(got, want, sizeof(int) * n) == 0;
    ok = ok && c->world_of != NULL && memcmp(c->world_of, want, sizeof(int) * n) == 0;
    free(got);
    return ok;
}

static void check_layout(int cfg, int cp) {
    const int size = wr_test_size(), r = wr_test_rank();
    wr_groups g;
    groups(&g, cfg, cp);
    const int replica = r / (cfg * cp), cfg_rank = (r / cp) % cfg, cp_rank = r % cp;
    CHECK(g.layout.cfg == cfg && g.layout.cp == cp && g.replicas == size / (cfg * cp),
          "layout %dx%d: replicas %d", cfg, cp, g.replicas);
    CHECK(g.replica == replica && g.cfg_rank == cfg_rank && g.cp_rank == cp_rank,
          "layout %dx%d rank %d: replica %d cfg_rank %d cp_rank %d", cfg, cp, r, g.replica,
          g.cfg_rank, g.cp_rank);
    CHECK(wr_comm_size(g.world) == size && wr_comm_rank(g.world) == r, "world comm");
    CHECK(wr_comm_size(g.group) == cfg * cp && wr_comm_rank(g.group) == cfg_rank * cp + cp_rank,
          "group comm: size %d rank %d", wr_comm_size(g.group), wr_comm_rank(g.group));
    CHECK(wr_comm_size(g.cp) == cp && wr_comm_rank(g.cp) == cp_rank, "cp comm");
    CHECK(wr_comm_size(g.cfg) == cfg && wr_comm_rank(g.cfg) == cfg_rank, "cfg comm");

    int *want = calloc((size_t)size, sizeof(int));
    ck_assert_ptr_nonnull(want);
    for (int k = 0; k < size; k++) want[k] = k;
    CHECK(check_members(g.world, want, size), "world members");
    for (int k = 0; k < cfg * cp; k++) want[k] = replica * cfg * cp + k;
    CHECK(check_members(g.group, want, cfg * cp), "group members (layout %dx%d)", cfg, cp);
    for (int k = 0; k < cp; k++) want[k] = (replica * cfg + cfg_rank) * cp + k;
    CHECK(check_members(g.cp, want, cp), "cp members (layout %dx%d)", cfg, cp);
    for (int k = 0; k < cfg; k++) want[k] = (replica * cfg + k) * cp + cp_rank;
    CHECK(check_members(g.cfg, want, cfg), "cfg members (layout %dx%d)", cfg, cp);
    free(want);
    wr_groups_free(&g);
}

static void check_invalid_layout(int cfg, int cp, const char *want1, const char *want2) {
    wr_groups g;
    memset(&g, 0x7F, sizeof g);
    wr_status st = wr_groups_create(&g, world(), (wr_layout){.cfg = cfg, .cp = cp}, -1);
    CHECK(st == WR_ERR_INVALID_ARG, "layout %dx%d on %d ranks: %s", cfg, cp, wr_test_size(),
          wr_status_name(st));
    CHECK(strstr(wr_error_detail(), want1) != NULL &&
              (want2 == NULL || strstr(wr_error_detail(), want2) != NULL),
          "layout %dx%d: detail '%s' lacks '%s'", cfg, cp, wr_error_detail(), want1);
    CHECK(g.world == NULL && g.group == NULL && g.cp == NULL && g.cfg == NULL,
          "no communicators after a failed create");
    wr_groups_free(&g); /* safe on a failed create */
}

START_TEST(test_layouts) {
    const int size = wr_test_size();
    int valid = 0;
    for (int cfg = 1; cfg <= 2; cfg++) {
        for (int cp = 1; cp <= size + 1; cp++) {
            if (size % (cfg * cp) == 0) {
                check_layout(cfg, cp);
                valid++;
                continue;
            }
            char a[128], b[128];
            snprintf(a, sizeof a,
                     "--cfg-parallel %d x --cp-size %d = %d ranks per replica does not divide the "
                     "%d rank",
                     cfg, cp, cfg * cp, size);
            snprintf(b, sizeof b, "use a world size that is a multiple of %d", cfg * cp);
            check_invalid_layout(cfg, cp, a, b);
        }
    }
    /* 1 rank: 1x1; 2: 1x1 1x2 2x1; 3: 1x1 1x3; 4: 1x1 1x2 1x4 2x1 2x2 */
    const int want_valid[] = {0, 1, 3, 2, 5};
    CHECK(valid == want_valid[size <= 4 ? size : 0] || size > 4, "%d valid layouts", valid);
    check_invalid_layout(3, 1, "--cfg-parallel 3 is not supported", "use 1");
    check_invalid_layout(0, 1, "--cfg-parallel 0 is not supported", NULL);
    check_invalid_layout(1, 0, "--cp-size 0 is invalid", "at least 1");
    check_invalid_layout(2, -1, "--cp-size -1 is invalid", NULL);
    wr_groups_free(NULL);
}
END_TEST

/* ---- byte counters ---- */

START_TEST(test_byte_counters) {
    wr_groups g;
    groups(&g, 1, 1);
    wr_comm *c = g.world;
    const int n = wr_comm_size(c), me = wr_comm_rank(c);
    const uint64_t others = (uint64_t)(n - 1);
    uint8_t buf[4096], out[4096];
    memset(buf, 1, sizeof buf);
    wr_comm_bytes_reset();
    CHECK(wr_comm_bytes_sent() == 0, "reset");

    CHECK(wr_comm_allgather(c, out, buf, 100, WR_MEM_HOST) == WR_OK, "%s", wr_error_detail());
    CHECK(wr_comm_bytes_sent() == 100 * others, "allgather counted %llu",
          (unsigned long long)wr_comm_bytes_sent());
    wr_comm_bytes_reset();
    CHECK(wr_comm_alltoall(c, out, buf, 10, WR_MEM_HOST) == WR_OK, "%s", wr_error_detail());
    CHECK(wr_comm_bytes_sent() == 10 * others, "alltoall counted %llu",
          (unsigned long long)wr_comm_bytes_sent());
    wr_comm_bytes_reset();
    {
        uint8_t o2[3][64 * 4];
        void *const rv[3] = {o2[0], o2[1], o2[2]};
        const void *const sv[3] = {buf, buf + 1024, buf + 2048};
        CHECK(wr_comm_alltoall3(c, rv, sv, 10, WR_MEM_HOST) == WR_OK, "%s", wr_error_detail());
        CHECK(wr_comm_bytes_sent() == 30 * others, "alltoall3 counted %llu",
              (unsigned long long)wr_comm_bytes_sent());
    }
    for (int root = 0; root < n; root++) {
        wr_comm_bytes_reset();
        CHECK(wr_comm_bcast(c, buf, 64, root, WR_MEM_HOST) == WR_OK, "%s", wr_error_detail());
        CHECK(wr_comm_bytes_sent() == (me == root ? 64 * others : 0), "bcast from %d counted %llu",
              root, (unsigned long long)wr_comm_bytes_sent());
    }
    wr_comm_bytes_reset();
    float f[10] = {0};
    CHECK(wr_comm_allreduce_f32(c, f, 10, WR_REDUCE_SUM, WR_MEM_HOST) == WR_OK, "%s",
          wr_error_detail());
    CHECK(wr_comm_bytes_sent() == 2 * 40 * others / (uint64_t)n, "allreduce f32 counted %llu",
          (unsigned long long)wr_comm_bytes_sent());
    wr_comm_bytes_reset();
    int64_t v[3] = {0};
    CHECK(wr_comm_allreduce_i64(c, v, 3, WR_REDUCE_MAX) == WR_OK, "%s", wr_error_detail());
    CHECK(wr_comm_bytes_sent() == 2 * 24 * others / (uint64_t)n, "allreduce i64 counted %llu",
          (unsigned long long)wr_comm_bytes_sent());
    wr_comm_bytes_reset();
    const int dst = (me + 1) % n, src = (me - 1 + n) % n;
    CHECK(wr_comm_sendrecv(c, buf, dst, out, src, 50, WR_MEM_HOST) == WR_OK, "%s",
          wr_error_detail());
    wr_comm_req *req = NULL;
    CHECK(wr_comm_isendrecv(c, buf, dst, out, src, 30, WR_MEM_HOST, &req) == WR_OK, "%s",
          wr_error_detail());
    CHECK(wr_comm_wait(req) == WR_OK, "%s", wr_error_detail());
    CHECK(wr_comm_bytes_sent() == (n > 1 ? 80u : 0u), "sendrecv counted %llu",
          (unsigned long long)wr_comm_bytes_sent());
    wr_comm_bytes_reset();
    CHECK(wr_comm_barrier(c) == WR_OK && wr_comm_agree(c, WR_OK) == WR_OK, "barrier, agree");
    CHECK(wr_comm_bytes_sent() == 0, "barrier and agree count nothing");
    wr_groups_free(&g);
}
END_TEST

/* ---- device buffers ---- */

/* Host-only groups: every device collective is WR_ERR_UNSUPPORTED naming the communicator. */
START_TEST(test_device_on_host_groups) {
    wr_groups g;
    groups(&g, 1, 1);
    wr_comm *c = g.world;
    const int n = wr_comm_size(c), me = wr_comm_rank(c);
    char a[64] = {0}, b[64 * 4] = {0};
    float f[4] = {0};
    static char sentinel;
    wr_comm_req *req = (wr_comm_req *)(void *)&sentinel; /* must come back NULL */
    wr_status st[6];
    st[0] = wr_comm_allgather(c, b, a, 8, WR_MEM_DEVICE);
    st[1] = wr_comm_alltoall(c, b, a, 8, WR_MEM_DEVICE);
    st[2] = wr_comm_bcast(c, a, 8, 0, WR_MEM_DEVICE);
    st[3] = wr_comm_allreduce_f32(c, f, 4, WR_REDUCE_SUM, WR_MEM_DEVICE);
    st[4] = wr_comm_sendrecv(c, a, (me + 1) % n, b, (me - 1 + n) % n, 8, WR_MEM_DEVICE);
    st[5] = wr_comm_isendrecv(c, a, (me + 1) % n, b, (me - 1 + n) % n, 8, WR_MEM_DEVICE, &req);
    for (int i = 0; i < 6; i++)
        CHECK(st[i] == WR_ERR_UNSUPPORTED, "device call %d on host-only groups: %s", i,
              wr_status_name(st[i]));
    CHECK(req == NULL, "no request after a failed isendrecv");
    CHECK(strstr(wr_error_detail(), "world communicator") != NULL, "detail: %s", wr_error_detail());
    wr_groups_free(&g);
}
END_TEST

/* ---- device buffers of a CPU backend ---- */

/* Device memory of be: bytes then GUARD guard bytes, the bytes 0x5A; through be->iface->alloc
 * (in the strict modes an address the host cannot touch) and wr_upload. */
static void *dev_new(wr_backend *be, size_t bytes) {
    void *d = NULL;
    ck_assert_int_eq(be->iface->alloc(be, &d, bytes + GUARD), WR_OK);
    uint8_t *h = guarded(bytes);
    ck_assert_int_eq(wr_upload(be, d, h, bytes + GUARD), WR_OK);
    free(h);
    return d;
}

/* d's first `bytes` := host, by a device copy queued on the compute stream (in the async mode
 * it runs some 2 ms later unless something syncs); *stage is the source, to free after the
 * call that reads d. */
static void dev_fill(wr_backend *be, void *d, const void *host, size_t bytes, void **stage) {
    *stage = NULL;
    ck_assert_int_eq(be->iface->alloc(be, stage, bytes + 1), WR_OK);
    ck_assert_int_eq(wr_upload(be, *stage, host, bytes), WR_OK);
    ck_assert_int_eq(wr_dev_copy(be, d, *stage, bytes), WR_OK);
}

/* 1 when d holds want and its guard bytes */
static int dev_check(wr_backend *be, const void *d, const void *want, size_t bytes) {
    uint8_t *h = malloc(bytes + GUARD);
    ck_assert_int_eq(wr_download(be, h, d, bytes + GUARD), WR_OK);
    const int ok = memcmp(h, want, bytes) == 0 && guard_intact(h, bytes);
    free(h);
    return ok;
}

static void dev_free(wr_backend *be, void *p) {
    be->iface->free(be, p);
}

/* Every collective and the point-to-point calls with WR_MEM_DEVICE buffers of one CPU backend,
 * compared bitwise with what the host path gives. */
static void check_device_cpu(wr_comm *c, wr_backend *be, const char *mode) {
    const int n = wr_comm_size(c), me = wr_comm_rank(c);
    const size_t bytes = 1001, total = bytes * (size_t)n;
    uint8_t *h = malloc(total), *want = malloc(total);
    void *stage = NULL;

    /* allgather, separate and in place */
    for (int inplace = 0; inplace < 2; inplace++) {
        fill_bytes(h, bytes, 71 + inplace, me);
        for (int r = 0; r < n; r++) fill_bytes(want + (size_t)r * bytes, bytes, 71 + inplace, r);
        uint8_t *dr = dev_new(be, total),
                *ds = inplace ? dr + (size_t)me * bytes : dev_new(be, bytes);
        dev_fill(be, ds, h, bytes, &stage);
        CHECK(wr_comm_allgather(c, dr, ds, bytes, WR_MEM_DEVICE) == WR_OK, "%s: %s", mode,
              wr_error_detail());
        CHECK(dev_check(be, dr, want, total), "%s: device allgather%s", mode,
              inplace ? " in place" : "");
        dev_free(be, stage);
        if (!inplace) dev_free(be, ds);
        dev_free(be, dr);
    }

    /* alltoall, then the grouped three */
    uint8_t *want3[3];
    void *ds3[3], *dr3[3], *st3[3];
    for (int k = 0; k < 3; k++) {
        want3[k] = malloc(total);
        for (int j = 0; j < n; j++) {
            fill_bytes(h + (size_t)j * bytes, bytes, 80 + k, me * 64 + j);
            fill_bytes(want3[k] + (size_t)j * bytes, bytes, 80 + k, j * 64 + me);
        }
        ds3[k] = dev_new(be, total), dr3[k] = dev_new(be, total);
        dev_fill(be, ds3[k], h, total, &st3[k]);
    }
    CHECK(wr_comm_alltoall(c, dr3[0], ds3[0], bytes, WR_MEM_DEVICE) == WR_OK, "%s: %s", mode,
          wr_error_detail());
    CHECK(dev_check(be, dr3[0], want3[0], total), "%s: device alltoall", mode);
    wr_dev_memset0(be, dr3[0], total); /* queued: must have run before the transfer writes */
    CHECK(wr_comm_alltoall3(c, dr3, (const void *const *)ds3, bytes, WR_MEM_DEVICE) == WR_OK,
          "%s: %s", mode, wr_error_detail());
    for (int k = 0; k < 3; k++) {
        CHECK(dev_check(be, dr3[k], want3[k], total), "%s: device alltoall3 buffer %d", mode, k);
        dev_free(be, st3[k]);
        dev_free(be, ds3[k]);
        dev_free(be, dr3[k]);
        free(want3[k]);
    }

    /* bcast from every root */
    for (int root = 0; root < n; root++) {
        fill_bytes(want, bytes, 90 + root, root);
        void *d = dev_new(be, bytes);
        if (me == root) dev_fill(be, d, want, bytes, &stage);
        CHECK(wr_comm_bcast(c, d, bytes, root, WR_MEM_DEVICE) == WR_OK, "%s: %s", mode,
              wr_error_detail());
        CHECK(dev_check(be, d, want, bytes), "%s: device bcast from %d", mode, root);
        if (me == root) dev_free(be, stage);
        dev_free(be, d);
    }

    /* allreduce f32 sum (integer-valued: exact in any order) */
    enum { NF = 333 };
    float fh[NF], fw[NF];
    for (size_t i = 0; i < NF; i++) {
        fh[i] = fval(95, me, i);
        fw[i] = 0;
        for (int r = 0; r < n; r++) fw[i] += fval(95, r, i);
    }
    float *df = dev_new(be, sizeof fh);
    dev_fill(be, df, fh, sizeof fh, &stage);
    CHECK(wr_comm_allreduce_f32(c, df, NF, WR_REDUCE_SUM, WR_MEM_DEVICE) == WR_OK, "%s: %s", mode,
          wr_error_detail());
    CHECK(dev_check(be, df, fw, sizeof fw), "%s: device allreduce", mode);
    dev_free(be, stage);
    dev_free(be, df);

    /* sendrecv, then isendrecv with an op issued on other memory while it is in flight */
    const int dst = (me + 1) % n, src = (me - 1 + n) % n;
    fill_bytes(h, bytes, 97, me);
    fill_bytes(want, bytes, 97, src);
    void *ds = dev_new(be, bytes), *dr = dev_new(be, bytes), *other = dev_new(be, bytes);
    dev_fill(be, ds, h, bytes, &stage);
    CHECK(wr_comm_sendrecv(c, ds, dst, dr, src, bytes, WR_MEM_DEVICE) == WR_OK, "%s: %s", mode,
          wr_error_detail());
    CHECK(dev_check(be, dr, want, bytes), "%s: device sendrecv", mode);
    dev_free(be, stage);
    fill_bytes(h, bytes, 98, me);
    fill_bytes(want, bytes, 98, src);
    dev_fill(be, ds, h, bytes, &stage);
    wr_dev_memset0(be, dr, bytes);
    wr_comm_req *req = NULL;
    CHECK(wr_comm_isendrecv(c, ds, dst, dr, src, bytes, WR_MEM_DEVICE, &req) == WR_OK && req,
          "%s: %s", mode, wr_error_detail());
    uint8_t *zero = calloc(1, bytes);
    ck_assert_int_eq(wr_dev_memset0(be, other, bytes), WR_OK); /* overlaps the transfer */
    CHECK(wr_comm_wait(req) == WR_OK, "%s: wait: %s", mode, wr_error_detail());
    CHECK(dev_check(be, dr, want, bytes), "%s: device isendrecv", mode);
    CHECK(dev_check(be, other, zero, bytes), "%s: the op beside the isendrecv", mode);
    free(zero);
    dev_free(be, stage);
    dev_free(be, ds);
    dev_free(be, dr);
    dev_free(be, other);
    free(h);
    free(want);
}

START_TEST(test_device_on_cpu_backend) {
    static const char *const modes[] = {"plain", "strict", "async"};
    for (int m = 0; m < 3; m++) {
        const wr_backend_opts o = {
            .kind = WR_BACKEND_CPU, .threads = 1, .strict = m >= 1, .async = m == 2};
        wr_backend *be = NULL;
        wr_status st = wr_backend_create_ex(&be, &o);
        CHECK(st == WR_OK, "%s CPU backend: %s", modes[m], wr_error_detail());
        CHECK(be->host_visible == (m == 0), "%s: host_visible %d", modes[m], be->host_visible);
        wr_groups g;
        groups(&g, 1, 1);
        wr_groups_set_backend(&g, be);
        check_device_cpu(g.world, be, modes[m]);
        check_device_cpu(g.cp, be, modes[m]);
        /* without the backend the same call is refused again */
        wr_comm_set_backend(g.world, NULL);
        char a[8] = {0}, b[8 * 4] = {0};
        CHECK(wr_comm_allgather(g.world, b, a, 1, WR_MEM_DEVICE) == WR_ERR_UNSUPPORTED,
              "%s: no backend, no device side", modes[m]);
        wr_groups_free(&g);
        wr_backend_free(be);
    }
}
END_TEST

/* Groups made for a CUDA device whose device buffers are staged (ranks sharing a GPU, no
 * NCCL, no GPU at all): their device path, checked on a strict CPU backend, gives the host
 * path's bytes. */
static void check_staged_on_cpu(wr_groups *g, const char *why) {
    const wr_backend_opts o = {.kind = WR_BACKEND_CPU, .threads = 1, .strict = 1};
    wr_backend *be = NULL;
    CHECK(wr_backend_create_ex(&be, &o) == WR_OK, "%s", wr_error_detail());
    wr_groups_set_backend(g, be);
    check_device_cpu(g->world, be, why);
    check_device_cpu(g->cp, be, why);
    wr_groups_free(g);
    wr_backend_free(be);
}

#if WR_HAVE_NCCL
/* Device collectives on CUDA buffers, compared bitwise like the host ones: through NCCL where
 * each rank has its own GPU, staged through host memory where ranks share one (NCCL refuses
 * two ranks on one device); without a GPU, one rank's device groups fail cleanly and several
 * ranks' are staged (checked on a CPU backend). */
static void *dev_upload(const void *host, size_t bytes) {
    void *d = NULL;
    if (cudaMalloc(&d, bytes ? bytes : 1) != cudaSuccess) return NULL;
    if (bytes) cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice);
    return d;
}

static int dev_equals(const void *d, const void *want, size_t bytes) {
    uint8_t *h = malloc(bytes + 1);
    int ok = cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost) == cudaSuccess &&
             memcmp(h, want, bytes) == 0;
    free(h);
    return ok;
}

START_TEST(test_device_collectives) {
    const wr_world *w = world();
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) count = 0;
    (void)cudaGetLastError();
    if (!wr_ck_all(count > 0)) {
        wr_groups g;
        wr_status st = wr_groups_create(&g, w, (wr_layout){1, 1}, 0);
        if (w->size == 1) { /* NCCL's set-up needs the GPU: fails cleanly */
            CHECK(st != WR_OK && g.world == NULL, "device groups without a GPU: %s",
                  wr_status_name(st));
            CHECK(same_on_all_ranks(wr_error_detail()), "same error on every rank");
        } else { /* every rank on "device 0": staged */
            CHECK(st == WR_OK, "staged device groups without a GPU: %s", wr_error_detail());
            check_staged_on_cpu(&g, "staged (no GPU)");
        }
        return;
    }
    wr_groups g;
    wr_status st = wr_groups_create(&g, w, (wr_layout){1, 1}, w->local_rank % count);
    CHECK(st == WR_OK, "device groups: %s", wr_error_detail());
    wr_backend *be = NULL; /* the staged path moves the buffers with the backend's copies */
    const wr_backend_opts bo = {.kind = WR_BACKEND_CUDA, .device = w->local_rank % count};
    CHECK(wr_backend_create_ex(&be, &bo) == WR_OK, "%s", wr_error_detail());
    wr_groups_set_backend(&g, be);
    wr_comm *c = g.world;
    const int n = wr_comm_size(c), me = wr_comm_rank(c);
    const size_t bytes = 1001;
    uint8_t *h = malloc(bytes * (size_t)n), *want = malloc(bytes * (size_t)n);

    fill_bytes(h, bytes, 1, me); /* allgather */
    for (int r = 0; r < n; r++) fill_bytes(want + (size_t)r * bytes, bytes, 1, r);
    void *ds = dev_upload(h, bytes), *dr = dev_upload(h, bytes * (size_t)n);
    CHECK(wr_comm_allgather(c, dr, ds, bytes, WR_MEM_DEVICE) == WR_OK, "%s", wr_error_detail());
    CHECK(dev_equals(dr, want, bytes * (size_t)n), "device allgather");
    cudaFree(ds);
    cudaFree(dr);

    for (int j = 0; j < n; j++) { /* alltoall */
        fill_bytes(h + (size_t)j * bytes, bytes, 2, me * 64 + j);
        fill_bytes(want + (size_t)j * bytes, bytes, 2, j * 64 + me);
    }
    ds = dev_upload(h, bytes * (size_t)n);
    dr = dev_upload(h, bytes * (size_t)n);
    CHECK(wr_comm_alltoall(c, dr, ds, bytes, WR_MEM_DEVICE) == WR_OK, "%s", wr_error_detail());
    CHECK(dev_equals(dr, want, bytes * (size_t)n), "device alltoall");
    cudaFree(ds);
    cudaFree(dr);

    for (int root = 0; root < n; root++) { /* bcast */
        fill_bytes(want, bytes, 3, root);
        memset(h, 0, bytes);
        if (me == root) memcpy(h, want, bytes);
        ds = dev_upload(h, bytes);
        CHECK(wr_comm_bcast(c, ds, bytes, root, WR_MEM_DEVICE) == WR_OK, "%s", wr_error_detail());
        CHECK(dev_equals(ds, want, bytes), "device bcast from %d", root);
        cudaFree(ds);
    }

    enum { NF = 333 }; /* allreduce sum */
    float fh[NF], fw[NF];
    for (size_t i = 0; i < NF; i++) {
        fh[i] = fval(4, me, i);
        fw[i] = 0;
        for (int r = 0; r < n; r++) fw[i] += fval(4, r, i);
    }
    ds = dev_upload(fh, sizeof fh);
    CHECK(wr_comm_allreduce_f32(c, ds, NF, WR_REDUCE_SUM, WR_MEM_DEVICE) == WR_OK, "%s",
          wr_error_detail());
    CHECK(dev_equals(ds, fw, sizeof fw), "device allreduce");
    cudaFree(ds);

    const int dst = (me + 1) % n, src = (me - 1 + n) % n; /* ring */
    fill_bytes(h, bytes, 5, me);
    fill_bytes(want, bytes, 5, src);
    ds = dev_upload(h, bytes);
    dr = dev_upload(h, bytes);
    CHECK(wr_comm_sendrecv(c, ds, dst, dr, src, bytes, WR_MEM_DEVICE) == WR_OK, "%s",
          wr_error_detail());
    CHECK(dev_equals(dr, want, bytes), "device sendrecv");
    wr_comm_req *req = NULL;
    CHECK(wr_comm_isendrecv(c, ds, dst, dr, src, bytes, WR_MEM_DEVICE, &req) == WR_OK, "%s",
          wr_error_detail());
    CHECK(wr_comm_wait(req) == WR_OK && dev_equals(dr, want, bytes), "device isendrecv");
    cudaFree(ds);
    cudaFree(dr);
    free(h);
    free(want);
    wr_groups_free(&g);
    wr_backend_free(be);
}
END_TEST
#else
/* No NCCL in this build: device groups stage their device buffers through host memory. */
START_TEST(test_device_groups_staged) {
    wr_groups g;
    wr_status st = wr_groups_create(&g, world(), (wr_layout){1, 1}, 0);
    CHECK(st == WR_OK, "device groups without NCCL: %s", wr_error_detail());
    check_staged_on_cpu(&g, "staged (no NCCL)");
}
END_TEST
#endif

/* ---- the watched wait (comm_watch.c) ---- */

START_TEST(test_timeout_parse) {
    CHECK(wr_comm_timeout_parse(NULL) == 300 && wr_comm_timeout_parse("") == 300, "default 300");
    CHECK(wr_comm_timeout_parse("3") == 3 && wr_comm_timeout_parse("2.5") == 2.5, "seconds");
    CHECK(wr_comm_timeout_parse("0") == 0, "0: no deadline");
    static const char *const bad[] = {"-1", "abc", "3s", "inf", "nan", "1e10", " "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(wr_comm_timeout_parse(bad[i]) == 300, "'%s' gives the default", bad[i]);
}
END_TEST

/* Under the harness (MPI_THREAD_MULTIPLE) the heartbeat runs whenever there is a peer, with
 * the default timeout (WR_COMM_TIMEOUT_S is not set by CTest). */
START_TEST(test_heartbeat_on) {
    (void)world();
    int level = 0;
    MPI_Query_thread(&level);
    const int want = wr_test_size() > 1 && level == MPI_THREAD_MULTIPLE;
    CHECK(wr_comm_heartbeat_on() == want, "heartbeat %d, expected %d (thread level %d)",
          wr_comm_heartbeat_on(), want, level);
    CHECK(getenv("WR_COMM_TIMEOUT_S") != NULL || wr_comm_timeout_s() == 300, "timeout %g",
          wr_comm_timeout_s());
}
END_TEST

Suite *wr_test_suite(void) {
    Suite *s = suite_create("comm");
    TCase *tc = tcase_create("host");
    tcase_set_timeout(tc, 0);
    tcase_add_test(tc, test_world);
    tcase_add_test(tc, test_allgather);
    tcase_add_test(tc, test_alltoall);
    tcase_add_test(tc, test_alltoall3);
    tcase_add_test(tc, test_bcast);
    tcase_add_test(tc, test_allreduce);
    tcase_add_test(tc, test_sendrecv_ring);
    tcase_add_test(tc, test_barrier);
    tcase_add_test(tc, test_large_count_paths);
    tcase_add_test(tc, test_agree_all_ok);
    tcase_add_test(tc, test_agree_one_fails);
    tcase_add_test(tc, test_agree_two_fail);
    tcase_add_test(tc, test_agree_subcomm);
    tcase_add_test(tc, test_layouts);
    tcase_add_test(tc, test_byte_counters);
    tcase_add_test(tc, test_device_on_host_groups);
    tcase_add_test(tc, test_device_on_cpu_backend);
    tcase_add_test(tc, test_timeout_parse);
    tcase_add_test(tc, test_heartbeat_on);
#if WR_HAVE_NCCL
    tcase_add_test(tc, test_device_collectives);
#else
    tcase_add_test(tc, test_device_groups_staged);
#endif
    suite_add_tcase(s, tc);
    return s;
}

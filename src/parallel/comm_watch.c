/*
 * comm_watch.c — how the host side of the communicators waits (comm.h, "Waiting and stopped
 * ranks"): a polling wait on MPI requests that backs off to short sleeps, a heartbeat thread
 * that tells a waiting rank which of its peers are still alive, and the abort when a peer has
 * stopped answering for WR_COMM_TIMEOUT_S seconds.
 *
 * The control communicator: a duplicate of MPI_COMM_WORLD made by wr_comm_watch_start (called
 * by wr_world_init), used only here: the heartbeat thread's point-to-point messages (tag
 * HB_TAG) and the main thread's watched barriers. It and the thread end at MPI_Finalize,
 * whoever calls it: MPI deletes the attributes of MPI_COMM_SELF first thing in MPI_Finalize,
 * and ours has a delete callback (hb_stop).
 *
 * Heartbeats: every `period` seconds (a tenth of the timeout, between 10 ms and 1 s) the thread
 * receives whatever heartbeats have arrived, stamping each sender's "last seen" with the time
 * of this pass, then sends one 8-byte message to every peer whose previous one has completed
 * (at most one in flight per peer, so a stopped peer costs a bounded amount of memory), then
 * records the pass time. A peer's age is (time of our last pass) - (its last seen): measured
 * on our passes, so if this process itself was stopped or starved, the next pass first takes
 * in what the peers sent meanwhile, and no verdict is given while our own passes are late.
 * When the thread stops it sends BYE: a peer that has said BYE is past its last collective
 * and no longer judged.
 *
 * Needs MPI_THREAD_MULTIPLE (the thread calls MPI while the main thread does). With a lower
 * thread level (MPI initialised by someone else with less), or WR_COMM_TIMEOUT_S=0, no
 * heartbeat runs: waits still back off to sleeps but have no deadline. The ranks agree on it
 * at the start (an allreduce): the heartbeat runs everywhere or nowhere, with the largest
 * WR_COMM_TIMEOUT_S any rank has, so ranks started with different settings cannot take each
 * other for stopped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "parallel/comm_internal.h"

#define HB_TAG  0x4842 /* on the control communicator only */
#define HB_BEAT INT64_C(1)
#define HB_BYE  INT64_C(2)

#define TIMEOUT_DEFAULT_S 300.0

typedef struct hb_state {
    int ready;      /* the control communicator exists */
    int running;    /* the heartbeat thread runs */
    MPI_Comm ctl;   /* dup of MPI_COMM_WORLD */
    int rank, size; /* in the world */
    int keyval;     /* of the MPI_COMM_SELF attribute whose deletion stops us */
    double timeout; /* seconds; 0: no deadline */
    double period;  /* seconds between passes */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;                 /* under mu */
    _Atomic int64_t pass_ns;  /* time of the heartbeat thread's latest pass */
    _Atomic int64_t *seen_ns; /* per world rank: the pass that took in its latest heartbeat */
    _Atomic int *gone;        /* per world rank: it said BYE */
    MPI_Request *sreq;        /* per peer: the send in flight, MPI_REQUEST_NULL if none */
    int *dead;                /* per peer: a send to it failed; not tried again */
} hb_state;

static hb_state g_hb = {.ctl = MPI_COMM_NULL, .keyval = MPI_KEYVAL_INVALID, .timeout = -1};

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double wr_comm_timeout_parse(const char *s) {
    if (s == NULL || *s == '\0') return TIMEOUT_DEFAULT_S;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !(v >= 0) || v > 1e9) {
        wr_warn("WR_COMM_TIMEOUT_S='%s' is not a number of seconds between 0 (no deadline) and "
                "1e9; using %g",
                s, TIMEOUT_DEFAULT_S);
        return TIMEOUT_DEFAULT_S;
    }
    return v;
}

double wr_comm_timeout_s(void) {
    if (g_hb.timeout < 0) g_hb.timeout = wr_comm_timeout_parse(getenv("WR_COMM_TIMEOUT_S"));
    return g_hb.timeout;
}

int wr_comm_heartbeat_on(void) {
    return g_hb.running;
}

/* ---- the heartbeat thread ---- */

static void hb_drain(int64_t now) {
    for (;;) {
        int flag = 0;
        MPI_Status s;
        if (MPI_Iprobe(MPI_ANY_SOURCE, HB_TAG, g_hb.ctl, &flag, &s) != MPI_SUCCESS || !flag) return;
        int64_t v = 0;
        const int src = s.MPI_SOURCE;
        if (MPI_Recv(&v, 1, MPI_INT64_T, src, HB_TAG, g_hb.ctl, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return;
        if (src < 0 || src >= g_hb.size) continue;
        atomic_store(&g_hb.seen_ns[src], now);
        if (v == HB_BYE) atomic_store(&g_hb.gone[src], 1);
    }
}

/* The messages (never written: a send that was freed may still read its buffer). */
static const int64_t k_beat = HB_BEAT, k_bye = HB_BYE;

/* One message to every peer whose last one has completed. */
static void hb_send_all(const int64_t *what) {
    for (int p = 0; p < g_hb.size; p++) {
        if (p == g_hb.rank || g_hb.dead[p] || atomic_load(&g_hb.gone[p])) continue;
        if (g_hb.sreq[p] != MPI_REQUEST_NULL) {
            int done = 0;
            if (MPI_Test(&g_hb.sreq[p], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
                g_hb.dead[p] = 1;
                continue;
            }
            if (!done) continue;
        }
        if (MPI_Isend(what, 1, MPI_INT64_T, p, HB_TAG, g_hb.ctl, &g_hb.sreq[p]) != MPI_SUCCESS) {
            g_hb.sreq[p] = MPI_REQUEST_NULL;
            g_hb.dead[p] = 1;
        }
    }
}

static void *hb_main(void *arg) {
    (void)arg;
    const int64_t period_ns = (int64_t)(g_hb.period * 1e9);
    pthread_mutex_lock(&g_hb.mu);
    while (!g_hb.stop) {
        pthread_mutex_unlock(&g_hb.mu);
        const int64_t now = mono_ns();
        hb_drain(now);
        hb_send_all(&k_beat);
        atomic_store(&g_hb.pass_ns, now);
        /* sleep until the next pass (CLOCK_REALTIME: the condition variable's default clock;
         * a clock step only makes one pass early or late) */
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        int64_t ns = dl.tv_nsec + period_ns;
        dl.tv_sec += (time_t)(ns / 1000000000);
        dl.tv_nsec = (long)(ns % 1000000000);
        pthread_mutex_lock(&g_hb.mu);
        while (!g_hb.stop) {
            int rc = pthread_cond_timedwait(&g_hb.cv, &g_hb.mu, &dl);
            if (rc == ETIMEDOUT) break;
        }
    }
    pthread_mutex_unlock(&g_hb.mu);
    /* the last word: peers stop judging this rank */
    hb_drain(mono_ns());
    for (int p = 0; p < g_hb.size; p++) /* BYE goes out even if a beat is still in flight */
        if (g_hb.sreq[p] != MPI_REQUEST_NULL) {
            MPI_Request_free(&g_hb.sreq[p]);
            g_hb.sreq[p] = MPI_REQUEST_NULL;
        }
    hb_send_all(&k_bye);
    for (int p = 0; p < g_hb.size; p++)
        if (g_hb.sreq[p] != MPI_REQUEST_NULL) MPI_Request_free(&g_hb.sreq[p]);
    return NULL;
}

/* The delete callback of our MPI_COMM_SELF attribute: runs at the start of MPI_Finalize. */
static int hb_stop(MPI_Comm comm, int keyval, void *attr, void *extra) {
    (void)comm, (void)keyval, (void)attr, (void)extra;
    if (g_hb.running) {
        pthread_mutex_lock(&g_hb.mu);
        g_hb.stop = 1;
        pthread_cond_signal(&g_hb.cv);
        pthread_mutex_unlock(&g_hb.mu);
        pthread_join(g_hb.thread, NULL);
        g_hb.running = 0;
        pthread_cond_destroy(&g_hb.cv);
        pthread_mutex_destroy(&g_hb.mu);
    }
    if (g_hb.ctl != MPI_COMM_NULL) MPI_Comm_free(&g_hb.ctl);
    free((void *)g_hb.seen_ns);
    free((void *)g_hb.gone);
    free(g_hb.sreq);
    free(g_hb.dead);
    g_hb.seen_ns = NULL;
    g_hb.gone = NULL;
    g_hb.sreq = NULL;
    g_hb.dead = NULL;
    g_hb.ready = 0;
    return MPI_SUCCESS;
}

wr_status wr_comm_watch_start(void) {
    if (g_hb.ready) return WR_OK; /* wr_world_init called again */
    int size = 1, rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size < 2) return WR_OK;
    wr_comm wc = {.mpi = MPI_COMM_WORLD, .size = size, .name = "world"};
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &g_hb.ctl);
    if (rc != MPI_SUCCESS)
        return WR_COMM_MPI_FAIL(&wc, "MPI_Comm_dup (the control communicator)", rc);
    MPI_Comm_set_errhandler(g_hb.ctl, MPI_ERRORS_RETURN);
    g_hb.rank = rank;
    g_hb.size = size;
    g_hb.ready = 1;
    rc = MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, hb_stop, &g_hb.keyval, NULL);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_attr(MPI_COMM_SELF, g_hb.keyval, NULL);
    if (rc != MPI_SUCCESS) {
        MPI_Comm_free(&g_hb.ctl);
        g_hb.ready = 0;
        return WR_COMM_MPI_FAIL(&wc, "MPI_Comm_set_attr (the finalize hook)", rc);
    }

    int level = MPI_THREAD_SINGLE;
    MPI_Query_thread(&level);
    /* Agreed over the world: the heartbeat runs on every rank or on none (a rank without it
     * would be taken for a stopped one), with the longest timeout any rank asked for. */
    double mine[2] = {level < MPI_THREAD_MULTIPLE ? 1.0 : 0.0, wr_comm_timeout_s()}, all[2];
    if (mine[1] == 0) mine[0] = 1.0;
    rc = MPI_Allreduce(mine, all, 2, MPI_DOUBLE, MPI_MAX, g_hb.ctl);
    if (rc != MPI_SUCCESS)
        return WR_COMM_MPI_FAIL(&wc, "MPI_Allreduce (agreeing on the heartbeat)", rc);
    if (all[0] != 0) {
        wr_debug("no heartbeat (%s): a stopped rank is not detected",
                 mine[1] == 0                  ? "WR_COMM_TIMEOUT_S=0 here"
                 : level < MPI_THREAD_MULTIPLE ? "MPI's thread level is below MPI_THREAD_MULTIPLE"
                                               : "not possible on another rank");
        return WR_OK;
    }
    const double timeout = all[1];
    g_hb.timeout = timeout;
    double period = timeout / 10.0;
    g_hb.period = period < 0.01 ? 0.01 : period > 1.0 ? 1.0 : period;
    g_hb.seen_ns = calloc((size_t)size, sizeof *g_hb.seen_ns);
    g_hb.gone = calloc((size_t)size, sizeof *g_hb.gone);
    g_hb.sreq = calloc((size_t)size, sizeof *g_hb.sreq);
    g_hb.dead = calloc((size_t)size, sizeof *g_hb.dead);
    if (!g_hb.seen_ns || !g_hb.gone || !g_hb.sreq || !g_hb.dead) {
        free((void *)g_hb.seen_ns);
        free((void *)g_hb.gone);
        free(g_hb.sreq);
        free(g_hb.dead);
        g_hb.seen_ns = NULL, g_hb.gone = NULL, g_hb.sreq = NULL, g_hb.dead = NULL;
        return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory for the heartbeat of %d ranks", size);
    }
    const int64_t now = mono_ns();
    for (int p = 0; p < size; p++) {
        atomic_init(&g_hb.seen_ns[p], now);
        atomic_init(&g_hb.gone[p], 0);
        g_hb.sreq[p] = MPI_REQUEST_NULL;
    }
    atomic_init(&g_hb.pass_ns, now);
    g_hb.stop = 0;
    pthread_mutex_init(&g_hb.mu, NULL);
    pthread_cond_init(&g_hb.cv, NULL);
    if (pthread_create(&g_hb.thread, NULL, hb_main, NULL) != 0) {
        pthread_cond_destroy(&g_hb.cv);
        pthread_mutex_destroy(&g_hb.mu);
        return WR_FAIL(WR_ERR_COMM, "cannot start the heartbeat thread: %s", strerror(errno));
    }
    g_hb.running = 1;
    wr_debug("heartbeat every %.3g s; a rank silent for %g s ends the job (WR_COMM_TIMEOUT_S)",
             g_hb.period, timeout);
    return WR_OK;
}

/* ---- the watched wait ---- */

/* World rank of member i of c. */
static int world_of(const wr_comm *c, int i) {
    return c->world_of ? c->world_of[i] : i;
}

/* Aborts the job when some peer of c has been silent longer than the timeout. */
static void check_peers(const wr_comm *c, const char *what) {
    if (!g_hb.running) return;
    const int64_t now = mono_ns(), pass = atomic_load(&g_hb.pass_ns);
    const double timeout = g_hb.timeout;
    /* our own passes are late (this process was stopped or starved): no verdict yet */
    if ((double)(now - pass) * 1e-9 > 2.0 * g_hb.period + 1.0) return;
    char who[160] = "";
    size_t len = 0;
    int n = 0;
    double age_max = 0;
    for (int i = 0; i < c->size; i++) {
        const int p = world_of(c, i);
        if (p == g_hb.rank || p < 0 || p >= g_hb.size || atomic_load(&g_hb.gone[p])) continue;
        const double age = (double)(pass - atomic_load(&g_hb.seen_ns[p])) * 1e-9;
        if (age <= timeout) continue;
        if (age > age_max) age_max = age;
        if (len < sizeof who - 16) {
            int k = snprintf(who + len, sizeof who - len, "%s%d", n ? ", " : "", p);
            if (k > 0) len += (size_t)k;
        }
        n++;
    }
    if (n == 0) return;
    wr_error("rank%s %s %s not answered for %.0f s (stopped or hung?) in %s on the %s "
             "communicator; aborting the job (WR_COMM_TIMEOUT_S=%g)",
             n > 1 ? "s" : "", who, n > 1 ? "have" : "has", age_max, what, c->name, timeout);
    wr_world_abort(NULL, WR_COMM_ABORT_EXIT);
}

wr_status wr_comm_watch_wait(const wr_comm *c, const char *what, int n, MPI_Request *reqs,
                             size_t bytes) {
    const int64_t t0 = mono_ns();
    /* spin while the transfer could plausibly be running (100 us plus the bytes at 2 GB/s, at
     * most 10 ms), then sleep 20 us, doubling up to 2 ms, or up to 2 % of the time waited so
     * far once that is more (at most 10 ms): a long wait is for a peer that is busy elsewhere,
     * and a poll costs tens of microseconds */
    double spin_s = 1e-4 + (double)bytes / 2e9;
    if (spin_s > 0.01) spin_s = 0.01;
    const int64_t spin_ns = (int64_t)(spin_s * 1e9);
    long sleep_ns = 20000;
    int64_t next_check = t0;
    for (;;) {
        int done = 0;
        int rc = MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return WR_COMM_MPI_FAIL(c, what, rc);
        if (done) return WR_OK;
        const int64_t now = mono_ns();
        if (now - t0 < spin_ns) continue;
        if (now >= next_check) {
            check_peers(c, what);
            next_check = now + 50000000; /* 50 ms */
        }
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        int64_t cap = (now - t0) / 50;
        cap = cap < 2000000 ? 2000000 : cap > 10000000 ? 10000000 : cap;
        sleep_ns = sleep_ns * 2 > cap ? (long)cap : sleep_ns * 2;
    }
}

wr_status wr_comm_watch_barrier(const char *what) {
    if (!g_hb.ready) return WR_OK;
    wr_comm ctl = {.mpi = g_hb.ctl, .rank = g_hb.rank, .size = g_hb.size, .name = "world"};
    MPI_Request r = MPI_REQUEST_NULL;
    int rc = MPI_Ibarrier(g_hb.ctl, &r);
    if (rc != MPI_SUCCESS) return WR_COMM_MPI_FAIL(&ctl, what, rc);
    return wr_comm_watch_wait(&ctl, what, 1, &r, 0);
}

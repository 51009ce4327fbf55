/*
 * test_strict.c — the strict and async CPU device modes themselves (src/kernels/cpu/exec.c):
 * host code cannot touch device memory (a child process that tries dies of SIGSEGV), an op
 * given host memory aborts, allocations are reused and poisoned, and in the async mode work
 * runs in stream order with events as the only order between streams (a paused stream shows
 * that the host really ran ahead).
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "kernels/backend.h"
#include "kernels/ops.h"

static wr_backend *make(int strict, int async) {
    wr_backend *be = NULL;
    const wr_backend_opts o = {
        .kind = WR_BACKEND_CPU, .threads = 1, .strict = strict, .async = async};
    ck_assert_int_eq(wr_backend_create_ex(&be, &o), WR_OK);
    return be;
}

/* Runs strict_probe MODE in a child process; returns its wait status. */
static int probe(const char *mode) {
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Under a sanitizer the runtime catches SIGSEGV and exits (ASan aborts); leave the
         * probe's fault to the kernel so the status is the same in every build. */
        static const char *const vars[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS"};
        for (int i = 0; i < 3; i++) {
            const char *old = getenv(vars[i]);
            char buf[4096];
            snprintf(buf, sizeof buf, "%s%shandle_segv=0:handle_sigbus=0:handle_abort=0",
                     old ? old : "", old && *old ? ":" : "");
            setenv(vars[i], buf, 1);
        }
        execl(WR_STRICT_PROBE, "strict_probe", mode, (char *)NULL);
        /* moved with the other programs (the GPU machine's bundle): found on PATH */
        execlp("strict_probe", "strict_probe", mode, (char *)NULL);
        _exit(127);
    }
    int ws = 0;
    ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
    return ws;
}

START_TEST(host_access_faults) {
    int ws = probe("ok");
    ck_assert_msg(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "ok: status %d", ws);
    ws = probe("read");
    ck_assert_msg(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGSEGV, "host read: status %d", ws);
    ws = probe("write");
    ck_assert_msg(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGSEGV, "host write: status %d", ws);
    ws = probe("operand");
    ck_assert_msg(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGABRT, "host operand: status %d", ws);
}
END_TEST

START_TEST(plain_is_host_memory) {
    wr_backend *be = make(0, 0);
    ck_assert_int_eq(be->host_visible, 1);
    float *p = NULL;
    ck_assert_int_eq(be->iface->alloc(be, (void **)&p, 64), WR_OK);
    p[0] = 5.0f; /* host memory: allowed */
    float back = 0;
    ck_assert_int_eq(wr_download(be, &back, p, sizeof back), WR_OK);
    ck_assert(back == 5.0f);
    be->iface->free(be, p);
    wr_backend_free(be);
}
END_TEST

/* upload / op / download round trip, poisoning, and reuse of freed space */
START_TEST(strict_round_trip) {
    for (int async = 0; async <= 1; async++) {
        wr_backend *be = make(1, async);
        ck_assert_int_eq(be->host_visible, 0);
        enum { N = 1000 };
        float h[N], back[N];
        for (int i = 0; i < N; i++) h[i] = (float)i - 300.0f;
        void *a = NULL, *b = NULL;
        ck_assert_int_eq(be->iface->alloc(be, &a, sizeof h), WR_OK);
        ck_assert_int_eq(be->iface->alloc(be, &b, sizeof h), WR_OK);
        ck_assert_int_eq(wr_download(be, back, b, sizeof back), WR_OK);
        for (int i = 0; i < N; i++) ck_assert_msg(back[i] != back[i], "new memory is NaN");
        ck_assert_int_eq(wr_upload(be, a, h, sizeof h), WR_OK);
        wr_tensor ta = wr_tensor_make(a, WR_DTYPE_F32, 1, (int64_t[]){N});
        wr_tensor tb = wr_tensor_make(b, WR_DTYPE_F32, 1, (int64_t[]){N});
        ck_assert_int_eq(wr_op_clamp(be, &tb, &ta, -10.0f, 10.0f), WR_OK);
        ck_assert_int_eq(wr_download(be, back, b, sizeof back), WR_OK);
        for (int i = 0; i < N; i++)
            ck_assert(back[i] == (h[i] < -10 ? -10 : h[i] > 10 ? 10 : h[i]));
        /* freed space is reused (a long run does not run out of addresses) */
        be->iface->free(be, b);
        void *c = NULL;
        ck_assert_int_eq(be->iface->alloc(be, &c, sizeof h), WR_OK);
        ck_assert_ptr_eq(c, b);
        be->iface->free(be, c);
        be->iface->free(be, a);
        wr_backend_free(be);
    }
}
END_TEST

/* copy3d in all three directions against the plain loop */
START_TEST(strict_copy3d) {
    wr_backend *be = make(1, 1);
    enum { W = 5, R = 3, P = 2, SP = 8, SPL = 32 };
    char src[P * SPL], back[P * SPL], dst[P * R * W];
    for (int i = 0; i < (int)sizeof src; i++) src[i] = (char)(i * 7 + 1);
    void *d = NULL, *e = NULL;
    ck_assert_int_eq(be->iface->alloc(be, &d, sizeof src), WR_OK);
    ck_assert_int_eq(be->iface->alloc(be, &e, sizeof dst), WR_OK);
    ck_assert_int_eq(wr_upload(be, d, src, sizeof src), WR_OK);
    const wr_copy3d dd = {.dir = WR_COPY_D2D,
                          .dst = e,
                          .src = d,
                          .width = W,
                          .rows = R,
                          .planes = P,
                          .dpitch = W,
                          .dplane = R * W,
                          .spitch = SP,
                          .splane = SPL};
    ck_assert_int_eq(wr_copy_3d(be, &dd), WR_OK);
    ck_assert_int_eq(wr_download(be, dst, e, sizeof dst), WR_OK);
    for (int p = 0; p < P; p++)
        for (int r = 0; r < R; r++)
            ck_assert_int_eq(memcmp(dst + p * R * W + r * W, src + p * SPL + r * SP, W), 0);
    /* D2H back into a pitched host layout, H2D of a pitched host layout */
    memset(back, 0, sizeof back);
    const wr_copy3d dh = {.dir = WR_COPY_D2H,
                          .dst = back,
                          .src = e,
                          .width = W,
                          .rows = R,
                          .planes = P,
                          .dpitch = SP,
                          .dplane = SPL,
                          .spitch = W,
                          .splane = R * W};
    ck_assert_int_eq(wr_copy_3d(be, &dh), WR_OK);
    for (int p = 0; p < P; p++)
        for (int r = 0; r < R; r++)
            ck_assert_int_eq(memcmp(back + p * SPL + r * SP, src + p * SPL + r * SP, W), 0);
    const wr_copy3d hd = {.dir = WR_COPY_H2D,
                          .dst = e,
                          .src = dst,
                          .width = R * W,
                          .rows = 1,
                          .planes = P,
                          .dplane = R * W,
                          .splane = R * W};
    ck_assert_int_eq(wr_copy_3d(be, &hd), WR_OK);
    be->iface->free(be, e);
    be->iface->free(be, d);
    wr_backend_free(be);
}
END_TEST

/* Async: ops are queued (a paused compute stream has not run them), an event orders the
 * copy stream behind the compute stream, and an async download is there after its event. */
START_TEST(async_order) {
    wr_backend *be = make(1, 1);
    enum { N = 256 };
    float h[N], back[N];
    for (int i = 0; i < N; i++) h[i] = (float)i;
    void *a = NULL;
    ck_assert_int_eq(be->iface->alloc(be, &a, sizeof h), WR_OK);
    ck_assert_int_eq(wr_upload(be, a, h, sizeof h), WR_OK);
    const float *view = be->iface->host_alias(be, a); /* what the device holds now */
    wr_backend_stream_pause(be, WR_STREAM_COMPUTE, 1);
    ck_assert_int_eq(wr_dev_memset0(be, a, sizeof h), WR_OK);
    ck_assert(view[7] == 7.0f); /* issued, not run: the host ran ahead */
    wr_event *ev = NULL;
    ck_assert_int_eq(wr_event_create(be, &ev), WR_OK);
    ck_assert_int_eq(wr_event_record(be, ev, WR_STREAM_COMPUTE), WR_OK);
    /* the copy stream waits for the memset, then overwrites a with 2h */
    float h2[N];
    for (int i = 0; i < N; i++) h2[i] = 2.0f * (float)i;
    ck_assert_int_eq(wr_stream_wait(be, WR_STREAM_COPY, ev), WR_OK);
    wr_backend_stream_pause(be, WR_STREAM_COMPUTE, 0);
    ck_assert_int_eq(wr_upload_on(be, WR_STREAM_COPY, a, h2, sizeof h2), WR_OK);
    ck_assert(view[7] == 14.0f); /* after the memset, never before */
    /* async download, complete after its event */
    memset(back, 0, sizeof back);
    ck_assert_int_eq(wr_download_async(be, back, a, sizeof back), WR_OK);
    ck_assert_int_eq(wr_event_record(be, ev, WR_STREAM_COMPUTE), WR_OK);
    ck_assert_int_eq(wr_event_sync(be, ev), WR_OK);
    for (int i = 0; i < N; i++) ck_assert(back[i] == h2[i]);
    wr_event_free(be, ev);
    be->iface->free(be, a);
    wr_backend_free(be);
}
END_TEST

/* BF16 operands: converted on load, outputs rounded to nearest even (any mode) */
START_TEST(bf16_operands) {
    for (int mode = 0; mode < 3; mode++) {
        wr_backend *be = make(mode >= 1, mode == 2);
        enum { N = 64 };
        uint16_t xb[N], yb[N];
        float xf[N], ref[N];
        for (int i = 0; i < N; i++) {
            xb[i] = wr_f32_to_bf16((float)(i - 32) * 0.37f);
            xf[i] = wr_bf16_to_f32(xb[i]);
        }
        void *x = NULL, *y = NULL, *yf = NULL;
        ck_assert_int_eq(be->iface->alloc(be, &x, sizeof xb), WR_OK);
        ck_assert_int_eq(be->iface->alloc(be, &y, sizeof yb), WR_OK);
        ck_assert_int_eq(be->iface->alloc(be, &yf, sizeof ref), WR_OK);
        ck_assert_int_eq(wr_upload(be, x, xb, sizeof xb), WR_OK);
        wr_tensor tx = wr_tensor_make(x, WR_DTYPE_BF16, 1, (int64_t[]){N});
        wr_tensor ty = wr_tensor_make(y, WR_DTYPE_BF16, 1, (int64_t[]){N});
        wr_tensor tf = wr_tensor_make(yf, WR_DTYPE_F32, 1, (int64_t[]){N});
        ck_assert_int_eq(wr_op_silu(be, &ty, &tx), WR_OK); /* bf16 -> bf16 */
        ck_assert_int_eq(wr_op_silu(be, &tf, &tx), WR_OK); /* bf16 -> f32 */
        ck_assert_int_eq(wr_download(be, yb, y, sizeof yb), WR_OK);
        ck_assert_int_eq(wr_download(be, ref, yf, sizeof ref), WR_OK);
        for (int i = 0; i < N; i++) {
            ck_assert_msg(yb[i] == wr_f32_to_bf16(ref[i]), "element %d", i);
            const float e = xf[i] / (1.0f + expf(-xf[i]));
            ck_assert_msg(fabsf(ref[i] - e) <= 1e-6f * (1.0f + fabsf(e)), "element %d", i);
        }
        be->iface->free(be, yf);
        be->iface->free(be, y);
        be->iface->free(be, x);
        wr_backend_free(be);
    }
}
END_TEST

Suite *wr_test_suite(void) {
    Suite *s = suite_create("strict");
    TCase *tc = tcase_create("modes");
    if (wr_test_size() == 1) tcase_add_test(tc, host_access_faults);
    tcase_add_test(tc, plain_is_host_memory);
    tcase_add_test(tc, strict_round_trip);
    tcase_add_test(tc, strict_copy3d);
    tcase_add_test(tc, async_order);
    tcase_add_test(tc, bf16_operands);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * test_atomic.c — core/atomic_file: temporary names (any legal name fits NAME_MAX), begin /
 * commit / discard, stale temporaries, and the fatal-signal cleanup with real signals sent to
 * a child in the middle of a video write (issue 14).
 *
 * The signal tests do not race the writer: the child's frames end in a page mapped
 * PROT_NONE, so the writer faults on the last frame with every earlier frame in the
 * temporary; the child's SIGSEGV handler tells the parent through a pipe and waits in
 * sigsuspend. The parent waits (bounded) for that byte, checks the temporary exists, sends
 * the signal and checks the child died of it, with no temporary left and the old file intact.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "core/safetensors.h"
#include "harness.h"
#include "io/video.h"
#include "wr_build_config.h"

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(s, f);
    fclose(f);
}

static int file_equals(const char *path, const char *s) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return 0;
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return n == strlen(s) && memcmp(buf, s, n) == 0;
}

static int exists(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* A name of `n` bytes: "n" then 'a'..'z' repeated. */
static void long_name(char *dst, size_t n, char first) {
    dst[0] = first;
    for (size_t i = 1; i < n; i++) dst[i] = (char)('a' + i % 26);
    dst[n] = '\0';
}

/* ---- names ---- */

START_TEST(test_temp_names) {
    char t[4400], name[300], p[4400];
    ck_assert_int_gt(wr_atomic_temp_name(t, sizeof t, "out/clip.mp4", 1234, 255), 0);
    ck_assert_str_eq(t, "out/.clip.mp4.wanrun-tmp.1234");
    ck_assert_int_gt(wr_atomic_temp_name(t, sizeof t, "clip.mp4", 7, 255), 0);
    ck_assert_str_eq(t, ".clip.mp4.wanrun-tmp.7");
    ck_assert_int_gt(wr_atomic_temp_name(t, sizeof t, "/a/frames///", 7, 255), 0);
    ck_assert_str_eq(t, "/a/.frames.wanrun-tmp.7");
    ck_assert_int_eq(wr_atomic_temp_name(t, sizeof t, "dir/", 7, 255), 17);
    ck_assert_str_eq(t, ".dir.wanrun-tmp.7");
    ck_assert_int_eq(wr_atomic_temp_name(t, sizeof t, "", 7, 255), -1);
    ck_assert_int_eq(wr_atomic_temp_name(t, 10, "out/clip.mp4", 1234, 255), -1);
    /* every legal length up to 255 gives a name within 255 bytes, with the tag and the pid */
    for (size_t n = 200; n <= 255; n++) {
        long_name(name, n, 'x');
        snprintf(p, sizeof p, "d/%s", name);
        ck_assert_int_gt(wr_atomic_temp_name(t, sizeof t, p, 4194304, 255), 0);
        const char *base = t + 2;
        ck_assert_msg(strlen(base) <= 255, "%zu-byte name: temporary %zu bytes", n, strlen(base));
        ck_assert_ptr_nonnull(strstr(base, WR_ATOMIC_TMP_TAG "4194304"));
        ck_assert_int_eq(base[0], '.');
    }
    /* two long names sharing their first 240 bytes get different temporaries (the hash) */
    char t2[4400];
    long_name(name, 250, 'x');
    wr_atomic_temp_name(t, sizeof t, name, 1, 255);
    name[245] = 'Z';
    wr_atomic_temp_name(t2, sizeof t2, name, 1, 255);
    ck_assert_str_ne(t, t2);
    ck_assert_ptr_nonnull(strchr(t, '~'));
    /* the cut never splits a UTF-8 sequence ("é" is 0xC3 0xA9) */
    for (size_t i = 0; i + 1 < 250; i += 2) name[i] = (char)0xC3, name[i + 1] = (char)0xA9;
    name[250] = '\0';
    for (long nm = 240; nm <= 255; nm++) {
        wr_atomic_temp_name(t, sizeof t, name, 1, nm);
        const char *tilde = strchr(t, '~');
        ck_assert_ptr_nonnull(tilde);
        ck_assert_msg(((unsigned char)tilde[-1] & 0xC0) != 0xC0, "cut inside a sequence");
        ck_assert_uint_le(strlen(t), (size_t)nm);
    }
}
END_TEST

/* A legal 255-byte output name is written (it used to fail: ".tmp.<pid>" exceeded NAME_MAX);
 * a 256-byte one is refused before anything is written. */
START_TEST(test_longest_names) {
    char dbuf[4096], name[300], path[4400];
    const char *dir = wr_test_dir("long", dbuf, sizeof dbuf);
    for (size_t n = 246; n <= 255; n++) {
        long_name(name, n - strlen(".safetensors"), 'l');
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
        ck_assert_uint_eq(strlen(strrchr(path, '/') + 1), n);
        wr_st_writer *w = NULL;
        ck_assert_int_eq(wr_st_writer_init(&w), WR_OK);
        const float x[2] = {1, 2};
        ck_assert_int_eq(wr_st_writer_add(w, "x", WR_DTYPE_F32, 1, (int64_t[]){2}, x), WR_OK);
        ck_assert_msg(wr_st_writer_write(w, path) == WR_OK, "%zu bytes: %s", n, wr_error_detail());
        wr_st_writer_free(w);
        ck_assert(exists(path));
        /* a video (a file) and a PNG directory of the same length */
        long_name(name, n - 4, 'v');
        snprintf(path, sizeof path, "%s/%s.y4m", dir, name);
        float frames[3 * 2 * 2] = {0};
        ck_assert_msg(wr_video_write(path, WR_VIDEO_AUTO, frames, 1, 2, 2, 16) == WR_OK, "%s",
                      wr_error_detail());
        long_name(name, n, 'p');
        snprintf(path, sizeof path, "%s/%s", dir, name);
        ck_assert_msg(wr_video_write(path, WR_VIDEO_PNG, frames, 1, 2, 2, 16) == WR_OK, "%s",
                      wr_error_detail());
    }
    ck_assert_int_eq(wr_test_count_entries(dir, WR_ATOMIC_TMP_TAG), 0);
    long_name(name, 256, 'q');
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ck_assert_int_eq(wr_atomic_check(path, WR_ATOMIC_FILE), WR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "256 bytes"));
    wr_test_rmtree(dir);
}
END_TEST

/* ---- begin / commit / discard ---- */

START_TEST(test_begin_commit_discard) {
    char dbuf[4096], path[4400], child[4400];
    const char *dir = wr_test_dir("bcd", dbuf, sizeof dbuf);
    snprintf(path, sizeof path, "%s/out.bin", dir);
    write_text(path, "old");
    wr_atomic a;
    ck_assert_int_eq(wr_atomic_begin(&a, path, WR_ATOMIC_FILE), WR_OK);
    ck_assert(exists(a.tmp));
    ck_assert_int_ge(a.fd, 0);
    ck_assert_int_eq(write(a.fd, "new", 3), 3);
    ck_assert(file_equals(path, "old"));
    wr_atomic_discard(&a);
    ck_assert(file_equals(path, "old"));
    ck_assert_int_eq(wr_test_count_entries(dir, WR_ATOMIC_TMP_TAG), 0);
    wr_atomic_discard(&a); /* released: does nothing */
    ck_assert_int_eq(wr_atomic_begin(&a, path, WR_ATOMIC_FILE), WR_OK);
    ck_assert_int_eq(write(a.fd, "new", 3), 3);
    ck_assert_int_eq(wr_atomic_commit(&a), WR_OK);
    ck_assert(file_equals(path, "new"));
    ck_assert_int_eq(wr_test_count_entries(dir, WR_ATOMIC_TMP_TAG), 0);
    /* a directory with children; discarded, then committed */
    snprintf(path, sizeof path, "%s/frames", dir);
    ck_assert_int_eq(wr_atomic_begin_dir(&a, path, "f_", ".txt"), WR_OK);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(wr_atomic_child(&a, i, child, sizeof child), WR_OK);
        write_text(child, "x");
    }
    ck_assert_ptr_nonnull(strstr(child, "/f_00002.txt"));
    wr_atomic_discard(&a);
    ck_assert(!exists(path));
    ck_assert_int_eq(wr_test_count_entries(dir, WR_ATOMIC_TMP_TAG), 0);
    ck_assert_int_eq(wr_atomic_begin_dir(&a, path, "f_", ".txt"), WR_OK);
    ck_assert_int_eq(wr_atomic_child(&a, 123456, child, sizeof child), WR_OK);
    ck_assert_ptr_nonnull(strstr(child, "/f_123456.txt"));
    write_text(child, "x");
    ck_assert_int_eq(wr_atomic_commit(&a), WR_OK);
    snprintf(child, sizeof child, "%s/frames/f_123456.txt", dir);
    ck_assert(file_equals(child, "x"));
    /* checks: a missing directory (IO), a directory where a file goes, a file where a
     * directory goes (INVALID_ARG); nothing created */
    snprintf(path, sizeof path, "%s/no/such/x.bin", dir);
    ck_assert_int_eq(wr_atomic_begin(&a, path, WR_ATOMIC_FILE), WR_ERR_IO);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "does not exist"));
    snprintf(path, sizeof path, "%s/frames", dir);
    ck_assert_int_eq(wr_atomic_check(path, WR_ATOMIC_FILE), WR_ERR_INVALID_ARG);
    snprintf(path, sizeof path, "%s/out.bin", dir);
    ck_assert_int_eq(wr_atomic_check(path, WR_ATOMIC_DIR), WR_ERR_INVALID_ARG);
    ck_assert_int_eq(wr_atomic_check("..", WR_ATOMIC_FILE), WR_ERR_INVALID_ARG);
    ck_assert_int_eq(wr_atomic_check("", WR_ATOMIC_FILE), WR_ERR_INVALID_ARG);
    snprintf(path, sizeof path, "%s/fifo", dir); /* not /dev/null: see test_cli.sh */
    ck_assert_int_eq(mkfifo(path, 0644), 0);
    ck_assert_int_eq(wr_atomic_check(path, WR_ATOMIC_FILE), WR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "not a regular file"));
    ck_assert_int_eq(wr_test_count_entries(dir, WR_ATOMIC_TMP_TAG), 0);
    wr_test_rmtree(dir);
}
END_TEST

/* A stale temporary with this process's pid (a dead owner whose pid was reused) is replaced;
 * one of another, dead pid is left (and warned about) and never read. */
START_TEST(test_stale) {
    char dbuf[4096], path[4400], stale[4400], other[4400];
    const char *dir = wr_test_dir("stale", dbuf, sizeof dbuf);
    snprintf(path, sizeof path, "%s/clip.y4m", dir);
    ck_assert_int_gt(wr_atomic_temp_name(stale, sizeof stale, path, (long)getpid(), 0), 0);
    write_text(stale, "garbage of a killed run");
    /* a dead pid: a child that has exited and been reaped */
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    ck_assert_int_gt(dead, 0);
    waitpid(dead, NULL, 0);
    ck_assert_int_gt(wr_atomic_temp_name(other, sizeof other, path, (long)dead, 0), 0);
    write_text(other, "garbage of another killed run");
    float frames[3 * 4] = {0.5f};
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, frames, 1, 2, 2, 16), WR_OK);
    ck_assert(!exists(stale));
    ck_assert(file_equals(other, "garbage of another killed run"));
    ck_assert_int_eq(wr_test_count_entries(dir, WR_ATOMIC_TMP_TAG), 1);
    wr_test_rmtree(dir);
}
END_TEST

/* ---- signals ---- */

static int g_notify_fd = -1;

/* In a forked child: the dispositions of a fresh process (Check's runner handles SIGINT,
 * SIGTERM and SIGALRM itself), then the atomic_file handler and our fault catcher. */
static void child_setup(int notify_fd);

/* The child's writer touched the protected last frame: tell the parent, wait for its signal
 * (which the atomic_file handler turns into cleanup + death by that signal). */
static void on_segv(int sig) {
    (void)sig;
    const char b = 'w';
    ssize_t r = write(g_notify_fd, &b, 1);
    (void)r;
    sigset_t none;
    sigemptyset(&none);
    for (;;) sigsuspend(&none);
}

static void child_setup(int notify_fd) {
    g_notify_fd = notify_fd;
    const int reset[] = {SIGHUP, SIGINT, SIGTERM, SIGALRM};
    for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++) signal(reset[i], SIG_DFL);
    if (wr_atomic_handle_signals() < 3) _exit(90);
    struct sigaction cur;
    sigaction(SIGTERM, NULL, &cur);
    if (cur.sa_handler == SIG_DFL) _exit(92); /* not installed */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

/* [3, n, h, w] frames whose plane (channel 0, frame n-1) starts a PROT_NONE page range. */
static float *guarded_frames(int64_t n, int64_t h, int64_t w, size_t *map_bytes) {
    const size_t plane = sizeof(float) * (size_t)(h * w);
    const size_t bytes = plane * 3 * (size_t)n;
    const long pg = sysconf(_SC_PAGESIZE);
    ck_assert_uint_eq(plane % (size_t)pg, 0);
    float *v = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(v != MAP_FAILED);
    for (size_t i = 0; i < bytes / sizeof(float); i++) v[i] = (float)(i % 97) / 97.0f;
    ck_assert_int_eq(mprotect((char *)v + plane * (size_t)(n - 1), plane, PROT_NONE), 0);
    *map_bytes = bytes;
    return v;
}

/* Waits up to 60 s for one byte on fd; 1 when it came. */
static int wait_byte(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    for (;;) {
        int r = poll(&p, 1, 60000);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 0;
        char b;
        return read(fd, &b, 1) == 1;
    }
}

/* One write of `name` (its format from the name) in a child killed by `sig` mid-write. */
static void signal_during_write(const char *dir, const char *name, int sig) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    const int is_dir = strchr(name, '.') == NULL;
    if (!is_dir) write_text(path, "previous output");
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        child_setup(fds[1]);
        size_t mb = 0;
        const int64_t n = 4, h = 32, w = 32;
        float *v = guarded_frames(n, h, w, &mb);
        wr_video_write(path, WR_VIDEO_AUTO, v, n, h, w, 16);
        _exit(91); /* not reached: the writer faults on the last frame */
    }
    close(fds[1]);
    const int woke = wait_byte(fds[0]);
    close(fds[0]);
    if (!woke) kill(pid, SIGKILL);
    ck_assert_msg(woke, "%s: the child never reached the last frame", name);
    ck_assert_int_eq(wr_test_count_entries(dir, WR_ATOMIC_TMP_TAG), 1); /* mid-write */
    ck_assert_int_eq(kill(pid, sig), 0);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == sig,
                  "%s: child status 0x%x, expected death by signal %d", name, status, sig);
    ck_assert_msg(wr_test_count_entries(dir, WR_ATOMIC_TMP_TAG) == 0, "%s: a temporary is left",
                  name);
    if (is_dir)
        ck_assert(!exists(path));
    else
        ck_assert_msg(file_equals(path, "previous output"), "%s: the old file changed", name);
}

START_TEST(test_signal_cleanup) {
    char dbuf[4096];
    const char *dir = wr_test_dir("signals", dbuf, sizeof dbuf);
    const int sigs[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int k = 0; k < 3; k++) {
        signal_during_write(dir, "clip.y4m", sigs[k]);
        signal_during_write(dir, "frames", sigs[k]);
#if WR_HAVE_FFMPEG
        signal_during_write(dir, "clip.mp4", sigs[k]);
#endif
    }
    wr_test_rmtree(dir);
}
END_TEST

/* SIGKILL cannot be caught: the temporary stays, recognisable by name, and harmless: the
 * next write of the same output succeeds and does not read it. */
START_TEST(test_sigkill_leaves_recognisable_temp) {
    char dbuf[4096], path[4400], want[4400];
    const char *dir = wr_test_dir("sigkill", dbuf, sizeof dbuf);
    snprintf(path, sizeof path, "%s/clip.y4m", dir);
    write_text(path, "previous output");
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        child_setup(fds[1]);
        size_t mb = 0;
        float *v = guarded_frames(4, 32, 32, &mb);
        wr_video_write(path, WR_VIDEO_AUTO, v, 4, 32, 32, 16);
        _exit(91);
    }
    close(fds[1]);
    const int woke = wait_byte(fds[0]);
    close(fds[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_assert(woke);
    ck_assert_int_gt(wr_atomic_temp_name(want, sizeof want, path, (long)pid, 0), 0);
    ck_assert_msg(exists(want), "expected the stale temporary %s", want);
    ck_assert(file_equals(path, "previous output"));
    float frames[3 * 4] = {0.25f};
    ck_assert_int_eq(wr_video_write(path, WR_VIDEO_AUTO, frames, 1, 2, 2, 16), WR_OK);
    ck_assert(!file_equals(path, "previous output"));
    wr_test_rmtree(dir);
}
END_TEST

Suite *wr_test_suite(void) {
    Suite *s = suite_create("atomic_file");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_temp_names);
    tcase_add_test(tc, test_longest_names);
    tcase_add_test(tc, test_begin_commit_discard);
    tcase_add_test(tc, test_stale);
    tcase_add_test(tc, test_signal_cleanup);
    tcase_add_test(tc, test_sigkill_leaves_recognisable_temp);
    suite_add_tcase(s, tc);
    return s;
}

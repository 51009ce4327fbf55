/*
 * bench_util.h — what the CPU benchmarks share (header-only: each bench is one executable):
 * a monotonic clock, a qsort comparator for medians, the peak RSS, and the share of the
 * machine's CPU that other processes took during a timed region (a noise indicator on a
 * shared host: the runs where it is high are not quoted).
 */
#ifndef WR_BENCH_UTIL_H
#define WR_BENCH_UTIL_H

#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bench_cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline double bench_maxrss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

/* CPU seconds of the whole machine (busy, total) from /proc/stat and of this process
 * (user + system): others' share of the machine during a timed region is
 * (busy - own) / total (0 where /proc/stat is absent). */
typedef struct cpu_snap {
    double busy, total, own;
} cpu_snap;

static inline cpu_snap cpu_snap_now(void) {
    cpu_snap s = {0, 0, 0};
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) == 8) {
            const double hz = (double)sysconf(_SC_CLK_TCK);
            s.busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;
            s.total = s.busy + (double)(v[3] + v[4]) / hz;
        }
        fclose(f);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    s.own = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
            (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
    return s;
}

static inline double others_share(cpu_snap a, cpu_snap b) {
    const double tot = b.total - a.total, oth = (b.busy - a.busy) - (b.own - a.own);
    return tot > 0 ? (oth > 0 ? oth / tot : 0.0) : 0.0;
}

#endif /* WR_BENCH_UTIL_H */

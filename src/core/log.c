/* log.c — rank-prefixed, level-filtered lines on stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int g_rank = 0;
static int g_size = 1;
static wr_log_level g_level = WR_LOG_INFO;

static const char *const level_words[WR_LOG_LEVEL_COUNT] = {"error", "warn", "info", "debug",
                                                            "trace"};

int wr_log_level_parse(const char *s) {
    if (s == NULL || *s == '\0') return -1;
    for (int i = 0; i < WR_LOG_LEVEL_COUNT; i++)
        if (strcasecmp(s, level_words[i]) == 0) return i;
    if (s[1] == '\0' && s[0] >= '0' && s[0] < '0' + WR_LOG_LEVEL_COUNT) return s[0] - '0';
    return -1;
}

void wr_log_init(void) {
    const char *env = getenv("WR_LOG_LEVEL");
    if (env == NULL) return;
    int lv = wr_log_level_parse(env);
    if (lv < 0)
        wr_log(WR_LOG_WARN,
               "WR_LOG_LEVEL=%s is not one of error|warn|info|debug|trace|0..4; "
               "using info",
               env);
    else
        g_level = (wr_log_level)lv;
}

void wr_log_set_rank(int rank, int size) {
    g_rank = rank;
    g_size = size;
}

void wr_log_set_level(wr_log_level level) {
    g_level = level;
}

wr_log_level wr_log_get_level(void) {
    return g_level;
}

int wr_log_rank(void) {
    return g_rank;
}

static void vlog(wr_log_level level, const char *fmt, va_list ap) {
    char msg[4096];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (level == WR_LOG_INFO)
        fprintf(stderr, "[%d/%d] %s\n", g_rank, g_size, msg);
    else
        fprintf(stderr, "[%d/%d] %s: %s\n", g_rank, g_size, level_words[level], msg);
}

void wr_log(wr_log_level level, const char *fmt, ...) {
    if (level > g_level) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void wr_log_rank0(const char *fmt, ...) {
    if (g_rank != 0 || g_level < WR_LOG_INFO) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(WR_LOG_INFO, fmt, ap);
    va_end(ap);
}

double wr_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/*
 * log.h — rank-prefixed diagnostics on stderr.
 *
 * Every line is "[r/R] LEVEL: message" (the level word is omitted for INFO). The threshold
 * comes from WR_LOG_LEVEL (error|warn|info|debug|trace or 0..4) at wr_log_init(), and can be
 * lowered by `--verbose` through wr_log_set_level(). Progress lines use wr_log_rank0(), which
 * prints on rank 0 only. Thread-safe: each line is written with one fprintf call.
 */
#ifndef WR_CORE_LOG_H
#define WR_CORE_LOG_H

typedef enum wr_log_level {
    WR_LOG_ERROR = 0,
    WR_LOG_WARN,
    WR_LOG_INFO,
    WR_LOG_DEBUG,
    WR_LOG_TRACE,
    WR_LOG_LEVEL_COUNT
} wr_log_level;

/* Reads WR_LOG_LEVEL; an unknown value keeps INFO and prints one warning. */
void wr_log_init(void);
void wr_log_set_rank(int rank, int size);
void wr_log_set_level(wr_log_level level);
wr_log_level wr_log_get_level(void);
int wr_log_rank(void);

/* Parses "error".."trace" or "0".."4"; returns -1 when unknown. */
int wr_log_level_parse(const char *s);

void wr_log(wr_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* INFO on rank 0 only. */
void wr_log_rank0(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define wr_error(...) wr_log(WR_LOG_ERROR, __VA_ARGS__)
#define wr_warn(...)  wr_log(WR_LOG_WARN, __VA_ARGS__)
#define wr_info(...)  wr_log(WR_LOG_INFO, __VA_ARGS__)
#define wr_debug(...) wr_log(WR_LOG_DEBUG, __VA_ARGS__)

/* Seconds of CLOCK_MONOTONIC: the clock of every timing, span and timeline in wanrun. */
double wr_now_s(void);

#endif /* WR_CORE_LOG_H */

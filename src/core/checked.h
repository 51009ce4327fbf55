/*
 * checked.h — integer arithmetic that cannot wrap: products and sums of sizes computed from
 * config values and requests (the planner, the loaders). Saturating forms return UINT64_MAX
 * (INT64_MAX) instead of wrapping, so an absurd size becomes "more memory than exists", never a
 * small number; the checked form reports overflow to the caller. Header-only, no state.
 */
#ifndef WR_CORE_CHECKED_H
#define WR_CORE_CHECKED_H

#include <stdint.h>

/* a * b, or UINT64_MAX when it does not fit. */
static inline uint64_t wr_mul_sat_u64(uint64_t a, uint64_t b) {
    uint64_t p;
    return __builtin_mul_overflow(a, b, &p) ? UINT64_MAX : p;
}

/* a + b, or UINT64_MAX when it does not fit. */
static inline uint64_t wr_add_sat_u64(uint64_t a, uint64_t b) {
    uint64_t s;
    return __builtin_add_overflow(a, b, &s) ? UINT64_MAX : s;
}

/* a * b of non-negative values, or INT64_MAX when it does not fit (or an operand is negative). */
static inline int64_t wr_mul_sat_i64(int64_t a, int64_t b) {
    int64_t p;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &p)) return INT64_MAX;
    return p;
}

#endif /* WR_CORE_CHECKED_H */

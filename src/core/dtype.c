/*
 * dtype.c — element types and PyTorch-exact conversions.
 *
 * The rounding is integer-only round-to-nearest-even (no floating-point tricks, so the result
 * does not depend on the FP environment or -ffast-math). NaN handling follows what PyTorch's
 * CPU casts of contiguous tensors produce (x86 vectorised paths), as recorded in
 * tests/data/dtype/dtype_tables.safetensors:
 *   f32 -> bf16: every NaN becomes 0xFFFF;
 *   f32 -> f16: NaN keeps sign and top payload bits, quiet bit set (F16C vcvtps2ph);
 *   f16 -> f32 (and e5m2 -> f32): NaN payload kept, quiet bit set (vcvtph2ps);
 *   e4m3fn -> f32: NaN is sign | 0x7FF00000;
 *   f32 -> e4m3fn: saturating: |x| that rounds past 448, and +-inf, become +-448 (0x7E);
 *                  NaN -> sign | 0x7F (PyTorch >= 2.x casts saturate for this type);
 *   f32 -> e5m2: |x| >= 65536 and inf -> sign | 0x7C (inf); NaN -> sign | 0x7F.
 */
#include "dtype.h"

#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
    int is_float;
} dtype_info[WR_DTYPE_COUNT] = {
    [WR_DTYPE_F32] = {"F32", 4, 1},         [WR_DTYPE_F16] = {"F16", 2, 1},
    [WR_DTYPE_BF16] = {"BF16", 2, 1},       [WR_DTYPE_F8_E4M3] = {"F8_E4M3", 1, 1},
    [WR_DTYPE_F8_E5M2] = {"F8_E5M2", 1, 1}, [WR_DTYPE_F64] = {"F64", 8, 1},
    [WR_DTYPE_I64] = {"I64", 8, 0},         [WR_DTYPE_I32] = {"I32", 4, 0},
    [WR_DTYPE_I16] = {"I16", 2, 0},         [WR_DTYPE_I8] = {"I8", 1, 0},
    [WR_DTYPE_U8] = {"U8", 1, 0},           [WR_DTYPE_BOOL] = {"BOOL", 1, 0},
};

size_t wr_dtype_size(wr_dtype t) {
    return (unsigned)t < WR_DTYPE_COUNT ? dtype_info[t].size : 0;
}

const char *wr_dtype_name(wr_dtype t) {
    return (unsigned)t < WR_DTYPE_COUNT ? dtype_info[t].name : "?";
}

int wr_dtype_is_float(wr_dtype t) {
    return (unsigned)t < WR_DTYPE_COUNT && dtype_info[t].is_float;
}

int wr_dtype_parse(const char *s, wr_dtype *out) {
    for (int i = 0; i < WR_DTYPE_COUNT; i++) {
        if (strcmp(s, dtype_info[i].name) == 0) {
            *out = (wr_dtype)i;
            return 0;
        }
    }
    return -1;
}

/* ---- bit helpers ---- */

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float f32_from(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/*
 * Rounds the finite, non-negative f32 with bits `a` to a binary format with `mbits` mantissa
 * bits and exponent bias `bias`, round-to-nearest-even, handling that format's subnormals.
 * Returns the magnitude encoding (exponent << mbits | mantissa); a carry out of the largest
 * finite value yields the next exponent (the caller maps it to inf/NaN as the format wants).
 */
static uint32_t round_to_format(uint32_t a, int mbits, int bias) {
    int e = (int)(a >> 23) - 127; /* unbiased exponent; f32 subnormals are far below range */
    uint32_t frac = a & 0x7FFFFFu;
    if ((a >> 23) == 0) return 0; /* f32 zero or subnormal: below every narrow subnormal */
    uint32_t m = frac | 0x800000u;
    int shift;
    uint32_t base;
    if (e >= 1 - bias) { /* normal */
        shift = 23 - mbits;
        base = (uint32_t)(e + bias) << mbits;
        m = frac;
    } else { /* subnormal in the target: unit is 2^(1-bias-mbits) */
        shift = 24 - bias - mbits - e;
        base = 0;
        if (shift >= 25) return 0; /* below half the smallest subnormal (ties impossible) */
    }
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return base + q;
}

/* ---- bf16 ---- */

float wr_bf16_to_f32(uint16_t h) {
    return f32_from((uint32_t)h << 16);
}

uint16_t wr_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0xFFFF;
    uint32_t bias = 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)((u + bias) >> 16);
}

/* ---- f16 ---- */

float wr_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu;
    uint32_t m = h & 0x3FFu;
    if (e == 0x1F) return f32_from(sign | 0x7F800000u | (m ? 0x400000u | (m << 13) : 0));
    if (e == 0) { /* zero or subnormal: m * 2^-24, exact in f32 */
        float v = (float)m * 0x1p-24f;
        return sign ? -v : v;
    }
    return f32_from(sign | ((e + 112u) << 23) | (m << 13));
}

uint16_t wr_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
    if (a >= 0x47800000u) return sign | 0x7C00u; /* >= 65536 (and inf) */
    uint32_t r = round_to_format(a, 10, 15);     /* 65520..65535 carries into 0x7C00 = inf */
    return (uint16_t)(sign | r);
}

/* ---- float8_e4m3fn ---- */

float wr_e4m3_to_f32(uint8_t v) {
    uint32_t sign = (uint32_t)(v & 0x80u) << 24;
    uint32_t e = (v >> 3) & 0xFu;
    uint32_t m = v & 0x7u;
    if (e == 0xF && m == 0x7) return f32_from(sign | 0x7FF00000u);
    if (e == 0) {
        float x = (float)m * 0x1p-9f;
        return sign ? -x : x;
    }
    return f32_from(sign | ((e + 120u) << 23) | (m << 20));
}

uint8_t wr_f32_to_e4m3(float f) {
    uint32_t u = f32_bits(f);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return sign | 0x7Fu; /* NaN */
    /* >= 464 (the midpoint to the next step, 480, ties to even = 448) and inf saturate */
    return (uint8_t)(sign | (a >= 0x43E80000u ? 0x7Eu : round_to_format(a, 3, 7)));
}

/* ---- float8_e5m2 ---- */

float wr_e5m2_to_f32(uint8_t v) {
    return wr_f16_to_f32((uint16_t)((uint16_t)v << 8));
}

uint8_t wr_f32_to_e5m2(float f) {
    uint32_t u = f32_bits(f);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return sign | 0x7Fu;
    if (a >= 0x47800000u) return sign | 0x7Cu; /* >= 65536 and inf -> inf */
    return (uint8_t)(sign | round_to_format(a, 2, 15));
}

/* ---- bulk conversion ---- */

static float load_f32(const void *src, wr_dtype st, int64_t i) {
    switch (st) {
    case WR_DTYPE_F32:
        return ((const float *)src)[i];
    case WR_DTYPE_F16:
        return wr_f16_to_f32(((const uint16_t *)src)[i]);
    case WR_DTYPE_BF16:
        return wr_bf16_to_f32(((const uint16_t *)src)[i]);
    case WR_DTYPE_F8_E4M3:
        return wr_e4m3_to_f32(((const uint8_t *)src)[i]);
    case WR_DTYPE_F8_E5M2:
        return wr_e5m2_to_f32(((const uint8_t *)src)[i]);
    case WR_DTYPE_F64:
        return (float)((const double *)src)[i];
    default:
        return NAN;
    }
}

wr_status wr_dtype_convert(void *dst, wr_dtype dt, const void *src, wr_dtype st, int64_t n) {
    if (n <= 0) return WR_OK;
    if (dt == st) {
        memcpy(dst, src, (size_t)n * wr_dtype_size(st));
        return WR_OK;
    }
    if (!wr_dtype_is_float(dt) || !wr_dtype_is_float(st))
        return WR_FAIL(WR_ERR_UNSUPPORTED, "conversion from %s to %s is not supported",
                       wr_dtype_name(st), wr_dtype_name(dt));
    /* The common loading paths get tight loops; the rest go through load_f32. */
    if (dt == WR_DTYPE_F32 && st == WR_DTYPE_BF16) {
        const uint16_t *s = src;
        uint32_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = (uint32_t)s[i] << 16;
        return WR_OK;
    }
    switch (dt) {
    case WR_DTYPE_F32: {
        float *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = load_f32(src, st, i);
        break;
    }
    case WR_DTYPE_F64: {
        double *d = dst; /* every narrower float is exact in f32, so this is exact */
        for (int64_t i = 0; i < n; i++) d[i] = (double)load_f32(src, st, i);
        break;
    }
    case WR_DTYPE_F16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = wr_f32_to_f16(load_f32(src, st, i));
        break;
    }
    case WR_DTYPE_BF16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = wr_f32_to_bf16(load_f32(src, st, i));
        break;
    }
    case WR_DTYPE_F8_E4M3: {
        uint8_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = wr_f32_to_e4m3(load_f32(src, st, i));
        break;
    }
    case WR_DTYPE_F8_E5M2: {
        uint8_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = wr_f32_to_e5m2(load_f32(src, st, i));
        break;
    }
    default:
        return WR_FAIL(WR_ERR_INTERNAL, "unhandled dtype %s", wr_dtype_name(dt));
    }
    return WR_OK;
}

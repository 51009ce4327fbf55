/*
 * dtype.h — element types and conversions.
 *
 * Conversions reproduce PyTorch's CPU casts bit for bit (round-to-nearest-even, PyTorch's NaN
 * patterns, float8_e4m3fn's saturation to +-448 and float8_e5m2's overflow to inf); the tests check
 * every bf16/f16/fp8 bit pattern against tables PyTorch produced (tests/data/dtype/).
 * No function here allocates or fails except wr_dtype_convert, whose only failure is an
 * unsupported pair.
 */
#ifndef WR_CORE_DTYPE_H
#define WR_CORE_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef enum wr_dtype {
    WR_DTYPE_F32 = 0,
    WR_DTYPE_F16,
    WR_DTYPE_BF16,
    WR_DTYPE_F8_E4M3, /* torch.float8_e4m3fn: no inf, NaN = S.1111.111, max 448, casts saturate */
    WR_DTYPE_F8_E5M2, /* torch.float8_e5m2: IEEE-like, max 57344, inf and NaN */
    WR_DTYPE_F64,
    WR_DTYPE_I64,
    WR_DTYPE_I32,
    WR_DTYPE_I16,
    WR_DTYPE_I8,
    WR_DTYPE_U8,
    WR_DTYPE_BOOL,
    WR_DTYPE_COUNT
} wr_dtype;

/* Bytes per element. */
size_t wr_dtype_size(wr_dtype t);
/* The safetensors spelling ("F32", "BF16", "F8_E4M3", ...). */
const char *wr_dtype_name(wr_dtype t);
/* Parses a safetensors dtype string; returns 0 and sets *out, or -1 when unknown. */
int wr_dtype_parse(const char *s, wr_dtype *out);
/* 1 for the floating types. */
int wr_dtype_is_float(wr_dtype t);

/* ---- scalar conversions (bit patterns in, bit patterns or floats out) ---- */
float wr_bf16_to_f32(uint16_t h);
uint16_t wr_f32_to_bf16(float f);
float wr_f16_to_f32(uint16_t h);
uint16_t wr_f32_to_f16(float f);
float wr_e4m3_to_f32(uint8_t v);
uint8_t wr_f32_to_e4m3(float f);
float wr_e5m2_to_f32(uint8_t v);
uint8_t wr_f32_to_e5m2(float f);

/*
 * Converts n elements from src (type st) to dst (type dt). Float types convert through f32
 * with the rules above; same-type copies are memcpy. Buffers must not overlap. Integer and
 * bool conversions are not supported here: WR_ERR_UNSUPPORTED naming the pair.
 */
wr_status wr_dtype_convert(void *dst, wr_dtype dt, const void *src, wr_dtype st, int64_t n);

#endif /* WR_CORE_DTYPE_H */

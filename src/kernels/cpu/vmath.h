/*
 * vmath.h — branch-free float exp for the CPU kernels' hot loops.
 *
 * libm's expf/tanhf are scalar calls, and in GELU-tanh and the attention softmax they cost more
 * than the arithmetic around them. wr_vexpf is written so a `#pragma omp simd` loop vectorises
 * it: no branches, no calls, the power of two built from the exponent bits. (Files using it
 * are compiled with -fno-trapping-math, without which GCC will not if-convert the clamps.)
 *
 * Method: clamp x to [-87, 88] (so 2^n stays a normal float), n = round(x / ln2) by the
 * 1.5 * 2^23 shifter, r = x - n ln2 with ln2 split in two (Cody–Waite, r exact to ~1 ulp),
 * e^r on |r| <= ln2/2 by a degree-7 polynomial (Cephes' expf coefficients), times 2^n.
 * Error < 1 ulp against the correctly rounded e^x for every float in [-87, 88] (measured
 * exhaustively against double exp; test_ops re-checks a sample); inputs
 * below -87 give ~1.6e-38 instead of 0, which callers that need an exact 0 (masked keys)
 * handle themselves.
 */
#ifndef WR_KERNELS_CPU_VMATH_H
#define WR_KERNELS_CPU_VMATH_H

#include <stdint.h>
#include <string.h>

/*
 * Hot loops marked WR_VMATH_CLONES are compiled for AVX-512, AVX2+FMA and the baseline, the
 * version picked at load time by the CPU (GCC target_clones on x86-64 Linux; plain elsewhere
 * and under the sanitizers: a clone's resolver runs during relocation, before ThreadSanitizer's
 * runtime is initialised, and crashes in its instrumentation).
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) &&       \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define WR_VMATH_CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define WR_VMATH_CLONES
#endif

static inline float wr_vexpf(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float t = x * 1.44269504088896341f + shifter;
    float n = t - shifter;
    float r = x - n * 0.693359375f; /* ln2 high part, exact in float */
    r = r - n * -2.12194440e-4f;    /* ln2 low part */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t ti, ni;
    memcpy(&ti, &t, sizeof ti);
    ni = (ti - 0x4B400000) + 127; /* n + bias; t's mantissa holds 1.5 * 2^23 + n */
    ni = (int32_t)((uint32_t)ni << 23);
    float scale;
    memcpy(&scale, &ni, sizeof scale);
    return p * scale;
}

#endif /* WR_KERNELS_CPU_VMATH_H */

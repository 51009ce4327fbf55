/*
 * conv_internal.h — the CPU backend's two conv3d implementations (conv.c chooses):
 * an implicit GEMM over OpenBLAS (any x86-64 / other CPU) and a direct AVX-512 kernel.
 */
#ifndef WR_KERNELS_CPU_CONV_INTERNAL_H
#define WR_KERNELS_CPU_CONV_INTERNAL_H

#include "kernels/backend.h"

/* Which implementation conv3d_cpu uses (tests and benchmarks; default from the environment
 * variable WR_CONV_IMPL = gemm | direct, else auto: direct where supported, except 1x1x1
 * convolutions without padding or cache, which are one plain GEMM). Not thread-safe. */
enum { WR_CONV_AUTO = 0, WR_CONV_GEMM = 1, WR_CONV_DIRECT = 2 };
void wr_conv_set_impl(int impl);

/* The weight as f32: w's own data, or a converted copy in the op scratch (the caller restores
 * the scratch mark). n = its elements. */
wr_status wr_conv_weight_f32(wr_backend *be, const wr_tensor *w, int64_t n, const float **wf);

/* 1 when this CPU runs the direct kernel (AVX-512F). */
int wr_conv_direct_supported(void);
/* conv3d_cpu's contract (shapes checked by wr_op_conv3d); WR_ERR_UNSUPPORTED off x86-64. */
/* Temporaries from the op scratch: the caller restores the mark. */
wr_status wr_conv3d_direct(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *cache,
                           const wr_tensor *w, const wr_tensor *b, const wr_conv_params *p);

#endif /* WR_KERNELS_CPU_CONV_INTERNAL_H */

/*
 * cpu_internal.h — the CPU backend's op implementations (one file per op family, each
 * function suffixed _cpu). Only backend_cpu.c puts them in the vtable; nothing else calls them.
 * All compute is f32; weights in narrower types are converted per use in bounded panels.
 */
#ifndef WR_KERNELS_CPU_CPU_INTERNAL_H
#define WR_KERNELS_CPU_CPU_INTERNAL_H

#include "kernels/backend.h"

wr_status matmul_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                     const wr_tensor *b, float alpha);
wr_status layer_norm_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                         const wr_tensor *b, float eps);
wr_status rms_norm_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                       float eps);
wr_status gelu_tanh_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x);
wr_status silu_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x);
wr_status add_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *a, const wr_tensor *b);
wr_status mul_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *a, const wr_tensor *b);
wr_status modulate_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *scale,
                       const wr_tensor *shift);
wr_status gated_residual_cpu(wr_backend *be, wr_tensor *x, const wr_tensor *a,
                             const wr_tensor *gate);
wr_status rope_cpu(wr_backend *be, wr_tensor *x, const wr_tensor *cos, const wr_tensor *sin);
wr_status attention_cpu(wr_backend *be, wr_tensor *out, wr_tensor *lse, const wr_tensor *q,
                        const wr_tensor *k, const wr_tensor *v, const wr_attn_params *p);
wr_status patch_embed_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                          const wr_tensor *b, int64_t n0);
wr_status attn_merge_cpu(wr_backend *be, wr_tensor *o, wr_tensor *lse, const wr_tensor *o2,
                         const wr_tensor *lse2);
wr_status copy2d_cpu(wr_backend *be, float *dst, int64_t dld, const float *src, int64_t sld,
                     int64_t rows, int64_t cols);
wr_status unpatchify_cpu(wr_backend *be, wr_tensor *out, const wr_tensor *y, int pt, int ph,
                         int pw);
wr_status conv3d_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *cache,
                     const wr_tensor *w, const wr_tensor *b, const wr_conv_params *p);
wr_status upsample2x_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x);
wr_status rms_norm_channels_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                                const wr_tensor *gamma);
wr_status gather_rows_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *table, const int32_t *idx);
wr_status transpose_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x);
wr_status clamp_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x, float lo, float hi);
wr_status channel_affine_cpu(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                             const wr_tensor *scale, const wr_tensor *shift);
wr_status blend_cpu(wr_backend *be, wr_tensor *dst, const wr_tensor *a, int64_t e);

/* exec.c: the vtable (plain, strict and async modes) and its state in be->impl */
wr_status wr_cpu_exec_init(wr_backend *be);
void wr_cpu_exec_release(wr_backend *be);

#endif /* WR_KERNELS_CPU_CPU_INTERNAL_H */

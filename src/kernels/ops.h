/*
 * ops.h — the op wrappers every model calls: check shapes and dtypes once (a mismatch is our
 * own bug: WR_ASSERT with both shapes), then dispatch to the backend's slot. A NULL slot is
 * WR_ERR_UNSUPPORTED naming the op and backend. Tensors are backend memory; activations f32.
 *
 * Shapes (PyTorch order, rows = all leading dims flattened):
 *   matmul        y [.., N]  = x [.., K] . w [N, K]^T + b [N]      (w: any float dtype)
 *   layer_norm    y = LN(x) over the last dim, w/b [D] or NULL
 *   rms_norm      y = x * rsqrt(mean(x^2) + eps) * w over the last dim (the full width)
 *   gelu_tanh, silu: elementwise, y same shape as x (may alias)
 *   add, mul      y = a op b; b has a's shape or is [D] broadcast over rows (y may alias a)
 *   modulate      y = x * (1 + scale) + shift; scale, shift [D]
 *   gated_residual x += a * gate; gate [D] or NULL
 *   rope          x [L, NH, HD] rotated in place by cos/sin [L, HD/2] (pairs (2p, 2p+1))
 *   attention     q [Lq, NH, HD], k/v [Lk, NH, HD] -> out [Lq, NH, HD]; lse [NH, Lq] or NULL;
 *                 optional key mask and relative position bias (wr_attn_params)
 *   patch_embed   x [C, F, H, W], w [D, C, pt, ph, pw], b [D] -> y [(F/pt)(H/ph)(W/pw), D];
 *                 _rows: y [n, D], the tokens n0 .. n0 + n - 1 only (a context-parallel shard)
 *   attn_merge    (o, lse) := merge of (o, lse) and (o2, lse2): o [Lq, NH, HD], lse [NH, Lq]
 *   copy2d        dst[r * dld + c] = src[r * sld + c], rows x cols f32
 *   unpatchify    y [L, pt*ph*pw*C] -> out [C, F, H, W]
 *   conv3d        x [Ci, Tx, H, W], cache [Ci, Tc, H, W] or NULL, w [Co, Ci, kt, kh, kw] (or
 *                 [Co, Ci, kh, kw]: kt = 1; any float dtype), b [Co] or NULL -> y [Co, To, Ho, Wo];
 *                 the input frames are pad_t zero frames, then the cache, then x (a causal conv
 *                 with its previous frames); H and W padded with zeros by pad_h / pad_w;
 *                 To = pad_t + Tc + Tx - kt + 1, Ho = H + 2 pad_h - kh + 1, stride 1
 *   upsample2x    x [C, T, H, W] -> y [C, T, 2H, 2W], nearest (pixel duplication)
 *   rms_norm_channels x [C, P] -> y: per position p, x / max(||x[:, p]||, 1e-12) * sqrt(C) * g
 *   transpose     x [M, N] -> y [N, M]
 *   clamp         y = min(max(x, lo), hi) (may alias)
 *   channel_affine x [C, P] -> y = x * scale[c] + shift[c] (may alias)
 */
#ifndef WR_KERNELS_OPS_H
#define WR_KERNELS_OPS_H

#include "kernels/backend.h"

wr_status wr_op_matmul(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                       const wr_tensor *b);
/* y = alpha * x . w^T + b: w's values times alpha (a per-tensor FP8 scale) */
wr_status wr_op_matmul_scaled(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                              const wr_tensor *b, float alpha);
wr_status wr_op_layer_norm(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                           const wr_tensor *b, float eps);
wr_status wr_op_rms_norm(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                         float eps);
wr_status wr_op_gelu_tanh(wr_backend *be, wr_tensor *y, const wr_tensor *x);
wr_status wr_op_silu(wr_backend *be, wr_tensor *y, const wr_tensor *x);
wr_status wr_op_add(wr_backend *be, wr_tensor *y, const wr_tensor *a, const wr_tensor *b);
wr_status wr_op_mul(wr_backend *be, wr_tensor *y, const wr_tensor *a, const wr_tensor *b);
wr_status wr_op_modulate(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *scale,
                         const wr_tensor *shift);
wr_status wr_op_gated_residual(wr_backend *be, wr_tensor *x, const wr_tensor *a,
                               const wr_tensor *gate);
wr_status wr_op_rope(wr_backend *be, wr_tensor *x, const wr_tensor *cos, const wr_tensor *sin);
wr_status wr_op_attention(wr_backend *be, wr_tensor *out, wr_tensor *lse, const wr_tensor *q,
                          const wr_tensor *k, const wr_tensor *v, const wr_attn_params *p);
wr_status wr_op_patch_embed(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                            const wr_tensor *b);
wr_status wr_op_patch_embed_rows(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                                 const wr_tensor *w, const wr_tensor *b, int64_t n0);
wr_status wr_op_attn_merge(wr_backend *be, wr_tensor *o, wr_tensor *lse, const wr_tensor *o2,
                           const wr_tensor *lse2);
wr_status wr_op_copy2d(wr_backend *be, float *dst, int64_t dld, const float *src, int64_t sld,
                       int64_t rows, int64_t cols);
wr_status wr_op_unpatchify(wr_backend *be, wr_tensor *out, const wr_tensor *y, int pt, int ph,
                           int pw);

/*
 * Op profiling: between start and stop every wr_op_* call is timed (wall clock, up to a backend
 * sync) and summed per op; _log prints the table at info level. Process-wide, for one thread
 * issuing ops (the model's forward); start clears the previous totals.
 */
void wr_op_profile_start(void);
void wr_op_profile_stop(void);
void wr_op_profile_log(void);

wr_status wr_op_conv3d(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *cache,
                       const wr_tensor *w, const wr_tensor *b, const wr_conv_params *p);
wr_status wr_op_upsample2x(wr_backend *be, wr_tensor *y, const wr_tensor *x);
wr_status wr_op_rms_norm_channels(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                                  const wr_tensor *gamma);
wr_status wr_op_transpose(wr_backend *be, wr_tensor *y, const wr_tensor *x);
wr_status wr_op_clamp(wr_backend *be, wr_tensor *y, const wr_tensor *x, float lo, float hi);
wr_status wr_op_channel_affine(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                               const wr_tensor *scale, const wr_tensor *shift);

/* y [n, D] f32 = rows idx[0..n-1] of table [V, D] (any float dtype); idx host ints in [0, V),
 * read when the op is issued (like kernel arguments) */
wr_status wr_op_gather_rows(wr_backend *be, wr_tensor *y, const wr_tensor *table,
                            const int32_t *idx);

/*
 * Fused ops a GPU wants (one kernel each there); on a backend without the slot they run as
 * the composition written next to them. Where an output is BF16 the composition rounds it
 * after each op of it, except layer_norm_modulate given a tmp.
 *   layer_norm_modulate  y = LN(x) * (1 + scale) + shift (x f32; y f32 or the GEMM dtype);
 *                        tmp (f32 like x, or NULL) holds LN(x) where the backend composes, so
 *                        a BF16 y rounds once, as a fused kernel does; NULL (or y itself): the
 *                        norm is formed in y (for an f32 y the same bits, no extra buffer)
 *   rms_norm_rope        x [L, NH, HD] := rope(rms_norm(x over NH*HD) * w) in place (a BF16
 *                        x rounds after the norm and after the rotation, as diffusers does)
 *   linear_gelu          y = gelu_tanh(x . w^T * alpha + b) (a BF16 y: rounded after the
 *                        product and after the GELU, as diffusers does)
 *   linear_residual      x += gate * (a . w^T * alpha + b)  (gate [D] or NULL); tmp [rows, N]
 *                        holds the product where the backend composes (may be NULL on one that
 *                        fuses; wr_op_fused_needs_tmp says)
 */
wr_status wr_op_layer_norm_modulate(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                                    const wr_tensor *scale, const wr_tensor *shift, float eps,
                                    wr_tensor *tmp);
wr_status wr_op_rms_norm_rope(wr_backend *be, wr_tensor *x, const wr_tensor *w, float eps,
                              const wr_tensor *cos, const wr_tensor *sin);
wr_status wr_op_linear_gelu(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                            const wr_tensor *b, float alpha);
wr_status wr_op_linear_residual(wr_backend *be, wr_tensor *x, const wr_tensor *a,
                                const wr_tensor *w, const wr_tensor *b, float alpha,
                                const wr_tensor *gate, wr_tensor *tmp);

/* The dtype a backend wants GEMM inputs and the activations between GEMMs in (f32 on the CPU,
 * bf16 on CUDA); a model may run in either on the CPU (--compute-dtype). */
wr_dtype wr_backend_gemm_dtype(const wr_backend *be);
/* 1 when the op (its wr_op_* name without the prefix, "matmul") takes these operand dtypes on
 * this backend, in the order of its tensor arguments. */
int wr_backend_supports(const wr_backend *be, const char *op, const wr_dtype *dtypes, int n);
/* WR_OK when every op of the NULL-terminated list has a slot; else WR_ERR_UNSUPPORTED naming
 * `what` (a model) and the ops missing (the loaders ask before reading any weight). */
wr_status wr_backend_require(const wr_backend *be, const char *what, const char *const *ops);

/* Rows of a tensor for row-wise ops: product of all dims but the last. */
int64_t wr_rows(const wr_tensor *t);
/* Last dimension (1 for a scalar). */
int64_t wr_cols(const wr_tensor *t);

/*
 * blend: the linear cross-fade of tiled decoding (diffusers' blend_v / blend_h). dst [P, Ld, Q]
 * and a [P, La, Q], both F32, same P and Q, 0 <= e <= min(Ld, La), not overlapping; the first e
 * entries of dst's axis 1 fade in over the last e of a's:
 *   for i in [0, e), all p, q:
 *     dst[p, i, q] = a[p, La - e + i, q] * wa(i) + dst[p, i, q] * wb(i)
 *     wa(i) = (float)(1.0 - (double)i / e), wb(i) = (float)((double)i / e)
 * (float products and sum). Rows of an image [C, H, W]: P = C, axis 1 = H, Q = W; its
 * columns: P = C * H, axis 1 = W, Q = 1. e = 0 does nothing.
 */
wr_status wr_op_blend(wr_backend *be, wr_tensor *dst, const wr_tensor *a, int64_t e);

#endif /* WR_KERNELS_OPS_H */

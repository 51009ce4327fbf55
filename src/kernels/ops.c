/* ops.c — shape checks and dispatch for the wr_op_* wrappers. */
#include "kernels/ops.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

/* Per-op wall time, on while wr_op_profile_start() is in effect (see ops.h). */
#define WR_PROF_SLOTS 24
static struct {
    int on;
    struct {
        const char *name;
        double seconds;
        long calls;
    } op[WR_PROF_SLOTS];
} g_prof;

static void prof_add(const char *name, double s) {
    for (int i = 0; i < WR_PROF_SLOTS; i++) {
        if (g_prof.op[i].name == NULL) g_prof.op[i].name = name;
        if (strcmp(g_prof.op[i].name, name) == 0) {
            g_prof.op[i].seconds += s;
            g_prof.op[i].calls++;
            return;
        }
    }
}

void wr_op_profile_start(void) {
    memset(&g_prof, 0, sizeof g_prof);
    g_prof.on = 1;
}

void wr_op_profile_stop(void) {
    g_prof.on = 0;
}

void wr_op_profile_log(void) {
    double total = 0.0;
    for (int i = 0; i < WR_PROF_SLOTS && g_prof.op[i].name; i++) total += g_prof.op[i].seconds;
    for (int i = 0; i < WR_PROF_SLOTS && g_prof.op[i].name; i++)
        wr_info("op %-16s %7ld calls %9.3f s %5.1f %%", g_prof.op[i].name, g_prof.op[i].calls,
                g_prof.op[i].seconds, total > 0.0 ? 100.0 * g_prof.op[i].seconds / total : 0.0);
    wr_info("op %-16s %7s       %9.3f s", "total", "", total);
}

int64_t wr_rows(const wr_tensor *t) {
    int64_t r = 1;
    for (int i = 0; i + 1 < t->ndim; i++) r *= t->shape[i];
    return r;
}

int64_t wr_cols(const wr_tensor *t) {
    return t->ndim ? t->shape[t->ndim - 1] : 1;
}

/* Our own bug when shapes disagree: report both and abort (STYLE.md error policy). */
static void shape_fail(const char *op, const char *what, const wr_tensor *a, const wr_tensor *b) {
    char sa[160], sb[160];
    wr_error("%s: %s: %s vs %s", op, what, wr_shape_str(sa, sizeof sa, a->ndim, a->shape),
             b ? wr_shape_str(sb, sizeof sb, b->ndim, b->shape) : "-");
    wr_assert_fail(what, __FILE__, __LINE__);
}

#define EXPECT(cond, op, what, a, b)                                                               \
    do {                                                                                           \
        if (!(cond)) shape_fail(op, what, a, b);                                                   \
    } while (0)

#define SLOT(be, name)                                                                             \
    do {                                                                                           \
        if ((be)->iface->name == NULL)                                                             \
            return WR_FAIL(WR_ERR_UNSUPPORTED, "op %s is not implemented on the %s backend",       \
                           #name, wr_backend_name((be)->kind));                                    \
    } while (0)

/* Dispatch to the slot; while profiling, time the call up to a backend sync. */
#define CALL(be, name, ...)                                                                        \
    do {                                                                                           \
        SLOT(be, name);                                                                            \
        if (!g_prof.on) return (be)->iface->name((be), __VA_ARGS__);                               \
        double t0_ = wr_now_s();                                                                   \
        wr_status st_ = (be)->iface->name((be), __VA_ARGS__);                                      \
        if ((be)->iface->sync) (void)(be)->iface->sync(be);                                        \
        prof_add(#name, wr_now_s() - t0_);                                                         \
        return st_;                                                                                \
    } while (0)

/* activations: F32, or BF16 where the backend supports it (the CPU converts on load) */
static void expect_f32(const char *op, const wr_tensor *t) {
    EXPECT(t->dtype == WR_DTYPE_F32 || t->dtype == WR_DTYPE_BF16, op,
           "activation must be F32 or BF16", t, NULL);
}

/* the same shape, each operand in its own activation dtype */
static int same_dims(const wr_tensor *a, const wr_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static void expect_vec(const char *op, const wr_tensor *v, int64_t n, const wr_tensor *x) {
    EXPECT(v->dtype == WR_DTYPE_F32 && wr_tensor_nelem(v) == n, op, "vector length", v, x);
}

wr_status wr_op_matmul(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                       const wr_tensor *b) {
    return wr_op_matmul_scaled(be, y, x, w, b, 1.0f);
}

wr_status wr_op_matmul_scaled(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                              const wr_tensor *b, float alpha) {
    expect_f32("matmul", x);
    expect_f32("matmul", y);
    EXPECT(w->ndim == 2 && wr_dtype_is_float(w->dtype) && w->dtype != WR_DTYPE_F64, "matmul",
           "weight must be a 2-D float tensor", w, x);
    EXPECT(wr_cols(x) == w->shape[1], "matmul", "x last dim != w in-features", x, w);
    EXPECT(wr_cols(y) == w->shape[0] && wr_rows(y) == wr_rows(x), "matmul", "y shape", y, x);
    if (b) expect_vec("matmul", b, w->shape[0], w);
    CALL(be, matmul, y, x, w, b, alpha);
}

wr_status wr_op_layer_norm(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                           const wr_tensor *b, float eps) {
    expect_f32("layer_norm", x);
    expect_f32("layer_norm", y);
    EXPECT(same_dims(x, y), "layer_norm", "y shape", y, x);
    if (w) expect_vec("layer_norm", w, wr_cols(x), x);
    if (b) expect_vec("layer_norm", b, wr_cols(x), x);
    CALL(be, layer_norm, y, x, w, b, eps);
}

wr_status wr_op_rms_norm(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                         float eps) {
    expect_f32("rms_norm", x);
    EXPECT(wr_tensor_same_shape(x, y), "rms_norm", "y shape", y, x);
    if (w) expect_vec("rms_norm", w, wr_cols(x), x);
    CALL(be, rms_norm, y, x, w, eps);
}

wr_status wr_op_gelu_tanh(wr_backend *be, wr_tensor *y, const wr_tensor *x) {
    expect_f32("gelu_tanh", x);
    EXPECT(wr_tensor_nelem(x) == wr_tensor_nelem(y), "gelu_tanh", "y size", y, x);
    CALL(be, gelu_tanh, y, x);
}

wr_status wr_op_silu(wr_backend *be, wr_tensor *y, const wr_tensor *x) {
    expect_f32("silu", x);
    EXPECT(wr_tensor_nelem(x) == wr_tensor_nelem(y), "silu", "y size", y, x);
    CALL(be, silu, y, x);
}

static void check_binary(const char *op, const wr_tensor *y, const wr_tensor *a,
                         const wr_tensor *b) {
    expect_f32(op, a);
    expect_f32(op, b);
    EXPECT(wr_tensor_nelem(y) == wr_tensor_nelem(a), op, "y size", y, a);
    EXPECT(wr_tensor_nelem(b) == wr_tensor_nelem(a) || wr_tensor_nelem(b) == wr_cols(a), op,
           "b must match a or its last dim", b, a);
}

wr_status wr_op_add(wr_backend *be, wr_tensor *y, const wr_tensor *a, const wr_tensor *b) {
    check_binary("add", y, a, b);
    CALL(be, add, y, a, b);
}

wr_status wr_op_mul(wr_backend *be, wr_tensor *y, const wr_tensor *a, const wr_tensor *b) {
    check_binary("mul", y, a, b);
    CALL(be, mul, y, a, b);
}

wr_status wr_op_modulate(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *scale,
                         const wr_tensor *shift) {
    expect_f32("modulate", x);
    EXPECT(wr_tensor_nelem(x) == wr_tensor_nelem(y), "modulate", "y size", y, x);
    expect_vec("modulate", scale, wr_cols(x), x);
    expect_vec("modulate", shift, wr_cols(x), x);
    CALL(be, modulate, y, x, scale, shift);
}

wr_status wr_op_gated_residual(wr_backend *be, wr_tensor *x, const wr_tensor *a,
                               const wr_tensor *gate) {
    expect_f32("gated_residual", x);
    EXPECT(wr_tensor_nelem(x) == wr_tensor_nelem(a) && wr_cols(x) == wr_cols(a), "gated_residual",
           "a shape", a, x);
    if (gate) expect_vec("gated_residual", gate, wr_cols(x), x);
    CALL(be, gated_residual, x, a, gate);
}

wr_status wr_op_rope(wr_backend *be, wr_tensor *x, const wr_tensor *cos, const wr_tensor *sin) {
    expect_f32("rope", x);
    EXPECT(x->ndim == 3 && x->shape[2] % 2 == 0, "rope", "x must be [L, NH, HD], HD even", x, NULL);
    EXPECT(cos->ndim == 2 && cos->shape[0] == x->shape[0] && cos->shape[1] == x->shape[2] / 2 &&
               wr_tensor_same_shape(cos, sin),
           "rope", "cos/sin must be [L, HD/2]", cos, x);
    CALL(be, rope, x, cos, sin);
}

wr_status wr_op_attention(wr_backend *be, wr_tensor *out, wr_tensor *lse, const wr_tensor *q,
                          const wr_tensor *k, const wr_tensor *v, const wr_attn_params *p) {
    expect_f32("attention", q);
    EXPECT(q->ndim == 3 && k->ndim == 3 && v->ndim == 3, "attention", "q/k/v must be [L, NH, HD]",
           q, k);
    EXPECT(wr_tensor_same_shape(k, v), "attention", "k and v shapes", k, v);
    EXPECT(q->shape[1] == k->shape[1] && q->shape[2] == k->shape[2], "attention",
           "q and k heads/head dim", q, k);
    expect_f32("attention", out);
    EXPECT(same_dims(out, q), "attention", "out shape", out, q);
    if (p && p->pos_bias)
        EXPECT(p->pos_bias->dtype == WR_DTYPE_F32 && p->pos_bias->ndim == 2 &&
                   p->pos_bias->shape[0] == q->shape[1] &&
                   p->pos_bias->shape[1] == q->shape[0] + k->shape[0] - 1,
               "attention", "pos_bias must be [NH, Lq + Lk - 1] F32", p->pos_bias, q);
    if (lse)
        EXPECT(lse->ndim == 2 && lse->shape[0] == q->shape[1] && lse->shape[1] == q->shape[0],
               "attention", "lse must be [NH, Lq]", lse, q);
    CALL(be, attention, out, lse, q, k, v, p);
}

wr_status wr_op_patch_embed_rows(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                                 const wr_tensor *w, const wr_tensor *b, int64_t n0) {
    expect_f32("patch_embed", x);
    EXPECT(x->ndim == 4 && w->ndim == 5 && w->shape[1] == x->shape[0], "patch_embed",
           "x [C,F,H,W] and w [D,C,pt,ph,pw]", x, w);
    EXPECT(wr_dtype_is_float(w->dtype) && w->dtype != WR_DTYPE_F64, "patch_embed",
           "weight must be a float tensor", w, x);
    EXPECT(x->shape[1] % w->shape[2] == 0 && x->shape[2] % w->shape[3] == 0 &&
               x->shape[3] % w->shape[4] == 0,
           "patch_embed", "x not divisible by the patch", x, w);
    int64_t L =
        (x->shape[1] / w->shape[2]) * (x->shape[2] / w->shape[3]) * (x->shape[3] / w->shape[4]);
    EXPECT(y->ndim == 2 && n0 >= 0 && n0 + y->shape[0] <= L && y->shape[1] == w->shape[0],
           "patch_embed", "y must be [n, D] with n0 + n <= L", y, w);
    if (b) expect_vec("patch_embed", b, w->shape[0], w);
    CALL(be, patch_embed, y, x, w, b, n0);
}

wr_status wr_op_patch_embed(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                            const wr_tensor *b) {
    if (x->ndim == 4 && w->ndim == 5 && w->shape[2] > 0 && w->shape[3] > 0 && w->shape[4] > 0)
        EXPECT(y->ndim == 2 && y->shape[0] == (x->shape[1] / w->shape[2]) *
                                                  (x->shape[2] / w->shape[3]) *
                                                  (x->shape[3] / w->shape[4]),
               "patch_embed", "y must be [L, D]", y, w);
    return wr_op_patch_embed_rows(be, y, x, w, b, 0);
}

wr_status wr_op_attn_merge(wr_backend *be, wr_tensor *o, wr_tensor *lse, const wr_tensor *o2,
                           const wr_tensor *lse2) {
    expect_f32("attn_merge", o);
    expect_f32("attn_merge", o2);
    EXPECT(o->ndim == 3 && wr_tensor_same_shape(o, o2), "attn_merge", "o and o2 [Lq, NH, HD]", o,
           o2);
    EXPECT(lse->ndim == 2 && lse->shape[0] == o->shape[1] && lse->shape[1] == o->shape[0] &&
               wr_tensor_same_shape(lse, lse2),
           "attn_merge", "lse and lse2 [NH, Lq]", lse, o);
    CALL(be, attn_merge, o, lse, o2, lse2);
}

wr_status wr_op_copy2d(wr_backend *be, float *dst, int64_t dld, const float *src, int64_t sld,
                       int64_t rows, int64_t cols) {
    WR_ASSERT(rows >= 0 && cols >= 0 && dld >= cols && sld >= cols);
    if (rows == 0 || cols == 0) return WR_OK;
    CALL(be, copy2d, dst, dld, src, sld, rows, cols);
}

wr_status wr_op_unpatchify(wr_backend *be, wr_tensor *out, const wr_tensor *y, int pt, int ph,
                           int pw) {
    expect_f32("unpatchify", y);
    EXPECT(out->ndim == 4 && y->ndim == 2, "unpatchify", "out [C,F,H,W], y [L, P*C]", out, y);
    int64_t C = out->shape[0];
    EXPECT(out->shape[1] % pt == 0 && out->shape[2] % ph == 0 && out->shape[3] % pw == 0 &&
               y->shape[1] == (int64_t)pt * ph * pw * C &&
               y->shape[0] == (out->shape[1] / pt) * (out->shape[2] / ph) * (out->shape[3] / pw),
           "unpatchify", "shapes", out, y);
    CALL(be, unpatchify, out, y, pt, ph, pw);
}

wr_status wr_op_conv3d(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *cache,
                       const wr_tensor *w, const wr_tensor *b, const wr_conv_params *p) {
    expect_f32("conv3d", x);
    expect_f32("conv3d", y);
    EXPECT(x->ndim == 4 && y->ndim == 4, "conv3d", "x and y must be [C, T, H, W]", x, y);
    EXPECT((w->ndim == 5 || w->ndim == 4) && wr_dtype_is_float(w->dtype) &&
               w->dtype != WR_DTYPE_F64 && w->shape[1] == x->shape[0],
           "conv3d", "w must be [Co, Ci, (kt,) kh, kw] with Ci = x channels", w, x);
    const int64_t kt = w->ndim == 5 ? w->shape[2] : 1, kh = w->shape[w->ndim - 2],
                  kw = w->shape[w->ndim - 1];
    const int64_t Tc = cache ? cache->shape[1] : 0;
    if (cache) {
        expect_f32("conv3d", cache);
        EXPECT(cache->ndim == 4 && cache->shape[0] == x->shape[0] &&
                   cache->shape[2] == x->shape[2] && cache->shape[3] == x->shape[3],
               "conv3d", "cache must be [Ci, Tc, H, W] like x", cache, x);
    }
    EXPECT(p->pad_t >= 0 && p->pad_h >= 0 && p->pad_w >= 0, "conv3d", "negative padding", x, w);
    EXPECT(y->shape[0] == w->shape[0] && y->shape[1] == p->pad_t + Tc + x->shape[1] - kt + 1 &&
               y->shape[2] == x->shape[2] + 2 * p->pad_h - kh + 1 &&
               y->shape[3] == x->shape[3] + 2 * p->pad_w - kw + 1,
           "conv3d", "y shape", y, x);
    if (b) expect_vec("conv3d", b, w->shape[0], w);
    CALL(be, conv3d, y, x, cache, w, b, p);
}

wr_status wr_op_upsample2x(wr_backend *be, wr_tensor *y, const wr_tensor *x) {
    expect_f32("upsample2x", x);
    EXPECT(x->ndim == 4 && y->ndim == 4 && y->shape[0] == x->shape[0] &&
               y->shape[1] == x->shape[1] && y->shape[2] == 2 * x->shape[2] &&
               y->shape[3] == 2 * x->shape[3],
           "upsample2x", "x [C, T, H, W] -> y [C, T, 2H, 2W]", y, x);
    CALL(be, upsample2x, y, x);
}

wr_status wr_op_rms_norm_channels(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                                  const wr_tensor *gamma) {
    expect_f32("rms_norm_channels", x);
    EXPECT(wr_tensor_same_shape(x, y) && x->ndim >= 2, "rms_norm_channels", "y shape", y, x);
    expect_vec("rms_norm_channels", gamma, x->shape[0], x);
    CALL(be, rms_norm_channels, y, x, gamma);
}

wr_status wr_op_transpose(wr_backend *be, wr_tensor *y, const wr_tensor *x) {
    expect_f32("transpose", x);
    EXPECT(x->ndim == 2 && y->ndim == 2 && y->shape[0] == x->shape[1] &&
               y->shape[1] == x->shape[0] && y->data != x->data,
           "transpose", "x [M, N] -> y [N, M], not in place", y, x);
    CALL(be, transpose, y, x);
}

wr_status wr_op_clamp(wr_backend *be, wr_tensor *y, const wr_tensor *x, float lo, float hi) {
    expect_f32("clamp", x);
    EXPECT(wr_tensor_nelem(x) == wr_tensor_nelem(y) && lo <= hi, "clamp", "y size or lo > hi", y,
           x);
    CALL(be, clamp, y, x, lo, hi);
}

wr_status wr_op_channel_affine(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                               const wr_tensor *scale, const wr_tensor *shift) {
    expect_f32("channel_affine", x);
    EXPECT(wr_tensor_same_shape(x, y), "channel_affine", "y shape", y, x);
    expect_vec("channel_affine", scale, x->shape[0], x);
    expect_vec("channel_affine", shift, x->shape[0], x);
    CALL(be, channel_affine, y, x, scale, shift);
}

wr_status wr_op_gather_rows(wr_backend *be, wr_tensor *y, const wr_tensor *table,
                            const int32_t *idx) {
    expect_f32("gather_rows", y);
    EXPECT(table->ndim == 2 && y->ndim == 2 && y->shape[1] == table->shape[1] &&
               wr_dtype_is_float(table->dtype) && table->dtype != WR_DTYPE_F64,
           "gather_rows", "table [V, D] float, y [n, D] F32", y, table);
    for (int64_t i = 0; i < y->shape[0]; i++)
        EXPECT(idx[i] >= 0 && idx[i] < table->shape[0], "gather_rows", "index out of range", y,
               table);
    if (y->shape[0] == 0) return WR_OK;
    CALL(be, gather_rows, y, table, idx);
}

/* ---- fused ops: the backend's slot, or the composition ---- */

wr_status wr_op_layer_norm_modulate(wr_backend *be, wr_tensor *y, const wr_tensor *x,
                                    const wr_tensor *scale, const wr_tensor *shift, float eps,
                                    wr_tensor *tmp) {
    /* the LayerNorm into tmp (f32), then the modulation rounds once into y; without tmp (or
     * with tmp = y) the norm is formed in y and modulated in place */
    wr_tensor *n = tmp && tmp->data != y->data ? tmp : y;
    if (n == tmp)
        EXPECT(tmp->dtype == WR_DTYPE_F32 && wr_tensor_nelem(tmp) == wr_tensor_nelem(x),
               "layer_norm_modulate", "tmp must be f32 like x", tmp, x);
    WR_TRY(wr_op_layer_norm(be, n, x, NULL, NULL, eps));
    return wr_op_modulate(be, y, n, scale, shift);
}

wr_status wr_op_rms_norm_rope(wr_backend *be, wr_tensor *x, const wr_tensor *w, float eps,
                              const wr_tensor *cos, const wr_tensor *sin) {
    EXPECT(x->ndim == 3, "rms_norm_rope", "x must be [L, NH, HD]", x, NULL);
    wr_tensor flat = *x;
    flat.ndim = 2;
    flat.shape[1] = x->shape[1] * x->shape[2];
    WR_TRY(wr_op_rms_norm(be, &flat, &flat, w, eps));
    return wr_op_rope(be, x, cos, sin);
}

wr_status wr_op_linear_gelu(wr_backend *be, wr_tensor *y, const wr_tensor *x, const wr_tensor *w,
                            const wr_tensor *b, float alpha) {
    WR_TRY(wr_op_matmul_scaled(be, y, x, w, b, alpha));
    return wr_op_gelu_tanh(be, y, y);
}

wr_status wr_op_linear_residual(wr_backend *be, wr_tensor *x, const wr_tensor *a,
                                const wr_tensor *w, const wr_tensor *b, float alpha,
                                const wr_tensor *gate, wr_tensor *tmp) {
    EXPECT(tmp != NULL, "linear_residual", "the composition needs tmp", x, a);
    WR_TRY(wr_op_matmul_scaled(be, tmp, a, w, b, alpha));
    return wr_op_gated_residual(be, x, tmp, gate);
}

wr_dtype wr_backend_gemm_dtype(const wr_backend *be) {
    return be->kind == WR_BACKEND_CUDA ? WR_DTYPE_BF16 : WR_DTYPE_F32;
}

/* the op slots by their wr_op_* name */
#define SLOT_OF(name)                                                                              \
    { #name, offsetof(wr_backend_iface, name) }
static const struct {
    const char *name;
    size_t off;
} k_slots[] = {
    SLOT_OF(matmul),
    SLOT_OF(layer_norm),
    SLOT_OF(rms_norm),
    SLOT_OF(gelu_tanh),
    SLOT_OF(silu),
    SLOT_OF(add),
    SLOT_OF(mul),
    SLOT_OF(modulate),
    SLOT_OF(gated_residual),
    SLOT_OF(rope),
    SLOT_OF(attention),
    SLOT_OF(patch_embed),
    SLOT_OF(attn_merge),
    SLOT_OF(unpatchify),
    SLOT_OF(conv3d),
    SLOT_OF(upsample2x),
    SLOT_OF(rms_norm_channels),
    SLOT_OF(gather_rows),
    SLOT_OF(transpose),
    SLOT_OF(clamp),
    SLOT_OF(channel_affine),
    SLOT_OF(blend),
};
#undef SLOT_OF

int wr_backend_supports(const wr_backend *be, const char *op, const wr_dtype *dtypes, int n) {
    for (int i = 0; i < n; i++) /* activations f32 or bf16 (weights: any float, checked apart) */
        if (dtypes[i] != WR_DTYPE_F32 && dtypes[i] != WR_DTYPE_BF16) return 0;
    for (size_t i = 0; i < sizeof k_slots / sizeof k_slots[0]; i++)
        if (strcmp(k_slots[i].name, op) == 0) {
            void *slot;
            memcpy(&slot, (const char *)be->iface + k_slots[i].off, sizeof slot);
            return slot != NULL;
        }
    return 0;
}

wr_status wr_backend_require(const wr_backend *be, const char *what, const char *const *ops) {
    char missing[256] = "";
    size_t used = 0;
    int nmiss = 0;
    const wr_dtype f32 = WR_DTYPE_F32;
    for (int i = 0; ops[i]; i++)
        if (!wr_backend_supports(be, ops[i], &f32, 1)) {
            int w =
                snprintf(missing + used, sizeof missing - used, "%s%s", nmiss ? ", " : "", ops[i]);
            if (w > 0 && (size_t)w < sizeof missing - used) used += (size_t)w;
            nmiss++;
        }
    if (nmiss == 0) return WR_OK;
    return WR_FAIL(WR_ERR_UNSUPPORTED,
                   "%s needs %d op%s the %s backend does not implement yet (%s)%s", what, nmiss,
                   nmiss == 1 ? "" : "s", wr_backend_name(be->kind), missing,
                   be->kind == WR_BACKEND_CUDA ? ": use --backend cpu" : "");
}

wr_status wr_op_blend(wr_backend *be, wr_tensor *dst, const wr_tensor *a, int64_t e) {
    expect_f32("blend", dst);
    expect_f32("blend", a);
    EXPECT(dst->ndim == 3 && a->ndim == 3 && dst->shape[0] == a->shape[0] &&
               dst->shape[2] == a->shape[2],
           "blend", "dst [P, Ld, Q] and a [P, La, Q]", dst, a);
    EXPECT(e >= 0 && e <= dst->shape[1] && e <= a->shape[1], "blend", "0 <= e <= min(Ld, La)", dst,
           a);
    if (e == 0 || wr_tensor_nelem(dst) == 0) return WR_OK;
    CALL(be, blend, dst, a, e);
}

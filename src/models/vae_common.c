/*
 * vae_common.c — the causal conv cache, the residual block and the attention both Wan VAEs run
 * (see vae_common.h).
 */
#include "models/vae_common.h"

#include <math.h>

#include "core/log.h"
#include "kernels/ops.h"

size_t wr_causal_cache_floats(const wr_tensor *x) {
    return (size_t)(2 * x->shape[0] * x->shape[2] * x->shape[3]);
}

/* rows runs of `width` floats, pitches in floats, device to device */
static wr_status copy_rows(wr_backend *be, float *dst, const float *src, int64_t width,
                           int64_t rows, int64_t dpitch, int64_t spitch) {
    const size_t f = sizeof(float);
    const wr_copy3d c = {.dir = WR_COPY_D2D,
                         .dst = dst,
                         .src = src,
                         .width = f * (size_t)width,
                         .rows = rows,
                         .planes = 1,
                         .dpitch = f * (size_t)dpitch,
                         .spitch = f * (size_t)spitch};
    return wr_copy_3d(be, &c);
}

wr_status wr_causal_cache_update(wr_backend *be, wr_causal_cache *c, const wr_tensor *x,
                                 int rep_zero) {
    const int64_t C = x->shape[0], T = x->shape[1], HW = x->shape[2] * x->shape[3];
    if (c->cap < wr_causal_cache_floats(x))
        return WR_FAIL(WR_ERR_INTERNAL, "VAE cache: %zu floats for %zu", c->cap,
                       wr_causal_cache_floats(x));
    const float *xd = x->data;
    if (T >= 2) { /* x's last two frames of each channel */
        WR_TRY(copy_rows(be, c->buf, xd + (T - 2) * HW, 2 * HW, C, 2 * HW, T * HW));
    } else if (rep_zero) { /* [0, x] */
        WR_TRY(wr_dev_memset0(be, c->buf, sizeof(float) * (size_t)(2 * C * HW)));
        WR_TRY(copy_rows(be, c->buf + HW, xd, HW, C, 2 * HW, HW));
    } else if (c->n == 0) {
        WR_TRY(wr_dev_copy(be, c->buf, xd, sizeof(float) * (size_t)(C * HW)));
        c->n = 1;
        return WR_OK;
    } else {
        /* [C, n, HW] -> [C, 2, HW]: frame 0 = the old last frame, frame 1 = x */
        if (c->n == 2) { /* frame 1 -> frame 0 of each channel: the runs do not overlap */
            WR_TRY(copy_rows(be, c->buf, c->buf + HW, HW, C, 2 * HW, 2 * HW));
        } else { /* n = 1: channel ch moves from ch to 2 ch, from the last down, so no source
                  * is overwritten before it is read (once per call sequence and conv) */
            for (int64_t ch = C - 1; ch > 0; ch--)
                WR_TRY(wr_dev_copy(be, c->buf + ch * 2 * HW, c->buf + ch * HW,
                                   sizeof(float) * (size_t)HW));
        }
        WR_TRY(copy_rows(be, c->buf + HW, xd, HW, C, 2 * HW, HW));
    }
    c->n = 2;
    return WR_OK;
}

wr_status wr_causal_conv(wr_backend *be, wr_causal_cache *c, wr_tensor *y, const wr_tensor *x,
                         const wr_tensor *w, const wr_tensor *b, int64_t pad_hw) {
    wr_tensor cache;
    const wr_tensor *cp = NULL;
    if (c->n > 0) {
        cache = wr_tensor_make(c->buf, WR_DTYPE_F32, 4,
                               (int64_t[]){x->shape[0], c->n, x->shape[2], x->shape[3]});
        cp = &cache;
    }
    const wr_conv_params p = {2 - c->n, pad_hw, pad_hw};
    WR_TRY(wr_op_conv3d(be, y, x, cp, w, b, &p));
    return wr_causal_cache_update(be, c, x, 0);
}

/* A workspace view [c, t, h, w] of buffer p (within the planned size: our own bug otherwise). */
static wr_tensor ws4(const wr_vae_run *r, float *p, int64_t c, int64_t t, int64_t h, int64_t w) {
    WR_ASSERT((size_t)(c * t * h * w) <= r->cap);
    return wr_tensor_make(p, WR_DTYPE_F32, 4, (int64_t[]){c, t, h, w});
}

static wr_tensor flat2(const wr_tensor *t) { /* [C, T*H*W] */
    return wr_tensor_make(t->data, WR_DTYPE_F32, 2,
                          (int64_t[]){t->shape[0], wr_tensor_nelem(t) / t->shape[0]});
}

static void swap(float **a, float **b) {
    float *t = *a;
    *a = *b;
    *b = t;
}

wr_status wr_vae_cached_conv(const wr_vae_run *r, wr_vae_conv *cv, wr_tensor *y, const wr_tensor *x,
                             int64_t pad_hw) {
    WR_TRY(r->room(r->model, &cv->cache, wr_causal_cache_floats(x)));
    return wr_causal_conv(r->be, &cv->cache, y, x, &cv->w, &cv->b, pad_hw);
}

wr_status wr_vae_resnet_forward(const wr_vae_run *r, wr_vae_resnet *rs, float **P, wr_tensor *x) {
    wr_backend *be = r->be;
    const int64_t T = x->shape[1], H = x->shape[2], W = x->shape[3];
    wr_tensor a = ws4(r, P[1], rs->cin, T, H, W), b = ws4(r, P[2], rs->cout, T, H, W);
    wr_tensor s = *x; /* shortcut */
    if (rs->has_sc) {
        s = ws4(r, P[3], rs->cout, T, H, W);
        const wr_conv_params p0 = {0, 0, 0};
        WR_TRY(wr_op_conv3d(be, &s, x, NULL, &rs->sc.w, &rs->sc.b, &p0));
    }
    wr_tensor af = flat2(&a), xf = flat2(x), bf = flat2(&b);
    WR_TRY(wr_op_rms_norm_channels(be, &af, &xf, &rs->norm1)); /* a = silu(norm1(x)) */
    WR_TRY(wr_op_silu(be, &af, &af));
    WR_TRY(wr_vae_cached_conv(r, &rs->conv1, &b, &a, 1)); /* b = conv1(a) [cout] */
    a = ws4(r, P[1], rs->cout, T, H, W);
    af = flat2(&a);
    WR_TRY(wr_op_rms_norm_channels(be, &af, &bf, &rs->norm2)); /* a = silu(norm2(b)) */
    WR_TRY(wr_op_silu(be, &af, &af));
    WR_TRY(wr_vae_cached_conv(r, &rs->conv2, &b, &a, 1)); /* b = conv2(a) */
    WR_TRY(wr_op_add(be, &b, &b, &s));                    /* b += shortcut */
    swap(&P[0], &P[2]);
    *x = ws4(r, P[0], rs->cout, T, H, W);
    return WR_OK;
}

wr_status wr_vae_attention_forward(const wr_vae_run *r, const wr_vae_attn *at, float **P,
                                   wr_tensor *x) {
    wr_backend *be = r->be;
    const int64_t C = x->shape[0], H = x->shape[2], W = x->shape[3], L = H * W;
    WR_ASSERT(x->shape[1] == 1);
    wr_tensor xf = flat2(x), h = wr_tensor_make(P[1], WR_DTYPE_F32, 2, (int64_t[]){C, L});
    WR_TRY(wr_op_rms_norm_channels(be, &h, &xf, &at->norm));
    wr_tensor h4 = ws4(r, P[1], C, 1, H, W), qkv = ws4(r, P[2], 3 * C, 1, H, W);
    const wr_conv_params p0 = {0, 0, 0};
    WR_TRY(wr_op_conv3d(be, &qkv, &h4, NULL, &at->qkv.w, &at->qkv.b, &p0));
    /* q, k, v: channel blocks of qkv, each [C, L] -> token-major [L, C] */
    wr_tensor tq[3];
    for (int i = 0; i < 3; i++) {
        wr_tensor src = wr_tensor_make(P[2] + i * C * L, WR_DTYPE_F32, 2, (int64_t[]){C, L});
        tq[i] = wr_tensor_make(P[3] + i * C * L, WR_DTYPE_F32, 2, (int64_t[]){L, C});
        WR_TRY(wr_op_transpose(be, &tq[i], &src));
    }
    wr_tensor q = wr_tensor_make(tq[0].data, WR_DTYPE_F32, 3, (int64_t[]){L, 1, C});
    wr_tensor k = wr_tensor_make(tq[1].data, WR_DTYPE_F32, 3, (int64_t[]){L, 1, C});
    wr_tensor v = wr_tensor_make(tq[2].data, WR_DTYPE_F32, 3, (int64_t[]){L, 1, C});
    wr_tensor o = wr_tensor_make(P[4], WR_DTYPE_F32, 3, (int64_t[]){L, 1, C});
    const wr_attn_params ap = {.scale = 1.0f / sqrtf((float)C)};
    WR_TRY(wr_op_attention(be, &o, NULL, &q, &k, &v, &ap));
    wr_tensor o2 = wr_tensor_make(P[4], WR_DTYPE_F32, 2, (int64_t[]){L, C});
    wr_tensor a = wr_tensor_make(P[1], WR_DTYPE_F32, 2, (int64_t[]){C, L});
    WR_TRY(wr_op_transpose(be, &a, &o2)); /* back to [C, L] */
    wr_tensor a4 = ws4(r, P[1], C, 1, H, W), y = ws4(r, P[2], C, 1, H, W);
    WR_TRY(wr_op_conv3d(be, &y, &a4, NULL, &at->proj.w, &at->proj.b, &p0));
    WR_TRY(wr_op_add(be, &y, &y, x)); /* + identity */
    swap(&P[0], &P[2]);
    *x = ws4(r, P[0], C, 1, H, W);
    return WR_OK;
}

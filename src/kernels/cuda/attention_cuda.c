/* attention_cuda.c — the CUDA attention slot (host glue, C11): checks what the kernel takes,
 * moves the host key mask (read at issue time, like a kernel argument) into the op scratch on
 * the compute stream, and launches attention.cu's kernel there. */
#include <cuda_runtime.h>
#include <math.h>

#include "kernels/cuda/attention_launch.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_ops.h"

static int act_ok(const wr_tensor *t) {
    return t->dtype == WR_DTYPE_F32 || t->dtype == WR_DTYPE_BF16;
}

wr_status wr_cuda_attention(wr_backend *be, wr_tensor *out, wr_tensor *lse, const wr_tensor *q,
                            const wr_tensor *k, const wr_tensor *v, const wr_attn_params *p) {
    const int64_t Lq = q->shape[0], NH = q->shape[1], HD = q->shape[2], Lk = k->shape[0];
    if (!act_ok(q) || !act_ok(k) || !act_ok(v) || !act_ok(out) ||
        (lse && lse->dtype != WR_DTYPE_F32))
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "attention on CUDA: q, k, v and out must be F32 or BF16 and lse F32 (got "
                       "%s, %s, %s, %s)",
                       wr_dtype_name(q->dtype), wr_dtype_name(k->dtype), wr_dtype_name(v->dtype),
                       wr_dtype_name(out->dtype));
    if (HD > 128 || NH > 65535)
        return WR_FAIL(WR_ERR_UNSUPPORTED,
                       "attention on CUDA: head dim %lld, %lld heads (the kernel takes head dims "
                       "up to 128 and up to 65535 heads)",
                       (long long)HD, (long long)NH);
    if (Lq == 0 || NH == 0 || HD == 0) return WR_OK;
    const float scale = p ? p->scale : 1.0f / sqrtf((float)HD);
    const int64_t kv = p && p->k_valid > 0 && p->k_valid < Lk ? p->k_valid : Lk;
    const float *bias = p && p->pos_bias ? p->pos_bias->data : NULL;
    void *stream = wr_cuda_compute_stream(be);
    const wr_scratch_mark mark = wr_scratch_save(be);
    wr_status st = WR_OK;
    uint8_t *mask = NULL;
    if (p && p->key_mask && kv > 0) {
        WR_TRY_GOTO(st, wr_scratch_get(be, (size_t)kv, "attention: the key mask", (void **)&mask),
                    done);
        /* from pageable memory: staged by the driver before this returns */
        const cudaError_t e =
            cudaMemcpyAsync(mask, p->key_mask, (size_t)kv, cudaMemcpyHostToDevice, stream);
        WR_TRY_GOTO(st, wr_cuda_launch_status((int)e, "attention (the key mask)"), done);
    }
    st = wr_cuda_launch_status(
        wr_cuda_attention_launch(out->data, (int)out->dtype, lse ? lse->data : NULL, q->data,
                                 (int)q->dtype, k->data, (int)k->dtype, v->data, (int)v->dtype, Lq,
                                 Lk, (int)NH, (int)HD, scale, mask, kv, bias, stream),
        "attention");
done:
    wr_scratch_restore(be, mark);
    return st;
}

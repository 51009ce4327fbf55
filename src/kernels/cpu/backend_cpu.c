/* backend_cpu.c — the CPU backend: "device" memory is host memory; the vtable. */
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>

#include "core/log.h"

static wr_status alloc_cpu(wr_backend *be, void **out, size_t nbytes) {
    (void)be;
    *out = NULL;
    if (nbytes == 0) return WR_OK;
    size_t rounded = (nbytes + 63) & ~(size_t)63;
    if (rounded < nbytes || (*out = aligned_alloc(64, rounded)) == NULL)
        return WR_FAIL(WR_ERR_OOM_DEVICE, "CPU backend: cannot allocate %.3f GiB",
                       (double)nbytes / (1024.0 * 1024 * 1024));
    return WR_OK;
}

static void free_cpu(wr_backend *be, void *p) {
    (void)be;
    free(p);
}

static wr_status copy_cpu(wr_backend *be, void *dst, const void *src, size_t n) {
    (void)be;
    if (n) memmove(dst, src, n);
    return WR_OK;
}

static wr_status memset0_cpu(wr_backend *be, void *dst, size_t n) {
    (void)be;
    if (n) memset(dst, 0, n);
    return WR_OK;
}

static wr_status sync_cpu(wr_backend *be) {
    (void)be;
    return WR_OK;
}

static const wr_backend_iface cpu_iface = {
    .alloc = alloc_cpu,
    .free = free_cpu,
    .upload = copy_cpu,
    .download = copy_cpu,
    .copy = copy_cpu,
    .memset0 = memset0_cpu,
    .sync = sync_cpu,
    .matmul = matmul_cpu,
    .layer_norm = layer_norm_cpu,
    .rms_norm = rms_norm_cpu,
    .gelu_tanh = gelu_tanh_cpu,
    .silu = silu_cpu,
    .add = add_cpu,
    .mul = mul_cpu,
    .modulate = modulate_cpu,
    .gated_residual = gated_residual_cpu,
    .rope = rope_cpu,
    .attention = attention_cpu,
    .patch_embed = patch_embed_cpu,
    .attn_merge = attn_merge_cpu,
    .copy2d = copy2d_cpu,
    .unpatchify = unpatchify_cpu,
    .conv3d = conv3d_cpu,
    .upsample2x = upsample2x_cpu,
    .rms_norm_channels = rms_norm_channels_cpu,
    .gather_rows = gather_rows_cpu,
    .transpose = transpose_cpu,
    .clamp = clamp_cpu,
    .channel_affine = channel_affine_cpu,
    .blend = blend_cpu,
};

wr_status wr_backend_cpu_init(wr_backend *be, int threads) {
    if (threads <= 0) {
        const char *env = getenv("OMP_NUM_THREADS");
        threads = env ? atoi(env) : 0;
#ifdef _OPENMP
        if (threads <= 0) threads = omp_get_num_procs();
#endif
        if (threads <= 0) threads = 1;
    }
    be->iface = &cpu_iface;
    be->kind = WR_BACKEND_CPU;
    be->host_visible = 1;
    be->threads = threads;
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    openblas_set_num_threads(threads);
    /* 1 = pthreads build: its spinning pool competes with our OpenMP loops */
    if (openblas_get_parallel() == 1 && threads > 1)
        wr_warn("the loaded OpenBLAS uses its own pthreads, not OpenMP: CPU ops will run several "
                "times slower (install libopenblas-openmp-dev and rebuild)");
    return WR_OK;
}

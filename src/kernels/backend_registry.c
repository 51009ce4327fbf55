/* backend_registry.c — compiled backends, creation, and the CUDA probe switch. The only file
 * outside the CUDA backend and the tests that tests WR_HAVE_CUDA. */
#include "kernels/backend.h"

#include <stdlib.h>
#include <string.h>

#include "wr_build_config.h"

#if WR_HAVE_CUDA
#include "kernels/cuda/cuda_device.h"
#endif

int wr_backend_compiled(wr_backend_kind kind) {
    if (kind == WR_BACKEND_CPU) return 1;
    if (kind == WR_BACKEND_CUDA) return WR_HAVE_CUDA;
    return 0;
}

const char *wr_backend_name(wr_backend_kind kind) {
    switch (kind) {
    case WR_BACKEND_CPU:
        return "cpu";
    case WR_BACKEND_CUDA:
        return "cuda";
    default:
        return "?";
    }
}

wr_status wr_backend_probe_cuda(wr_device_info *out) {
    memset(out, 0, sizeof *out);
#if WR_HAVE_CUDA
    return wr_cuda_probe(out);
#else
    return WR_FAIL(WR_ERR_UNSUPPORTED, "this wanrun was built without CUDA (WR_CUDA=OFF or no "
                                       "nvcc at configure time)");
#endif
}

int wr_backend_strict_env(void) {
    const char *e = getenv("WR_STRICT_DEVICE");
    if (e == NULL || *e == 0 || strcmp(e, "0") == 0) return 0;
    return strcmp(e, "async") == 0 ? 2 : 1;
}

wr_status wr_backend_create(wr_backend **out, wr_backend_kind kind, int threads) {
    const wr_backend_opts o = {.kind = kind, .threads = threads, .strict = -1, .async = -1};
    return wr_backend_create_ex(out, &o);
}

wr_status wr_backend_create_ex(wr_backend **out, const wr_backend_opts *o) {
    const wr_backend_kind kind = o->kind;
    const int threads = o->threads;
    *out = NULL;
    wr_backend *be = calloc(1, sizeof *be);
    if (be == NULL) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory");
    const int env = wr_backend_strict_env();
    be->async = o->async >= 0 ? o->async : env == 2;
    be->strict = be->async || (o->strict >= 0 ? o->strict : env >= 1);
    be->device = o->device;
    if (kind != WR_BACKEND_CPU) be->strict = be->async = 0; /* CPU modes */
    wr_status st;
    switch (kind) {
    case WR_BACKEND_CPU:
        st = wr_backend_cpu_init(be, threads);
        break;
    case WR_BACKEND_CUDA:
#if WR_HAVE_CUDA
        st = wr_backend_cuda_init(be, threads);
#else
        st = WR_FAIL(WR_ERR_UNSUPPORTED, "the CUDA backend is not compiled into this wanrun");
#endif
        break;
    default:
        st = WR_FAIL(WR_ERR_INVALID_ARG, "unknown backend %d", (int)kind);
        break;
    }
    if (st != WR_OK) {
        free(be);
        return st;
    }
    be->scratch.cap = wr_backend_scratch_bytes(kind);
    *out = be;
    return WR_OK;
}

void wr_backend_free(wr_backend *be) {
    if (be == NULL) return;
    wr_scratch_detach(be); /* its own arena (a pool's was given back when the pool went) */
    if (be->kind == WR_BACKEND_CPU) wr_backend_cpu_release(be);
#if WR_HAVE_CUDA
    if (be->kind == WR_BACKEND_CUDA) wr_backend_cuda_release(be);
#endif
    free(be);
}

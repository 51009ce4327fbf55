/* backend_registry.c — compiled backends and the CUDA probe switch. */
#include "kernels/backend.h"

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

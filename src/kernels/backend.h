/*
 * backend.h — which compute backends this build has and whether a device is usable.
 *
 * The full backend vtable (struct wr_backend_iface, the wr_op_* wrappers) arrives with the
 * DiT work (issue #3); this module is the registry it will live in: the only place outside
 * the CUDA backend and the tests that tests WR_HAVE_CUDA.
 */
#ifndef WR_KERNELS_BACKEND_H
#define WR_KERNELS_BACKEND_H

#include <stddef.h>

#include "core/status.h"

typedef enum wr_backend_kind {
    WR_BACKEND_CPU = 0,
    WR_BACKEND_CUDA,
    WR_BACKEND_COUNT
} wr_backend_kind;

typedef struct wr_device_info {
    int count;      /* CUDA devices visible */
    char name[128]; /* device 0's name */
    int cc_major, cc_minor;
    size_t total_bytes; /* device 0's memory */
} wr_device_info;

/* 1 when the backend was compiled into this build. */
int wr_backend_compiled(wr_backend_kind kind);
const char *wr_backend_name(wr_backend_kind kind);

/*
 * Asks the CUDA runtime for devices. WR_ERR_UNSUPPORTED when built without CUDA,
 * WR_ERR_NO_DEVICE when there is no driver or no device (the detail says which), WR_OK with
 * *out filled otherwise.
 */
wr_status wr_backend_probe_cuda(wr_device_info *out);

#endif /* WR_KERNELS_BACKEND_H */

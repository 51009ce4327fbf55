/*
 * strict_probe.c — what test_strict runs in a child process (no MPI, so an abort is a plain
 * SIGABRT): "read" / "write" touch strict device memory from the host (must die of SIGSEGV),
 * "operand" hands an op a host buffer (must abort naming the op), "ok" exits 0.
 */
#include <string.h>

#include "kernels/backend.h"
#include "kernels/ops.h"

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    wr_backend *be = NULL;
    const wr_backend_opts o = {.kind = WR_BACKEND_CPU, .threads = 1, .strict = 1, .async = 0};
    void *p = NULL;
    if (wr_backend_create_ex(&be, &o) != WR_OK || be->iface->alloc(be, &p, 4096) != WR_OK) return 3;
    if (strcmp(argv[1], "read") == 0) {
        volatile float x = *(volatile float *)p;
        (void)x;
    } else if (strcmp(argv[1], "write") == 0) {
        memset(p, 0, 16);
    } else if (strcmp(argv[1], "operand") == 0) {
        static float host[4] = {1, 2, 3, 4};
        wr_tensor y = wr_tensor_make(p, WR_DTYPE_F32, 1, (int64_t[]){4});
        wr_tensor x = wr_tensor_make(host, WR_DTYPE_F32, 1, (int64_t[]){4});
        (void)wr_op_silu(be, &y, &x);
    } else if (strcmp(argv[1], "ok") != 0) {
        return 2;
    }
    be->iface->free(be, p);
    wr_backend_free(be);
    return 0;
}

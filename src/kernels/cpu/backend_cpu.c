/* backend_cpu.c — the CPU backend: threads and BLAS set-up (the vtable is exec.c's). */
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>

#include "core/log.h"

wr_status wr_backend_cpu_init(wr_backend *be, int threads) {
    if (threads <= 0) {
        const char *env = getenv("OMP_NUM_THREADS");
        threads = env ? atoi(env) : 0;
#ifdef _OPENMP
        if (threads <= 0) threads = omp_get_num_procs();
#endif
        if (threads <= 0) threads = 1;
    }
    be->kind = WR_BACKEND_CPU;
    be->threads = threads;
    WR_TRY(wr_cpu_exec_init(be)); /* the vtable, and the strict / async modes (exec.c) */
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

void wr_backend_cpu_release(wr_backend *be) {
    wr_cpu_exec_release(be);
}

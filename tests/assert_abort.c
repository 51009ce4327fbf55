/*
 * assert_abort.c — WR_ASSERT on one rank ends the whole job: rank 1 asserts while the other
 * ranks wait in a barrier that can never complete; MPI_Abort must end them all promptly.
 * CTest expects the "[rank 1] file:line: assertion failed" line and a non-zero exit, within
 * the test's timeout (a hang fails it).
 */
#include <mpi.h>

#include "core/log.h"
#include "core/status.h"

int main(int argc, char **argv) {
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    wr_log_set_rank(rank, size);
    int bad = rank == 1 ? 2 : 1;
    WR_ASSERT(bad == 1);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    return 0;
}

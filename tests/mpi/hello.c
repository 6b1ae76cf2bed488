/* Prints "hello from rank R of N on HOST" for each rank. With an argument
 * SECONDS, every rank then sleeps that long inside MPI (after MPI_Init), so
 * that a benchmark can sample the memory of running ranks. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int rank, size, len;
    char host[MPI_MAX_PROCESSOR_NAME];

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(host, &len);
    printf("hello from rank %d of %d on %s\n", rank, size, host);
    fflush(stdout);
    if (argc > 1) {
        /* A barrier first: every rank is up before anyone samples. */
        MPI_Barrier(MPI_COMM_WORLD);
        sleep((unsigned)atoi(argv[1]));
    }
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    return 0;
}

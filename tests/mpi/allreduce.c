/* MPI_Allreduce (sum) of COUNT doubles, ITERATIONS times; rank 0 prints
 *   allreduce COUNT doubles RANKS ranks: TIME_US us
 * (the mean time of one call) and every rank checks the sums.
 *   allreduce [COUNT [ITERATIONS]] (defaults 65536 and 200) */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int rank, size;
    long count = 65536, iters = 200;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc > 1)
        count = atol(argv[1]);
    if (argc > 2)
        iters = atol(argv[2]);
    double *in = malloc(sizeof(double) * (size_t)count);
    double *out = malloc(sizeof(double) * (size_t)count);
    if (in == NULL || out == NULL) {
        fprintf(stderr, "allreduce: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (long i = 0; i < count; i++)
        in[i] = rank + (double)i;
    /* One call outside the timing: connections are set up lazily. */
    MPI_Allreduce(in, out, (int)count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (long k = 0; k < iters; k++)
        MPI_Allreduce(in, out, (int)count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    double t = MPI_Wtime() - t0;
    /* sum over ranks r of (r + i) = size*(size-1)/2 + size*i, exact in doubles. */
    int bad = 0;
    for (long i = 0; i < count; i++)
        if (out[i] != (double)size * (size - 1) / 2.0 + (double)size * (double)i)
            bad = 1;
    int anybad = 0;
    MPI_Reduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("allreduce %ld doubles %d ranks: %.2f us\n", count, size, t / (double)iters * 1e6);
        if (anybad)
            fprintf(stderr, "allreduce: wrong sums\n");
    }
    free(in);
    free(out);
    MPI_Finalize();
    return anybad ? 1 : 0;
}

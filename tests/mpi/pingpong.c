/* Ping-pong between ranks 0 and 1, message sizes from 8 B to MAX_BYTES
 * (default 4 MiB) in powers of two. Rank 0 prints one line per size:
 *   SIZE_BYTES LATENCY_US BANDWIDTH_MBPS
 * where the latency is half the round trip and the bandwidth is SIZE_BYTES
 * over that latency (MB = 10^6 bytes). Every received buffer is checked.
 *   pingpong [MAX_BYTES [ITERATIONS_FOR_SMALL_MESSAGES]] */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    int rank, size;
    long max = 4L << 20, base_iters = 1000;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc > 1)
        max = atol(argv[1]);
    if (argc > 2)
        base_iters = atol(argv[2]);
    if (size < 2) {
        if (rank == 0)
            fprintf(stderr, "pingpong: needs at least 2 ranks\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    char *buf = malloc((size_t)max);
    if (buf == NULL) {
        fprintf(stderr, "pingpong: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int bad = 0;
    for (long n = 8; n <= max; n *= 2) {
        /* Fewer round trips for large messages: about the same bytes moved
         * per size, so that 4 MiB does not dominate the run time. */
        long iters = base_iters;
        if (n > 65536)
            iters = base_iters * 65536 / n;
        if (iters < 10)
            iters = 10;
        long warmup = iters / 10 + 1;
        double t0 = 0;
        for (long i = 0; i < warmup + iters; i++) {
            if (i == warmup) {
                MPI_Barrier(MPI_COMM_WORLD);
                t0 = MPI_Wtime();
            }
            if (rank == 0) {
                memset(buf, (int)(i & 0x7f), (size_t)n);
                MPI_Send(buf, (int)n, MPI_CHAR, 1, 0, MPI_COMM_WORLD);
                MPI_Recv(buf, (int)n, MPI_CHAR, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                /* Rank 1 sends back what it got plus one in the first and last byte. */
                if (buf[0] != (char)((i & 0x7f) + 1) || buf[n - 1] != (char)((i & 0x7f) + 1))
                    bad = 1;
            } else if (rank == 1) {
                MPI_Recv(buf, (int)n, MPI_CHAR, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                buf[0]++;
                buf[n - 1]++;
                MPI_Send(buf, (int)n, MPI_CHAR, 0, 0, MPI_COMM_WORLD);
            }
        }
        double t = MPI_Wtime() - t0;
        if (rank == 0) {
            double lat_us = t / (double)iters / 2.0 * 1e6;
            printf("%ld %.3f %.1f\n", n, lat_us, (double)n / lat_us);
            fflush(stdout);
        }
    }
    free(buf);
    MPI_Finalize();
    if (rank == 0 && bad) {
        fprintf(stderr, "pingpong: received data was wrong\n");
        return 1;
    }
    return 0;
}

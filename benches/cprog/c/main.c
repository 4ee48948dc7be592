/* A C program's main thread calls a Rust callback in a staticlib n times
 * and prints the time per call: benches/go/cgo/driver/main10.c's shape,
 * with gort's staticlib in place of Go's c-archive. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int GortInc(int a);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    GortInc(0); /* the first call starts the runtime: not timed */
    double t0 = now();
    long s = 0;
    for (long i = 0; i < n; i++)
        s += GortInc((int)i);
    double t1 = now();
    if (s == 0 && n > 1)
        return 1;
    printf("ns_per_call %.2f\n", (t1 - t0) / (double)n);
    return 0;
}

/* A C program's main thread calls into a Go c-archive n times and prints
 * the time per call (the shape of Go's main10.c and of gort's
 * C-program test). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "libgo.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    GoInc(0); /* the first call starts the Go runtime: not timed */
    double t0 = now();
    long s = 0;
    for (long i = 0; i < n; i++)
        s += GoInc((int)i);
    double t1 = now();
    if (s == 0 && n > 1)
        return 1;
    printf("ns_per_call %.2f\n", (t1 - t0) / (double)n);
    return 0;
}

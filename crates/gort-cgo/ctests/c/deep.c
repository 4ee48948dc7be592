/* Callbacks at varying C stack depth (Go's main9.c / TestDeepStack):
 * C main -> fx_outer (Rust) -> cgo::call -> c_deep (C, int x[10000]) ->
 * fx_inner (Rust) which panics; the panic skips the C frames and is
 * recovered in fx_outer. Then the same from a Rust frame (a goroutine
 * that called C). */
#include <stdio.h>
#include <stdlib.h>

typedef long (*cfn)(long);
long fx_outer(cfn f, long depth);
long fx_inner(long x);
long fx_from_rust(cfn f, long arg);

static volatile long after_panic;

static long c_deep(long depth)
{
    volatile int x[10000];
    for (int i = 0; i < 10000; i += 999)
        x[i] = i;
    long r;
    if (depth > 1)
        r = c_deep(depth - 1);
    else
        r = fx_inner(-1); /* panics */
    after_panic++; /* must never run */
    return r + x[999];
}

static long c_shallow(long x)
{
    volatile int y[10000];
    y[0] = 7;
    long r = fx_inner(x);
    return r + y[0] - 7;
}

/* From a Rust frame: a goroutine calls c_from_rust, which calls back into
 * fx_outer (nested), which calls c_deep and recovers its panic. */
static long c_from_rust(long depth)
{
    return fx_outer(c_deep, depth);
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 100;
    for (long i = 0; i < rounds; i++) {
        long depth = 1 + i % 4;
        if (fx_outer(c_deep, depth) != -1) {
            printf("fail: deep panic not recovered at depth %ld\n", depth);
            return 1;
        }
        if (fx_outer(c_shallow, 42) != 42) {
            printf("fail: shallow callback\n");
            return 1;
        }
        if (fx_from_rust(c_from_rust, depth) != -1) {
            printf("fail: deep panic from a Rust frame at depth %ld\n", depth);
            return 1;
        }
    }
    if (after_panic != 0) {
        printf("fail: C code after a panicking callback ran %ld times\n", after_panic);
        return 1;
    }
    printf("ok %ld\n", rounds);
    return 0;
}

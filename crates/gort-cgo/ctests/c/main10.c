/* Go's main10.c shape: a C program's main thread calls into a Rust
 * staticlib N times; the first call starts the runtime. */
#include <stdio.h>
#include <stdlib.h>

long fx_add(long x);
long fx_count(void);
long fx_goroutine_id(void);
long fx_thread_probes(void);

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000;
    long want = 0;
    for (long i = 1; i <= n; i++) {
        want += i;
        long got = fx_add(i);
        if (got != want) {
            printf("fail: fx_add(%ld) = %ld, want %ld\n", i, got, want);
            return 1;
        }
    }
    if (fx_count() != want || fx_goroutine_id() <= 0) {
        printf("fail: count %ld\n", fx_count());
        return 1;
    }
    printf("ok %ld probes %ld\n", n, fx_thread_probes());
    return 0;
}

/* 16 C pthreads make N callbacks each, four rounds: exact counts, and the
 * runtime's own threads stay few. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

long fx_add(long x);
long fx_count(void);
void fx_reset(void);
long fx_runtime_threads(void);
long fx_extra_ms(void);

static long per;

static void *worker(void *arg)
{
    (void)arg;
    for (long i = 0; i < per; i++)
        fx_add(1);
    return 0;
}

int main(int argc, char **argv)
{
    per = argc > 1 ? atol(argv[1]) : 10000;
    long max_threads = 0;
    for (int round = 0; round < 4; round++) {
        pthread_t t[16];
        fx_reset();
        for (int i = 0; i < 16; i++)
            if (pthread_create(&t[i], 0, worker, 0) != 0) {
                printf("fail: pthread_create\n");
                return 1;
            }
        for (int i = 0; i < 16; i++)
            pthread_join(t[i], 0);
        if (fx_count() != 16 * per) {
            printf("fail: round %d: %ld callbacks counted, want %ld\n", round, fx_count(), 16 * per);
            return 1;
        }
        long n = fx_runtime_threads();
        if (n > max_threads)
            max_threads = n;
    }
    /* Exited threads gave their Ms back: no more than 16 (+1 for this
     * main thread) were ever needed at once. */
    long extra = fx_extra_ms();
    printf("ok %ld runtime_threads %ld extra_ms %ld\n", per, max_threads, extra);
    return 0;
}

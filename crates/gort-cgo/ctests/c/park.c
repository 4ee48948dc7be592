/* C threads whose callbacks park on a channel fed by a goroutine; then a C
 * thread that calls in and exits, repeatedly: its M goes back to the pool. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

void fx_start_feeder(long n);
long fx_recv(void);
long fx_extra_ms(void);
long fx_add(long x);

static long per;
static long sums[8];

static void *receiver(void *arg)
{
    long i = (long)arg;
    for (long k = 0; k < per; k++)
        sums[i] += fx_recv();
    return 0;
}

static void *once(void *arg)
{
    (void)arg;
    fx_add(1);
    return 0;
}

int main(int argc, char **argv)
{
    per = argc > 1 ? atol(argv[1]) : 1000;
    long n = 8 * per;
    fx_start_feeder(n);
    pthread_t t[8];
    for (long i = 0; i < 8; i++)
        pthread_create(&t[i], 0, receiver, (void *)i);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], 0);
    long sum = 0;
    for (int i = 0; i < 8; i++)
        sum += sums[i];
    if (sum != n * (n + 1) / 2) {
        printf("fail: received sum %ld, want %ld\n", sum, n * (n + 1) / 2);
        return 1;
    }
    long before = fx_extra_ms();
    for (int i = 0; i < 20; i++) {
        pthread_t x;
        pthread_create(&x, 0, once, 0);
        pthread_join(x, 0);
    }
    long after = fx_extra_ms();
    /* One thread at a time: each reuses the M the previous one gave back. */
    if (after > before + 1) {
        printf("fail: %ld extra Ms made for 20 sequential threads\n", after - before);
        return 1;
    }
    printf("ok %ld extra_ms %ld -> %ld\n", per, before, after);
    return 0;
}

/*
 * C frames for gort-unwind's tests and benchmarks: C functions that call a
 * Rust callback, with markers set before and after the callback so that a
 * test can tell whether C code after a skipped callback ran (it must not)
 * and whether C code after a callback that returned ran (it must).
 *
 * Each caller passes its own marks, so tests running on parallel threads do
 * not share counters.
 */
#include <stdint.h>

typedef void (*gort_cb)(void *arg);

struct gort_marks {
    volatile intptr_t before;  /* incremented right before the callback */
    volatile intptr_t after;   /* incremented right after it returned */
    volatile uintptr_t frame;  /* address of a local of the calling C frame */
};

/* One plain C frame around the callback. */
void gort_c_call(gort_cb cb, void *arg, struct gort_marks *m)
{
    volatile int local = 0;
    m->frame = (uintptr_t)&local;
    m->before++;
    cb(arg);
    m->after++;
    (void)local;
}

/*
 * Go's TestDeepStack shape: 40,000 bytes of locals in the frame that calls
 * back. After a normal return the array must be intact: `after` grows by 1
 * when it is, by 1000 when it is not.
 */
void gort_c_call_deep(gort_cb cb, void *arg, struct gort_marks *m)
{
    volatile int x[10000];
    for (int i = 0; i < 10000; i += 1000)
        x[i] = i;
    x[9999] = 9999;
    m->frame = (uintptr_t)&x[0];
    m->before++;
    cb(arg);
    int ok = x[9999] == 9999;
    for (int i = 0; i < 10000; i += 1000)
        ok = ok && x[i] == i;
    m->after += ok ? 1 : 1000;
}

/* `depth` nested C frames, then the callback from the innermost one. */
void gort_c_recurse(int depth, gort_cb cb, void *arg, struct gort_marks *m)
{
    volatile int local = depth;
    if (depth <= 1) {
        gort_c_call(cb, arg, m);
    } else {
        gort_c_recurse(depth - 1, cb, arg, m);
    }
    m->after += local - depth; /* 0 unless the frame was corrupted */
}

/* A C function that returns without calling back: the trivial callee. */
int gort_c_add(int a, int b)
{
    return a + b;
}

/* The trivial callee with one argument, for call-overhead benchmarks. */
int gort_c_inc(int a)
{
    return a + 1;
}

/* Sleeps (a blocking C call). */
#include <time.h>
void gort_c_sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* A C frame with a large local array of which only the first KiB is
 * written (a big buffer for a short string, as with snprintf): the first
 * stores land at the frame's lowest addresses, far below the caller's
 * stack pointer. Compiled without stack-clash protection (Debian's
 * default), so nothing probes the pages in between: on a small stack the
 * stores land below the stack's bottom, past any guard smaller than the
 * frame. Returns a byte read back. */
#define GORT_BIG_FRAME(kib)                                \
    long gort_c_frame_##kib##k(void)                       \
    {                                                      \
        volatile char buf[(kib) * 1024];                   \
        for (unsigned long i = 0; i < 1024; i += 64) {     \
            buf[i] = (char)i;                              \
        }                                                  \
        return buf[64];                                    \
    }
GORT_BIG_FRAME(88)
GORT_BIG_FRAME(96)

/* Calls cb(arg) `n` times from this thread (main10.c's loop). */
void gort_c_loop(long n, gort_cb cb, void *arg)
{
    for (long i = 0; i < n; i++)
        cb(arg);
}

/*
 * `threads` new pthreads each call cb(arg) `n` times, then exit; returns
 * after joining them (0), or the pthread error.
 */
#include <pthread.h>
struct gort_loop_args {
    long n;
    gort_cb cb;
    void *arg;
};

static void *gort_c_thread_main(void *p)
{
    struct gort_loop_args *a = p;
    gort_c_loop(a->n, a->cb, a->arg);
    return 0;
}

int gort_c_threads(int threads, long n, gort_cb cb, void *arg)
{
    pthread_t t[64];
    struct gort_loop_args a = { n, cb, arg };
    if (threads > 64)
        return -1;
    for (int i = 0; i < threads; i++) {
        int e = pthread_create(&t[i], 0, gort_c_thread_main, &a);
        if (e)
            return e;
    }
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], 0);
    return 0;
}

/* Calls cb(arg), recording the calling thread's id before (tids[0]) and
 * after (tids[1]) the callback: C must continue on the thread it was on. */
#include <sys/syscall.h>
#include <unistd.h>
void gort_c_call_tid(gort_cb cb, void *arg, long *tids)
{
    tids[0] = syscall(SYS_gettid);
    cb(arg);
    tids[1] = syscall(SYS_gettid);
}

/* Starts a detached pthread that sleeps `ms` milliseconds, calls cb(arg)
 * once and exits: a C library's event arriving later on a thread of its
 * own. Returns 0 or the pthread error. */
struct gort_after_args {
    long ms;
    gort_cb cb;
    void *arg;
};

#include <stdlib.h>
static void *gort_c_after_main(void *p)
{
    struct gort_after_args a = *(struct gort_after_args *)p;
    free(p);
    gort_c_sleep_us(a.ms * 1000);
    a.cb(a.arg);
    return 0;
}

int gort_c_after_ms(long ms, gort_cb cb, void *arg)
{
    pthread_t t;
    struct gort_after_args *a = malloc(sizeof *a);
    if (!a)
        return -1;
    a->ms = ms;
    a->cb = cb;
    a->arg = arg;
    int e = pthread_create(&t, 0, gort_c_after_main, a);
    if (e) {
        free(a);
        return e;
    }
    pthread_detach(t);
    return 0;
}

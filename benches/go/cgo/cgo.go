// Package cgo is the Go side of gort's cgo benchmarks
// (benches/benches/cgo.rs): a cgo call, a Go->C->Go round trip, a
// callback from a C-created thread, and (through a c-archive, see
// carchive/) callbacks from a C program's main thread.
package cgo

/*
#include <pthread.h>

extern int goInc(int);

static int c_inc(int a) { return a + 1; }

// Go -> C -> Go: C calls the exported Go function once.
static int c_round_trip(int a) { return goInc(a); }

struct loop { long n; };

static void *c_thread_main(void *p)
{
    struct loop *l = p;
    for (long i = 0; i < l->n; i++)
        goInc((int)i);
    return 0;
}

// A C-created thread calls back n times (the extra-M path).
static int c_thread_callbacks(long n)
{
    pthread_t t;
    struct loop l = { n };
    if (pthread_create(&t, 0, c_thread_main, &l) != 0)
        return -1;
    pthread_join(t, 0);
    return 0;
}
*/
import "C"

//export goInc
func goInc(a C.int) C.int { return a + 1 }

// CallC: a cgo call of a trivial C function.
func CallC(i int) int { return int(C.c_inc(C.int(i))) }

// RoundTrip: Go -> C -> Go -> C returns.
func RoundTrip(i int) int { return int(C.c_round_trip(C.int(i))) }

// ThreadCallbacks: a C pthread calls a Go function n times.
func ThreadCallbacks(n int) int { return int(C.c_thread_callbacks(C.long(n))) }

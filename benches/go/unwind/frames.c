// The C side of the Go benchmark: the same shape as gort-unwind-cframes'
// gort_c_call (markers before and after the callback).
#include "_cgo_export.h"

volatile long before_marks, after_marks;

void c_call(void)
{
    before_marks++;
    goCallback();
    after_marks++;
}

int c_add(int a, int b)
{
    return a + b;
}

// Package unwind is the Go side of gort's unwind benchmark
// (benches/benches/unwind.rs): a panic in a callback from C that skips the
// C frame and is recovered in the Go frame that called C.
package unwind

/*
extern void c_call(void);
extern int c_add(int a, int b);
extern volatile long before_marks, after_marks;
*/
import "C"

var msg = "boom"

//export goCallback
func goCallback() {
	panic(msg)
}

// PanicAcrossC: Go -> C -> Go callback panics -> C frame skipped ->
// recovered by a deferred recover in the Go frame that called C.
func PanicAcrossC() (r any) {
	defer func() { r = recover() }()
	C.c_call()
	return nil
}

// Recover: a panic recovered in the same goroutine, no C.
func Recover() (r any) {
	defer func() { r = recover() }()
	panic(msg)
}

// CallC: a cgo call of a C function that returns.
func CallC() int {
	return int(C.c_add(1, 2))
}

// Marks: how often C code ran before and after the callback.
func Marks() (before, after int64) {
	return int64(C.before_marks), int64(C.after_marks)
}

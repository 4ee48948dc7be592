//! The callback a C program's main loop calls (Go's
//! BenchmarkCgoCallbackMainThread shape, and benches/go/cgo/carchive's
//! `GoInc`): `a + 1`, run as a goroutine by `gort_cgo::callback`.

#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::c_int;

/// `a + 1`, inside a gort callback.
#[no_mangle]
pub extern "C" fn GortInc(a: c_int) -> c_int {
    // SAFETY: the top of an extern "C" function whose frame holds only `a`.
    unsafe { gort_cgo::callback(|| a.wrapping_add(1)) }
}

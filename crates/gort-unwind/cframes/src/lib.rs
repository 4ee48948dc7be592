//! Real C frames for gort-unwind's tests and benchmarks: C functions that
//! call a Rust callback, with markers before and after the call.
//!
//! The C source is `c/frames.c`, compiled by the build script with the cc
//! crate (cross compilers come from `CC_<triple>`, which `cargo xtask test`
//! sets). It lives in its own crate, a dev-dependency, so that gort-unwind
//! itself needs no C compiler and links no C object.

use std::ffi::{c_int, c_void};

/// A callback that C calls: an `extern "C"` function taking an opaque
/// argument. A Rust callback must not let a panic escape (it would abort the
/// process); gort-unwind's `callback_boundary` catches it.
pub type Callback = unsafe extern "C" fn(arg: *mut c_void);

/// Markers that the C functions update around the callback.
///
/// Each test passes its own, so parallel tests share nothing.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Marks {
    /// Incremented right before the C code calls the callback.
    pub before: isize,
    /// Incremented right after the callback returned to C (the C code after
    /// the call ran). A skipped C frame never increments it.
    pub after: isize,
    /// Address of a local in the C frame that made the call.
    pub frame: usize,
}

impl Marks {
    /// `(before, after)`, read with volatile loads (C writes them through a
    /// pointer the compiler cannot see).
    pub fn counts(&self) -> (isize, isize) {
        // SAFETY: plain reads of fields of a live value.
        unsafe {
            (
                std::ptr::read_volatile(&self.before),
                std::ptr::read_volatile(&self.after),
            )
        }
    }

    /// The frame address recorded by the last C call.
    pub fn frame(&self) -> usize {
        // SAFETY: a plain read of a field of a live value.
        unsafe { std::ptr::read_volatile(&self.frame) }
    }
}

extern "C" {
    /// One C frame: `before += 1; cb(arg); after += 1`.
    pub fn gort_c_call(cb: Callback, arg: *mut c_void, marks: *mut Marks);

    /// A C frame with a 40,000-byte local array (Go's TestDeepStack shape)
    /// around the callback. After the callback returns, `after` grows by 1
    /// when the array is intact and by 1000 when it is not.
    pub fn gort_c_call_deep(cb: Callback, arg: *mut c_void, marks: *mut Marks);

    /// `depth` nested C frames, the innermost calling back as `gort_c_call`.
    pub fn gort_c_recurse(depth: c_int, cb: Callback, arg: *mut c_void, marks: *mut Marks);

    /// Returns `a + b` without calling back: a trivial C callee.
    pub fn gort_c_add(a: c_int, b: c_int) -> c_int;

    /// Returns `a + 1`: the trivial C callee of the call benchmarks.
    pub fn gort_c_inc(a: c_int) -> c_int;

    /// Sleeps `us` microseconds in `nanosleep`: a blocking C call.
    pub fn gort_c_sleep_us(us: std::ffi::c_long);

    /// A C frame with an 88 KiB local array of which only the lowest KiB is
    /// written (a big buffer for a short string), compiled without
    /// stack-clash protection: on a small stack its stores land up to
    /// 88 KiB below the stack's bottom, touching nothing in between.
    pub fn gort_c_frame_88k() -> std::ffi::c_long;

    /// As `gort_c_frame_88k` with a 96 KiB array.
    pub fn gort_c_frame_96k() -> std::ffi::c_long;

    /// Starts a detached pthread that sleeps `ms` milliseconds, calls
    /// `cb(arg)` once and exits. 0, or the pthread error.
    pub fn gort_c_after_ms(ms: std::ffi::c_long, cb: Callback, arg: *mut c_void) -> c_int;

    /// Calls `cb(arg)` `n` times from the calling thread.
    pub fn gort_c_loop(n: std::ffi::c_long, cb: Callback, arg: *mut c_void);

    /// Starts `threads` (at most 64) pthreads that each call `cb(arg)` `n`
    /// times and exit; joins them. 0, or the pthread error (-1: too many).
    pub fn gort_c_threads(
        threads: c_int,
        n: std::ffi::c_long,
        cb: Callback,
        arg: *mut c_void,
    ) -> c_int;

    /// Calls `cb(arg)`, storing the thread id (gettid) before the callback
    /// in `tids[0]` and after it in `tids[1]`.
    pub fn gort_c_call_tid(cb: Callback, arg: *mut c_void, tids: *mut std::ffi::c_long);
}

//! Panics and recover: a panic in a callback from C that skips the C frame
//! and is recovered in the Rust frame that called C, and the parts that
//! cost goes to. Go's same shape is benches/go/unwind (Go 1.23.5; 295 ns
//! measured on a quiet box, 441 ns CPU time on this machine, as recorded in
//! docs/perf-history.md).
//!
//! Run: `cargo bench -p gort-benches --bench unwind`, with RUST_BACKTRACE
//! unset (with it set, std's default hook captures a backtrace per panic).
//!
//! - `std_catch_unwind/default_hook`: a plain `catch_unwind` of a `panic!`
//!   with std's default hook (stderr redirected to /dev/null meanwhile):
//!   what a panic costs when it is printed.
//! - `std_catch_unwind/noop_hook`: the same with the hook replaced by one
//!   that does nothing: the panic machinery and the unwinder alone.
//! - `std_catch_unwind/resume_unwind`: `resume_unwind` (no hook at all)
//!   and `catch_unwind`: the unwinder alone.
//! - `gort/recover`: `gort_unwind::recover` of a `panic!` (quiet hook that
//!   records the location).
//! - `gort/recover_resume_unwind`: `recover` of a `resume_unwind` (no
//!   hook): against `std_catch_unwind/resume_unwind`, what `recover` adds.
//! - `gort/call_c_no_panic`: `call_with_resume_point` of a C function that
//!   returns: the resume point and the two switches.
//! - `gort/panic_across_c_err`: Rust -> C -> Rust callback panics, the C
//!   frame is skipped, the caller gets `Err(panic)` inside a quiet scope.
//! - `gort/panic_across_c_recovered`: the same, and the caller raises the
//!   panic again (`Panic::resume`) to an enclosing `recover`: Go's shape
//!   (the panic continues in the frame that called C and a deferred
//!   recover there stops it). This is the number to hold against Go's.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::ffi::c_void;
use std::hint::black_box;
use std::panic::{catch_unwind, resume_unwind};

use criterion::{criterion_group, criterion_main, Criterion};
use gort_stack::{Stack, StackConfig};
use gort_unwind::{call_with_resume_point, callback_boundary, catch, recover, Panic};
use gort_unwind_cframes::{gort_c_add, gort_c_call, Marks};

/// Runs `f` with stderr pointing at /dev/null.
fn with_stderr_discarded<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: plain descriptor juggling on our own process; fd 2 is
    // restored before returning.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        assert!(null >= 0);
        let saved = libc::dup(2);
        libc::dup2(null, 2);
        let r = f();
        libc::dup2(saved, 2);
        libc::close(saved);
        libc::close(null);
        r
    }
}

fn std_catch_unwind(c: &mut Criterion) {
    let mut group = c.benchmark_group("unwind/std_catch_unwind");

    // Runs before gort-unwind's hook is installed (gort_benches run after).
    with_stderr_discarded(|| {
        group.bench_function("default_hook", |b| {
            b.iter(|| catch_unwind(|| -> () { panic!("{}", black_box("boom")) }).is_err())
        });
    });

    std::panic::set_hook(Box::new(|_| {}));
    group.bench_function("noop_hook", |b| {
        b.iter(|| catch_unwind(|| -> () { panic!("{}", black_box("boom")) }).is_err())
    });
    let _ = std::panic::take_hook(); // back to std's default

    group.bench_function("resume_unwind", |b| {
        b.iter(|| catch_unwind(|| -> () { resume_unwind(Box::new(black_box("boom"))) }).is_err())
    });
    group.finish();
}

/// The callback C calls: panics at a callback boundary.
unsafe extern "C" fn panicking_callback(_arg: *mut c_void) {
    // SAFETY: C calls this inside call_with_resume_point; this frame holds
    // nothing.
    unsafe { callback_boundary(|| -> () { panic!("{}", black_box("boom")) }) }
}

/// Rust -> C -> Rust callback that panics; returns the panic as a value.
#[inline(never)]
fn panic_across_c(top: *mut u8, marks: &mut Marks) -> Result<(), Panic> {
    // SAFETY: `top` is the benchmark's unused stack; f only calls C.
    unsafe {
        call_with_resume_point(
            top,
            |_: &Panic| {},
            || gort_c_call(panicking_callback, std::ptr::null_mut(), marks),
        )
    }
}

fn gort_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("unwind/gort");
    let stack = Stack::new(StackConfig::new()).expect("a callee stack");
    let top = stack.top();

    group.bench_function("recover", |b| {
        b.iter(|| recover(|| -> () { panic!("{}", black_box("boom")) }).is_err())
    });

    group.bench_function("recover_resume_unwind", |b| {
        b.iter(|| recover(|| -> () { resume_unwind(Box::new(black_box("boom"))) }).is_err())
    });

    group.bench_function("call_c_no_panic", |b| {
        b.iter(|| {
            // SAFETY: as in panic_across_c.
            unsafe {
                call_with_resume_point(
                    top,
                    |_: &Panic| {},
                    || gort_c_add(black_box(1), black_box(2)),
                )
            }
        })
    });

    let mut marks = Marks::default();
    group.bench_function("panic_across_c_err", |b| {
        b.iter(|| {
            let r = catch(true, || panic_across_c(top, &mut marks));
            r.expect("the resume point returns the panic").is_err()
        })
    });

    group.bench_function("panic_across_c_recovered", |b| {
        b.iter(|| {
            recover(|| panic_across_c(top, &mut marks).unwrap_or_else(|p| p.resume())).is_err()
        })
    });
    group.finish();

    // Every callback ran and no C code after a skipped callback did.
    let (before, after) = marks.counts();
    assert!(before > 0);
    assert_eq!(after, 0);
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = std_catch_unwind, gort_benches
}
criterion_main!(benches);

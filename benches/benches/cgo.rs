//! gort-cgo against Go's cgo (benches/go/cgo, run by `cargo xtask bench`
//! when Go is installed): a call of a trivial C function, a Rust->C->Rust
//! round trip, callbacks from a plain (C-main-like) thread and from a C
//! pthread, and a panic in a callback recovered across C frames.
//!
//! Calls from goroutines run inside one runtime per sample (procs 1), timed
//! around the loop only.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::ffi::c_void;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use gort_cgo::{call, callback};
use gort_unwind_cframes as c;

fn in_goroutine(iters: u64, body: fn(u64)) -> Duration {
    gort_sched::Runtime::builder()
        .procs(1)
        .build()
        .unwrap()
        .run(move || {
            let t = Instant::now();
            body(iters);
            t.elapsed()
        })
        .unwrap()
}

unsafe extern "C" fn nop_cb(_arg: *mut c_void) {
    // SAFETY: this frame holds nothing.
    unsafe { callback(|| black_box(())) }
}

unsafe extern "C" fn panic_cb(_arg: *mut c_void) {
    // SAFETY: this frame holds nothing.
    unsafe { callback(|| panic!("boom")) }
}

fn cgo(c_: &mut Criterion) {
    let mut g = c_.benchmark_group("cgo");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));

    g.bench_function("call", |b| {
        b.iter_custom(|iters| {
            in_goroutine(iters, |n| {
                let mut s = 0i32;
                for i in 0..n {
                    // SAFETY: the closure only calls the C function.
                    s = s.wrapping_add(unsafe { call(|| c::gort_c_inc(i as i32)) });
                }
                black_box(s);
            })
        })
    });

    g.bench_function("round_trip", |b| {
        b.iter_custom(|iters| {
            in_goroutine(iters, |n| {
                for _ in 0..n {
                    // SAFETY: the closure only calls the C function.
                    unsafe { call(|| c::gort_c_loop(1, nop_cb, std::ptr::null_mut())) };
                }
            })
        })
    });

    // The bench thread is a plain thread: like a C program's main thread
    // it is bound to an extra M of the default callback runtime.
    g.bench_function("callback_main_thread", |b| {
        // SAFETY: C calls back through `callback`.
        unsafe { c::gort_c_loop(1, nop_cb, std::ptr::null_mut()) };
        b.iter_custom(|iters| {
            let t = Instant::now();
            // SAFETY: as above.
            unsafe { c::gort_c_loop(iters as _, nop_cb, std::ptr::null_mut()) };
            t.elapsed()
        })
    });

    g.bench_function("callback_pthread", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            // SAFETY: as above.
            let e = unsafe { c::gort_c_threads(1, iters as _, nop_cb, std::ptr::null_mut()) };
            assert_eq!(e, 0);
            t.elapsed()
        })
    });

    g.bench_function("panic_across_c", |b| {
        // std's default hook would print every panic; recover() is quiet.
        b.iter_custom(|iters| {
            in_goroutine(iters, |n| {
                let mut marks = c::Marks::default();
                let m: *mut c::Marks = &mut marks;
                for _ in 0..n {
                    let r = gort_unwind::recover(|| {
                        // SAFETY: the closure only calls the C function.
                        unsafe { call(|| c::gort_c_call(panic_cb, std::ptr::null_mut(), m)) }
                    });
                    assert!(r.is_err());
                }
                assert_eq!(marks.counts(), (n as isize, 0));
            })
        })
    });
    g.bench_function("panic_across_c_try_call", |b| {
        b.iter_custom(|iters| {
            in_goroutine(iters, |n| {
                let mut marks = c::Marks::default();
                let m: *mut c::Marks = &mut marks;
                for _ in 0..n {
                    // SAFETY: the closure only calls the C function.
                    let r = unsafe {
                        gort_cgo::try_call(|| c::gort_c_call(panic_cb, std::ptr::null_mut(), m))
                    };
                    assert!(r.is_err());
                }
                assert_eq!(marks.counts(), (n as isize, 0));
            })
        })
    });
    g.finish();
}

criterion_group!(benches, cgo);
criterion_main!(benches);

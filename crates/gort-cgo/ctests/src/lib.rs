//! A Rust staticlib with callbacks for C programs (Go's c-archive shape):
//! C's `main` calls these `extern "C"` functions directly, with no Rust
//! `main` and no runtime started by anyone but the first callback.
//!
//! Every export is a callback: its body runs in `gort_cgo::callback`, as a
//! goroutine of the default callback runtime (on a C thread) or as the
//! goroutine that called into C (when C was called from Rust).

#![deny(unsafe_op_in_unsafe_fn)]
// `c_long` is i64 on 64-bit targets and i32 on i686: the casts are needed there.
#![allow(clippy::unnecessary_cast)]

use std::ffi::c_long;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use gort_cgo::{call, callback};
use gort_sync::chan;

static COUNT: AtomicI64 = AtomicI64::new(0);

/// Adds `x` to a counter and returns the new total (main10.c's callback).
#[no_mangle]
pub extern "C" fn fx_add(x: c_long) -> c_long {
    // SAFETY: this frame holds nothing but `x`.
    unsafe { callback(|| COUNT.fetch_add(x as i64, Ordering::Relaxed) as c_long + x) }
}

/// The counter.
#[no_mangle]
pub extern "C" fn fx_count() -> c_long {
    COUNT.load(Ordering::Relaxed) as c_long
}

/// Resets the counter.
#[no_mangle]
pub extern "C" fn fx_reset() {
    COUNT.store(0, Ordering::Relaxed);
}

/// The goroutine id running the callback (non-zero in a goroutine).
#[no_mangle]
pub extern "C" fn fx_goroutine_id() -> c_long {
    // SAFETY: as above.
    unsafe { callback(|| gort_sched::id() as c_long) }
}

/// C function type for `fx_outer`: called (in C) from inside a callback.
pub type CFn = unsafe extern "C" fn(c_long) -> c_long;

/// Calls `f(depth)` through `cgo::call` from inside a callback, and
/// recovers a panic that a deeper callback raises: returns `f`'s value,
/// or -1 when the deeper callback panicked ("deep panic") and the panic
/// was recovered here (the Go TestDeepStack / main9.c shape).
#[no_mangle]
pub extern "C" fn fx_outer(f: CFn, depth: c_long) -> c_long {
    // SAFETY: this frame holds nothing but copies.
    unsafe {
        callback(|| {
            let r = gort_unwind::recover(|| {
                // SAFETY: the closure only calls the C function.
                call(|| f(depth))
            });
            match r {
                Ok(v) => v,
                Err(p) if p.message() == Some("deep panic") => -1,
                Err(p) => p.resume(),
            }
        })
    }
}

/// A callback that panics when `x` is negative, else returns `x`.
#[no_mangle]
pub extern "C" fn fx_inner(x: c_long) -> c_long {
    // SAFETY: this frame holds nothing but `x`.
    unsafe {
        callback(|| {
            if x < 0 {
                panic!("deep panic");
            }
            x
        })
    }
}

/// Runs `f(arg)` from a goroutine of a fresh runtime (C called from a Rust
/// frame): returns what it returns.
#[no_mangle]
pub extern "C" fn fx_from_rust(f: CFn, arg: c_long) -> c_long {
    let r = gort_sched::Runtime::builder()
        .procs(2)
        .build()
        .expect("runtime")
        // SAFETY: the closure only calls the C function.
        .run(move || unsafe { call(|| f(arg)) });
    r.unwrap_or(-2)
}

/// A channel fed by a goroutine of the callback runtime.
static FEED: OnceLock<chan::Receiver<i64>> = OnceLock::new();

/// Starts a goroutine that sends 1..=n on a rendezvous channel, sleeping
/// now and then, so that `fx_recv` callbacks park.
#[no_mangle]
pub extern "C" fn fx_start_feeder(n: c_long) {
    // SAFETY: this frame holds nothing but `n`.
    unsafe {
        callback(|| {
            let (tx, rx) = chan::bounded(0);
            if FEED.set(rx).is_err() {
                panic!("fx_start_feeder called twice");
            }
            gort_sched::go(move || {
                for i in 1..=n as i64 {
                    if i % 16 == 0 {
                        gort_sched::sleep(Duration::from_micros(100));
                    }
                    tx.send(i).expect("receivers are gone");
                }
            });
        })
    }
}

/// Receives one value from the feeder (parks until it comes).
#[no_mangle]
pub extern "C" fn fx_recv() -> c_long {
    // SAFETY: this frame holds nothing.
    unsafe {
        callback(|| {
            FEED.get()
                .expect("fx_start_feeder first")
                .recv()
                .expect("feeder ended early") as c_long
        })
    }
}

/// Number of extra Ms the callback runtime has made.
#[no_mangle]
pub extern "C" fn fx_extra_ms() -> c_long {
    // SAFETY: this frame holds nothing.
    unsafe { callback(|| gort_cgo::counts().map_or(-1, |c| c.extra_ms as c_long)) }
}

/// Number of threads of this process whose name starts with "gort-"
/// (the runtimes' own threads).
#[no_mangle]
pub extern "C" fn fx_runtime_threads() -> c_long {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return -1;
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.starts_with("gort-"))
        })
        .count() as c_long
}

/// Panics in a callback with no Rust caller above it: a fatal error that
/// names this callback.
#[no_mangle]
pub extern "C" fn fx_panic_no_caller() {
    // SAFETY: this frame holds nothing.
    unsafe { callback(|| panic!("nobody to catch this")) }
}

/// How many times this thread's stack bounds were probed (golang/go#68285: a
/// thread that calls back repeatedly probes once).
#[no_mangle]
pub extern "C" fn fx_thread_probes() -> c_long {
    gort_stack_probes()
}

fn gort_stack_probes() -> c_long {
    gort_stack::thread_probes() as c_long
}

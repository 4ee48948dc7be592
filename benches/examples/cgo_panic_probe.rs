//! Times the panic-across-C shapes in batches and prints the fastest
//! and the median batch per operation: on a loaded machine the fastest
//! batch is the cost without preemption, which criterion's mean hides.
//! See the gort-cgo section of docs/performance.md.
//!
//! ```text
//! cargo build --release -p gort-benches --example cgo_panic_probe
//! target/release/examples/cgo_panic_probe [SCENARIO] [BATCHES] [PER_BATCH]
//! ```
//!
//! Scenarios: `recover_call` (`recover(|| cgo::call(..))`, Go's shape),
//! `try_call`, `panic_only` (one `panic!` under a quiet catch: the floor),
//! `recover` (a formatted `panic!` recovered, no C), `recover_ok`
//! and `catch_ok` (no panic: `recover` against `catch(true, ..)`),
//! `cold_walk` (the first resume on a thread against the second), `all`
//! (the default).

// Examples are not documented items.
#![allow(missing_docs)]

use std::ffi::c_void;
use std::hint::black_box;
use std::time::{Duration, Instant};

use gort_cgo::{call, callback};
use gort_unwind_cframes as c;

unsafe extern "C" fn panic_cb(_arg: *mut c_void) {
    // SAFETY: this frame holds nothing.
    unsafe { callback(|| panic!("boom")) }
}

fn recover_call(m: *mut c::Marks) {
    let r = gort_unwind::recover(|| {
        // SAFETY: the closure only calls the C function.
        unsafe { call(|| c::gort_c_call(panic_cb, std::ptr::null_mut(), m)) }
    });
    assert!(r.is_err());
}

fn try_call(m: *mut c::Marks) {
    // SAFETY: the closure only calls the C function.
    let r = unsafe { gort_cgo::try_call(|| c::gort_c_call(panic_cb, std::ptr::null_mut(), m)) };
    assert!(r.is_err());
}

/// The floor: one `panic!` caught by a quiet catch, no C, no resume (the
/// unwinder's price for std's panic machinery and two frames).
fn panic_only(_m: *mut c::Marks) {
    let r = gort_unwind::catch(true, || -> () { panic!("boom") });
    assert!(r.is_err());
}

fn recover(_m: *mut c::Marks) {
    let r = gort_unwind::recover(|| -> () { panic!("{}", black_box("boom")) });
    assert!(r.is_err());
}

/// One scenario: a loop body given the C markers.
type Op = fn(*mut c::Marks);

/// No panic: what `recover` costs when nothing panics (on_stack_resumable
/// around the closure)...
fn recover_ok(_m: *mut c::Marks) {
    assert_eq!(gort_unwind::recover(|| black_box(1)).unwrap(), 1);
}

/// ... against the quiet catch that `recover` was before (catch_unwind).
fn catch_ok(_m: *mut c::Marks) {
    assert_eq!(gort_unwind::catch(true, || black_box(1)).unwrap(), 1);
}

fn probe(name: &'static str, op: Op, batches: usize, per: usize) {
    let mut times: Vec<Duration> = gort_sched::Runtime::builder()
        .procs(1)
        .build()
        .unwrap()
        .run(move || {
            let mut marks = c::Marks::default();
            let m: *mut c::Marks = &mut marks;
            let j = gort_unwind::jumps_on_this_thread();
            for _ in 0..per {
                op(m); // warm up
            }
            let jumped = gort_unwind::jumps_on_this_thread() - j;
            eprintln!("{name}: {jumped} of {per} resumes jumped");
            (0..batches)
                .map(|_| {
                    let t = Instant::now();
                    for _ in 0..per {
                        op(m);
                    }
                    t.elapsed()
                })
                .collect()
        })
        .unwrap();
    times.sort();
    let ns = |d: Duration| d.as_nanos() as f64 / per as f64;
    println!(
        "{name:>14}: min {:7.0} ns  median {:7.0} ns",
        ns(times[0]),
        ns(times[times.len() / 2])
    );
}

/// The first `Panic::resume` on a fresh thread (the walk's cache is cold:
/// it parses the frames' call-frame information) against the second.
fn cold_walk() {
    let times: Vec<(u128, u128)> = (0..20)
        .map(|_| {
            std::thread::spawn(|| {
                let p = || gort_unwind::recover(|| -> () { panic!("boom") }).unwrap_err();
                let (p1, p2) = (p(), p());
                let t = Instant::now();
                let _ = gort_unwind::recover(move || -> () { p1.resume() });
                let cold = t.elapsed().as_nanos();
                let t = Instant::now();
                let _ = gort_unwind::recover(move || -> () { p2.resume() });
                (cold, t.elapsed().as_nanos())
            })
            .join()
            .unwrap()
        })
        .collect();
    let min = |f: fn(&(u128, u128)) -> u128| times.iter().map(f).min().unwrap();
    println!(
        "     cold_walk: first resume on a thread {} ns, second {} ns (fastest of 20 threads)",
        min(|t| t.0),
        min(|t| t.1)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map_or("all", String::as_str);
    if which == "all" || which == "cold_walk" {
        cold_walk();
    }
    let batches = args.get(2).map_or(200, |s| s.parse().expect("BATCHES"));
    let per = args.get(3).map_or(200, |s| s.parse().expect("PER_BATCH"));
    let all: [(&'static str, Op); 6] = [
        ("recover_call", recover_call),
        ("try_call", try_call),
        ("panic_only", panic_only),
        ("recover", recover),
        ("recover_ok", recover_ok),
        ("catch_ok", catch_ok),
    ];
    for (name, op) in all {
        if which == "all" || which == name {
            probe(name, op, batches, per);
        }
    }
}

//! Times issue 7's panic-across-C shapes in batches and prints the fastest
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
//! `try_call`, `recover` (a plain `panic!` recovered, no C), `all` (the
//! default).

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

fn recover(_m: *mut c::Marks) {
    let r = gort_unwind::recover(|| -> () { panic!("{}", black_box("boom")) });
    assert!(r.is_err());
}

/// One scenario: a loop body given the C markers.
type Op = fn(*mut c::Marks);

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map_or("all", String::as_str);
    let batches = args.get(2).map_or(200, |s| s.parse().expect("BATCHES"));
    let per = args.get(3).map_or(200, |s| s.parse().expect("PER_BATCH"));
    let all: [(&'static str, Op); 3] = [
        ("recover_call", recover_call),
        ("try_call", try_call),
        ("recover", recover),
    ];
    for (name, op) in all {
        if which == "all" || which == name {
            probe(name, op, batches, per);
        }
    }
}

//! The floor of each cgo path on a busy machine: the fastest of 30 rounds
//! of 200,000 operations (and the median and slowest, on stderr), for the
//! same four shapes as benches/benches/cgo.rs. The minimum of many rounds
//! is robust to other work on the machine, where criterion's mean is not;
//! it is a floor, not a replacement for the same-minute comparison with Go.
//!
//! `cargo run --release -p gort-benches --example cgo_probe`

use std::ffi::c_void;
use std::hint::black_box;
use std::time::Instant;

use gort_cgo::{call, callback};
use gort_unwind_cframes as c;

unsafe extern "C" fn nop_cb(_arg: *mut c_void) {
    // SAFETY: this frame holds nothing.
    unsafe { callback(|| black_box(())) }
}

/// Runs `f(n)` `rounds` times; prints min, median and max ns per
/// operation to stderr and returns the min.
fn rounds_ns(label: &str, rounds: usize, n: u64, mut f: impl FnMut(u64)) -> f64 {
    let mut v: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f(n);
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    eprintln!(
        "{label:<12} min {:.1}  median {:.1}  max {:.1} ns",
        v[0],
        v[v.len() / 2],
        v[v.len() - 1]
    );
    v[0]
}

fn main() {
    const ROUNDS: usize = 30;
    const N: u64 = 200_000;
    let (call_ns, round_trip_ns) = gort_sched::Runtime::builder()
        .procs(1)
        .build()
        .expect("a runtime")
        .run(|| {
            let call_ns = rounds_ns("call", ROUNDS, N, |n| {
                let mut s = 0i32;
                for i in 0..n {
                    // SAFETY: the closure only calls the C function.
                    s = s.wrapping_add(unsafe { call(|| c::gort_c_inc(i as i32)) });
                }
                black_box(s);
            });
            let round_trip_ns = rounds_ns("round trip", ROUNDS, N, |n| {
                for _ in 0..n {
                    // SAFETY: the closure only calls the C function.
                    unsafe { call(|| c::gort_c_loop(1, nop_cb, std::ptr::null_mut())) };
                }
            });
            (call_ns, round_trip_ns)
        })
        .expect("the probe's runtime");
    // This thread is a plain thread, like a C program's main thread: bound
    // to an extra M of the default callback runtime on the first callback.
    // SAFETY: C calls back through `callback`.
    unsafe { c::gort_c_loop(1, nop_cb, std::ptr::null_mut()) };
    let main_ns = rounds_ns("main thread", ROUNDS, N, |n| {
        // SAFETY: as above.
        unsafe { c::gort_c_loop(n as _, nop_cb, std::ptr::null_mut()) };
    });
    let pthread_ns = rounds_ns("pthread", ROUNDS, N, |n| {
        // SAFETY: as above.
        let e = unsafe { c::gort_c_threads(1, n as _, nop_cb, std::ptr::null_mut()) };
        assert_eq!(e, 0, "the C thread could not be created");
    });
    println!(
        "fastest round, ns per operation: call {call_ns:.1}  round trip {round_trip_ns:.1}  \
         main-thread callback {main_ns:.1}  pthread callback {pthread_ns:.1}"
    );
}

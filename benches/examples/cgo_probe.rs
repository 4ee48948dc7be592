//! The floor of each cgo path on a busy machine: the fastest of 30 rounds
//! of 200,000 operations (and the median and slowest, on stderr), for the
//! same shapes as benches/benches/cgo.rs. The minimum of many rounds
//! is robust to other work on the machine, where criterion's mean is not;
//! it is a floor, not a replacement for the same-minute comparison with Go.
//!
//! `cargo run --release -p gort-benches --example cgo_probe [SHAPE]`, SHAPE one of
//! call, round_trip, main, pthread (the panic shapes: cgo_panic_probe)
//! (one shape only with an argument: for `perf record`).

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
    // GORT_PROBE_ROUNDS: fewer rounds, for benches/go/paired.sh.
    let rounds: usize = std::env::var("GORT_PROBE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(30);
    const N: u64 = 200_000;
    // An optional argument picks one shape (for perf record).
    let only: &'static Option<String> = Box::leak(Box::new(std::env::args().nth(1)));
    let wants = |shape: &str| only.as_deref().is_none_or(|o| o == shape);
    let mut fastest = Vec::new();
    if ["call", "round_trip", "panic", "panic_try"]
        .iter()
        .any(|s| wants(s))
    {
        let r = gort_sched::Runtime::builder()
            .procs(1)
            .build()
            .expect("a runtime")
            .run(move || {
                let mut r = Vec::new();
                if wants("call") {
                    let ns = rounds_ns("call", rounds, N, |n| {
                        let mut s = 0i32;
                        for i in 0..n {
                            // SAFETY: the closure only calls the C function.
                            s = s.wrapping_add(unsafe { call(|| c::gort_c_inc(i as i32)) });
                        }
                        black_box(s);
                    });
                    r.push(("call", ns));
                }
                if wants("round_trip") {
                    let ns = rounds_ns("round trip", rounds, N, |n| {
                        for _ in 0..n {
                            // SAFETY: the closure only calls the C function.
                            unsafe { call(|| c::gort_c_loop(1, nop_cb, std::ptr::null_mut())) };
                        }
                    });
                    r.push(("round trip", ns));
                }
                r
            })
            .expect("the probe's runtime");
        fastest.extend(r);
    }
    if wants("main") {
        // This thread is a plain thread, like a C program's main thread:
        // bound to an extra M of the default callback runtime on the first
        // callback.
        // SAFETY: C calls back through `callback`.
        unsafe { c::gort_c_loop(1, nop_cb, std::ptr::null_mut()) };
        let ns = rounds_ns("main thread", rounds, N, |n| {
            // SAFETY: as above.
            unsafe { c::gort_c_loop(n as _, nop_cb, std::ptr::null_mut()) };
        });
        fastest.push(("main-thread callback", ns));
    }
    if wants("pthread") {
        let ns = rounds_ns("pthread", rounds, N, |n| {
            // SAFETY: as above.
            let e = unsafe { c::gort_c_threads(1, n as _, nop_cb, std::ptr::null_mut()) };
            assert_eq!(e, 0, "the C thread could not be created");
        });
        fastest.push(("pthread callback", ns));
    }
    let line: Vec<String> = fastest
        .iter()
        .map(|(label, ns)| format!("{label} {ns:.1}"))
        .collect();
    println!("fastest round, ns per operation: {}", line.join("  "));
}

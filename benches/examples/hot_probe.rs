//! Instruction counts of the scheduler's hot paths, for callgrind: a
//! before/after check of a change that must not cost anything (the split
//! of the scheduler into rooms, the `HeldP` token). Timing is not
//! measured here; run it under `valgrind --tool=callgrind` and compare the
//! totals, less a `none` run, divided by N.
//!
//! `hot_probe SHAPE N`, SHAPE one of
//! - `yield`: two goroutines yielding to each other on one P (N rounds,
//!   two yields each);
//! - `chan`: a rendezvous-channel ping-pong on one P (N round trips, two
//!   hops each);
//! - `cgo`: N `cgo::call`s of an empty C-ABI function;
//! - `timer`: N `time::Timer::new(1h)` then `stop()` (benches/time.rs's
//!   create_stop);
//! - `after`: N sends and `select!`s of a ready channel against
//!   `time::after(1h)` (benches/time.rs's after_select);
//! - `none`: the same runtime start and stop with no loop.
//!
//! As a user's crate builds it (no LTO, 16 codegen units), which is what
//! docs/sched.md reports:
//!
//! ```text
//! cargo build --release -p gort-benches --example hot_probe \
//!     --config profile.release.lto=false --config profile.release.codegen-units=16
//! valgrind --tool=callgrind target/release/examples/hot_probe yield 100000
//! ```

use std::hint::black_box;

#[inline(never)]
extern "C" fn noop(x: u64) -> u64 {
    black_box(x)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).cloned().unwrap_or_else(|| "yield".into());
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    gort_sched::Runtime::builder()
        .procs(1)
        .build()
        .expect("runtime")
        .run(move || match what.as_str() {
            "yield" => {
                let h = gort_sched::go(move || {
                    for _ in 0..n {
                        gort_sched::yield_now();
                    }
                });
                for _ in 0..n {
                    gort_sched::yield_now();
                }
                h.join().expect("join");
            }
            "chan" => {
                let (tx1, rx1) = gort_sync::chan::bounded::<u64>(0);
                let (tx2, rx2) = gort_sync::chan::bounded::<u64>(0);
                let h = gort_sched::go(move || {
                    for v in rx1.iter() {
                        tx2.send(v + 1).expect("send");
                    }
                });
                for i in 0..n {
                    tx1.send(i).expect("send");
                    black_box(rx2.recv().expect("recv"));
                }
                drop(tx1);
                h.join().expect("join");
            }
            "cgo" => {
                for _ in 0..n {
                    // SAFETY: nothing in this frame has a destructor.
                    black_box(unsafe { gort_cgo::call(|| noop(black_box(1))) });
                }
            }
            "timer" => {
                for _ in 0..n {
                    let t = gort_sync::time::Timer::new(std::time::Duration::from_secs(3600));
                    black_box(t.stop());
                }
            }
            "after" => {
                let (tx, rx) = gort_sync::chan::bounded(1);
                for i in 0..n {
                    tx.send(i).expect("send");
                    gort_sync::select! {
                        recv(rx) -> v => { black_box(v.expect("recv")); },
                        recv(gort_sync::time::after(std::time::Duration::from_secs(3600))) -> _ => unreachable!(),
                    }
                }
            }
            _ => {
                black_box(n);
            }
        })
        .expect("run");
}

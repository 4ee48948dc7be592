//! Yields for instruction counts: `YIELDS` calls of `yield_now` by each of
//! two goroutines at procs 1 (each yield queues the caller at the tail of
//! the local queue and calls `wakep`, then switches to the other).
//!
//! `cargo run --release -p gort-benches --example yield_probe [YIELDS]`;
//! under `valgrind --tool=callgrind`, the instructions per yield are the
//! total over 2 * YIELDS (minus a run with YIELDS 0).

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(200_000, |a| a.parse().unwrap());
    let rt = gort_sched::Runtime::builder().procs(1).build().unwrap();
    rt.run(move || {
        let h = gort_sched::go(move || {
            for _ in 0..n {
                gort_sched::yield_now();
            }
        });
        for _ in 0..n {
            gort_sched::yield_now();
        }
        h.join().unwrap();
    })
    .unwrap();
}

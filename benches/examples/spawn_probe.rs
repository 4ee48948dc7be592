//! One million goroutines spawned before any is joined, then joined
//! (benches/benches/sched.rs's `spawn_join_1m` shape), for profiles:
//! prints ns per goroutine for each of ROUNDS runs.
//!
//! `cargo run --release -p gort-benches --example spawn_probe [PROCS [N [ROUNDS]]]`

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let procs: usize = args.next().map_or(2, |a| a.parse().unwrap());
    let n: usize = args.next().map_or(1_000_000, |a| a.parse().unwrap());
    let rounds: usize = args.next().map_or(3, |a| a.parse().unwrap());
    let rt = gort_sched::Runtime::builder().procs(procs).build().unwrap();
    rt.run(move || {
        for _ in 0..rounds {
            let start = Instant::now();
            let handles: Vec<_> = (0..n).map(|_| gort_sched::go(|| ())).collect();
            for h in handles {
                h.join().unwrap();
            }
            let ns = start.elapsed().as_nanos() as f64 / n as f64;
            println!("{ns:.1} ns per goroutine (procs {procs}, {n} spawned, then joined)");
        }
    })
    .unwrap();
}

//! Channel ping-pong hops for instruction counts and floors: `HOPS` hops
//! between main and one goroutine at procs 1 over two channels of capacity
//! `CAP` (0: rendezvous), the same shape as benches/benches/chan.rs.
//! Prints the fastest of 10 rounds per hop on stderr.
//!
//! `cargo run --release -p gort-benches --example chan_probe [HOPS [CAP
//! [ROUNDS]]]`; under `valgrind --tool=callgrind` with ROUNDS 1, the
//! instructions per hop are the total over HOPS (minus a run with HOPS 0).

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let hops: u64 = args.next().map_or(400_000, |a| a.parse().unwrap());
    let cap: usize = args.next().map_or(0, |a| a.parse().unwrap());
    let rounds: usize = args.next().map_or(10, |a| a.parse().unwrap());
    let rt = gort_sched::Runtime::builder().procs(1).build().unwrap();
    let best = rt
        .run(move || {
            let (a_tx, a_rx) = gort_sync::chan::bounded::<u64>(cap);
            let (b_tx, b_rx) = gort_sync::chan::bounded::<u64>(cap);
            let h = gort_sched::go(move || {
                for v in a_rx.iter() {
                    if b_tx.send(v + 1).is_err() {
                        break;
                    }
                }
            });
            let mut best = f64::MAX;
            let mut v = 0;
            for _ in 0..rounds {
                let start = Instant::now();
                for _ in 0..hops.div_ceil(2) {
                    a_tx.send(v).unwrap();
                    v = b_rx.recv().unwrap();
                }
                best = best.min(start.elapsed().as_nanos() as f64 / hops.max(1) as f64);
            }
            drop(a_tx);
            h.join().unwrap();
            best
        })
        .unwrap();
    eprintln!("cap {cap}: {best:.1} ns per hop (fastest of {rounds} rounds of {hops})");
}

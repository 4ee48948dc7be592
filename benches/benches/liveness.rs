//! Liveness under CPU-bound goroutines (docs/sched.md, "Liveness"), the
//! same shapes as benches/go/liveness:
//!
//! - `tick_gap/procs{1,2}`: eight workers hash 1 MiB blocks (about 1-10 ms
//!   a block, no calls into gort) while a goroutine sleeps 10 ms in a loop
//!   of 30; one iteration's "time" is the worst gap between two ticks
//!   beyond the 10 ms asked (criterion's mean is the mean worst lateness).
//! - `timer_beside_cpu_loop/procs1`: one goroutine spins for 300 ms while
//!   main sleeps 50 ms; the "time" is how late main wakes.
//!
//! Run: `cargo bench -p gort-benches --bench liveness`; Go:
//! `cd benches/go/liveness && GOMAXPROCS=N go test -bench .`

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;

fn rt(procs: usize) -> gort_sched::Runtime {
    gort_sched::Runtime::builder().procs(procs).build().unwrap()
}

/// FNV-1a over `block`.
fn hash(block: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in block {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// The worst lateness of 30 ticks of 10 ms beside eight hashing workers.
fn tick_gap(procs: usize) -> Duration {
    rt(procs)
        .run(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let workers: Vec<_> = (0..8)
                .map(|i| {
                    let stop = stop.clone();
                    gort_sched::go(move || {
                        let block = vec![i as u8; 1 << 20];
                        let mut h = 0;
                        while !stop.load(Ordering::Relaxed) {
                            h ^= hash(black_box(&block));
                        }
                        black_box(h);
                    })
                })
                .collect();
            let mut worst = Duration::ZERO;
            let mut last = Instant::now();
            for _ in 0..30 {
                gort_sched::sleep(Duration::from_millis(10));
                let now = Instant::now();
                worst = worst.max((now - last).saturating_sub(Duration::from_millis(10)));
                last = now;
            }
            stop.store(true, Ordering::Relaxed);
            for w in workers {
                w.join().unwrap();
            }
            worst
        })
        .unwrap()
}

/// How late a 50 ms sleep wakes beside a 300 ms CPU loop at procs 1.
fn timer_beside_cpu_loop() -> Duration {
    rt(1)
        .run(|| {
            let t = Instant::now();
            let h = gort_sched::go(|| {
                let start = Instant::now();
                let mut x = 0u64;
                while start.elapsed() < Duration::from_millis(300) {
                    for i in 0..1000u64 {
                        x = black_box(x.wrapping_mul(31).wrapping_add(i));
                    }
                }
                black_box(x);
            });
            gort_sched::sleep(Duration::from_millis(50));
            let late = t.elapsed().saturating_sub(Duration::from_millis(50));
            h.join().unwrap();
            late
        })
        .unwrap()
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(3));
    {
        let mut g = c.benchmark_group("tick_gap");
        for procs in [1, 2] {
            g.bench_function(format!("procs{procs}"), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| tick_gap(procs)).sum())
            });
        }
        g.finish();
    }
    {
        let mut g = c.benchmark_group("timer_beside_cpu_loop");
        g.bench_function("procs1", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| timer_beside_cpu_loop()).sum())
        });
        g.finish();
    }
    c.final_summary();
}

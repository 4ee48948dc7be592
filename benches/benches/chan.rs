//! gort-sync channels against tokio and may (Go's figures come from
//! benches/go/chan, same shapes):
//!
//! - `ping_pong/{rendezvous,buffered1}/procs{1,2}`: two goroutines pass a
//!   value back and forth over two channels (capacity 0, or 1); one
//!   iteration = one hop (one send received by the other side). Go's
//!   headline: 124 ns per hop, rendezvous, GOMAXPROCS=1.
//!
//! Peers: tokio's `mpsc::channel(1)` (it has no rendezvous channel; its
//! smallest bound is 1) between two tasks, `current_thread` for procs 1 and
//! `multi_thread` with 2 workers for procs 2; may's `sync::mpsc` (unbounded;
//! may has no bounded channel) between two coroutines with one worker (its
//! worker count is process-global, set once here).
//!
//! Run: `cargo bench -p gort-benches --bench chan`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{BenchmarkGroup, Criterion};
use std::time::{Duration, Instant};

/// gort: `iters` hops between main and one goroutine on a fresh runtime.
fn gort_ping_pong(procs: usize, cap: usize, iters: u64) -> Duration {
    gort_sched::Runtime::builder()
        .procs(procs)
        .build()
        .unwrap()
        .run(move || {
            let (a_tx, a_rx) = gort_sync::chan::bounded::<u64>(cap);
            let (b_tx, b_rx) = gort_sync::chan::bounded::<u64>(cap);
            let rounds = iters.div_ceil(2);
            let h = gort_sched::go(move || {
                for v in a_rx.iter() {
                    if b_tx.send(v + 1).is_err() {
                        break;
                    }
                }
            });
            let start = Instant::now();
            let mut v = 0;
            for _ in 0..rounds {
                a_tx.send(v).unwrap();
                v = b_rx.recv().unwrap();
            }
            let took = start.elapsed();
            assert_eq!(v, rounds);
            drop(a_tx);
            h.join().unwrap();
            took
        })
        .unwrap()
}

fn tokio_ping_pong(procs: usize, iters: u64) -> Duration {
    let rt = if procs == 1 {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(procs)
            .build()
            .unwrap()
    };
    rt.block_on(async move {
        let main = tokio::spawn(async move {
            let (a_tx, mut a_rx) = tokio::sync::mpsc::channel::<u64>(1);
            let (b_tx, mut b_rx) = tokio::sync::mpsc::channel::<u64>(1);
            let rounds = iters.div_ceil(2);
            let other = tokio::spawn(async move {
                while let Some(v) = a_rx.recv().await {
                    if b_tx.send(v + 1).await.is_err() {
                        break;
                    }
                }
            });
            let start = Instant::now();
            let mut v = 0;
            for _ in 0..rounds {
                a_tx.send(v).await.unwrap();
                v = b_rx.recv().await.unwrap();
            }
            let took = start.elapsed();
            drop(a_tx);
            other.await.unwrap();
            took
        });
        main.await.unwrap()
    })
}

fn may_ping_pong(iters: u64) -> Duration {
    // SAFETY: may's contract for spawn: the coroutines touch no
    // thread-local storage of their own and stay within their stacks; they
    // only send and receive on may channels.
    let h = unsafe {
        may::coroutine::spawn(move || {
            let (a_tx, a_rx) = may::sync::mpsc::channel::<u64>();
            let (b_tx, b_rx) = may::sync::mpsc::channel::<u64>();
            let rounds = iters.div_ceil(2);
            // SAFETY: as above.
            let other = may::coroutine::spawn(move || {
                while let Ok(v) = a_rx.recv() {
                    if b_tx.send(v + 1).is_err() {
                        break;
                    }
                }
            });
            let start = Instant::now();
            let mut v = 0;
            for _ in 0..rounds {
                a_tx.send(v).unwrap();
                v = b_rx.recv().unwrap();
            }
            let took = start.elapsed();
            drop(a_tx);
            other.join().unwrap();
            took
        })
    };
    h.join().unwrap()
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g
}

fn bench(c: &mut Criterion) {
    may::config().set_workers(1);
    for (shape, cap) in [("rendezvous", 0), ("buffered1", 1)] {
        let mut g = group(c, &format!("ping_pong/{shape}"));
        for procs in [1, 2] {
            g.bench_function(format!("gort/procs{procs}"), |b| {
                b.iter_custom(|iters| gort_ping_pong(procs, cap, iters))
            });
            g.bench_function(format!("tokio/procs{procs}"), |b| {
                b.iter_custom(|iters| tokio_ping_pong(procs, iters))
            });
        }
        g.bench_function("may/procs1", |b| b.iter_custom(may_ping_pong));
        g.finish();
    }
}

criterion::criterion_group!(benches, bench);
criterion::criterion_main!(benches);

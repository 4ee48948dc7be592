//! gort::time against Go 1.23 (benches/go/time, same shapes):
//!
//! - `timer/create_stop`: `Timer::new(1h)` then `stop()`, one goroutine
//!   (Go: `time.NewTimer(time.Hour).Stop()`); one iteration = one timer.
//! - `timer/after_select`: a `select!` loop whose ready channel arm always
//!   wins over an `after(1h)` arm (Go: `select { case <-c: case
//!   <-time.After(time.Hour): }`); one iteration = one send, one select
//!   and one `after`.
//!
//! Both at procs 1. Run gort's and Go's in the same minutes (the machine
//! is noisy): `benches/go/time/run.sh` does both, back to back.
//!
//! Run: `cargo bench -p gort-benches --bench time`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::Criterion;
use gort_sync::time::{after, Timer};
use std::time::{Duration, Instant};

const HOUR: Duration = Duration::from_secs(3600);

fn on_runtime(f: impl FnOnce() -> Duration + Send + 'static) -> Duration {
    gort_sched::Runtime::builder()
        .procs(1)
        .build()
        .unwrap()
        .run(f)
        .unwrap()
}

fn create_stop(iters: u64) -> Duration {
    on_runtime(move || {
        let start = Instant::now();
        for _ in 0..iters {
            let t = Timer::new(HOUR);
            std::hint::black_box(t.stop());
        }
        start.elapsed()
    })
}

fn after_select(iters: u64) -> Duration {
    on_runtime(move || {
        let (tx, rx) = gort_sync::chan::bounded(1);
        let start = Instant::now();
        for i in 0..iters {
            tx.send(i).unwrap();
            gort_sync::select! {
                recv(rx) -> v => { std::hint::black_box(v.unwrap()); },
                recv(after(HOUR)) -> _ => unreachable!(),
            }
        }
        start.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("timer");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("create_stop/gort/procs1", |b| b.iter_custom(create_stop));
    g.bench_function("after_select/gort/procs1", |b| b.iter_custom(after_select));
    g.finish();
}

criterion::criterion_group!(benches, bench);
criterion::criterion_main!(benches);

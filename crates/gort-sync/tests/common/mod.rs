//! Helpers shared by gort-sync's test files.

#![allow(dead_code)]

use gort_sched::{num_goroutines, Runtime};
use std::time::{Duration, Instant};

pub use gort_testing::under_qemu;

/// Goroutines left besides main, once those that finished have exited
/// (join returns when the result is published, a moment before the
/// goroutine is gone).
pub fn goroutines_left() -> usize {
    let t = Instant::now();
    while num_goroutines() > 1 && t.elapsed() < Duration::from_secs(5) {
        gort_sched::sleep(Duration::from_millis(1));
    }
    num_goroutines() - 1
}

pub fn rt(procs: usize) -> Runtime {
    Runtime::builder().procs(procs).build().unwrap()
}

/// A runtime whose goroutines plain threads may wake (else a moment when
/// every goroutine waits on a thread is a deadlock).
pub fn rt_with_threads(procs: usize) -> Runtime {
    Runtime::builder()
        .procs(procs)
        .external_wakers(true)
        .build()
        .unwrap()
}

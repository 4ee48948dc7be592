//! Timers give their memory back: 100,000 timers made and stopped (kept
//! alive, then dropped), and 100,000 made, reset and dropped, leave the
//! live heap bytes where they were, within a few KiB. Measured with a
//! counting global allocator, so this file holds this one test (no other
//! test allocates while it measures). All three targets.

#![cfg(not(loom))]

use gort_sync::time::Timer;
use gort_testing::alloc::{live, Counting};
use gort_testing::under_qemu;
use std::time::Duration;

#[global_allocator]
static ALLOC: Counting = Counting;

/// `n` timers kept alive and stopped, then dropped; `n` more made, reset
/// and dropped one at a time.
fn churn(n: u32) {
    let timers: Vec<_> = (0..n)
        .map(|i| Timer::new(Duration::from_secs(60 + u64::from(i % 1000))))
        .collect();
    for t in &timers {
        assert!(t.stop());
    }
    drop(timers);
    for i in 0..n {
        let t = Timer::new(Duration::from_secs(60));
        t.reset(Duration::from_secs(61 + u64::from(i % 7)));
    }
}

#[test]
fn timers_made_and_stopped_give_their_memory_back() {
    let n: u32 = if under_qemu() { 20_000 } else { 100_000 };
    let kept = gort_sched::Runtime::builder()
        .procs(1)
        .build()
        .unwrap()
        .run(move || {
            // Warm: whatever a first timer makes lazily exists from here.
            churn(100);
            let before = live();
            churn(n);
            live() - before
        })
        .unwrap();
    assert!(
        kept <= 16 * 1024,
        "{kept} bytes still held after {n} timers were made and stopped"
    );
}

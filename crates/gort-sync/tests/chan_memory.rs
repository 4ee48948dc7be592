//! An unbounded channel gives memory back: after a burst of 100,000 values
//! queued and drained, its buffer holds at most a few KiB. Measured with a
//! counting global allocator (live bytes), so this file holds this one
//! test: no other test allocates while it measures. All three targets.

#![cfg(not(loom))]

use gort_sync::chan;
use gort_testing::alloc::{live, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn an_unbounded_channel_gives_a_burst_back_once_drained() {
    const N: u64 = 100_000;
    let (tx, rx) = chan::unbounded::<u64>();
    for round in 0..3 {
        let before = live();
        for i in 0..N {
            tx.send(i).unwrap();
        }
        let peak = live() - before;
        assert!(
            peak >= 8 * N as isize,
            "the burst is measured: {peak} bytes"
        );
        for i in 0..N {
            assert_eq!(rx.try_recv(), Ok(i));
        }
        let kept = live() - before;
        assert!(
            kept <= 4096,
            "round {round}: {kept} bytes still held after draining a {peak}-byte burst"
        );
    }
    // A slow drain: never more than 4x what is still queued (plus the
    // floor) while it drains.
    let before = live();
    for i in 0..N {
        tx.send(i).unwrap();
    }
    for i in 0..N - 1000 {
        assert_eq!(rx.try_recv(), Ok(i));
    }
    let held = live() - before;
    assert!(held <= 4 * 8 * 1000 + 4096, "{held} bytes for 1,000 values");
}

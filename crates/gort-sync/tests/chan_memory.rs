//! An unbounded channel gives memory back: after a burst of 100,000 values
//! queued and drained, its buffer holds at most a few KiB. Measured with a
//! counting global allocator (live bytes), so this file holds this one
//! test: no other test allocates while it measures. All three targets.

#![cfg(not(loom))]

use gort_sync::chan;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call forwards to `System` with the caller's arguments (its
// contract is the caller's); the counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded (see the impl's comment).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

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

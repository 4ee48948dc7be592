//! The runtime's thread-local accessors are never cached across a switch.
//!
//! A goroutine may resume on another thread after any yield or park, but
//! the compiler assumes a function never changes threads: on aarch64 (and
//! i686) it computes a thread-local's address once per function and keeps
//! it across calls. gort's accessors (`current_g` and the others listed in
//! docs/HACKING.md, "Thread-locals") are therefore never inlined, so each
//! call computes the address on the thread it runs on.
//!
//! `current()` (like `id()`) is `#[inline]`, so in this binary (release, thin
//! LTO) `round` below holds, after inlining, exactly the shape that breaks:
//! a thread-local read, a switch, the same read. If the accessor under
//! them were inlinable, the second read would use the first thread's slot
//! after a migration and see another goroutine (or none). Run it where
//! the compiler caches the address:
//! `cargo xtask test --target aarch64-unknown-linux-gnu -- --release -p gort-sched --test tls_switch`.

#![cfg(not(loom))]

use gort_sched::{go, sleep, yield_now, Runtime};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const ROUNDS: usize = 2_000;
const CHECKED: usize = 8;
const YIELDERS: usize = 4;

static MIGRATIONS: AtomicUsize = AtomicUsize::new(0);

/// The kernel's id for the calling thread, without any thread-local (a
/// cached `std::thread::current()` would hide a migration).
fn tid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// A yield, or every 16th time a short sleep: a timer's wake may ready the
/// goroutine on the other P, so goroutines change threads often.
#[inline(always)]
fn switch(i: usize) {
    if i % 16 == 0 {
        sleep(Duration::from_micros(20));
    } else {
        yield_now();
    }
}

/// Reads the goroutine's handle on both sides of a yield, ROUNDS
/// times; returns how many rounds disagreed, and counts the migrations.
#[inline(never)]
fn round(me: u64) -> usize {
    let mut wrong = 0;
    let mut thread = tid();
    for i in 0..ROUNDS {
        // `current()`, not `id()`: a wrong read counts, not panics.
        let before = gort_sched::park::current().map(|g| g.id());
        switch(i);
        let after = gort_sched::park::current().map(|g| g.id());
        if before != Some(me) || after != Some(me) {
            wrong += 1;
        }
        let now = tid();
        if now != thread {
            MIGRATIONS.fetch_add(1, Ordering::Relaxed);
            thread = now;
        }
    }
    wrong
}

#[test]
fn accessors_are_fresh_after_every_switch() {
    Runtime::builder()
        .procs(2)
        .build()
        .unwrap()
        .run(|| {
            let yielders: Vec<_> = (0..YIELDERS)
                .map(|_| {
                    go(|| {
                        for _ in 0..ROUNDS {
                            yield_now();
                        }
                    })
                })
                .collect();
            let checked: Vec<_> = (0..CHECKED)
                .map(|_| go(|| round(gort_sched::id())))
                .collect();
            let wrong: Vec<usize> = checked.into_iter().map(|h| h.join().unwrap()).collect();
            for h in yielders {
                h.join().unwrap();
            }
            let migrations = MIGRATIONS.load(Ordering::Relaxed);
            // Without migrations the test proves nothing.
            assert!(
                migrations > 0,
                "no goroutine changed threads in {} yields",
                CHECKED * ROUNDS
            );
            assert!(
                wrong.iter().all(|&w| w == 0),
                "a goroutine read another's identity after a switch \
                 (rounds wrong per goroutine: {wrong:?}; {migrations} migrations)"
            );
        })
        .unwrap();
}

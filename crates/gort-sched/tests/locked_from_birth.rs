//! A goroutine spawned with `GoBuilder::locked(true)` never changes
//! threads, so a `std` thread-local keeps its value across parks, beside
//! goroutines that migrate and write the same thread-local.

#![cfg(not(loom))]

use gort_sched::{go, sleep, yield_now, GoBuilder, Runtime};
use std::cell::Cell;
use std::time::Duration;

const PARKS: u64 = 2_000;
const LOCKED: u64 = 3;
const MIGRATING: u64 = 4;

thread_local! {
    static VALUE: Cell<u64> = const { Cell::new(0) };
}

/// The kernel's id for the calling thread, without any thread-local.
fn tid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Writes the thread-local, parks, and reads it back, PARKS times; the
/// rounds where the value or the thread changed.
fn keep(tag: u64) -> (u64, u64) {
    let thread = tid();
    let (mut changed, mut moved) = (0, 0);
    for i in 0..PARKS {
        let mine = (tag << 32) | i;
        set_here(mine);
        // A timer park and a yield: both let the P run other goroutines.
        if i % 2 == 0 {
            sleep(Duration::from_micros(1));
        } else {
            yield_now();
        }
        if get_here() != mine {
            changed += 1;
        }
        if tid() != thread {
            moved += 1;
        }
    }
    (changed, moved)
}

/// Sets the calling thread's `VALUE`. Not inlined: inlined into `trample`,
/// whose loop parks, the compiler may keep the first thread's address, and
/// the unlocked goroutine would go on writing that thread's slot after it
/// left, even while a locked goroutine owns the thread (seen on aarch64 in
/// release: 245 of 2,000 values changed under a goroutine that never
/// moved).
#[inline(never)]
fn set_here(v: u64) {
    VALUE.with(|c| c.set(v));
}

/// Reads the calling thread's `VALUE` (not inlined, as `set_here`: `keep`
/// also runs unlocked, in the control).
#[inline(never)]
fn get_here() -> u64 {
    VALUE.with(|c| c.get())
}

/// Writes the thread-local of whatever thread it runs on, between yields;
/// the number of times it found itself on another thread.
fn trample(tag: u64) -> u64 {
    let mut thread = tid();
    let mut moves = 0;
    for i in 0..PARKS {
        set_here((tag << 32) | i);
        // A timer's wake may ready it on the other P: it changes threads.
        if i % 16 == 0 {
            sleep(Duration::from_micros(20));
        } else {
            yield_now();
        }
        let now = tid();
        if now != thread {
            moves += 1;
            thread = now;
        }
    }
    moves
}

#[test]
fn locked_from_birth_keeps_thread_locals_across_parks() {
    Runtime::builder()
        .procs(2)
        .build()
        .unwrap()
        .run(|| {
            let migrating: Vec<_> = (0..MIGRATING)
                .map(|t| go(move || trample(1_000 + t)))
                .collect();
            let locked: Vec<_> = (0..LOCKED)
                .map(|t| {
                    GoBuilder::new()
                        .locked(true)
                        .spawn(move || keep(t + 1))
                        .unwrap()
                })
                .collect();
            let kept: Vec<(u64, u64)> = locked.into_iter().map(|h| h.join().unwrap()).collect();
            let moves: u64 = migrating.into_iter().map(|h| h.join().unwrap()).sum();
            assert!(
                kept.iter().all(|&k| k == (0, 0)),
                "a goroutine locked from birth saw its thread-local change or its \
                 thread move ((changed, moved) per goroutine: {kept:?})"
            );
            // The others did migrate, so the locked ones were exposed.
            assert!(moves > 0, "no unlocked goroutine ever changed threads");
        })
        .unwrap();
}

#[test]
fn unlocked_goroutines_do_migrate() {
    // The control: the same loop, spawned without the option, moves (else
    // the test above would pass for the wrong reason).
    Runtime::builder()
        .procs(2)
        .build()
        .unwrap()
        .run(|| {
            let hs: Vec<_> = (0..MIGRATING).map(|t| go(move || trample(t))).collect();
            let moved: Vec<u64> = (0..LOCKED)
                .map(|t| go(move || keep(100 + t).1))
                .map(|h| h.join().unwrap())
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert!(
                moved.iter().any(|&m| m > 0),
                "unlocked goroutines never changed threads: {moved:?}"
            );
        })
        .unwrap();
}

//! Mutex (exact counts under contention from goroutines and threads,
//! try_lock) and WaitGroup. All three targets. (Starvation mode, which
//! only the mutex's own counter shows, is tested in src/sync.rs.)

#![cfg(not(loom))]

mod common;

use common::{goroutines_left, rt, rt_with_threads, under_qemu};

use gort_sched::{go, sleep, yield_now};
use gort_sync::sync::{Mutex, WaitGroup};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn mutex_keeps_a_counter_exact_under_64_goroutines() {
    let per = if under_qemu() { 500 } else { 5_000 };
    for procs in [1, 4] {
        let total = rt(procs)
            .run(move || {
                let m = Arc::new(Mutex::new(0usize));
                let hs: Vec<_> = (0..64)
                    .map(|k| {
                        let m = m.clone();
                        go(move || {
                            for i in 0..per {
                                let mut g = m.lock();
                                let v = *g;
                                if (i + k) % 64 == 0 {
                                    // Park while holding it now and then.
                                    yield_now();
                                }
                                *g = v + 1;
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
                assert_eq!(goroutines_left(), 0);
                let v = *m.lock();
                v
            })
            .unwrap();
        assert_eq!(total, 64 * per, "procs {procs}");
    }
}

#[test]
fn mutex_is_shared_by_goroutines_and_plain_threads() {
    let per = if under_qemu() { 2_000 } else { 20_000 };
    let total = rt_with_threads(2)
        .run(move || {
            let m = Arc::new(Mutex::new(0usize));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let m = m.clone();
                    std::thread::spawn(move || (0..per).for_each(|_| *m.lock() += 1))
                })
                .collect();
            let gs: Vec<_> = (0..8)
                .map(|_| {
                    let m = m.clone();
                    go(move || (0..per).for_each(|_| *m.lock() += 1))
                })
                .collect();
            threads.into_iter().for_each(|t| t.join().unwrap());
            gs.into_iter().for_each(|g| g.join().unwrap());
            let v = *m.lock();
            v
        })
        .unwrap();
    assert_eq!(total, 10 * per);
}

#[test]
fn try_lock_fails_while_held() {
    let m = Mutex::new(1);
    let g = m.lock();
    assert!(m.try_lock().is_none());
    drop(g);
    *m.try_lock().unwrap() += 1;
    assert_eq!(m.into_inner(), 2);
}

#[test]
fn waitgroup_waits_for_every_member() {
    rt_with_threads(2)
        .run(|| {
            let done = Arc::new(AtomicUsize::new(0));
            let wg = WaitGroup::new();
            for i in 0..100 {
                let (wg, done) = (wg.clone(), done.clone());
                go(move || {
                    if i % 3 == 0 {
                        sleep(Duration::from_millis(1));
                    } else {
                        yield_now();
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                    drop(wg);
                });
            }
            // A plain thread is a member too, and a second waiter.
            let (wg_t, done_t) = (wg.clone(), done.clone());
            let waiter = wg.clone();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                done_t.fetch_add(1, Ordering::SeqCst);
                drop(wg_t);
            });
            let w2 = go(move || waiter.wait());
            wg.wait();
            assert_eq!(done.load(Ordering::SeqCst), 101);
            w2.join().unwrap();
            t.join().unwrap();
            assert_eq!(goroutines_left(), 0);
        })
        .unwrap();
}

/// Counts its drops: a goroutine's frame was unwound (or returned).
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Goroutines parked in `Mutex::lock` and `WaitGroup::wait` when main
/// returns are unwound, and so is the goroutine holding the mutex (its
/// guard unlocks during the shutdown, handing the mutex to waiters that are
/// being unwound themselves): no critical section runs, every frame is
/// dropped, and the mutex is free and consistent afterwards.
#[test]
fn parked_lockers_and_waiters_are_unwound_at_shutdown() {
    const N: usize = 4;
    let m = Arc::new(Mutex::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let (m2, d) = (m.clone(), dropped.clone());
    let keep = rt(2)
        .run(move || {
            // The holder keeps the mutex until it is unwound: it waits on a
            // channel that stays open until after the run.
            let (keep_tx, never) = gort_sync::chan::bounded::<()>(0);
            let (locked_tx, locked) = gort_sync::chan::bounded::<()>(0);
            let (m, g) = (m2.clone(), Dropped(d.clone()));
            go(move || {
                let _g = g;
                let _held = m.lock();
                locked_tx.send(()).unwrap();
                let _ = never.recv();
            });
            locked.recv().unwrap();
            let wg = WaitGroup::new();
            for _ in 0..N {
                let (m, g) = (m2.clone(), Dropped(d.clone()));
                go(move || {
                    let _g = g;
                    *m.lock() += 1;
                });
                let (wg, g) = (wg.clone(), Dropped(d.clone()));
                go(move || {
                    let _g = g;
                    wg.wait();
                });
            }
            // Main returns only once all of them are parked.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let dump = gort_sched::dump_string();
                if dump.matches("[sync.Mutex.Lock]").count() == N
                    && dump.matches("[sync.WaitGroup.Wait]").count() == N
                {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "{dump}");
                sleep(Duration::from_millis(1));
            }
            assert_eq!(d.load(Ordering::SeqCst), 0, "a goroutine ended early");
            // Main's WaitGroup never finishes: its waiters wait for it.
            std::mem::forget(wg);
            keep_tx
        })
        .unwrap();
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        2 * N + 1,
        "not every goroutine was unwound"
    );
    drop(keep);
    let mut g = m
        .try_lock()
        .expect("the mutex is left locked after the shutdown");
    assert_eq!(
        *g, 0,
        "a locker ran its critical section during the shutdown"
    );
    *g += 1;
    drop(g);
    // Uncontended lock and unlock from a plain thread still work.
    *m.lock() += 1;
    assert_eq!(*m.lock(), 2);
}

//! Mutex (exact counts under contention from goroutines and threads,
//! starvation mode entered and left, try_lock) and WaitGroup. All three
//! targets.

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

/// Go's scenario: a holder keeps re-taking the lock (it is running, so in
/// normal mode it wins every race against the woken waiter); once the
/// waiter has waited over 1 ms it switches the mutex to starvation mode,
/// and the next unlock hands the lock straight to it.
#[test]
fn a_waiter_starved_for_1ms_switches_to_starvation_mode_and_gets_the_lock() {
    rt(1)
        .run(|| {
            let m = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(AtomicUsize::new(0));
            let (m2, stop2) = (m.clone(), stop.clone());
            let holder = go(move || {
                let mut rounds = 0;
                while stop2.load(Ordering::Relaxed) == 0 && rounds < 1000 {
                    let mut g = m2.lock();
                    g.push("holder");
                    // Park 2 ms holding the lock: the waiter runs, finds it
                    // locked, and has waited too long.
                    sleep(Duration::from_millis(2));
                    drop(g);
                    rounds += 1;
                }
                rounds
            });
            yield_now(); // let the holder take it first
            let mut g = m.lock();
            g.push("waiter");
            stop.store(1, Ordering::Relaxed);
            drop(g);
            let rounds = holder.join().unwrap();
            assert!(
                rounds < 1000,
                "the waiter got the lock only after the holder quit"
            );
            assert!(m.starvation_count() >= 1, "starvation mode was entered");
            // Back in normal mode: the uncontended fast path works.
            assert!(m.try_lock().is_some());
        })
        .unwrap();
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

#[test]
fn parked_lockers_and_waiters_are_unwound_at_shutdown() {
    let m = Arc::new(Mutex::new(0));
    let m2 = m.clone();
    rt(2)
        .run(move || {
            let g = m2.lock();
            let wg = WaitGroup::new();
            for _ in 0..4 {
                let m = m2.clone();
                go(move || *m.lock() += 1);
                let wg = wg.clone();
                go(move || wg.clone().wait());
            }
            sleep(Duration::from_millis(10));
            std::mem::forget(wg);
            drop(g);
        })
        .unwrap();
    // The mutex still works after its waiters were unwound.
    *m.lock() += 1;
    assert!(*m.lock() >= 1);
}

//! RwLock (exact writes while readers overlap, Go's writer preference),
//! Condvar (no lost wakeup, notify_one/notify_all counts, a notify never
//! lost to a timed-out waiter) and Once (one run, every caller waits for
//! it, Go's panic rule), from goroutines and plain threads. All three
//! targets.

// Runs on real threads; the loom build (cargo xtask loom) leaves it out.
#![cfg(not(loom))]

mod common;

use common::{goroutines_left, rt, rt_with_threads, under_qemu};

use gort_sched::{go, sleep, yield_now};
use gort_sync::sync::{Condvar, Mutex, Once, RwLock};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Polls `cond` (parking between polls) for up to 10 s.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(10), "never: {what}");
        sleep(Duration::from_millis(1));
    }
}

// ---- RwLock ----------------------------------------------------------------------

/// A writer updates two fields with a park in between; a reader that saw
/// them differ would have overlapped a writer. Readers park while holding
/// the read lock, so they overlap each other even on one P.
#[test]
fn rwlock_keeps_writes_exact_under_64_goroutines_while_readers_overlap() {
    let per = if under_qemu() { 50 } else { 400 };
    for procs in [1, 4] {
        let (total, max_readers) = rt(procs)
            .run(move || {
                let lock = Arc::new(RwLock::new((0usize, 0usize)));
                let inside = Arc::new(AtomicUsize::new(0));
                let max_inside = Arc::new(AtomicUsize::new(0));
                let hs: Vec<_> = (0..64)
                    .map(|k| {
                        let (lock, inside, max_inside) =
                            (lock.clone(), inside.clone(), max_inside.clone());
                        go(move || {
                            for i in 0..per {
                                if k % 4 == 0 {
                                    let mut g = lock.write();
                                    let a = g.0;
                                    g.0 = a + 1;
                                    if i % 8 == 0 {
                                        yield_now();
                                    }
                                    g.1 = a + 1;
                                    assert_eq!(inside.load(Ordering::SeqCst), 0, "a reader inside");
                                } else {
                                    let g = lock.read();
                                    let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                                    max_inside.fetch_max(n, Ordering::SeqCst);
                                    let (a, b) = *g;
                                    yield_now(); // hold it across a park
                                    assert_eq!((a, b), *g, "changed under a read lock");
                                    assert_eq!(a, b, "saw a half-done write");
                                    inside.fetch_sub(1, Ordering::SeqCst);
                                }
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
                assert_eq!(goroutines_left(), 0);
                let v = lock.read().0;
                (v, max_inside.load(Ordering::SeqCst))
            })
            .unwrap();
        assert_eq!(total, 16 * per, "procs {procs}");
        assert!(max_readers >= 2, "readers never overlapped (procs {procs})");
    }
}

/// Go's writer preference: while a reader holds the lock and a writer
/// waits, new readers wait too, and enter after the writer.
#[test]
fn rwlock_a_waiting_writer_goes_before_later_readers() {
    rt(2)
        .run(|| {
            let lock = Arc::new(RwLock::new(Vec::new()));
            let first = lock.read();
            let l = lock.clone();
            let writer = go(move || l.write().push("writer"));
            // The writer is pending once readers are turned away.
            eventually("writer pending", || lock.try_read().is_none());
            let l = lock.clone();
            let reader = go(move || l.read().len());
            sleep(Duration::from_millis(5));
            assert!(
                !reader.is_finished(),
                "a new reader overtook the waiting writer"
            );
            drop(first);
            writer.join().unwrap();
            assert_eq!(reader.join().unwrap(), 1, "the reader ran after the writer");
        })
        .unwrap();
}

#[test]
fn rwlock_try_read_and_try_write() {
    let lock = RwLock::new(5);
    {
        let r1 = lock.read();
        let r2 = lock.try_read().expect("readers share");
        assert_eq!(*r1 + *r2, 10);
        assert!(lock.try_write().is_none(), "readers inside");
    }
    {
        let mut w = lock.try_write().expect("free");
        *w += 1;
        assert!(lock.try_read().is_none());
        assert!(lock.try_write().is_none());
    }
    assert_eq!(lock.into_inner(), 6);
}

#[test]
fn rwlock_is_shared_by_goroutines_and_plain_threads() {
    let per: usize = if under_qemu() { 500 } else { 5_000 };
    let total = rt_with_threads(2)
        .run(move || {
            let lock = Arc::new(RwLock::new(0usize));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let lock = lock.clone();
                    std::thread::spawn(move || {
                        for i in 0..per {
                            if i % 2 == 0 {
                                *lock.write() += 1;
                            } else {
                                let _ = *lock.read();
                            }
                        }
                    })
                })
                .collect();
            let gs: Vec<_> = (0..8)
                .map(|_| {
                    let lock = lock.clone();
                    go(move || {
                        for i in 0..per {
                            if i % 2 == 0 {
                                *lock.write() += 1;
                            } else {
                                let _ = *lock.read();
                            }
                        }
                    })
                })
                .collect();
            threads.into_iter().for_each(|t| t.join().unwrap());
            gs.into_iter().for_each(|g| g.join().unwrap());
            let v = *lock.read();
            v
        })
        .unwrap();
    assert_eq!(total, 10 * per.div_ceil(2));
}

/// Readers queued behind a writer, and a writer waiting for a reader, are
/// unwound when the runtime ends; the lock is usable afterwards.
#[test]
fn rwlock_waiters_are_unwound_at_shutdown() {
    let lock = Arc::new(RwLock::new(0));
    let l = lock.clone();
    rt(2)
        .run(move || {
            // A reader holds it (parked for ever, holding the guard).
            let (tx, rx) = gort_sync::chan::bounded::<()>(0);
            let l2 = l.clone();
            go(move || {
                let _r = l2.read();
                let _ = rx.recv();
            });
            eventually("reader inside", || l.try_write().is_none());
            // A writer waits for it; readers queue behind the writer.
            let l2 = l.clone();
            go(move || *l2.write() += 1);
            eventually("writer pending", || l.try_read().is_none());
            for _ in 0..4 {
                let l2 = l.clone();
                go(move || *l2.read());
            }
            sleep(Duration::from_millis(10));
            std::mem::forget(tx);
        })
        .unwrap();
    *lock.write() += 1;
    assert!(*lock.read() >= 1);
}

// ---- Condvar ---------------------------------------------------------------------

/// Values, and whether the producer is done.
type Queue = (Mutex<(VecDeque<usize>, bool)>, Condvar);

/// A queue under a Mutex with a Condvar: every value produced is consumed
/// once, by goroutines and plain threads waiting on the same Condvar.
#[test]
fn condvar_passes_every_value_between_goroutines_and_threads() {
    let n = if under_qemu() { 2_000 } else { 20_000 };
    let sum = rt_with_threads(2)
        .run(move || {
            let q = Arc::new((Mutex::new((VecDeque::new(), false)), Condvar::new()));
            let consume = |q: Arc<Queue>| {
                let mut sum = 0;
                loop {
                    let mut g =
                        q.1.wait_while(q.0.lock(), |(v, done)| v.is_empty() && !*done);
                    match g.0.pop_front() {
                        Some(x) => sum += x,
                        None => return sum, // done and drained
                    }
                }
            };
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let q = q.clone();
                    std::thread::spawn(move || consume(q))
                })
                .collect();
            let gs: Vec<_> = (0..4)
                .map(|_| {
                    let q = q.clone();
                    go(move || consume(q))
                })
                .collect();
            for i in 1..=n {
                q.0.lock().0.push_back(i);
                q.1.notify_one();
                if i % 64 == 0 {
                    yield_now();
                }
            }
            q.0.lock().1 = true;
            q.1.notify_all();
            let t: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
            let g: usize = gs.into_iter().map(|g| g.join().unwrap()).sum();
            t + g
        })
        .unwrap();
    assert_eq!(sum, n * (n + 1) / 2);
}

/// notify_one wakes exactly one of three waiters, notify_all the rest.
#[test]
fn condvar_notify_one_wakes_one_and_notify_all_wakes_all() {
    rt(2)
        .run(|| {
            let s = Arc::new((Mutex::new(0usize), Condvar::new(), AtomicUsize::new(0)));
            let hs: Vec<_> = (0..3)
                .map(|_| {
                    let s = s.clone();
                    go(move || {
                        let mut g = s.0.lock();
                        *g += 1; // parked (holding a ticket) once the mutex is free
                        let _g = s.1.wait(g);
                        s.2.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            eventually("three waiters", || *s.0.lock() == 3);
            s.1.notify_one();
            eventually("one woken", || s.2.load(Ordering::SeqCst) >= 1);
            sleep(Duration::from_millis(20));
            assert_eq!(
                s.2.load(Ordering::SeqCst),
                1,
                "notify_one woke more than one"
            );
            s.1.notify_all();
            hs.into_iter().for_each(|h| h.join().unwrap());
            assert_eq!(s.2.load(Ordering::SeqCst), 3);
        })
        .unwrap();
}

/// A notify sent between the waiter's unlock and its park is not lost
/// (the ticket is taken under the mutex): a plain thread and a goroutine
/// ping-pong a turn flag 1,000 times.
#[test]
fn condvar_loses_no_wakeup_in_a_ping_pong() {
    let rounds = if under_qemu() { 200 } else { 1_000 };
    rt_with_threads(1)
        .run(move || {
            let s = Arc::new((Mutex::new(0usize), Condvar::new()));
            let s2 = s.clone();
            let t = std::thread::spawn(move || {
                for i in 0..rounds {
                    let mut g = s2.1.wait_while(s2.0.lock(), |turn| *turn != 2 * i + 1);
                    *g += 1;
                    drop(g);
                    s2.1.notify_one();
                }
            });
            for i in 0..rounds {
                let mut g = s.1.wait_while(s.0.lock(), |turn| *turn != 2 * i);
                *g += 1;
                drop(g);
                s.1.notify_one();
            }
            t.join().unwrap();
            assert_eq!(*s.0.lock(), 2 * rounds);
        })
        .unwrap();
}

#[test]
fn condvar_wait_timeout_times_out_without_a_notify() {
    rt(1)
        .run(|| {
            let m = Mutex::new(());
            let cv = Condvar::new();
            let t = Instant::now();
            let (_g, r) = cv.wait_timeout(m.lock(), Duration::from_millis(20));
            assert!(r.timed_out());
            assert!(t.elapsed() >= Duration::from_millis(20));
            // Duration::MAX saturates (waits for ever): a notify ends it.
            let s = Arc::new((Mutex::new(false), Condvar::new()));
            let s2 = s.clone();
            go(move || {
                *s2.0.lock() = true;
                s2.1.notify_all();
            });
            let (g, r) =
                s.1.wait_timeout_while(s.0.lock(), Duration::MAX, |ready| !*ready);
            assert!(*g && !r.timed_out());
        })
        .unwrap();
    // A plain thread times out too.
    let m = Mutex::new(());
    let cv = Condvar::new();
    let (_g, r) = cv.wait_timeout(m.lock(), Duration::from_millis(5));
    assert!(r.timed_out());
}

/// The first waiter's deadline passes while it still sits in the list
/// (its goroutine is runnable but the only P is busy); the notify that
/// finds it must go on to the next waiter, not vanish.
#[test]
fn condvar_a_notify_is_not_lost_to_a_timed_out_waiter() {
    rt(1)
        .run(|| {
            let s = Arc::new((Mutex::new(0usize), Condvar::new()));
            let s2 = s.clone();
            let timed = go(move || {
                let mut g = s2.0.lock();
                *g += 1;
                s2.1.wait_timeout(g, Duration::from_millis(5)).1.timed_out()
            });
            eventually("the timed waiter", || *s.0.lock() == 1);
            let s2 = s.clone();
            let woken = Arc::new(AtomicBool::new(false));
            let w2 = woken.clone();
            let patient = go(move || {
                let mut g = s2.0.lock();
                *g += 1;
                drop(s2.1.wait(g));
                w2.store(true, Ordering::SeqCst);
            });
            eventually("the patient waiter", || *s.0.lock() == 2);
            // Keep the only P busy past the first waiter's deadline.
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(100) {
                std::hint::spin_loop();
            }
            s.1.notify_one();
            assert!(timed.join().unwrap(), "the first waiter timed out");
            eventually("the patient waiter woken", || woken.load(Ordering::SeqCst));
            patient.join().unwrap();
        })
        .unwrap();
}

// ---- Once ------------------------------------------------------------------------

/// One run, and no caller returns before it finished (the function parks
/// midway); goroutines and plain threads call it together.
#[test]
fn once_runs_once_and_every_caller_waits_for_it() {
    rt_with_threads(2)
        .run(|| {
            let once = Arc::new(Once::new());
            let runs = Arc::new(AtomicUsize::new(0));
            let call = {
                let (once, runs) = (once.clone(), runs.clone());
                move || {
                    once.call_once(|| {
                        sleep_any(Duration::from_millis(20));
                        runs.fetch_add(1, Ordering::SeqCst);
                    });
                    // Returned only after the run finished.
                    assert_eq!(runs.load(Ordering::SeqCst), 1);
                }
            };
            let threads: Vec<_> = (0..4).map(|_| std::thread::spawn(call.clone())).collect();
            let gs: Vec<_> = (0..64).map(|_| go(call.clone())).collect();
            threads.into_iter().for_each(|t| t.join().unwrap());
            gs.into_iter().for_each(|g| g.join().unwrap());
            assert!(once.is_completed());
            once.call_once(|| panic!("ran twice"));
            assert_eq!(goroutines_left(), 0);
        })
        .unwrap();
}

/// A goroutine parks; a plain thread sleeps.
fn sleep_any(d: Duration) {
    if gort_sched::park::current().is_some() {
        sleep(d);
    } else {
        std::thread::sleep(d);
    }
}

#[test]
fn once_counts_a_panicking_function_as_done() {
    let once = Once::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        once.call_once(|| panic!("init failed"));
    }));
    assert!(r.is_err());
    assert!(once.is_completed());
    once.call_once(|| panic!("ran again after a panic"));
}

#[test]
fn once_called_from_its_own_function_panics_instead_of_hanging() {
    rt(1)
        .run(|| {
            let once = Arc::new(Once::new());
            let o = once.clone();
            let r = go(move || o.call_once(|| o.call_once(|| {}))).join();
            let p = r.unwrap_err();
            let msg = p.message().unwrap_or_default();
            assert!(msg.contains("inside its own function"), "{msg}");
        })
        .unwrap();
}

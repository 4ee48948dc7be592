//! park_with / Waker / sleep: deadlines fired by sysmon, one-shot wakers
//! racing their deadline, plain threads waiting on goroutines, and
//! deadlock detection around timers. All three targets.

#![cfg(not(loom))]

use gort_sched::park::{park_with, WaitReason, Waker, Woke};
use gort_sched::{go, sleep, Error, Runtime};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gort_testing::under_qemu;

fn rt(procs: usize) -> Runtime {
    Runtime::builder().procs(procs).build().unwrap()
}

#[test]
fn sleeping_goroutines_wake_no_earlier_than_asked_and_not_much_later() {
    let n: u64 = if under_qemu() { 200 } else { 1_000 };
    let lateness = rt(2)
        .run(move || {
            let hs: Vec<_> = (0..n)
                .map(|i| {
                    go(move || {
                        // 1-50 ms, spread deterministically.
                        let d = Duration::from_millis(1 + (i * 7919) % 50);
                        let t = Instant::now();
                        sleep(d);
                        let slept = t.elapsed();
                        assert!(slept >= d, "woke early: {slept:?} < {d:?}");
                        slept - d
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).max().unwrap()
        })
        .unwrap();
    // A loose bound (10x the longest sleep): the behaviour is "wakes", not
    // a latency figure (that belongs in benches).
    assert!(
        lateness < Duration::from_millis(500),
        "a sleeper woke {lateness:?} late"
    );
}

#[test]
fn a_deadline_with_no_waker_times_out() {
    let (woke, waited) = rt(1)
        .run(|| {
            let t = Instant::now();
            let d = Duration::from_millis(20);
            let woke = park_with(WaitReason::Other("test"), Some(t + d), |_| true);
            (woke, t.elapsed())
        })
        .unwrap();
    assert_eq!(woke, Woke::TimedOut);
    assert!(waited >= Duration::from_millis(20));
}

#[test]
fn register_declining_returns_at_once() {
    let woke = rt(1)
        .run(|| park_with(WaitReason::Other("test"), None, |_| false))
        .unwrap();
    assert_eq!(woke, Woke::Woken);
}

#[test]
fn a_waker_and_its_deadline_race_with_exactly_one_winner() {
    let rounds = if under_qemu() { 100 } else { 1_000 };
    rt(4)
        .run(move || {
            let mut woken = 0;
            let mut timed_out = 0;
            for i in 0..rounds {
                let slot: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
                let s = slot.clone();
                let waiter = go(move || {
                    let deadline = Instant::now() + Duration::from_micros(200);
                    park_with(WaitReason::Other("race"), Some(deadline), |w| {
                        *s.lock().unwrap() = Some(w.clone());
                        true
                    })
                });
                // Wake at varying moments around the deadline.
                let waker = loop {
                    if let Some(w) = slot.lock().unwrap().take() {
                        break w;
                    }
                    gort_sched::yield_now();
                };
                if i % 3 == 0 {
                    sleep(Duration::from_micros(50 * (i % 7) as u64));
                }
                let won = waker.wake();
                let outcome = waiter.join().unwrap();
                assert_eq!(
                    won,
                    outcome == Woke::Woken,
                    "round {i}: wake() said {won}, waiter saw {outcome:?}"
                );
                assert!(!waker.wake(), "a waker fires once");
                if won {
                    woken += 1;
                } else {
                    timed_out += 1;
                }
            }
            assert_eq!(woken + timed_out, rounds);
        })
        .unwrap();
}

#[test]
fn a_plain_thread_waits_on_a_waker_woken_by_a_goroutine() {
    let slot: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
    let s = slot.clone();
    let t = std::thread::spawn(move || {
        let timed = park_with(
            WaitReason::Other("thread"),
            Some(Instant::now() + Duration::from_millis(5)),
            |_| true,
        );
        assert_eq!(timed, Woke::TimedOut, "nothing wakes the first wait");
        park_with(WaitReason::Other("thread"), None, |w| {
            *s.lock().unwrap() = Some(w.clone());
            true
        })
    });
    rt(2)
        .run(move || loop {
            if let Some(w) = slot.lock().unwrap().take() {
                assert!(w.wake());
                break;
            }
            sleep(Duration::from_millis(1));
        })
        .unwrap();
    assert_eq!(t.join().unwrap(), Woke::Woken);
}

#[test]
fn sleepers_are_not_a_deadlock_but_are_counted_when_they_end() {
    // A goroutine blocked forever while another sleeps: not a deadlock
    // until the sleeper is done; then it is one.
    let t = Instant::now();
    // Goroutines that only wake each other (libtest's main thread is alive
    // outside the runtime: under default settings it may be a waker).
    let err = Runtime::builder()
        .procs(2)
        .external_wakers(false)
        .build()
        .unwrap()
        .run(|| {
            go(|| sleep(Duration::from_millis(30)));
            go(|| park_with(WaitReason::ChanReceive, None, |_| true))
                .join()
                .unwrap();
        })
        .unwrap_err();
    assert!(matches!(err, Error::Deadlock { .. }), "{err}");
    assert!(
        t.elapsed() >= Duration::from_millis(30),
        "reported while a goroutine slept"
    );
}

#[test]
fn main_sleeping_alone_is_not_a_deadlock() {
    let r = rt(1).run(|| {
        sleep(Duration::from_millis(20));
        5
    });
    assert_eq!(r.unwrap(), 5);
}

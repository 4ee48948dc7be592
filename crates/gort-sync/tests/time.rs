//! gort::time: Go 1.23's timer rules (Stop and Reset after expiry with the
//! value unread, reset shorter and longer, tickers stopped and reset in a
//! select loop, Stop's result consistent with what can be received),
//! after/tick in select!, after_func, timers from plain threads,
//! saturating durations, and nothing left behind by 100,000 timers made
//! and stopped. All three targets; timing bounds are loose (10x or more).

// Runs on real threads; the loom build (cargo xtask loom) leaves it out.
#![cfg(not(loom))]

mod common;

use common::{goroutines_left, rt, rt_with_threads, under_qemu};

use gort_sched::{go, sleep, stats};
use gort_sync::chan;
use gort_sync::time::{after, after_func, tick, Ticker, Timer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);

/// Loose: a value that should come soon comes within this.
const SOON: Duration = Duration::from_secs(5);

/// Timer slots left on the heaps once deadlines of finished waits are due.
fn timers_left() -> usize {
    let t = Instant::now();
    while stats().timers > 0 && t.elapsed() < Duration::from_secs(5) {
        sleep(MS);
    }
    stats().timers
}

#[test]
fn stop_after_expiry_with_the_value_unread_drains_it_and_returns_true() {
    rt(2)
        .run(|| {
            let t = Timer::new(MS);
            sleep(20 * MS); // expired; the value sits in the channel
            assert!(t.stop(), "Go 1.23: the unread value counts as pending");
            assert!(t.receiver().try_recv().is_err(), "a stale value after stop");
            sleep(10 * MS);
            assert!(t.receiver().try_recv().is_err(), "a value after stop");
            assert!(!t.stop(), "stopped twice");
        })
        .unwrap();
}

#[test]
fn reset_after_expiry_with_the_value_unread_drops_it() {
    rt(2)
        .run(|| {
            let t = Timer::new(MS);
            sleep(20 * MS);
            let before = Instant::now();
            assert!(t.reset(30 * MS), "the unread value counts as pending");
            assert!(
                t.receiver().try_recv().is_err(),
                "a stale value after reset"
            );
            let v = t.receiver().recv_timeout(SOON).expect("the new expiry");
            assert!(v >= before + 30 * MS, "the value is the new expiry's");
        })
        .unwrap();
}

#[test]
fn reset_shorter_and_longer() {
    rt(2)
        .run(|| {
            // Shorter: an hour becomes a millisecond.
            let t = Timer::new(Duration::from_secs(3600));
            assert!(t.reset(MS), "was pending");
            t.receiver()
                .recv_timeout(SOON)
                .expect("fires at the shorter time");
            // Longer: a millisecond becomes an hour; nothing arrives.
            let t = Timer::new(MS);
            assert!(t.reset(Duration::from_secs(3600)));
            assert!(
                t.receiver().recv_timeout(30 * MS).is_err(),
                "fired at the old time"
            );
            // After it fired and the value was read: not pending.
            let t = Timer::new(MS);
            t.receiver().recv_timeout(SOON).unwrap();
            assert!(!t.reset(MS), "a fired, read timer is not pending");
            t.receiver().recv_timeout(SOON).unwrap();
        })
        .unwrap();
}

/// Go's testStopResetResult (golang/go#69312): when two timers race, the
/// one not received from is either stopped (true) or has a value ready
/// (false): never false with nothing to receive.
#[test]
fn stop_and_reset_results_agree_with_what_can_be_received() {
    let (n, iters) = if under_qemu() { (20, 10) } else { (100, 50) };
    for stop in [true, false] {
        rt(4)
            .run(move || {
                let hs: Vec<_> = (0..n)
                    .map(|_| {
                        go(move || {
                            // Timers whose stop or reset returned true:
                            // nothing may arrive on them afterwards.
                            let mut silenced = Vec::new();
                            for _ in 0..iters {
                                let t1 = Timer::new(MS);
                                let t2 = Timer::new(MS);
                                let stop_or_reset = |t: &Timer| {
                                    if stop {
                                        t.stop()
                                    } else {
                                        t.reset(Duration::from_secs(3600))
                                    }
                                };
                                let other = gort_sync::select! {
                                    recv(t1.receiver()) -> _ => t2,
                                    recv(t2.receiver()) -> _ => t1,
                                };
                                if stop_or_reset(&other) {
                                    silenced.push(other);
                                } else {
                                    other
                                        .receiver()
                                        .recv_timeout(SOON)
                                        .expect("false, yet nothing to receive");
                                }
                            }
                            sleep(10 * MS);
                            for t in &silenced {
                                assert!(
                                    t.receiver().try_recv().is_err(),
                                    "a value after stop or reset returned true"
                                );
                            }
                        })
                    })
                    .collect();
                hs.into_iter().for_each(|h| h.join().unwrap());
            })
            .unwrap();
    }
}

/// A ticker read in a select loop, reset to a longer period after three
/// ticks and stopped after three more; no tick arrives after the stop.
#[test]
fn a_ticker_is_reset_and_stopped_inside_a_select_loop() {
    rt(2)
        .run(|| {
            let ticker = Ticker::new(MS);
            let (quit_tx, quit) = chan::bounded::<()>(0);
            let mut ticks = 0;
            let mut reset_at = None;
            loop {
                gort_sync::select! {
                    recv(ticker.receiver()) -> t => {
                        let t = t.unwrap();
                        ticks += 1;
                        if let Some(r) = reset_at {
                            assert!(t >= r + 5 * MS, "a tick of the old period after reset");
                        }
                        if ticks == 3 {
                            // Taken before the reset: the new arming is
                            // no earlier than this.
                            reset_at = Some(Instant::now());
                            ticker.reset(5 * MS);
                        }
                        if ticks == 6 {
                            ticker.stop();
                            break;
                        }
                    },
                    recv(quit) -> _ => unreachable!(),
                }
            }
            drop(quit_tx);
            assert!(
                ticker.receiver().recv_timeout(20 * MS).is_err(),
                "a tick after stop"
            );
            ticker.reset(MS);
            ticker
                .receiver()
                .recv_timeout(SOON)
                .expect("ticks again after reset");
        })
        .unwrap();
}

/// A slow receiver misses ticks instead of queueing them (capacity one).
#[test]
fn a_slow_receiver_misses_ticks() {
    rt(1)
        .run(|| {
            let ticker = Ticker::new(MS);
            sleep(30 * MS);
            assert_eq!(ticker.receiver().len(), 1, "at most one tick is kept");
        })
        .unwrap();
}

#[test]
fn after_and_tick_work_in_select() {
    rt(2)
        .run(|| {
            let (_tx, rx) = chan::bounded::<u32>(0);
            let start = Instant::now();
            gort_sync::select! {
                recv(rx) -> _ => unreachable!(),
                recv(after(5 * MS)) -> t => assert!(t.unwrap() >= start + 5 * MS),
            }
            let ticks = tick(MS);
            for _ in 0..3 {
                gort_sync::select! {
                    recv(rx) -> _ => unreachable!(),
                    recv(ticks) -> t => assert!(t.is_ok()),
                }
            }
        })
        .unwrap();
}

/// Go 1.23's timer channels: an armed timer is on a heap only while a
/// receiver is blocked on its channel (a select arm included), and leaves
/// it when the receiver stops waiting; dropped timers and receivers leave
/// nothing behind.
#[test]
fn a_timer_is_on_a_heap_only_while_a_receiver_waits_for_it() {
    rt(1)
        .run(|| {
            let base = timers_left();
            let t = Timer::new(Duration::from_secs(3600));
            let k = Ticker::new(Duration::from_secs(3600));
            let a = after(Duration::from_secs(3600));
            assert_eq!(stats().timers, base, "armed, nobody waiting: on no heap");
            let (quit_tx, quit_rx) = chan::bounded::<()>(0);
            let waiter = go(move || {
                gort_sync::select! {
                    recv(a) -> _ => unreachable!(),
                    recv(quit_rx) -> _ => {},
                }
                a
            });
            let start = Instant::now();
            while stats().timers != base + 1 && start.elapsed() < SOON {
                gort_sched::yield_now();
            }
            assert_eq!(
                stats().timers,
                base + 1,
                "a blocked select put after's timer on"
            );
            quit_tx.send(()).unwrap();
            let a = waiter.join().unwrap();
            assert_eq!(stats().timers, base, "the select's wake took it off");
            drop((t, k, a));
            drop(after(MS));
            drop(tick(MS));
            assert_eq!(timers_left(), base, "after/tick left a timer behind");
        })
        .unwrap();
}

/// A timer that expired while nobody waited has its value for a receive
/// that does not block: `try_recv`, and a `select!` with a default arm
/// (Go's maybeRunChan), with no scheduler thread involved.
#[test]
fn an_expired_timer_has_its_value_for_a_receive_that_does_not_block() {
    rt(1)
        .run(|| {
            let t = Timer::new(MS);
            let start = Instant::now();
            while start.elapsed() < 3 * MS {
                std::hint::spin_loop();
            }
            assert!(t.receiver().try_recv().is_ok(), "try_recv found no value");
            assert!(t.receiver().try_recv().is_err(), "one value per expiry");
            t.reset(MS);
            let a = after(MS);
            let start = Instant::now();
            while start.elapsed() < 3 * MS {
                std::hint::spin_loop();
            }
            let mut got = 0;
            for _ in 0..2 {
                gort_sync::select! {
                    recv(t.receiver()) -> v => { v.unwrap(); got += 1; },
                    recv(a) -> v => { v.unwrap(); got += 1; },
                    default => {},
                }
            }
            assert_eq!(got, 2, "a select with default missed an expired timer");
        })
        .unwrap();
}

#[test]
fn timers_made_and_stopped_leave_nothing_behind() {
    let n: u32 = if under_qemu() { 20_000 } else { 100_000 };
    rt(2)
        .run(move || {
            let base = timers_left();
            // Kept alive, stopped. Armed with nobody receiving, they were
            // on no heap (Go 1.23's lazy timer channels).
            let timers: Vec<_> = (0..n)
                .map(|i| Timer::new(MS * (1 + i % 1000) + Duration::from_secs(60)))
                .collect();
            assert_eq!(stats().timers, base);
            for t in &timers {
                assert!(t.stop());
            }
            assert_eq!(stats().timers, base, "stopped timers stayed on a heap");
            drop(timers);
            // Made and dropped in a loop, reset in between.
            for i in 0..n {
                let t = Timer::new(Duration::from_secs(60));
                t.reset(MS * (1 + i % 7) + Duration::from_secs(60));
            }
            assert_eq!(stats().timers, base);
            assert_eq!(goroutines_left(), 0);
        })
        .unwrap();
}

#[test]
fn after_func_runs_in_its_own_goroutine_unless_stopped_first() {
    rt(2)
        .run(|| {
            let (tx, rx) = chan::bounded(1);
            let _t = after_func(MS, move || {
                tx.try_send(gort_sched::id()).unwrap();
            });
            let id = rx.recv_timeout(SOON).expect("f ran");
            assert_ne!(id, gort_sched::id(), "f runs in a goroutine of its own");

            let ran = Arc::new(AtomicUsize::new(0));
            let r = ran.clone();
            // An hour: stopped long before expiry however slow the machine
            // (10 ms had expired before the stop under qemu and load).
            let t = after_func(Duration::from_secs(3600), move || {
                r.fetch_add(1, Ordering::SeqCst);
            });
            assert!(t.stop(), "stopped before expiry");
            sleep(30 * MS);
            assert_eq!(ran.load(Ordering::SeqCst), 0, "f ran after stop");
            assert!(!t.reset(MS), "not pending");
            let t0 = Instant::now();
            while ran.load(Ordering::SeqCst) == 0 {
                assert!(t0.elapsed() < SOON, "f never ran after reset");
                sleep(MS);
            }
            assert_eq!(goroutines_left(), 0);
        })
        .unwrap();
}

#[test]
fn timers_work_from_plain_threads() {
    // No runtime at all: the process-wide heap.
    let t = Timer::new(MS);
    t.receiver()
        .recv_timeout(SOON)
        .expect("a plain thread's timer fires");
    let (tx, rx) = chan::bounded(1);
    let _f = after_func(MS, move || tx.send(()).unwrap());
    rx.recv_timeout(SOON)
        .expect("after_func from a plain thread");
    // A plain thread selecting on after() next to a runtime's goroutines.
    rt_with_threads(1)
        .run(|| {
            let th = std::thread::spawn(|| {
                let (_tx, rx) = chan::bounded::<()>(0);
                gort_sync::select! {
                    recv(rx) -> _ => false,
                    recv(after(2 * MS)) -> _ => true,
                }
            });
            assert!(th.join().unwrap());
        })
        .unwrap();
}

/// Durations saturate: `sleep(Duration::MAX)` used to panic adding to an
/// Instant; now it sleeps for ever (until the runtime ends and unwinds
/// it). Timers and tickers of Duration::MAX are pending and never fire.
#[test]
fn duration_max_means_for_ever() {
    rt(2)
        .run(|| {
            go(|| sleep(Duration::MAX));
            let t = Timer::new(Duration::MAX);
            let k = Ticker::new(Duration::MAX);
            let (_tx, rx) = chan::bounded::<()>(0);
            gort_sync::select! {
                recv(rx) -> _ => unreachable!(),
                recv(after(Duration::MAX)) -> _ => unreachable!(),
                recv(t.receiver()) -> _ => unreachable!(),
                recv(k.receiver()) -> _ => unreachable!(),
                default(20 * MS) => {},
            }
            assert!(t.stop(), "pending for ever");
            // A timeout of Duration::MAX waits for ever: a value ends it.
            let (tx, rx) = chan::bounded(0);
            go(move || tx.send(7).unwrap());
            assert_eq!(rx.recv_timeout(Duration::MAX), Ok(7));
        })
        .unwrap();
}

/// `after` in a select loop whose other arm always wins (its timer never
/// goes on a heap: lazy), and waits with an hour's timeout that always
/// end early (the heaps sweep those deadlines): neither keeps a slot for
/// an hour.
#[test]
fn after_in_a_select_loop_and_early_woken_deadlines_do_not_pile_up() {
    let n: u32 = if under_qemu() { 2_000 } else { 20_000 };
    rt(1)
        .run(move || {
            let (tx, rx) = chan::bounded(1);
            for i in 0..n {
                tx.send(i).unwrap();
                gort_sync::select! {
                    recv(rx) -> v => assert_eq!(v, Ok(i)),
                    recv(after(Duration::from_secs(3600))) -> _ => unreachable!(),
                }
            }
            assert!(
                stats().timers < 1_000,
                "{} slots left by after()",
                stats().timers
            );
            let (a_tx, a_rx) = chan::bounded::<u32>(0);
            let (b_tx, b_rx) = chan::bounded::<u32>(0);
            let echo = go(move || {
                while let Ok(v) = a_rx.recv_timeout(Duration::from_secs(3600)) {
                    b_tx.send(v).unwrap();
                }
            });
            for i in 0..n {
                a_tx.send(i).unwrap();
                assert_eq!(b_rx.recv_timeout(Duration::from_secs(3600)), Ok(i));
            }
            assert!(
                stats().timers < 1_000,
                "{} deadline slots left",
                stats().timers
            );
            drop(a_tx);
            echo.join().unwrap();
        })
        .unwrap();
}

/// Randomized stress of the lazy timer protocol (timer.rs: block, unblock,
/// poll, a heap's firing, reset): a goroutine blocks on a timer's channel
/// while another polls it, resets it, or leaves it, with expiries short
/// enough to fire in the middle of each. Every arming delivers exactly one
/// value, unless a reset cancelled it (and said so), a ticker keeps
/// ticking for a waiter through polls and resets, and no timer stays on
/// a heap once nobody waits. Alongside, `after` races a sender in a
/// select. Procs 4, so firings and receives run in parallel.
#[test]
fn lazy_timers_under_racing_receivers_resets_and_firings() {
    let (gs, iters) = if under_qemu() { (4, 40) } else { (8, 300) };
    // Loose: expiries are at most 600 µs away.
    const WAIT: Duration = Duration::from_secs(2);
    rt(4)
        .run(move || {
            let base = timers_left();
            let hs: Vec<_> = (0..gs)
                .map(|seed| {
                    go(move || {
                        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (seed + 1);
                        let mut rand = move |n: u64| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            x % n
                        };
                        for _ in 0..iters {
                            let us = |n| Duration::from_micros(n);
                            let t = Arc::new(Timer::new(us(rand(300))));
                            let t2 = t.clone();
                            // Waits bounded by WAIT, not SOON: their deadline
                            // slots stay on the heaps until due, and must be
                            // gone by the final check.
                            let waiter =
                                go(move || u32::from(t2.receiver().recv_timeout(WAIT).is_ok()));
                            let mut expected = 1;
                            let mut got = 0;
                            for _ in 0..rand(3) {
                                gort_sched::yield_now();
                            }
                            match rand(3) {
                                0 => {}
                                1 => got += u32::from(t.receiver().try_recv().is_ok()),
                                _ => {
                                    if t.reset(us(rand(300))) {
                                        expected -= 1;
                                    }
                                    expected += 1;
                                }
                            }
                            got += waiter.join().unwrap();
                            while got < expected {
                                t.receiver()
                                    .recv_timeout(WAIT)
                                    .expect("an arming lost its value");
                                got += 1;
                            }
                            assert_eq!(got, expected);
                            assert!(t.receiver().try_recv().is_err(), "a value too many");

                            // A ticker, received from by a waiter while we
                            // poll it and maybe reset it: it keeps ticking
                            // through the moves between heap and lazy.
                            let k = Arc::new(Ticker::new(us(50 + rand(250))));
                            let k2 = k.clone();
                            let waiter = go(move || {
                                for _ in 0..3 {
                                    k2.receiver().recv_timeout(WAIT).expect("a tick lost");
                                }
                            });
                            for _ in 0..rand(4) {
                                let _ = k.receiver().try_recv();
                                gort_sched::yield_now();
                            }
                            if rand(2) == 0 {
                                k.reset(us(50 + rand(250)));
                            }
                            waiter.join().unwrap();

                            let (tx, rx) = chan::bounded(1);
                            let d = us(rand(200));
                            let sender = go(move || {
                                for _ in 0..rand(4) {
                                    gort_sched::yield_now();
                                }
                                tx.send(()).unwrap();
                            });
                            gort_sync::select! {
                                recv(rx) -> v => v.unwrap(),
                                recv(after(d)) -> v => { v.unwrap(); },
                            }
                            sender.join().unwrap();
                        }
                    })
                })
                .collect();
            hs.into_iter().for_each(|h| h.join().unwrap());
            assert_eq!(timers_left(), base, "a timer stayed on a heap");
        })
        .unwrap();
}

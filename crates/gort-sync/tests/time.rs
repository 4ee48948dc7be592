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

/// A dropped `after` receiver's timer leaves when it fires, a dropped
/// `tick` receiver's ticker at its next tick; a dropped Timer or Ticker
/// at once.
#[test]
fn dropped_timers_and_receivers_are_collected() {
    rt(1)
        .run(|| {
            let base = timers_left();
            drop(after(MS));
            drop(tick(MS));
            assert_eq!(timers_left(), base, "after/tick left a timer behind");
            let t = Timer::new(Duration::from_secs(3600));
            let k = Ticker::new(Duration::from_secs(3600));
            assert_eq!(stats().timers, base + 2);
            drop((t, k));
            assert_eq!(stats().timers, base, "dropping stops");
        })
        .unwrap();
}

#[test]
fn timers_made_and_stopped_leave_nothing_behind() {
    let n: u32 = if under_qemu() { 20_000 } else { 100_000 };
    rt(2)
        .run(move || {
            let base = timers_left();
            // Kept alive, stopped: off the heap.
            let timers: Vec<_> = (0..n)
                .map(|i| Timer::new(MS * (1 + i % 1000) + Duration::from_secs(60)))
                .collect();
            assert_eq!(stats().timers, base + n as usize);
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

/// `after` in a select loop whose other arm always wins, and waits with
/// an hour's timeout that always end early: the heaps sweep what nobody
/// can observe any more, instead of keeping every slot for an hour.
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

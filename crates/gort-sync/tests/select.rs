//! select!: fairness among ready arms, default and timeout arms, waking on
//! any arm, send arms, disconnected arms, exactly-once delivery when many
//! selects compete, and no leftover registrations; a blocked select's arms
//! on one channel completed fairly; select_biased!; `default()`. All three
//! targets.

#![cfg(not(loom))]

mod common;

use common::{goroutines_left, rt, rt_with_threads, under_qemu};

use gort_sched::{go, sleep};
use gort_sync::chan::{self, RecvError};
use gort_sync::{select, select_biased};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn ready_arms_are_chosen_fairly() {
    rt(1)
        .run(|| {
            const N: usize = 10_000;
            let (tx1, rx1) = chan::unbounded::<u8>();
            let (tx2, rx2) = chan::bounded::<u8>(N);
            for _ in 0..N {
                tx1.send(1).unwrap();
                tx2.send(2).unwrap();
            }
            let mut counts = [0usize; 3];
            for _ in 0..N {
                select! {
                    recv(rx1) -> v => counts[usize::from(v.unwrap())] += 1,
                    recv(rx2) -> v => counts[usize::from(v.unwrap())] += 1,
                }
            }
            for c in &counts[1..] {
                assert!((3_000..=7_000).contains(c), "arms chosen {counts:?}");
            }
            // Three arms, one never ready: the two ready ones still share.
            let (_tx3, rx3) = chan::bounded::<u8>(0);
            let mut counts = [0usize; 3];
            for _ in 0..N / 2 {
                select! {
                    recv(rx3) -> _ => unreachable!(),
                    recv(rx1) -> v => counts[usize::from(v.unwrap())] += 1,
                    recv(rx2) -> v => counts[usize::from(v.unwrap())] += 1,
                }
            }
            for c in &counts[1..] {
                assert!((1_500..=3_500).contains(c), "arms chosen {counts:?}");
            }
        })
        .unwrap();
}

#[test]
fn default_runs_when_nothing_is_ready() {
    rt(1)
        .run(|| {
            let (tx, rx) = chan::bounded::<u32>(1);
            let r = select! {
                recv(rx) -> _ => "recv",
                default => "default",
            };
            assert_eq!(r, "default");
            tx.send(5).unwrap();
            let r = select! {
                recv(rx) -> v => { assert_eq!(v, Ok(5)); "recv" }
                default => "default",
            };
            assert_eq!(r, "recv");
            // A full buffer: the send arm is not ready.
            tx.send(6).unwrap();
            let r = select! {
                send(tx, 7) -> _ => "send",
                default => "default",
            };
            assert_eq!(r, "default");
        })
        .unwrap();
}

fn check_timeout_arm() {
    let wait = Duration::from_millis(20);
    let (_tx, rx) = chan::bounded::<u32>(0);
    let t = Instant::now();
    let timed_out = select! {
        recv(rx) -> _ => false,
        default(wait) => true,
    };
    let e = t.elapsed();
    assert!(timed_out);
    assert!(e >= wait, "timeout arm after {e:?}");
    assert!(e < wait * 100, "timeout arm after {e:?}");
}

#[test]
fn timeout_arm_fires_no_earlier_than_asked() {
    rt(2).run(check_timeout_arm).unwrap();
    check_timeout_arm();
}

#[test]
fn a_blocked_select_wakes_on_whichever_arm_completes() {
    rt(2)
        .run(|| {
            for which in 0..3 {
                let (tx1, rx1) = chan::bounded::<u32>(0);
                let (tx2, rx2) = chan::bounded::<u32>(0);
                let (tx3, rx3) = chan::bounded::<u32>(0);
                let h = go(move || {
                    select! {
                        recv(rx1) -> v => (1, v.unwrap()),
                        recv(rx2) -> v => (2, v.unwrap()),
                        send(tx3, 30) -> r => { r.unwrap(); (3, 30) }
                    }
                });
                sleep(Duration::from_millis(5));
                match which {
                    0 => tx1.send(10).unwrap(),
                    1 => tx2.send(20).unwrap(),
                    _ => assert_eq!(rx3.recv(), Ok(30)),
                }
                let got = h.join().unwrap();
                assert_eq!(got.0, which + 1);
                // The select left no entry behind: the other channels have
                // no partner for a try.
                assert!(tx1.try_send(0).is_err() && tx2.try_send(0).is_err());
                assert!(rx3.try_recv().is_err());
            }
            assert_eq!(goroutines_left(), 0);
        })
        .unwrap();
}

#[test]
fn a_disconnected_channel_is_a_ready_arm() {
    rt(1)
        .run(|| {
            let (tx, rx) = chan::bounded::<u32>(0);
            let (_tx2, rx2) = chan::bounded::<u32>(0);
            let h = go(move || {
                select! {
                    recv(rx) -> v => v,
                    recv(rx2) -> _ => unreachable!(),
                }
            });
            sleep(Duration::from_millis(5));
            drop(tx);
            assert_eq!(h.join().unwrap(), Err(RecvError));
            let (tx, rx) = chan::bounded::<String>(0);
            drop(rx);
            let r = select! { send(tx, "x".to_string()) -> r => r };
            assert_eq!(r.unwrap_err().into_inner(), "x");
        })
        .unwrap();
}

/// Goroutines selecting on both ends of rendezvous channels with each
/// other: selects pair with selects (each side's arms are skipped by its
/// own registration check), and every value is passed once.
#[test]
fn selects_pair_with_selects() {
    let n = if under_qemu() { 2_000 } else { 20_000 };
    rt(2)
        .run(move || {
            let (a_tx, a_rx) = chan::bounded::<u32>(0);
            let (b_tx, b_rx) = chan::bounded::<u32>(0);
            let h = go(move || {
                let mut sum = 0u64;
                for i in 0..n {
                    select! {
                        send(a_tx, i) -> r => r.unwrap(),
                        recv(b_rx) -> v => sum += u64::from(v.unwrap()),
                    }
                }
                sum
            });
            let mut got = 0u64;
            let mut sent = 0u32;
            let mut received = 0u32;
            while received + sent < n {
                select! {
                    recv(a_rx) -> v => { got += u64::from(v.unwrap()); received += 1; }
                    send(b_tx, 1) -> r => { r.unwrap(); sent += 1; }
                }
            }
            let other = h.join().unwrap();
            assert_eq!(other, u64::from(sent), "every send arm value arrived once");
            assert!(got <= u64::from(n) * u64::from(n));
        })
        .unwrap();
}

/// Many selecting receivers over two channels with producers on both:
/// every message is received exactly once (a select completed by one
/// channel never also takes a value from the other).
#[test]
fn competing_selects_receive_each_message_exactly_once() {
    let n: usize = if under_qemu() { 20_000 } else { 200_000 };
    for cap in [0, 4] {
        let seen: Arc<Vec<AtomicU8>> = Arc::new((0..n).map(|_| AtomicU8::new(0)).collect());
        let s = seen.clone();
        rt(4)
            .run(move || {
                let (tx1, rx1) = chan::bounded::<usize>(cap);
                let (tx2, rx2) = chan::bounded::<usize>(cap);
                let producers: Vec<_> = [tx1, tx2]
                    .into_iter()
                    .enumerate()
                    .map(|(k, tx)| go(move || (k..n).step_by(2).for_each(|i| tx.send(i).unwrap())))
                    .collect();
                let consumers: Vec<_> = (0..6)
                    .map(|_| {
                        let (rx1, rx2, s) = (rx1.clone(), rx2.clone(), s.clone());
                        go(move || {
                            let mut open = 2;
                            while open > 0 {
                                select! {
                                    recv(rx1) -> v => match v {
                                        Ok(i) => { s[i].fetch_add(1, Ordering::Relaxed); }
                                        Err(_) => { open = 0; }
                                    },
                                    recv(rx2) -> v => match v {
                                        Ok(i) => { s[i].fetch_add(1, Ordering::Relaxed); }
                                        Err(_) => { open = 0; }
                                    },
                                }
                            }
                            // One channel closed: drain both with plain receives.
                            for i in rx1.iter().chain(rx2.iter()) {
                                s[i].fetch_add(1, Ordering::Relaxed);
                            }
                        })
                    })
                    .collect();
                drop((rx1, rx2));
                for h in producers {
                    h.join().unwrap();
                }
                for h in consumers {
                    h.join().unwrap();
                }
                assert_eq!(goroutines_left(), 0);
            })
            .unwrap();
        for (i, c) in seen.iter().enumerate() {
            assert_eq!(c.load(Ordering::Relaxed), 1, "message {i}, cap {cap}");
        }
    }
}

#[test]
fn select_from_plain_threads_with_goroutine_partners() {
    rt_with_threads(2)
        .run(|| {
            let (tx, rx) = chan::bounded::<u32>(0);
            let (_tx2, rx2) = chan::bounded::<u32>(0);
            let t = std::thread::spawn(move || {
                let mut sum = 0;
                for _ in 0..100 {
                    select! {
                        recv(rx) -> v => sum += v.unwrap(),
                        recv(rx2) -> _ => unreachable!(),
                    }
                }
                sum
            });
            let h = go(move || (0..100).for_each(|i| tx.send(i).unwrap()));
            h.join().unwrap();
            assert_eq!(t.join().unwrap(), 4950);
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

/// Goroutines parked in a select when main returns are unwound: their
/// destructors run, no arm runs, and the run ends.
#[test]
fn parked_selects_are_unwound_at_shutdown() {
    const N: usize = 4;
    let dropped = Arc::new(AtomicUsize::new(0));
    let fired = Arc::new(AtomicUsize::new(0));
    let (d, f) = (dropped.clone(), fired.clone());
    let keep = rt(2)
        .run(move || {
            // Nothing ever sends on `rx` or receives from `tx`'s channel,
            // and both stay open until after the run (returned below): the
            // selects cannot complete, not even with each other.
            let (keep_tx, rx) = chan::bounded::<String>(0);
            let (tx, keep_rx) = chan::bounded::<String>(0);
            for _ in 0..N {
                let (tx, rx) = (tx.clone(), rx.clone());
                let (guard, f) = (Dropped(d.clone()), f.clone());
                go(move || {
                    let _guard = guard;
                    select! {
                        recv(rx) -> _ => f.fetch_add(1, Ordering::SeqCst),
                        send(tx, "never".to_string()) -> _ => f.fetch_add(1, Ordering::SeqCst),
                        default(Duration::from_secs(3600)) => f.fetch_add(1, Ordering::SeqCst),
                    };
                });
            }
            // Main returns only once all of them are parked in the select.
            let deadline = Instant::now() + Duration::from_secs(60);
            while gort_sched::dump_string().matches("[select]").count() < N {
                assert!(Instant::now() < deadline, "{}", gort_sched::dump_string());
                sleep(Duration::from_millis(1));
            }
            assert_eq!(
                d.load(Ordering::SeqCst),
                0,
                "a select goroutine ended early"
            );
            (keep_tx, keep_rx)
        })
        .unwrap();
    assert_eq!(
        fired.load(Ordering::SeqCst),
        0,
        "an arm ran during shutdown"
    );
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        N,
        "parked selects not unwound"
    );
    drop(keep);
}

/// Arms completed out of 1,000 selects with two arms on one channel of
/// capacity `cap`: send arms (`send: true`: the select sends, main
/// receives) or receive arms (another goroutine sends).
fn two_arms_on_one_channel(procs: usize, cap: usize, send: bool, biased: bool) -> [usize; 2] {
    const N: usize = 1_000;
    rt(procs)
        .run(move || {
            let (tx, rx) = chan::bounded::<usize>(cap);
            let mut counts = [0usize; 2];
            if send {
                let h = go(move || {
                    for _ in 0..N {
                        if biased {
                            select_biased! {
                                send(tx, 0) -> r => r.unwrap(),
                                send(tx, 1) -> r => r.unwrap(),
                            }
                        } else {
                            select! {
                                send(tx, 0) -> r => r.unwrap(),
                                send(tx, 1) -> r => r.unwrap(),
                            }
                        }
                    }
                });
                for v in rx.iter() {
                    counts[v] += 1;
                }
                h.join().unwrap();
            } else {
                let h = go(move || (0..N).for_each(|i| tx.send(i).unwrap()));
                for _ in 0..N {
                    if biased {
                        select_biased! {
                            recv(rx) -> v => { v.unwrap(); counts[0] += 1 },
                            recv(rx) -> v => { v.unwrap(); counts[1] += 1 },
                        }
                    } else {
                        select! {
                            recv(rx) -> v => { v.unwrap(); counts[0] += 1 },
                            recv(rx) -> v => { v.unwrap(); counts[1] += 1 },
                        }
                    }
                }
                h.join().unwrap();
            }
            assert_eq!(goroutines_left(), 0);
            counts
        })
        .unwrap()
}

/// Go's TestPseudoRandomSend, for send and receive arms: whichever arm the
/// partner completes, also when the select blocks and registers both in a
/// FIFO wait queue, is uniform (each wins 35-65% of 1,000; a binomial
/// spread is about 1.6%).
#[test]
fn a_blocked_selects_arms_on_one_channel_are_completed_fairly() {
    for procs in [1, 2] {
        for cap in [0, 1, 2, 5, 10] {
            for send in [true, false] {
                let counts = two_arms_on_one_channel(procs, cap, send, false);
                assert_eq!(counts[0] + counts[1], 1_000);
                let dir = if send { "send" } else { "receive" };
                for c in counts {
                    assert!(
                        c >= 350,
                        "{dir} arms at capacity {cap}, procs {procs}: {counts:?}"
                    );
                }
            }
        }
    }
}

/// select_biased!: the first arm written wins whenever it can, when the
/// select finds both ready and when it blocks and registers both (at procs
/// 1 and capacity 0 the partner meets the select both ways).
#[test]
fn select_biased_prefers_the_arm_written_first() {
    for cap in [0, 1, 10] {
        for send in [true, false] {
            let counts = two_arms_on_one_channel(1, cap, send, true);
            assert_eq!(counts, [1_000, 0], "capacity {cap}, send arms {send}");
        }
    }
}

#[test]
fn default_with_empty_parentheses_is_default() {
    let (tx, rx) = chan::bounded::<u8>(1);
    let mut hits = 0;
    select! {
        recv(rx) -> _ => unreachable!("nothing sent yet"),
        default() => hits += 1,
    }
    tx.send(3).unwrap();
    select! {
        recv(rx) -> v => assert_eq!(v, Ok(3)),
        default() => unreachable!("a value is ready"),
    }
    select_biased! {
        recv(rx) -> _ => unreachable!("drained"),
        default() => { hits += 1 }
    }
    assert_eq!(hits, 2);
}

/// `never()` is Go's nil channel: an arm on it is never ready, so the
/// select takes the other arms (or times out).
#[test]
fn a_never_arm_is_never_chosen() {
    rt(1)
        .run(|| {
            let never = chan::never::<u8>();
            let (tx, rx) = chan::bounded::<u8>(0);
            let h = go(move || tx.send(1).unwrap());
            select! {
                recv(never) -> _ => unreachable!("never receives"),
                recv(rx) -> v => assert_eq!(v, Ok(1)),
            }
            h.join().unwrap();
            // rx is now disconnected (ready, Err); never still is not.
            for _ in 0..100 {
                select! {
                    recv(never) -> _ => unreachable!("never receives"),
                    recv(rx) -> v => assert_eq!(v, Err(RecvError)),
                }
            }
            let t = Instant::now();
            select! {
                recv(never) -> _ => unreachable!("never receives"),
                default(Duration::from_millis(20)) => {}
            }
            assert!(t.elapsed() >= Duration::from_millis(20));
        })
        .unwrap();
}

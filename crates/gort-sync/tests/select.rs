//! select!: fairness among ready arms, default and timeout arms, waking on
//! any arm, send arms, disconnected arms, exactly-once delivery when many
//! selects compete, and no leftover registrations. All three targets.

mod common;

use common::{goroutines_left, rt, rt_with_threads, under_qemu};

use gort_sched::{go, sleep};
use gort_sync::chan::{self, RecvError};
use gort_sync::select;
use std::sync::atomic::{AtomicU8, Ordering};
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

#[test]
fn parked_selects_are_unwound_at_shutdown() {
    rt(2)
        .run(|| {
            let (tx, rx) = chan::bounded::<String>(0);
            for _ in 0..4 {
                let (tx, rx) = (tx.clone(), rx.clone());
                go(move || {
                    select! {
                        recv(rx) -> _ => {},
                        send(tx, "never".to_string()) -> _ => {},
                        default(Duration::from_secs(3600)) => {},
                    }
                });
            }
            sleep(Duration::from_millis(10));
        })
        .unwrap();
}

//! Channels: MPMC exactly-once delivery on every kind, close semantics,
//! timeouts, rendezvous, plain threads mixed with goroutines, deadlock
//! reports, shutdown with parked waiters. All three targets; counts scaled
//! under qemu.

#![cfg(not(loom))]

mod common;

use common::{goroutines_left, rt, rt_with_threads, under_qemu};

use gort_sched::{go, sleep, yield_now, Error};
use gort_sync::chan::{
    self, Receiver, RecvError, RecvTimeoutError, SendError, SendTimeoutError, Sender, TryRecvError,
    TrySendError,
};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Rendezvous,
    Buffered16,
    Unbounded,
}

fn make<T>(kind: Kind) -> (Sender<T>, Receiver<T>) {
    match kind {
        Kind::Rendezvous => chan::bounded(0),
        Kind::Buffered16 => chan::bounded(16),
        Kind::Unbounded => chan::unbounded(),
    }
}

/// 8 producers and 8 consumers; every message is counted by its receiver,
/// and each must arrive exactly once.
fn mpmc(kind: Kind, procs: usize, total: usize) {
    const P: usize = 8;
    const C: usize = 8;
    let seen: Arc<Vec<AtomicU8>> = Arc::new((0..total).map(|_| AtomicU8::new(0)).collect());
    let s = seen.clone();
    let left = rt(procs)
        .run(move || {
            let (tx, rx) = make::<usize>(kind);
            let producers: Vec<_> = (0..P)
                .map(|p| {
                    let tx = tx.clone();
                    go(move || {
                        for i in (p..total).step_by(P) {
                            tx.send(i).unwrap();
                        }
                    })
                })
                .collect();
            drop(tx);
            let consumers: Vec<_> = (0..C)
                .map(|_| {
                    let rx = rx.clone();
                    let s = s.clone();
                    go(move || {
                        let mut n = 0usize;
                        for i in &rx {
                            s[i].fetch_add(1, Ordering::Relaxed);
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            drop(rx);
            for h in producers {
                h.join().unwrap();
            }
            let received: usize = consumers.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(received, total, "{kind:?} procs {procs}");
            goroutines_left()
        })
        .unwrap();
    assert_eq!(left, 0, "no goroutine left but main");
    for (i, c) in seen.iter().enumerate() {
        assert_eq!(
            c.load(Ordering::Relaxed),
            1,
            "message {i} on {kind:?} procs {procs}"
        );
    }
}

fn mpmc_total() -> usize {
    if under_qemu() {
        40_000
    } else {
        1_000_000
    }
}

#[test]
fn mpmc_rendezvous_delivers_each_message_exactly_once() {
    mpmc(Kind::Rendezvous, 4, mpmc_total());
    mpmc(Kind::Rendezvous, 1, mpmc_total() / 10);
}

#[test]
fn mpmc_buffered_delivers_each_message_exactly_once() {
    mpmc(Kind::Buffered16, 4, mpmc_total());
    mpmc(Kind::Buffered16, 1, mpmc_total() / 10);
}

#[test]
fn mpmc_unbounded_delivers_each_message_exactly_once() {
    mpmc(Kind::Unbounded, 4, mpmc_total());
    mpmc(Kind::Unbounded, 1, mpmc_total() / 10);
}

#[test]
fn receivers_drain_the_buffer_then_get_disconnected() {
    rt(2)
        .run(|| {
            let (tx, rx) = chan::bounded(4);
            for i in 0..3 {
                tx.send(i).unwrap();
            }
            assert_eq!(tx.len(), 3);
            assert_eq!(tx.capacity(), Some(4));
            drop(tx);
            assert_eq!(rx.recv(), Ok(0));
            assert_eq!(rx.try_recv(), Ok(1));
            assert_eq!(rx.recv_timeout(Duration::from_secs(1)), Ok(2));
            assert_eq!(rx.recv(), Err(RecvError));
            assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
            assert_eq!(
                rx.recv_timeout(Duration::from_secs(1)),
                Err(RecvTimeoutError::Disconnected)
            );
            assert_eq!(rx.iter().count(), 0);
        })
        .unwrap();
}

#[test]
fn a_receiver_parked_when_the_last_sender_drops_wakes_disconnected() {
    rt(2)
        .run(|| {
            for kind in [Kind::Rendezvous, Kind::Buffered16, Kind::Unbounded] {
                let (tx, rx) = make::<u32>(kind);
                let h = go(move || rx.recv());
                // Let the receiver park (it may or may not have yet: both
                // orders must end the same way).
                sleep(Duration::from_millis(5));
                let tx2 = tx.clone();
                drop(tx);
                drop(tx2);
                assert_eq!(h.join().unwrap(), Err(RecvError), "{kind:?}");
            }
        })
        .unwrap();
}

struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn sending_to_dropped_receivers_returns_the_value() {
    rt(2)
        .run(|| {
            let (tx, rx) = chan::bounded::<String>(1);
            drop(rx);
            assert_eq!(tx.send("a".into()), Err(SendError("a".to_string())));
            assert_eq!(
                tx.try_send("b".into()),
                Err(TrySendError::Disconnected("b".to_string()))
            );
            assert_eq!(
                tx.send_timeout("c".into(), Duration::from_millis(1)),
                Err(SendTimeoutError::Disconnected("c".to_string()))
            );
            assert_eq!(SendError(1).into_inner(), 1);

            // A sender parked on a full channel gets its value back when the
            // last receiver goes; buffered values are dropped then.
            let drops = Arc::new(AtomicUsize::new(0));
            let (tx, rx) = chan::bounded::<Counted>(1);
            tx.send(Counted(drops.clone())).unwrap();
            let d = drops.clone();
            let h = go(move || match tx.send(Counted(d)) {
                Err(SendError(v)) => {
                    std::mem::forget(v);
                    true
                }
                Ok(()) => false,
            });
            sleep(Duration::from_millis(5));
            drop(rx);
            assert!(h.join().unwrap(), "the parked send failed with its value");
            assert_eq!(
                drops.load(Ordering::Relaxed),
                1,
                "the buffered value was dropped"
            );
        })
        .unwrap();
}

#[test]
fn try_operations_do_not_block() {
    rt(1)
        .run(|| {
            let (tx, rx) = chan::bounded::<i32>(0);
            assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
            let (tx, rx) = chan::bounded::<i32>(1);
            assert_eq!(tx.try_send(1), Ok(()));
            assert!(tx.try_send(2).unwrap_err().is_full());
            assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![1]);
        })
        .unwrap();
}

#[test]
fn rendezvous_send_completes_only_when_a_receiver_takes_the_value() {
    rt(2)
        .run(|| {
            let (tx, rx) = chan::bounded::<u32>(0);
            let done = Arc::new(AtomicUsize::new(0));
            let d = done.clone();
            let h = go(move || {
                tx.send(7).unwrap();
                d.store(1, Ordering::SeqCst);
            });
            sleep(Duration::from_millis(10));
            assert_eq!(
                done.load(Ordering::SeqCst),
                0,
                "send returned with no receiver"
            );
            assert_eq!(rx.recv(), Ok(7));
            h.join().unwrap();
            assert_eq!(done.load(Ordering::SeqCst), 1);
        })
        .unwrap();
}

fn check_timeouts() {
    let wait = Duration::from_millis(20);
    let (tx, rx) = chan::bounded::<u32>(0);
    let t = Instant::now();
    assert_eq!(rx.recv_timeout(wait), Err(RecvTimeoutError::Timeout));
    let e = t.elapsed();
    assert!(e >= wait, "returned after {e:?}, before {wait:?}");
    assert!(e < wait * 100, "returned after {e:?}");
    let t = Instant::now();
    assert_eq!(tx.send_timeout(1, wait), Err(SendTimeoutError::Timeout(1)));
    assert!(t.elapsed() >= wait);
    let (tx, rx) = chan::bounded::<u32>(1);
    tx.send(1).unwrap();
    assert_eq!(tx.send_timeout(2, wait), Err(SendTimeoutError::Timeout(2)));
    assert_eq!(rx.recv_timeout(Duration::ZERO), Ok(1));
    assert_eq!(
        rx.recv_timeout(Duration::ZERO),
        Err(RecvTimeoutError::Timeout)
    );
    // A queue left by a timed-out waiter still works.
    tx.send(3).unwrap();
    assert_eq!(rx.recv(), Ok(3));
}

#[test]
fn timeouts_fire_no_earlier_than_asked_on_goroutines_and_threads() {
    rt(2).run(check_timeouts).unwrap();
    check_timeouts();
}

/// Receivers with short timeouts race senders with short timeouts: every
/// value a send reports delivered is received exactly once, and none that a
/// send reports failed is received (no value is lost to, or duplicated by,
/// a waiter whose timeout fired).
#[test]
fn timed_out_waiters_never_lose_or_duplicate_a_value() {
    let n = if under_qemu() { 2_000 } else { 20_000 };
    for kind in [Kind::Rendezvous, Kind::Buffered16] {
        rt(4)
            .run(move || {
                let (tx, rx) = make::<usize>(kind);
                let seen: Arc<Vec<AtomicU8>> = Arc::new((0..n).map(|_| AtomicU8::new(0)).collect());
                let senders: Vec<_> = (0..4)
                    .map(|k| {
                        let tx = tx.clone();
                        go(move || {
                            let mut sent = Vec::new();
                            for i in (k..n).step_by(4) {
                                if tx.send_timeout(i, Duration::from_micros(50)).is_ok() {
                                    sent.push(i);
                                }
                            }
                            sent
                        })
                    })
                    .collect();
                drop(tx);
                let receivers: Vec<_> = (0..4)
                    .map(|_| {
                        let rx = rx.clone();
                        let seen = seen.clone();
                        go(move || loop {
                            match rx.recv_timeout(Duration::from_micros(30)) {
                                Ok(i) => {
                                    seen[i].fetch_add(1, Ordering::Relaxed);
                                }
                                Err(RecvTimeoutError::Timeout) => yield_now(),
                                Err(RecvTimeoutError::Disconnected) => return,
                            }
                        })
                    })
                    .collect();
                drop(rx);
                let mut sent = vec![false; n];
                for h in senders {
                    for i in h.join().unwrap() {
                        sent[i] = true;
                    }
                }
                for h in receivers {
                    h.join().unwrap();
                }
                for (i, s) in sent.iter().enumerate() {
                    let got = seen[i].load(Ordering::Relaxed);
                    assert_eq!(
                        got,
                        u8::from(*s),
                        "value {i} ({kind:?}): sent {s}, received {got}"
                    );
                }
            })
            .unwrap();
    }
}

#[test]
fn plain_threads_and_goroutines_share_channels() {
    let n = if under_qemu() { 2_000 } else { 20_000 };
    let total = rt_with_threads(2)
        .run(move || {
            let (tx, rx) = chan::bounded::<u64>(0);
            let (back_tx, back_rx) = chan::bounded::<u64>(4);
            // Threads send; goroutines forward; a thread sums.
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        for i in 0..n {
                            tx.send(i).unwrap();
                        }
                    })
                })
                .collect();
            drop(tx);
            let forwarders: Vec<_> = (0..3)
                .map(|_| {
                    let rx = rx.clone();
                    let back_tx = back_tx.clone();
                    go(move || {
                        for v in rx {
                            back_tx.send(v).unwrap();
                        }
                    })
                })
                .collect();
            drop((rx, back_tx));
            let summer = std::thread::spawn(move || back_rx.iter().sum::<u64>());
            for t in threads {
                t.join().unwrap();
            }
            for f in forwarders {
                f.join().unwrap();
            }
            let s = summer.join().unwrap();
            assert_eq!(goroutines_left(), 0);
            s
        })
        .unwrap();
    assert_eq!(total, 2 * n * (n - 1) / 2);
}

#[test]
fn a_receive_that_nothing_can_satisfy_is_reported_as_a_deadlock() {
    // Goroutines that only wake each other (libtest's main thread is alive
    // outside the runtime: under default settings it may be a waker).
    let alone = gort_sched::Runtime::builder()
        .procs(2)
        .external_wakers(false)
        .build()
        .unwrap();
    let r = alone.run(|| {
        let (tx, rx) = chan::bounded::<u32>(0);
        let (never_tx, never_rx) = chan::bounded::<()>(0);
        // The goroutine keeps the sender alive while it waits forever on a
        // channel whose sender main keeps.
        let _h = go(move || {
            let _tx = tx;
            let _ = never_rx.recv();
        });
        let _keep = never_tx;
        let _ = rx.recv();
        unreachable!("the receive cannot complete");
    });
    match r {
        Err(Error::Deadlock { goroutines }) => {
            assert!(goroutines.contains("chan receive"), "{goroutines}");
        }
        other => panic!("expected a deadlock, got {other:?}"),
    }
}

#[test]
fn parked_waiters_are_unwound_at_shutdown_without_leaking_values() {
    let drops = Arc::new(AtomicUsize::new(0));
    let made = Arc::new(AtomicUsize::new(0));
    let (d, m) = (drops.clone(), made.clone());
    rt(2)
        .run(move || {
            let (tx, rx) = chan::bounded::<Counted>(1);
            let (tx0, rx0) = chan::bounded::<Counted>(0);
            let (_etx, erx) = chan::unbounded::<Counted>();
            tx.send(Counted(d.clone())).unwrap();
            m.fetch_add(1, Ordering::Relaxed);
            for _ in 0..4 {
                let (tx, tx0) = (tx.clone(), tx0.clone());
                let (v, v0) = (Counted(d.clone()), Counted(d.clone()));
                m.fetch_add(2, Ordering::Relaxed);
                go(move || tx.send(v));
                go(move || tx0.send(v0));
                let erx = erx.clone();
                go(move || erx.recv().map(std::mem::forget));
            }
            sleep(Duration::from_millis(20));
            // Main returns with 12 goroutines parked on channels; the
            // channels go away with them.
            drop((tx, rx, tx0, rx0));
        })
        .unwrap();
    assert_eq!(drops.load(Ordering::Relaxed), made.load(Ordering::Relaxed));
}

#[test]
fn iteration_ends_when_senders_are_gone() {
    rt(2)
        .run(|| {
            let (tx, rx) = chan::unbounded();
            let h = go(move || {
                for i in 0..100u32 {
                    tx.send(i).unwrap();
                }
            });
            let v: Vec<u32> = rx.into_iter().collect();
            h.join().unwrap();
            assert_eq!(v, (0..100).collect::<Vec<_>>());
        })
        .unwrap();
}

#[test]
fn channel_ends_are_send_and_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Sender<u32>>();
    check::<Receiver<u32>>();
}

#[test]
fn is_full_and_capacity_follow_the_buffer() {
    let (tx, rx) = chan::bounded::<u8>(2);
    assert_eq!((tx.capacity(), rx.capacity()), (Some(2), Some(2)));
    assert!(!tx.is_full() && !rx.is_full());
    tx.send(1).unwrap();
    assert!(!tx.is_full());
    tx.send(2).unwrap();
    assert!(tx.is_full() && rx.is_full());
    rx.recv().unwrap();
    assert!(!tx.is_full());
    // A rendezvous channel has no room, ever; an unbounded one is never full.
    let (tx0, _rx0) = chan::bounded::<u8>(0);
    assert!(tx0.is_full());
    let (txu, _rxu) = chan::unbounded::<u8>();
    (0..1000).for_each(|i| txu.send(i as u8).unwrap());
    assert!(!txu.is_full());
    assert_eq!(txu.capacity(), None);
}

#[test]
fn never_receives_and_never_disconnects() {
    let never = chan::never::<String>();
    assert_eq!(never.try_recv(), Err(TryRecvError::Empty));
    let t = Instant::now();
    assert_eq!(
        never.recv_timeout(Duration::from_millis(10)),
        Err(RecvTimeoutError::Timeout)
    );
    assert!(t.elapsed() >= Duration::from_millis(10));
    assert_eq!(never.capacity(), Some(0));
    assert!(never.is_empty());
    let clone = never.clone();
    drop(never);
    assert_eq!(clone.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn ends_are_unwind_safe() {
    fn unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>(_: &T) {}
    let (tx, rx) = chan::bounded::<std::cell::Cell<u8>>(1);
    unwind_safe(&tx);
    unwind_safe(&rx);
    // crossbeam-channel's example: moving an end into catch_unwind.
    let r = std::panic::catch_unwind(move || {
        tx.send(std::cell::Cell::new(1)).unwrap();
        drop(rx);
    });
    assert!(r.is_ok());
}

//! Loom models of the channel wait queue (build with `--cfg loom`; run by
//! `cargo xtask loom`). The waiters are loom threads parking on the
//! model's one-shot (src/park.rs); a deadline fires at any point the model
//! picks, racing every wake.
//!
//! Invariant checked by every model (the handoff protocol of waitq.rs):
//! a value is delivered exactly once or given back to its sender, never
//! both and never neither: a send reports Ok exactly when a receiver got
//! its value, and a failed send returns the value it was given; a
//! select completes at most one arm; every waiter returns (loom reports a
//! thread parked for ever as a deadlock); and no entry is left queued
//! (each model ends with both ends dropped, so a leftover entry would be
//! a dangling pointer that the disconnect walks).

#![cfg(loom)]

use gort_sync::chan::{self, RecvTimeoutError, SendTimeoutError, TryRecvError};
use gort_sync::select;
use loom::thread;
use std::time::{Duration, Instant};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// A deadline the clock never reaches: in the model, the timeout fires
/// when the model decides, not by the clock.
fn later() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// A rendezvous: whichever side parks, the value moves exactly once.
#[test]
fn rendezvous_send_and_receive() {
    model(|| {
        let (tx, rx) = chan::bounded::<u32>(0);
        let t = thread::spawn(move || tx.send(7).unwrap());
        assert_eq!(rx.recv(), Ok(7));
        t.join().unwrap();
    });
}

/// A sender and a receiver that both may time out, at any point: the
/// value is received exactly when the send reports Ok, else it comes back.
#[test]
fn timeouts_race_the_handoff() {
    model(|| {
        let (tx, rx) = chan::bounded::<u32>(0);
        let t = thread::spawn(move || match tx.send_deadline(7, later()) {
            Ok(()) => true,
            Err(SendTimeoutError::Timeout(v)) => {
                assert_eq!(v, 7, "a timed-out send gets its value back");
                false
            }
            Err(SendTimeoutError::Disconnected(_)) => unreachable!("the receiver is alive"),
        });
        let got = match rx.recv_deadline(later()) {
            Ok(v) => {
                assert_eq!(v, 7);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            // The sender timed out and dropped its end first.
            Err(RecvTimeoutError::Disconnected) => false,
        };
        let sent = t.join().unwrap();
        assert_eq!(sent, got, "sent Ok exactly when received");
    });
}

/// A receiver parked while the last sender is dropped wakes Disconnected,
/// after the buffered value.
#[test]
fn close_wakes_a_parked_receiver_after_the_buffer() {
    model(|| {
        let (tx, rx) = chan::bounded::<u32>(1);
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
            drop(tx);
        });
        assert_eq!(rx.recv(), Ok(1));
        assert_eq!(rx.recv(), Err(chan::RecvError));
        t.join().unwrap();
    });
}

/// A sender parked on a full buffer moves its value in behind the one a
/// receiver takes: FIFO across the buffer and the parked sender.
#[test]
fn a_parked_sender_follows_the_buffer() {
    model(|| {
        let (tx, rx) = chan::bounded::<u32>(1);
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
            tx.send(2).unwrap();
        });
        assert_eq!(rx.recv(), Ok(1));
        assert_eq!(rx.recv(), Ok(2));
        t.join().unwrap();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    });
}

/// A select over two channels with a timeout, against a sender on each
/// that may time out too: the select completes at most one arm, and each
/// send reports Ok exactly when the select got its value.
#[test]
fn a_select_completes_at_most_one_arm() {
    model(|| {
        let (tx1, rx1) = chan::bounded::<u32>(0);
        let (tx2, rx2) = chan::bounded::<u32>(0);
        let t1 = thread::spawn(move || tx1.send_deadline(1, later()).is_ok());
        let t2 = thread::spawn(move || tx2.send_deadline(2, later()).is_ok());
        let got = select! {
            recv(rx1) -> v => v.ok(),
            recv(rx2) -> v => v.ok(),
            default(Duration::from_secs(3600)) => None,
        };
        // The select's own deadline fires at any point of the model too;
        // a sender that timed out drops its end, which readies its arm
        // (Err: no value).
        let (s1, s2) = (t1.join().unwrap(), t2.join().unwrap());
        match got {
            Some(1) => assert!(s1 && !s2),
            Some(2) => assert!(s2 && !s1),
            None => assert!(!s1 && !s2),
            Some(v) => unreachable!("got {v}"),
        }
    });
}

//! Loom model of the retake handshake between an M whose goroutine goes
//! in and out of the runtime and sysmon taking its P (`handshake.rs`;
//! `cargo xtask loom`).
//!
//! Invariant: the P's owned state (an `UnsafeCell`, so loom reports any
//! access not ordered by happens-before) is touched by at most one party
//! at a time: by the M only between an `entry` that did not report a loss
//! and its next `leave`, by sysmon only after a `try_take` that won; and
//! once sysmon won, the M's next `entry` reports the loss. The M keeps
//! the P when sysmon does not win.

#![cfg(loom)]

use gort_sched::handshake::MLive;
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

struct Shared {
    m: MLive,
    /// The P's owned state (run queue, caches).
    p_state: UnsafeCell<u32>,
    /// sysmon took the P.
    taken: AtomicBool,
}

const P: *mut () = 0x40 as *mut ();

#[test]
fn the_p_has_one_holder_at_a_time() {
    model(|| {
        let s = Arc::new(Shared {
            m: MLive::default(),
            p_state: UnsafeCell::new(0),
            taken: AtomicBool::new(false),
        });
        let sysmon = {
            let s = s.clone();
            thread::spawn(move || {
                if s.m.holds(P) && s.m.try_take(P) {
                    s.taken.store(true, Ordering::Relaxed);
                    // The P is sysmon's: hand it off (touch its state).
                    // SAFETY: the model's claim: winning try_take makes the
                    // P's state ours; loom reports any unordered access.
                    s.p_state.with_mut(|v| unsafe { *v += 10 });
                }
            })
        };
        // The M: runtime code (holds the P), user code, and back, twice.
        let mut lost = false;
        // SAFETY: the M holds the P in runtime code (the claim under test;
        // loom reports a race with sysmon's access if it is wrong).
        s.p_state.with_mut(|v| unsafe { *v += 1 });
        for _ in 0..2 {
            s.m.leave(P);
            // ... user code: no P state touched ...
            if s.m.entry() {
                lost = true;
                break;
            }
            // SAFETY: entry said the P is still ours (checked by loom).
            s.p_state.with_mut(|v| unsafe { *v += 1 });
        }
        sysmon.join().unwrap();
        let taken = s.taken.load(Ordering::Relaxed);
        if lost {
            assert!(taken, "the M reported a loss sysmon never made");
        } else {
            // The M's last entry kept the P, and after it the M is in the
            // runtime, where sysmon cannot win.
            assert!(!taken, "sysmon took the P and the M did not notice");
        }
    });
}

#[test]
fn sysmon_backs_off_while_the_m_is_in_the_runtime() {
    model(|| {
        let s = Arc::new(Shared {
            m: MLive::default(),
            p_state: UnsafeCell::new(0),
            taken: AtomicBool::new(false),
        });
        // The M never leaves the runtime: sysmon must never win.
        let sysmon = {
            let s = s.clone();
            thread::spawn(move || {
                assert!(!s.m.try_take(P), "took a P from an M in the runtime");
            })
        };
        assert!(!s.m.entry());
        // SAFETY: entry said the P is still ours (checked by loom).
        s.p_state.with_mut(|v| unsafe { *v += 1 });
        sysmon.join().unwrap();
    });
}

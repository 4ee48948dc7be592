//! Loom model of the P handoff between an M leaving a syscall, sysmon
//! retaking the P, and a stop-the-world (`cargo xtask loom`).
//!
//! Invariant: a P in a syscall ends with exactly one owner: the exiting M
//! (fast path) or the one party that took it (sysmon's handoff, or the
//! stop-the-world), never two and never none; an exiting M that lost goes
//! to its slow path and finds the P with its new owner.

#![cfg(loom)]

use gort_sched::pstatus::{PStatus, HANDOFF, RUNNING, STOPPED};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

const EXITING_M: usize = 1;
const SYSMON: usize = 2;
const STW: usize = 4;

#[test]
fn exactly_one_party_wins_a_p_in_syscall() {
    model(|| {
        let status = Arc::new(PStatus::new());
        let owners = Arc::new(AtomicUsize::new(0));
        // The holder enters the syscall before anyone looks.
        status.enter_syscall();
        let s = status.clone();
        let o = owners.clone();
        let sysmon = thread::spawn(move || {
            if s.try_retake() {
                o.fetch_or(SYSMON, Ordering::SeqCst);
            }
        });
        let s = status.clone();
        let o = owners.clone();
        let stw = thread::spawn(move || {
            if s.try_stop() {
                o.fetch_or(STW, Ordering::SeqCst);
            }
        });
        let kept = status.try_exit_syscall();
        if kept {
            owners.fetch_or(EXITING_M, Ordering::SeqCst);
        }
        sysmon.join().unwrap();
        stw.join().unwrap();
        let o = owners.load(Ordering::SeqCst);
        assert!(
            o == EXITING_M || o == SYSMON || o == STW,
            "owners {o:#b}: a P must end with exactly one owner"
        );
        // The losers saw the P leave SYSCALL; none of them can take it later.
        assert!(!status.try_retake() && !status.try_stop() && !status.try_exit_syscall());
        let _ = (RUNNING, HANDOFF, STOPPED);
    });
}

#[test]
fn a_retaken_p_is_never_reclaimed_by_the_exiting_m() {
    model(|| {
        let status = Arc::new(PStatus::new());
        status.enter_syscall();
        let s = status.clone();
        let sysmon = thread::spawn(move || s.try_retake());
        let kept = status.try_exit_syscall();
        let retaken = sysmon.join().unwrap();
        assert!(kept ^ retaken, "kept {kept}, retaken {retaken}");
    });
}

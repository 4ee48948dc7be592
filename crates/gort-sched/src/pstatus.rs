//! The P status word and the syscall handoff protocol (Go's `_Prunning`,
//! `_Psyscall`, `_Pidle`, `_Pgcstop` and the CASes of `exitsyscallfast`,
//! `retake` and `stopTheWorld`).
//!
//! While its M is in a syscall, a P is in `SYSCALL`: still the M's, but
//! anyone may take it. Three parties race for it, each with one CAS out of
//! `SYSCALL`, and exactly one wins:
//! - the M leaving the syscall (`try_exit_syscall`, Go's fast path: it keeps
//!   running with its old P);
//! - sysmon (`try_retake`: the P is handed off so other goroutines run);
//! - a stop-the-world (`try_stop`).
//!
//! Kept apart so that `tests/loom_handoff.rs` models exactly this code.

use crate::sync::atomic::{AtomicU8, Ordering};

/// Held by an M that runs goroutines on it (or idle, or in transit).
pub const RUNNING: u8 = 0;
/// Held by an M that is in a syscall or C call: up for grabs.
pub const SYSCALL: u8 = 1;
/// Taken by sysmon (or by the exiting M's slow path) to be handed off.
pub const HANDOFF: u8 = 2;
/// Stopped by a stop-the-world.
pub const STOPPED: u8 = 3;

/// Must hold: only the P's holder moves it into `SYSCALL`
/// (`enter_syscall`) or back to `RUNNING` after winning it; every move out
/// of `SYSCALL` is a CAS, so one party wins it.
#[derive(Debug)]
pub struct PStatus(AtomicU8);

impl Default for PStatus {
    fn default() -> Self {
        PStatus::new()
    }
}

impl PStatus {
    /// A P held by someone (RUNNING).
    pub fn new() -> PStatus {
        PStatus(AtomicU8::new(RUNNING))
    }

    /// The holder enters a syscall: the P becomes retakeable. Release: the
    /// P's queue and caches, as the holder left them, are visible to
    /// whoever wins it.
    pub fn enter_syscall(&self) {
        self.0.store(SYSCALL, Ordering::Release);
    }

    /// The M leaving its syscall tries to keep its P (Go's fast path).
    pub fn try_exit_syscall(&self) -> bool {
        self.win(RUNNING)
    }

    /// sysmon takes the P of an M stuck in a syscall, to hand it off.
    pub fn try_retake(&self) -> bool {
        self.win(HANDOFF)
    }

    /// A stop-the-world stops the P of an M in a syscall.
    pub fn try_stop(&self) -> bool {
        self.win(STOPPED)
    }

    /// The new holder of a P that it got by any other path (idle list,
    /// handoff, the end of a stop-the-world) marks it held.
    pub fn set_running(&self) {
        self.0.store(RUNNING, Ordering::Release);
    }

    /// Whether the P is in a syscall now (a snapshot, for sysmon's scan).
    pub fn in_syscall(&self) -> bool {
        self.0.load(Ordering::Acquire) == SYSCALL
    }

    fn win(&self, to: u8) -> bool {
        self.0
            .compare_exchange(SYSCALL, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

// Plain-thread tests of the three-way race, small enough for Miri, which
// checks that the winner's reads of the holder's writes are race-free (the
// release in enter_syscall, the acquire of the winning CAS). The loom model
// (tests/loom_handoff.rs) explores the interleavings exhaustively.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::cell::UnsafeCell;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    /// A P: its status and state that only its holder touches.
    struct P {
        status: PStatus,
        runq_len: UnsafeCell<u64>,
    }
    // SAFETY: `runq_len` is touched only by the P's holder; holding moves by
    // the status CASes, which order the accesses (what the test checks).
    unsafe impl Sync for P {}

    #[test]
    fn nothing_wins_a_p_that_is_not_in_a_syscall() {
        let s = PStatus::new();
        assert!(!s.in_syscall());
        assert!(!s.try_exit_syscall() && !s.try_retake() && !s.try_stop());
        s.enter_syscall();
        assert!(s.in_syscall());
        assert!(s.try_retake());
        assert!(!s.try_exit_syscall() && !s.try_stop(), "taken already");
        s.set_running();
        assert!(!s.in_syscall() && !s.try_stop());
    }

    #[test]
    fn exactly_one_of_three_racers_wins_and_sees_the_holders_writes() {
        use std::sync::atomic::Ordering::Relaxed;
        let rounds = if cfg!(miri) { 20 } else { 500 };
        for round in 0..rounds {
            let p = Arc::new(P {
                status: PStatus::new(),
                runq_len: UnsafeCell::new(0),
            });
            let winners = Arc::new(AtomicUsize::new(0));
            // The racers start first, so that only the status word orders
            // the holder's write before the winner's read (a thread's
            // spawn would order them too, and hide a missing release).
            let racers: Vec<_> = (0..3)
                .map(|who| {
                    let (p, winners) = (p.clone(), winners.clone());
                    std::thread::spawn(move || loop {
                        let won = match who {
                            0 => p.status.try_exit_syscall(),
                            1 => p.status.try_retake(),
                            _ => p.status.try_stop(),
                        };
                        if won {
                            winners.fetch_add(1, Relaxed);
                            // SAFETY: the winner now holds the P.
                            let seen = unsafe { *p.runq_len.get() };
                            assert_eq!(seen, round + 1, "the holder's write is visible");
                            // SAFETY: as above.
                            unsafe { *p.runq_len.get() = 0 };
                            return;
                        }
                        if winners.load(Relaxed) > 0 {
                            return;
                        }
                        std::thread::yield_now();
                    })
                })
                .collect();
            let holder = {
                let p = p.clone();
                std::thread::spawn(move || {
                    // The holder writes its P's state, then enters the syscall.
                    // SAFETY: the holder owns the P until enter_syscall.
                    unsafe { *p.runq_len.get() = round + 1 };
                    p.status.enter_syscall();
                })
            };
            holder.join().unwrap();
            for r in racers {
                r.join().unwrap();
            }
            assert_eq!(winners.load(Relaxed), 1);
        }
    }
}

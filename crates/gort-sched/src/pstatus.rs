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

//! Deadlock detection (Go's `checkdead`): every goroutine is blocked and
//! nothing can ever wake one.
//!
//! Run under the scheduler lock whenever an M goes idle (`stopm`,
//! `stop_locked_m`, `exit_locked_m`) and by sysmon after timers fire or
//! while a deadlock is suspected. Every goroutine is blocked when every
//! counted M is idle (an M being started counts as running from the moment
//! its id is reserved), at least one goroutine lives, no G is on any queue,
//! no timer is pending or firing, and no goroutine waits for an fd (the
//! kernel may ready it: netpoll.rs). Whether that is a deadlock depends on
//! who else could wake a goroutine (`Builder::external_wakers`):
//!
//! - `false`: nobody; it is a deadlock at once.
//! - `true`: anybody, any time; never a deadlock.
//! - default: a thread outside the runtime, if one is alive (outside.rs
//!   has the rule and why it is as safe as Go's). None alive: a deadlock at
//!   once. Maybe one: not yet; `dead_suspect` makes sysmon re-check (about
//!   every 10 ms, backing off to 1 s while outside threads stay), and the
//!   deadlock is reported once they are gone. An M that sees the suspicion
//!   first wakes sysmon; sysmon never wakes itself.
//!
//! The M that noticed takes a P, records the dump (one line per goroutine:
//! id, state, wait reason) and starts the shutdown (shutdown.rs), which
//! unwinds every goroutine; `run` returns `Error::Deadlock`. From sysmon
//! (no P), the shutdown readies the goroutines through the global queue.

use crate::m::M;
use crate::sched::{Ending, Locked, Sched};
use crate::status::Status;
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;

/// What checkdead concluded.
enum Verdict {
    /// Something runs, is queued or timed, or outside wakers were declared.
    Alive,
    /// Every goroutine is blocked and nothing can wake one: the dump.
    Dead(String),
    /// Every goroutine is blocked, and a thread outside the runtime may be
    /// alive to wake one.
    MaybeWokenFromOutside,
}

impl Sched {
    /// Go's `checkdead`, called with the lock held when an M goes idle:
    /// if every M is idle (an M being started counts as running)
    /// and goroutines exist, nothing can ever wake them.
    pub(crate) fn checkdead(&self, l: &Locked) -> Option<String> {
        match self.all_blocked(l) {
            Verdict::Dead(dump) => Some(dump),
            Verdict::Alive => None,
            Verdict::MaybeWokenFromOutside => {
                if !self.dead_suspect.swap(true, Ordering::SeqCst) {
                    // sysmon may sleep until a timer or forever: it must
                    // start re-checking.
                    self.sysmon_note.wake();
                }
                None
            }
        }
    }

    /// Whether every goroutine is blocked for good (see the module doc).
    fn all_blocked(&self, l: &Locked) -> Verdict {
        if self.external_wakers == Some(true) || self.shutdown.load(Ordering::Acquire) {
            return Verdict::Alive;
        }
        if !self.every_goroutine_blocked(l) {
            Verdict::Alive
        } else if self.external_wakers.is_none() && self.outside.may_exist() {
            Verdict::MaybeWokenFromOutside
        } else {
            Verdict::Dead(self.dump())
        }
    }

    /// Go's checkdead proper: every M idle, goroutines alive, nothing
    /// queued, no timer.
    fn every_goroutine_blocked(&self, l: &Locked) -> bool {
        if l.midle.len() as isize + l.nmidlelocked < l.mcount as isize {
            return false;
        }
        if self.ngoroutines.load(Ordering::Acquire) == 0 || !l.runq.is_empty() {
            return false;
        }
        // A goroutine waiting for an fd can be readied by the kernel (a
        // peer) at any time: never a deadlock (netpoll.rs).
        if self.io_waiting() {
            return false;
        }
        // A pending timer will wake a goroutine. (A timer whose waiter was
        // woken otherwise stays until it fires; sysmon re-checks then.)
        if !self.timers_idle() {
            return false;
        }
        !self.allp().any(|p| !p.runq.is_empty())
    }

    /// checkdead fired on this M (which counts itself as running again):
    /// it takes an idle P, records the deadlock and starts the shutdown that
    /// unwinds every goroutine, which this M then runs.
    pub(crate) fn report_deadlock(&self, mut l: MutexGuard<'_, Locked>, mr: &M, dump: String) {
        let p = self
            .pidle_get(&mut l)
            .expect("all Ps are idle when all Ms are");
        drop(l);
        mr.acquirep(p);
        self.set_ending(Ending::Deadlock(dump));
        self.begin_shutdown();
    }

    /// sysmon's check: after timers fired (a stale timer may have been all
    /// that kept checkdead quiet) and while a deadlock is suspected.
    pub(crate) fn sysmon_checkdead(&self) {
        let l = self.lock();
        let verdict = self.all_blocked(&l);
        self.dead_suspect.store(
            matches!(verdict, Verdict::MaybeWokenFromOutside),
            Ordering::SeqCst,
        );
        if let Verdict::Dead(dump) = verdict {
            drop(l);
            self.set_ending(Ending::Deadlock(dump));
            // Readies every waiting goroutine through the global queue and
            // wakes an idle M to run them (sysmon has no P).
            self.begin_shutdown();
        }
    }

    /// One line per live goroutine: id, state, wait reason.
    pub(crate) fn dump(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let allgs = self.lock_allgs();
        for g in allgs.iter() {
            let status = g.status();
            if status == Status::Dead {
                continue;
            }
            let _ = write!(out, "goroutine {} [{:?}", g.id.get(), status);
            if status == Status::Waiting {
                let _ = write!(out, ": {}", g.wait_reason.get());
            }
            let _ = writeln!(out, "]{}", if g.is_main.get() { " (main)" } else { "" });
        }
        out
    }
}

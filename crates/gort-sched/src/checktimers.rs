//! Where the Ps' timer heaps (timer.rs) meet the scheduler: arming a
//! goroutine's deadline on the P it parks on, running a P's due timers
//! at schedule time (Go's `checkTimers`), sysmon's pass over every heap
//! as the fallback, checkdead's question ("could a timer still wake
//! someone?"), and clearing the heaps when the run ends.
//!
//! Why both schedule time and sysmon: a P's holder passes through
//! `find_runnable` between goroutines, so its due timers run within one
//! scheduling round of their expiry with no other thread involved (Go's
//! design, and the cheap case: one relaxed load of the heap's first
//! expiry, and a clock read only when a timer is armed). But a P whose
//! goroutine never parks, or an idle runtime whose Ms all sleep, runs no
//! schedule; sysmon sleeps until the earliest expiry over all heaps and
//! runs whatever is due then. Go has sysmon wake an idle P instead; here
//! sysmon runs the timers itself, as it did before the heaps were per P
//! (a firing wakes goroutines, which starts Ms as needed).
//!
//! The heaps of Ps beyond a lowered `set_procs` count are left in place:
//! their Ps are never freed, sysmon's pass still covers them (it walks
//! every P ever made), and a timer rearmed there stays there. Go moves
//! them (`moveTimers`); a P rarely shrinks, and its timers only lose the
//! schedule-time path.

use crate::current::current_m_of;
use crate::entry::Entry;
use crate::p::P;
use crate::sched::Sched;
use crate::timer::Timers;
use crate::waker::Waker;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

impl Sched {
    /// Every P ever made (allp's slots are filled from 0 and never
    /// emptied; Ps are never freed).
    fn all_ps(&self) -> impl Iterator<Item = &P> + '_ {
        self.allp.iter().map_while(|slot| {
            let p = slot.load(Ordering::Acquire);
            // SAFETY: Ps are never freed while the Sched lives.
            (!p.is_null()).then(|| unsafe { &*p })
        })
    }

    /// The heap of the P this thread holds, else P 0's.
    fn timers_here(&self) -> &Arc<Timers> {
        let m = current_m_of(self);
        if !m.is_null() {
            // SAFETY: m is this thread's M.
            let p = unsafe { (*m).p() };
            if !p.is_null() {
                // SAFETY: our M holds p, and Ps are never freed.
                return unsafe { &(*p).timers };
            }
        }
        &self.p(0).timers
    }

    /// Arms a deadline for a parked goroutine's waker (park_with).
    pub(crate) fn add_timer(&self, when: Instant, waker: Waker) {
        self.timers_here().add_wake(when, waker);
    }

    /// The heap a user timer made on this thread goes to.
    pub(crate) fn user_timers(&self) -> Arc<Timers> {
        self.timers_here().clone()
    }

    /// Starts a goroutine for a firing timer (`Fire::go`).
    fn spawn_for_timer(&self, f: Box<dyn FnOnce() + Send>) {
        if let Err(e) = self.spawn(Entry::boxed(f), None, false) {
            // A timer's goroutine cannot report to anyone: Go throws when
            // it cannot make a goroutine.
            crate::fatal::fatal(&format!("cannot start a timer's goroutine: {e}"));
        }
    }

    /// Go's `checkTimers`, from `find_runnable`: runs `p`'s due timers
    /// (the goroutines they wake go on `p`'s queue). Costs one load when
    /// nothing is due.
    #[inline]
    pub(crate) fn check_timers(&self, p: &P) {
        if p.timers.maybe_due() {
            self.run_timers_of(&p.timers);
        }
    }

    #[cold]
    fn run_timers_of(&self, timers: &Timers) {
        let spawn = |f| self.spawn_for_timer(f);
        timers.run_due(Instant::now(), Some(&spawn));
    }

    /// sysmon's pass: runs every heap's due timers; returns whether any
    /// fired and the earliest expiry left.
    pub(crate) fn sysmon_timers(&self, now: Instant) -> (bool, Option<Instant>) {
        let spawn = |f| self.spawn_for_timer(f);
        let mut fired = false;
        let mut next: Option<Instant> = None;
        for p in self.all_ps() {
            fired |= p.timers.run_due(now, Some(&spawn)) > 0;
            if let Some(w) = p.timers.next_when() {
                next = Some(next.map_or(w, |n| n.min(w)));
            }
        }
        (fired, next)
    }

    /// The earliest expiry over every heap, in timer.rs's `nanos`.
    ///
    /// The kick protocol: a heap whose new first timer is due before
    /// `sysmon_until` wakes sysmon. sysmon stores `sysmon_until`, then
    /// reads every heap's first expiry here; a pusher stores its heap's
    /// first expiry, then reads `sysmon_until` (all SeqCst). So either
    /// sysmon sees the new timer and does not sleep past it, or the pusher
    /// sees the sleep and kicks. Go wakes its netpoller the same way when
    /// a timer is earlier than the poll's sleep (`wakeNetPoller`).
    pub(crate) fn timers_next_nanos(&self) -> u64 {
        self.all_ps()
            .map(|p| p.timers.next_nanos())
            .min()
            .unwrap_or(u64::MAX)
    }

    /// checkdead's question: is every heap empty, with nothing firing?
    pub(crate) fn timers_idle(&self) -> bool {
        self.all_ps().all(|p| p.timers.is_idle())
    }

    /// The run ended: drop every slot (user timers' callbacks and the
    /// references between a timer and its heap).
    pub(crate) fn clear_timers(&self) {
        for p in self.all_ps() {
            p.timers.clear();
        }
    }

    /// Slots on every heap (tests: nothing left behind).
    pub(crate) fn timer_slots(&self) -> usize {
        self.all_ps().map(|p| p.timers.len()).sum()
    }
}

/// The heap for a user timer made on this thread: its P's, or (on a
/// plain thread) the process-wide one.
pub(crate) fn timers_for_new() -> Arc<Timers> {
    let g = crate::current::current_g();
    if g.is_null() {
        return crate::timer::fallback();
    }
    crate::current::sched_of(g).user_timers()
}

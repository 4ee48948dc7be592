//! Goroutine deadlines: the entries of the runtime's timer heap
//! (`Sched::timers`), armed by `park_with` and `sleep` (`Sched::add_timer`)
//! and fired by sysmon (sysmon.rs), which sleeps until the earliest one.
//!
//! A timer is a deadline and the [`Waker`] of one wait, ordered by (when,
//! seq), `seq` making entries with the same instant distinct and first
//! come first fired. Firing is `Waker::time_out`: if a wake won the wait
//! first, the timer does nothing, so a timer is never removed early; it
//! stays until it is due. checkdead counts pending and firing timers as
//! possible wakers (`Sched::timers_firing`: taken off the heap, not yet
//! fired), so a deadlock is never reported while a timer is in flight.

use crate::waker::Waker;
use std::cmp::Ordering as CmpOrdering;
use std::time::Instant;

/// A goroutine's deadline: at `when`, `waker` times out (if nothing woke it
/// first). Ordered by (when, seq).
pub(crate) struct TimerEntry {
    pub(crate) when: Instant,
    pub(crate) seq: u64,
    pub(crate) waker: Waker,
}

impl PartialEq for TimerEntry {
    fn eq(&self, other: &Self) -> bool {
        (self.when, self.seq) == (other.when, other.seq)
    }
}

impl Eq for TimerEntry {}

impl PartialOrd for TimerEntry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for TimerEntry {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (self.when, self.seq).cmp(&(other.when, other.seq))
    }
}

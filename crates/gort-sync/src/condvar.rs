//! A condition variable in std's shape (`wait`, `wait_while`,
//! `wait_timeout`, `notify_one`, `notify_all`) over gort's `Mutex`, with
//! Go's `sync.Cond` notify list underneath.
//!
//! # The lost-wakeup gap, and Go's tickets
//!
//! A waiter must release the mutex and start waiting as one step, or a
//! notify sent in between (by a goroutine that took the mutex the moment
//! it was released) is lost. Parking under the mutex is not possible (the
//! waker could never take it), so Go's `notifyList` splits the wait: the
//! waiter takes a ticket while it still holds the mutex, releases it, then
//! parks unless its ticket was already notified. Notifies go to tickets in
//! order, so `notify_one` wakes the longest waiter, as Go does.
//!
//! Here the list holds one entry per ticket, in ticket order:
//! - `wait`: under the mutex, append an entry (not parked, not notified);
//!   unlock the mutex; park: under the list's lock, an entry already
//!   notified is removed and the wait returns at once, else the entry
//!   keeps the waiter's signal.
//! - `notify_one`: the first entry not yet notified is notified: if it
//!   holds a signal it is removed and woken outside the lock; if its waiter
//!   has not parked yet, it is marked and will not park.
//! - `notify_all`: every entry is notified the same way.
//!
//! # Timeouts (which Go's Cond has not)
//!
//! A timed wait races its deadline against a notify. The signal is a
//! one-shot (park.rs): if the deadline wins, the notifier's `wake` fails
//! and it notifies the next entry instead, so a notify is never lost to a
//! waiter that timed out. A waiter that times out removes its entry if it
//! is still there; an entry found notified (its waiter had not parked yet)
//! counts as woken.
//!
//! Rejected: std's futex condvar (a sequence counter and `futex_wait`)
//! blocks the thread, not the goroutine; Go's exact notifyList (two
//! counters and a list of parked sudogs) cannot drop a ticket whose waiter
//! timed out, so its notify would go to nobody.

use crate::mutex::MutexGuard;
use crate::park::{wait, Signal};
use gort_sched::park::{WaitReason, Woke};
use std::collections::VecDeque;
use std::fmt;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

const REASON: WaitReason = WaitReason::Other("sync.Cond.Wait");

/// Whether a [`Condvar::wait_timeout`] returned because its time was up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait ended by its timeout (no notify reached it).
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// A condition variable that parks goroutines (plain threads block), for
/// gort's [`Mutex`](crate::mutex::Mutex): Go's `sync.Cond` in the shape of
/// `std::sync::Condvar`.
///
/// Wakeups may be spurious in principle, as std's: wait in a loop on the
/// condition, or use [`wait_while`](Condvar::wait_while). Unlike std, one
/// `Condvar` may be used with several mutexes over its life (Go's Cond is
/// tied to one `Locker`, std panics; here it is simply not checked).
///
/// ```
/// use std::sync::Arc;
/// use gort_sync::sync::{Condvar, Mutex};
///
/// gort_sched::run(|| {
///     let pair = Arc::new((Mutex::new(false), Condvar::new()));
///     let pair2 = pair.clone();
///     gort_sched::go(move || {
///         *pair2.0.lock() = true;
///         pair2.1.notify_one();
///     });
///     let (ready, cv) = &*pair;
///     let ready = cv.wait_while(ready.lock(), |ready| !*ready);
///     assert!(*ready);
/// })
/// .unwrap();
/// ```
pub struct Condvar {
    list: std::sync::Mutex<NotifyList>,
}

/// Must hold: `entries` is in ticket order and holds each ticket at most
/// once, from its `wait` until it is notified and woken, or its waiter
/// removes it (returned at once, timed out, or unwound). An entry with a
/// signal is never `notified` (a notify removes it).
struct NotifyList {
    next: u64,
    entries: VecDeque<Entry>,
}

struct Entry {
    ticket: u64,
    /// Set once the waiter parks.
    signal: Option<Signal>,
    /// Notified before its waiter parked: it must not park.
    notified: bool,
}

impl NotifyList {
    fn find(&self, ticket: u64) -> Option<usize> {
        self.entries
            .binary_search_by_key(&ticket, |e| e.ticket)
            .ok()
    }

    /// Notifies the first entry not notified yet; returns its signal if its
    /// waiter is parked (the caller wakes it, outside the lock).
    fn notify_first(&mut self) -> Option<Option<Signal>> {
        let i = self.entries.iter().position(|e| !e.notified)?;
        if self.entries[i].signal.is_some() {
            let e = self.entries.remove(i).expect("index found above");
            Some(e.signal)
        } else {
            self.entries[i].notified = true;
            Some(None)
        }
    }
}

/// A ticket whose wait may be left by unwinding (shutdown): its `Drop`
/// removes the entry, and passes on a notify it had received.
struct Ticket<'a> {
    cv: &'a Condvar,
    ticket: Option<u64>,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let Some(t) = self.ticket else { return };
        let mut l = self.cv.lock();
        match l.find(t) {
            Some(i) => {
                let e = l.entries.remove(i).expect("index found above");
                drop(l);
                if e.notified {
                    self.cv.notify_one();
                }
            }
            // Removed by a notify whose wake lost to the unwind: pass it on.
            None => {
                drop(l);
                self.cv.notify_one();
            }
        }
    }
}

impl Condvar {
    /// A new condition variable.
    pub const fn new() -> Self {
        Condvar {
            list: std::sync::Mutex::new(NotifyList {
                next: 0,
                entries: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NotifyList> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Unlocks the guard's mutex, parks until notified, and locks it again.
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.wait_until(guard, None).0
    }

    /// Waits while `condition` holds (checked under the mutex, first
    /// before any wait).
    pub fn wait_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> MutexGuard<'a, T> {
        while condition(&mut guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// [`wait`](Condvar::wait) for at most `dur` (`Duration::MAX`: for
    /// ever).
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        dur: Duration,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        self.wait_until(guard, Instant::now().checked_add(dur))
    }

    /// [`wait_while`](Condvar::wait_while) for at most `dur` in all;
    /// `timed_out()` is true if the condition still held at the end.
    pub fn wait_timeout_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        dur: Duration,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        let deadline = Instant::now().checked_add(dur);
        while condition(&mut guard) {
            let (g, r) = self.wait_until(guard, deadline);
            guard = g;
            if r.timed_out() {
                let still = condition(&mut guard);
                return (guard, WaitTimeoutResult(still));
            }
        }
        (guard, WaitTimeoutResult(false))
    }

    fn wait_until<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        // Take a ticket while the mutex is held (Go's notifyListAdd).
        let mut l = self.lock();
        l.next += 1;
        let t = l.next;
        l.entries.push_back(Entry {
            ticket: t,
            signal: None,
            notified: false,
        });
        drop(l);
        let mut ticket = Ticket {
            cv: self,
            ticket: Some(t),
        };
        let mutex = guard.mutex;
        drop(guard);
        // Go's notifyListWait.
        let woke = wait(REASON, deadline, |w| {
            let mut l = self.lock();
            let i = l
                .find(t)
                .expect("a waiter's entry stays until it is notified");
            if l.entries[i].notified {
                l.entries.remove(i);
                return false;
            }
            l.entries[i].signal = Some(w.clone());
            drop(l);
            true
        });
        let timed_out = match woke {
            // A notify removed the entry, or register found it notified.
            Woke::Woken => false,
            Woke::TimedOut => {
                let mut l = self.lock();
                match l.find(t) {
                    Some(i) => {
                        let e = l.entries.remove(i).expect("index found above");
                        // Notified before parking: the notify is ours.
                        !e.notified
                    }
                    // A notify removed it, but its wake lost to the
                    // deadline and it went on to the next entry.
                    None => true,
                }
            }
        };
        ticket.ticket = None;
        (mutex.lock(), WaitTimeoutResult(timed_out))
    }

    /// Wakes the longest waiter, if any.
    pub fn notify_one(&self) {
        loop {
            let Some(signal) = self.lock().notify_first() else {
                return; // nobody waits
            };
            match signal {
                // Marked; its waiter will not park.
                None => return,
                Some(s) => {
                    if s.wake() {
                        return;
                    }
                    // Its deadline won: notify the next one instead.
                }
            }
        }
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        let mut l = self.lock();
        let mut woken = Vec::new();
        l.entries.retain_mut(|e| match e.signal.take() {
            Some(s) => {
                woken.push(s);
                false
            }
            None => {
                e.notified = true;
                true
            }
        });
        drop(l);
        for s in woken {
            s.wake();
        }
    }
}

impl Default for Condvar {
    fn default() -> Self {
        Condvar::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}

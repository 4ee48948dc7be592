//! The semaphore the locks park on (Go's `runtime_Semacquire` and
//! `runtime_Semrelease`, sema.go): a count of tokens and a FIFO of parked
//! waiters. `Mutex` parks its waiters here, `RwLock` its readers and its
//! writer.
//!
//! The protocol: `release` gives a token to the first queued waiter, or
//! adds it to the count when nobody waits; `acquire` takes a token from the
//! count, or queues and parks until a release hands it one. A token is
//! never both counted and handed, so a release wakes at most one waiter and
//! no wakeup is lost: the queue and the count change under one lock.
//!
//! A queued waiter can leave without a token in one way only: the runtime
//! shuts down and unwinds the parked goroutine. Its guard then tells the
//! caller what it leaves behind ([`Unwound`]): a place in the queue (the
//! caller undoes its bookkeeping, e.g. the Mutex's waiter count) or a
//! token handed to it as it was being unwound (the caller passes it on or
//! uses it). Rejected: a sema that retries acquires with a timeout (Go has
//! none; a lock waits for ever), and Go's treap of semaphores keyed by
//! address (here each lock owns its sema, so there is nothing to look up).

use crate::park::wait;
use crate::waitlist::WaitList;
use gort_sched::park::{current, WaitReason};
use std::sync::PoisonError;

/// Must hold, under `inner`'s lock: `count > 0` only while `waiters` is
/// empty; a token goes either to `count` or, directly, to the popped
/// waiter, which then owns it.
pub(crate) struct Sema {
    inner: std::sync::Mutex<SemaInner>,
}

struct SemaInner {
    count: u32,
    waiters: WaitList,
}

/// What an acquire unwound by a shutdown leaves behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unwound {
    /// It left the queue without a token.
    Queued,
    /// A release handed it the token as it was being unwound: the caller
    /// owns it (and must use it or release it).
    Handed,
}

/// A queued acquire; dropped while armed (unwinding at shutdown) it leaves
/// the queue, or finds the token it was given, and runs `on_unwind`.
struct SemaWait<'a, F: FnMut(Unwound)> {
    sema: &'a Sema,
    ticket: Option<u64>,
    on_unwind: F,
}

impl<F: FnMut(Unwound)> Drop for SemaWait<'_, F> {
    fn drop(&mut self) {
        let Some(t) = self.ticket else { return };
        let removed = self.sema.lock().waiters.remove(t);
        (self.on_unwind)(if removed {
            Unwound::Queued
        } else {
            Unwound::Handed
        });
    }
}

impl Sema {
    pub(crate) const fn new() -> Self {
        Sema {
            inner: std::sync::Mutex::new(SemaInner {
                count: 0,
                waiters: WaitList::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SemaInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a token, parking until one is handed over. `lifo`: queue at
    /// the head (a waiter that already waited, Go's queueLifo).
    /// `on_unwind` runs if the wait is unwound (shutdown); see [`Unwound`].
    pub(crate) fn acquire(&self, reason: WaitReason, lifo: bool, on_unwind: impl FnMut(Unwound)) {
        let mut g = self.lock();
        if g.count > 0 {
            g.count -= 1;
            return;
        }
        let mut queued = SemaWait {
            sema: self,
            ticket: None,
            on_unwind,
        };
        wait(reason, None, |w| {
            queued.ticket = Some(g.waiters.push(w, lifo));
            drop(g);
            true
        });
        // Woken: the releaser popped us and the token is ours.
        queued.ticket = None;
    }

    /// Gives a token to the first waiter, or to `count`. `handoff`: yield
    /// so that the waiter runs now (Go's semrelease handoff in starvation
    /// mode).
    pub(crate) fn release(&self, handoff: bool) {
        let mut g = self.lock();
        loop {
            let Some(w) = g.waiters.pop() else {
                g.count += 1;
                return;
            };
            drop(g);
            // No deadline races these waits: the wake wins, unless the
            // waiter is being unwound, and its guard then finds the token.
            if w.wake() {
                if handoff && current().is_some() {
                    gort_sched::yield_now();
                }
                return;
            }
            g = self.lock();
        }
    }
}

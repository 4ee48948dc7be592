//! The channel's wait queues: one parked send or receive is an [`Entry`]
//! (Go's sudog: "pseudo-G", the record a parked goroutine leaves in a
//! channel's queue), and a [`WaitQueue`] is an intrusive doubly linked FIFO
//! of them (Go's `waitq`, `recvq` and `sendq` of `hchan`).
//!
//! Why intrusive. A plain send or receive keeps its entry in its own
//! frame (Go keeps the sudog on the goroutine's stack too, from a cache):
//! parking allocates nothing, and queueing, popping and unlinking one
//! entry are a few pointer writes. Unlinking from the middle is the common
//! case for a timed-out waiter and for a `select!`'s other arms, so the
//! queue is doubly linked. A select's arms are borrowed `&mut` by the
//! select while channels write into their entries, so an arm's entry is
//! one heap block per registration instead (select.rs).
//!
//! The protocol. The waiter publishes its one-shot [`Signal`] with the
//! entry; whoever pops the entry (under the channel's lock) takes the
//! signal out, completes the entry (moves the value, marks Done or
//! Closed), and only then calls `wake()`. The wake is a CAS against every
//! other wake and against the waiter's deadline: if it wins, the entry is
//! the waiter's again and the popper never touches it after; if it loses
//! (the waiter timed out, or its select was completed elsewhere), the
//! popper undoes the completion before unlocking and tries the next
//! entry. So a value is always either delivered to a waiter whose wake
//! won or back with its sender ([`deliver`], [`take`], [`close`]).
//!
//! Rejected: a `VecDeque` of (waker, value slot) pairs, which the first
//! version used. Every park copied the waiter into and out of the deque
//! (two 16-byte halves reloaded right after being stored, the hottest spot
//! perf showed on the park path), and a timed-out waiter's removal was a
//! linear search.
//!
//! This room uses only the one-shot (park.rs); the channel core (hchan.rs)
//! and select.rs use it.

use crate::park::Signal;
use std::cell::{Cell, UnsafeCell};
use std::ptr::NonNull;

/// What the channel side did to a parked operation before waking it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum State {
    /// Nothing (yet, or undone because the wake lost).
    Pending,
    /// The value moved: into a receiver's entry, or out of a sender's.
    Done,
    /// The other side disconnected.
    Closed,
}

/// One parked send or receive (Go's sudog): the value slot it exchanges
/// through, the waiter's one-shot, and the links of the channel's wait
/// queue. It lives in the parked operation's own frame (a `select!` arm's
/// on the heap): no allocation per wait, and the queue is intrusive, so
/// queueing, popping and removing one are a few pointer writes (O(1)
/// removal for a timed-out waiter or a select's other arms).
///
/// Must hold (the one-shot protocol, docs/sync.md):
/// - While the entry is in a wait queue, or popped from one by a holder of
///   the channel's lock, only that holder touches it; it changes `state`
///   from Pending (moving the value) only right before calling the
///   waiter's `wake()` (on the signal it took out of the entry when it
///   popped it), touches the entry no more once that `wake()` won, and if
///   it lost, puts everything back (value and Pending) before unlocking.
/// - So the waiter, once its park returns `Woken` for a one-channel
///   operation, finds Done or Closed and is the only one left to touch the
///   entry; and after it removes its entry under the lock (timeout,
///   select, unwinding) it finds the entry as the last holder of the lock
///   left it: Pending with its value back, or the completed state of the
///   one wake that won.
/// - The frame holding the entry is left only after one of the two: a
///   queued entry's address is never dangling. `queued` is true exactly
///   while the entry is linked into a queue; `signal` holds the waiter's
///   one-shot exactly then.
pub(crate) struct Entry<T> {
    state: Cell<State>,
    value: UnsafeCell<Option<T>>,
    signal: Cell<Option<Signal>>,
    /// 0 for a plain send or receive, a `select!`'s token for its arms,
    /// so a select does not count its own entries as a ready partner.
    owner: Cell<usize>,
    queued: Cell<bool>,
    prev: Cell<Option<NonNull<Entry<T>>>>,
    next: Cell<Option<NonNull<Entry<T>>>>,
}

impl<T> Entry<T> {
    pub(crate) fn new(value: Option<T>) -> Self {
        Entry {
            state: Cell::new(State::Pending),
            value: UnsafeCell::new(value),
            signal: Cell::new(None),
            owner: Cell::new(0),
            queued: Cell::new(false),
            prev: Cell::new(None),
            next: Cell::new(None),
        }
    }

    /// The state, and the value left in the entry, taken out.
    ///
    /// # Safety
    /// Only by the waiter, once nobody else can reach the entry (see the
    /// invariants). Entries are only ever shared (`&Entry`, or pointers
    /// made from one), never `&mut`, while they may be queued: others
    /// write into them through the queue's pointer.
    pub(crate) unsafe fn finish(&self) -> (State, Option<T>) {
        // SAFETY: nobody else touches the entry now (the caller's contract).
        (self.state.get(), unsafe { (*self.value.get()).take() })
    }
}

/// A channel's wait queue of one direction: a doubly linked FIFO of
/// entries (Go's `waitq` of sudogs). Only touched under the channel's lock.
///
/// Must hold: `head`..`tail` through `next` (and back through `prev`) are
/// exactly the entries with `queued` set on this queue, each live (its
/// frame not left, see Entry's invariants).
pub(crate) struct WaitQueue<T> {
    head: Option<NonNull<Entry<T>>>,
    tail: Option<NonNull<Entry<T>>>,
}

impl<T> WaitQueue<T> {
    pub(crate) const fn new() -> Self {
        WaitQueue {
            head: None,
            tail: None,
        }
    }

    /// Links `e` at the tail with the waiter's one-shot.
    ///
    /// # Safety
    /// `e` is live, not queued, and stays where it is until it is out of
    /// the queue again (Entry's invariants).
    pub(crate) unsafe fn push(&mut self, e: NonNull<Entry<T>>, signal: Signal, owner: usize) {
        // SAFETY: live (the caller's contract); queue links are only
        // touched under the channel's lock, which we hold (&mut self).
        let er = unsafe { e.as_ref() };
        // An entry that is not queued holds no signal (Entry's
        // invariants): nothing to drop.
        let none = er.signal.replace(Some(signal));
        debug_assert!(none.is_none());
        std::mem::forget(none);
        er.owner.set(owner);
        er.queued.set(true);
        er.prev.set(self.tail);
        er.next.set(None);
        match self.tail {
            // SAFETY: queued entries are live (WaitQueue's invariants).
            Some(t) => unsafe { t.as_ref() }.next.set(Some(e)),
            None => self.head = Some(e),
        }
        self.tail = Some(e);
    }

    /// Unlinks the head and takes its one-shot out. The entry stays the
    /// popper's (Entry's invariants) until its wake wins.
    pub(crate) fn pop(&mut self) -> Option<(NonNull<Entry<T>>, Signal)> {
        let e = self.head?;
        // SAFETY: queued entries are live, and ours under the lock.
        let signal = unsafe { self.unlink(e) };
        Some((e, signal))
    }

    /// Unlinks `e` if it is still queued (here: an entry is only ever in
    /// its own channel's queue of its direction), returning its one-shot
    /// (for the caller to drop after unlocking).
    ///
    /// # Safety
    /// `e` is live, and if queued, queued in this queue.
    pub(crate) unsafe fn remove(&mut self, e: NonNull<Entry<T>>) -> Option<Signal> {
        // SAFETY: live (the caller's contract).
        if !unsafe { e.as_ref() }.queued.get() {
            return None;
        }
        // SAFETY: queued here (the caller's contract).
        Some(unsafe { self.unlink(e) })
    }

    /// # Safety
    /// `e` is queued in this queue.
    unsafe fn unlink(&mut self, e: NonNull<Entry<T>>) -> Signal {
        // SAFETY: queued entries and their neighbours are live.
        let er = unsafe { e.as_ref() };
        let (prev, next) = (er.prev.take(), er.next.take());
        match prev {
            // SAFETY: as above.
            Some(p) => unsafe { p.as_ref() }.next.set(next),
            None => self.head = next,
        }
        match next {
            // SAFETY: as above.
            Some(n) => unsafe { n.as_ref() }.prev.set(prev),
            None => self.tail = prev,
        }
        er.queued.set(false);
        er.signal.take().expect("a queued entry holds its signal")
    }

    /// Whether some queued waiter could complete an operation now: still
    /// waiting, and not an arm of the select `token` (0: none).
    pub(crate) fn has_partner_for(&self, token: usize) -> bool {
        let mut cur = self.head;
        while let Some(e) = cur {
            // SAFETY: queued entries are live; we hold the lock.
            let er = unsafe { e.as_ref() };
            let signal = er.signal.take();
            let partner = (token == 0 || er.owner.get() != token)
                && signal.as_ref().is_some_and(Signal::is_waiting);
            er.signal.set(signal);
            if partner {
                return true;
            }
            cur = er.next.get();
        }
        false
    }
}

/// Receiver side: the value goes into the popped entry, then the wake.
/// Gives the value back if the wake lost (the waiter timed out, or its
/// select was completed by another channel).
pub(crate) fn deliver<T>(e: NonNull<Entry<T>>, signal: &Signal, v: T) -> Result<(), T> {
    let e = e.as_ptr();
    // SAFETY: we hold the channel lock and popped this entry: it is ours
    // until the wake below wins (Entry's invariants).
    unsafe {
        *(*e).value.get() = Some(v);
        (*e).state.set(State::Done);
    }
    if signal.wake() {
        return Ok(());
    }
    // SAFETY: the wake lost: still ours.
    unsafe {
        (*e).state.set(State::Pending);
        Err((*(*e).value.get())
            .take()
            .expect("an undone delivery keeps its value"))
    }
}

/// Sender side: the value comes out of the popped entry before the wake,
/// and goes back in if the wake lost.
pub(crate) fn take<T>(e: NonNull<Entry<T>>, signal: &Signal) -> Option<T> {
    let e = e.as_ptr();
    // SAFETY: as in deliver.
    let v = unsafe {
        (*e).state.set(State::Done);
        (*(*e).value.get())
            .take()
            .expect("a parked sender's entry holds its value")
    };
    if signal.wake() {
        return Some(v);
    }
    // SAFETY: the wake lost: still ours.
    unsafe {
        *(*e).value.get() = Some(v);
        (*e).state.set(State::Pending);
    }
    None
}

/// The other side is gone: wake with Closed (undone if the wake lost).
pub(crate) fn close<T>(e: NonNull<Entry<T>>, signal: &Signal) {
    let e = e.as_ptr();
    // SAFETY: as in deliver.
    unsafe { (*e).state.set(State::Closed) };
    if !signal.wake() {
        // SAFETY: the wake lost: still ours.
        unsafe { (*e).state.set(State::Pending) };
    }
}

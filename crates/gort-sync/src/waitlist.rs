//! A FIFO of parked waiters identified by tickets, for the structures whose
//! waiters carry no value (the Mutex's semaphore, WaitGroup). Always used
//! under the owning structure's lock.

use crate::park::Signal;
use std::collections::VecDeque;

/// Must hold: tickets are unique within one list (a counter); a waiter is
/// in the list at most once, from its registration until someone pops it
/// (to wake it) or its guard removes it.
pub(crate) struct WaitList {
    q: VecDeque<(u64, Signal)>,
    next: u64,
}

impl WaitList {
    pub(crate) const fn new() -> Self {
        WaitList {
            q: VecDeque::new(),
            next: 0,
        }
    }

    /// Queues a waker at the tail (or the head, for Go's LIFO requeue of a
    /// waiter that already waited); returns its ticket.
    pub(crate) fn push(&mut self, waker: &Signal, front: bool) -> u64 {
        self.next += 1;
        let t = self.next;
        if front {
            self.q.push_front((t, waker.clone()));
        } else {
            self.q.push_back((t, waker.clone()));
        }
        t
    }

    pub(crate) fn pop(&mut self) -> Option<Signal> {
        self.q.pop_front().map(|(_, w)| w)
    }

    /// Removes the waiter with this ticket; false if it is no longer here
    /// (someone popped it to wake it).
    pub(crate) fn remove(&mut self, ticket: u64) -> bool {
        match self.q.iter().position(|(t, _)| *t == ticket) {
            Some(i) => {
                self.q.remove(i);
                true
            }
            None => false,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    pub(crate) fn take_all(&mut self) -> VecDeque<(u64, Signal)> {
        std::mem::take(&mut self.q)
    }
}

//! Go's channels: [`bounded`] (capacity 0 is a rendezvous) and
//! [`unbounded`], multi-producer multi-consumer, for goroutines and plain
//! threads alike, with crossbeam-channel's API and error types; and
//! [`never()`], a receiver that never receives (Go's nil channel in a
//! select).
//!
//! This room is the public ends: [`Sender`] and [`Receiver`] are counted
//! handles to one channel core (hchan.rs: the lock, the buffer, the wait
//! queues and the operations). Dropping the last sender is Go's `close`;
//! dropping the last receiver, which Go has no word for, makes sends fail
//! and give their value back. The errors are in errors.rs and re-exported
//! here.
//!
//! Where gort follows Go rather than crossbeam-channel: a channel of
//! capacity 0 is Go's unbuffered channel (crossbeam's zero-capacity
//! channel is the same rendezvous); a blocked send or receive runs the
//! partner next on the same P (Go's `runnext`); and in `select!`, the
//! value of every `send` arm is evaluated when the select starts, as Go
//! evaluates its send operands on entering `select` (crossbeam evaluates
//! it only for the arm chosen).

pub use crate::errors::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use crate::hchan::Chan;
use std::fmt;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The sending end of a channel. Clone it for more senders; when the last
/// one is dropped, receivers drain what is buffered and then get
/// [`RecvError`].
pub struct Sender<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

/// The receiving end of a channel. Clone it for more receivers; when the
/// last one is dropped, sends fail and give their value back, and buffered
/// values are dropped.
pub struct Receiver<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

/// A channel of capacity `cap`: sends block while `cap` values are
/// buffered. `cap == 0` makes a rendezvous channel (Go's unbuffered
/// channel): a send completes only when a receiver takes the value.
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    new(Some(cap))
}

/// A channel whose sends never block.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    new(None)
}

/// A receiver that never receives: Go's nil channel, for a `select!` arm
/// that is switched off (`recv(if on { &rx } else { &never })`). It has
/// no sender, yet never counts as disconnected; a plain `recv` on it
/// blocks for ever (for a goroutine the runtime then reports a deadlock
/// if nothing else can run), and `recv_timeout` times out.
pub fn never<T>() -> Receiver<T> {
    // No `Sender` exists, so no drop ever sets `tx_gone`: the channel never
    // disconnects. Its count says one phantom sender, so that a count of
    // zero still means "disconnected" (Chan's invariants).
    Receiver {
        chan: Arc::new(Chan::new(Some(0), 1)),
    }
}

fn new<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(cap, 1));
    (Sender { chan: chan.clone() }, Receiver { chan })
}

fn deadline_after(d: Duration) -> Option<Instant> {
    // An overflowing timeout is no timeout.
    Instant::now().checked_add(d)
}

impl<T> Sender<T> {
    /// Sends `v`, blocking (parking the goroutine) while the channel is full
    /// or, for a rendezvous channel, until a receiver takes it. Fails only
    /// when every receiver is gone, returning `v`.
    pub fn send(&self, v: T) -> Result<(), SendError<T>> {
        self.chan.send(v, None).map_err(|e| match e {
            SendTimeoutError::Disconnected(v) | SendTimeoutError::Timeout(v) => SendError(v),
        })
    }

    /// Sends `v` if that can be done without blocking.
    pub fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        gort_sched::park::preempt_point();
        self.try_send_now(v)
    }

    /// `try_send` that is not a preemption point: for the runtime's own
    /// code that holds a lock others may wait on outside a goroutine (a
    /// timer's run lock, which the scheduler takes on g0 and sysmon).
    pub(crate) fn try_send_now(&self, v: T) -> Result<(), TrySendError<T>> {
        let mut g = self.chan.lock();
        let r = self.chan.try_send_locked(&mut g, v);
        drop(g);
        r
    }

    /// Sends `v`, blocking at most `timeout`.
    pub fn send_timeout(&self, v: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(v, deadline_after(timeout))
    }

    /// Sends `v`, blocking until `deadline` at most.
    pub fn send_deadline(&self, v: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(v, Some(deadline))
    }

    /// Values buffered now.
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether nothing is buffered now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the buffer has no room now: a send would block unless a
    /// receiver is waiting. Always true for a rendezvous channel, never
    /// for an unbounded one.
    pub fn is_full(&self) -> bool {
        self.chan.is_full()
    }

    /// The capacity; None for an unbounded channel.
    pub fn capacity(&self) -> Option<usize> {
        self.chan.cap
    }

    /// Whether both ends belong to the same channel.
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Receiver<T> {
    /// Receives a value, blocking (parking the goroutine) while the channel
    /// is empty. Fails when it is empty and every sender is gone.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.chan.recv(None).map_err(|_| RecvError)
    }

    /// Receives a value if one is there now (buffered, or offered by a
    /// parked sender).
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        gort_sched::park::preempt_point();
        self.chan.poll_timer();
        self.try_recv_now()
    }

    /// `try_recv` that is not a preemption point (see `try_send_now`) and
    /// does not poll a timer channel's timer (it runs under that timer's
    /// lock, in time.rs's drain).
    pub(crate) fn try_recv_now(&self) -> Result<T, TryRecvError> {
        let mut g = self.chan.lock();
        let r = self.chan.try_recv_locked(&mut g);
        drop(g);
        r
    }

    /// Receives a value, blocking at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.chan.recv(deadline_after(timeout))
    }

    /// Receives a value, blocking until `deadline` at most.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.chan.recv(Some(deadline))
    }

    /// A blocking iterator: [`recv`](Self::recv) until the channel is empty
    /// and disconnected.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// A non-blocking iterator: [`try_recv`](Self::try_recv) until nothing
    /// is there.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// Values buffered now (for a timer's channel, counting the value of
    /// a timer that expired, as Go's `len` does).
    pub fn len(&self) -> usize {
        self.chan.poll_timer();
        self.chan.len()
    }

    /// Whether nothing is buffered now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the buffer has no room now: a send would block unless a
    /// receiver is waiting. Always true for a rendezvous channel, never
    /// for an unbounded one.
    pub fn is_full(&self) -> bool {
        self.chan.poll_timer();
        self.chan.is_full()
    }

    /// The capacity; None for an unbounded channel.
    pub fn capacity(&self) -> Option<usize> {
        self.chan.cap
    }

    /// Whether both ends belong to the same channel.
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.receivers.fetch_add(1, Ordering::Relaxed);
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.chan.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.chan.disconnect_senders();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.chan.receivers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.chan.disconnect_receivers();
        }
    }
}

// A panic never leaves a channel half-changed: no user code runs under its
// lock (values are dropped after unlocking), so a handle observed after a
// caught panic sees a consistent channel, as crossbeam-channel's.
impl<T> UnwindSafe for Sender<T> {}
impl<T> RefUnwindSafe for Sender<T> {}
impl<T> UnwindSafe for Receiver<T> {}
impl<T> RefUnwindSafe for Receiver<T> {}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sender { .. }")
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver { .. }")
    }
}

/// Blocking iterator over a [`Receiver`]; see [`Receiver::iter`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// Non-blocking iterator over a [`Receiver`]; see [`Receiver::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

/// Owning blocking iterator over a [`Receiver`].
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

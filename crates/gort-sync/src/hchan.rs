//! The channel core (Go's `hchan`, runtime/chan.go's name for a channel):
//! a lock around a buffer and two wait queues, and the operations under
//! it: send, receive, park, disconnect.
//!
//! A sender that finds a parked receiver hands the value straight into
//! the receiver's entry and wakes it (it runs next on the sender's P, as
//! Go's `send` does through `goready`); a receiver that finds a parked
//! sender takes the value from the sender's entry, and if the buffer was
//! full, moves that sender's value in behind the one it took (Go's order:
//! FIFO across the buffer and the parked senders). Only when nothing can
//! go does an operation park, and it holds the lock from its failed
//! attempt until its entry is queued (Go's `gopark(chanparkcommit)`), so no
//! wakeup can be missed and nothing is re-checked after parking.
//!
//! Disconnection is Go's `close`, split by side: the last sender's drop
//! wakes every parked receiver Closed (they drain the buffer first: a
//! receiver parks only while it is empty); the last receiver's drop wakes
//! parked senders Closed (they get their value back) and drops the buffer.
//!
//! Rejected: std's Mutex for the lock (lock.rs says why), and a lock-free
//! channel (crossbeam's): Go's lock is held for a few dozen instructions
//! and makes the direct handoff and the select protocol simple to prove.
//!
//! Lock order: a channel's lock is never held with another lock of this
//! crate or of a second channel (a select takes one channel's lock at a
//! time), and no user code runs under it.
//!
//! This room uses the buffer, the wait queues, the errors, the lock and
//! the one-shot; the public ends (chan.rs) and select.rs use it.

use crate::buffer::Buffer;
use crate::errors::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};
use crate::lock::{SpinGuard, SpinLock};
use crate::park::{wait, Signal};
use crate::waitq::{close, deliver, take, Entry, State, WaitQueue};
use gort_sched::park::{WaitReason, Woke};
use std::ptr::NonNull;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

/// Must hold, under `Chan::inner`'s lock:
/// - `recvq` non-empty (of live waiters) only while `buf` is empty, and
///   `sendq` only while `buf` is full; stale waiters (their wake already
///   lost) may linger in either until someone pops or removes them.
/// - `buf.len() <= cap` for a bounded channel.
/// - after `tx_gone`, nothing enters `buf` or `sendq`; after `rx_gone`,
///   `buf` stays empty and nothing enters `recvq`.
pub(crate) struct Inner<T> {
    buf: Buffer<T>,
    recvq: WaitQueue<T>,
    sendq: WaitQueue<T>,
    tx_gone: bool,
    rx_gone: bool,
}

// SAFETY: the queues' raw pointers lead to entries that only holders of
// this channel's lock touch (Entry's invariants); through them values of
// `T` move between threads: hence `T: Send`.
unsafe impl<T: Send> Send for Inner<T> {}

/// Must hold: `senders` and `receivers` count the live `Sender`s and
/// `Receiver`s (plus one phantom sender for `never()`'s channel and for a
/// timer's channel, which no `Sender` can reach); `tx_gone` / `rx_gone` are set by whoever drops a
/// count to zero.
pub(crate) struct Chan<T> {
    inner: SpinLock<Inner<T>>,
    /// None: unbounded.
    pub(crate) cap: Option<usize>,
    pub(crate) senders: AtomicUsize,
    pub(crate) receivers: AtomicUsize,
    /// A timer channel's timer (time.rs; Go's `hchan.timer`), which sends
    /// on this channel through a pointer to it: the channel stops it
    /// before it is freed. Receives poll it, and block it while parked.
    pub(crate) timer: Option<gort_sched::park::Timer>,
}

/// Which queue a registration is in.
#[derive(Clone, Copy)]
pub(crate) enum Dir {
    Send,
    Recv,
}

impl<T> Chan<T> {
    /// A channel of capacity `cap` (None: unbounded) with this many
    /// senders and one receiver.
    pub(crate) fn new(cap: Option<usize>, senders: usize) -> Self {
        Chan {
            inner: SpinLock::new(Inner {
                buf: Buffer::new(cap),
                recvq: WaitQueue::new(),
                sendq: WaitQueue::new(),
                tx_gone: false,
                rx_gone: false,
            }),
            cap,
            senders: AtomicUsize::new(senders),
            receivers: AtomicUsize::new(1),
            timer: None,
        }
    }

    /// Values buffered now.
    pub(crate) fn len(&self) -> usize {
        self.lock().buf.len()
    }

    /// A timer channel's due value goes in now (`Timer::poll`): called by
    /// every receive before it looks, never under the channel's lock.
    #[inline]
    pub(crate) fn poll_timer(&self) {
        if let Some(t) = &self.timer {
            t.poll();
        }
    }

    /// Whether a send would find no room in the buffer now (always, for a
    /// rendezvous channel; never, for an unbounded one).
    pub(crate) fn is_full(&self) -> bool {
        self.cap.is_some_and(|c| self.len() >= c)
    }

    /// No user code runs under the lock (values are dropped after it is
    /// released), so nothing can panic half-way through a change: the
    /// lock needs no poisoning.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, Inner<T>> {
        self.inner.lock()
    }

    fn has_room(&self, g: &Inner<T>) -> bool {
        self.cap.is_none_or(|c| g.buf.len() < c)
    }

    pub(crate) fn try_send_locked(
        &self,
        g: &mut Inner<T>,
        mut v: T,
    ) -> Result<(), TrySendError<T>> {
        if g.rx_gone {
            return Err(TrySendError::Disconnected(v));
        }
        while let Some((e, signal)) = g.recvq.pop() {
            match deliver(e, &signal, v) {
                Ok(()) => return Ok(()),
                Err(back) => v = back,
            }
        }
        if self.has_room(g) {
            g.buf.push_back(v);
            return Ok(());
        }
        Err(TrySendError::Full(v))
    }

    // Always inlined: a receive's fast path (`recv`) and its cold timer
    // path both call it, and an outlined call costs the hot one.
    #[inline(always)]
    pub(crate) fn try_recv_locked(&self, g: &mut Inner<T>) -> Result<T, TryRecvError> {
        if let Some(v) = g.buf.pop_front() {
            // The buffer had been full: move a parked sender's value in
            // behind (Go's recv on a full buffered channel).
            while let Some((e, signal)) = g.sendq.pop() {
                if let Some(sv) = take(e, &signal) {
                    g.buf.push_back(sv);
                    break;
                }
            }
            return Ok(v);
        }
        while let Some((e, signal)) = g.sendq.pop() {
            if let Some(v) = take(e, &signal) {
                return Ok(v);
            }
        }
        if g.tx_gone {
            Err(TryRecvError::Disconnected)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Whether a send could complete now (or fail: disconnected), not
    /// counting waiters of the select `token`.
    pub(crate) fn send_ready(&self, g: &Inner<T>, token: usize) -> bool {
        g.rx_gone || self.has_room(g) || g.recvq.has_partner_for(token)
    }

    /// Whether a receive could complete now (or fail: disconnected).
    pub(crate) fn recv_ready(&self, g: &Inner<T>, token: usize) -> bool {
        !g.buf.is_empty() || g.tx_gone || g.sendq.has_partner_for(token)
    }

    /// Queues `entry` with the waiter's one-shot.
    ///
    /// # Safety
    /// `entry` must be live and not queued, stay where it is, and be
    /// touched by nobody but lock holders, until it is out of the queue
    /// again: popped by a lock holder whose wake won, or taken out by
    /// `dequeue` (Entry's invariants).
    pub(crate) unsafe fn enqueue(
        g: &mut Inner<T>,
        dir: Dir,
        waker: &Signal,
        entry: NonNull<Entry<T>>,
        owner: usize,
    ) {
        let q = match dir {
            Dir::Send => &mut g.sendq,
            Dir::Recv => &mut g.recvq,
        };
        // SAFETY: the caller's contract.
        unsafe { q.push(entry, waker.clone(), owner) };
    }

    /// Takes `entry` out of its queue if it is still there. The removed
    /// waiter's one-shot is returned so that the caller drops it after
    /// unlocking.
    ///
    /// # Safety
    /// `entry` is live, and was queued (if at all) by `enqueue` on this
    /// channel in direction `dir`.
    pub(crate) unsafe fn dequeue(
        g: &mut Inner<T>,
        dir: Dir,
        entry: NonNull<Entry<T>>,
    ) -> Option<Signal> {
        let q = match dir {
            Dir::Send => &mut g.sendq,
            Dir::Recv => &mut g.recvq,
        };
        // SAFETY: the caller's contract.
        unsafe { q.remove(entry) }
    }
}

/// A registration in a wait queue, removed on drop unless disarmed (after a
/// wake popped it). Keeps queues free of entries of goroutines unwound at
/// shutdown.
struct Registered<'a, T> {
    chan: &'a Chan<T>,
    entry: NonNull<Entry<T>>,
    dir: Dir,
    armed: bool,
}

impl<T> Drop for Chan<T> {
    fn drop(&mut self) {
        // Before any other field goes: a firing in progress holds the
        // timer's run lock and uses this channel; once the timer's drop
        // returns, none runs or will (its Drop stops it, unless idle).
        drop(self.timer.take());
    }
}

impl<T> Drop for Registered<'_, T> {
    fn drop(&mut self) {
        if self.armed {
            let mut g = self.chan.lock();
            // SAFETY: the entry is live while registered (it outlives
            // `self`), and was queued by `park` on this channel and `dir`.
            let removed = unsafe { Chan::dequeue(&mut g, self.dir, self.entry) };
            drop(g);
            drop(removed);
        }
    }
}

impl<T> Chan<T> {
    // The preemption point of a blocking operation is where it completes
    // without parking (a park is a switch already): a goroutine that only
    // ever finds its partner waiting still yields when sysmon asks.
    pub(crate) fn send(&self, v: T, deadline: Option<Instant>) -> Result<(), SendTimeoutError<T>> {
        let mut g = self.lock();
        let v = match self.try_send_locked(&mut g, v) {
            Ok(()) => {
                drop(g);
                gort_sched::park::preempt_point();
                return Ok(());
            }
            Err(TrySendError::Disconnected(v)) => return Err(SendTimeoutError::Disconnected(v)),
            Err(TrySendError::Full(v)) => v,
        };
        if deadline.is_some_and(|d| Instant::now() >= d) {
            drop(g);
            return Err(SendTimeoutError::Timeout(v));
        }
        let entry = Entry::new(Some(v));
        let (state, value) = self.park(g, Dir::Send, WaitReason::ChanSend, deadline, &entry);
        match (state, value) {
            (State::Done, None) => Ok(()),
            (State::Closed, Some(v)) => Err(SendTimeoutError::Disconnected(v)),
            (State::Pending, Some(v)) => Err(SendTimeoutError::Timeout(v)),
            (s, v) => unreachable!("send ended {s:?} with value {}", v.is_some()),
        }
    }

    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        self.poll_timer();
        let mut g = self.lock();
        match self.try_recv_locked(&mut g) {
            Ok(v) => {
                drop(g);
                gort_sched::park::preempt_point();
                return Ok(v);
            }
            Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => {}
        }
        if self.timer.is_some() {
            drop(g);
            return self.recv_timer(deadline);
        }
        self.recv_park(g, deadline)
    }

    /// A receive that must wait on a timer's channel: the timer is on its
    /// heap while we wait (and checkdead sees it). Blocking it takes the
    /// timer's lock, which is never taken under a channel's: so the lock
    /// is dropped, and the receive tried again (the block may have fired
    /// a due timer).
    #[cold]
    #[inline(never)]
    fn recv_timer(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let _blocked = self.timer.as_ref().map(|t| t.block());
        let mut g = self.lock();
        match self.try_recv_locked(&mut g) {
            Ok(v) => {
                drop(g);
                gort_sched::park::preempt_point();
                Ok(v)
            }
            Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => self.recv_park(g, deadline),
        }
    }

    /// The end of a receive that found nothing: time out, or park.
    #[inline(always)]
    fn recv_park(
        &self,
        g: SpinGuard<'_, Inner<T>>,
        deadline: Option<Instant>,
    ) -> Result<T, RecvTimeoutError> {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(RecvTimeoutError::Timeout);
        }
        let entry = Entry::new(None);
        match self.park(g, Dir::Recv, WaitReason::ChanReceive, deadline, &entry) {
            (State::Done, Some(v)) => Ok(v),
            (State::Closed, None) => Err(RecvTimeoutError::Disconnected),
            (State::Pending, None) => Err(RecvTimeoutError::Timeout),
            (s, v) => unreachable!("receive ended {s:?} with value {}", v.is_some()),
        }
    }

    /// Parks on one queue with `entry`, holding the lock `g` from the failed
    /// attempt until the entry is queued (on the scheduler's stack, once
    /// this goroutine is suspended), so no wakeup can be missed. Returns the
    /// entry's final state and value. Inlined into `send` and `recv`, so
    /// the wait reason is a constant (passed through memory, its 16 bytes
    /// were reloaded right after being stored: a store-forwarding stall).
    #[inline(always)]
    fn park(
        &self,
        mut g: SpinGuard<'_, Inner<T>>,
        dir: Dir,
        reason: WaitReason,
        deadline: Option<Instant>,
        entry: &Entry<T>,
    ) -> (State, Option<T>) {
        let ptr = NonNull::from(entry);
        let mut reg = Registered {
            chan: self,
            entry: ptr,
            dir,
            armed: true,
        };
        let woke = wait(reason, deadline, move |waker| {
            // SAFETY: the entry is in this frame, which `reg` keeps until
            // the entry is out of the queue again (its Drop dequeues it
            // under the lock, unless a winning wake popped it).
            unsafe { Chan::enqueue(&mut g, dir, waker, ptr, 0) };
            drop(g);
            true
        });
        if woke == Woke::Woken {
            // The winner of the wake popped the entry and completed it (the
            // only other contender, the deadline, lost).
            reg.armed = false;
        }
        // Timed out: take the entry out under the lock. Anyone who popped it
        // first has put it back as it was (their wake lost).
        drop(reg);
        // SAFETY: out of the queue (popped by the winner, or dequeued
        // above): nobody else reaches the entry any more.
        unsafe { entry.finish() }
    }

    pub(crate) fn disconnect_senders(&self) {
        let mut g = self.lock();
        g.tx_gone = true;
        let mut signals = Vec::new();
        while let Some((e, signal)) = g.recvq.pop() {
            close(e, &signal);
            signals.push(signal);
        }
        drop(g);
        drop(signals);
    }

    pub(crate) fn disconnect_receivers(&self) {
        let mut g = self.lock();
        g.rx_gone = true;
        let mut signals = Vec::new();
        while let Some((e, signal)) = g.sendq.pop() {
            close(e, &signal);
            signals.push(signal);
        }
        // Nobody can receive them any more: drop them now (after unlocking:
        // a value's Drop may use channels), as crossbeam does.
        let buf = g.buf.take_all();
        drop(g);
        drop(signals);
        drop(buf);
    }
}

//! Go's channels: [`bounded`] (capacity 0 is a rendezvous) and
//! [`unbounded`], multi-producer multi-consumer, for goroutines and plain
//! threads alike. The error types follow crossbeam-channel's.
//!
//! A channel is a lock around a buffer and two wait queues (Go's `hchan`
//! with `recvq` and `sendq`). A sender that finds a parked receiver hands
//! the value straight into the receiver's entry and wakes it (it runs next
//! on the sender's P); a receiver that finds a parked sender takes the
//! value from the sender's entry. See `docs/sync.md` for the protocol
//! between the one-shot waker and the entries that makes sure no value
//! is lost to a waiter whose timeout fired.

use crate::lock::{SpinGuard, SpinLock};
use crate::park::{wait, Signal};
use gort_sched::{WaitReason, Woke};
use std::cell::{Cell, UnsafeCell};
use std::collections::VecDeque;
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---- errors ------------------------------------------------------------------

/// [`Sender::send`] failed because every receiver is gone; the value is
/// returned.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

/// [`Sender::try_send`] failed; the value is returned.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The buffer is full (or, for a rendezvous channel, no receiver is
    /// waiting).
    Full(T),
    /// Every receiver is gone.
    Disconnected(T),
}

/// [`Sender::send_timeout`] failed; the value is returned.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<T> {
    /// The deadline passed before the value could be sent.
    Timeout(T),
    /// Every receiver is gone.
    Disconnected(T),
}

/// [`Receiver::recv`] failed: the channel is empty and every sender is
/// gone.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct RecvError;

/// [`Receiver::try_recv`] failed.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum TryRecvError {
    /// Nothing to receive now.
    Empty,
    /// The channel is empty and every sender is gone.
    Disconnected,
}

/// [`Receiver::recv_timeout`] failed.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum RecvTimeoutError {
    /// The deadline passed with nothing received.
    Timeout,
    /// The channel is empty and every sender is gone.
    Disconnected,
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError { .. }")
    }
}
impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a disconnected channel")
    }
}
impl<T: Send> std::error::Error for SendError<T> {}
impl<T> SendError<T> {
    /// The value that could not be sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}
impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full channel"),
            TrySendError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
        }
    }
}
impl<T: Send> std::error::Error for TrySendError<T> {}
impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        TrySendError::Disconnected(e.0)
    }
}
impl<T> TrySendError<T> {
    /// The value that could not be sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Disconnected(v) => v,
        }
    }
    /// Whether the send failed because the channel was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
    /// Whether the send failed because every receiver is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TrySendError::Disconnected(_))
    }
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            SendTimeoutError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}
impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("timed out waiting on send operation"),
            SendTimeoutError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
        }
    }
}
impl<T: Send> std::error::Error for SendTimeoutError<T> {}
impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(e: SendError<T>) -> Self {
        SendTimeoutError::Disconnected(e.0)
    }
}
impl<T> SendTimeoutError<T> {
    /// The value that could not be sent.
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(v) | SendTimeoutError::Disconnected(v) => v,
        }
    }
    /// Whether the send timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }
    /// Whether the send failed because every receiver is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendTimeoutError::Disconnected(_))
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("receiving on an empty and disconnected channel")
    }
}
impl std::error::Error for RecvError {}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Disconnected => {
                f.write_str("receiving on an empty and disconnected channel")
            }
        }
    }
}
impl std::error::Error for TryRecvError {}
impl From<RecvError> for TryRecvError {
    fn from(_: RecvError) -> Self {
        TryRecvError::Disconnected
    }
}
impl TryRecvError {
    /// Whether nothing was there to receive.
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }
    /// Whether the channel is empty and every sender is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TryRecvError::Disconnected)
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting on receive operation"),
            RecvTimeoutError::Disconnected => {
                f.write_str("receiving on an empty and disconnected channel")
            }
        }
    }
}
impl std::error::Error for RecvTimeoutError {}
impl From<RecvError> for RecvTimeoutError {
    fn from(_: RecvError) -> Self {
        RecvTimeoutError::Disconnected
    }
}
impl RecvTimeoutError {
    /// Whether the receive timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }
    /// Whether the channel is empty and every sender is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvTimeoutError::Disconnected)
    }
}

// ---- entries: one parked operation --------------------------------------------

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
    const fn new() -> Self {
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
    unsafe fn push(&mut self, e: NonNull<Entry<T>>, signal: Signal, owner: usize) {
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
    fn pop(&mut self) -> Option<(NonNull<Entry<T>>, Signal)> {
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
    unsafe fn remove(&mut self, e: NonNull<Entry<T>>) -> Option<Signal> {
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
    fn has_partner_for(&self, token: usize) -> bool {
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
fn deliver<T>(e: NonNull<Entry<T>>, signal: &Signal, v: T) -> Result<(), T> {
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
fn take<T>(e: NonNull<Entry<T>>, signal: &Signal) -> Option<T> {
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
fn close<T>(e: NonNull<Entry<T>>, signal: &Signal) {
    let e = e.as_ptr();
    // SAFETY: as in deliver.
    unsafe { (*e).state.set(State::Closed) };
    if !signal.wake() {
        // SAFETY: the wake lost: still ours.
        unsafe { (*e).state.set(State::Pending) };
    }
}

// ---- the channel ----------------------------------------------------------------

/// Must hold, under `Chan::inner`'s lock:
/// - `recvq` non-empty (of live waiters) only while `buf` is empty, and
///   `sendq` only while `buf` is full; stale waiters (their wake already
///   lost) may linger in either until someone pops or removes them.
/// - `buf.len() <= cap` for a bounded channel.
/// - after `tx_gone`, nothing enters `buf` or `sendq`; after `rx_gone`,
///   `buf` stays empty and nothing enters `recvq`.
pub(crate) struct Inner<T> {
    buf: VecDeque<T>,
    recvq: WaitQueue<T>,
    sendq: WaitQueue<T>,
    tx_gone: bool,
    rx_gone: bool,
}

// SAFETY: the queues' raw pointers lead to entries that only holders of
// this channel's lock touch (Entry's invariants); through them values of
// `T` move between threads: hence `T: Send`.
unsafe impl<T: Send> Send for Inner<T> {}

pub(crate) struct Chan<T> {
    inner: SpinLock<Inner<T>>,
    /// None: unbounded.
    cap: Option<usize>,
    senders: AtomicUsize,
    receivers: AtomicUsize,
}

/// Which queue a registration is in.
#[derive(Clone, Copy)]
pub(crate) enum Dir {
    Send,
    Recv,
}

impl<T> Chan<T> {
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
    fn send(&self, v: T, deadline: Option<Instant>) -> Result<(), SendTimeoutError<T>> {
        let mut g = self.lock();
        let v = match self.try_send_locked(&mut g, v) {
            Ok(()) => return Ok(()),
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

    fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let mut g = self.lock();
        match self.try_recv_locked(&mut g) {
            Ok(v) => return Ok(v),
            Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => {}
        }
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

    fn disconnect_senders(&self) {
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

    fn disconnect_receivers(&self) {
        let mut g = self.lock();
        g.rx_gone = true;
        let mut signals = Vec::new();
        while let Some((e, signal)) = g.sendq.pop() {
            close(e, &signal);
            signals.push(signal);
        }
        // Nobody can receive them any more: drop them now (after unlocking:
        // a value's Drop may use channels), as crossbeam does.
        let buf = std::mem::take(&mut g.buf);
        drop(g);
        drop(signals);
        drop(buf);
    }
}

// ---- public ends -------------------------------------------------------------------

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

fn new<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        inner: SpinLock::new(Inner {
            buf: VecDeque::with_capacity(cap.unwrap_or(0).min(1024)),
            recvq: WaitQueue::new(),
            sendq: WaitQueue::new(),
            tx_gone: false,
            rx_gone: false,
        }),
        cap,
        senders: AtomicUsize::new(1),
        receivers: AtomicUsize::new(1),
    });
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
        self.chan.lock().buf.len()
    }

    /// Whether nothing is buffered now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    /// Values buffered now.
    pub fn len(&self) -> usize {
        self.chan.lock().buf.len()
    }

    /// Whether nothing is buffered now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

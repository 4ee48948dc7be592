//! `select!`: wait on several channel operations, complete exactly one.
//!
//! The algorithm (docs/sync.md), a cousin of Go's `selectgo` and
//! crossbeam-channel's: try every arm once in a fresh uniformly random
//! order and complete the first that can go (so each ready arm is chosen
//! with equal probability); else take the `default` arm, or give up at the
//! deadline; else park with one one-shot waker registered on every
//! channel, in that same random order, each registration made under that
//! channel's lock after re-checking it. The one-shot waker lets exactly
//! one channel complete an arm; on waking, the select takes its entries
//! out of every queue and finds the completed one. If a channel was found
//! ready while registering, the select wakes itself and starts over.
//!
//! Why the registration order is random too: a wait queue is FIFO, so of
//! two arms waiting on one channel, a partner completes the one registered
//! first. Registering in source order made the first-written arm win
//! every time a select blocked (Go's `TestPseudoRandomSend` saw it 100
//! times out of 100). Go enqueues in an order derived from its random
//! poll order (it locks every channel at once, in address order, to do
//! so); here one channel's lock is held at a time, so any order is
//! deadlock-free and the shuffled poll order is used as it is.
//! `select_biased!` skips both shuffles: arms are tried and registered in
//! the order written.
//!
//! Rejected: locking every channel at once, as Go does. With a one-shot
//! waker per select and a re-check under each lock, registering channel
//! by channel never misses a wakeup (once registered on a channel, any
//! later readiness there finds the entry), and no channel lock is ever
//! held with another.
//!
//! This room uses the public ends (for their core), the channel core, the
//! wait queues, the errors and the one-shot; nothing uses it but the
//! macros' expansions (through `__private`).

use crate::chan::{Receiver, Sender};
use crate::errors::{RecvError, SendError, TryRecvError, TrySendError};
use crate::hchan::{Chan, Dir};
use crate::park::{wait_deferred, Signal};
use crate::waitq::{Entry, State};
use gort_sched::park::{WaitReason, Woke};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// One arm of a select, type-erased (the macro's expansion builds them).
pub trait Arm {
    /// Completes the operation if it can go without blocking (which
    /// includes failing because the other side is gone).
    fn try_now(&mut self) -> bool;
    /// Queues the select's waker on the channel, unless the operation can
    /// go now (then returns false and queues nothing).
    fn register(&mut self, waker: &Signal, token: usize) -> bool;
    /// Takes the arm's entry out of the queue; true if the channel completed
    /// the operation through it.
    fn unregister(&mut self) -> bool;
    /// The select is about to park: a receive from a timer's channel puts
    /// the timer on its heap (`gort_sched::park::Timer::block`) until
    /// [`unblock`](Arm::unblock). Called on the goroutine's stack, with no
    /// channel locked.
    fn block(&mut self) {}
    /// The park is over (see [`block`](Arm::block)).
    fn unblock(&mut self) {}
}

/// How a select ends when no arm is ready.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Wait for an arm.
    Block,
    /// Take the `default` arm at once.
    Default,
    /// Wait until the deadline (None: it overflowed, wait forever).
    Deadline(Option<Instant>),
}

impl Mode {
    /// `default(timeout)`: the deadline is taken when the select starts.
    pub fn timeout(d: Duration) -> Mode {
        Mode::Deadline(Instant::now().checked_add(d))
    }
}

/// Registrations of all arms; dropping it (also when the park unwinds at
/// shutdown) takes every entry out of its queue.
struct Regs<'a, 'b> {
    arms: &'a mut [&'b mut dyn Arm],
}

impl Regs<'_, '_> {
    fn finish(&mut self) -> bool {
        let mut done = false;
        for arm in self.arms.iter_mut() {
            // Every arm is taken out, even after the completed one.
            done |= arm.unregister();
        }
        done
    }
}

impl Drop for Regs<'_, '_> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Runs a select over `arms`; true if an arm completed (its `take` has the
/// result), false for the default or timeout arm. `biased`: try and
/// register the arms in the order written (`select_biased!`), instead of a
/// fresh random order each time.
pub fn select(arms: &mut [&mut dyn Arm], mode: Mode, biased: bool) -> bool {
    gort_sched::park::preempt_point();
    let n = arms.len();
    let mut small = [0usize; 16];
    let mut large = Vec::new();
    let order: &mut [usize] = if n <= small.len() {
        &mut small[..n]
    } else {
        large.extend(0..n);
        &mut large
    };
    for (i, o) in order.iter_mut().enumerate() {
        *o = i;
    }
    let deadline = match mode {
        Mode::Deadline(d) => d,
        _ => None,
    };
    // Distinct among live selects: the address of this frame.
    let anchor = 0u8;
    let token = std::ptr::addr_of!(anchor) as usize;
    loop {
        // Fisher-Yates: the first ready arm of a uniform permutation is
        // uniform among the ready arms.
        if !biased {
            for i in (1..n).rev() {
                order.swap(i, crate::rand::below(i + 1));
            }
        }
        for &i in order.iter() {
            if arms[i].try_now() {
                return true;
            }
        }
        match mode {
            Mode::Default => return false,
            Mode::Deadline(Some(d)) if Instant::now() >= d => return false,
            _ => {}
        }
        // Register in the same random order: a wait queue is FIFO, so of
        // several arms on one channel the partner completes the one
        // registered first, which must be uniform among them (Go enqueues
        // in an order derived from its random poll order; crossbeam
        // shuffles too). Any order is deadlock-free: one channel's lock at
        // a time.
        for arm in arms.iter_mut() {
            arm.block();
        }
        let mut regs = Regs { arms: &mut *arms };
        let order = &*order;
        // Deferred: registering touches the arms (on this goroutine's
        // stack) after the first channel may already have woken us.
        let woke = wait_deferred(WaitReason::Select, deadline, |waker| {
            for &i in order {
                if !regs.arms[i].register(waker, token) {
                    // Ready after all: claim our own wake so no channel can
                    // complete an arm, and start over. (If the claim loses,
                    // a channel already completed one.)
                    waker.wake();
                    break;
                }
            }
            true
        });
        let done = regs.finish();
        drop(regs);
        for arm in arms.iter_mut() {
            arm.unblock();
        }
        if done {
            return true;
        }
        if woke == Woke::TimedOut {
            return false;
        }
    }
}

/// A select arm's entry, on the heap (see RecvArm's invariants).
fn new_entry<T>(value: Option<T>) -> NonNull<Entry<T>> {
    NonNull::from(Box::leak(Box::new(Entry::new(value))))
}

/// Frees an arm's entry, returning what it holds.
///
/// # Safety
/// `e` came from `new_entry`, is out of every queue, and is not used again.
unsafe fn free_entry<T>(e: NonNull<Entry<T>>) -> (State, Option<T>) {
    // SAFETY: the caller's contract: ours alone, allocated by new_entry.
    let e = unsafe { Box::from_raw(e.as_ptr()) };
    // SAFETY: as above.
    unsafe { e.finish() }
}

/// A `recv(rx) -> v` arm.
///
/// Must hold: `entry` is None or an entry allocated by `register` and
/// queued on the channel, freed by `unregister` after taking it out of the
/// queue (the Regs guard unregisters every arm, also when unwinding). It
/// is on the heap, not in the arm, because the arm is borrowed `&mut`
/// while channels write into a queued entry.
pub struct RecvArm<'a, T> {
    rx: &'a Receiver<T>,
    entry: Option<NonNull<Entry<T>>>,
    result: Option<Result<T, RecvError>>,
    /// While the select parks on a timer's channel: its timer's guard.
    blocked: Option<gort_sched::park::Blocked>,
}

impl<'a, T> RecvArm<'a, T> {
    /// An arm receiving from `rx`.
    pub fn new(rx: &'a Receiver<T>) -> Self {
        RecvArm {
            rx,
            entry: None,
            result: None,
            blocked: None,
        }
    }

    /// The result, if this arm was the one completed.
    pub fn take(&mut self) -> Option<Result<T, RecvError>> {
        self.result.take()
    }

    fn chan(&self) -> &'a Chan<T> {
        &self.rx.chan
    }
}

impl<T> Arm for RecvArm<'_, T> {
    fn try_now(&mut self) -> bool {
        let chan = self.chan();
        chan.poll_timer();
        let mut g = chan.lock();
        let r = chan.try_recv_locked(&mut g);
        drop(g);
        match r {
            Ok(v) => self.result = Some(Ok(v)),
            Err(TryRecvError::Disconnected) => self.result = Some(Err(RecvError)),
            Err(TryRecvError::Empty) => return false,
        }
        true
    }

    fn register(&mut self, waker: &Signal, token: usize) -> bool {
        let chan = self.chan();
        let mut g = chan.lock();
        if chan.recv_ready(&g, token) {
            return false;
        }
        let e = new_entry(None);
        // SAFETY: the entry stays allocated until unregister has taken it
        // out of the queue (see RecvArm's invariants).
        unsafe { Chan::enqueue(&mut g, Dir::Recv, waker, e, token) };
        self.entry = Some(e);
        true
    }

    fn block(&mut self) {
        if let Some(t) = &self.chan().timer {
            self.blocked = Some(t.block());
        }
    }

    fn unblock(&mut self) {
        self.blocked = None;
    }

    fn unregister(&mut self) -> bool {
        let Some(e) = self.entry.take() else {
            return false;
        };
        let chan = self.chan();
        let mut g = chan.lock();
        // SAFETY: the entry is live until freed below; register queued
        // it on this channel as a receive.
        let removed = unsafe { Chan::dequeue(&mut g, Dir::Recv, e) };
        drop(g);
        drop(removed);
        // SAFETY: out of the queue: ours alone again.
        match unsafe { free_entry(e) } {
            (State::Done, Some(v)) => self.result = Some(Ok(v)),
            (State::Closed, _) => self.result = Some(Err(RecvError)),
            _ => return false,
        }
        true
    }
}

/// A `send(tx, value) -> res` arm.
///
/// Must hold: as RecvArm's; while registered, the value is in `entry`.
pub struct SendArm<'a, T> {
    tx: &'a Sender<T>,
    value: Option<T>,
    entry: Option<NonNull<Entry<T>>>,
    result: Option<Result<(), SendError<T>>>,
}

impl<'a, T> SendArm<'a, T> {
    /// An arm sending `value` on `tx`.
    pub fn new(tx: &'a Sender<T>, value: T) -> Self {
        SendArm {
            tx,
            value: Some(value),
            entry: None,
            result: None,
        }
    }

    /// The result, if this arm was the one completed.
    pub fn take(&mut self) -> Option<Result<(), SendError<T>>> {
        self.result.take()
    }

    fn chan(&self) -> &'a Chan<T> {
        &self.tx.chan
    }
}

impl<T> Arm for SendArm<'_, T> {
    fn try_now(&mut self) -> bool {
        let chan = self.chan();
        let Some(v) = self.value.take() else {
            return false;
        };
        let mut g = chan.lock();
        let r = chan.try_send_locked(&mut g, v);
        drop(g);
        match r {
            Ok(()) => self.result = Some(Ok(())),
            Err(TrySendError::Disconnected(v)) => self.result = Some(Err(SendError(v))),
            Err(TrySendError::Full(v)) => {
                self.value = Some(v);
                return false;
            }
        }
        true
    }

    fn register(&mut self, waker: &Signal, token: usize) -> bool {
        let chan = self.chan();
        let mut g = chan.lock();
        if chan.send_ready(&g, token) {
            return false;
        }
        let e = new_entry(self.value.take());
        // SAFETY: as in RecvArm::register.
        unsafe { Chan::enqueue(&mut g, Dir::Send, waker, e, token) };
        self.entry = Some(e);
        true
    }

    fn unregister(&mut self) -> bool {
        let Some(e) = self.entry.take() else {
            return false;
        };
        let chan = self.chan();
        let mut g = chan.lock();
        // SAFETY: as in RecvArm::unregister, for a send.
        let removed = unsafe { Chan::dequeue(&mut g, Dir::Send, e) };
        drop(g);
        drop(removed);
        // SAFETY: out of the queue: ours alone again.
        match unsafe { free_entry(e) } {
            (State::Done, _) => self.result = Some(Ok(())),
            (State::Closed, v) => {
                self.result = Some(Err(SendError(v.expect("a closed send keeps its value"))))
            }
            (State::Pending, v) => {
                self.value = v;
                return false;
            }
        }
        true
    }
}

/// Waits on several channel operations and runs the arm of the one that
/// completes, like Go's `select` statement. Syntax (crossbeam-channel's):
///
/// ```
/// # use gort_sync::{chan, select};
/// # use std::time::Duration;
/// # let (tx, rx) = chan::bounded::<i32>(1);
/// # let (tx2, rx2) = chan::unbounded::<&str>();
/// # tx.send(1).unwrap();
/// select! {
///     recv(rx) -> v => println!("got {v:?}"),        // v: Result<i32, RecvError>
///     send(tx2, "hi") -> res => res.unwrap(),         // res: Result<(), SendError<&str>>
///     default(Duration::from_millis(10)) => println!("timed out"),
/// }
/// # drop((tx, rx2));
/// ```
///
/// - `recv(rx) -> pat => body` receives from `rx` (a `Receiver` or a
///   reference to one); the pattern binds `Result<T, RecvError>`, which is
///   `Err` once the channel is empty and disconnected (that counts as
///   ready, as a closed channel is in Go).
/// - `send(tx, value) -> pat => body` sends `value` (evaluated once, before
///   waiting; dropped if another arm completes); the pattern binds
///   `Result<(), SendError<T>>`.
/// - `default => body` (or `default() => body`) runs if no arm is ready
///   now; `default(timeout) => body` runs if none becomes ready within
///   `timeout` (a `Duration`). At most one of the two, written last.
///
/// When several arms are ready, one is chosen uniformly at random; when
/// the select blocks, whichever of several arms on one channel a partner
/// completes is uniform too
/// ([`select_biased!`](crate::select_biased!) prefers the order written).
/// Unlike crossbeam-channel, and as Go, every `send` arm's value is
/// evaluated when the select starts, whether or not its arm is chosen.
/// Without a default arm the select blocks (parks the goroutine, or blocks
/// a plain thread) until one arm completes; `select! {}` blocks forever.
/// Arm bodies may `break`, `continue` or `return`: they are expanded in
/// place.
#[macro_export]
macro_rules! select {
    ($($t:tt)*) => {
        $crate::__select_internal!(@parse false [] [] $($t)*)
    };
}

/// [`select!`] that prefers the arms in the order written: of the arms
/// ready when it starts, the first written completes, and when it blocks,
/// its arms are registered in that order (so of two arms waiting on one
/// channel, the first written is completed first). Same syntax as
/// `select!`. For a priority (a quit channel checked before work), not
/// for fairness: a busy first arm starves the others.
///
/// ```
/// # use gort_sync::{chan, select_biased};
/// let (quit_tx, quit) = chan::bounded::<()>(1);
/// let (work_tx, work) = chan::bounded::<u32>(1);
/// work_tx.send(7).unwrap();
/// quit_tx.send(()).unwrap();
/// let stopped = select_biased! {
///     recv(quit) -> _ => true,
///     recv(work) -> _ => false,
/// };
/// assert!(stopped);
/// ```
#[macro_export]
macro_rules! select_biased {
    ($($t:tt)*) => {
        $crate::__select_internal!(@parse true [] [] $($t)*)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_internal {
    // ---- parse: arms into [(recv|send (args) pat body)...], default into [..]
    (@parse $b:tt [$($arms:tt)*] [$($def:tt)*] recv($rx:expr $(,)?) -> $p:pat => $body:block, $($rest:tt)*) => {
        $crate::__select_internal!(@parse $b [$($arms)* (recv ($rx) $p $body)] [$($def)*] $($rest)*)
    };
    (@parse $b:tt [$($arms:tt)*] [$($def:tt)*] recv($rx:expr $(,)?) -> $p:pat => $body:block $($rest:tt)*) => {
        $crate::__select_internal!(@parse $b [$($arms)* (recv ($rx) $p $body)] [$($def)*] $($rest)*)
    };
    (@parse $b:tt [$($arms:tt)*] [$($def:tt)*] recv($rx:expr $(,)?) -> $p:pat => $body:expr, $($rest:tt)*) => {
        $crate::__select_internal!(@parse $b [$($arms)* (recv ($rx) $p { $body })] [$($def)*] $($rest)*)
    };
    (@parse $b:tt [$($arms:tt)*] [$($def:tt)*] recv($rx:expr $(,)?) -> $p:pat => $body:expr) => {
        $crate::__select_internal!(@parse $b [$($arms)* (recv ($rx) $p { $body })] [$($def)*])
    };
    (@parse $b:tt [$($arms:tt)*] [$($def:tt)*] send($tx:expr, $v:expr $(,)?) -> $p:pat => $body:block, $($rest:tt)*) => {
        $crate::__select_internal!(@parse $b [$($arms)* (send ($tx, $v) $p $body)] [$($def)*] $($rest)*)
    };
    (@parse $b:tt [$($arms:tt)*] [$($def:tt)*] send($tx:expr, $v:expr $(,)?) -> $p:pat => $body:block $($rest:tt)*) => {
        $crate::__select_internal!(@parse $b [$($arms)* (send ($tx, $v) $p $body)] [$($def)*] $($rest)*)
    };
    (@parse $b:tt [$($arms:tt)*] [$($def:tt)*] send($tx:expr, $v:expr $(,)?) -> $p:pat => $body:expr, $($rest:tt)*) => {
        $crate::__select_internal!(@parse $b [$($arms)* (send ($tx, $v) $p { $body })] [$($def)*] $($rest)*)
    };
    (@parse $b:tt [$($arms:tt)*] [$($def:tt)*] send($tx:expr, $v:expr $(,)?) -> $p:pat => $body:expr) => {
        $crate::__select_internal!(@parse $b [$($arms)* (send ($tx, $v) $p { $body })] [$($def)*])
    };
    (@parse $b:tt [$($arms:tt)*] [] default => $body:block, $($rest:tt)*) => {
        $crate::__select_internal!(@parse $b [$($arms)*] [(now $body)] $($rest)*)
    };
    (@parse $b:tt [$($arms:tt)*] [] default => $body:block $($rest:tt)*) => {
        $crate::__select_internal!(@parse $b [$($arms)*] [(now $body)] $($rest)*)
    };
    (@parse $b:tt [$($arms:tt)*] [] default => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_internal!(@parse $b [$($arms)*] [(now { $body })] $($($rest)*)?)
    };
    // `default()`: crossbeam-channel's spelling of `default`.
    (@parse $b:tt [$($arms:tt)*] [] default() => $($rest:tt)*) => {
        $crate::__select_internal!(@parse $b [$($arms)*] [] default => $($rest)*)
    };
    (@parse $b:tt [$($arms:tt)*] [] default($t:expr $(,)?) => $body:block, $($rest:tt)*) => {
        $crate::__select_internal!(@parse $b [$($arms)*] [(after ($t) $body)] $($rest)*)
    };
    (@parse $b:tt [$($arms:tt)*] [] default($t:expr $(,)?) => $body:block $($rest:tt)*) => {
        $crate::__select_internal!(@parse $b [$($arms)*] [(after ($t) $body)] $($rest)*)
    };
    (@parse $b:tt [$($arms:tt)*] [] default($t:expr $(,)?) => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_internal!(@parse $b [$($arms)*] [(after ($t) { $body })] $($($rest)*)?)
    };
    (@parse $b:tt [$($arms:tt)*] [$($def:tt)+] default $($rest:tt)*) => {
        ::core::compile_error!("select!: at most one `default` arm")
    };
    (@parse $b:tt [$($arms:tt)*] [$($def:tt)*]) => {
        $crate::__select_internal!(@bind $b [$($arms)*] [] [$($def)*])
    };
    (@parse $b:tt [$($arms:tt)*] [$($def:tt)*] $($rest:tt)+) => {
        ::core::compile_error!(::core::concat!(
            "select!: expected `recv(rx) -> pat => body`, `send(tx, value) -> pat => body`, ",
            "`default => body` or `default(timeout) => body`, found: ",
            ::core::stringify!($($rest)+)
        ))
    };

    // ---- bind: one hygienic `arm` variable per arm, in nested blocks
    (@bind $b:tt [(recv ($rx:expr) $p:tt $body:tt) $($rest:tt)*] [$($bound:tt)*] $def:tt) => {{
        let rx: &$crate::chan::Receiver<_> = &$rx;
        let mut arm = $crate::__private::RecvArm::new(rx);
        $crate::__select_internal!(@bind $b [$($rest)*] [$($bound)* (arm $p $body)] $def)
    }};
    (@bind $b:tt [(send ($tx:expr, $v:expr) $p:tt $body:tt) $($rest:tt)*] [$($bound:tt)*] $def:tt) => {{
        let tx: &$crate::chan::Sender<_> = &$tx;
        let mut arm = $crate::__private::SendArm::new(tx, $v);
        $crate::__select_internal!(@bind $b [$($rest)*] [$($bound)* (arm $p $body)] $def)
    }};
    (@bind $b:tt [] [$(($arm:ident $p:tt $body:tt))*] [$($def:tt)*]) => {{
        {
            let arms: &mut [&mut dyn $crate::__private::Arm] = &mut [$(&mut $arm),*];
            $crate::__private::select(arms, $crate::__select_internal!(@mode $($def)*), $b);
        }
        $crate::__select_internal!(@dispatch [$(($arm $p $body))*] [$($def)*])
    }};

    (@mode) => { $crate::__private::Mode::Block };
    (@mode (now $body:tt)) => { $crate::__private::Mode::Default };
    (@mode (after ($t:expr) $body:tt)) => { $crate::__private::Mode::timeout($t) };

    // ---- dispatch: the completed arm's body, else the default's
    (@dispatch [($arm:ident $p:tt $body:tt) $($rest:tt)*] $def:tt) => {
        if let ::core::option::Option::Some(r) = $arm.take() {
            let $p = r;
            $body
        } else {
            $crate::__select_internal!(@dispatch [$($rest)*] $def)
        }
    };
    (@dispatch [] []) => {
        ::core::unreachable!("select! without a default arm returned with no arm completed")
    };
    (@dispatch [] [(now $body:tt)]) => { $body };
    (@dispatch [] [(after ($t:expr) $body:tt)]) => { $body };
}

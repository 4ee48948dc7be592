//! The park tier: parking and readying goroutines, for the layers above
//! the scheduler (gort-sync's channels, select, Mutex, WaitGroup; gort-cgo
//! parks the goroutine that serves callbacks). User code does not need it:
//! the gort facade does not re-export it.
//!
//! Two levels:
//! - [`park`] / [`ready`] (Go's `gopark`/`goready`): the goroutine parks
//!   with a [`WaitReason`]; an unlock function runs on the scheduler's
//!   stack once it is fully suspended and publishes its [`GRef`];
//!   someone calls `ready` on it later.
//! - [`park_with`] / [`park_with_eager`] with a [`Waker`]: a one-shot with
//!   an optional deadline, for goroutines and plain threads alike (the
//!   protocol is in waker.rs and gstate.rs); [`sleep`] is a park with only
//!   a deadline.
//! - [`Timer`] (fired with a [`Fire`]): a timer on the current P's heap
//!   (timer.rs), which gort-sync's `time` and `context` build on; a lazy
//!   one ([`Timer::new_lazy`]) for a channel's timer is on the heap only
//!   while a receiver is blocked on it ([`Blocked`]).
//!
//! Each function states its contract in two parts: the obligations of the
//! caller, and what the scheduler guarantees. Common to all:
//! - the unlock or register function runs after the goroutine's context is
//!   saved, so a wake from another thread at any moment after publication
//!   is safe;
//! - a parked goroutine is resumed only by a wake, its deadline, or the
//!   shutdown, which unwinds it with the payload [`Shutdown`] (so wait
//!   registrations must be guards that deregister on drop);
//! - a park may return spuriously (a stale waker from before a shutdown
//!   readies a reused goroutine): callers re-check their condition.
//!
//! [`preempt_point`] is the cooperative half of preemption (preempt.rs):
//! the layers above call it at their operations (a channel operation,
//! `select`, `Mutex::lock`), and a goroutine whose slice ran out, or whose
//! M lost its P to sysmon, yields there.
//!
//! A goroutine that parks or yields while unwinding is pinned to its
//! thread for the park (std's panic count is per thread). [`yield_now`]
//! and [`sleep`] are user API too, re-exported at the crate root.

pub use crate::current::current;
use crate::current::{current_g, running_g, sched_of};
pub use crate::g::GRef;
use crate::g::G;
use crate::lockosthread::{lock_internal, unlock_internal};
use crate::mcall::{check_not_in_syscall, switch_to_g0, Request};
pub use crate::runtime::Shutdown;
use crate::sched::Sched;
pub use crate::status::WaitReason;
pub use crate::timer::{Blocked, Fire, Timer};
use crate::waker::{g_of, Target};
pub use crate::waker::{Waker, Woke};
use std::panic::resume_unwind;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Parks the current goroutine with `reason` (Go's `gopark`). Once the
/// goroutine is fully suspended, `unlock(g)` runs on the scheduler's
/// stack: it typically publishes `g` where a waker will find it and
/// releases a lock. If it returns false the park is called off and the
/// goroutine continues at once. Returns when someone calls [`ready`] on it.
///
/// # Obligations of the caller
/// - The publication is the last thing `unlock` does with anything on the
///   parking goroutine's stack (its captures, usually): from then on the
///   goroutine can be readied and run on another thread while `unlock` is
///   still running. Copy what is needed afterwards into locals first, as
///   [`park_with`] does.
/// - `unlock` does not park, yield or block on the scheduler: it runs on
///   g0, with the goroutine already `Waiting`.
/// - Wait registrations are guards whose `Drop` removes them, and the
///   caller re-checks its condition when the park returns.
///
/// # What the scheduler guarantees
/// - `unlock` runs exactly once, after the goroutine's context is saved.
/// - The goroutine runs again only after a [`ready`] (or, if `unlock`
///   returned false, at once), or it is unwound with the payload
///   [`Shutdown`] during the runtime's shutdown (also when it parks after
///   the shutdown began).
///
/// # Panics
/// Outside a goroutine.
pub fn park(reason: WaitReason, unlock: impl FnMut(GRef) -> bool) {
    let g = running_g("park");
    check_not_in_syscall(g);
    park_g(g, reason, unlock);
}

/// `park` for a caller that already has the running goroutine `g` and has
/// checked it is not in a syscall (`check_not_in_syscall`). Inlined: its
/// one other caller is the channel's park, where a call would cost a
/// frame of saved registers per wait.
#[inline(always)]
pub(crate) fn park_g(g: *mut G, reason: WaitReason, mut unlock: impl FnMut(GRef) -> bool) {
    // No check for a cancel before the park: a park during the shutdown
    // readies itself on g0 (the Park request) and unwinds below.
    // SAFETY: the running G is live and ours.
    unsafe { (*g).wait_reason.set(reason) };
    let pinned = pin_if_unwinding(g);
    let mut req = Request::Park(&mut unlock);
    switch_to_g0(g, &mut req);
    unpin(g, pinned);
    check_cancel(g);
}

/// Unwinds the running goroutine `g` with the payload `Shutdown` if it was
/// cancelled or the run is ending (main excepted), unless it is unwinding
/// already. Inline: two loads on every switch back to a goroutine.
#[inline(always)]
pub(crate) fn check_cancel(g: *mut G) {
    // SAFETY: the running G is live.
    let gr = unsafe { &*g };
    if gr.cancel.load(Ordering::Acquire) || sched_of(g).is_shutting_down() {
        cancel_slow(gr);
    }
}

#[cold]
#[inline(never)]
fn cancel_slow(gr: &G) {
    if std::thread::panicking() {
        return;
    }
    if gr.cancel.load(Ordering::Acquire) {
        resume_unwind(Box::new(Shutdown));
    }
    if !gr.is_main.get() {
        gr.cancel.store(true, Ordering::Release);
        resume_unwind(Box::new(Shutdown));
    }
}

/// Makes a goroutine parked by [`park`] runnable again (Go's `goready`).
///
/// # Obligations of the caller
/// - `g` came from a `park`'s `unlock` (or [`current`]) of a runtime that
///   is still running: the G is reused after its goroutine exits and freed
///   with its runtime.
///
/// # What the scheduler guarantees
/// - Safe from any thread. Of several racing `ready`s, one makes the
///   goroutine runnable; a goroutine that is not parked is left alone.
/// - The goroutine goes to the current P's `runnext` (it runs next on this
///   P, as Go's `ready` does), or to the global queue from outside the
///   runtime, and an idle P is woken to run it if there is one.
pub fn ready(g: GRef) {
    // SAFETY: Gs live as long as their runtime (the caller's contract).
    let sched = unsafe { &*(*g.as_ptr()).sched() };
    sched.ready(g);
}

/// Lets other goroutines run; this one goes to the back of its P's queue.
///
/// # Panics
/// Outside a goroutine.
pub fn yield_now() {
    let g = running_g("yield_now");
    preempt_check(g);
    check_not_in_syscall(g);
    let pinned = pin_if_unwinding(g);
    let mut req = Request::Yield;
    switch_to_g0(g, &mut req);
    unpin(g, pinned);
    check_cancel(g);
}

/// Parks the current goroutine, or blocks the current plain thread, until
/// a [`Waker`] given to `register` is woken or `deadline` passes.
///
/// `register(&waker)` runs once, when the waiter can no longer miss a
/// wakeup (for a goroutine: on the scheduler's stack, after it is fully
/// suspended), typically under the lock of the structure being waited on:
/// it publishes the waker and returns true, or returns false without
/// publishing it if the condition is already met, and then `park_with`
/// returns [`Woke::Woken`] at once.
///
/// A wake that wins while `register` still runs (also one by `register`
/// itself, as `select!` claims its own waker when an arm turns out ready
/// mid-way) only records its outcome; the goroutine is readied only by a
/// wake that wins after `register` returned. So `register` may publish the
/// waker in several places and touch the goroutine's stack in between.
/// That costs one more atomic step than [`park_with_eager`].
///
/// # Obligations of the caller
/// - `register` publishes the waker (or declines) and returns; it does not
///   park or block on the scheduler (it runs on g0 for a goroutine).
/// - A published waker may outlive the wait: keep it in a structure that
///   drops it, or not; a stale waker never wins a later wait.
///
/// # What the scheduler guarantees
/// - Of every `wake()` and the deadline, exactly one wins; the result says
///   which. A wake that loses returns false.
/// - On a goroutine, during the runtime's shutdown the park unwinds
///   instead (see [`park`]); on a plain thread it blocks the thread.
pub fn park_with(
    reason: WaitReason,
    deadline: Option<Instant>,
    register: impl FnOnce(&Waker) -> bool,
) -> Woke {
    match current() {
        Some(g) => park_goroutine(g, reason, deadline, false, register),
        None => park_thread(deadline, register),
    }
}

/// [`park_with`] for a `register` that publishes the waker once, as its
/// last access to anything on the waiting goroutine's stack (typically by
/// queueing it under a lock and unlocking): a wake may then ready the
/// goroutine at once, even before `register` returns. One atomic step
/// less per wait than [`park_with`] (channel sends and receives, mutexes).
///
/// # Obligations of the caller
/// As [`park_with`], and: the publication is `register`'s last access to
/// anything on the waiting goroutine's stack, and `register` publishes the
/// waker in one place only (a wake may win and ready the goroutine the
/// moment it is visible).
///
/// # What the scheduler guarantees
/// As [`park_with`].
#[inline(always)]
pub fn park_with_eager(
    reason: WaitReason,
    deadline: Option<Instant>,
    register: impl FnOnce(&Waker) -> bool,
) -> Woke {
    match current() {
        Some(g) => park_goroutine(g, reason, deadline, true, register),
        None => park_thread(deadline, register),
    }
}

#[inline(always)]
pub(crate) fn park_goroutine(
    g: GRef,
    reason: WaitReason,
    deadline: Option<Instant>,
    eager: bool,
    register: impl FnOnce(&Waker) -> bool,
) -> Woke {
    check_not_in_syscall(g.as_ptr());
    if deadline.is_some_and(|d| d <= Instant::now()) {
        // Already late: nothing to sleep for; a zero-length wait times out,
        // unless the condition already holds. The probe is a one-shot of
        // its own, so that a wake winning it readies nobody.
        let probe = Waker::shared(None);
        if !register(&probe) {
            return Woke::Woken;
        }
        return if probe.finish_quietly() {
            Woke::TimedOut
        } else {
            Woke::Woken
        };
    }
    let gr = g_of(g);
    // A new wait: only the goroutine itself moves its word to a new
    // number (wakers only add an outcome to the number they know), and a
    // stale waker's CAS names an older number, so it fails from here on.
    // A plain store: the goroutine is Running, so nobody else writes its
    // state (GState's invariants).
    let word = gr.state().begin_wait(eager);
    let waker = Waker(Target::Goroutine { g, word });
    // SAFETY: a running goroutine's Sched lives while it runs.
    let sched: &Sched = unsafe { &*gr.sched() };
    // However the wait is left (also unwinding at shutdown), end it, so
    // that a late wake() or the timer cannot ready this goroutine after it
    // has moved on.
    struct Retire<'a>(&'a Waker);
    impl Drop for Retire<'_> {
        fn drop(&mut self) {
            if self.0.is_waiting() {
                let _ = self.0.finish_quietly();
            }
        }
    }
    let _retire = Retire(&waker);
    let mut register = Some(register);
    let mut declined = false;
    // The unlock function below runs on g0 while this goroutine is parked.
    // Once `register` has published the waker, the goroutine can be woken
    // and run on another M at any moment, so from then on the function
    // touches nothing that lives on this goroutine's stack: it copies what
    // it needs to its own (g0's) frame first. Its last write to this stack
    // (`declined`) happens only when nothing was published.
    park_g(g.as_ptr(), reason, |_| {
        let register = register.take().expect("park_with: unlock ran twice");
        // Copies into this (g0) frame: the closure captures by reference.
        let deadline_copy: Option<Instant> = deadline;
        let sched_copy: &Sched = sched;
        let eager_copy: bool = eager;
        if eager_copy && deadline_copy.is_none() {
            // Nothing left to do once the waker is published (no timer, no
            // PARKED step): lend `register` the goroutine's own waker.
            // Publication is register's last access to it (the contract),
            // and nothing below reads it.
            if !register(&waker) {
                declined = true;
                return false;
            }
            return true;
        }
        let own_waker = waker.clone();
        if !register(&own_waker) {
            declined = true;
            return false;
        }
        // Published: from here on only g0-local values. An eager park is
        // never called off now: whoever wins the one-shot readies us.
        let timer = deadline_copy.map(|d| (d, own_waker.clone()));
        if let Some((d, w)) = timer {
            sched_copy.add_timer(d, w);
        }
        // A deferred park's last step: if the wait already ended, call the
        // park off (nobody readies us: the winner saw no PARKED).
        eager_copy || own_waker.mark_parked()
    });
    if declined {
        return Woke::Woken;
    }
    loop {
        if let Some(woke) = waker.outcome() {
            return woke;
        }
        // Readied without our waker firing (a stray `ready` on this
        // goroutine): wait for the waker without parking again, since a
        // re-park's unlock function could not read the waker safely.
        crate::park::yield_now();
    }
}

pub(crate) fn park_thread(
    deadline: Option<Instant>,
    register: impl FnOnce(&Waker) -> bool,
) -> Woke {
    let waker = Waker::shared(Some(std::thread::current()));
    if !register(&waker) {
        return Woke::Woken;
    }
    loop {
        if let Some(woke) = waker.outcome() {
            return woke;
        }
        match deadline {
            None => std::thread::park(),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    if waker.finish_quietly() {
                        return Woke::TimedOut;
                    }
                    continue;
                }
                std::thread::park_timeout(d - now);
            }
        }
    }
}

/// Sleeps for `d`: parks the goroutine (a plain thread sleeps). Go's
/// `time.Sleep`. A duration past the representable future
/// (`Duration::MAX`) sleeps for ever (a timer that never comes due, as
/// Go's, so it is not a deadlock).
pub fn sleep(d: std::time::Duration) {
    preempt_point();
    let deadline = saturating_deadline(d);
    while park_with(WaitReason::Sleep, Some(deadline), |_| true) != Woke::TimedOut {}
}

/// A goroutine that parks while unwinding stays on its thread until the
/// park returns: std's panic count is per thread (design brief, "Thread-
/// locals and migration").
#[inline(always)]
fn pin_if_unwinding(g: *mut G) -> bool {
    if std::thread::panicking() {
        lock_internal(g);
        true
    } else {
        false
    }
}

#[inline(always)]
fn unpin(g: *mut G, pinned: bool) {
    if pinned {
        unlock_internal(g);
    }
}

/// `now + d`, or for a `d` past what `Instant` can hold, a time a century
/// away (for ever, in practice).
fn saturating_deadline(d: std::time::Duration) -> Instant {
    const CENTURY: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now + std::time::Duration::from_secs(86_400))
}

impl Timer {
    /// A stopped runtime timer that calls `f` when it fires; arm it with
    /// [`reset`](Timer::reset). It goes on the current P's heap, or (on a
    /// plain thread) on the process-wide one. For a periodic timer, `f`
    /// returns whether to stay armed.
    pub fn new(f: impl Fn(&Fire<'_>) -> bool + Send + Sync + 'static) -> Timer {
        Timer::on(crate::checktimers::timers_for_new(), false, f)
    }

    /// A timer for a channel (Go 1.23's timer channels): armed, it stays
    /// off its heap (no heap lock, no heap slot) until a receiver blocks
    /// on the channel ([`block`](Timer::block)); a receiver that looks
    /// without blocking calls [`poll`](Timer::poll) first, which fires it
    /// if it is due. `f` sends on the channel without blocking; it runs
    /// under the timer's run lock, on a scheduler thread or in `poll` or
    /// `block` on the receiver's.
    pub fn new_lazy(f: impl Fn() -> bool + Send + Sync + 'static) -> Timer {
        Timer::on(crate::checktimers::timers_for_new(), true, move |_| f())
    }
}

/// A preemption point: if sysmon asked the running goroutine to yield
/// (its slice ran out while other work waits), or its M lost its P, it
/// goes to the back of the global queue and runs again when an M with a
/// P picks it up. One relaxed load when neither. Outside a goroutine, or
/// in a goroutine locked to its thread, nothing. During shutdown a
/// goroutine other than main unwinds here, as at a park: callers place it
/// where a park could happen.
///
/// Must not be called while holding a lock other goroutines spin on (the
/// goroutine may not run again for a slice), nor one the scheduler itself
/// takes (a timer's run lock: `Timer::reset_then`), which would stop the
/// M that waits for it.
#[inline]
pub fn preempt_point() {
    let g = current_g();
    if !g.is_null() {
        preempt_check(g);
    }
}

/// `preempt_point` for the running goroutine `g`, for callers that have
/// it already (one thread-local read fewer).
#[inline(always)]
pub(crate) fn preempt_check(g: *mut G) {
    // SAFETY: a running goroutine's M is this thread's M.
    let mr = unsafe { &*(*g).m() };
    if mr.lv.signal.load(Ordering::Relaxed) == 0 && !mr.p().is_null() {
        return;
    }
    preempt_slow(g);
}

#[cold]
#[inline(never)]
fn preempt_slow(g: *mut G) {
    // SAFETY: as in preempt_point.
    let (gr, mr) = unsafe { (&*g, &*(*g).m()) };
    // Not a point to yield at: a locked or C-bound goroutine, or one in
    // `syscall(f)` (whose misuse the operation itself reports).
    let busy = mr.locks.get() != 0
        || mr.incgo.load(Ordering::Relaxed)
        || gr.status() == crate::status::Status::Syscall
        || std::thread::panicking();
    mr.lv.clear_preempt();
    if busy {
        return;
    }
    // During shutdown every goroutine but main unwinds here, as it would at
    // a park, locked or not: a loop of non-blocking operations ends too
    // (shutdown.rs, "Detached goroutines").
    check_cancel(g);
    if !mr.lockedg.get().is_null() {
        return;
    }
    let mut req = Request::Preempt;
    switch_to_g0(g, &mut req);
    check_cancel(g);
}

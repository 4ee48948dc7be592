//! One wakeup primitive for goroutines and plain threads, with an optional
//! deadline: [`park_with`] and [`Waker`]. The layers above (channels,
//! select, Mutex, WaitGroup, sleep) are built on it.
//!
//! A `Waker` is a one-shot: of its `wake()` calls and its deadline, the
//! first wins, and only that one makes the waiter runnable. That is what a
//! channel needs (a sender skips a receiver whose timeout already fired)
//! and what `select!` needs (one waker registered on several channels).

use crate::g::{GRef, WaitReason};
use crate::runtime::{current, park};
use crate::sched::Sched;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

const WAITING: u8 = 0;
const WOKEN: u8 = 1;
const TIMED_OUT: u8 = 2;
const OUTCOME: u8 = 3;
/// Set by a parking goroutine as the last step of its park: only a wake
/// that wins after this readies it. Before, the winner just records the
/// outcome and the park, seeing it, does not sleep. So `register` may even
/// wake its own waker (`select!` claiming itself) without the goroutine
/// being made runnable twice.
const PARKED: u8 = 4;

enum Target {
    Goroutine(GRef),
    Thread(std::thread::Thread),
}

/// Must hold: the outcome bits leave WAITING exactly once (CAS); a
/// goroutine target is readied by the winner iff PARKED was set when it
/// won; PARKED is set only by the goroutine's own park, by a CAS from
/// exactly WAITING, as the park's last access to the goroutine's stack.
struct Shared {
    state: AtomicU8,
    target: Target,
}

/// Wakes one parked goroutine or thread, once. Cheap to clone; clones share
/// the one-shot.
#[derive(Clone)]
pub struct Waker(Arc<Shared>);

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker")
            .field("state", &self.0.state.load(Ordering::Relaxed))
            .finish()
    }
}

/// How a [`park_with`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woke {
    /// A `Waker::wake` won (or `register` declined to park).
    Woken,
    /// The deadline passed first.
    TimedOut,
}

impl Waker {
    /// Makes the waiter runnable, unless someone else (another `wake`, or
    /// the deadline) already did. Returns whether this call was the one.
    pub fn wake(&self) -> bool {
        self.finish(WOKEN)
    }

    /// Whether the waiter is still waiting (a snapshot).
    pub fn is_waiting(&self) -> bool {
        self.0.state.load(Ordering::Acquire) & OUTCOME == WAITING
    }

    pub(crate) fn time_out(&self) -> bool {
        self.finish(TIMED_OUT)
    }

    fn finish(&self, to: u8) -> bool {
        let mut s = self.0.state.load(Ordering::Acquire);
        loop {
            if s & OUTCOME != WAITING {
                return false;
            }
            match self.0.state.compare_exchange_weak(
                s,
                to | (s & PARKED),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(cur) => s = cur,
            }
        }
        match &self.0.target {
            Target::Goroutine(g) => {
                if s & PARKED != 0 {
                    crate::runtime::ready(*g);
                }
            }
            Target::Thread(t) => t.unpark(),
        }
        true
    }

    /// The park's last step: from now on a winning wake readies us. False
    /// if the wait already ended (then the park is called off).
    fn mark_parked(&self) -> bool {
        self.0
            .state
            .compare_exchange(WAITING, PARKED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn outcome(&self) -> Option<Woke> {
        match self.0.state.load(Ordering::Acquire) & OUTCOME {
            WOKEN => Some(Woke::Woken),
            TIMED_OUT => Some(Woke::TimedOut),
            _ => None,
        }
    }
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
/// On a goroutine, during the runtime's shutdown the park unwinds instead
/// (see [`park`]).
pub fn park_with(
    reason: WaitReason,
    deadline: Option<Instant>,
    register: impl FnOnce(&Waker) -> bool,
) -> Woke {
    match current() {
        Some(g) => park_goroutine(g, reason, deadline, register),
        None => park_thread(deadline, register),
    }
}

fn park_goroutine(
    g: GRef,
    reason: WaitReason,
    deadline: Option<Instant>,
    register: impl FnOnce(&Waker) -> bool,
) -> Woke {
    let waker = Waker(Arc::new(Shared {
        state: AtomicU8::new(WAITING),
        target: Target::Goroutine(g),
    }));
    if deadline.is_some_and(|d| d <= Instant::now()) {
        // Already late: register nothing; a zero-length wait times out,
        // unless the condition already holds.
        let probe = Waker(Arc::new(Shared {
            state: AtomicU8::new(WAITING),
            target: Target::Goroutine(g),
        }));
        if !register(&probe) {
            return Woke::Woken;
        }
        return if probe.finish_quietly() {
            Woke::TimedOut
        } else {
            Woke::Woken
        };
    }
    // SAFETY: a running goroutine's Sched lives while it runs.
    let sched: &Sched = unsafe { &*(*g.as_ptr()).sched };
    // However the wait is left (also unwinding at shutdown), retire the
    // waker, so that a late wake() or the timer cannot ready this goroutine
    // after it has moved on.
    struct Retire<'a>(&'a Waker);
    impl Drop for Retire<'_> {
        fn drop(&mut self) {
            let _ = self.0.finish_quietly();
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
    park(reason, |_| {
        let register = register.take().expect("park_with: unlock ran twice");
        // Copies into this (g0) frame: the closure captures by reference.
        let deadline_copy: Option<Instant> = deadline;
        let sched_copy: &Sched = sched;
        let timer_waker = deadline_copy.map(|_| waker.clone());
        let own_waker = waker.clone();
        if !register(&own_waker) {
            declined = true;
            return false;
        }
        // Published, but nobody readies us before `mark_parked`: a wake or
        // the timer that wins first only records its outcome. Only g0-local
        // values from here on anyway.
        if let (Some(d), Some(w)) = (deadline_copy, timer_waker) {
            sched_copy.add_timer(d, w);
        }
        // The last step: if the wait already ended, call the park off.
        own_waker.mark_parked()
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
        crate::runtime::yield_now();
    }
}

impl Waker {
    /// Times out a waker that was registered but whose waiter never slept:
    /// true if the timeout won (no wake came in between).
    fn finish_quietly(&self) -> bool {
        let mut s = self.0.state.load(Ordering::Acquire);
        loop {
            if s & OUTCOME != WAITING {
                return false;
            }
            match self.0.state.compare_exchange_weak(
                s,
                TIMED_OUT | (s & PARKED),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(cur) => s = cur,
            }
        }
    }
}

fn park_thread(deadline: Option<Instant>, register: impl FnOnce(&Waker) -> bool) -> Woke {
    let waker = Waker(Arc::new(Shared {
        state: AtomicU8::new(WAITING),
        target: Target::Thread(std::thread::current()),
    }));
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
/// `time.Sleep`.
pub fn sleep(d: std::time::Duration) {
    let deadline = Instant::now() + d;
    while park_with(WaitReason::Sleep, Some(deadline), |_| true) != Woke::TimedOut {}
}

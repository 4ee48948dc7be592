//! How the layer parks: [`wait`] and its one-shot [`Signal`].
//!
//! A goroutine parks by `gort_sched::park` with a one-shot of our own; a
//! plain thread goes through `gort_sched::park_with`, wrapping its
//! `Waker`. The reason is a race in `park_with` on goroutines (reported,
//! see docs/sync.md "Needs from gort-sched"): after `register` has
//! published the waker, its unlock closure still reads `deadline`, the
//! Sched pointer and the waker from the parking goroutine's stack (to arm
//! the timer), and by then another thread may have woken the goroutine and
//! resumed it on that stack. Under the rendezvous MPMC test at procs 4 that
//! corrupted the heap. Our own park touches nothing of the goroutine once
//! it can be woken.
//!
//! A goroutine's deadline is kept by a helper goroutine that sleeps (a
//! `park_with` that publishes nothing, so the race cannot happen) in steps
//! of at most [`TIMER_STEP`] and then times the signal out; it leaves
//! within a step once the wait is over. This costs a goroutine per timed
//! wait that parks, until gort-sched's fix lets us hand the deadline to
//! `park_with` again.

use gort_sched::{current, park, park_with, ready, GRef, WaitReason, Waker, Woke};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The outcome bits: still waiting, or how the wait ended.
const WAITING: u8 = 0;
const WOKEN: u8 = 1;
const TIMED_OUT: u8 = 2;
/// The wait was left otherwise (unwound at shutdown): nobody readies it.
const OVER: u8 = 3;
const OUTCOME: u8 = 3;
/// Set by the parking goroutine as the last thing its park does: only
/// from then on does the winner of the one-shot ready it (before, the park
/// sees the outcome and does not sleep).
const PARKED: u8 = 4;

/// Longest sleep of a deadline helper before it checks whether its wait
/// is already over.
pub(crate) const TIMER_STEP: Duration = Duration::from_millis(10);

/// Must hold: the outcome bits leave WAITING once (CAS); the winner readies
/// the goroutine iff PARKED was set when it won; PARKED is set only by the
/// goroutine's own park, by a CAS from exactly WAITING, and after that CAS
/// the park touches nothing of the goroutine's stack.
struct GoroutineSignal {
    state: AtomicU8,
    g: GRef,
}

impl GoroutineSignal {
    /// Ends the wait with `outcome` if it still waits, readying the
    /// goroutine if it sleeps. Returns whether this call won.
    fn finish(&self, outcome: u8) -> bool {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & OUTCOME != WAITING {
                return false;
            }
            match self
                .state
                .compare_exchange_weak(s, outcome, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if s & PARKED != 0 && outcome != OVER {
                        ready(self.g);
                    }
                    return true;
                }
                Err(cur) => s = cur,
            }
        }
    }

    fn outcome(&self) -> u8 {
        self.state.load(Ordering::Acquire) & OUTCOME
    }
}

/// Wakes one waiter once: of all `wake` calls (and a deadline), the first
/// wins. Cheap to clone; clones share the one-shot.
#[derive(Clone)]
pub struct Signal(Repr);

#[derive(Clone)]
enum Repr {
    Goroutine(Arc<GoroutineSignal>),
    Waker(Waker),
}

impl Signal {
    /// Makes the waiter runnable unless someone (or the deadline) already
    /// did; returns whether this call won.
    pub(crate) fn wake(&self) -> bool {
        match &self.0 {
            Repr::Goroutine(s) => s.finish(WOKEN),
            Repr::Waker(w) => w.wake(),
        }
    }

    /// Whether the waiter still waits (a snapshot).
    pub(crate) fn is_waiting(&self) -> bool {
        match &self.0 {
            Repr::Goroutine(s) => s.outcome() == WAITING,
            Repr::Waker(w) => w.is_waiting(),
        }
    }
}

/// `park_with`'s contract: `register(&signal)` runs once the waiter cannot
/// miss a wakeup, publishes a clone and returns true, or returns false
/// without publishing (then this returns `Woken` at once). `Woken` means a
/// `wake` won; `TimedOut`, that the deadline did.
pub(crate) fn wait(
    reason: WaitReason,
    deadline: Option<Instant>,
    register: impl FnOnce(&Signal) -> bool,
) -> Woke {
    match current() {
        Some(g) => wait_goroutine(g, reason, deadline, register),
        None => park_with(reason, deadline, |w| {
            register(&Signal(Repr::Waker(w.clone())))
        }),
    }
}

/// Ends the one-shot when the wait is left in any way (also unwinding at
/// shutdown), so that neither a late wake nor the deadline helper readies
/// the goroutine afterwards.
struct Over(Arc<GoroutineSignal>);

impl Drop for Over {
    fn drop(&mut self) {
        self.0.finish(OVER);
    }
}

fn wait_goroutine(
    g: GRef,
    reason: WaitReason,
    deadline: Option<Instant>,
    register: impl FnOnce(&Signal) -> bool,
) -> Woke {
    let shared = Arc::new(GoroutineSignal {
        state: AtomicU8::new(WAITING),
        g,
    });
    let signal = Signal(Repr::Goroutine(shared.clone()));
    let _over = Over(shared.clone());
    let mut register = Some(register);
    let mut declined = false;
    if let Some(d) = deadline {
        // Armed before parking: if it fires first, the park sees the
        // outcome and does not sleep.
        let s = shared.clone();
        gort_sched::go(move || deadline_helper(d, s));
    }
    loop {
        park(reason, |_| {
            if let Some(r) = register.take() {
                if !r(&signal) {
                    declined = true;
                    return false;
                }
            }
            // Nobody readies us before PARKED is set, so until this CAS
            // the goroutine's stack is ours to read; after it, nothing.
            shared
                .state
                .compare_exchange(WAITING, PARKED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        });
        if declined {
            return Woke::Woken;
        }
        match shared.outcome() {
            WOKEN => return Woke::Woken,
            TIMED_OUT => return Woke::TimedOut,
            _ => {}
        }
        // Readied by someone else (a stale ready of a reused G): take
        // PARKED back before parking again; if that fails, the outcome
        // came meanwhile and the next round's CAS fails too.
        let _ = shared
            .state
            .compare_exchange(PARKED, WAITING, Ordering::AcqRel, Ordering::Acquire);
    }
}

fn deadline_helper(deadline: Instant, s: Arc<GoroutineSignal>) {
    loop {
        if s.outcome() != WAITING {
            return;
        }
        let now = Instant::now();
        if now >= deadline {
            s.finish(TIMED_OUT);
            return;
        }
        gort_sched::sleep((deadline - now).min(TIMER_STEP));
    }
}

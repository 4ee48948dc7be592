//! How the layer parks: [`wait`] and its one-shot [`Signal`].
//!
//! A goroutine that waits without a deadline parks by `gort_sched::park`
//! with a one-shot of our own; everything else (plain threads, deadlines)
//! goes through `gort_sched::park_with`, wrapping its `Waker`. The reason
//! is a race in `park_with` (reported, see docs/sync.md "Needs from
//! gort-sched"): after `register` has published the waker, its unlock
//! closure still reads `deadline` and the waker from the parking
//! goroutine's stack (to arm the timer), and by then another thread may
//! have woken the goroutine and resumed it on that stack. Under the
//! rendezvous MPMC test at procs 4 that corrupted the heap. Our own park
//! touches nothing of the goroutine once the signal is published.

use gort_sched::{current, park, park_with, ready, GRef, WaitReason, Waker, Woke};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

const WAITING: u8 = 0;
const WOKEN: u8 = 1;

/// Must hold: `state` leaves WAITING once (CAS), and only the winner
/// readies the goroutine.
struct GoroutineSignal {
    state: AtomicU8,
    g: GRef,
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
            Repr::Goroutine(s) => {
                if s.state
                    .compare_exchange(WAITING, WOKEN, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    return false;
                }
                ready(s.g);
                true
            }
            Repr::Waker(w) => w.wake(),
        }
    }

    /// Whether the waiter still waits (a snapshot).
    pub(crate) fn is_waiting(&self) -> bool {
        match &self.0 {
            Repr::Goroutine(s) => s.state.load(Ordering::Acquire) == WAITING,
            Repr::Waker(w) => w.is_waiting(),
        }
    }
}

/// `park_with`'s contract: `register(&signal)` runs once the waiter cannot
/// miss a wakeup, publishes a clone and returns true, or returns false
/// without publishing (then this returns `Woken` at once). `Woken` means a
/// `wake` won.
pub(crate) fn wait(
    reason: WaitReason,
    deadline: Option<Instant>,
    register: impl FnOnce(&Signal) -> bool,
) -> Woke {
    if deadline.is_none() {
        if let Some(g) = current() {
            return wait_goroutine(g, reason, register);
        }
    }
    park_with(reason, deadline, |w| {
        register(&Signal(Repr::Waker(w.clone())))
    })
}

fn wait_goroutine(g: GRef, reason: WaitReason, register: impl FnOnce(&Signal) -> bool) -> Woke {
    let shared = Arc::new(GoroutineSignal {
        state: AtomicU8::new(WAITING),
        g,
    });
    let signal = Signal(Repr::Goroutine(shared.clone()));
    let mut register = Some(register);
    let mut declined = false;
    loop {
        park(reason, |_| match register.take() {
            Some(r) => {
                // Once `r` has published the signal this goroutine may be
                // running elsewhere: read or write nothing of its stack.
                if r(&signal) {
                    return true;
                }
                declined = true;
                false
            }
            // A stale ready (from before a shutdown of a reused G) woke
            // us: park again unless our own wake came.
            None => shared.state.load(Ordering::Acquire) == WAITING,
        });
        if declined || shared.state.load(Ordering::Acquire) == WOKEN {
            return Woke::Woken;
        }
    }
}

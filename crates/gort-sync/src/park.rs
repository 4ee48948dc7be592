//! How the layer parks: [`wait`] and its one-shot [`Signal`], a thin
//! wrapper over `gort_sched::park_with` and its `Waker`, for goroutines and
//! plain threads alike.
//!
//! (An earlier version parked goroutines with a protocol of its own and
//! kept deadlines with a helper goroutine, while `park_with` read the
//! parked goroutine's stack after publishing its waker; gort-sched fixed
//! that, and retires a waker whose wait is left by unwinding, so the
//! wrapper is all that is left.)

use gort_sched::{park_with, park_with_eager, WaitReason, Waker, Woke};
use std::time::Instant;

/// Wakes one waiter once: of all `wake` calls (and a deadline), the first
/// wins. Cheap to clone; clones share the one-shot.
///
/// Must hold: exactly a `Waker` (repr(transparent)), so that `as_signal`
/// can lend one without a clone.
#[derive(Clone)]
#[repr(transparent)]
pub struct Signal(Waker);

/// Lends a `Waker` as a `Signal`.
fn as_signal(w: &Waker) -> &Signal {
    // SAFETY: Signal is a repr(transparent) wrapper of Waker.
    unsafe { &*(w as *const Waker).cast::<Signal>() }
}

impl Signal {
    /// Makes the waiter runnable unless someone (or the deadline) already
    /// did; returns whether this call won.
    pub(crate) fn wake(&self) -> bool {
        self.0.wake()
    }

    /// Whether the waiter still waits (a snapshot).
    pub(crate) fn is_waiting(&self) -> bool {
        self.0.is_waiting()
    }
}

/// `park_with_eager`'s contract: `register(&signal)` runs once the waiter
/// cannot miss a wakeup, publishes a clone and returns true, or returns
/// false without publishing (then this returns `Woken` at once);
/// publishing (usually: unlocking the structure it queued the signal in)
/// must be its last access to anything on the waiting goroutine's stack,
/// since a wake may ready the goroutine at once. `Woken` means a `wake`
/// won; `TimedOut`, that the deadline did.
pub(crate) fn wait(
    reason: WaitReason,
    deadline: Option<Instant>,
    register: impl FnOnce(&Signal) -> bool,
) -> Woke {
    park_with_eager(reason, deadline, |w| register(as_signal(w)))
}

/// [`wait`] for a `register` that publishes the signal in several places
/// (`select!`): `park_with`'s contract, where a wake that wins before
/// `register` returns (also one by `register` itself) only records its
/// outcome, and the goroutine is readied only after `register` returned.
pub(crate) fn wait_deferred(
    reason: WaitReason,
    deadline: Option<Instant>,
    register: impl FnOnce(&Signal) -> bool,
) -> Woke {
    park_with(reason, deadline, |w| register(as_signal(w)))
}

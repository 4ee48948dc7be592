//! How the layer parks: [`wait`] and its one-shot [`Signal`], a thin
//! wrapper over `gort_sched::park::park_with` and its `Waker`, for goroutines and
//! plain threads alike.
//!
//! (An earlier version parked goroutines with a protocol of its own and
//! kept deadlines with a helper goroutine, while `park_with` read the
//! parked goroutine's stack after publishing its waker; gort-sched fixed
//! that, and retires a waker whose wait is left by unwinding, so the
//! wrapper is all that is left.)

#[cfg(not(loom))]
use gort_sched::park::{park_with, park_with_eager, Waker};
use gort_sched::park::{WaitReason, Woke};
use std::time::Instant;

/// Wakes one waiter once: of all `wake` calls (and a deadline), the first
/// wins. Cheap to clone; clones share the one-shot.
///
/// Must hold: exactly a `Waker` (repr(transparent)), so that `as_signal`
/// can lend one without a clone.
#[cfg(not(loom))]
#[derive(Clone)]
#[repr(transparent)]
pub struct Signal(Waker);

/// Lends a `Waker` as a `Signal`.
#[cfg(not(loom))]
fn as_signal(w: &Waker) -> &Signal {
    // SAFETY: Signal is a repr(transparent) wrapper of Waker.
    unsafe { &*(w as *const Waker).cast::<Signal>() }
}

#[cfg(not(loom))]
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
#[cfg(not(loom))]
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
#[cfg(not(loom))]
pub(crate) fn wait_deferred(
    reason: WaitReason,
    deadline: Option<Instant>,
    register: impl FnOnce(&Signal) -> bool,
) -> Woke {
    park_with(reason, deadline, |w| register(as_signal(w)))
}

// ---- the loom model's one-shot --------------------------------------------------
//
// Under `--cfg loom` (tests/loom_chan.rs) the waiters are loom threads and
// the one-shot is modelled here: a state word that the first `wake` (or
// the deadline) moves out of WAITING by a CAS, as gort-sched's waker does
// in a G's state word. A deadline fires at whatever point the model
// chooses: right after registering, the waiter tries the deadline's CAS
// itself, which races every wake. Both kinds of park (eager and deferred)
// are the same here: a loom thread never runs before it is readied.

#[cfg(loom)]
mod model {
    use loom::sync::atomic::{AtomicU8, Ordering};
    use loom::sync::Arc;

    pub(super) const WAITING: u8 = 0;
    const WOKEN: u8 = 1;
    pub(super) const TIMED_OUT: u8 = 2;

    pub(super) struct OneShot {
        pub(super) state: AtomicU8,
        pub(super) thread: loom::thread::Thread,
    }

    /// The model's one-shot: shared by the waiter and every queue it is in.
    #[derive(Clone)]
    pub struct Signal(pub(super) Arc<OneShot>);

    impl Signal {
        pub(crate) fn wake(&self) -> bool {
            let won = self
                .0
                .state
                .compare_exchange(WAITING, WOKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if won {
                self.0.thread.unpark();
            }
            won
        }

        pub(crate) fn is_waiting(&self) -> bool {
            self.0.state.load(Ordering::Acquire) == WAITING
        }
    }
}

#[cfg(loom)]
pub use model::Signal;

#[cfg(loom)]
pub(crate) fn wait(
    _reason: WaitReason,
    deadline: Option<Instant>,
    register: impl FnOnce(&Signal) -> bool,
) -> Woke {
    use loom::sync::atomic::Ordering;
    let one = loom::sync::Arc::new(model::OneShot {
        state: loom::sync::atomic::AtomicU8::new(model::WAITING),
        thread: loom::thread::current(),
    });
    if !register(&Signal(one.clone())) {
        return Woke::Woken;
    }
    if deadline.is_some()
        && one
            .state
            .compare_exchange(
                model::WAITING,
                model::TIMED_OUT,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    {
        return Woke::TimedOut;
    }
    while one.state.load(Ordering::Acquire) == model::WAITING {
        loom::thread::park();
    }
    Woke::Woken
}

#[cfg(loom)]
pub(crate) fn wait_deferred(
    reason: WaitReason,
    deadline: Option<Instant>,
    register: impl FnOnce(&Signal) -> bool,
) -> Woke {
    wait(reason, deadline, register)
}

//! The one-shot that wakes a parked goroutine or thread: [`Waker`], and
//! how a wait ended, [`Woke`]. Parking with one is `park_with` (park.rs).
//!
//! A `Waker` is a one-shot: of its `wake()` calls and its deadline, the
//! first wins, and only that one makes the waiter runnable. That is what a
//! channel needs (a sender skips a receiver whose timeout already fired)
//! and what `select!` needs (one waker registered on several channels).
//!
//! A goroutine's one-shot lives in its G, next to its status, in one
//! atomic word (gstate.rs, modelled by `tests/loom_gstate.rs`), so waking
//! a goroutine costs no allocation and one CAS: the number of the G's
//! current wait, an outcome and a PARKED bit. A waker names one wait
//! (G, wait number: two words); `wake` is a CAS from exactly that wait
//! with no outcome, so a waker kept by a queue or a timer after its wait
//! ended (or after the G was reused) can never win again. If the goroutine
//! is parked in the wait, the same CAS makes it Runnable, and the winner
//! queues it (`Sched::ready_won`). A plain thread's one-shot is shared and
//! reference-counted (`Shared`), and it blocks in `std::thread::park`.

use crate::g::{GRef, G};
use crate::gstate::{NO_OUTCOME as WAITING, TIMED_OUT, WOKEN};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// A thread's one-shot (and the probe of a goroutine whose deadline has
/// already passed, which has nobody to wake: `thread` None).
///
/// Must hold: `state` leaves WAITING exactly once (CAS).
pub(crate) struct Shared {
    pub(crate) state: AtomicU8,
    pub(crate) thread: Option<std::thread::Thread>,
}

#[derive(Clone)]
pub(crate) enum Target {
    /// A goroutine's wait, identified by its number (the bits of
    /// `G::state` under WAIT_MASK while it waits: no outcome yet).
    Goroutine {
        g: GRef,
        word: u64,
    },
    Shared(Arc<Shared>),
}

/// Wakes one parked goroutine or thread, once. Cheap to clone (a
/// goroutine's waker is two words, no allocation); clones share the
/// one-shot.
///
/// A goroutine's one-shot lives in its G (`G::state`, next to its status):
/// the number of its current wait, an outcome and the PARKED bit. A waker
/// names one wait; `wake` is a CAS from exactly that wait with no outcome,
/// so of all wakes and the deadline the first wins, and a waker of an
/// earlier wait (kept by a channel queue or a timer after the wait ended)
/// can never win again. If the goroutine is parked in the wait (PARKED,
/// Waiting), the same CAS makes it Runnable, and the winner queues it.
#[derive(Clone)]
pub struct Waker(pub(crate) Target);

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker")
            .field("waiting", &self.is_waiting())
            .finish()
    }
}

/// How a [`park_with`](crate::park::park_with) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woke {
    /// A `Waker::wake` won (or `register` declined to park).
    Woken,
    /// The deadline passed first.
    TimedOut,
}

pub(crate) fn g_of(g: GRef) -> &'static G {
    // SAFETY: Gs live as long as their runtime, which outlives every
    // waker of its goroutines that can still win (a waker names one wait,
    // and a runtime ends only when every wait has ended).
    unsafe { &*g.as_ptr() }
}

impl Waker {
    /// Makes the waiter runnable, unless someone else (another `wake`, or
    /// the deadline) already did. Returns whether this call was the one.
    pub fn wake(&self) -> bool {
        self.finish(WOKEN)
    }

    /// Whether the waiter is still waiting (a snapshot).
    pub fn is_waiting(&self) -> bool {
        match &self.0 {
            Target::Goroutine { g, word } => g_of(*g).state().is_waiting(*word),
            Target::Shared(s) => s.state.load(Ordering::Acquire) == WAITING,
        }
    }

    /// The goroutine this waker wakes, if it wakes one.
    pub(crate) fn goroutine(&self) -> Option<GRef> {
        match &self.0 {
            Target::Goroutine { g, .. } => Some(*g),
            Target::Shared(_) => None,
        }
    }

    /// `wake` for a goroutine's waker, without queueing it: true if this
    /// call won and made the goroutine runnable, which the caller must
    /// then queue (the netpoller's batch, `Sched::inject_batch`). A win
    /// over a goroutine not yet parked only records the outcome (false).
    pub(crate) fn win_only(&self) -> bool {
        match &self.0 {
            Target::Goroutine { g, word } => g_of(*g).state().win(*word, WOKEN) == Some(true),
            Target::Shared(_) => {
                self.wake();
                false
            }
        }
    }

    pub(crate) fn time_out(&self) -> bool {
        self.finish(TIMED_OUT)
    }

    pub(crate) fn finish(&self, to: u8) -> bool {
        match &self.0 {
            Target::Goroutine { g, word } => {
                let Some(readied) = g_of(*g).state().win(*word, to) else {
                    return false;
                };
                // Readied: the goroutine was parked in this wait (it became
                // Waiting before its unlock function published the waker,
                // and a park is never called off once PARKED is set), and
                // the winning CAS made it Runnable: queue it.
                if readied {
                    // SAFETY: a parked goroutine's Sched lives while it
                    // waits.
                    unsafe { &*g_of(*g).sched() }.ready_won(*g);
                }
                true
            }
            Target::Shared(s) => {
                if s.state
                    .compare_exchange(WAITING, to, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    return false;
                }
                if let Some(t) = &s.thread {
                    t.unpark();
                }
                true
            }
        }
    }

    /// Ends a wait whose waiter does not sleep (or no longer): true if this
    /// call won, as a timeout; nobody is readied.
    pub(crate) fn finish_quietly(&self) -> bool {
        match &self.0 {
            Target::Goroutine { g, word } => g_of(*g).state().win_quietly(*word, TIMED_OUT),
            Target::Shared(s) => s
                .state
                .compare_exchange(WAITING, TIMED_OUT, Ordering::AcqRel, Ordering::Acquire)
                .is_ok(),
        }
    }

    pub(crate) fn outcome(&self) -> Option<Woke> {
        let bits = match &self.0 {
            Target::Goroutine { g, .. } => g_of(*g).state().outcome(),
            Target::Shared(s) => s.state.load(Ordering::Acquire),
        };
        match bits {
            WOKEN => Some(Woke::Woken),
            TIMED_OUT => Some(Woke::TimedOut),
            _ => None,
        }
    }

    /// A deferred park's last step: from now on a winning wake readies us.
    /// False if the wait already ended (then the park is called off).
    pub(crate) fn mark_parked(&self) -> bool {
        match &self.0 {
            Target::Goroutine { g, word } => g_of(*g).state().mark_parked(*word),
            Target::Shared(_) => true,
        }
    }

    pub(crate) fn shared(thread: Option<std::thread::Thread>) -> Waker {
        Waker(Target::Shared(Arc::new(Shared {
            state: AtomicU8::new(WAITING),
            thread,
        })))
    }
}

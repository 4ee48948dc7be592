//! One wakeup primitive for goroutines and plain threads, with an optional
//! deadline: [`park_with`] and [`Waker`]. The layers above (channels,
//! select, Mutex, WaitGroup, sleep) are built on it.
//!
//! A `Waker` is a one-shot: of its `wake()` calls and its deadline, the
//! first wins, and only that one makes the waiter runnable. That is what a
//! channel needs (a sender skips a receiver whose timeout already fired)
//! and what `select!` needs (one waker registered on several channels).

use crate::g::{GRef, WaitReason, G};
use crate::runtime::{current, park_g};
use crate::sched::Sched;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

// The outcomes of a one-shot: in a thread's `Shared::state`, and in a
// goroutine's `G::state` (gstate.rs: next to its status, PARKED and the
// number of its current wait).
//
// PARKED: the goroutine is parked in this wait, and the wake that wins
// makes it Runnable (in the same CAS) and queues it. Set from the start
// by an eager wait ([`park_with_eager`]), by the park's last step in a
// deferred one ([`park_with`]); a wake that wins before it only records
// its outcome, and the park, seeing it, does not sleep.
use crate::gstate::{NO_OUTCOME as WAITING, TIMED_OUT, WOKEN};

/// A thread's one-shot (and the probe of a goroutine whose deadline has
/// already passed, which has nobody to wake: `thread` None).
///
/// Must hold: `state` leaves WAITING exactly once (CAS).
struct Shared {
    state: AtomicU8,
    thread: Option<std::thread::Thread>,
}

#[derive(Clone)]
enum Target {
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
pub struct Waker(Target);

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker")
            .field("waiting", &self.is_waiting())
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

fn g_of(g: GRef) -> &'static G {
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

    pub(crate) fn time_out(&self) -> bool {
        self.finish(TIMED_OUT)
    }

    fn finish(&self, to: u8) -> bool {
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
                    unsafe { &*g_of(*g).sched }.ready_won(*g);
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
    fn finish_quietly(&self) -> bool {
        match &self.0 {
            Target::Goroutine { g, word } => g_of(*g).state().win_quietly(*word, TIMED_OUT),
            Target::Shared(s) => s
                .state
                .compare_exchange(WAITING, TIMED_OUT, Ordering::AcqRel, Ordering::Acquire)
                .is_ok(),
        }
    }

    fn outcome(&self) -> Option<Woke> {
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
    fn mark_parked(&self) -> bool {
        match &self.0 {
            Target::Goroutine { g, word } => g_of(*g).state().mark_parked(*word),
            Target::Shared(_) => true,
        }
    }

    fn shared(thread: Option<std::thread::Thread>) -> Waker {
        Waker(Target::Shared(Arc::new(Shared {
            state: AtomicU8::new(WAITING),
            thread,
        })))
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
/// A wake that wins while `register` still runs (also one by `register`
/// itself, as `select!` claims its own waker when an arm turns out ready
/// mid-way) only records its outcome; the goroutine is readied only by a
/// wake that wins after `register` returned. So `register` may publish the
/// waker in several places and touch the goroutine's stack in between.
/// That costs one more atomic step than [`park_with_eager`].
///
/// On a goroutine, during the runtime's shutdown the park unwinds instead
/// (see [`park`](crate::park)).
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
fn park_goroutine(
    g: GRef,
    reason: WaitReason,
    deadline: Option<Instant>,
    eager: bool,
    register: impl FnOnce(&Waker) -> bool,
) -> Woke {
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
    let sched: &Sched = unsafe { &*gr.sched };
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
        crate::runtime::yield_now();
    }
}

fn park_thread(deadline: Option<Instant>, register: impl FnOnce(&Waker) -> bool) -> Woke {
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
/// `time.Sleep`.
pub fn sleep(d: std::time::Duration) {
    let deadline = Instant::now() + d;
    while park_with(WaitReason::Sleep, Some(deadline), |_| true) != Woke::TimedOut {}
}

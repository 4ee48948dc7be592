//! Go's `sync.Once`, with std's name for the call: `call_once`.
//!
//! Go's design, kept: a `done` flag read on the fast path (one acquire
//! load once the function ran), and a `Mutex` on the slow path. The
//! mutex matters: a bare compare-and-swap on `done` would let a second
//! caller return while the first is still running the function; every
//! caller must return only after the function finished, so the others
//! park on the mutex until it is done. `done` is set after the function
//! returns (or unwinds: Go's rule, "if f panics, Do considers it to have
//! returned"), under the mutex.
//!
//! Added to Go's: a call from inside the function (on the goroutine or
//! thread running it) would wait for itself for ever; Go reports the
//! resulting deadlock, here the call panics at once with a message that
//! names the mistake.
//!
//! Rejected: std's `Once` (it blocks the thread, and poisons on panic,
//! which Go does not) and a state word with its own waiter queue (the
//! Mutex already queues fairly, with Go's starvation mode, and the slow
//! path runs once per waiter in the life of a Once).

use crate::mutex::Mutex;
use gort_sched::park::GRef;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::PoisonError;
use std::thread::ThreadId;

/// Runs a function once, however many goroutines (or threads) call it;
/// every caller returns after it finished. Go's `sync.Once`.
///
/// If the function panics, the `Once` counts as done (Go's rule, not
/// std's poisoning): later calls return without running anything.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use gort_sync::sync::Once;
///
/// static INIT: Once = Once::new();
/// static RUNS: AtomicUsize = AtomicUsize::new(0);
///
/// gort_sched::run(|| {
///     let hs: Vec<_> = (0..8)
///         .map(|_| gort_sched::go(|| INIT.call_once(|| { RUNS.fetch_add(1, Ordering::SeqCst); })))
///         .collect();
///     hs.into_iter().for_each(|h| h.join().unwrap());
/// })
/// .unwrap();
/// assert_eq!(RUNS.load(Ordering::SeqCst), 1);
/// assert!(INIT.is_completed());
/// ```
pub struct Once {
    /// Set (Release, under `m`) after the function returned or unwound;
    /// never cleared.
    done: AtomicBool,
    m: Mutex<()>,
    /// Who runs the function now (under `m`'s holder's control: written
    /// by it only), to catch a recursive call.
    runner: std::sync::Mutex<Option<Runner>>,
}

/// A goroutine or a plain thread.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Runner {
    Goroutine(GRef),
    Thread(ThreadId),
}

impl Runner {
    fn current() -> Runner {
        match gort_sched::park::current() {
            Some(g) => Runner::Goroutine(g),
            None => Runner::Thread(std::thread::current().id()),
        }
    }
}

/// Marks the Once done when the function returns or unwinds.
struct Finish<'a>(&'a Once);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        *self.0.runner() = None;
        self.0.done.store(true, Ordering::Release);
    }
}

impl Once {
    /// A `Once` that has not run.
    pub const fn new() -> Self {
        Once {
            done: AtomicBool::new(false),
            m: Mutex::new(()),
            runner: std::sync::Mutex::new(None),
        }
    }

    fn runner(&self) -> std::sync::MutexGuard<'_, Option<Runner>> {
        self.runner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` if no call ran a function on this `Once` before; returns
    /// once that one call finished (parking the goroutine, or blocking the
    /// thread, while another caller runs it).
    ///
    /// # Panics
    /// If called from inside the function it is running (that would wait
    /// for itself for ever).
    #[inline]
    pub fn call_once(&self, f: impl FnOnce()) {
        if !self.done.load(Ordering::Acquire) {
            self.call_once_slow(f);
        }
    }

    #[cold]
    fn call_once_slow(&self, f: impl FnOnce()) {
        let me = Runner::current();
        if *self.runner() == Some(me) {
            panic!("Once::call_once called from inside its own function: it would wait for itself");
        }
        let _m = self.m.lock();
        if self.done.load(Ordering::Acquire) {
            return;
        }
        *self.runner() = Some(me);
        let _finish = Finish(self);
        f();
    }

    /// Whether a function ran (returned or panicked) on this `Once`.
    pub fn is_completed(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
}

impl Default for Once {
    fn default() -> Self {
        Once::new()
    }
}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Once")
            .field("done", &self.is_completed())
            .finish()
    }
}

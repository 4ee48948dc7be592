//! Per-thread state, and the per-goroutine part of it ([`UnwindState`]) that
//! the scheduler moves with a goroutine: quiet depth, the location the hook
//! recorded, and the chain of resume points ([`ResumePoint`], whose
//! protocol is in resume.rs).
//!
//! Goroutines migrate between threads, and the compiler assumes a function
//! never changes threads, so it may compute a thread-local's address once
//! and reuse it after a call that switched stacks and came back on another
//! thread. Every access here therefore goes through a function that is
//! never inlined: each call computes the address on the thread it runs on.

use std::any::Any;
use std::cell::Cell;
use std::ptr;

use gort_arch::Context;

use crate::location::Location;
use crate::panic::Panic;

/// This thread's state. Every field is a `Cell` of a `Copy` value and the
/// thread-local has a `const` initializer and no destructor, so an access
/// is a load or store at a fixed offset from the thread pointer, valid at
/// any time in the thread's life.
///
/// Must hold: `current` is null (the thread's own execution uses `own`) or
/// points to the [`UnwindState`] of the execution (goroutine) running on
/// this thread, installed by [`install_state`], which stays valid until it
/// is replaced; `last_file` is a cache, not per execution.
struct ThreadState {
    /// The running execution's state; null: `own`.
    current: Cell<*const UnwindState>,
    /// The state of the thread's own execution (its original stack).
    own: UnwindState,
    /// The last file name the hook interned (a cache; not per goroutine).
    last_file: Cell<&'static str>,
}

thread_local! {
    static STATE: ThreadState = const {
        ThreadState {
            current: Cell::new(ptr::null()),
            own: UnwindState::new(),
            last_file: Cell::new(""),
        }
    };
}

/// Runs `f` on the state of the execution running on this thread.
#[inline(always)]
fn with_state<R>(f: impl FnOnce(&UnwindState) -> R) -> R {
    STATE.with(|s| {
        let cur = s.current.get();
        if cur.is_null() {
            f(&s.own)
        } else {
            // SAFETY: an installed state stays valid until it is replaced
            // (install_state's contract), and only this thread uses it
            // while it is installed here.
            f(unsafe { &*cur })
        }
    })
}

/// The per-goroutine part of gort-unwind's state: the quiet-scope depth,
/// the location of a panic that is unwinding and not yet caught, and the
/// chain of resume points.
///
/// The scheduler keeps one per goroutine and makes it the thread's state
/// while the goroutine runs: [`install_state`] (one pointer store per
/// switch), or by value with [`swap_thread_state`]. This state belongs to
/// the execution, not to the OS thread. A fresh goroutine starts with
/// [`UnwindState::new`].
///
/// Must hold: `resume` is null or points to a `ResumePoint` in a live
/// frame of the goroutine this state belongs to; `quiet` counts the quiet
/// scopes that execution is in.
#[derive(Debug)]
pub struct UnwindState {
    /// Quiet scopes entered and not left: `recover`, `catch(true, ..)`.
    quiet: Cell<u32>,
    /// Location of the last panic that the hook saw and no catch took yet.
    location: Cell<Option<Location>>,
    /// The innermost resume point.
    resume: Cell<*mut ResumePoint>,
}

// SAFETY: the resume chain points into the owning goroutine's own frames;
// moving the state to another thread together with that goroutine (which is
// what the scheduler does) keeps those frames live and reachable only by it.
unsafe impl Send for UnwindState {}

impl UnwindState {
    /// The state of an execution that is in no quiet scope, has no pending
    /// panic location and no resume point.
    pub const fn new() -> UnwindState {
        UnwindState {
            quiet: Cell::new(0),
            location: Cell::new(None),
            resume: Cell::new(ptr::null_mut()),
        }
    }

    /// True when the execution has a resume point (it is inside a call that
    /// a callback's panic can unwind to). A goroutine that finished must not.
    pub fn has_resume_point(&self) -> bool {
        !self.resume.get().is_null()
    }

    /// How many quiet scopes ([`recover`](crate::recover), quiet
    /// [`catch`](crate::catch)) the execution is inside.
    pub fn quiet_depth(&self) -> u32 {
        self.quiet.get()
    }

    fn replace(&self, new: UnwindState) -> UnwindState {
        UnwindState {
            quiet: Cell::new(self.quiet.replace(new.quiet.get())),
            location: Cell::new(self.location.replace(new.location.get())),
            resume: Cell::new(self.resume.replace(new.resume.get())),
        }
    }
}

impl Default for UnwindState {
    fn default() -> Self {
        UnwindState::new()
    }
}

/// Makes `state` the state of the execution running on this thread (null:
/// the thread's own) and returns the one installed before (null for the
/// thread's own). One pointer store: the scheduler calls it at every switch,
/// with the resumed goroutine's state before switching to it and with the
/// returned pointer when it is back.
///
/// A goroutine that is unwinding a panic never parks on one thread and
/// resumes on another (design brief: std's panic count is per thread), so
/// the location the panic hook records is always read back on the thread
/// that wrote it; it travels in the state only so that a switch on the
/// same thread does not lose it.
///
/// # Safety
///
/// `state` must be null or point to the state of the execution about to
/// run on this thread, valid and used by no other thread until it is
/// replaced here; and the previous pointer must be installed again before
/// the execution it belongs to runs again: a resume chain installed under
/// the wrong execution would let
/// [`unwind_to_resume_point`](crate::unwind_to_resume_point) switch into
/// frames that are not there.
#[inline(never)]
pub unsafe fn install_state(state: *const UnwindState) -> *const UnwindState {
    STATE.with(|s| s.current.replace(state))
}

/// Installs `new` as the state of the execution running on this thread,
/// by value, and returns the previous one (for schedulers that keep the
/// state elsewhere; gort-sched uses [`install_state`]).
///
/// One call per switch suffices: `swap_thread_state(next)` returns the
/// state of the execution being suspended.
///
/// # Safety
///
/// `new` must be the state that the execution about to run on this thread
/// had when it was last suspended (or [`UnwindState::new`] for a fresh
/// one), and the returned state must be given back to the execution that
/// was running, before it runs again (see [`install_state`]).
#[inline(never)]
pub unsafe fn swap_thread_state(new: UnwindState) -> UnwindState {
    with_state(|s| s.replace(new))
}

/// Whether the execution running on this thread has a resume point: a
/// panic in a callback from C here has a Rust caller to unwind to. The C
/// bridge asks this on a thread it did not create.
#[inline(never)]
pub fn has_resume_point() -> bool {
    with_state(|s| !s.resume.get().is_null())
}

#[inline(never)]
pub(crate) fn quiet_enter() {
    with_state(|s| s.quiet.set(s.quiet.get() + 1));
}

#[inline(never)]
pub(crate) fn quiet_exit() {
    with_state(|s| {
        let q = s.quiet.get();
        debug_assert!(q > 0, "quiet scope left more often than entered");
        s.quiet.set(q.saturating_sub(1));
    });
}

#[inline(never)]
pub(crate) fn is_quiet() -> bool {
    with_state(|s| s.quiet.get() > 0)
}

#[inline(never)]
pub(crate) fn set_location(loc: Option<Location>) {
    with_state(|s| s.location.set(loc));
}

#[inline(never)]
pub(crate) fn take_location() -> Option<Location> {
    with_state(|s| s.location.take())
}

/// Links `rp` as the innermost resume point of the running execution,
/// recording the previous head and the quiet depth in it.
///
/// # Safety
/// `rp` is a live record that stays at its address until
/// [`pop_resume_point`] unlinks it.
#[inline(never)]
pub(crate) unsafe fn push_resume_point(rp: *mut ResumePoint) {
    with_state(|s| {
        // SAFETY: the caller's contract.
        unsafe { (*rp).link(s.resume.get(), s.quiet.get()) };
        s.resume.set(rp);
    })
}

/// Unlinks `rp`; false (and nothing changed) if it is not the innermost.
///
/// # Safety
/// `rp` was linked by [`push_resume_point`] and is still live.
#[inline(never)]
pub(crate) unsafe fn pop_resume_point(rp: *mut ResumePoint) -> bool {
    with_state(|s| {
        if s.resume.get() != rp {
            return false;
        }
        // SAFETY: the caller's contract.
        let (prev, quiet) = unsafe { (*rp).links() };
        debug_assert_eq!(
            s.quiet.get(),
            quiet,
            "a quiet scope was abandoned by a callback's panic: \
             a recover() in frames that a resume point skipped"
        );
        s.resume.set(prev);
        true
    })
}

#[inline(never)]
pub(crate) fn resume_head() -> *mut ResumePoint {
    with_state(|s| s.resume.get())
}

/// The interned file name that equals `file`, if it is the last one this
/// thread interned.
#[inline(never)]
pub(crate) fn cached_file(file: &str) -> Option<&'static str> {
    STATE.with(|s| {
        let last = s.last_file.get();
        (last == file && !last.is_empty()).then_some(last)
    })
}

#[inline(never)]
pub(crate) fn set_cached_file(file: &'static str) {
    STATE.with(|s| s.last_file.set(file));
}

/// A resume point: lives in the frame of [`call_with_resume_point`] while
/// the callee runs.
///
/// Must hold: while it is on the chain, this record is alive at a fixed
/// address (it is a local of the suspended caller); `caller` holds the
/// suspended caller from the callee's first instruction until someone
/// switches back to it, and nothing else resumes the caller; `panic` is
/// `Some` only after a switch back with [`PANICKED`].
pub(crate) struct ResumePoint {
    /// The next outer resume point of the same execution (null: none).
    pub(crate) prev: *mut ResumePoint,
    /// The caller, suspended at its switch into the callee.
    pub(crate) caller: Context,
    /// The panic that unwound to this resume point.
    pub(crate) panic: Option<Panic>,
    /// The quiet depth when the resume point was pushed: the same when the
    /// caller resumes, since abandoned frames hold no catch scopes.
    pub(crate) quiet: u32,
}

impl ResumePoint {
    /// Records the chain's previous head and the quiet depth at the push.
    pub(crate) fn link(&mut self, prev: *mut ResumePoint, quiet: u32) {
        self.prev = prev;
        self.quiet = quiet;
    }

    /// (previous head, quiet depth at the push).
    pub(crate) fn links(&self) -> (*mut ResumePoint, u32) {
        (self.prev, self.quiet)
    }
}

impl Panic {
    /// Converts a payload that a `catch_unwind` on this thread just caught:
    /// the location is the one the panic hook recorded for it.
    pub(crate) fn caught(payload: Box<dyn Any + Send + 'static>) -> Panic {
        let location = take_location();
        let mut p = Panic::new(payload);
        if p.location.is_none() {
            p.location = location;
        }
        p
    }
}

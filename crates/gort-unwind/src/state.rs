//! Per-thread state, and the per-goroutine part of it ([`UnwindState`]) that
//! the scheduler moves with a goroutine.
//!
//! Goroutines migrate between threads, and the compiler assumes a function
//! never changes threads, so it may compute a thread-local's address once
//! and reuse it after a call that switched stacks and came back on another
//! thread. Every access here therefore goes through a function that is
//! never inlined: each call computes the address on the thread it runs on.

use std::cell::Cell;
use std::ptr;

use crate::resume::ResumePoint;
use crate::Location;

/// This thread's state. Every field is a `Cell` of a `Copy` value and the
/// thread-local has a `const` initializer and no destructor, so an access
/// is a load or store at a fixed offset from the thread pointer, valid at
/// any time in the thread's life.
///
/// Must hold: `resume` is null or the innermost live [`ResumePoint`] of the
/// execution (goroutine) running on this thread, whose `prev` links lead to
/// the outer ones; `quiet` counts the quiet scopes that execution is in.
struct ThreadState {
    /// Quiet scopes entered and not left: `recover`, `catch(true, ..)`.
    quiet: Cell<u32>,
    /// Location of the last panic that the hook saw and no catch took yet.
    location: Cell<Option<Location>>,
    /// The innermost resume point.
    resume: Cell<*mut ResumePoint>,
    /// The last file name the hook interned (a cache; not per goroutine).
    last_file: Cell<&'static str>,
}

thread_local! {
    static STATE: ThreadState = const {
        ThreadState {
            quiet: Cell::new(0),
            location: Cell::new(None),
            resume: Cell::new(ptr::null_mut()),
            last_file: Cell::new(""),
        }
    };
}

/// The per-goroutine part of gort-unwind's state: the quiet-scope depth,
/// the location of a panic that is unwinding and not yet caught, and the
/// chain of resume points.
///
/// The scheduler keeps one per goroutine and exchanges it with the thread's
/// at every switch, with [`swap_thread_state`]: this state belongs to the
/// execution, not to the OS thread. A fresh goroutine starts with
/// [`UnwindState::new`].
///
/// Must hold: `resume` is null or points to a `ResumePoint` in a live
/// frame of the goroutine this state belongs to.
#[derive(Debug)]
pub struct UnwindState {
    quiet: u32,
    location: Option<Location>,
    resume: *mut ResumePoint,
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
            quiet: 0,
            location: None,
            resume: ptr::null_mut(),
        }
    }

    /// True when the execution has a resume point (it is inside a call that
    /// a callback's panic can unwind to). A goroutine that finished must not.
    pub fn has_resume_point(&self) -> bool {
        !self.resume.is_null()
    }

    /// How many quiet scopes ([`recover`](crate::recover), quiet
    /// [`catch`](crate::catch)) the execution is inside.
    pub fn quiet_depth(&self) -> u32 {
        self.quiet
    }
}

impl Default for UnwindState {
    fn default() -> Self {
        UnwindState::new()
    }
}

/// Installs `new` as this thread's state and returns the previous one.
///
/// The scheduler calls this at every goroutine switch, on the thread that
/// will run the resumed goroutine: it installs the resumed goroutine's state
/// and keeps the returned one with the goroutine (or scheduler context) that
/// was running. One call per switch suffices: `swap_thread_state(next)`
/// returns the state of the execution being suspended.
///
/// A goroutine that is unwinding a panic never parks on one thread and
/// resumes on another (design brief: std's panic count is per thread), so
/// the location the panic hook records is always read back on the thread
/// that wrote it; it travels in this state only so that a switch on the
/// same thread does not lose it.
///
/// # Safety
///
/// `new` must be the state that the execution about to run on this thread
/// had when it was last suspended (or [`UnwindState::new`] for a fresh
/// one), and the returned state must be given back to the execution that
/// was running, before it runs again: a resume chain installed under the
/// wrong execution would let [`unwind_to_resume_point`](crate::unwind_to_resume_point)
/// switch into frames that are not there.
#[inline(never)]
pub unsafe fn swap_thread_state(new: UnwindState) -> UnwindState {
    STATE.with(|s| UnwindState {
        quiet: s.quiet.replace(new.quiet),
        location: s.location.replace(new.location),
        resume: s.resume.replace(new.resume),
    })
}

/// Whether the execution running on this thread has a resume point: a
/// panic in a callback from C here has a Rust caller to unwind to. The C
/// bridge asks this on a thread it did not create.
#[inline(never)]
pub fn has_resume_point() -> bool {
    STATE.with(|s| !s.resume.get().is_null())
}

#[inline(never)]
pub(crate) fn quiet_enter() {
    STATE.with(|s| s.quiet.set(s.quiet.get() + 1));
}

#[inline(never)]
pub(crate) fn quiet_exit() {
    STATE.with(|s| {
        let q = s.quiet.get();
        debug_assert!(q > 0, "quiet scope left more often than entered");
        s.quiet.set(q.saturating_sub(1));
    });
}

#[inline(never)]
pub(crate) fn quiet_depth() -> u32 {
    STATE.with(|s| s.quiet.get())
}

#[inline(never)]
pub(crate) fn is_quiet() -> bool {
    STATE.with(|s| s.quiet.get() > 0)
}

#[inline(never)]
pub(crate) fn set_location(loc: Option<Location>) {
    STATE.with(|s| s.location.set(loc));
}

#[inline(never)]
pub(crate) fn take_location() -> Option<Location> {
    STATE.with(|s| s.location.take())
}

#[inline(never)]
pub(crate) fn resume_head() -> *mut ResumePoint {
    STATE.with(|s| s.resume.get())
}

#[inline(never)]
pub(crate) fn set_resume_head(rp: *mut ResumePoint) {
    STATE.with(|s| s.resume.set(rp));
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

//! This thread's goroutine and M: `CURRENT_G`, `CURRENT_M` and their
//! accessors, plus the public `current()` and `id()`.
//!
//! Goroutines migrate between threads at parks and yields, so the
//! accessors are `#[inline(never)]`: the compiler must compute the
//! thread-local's address afresh at every call, never keep one from before
//! a switch. Goroutine code that needs its M reads `G::m` (set by
//! `execute` before every switch) after the switch, never a value cached
//! before it.
//!
//! On g0 `CURRENT_G` is null and `CURRENT_M` is the M; on a plain thread
//! (or a C thread not bound to an M) both are null. `run` saves the
//! caller's pair and puts it back, so a runtime can be run from inside
//! another's goroutine.

use crate::g::{GRef, G};
use crate::m::M;
use crate::sched::Sched;
use std::cell::Cell;
use std::ptr::{self};

thread_local! {
    static CURRENT_G: Cell<*mut G> = const { Cell::new(ptr::null_mut()) };
    static CURRENT_M: Cell<*mut M> = const { Cell::new(ptr::null_mut()) };
}

/// The goroutine running on this thread, or null on a plain thread or g0.
/// Not inlined: goroutines migrate between threads, so the thread-local's
/// address must be computed afresh at every call, never cached by the
/// compiler across a switch.
#[inline(never)]
pub(crate) fn current_g() -> *mut G {
    CURRENT_G.with(|c| c.get())
}

/// The thread's (G, M) pair, saved by `run` before the calling thread
/// becomes M0 of a new runtime, and put back after.
#[inline(never)]
pub(crate) fn save_current() -> (*mut G, *mut M) {
    (CURRENT_G.with(|c| c.get()), CURRENT_M.with(|c| c.get()))
}

#[inline(never)]
pub(crate) fn restore_current(saved: (*mut G, *mut M)) {
    set_current(saved.0, saved.1);
}

#[inline(never)]
pub(crate) fn set_current(g: *mut G, m: *mut M) {
    CURRENT_G.with(|c| c.set(g));
    CURRENT_M.with(|c| c.set(m));
}

/// The M running this thread if it belongs to `sched`, else null.
pub(crate) fn current_m_of(sched: &Sched) -> *mut M {
    let m = current_m();
    // SAFETY: a thread's current M lives as long as its Sched, which runs
    // on this thread now.
    if m.is_null() || !ptr::eq(unsafe { (*m).sched() }, sched) {
        return ptr::null_mut();
    }
    m
}

/// This thread's M (of whichever runtime), or null. Not inlined, as
/// `current_g`.
#[inline(never)]
pub(crate) fn current_m() -> *mut M {
    CURRENT_M.with(|c| c.get())
}

#[inline]
pub(crate) fn running_g(what: &str) -> *mut G {
    let g = current_g();
    if g.is_null() {
        panic!("gort::{what} called outside a goroutine (from a plain thread or the scheduler)");
    }
    g
}

#[inline]
pub(crate) fn sched_of(g: *mut G) -> &'static Sched {
    // SAFETY: a running G's Sched lives until every goroutine is gone; the
    // 'static is confined to the call that made it.
    unsafe { &*(*g).sched() }
}

/// The goroutine running now, if this thread is running one.
///
/// Inlinable (the accessor under it is not): safe in a function that
/// parks, on either side of the park.
#[inline]
pub fn current() -> Option<GRef> {
    std::ptr::NonNull::new(current_g()).map(GRef)
}

/// The current goroutine's id (the main goroutine is 1).
///
/// # Panics
/// Outside a goroutine.
#[inline]
pub fn id() -> u64 {
    let g = running_g("id");
    // SAFETY: the running G is live.
    unsafe { (*g).id.get() }
}

//! Switching between a goroutine and its M's g0 (Go's `gogo` and `mcall`),
//! and a goroutine's first and last frame.
//!
//! Who runs where:
//! - g0 code (schedule.rs) runs on an M's own thread stack. It picks a G
//!   and switches to it with `gort_arch::switch`, passing the M; the
//!   goroutine stores g0's suspended context in that M.
//! - A goroutine comes back to g0 only through [`switch_to_g0`] with a
//!   [`Request`] that lives on its own stack; g0 stores the goroutine's
//!   suspended context in the G *before* acting on the request, so the G is
//!   fully saved before anyone can make it runnable again. A park's unlock
//!   function can therefore publish the G to a waker on another M, which
//!   may resume it at once.
//!
//! `enter_g`/`leave_g` make a goroutine the thread's running one and back:
//! its M, the M's current G, the thread's current G and M, the running
//! stack (for stack overflow reports) and gort-unwind's per-goroutine
//! state, installed as the thread's with one pointer store.
//!
//! Refused switches are fatal: while the M holds an `acquirem`-style lock
//! (`M::locks`), and while the M runs C (`M::incgo`): a goroutine that
//! called into C must come back on the same M.
//!
//! Rejected: acting on the request (publishing a parked G) from the
//! goroutine's own stack before the switch: a waker on another M could
//! then resume the G while its registers were still being saved.

use crate::current::set_current;
use crate::fatal::fatal;
use crate::g::{GRef, G};
use crate::m::M;
use crate::status::Status;
use gort_arch::Context;
use std::ptr::{self};
use std::sync::atomic::Ordering;

/// A goroutine's request to its M's g0 (Go's `mcall(fn)`).
pub(crate) enum Request<'a> {
    /// Put me back on a run queue and run something else.
    Yield,
    /// My slice ran out (or my M lost its P): queue me on the global
    /// queue and run something else (Go's `gopreempt_m`; see `preempt`).
    Preempt,
    /// I am parked: run `unlock(me)` off my stack; if it returns false, the
    /// park is aborted and I run again at once.
    Park(&'a mut dyn FnMut(GRef) -> bool),
    /// I finished: free me.
    Exit,
    /// I left a syscall and found no P: queue me and park this M (Go's
    /// `exitsyscall0`).
    ExitSyscall,
    /// The body of a callback from C finished and I am back in syscall
    /// state: return to the C frames (see `cgo`).
    CallbackReturn,
}

/// Makes `g` the running goroutine of this thread, whose M is `m`: its M,
/// the M's current G, the thread's current G and M, the running-stack
/// record (stack overflow reports) and its unwind state (recover scopes,
/// resume points). Returns the unwind state installed before, for
/// [`leave_g`].
///
/// # Safety
/// `m` is this thread's M and `g` a goroutine that is about to run on it
/// (or runs on it, as a callback's G does); the returned state must be put
/// back with `leave_g` before the execution it belongs to runs again.
#[inline(always)]
pub(crate) unsafe fn enter_g(m: *mut M, gr: &G) -> *const gort_unwind::UnwindState {
    let g = gr as *const G as *mut G;
    gr.set_m(m);
    // SAFETY: m is this thread's M (the contract).
    unsafe { (*m).curg.set(g) };
    set_current(g, m);
    // SAFETY: the G's stack is live while it runs.
    if let Some(stack) = unsafe { &*gr.stack.get() } {
        gort_stack::set_running_stack(gr.id.get(), stack);
    }
    // SAFETY: the G's state lives as long as the G, and only this M uses
    // it while the G runs here (the contract covers the previous one).
    unsafe { gort_unwind::install_state(gr.unwind.get()) }
}

/// The reverse of [`enter_g`]: no goroutine runs on this thread now (its
/// M's g0 does, or, with `thread_m` null, the plain thread's own code),
/// and `unwind` is the thread's unwind state again.
///
/// # Safety
/// `m` is this thread's M; `unwind` is what `enter_g` returned, or null
/// (the thread's own state).
#[inline(always)]
pub(crate) unsafe fn leave_g(m: *mut M, thread_m: *mut M, unwind: *const gort_unwind::UnwindState) {
    // SAFETY: the contract.
    unsafe {
        gort_unwind::install_state(unwind);
        (*m).curg.set(ptr::null_mut());
    }
    gort_stack::clear_running_stack();
    set_current(ptr::null_mut(), thread_m);
}

/// Switches from the running goroutine to its M's g0 with `req` (Go's
/// `mcall`). Returns when some M runs the goroutine again.
#[inline(always)]
pub(crate) fn switch_to_g0(g: *mut G, req: &mut Request<'_>) {
    // SAFETY: g is the running goroutine; its M is the one that switched to
    // it last (execute sets g.m before every switch).
    unsafe {
        let m = (*g).m();
        // g0 touches the P: the goroutine's M must still hold it (see
        // `preempt`).
        (*m).enter_for_switch();
        if (*m).locks.get() != 0 {
            fatal("goroutine switch while holding an M lock (acquirem)");
        }
        if (*m).incgo.load(Ordering::Relaxed)
            && !matches!(req, Request::ExitSyscall | Request::CallbackReturn)
        {
            // The C-call rule (cgocall.rs): the M is in C; its goroutine must stay with it.
            fatal(SWITCH_IN_C);
        }
        let g0 = (*m).g0.take();
        let (g0_back, new_m) = gort_arch::switch(g0, req as *mut Request<'_> as usize);
        // Resumed, possibly on another M: the value is that M.
        let new_m = new_m as *mut M;
        (*new_m).g0.set(g0_back);
        (*new_m).leave_for_user();
    }
}

/// The first frame of a goroutine that has not run yet, on its stack
/// (`gort_arch::init`): made by the M about to run it, which is usually
/// the M that ran the G's previous goroutine and still has that stack in
/// its cache, not by the spawning M.
#[inline(never)]
pub(crate) fn first_context(gr: &G) -> Context {
    // SAFETY: the G is ours (execute); a runnable G has a stack.
    let top = unsafe { &*gr.stack.get() }
        .as_ref()
        .expect("a runnable goroutine without a stack")
        .top();
    // SAFETY: the stack is owned by the G and outlives the context.
    unsafe { gort_arch::init(top, goroutine_entry, gr as *const G as usize) }
}

/// The first frame of every goroutine (gort_arch entry): keeps g0's
/// context, runs the goroutine's closure, and exits to g0.
pub(crate) unsafe extern "C" fn goroutine_entry(arg: usize, g0: Context, m: usize) -> ! {
    let g = arg as *mut G;
    // SAFETY: execute passed its M and the G it switched to.
    unsafe {
        (*(m as *mut M)).g0.set(g0);
        let f = (*(*g).entry.get()).take().expect("goroutine without entry");
        // User code from here: the P becomes retakeable (see `preempt`).
        (*(m as *mut M)).leave_for_user();
        // The closure catches its own panics (see Runtime::run and
        // GoBuilder::spawn); anything escaping here would abort, being an
        // extern "C" frame.
        f.call();
        // Goroutine-local values are dropped here, on the goroutine's own
        // stack, where their destructors may still park.
        let locals = std::mem::take(&mut *(*g).locals.get());
        if let Err(p) = gort_unwind::catch(false, move || drop(locals)) {
            eprintln!(
                "goroutine {}: a goroutine-local value panicked in drop: {p}",
                (*g).id.get()
            );
        }
        let mut req = Request::Exit;
        switch_to_g0(g, &mut req);
    }
    fatal("a dead goroutine was resumed")
}

/// A goroutine about to wait (park, yield, a timed wait) must not be in
/// syscall state: `syscall`'s closure runs without a P, and the M's old P
/// may already run other goroutines (syscall.rs). Checked where every wait
/// begins, before its state changes; a named fatal error, as a park inside
/// `cgo::call`'s C function is (`switch_to_g0`).
#[inline]
pub(crate) fn check_not_in_syscall(g: *mut G) {
    // SAFETY: g is the running goroutine.
    // SAFETY: as above; its M is the one it runs on.
    if unsafe { (*g).status() } == Status::Syscall {
        // SAFETY: as above.
        if unsafe { (*(*g).m()).incgo.load(Ordering::Relaxed) } {
            fatal(SWITCH_IN_C);
        }
        fatal_park_in_syscall();
    }
}

/// The C-call rule's message (cgocall.rs).
const SWITCH_IN_C: &str =
    "goroutine switch while its M is in C (a park, yield or exit inside cgo::call's C function)";

#[cold]
#[inline(never)]
fn fatal_park_in_syscall() -> ! {
    fatal(
        "a goroutine parked inside gort::syscall's closure (a channel operation, \
         sleep, yield, lock or join that waits): the closure runs without a P and \
         must not park; park before or after the syscall",
    )
}

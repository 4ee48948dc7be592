//! The cgo tier: the scheduler's side of the C bridge (Go's cgocall.go),
//! for gort-cgo, which wraps it with the user-facing `cgo::call` and
//! `cgo::callback`, the thread binding and the panic policy. User code
//! goes through gort-cgo (re-exported by the gort facade as `gort::cgo`).
//!
//! Contracts, in short (each function states its own):
//! - [`call`] / [`try_call`]: the caller guarantees that no Rust frame
//!   inside `f` holds a value with a destructor while C code that may call
//!   back runs (a panic in a callback abandons those frames). The
//!   scheduler guarantees that the goroutine keeps its M for the whole
//!   call, that its P is handed to another M if the call blocks (as for
//!   [`syscall`](crate::syscall)), and that a panic in a callback comes
//!   back as the call's panic (or `Err`).
//! - [`callback_site`] tells where a callback from C on this thread must
//!   run; [`callback_nested`] runs one inside a `call` of the same
//!   goroutine, [`BoundM::callback`] one on a thread the runtime did not
//!   create (bound with [`RuntimeRef::bind_thread`]). The caller guarantees
//!   it is at the top of an `extern "C"` function whose frames hold
//!   nothing with a destructor; the scheduler guarantees the body runs as
//!   a goroutine, may park and yield, and returns on the same thread.
//! - [`fatal`] is the scheduler's fatal path (one prefix for every fatal
//!   error), for misuse gort-cgo detects itself.
//!
//! ```text
//!  goroutine stack                   M's system stack (g0's, the thread's)
//! +---------------------------+     +--------------------------------+
//! | ... cgo::call             |     | g0: schedule/execute (suspended)|
//! |   enter_syscall, incgo=1  |     +-- below g0's saved sp ---------+
//! |   resume point  ========> |====>| f: the C function              |
//! |                           |     | C frames                       |
//! |   callback body  <======  |=====| extern "C" cb -> callback():   |
//! |     (below cgo::call's    |     |   callback_loop: acts as g0    |
//! |      suspended frame)     |     |   while the body runs; parks   |
//! |   CallbackReturn  ======> |====>|   and schedules from here      |
//! |                           |     | C frames continue, return      |
//! |   <=======================|=====| f returns                      |
//! |   incgo=0, exit_syscall   |     +--------------------------------+
//! +---------------------------+
//! ```
//!
//! Ordering rules, and where each is enforced:
//! - `call` (the C-call rule): enter syscall state, then set `incgo`; clear `incgo`,
//!   then leave syscall state (leaving may move the goroutine to another
//!   M). No thread lock per call. `switch_to_g0` refuses any goroutine
//!   switch while `incgo` is set.
//! - `callback` (the callback rule): lock the goroutine to the M before leaving
//!   syscall state (`Sched::callback_loop`); after the body: set `incgo`,
//!   then unlock, then re-enter syscall state (`callback_entry`), so nothing
//!   can switch the goroutine away between the unlock and the return to C.
//!   On a panic out of the body the unlock happens on the unwinding path
//!   (`callback_entry`'s panic arm, Go's `unwindm`), which also puts back
//!   the M's outer g0 position.

use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use gort_arch::{Context, STACK_ALIGN};
use gort_unwind::Panic;

use crate::current::current_g;
pub use crate::fatal::fatal;
use crate::g::G;
use crate::lockosthread::unlock_internal;
use crate::m::M;
use crate::mcall::{enter_g, leave_g, switch_to_g0, Request};
use crate::park::check_cancel;
use crate::sched::Sched;
use crate::status::Status;

/// Bytes left free below a suspended context's stack pointer before a new
/// frame starts there: the suspended side's saved registers lie at and
/// above its stack pointer; this keeps clear of anything just below.
const BELOW_SUSPENDED: usize = 256;

fn below(sp: usize) -> *mut u8 {
    ((sp - BELOW_SUSPENDED) & !(STACK_ALIGN - 1)) as *mut u8
}

/// Go's `cgocall`: runs `f` (which calls C) on the M's system stack in
/// syscall state, with `incgo` set, without locking the thread (the C-call rule).
/// A panic in a callback that `f`'s C code makes comes back here through
/// a resume point and continues in the calling goroutine.
///
/// Outside a goroutine `f` runs on the current stack below a resume point.
/// Inside `f`'s C call (a `call` nested directly in `f`), `f` just runs.
///
/// # Safety
/// gort-unwind's `call_with_resume_point` contract: while C code that may
/// call back runs, no Rust frame inside `f` holds a value with a
/// destructor (in practice `f` only calls the C function).
#[inline]
pub unsafe fn call<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: forwarded from this function's contract.
    match unsafe { try_call(f) } {
        Ok(v) => v,
        Err(p) => p.resume(),
    }
}

/// `call`, with a panic in `f` or in a callback it makes returned as a
/// value instead of raised again: one unwind (the callback body's) instead
/// of two.
///
/// # Safety
/// As `call`.
#[inline]
pub unsafe fn try_call<R>(f: impl FnOnce() -> R) -> Result<R, Panic> {
    let g = current_g();
    if g.is_null() {
        // SAFETY: forwarded from this function's contract.
        return unsafe { gort_unwind::call_with_resume_point_below(|_| {}, f) };
    }
    crate::park::preempt_check(g);
    // SAFETY: the running goroutine is live; g.m is its M, read after its
    // last switch.
    let (gr, m) = unsafe { (&*g, &*(*g).m()) };
    if m.incgo.load(Ordering::Relaxed) {
        // Already on the system stack in C state: this is C calling Rust
        // that calls C directly, without a callback in between.
        return Ok(f());
    }
    // SAFETY: a G's Sched outlives it.
    let sched = unsafe { &*gr.sched() };
    sched.enter_syscall(gr);
    m.incgo.store(true, Ordering::Relaxed);
    m.ncgocall
        .store(m.ncgocall.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    // C runs on the system stack below g0's suspended frame (g0 does not
    // run while this goroutine runs on its M).
    let top = below(m.g0_sp());
    // SAFETY: the region below g0's suspended stack pointer is unused
    // while the goroutine runs (g0 resumes only when the goroutine
    // switches to it, which it cannot do while incgo is set); the POF
    // condition is forwarded from this function's contract.
    let r = unsafe { gort_unwind::call_with_resume_point(top, |_| {}, f) };
    // Still on the same M: C ran on this thread and the goroutine could
    // not switch (incgo). After a callback's panic unwound here, the
    // callback already left syscall state (incgo is clear then).
    if m.incgo.load(Ordering::Relaxed) {
        m.incgo.store(false, Ordering::Relaxed);
        sched.exit_syscall(gr);
    }
    check_cancel(g);
    r
}

/// Where a callback from C runs on this thread.
pub enum CallbackSite {
    /// Inside `call` on this thread: the body runs as the calling
    /// goroutine, on its stack below the call.
    Nested,
    /// A goroutine runs, but not inside `call`: the body just runs.
    Inline,
    /// No goroutine is in C on this thread: the thread needs an extra M.
    Foreign,
}

/// What kind of callback a callback from C on this thread is.
///
/// A fatal error when a goroutine is in `syscall` (not `cgo::call`): the
/// body would run without a P.
pub fn callback_site() -> CallbackSite {
    let g = current_g();
    if g.is_null() {
        return CallbackSite::Foreign;
    }
    // SAFETY: the running goroutine is live; its M is this thread's.
    let (gr, m) = unsafe { (&*g, &*(*g).m()) };
    if m.incgo.load(Ordering::Relaxed) {
        return CallbackSite::Nested;
    }
    if gr.status() == Status::Syscall {
        fatal(
            "a callback from C inside gort::syscall: C code that calls back into Rust \
             must be called with cgo::call",
        );
    }
    CallbackSite::Inline
}

/// A callback from C on a thread where a goroutine waits in `call`
/// (C -> Rust -> C -> Rust, any depth): runs `f` as that goroutine.
///
/// `Ok` with `f`'s value; a panic in `f` does not come back here: it skips
/// the C frames to the goroutine's `call` and continues there.
///
/// # Safety
/// `callback_site()` is `Nested`; called at the top of an `extern "C"`
/// function whose frames hold nothing with a destructor (they are
/// abandoned if `f` panics).
pub unsafe fn callback_nested<R>(f: impl FnOnce() -> R) -> R {
    let g = current_g();
    // SAFETY: Nested: g is the goroutine in `call` on this M.
    let (gr, m) = unsafe { (&*g, (*g).m()) };
    // SAFETY: a G's Sched outlives it.
    let sched = unsafe { &*gr.sched() };
    let Some(sp) = gort_unwind::resume_point_caller_sp() else {
        fatal("cgo callback: a goroutine in C without a resume point");
    };
    // SAFETY: below the resume point's suspended caller, the goroutine's
    // stack is unused while C runs (gort-unwind's resume_point_caller_sp).
    match unsafe { run_callback(sched, m, g, below(sp), true, f) } {
        Ok(v) => v,
        Err(_) => fatal("cgo callback: a nested callback's panic came back to C"),
    }
}

/// A runtime, held for binding foreign threads to it.
#[derive(Clone)]
pub struct RuntimeRef(Arc<Sched>);

impl RuntimeRef {
    /// The runtime of the running goroutine (None on a plain thread).
    pub fn current() -> Option<RuntimeRef> {
        let g = current_g();
        if g.is_null() {
            return None;
        }
        // SAFETY: every Sched is made by `Arc::new` in `Runtime::run`, and
        // a running goroutine's Sched is alive, so its pointer is an Arc's
        // and one more strong count keeps it so.
        unsafe {
            let p = (*g).sched();
            Arc::increment_strong_count(p);
            Some(RuntimeRef(Arc::from_raw(p)))
        }
    }

    /// True once the runtime's run is ending or over: callbacks must go
    /// elsewhere.
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    /// Binds the calling thread (one the runtime did not create) to an
    /// extra M of this runtime, for callbacks from C.
    pub fn bind_thread(&self) -> Result<BoundM, gort_stack::StackError> {
        let m = self.0.bind_extra_m()?;
        Ok(BoundM {
            sched: self.0.clone(),
            m,
        })
    }

    /// (calls into C, callbacks, Ms in C now, extra Ms made) over the
    /// runtime's Ms.
    pub fn cgo_counts(&self) -> (u64, u64, usize, usize) {
        self.0.cgo_counts()
    }

    /// True when both refer to the same runtime.
    pub fn same(&self, other: &RuntimeRef) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// An extra M bound to the calling thread; unbound when dropped (the
/// thread's exit, through a thread-local destructor).
///
/// Must hold: used only on the thread that bound it, never in two
/// callbacks at once on that thread except nested (which go through
/// `callback_nested`, not here).
pub struct BoundM {
    sched: Arc<Sched>,
    m: *mut M,
}

impl BoundM {
    /// The runtime this thread is bound to.
    pub fn runtime(&self) -> RuntimeRef {
        RuntimeRef(self.sched.clone())
    }

    /// Runs `f` as a goroutine locked to this thread (the extra M's G):
    /// acquires a P, runs, and goes back to C with the P left in syscall
    /// state (the next callback from this thread takes it back with one
    /// CAS, or sysmon hands it off if others need it).
    ///
    /// `Err` with `f`'s panic: there is no goroutine above to unwind to;
    /// the caller decides (gort-cgo: a resume point of a plain thread's
    /// `call`, else a fatal error).
    ///
    /// # Safety
    /// On this thread's system stack, with no callback of this binding in
    /// progress (`callback_site()` is `Foreign`).
    pub unsafe fn callback<R>(&self, f: impl FnOnce() -> R) -> Result<R, Panic> {
        // SAFETY: the binding's M is this thread's (the struct invariant).
        let mr = unsafe { &*self.m };
        let g = mr.extra_g;
        // SAFETY: the extra G is this M's alone.
        let gr = unsafe { &*g };
        gr.cancel.store(false, Ordering::Relaxed);
        gr.set_status(Status::Syscall);
        // SAFETY: the G's stack is owned by it and unused between callbacks.
        let stack = unsafe { (*gr.stack.get()).as_ref().expect("extra G has a stack") };
        // The extra G is this thread's running goroutine for the callback
        // (callback_loop's contract), over the plain thread's own state.
        // SAFETY: the binding's M is this thread's and the extra G runs on
        // it; the plain thread's state goes back below, before its code
        // runs again.
        let outer = unsafe { enter_g(self.m, gr) };
        // SAFETY: forwarded; the extra G's stack is free.
        let r = unsafe { run_callback(&self.sched, self.m, g, stack.top(), false, f) };
        // SAFETY: as above; the thread has no M outside callbacks.
        unsafe { leave_g(self.m, ptr::null_mut(), outer) };
        gr.set_status(Status::Dead);
        r
    }

    /// True once this binding's runtime is ending or over.
    #[inline]
    pub fn is_finished(&self) -> bool {
        self.sched.is_finished()
    }
}

impl Drop for BoundM {
    fn drop(&mut self) {
        self.sched.unbind_extra_m(self.m);
    }
}

/// What the body's entry needs; lives in `run_callback`'s frame on the
/// system stack.
///
/// Must hold: `f` is taken once, by the entry; `out` is written only when
/// `f` returned; `saved_g0` holds the M's outer g0 context while the body
/// runs and is taken exactly once (by the body's panic path or by
/// `run_callback` after the body).
struct CallbackCall<F, R> {
    f: ManuallyDrop<F>,
    out: MaybeUninit<R>,
    sched: *const Sched,
    saved_g0: Context,
    nested: bool,
    panic: Option<Panic>,
}

/// Runs a callback body as goroutine `g` on M `m` (this thread), on g's
/// stack from `top`. See `Sched::callback_loop`.
///
/// # Safety
/// `m` is this thread's M, `g` the goroutine to run the body (in syscall
/// state), `top` free stack of g's.
unsafe fn run_callback<F: FnOnce() -> R, R>(
    sched: &Sched,
    m: *mut M,
    g: *mut G,
    top: *mut u8,
    nested: bool,
    f: F,
) -> Result<R, Panic> {
    // SAFETY: m is this thread's M.
    let mr = unsafe { &*m };
    // SAFETY: g is ours to run (the caller's contract).
    let gr = unsafe { &*g };
    // The frame's contents are abandoned without drop if a nested body
    // panics: every field is then empty (f taken, out unwritten, saved_g0
    // taken, panic None).
    let mut call = CallbackCall {
        f: ManuallyDrop::new(f),
        out: MaybeUninit::uninit(),
        sched,
        saved_g0: mr.g0.take(),
        nested,
        panic: None,
    };
    // SAFETY: top is free stack of g's; the entry gets `call`, which lives
    // in this frame until the body is done with it.
    let ctx = unsafe { gort_arch::init(top, callback_entry::<F, R>, (&raw mut call) as usize) };
    // SAFETY: forwarded from the caller; g is this thread's running
    // goroutine (nested: it called into C; foreign: BoundM made it so).
    let slow = unsafe { sched.callback_loop(m, g, ctx) };
    // The body finished: back on this frame, g in syscall state and in C.
    mr.g0.set(call.saved_g0.take());
    if slow && nested {
        // This frame scheduled the long way, as g0: the goroutine continues
        // in C and then in `call`, so it is this thread's execution again.
        // (The foreign path's caller puts back the plain thread's state.)
        // SAFETY: m is this thread's M and g runs on it again; the state
        // installed now is g0's own (null), nothing to keep.
        let _g0_state = unsafe { enter_g(m, gr) };
    }
    match call.panic.take() {
        Some(p) => Err(p),
        // SAFETY: the body returned normally, so the entry wrote `out`.
        None => Ok(unsafe { call.out.assume_init_read() }),
    }
}

/// The first frame of a callback body on the goroutine's stack.
///
/// Generic over the body, which is inlined here: a panic in the body
/// unwinds one frame (this one) to its catch, not a closure's frame too.
/// Each frame costs the platform unwinder ~100 ns per phase.
unsafe extern "C" fn callback_entry<F: FnOnce() -> R, R>(arg: usize, g0: Context, m: usize) -> ! {
    let m = m as *mut M;
    let call = arg as *mut CallbackCall<F, R>;
    // SAFETY: callback_loop switched here with its M; `call` lives in
    // run_callback's frame until the body is done; `f` is taken once,
    // here (CallbackCall's invariant).
    let f = unsafe {
        (*m).g0.set(g0);
        ManuallyDrop::take(&mut (*call).f)
    };
    let r = gort_unwind::catch(false, || {
        let v = f();
        // SAFETY: as above; written once, when the body returned.
        unsafe { (*call).out.write(v) };
    });
    let g = current_g();
    // SAFETY: the goroutine is locked to its M for the callback, so g.m
    // is the M of the callback (read after any park in the body).
    let m = unsafe { (*g).m() };
    if let Err(p) = r {
        // SAFETY: as above.
        if unsafe { (*call).nested } {
            // Go's unwindm: undo the callback's thread lock, put the M's
            // outer g0 position back (the callback's g0 frame and the C
            // frames below it are abandoned), and continue the panic in
            // the goroutine's `call`, which is still in its frames above.
            // The goroutine keeps its P and is out of syscall state.
            unlock_internal(g);
            // SAFETY: as above; saved_g0 is taken once (the invariant).
            unsafe {
                (*m).g0.set((*call).saved_g0.take());
                gort_unwind::unwind_to_resume_point(p)
            }
        }
        // Foreign: nothing above; run_callback's caller decides.
        // SAFETY: as above.
        unsafe { (*call).panic = Some(p) };
    }
    // The callback rule: in C first, then unlock, then back into syscall state: from
    // the unlock to the return to C nothing can switch this goroutine
    // (switch_to_g0 refuses while incgo is set).
    // SAFETY: as above; the Sched outlives the callback.
    unsafe {
        (*m).incgo.store(true, Ordering::Relaxed);
        unlock_internal(g);
        (*(*call).sched).enter_syscall(&*g);
    }
    let mut req = Request::CallbackReturn;
    switch_to_g0(g, &mut req);
    fatal("a finished callback from C was resumed")
}

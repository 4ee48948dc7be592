//! Resume points: a panic in a callback from C skips the C frames and
//! continues in the Rust frame that made the call.
//!
//! ```text
//!   caller's stack                 callee stack (e.g. the M's system stack)
//!  +---------------------------+  +------------------------------------+
//!  | ...                       |  | entry trampoline  (ours, POF)      |
//!  | call_with_resume_point    |  | f: calls the C function (POF)      |
//!  |   ResumePoint {caller,..} |  | C frames           (C: POFs)       |
//!  |   switch  ==============> |  | extern "C" callback (POF at jump)  |
//!  |        <================= |==| callback_boundary: catch, then     |
//!  |   Err(panic), hook ran    |  |   unwind_to_resume_point(panic)    |
//!  +---------------------------+  +------------------------------------+
//!                                    abandoned as is: nothing runs there
//! ```
//!
//! The resume point is a record in the caller's frame, pushed on a chain
//! (per goroutine, see [`UnwindState`](crate::UnwindState)) on entry and
//! popped on exit. The callee runs on the given stack through
//! `gort_arch::on_stack_resumable`, which leaves the caller suspended in
//! the record while the callee runs: a plain call when `f` returns. When a
//! callback deeper down catches a panic at its boundary, it puts the panic
//! in the innermost record and switches to the record's suspended caller:
//! the caller's call returns, as if the callee had returned, and
//! everything between (the boundary's frame, the C frames, `f` and the
//! trampoline) is abandoned without running anything in it. Only frames
//! that are plain old frames at that moment may be abandoned; see
//! docs/unwind.md for why each one is.

use std::mem::{ManuallyDrop, MaybeUninit};
use std::sync::atomic::{AtomicUsize, Ordering};

use gort_arch::{current_sp, on_stack_resumable, switch, Context, STACK_ALIGN};

use crate::fatal::{describe, fatal};
use crate::state::ResumePoint;
use crate::{catch, state, Panic};

/// What the callee's entry needs: the closure, a slot for its value, and the
/// resume point. Lives in the caller's frame next to the resume point.
///
/// Must hold: `f` is taken once, by the entry; `result` is written only
/// when the entry returns RETURNED.
struct Call<F, R> {
    f: ManuallyDrop<F>,
    result: MaybeUninit<R>,
    rp: *mut ResumePoint,
}

/// Switch values that the caller receives. Distinct, unlikely words, so a
/// stray switch into a resume point is caught.
const RETURNED: usize = 0x6f6b_2121;
const PANICKED: usize = 0x7061_6e21;

/// Calls `f` on the stack that ends at `callee_stack_top`, with a resume
/// point here: a panic in a callback that `f` (through C) calls, caught at
/// the callback's boundary, comes back here.
///
/// Returns `Ok` with `f`'s value when `f` returns. Returns `Err` with the
/// panic when a callback deeper down unwound to this resume point with
/// [`unwind_to_resume_point`] (usually through [`callback_boundary`]), or
/// when `f` itself panicked (caught at the callee stack's entry: a panic
/// never unwinds off that stack's base). On `Err`, `hook` runs first, with
/// the panic, back on the caller's stack: the place for the owner to restore
/// its own state (the C bridge undoes in-C accounting there, as Go's
/// unwindm does); then the caller decides what to do with the panic,
/// usually [`Panic::resume`].
///
/// The callee stack is not unwound after a callback's panic: its frames are
/// abandoned where they stand, and the next call may reuse the stack from
/// its top.
///
/// # Safety
///
/// - `callee_stack_top` is the upper end of writable memory that nothing
///   else uses until this call returns, large enough for `f`, the C code
///   and the callbacks it runs, and that stays allocated until then. It is
///   rounded down to [`STACK_ALIGN`].
/// - Every frame that a callback's panic can abandon must be a plain old
///   frame (RFC 2945) at that moment: no value with a destructor may be
///   live in `f`'s frames, or in any Rust frame between `f` and the
///   callback, while a call that may call back is in progress. In practice
///   `f` only calls the C function, with arguments that own nothing, and
///   returns what it returns. (C frames have no destructors; C code must
///   not rely on code after a callback running, as in Go.)
/// - Callbacks must unwind only to the innermost resume point of the
///   execution that runs them (the chain is per goroutine: see
///   [`swap_thread_state`](crate::swap_thread_state)).
pub unsafe fn call_with_resume_point<R, H, F>(
    callee_stack_top: *mut u8,
    hook: H,
    f: F,
) -> Result<R, Panic>
where
    H: FnOnce(&Panic),
    F: FnOnce() -> R,
{
    assert!(
        !callee_stack_top.is_null(),
        "call_with_resume_point: null callee stack"
    );
    // SAFETY: forwarded from this function's contract.
    unsafe { call(Some(callee_stack_top), hook, f) }
}

/// [`call_with_resume_point`] with the callee on the current stack, below
/// this call's frame: the shape of a callback from C that calls into C
/// again on the same stack (Rust -> C1 -> Rust -> C2), where C2 must start
/// below the live frames of C1 and of the callback.
///
/// The callee starts [`below_gap`] bytes below this call's stack pointer:
/// room for this call's own helper frames and for a signal frame that the
/// kernel may push between writing the callee's initial frame and switching
/// to it (see docs/unwind.md). The same gap every time, so repeating the
/// call (or unwinding out of it) never moves the callee's frames.
///
/// # Safety
///
/// As [`call_with_resume_point`], where the callee stack is the rest of the
/// current stack: it must have room for [`below_gap`] plus what the callee
/// needs.
pub unsafe fn call_with_resume_point_below<R, H, F>(hook: H, f: F) -> Result<R, Panic>
where
    H: FnOnce(&Panic),
    F: FnOnce() -> R,
{
    // SAFETY: forwarded from this function's contract.
    unsafe { call_below(hook, f) }
}

/// Bytes between the stack pointer of [`call_with_resume_point_below`] and
/// the top of its callee: at least 8 KiB, and at least the kernel's
/// minimal signal frame (`AT_MINSIGSTKSZ`, which grows with the CPU's
/// vector state) plus 4 KiB.
pub fn below_gap() -> usize {
    static GAP: AtomicUsize = AtomicUsize::new(0);
    let g = GAP.load(Ordering::Relaxed);
    if g != 0 {
        return g;
    }
    let g = (min_signal_frame() + 4096)
        .max(8192)
        .next_multiple_of(STACK_ALIGN);
    GAP.store(g, Ordering::Relaxed);
    g
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn min_signal_frame() -> usize {
    // SAFETY: getauxval has no preconditions; 0 means "not provided".
    unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) as usize }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn min_signal_frame() -> usize {
    0
}

/// [`call_with_resume_point_below`]'s body. Never inlined: the callee
/// goes below this function's frame, which must be fixed while it runs.
#[inline(never)]
unsafe fn call_below<R, H, F>(hook: H, f: F) -> Result<R, Panic>
where
    H: FnOnce(&Panic),
    F: FnOnce() -> R,
{
    // SAFETY: forwarded.
    unsafe { call(None, hook, f) }
}

/// The body of both entry points, inlined into the callers: with `None`
/// only through `call_below`, whose frame stays put.
#[inline(always)]
unsafe fn call<R, H, F>(top: Option<*mut u8>, hook: H, f: F) -> Result<R, Panic>
where
    H: FnOnce(&Panic),
    F: FnOnce() -> R,
{
    // (The hook is installed by the `catch` in `entry`, before anything
    // can panic.)
    let mut rp = ResumePoint {
        prev: std::ptr::null_mut(),
        caller: Context::empty(),
        panic: None,
        quiet: 0,
    };
    let rp_ptr = &raw mut rp;
    let mut call = Call::<F, R> {
        f: ManuallyDrop::new(f),
        result: MaybeUninit::uninit(),
        rp: rp_ptr,
    };
    // SAFETY: rp lives in this frame until it is unlinked below.
    unsafe { state::push_resume_point(rp_ptr) };

    let top = match top {
        Some(t) => ((t as usize) & !(STACK_ALIGN - 1)) as *mut u8,
        // Below everything this frame holds: locals live above the stack
        // pointer, which stays put in the body of a function, and the
        // trampoline's own frame (a few words) goes above the gap too.
        None => ((current_sp() - below_gap()) & !(STACK_ALIGN - 1)) as *mut u8,
    };
    // The caller is left resumable in `rp.caller` while the callee runs:
    // the callee returns RETURNED or PANICKED through the trampoline, or
    // a callback's unwind_to_resume_point switches to `rp.caller` with
    // PANICKED, abandoning the callee's stack as it stands.
    // SAFETY: the callee stack is valid per this function's contract; the
    // entry receives `call`, which stays alive in this frame until the
    // trampoline comes back here; `rp.caller` is switched to at most once
    // (unwind_to_resume_point takes it), on this execution's thread.
    let how = unsafe {
        on_stack_resumable(
            top,
            entry::<F, R>,
            (&raw mut call) as usize,
            &raw mut rp.caller,
        )
    };

    // SAFETY: as above: rp is the record pushed above.
    if !unsafe { state::pop_resume_point(rp_ptr) } {
        fatal(format_args!(
            "resume point chain corrupted: returning from a call with a resume point \
             that is not the innermost (was the unwind state swapped wrongly?)"
        ));
    }

    match how {
        RETURNED => {
            // SAFETY: the entry wrote the result before returning RETURNED.
            Ok(unsafe { call.result.assume_init_read() })
        }
        PANICKED => {
            let p = rp.panic.take().unwrap_or_else(|| {
                fatal(format_args!(
                    "resume point: resumed as panicked without a panic"
                ))
            });
            hook(&p);
            Err(p)
        }
        other => fatal(format_args!(
            "resume point: resumed with an unknown value {other:#x}"
        )),
    }
}

/// The callee, on the callee stack: runs `f` under a catch and returns
/// how it ended (the trampoline hands that back to the caller).
///
/// While `f` runs, this frame holds only raw pointers and the frames of the
/// `catch` around `f` (no values with destructors: `f` has been moved into
/// the call), so it may be abandoned.
unsafe extern "C" fn entry<F: FnOnce() -> R, R>(arg: usize) -> usize {
    let call = arg as *mut Call<F, R>;
    // SAFETY: `arg` is the `Call` in the suspended caller's frame, alive
    // until the trampoline returns there; the caller touches it only after.
    // `f` is taken exactly once, here; `call` never drops it.
    let (rp, f) = unsafe { ((*call).rp, ManuallyDrop::take(&mut (*call).f)) };
    match catch(false, f) {
        Ok(r) => {
            // SAFETY: as above; the result slot is written once.
            unsafe { (*call).result.write(r) };
            RETURNED
        }
        Err(p) => {
            // SAFETY: as above.
            unsafe { (*rp).panic = Some(p) };
            PANICKED
        }
    }
}

/// The stack pointer at which the innermost resume point's caller is
/// suspended (None: no resume point).
///
/// While the callee runs, everything below this address on the caller's
/// stack is free (the caller's frames and the registers its switch saved
/// lie at and above it). The C bridge runs a callback's body there, on the
/// goroutine's own stack right below its C call, while the C frames stay
/// on the system stack: Go runs `cgocallbackg` on the goroutine stack below
/// the `cgocall` frame in the same way. A body run there that calls into C
/// again makes its own resume point, so the next callback's body runs below
/// that one: positions nest without ever moving up.
pub fn resume_point_caller_sp() -> Option<usize> {
    let rp = state::resume_head();
    if rp.is_null() {
        return None;
    }
    // SAFETY: a resume point on the chain is alive (the chain's invariant),
    // and its caller context is set from the callee's first instruction.
    let sp = unsafe { (*rp).caller.stack_pointer() };
    (sp != 0).then_some(sp)
}

/// Continues a panic caught at a callback's boundary in the Rust frame that
/// made the call into C: switches to the innermost resume point's suspended
/// caller with the panic, abandoning the current context (this frame, the
/// callback's frames below the boundary, the C frames and the callee
/// trampoline) without running anything in it.
///
/// With no resume point (a callback on a thread that no Rust caller is
/// waiting on: a foreign thread) there is nowhere to go: the process aborts
/// with `fatal error: gort: panic in a callback from C with no Rust caller to unwind
/// to: MSG` and the panic's location.
///
/// Also fatal: calling this while a panic is unwinding on this thread (the
/// unwinder's own frames would be abandoned mid-flight).
///
/// # Safety
///
/// Every frame between the innermost resume point's callee entry and this
/// call must be a plain old frame now: no Rust value with a destructor may
/// be live in them, nor in the caller of this function (move everything,
/// the panic included, into this call). That holds at the top of an
/// `extern "C"` callback whose body ran under a catch, which is what
/// [`callback_boundary`] does.
pub unsafe fn unwind_to_resume_point(panic: Panic) -> ! {
    if std::thread::panicking() {
        fatal(format_args!(
            "unwind_to_resume_point while another panic is unwinding: {}",
            describe(&panic)
        ));
    }
    let rp = state::resume_head();
    if rp.is_null() {
        fatal(format_args!(
            "panic in a callback from C with no Rust caller to unwind to: {}",
            describe(&panic)
        ));
    }
    // SAFETY: `rp` is the innermost live resume point of this execution
    // (the chain's invariant); its caller is suspended in `call`.
    let caller = unsafe { (*rp).caller.take() };
    if caller.is_empty() {
        fatal(format_args!(
            "resume point has no suspended caller (unwound to twice?): {}",
            describe(&panic)
        ));
    }
    // SAFETY: as above. After the panic moves into the record, this frame
    // owns nothing; the switch abandons it.
    unsafe {
        (*rp).panic = Some(panic);
        let _ = switch(caller, PANICKED);
    }
    fatal(format_args!("an abandoned callback was resumed"))
}

/// Runs a callback's body: returns its value, or, when it panics, continues
/// the panic at the innermost resume point ([`unwind_to_resume_point`]).
///
/// What an `extern "C"` function that C calls runs, at its top: the panic
/// never reaches the C frames (it would abort the process: a panic cannot
/// unwind out of an `extern "C"` function), and the Rust frames inside `f`
/// are unwound normally, their destructors run, before the jump.
///
/// ```no_run
/// use std::ffi::c_void;
/// unsafe extern "C" fn on_event(arg: *mut c_void) {
///     // SAFETY: C calls this from inside a call_with_resume_point, and
///     // this frame holds nothing else.
///     unsafe { gort_unwind::callback_boundary(|| handle(arg)) }
/// }
/// # fn handle(_: *mut c_void) {}
/// ```
///
/// # Safety
///
/// As [`unwind_to_resume_point`]: on a panic, the frames between the
/// innermost resume point and this call (the C frames, and the caller of
/// this function, which must hold nothing with a destructor) are abandoned.
pub unsafe fn callback_boundary<R>(f: impl FnOnce() -> R) -> R {
    match catch(false, f) {
        Ok(r) => r,
        // SAFETY: forwarded from this function's contract; this frame holds
        // nothing but the panic, which moves into the call.
        Err(p) => unsafe { unwind_to_resume_point(p) },
    }
}

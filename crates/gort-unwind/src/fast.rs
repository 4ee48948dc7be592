//! [`Panic::resume`](crate::Panic::resume) without the unwinder, when the
//! unwinder would run nothing.
//!
//! Raising a panic again costs the platform unwinder's two passes over
//! every frame up to the catch (libgcc: about 200 ns per frame on the
//! project's machine, 1.5-2 µs for the frames of `cgo::call` inside a
//! `recover`). Often nothing in those frames needs the unwinder: no value
//! with a destructor is live at the call sites, no `catch_unwind` is
//! pending. Then unwinding them and deallocating them are the same thing,
//! and a jump does it:
//!
//! - [`recover_scoped`] (what [`recover`](crate::recover) runs) calls its
//!   closure through `gort_arch::on_stack_resumable` on the current stack,
//!   a few hundred bytes down, so its caller stays resumable while the
//!   closure runs, and it leaves the address of its [`Scope`] at a fixed
//!   place above the trampoline's frame.
//! - [`innermost_scope`] walks the stack from `Panic::resume` up with the
//!   frames' call-frame information (`.eh_frame`), as the unwinder's first
//!   pass does, and stops at the innermost `recover` scope. It asks each
//!   frame's exception table (LSDA) whether the call site the frame is
//!   suspended at has a landing pad. Only if none has, it returns the
//!   scope; anything it does not understand (a frame without call-frame
//!   information, a CFA rule other than register plus offset, a signal
//!   frame, a walk deeper than 64 frames, a library unloaded since the
//!   cache was filled) makes it return `None`, and the panic is raised
//!   with `resume_unwind` as before.
//! - [`jump`] moves the panic into the scope and switches to it: the
//!   `recover` returns `Err(panic)` as if its catch had caught it.
//!
//! What the walk learns about a return address (how to find the caller's
//! frame from it, and whether its call site has a landing pad) depends on
//! nothing but the code, so it is cached per thread: after the first
//! resume from a call site, a walk is a few loads per frame. See
//! docs/unwind.md ("Resuming without the unwinder") for why skipping the
//! frames this way is sound.

use std::mem::{ManuallyDrop, MaybeUninit};
use std::panic::{catch_unwind, AssertUnwindSafe};

use gort_arch::{current_sp, on_stack_resumable, switch, Context, STACK_ALIGN};

use std::ops::ControlFlow;

use crate::cfi::{self, Action, Cache, Regs, MAX_FRAMES, MAX_SPAN};
use crate::fatal::fatal;
use crate::Panic;

/// How the trampoline call of [`recover_scoped`] ended: distinct words.
const RETURNED: usize = 0x7265_7421;
const PANICKED: usize = 0x7061_6e21;
const JUMPED: usize = 0x6a6d_7021;

/// Mixed with a scope's address in `Scope::magic`.
const MAGIC: usize = 0x9e37_79b9;

/// Bytes between [`recover_scoped`]'s stack pointer and the top it hands
/// to the trampoline: room for the trampoline's frame (64 bytes on x86_64,
/// 176 on aarch64, under 80 on x86 with its pushed arguments) and above it,
/// at the top, the slot with the scope's address.
const GAP: usize = 256;

/// Where the slot with the scope's address is, above `tramp`'s CFA. On
/// x86_64 and aarch64 the trampoline calls `tramp` with the stack pointer
/// at the top, so its CFA is the top; on x86 it pushes `arg` 16 bytes
/// below the top and calls, so the CFA is top - 16.
#[cfg(not(target_arch = "x86"))]
const SLOT_ABOVE_CFA: usize = 0;
#[cfg(target_arch = "x86")]
const SLOT_ABOVE_CFA: usize = 16;

/// A `recover` in progress: lives in [`recover_scoped`]'s frame while the
/// closure runs.
///
/// Must hold: `magic` is `MAGIC ^ (its own address)`; `resume` holds the
/// suspended caller of the trampoline from the trampoline's first
/// instruction until the call returns; `body` is `body::<F, T>` for the
/// `Call<F, T>` that `call` points to; `panic` is `Some` only when the
/// trampoline call ends with `PANICKED` or `JUMPED`.
#[repr(C)]
pub(crate) struct Scope {
    magic: usize,
    /// The top handed to the trampoline; the trampoline writes the
    /// scope's address there.
    top: *mut usize,
    /// `recover_scoped`, suspended by `on_stack_resumable`.
    resume: Context,
    /// Runs the closure: `body::<F, T>`.
    body: unsafe fn(*mut Scope),
    /// The `Call<F, T>` in `recover_scoped`'s frame.
    call: *mut (),
    panic: Option<Panic>,
}

/// The closure and a slot for its value.
struct Call<F, T> {
    f: ManuallyDrop<F>,
    out: MaybeUninit<T>,
}

/// Runs `f` under a catch, with the caller resumable by [`jump`]: `Ok`
/// with its value, or `Err` with its panic (caught by the catch, or handed
/// over by a `Panic::resume` that [`innermost_scope`] found this scope
/// for). Not a quiet scope by itself.
pub(crate) fn recover_scoped<F: FnOnce() -> T, T>(f: F) -> Result<T, Panic> {
    let mut call = Call::<F, T> {
        f: ManuallyDrop::new(f),
        out: MaybeUninit::uninit(),
    };
    let mut scope = Scope {
        magic: 0,
        top: std::ptr::null_mut(),
        resume: Context::empty(),
        body: body::<F, T>,
        call: (&raw mut call).cast(),
        panic: None,
    };
    let sp = &raw mut scope;
    scope.magic = MAGIC ^ sp as usize;
    // Below this frame's stack pointer (locals live above it, and it stays
    // put in a function's body) by more than the trampoline's own frame.
    let top = (current_sp() - GAP) & !(STACK_ALIGN - 1);
    scope.top = top as *mut usize;
    // SAFETY: everything below this frame's stack pointer is free stack
    // (the closure runs there as any callee would, and `top` leaves room
    // for the trampoline's frame above it); `scope.resume` stays in this
    // frame until the call returns; only `jump` switches to it, once,
    // from a frame of this same execution below the trampoline (found by
    // walking this stack), so on the stack this call runs on. `tramp`
    // does not unwind: it catches everything.
    let how =
        unsafe { on_stack_resumable(top as *mut u8, tramp, sp as usize, &raw mut scope.resume) };
    match how {
        // SAFETY: body wrote the value before returning normally.
        RETURNED => Ok(unsafe { call.out.assume_init_read() }),
        PANICKED | JUMPED => Err(scope
            .panic
            .take()
            .unwrap_or_else(|| fatal(format_args!("recover: ended as panicked without a panic")))),
        other => fatal(format_args!(
            "recover: ended with an unknown value {other:#x}"
        )),
    }
}

/// The trampoline's callee: marks the scope's slot, runs the closure under
/// a catch. Not generic, so the walk knows it by address.
unsafe extern "C" fn tramp(arg: usize) -> usize {
    let scope = arg as *mut Scope;
    // SAFETY: `arg` is the scope in recover_scoped's frame, alive until
    // this call returns there; `top` is in the free gap between this
    // frame's caller (the trampoline) and this frame, above this frame's
    // stack pointer, so nothing else writes it while this runs.
    unsafe { (*scope).top.write(arg) };
    // SAFETY: as above; `body` matches `call` (Scope's invariant).
    match catch_unwind(AssertUnwindSafe(|| unsafe { ((*scope).body)(scope) })) {
        Ok(()) => RETURNED,
        Err(payload) => {
            // SAFETY: as above.
            unsafe { (*scope).panic = Some(Panic::caught(payload)) };
            PANICKED
        }
    }
}

/// Runs the closure and stores its value. Called only by [`tramp`],
/// through a pointer (never inlined there), so that the walk can tell the
/// closure's frames (this one and below) from the catch's (above).
///
/// # Safety
/// `scope.call` is a `Call<F, T>` whose closure was not taken.
unsafe fn body<F: FnOnce() -> T, T>(scope: *mut Scope) {
    // SAFETY: the caller's contract; `f` is taken exactly once, here.
    let call = unsafe { &mut *(*scope).call.cast::<Call<F, T>>() };
    // SAFETY: as above.
    let f = unsafe { ManuallyDrop::take(&mut call.f) };
    let v = f();
    call.out.write(v);
}

/// Ends the scope's trampoline call with `panic`, abandoning every frame
/// below the scope's caller.
///
/// # Safety
/// `scope` was returned by [`innermost_scope`] in a frame of this
/// execution that is still live (the caller of `innermost_scope`), and
/// the caller holds nothing with a destructor (`panic` moves in here).
pub(crate) unsafe fn jump(scope: *mut Scope, panic: Panic) -> ! {
    // SAFETY: the scope is live (found on this stack above the caller) and
    // its caller is suspended in on_stack_resumable; nothing in the
    // abandoned frames needs to run (innermost_scope checked every one),
    // and this frame owns nothing once the panic has moved.
    unsafe {
        (*scope).panic = Some(panic);
        let to = (*scope).resume.take();
        let _ = switch(to, JUMPED);
    }
    fatal(format_args!("an abandoned Panic::resume was resumed"))
}

/// The innermost `recover` scope above the caller of `Panic::resume`, if
/// every frame between them would run nothing when unwound. Must be called
/// directly by `Panic::resume` (checked: the walk expects that frame).
#[inline(never)]
pub(crate) fn innermost_scope() -> Option<*mut Scope> {
    // A panic unwinding on this thread: the caller is a destructor (or
    // code it calls), and its frames sit on top of the unwinder's.
    if std::thread::panicking() {
        return None;
    }
    let here = cfi::here();
    // SAFETY: `here` is this frame's state, and this frame is live until
    // the walk returns.
    cfi::with_cache(|c| unsafe { walk(c, here) })
}

/// Walks from the frame that `here` describes.
///
/// # Safety
/// `here` holds the pc, stack pointer and frame pointer of a live frame
/// on the current stack (the walk reads the stack above it).
unsafe fn walk(c: &mut Cache, here: Regs) -> Option<*mut Scope> {
    let resume_fn = Panic::resume as fn(Panic) -> ! as usize;
    let tramp_fn = tramp as unsafe extern "C" fn(usize) -> usize as usize;
    // (function start, runs nothing when unwound) of frames 2.. .
    let mut frames = [(0usize, false); MAX_FRAMES];
    let visit = |depth, rule: &cfi::Rule, _: &Regs, cfa| match depth {
        0 => ControlFlow::Continue(()),
        1 if rule.func != resume_fn => ControlFlow::Break(None),
        1 => ControlFlow::Continue(()),
        _ if rule.func == tramp_fn => {
            // SAFETY: this frame is a live `tramp` (its code is where the
            // return address points, and it is on this stack).
            ControlFlow::Break(unsafe { scope_of(cfa, &frames[2..depth]) })
        }
        _ => {
            frames[depth] = (rule.func, rule.action == Action::None);
            ControlFlow::Continue(())
        }
    };
    // SAFETY: the caller's contract.
    unsafe { cfi::walk_frames(c, here, visit) }
}

/// The scope of the `tramp` frame whose CFA is `cfa`, if every frame from
/// the walk's start up to its `body` frame (inclusive) runs nothing when
/// unwound.
///
/// # Safety
/// A live `tramp` frame has this CFA.
unsafe fn scope_of(cfa: usize, frames: &[(usize, bool)]) -> Option<*mut Scope> {
    // SAFETY: tramp wrote its scope's address there first thing (at the
    // top it was given, SLOT_ABOVE_CFA above its CFA), and the slot
    // stays untouched while tramp is live.
    let scope = unsafe { ((cfa + SLOT_ABOVE_CFA) as *const usize).read() } as *mut Scope;
    if scope.is_null() || (scope as usize) <= cfa || (scope as usize) - cfa > MAX_SPAN {
        return None;
    }
    // SAFETY: the slot holds a live scope's address (checked against its
    // magic before use, in case SLOT_ABOVE_CFA is wrong for this target).
    let (magic, top, body) = unsafe { ((*scope).magic, (*scope).top, (*scope).body) };
    if magic != MAGIC ^ scope as usize || top as usize != cfa + SLOT_ABOVE_CFA {
        return None;
    }
    // Frames above `body` and below `tramp` are the catch's own (std's
    // catch_unwind, the closure that calls `body`): what `jump` replaces.
    let i = frames.iter().rposition(|f| f.0 == body as usize)?;
    frames[..=i].iter().all(|f| f.1).then_some(scope)
}

thread_local! {
    static JUMPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts a `Panic::resume` that took the fast path, on this thread.
#[inline(never)]
pub(crate) fn count_jump() {
    JUMPS.with(|j| j.set(j.get() + 1));
}

/// How many `Panic::resume`s on this thread went straight to their
/// `recover` without the unwinder: a diagnostic, for tests and benchmarks
/// that check which path a panic took.
#[inline(never)]
pub fn jumps_on_this_thread() -> u64 {
    JUMPS.with(|j| j.get())
}

impl Panic {
    /// Raises the panic again, from here: the panic hook does not run again
    /// (the panic was reported, or kept quiet, when first raised), and the
    /// next catch gets this panic's location back.
    ///
    /// When the nearest catch is a [`recover`](crate::recover) and no frame
    /// between here and it would run anything while unwinding (no value
    /// with a destructor live, no `catch_unwind` or `defer!` pending), the
    /// panic goes straight to that `recover`, without the platform
    /// unwinder: the common shape `recover(|| cgo::call(..))` costs one
    /// unwind instead of two. Otherwise it is raised with
    /// [`std::panic::resume_unwind`], and destructors and catches between
    /// see it as usual. See docs/unwind.md ("Resuming without the
    /// unwinder").
    // Never inlined: the fast path's frame walk expects this function's
    // frame right above its own.
    #[inline(never)]
    pub fn resume(self) -> ! {
        if let Some(scope) = innermost_scope() {
            count_jump();
            // SAFETY: the scope was found above this frame on this stack,
            // with nothing between that the unwinder would run; `self`
            // moves into the call, so this frame owns nothing.
            unsafe { jump(scope, self) }
        }
        crate::state::set_location(self.location);
        std::panic::resume_unwind(self.payload)
    }
}

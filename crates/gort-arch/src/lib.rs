//! Stack switching for gort: symmetric context switches and on-stack calls.
//!
//! This crate is the bottom layer of gort. It knows nothing about goroutines,
//! schedulers or memory: it saves the registers that the platform ABI says a
//! function must preserve, swaps the stack pointer, and restores the other
//! side's registers. Everything above it (stacks, panics, the scheduler)
//! builds on four primitives that every backend provides:
//!
//! - [`init`] lays out an initial frame on a fresh stack so that the first
//!   [`switch`] to it enters an [`EntryFn`].
//! - [`switch`] suspends the current context and resumes another one,
//!   passing a `usize`; the resumed side receives the suspended context
//!   (as Boost.Context's `jump_fcontext` does), so a context handle only
//!   ever moves, in registers, and is never shared.
//! - [`on_stack`] runs a closure on another stack and comes back (the
//!   primitive for running code on a thread's system stack, like Go's
//!   `systemstack`).
//! - [`current_sp`] reads the stack pointer.
//!
//! A fifth, [`on_stack_resumable`], is `on_stack` with the caller left as
//! a context that a switch can resume: the way back from a callback's
//! panic over C frames.
//!
//! Backends: x86_64 (System V), aarch64 (AAPCS64) and x86 (i386 System V),
//! each in its own module behind `cfg`; any other architecture is a compile
//! error. `docs/arch.md` draws the frames of each backend.
//!
//! # Example
//!
//! A generator: the context answers each number it is sent with its square.
//!
//! ```
//! use gort_arch::{init, switch, Context};
//!
//! unsafe extern "C" fn squares(_arg: usize, mut caller: Context, mut value: usize) -> ! {
//!     loop {
//!         // SAFETY: `caller` is the suspended context that resumed us.
//!         (caller, value) = unsafe { switch(caller, value * value) };
//!     }
//! }
//!
//! let mut stack = vec![0u128; 4096]; // 64 KiB, 16-byte aligned
//! // SAFETY: the stack outlives every switch to the context; squares never
//! // returns, and it is left suspended (owning nothing) when we are done.
//! unsafe {
//!     let top = stack.as_mut_ptr().add(stack.len()).cast::<u8>();
//!     let mut co = init(top, squares, 0);
//!     for i in 1..5usize {
//!         let square;
//!         (co, square) = switch(co, i);
//!         assert_eq!(square, i * i);
//!     }
//! }
//! ```
//!
//! # Why contexts are handed over, not stored
//!
//! `switch(to, value)` returns `(from, value)`: the context that switched to
//! us, suspended, in a register. The alternative, `switch(&mut save_slot,
//! to)` with the other side reading the slot, puts a store and a dependent
//! load on the critical path of every switch; measured on x86_64 the
//! handover makes a round trip about 1.5x faster (docs/performance.md), and
//! it makes "each suspended context is resumed once" a matter of ownership:
//! `Context` is neither `Copy` nor `Clone`, and `switch` consumes it.
//!
//! # Floating-point control words
//!
//! The switch does not save MXCSR and the x87 control word (x86), nor FPCR
//! (aarch64), although the ABIs list their control bits as callee-saved.
//! Rust code always runs in the default floating-point environment: the
//! compiler assumes it, and code that changes the rounding mode or exception
//! masks must restore them before any Rust code runs again. So at every
//! switch point, which is Rust code, the control words already hold their
//! default values and there is nothing to restore. Go and corosensei make the
//! same choice; Boost.Context saves them because C++ allows a coroutine to
//! run under a non-default environment. Saving them would cost 5-6 ns per
//! round trip on x86_64 (measured in the design probe: 15.6 vs 21 ns), more
//! than a whole gort round trip.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};

#[cfg(target_arch = "aarch64")]
#[path = "aarch64.rs"]
mod imp;
#[cfg(target_arch = "x86")]
#[path = "x86.rs"]
mod imp;
#[cfg(target_arch = "x86_64")]
#[path = "x86_64.rs"]
mod imp;

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "x86")))]
compile_error!("gort-arch supports x86_64, aarch64 and x86 (i686) only");

/// Stack pointer alignment, in bytes, that every backend requires of a
/// `stack_top` passed to [`init`] and [`on_stack`]. 16 on all three ABIs.
pub const STACK_ALIGN: usize = 16;

/// Bytes that [`init`] writes below `stack_top` for the initial frame:
/// four words (drawn in each backend's module).
pub const INIT_FRAME_SIZE: usize = 4 * std::mem::size_of::<usize>();

mod context;
mod trace;
pub use context::Context;
pub use trace::backtrace_of;

// The two trampolines every backend defines in its global_asm (same names
// on all three; each module draws its frames).
extern "C" {
    fn __gort_arch_v0_start();
    fn __gort_arch_v0_on_stack(arg: *mut u8, f: unsafe extern "C" fn(*mut u8), top: usize);
    fn __gort_arch_v0_on_stack_resumable(
        arg: usize,
        f: ResumableFn,
        top: usize,
        resume: *mut Context,
    ) -> usize;
}

/// The function a fresh context enters on the first [`switch`] to it.
///
/// `arg` is the value given to [`init`]; `from` is the suspended context
/// that switched to this one (so the new context can switch back to it);
/// `value` is the value passed to that first [`switch`].
///
/// The function must never return: there is no frame to return to below it
/// (the initial frame ends the stack for unwinders, and the trampoline traps
/// with an illegal instruction if it is ever returned to). It must not let a
/// panic escape either; being `extern "C"`, an escaping panic aborts the
/// process. Finish by switching away for good.
pub type EntryFn = unsafe extern "C" fn(arg: usize, from: Context, value: usize) -> !;

/// Lays out the initial frame of a new context on a fresh stack.
///
/// The first [`switch`] to the returned context calls
/// `entry(arg, from, value)` on that stack, with the stack pointer aligned
/// as the ABI requires at a function's entry, and with a terminating
/// bottom frame so that unwinders and debuggers stop cleanly below `entry`.
///
/// # Safety
///
/// `stack_top` must be the (exclusive) upper end of writable memory that
/// stays allocated for as long as the context can run, and is large enough
/// for the initial frame ([`INIT_FRAME_SIZE`]) plus everything `entry` does.
/// It is rounded down to [`STACK_ALIGN`].
#[inline]
pub unsafe fn init(stack_top: *mut u8, entry: EntryFn, arg: usize) -> Context {
    debug_assert!(!stack_top.is_null());
    let top = (stack_top as usize) & !(STACK_ALIGN - 1);
    // The same four words on every backend: the start trampoline (where
    // the first switch lands), arg, entry, padding. The trampoline of each
    // architecture reads them from where its switch leaves the stack.
    let sp = top - INIT_FRAME_SIZE;
    let frame = sp as *mut usize;
    // SAFETY: the caller guarantees that `top - INIT_FRAME_SIZE .. top` is
    // writable memory of the new stack; `sp` is 16-aligned, so every word
    // write is aligned.
    unsafe {
        frame.write(__gort_arch_v0_start as *const () as usize);
        frame.add(1).write(arg);
        frame.add(2).write(entry as usize);
        frame.add(3).write(0);
    }
    Context { sp }
}

/// Suspends the current context and resumes `to`, passing `value`.
///
/// Returns when some context switches back to this one, with that
/// context (suspended) and the value it passed. Only the registers the ABI
/// requires a callee to preserve are saved (the inline asm declares the
/// others clobbered, so the compiler spills around the switch only what is
/// live in the caller).
///
/// # Safety
///
/// - `to` must hold a context produced by [`init`] or by a [`switch`] that
///   has not been resumed since, whose stack is still allocated.
/// - The stack this call runs on must stay allocated until the context
///   suspended here is resumed (or abandoned for good).
/// - Nothing may unwind across a switch: a panic must be caught on the stack
///   where it was raised (see `gort-unwind`).
/// - Thread-local storage: if the suspended context is later resumed on
///   another thread, addresses of thread-locals taken before the switch are
///   stale.
#[inline(always)]
pub unsafe fn switch(to: Context, value: usize) -> (Context, usize) {
    debug_assert!(!to.is_empty(), "switch to an empty Context");
    // SAFETY: forwarded from this function's contract.
    let (from, value) = unsafe { imp::switch(to.sp, value) };
    (Context { sp: from }, value)
}

/// Runs `f` on the stack that ends at `stack_top` and returns its result,
/// back on the current stack.
///
/// A panic in `f` is caught on the other stack and returned as `Err` (a
/// panic never unwinds across the stack change); the caller decides whether
/// to raise it again with [`std::panic::resume_unwind`]. Backtraces taken
/// inside `f` continue into the caller's frames: the trampoline's unwind
/// information links the two stacks.
///
/// # Safety
///
/// `stack_top` must be the upper end of writable memory, aligned to
/// [`STACK_ALIGN`], not in use by anything else, and large enough for `f`.
pub unsafe fn on_stack<R, F: FnOnce() -> R>(stack_top: *mut u8, f: F) -> std::thread::Result<R> {
    assert!(
        (stack_top as usize).is_multiple_of(STACK_ALIGN),
        "on_stack: stack_top {stack_top:p} is not {STACK_ALIGN}-byte aligned"
    );

    struct Call<F, R> {
        f: ManuallyDrop<F>,
        result: Option<std::thread::Result<R>>,
    }

    unsafe extern "C" fn run<F: FnOnce() -> R, R>(call: *mut u8) {
        // SAFETY: `call` is the `Call` that `on_stack` passed through the
        // trampoline; it lives in on_stack's frame until the trampoline
        // returns, and nothing else touches it meanwhile.
        let call = unsafe { &mut *call.cast::<Call<F, R>>() };
        // SAFETY: `f` is taken exactly once, here; on_stack never drops it.
        let f = unsafe { ManuallyDrop::take(&mut call.f) };
        call.result = Some(catch_unwind(AssertUnwindSafe(f)));
    }

    let mut call = Call::<F, R> {
        f: ManuallyDrop::new(f),
        result: None,
    };
    // SAFETY: the stack is valid per this function's contract; `run` is an
    // `extern "C"` function that catches every panic, so nothing unwinds
    // through the trampoline, which preserves every callee-saved register.
    unsafe {
        __gort_arch_v0_on_stack(
            (&raw mut call).cast::<u8>(),
            run::<F, R>,
            stack_top as usize,
        )
    };
    call.result
        .expect("on_stack: the closure did not run to completion")
}

/// The function [`on_stack_resumable`] runs on the other stack.
pub type ResumableFn = unsafe extern "C" fn(arg: usize) -> usize;

/// Calls `f(arg)` on the stack that ends at `stack_top` and returns its
/// value, with the caller left resumable while `f` runs: `*resume` holds
/// the caller, suspended as [`switch`] suspends a context. Whoever takes
/// that context and switches to it with a value `v` (from `f`'s stack or
/// from any stack `f` switched to) makes this call return `v`, abandoning
/// the other stack as it stands.
///
/// The primitive under a call into C that a panic in a callback must be
/// able to skip (gort-unwind's resume points): the normal path costs a
/// plain call (every callee-saved register is pushed once and popped once,
/// no context is made for `f`), and the other path is an ordinary switch.
/// Backtraces taken inside `f` continue into the caller, as with
/// [`on_stack`]. When the call returns, `*resume` is empty.
///
/// The two ways out cannot be told apart by this call: the caller makes
/// `f`'s values and the values switched in distinct.
///
/// # Safety
///
/// - `stack_top` is the upper end of writable memory, aligned to
///   [`STACK_ALIGN`], unused by anything else and large enough for `f`.
/// - `resume` is valid for writes, and stays so and is not moved from
///   until this call returns; the context in it is switched to at most
///   once, only while `f` runs (or a context that `f` started runs), and
///   only on this thread's stack: a switch back from another OS thread
///   would leave this call running on that thread.
/// - `f` must not unwind (it is `extern "C"`: a panic escaping it aborts).
#[inline]
pub unsafe fn on_stack_resumable(
    stack_top: *mut u8,
    f: ResumableFn,
    arg: usize,
    resume: *mut Context,
) -> usize {
    debug_assert!((stack_top as usize).is_multiple_of(STACK_ALIGN));
    // SAFETY: forwarded from this function's contract. The trampoline
    // preserves every callee-saved register on both ways out (it restores
    // them from its own frame), so to the compiler it is a plain call.
    let v = unsafe { __gort_arch_v0_on_stack_resumable(arg, f, stack_top as usize, resume) };
    // SAFETY: `resume` is valid for writes (the contract); its context was
    // consumed (switched to) or is stale now that the frame is gone.
    unsafe { resume.write(Context::empty()) };
    v
}

/// The current stack pointer.
#[inline(always)]
pub fn current_sp() -> usize {
    imp::current_sp()
}

// The README's example is compiled and run as a doctest, so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

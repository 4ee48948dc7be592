//! defer, panic and recover for gort: panics carried across stack switches
//! as values, and panics in callbacks from C that skip the C frames and
//! continue in the Rust frame that called C, as in Go.
//!
//! - [`Panic`]: an owned panic (payload, message, [`Location`], goroutine
//!   id slot) that can cross a stack switch and be raised again with
//!   [`Panic::resume`].
//! - [`catch`], [`recover`] (quiet: nothing is printed, as Go prints nothing
//!   for a recovered panic) and [`catch_on_stack`] (a boundary catch on
//!   another stack: the panic is caught at that stack's entry and never
//!   unwinds through the switch or off the stack's base).
//! - Resume points, for calls into C that may call back:
//!   [`call_with_resume_point`] runs a closure (that calls C) on another
//!   stack with a resume point in the caller's frame;
//!   [`callback_boundary`] at the top of an `extern "C"` callback catches
//!   the callback's panic after its Rust frames have unwound, and
//!   [`unwind_to_resume_point`] switches to the resume point with it,
//!   abandoning the C frames in between without running them.
//! - [`defer!`] runs a block at scope exit, also while unwinding.
//! - [`UnwindState`] and [`swap_thread_state`]: the per-goroutine part of
//!   the per-thread state, which the scheduler moves with a goroutine.
//!
//! # The panic hook
//!
//! The first catch or resume point installs a panic hook (once per process)
//! that wraps the hook set before it. It records where each panic was raised
//! (that is how a [`Panic`] knows its [`Location`]) and, inside a quiet
//! scope, returns without calling the previous hook: std's default hook
//! formats and prints the message, which is most of what a panic costs when
//! nobody will see it. Outside quiet scopes the previous hook runs as
//! before. If the program replaces the hook afterwards, catching still
//! works, but locations become unknown and quiet scopes print.
//!
//! Known edge: the location is per thread (per goroutine once the scheduler
//! swaps [`UnwindState`]), "the last panic the hook saw". A panic raised by
//! `std::panic::resume_unwind` (which skips the hook) and caught here has
//! no location, except through [`Panic::resume`], which hands its location
//! on. A panic caught by a plain `std::panic::catch_unwind` inside a
//! destructor that runs while another panic unwinds overwrites the outer
//! panic's location.
//!
//! # Example: a panic in a callback from C
//!
//! ```no_run
//! use std::ffi::c_void;
//! use gort_unwind::{call_with_resume_point, callback_boundary, recover};
//!
//! extern "C" {
//!     // Calls cb(arg), then does more work: C code after the callback.
//!     fn c_library_call(cb: unsafe extern "C" fn(*mut c_void), arg: *mut c_void);
//! }
//!
//! unsafe extern "C" fn callback(_arg: *mut c_void) {
//!     // SAFETY: called by C inside call_with_resume_point; holds nothing.
//!     unsafe { callback_boundary(|| panic!("from the callback")) }
//! }
//!
//! let mut stack = vec![0u128; 16 * 1024]; // 256 KiB for the C code
//! let top = stack.as_mut_ptr_range().end.cast::<u8>();
//! let r = recover(|| {
//!     // SAFETY: the stack is ours and big enough; the closure only calls C.
//!     let r = unsafe {
//!         call_with_resume_point(top, |_p| { /* restore own state */ }, || {
//!             c_library_call(callback, std::ptr::null_mut())
//!         })
//!     };
//!     // The C code after the callback did not run; continue the panic here.
//!     r.unwrap_or_else(|p| p.resume())
//! });
//! assert_eq!(r.unwrap_err().message(), Some("from the callback"));
//! ```
//!
//! # Raising panics
//!
//! With the `fast-raise` feature (on by default; Linux with glibc on
//! x86_64, aarch64 and x86, without `crt-static`), gort-unwind defines the
//! unwinder's `_Unwind_RaiseException` and `_Unwind_Resume` for the object
//! it is linked into (hidden: other objects keep the system's). A Rust
//! panic then finds its catch with one walk over cached call-frame
//! information and lands there directly, about ten times cheaper than
//! libgcc's two passes; anything the walk does not fully understand (other
//! languages' exceptions and frames, forced unwinds, unreadable frames)
//! goes to the system's functions unchanged.
//!
//! See docs/unwind.md in the repository for the mechanism, why skipping C
//! frames this way is sound, and what C authors must know.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

mod catch;
mod cfi;
mod defer;
mod fast;
mod fatal;
mod hook;
mod location;
mod panic;
#[cfg(gort_fast_raise)]
mod raise;
mod resume;
mod state;

pub use catch::{catch, catch_on_stack, recover};
pub use defer::Defer;
pub use fast::jumps_on_this_thread;
pub use hook::hook_installed;

/// How many times a panic on this thread went to a landing pad (a catch,
/// or a cleanup on the way) without the system unwinder: a diagnostic, for
/// tests and benchmarks that check which path a panic took; always 0
/// where the `fast-raise` feature is off or the target is not supported.
pub fn fast_landings_on_this_thread() -> u64 {
    #[cfg(gort_fast_raise)]
    return raise::landings_on_this_thread();
    #[cfg(not(gort_fast_raise))]
    return 0;
}

/// Whether this build raises panics with gort-unwind's own first pass
/// (the `fast-raise` feature, on a supported target): a diagnostic, as
/// [`fast_landings_on_this_thread`].
pub const FAST_RAISE: bool = cfg!(gort_fast_raise);
pub use location::Location;
pub use panic::Panic;
pub use resume::{
    below_gap, call_with_resume_point, call_with_resume_point_below, callback_boundary,
    resume_point_caller_sp, unwind_to_resume_point,
};
pub use state::{has_resume_point, install_state, swap_thread_state, UnwindState};

// The README's example is compiled and run as a doctest, so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

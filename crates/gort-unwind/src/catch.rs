//! Catching panics as values: [`catch`], [`recover`], [`catch_on_stack`].

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::{fast, hook, state, Panic};

/// Runs `f` and returns its value, or the panic that unwound out of it.
///
/// `quiet` makes this a quiet scope: a panic raised inside it (at any depth,
/// on this goroutine) is not printed by the panic hook, since the caller
/// takes responsibility for it. Boundary catches that only carry a panic
/// elsewhere (a goroutine's entry, a callback's boundary) are not quiet:
/// the panic is reported when raised unless an enclosing quiet scope
/// ([`recover`]) will handle it, as Go prints nothing for a recovered panic.
///
/// Unlike `std::panic::catch_unwind`, `f` need not be `UnwindSafe` (Go's
/// recover has no such notion): state that `f` was updating when it
/// panicked may be half-updated, as with `AssertUnwindSafe`.
pub fn catch<R>(quiet: bool, f: impl FnOnce() -> R) -> Result<R, Panic> {
    hook::ensure_installed();
    if quiet {
        state::quiet_enter();
    }
    let r = catch_unwind(AssertUnwindSafe(f));
    if quiet {
        // Through the accessor again: f may have parked and come back on
        // another thread, with this goroutine's state moved there.
        state::quiet_exit();
    }
    r.map_err(Panic::caught)
}

/// Go's `recover`, scoped: runs `f` and returns its value, or its panic as a
/// value. A quiet [`catch`]: the panic is not printed.
///
/// ```
/// let p = gort_unwind::recover(|| -> () { panic!("boom") }).unwrap_err();
/// assert_eq!(p.message(), Some("boom"));
/// assert_eq!(p.location().unwrap().file(), file!());
/// ```
pub fn recover<T>(f: impl FnOnce() -> T) -> Result<T, Panic> {
    // `catch(true, f)`, with a scope that Panic::resume can jump to.
    hook::ensure_installed();
    state::quiet_enter();
    let r = fast::recover_scoped(f);
    // Through the accessor again: f may have parked and come back on
    // another thread.
    state::quiet_exit();
    r
}

/// Runs `f` on the stack that ends at `stack_top` and returns its value, or
/// its panic, back on the current stack.
///
/// The panic is caught at the entry of the other stack: it never unwinds
/// through the stack switch or off that stack's base. Not a quiet scope (a
/// panic is reported unless an enclosing [`recover`] handles it). The
/// caller decides whether to raise it again ([`Panic::resume`]).
///
/// # Safety
///
/// As [`gort_arch::on_stack`]: `stack_top` is the upper end of writable
/// memory, aligned to [`gort_arch::STACK_ALIGN`], used by nothing else while
/// `f` runs, and large enough for `f`.
pub unsafe fn catch_on_stack<R>(stack_top: *mut u8, f: impl FnOnce() -> R) -> Result<R, Panic> {
    hook::ensure_installed();
    // SAFETY: forwarded from this function's contract. `catch` catches
    // every panic of `f` on the other stack, so on_stack's own catch only
    // sees a panic of `catch` itself (none).
    let r = unsafe { gort_arch::on_stack(stack_top, || catch(false, f)) };
    match r {
        Ok(r) => r,
        Err(payload) => Err(Panic::caught(payload)),
    }
}

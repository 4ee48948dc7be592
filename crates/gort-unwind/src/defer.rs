//! `defer!`: run a block at scope exit, also while unwinding.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;

use crate::catch;
use crate::fatal::{describe, fatal};

/// Runs its block when the enclosing scope ends: on a normal exit, an early
/// `return` or `?`, and while a panic unwinds through the scope. Several
/// `defer!`s in one scope run in reverse order, as in Go.
///
/// ```
/// use std::cell::RefCell;
/// let log = RefCell::new(Vec::new());
/// {
///     gort_unwind::defer! { log.borrow_mut().push("first deferred") }
///     gort_unwind::defer! { log.borrow_mut().push("second deferred") }
///     log.borrow_mut().push("body");
/// }
/// assert_eq!(*log.borrow(), ["body", "second deferred", "first deferred"]);
/// ```
///
/// The block is a closure that borrows what it uses until the scope ends
/// (so use `Cell`/`RefCell`, as above, for values the scope still changes).
/// Unlike Go's, a deferred block cannot stop a panic: use
/// [`recover`](crate::recover) around the code instead.
///
/// A deferred block that panics on a normal exit panics as any code does.
/// One that panics while another panic is unwinding would need two panics
/// at once, which Rust cannot do (Go replaces the first panic); the process
/// aborts with `fatal error: gort: defer block panicked while unwinding another panic:
/// MSG` and the location of the deferred block's panic.
#[macro_export]
macro_rules! defer {
    ($($body:tt)*) => {
        let _gort_deferred = $crate::Defer::new(|| { $($body)* });
    };
}

/// The guard behind [`defer!`]: runs its closure when dropped, and
/// discards what the closure returns.
///
/// Must hold: `f` is initialized until `drop` takes it.
#[must_use = "a Defer runs its closure when dropped: bind it to a variable"]
pub struct Defer<F: FnOnce() -> R, R = ()> {
    f: ManuallyDrop<F>,
    _result: PhantomData<fn() -> R>,
}

impl<F: FnOnce() -> R, R> Defer<F, R> {
    /// A guard that runs `f` when dropped.
    pub fn new(f: F) -> Defer<F, R> {
        Defer {
            f: ManuallyDrop::new(f),
            _result: PhantomData,
        }
    }
}

impl<F: FnOnce() -> R, R> Drop for Defer<F, R> {
    fn drop(&mut self) {
        // SAFETY: `f` is taken once, here; nothing uses it afterwards.
        let f = unsafe { ManuallyDrop::take(&mut self.f) };
        if !std::thread::panicking() {
            let _ = f();
            return;
        }
        // Unwinding: a panic escaping this destructor would abort with
        // std's terse "panic in a destructor during cleanup". Catch it
        // (quietly: the message below says it all) and say what happened.
        if let Err(p) = catch(true, f) {
            fatal(format_args!(
                "defer block panicked while unwinding another panic: {}",
                describe(&p)
            ));
        }
    }
}

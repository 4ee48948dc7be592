//! Fatal errors (Go's `throw`): an invariant of the runtime is broken, or
//! going on would be undefined behaviour. One line on stderr, then abort.
//!
//! One path and one prefix for the scheduler and for the C bridge above
//! it (gort-cgo calls this through [`crate::cgocall::fatal`]):
//! `fatal error: gort: MSG`, then `abort` (SIGABRT). Tests and users match
//! on the prefix.
//!
//! What a fatal path may touch: it runs wherever the broken invariant was
//! seen: on g0, on a goroutine's stack, with the scheduler lock held, in
//! the middle of a switch. So it takes no scheduler lock, touches no G, M
//! or P, and writes with one `eprintln!` (std's stderr lock is reentrant
//! and stderr is unbuffered). Callers format the message before calling.
//!
//! Rejected: panicking (the unwind would run destructors over state known
//! to be broken, and cannot cross g0's frames or the `extern "C"` frames of
//! a goroutine's entry or a C callback) and returning an error (the callers
//! are deep in the scheduler, with nobody to hand it to).

/// Go's `throw`: an invariant is broken; print and abort.
pub fn fatal(msg: &str) -> ! {
    eprintln!("fatal error: gort: {msg}");
    std::process::abort()
}

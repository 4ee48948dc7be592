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
//! the middle of a switch, in a forked child whose other threads are gone.
//! So it takes no lock, touches no G, M or P, and writes the line with
//! `write(2)` on fd 2: not `eprintln!`, whose stderr lock another thread
//! may hold (for ever, in a forked child) and whose output a test harness
//! may capture into memory the abort then throws away. Callers format the
//! message before calling.
//!
//! Rejected: panicking (the unwind would run destructors over state known
//! to be broken, and cannot cross g0's frames or the `extern "C"` frames of
//! a goroutine's entry or a C callback) and returning an error (the callers
//! are deep in the scheduler, with nobody to hand it to).

/// Go's `throw`: an invariant is broken; print and abort.
pub fn fatal(msg: &str) -> ! {
    let line = format!("fatal error: gort: {msg}\n");
    let mut rest = line.as_bytes();
    while !rest.is_empty() {
        // SAFETY: writes bytes of a live buffer of that length to fd 2.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break; // stderr is gone: abort all the same
        }
        rest = &rest[n as usize..];
    }
    std::process::abort()
}

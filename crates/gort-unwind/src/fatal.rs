//! Fatal errors: a message on stderr, then abort.

use std::fmt;
use std::io::Write;

use crate::Panic;

/// Writes `fatal error: gort: MSG` (the prefix of every gort fatal error) to stderr and aborts the process (SIGABRT).
///
/// Used where continuing would be unsound or where std would abort with a
/// less helpful message: there is nothing to unwind to.
#[cold]
#[inline(never)]
pub(crate) fn fatal(msg: fmt::Arguments<'_>) -> ! {
    // stderr is unbuffered; its lock is reentrant, so this cannot deadlock
    // on a thread that was printing when it got here.
    let _ = writeln!(std::io::stderr().lock(), "fatal error: gort: {msg}");
    std::process::abort()
}

/// A panic for a fatal message: its message and, when known, its location.
pub(crate) fn describe(p: &Panic) -> String {
    let message = p.message().unwrap_or("Box<dyn Any>");
    match (p.location(), p.goroutine()) {
        (Some(loc), Some(g)) => format!("{message}\n  at {loc} (goroutine {g})"),
        (Some(loc), None) => format!("{message}\n  at {loc}"),
        (None, Some(g)) => format!("{message}\n  (goroutine {g}, location unknown)"),
        (None, None) => format!("{message}\n  (location unknown)"),
    }
}

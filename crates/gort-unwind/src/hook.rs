//! The panic hook: records where each panic was raised, and keeps quiet
//! inside quiet scopes (Go prints nothing for a recovered panic).
//!
//! Installed once per process, lazily, on the first catch or resume point,
//! wrapping whatever hook was set before (std's default, or the program's).
//! It records the location in the thread's state, then returns at once when
//! the thread is in a quiet scope and otherwise calls the previous hook.
//! Printing is most of what std's default hook costs (message formatting,
//! stderr locking, the backtrace environment check), so a quiet panic pays
//! only for the unwinder.
//!
//! If the program replaces the hook later (`std::panic::set_hook`),
//! everything still works except that locations become unknown and quiet
//! scopes print what the program's hook prints.

use std::collections::BTreeSet;
use std::panic::PanicHookInfo;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::{state, Location};

static INSTALLED: AtomicBool = AtomicBool::new(false);
static INSTALL_LOCK: Mutex<()> = Mutex::new(());

/// Interned file names. Grows by one entry per distinct file that raised a
/// panic, which the program's code bounds.
static FILES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// Installs the hook if it is not installed yet.
#[inline]
pub(crate) fn ensure_installed() {
    if !INSTALLED.load(Ordering::Acquire) {
        install();
    }
}

/// Whether gort-unwind's hook has been installed in this process.
pub fn hook_installed() -> bool {
    INSTALLED.load(Ordering::Acquire)
}

#[cold]
#[inline(never)]
fn install() {
    // std refuses to change the hook on a thread that is panicking (a first
    // catch inside a destructor during unwinding); try again next time.
    if std::thread::panicking() {
        return;
    }
    let _guard = INSTALL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if INSTALLED.load(Ordering::Relaxed) {
        return;
    }
    // Between take and set another thread's set_hook would be lost; std has
    // no stable atomic update. Programs set their hook at start, before
    // this runs.
    #[cfg(gort_fast_raise)]
    crate::raise::prepare();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        record(info);
        if !state::is_quiet() {
            previous(info);
        }
    }));
    INSTALLED.store(true, Ordering::Release);
}

/// Records the panic's location in this thread's state. Runs inside the
/// panic hook, so it must not panic: poisoned locks are used anyway.
fn record(info: &PanicHookInfo<'_>) {
    let loc = info
        .location()
        .map(|l| Location::new(intern(l.file()), l.line(), l.column()));
    state::set_location(loc);
}

fn intern(file: &str) -> &'static str {
    if let Some(f) = state::cached_file(file) {
        return f;
    }
    let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
    let f = match files.get(file) {
        Some(f) => *f,
        None => {
            let leaked: &'static str = Box::leak(file.to_owned().into_boxed_str());
            files.insert(leaked);
            leaked
        }
    };
    drop(files);
    state::set_cached_file(f);
    f
}

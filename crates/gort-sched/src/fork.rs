//! fork(2) without exec: what a forked child may do with gort.
//!
//! fork copies the process with one thread, the one that called it. A
//! runtime started before the fork has lost, in the child, every thread but
//! that one: its other Ms, sysmon (which fires timers and retakes Ps), the
//! observer. Its data still says they exist, so a child that went on using
//! it waited for them forever: an M parked for work no thread would bring,
//! a sleep no sysmon would end, `run` joining threads that are gone. Go
//! has the same limit (its runtime supports fork only as part of
//! ForkExec).
//!
//! So, in a forked child:
//! - a runtime started before the fork is dead: the first time the child
//!   would need another of its threads (spawning a goroutine, an M going
//!   idle, `run` waiting for the end of the run, a stop-the-world) is a
//!   fatal error naming the cause, instead of a hang;
//! - a new runtime works: `Runtime::run` on a thread that runs no
//!   goroutine (the child's only thread, if the fork happened outside any
//!   goroutine) starts threads of its own. (Global state it shares with the
//!   parent's runtimes: the SIGQUIT registry, whose dead entries it
//!   skips; the membarrier registration, which the kernel copies with the
//!   address space.)
//!
//! How a runtime knows: a `pthread_atfork` child handler, registered when
//! the first runtime is built, increments a process-wide fork generation;
//! each runtime records the generation it was made in. The check is a load
//! and a compare on paths that are about to wait or to start something
//! (never on a goroutine switch).
//!
//! Rejected: making the old runtime work in the child (restarting its
//! threads): its goroutines that ran on the lost threads were in the middle
//! of something, holding locks and half-done switches, and cannot be
//! resumed; Go does not try either.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

/// Forks this process has gone through (incremented in each child).
static GENERATION: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();

extern "C" fn in_child() {
    // Async-signal-safe: one atomic add (the child has a single thread).
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Registers the fork handler (once per process) and returns the current
/// generation, for a runtime being built.
pub(crate) fn generation() -> u64 {
    REGISTER.call_once(|| {
        // SAFETY: registers a child handler that only does an atomic add;
        // no prepare or parent handler.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        if rc != 0 {
            crate::fatal::fatal(&format!("pthread_atfork failed: error {rc}"));
        }
    });
    GENERATION.load(Ordering::Relaxed)
}

/// Whether the process forked since generation `made` (this is a child,
/// and a runtime made then is dead here).
#[inline]
pub(crate) fn forked_since(made: u64) -> bool {
    GENERATION.load(Ordering::Relaxed) != made
}

/// The fatal error for using a runtime in a forked child.
#[cold]
pub(crate) fn used_after_fork(what: &str) -> ! {
    crate::fatal::fatal(&format!(
        "this runtime was started before fork(), and {what} in the forked child: \
         its other threads do not exist there. A forked child may exec, or run a \
         new Runtime (see docs/sched.md, fork)"
    ))
}

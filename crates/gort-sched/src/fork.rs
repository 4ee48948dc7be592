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
//! Waiting for a lock is such a path. A lock of the runtime (the scheduler
//! lock, a timer heap) that another thread held at the moment of the fork
//! stays held in the child for ever: its holder is gone. So the runtime's
//! locks are taken with [`lock`], which tries first and checks the
//! generation only when the lock is busy: in a child, busy means held by a
//! lost thread, and the answer is the fatal error instead of a hang. The
//! uncontended path costs nothing more than `Mutex::lock`. The spawn path
//! checks before it allocates (the task's cell may come from a pool under
//! the scheduler lock), so its error names the spawn.
//!
//! Rejected: making the old runtime work in the child (restarting its
//! threads): its goroutines that ran on the lost threads were in the middle
//! of something, holding locks and half-done switches, and cannot be
//! resumed; Go does not try either.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, PoisonError, TryLockError};

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
fn forked_since(made: u64) -> bool {
    GENERATION.load(Ordering::Relaxed) != made
}

/// The fatal error naming `what` if this is a child forked since `made`
/// (a runtime made then is dead here).
#[inline]
pub(crate) fn check(made: u64, what: &str) {
    if forked_since(made) {
        used_after_fork(what);
    }
}

/// Locks `m`, a lock of a runtime made in generation `made`. When the lock
/// is busy in a forked child, its holder was lost in the fork and will never
/// release it: the fatal error naming `what` waited for it, not a hang.
/// A poisoned lock is taken as it is, as everywhere in the runtime.
pub(crate) fn lock<'a, T>(m: &'a Mutex<T>, made: u64, what: &str) -> MutexGuard<'a, T> {
    match m.try_lock() {
        Ok(g) => g,
        Err(TryLockError::Poisoned(e)) => e.into_inner(),
        Err(TryLockError::WouldBlock) => {
            if forked_since(made) {
                used_after_fork(&format!("{what} was held by a thread lost in the fork"));
            }
            m.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }
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

#[cfg(all(test, not(loom), not(miri)))]
mod tests {
    use super::*;
    use std::sync::{mpsc, Arc};
    use std::time::{Duration, Instant};

    /// A lock another thread holds at the fork is busy for ever in the
    /// child: taking it with `lock` is the named fatal error, never a hang.
    #[test]
    fn a_lock_held_across_a_fork_is_a_fatal_error_in_the_child() {
        let made = generation();
        let m = Arc::new(Mutex::new(()));
        let (held_tx, held_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let holder = {
            let m = m.clone();
            std::thread::spawn(move || {
                let _g = m.lock().unwrap();
                held_tx.send(()).unwrap();
                let _ = done_rx.recv();
            })
        };
        held_rx.recv().unwrap();
        let mut fds = [0; 2];
        // SAFETY: a pipe into a two-int array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only locks, writes to the pipe and leaves by
        // _exit or abort (glibc's malloc is usable after fork).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: fds[1] is the pipe's write end; fd 2 becomes it.
            unsafe { libc::dup2(fds[1], 2) };
            let _g = lock(&m, made, "the test's lock");
            // SAFETY: ends the child without the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        done_tx.send(()).unwrap();
        holder.join().unwrap();
        // SAFETY: the parent's copy of the write end, ours to close.
        unsafe { libc::close(fds[1]) };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut status = 0;
        let exited = loop {
            // SAFETY: our own child, without blocking.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break true;
            }
            if Instant::now() > deadline {
                // SAFETY: our own child; reaped right after.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                break false;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut out = vec![0u8; 4096];
        // SAFETY: reads into a live buffer of that length; the child and
        // our write end are closed, so this does not block.
        let n = unsafe { libc::read(fds[0], out.as_mut_ptr().cast(), out.len()) };
        // SAFETY: our read end.
        unsafe { libc::close(fds[0]) };
        let out = String::from_utf8_lossy(&out[..n.max(0) as usize]).into_owned();
        assert!(exited, "the child hung on the lock");
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGABRT,
            "status {status:#x}, stderr {out:?}"
        );
        assert!(
            out.contains("fatal error: gort: this runtime was started before fork(), and the test's lock was held by a thread lost in the fork"),
            "{out:?}"
        );
    }
}

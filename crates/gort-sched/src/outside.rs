//! Threads outside the runtime, for deadlock detection: may a thread the
//! runtime did not start still wake one of its goroutines?
//!
//! # The rule
//!
//! Go reports "all goroutines are asleep - deadlock!" when every M is idle
//! and no timer is pending (`checkdead` in proc.go), because nothing else
//! can wake a goroutine in a pure Go program. As soon as cgo is in use Go
//! stops reporting at all: the extra M that C threads call back through is
//! counted as running, so `checkdead` returns early for the whole life of
//! the program. Go never kills a correct cgo program this way, at the cost
//! of never reporting a deadlock in one.
//!
//! gort has more ways in from outside than Go: any plain thread may hold a
//! channel end, a `Waker` or a `JoinHandle` and use it whenever it likes
//! (a std thread that sends after 200 ms), and C threads call back through
//! gort-cgo. Which thread holds what cannot be seen: a `Sender` moved into
//! `std::thread::spawn` or handed over through a `Mutex` runs no code of
//! ours. What can be seen is whether any such thread exists. So, under
//! default settings, a moment when every goroutine is blocked is reported
//! as a deadlock only if **no thread outside the runtime is alive**: the
//! process's thread count (the kernel's, /proc/self/stat) is not larger
//! than the number of threads this runtime started and still runs (its Ms,
//! M0 included, sysmon, the observer), the caller of `run` while it
//! waits, and gort's process-wide service threads (the network poller of
//! plain threads' sockets, which only readies goroutines waiting for an fd:
//! those are never deadlocked anyway; the timer thread of plain threads'
//! timers while it has none to fire). That is exact where no
//! thread outside the runtime can hold the other end, and as safe as Go's
//! rule where one can: Go gives up for good when a C thread could call in;
//! gort gives up while a thread that could exists, and reports the
//! deadlock once those threads are gone.
//!
//! Threads of another gort runtime count as outside (a goroutine there may
//! hold the other end too). So do libtest's threads: a test binary under
//! libtest always has its main thread waiting for the test, and tests that
//! check deadlock reports either build their runtime with
//! `external_wakers(false)` or run in a child process on its main thread.
//!
//! # Counting without undercounting
//!
//! The report is unsafe only if the count of our own threads is ever
//! larger than the threads we really have alive (an outside thread would
//! hide behind the difference). So a thread is counted only from inside
//! itself, once it runs ([`OwnThread::enter`]), and uncounted before it
//! ends (the guard's drop); in between it certainly exists. A thread that
//! an M or goroutine creates and that holds a channel end exists before the
//! creating M goes idle, and checkdead reads the count under the scheduler
//! lock after it saw every M idle, so the new thread is in the kernel's
//! count by then.
//!
//! # Cost
//!
//! Reading /proc/self/stat costs 5-150 µs (it walks the thread group), so
//! it is never on a hot path: checkdead runs only when the last M goes
//! idle with goroutines alive and no timer pending. A program that ping-
//! pongs with a plain thread goes through that state at every round trip,
//! so a read that found outside threads is trusted for a while (10 ms,
//! doubling to 1 s while they stay): in that window checkdead answers
//! "maybe woken from outside" without reading, which can only delay a
//! report, never make a false one. While the answer is "maybe", sysmon
//! re-checks at that interval, so a real deadlock is reported at most about
//! a second after the last outside thread is gone.
//!
//! Under qemu-user /proc/self/stat is the emulator's own fake, with 0 in
//! the thread count field (no real process has 0 threads): the count then
//! comes from /proc/self/status, which shows the host process, minus the
//! emulator's one thread of its own (its RCU thread). Where neither file
//! can be read (not Linux), outside threads are assumed: never a false
//! report, and no report either, as in a Go program with cgo.
//!
//! Rejected: a grace period (a deadlock is reported after all goroutines
//! were blocked for N seconds): it kills the correct program whose outside
//! event comes after N + 1 seconds. Tracking channel ends that leave the
//! runtime: moving a value into another thread runs no code. Reporting
//! nothing unless asked (Go's cgo behaviour for every program): it loses
//! the exact report for the common program, whose only threads are the
//! runtime's.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the kernel says about this process's threads, and when we last
/// asked (see the module's "Cost").
///
/// Must hold: `own` counts only threads that run and have not yet ended
/// (incremented inside the thread, decremented before it ends);
/// `trusted_until` (ns since `base`) is zero or the end of the window in
/// which the last read, which found outside threads, is trusted.
pub(crate) struct Outside {
    own: AtomicUsize,
    trusted_until: AtomicU64,
    backoff_ns: AtomicU64,
    base: Instant,
}

/// First trust window after a read found outside threads.
const MIN_TRUST: Duration = Duration::from_millis(10);
/// Longest trust window (and so the longest delay of a report after the
/// last outside thread ended).
const MAX_TRUST: Duration = Duration::from_secs(1);

/// Threads gort runs for every runtime that can wake a goroutine only in
/// a way checkdead already accounts for: the process-wide network poller's
/// thread (netpoll_epoll.rs) readies only goroutines waiting for an fd,
/// which checkdead never calls deadlocked. Not outside threads, then:
/// without this, a process that ever registered a socket on a plain thread
/// would never get a deadlock report again. Counted from inside each
/// thread, as `own` is.
static SERVICE: AtomicUsize = AtomicUsize::new(0);

/// Counts the calling thread as a service thread (see `SERVICE`) for the
/// rest of its life: call first thing on it.
pub(crate) fn enter_service_thread() {
    SERVICE.fetch_add(1, Ordering::SeqCst);
}

/// Counts the calling thread as one of the runtime's while it lives.
pub(crate) struct OwnThread(Arc<Outside>);

impl OwnThread {
    /// Call first thing on a thread the runtime started (and on the caller
    /// of `run`, which only waits); drop last.
    pub(crate) fn enter(outside: Arc<Outside>) -> OwnThread {
        outside.own.fetch_add(1, Ordering::SeqCst);
        OwnThread(outside)
    }
}

impl Drop for OwnThread {
    fn drop(&mut self) {
        self.0.own.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Outside {
    pub(crate) fn new() -> Outside {
        Outside {
            own: AtomicUsize::new(0),
            trusted_until: AtomicU64::new(0),
            backoff_ns: AtomicU64::new(MIN_TRUST.as_nanos() as u64),
            base: Instant::now(),
        }
    }

    /// Whether a thread the runtime did not start may be alive. Call with
    /// the scheduler lock held, after every M was seen idle. True when
    /// unsure; false only when the kernel's count just said so.
    pub(crate) fn may_exist(&self) -> bool {
        let now = self.base.elapsed().as_nanos() as u64;
        if now < self.trusted_until.load(Ordering::Relaxed) {
            return true;
        }
        let Some(n) = process_threads() else {
            return true;
        };
        let own = self.own.load(Ordering::SeqCst)
            + SERVICE.load(Ordering::SeqCst)
            + usize::from(crate::timer::fallback_thread_idle());
        if n > own {
            let backoff = self.backoff_ns.load(Ordering::Relaxed);
            self.trusted_until.store(now + backoff, Ordering::Relaxed);
            self.backoff_ns.store(
                (backoff * 2).min(MAX_TRUST.as_nanos() as u64),
                Ordering::Relaxed,
            );
            true
        } else {
            self.backoff_ns
                .store(MIN_TRUST.as_nanos() as u64, Ordering::Relaxed);
            false
        }
    }

    /// How long sysmon may sleep before it re-checks a "maybe" answer.
    pub(crate) fn recheck_in(&self) -> Duration {
        let now = self.base.elapsed().as_nanos() as u64;
        let until = self.trusted_until.load(Ordering::Relaxed);
        Duration::from_nanos(until.saturating_sub(now)).max(Duration::from_millis(1))
    }
}

/// The number of threads of this process, from the kernel.
fn process_threads() -> Option<usize> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (in parentheses, which may contain
    // spaces): state is field 3, num_threads field 20.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let n: usize = rest.split_whitespace().nth(17)?.parse().ok()?;
    if n > 0 {
        return Some(n);
    }
    // An emulator's fake /proc/self/stat (qemu-user writes 0 here): the
    // host process's status, less the emulator's RCU thread.
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Threads:"))?;
    let n: usize = line["Threads:".len()..].trim().parse().ok()?;
    Some(n.saturating_sub(1))
}

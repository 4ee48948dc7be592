//! The network poller (Go's netpoll: runtime/netpoll.go and
//! netpoll_epoll.go) and the tier that gort-net builds on: a goroutine
//! that waits for a socket parks, and the scheduler wakes it when the
//! kernel says the socket is ready, so a connection costs a goroutine, not
//! a thread.
//!
//! # Why
//!
//! Before this room, a blocking `read` on a socket either held its P for
//! the whole wait (two idle connections at procs 2 stalled every other
//! goroutine) or went through `syscall()`, which costs a thread per
//! blocked connection (an echo server with 10,000 connections ran 9,878
//! threads). Go's answer, kept here: every socket is non-blocking; an
//! operation that would block parks the goroutine on the socket's
//! descriptor; one epoll instance per runtime reports readiness, and the
//! scheduler readies the parked goroutines.
//!
//! # The pieces
//!
//! - `NetPoll` (netpoll_epoll.rs): one per runtime (made on first use),
//!   holding a `mio::Poll` (epoll, edge-triggered), its `Registry`, and a
//!   `mio::Waker` (an eventfd) that breaks a blocked poll (Go's
//!   `netpollBreak`). Fds registered on a plain thread (outside any run)
//!   go to one process-wide poller served by a thread of its own.
//! - `PollDesc` (netpoll_epoll.rs, Go's `pollDesc`): per registered fd, the parked readers
//!   and writers, a ready bit per direction, per-direction deadlines, and a
//!   closing flag. Never freed while its poller lives: a freed descriptor
//!   goes back on the poller's free list, so a stale event (one the kernel
//!   reported just before the fd was deregistered) lands on valid memory
//!   and at worst makes its next user retry a syscall once.
//! - [`Registration`]: the public handle, what gort-net's sockets hold.
//!
//! # Who polls (Go's findRunnable and sysmon)
//!
//! - `find_runnable` polls without blocking when nobody is blocked in the
//!   poller and someone waits on it, after the run queues and before
//!   stealing; the first readied goroutine runs at once, the rest are
//!   injected.
//! - An M with nothing to do, after it gave its P back and re-checked the
//!   queues, blocks in the poller until the next timer (no dedicated
//!   poller thread), if someone waits on it and no other M is blocked
//!   there (`Locked::polling`, under the scheduler lock). When the poll
//!   returns it takes an idle P if there is one and runs what it found;
//!   without a P it queues what it found and parks as usual.
//! - `wakep` (new work, an idle P, no spinning M) with no idle M but an M
//!   blocked in the poller breaks the poll instead of starting a thread:
//!   under the scheduler lock it sees `polling`, leaves the P idle, and
//!   writes the eventfd; the poller M clears `polling` under the same lock
//!   before it looks for an idle P, so either wakep sees it polling and
//!   the M then finds the P, or wakep sees it gone and starts an M itself.
//!   A break written before the M enters epoll_wait stays pending (a
//!   flag, and the eventfd's event) and ends the wait at once; a
//!   non-blocking poll that sees the eventfd's event leaves the flag set
//!   for the blocking one. Without the break, a goroutine readied from
//!   outside (a plain thread's channel send, a timer fired by sysmon)
//!   while the only M sits in epoll_wait would wait for the poll's
//!   timeout.
//! - A nearer timer does not break the poll: sysmon fires every heap's
//!   timers (checktimers.rs) and its wakeups start or break an M as above.
//!   The poll's timeout (the earliest timer) only lets the M run the due
//!   timers of the P it takes.
//! - sysmon polls (non-blocking) when nobody has for 10 ms, and while
//!   someone waits with no M blocked in the poller it sleeps at most 10 ms.
//! - Readied goroutines are injected in one batch (Go's `injectglist`):
//!   onto the global queue under one lock, then one M started per idle P,
//!   up to the batch's size.
//!
//! # The pollDesc protocol and its invariant
//!
//! Each direction (`Half`) has `ready`, an event counter `seq`, the list
//! of parked waiters (each a [`Waker`](crate::park::Waker)), and a
//! deadline. All of it, and the `closing` flag, is under the descriptor's
//! small lock. Registration is
//! edge-triggered: the kernel reports a transition to readable (writable)
//! once. The poller, for an event: if waiters are parked, bumps `seq` and
//! wakes all of them; else sets `ready`. A waiter (after a syscall returned
//! EAGAIN): under the lock, returns at once if `closing` (an error), if
//! `ready` (consuming it), or if `seq` moved since it parked; fails with
//! TimedOut if the deadline passed; else it parks, publishing its waker
//! under the lock, and only if nothing above changed since it looked.
//!
//! Invariant: every edge that happens after a waiter's failed syscall
//! either finds that waiter on the list (and wakes it) or leaves `ready`
//! set or `seq` moved, which the waiter sees under the same lock before it
//! parks. So no wakeup is lost. An edge from before the failed syscall
//! may leave a stale `ready`: the waiter retries its syscall once more
//! (a spurious wakeup, never a lost one). The model of this is
//! `pd_stress` below, a randomized test of the real descriptor.
//!
//! A moved deadline (`set_deadline`) and `close` wake every waiter of the
//! direction; a woken waiter re-reads its state under the lock, so a new
//! deadline applies to a wait already in progress (Go's SetDeadline), and
//! a close ends it with an error (Go's ErrNetClosing).
//!
//! # Rejected
//!
//! - A dedicated poller thread (tokio's reactor, and gort's own fallback
//!   for plain threads): every readiness costs a thread switch, and the
//!   thread holds no P, so each readied goroutine waits for another M.
//! - Go's lock-free `rg`/`wg` words (nil, pdReady, pdWait, or a G
//!   pointer): they assume one reader and one writer at a time, which Go's
//!   fdMutex enforces. Here `&TcpStream` is `Read`, so two goroutines may
//!   wait on one direction: a list under a small lock is simpler to get
//!   right, and it is uncontended in practice (the poller and one waiter).
//! - Level-triggered epoll: a ready socket that nobody reads would be
//!   reported on every poll.
//! - Hand-written epoll: mio is what tokio runs on, and brings kqueue.

use crate::current::{current, current_g, sched_of};
use crate::g::GRef;
use crate::m::M;
pub use crate::netpoll_epoll::Mode;
use crate::netpoll_epoll::{fallback, lock, NetPoll, PollDesc};
use crate::park::park_with;
use crate::sched::Sched;
use crate::status::WaitReason;
use crate::waker::{g_of, Woke};
use mio::unix::SourceFd;
use mio::{Interest, Token};
use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shown in goroutine dumps (Go's waitReasonIOWait).
const IO_WAIT: WaitReason = WaitReason::Other("IO wait");

/// sysmon polls when nobody has for this long (Go's 10 ms).
pub(crate) const SYSMON_POLL_NS: u64 = 10_000_000;

/// What the idle M's poll came to.
pub(crate) enum IdlePoll {
    /// Nobody waits, or another M polls: park as before.
    NotPolled,
    /// Polled; no idle P to run with: park (what was found is queued).
    NoP,
    /// Polled and took a P: run this goroutine, or look again.
    Run(Option<GRef>),
}

impl Sched {
    /// This runtime's poller, made on first use.
    pub(crate) fn netpoll(&self) -> io::Result<&Arc<NetPoll>> {
        if let Some(np) = self.netpoll.get() {
            return Ok(np);
        }
        let np = Arc::new(NetPoll::new(Some(self.sysmon_note.clone()))?);
        Ok(self.netpoll.get_or_init(|| np))
    }

    /// The poller, if made and somebody waits on it.
    #[inline]
    fn netpoll_wanted(&self) -> Option<&Arc<NetPoll>> {
        self.netpoll.get().filter(|np| np.has_waiters())
    }

    /// find_runnable's non-blocking poll (nobody is blocked in the poller,
    /// someone waits): the first readied goroutine, the rest injected.
    pub(crate) fn netpoll_nonblocking(&self) -> Option<GRef> {
        let np = self.netpoll_wanted()?;
        if np.last_poll.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let mut batch = np.poll_once(false, None, Some(self as *const Sched as *const ()))?;
        np.last_poll
            .store(self.now_nanos().max(1), Ordering::SeqCst);
        let first = batch.pop();
        self.inject_batch(&mut batch);
        np.recycle(batch);
        first
    }

    /// The idle M's poll (find_runnable, after it gave its P back): if
    /// somebody waits on the poller and no other M is blocked in it,
    /// blocks there until an event, a break, or the next timer; then takes
    /// an idle P if there is one, keeps the first readied goroutine to run
    /// and injects the rest (without a P, all of them).
    pub(crate) fn netpoll_idle(&self, mr: &M) -> IdlePoll {
        let Some(np) = self.netpoll_wanted() else {
            return IdlePoll::NotPolled;
        };
        {
            let mut l = self.lock();
            if l.polling || self.finished.load(Ordering::Acquire) {
                return IdlePoll::NotPolled;
            }
            l.polling = true;
        }
        np.last_poll.store(0, Ordering::SeqCst);
        let next = self.timers_next_nanos();
        let timeout = (next != u64::MAX).then(|| {
            Duration::from_nanos(next.saturating_sub(crate::timer::nanos(Instant::now())))
        });
        let mut batch = np
            .poll_once(true, timeout, Some(self as *const Sched as *const ()))
            .unwrap_or_default();
        np.last_poll
            .store(self.now_nanos().max(1), Ordering::SeqCst);
        // Under one lock: stop counting as the poller, then look for a P
        // (wakep's side of the break protocol, module essay).
        let p = {
            let mut l = self.lock();
            l.polling = false;
            self.pidle_get(&mut l)
        };
        let Some(p) = p else {
            self.inject_batch(&mut batch);
            np.recycle(batch);
            return IdlePoll::NoP;
        };
        mr.acquirep(p);
        let first = batch.pop();
        self.inject_batch(&mut batch);
        np.recycle(batch);
        IdlePoll::Run(first)
    }

    /// sysmon's poll: when nobody has polled for 10 ms and somebody
    /// waits, polls without blocking and injects what it found. Returns
    /// whether sysmon should come back within 10 ms (somebody waits and no
    /// M is blocked in the poller).
    pub(crate) fn sysmon_netpoll(&self, now_ns: u64) -> bool {
        let Some(np) = self.netpoll_wanted() else {
            return false;
        };
        let last = np.last_poll.load(Ordering::SeqCst);
        if last == 0 {
            return false;
        }
        if now_ns.saturating_sub(last) >= SYSMON_POLL_NS {
            if let Some(mut batch) =
                np.poll_once(false, None, Some(self as *const Sched as *const ()))
            {
                np.last_poll.store(now_ns.max(1), Ordering::SeqCst);
                self.inject_batch(&mut batch);
                np.recycle(batch);
            }
        }
        true
    }

    /// Go's `injectglist`: readied goroutines (their one-shots already
    /// won) go onto the global queue under one lock, and one M is started
    /// per idle P, up to their number.
    pub(crate) fn inject_batch(&self, batch: &mut Vec<GRef>) {
        if batch.is_empty() {
            return;
        }
        let mut n = batch.len();
        {
            let mut l = self.lock();
            for g in batch.drain(..) {
                g_of(g).wait_reason.set(WaitReason::None);
                l.runq.push_back(g);
            }
            self.runq_len.store(l.runq.len(), Ordering::Release);
        }
        while n > 0 && self.npidle.load(Ordering::Acquire) > 0 {
            let mut l = self.lock();
            let Some(p) = self.pidle_get(&mut l) else {
                break;
            };
            self.startm(l, p, false);
            n -= 1;
        }
    }

    /// wakep's question (under the scheduler lock, no idle M): is an M
    /// blocked in the poller? Then break its poll instead of starting a
    /// thread: it takes the idle P itself (module essay).
    pub(crate) fn netpoll_break_for_work(&self, polling: bool) -> bool {
        if !polling {
            return false;
        }
        match self.netpoll.get() {
            Some(np) => {
                np.wake();
                true
            }
            None => false,
        }
    }

    /// The run is over: break a blocked poll so that its M exits.
    pub(crate) fn netpoll_finish(&self) {
        if let Some(np) = self.netpoll.get() {
            np.wake();
        }
    }

    /// After the run: no M will poll again. Plain threads still waiting
    /// get an error, and so does every later wait.
    pub(crate) fn netpoll_close(&self) {
        if let Some(np) = self.netpoll.get() {
            np.closed.store(true, Ordering::SeqCst);
            for pd in lock(&np.all).iter() {
                PollDesc::wake_all(&mut pd.lock(), None);
            }
        }
    }

    /// checkdead's question: is a goroutine of this runtime waiting for a
    /// descriptor? (The kernel may ready it at any time.)
    pub(crate) fn io_waiting(&self) -> bool {
        self.io_waiters.load(Ordering::SeqCst) > 0
    }
}

/// A file descriptor registered with a poller: waits for readiness park
/// the calling goroutine (or block the calling plain thread). This is
/// gort-net's tier, as [`crate::park`] is gort-sync's.
///
/// # Obligations of the caller
/// - The fd is open, non-blocking, and stays open until the
///   `Registration` is dropped (drop it before closing the fd: the drop
///   deregisters it; a closed fd number may be reused by another file).
/// - Readiness is edge-triggered: call [`wait`](Registration::wait) only
///   after the operation returned `WouldBlock` (EAGAIN), and retry the
///   operation when it returns `Ok`. A `wait` may return `Ok` spuriously.
///
/// # What the scheduler guarantees
/// - A wait never misses an edge that happened after the failed operation
///   (the module essay has the invariant).
/// - It returns `ErrorKind::TimedOut` once the direction's deadline has
///   passed (also a deadline set while the wait was in progress), and an
///   error of kind `ConnectionAborted` after [`close`](Registration::close).
/// - A goroutine waiting here is never reported as deadlocked, and is
///   unwound with the payload [`Shutdown`](crate::Shutdown) when its run
///   shuts down.
/// - The descriptor is registered with the current runtime's poller, or on
///   a plain thread with a process-wide poller served by its own thread;
///   either can be waited on from goroutines of any runtime and from plain
///   threads. After the run that made it has ended, waits on a descriptor
///   of its poller fail with an error that says so.
pub struct Registration {
    poll: Arc<NetPoll>,
    pd: NonNull<PollDesc>,
    fd: RawFd,
}

// SAFETY: the descriptor is shared through its lock; the poller is Sync.
unsafe impl Send for Registration {}
// SAFETY: as above.
unsafe impl Sync for Registration {}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("fd", &self.fd)
            .finish()
    }
}

/// The error of a wait on a closed descriptor (Go's ErrNetClosing).
pub fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "use of closed network connection (closed while waiting, or before)",
    )
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "i/o deadline exceeded")
}

impl Registration {
    /// Registers `fd` for both directions, edge-triggered.
    pub fn new(fd: RawFd) -> io::Result<Registration> {
        let g = current_g();
        let poll = if g.is_null() {
            fallback().clone()
        } else {
            sched_of(g).netpoll()?.clone()
        };
        let pd = poll.alloc();
        let token = Token(pd.as_ptr() as usize);
        if let Err(e) = poll.registry.register(
            &mut SourceFd(&fd),
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            poll.release(pd);
            return Err(e);
        }
        Ok(Registration { poll, pd, fd })
    }

    fn pd(&self) -> &PollDesc {
        // SAFETY: our descriptor lives as long as our poller, which we hold.
        unsafe { self.pd.as_ref() }
    }

    /// Waits until the fd may be ready in `mode` (see the type's contract).
    pub fn wait(&self, mode: Mode) -> io::Result<()> {
        self.wait_until(mode, None)
    }

    /// [`wait`](Registration::wait), ending with `TimedOut` at `until` too
    /// if that comes before the direction's deadline (a per-operation
    /// timeout, as std's `set_read_timeout`).
    pub fn wait_until(&self, mode: Mode, until: Option<Instant>) -> io::Result<()> {
        let pd = self.pd();
        let _count = WaitCount::new(&self.poll);
        let mut parked_at: Option<u64> = None;
        let id = {
            let mut s = pd.lock();
            s.next_id = s.next_id.wrapping_add(1);
            s.next_id
        };
        // Removes our waker however the wait ends (also unwinding).
        struct Leave<'a>(&'a PollDesc, Mode, u64);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                let mut s = self.0.lock();
                s.half(self.1).waiters.retain(|(i, _)| *i != self.2);
            }
        }
        let _leave = Leave(pd, mode, id);
        loop {
            if self.poll.closed.load(Ordering::SeqCst) {
                return Err(io::Error::other(
                    "the run whose poller this socket was registered with has ended",
                ));
            }
            let (seq, deadline, effective) = {
                let mut s = pd.lock();
                if s.closing {
                    return Err(closed_error());
                }
                let h = s.half(mode);
                if h.ready {
                    h.ready = false;
                    return Ok(());
                }
                if parked_at.is_some_and(|p| p != h.seq) {
                    return Ok(());
                }
                let effective = match (h.deadline, until) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                if effective.is_some_and(|d| d <= Instant::now()) {
                    return Err(timed_out());
                }
                (h.seq, h.deadline, effective)
            };
            parked_at = Some(seq);
            // The stress test widens the window between the look above and
            // the publication below, where a lost edge would hide.
            #[cfg(all(test, not(loom), not(miri)))]
            pd_stress::jitter();
            if current().is_none() {
                self.kick_sysmon();
            }
            let closed = &self.poll.closed;
            let woke = park_with(IO_WAIT, effective, |w| {
                let mut s = pd.lock();
                if s.closing || closed.load(Ordering::SeqCst) {
                    return false;
                }
                let h = s.half(mode);
                if h.ready || h.seq != seq || h.deadline != deadline {
                    return false;
                }
                h.waiters.push((id, w.clone()));
                true
            });
            if woke == Woke::TimedOut {
                pd.lock().half(mode).waiters.retain(|(i, _)| *i != id);
            }
        }
    }

    /// A plain thread waits on a runtime's poller: make sure someone polls.
    fn kick_sysmon(&self) {
        if let Some(k) = &self.poll.kick {
            if self.poll.last_poll.load(Ordering::SeqCst) != 0 {
                k.wake();
            }
        }
    }

    /// Sets the deadline of `mode` (None: both directions); None clears
    /// it. Waits already in progress see the new deadline at once (Go's
    /// SetDeadline).
    pub fn set_deadline(&self, mode: Option<Mode>, deadline: Option<Instant>) {
        let mut s = self.pd().lock();
        if mode != Some(Mode::Write) {
            s.rd.deadline = deadline;
        }
        if mode != Some(Mode::Read) {
            s.wr.deadline = deadline;
        }
        PollDesc::wake_all(&mut s, mode);
    }

    /// The deadline of `mode`.
    pub fn deadline(&self, mode: Mode) -> Option<Instant> {
        self.pd().lock().half(mode).deadline
    }

    /// Go's `netpollUnblock` with `closing`: every wait in progress and
    /// every later one fails with [`closed_error`]. The fd stays
    /// registered until the drop.
    pub fn close(&self) {
        let mut s = self.pd().lock();
        s.closing = true;
        PollDesc::wake_all(&mut s, None);
    }

    /// Whether [`close`](Registration::close) was called.
    pub fn is_closing(&self) -> bool {
        self.pd().lock().closing
    }

    /// The registered fd.
    pub fn fd(&self) -> RawFd {
        self.fd
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Fails only if the fd was closed first (the caller's obligation);
        // then the kernel dropped the registration already, unless the
        // file lives on in a dup, whose events stay harmless (stale token).
        let _ = self.poll.registry.deregister(&mut SourceFd(&self.fd));
        self.poll.release(self.pd);
    }
}

/// Counts a wait in progress on a poller, and for a goroutine on its
/// runtime (checkdead), for the wait's duration (also when it unwinds).
struct WaitCount<'a> {
    poll: &'a NetPoll,
    sched: Option<&'static Sched>,
}

impl<'a> WaitCount<'a> {
    fn new(poll: &'a NetPoll) -> WaitCount<'a> {
        poll.waiters.fetch_add(1, Ordering::SeqCst);
        let g = current_g();
        let sched = (!g.is_null()).then(|| sched_of(g));
        if let Some(s) = sched {
            s.io_waiters.fetch_add(1, Ordering::SeqCst);
        }
        WaitCount { poll, sched }
    }
}

impl Drop for WaitCount<'_> {
    fn drop(&mut self) {
        self.poll.waiters.fetch_sub(1, Ordering::SeqCst);
        if let Some(s) = self.sched {
            s.io_waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

// Not under Miri: the poller is a real epoll instance, and 20,000 rounds
// of spinning are beyond an interpreter.
#[cfg(all(test, not(loom), not(miri)))]
mod pd_stress {
    //! The pollDesc invariant, tested on the real descriptor: a producer
    //! thread makes one edge (`event`) after each "failed syscall" of the
    //! consumer, at a random moment around the consumer's wait (which
    //! spins a random while between its look and its park, `jitter`); the
    //! consumer must never sleep through an edge. Without the `ready`
    //! check at publication, or the `seq` check after a wake, it does
    //! (the wait times out).
    use super::*;
    use std::cell::Cell;
    use std::sync::atomic::AtomicU32;

    thread_local! {
        static RNG: Cell<u32> = const { Cell::new(0x9e37_79b9) };
    }

    fn rand() -> u32 {
        RNG.with(|r| {
            let mut x = r.get();
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            r.set(x);
            x
        })
    }

    fn spin(n: u32) {
        for _ in 0..n {
            std::hint::spin_loop();
        }
    }

    pub(super) fn jitter() {
        spin(rand() % 2048);
    }

    #[test]
    fn no_edge_is_lost() {
        let np = Arc::new(NetPoll::new(None).unwrap());
        let pd = np.alloc();
        let addr = pd.as_ptr() as usize;
        // 1: an item is "in the socket"; the consumer takes it (0) and
        // then waits for the next edge.
        let items = Arc::new(AtomicU32::new(0));
        let n: u32 = 20_000;
        let prod = {
            let items = items.clone();
            std::thread::spawn(move || {
                RNG.with(|r| r.set(0x1234_5678));
                // SAFETY: the descriptor lives with `np`, held by the test.
                let pd = unsafe { &*(addr as *const PollDesc) };
                for _ in 0..n {
                    while items.load(Ordering::SeqCst) != 0 {
                        std::hint::spin_loop();
                    }
                    spin(rand() % 4096);
                    items.store(1, Ordering::SeqCst);
                    pd.event(Mode::Read, None, &mut Vec::new());
                }
            })
        };
        let reg = Registration {
            poll: np.clone(),
            pd,
            fd: -1,
        };
        reg.set_deadline(
            Some(Mode::Read),
            Some(Instant::now() + Duration::from_secs(60)),
        );
        let mut got = 0;
        while got < n {
            if items.swap(0, Ordering::SeqCst) == 1 {
                got += 1;
                continue;
            }
            reg.wait(Mode::Read)
                .expect("a lost wakeup: the wait outlived its deadline");
        }
        prod.join().unwrap();
    }
}

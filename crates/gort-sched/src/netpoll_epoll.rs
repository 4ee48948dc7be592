//! The poller's data (Go's netpoll_epoll.go and the pollDesc of
//! netpoll.go): [`NetPoll`], one epoll instance through mio with its
//! eventfd break, and [`PollDesc`], a registered fd's parked readers and
//! writers. How the scheduler uses them, the pollDesc protocol and its
//! invariant are in netpoll.rs; this room holds the event side: an edge
//! wakes every waiter of its direction, or sets the direction's `ready`
//! when nobody waits, under the descriptor's lock.
//!
//! A descriptor is never freed while its poller lives: a released one goes
//! on the poller's free list, so that an event the kernel reported just
//! before its fd was deregistered (on another thread) lands on valid
//! memory. Its token is its address; a stale event at worst marks the
//! descriptor's next user ready once, a spurious wakeup that its retry
//! absorbs (Go guards the same race with a sequence number in the token,
//! which 32-bit tokens leave no room for).

use crate::fatal::fatal;
use crate::g::GRef;
use crate::note::Note;
use crate::waker::{g_of, Waker};
use mio::{Events, Poll, Token};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The eventfd's token. Descriptor tokens are addresses, never 1.
pub(crate) const WAKER_TOKEN: Token = Token(1);

/// Which direction to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Readable (or accept-able, or the peer closed, or an error).
    Read,
    /// Writable (or a connect finished, or an error).
    Write,
}

/// One direction of a descriptor.
#[derive(Default)]
pub(crate) struct Half {
    /// An edge came while nobody waited; the next waiter consumes it.
    pub(crate) ready: bool,
    /// Edges delivered to parked waiters, so that a waiter woken by one
    /// knows (also if it lost the race to its own deadline).
    pub(crate) seq: u64,
    /// Parked waiters: (id, waker).
    pub(crate) waiters: Vec<(u64, Waker)>,
    pub(crate) deadline: Option<Instant>,
}

/// Must hold: `closing` never goes back to false while the descriptor is
/// registered; a waiter is on `waiters` only while its wait is in progress
/// (it removes itself when its park returns or unwinds).
#[derive(Default)]
pub(crate) struct PdState {
    pub(crate) rd: Half,
    pub(crate) wr: Half,
    pub(crate) closing: bool,
    pub(crate) next_id: u64,
}

impl PdState {
    pub(crate) fn half(&mut self, mode: Mode) -> &mut Half {
        match mode {
            Mode::Read => &mut self.rd,
            Mode::Write => &mut self.wr,
        }
    }
}

/// Go's pollDesc: a registered fd's parked readers and writers (the
/// protocol is in the module essay). Owned by its poller, which frees it
/// only when the poller itself is dropped.
pub(crate) struct PollDesc {
    state: Mutex<PdState>,
}

impl PollDesc {
    pub(crate) fn lock(&self) -> MutexGuard<'_, PdState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The poller's side: an edge in `mode`. Wakes every waiter (their
    /// goroutines go to `batch` when they belong to `sched`), or sets
    /// `ready` when nobody waits.
    pub(crate) fn event(&self, mode: Mode, sched: Option<*const ()>, batch: &mut Vec<GRef>) {
        let mut s = self.lock();
        let h = s.half(mode);
        if h.waiters.is_empty() {
            h.ready = true;
            return;
        }
        h.seq = h.seq.wrapping_add(1);
        for (_, w) in h.waiters.drain(..) {
            wake_into(&w, sched, batch);
        }
    }

    /// Wakes every waiter of `mode` (or both) to re-read its state.
    pub(crate) fn wake_all(s: &mut PdState, mode: Option<Mode>) {
        for m in [Mode::Read, Mode::Write] {
            if mode.is_none_or(|x| x == m) {
                for (_, w) in s.half(m).waiters.drain(..) {
                    w.wake();
                }
            }
        }
    }
}

/// Wakes `w`; a goroutine of `sched` (the runtime's `Sched`, erased: this
/// room sits below it) that this makes runnable goes to
/// `batch` for one injection instead of being queued alone.
fn wake_into(w: &Waker, sched: Option<*const ()>, batch: &mut Vec<GRef>) {
    if let (Some(sched), Some(g)) = (sched, w.goroutine()) {
        if std::ptr::eq(g_of(g).sched_erased, sched) {
            if w.win_only() {
                batch.push(g);
            }
            return;
        }
    }
    w.wake();
}

/// What the thread that polls owns.
struct PollState {
    poll: Poll,
    events: Events,
}

/// One poller (Go's netpoll globals): an epoll instance with its eventfd
/// break, the descriptors registered with it, and who waits on it.
///
/// Must hold: at most one thread polls at a time (`poll`'s lock); a thread
/// blocks in epoll_wait only while holding it, so a non-blocking poll
/// (`try_lock`) never waits for a blocked one. `last_poll` is 0 exactly
/// while an M of the runtime is blocked in the poller (Go's
/// `sched.lastpoll`). Descriptors in `all` are freed only with the poller.
pub(crate) struct NetPoll {
    poll: Mutex<PollState>,
    pub(crate) registry: mio::Registry,
    waker: mio::Waker,
    /// A break is written and not yet seen by a blocking poll (Go's
    /// `netpollWakeSig`): one eventfd write per break, however many ask.
    break_pending: AtomicBool,
    /// Waits in progress on this poller's descriptors.
    pub(crate) waiters: AtomicUsize,
    /// When a poll last ran (the runtime's clock, ns); 0 while an M is
    /// blocked in the poller.
    pub(crate) last_poll: AtomicU64,
    /// The runtime ended: nobody will poll again.
    pub(crate) closed: AtomicBool,
    /// sysmon's note, woken when a plain thread starts waiting and no M
    /// is blocked in the poller (None for the process-wide poller).
    pub(crate) kick: Option<Arc<Note>>,
    #[allow(clippy::vec_box)] // boxed: tokens are their addresses
    pub(crate) all: Mutex<Vec<Box<PollDesc>>>,
    free: Mutex<Vec<NonNull<PollDesc>>>,
    /// Reused buffer of readied goroutines (only the thread holding `poll`
    /// touches it through `take_batch`).
    batch: Mutex<Vec<GRef>>,
}

// SAFETY: the raw descriptor pointers in `free` point into `all`'s boxes,
// which live as long as the NetPoll; every mutable state is under a lock
// or atomic.
unsafe impl Send for NetPoll {}
// SAFETY: as above.
unsafe impl Sync for NetPoll {}

impl NetPoll {
    pub(crate) fn new(kick: Option<Arc<Note>>) -> io::Result<NetPoll> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        Ok(NetPoll {
            poll: Mutex::new(PollState {
                poll,
                events: Events::with_capacity(128),
            }),
            registry,
            waker,
            break_pending: AtomicBool::new(false),
            waiters: AtomicUsize::new(0),
            last_poll: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            kick,
            all: Mutex::new(Vec::new()),
            free: Mutex::new(Vec::new()),
            batch: Mutex::new(Vec::new()),
        })
    }

    /// Whether a wait is in progress on any of this poller's descriptors.
    pub(crate) fn has_waiters(&self) -> bool {
        self.waiters.load(Ordering::SeqCst) > 0
    }

    /// Go's `netpollBreak`: ends a blocked poll (now or the next one).
    pub(crate) fn wake(&self) {
        if !self.break_pending.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.waker.wake() {
                fatal(&format!("netpoll: cannot write the poller's eventfd: {e}"));
            }
        }
    }

    pub(crate) fn alloc(&self) -> NonNull<PollDesc> {
        if let Some(pd) = lock(&self.free).pop() {
            return pd;
        }
        let mut b = Box::new(PollDesc {
            state: Mutex::new(PdState::default()),
        });
        let p = NonNull::from(&mut *b);
        lock(&self.all).push(b);
        p
    }

    pub(crate) fn release(&self, pd: NonNull<PollDesc>) {
        // SAFETY: pd is one of ours (`alloc`), alive while we are.
        let pdr = unsafe { pd.as_ref() };
        {
            let mut s = pdr.lock();
            PollDesc::wake_all(&mut s, None);
            *s = PdState::default();
        }
        lock(&self.free).push(pd);
    }

    /// Polls once: blocks up to `timeout` (None: until an event or a
    /// break) when `blocking`, else only if the poller is free and without
    /// waiting. Wakes the waiters of every event; goroutines of `sched`
    /// made runnable go to the returned batch (the caller injects them).
    /// Returns None if another thread holds the poller (non-blocking only).
    pub(crate) fn poll_once(
        &self,
        blocking: bool,
        timeout: Option<Duration>,
        sched: Option<*const ()>,
    ) -> Option<Vec<GRef>> {
        let mut st = if blocking {
            lock(&self.poll)
        } else {
            match self.poll.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return None,
            }
        };
        let timeout = if !blocking || self.break_pending.load(Ordering::SeqCst) {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        let PollState { poll, events } = &mut *st;
        match poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => events.clear(),
            Err(e) => fatal(&format!("netpoll: epoll_wait failed: {e}")),
        }
        if blocking {
            // Awake now: a break from here on needs a new eventfd write
            // (the caller looks for an idle P under the scheduler lock
            // after this, which is what a break asks for).
            self.break_pending.store(false, Ordering::SeqCst);
        }
        let mut batch = std::mem::take(&mut *lock(&self.batch));
        for ev in events.iter() {
            if ev.token() == WAKER_TOKEN {
                continue;
            }
            // SAFETY: every other token is the address of a descriptor of
            // this poller (`Registration::new`), never freed while the
            // poller lives; a stale one (deregistered and reused since)
            // only causes a spurious wakeup (module essay).
            let pd = unsafe { &*(ev.token().0 as *const PollDesc) };
            let err = ev.is_error();
            if ev.is_readable() || ev.is_read_closed() || err {
                pd.event(Mode::Read, sched, &mut batch);
            }
            if ev.is_writable() || ev.is_write_closed() || err {
                pd.event(Mode::Write, sched, &mut batch);
            }
        }
        Some(batch)
    }

    /// Gives a batch's buffer back for reuse.
    pub(crate) fn recycle(&self, mut batch: Vec<GRef>) {
        batch.clear();
        *lock(&self.batch) = batch;
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The process-wide poller for descriptors registered outside any run,
/// served by a thread of its own ("gort-netpoll").
pub(crate) fn fallback() -> &'static Arc<NetPoll> {
    static FALLBACK: OnceLock<Arc<NetPoll>> = OnceLock::new();
    FALLBACK.get_or_init(|| {
        let np = Arc::new(
            NetPoll::new(None)
                .unwrap_or_else(|e| fatal(&format!("netpoll: cannot make the poller: {e}"))),
        );
        let served = np.clone();
        std::thread::Builder::new()
            .name("gort-netpoll".into())
            .spawn(move || {
                // It readies only goroutines waiting for an fd: not a
                // thread that could end a deadlock (outside.rs).
                crate::outside::enter_service_thread();
                loop {
                    if let Some(batch) = served.poll_once(true, None, None) {
                        served.recycle(batch);
                    }
                }
            })
            .unwrap_or_else(|e| fatal(&format!("netpoll: cannot start its thread: {e}")));
        np
    })
}

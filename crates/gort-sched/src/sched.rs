//! One runtime's scheduler state, [`Sched`] (Go's `schedt` plus `allp`,
//! `allgs`, `allm`): the global run queue and idle lists under one lock,
//! the counters read without it, and the data every mechanism shares.
//!
//! The mechanisms are rooms of their own, each an `impl Sched` block that
//! imports this module and never the other way round:
//!
//! | room | what |
//! |---|---|
//! | spawn.rs, gfree.rs | making goroutines, their exit, the free-G and task-cell caches |
//! | schedule.rs | the loop: `schedule`, `find_runnable`, `execute`, run queues, `ready` |
//! | mcall.rs | switching between a goroutine and g0 |
//! | idle.rs | spinning and idle Ms: `wakep`, `startm`, `stopm` |
//! | proc.rs | Ps changing hands: idle list, `handoffp` |
//! | lockosthread.rs | goroutines wired to threads |
//! | stw.rs | stop-the-world and `set_procs` |
//! | syscall.rs, sysmon.rs, retake.rs | syscalls, the monitor thread, retaking Ps |
//! | checkdead.rs, shutdown.rs | deadlock detection, the end of a run |
//! | cgocallback.rs | callbacks from C and extra Ms |
//! | observe.rs | stats, schedtrace, goroutine dumps |
//! | netpoll.rs | the network poller: pollDesc, the idle M's poll, injection |
//!
//! Lock order: `Sched::lock` (Go's `sched.lock`) before `timers`; `allgs`,
//! `allm`, `pstore`, `extra_ms` and `ending` are leaves, never held while
//! taking another lock. No lock is held across a switch to a goroutine.

use crate::g::{GRef, G};
use crate::m::M;
use crate::note::Note;
use crate::p::P;
use gort_stack::StackPool;
use std::collections::VecDeque;
use std::ptr::{self};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Pads a value to its own cache line (two lines: adjacent-line prefetch
/// on x86_64), so that a counter written by one M does not slow down
/// reads of the fields next to it on another.
#[repr(align(128))]
pub(crate) struct CachePadded<T>(T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Most Ps a runtime can have (`procs`, `set_procs`).
pub const MAX_PROCS: usize = 1024;

/// The part of the scheduler protected by `Sched::lock` (Go's `sched.lock`).
pub(crate) struct Locked {
    /// Global run queue.
    pub(crate) runq: VecDeque<GRef>,
    /// Idle Ms, parked on their notes.
    pub(crate) midle: Vec<*mut M>,
    /// Idle Ps.
    pub(crate) pidle: Vec<*mut P>,
    /// Ms that exist or are being created: an M counts from the moment its
    /// id is reserved, before its thread starts.
    pub(crate) mcount: usize,
    /// Dead Gs beyond the per-P caches.
    pub(crate) gfree: Vec<*mut G>,
    /// Free task cells beyond the per-P caches.
    pub(crate) cells: Vec<*mut u8>,
    /// Threads of the Ms this runtime started (M0 included), joined at the
    /// end (not after a detach: shutdown.rs).
    pub(crate) threads: Vec<std::thread::JoinHandle<()>>,
    /// Ms parked in `stop_locked_m`, waiting for their locked goroutine
    /// (Go's `nmidlelocked`): idle as far as checkdead is concerned. Signed,
    /// as in Go: `start_locked_m` may decrement it for an M that has not yet
    /// incremented it (its goroutine was readied before it got to sleep).
    pub(crate) nmidlelocked: isize,
    /// Stop-the-world: Ps stopped so far, and how many are still running.
    pub(crate) stw_stopped: Vec<*mut P>,
    pub(crate) stw_wait_for: usize,
    /// An M is blocked in the poller (netpoll.rs): wakep breaks its poll
    /// rather than start a thread, and the M clears this under the lock
    /// before it looks for an idle P.
    pub(crate) polling: bool,
}

/// How `run` ended, decided by the main goroutine's exit or by checkdead.
pub(crate) enum Ending {
    /// The main goroutine returned or panicked.
    MainExited,
    /// Every goroutine was blocked with nothing to wake one.
    Deadlock(String),
}

/// One runtime's scheduler state (Go's `schedt` plus `allp`, `allgs`).
///
/// Must hold: lives (in an Arc held by `Runtime::run`) until every M of the
/// runtime has stopped; Gs, Ms and Ps are boxed, registered in `allgs`,
/// `allm` and `allp`, and freed only when the Sched is dropped.
// The Vecs hold Boxes on purpose: Gs, Ms and Ps are referred to by raw
// pointer from queues and other threads, so their addresses must not move
// when a Vec grows.
#[allow(clippy::vec_box)]
pub(crate) struct Sched {
    pub(crate) lock: Mutex<Locked>,
    /// Go's `allp`: slot i holds P i for i < nprocs. Slots are atomics and
    /// Ps are never freed (`pstore` owns them), so a reader racing a
    /// resize sees a valid P; only a stopped world changes the slots.
    pub(crate) allp: Box<[AtomicPtr<P>]>,
    pub(crate) pstore: Mutex<Vec<Box<P>>>,
    pub(crate) allgs: Mutex<Vec<Box<G>>>,
    pub(crate) allm: Mutex<Vec<Box<M>>>,
    pub(crate) nprocs: AtomicUsize,
    /// A stop-the-world is in progress (Go's `sched.gcwaiting`): Ms stop
    /// their Ps at their next scheduling point, and a P that would go idle
    /// is counted as stopped instead.
    pub(crate) stw_wait: AtomicBool,
    /// One stop-the-world at a time.
    pub(crate) stw_active: AtomicBool,
    /// Woken when the last P stops.
    pub(crate) stw_note: Note,
    /// sysmon sleeps on this until the next timer, or until woken (the
    /// Ps' timer heaps hold it too, to wake it for a new first timer).
    pub(crate) sysmon_note: Arc<Note>,
    /// When sysmon's sleep ends (timer.rs's `nanos`; `u64::MAX`: until
    /// woken; 0: awake). A timer heap kicks sysmon only for a timer due
    /// before this (checktimers.rs has the protocol).
    pub(crate) sysmon_until: Arc<AtomicU64>,
    /// The run is over: sysmon exits, and an M that goes idle exits.
    pub(crate) finished: AtomicBool,
    /// The run ended with goroutines still running outside the runtime
    /// (shutdown.rs, "Detached goroutines"): `run` returned without
    /// joining their threads and left this `Sched` alive for them.
    pub(crate) detached: AtomicBool,
    /// Time origin for the nanosecond stamps below.
    pub(crate) base: Instant,
    /// sysmon is polling (short sleeps) rather than sleeping long. Read
    /// by every syscall entry (see `watch_syscall`).
    pub(crate) sysmon_polling: AtomicBool,
    /// Extra Ms not bound to a thread now, for the next foreign thread
    /// that calls back (see `cgo`).
    pub(crate) extra_ms: Mutex<Vec<*mut M>>,
    /// Ps retaken from Ms in syscalls (stats).
    pub(crate) handoffs: AtomicU64,
    pub(crate) npidle: AtomicUsize,
    pub(crate) nmspinning: AtomicUsize,
    pub(crate) runq_len: AtomicUsize,
    pub(crate) goid: AtomicU64,
    /// Live goroutines plus every P's `credit`: a P reserves counts in
    /// batches and spends one per spawn, and an exit gives one back to its
    /// P, so this never falls below the truth and a zero is exact. Every P
    /// gives all its credit back before it goes idle and, once shutdown
    /// began, at every exit; so with every P idle (checkdead) the count is
    /// exact, and the exit that brings it to zero in a shutdown ends the
    /// run. The spawning M and the Ms that run the goroutines used to
    /// bounce this line with a locked add at every spawn and every exit
    /// (which also waited for the spawn's cache-missing stores): now it is
    /// touched once per batch, on a line of its own.
    pub(crate) ngoroutines: CachePadded<AtomicUsize>,
    pub(crate) shutdown: AtomicBool,
    pub(crate) ending: Mutex<Option<Ending>>,
    /// Woken when the run is over (shutdown and no goroutine left).
    pub(crate) done: Note,
    pub(crate) stacks: StackPool,
    pub(crate) default_stack_size: usize,
    /// Set by the builder: `Some(true)`, goroutines may be woken from
    /// outside the runtime (plain threads, C threads not yet bound), so
    /// checkdead stays quiet; `Some(false)`, only the runtime's own threads
    /// wake goroutines; `None` (the default), checkdead asks whether a
    /// thread outside the runtime is alive (outside.rs).
    pub(crate) external_wakers: Option<bool>,
    /// The threads this runtime started and still runs, against the
    /// process's (outside.rs).
    pub(crate) outside: std::sync::Arc<crate::outside::Outside>,
    /// checkdead found every goroutine blocked while a thread outside the
    /// runtime may be alive: sysmon re-checks until it clears.
    pub(crate) dead_suspect: AtomicBool,
    /// The process's fork generation when this runtime was made (fork.rs).
    pub(crate) fork_gen: u64,
    /// Retakes from running goroutines (see `preempt`).
    pub(crate) live: crate::handshake::SchedLive,
    /// The network poller, made when the first fd is registered
    /// (netpoll.rs).
    pub(crate) netpoll: std::sync::OnceLock<Arc<crate::netpoll_epoll::NetPoll>>,
    /// Goroutines of this runtime waiting for an fd (on any poller):
    /// checkdead never calls them deadlocked.
    pub(crate) io_waiters: AtomicUsize,
}

// SAFETY: raw pointers inside point to boxed Gs/Ms/Ps owned by this Sched;
// all shared mutation goes through the lock or atomics.
unsafe impl Send for Sched {}

// SAFETY: as above.
unsafe impl Sync for Sched {}

pub(crate) struct Config {
    pub(crate) procs: usize,
    pub(crate) stack_size: usize,
    pub(crate) external_wakers: Option<bool>,
    pub(crate) max_retaken: usize,
}

impl Sched {
    pub(crate) fn new(config: Config, stacks: StackPool) -> Sched {
        let sysmon_note = Arc::new(Note::new());
        let sysmon_until = Arc::new(AtomicU64::new(0));
        let pstore: Vec<Box<P>> = (0..config.procs)
            .map(|i| P::new(i, &sysmon_note, &sysmon_until))
            .collect();
        let allp: Box<[AtomicPtr<P>]> = (0..MAX_PROCS)
            .map(|i| {
                AtomicPtr::new(
                    pstore
                        .get(i)
                        .map_or(ptr::null_mut(), |p| &**p as *const P as *mut P),
                )
            })
            .collect();
        Sched {
            lock: Mutex::new(Locked {
                runq: VecDeque::new(),
                midle: Vec::new(),
                pidle: Vec::new(),
                mcount: 0,
                gfree: Vec::new(),
                cells: Vec::new(),
                threads: Vec::new(),
                nmidlelocked: 0,
                stw_stopped: Vec::new(),
                stw_wait_for: 0,
                polling: false,
            }),
            allp,
            pstore: Mutex::new(pstore),
            allgs: Mutex::new(Vec::new()),
            allm: Mutex::new(Vec::new()),
            nprocs: AtomicUsize::new(config.procs),
            stw_wait: AtomicBool::new(false),
            stw_active: AtomicBool::new(false),
            stw_note: Note::new(),
            sysmon_note,
            sysmon_until,
            finished: AtomicBool::new(false),
            detached: AtomicBool::new(false),
            base: Instant::now(),
            sysmon_polling: AtomicBool::new(false),
            extra_ms: Mutex::new(Vec::new()),
            handoffs: AtomicU64::new(0),
            npidle: AtomicUsize::new(0),
            nmspinning: AtomicUsize::new(0),
            runq_len: AtomicUsize::new(0),
            goid: AtomicU64::new(0),
            ngoroutines: CachePadded(AtomicUsize::new(0)),
            shutdown: AtomicBool::new(false),
            ending: Mutex::new(None),
            done: Note::new(),
            stacks,
            default_stack_size: config.stack_size,
            external_wakers: config.external_wakers,
            outside: std::sync::Arc::new(crate::outside::Outside::new()),
            dead_suspect: AtomicBool::new(false),
            fork_gen: crate::fork::generation(),
            live: crate::handshake::SchedLive::new(config.max_retaken),
            netpoll: std::sync::OnceLock::new(),
            io_waiters: AtomicUsize::new(0),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Locked> {
        crate::fork::lock(&self.lock, self.fork_gen, "the scheduler lock")
    }

    /// Every G ever made (their boxes; dead ones are reused).
    #[allow(clippy::vec_box)] // boxed: Gs are referred to by address
    pub(crate) fn lock_allgs(&self) -> MutexGuard<'_, Vec<Box<G>>> {
        crate::fork::lock(&self.allgs, self.fork_gen, "the list of goroutines")
    }

    /// Every M ever made.
    #[allow(clippy::vec_box)] // boxed: Ms are referred to by address
    pub(crate) fn lock_allm(&self) -> MutexGuard<'_, Vec<Box<M>>> {
        crate::fork::lock(&self.allm, self.fork_gen, "the list of Ms")
    }

    pub(crate) fn procs(&self) -> usize {
        self.nprocs.load(Ordering::Acquire)
    }

    /// P number `i` (< procs()).
    pub(crate) fn p(&self, i: usize) -> &P {
        // SAFETY: slots below nprocs hold Ps owned by pstore, never freed.
        unsafe { &*self.allp[i].load(Ordering::Acquire) }
    }

    /// The current Ps (a snapshot of `allp[..procs]`).
    pub(crate) fn allp(&self) -> impl Iterator<Item = &P> + '_ {
        (0..self.procs()).map(|i| self.p(i))
    }
}

impl G {
    /// The runtime this goroutine belongs to (`G::sched_erased`, typed).
    #[inline(always)]
    pub(crate) fn sched(&self) -> *const Sched {
        self.sched_erased.cast()
    }
}

impl M {
    /// The runtime this M belongs to (`M::sched_erased`, typed).
    #[inline(always)]
    pub(crate) fn sched(&self) -> *const Sched {
        self.sched_erased.cast()
    }
}

//! P, M and the scheduler proper, after Go's proc.go: `schedule`,
//! `findRunnable`, `execute`, `wakep`, `startm`, `stopm`, `acquirep`,
//! `releasep`, `checkdead`.
//!
//! Who runs where:
//! - g0 code (this file's loop) runs on an M's own thread stack. It picks a
//!   G and switches to it with `gort_arch::switch`, passing the M; the
//!   goroutine stores g0's suspended context in that M.
//! - A goroutine comes back to g0 only through [`switch_to_g0`] with a
//!   [`Request`] that lives on its own stack; g0 stores the goroutine's
//!   suspended context in the G *before* acting on the request, so the G is
//!   fully saved before anyone can make it runnable again (Go's `mcall`).

use crate::g::{GRef, Status, WaitReason, G};
use crate::note::Note;
use crate::runq::{LocalQueue, Owner};
use crate::wake::Waker;
use gort_arch::Context;
use gort_stack::{StackCache, StackPool};
use std::cell::{Cell, UnsafeCell};
use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Counters, schedtrace and goroutine dumps (a child module: it reads the
/// scheduler's private state).
pub(crate) mod observe;

/// A goroutine's request to its M's g0 (Go's `mcall(fn)`).
pub(crate) enum Request<'a> {
    /// Put me back on a run queue and run something else.
    Yield,
    /// I am parked: run `unlock(me)` off my stack; if it returns false, the
    /// park is aborted and I run again at once.
    Park(&'a mut dyn FnMut(GRef) -> bool),
    /// I finished: free me.
    Exit,
    /// I left a syscall and found no P: queue me and park this M (Go's
    /// `exitsyscall0`).
    ExitSyscall,
    /// The body of a callback from C finished and I am back in syscall
    /// state: return to the C frames (see `cgo`).
    CallbackReturn,
}

/// A processor: the right to run goroutines, with a local run queue and
/// caches (Go's `p`).
///
/// Must hold: `owned` is touched only by the M that holds this P (`m`), or
/// by anyone while the P is idle and under the scheduler lock. A P is
/// always owned by exactly one of: an M that holds it, the idle list, or an
/// M it is being handed to through `M::nextp` (seed 004: a P in transit
/// has an owner).
pub(crate) struct P {
    /// Index in `allp`.
    pub(crate) id: usize,
    pub(crate) runq: LocalQueue<G>,
    /// The syscall handoff word (see `pstatus`).
    pub(crate) status: crate::pstatus::PStatus,
    /// Syscalls entered on this P (Go's `p.syscalltick`): written only by
    /// the holder, read by sysmon to tell one long syscall from many short
    /// ones without reading the clock on the syscall path.
    syscalltick: AtomicU32,
    /// Counts this P holds in `Sched::ngoroutines` beyond live goroutines
    /// (`count_spawn`, `flush_credit`). Written only by the P's holder
    /// (plain loads and stores); read by anyone for `num_goroutines`.
    credit: AtomicUsize,
    owned: UnsafeCell<POwned>,
}

struct POwned {
    schedtick: u32,
    gfree: Vec<*mut G>,
    stacks: StackCache,
    /// Goroutine ids this P may hand out: `goid_next..goid_end` (Go's
    /// `p.goidcache`), taken from `Sched::goid` a batch at a time.
    goid_next: u64,
    goid_end: u64,
    /// Free task cells (`CELL_LAYOUT` blocks, see `cell_alloc`).
    cells: Vec<*mut u8>,
}

impl P {
    fn new(id: usize) -> Box<P> {
        Box::new(P {
            id,
            runq: LocalQueue::new(),
            status: crate::pstatus::PStatus::new(),
            syscalltick: AtomicU32::new(0),
            credit: AtomicUsize::new(0),
            owned: UnsafeCell::new(POwned {
                schedtick: 0,
                gfree: Vec::new(),
                stacks: StackCache::new(),
                goid_next: 0,
                goid_end: 0,
                cells: Vec::new(),
            }),
        })
    }
}

/// Dead Gs a P keeps before moving a batch to the global free list, and
/// the batch size both ways (Go's gfput/gfget use 64 and 32).
const GFREE_LOCAL_MAX: usize = 64;
const GFREE_BATCH: usize = 32;

/// Counts a P reserves in `Sched::ngoroutines` at a time (and keeps when it
/// gives some back).
const COUNT_BATCH: usize = 32;
/// Goroutine ids a P takes at a time (Go's `_GoidCacheBatch`).
const GOID_BATCH: u64 = 16;

/// The blocks of the task-cell cache: every goroutine made by `go` whose
/// closure and result are small takes one (runtime.rs). They are plain
/// global-allocator blocks of this layout, so any of them may be freed
/// with `dealloc` and any P may keep them.
pub(crate) const CELL_LAYOUT: std::alloc::Layout =
    match std::alloc::Layout::from_size_align(128, 16) {
        Ok(l) => l,
        Err(_) => panic!("cell layout"),
    };
/// Free cells a P keeps before moving a batch to the global list, and the
/// batch size both ways (as for dead Gs).
const CELLS_LOCAL_MAX: usize = 64;
const CELLS_BATCH: usize = 32;

/// Pads a value to its own cache line (two lines: adjacent-line prefetch
/// on x86_64), so that a counter written by one M does not slow down
/// reads of the fields next to it on another.
#[repr(align(128))]
struct CachePadded<T>(T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Most Ps a runtime can have (`procs`, `set_procs`).
pub const MAX_PROCS: usize = 1024;

// SAFETY: see P's invariants: non-atomic parts are single-owner.
unsafe impl Sync for P {}
// SAFETY: as above.
unsafe impl Send for P {}

impl P {
    /// # Safety
    /// The caller holds this P (see P's invariants).
    #[allow(clippy::mut_from_ref)]
    unsafe fn owned(&self) -> &mut POwned {
        // SAFETY: forwarded: the caller is the P's only owner now.
        unsafe { &mut *self.owned.get() }
    }

    /// # Safety
    /// The caller holds this P.
    unsafe fn queue(&self) -> Owner<'_, G> {
        // SAFETY: holding the P makes us the queue's only owner.
        unsafe { self.runq.owner() }
    }
}

/// An OS thread that runs goroutines (Go's `m`).
///
/// Must hold: fields other than `nextp`, `park` and `counters` are touched
/// only by the M's own thread (its g0 or the goroutine running on it).
/// `nextp` is written by `startm` before `park` is woken, and read by this
/// M after. `counters` are written only by this M and read by anyone.
pub(crate) struct M {
    pub(crate) id: u64,
    /// The runtime this M belongs to.
    sched: *const Sched,
    /// g0's suspended context while a goroutine runs on this M.
    pub(crate) g0: Cell<Context>,
    pub(crate) p: Cell<*mut P>,
    nextp: AtomicPtr<P>,
    spinning: Cell<bool>,
    park: Note,
    /// Go's `m.locks` (acquirem/releasem): while non-zero, switching to a
    /// goroutine is a fatal error.
    pub(crate) locks: Cell<u32>,
    pub(crate) curg: Cell<*mut G>,
    rng: Cell<u64>,
    /// The goroutine locked to this M (Go's `m.lockedg`): while set, this M
    /// runs no other goroutine.
    pub(crate) lockedg: Cell<*mut G>,
    /// lock_os_thread nesting by the user (Go's `lockedExt`) and by the
    /// runtime itself, e.g. for a cgo callback (Go's `lockedInt`).
    pub(crate) locked_ext: Cell<u32>,
    pub(crate) locked_int: Cell<u32>,
    /// Set when a goroutine exits while locked: the M's thread exits too.
    exit_thread: Cell<bool>,
    /// The P this M had when it entered a syscall (Go's `m.oldp`).
    pub(crate) oldp: Cell<*mut P>,
    /// The M is running C code (Go's `m.incgo`, seed 001): set after
    /// entering syscall state and cleared before leaving it; while set, no
    /// goroutine may be switched on this M.
    pub(crate) incgo: AtomicBool,
    /// Calls into C made on this M, and callbacks from C run on it (Go's
    /// `m.ncgocall`). Written only by the M's thread, read by stats.
    pub(crate) ncgocall: AtomicU64,
    pub(crate) ncallback: AtomicU64,
    /// Set by `execute` when the goroutine's callback body returned
    /// (`Request::CallbackReturn`): the callback's scheduling loop ends.
    pub(crate) callback_returned: Cell<bool>,
    /// An extra M: bound to a thread the runtime did not create, to run
    /// callbacks from C there (Go's `m.isextra`), with the G that runs them
    /// (null for other Ms). Set once when the M is made.
    pub(crate) extra: bool,
    pub(crate) extra_g: *mut G,
    /// Switches and steals of this M, for `stats()`.
    pub(crate) counters: observe::MCounters,
}

// SAFETY: see M's invariants; cross-thread fields are atomics or the note.
unsafe impl Sync for M {}
// SAFETY: as above.
unsafe impl Send for M {}

impl M {
    fn new(id: u64, sched: *const Sched) -> M {
        M {
            id,
            sched,
            g0: Cell::new(Context::empty()),
            p: Cell::new(ptr::null_mut()),
            nextp: AtomicPtr::new(ptr::null_mut()),
            spinning: Cell::new(false),
            park: Note::new(),
            locks: Cell::new(0),
            curg: Cell::new(ptr::null_mut()),
            rng: Cell::new(0x2545_f491_4f6c_dd1d ^ (id.wrapping_mul(0x9e37_79b9_7f4a_7c15))),
            lockedg: Cell::new(ptr::null_mut()),
            locked_ext: Cell::new(0),
            locked_int: Cell::new(0),
            exit_thread: Cell::new(false),
            oldp: Cell::new(ptr::null_mut()),
            incgo: AtomicBool::new(false),
            ncgocall: AtomicU64::new(0),
            ncallback: AtomicU64::new(0),
            callback_returned: Cell::new(false),
            extra: false,
            extra_g: ptr::null_mut(),
            counters: observe::MCounters::default(),
        }
    }

    /// The stack pointer at which g0 is suspended (0 if it is not): the
    /// system stack below it is free while a goroutine runs on this M.
    pub(crate) fn g0_sp(&self) -> usize {
        let g0 = self.g0.take();
        let sp = g0.stack_pointer();
        self.g0.set(g0);
        sp
    }

    fn fastrand(&self) -> u32 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        (x >> 32) as u32
    }
}

/// The part of the scheduler protected by `Sched::lock` (Go's `sched.lock`).
struct Locked {
    /// Global run queue.
    runq: VecDeque<GRef>,
    /// Idle Ms, parked on their notes.
    midle: Vec<*mut M>,
    /// Idle Ps.
    pidle: Vec<*mut P>,
    /// Ms that exist or are being created: an M counts from the moment its
    /// id is reserved, before its thread starts (seed 003).
    mcount: usize,
    /// Dead Gs beyond the per-P caches.
    gfree: Vec<*mut G>,
    /// Free task cells beyond the per-P caches.
    cells: Vec<*mut u8>,
    /// Threads of the Ms this runtime started (not M0), joined at the end.
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Ms parked in `stop_locked_m`, waiting for their locked goroutine
    /// (Go's `nmidlelocked`): idle as far as checkdead is concerned. Signed,
    /// as in Go: `start_locked_m` may decrement it for an M that has not yet
    /// incremented it (its goroutine was readied before it got to sleep).
    nmidlelocked: isize,
    /// Stop-the-world: Ps stopped so far, and how many are still running.
    stw_stopped: Vec<*mut P>,
    stw_wait_for: usize,
}

/// How `run` ended, decided by the main goroutine's exit or by checkdead.
pub(crate) enum Ending {
    /// The main goroutine returned or panicked.
    MainExited,
    /// Every goroutine was blocked with nothing to wake one.
    Deadlock(String),
}

/// A goroutine's deadline: at `when`, `waker` times out (if nothing woke it
/// first). Ordered by (when, seq).
pub(crate) struct TimerEntry {
    when: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for TimerEntry {
    fn eq(&self, other: &Self) -> bool {
        (self.when, self.seq) == (other.when, other.seq)
    }
}
impl Eq for TimerEntry {}
impl PartialOrd for TimerEntry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for TimerEntry {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (self.when, self.seq).cmp(&(other.when, other.seq))
    }
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
    lock: Mutex<Locked>,
    /// Go's `allp`: slot i holds P i for i < nprocs. Slots are atomics and
    /// Ps are never freed (`pstore` owns them), so a reader racing a
    /// resize sees a valid P; only a stopped world changes the slots.
    allp: Box<[AtomicPtr<P>]>,
    pstore: Mutex<Vec<Box<P>>>,
    allgs: Mutex<Vec<Box<G>>>,
    allm: Mutex<Vec<Box<M>>>,
    nprocs: AtomicUsize,
    /// A stop-the-world is in progress (Go's `sched.gcwaiting`): Ms stop
    /// their Ps at their next scheduling point, and a P that would go idle
    /// is counted as stopped instead.
    stw_wait: AtomicBool,
    /// One stop-the-world at a time.
    stw_active: AtomicBool,
    /// Woken when the last P stops.
    stw_note: Note,
    /// Timers of parked goroutines (park_with deadlines, sleep), earliest
    /// first; fired by sysmon. Lock order: `lock` before `timers`.
    timers: Mutex<BinaryHeap<Reverse<TimerEntry>>>,
    /// Timers taken off the heap by sysmon and not yet fired: incremented
    /// under the `timers` lock, decremented once the waiter is on a run
    /// queue, so checkdead always sees either the timer or the goroutine.
    timers_firing: AtomicUsize,
    timer_seq: AtomicU64,
    /// sysmon sleeps on this until the next timer, or until woken.
    sysmon_note: Note,
    /// The run is over: sysmon exits.
    finished: AtomicBool,
    /// Time origin for the nanosecond stamps below.
    base: Instant,
    /// sysmon is polling (short sleeps) rather than sleeping long. Read
    /// by every syscall entry (see `watch_syscall`).
    sysmon_polling: AtomicBool,
    /// Extra Ms not bound to a thread now, for the next foreign thread
    /// that calls back (see `cgo`).
    pub(crate) extra_ms: Mutex<Vec<*mut M>>,
    /// Ps retaken from Ms in syscalls (stats).
    pub(crate) handoffs: AtomicU64,
    npidle: AtomicUsize,
    nmspinning: AtomicUsize,
    runq_len: AtomicUsize,
    goid: AtomicU64,
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
    ngoroutines: CachePadded<AtomicUsize>,
    shutdown: AtomicBool,
    ending: Mutex<Option<Ending>>,
    /// Woken when the run is over (shutdown and no goroutine left).
    done: Note,
    pub(crate) stacks: StackPool,
    pub(crate) default_stack_size: usize,
    /// Set by the builder: goroutines may be woken from outside the runtime
    /// (plain threads, C threads not yet bound), so checkdead stays quiet.
    external_wakers: bool,
}

// SAFETY: raw pointers inside point to boxed Gs/Ms/Ps owned by this Sched;
// all shared mutation goes through the lock or atomics.
unsafe impl Send for Sched {}
// SAFETY: as above.
unsafe impl Sync for Sched {}

thread_local! {
    static CURRENT_G: Cell<*mut G> = const { Cell::new(ptr::null_mut()) };
    static CURRENT_M: Cell<*mut M> = const { Cell::new(ptr::null_mut()) };
}

/// The goroutine running on this thread, or null on a plain thread or g0.
/// Not inlined: goroutines migrate between threads, so the thread-local's
/// address must be computed afresh at every call, never cached by the
/// compiler across a switch.
#[inline(never)]
pub(crate) fn current_g() -> *mut G {
    CURRENT_G.with(|c| c.get())
}

/// The thread's (G, M) pair, saved by `run` before the calling thread
/// becomes M0 of a new runtime, and put back after.
#[inline(never)]
pub(crate) fn save_current() -> (*mut G, *mut M) {
    (CURRENT_G.with(|c| c.get()), CURRENT_M.with(|c| c.get()))
}

#[inline(never)]
pub(crate) fn restore_current(saved: (*mut G, *mut M)) {
    set_current(saved.0, saved.1);
}

#[inline(never)]
pub(crate) fn set_current(g: *mut G, m: *mut M) {
    CURRENT_G.with(|c| c.set(g));
    CURRENT_M.with(|c| c.set(m));
}

/// Go's `throw`: an invariant is broken; print and abort.
pub(crate) fn fatal(msg: &str) -> ! {
    eprintln!("fatal error: gort: {msg}");
    std::process::abort()
}

pub(crate) struct Config {
    pub(crate) procs: usize,
    pub(crate) stack_size: usize,
    pub(crate) external_wakers: bool,
}

impl Sched {
    pub(crate) fn new(config: Config, stacks: StackPool) -> Sched {
        let pstore: Vec<Box<P>> = (0..config.procs).map(P::new).collect();
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
            }),
            allp,
            pstore: Mutex::new(pstore),
            allgs: Mutex::new(Vec::new()),
            allm: Mutex::new(Vec::new()),
            nprocs: AtomicUsize::new(config.procs),
            stw_wait: AtomicBool::new(false),
            stw_active: AtomicBool::new(false),
            stw_note: Note::new(),
            timers: Mutex::new(BinaryHeap::new()),
            timers_firing: AtomicUsize::new(0),
            timer_seq: AtomicU64::new(0),
            sysmon_note: Note::new(),
            finished: AtomicBool::new(false),
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
        }
    }

    fn lock(&self) -> MutexGuard<'_, Locked> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn procs(&self) -> usize {
        self.nprocs.load(Ordering::Acquire)
    }

    /// P number `i` (< procs()).
    fn p(&self, i: usize) -> &P {
        // SAFETY: slots below nprocs hold Ps owned by pstore, never freed.
        unsafe { &*self.allp[i].load(Ordering::Acquire) }
    }

    /// The current Ps (a snapshot of `allp[..procs]`).
    fn allp(&self) -> impl Iterator<Item = &P> + '_ {
        (0..self.procs()).map(|i| self.p(i))
    }

    /// Live goroutines: `ngoroutines` less every P's credit (a snapshot).
    /// A P reserves counts (`ngoroutines` up) before its credit shows them,
    /// and gives them back (credit down) before `ngoroutines` drops: if
    /// `ngoroutines` did not change while the credits were read, the
    /// result never counts a live goroutine out; it may count one that
    /// just exited, for a moment.
    pub(crate) fn num_goroutines(&self) -> usize {
        loop {
            let total = self.ngoroutines.load(Ordering::Acquire);
            let credit: usize = self.allp().map(|p| p.credit.load(Ordering::Acquire)).sum();
            if self.ngoroutines.load(Ordering::Acquire) == total {
                return total.saturating_sub(credit);
            }
        }
    }

    /// A `CELL_LAYOUT` block for a task cell: from the current P's cache
    /// (refilled from the global list 32 at a time), else from the global
    /// allocator. No allocation, no lock in the steady state of a program
    /// that spawns and joins: the joiner's P gets back the cells its spawns
    /// took. Null if the allocator fails.
    pub(crate) fn cell_alloc(&self) -> *mut u8 {
        if let Some(owned) = self.current_p_owned() {
            if owned.cells.is_empty() {
                let mut l = self.lock();
                let n = l.cells.len().min(CELLS_BATCH);
                let at = l.cells.len() - n;
                owned.cells.extend(l.cells.drain(at..));
            }
            if let Some(c) = owned.cells.pop() {
                return c;
            }
        }
        // SAFETY: CELL_LAYOUT has a non-zero size.
        unsafe { std::alloc::alloc(CELL_LAYOUT) }
    }

    /// Gives back a block from `cell_alloc` (of any runtime: they are all
    /// global-allocator blocks of `CELL_LAYOUT`).
    ///
    /// # Safety
    /// `cell` is a `CELL_LAYOUT` block from the global allocator, not used
    /// again by the caller.
    pub(crate) unsafe fn cell_free(&self, cell: *mut u8) {
        if let Some(owned) = self.current_p_owned() {
            owned.cells.push(cell);
            if owned.cells.len() >= CELLS_LOCAL_MAX {
                let at = owned.cells.len() - CELLS_BATCH;
                self.lock().cells.extend(owned.cells.drain(at..));
            }
            return;
        }
        // SAFETY: the caller's contract.
        unsafe { std::alloc::dealloc(cell, CELL_LAYOUT) }
    }

    /// The caches of the P held by this thread's M, when this thread is an
    /// M of this runtime holding one (not in a syscall).
    #[allow(clippy::mut_from_ref)]
    fn current_p_owned(&self) -> Option<&mut POwned> {
        let m = current_m_of(self);
        if m.is_null() {
            return None;
        }
        // SAFETY: m is this thread's M.
        let p = unsafe { (*m).p.get() };
        if p.is_null() {
            return None;
        }
        // SAFETY: our M holds p; the reference is used only within the
        // caller, on this thread, without a switch in between.
        Some(unsafe { (*p).owned() })
    }

    /// Gives a P's credit back to `ngoroutines`. True if that brought it
    /// to zero during shutdown: the run is over, and the caller must call
    /// `finish` (with the lock; not held here).
    ///
    /// The caller holds `p`.
    fn flush_exits(&self, p: &P) -> bool {
        self.flush_credit(p, 0)
    }

    /// Gives back all of a P's credit but `keep`; see `flush_exits`. The
    /// caller holds `p`.
    fn flush_credit(&self, p: &P, keep: usize) -> bool {
        let credit = p.credit.load(Ordering::Relaxed);
        if credit <= keep {
            return false;
        }
        let n = credit - keep;
        p.credit.store(keep, Ordering::Release);
        let left = self.ngoroutines.fetch_sub(n, Ordering::AcqRel) - n;
        left == 0 && self.shutdown.load(Ordering::Acquire)
    }

    /// Counts a new goroutine in `ngoroutines`: from the P's credit, which
    /// is topped up a batch at a time.
    fn count_spawn(&self, cur_m: *mut M) {
        let p = if cur_m.is_null() {
            ptr::null_mut()
        } else {
            // SAFETY: cur_m is this thread's M.
            unsafe { (*cur_m).p.get() }
        };
        if p.is_null() {
            self.ngoroutines.fetch_add(1, Ordering::AcqRel);
            return;
        }
        // SAFETY: our M holds p (so only we write its credit).
        let pr = unsafe { &*p };
        let mut credit = pr.credit.load(Ordering::Relaxed);
        if credit == 0 {
            self.ngoroutines.fetch_add(COUNT_BATCH, Ordering::AcqRel);
            credit = COUNT_BATCH;
        }
        pr.credit.store(credit - 1, Ordering::Release);
    }

    /// A new goroutine id: from the P's batch when there is a P (ids are
    /// unique and increase on each P, as Go's), else from the global
    /// counter (the main goroutine: 1).
    fn next_goid(&self, p: *mut P) -> u64 {
        if p.is_null() {
            return self.goid.fetch_add(1, Ordering::Relaxed) + 1;
        }
        // SAFETY: our M holds p.
        let owned = unsafe { (*p).owned() };
        if owned.goid_next == owned.goid_end {
            let first = self.goid.fetch_add(GOID_BATCH, Ordering::Relaxed) + 1;
            owned.goid_next = first;
            owned.goid_end = first + GOID_BATCH;
        }
        let id = owned.goid_next;
        owned.goid_next += 1;
        id
    }

    /// The last goroutine of a shutdown is gone: stop sysmon, wake M0's
    /// wait and every idle M so that they exit.
    fn finish(&self, l: &mut Locked) {
        self.finished.store(true, Ordering::Release);
        self.sysmon_note.wake();
        self.done.wake();
        for m in std::mem::take(&mut l.midle) {
            // SAFETY: idle Ms are parked on their notes; nextp stays null
            // so they exit.
            unsafe { (*m).park.wake() };
        }
    }

    pub(crate) fn take_ending(&self) -> Option<Ending> {
        self.ending.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Makes M0 for the calling thread, holding P 0, with every other P
    /// idle. Returns M0.
    pub(crate) fn start(&self) -> *mut M {
        let m0 = self.new_m_struct();
        let mut l = self.lock();
        l.mcount = 1;
        let n = self.procs();
        for i in (1..n).rev() {
            l.pidle.push(self.p(i) as *const P as *mut P);
        }
        self.npidle.store(n - 1, Ordering::Release);
        drop(l);
        // SAFETY: m0 was just made; P 0 is owned by nobody yet.
        unsafe { (*m0).p.set(self.p(0) as *const P as *mut P) };
        m0
    }

    fn new_m_struct(&self) -> *mut M {
        let mut allm = self.allm.lock().unwrap_or_else(|e| e.into_inner());
        let mut m = Box::new(M::new(allm.len() as u64, self));
        let ptr: *mut M = &mut *m;
        allm.push(m);
        ptr
    }

    // ---- goroutine creation --------------------------------------------

    /// Go's `newproc`: makes a runnable G for `f` and queues it on the
    /// current P (runnext) or, from outside the runtime, on the global queue.
    pub(crate) fn spawn(
        &self,
        f: crate::runtime::Entry,
        stack_size: Option<usize>,
        is_main: bool,
    ) -> Result<GRef, gort_stack::StackError> {
        let cur_m = current_m_of(self);
        let g = self.new_g(cur_m, f, stack_size)?;
        // SAFETY: g was just made and is owned by us.
        unsafe { (*g.as_ptr()).is_main.set(is_main) };
        self.count_spawn(cur_m);
        self.make_runnable(cur_m, g, true);
        Ok(g)
    }

    fn new_g(
        &self,
        cur_m: *mut M,
        f: crate::runtime::Entry,
        stack_size: Option<usize>,
    ) -> Result<GRef, gort_stack::StackError> {
        let size = stack_size.unwrap_or(self.default_stack_size);
        let pooled = size == self.stacks.stack_size();
        let p = if cur_m.is_null() {
            ptr::null_mut()
        } else {
            // SAFETY: cur_m is the M running this code.
            unsafe { (*cur_m).p.get() }
        };
        // A dead G: the P's cache (refilled from the global list a batch at
        // a time, Go's gfget), else the global list, else a new one.
        let mut g: *mut G = if !p.is_null() {
            // SAFETY: we hold p (it is our M's P).
            let owned = unsafe { (*p).owned() };
            if owned.gfree.is_empty() {
                let mut l = self.lock();
                let n = l.gfree.len().min(GFREE_BATCH);
                let at = l.gfree.len() - n;
                owned.gfree.extend(l.gfree.drain(at..));
            }
            owned.gfree.pop().unwrap_or(ptr::null_mut())
        } else {
            self.lock().gfree.pop().unwrap_or(ptr::null_mut())
        };
        if g.is_null() {
            let mut boxed = Box::new(G::new(self));
            g = &mut *boxed;
            self.allgs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(boxed);
        }
        // SAFETY: g is dead and now exclusively ours.
        let gr = unsafe { &*g };
        // Reuse the G's stack when it has the right size.
        // SAFETY: as above.
        let stack_slot = unsafe { &mut *gr.stack.get() };
        if stack_slot.as_ref().is_some_and(|s| s.size() != size) {
            let old = stack_slot.take().expect("checked");
            if self.stacks.accepts(&old) {
                self.stacks.put(old);
            }
        }
        if stack_slot.is_none() {
            let stack = if pooled && !p.is_null() {
                // SAFETY: we hold p.
                unsafe { (*p).owned().stacks.get(&self.stacks)? }
            } else if pooled {
                self.stacks.get()?
            } else {
                gort_stack::Stack::new(gort_stack::StackConfig {
                    size,
                    ..Default::default()
                })?
            };
            *stack_slot = Some(stack);
        }
        debug_assert!(stack_slot.is_some());
        gr.id.set(self.next_goid(p));
        gr.cancel.store(false, Ordering::Relaxed);
        gr.wait_reason.set(WaitReason::None);
        // SAFETY: exclusively ours (dead G).
        unsafe {
            let old = std::mem::take(&mut *gr.unwind.get());
            if old.has_resume_point() {
                fatal("a goroutine exited with a live resume point");
            }
        }
        // SAFETY: exclusively ours (dead G).
        unsafe { *gr.entry.get() = Some(f) };
        // No first frame yet: `execute` writes it on the M that runs the
        // goroutine (see `first_context`). Writing it here made the
        // spawner miss on a stack line last written by another M.
        // SAFETY: exclusively ours (dead G).
        unsafe { *gr.ctx.get() = Context::empty() };
        gr.set_status(Status::Runnable);
        // SAFETY: g is non-null.
        Ok(GRef(unsafe { NonNull::new_unchecked(g) }))
    }

    // ---- run queues ------------------------------------------------------

    /// Queues a runnable G: on the current M's P when there is one (in
    /// runnext when `next`), else on the global queue; then wakes an idle P
    /// if one is free (Go's `ready` and `newproc` tail).
    fn make_runnable(&self, cur_m: *mut M, g: GRef, next: bool) {
        let p = if cur_m.is_null() {
            ptr::null_mut()
        } else {
            // SAFETY: cur_m is the M running this code.
            unsafe { (*cur_m).p.get() }
        };
        if p.is_null() {
            self.global_put(g);
        } else {
            // SAFETY: our M holds p.
            let q = unsafe { (*p).queue() };
            if let Err(overflow) = q.push(g.0, next) {
                self.runq_overflow(overflow);
            }
        }
        self.wakep();
    }

    /// Go's `runqputslow` tail: half of a full local queue goes to the
    /// global queue. Cold and out of line, to keep `make_runnable` small.
    #[cold]
    #[inline(never)]
    fn runq_overflow(&self, overflow: crate::runq::Overflow<G, { crate::runq::LOCAL_QUEUE_LEN }>) {
        let mut l = self.lock();
        for item in overflow.items() {
            l.runq.push_back(GRef(item));
        }
        self.runq_len.store(l.runq.len(), Ordering::Release);
    }

    fn global_put(&self, g: GRef) {
        let mut l = self.lock();
        l.runq.push_back(g);
        self.runq_len.store(l.runq.len(), Ordering::Release);
    }

    /// Go's `globrunqget`: takes a batch from the global queue onto `p`'s
    /// local queue and returns one G. Called with the lock held.
    fn global_get(&self, l: &mut Locked, p: *mut P, max: usize) -> Option<GRef> {
        if l.runq.is_empty() {
            return None;
        }
        let mut n = (l.runq.len() / self.procs() + 1).min(l.runq.len());
        if max > 0 {
            n = n.min(max);
        }
        n = n.min(crate::runq::LOCAL_QUEUE_LEN / 2);
        let first = l.runq.pop_front();
        // SAFETY: the caller's M holds p.
        let q = unsafe { (*p).queue() };
        for _ in 1..n {
            let g = l.runq.pop_front().expect("n <= len");
            if let Err(overflow) = q.push(g.0, false) {
                // Cannot happen with n <= half the ring on a queue we just
                // found empty, but stay correct if it does.
                for item in overflow.items() {
                    l.runq.push_back(GRef(item));
                }
                break;
            }
        }
        self.runq_len.store(l.runq.len(), Ordering::Release);
        first
    }

    // ---- ready / park ------------------------------------------------------

    /// Go's `ready`: makes a waiting G runnable. A G that is not waiting
    /// (already readied, e.g. by shutdown's cancel) is left alone.
    pub(crate) fn ready(&self, g: GRef) {
        // SAFETY: Gs live as long as the Sched.
        let gr = unsafe { &*g.as_ptr() };
        if !gr.try_cas_status(Status::Waiting, Status::Runnable) {
            return;
        }
        gr.wait_reason.set(WaitReason::None);
        self.make_runnable(current_m_of(self), g, true);
    }

    /// Queues a G that the caller has just moved from Waiting to Runnable
    /// itself (a wake that won, wake.rs): the tail of `ready`.
    pub(crate) fn ready_won(&self, g: GRef) {
        // SAFETY: Gs live as long as the Sched; the caller's CAS made the
        // G ours to queue.
        unsafe { (*g.as_ptr()).wait_reason.set(WaitReason::None) };
        self.make_runnable(current_m_of(self), g, true);
    }

    // ---- spinning Ms -------------------------------------------------------

    /// Go's `wakep`: if there is an idle P and no spinning M, start one
    /// spinning M to look for the work just made.
    pub(crate) fn wakep(&self) {
        if self.npidle.load(Ordering::Acquire) == 0 {
            return;
        }
        if self.nmspinning.load(Ordering::Acquire) != 0
            || self
                .nmspinning
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        let mut l = self.lock();
        let Some(p) = self.pidle_get(&mut l) else {
            self.nmspinning.fetch_sub(1, Ordering::AcqRel);
            return;
        };
        // The P is in transit from the idle list to the M we start: startm
        // owns it until the M takes it (seed 004).
        self.startm(l, p, true);
    }

    fn pidle_get(&self, l: &mut Locked) -> Option<*mut P> {
        let p = l.pidle.pop()?;
        self.npidle.fetch_sub(1, Ordering::AcqRel);
        // SAFETY: Ps live as long as the Sched; the caller owns p now.
        unsafe { (*p).status.set_running() };
        Some(p)
    }

    /// Puts a P on the idle list, or, while the world is being stopped,
    /// hands it to the stop instead (Go's check of `gcwaiting` in handoffp
    /// and findRunnable): a P must never go idle unseen by a stop.
    fn pidle_put(&self, l: &mut Locked, p: *mut P) {
        // Idle Ps carry no exits, so that checkdead (every P idle) sees an
        // exact count. SAFETY: the caller owns p.
        if self.flush_exits(unsafe { &*p }) {
            self.finish(l);
        }
        if self.stw_wait.load(Ordering::Acquire) {
            self.stw_stop_p(l, p);
            return;
        }
        l.pidle.push(p);
        self.npidle.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts `p` as stopped for the stop-the-world in progress.
    fn stw_stop_p(&self, l: &mut Locked, p: *mut P) {
        l.stw_stopped.push(p);
        l.stw_wait_for -= 1;
        if l.stw_wait_for == 0 {
            self.stw_note.wake();
        }
    }

    /// Go's `startm`: hands `p` to an idle M, or to a new one. Called with
    /// the lock held (seed 003); a new M is counted in `mcount` before the
    /// lock drops, so checkdead never sees "no M running" while one starts.
    fn startm(&self, mut l: MutexGuard<'_, Locked>, p: *mut P, spinning: bool) {
        if let Some(m) = l.midle.pop() {
            drop(l);
            // SAFETY: m is idle (parked on its note): nobody else touches
            // nextp until it runs; Ms live as long as the Sched.
            let mr = unsafe { &*m };
            if spinning {
                // Read by the M itself after it wakes.
                mr.spinning.set(true);
            }
            mr.nextp.store(p, Ordering::Release);
            mr.park.wake();
            return;
        }
        l.mcount += 1;
        let m = self.new_m_struct();
        // SAFETY: m was just made; its thread does not exist yet.
        let mr = unsafe { &*m };
        mr.spinning.set(spinning);
        mr.nextp.store(p, Ordering::Release);
        let sched_addr = self as *const Sched as usize;
        let m_addr = m as usize;
        let spawned = std::thread::Builder::new()
            .name(format!("gort-m{}", mr.id))
            .spawn(move || {
                // SAFETY: the Sched outlives all its Ms (run joins them).
                let sched = unsafe { &*(sched_addr as *const Sched) };
                sched.mstart(m_addr as *mut M);
            });
        match spawned {
            Ok(handle) => l.threads.push(handle),
            Err(e) => fatal(&format!("cannot start an M thread: {e}")),
        }
    }

    /// Entry of a new M's thread (Go's `mstart`).
    fn mstart(&self, m: *mut M) {
        // SAFETY: this thread is m.
        let mr = unsafe { &*m };
        // Every thread that runs goroutines needs the overflow handler's
        // alternate signal stack.
        if let Err(e) = gort_stack::overflow::install() {
            fatal(&format!(
                "M{}: cannot install the stack overflow handler: {e}",
                mr.id
            ));
        }
        let p = mr.nextp.swap(ptr::null_mut(), Ordering::Acquire);
        mr.p.set(p);
        self.schedule(m);
    }

    // ---- the loop -----------------------------------------------------------

    /// Go's `schedule`: finds a runnable G and runs it, forever, until the
    /// runtime shuts down and no goroutine is left. Runs on g0.
    pub(crate) fn schedule(&self, m: *mut M) {
        // SAFETY: m is the M of this thread.
        let mr = unsafe { &*m };
        loop {
            if mr.locks.get() != 0 {
                fatal("schedule: holding locks (acquirem)");
            }
            let (g, inherit) = if !mr.lockedg.get().is_null() {
                // This M runs only its locked goroutine: wait for it.
                if !self.stop_locked_m(m) {
                    break;
                }
                // SAFETY: lockedg is non-null and runnable (stop_locked_m).
                (
                    GRef(unsafe { NonNull::new_unchecked(mr.lockedg.get()) }),
                    false,
                )
            } else {
                let Some(found) = self.find_runnable(m) else {
                    break;
                };
                found
            };
            if mr.spinning.get() {
                self.reset_spinning(mr);
            }
            // SAFETY: g is owned by this M now.
            let lockedm = unsafe { (*g.as_ptr()).lockedm.get() };
            if !lockedm.is_null() && lockedm != m {
                // Someone else's locked goroutine: give it our P and its M.
                if !self.start_locked_m(m, g) {
                    break;
                }
                continue;
            }
            self.execute(m, g, inherit);
            if mr.exit_thread.get() {
                self.exit_locked_m(mr);
                break;
            }
            if mr.p.get().is_null() && mr.lockedg.get().is_null() {
                // The goroutine left a syscall and found no P: it is queued;
                // this M has nothing to run with.
                if !self.stopm(m) {
                    break;
                }
            }
        }
        set_current(ptr::null_mut(), ptr::null_mut());
    }

    /// Go's `handoffp`: gives away a P whose M is about to block: to a new
    /// M if there is work for it, to a spinning M if nobody is looking for
    /// work, else to the idle list.
    fn handoffp(&self, p: *mut P) {
        // SAFETY: the caller owned p and gives it up here.
        let has_local = unsafe { !(*p).runq.is_empty() };
        if has_local || self.runq_len.load(Ordering::Acquire) > 0 {
            let l = self.lock();
            self.startm(l, p, false);
            return;
        }
        if self.nmspinning.load(Ordering::Acquire) + self.npidle.load(Ordering::Acquire) == 0
            && self
                .nmspinning
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            let l = self.lock();
            self.startm(l, p, true);
            return;
        }
        let mut l = self.lock();
        if !l.runq.is_empty() {
            self.startm(l, p, false);
            return;
        }
        // SAFETY: as above.
        unsafe { (*p).owned() }.stacks.flush(&self.stacks);
        self.pidle_put(&mut l, p);
    }

    /// Go's `stoplockedm`: the locked goroutine is not runnable; give the P
    /// away and sleep until `start_locked_m` hands one back with the
    /// goroutine runnable. False if the run is over.
    fn stop_locked_m(&self, m: *mut M) -> bool {
        // SAFETY: m is the M of this thread.
        let mr = unsafe { &*m };
        // The note is clear here (every sleep is followed by a clear), and
        // it is not cleared again: start_locked_m may wake us before we get
        // to sleep, since our goroutine can be readied and dequeued by
        // another M as soon as its park's unlock function ran.
        let p = mr.p.replace(ptr::null_mut());
        if !p.is_null() {
            self.handoffp(p);
        }
        let mut l = self.lock();
        l.nmidlelocked += 1;
        if let Some(dump) = self.checkdead(&l) {
            l.nmidlelocked -= 1;
            // Readies our own goroutine too; it sits on our P's queue.
            self.report_deadlock(l, mr, dump);
            return self.take_own_locked_g(mr);
        }
        drop(l);
        mr.park.sleep();
        mr.park.clear();
        // The waker (start_locked_m) took us out of nmidlelocked before it
        // handed us the P, so checkdead never sees us idle while we are
        // about to run.
        let p = mr.nextp.swap(ptr::null_mut(), Ordering::Acquire);
        if p.is_null() {
            return false;
        }
        mr.p.set(p);
        let g = mr.lockedg.get();
        // SAFETY: the locked G lives as long as the Sched.
        let status = unsafe { (*g).status() };
        if status != Status::Runnable {
            fatal(&format!(
                "stoplockedm: locked goroutine is {status:?}, not runnable"
            ));
        }
        true
    }

    /// After checkdead started shutdown from `stop_locked_m`: our locked G
    /// was readied onto our P's queue; take it back off so we can run it.
    fn take_own_locked_g(&self, mr: &M) -> bool {
        let mine = mr.lockedg.get();
        let p = mr.p.get();
        // SAFETY: our M holds p.
        let q = unsafe { (*p).queue() };
        let mut others = Vec::new();
        let mut found = false;
        while let Some((g, _)) = q.pop() {
            if g.as_ptr() == mine {
                found = true;
                break;
            }
            others.push(g);
        }
        for g in others {
            self.make_runnable(mr as *const M as *mut M, GRef(g), false);
        }
        if !found {
            // Somebody else holds it now and will hand it to us.
            let p = mr.p.replace(ptr::null_mut());
            self.handoffp(p);
            return self.stop_locked_m(mr as *const M as *mut M);
        }
        true
    }

    /// Go's `startlockedm`: `g` is locked to another M; hand it our P (with
    /// g in hand) and park this M. False if the run is over.
    fn start_locked_m(&self, m: *mut M, g: GRef) -> bool {
        // SAFETY: m is the M of this thread; g's lockedm is a live M.
        let (mr, target) = unsafe { (&*m, &*(*g.as_ptr()).lockedm.get()) };
        // The target stops counting as idle before it gets the P (Go's
        // incidlelocked(-1) in startlockedm): otherwise, once this M parks,
        // checkdead would see every M idle while the target is about to run.
        self.lock().nmidlelocked -= 1;
        let p = mr.p.replace(ptr::null_mut());
        // The P travels with the goroutine to its M; startlockedm's caller
        // owns it until the target takes it from nextp (seed 004).
        target.nextp.store(p, Ordering::Release);
        target.park.wake();
        self.stopm(m)
    }

    /// A goroutine exited while locked to this M: the thread goes with it
    /// (Go's `mexit`). M0, the thread that called `run`, cannot end; it
    /// gives up its P and waits for the end of the run instead.
    fn exit_locked_m(&self, mr: &M) {
        mr.exit_thread.set(false);
        let p = mr.p.replace(ptr::null_mut());
        if mr.spinning.replace(false) {
            self.nmspinning.fetch_sub(1, Ordering::AcqRel);
        }
        if !p.is_null() {
            self.handoffp(p);
        }
        let mut l = self.lock();
        l.mcount -= 1;
        if let Some(dump) = self.checkdead(&l) {
            // We were the last running M: report, and lend ourselves to the
            // shutdown (with a P) before leaving.
            l.mcount += 1;
            self.report_deadlock(l, mr, dump);
            self.schedule(mr as *const M as *mut M);
        }
    }

    /// Waits until the run is over (for M0 after its loop ended early).
    pub(crate) fn wait_done(&self) {
        self.done.sleep();
    }

    /// Go's `resetspinning`: the last spinner to find work wakes another.
    fn reset_spinning(&self, mr: &M) {
        mr.spinning.set(false);
        let prev = self.nmspinning.fetch_sub(1, Ordering::AcqRel);
        if prev == 0 {
            fatal("resetspinning: negative nmspinning");
        }
        if prev == 1 {
            self.wakep();
        }
    }

    /// Go's `findRunnable`: local queue (global every 61 ticks), global
    /// queue, stealing; otherwise gives up the P and parks the M. Returns
    /// None when the M should exit (shutdown, no goroutines left).
    fn find_runnable(&self, m: *mut M) -> Option<(GRef, bool)> {
        // SAFETY: m is the M of this thread.
        let mr = unsafe { &*m };
        'top: loop {
            let p = mr.p.get();
            if p.is_null() {
                fatal("findRunnable: M without a P");
            }
            if self.stw_wait.load(Ordering::Acquire) {
                // Go's gcstopm: give the P to the stop, then idle.
                if mr.spinning.replace(false) {
                    self.nmspinning.fetch_sub(1, Ordering::AcqRel);
                }
                mr.p.set(ptr::null_mut());
                self.stw_stop_p(&mut self.lock(), p);
                if !self.stopm(m) {
                    return None;
                }
                continue 'top;
            }
            // SAFETY: our M holds p.
            let owned = unsafe { (*p).owned() };
            if self.shutdown.load(Ordering::Acquire)
                && self.ngoroutines.load(Ordering::Acquire) == 0
            {
                self.release_for_exit(mr);
                return None;
            }
            // Fairness: every 61st tick, look at the global queue first.
            if owned.schedtick % 61 == 0 && self.runq_len.load(Ordering::Acquire) > 0 {
                let mut l = self.lock();
                if let Some(g) = self.global_get(&mut l, p, 1) {
                    return Some((g, false));
                }
            }
            // SAFETY: our M holds p.
            if let Some((g, inherit)) = unsafe { (*p).queue() }.pop() {
                return Some((GRef(g), inherit));
            }
            if self.runq_len.load(Ordering::Acquire) > 0 {
                let mut l = self.lock();
                if let Some(g) = self.global_get(&mut l, p, 0) {
                    return Some((g, false));
                }
            }
            // Spin: steal, but keep the number of spinning Ms at most half
            // the busy Ps, so that idle Ms do not burn CPU (Go's limit).
            let busy = self
                .procs()
                .saturating_sub(self.npidle.load(Ordering::Acquire));
            if mr.spinning.get() || 2 * self.nmspinning.load(Ordering::Acquire) < busy {
                if !mr.spinning.get() {
                    mr.spinning.set(true);
                    self.nmspinning.fetch_add(1, Ordering::AcqRel);
                }
                if let Some(g) = self.steal_work(mr, p) {
                    return Some((g, false));
                }
            }
            // Nothing found: give up the P (Go's "delicate dance").
            let mut l = self.lock();
            if let Some(g) = self.global_get(&mut l, p, 0) {
                return Some((g, false));
            }
            mr.p.set(ptr::null_mut());
            self.pidle_put(&mut l, p);
            drop(l);
            let was_spinning = mr.spinning.get();
            if was_spinning {
                mr.spinning.set(false);
                if self.nmspinning.fetch_sub(1, Ordering::AcqRel) == 0 {
                    fatal("findRunnable: negative nmspinning");
                }
                // Work may have been queued after we looked but before we
                // stopped counting as spinning: whoever queued it saw us
                // spinning and did not wake anyone. Look again.
                let victim_has_work = self.allp().any(|pp| !pp.runq.is_empty());
                if victim_has_work || self.runq_len.load(Ordering::Acquire) > 0 {
                    let mut l = self.lock();
                    if let Some(p2) = self.pidle_get(&mut l) {
                        drop(l);
                        mr.p.set(p2);
                        mr.spinning.set(true);
                        self.nmspinning.fetch_add(1, Ordering::AcqRel);
                        continue 'top;
                    }
                }
            }
            if !self.stopm(m) {
                return None;
            }
        }
    }

    /// Steals from the other Ps in random order, four rounds, the last one
    /// also taking `runnext` (Go's `stealWork`).
    fn steal_work(&self, mr: &M, p: *mut P) -> Option<GRef> {
        let n = self.procs();
        if n == 1 {
            return None;
        }
        // SAFETY: our M holds p.
        let mine = unsafe { (*p).queue() };
        for round in 0..4 {
            let last = round == 3;
            let start = mr.fastrand() as usize % n;
            for i in 0..n {
                let victim = self.p((start + i) % n);
                if ptr::eq(victim, p) || victim.runq.is_empty() {
                    continue;
                }
                if let Some(g) = mine.steal_from(&victim.runq, last, &mut std::thread::yield_now) {
                    mr.counters.bump_steal();
                    return Some(GRef(g));
                }
            }
        }
        None
    }

    /// Go's `stopm`: parks this M (it has no P) until `startm` hands it
    /// one. Returns false if the M should exit instead.
    fn stopm(&self, m: *mut M) -> bool {
        // SAFETY: m is the M of this thread.
        let mr = unsafe { &*m };
        let mut l = self.lock();
        if self.shutdown.load(Ordering::Acquire) && self.ngoroutines.load(Ordering::Acquire) == 0 {
            return false;
        }
        l.midle.push(m);
        if let Some(dump) = self.checkdead(&l) {
            // Every M is idle and every goroutine blocked: report, then
            // unwind the goroutines so that `run` can return.
            l.midle.pop();
            self.report_deadlock(l, mr, dump);
            return true;
        }
        drop(l);
        // Go's mPark: sleep, then clear, so the note is always clear when
        // an M goes to sleep and a wakeup is never lost.
        mr.park.sleep();
        mr.park.clear();
        let p = mr.nextp.swap(ptr::null_mut(), Ordering::Acquire);
        if p.is_null() {
            // Woken without a P: shutdown with no goroutines left.
            return false;
        }
        mr.p.set(p);
        true
    }

    fn release_for_exit(&self, mr: &M) {
        let p = mr.p.replace(ptr::null_mut());
        if !p.is_null() {
            let mut l = self.lock();
            // SAFETY: we hold p until it goes back to the idle list here.
            let owned = unsafe { (*p).owned() };
            owned.stacks.flush(&self.stacks);
            self.pidle_put(&mut l, p);
        }
        if mr.spinning.replace(false) {
            self.nmspinning.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Go's `checkdead`, called with the lock held when an M goes idle:
    /// if every M is idle (an M being started counts as running, seed 003)
    /// and goroutines exist, nothing can ever wake them.
    fn checkdead(&self, l: &Locked) -> Option<String> {
        if self.external_wakers || self.shutdown.load(Ordering::Acquire) {
            return None;
        }
        if l.midle.len() as isize + l.nmidlelocked < l.mcount as isize {
            return None;
        }
        if self.ngoroutines.load(Ordering::Acquire) == 0 || !l.runq.is_empty() {
            return None;
        }
        // A pending timer will wake a goroutine. (A timer whose waiter was
        // woken otherwise stays until it fires; sysmon re-checks then.)
        {
            let timers = self.timers.lock().unwrap_or_else(|e| e.into_inner());
            if !timers.is_empty() || self.timers_firing.load(Ordering::Acquire) != 0 {
                return None;
            }
        }
        if self.allp().any(|p| !p.runq.is_empty()) {
            return None;
        }
        Some(self.dump())
    }

    /// checkdead fired on this M (which counts itself as running again):
    /// it takes an idle P, records the deadlock and starts the shutdown that
    /// unwinds every goroutine, which this M then runs.
    fn report_deadlock(&self, mut l: MutexGuard<'_, Locked>, mr: &M, dump: String) {
        let p = self
            .pidle_get(&mut l)
            .expect("all Ps are idle when all Ms are");
        drop(l);
        mr.p.set(p);
        self.set_ending(Ending::Deadlock(dump));
        self.begin_shutdown();
    }

    /// One line per live goroutine: id, state, wait reason.
    pub(crate) fn dump(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let allgs = self.allgs.lock().unwrap_or_else(|e| e.into_inner());
        for g in allgs.iter() {
            let status = g.status();
            if status == Status::Dead {
                continue;
            }
            let _ = write!(out, "goroutine {} [{:?}", g.id.get(), status);
            if status == Status::Waiting {
                let _ = write!(out, ": {}", g.wait_reason.get());
            }
            let _ = writeln!(out, "]{}", if g.is_main.get() { " (main)" } else { "" });
        }
        out
    }

    fn set_ending(&self, ending: Ending) {
        let mut e = self.ending.lock().unwrap_or_else(|e| e.into_inner());
        if e.is_none() {
            *e = Some(ending);
        }
    }

    /// Starts shutdown: every parked goroutine is made runnable with its
    /// cancel flag set, so that its park unwinds it (destructors run).
    fn begin_shutdown(&self) {
        if self.shutdown.swap(true, Ordering::AcqRel) {
            return;
        }
        let waiting: Vec<GRef> = {
            let allgs = self.allgs.lock().unwrap_or_else(|e| e.into_inner());
            allgs
                .iter()
                .filter(|g| g.status() == Status::Waiting)
                .map(|g| {
                    g.cancel.store(true, Ordering::Release);
                    // SAFETY: boxed G, non-null.
                    GRef(unsafe { NonNull::new_unchecked(&**g as *const G as *mut G) })
                })
                .collect()
        };
        for g in waiting {
            self.ready(g);
        }
        // Goroutines that park from now on see `shutdown` and are unwound
        // at once (see `park`).
    }

    /// Wakes every idle M so that it notices the end of the run.
    fn wake_all_idle(&self) {
        let idle: Vec<*mut M> = std::mem::take(&mut self.lock().midle);
        for m in idle {
            // SAFETY: idle Ms are parked on their notes; nextp stays null so
            // they exit.
            unsafe { (*m).park.wake() };
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Joins the threads of every M but M0 (called by `run` on M0 after its
    /// own schedule loop ended).
    pub(crate) fn join_threads(&self) {
        loop {
            self.wake_all_idle();
            let threads = std::mem::take(&mut self.lock().threads);
            if threads.is_empty() {
                break;
            }
            for t in threads {
                let _ = t.join();
            }
        }
    }

    /// Go's `stopTheWorld` + `procresize` + `startTheWorld`, for
    /// `set_procs`. Runs on the calling goroutine's M, which keeps its P
    /// throughout; every other P is stopped first (idle ones at once,
    /// running ones when their goroutine next parks or yields: there is no
    /// preemption). Returns the previous number of Ps.
    pub(crate) fn set_procs(&self, m: *mut M, n: usize) -> usize {
        // SAFETY: m is the caller's M, holding a P.
        let mr = unsafe { &*m };
        let mine = mr.p.get();
        let old = self.procs();
        let mut l = self.lock();
        // A stop that completed without waiting left the note woken: rearm
        // it before anything can stop a P (stw_stop_p wakes it under this
        // lock), or the wait below would return before the Ps stop.
        self.stw_note.clear();
        self.stw_wait.store(true, Ordering::SeqCst);
        // Pairs with enter_syscall's SYSCALL store and stw_wait load: an M
        // entering a syscall from now on sees the stop, and one that entered
        // before has its SYSCALL visible to the scan below.
        crate::membarrier::heavy_fence();
        l.stw_wait_for = old - 1;
        while let Some(p) = self.pidle_get(&mut l) {
            self.stw_stop_p(&mut l, p);
        }
        // Ps of Ms in syscalls are stopped here, not by their Ms (which may
        // stay in the syscall for long): Go's stopTheWorld does the same.
        for i in 0..old {
            let p = self.p(i);
            if p.status.try_stop() {
                self.stw_stop_p(&mut l, p as *const P as *mut P);
            }
        }
        let wait = l.stw_wait_for > 0;
        drop(l);
        if wait {
            self.stw_note.sleep();
            self.stw_note.clear();
        }
        // The world is stopped: every P but ours is in stw_stopped.
        let mut l = self.lock();
        let mut ps: Vec<*mut P> = std::mem::take(&mut l.stw_stopped);
        ps.push(mine);
        for &p in &ps {
            // SAFETY: every P in ps is stopped and owned by us now.
            unsafe { (*p).status.set_running() };
        }
        if ps.len() != old {
            fatal(&format!("stop-the-world: {} of {old} Ps stopped", ps.len()));
        }
        {
            let mut pstore = self.pstore.lock().unwrap_or_else(|e| e.into_inner());
            for i in old..n {
                if pstore.len() <= i {
                    pstore.push(P::new(i));
                }
                let p = &*pstore[i] as *const P as *mut P;
                self.allp[i].store(p, Ordering::Release);
                ps.push(p);
            }
        }
        // Ps beyond the new count are destroyed: their goroutines go to
        // the global queue, their caches to the shared pools.
        for &p in ps.iter().filter(|&&p| {
            // SAFETY: every P in ps is stopped and owned by us now.
            unsafe { (*p).id >= n }
        }) {
            // SAFETY: as above.
            let pr = unsafe { &*p };
            // SAFETY: as above.
            unsafe { pr.queue() }.drain(|g| l.runq.push_back(GRef(g)));
            // SAFETY: as above.
            let owned = unsafe { pr.owned() };
            owned.stacks.flush(&self.stacks);
            l.gfree.append(&mut owned.gfree);
            l.cells.append(&mut owned.cells);
            // The caller is alive, so this cannot end the run.
            if self.flush_exits(pr) {
                self.finish(&mut l);
            }
        }
        self.runq_len.store(l.runq.len(), Ordering::Release);
        self.nprocs.store(n, Ordering::Release);
        // SAFETY: as above.
        let mine = if unsafe { (*mine).id } >= n {
            self.p(0) as *const P as *mut P
        } else {
            mine
        };
        mr.p.set(mine);
        self.stw_wait.store(false, Ordering::Release);
        let mut runnable = Vec::new();
        for &p in &ps {
            // SAFETY: as above.
            let pr = unsafe { &*p };
            if pr.id >= n || p == mine {
                continue;
            }
            if pr.runq.is_empty() {
                self.pidle_put(&mut l, p);
            } else {
                runnable.push(p);
            }
        }
        drop(l);
        for p in runnable {
            let l = self.lock();
            self.startm(l, p, false);
        }
        self.wakep();
        old
    }

    /// Serializes stop-the-worlds; a goroutine waiting for another one
    /// yields, so that its P can be stopped by the one in progress.
    pub(crate) fn try_begin_stw(&self) -> bool {
        self.stw_active
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn end_stw(&self) {
        self.stw_active.store(false, Ordering::Release);
    }

    fn now_nanos(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// Go's `entersyscall`: the goroutine keeps its M but its P becomes
    /// retakeable (status SYSCALL) by sysmon or a stop-the-world.
    ///
    /// The fast path is plain stores and one load: no clock read (sysmon
    /// times syscalls by watching `syscalltick`) and no read-modify-write
    /// on shared memory (see `watch_syscall` for how sysmon still never
    /// misses one).
    #[inline(always)]
    pub(crate) fn enter_syscall(&self, g: &G) {
        let m = g.m.get();
        // SAFETY: g runs on m (read after its last switch).
        let mr = unsafe { &*m };
        let p = mr.p.replace(ptr::null_mut());
        if p.is_null() {
            fatal("entersyscall: goroutine's M has no P");
        }
        mr.oldp.set(p);
        // Running -> Syscall: only the goroutine itself moves a running G.
        g.owner_set_status(Status::Running, Status::Syscall);
        // SAFETY: we hold p until enter_syscall publishes it.
        let pr = unsafe { &*p };
        let tick = pr.syscalltick.load(Ordering::Relaxed).wrapping_add(1);
        pr.syscalltick.store(tick, Ordering::Relaxed);
        pr.status.enter_syscall();
        self.watch_syscall();
        if self.stw_wait.load(Ordering::Relaxed) && pr.status.try_stop() {
            // A stop is pending: give it the P now (Go's entersyscall_gcwait).
            let mut l = self.lock();
            self.stw_stop_p(&mut l, p);
        }
    }

    /// After a P went into SYSCALL: wakes sysmon if it is sleeping long.
    ///
    /// A Dekker handshake with sysmon's `sysmon_polling` store and P scan,
    /// made asymmetric: this side pays a compiler fence only, and sysmon,
    /// before each long sleep, runs `membarrier`, which executes a full
    /// barrier on every thread of the process. Either our SYSCALL store is
    /// visible to sysmon's scan after its barrier, or our load below comes
    /// after the barrier and sees `sysmon_polling` false. Where the kernel
    /// lacks `membarrier` (or qemu-user does not pass it on) this side uses
    /// a full fence instead.
    #[inline]
    fn watch_syscall(&self) {
        crate::membarrier::light_fence();
        if !self.sysmon_polling.load(Ordering::Relaxed) {
            self.sysmon_polling.store(true, Ordering::Relaxed);
            self.sysmon_note.wake();
        }
    }

    /// Go's `exitsyscall`: take the old P back with one CAS if nobody took
    /// it (fast path), else an idle P, else queue the goroutine and park
    /// this M (slow path, on g0).
    #[inline]
    pub(crate) fn exit_syscall(&self, g: &G) {
        let m = g.m.get();
        // SAFETY: a goroutine in a syscall has not switched: still on m.
        let mr = unsafe { &*m };
        if self.exit_syscall_fast(mr) {
            g.owner_set_status(Status::Syscall, Status::Running);
            return;
        }
        let mut req = Request::ExitSyscall;
        switch_to_g0(g as *const G as *mut G, &mut req);
    }

    /// The part of `exitsyscall` that needs no switch: the old P back with
    /// one CAS, else an idle P. True when the M holds a P again.
    #[inline]
    fn exit_syscall_fast(&self, mr: &M) -> bool {
        let oldp = mr.oldp.replace(ptr::null_mut());
        // SAFETY: Ps live as long as the Sched.
        if !oldp.is_null() && unsafe { (*oldp).status.try_exit_syscall() } {
            mr.p.set(oldp);
            return true;
        }
        self.exit_syscall_idle_p(mr)
    }

    #[cold]
    #[inline(never)]
    fn exit_syscall_idle_p(&self, mr: &M) -> bool {
        let idle = {
            let mut l = self.lock();
            self.pidle_get(&mut l)
        };
        match idle {
            Some(p) => {
                mr.p.set(p);
                true
            }
            None => false,
        }
    }

    /// Go's `retake`: hands off the P of every M whose syscall is long
    /// (see `retake.rs`: watched for 20 µs, or the P's next syscall after
    /// a long one), unless nothing is waiting for the P (no local work and
    /// spare Ms or Ps to take new work) and sysmon has watched it for less
    /// than 10 ms. `now` is this pass, `prev` the previous one. Returns
    /// whether any P is in a syscall, and when the next syscall not yet
    /// long enough becomes due (for sysmon's sleep).
    fn retake(
        &self,
        now: u64,
        prev: u64,
        watch: &mut Vec<crate::retake::Watch>,
    ) -> (bool, Option<u64>) {
        let mut any = false;
        let mut next_due: Option<u64> = None;
        for p in self.allp() {
            if watch.len() <= p.id {
                watch.resize(p.id + 1, Default::default());
            }
            let w = &mut watch[p.id];
            if !p.status.in_syscall() {
                w.clear();
                continue;
            }
            any = true;
            let seen = w.observe(p.syscalltick.load(Ordering::Relaxed), now, prev);
            let spare =
                self.nmspinning.load(Ordering::Acquire) + self.npidle.load(Ordering::Acquire) > 0;
            let waiting = !p.runq.is_empty() || self.runq_len.load(Ordering::Acquire) > 0;
            if !waiting && spare && seen.watched < 10_000_000 {
                continue;
            }
            if seen.due > now {
                next_due = Some(next_due.map_or(seen.due, |d| d.min(seen.due)));
                continue;
            }
            if p.status.try_retake() {
                w.retaken();
                self.handoffs.fetch_add(1, Ordering::Relaxed);
                // SAFETY: winning the retake made p ours.
                p.status.set_running();
                self.handoffp(p as *const P as *mut P);
            }
        }
        (any, next_due)
    }

    /// Sum of every P's `syscalltick`: changes when any syscall started.
    fn syscall_ticks(&self) -> u32 {
        self.allp().fold(0u32, |a, p| {
            a.wrapping_add(p.syscalltick.load(Ordering::Relaxed))
        })
    }

    /// Arms a deadline for a parked goroutine's waker (park_with).
    pub(crate) fn add_timer(&self, when: Instant, waker: Waker) {
        let seq = self.timer_seq.fetch_add(1, Ordering::Relaxed);
        let earliest = {
            let mut t = self.timers.lock().unwrap_or_else(|e| e.into_inner());
            t.push(Reverse(TimerEntry { when, seq, waker }));
            t.peek().is_some_and(|Reverse(e)| e.seq == seq)
        };
        if earliest {
            // sysmon may be sleeping until a later deadline, or forever.
            self.sysmon_note.wake();
        }
    }

    /// Go's `sysmon`: a thread without a P. Fires timers when they are due,
    /// retakes the Ps of Ms stuck in syscalls (`retake`), and sleeps until
    /// the next timer, poll or retake; with no timer pending and no syscall
    /// made for 10 ms it sleeps until a timer is added or a syscall starts,
    /// so an idle runtime costs no CPU.
    pub(crate) fn sysmon(&self) {
        // Linux delays a timed sleep by up to the thread's timer slack, 50
        // µs by default: that turned the 25 µs polls below into ~75 µs.
        // sysmon is the one thread whose wakeups must be on time.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        // SAFETY: PR_SET_TIMERSLACK takes a value in ns and affects only
        // the calling thread; no pointers.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong);
        }
        // Per P: the syscall in flight and when sysmon first saw it.
        let mut watch: Vec<crate::retake::Watch> = Vec::new();
        let mut last_ticks = self.syscall_ticks();
        let mut last_activity = 0u64;
        let mut prev_pass = 0u64;
        loop {
            if self.finished.load(Ordering::Acquire) {
                return;
            }
            let now = Instant::now();
            let mut expired = Vec::new();
            let next = {
                let mut t = self.timers.lock().unwrap_or_else(|e| e.into_inner());
                while t.peek().is_some_and(|Reverse(e)| e.when <= now) {
                    expired.push(t.pop().expect("peeked").0.waker);
                }
                self.timers_firing
                    .fetch_add(expired.len(), Ordering::AcqRel);
                t.peek().map(|Reverse(e)| e.when)
            };
            let fired = !expired.is_empty();
            for waker in expired {
                waker.time_out();
                self.timers_firing.fetch_sub(1, Ordering::AcqRel);
            }
            if fired {
                // Timers that fired for waiters already woken may have
                // been all that kept checkdead quiet.
                self.sysmon_checkdead();
            }
            let now_ns = self.now_nanos();
            let (in_syscall, due) = self.retake(now_ns, prev_pass, &mut watch);
            prev_pass = now_ns;
            let ticks = self.syscall_ticks();
            if ticks != last_ticks {
                last_ticks = ticks;
                last_activity = now_ns;
            }
            // Poll every 25 µs while a P is in a syscall or syscalls were
            // made in the last 10 ms, and wake exactly when a syscall seen
            // in flight becomes long enough to retake, so a stuck syscall
            // loses its P within a poll and 20 µs every time (Go backs off
            // to 10 ms sleeps here, which is what makes its handoffs after
            // a quiet spell take up to 20 ms). Otherwise sleep until the next
            // timer: an idle runtime costs nothing.
            let mut poll = in_syscall || now_ns.saturating_sub(last_activity) < 10_000_000;
            if !poll {
                self.sysmon_polling.store(false, Ordering::Relaxed);
                // Every thread's SYSCALL stores before this point are now
                // visible, and every later syscall entry sees `false` above
                // and wakes us (see `watch_syscall`).
                crate::membarrier::heavy_fence();
                poll = self.allp().any(|p| p.status.in_syscall());
            }
            if poll {
                self.sysmon_polling.store(true, Ordering::Relaxed);
            }
            let until_timer = next.map(|when| when.saturating_duration_since(Instant::now()));
            match (poll, until_timer) {
                (true, t) => {
                    let mut d = Duration::from_micros(25);
                    if let Some(due) = due {
                        d = d.min(Duration::from_nanos(due.saturating_sub(self.now_nanos())));
                    }
                    if let Some(t) = t {
                        d = d.min(t);
                    }
                    if !d.is_zero() {
                        self.sysmon_note.sleep_timeout(d);
                    }
                }
                (false, Some(t)) => {
                    if !t.is_zero() {
                        self.sysmon_note.sleep_timeout(t);
                    }
                }
                (false, None) => self.sysmon_note.sleep(),
            }
            self.sysmon_note.clear();
        }
    }

    fn sysmon_checkdead(&self) {
        let l = self.lock();
        if let Some(dump) = self.checkdead(&l) {
            drop(l);
            self.set_ending(Ending::Deadlock(dump));
            // Readies every waiting goroutine through the global queue and
            // wakes an idle M to run them (sysmon has no P).
            self.begin_shutdown();
        }
    }

    /// Go's `execute`: runs g on this M until it comes back to g0, then acts
    /// on its request.
    fn execute(&self, m: *mut M, g: GRef, inherit: bool) {
        // SAFETY: m is this thread's M and holds a P.
        let mr = unsafe { &*m };
        let mut inherit = inherit;
        let mut g = g;
        loop {
            // SAFETY: g came off a run queue: this M owns it now.
            let gr = unsafe { &*g.as_ptr() };
            if !inherit {
                // SAFETY: our M holds its P.
                let owned = unsafe { (*mr.p.get()).owned() };
                owned.schedtick = owned.schedtick.wrapping_add(1);
            }
            // Runnable -> Running: the G is ours (off a queue, or handed
            // over); nobody else moves a runnable G.
            gr.owner_set_status(Status::Runnable, Status::Running);
            mr.counters.bump_switch();
            // SAFETY: g is ours and about to run on this thread; g0's state
            // is reinstalled below before g0 runs on.
            let g0_unwind = unsafe { enter_g(m, gr) };
            // SAFETY: a runnable G's ctx holds its suspended context; the
            // switch hands g0's context to the goroutine, which keeps it in
            // `m.g0`.
            let (gctx, req) = unsafe {
                let mut ctx = (*gr.ctx.get()).take();
                if ctx.is_empty() {
                    ctx = first_context(gr);
                }
                gort_arch::switch(ctx, m as usize)
            };
            // Back on g0. Save the goroutine before anything else can see it.
            // SAFETY: the G is suspended; we are its owner; g0_unwind is
            // this g0's own state.
            unsafe {
                *gr.ctx.get() = gctx;
                leave_g(m, m, g0_unwind);
            }
            // SAFETY: the goroutine passed a pointer to a Request on its own
            // stack, which stays valid while it is suspended; we read it
            // before making the G runnable again.
            let req = unsafe { &mut *(req as *mut Request<'_>) };
            match self.handle_request(m, g, req) {
                Some(next) => {
                    g = next;
                    inherit = true;
                }
                None => return,
            }
        }
    }

    /// The g0 side of a goroutine's switch to g0 with `req` (the tail of
    /// Go's `mcall` functions: park_m, gosched_m, goexit0, exitsyscall0):
    /// `g` is suspended and its context saved. Returns the goroutine this
    /// M runs next without going through `schedule` (inheriting the time
    /// slice), or None to go back to the caller.
    fn handle_request(&self, m: *mut M, g: GRef, req: &mut Request<'_>) -> Option<GRef> {
        // SAFETY: m is this thread's M; g is suspended and ours.
        let (mr, gr) = unsafe { (&*m, &*g.as_ptr()) };
        match req {
            Request::Yield => {
                gr.owner_set_status(Status::Running, Status::Runnable);
                // Unlike Go's Gosched (global queue), yield goes to the
                // tail of the local queue: same fairness on this P,
                // stealable by others, and no lock.
                self.make_runnable(m, g, false);
                None
            }
            Request::Park(unlock) => {
                gr.owner_set_status(Status::Running, Status::Waiting);
                if unlock(g) {
                    // Usually the park follows a wake into runnext (a
                    // channel partner, a joiner): run it from here.
                    return self.next_after_park(mr);
                }
                // The park was aborted: run it again at once, like Go's
                // park_m does when waitunlockf returns false; unless a
                // `ready` (shutdown's) got it first and queued it.
                if !gr.try_cas_status(Status::Waiting, Status::Runnable) {
                    return None;
                }
                gr.wait_reason.set(WaitReason::None);
                Some(g)
            }
            Request::Exit => {
                self.gdestroy(mr, gr);
                None
            }
            Request::CallbackReturn => {
                // Back into syscall state, on the way back to C: the
                // callback's own loop (Sched::callback_loop) takes over.
                mr.callback_returned.set(true);
                None
            }
            Request::ExitSyscall => {
                gr.owner_set_status(Status::Syscall, Status::Runnable);
                let mut l = self.lock();
                if let Some(p) = self.pidle_get(&mut l) {
                    drop(l);
                    // SAFETY: p came off the idle list: ours now.
                    unsafe { (*p).status.set_running() };
                    mr.p.set(p);
                    return Some(g);
                }
                l.runq.push_back(g);
                self.runq_len.store(l.runq.len(), Ordering::Release);
                drop(l);
                self.wakep();
                None
            }
        }
    }

    /// After a park, the goroutine in this P's `runnext` if the scheduler
    /// loop has nothing else to do first: what `schedule` would pick
    /// (findRunnable takes runnext first, inheriting the time slice), minus
    /// its checks. None (back to `schedule`) when this M is locked to a
    /// goroutine, a stop-the-world waits, or runnext is empty; a popped G
    /// locked to another M goes back for `schedule` to hand over.
    #[inline]
    fn next_after_park(&self, mr: &M) -> Option<GRef> {
        if !mr.lockedg.get().is_null() || self.stw_wait.load(Ordering::Acquire) {
            return None;
        }
        let p = mr.p.get();
        // SAFETY: our M holds p (a parking goroutine keeps its M's P).
        let q = unsafe { (*p).queue() };
        let next = if self.procs() == 1 {
            // SAFETY: ours is the only P, so no M can steal, and the count
            // of Ps changes only in a stop-the-world, which would have to
            // stop our P first: not while we hold it here.
            unsafe { q.pop_runnext_unshared() }
        } else {
            q.pop_runnext()
        };
        let next = GRef(next?);
        // SAFETY: popped: the G is ours.
        if unsafe { !(*next.as_ptr()).lockedm.get().is_null() } {
            self.make_runnable(mr as *const M as *mut M, next, true);
            return None;
        }
        Some(next)
    }

    /// Go's `goexit0`: the G is dead; keep it (and its stack) for reuse.
    fn gdestroy(&self, mr: &M, gr: &G) {
        gr.owner_set_status(Status::Running, Status::Dead);
        let is_main = gr.is_main.replace(false);
        let p = mr.p.get();
        // SAFETY: our M holds p.
        let owned = unsafe { (*p).owned() };
        let gp = gr as *const G as *mut G;
        owned.gfree.push(gp);
        if owned.gfree.len() >= GFREE_LOCAL_MAX {
            // Go's gfput: move half to the global list under one lock
            // acquisition, not one per goroutine.
            let at = owned.gfree.len() - GFREE_BATCH;
            self.lock().gfree.extend(owned.gfree.drain(at..));
        }
        if !gr.lockedm.get().is_null() {
            if mr.locked_int.get() != 0 {
                fatal("a goroutine exited while locked by the runtime (internal lock_os_thread)");
            }
            // Exiting while locked: the thread exits with the goroutine.
            gr.lockedm.set(ptr::null_mut());
            mr.lockedg.set(ptr::null_mut());
            mr.locked_ext.set(0);
            mr.exit_thread.set(true);
        }
        // SAFETY: our M holds p (so only we write its credit).
        let pr = unsafe { &*p };
        let credit = pr.credit.load(Ordering::Relaxed) + 1;
        pr.credit.store(credit, Ordering::Release);
        // The main goroutine starts the shutdown before its exit is
        // subtracted (main's fix for a rare hang): whichever flush brings
        // the count to 0 must see `shutdown`, or nobody wakes `done`.
        if is_main {
            self.set_ending(Ending::MainExited);
            self.begin_shutdown();
        }
        let finished = if self.shutdown.load(Ordering::Acquire) {
            self.flush_exits(pr)
        } else if credit >= 2 * COUNT_BATCH {
            self.flush_credit(pr, COUNT_BATCH)
        } else {
            false
        };
        if finished {
            self.finish(&mut self.lock());
        }
    }
}

impl Sched {
    // ---- cgo: extra Ms and callbacks (driven by crate::cgo) ---------------

    /// An extra M for a thread the runtime did not create (Go's `needm`
    /// and `oneNewExtraM`): from the pool, else a new one with its own G
    /// and goroutine stack. No thread is started: the caller's thread is
    /// the M. It counts in `mcount` while bound, so checkdead sees it as
    /// able to wake goroutines.
    pub(crate) fn bind_extra_m(&self) -> Result<*mut M, gort_stack::StackError> {
        let pooled = self
            .extra_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let m = match pooled {
            Some(m) => m,
            None => {
                let stack = self.stacks.get()?;
                let mut g = Box::new(G::new(self));
                *g.stack.get_mut() = Some(stack);
                // One id for the life of the binding, as Go's extra-M G.
                g.id.set(self.goid.fetch_add(1, Ordering::Relaxed) + 1);
                let gp: *mut G = &mut *g;
                self.allgs.lock().unwrap_or_else(|e| e.into_inner()).push(g);
                let mut allm = self.allm.lock().unwrap_or_else(|e| e.into_inner());
                let mut m = Box::new(M::new(allm.len() as u64, self));
                m.extra = true;
                m.extra_g = gp;
                let mp: *mut M = &mut *m;
                allm.push(m);
                mp
            }
        };
        self.lock().mcount += 1;
        Ok(m)
    }

    /// The bound thread exits (Go's `dropm` at thread exit): the M goes
    /// back to the pool, and a P it left in syscall state is handed off.
    pub(crate) fn unbind_extra_m(&self, m: *mut M) {
        // SAFETY: m is an extra M bound to the calling thread, not in a
        // callback (its thread is exiting).
        let mr = unsafe { &*m };
        let oldp = mr.oldp.replace(ptr::null_mut());
        // SAFETY: Ps live as long as the Sched.
        if !oldp.is_null() && unsafe { (*oldp).status.try_retake() } {
            // SAFETY: winning the retake made the P ours.
            unsafe { (*oldp).status.set_running() };
            self.handoffp(oldp);
        }
        self.lock().mcount -= 1;
        self.extra_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(m);
    }

    /// The scheduling side of a callback from C (Go's `cgocallbackg` up to
    /// the body, and its scheduling while the body runs). Runs on this
    /// thread's system stack, below the C frames: `m` is this thread's M,
    /// `g` the goroutine that runs the body (the one that called into C,
    /// or the extra M's G), in syscall state; `body` is the body's fresh
    /// context on g's stack. Acts as g0 for `m` until the body is done:
    /// g is locked to m first (seed 000: leaving syscall state must not
    /// move it), gets a P (its old one, an idle one, or by queueing and
    /// waiting for an M with a P to hand both over), runs, and is run again
    /// here whenever it parks or yields. Returns when the body has
    /// finished and g is back in syscall state with `incgo` set and the
    /// thread lock dropped (in that order, by g itself).
    ///
    /// The fast path, taken when the M gets its P back with one CAS and
    /// the body does not park: one switch to the body and one back, with
    /// none of `execute`'s bookkeeping. The caller has made g the running
    /// goroutine of this thread for it (current G and M, unwind state,
    /// running stack); they stay so. Returns false then. Otherwise (no P
    /// at once, or the body switched to g0 for anything but its return)
    /// this frame schedules the long way, as g0 does, and returns true:
    /// the thread's current goroutine, unwind state and running stack are
    /// g0's then, and the caller puts back what it needs.
    ///
    /// # Safety
    /// As above; `m` and `g` belong to this Sched and to this thread now.
    pub(crate) unsafe fn callback_loop(&self, m: *mut M, g: *mut G, body: Context) -> bool {
        // SAFETY: the caller's contract.
        let (mr, gr) = unsafe { (&*m, &*g) };
        crate::runtime::lock_m(m, g);
        gr.m.set(m);
        if !self.exit_syscall_fast(mr) {
            // SAFETY: forwarded.
            unsafe { self.callback_wait_for_p(m, g, body) };
            self.execute(m, GRef(NonNull::from(gr)), true);
            self.callback_schedule(m, g);
            return true;
        }
        // Syscall -> Running: only the goroutine's own M moves it (it is
        // in syscall state on this M, and locked to it).
        gr.owner_set_status(Status::Syscall, Status::Running);
        mr.incgo.store(false, Ordering::Relaxed);
        mr.ncallback
            .store(mr.ncallback.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        // SAFETY: `body` is the body's fresh context; it receives this
        // frame's context as its g0 and switches back with a request.
        let (gctx, req) = unsafe { gort_arch::switch(body, m as usize) };
        // SAFETY: the goroutine passed a pointer to a Request on its own
        // stack, valid while it is suspended.
        let req = unsafe { &mut *(req as *mut Request<'_>) };
        if matches!(req, Request::CallbackReturn) {
            // The body's context is abandoned: it switched away for good.
            let _abandoned = gctx;
            return false;
        }
        // The body parked, yielded or waits for a P: from here on this
        // frame is g0 the long way, as in `execute` after its switch.
        // SAFETY: g is suspended; its context slot is ours. The thread's
        // own unwind state is g0's (the caller reinstalls g's after).
        unsafe {
            *gr.ctx.get() = gctx;
            leave_g(m, m, ptr::null());
        }
        let gref = GRef(NonNull::from(gr));
        if let Some(next) = self.handle_request(m, gref, req) {
            self.execute(m, next, true);
        }
        self.callback_schedule(m, g);
        true
    }

    /// A callback's goroutine found no P at once (its old one was taken):
    /// queue it as Go's exitsyscall0 does for a locked G, unless an idle P
    /// appeared meanwhile (checked under the same lock that Ms going idle
    /// take, so the G cannot be left queued with Ps idle), and wait until
    /// an M with a P hands both over (startlockedm).
    ///
    /// # Safety
    /// As `callback_loop`, before the body first runs.
    #[cold]
    unsafe fn callback_wait_for_p(&self, m: *mut M, g: *mut G, body: Context) {
        // SAFETY: the caller's contract.
        let (mr, gr) = unsafe { (&*m, &*g) };
        gr.set_status(Status::Runnable);
        let mut l = self.lock();
        if let Some(p) = self.pidle_get(&mut l) {
            drop(l);
            mr.p.set(p);
        } else {
            l.runq.push_back(GRef(NonNull::from(gr)));
            self.runq_len.store(l.runq.len(), Ordering::Release);
            drop(l);
            if !self.stop_locked_m(m) {
                fatal("a callback from C waited for a P while its runtime ended");
            }
        }
        mr.incgo.store(false, Ordering::Relaxed);
        mr.ncallback
            .store(mr.ncallback.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        // SAFETY: g is not running; its context slot is ours.
        unsafe { *gr.ctx.get() = body };
    }

    /// The long way of a callback's g0, after g's last switch to it was
    /// handled: until g's body returns, wait for g to be handed back with
    /// a P (it parked or yielded: this M runs nothing but g) and run it.
    #[cold]
    fn callback_schedule(&self, m: *mut M, g: *mut G) {
        // SAFETY: m is this thread's M, g its locked goroutine.
        let (mr, gr) = unsafe { (&*m, &*g) };
        while !mr.callback_returned.replace(false) {
            if !self.stop_locked_m(m) {
                fatal("a callback from C was blocked when its runtime ended");
            }
            self.execute(m, GRef(NonNull::from(gr)), true);
        }
        // The body's context is abandoned: it switched away for good.
        // SAFETY: as above.
        let _abandoned = unsafe { (*gr.ctx.get()).take() };
    }

    /// The run is over (or ending): no new callbacks should come here.
    #[inline]
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire) || self.shutdown.load(Ordering::Acquire)
    }

    /// (calls into C made, callbacks run, Ms in C now, extra Ms made),
    /// over every M.
    pub(crate) fn cgo_counts(&self) -> (u64, u64, usize, usize) {
        let allm = self.allm.lock().unwrap_or_else(|e| e.into_inner());
        allm.iter().fold((0, 0, 0, 0), |(c, b, n, x), m| {
            (
                c + m.ncgocall.load(Ordering::Relaxed),
                b + m.ncallback.load(Ordering::Relaxed),
                n + usize::from(m.incgo.load(Ordering::Relaxed)),
                x + usize::from(m.extra),
            )
        })
    }
}

impl Drop for Sched {
    fn drop(&mut self) {
        // Every M has stopped: the caches of free task cells go back to
        // the allocator.
        let l = self.lock.get_mut().unwrap_or_else(|e| e.into_inner());
        let pstore = self.pstore.get_mut().unwrap_or_else(|e| e.into_inner());
        let per_p = pstore
            .iter_mut()
            .flat_map(|p| std::mem::take(&mut p.owned.get_mut().cells));
        for cell in std::mem::take(&mut l.cells).into_iter().chain(per_p) {
            // SAFETY: cached cells are unused CELL_LAYOUT blocks of the
            // global allocator.
            unsafe { std::alloc::dealloc(cell, CELL_LAYOUT) };
        }
    }
}

/// The first frame of a goroutine that has not run yet, on its stack
/// (`gort_arch::init`): made by the M about to run it, which is usually
/// the M that ran the G's previous goroutine and still has that stack in
/// its cache, not by the spawning M.
#[inline(never)]
fn first_context(gr: &G) -> Context {
    // SAFETY: the G is ours (execute); a runnable G has a stack.
    let top = unsafe { &*gr.stack.get() }
        .as_ref()
        .expect("a runnable goroutine without a stack")
        .top();
    // SAFETY: the stack is owned by the G and outlives the context.
    unsafe { gort_arch::init(top, goroutine_entry, gr as *const G as usize) }
}

/// The M running this thread if it belongs to `sched`, else null.
fn current_m_of(sched: &Sched) -> *mut M {
    let m = current_m();
    // SAFETY: a thread's current M lives as long as its Sched, which runs
    // on this thread now.
    if m.is_null() || !ptr::eq(unsafe { (*m).sched }, sched) {
        return ptr::null_mut();
    }
    m
}

/// This thread's M (of whichever runtime), or null. Not inlined, as
/// `current_g`.
#[inline(never)]
fn current_m() -> *mut M {
    CURRENT_M.with(|c| c.get())
}

/// Makes `g` the running goroutine of this thread, whose M is `m`: its M,
/// the M's current G, the thread's current G and M, the running-stack
/// record (stack overflow reports) and its unwind state (recover scopes,
/// resume points). Returns the unwind state installed before, for
/// [`leave_g`].
///
/// # Safety
/// `m` is this thread's M and `g` a goroutine that is about to run on it
/// (or runs on it, as a callback's G does); the returned state must be put
/// back with `leave_g` before the execution it belongs to runs again.
#[inline(always)]
pub(crate) unsafe fn enter_g(m: *mut M, gr: &G) -> *const gort_unwind::UnwindState {
    let g = gr as *const G as *mut G;
    gr.m.set(m);
    // SAFETY: m is this thread's M (the contract).
    unsafe { (*m).curg.set(g) };
    set_current(g, m);
    // SAFETY: the G's stack is live while it runs.
    if let Some(stack) = unsafe { &*gr.stack.get() } {
        gort_stack::set_running_stack(gr.id.get(), stack);
    }
    // SAFETY: the G's state lives as long as the G, and only this M uses
    // it while the G runs here (the contract covers the previous one).
    unsafe { gort_unwind::install_state(gr.unwind.get()) }
}

/// The reverse of [`enter_g`]: no goroutine runs on this thread now (its
/// M's g0 does, or, with `thread_m` null, the plain thread's own code),
/// and `unwind` is the thread's unwind state again.
///
/// # Safety
/// `m` is this thread's M; `unwind` is what `enter_g` returned, or null
/// (the thread's own state).
#[inline(always)]
pub(crate) unsafe fn leave_g(m: *mut M, thread_m: *mut M, unwind: *const gort_unwind::UnwindState) {
    // SAFETY: the contract.
    unsafe {
        gort_unwind::install_state(unwind);
        (*m).curg.set(ptr::null_mut());
    }
    gort_stack::clear_running_stack();
    set_current(ptr::null_mut(), thread_m);
}

/// Switches from the running goroutine to its M's g0 with `req` (Go's
/// `mcall`). Returns when some M runs the goroutine again.
pub(crate) fn switch_to_g0(g: *mut G, req: &mut Request<'_>) {
    // SAFETY: g is the running goroutine; its M is the one that switched to
    // it last (execute sets g.m before every switch).
    unsafe {
        let m = (*g).m.get();
        if (*m).locks.get() != 0 {
            fatal("goroutine switch while holding an M lock (acquirem)");
        }
        if (*m).incgo.load(Ordering::Relaxed)
            && !matches!(req, Request::ExitSyscall | Request::CallbackReturn)
        {
            // Seed 001: the M is in C; its goroutine must stay with it.
            fatal("goroutine switch while its M is in C (a park, yield or exit inside cgo::call's C function)");
        }
        let g0 = (*m).g0.take();
        let (g0_back, new_m) = gort_arch::switch(g0, req as *mut Request<'_> as usize);
        // Resumed, possibly on another M: the value is that M.
        let new_m = new_m as *mut M;
        (*new_m).g0.set(g0_back);
    }
}

/// The first frame of every goroutine (gort_arch entry): keeps g0's
/// context, runs the goroutine's closure, and exits to g0.
unsafe extern "C" fn goroutine_entry(arg: usize, g0: Context, m: usize) -> ! {
    let g = arg as *mut G;
    // SAFETY: execute passed its M and the G it switched to.
    unsafe {
        (*(m as *mut M)).g0.set(g0);
        let f = (*(*g).entry.get()).take().expect("goroutine without entry");
        // The closure catches its own panics (see Runtime::run and
        // GoBuilder::spawn); anything escaping here would abort, being an
        // extern "C" frame.
        f.call();
        // Goroutine-local values are dropped here, on the goroutine's own
        // stack, where their destructors may still park.
        let locals = std::mem::take(&mut *(*g).locals.get());
        if let Err(p) = gort_unwind::catch(false, move || drop(locals)) {
            eprintln!(
                "goroutine {}: a goroutine-local value panicked in drop: {p}",
                (*g).id.get()
            );
        }
        let mut req = Request::Exit;
        switch_to_g0(g, &mut req);
    }
    fatal("a dead goroutine was resumed")
}

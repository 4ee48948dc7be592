//! The P (Go's `p`): the right to run goroutines, with a local run queue
//! (runq.rs) and per-P caches.
//!
//! Ownership, the scheduler's central invariant: a P is always owned by
//! exactly one of
//! - an M that holds it (`M::p`), which alone touches its `owned` part;
//! - the idle list (`Locked::pidle`), under the scheduler lock;
//! - an M it is being handed to (`M::nextp`, written by `startm` or
//!   `start_locked_m` before that M is woken): a P in transit has an owner,
//!   so a stop-the-world never waits on a P nobody will stop;
//! - a syscall (status SYSCALL in `status`, pstatus.rs): then the M that
//!   left it, sysmon and a stop-the-world race for it with one CAS each.
//!
//! One more way a P leaves an M: sysmon retakes it from a goroutine that
//! has run user code past its slice (preempt.rs). While the goroutine runs
//! user code (from `MLive::leave` to the next `MLive::entry`), its M's
//! claim is revocable: if sysmon wins the handshake in between, sysmon
//! owns the P (`HeldP::claim`) and hands it off, and the M's `p` field is
//! a stale name until that entry clears it (`M::forget_retaken_p`).
//!
//! The lifecycle (take from and put on the idle list, hand off) is in
//! proc.rs; the resize in stw.rs.

use crate::g::G;
use crate::note::Note;
use crate::runq::{LocalQueue, Owner};
use crate::timer::Timers;
use gort_stack::StackCache;
use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// A processor: the right to run goroutines, with a local run queue and
/// caches (Go's `p`).
///
/// Must hold: `owned` is touched only by the M that holds this P (`m`), or
/// by anyone while the P is idle and under the scheduler lock. A P is
/// always owned by exactly one of: an M that holds it, the idle list, or an
/// M it is being handed to through `M::nextp` (a P in transit
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
    pub(crate) syscalltick: AtomicU32,
    /// Counts this P holds in `Sched::ngoroutines` beyond live goroutines
    /// (`count_spawn`, `flush_credit`). Written only by the P's holder
    /// (plain loads and stores); read by anyone for `num_goroutines`.
    pub(crate) credit: AtomicUsize,
    /// This P's timers (Go's `p.timers`): goroutine deadlines and user
    /// timers armed on it, run by its holder at schedule time and by
    /// sysmon when overdue (timer.rs, checktimers.rs). Any thread may lock
    /// the heap.
    pub(crate) timers: Arc<Timers>,
    /// Slices and their preemption (see `preempt`).
    pub(crate) lv: crate::handshake::PLive,
    pub(crate) owned: UnsafeCell<POwned>,
}

pub(crate) struct POwned {
    pub(crate) gfree: Vec<*mut G>,
    pub(crate) stacks: StackCache,
    /// Goroutine ids this P may hand out: `goid_next..goid_end` (Go's
    /// `p.goidcache`), taken from `Sched::goid` a batch at a time.
    pub(crate) goid_next: u64,
    pub(crate) goid_end: u64,
    /// Free task cells (`CELL_LAYOUT` blocks, see `cell_alloc`).
    pub(crate) cells: Vec<*mut u8>,
}

impl P {
    /// P `id`, whose timer heap wakes sysmon through `sysmon_note` when
    /// a new first timer is due before sysmon's sleep ends
    /// (`sysmon_until`, checktimers.rs).
    pub(crate) fn new(id: usize, sysmon_note: &Arc<Note>, sysmon_until: &Arc<AtomicU64>) -> Box<P> {
        let (note, until) = (sysmon_note.clone(), sysmon_until.clone());
        Box::new(P {
            id,
            timers: Timers::new(move |when| {
                if when < until.load(Ordering::SeqCst) {
                    note.wake();
                }
            }),
            runq: LocalQueue::new(),
            status: crate::pstatus::PStatus::new(),
            syscalltick: AtomicU32::new(0),
            credit: AtomicUsize::new(0),
            lv: crate::handshake::PLive::default(),
            owned: UnsafeCell::new(POwned {
                gfree: Vec::new(),
                stacks: StackCache::new(),
                goid_next: 0,
                goid_end: 0,
                cells: Vec::new(),
            }),
        })
    }
}

// SAFETY: see P's invariants: non-atomic parts are single-owner.
unsafe impl Sync for P {}

// SAFETY: as above.
unsafe impl Send for P {}

impl P {
    /// # Safety
    /// The caller holds this P (see P's invariants).
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn owned(&self) -> &mut POwned {
        // SAFETY: forwarded: the caller is the P's only owner now.
        unsafe { &mut *self.owned.get() }
    }

    /// # Safety
    /// The caller holds this P.
    pub(crate) unsafe fn queue(&self) -> Owner<'_, G> {
        // SAFETY: holding the P makes us the queue's only owner.
        unsafe { self.runq.owner() }
    }
}

/// Ownership of a P, as a value (the "this M holds this P" of Go's
/// `acquirep`/`releasep`, which Go keeps in comments and `throw`s): whoever
/// has the `HeldP` is the P's one owner, and handing a P on is a move the
/// compiler checks. Made only where ownership is won: off the idle list
/// under the lock (`pidle_get`), from an M (`M::releasep`,
/// `M::take_nextp`), by winning the P's status word (a syscall's P:
/// `HeldP::claim`) or sysmon's retake handshake (preempt.rs). Consumed
/// where ownership goes: to an M
/// (`M::acquirep`, `M::give_nextp`), the idle list (`pidle_put`), a stop
/// (`stw_stop_p`), another M (`handoffp`, `startm`).
///
/// Costs nothing at run time: one pointer, no `Clone`, and consuming it
/// (`into_raw`) forgets it. Dropping one is a fatal error: a P that nobody
/// owns would never run or be stopped again.
#[must_use = "a P must always have an owner: hand it on"]
pub(crate) struct HeldP(NonNull<P>);

impl HeldP {
    /// Ownership of `p`, won by the caller.
    ///
    /// # Safety
    /// `p` is a P of this runtime, non-null, and the caller owns it now (it
    /// won the P's status word, or took `p` from an owner that gave it up:
    /// the idle list or stop list under the lock), so no other `HeldP` for
    /// it exists.
    #[inline(always)]
    pub(crate) unsafe fn claim(p: *mut P) -> HeldP {
        debug_assert!(!p.is_null());
        // SAFETY: non-null by the contract.
        HeldP(unsafe { NonNull::new_unchecked(p) })
    }

    /// The P's address, for lists and slots that own it next.
    #[inline(always)]
    pub(crate) fn into_raw(self) -> *mut P {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }
}

impl std::ops::Deref for HeldP {
    type Target = P;
    #[inline(always)]
    fn deref(&self) -> &P {
        // SAFETY: Ps live as long as their Sched (never freed, see
        // `Sched::pstore`), and the holder may read its P.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for HeldP {
    fn drop(&mut self) {
        crate::fatal::fatal(&format!("P {} dropped without an owner", self.id));
    }
}

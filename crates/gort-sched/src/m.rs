//! The M (Go's `m`): an OS thread that runs goroutines, on its own g0
//! stack when it schedules.
//!
//! | state | entered by | left by |
//! |---|---|---|
//! | running with a P | `mstart` (a new M takes `nextp`), `stopm` returning | `find_runnable` giving the P back; sysmon's retake while its goroutine runs user code (preempt.rs: the goroutine runs on without a P) |
//! | spinning (has a P, looking for work) | `find_runnable` (if fewer than half the busy Ps have a spinner), `wakep` → `startm(spinning)` | `reset_spinning` (found work), or dropping the P |
//! | idle (no P, parked on its note) | `stopm` | `startm` (hands a P via `nextp`, wakes the note), or shutdown |
//! | in a syscall or C (holds no P; `oldp` remembers one) | `enter_syscall` | `exit_syscall` |
//! | locked to a goroutine (`lockedg`) | `lock_os_thread` | the last unlock, or the goroutine's exit (the thread ends) |
//!
//! Most fields are touched only by the M's own thread; see the invariants
//! on [`M`]. An M's counters (`MCounters`) are written by it and read by
//! anyone, for `stats()`.

use crate::g::G;
use crate::note::Note;
use crate::p::{HeldP, P};
use gort_arch::Context;
use std::cell::Cell;
use std::ptr::{self};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, Ordering};

/// An OS thread that runs goroutines (Go's `m`).
///
/// Must hold: fields other than `nextp`, `park` and `counters` are touched
/// only by the M's own thread (its g0 or the goroutine running on it).
/// `nextp` is written by `startm` before `park` is woken, and read by this
/// M after. `counters` are written only by this M and read by anyone.
pub(crate) struct M {
    pub(crate) id: u64,
    /// The runtime this M belongs to.
    pub(crate) sched_erased: *const (),
    /// g0's suspended context while a goroutine runs on this M.
    pub(crate) g0: Cell<Context>,
    /// Changed only through `acquirep`/`releasep` (the P is moved in and
    /// out as a `HeldP`), and by `forget_retaken_p` after sysmon took the
    /// P from a goroutine in user code (preempt.rs): from that take until
    /// the M's next runtime entry, the field names a P this M no longer
    /// owns, and nothing reads through it (every read from a goroutine's
    /// code goes through `Sched::held_p`, which does that entry first).
    /// Read with `M::p`.
    p: Cell<*mut P>,
    pub(crate) nextp: AtomicPtr<P>,
    pub(crate) spinning: Cell<bool>,
    pub(crate) park: Note,
    /// Go's `m.locks` (acquirem/releasem): while non-zero, switching to a
    /// goroutine is a fatal error.
    pub(crate) locks: Cell<u32>,
    pub(crate) curg: Cell<*mut G>,
    pub(crate) rng: Cell<u64>,
    /// The goroutine locked to this M (Go's `m.lockedg`): while set, this M
    /// runs no other goroutine.
    pub(crate) lockedg: Cell<*mut G>,
    /// lock_os_thread nesting by the user (Go's `lockedExt`) and by the
    /// runtime itself, e.g. for a cgo callback (Go's `lockedInt`).
    pub(crate) locked_ext: Cell<u32>,
    pub(crate) locked_int: Cell<u32>,
    /// Set when a goroutine exits while locked: the M's thread exits too.
    pub(crate) exit_thread: Cell<bool>,
    /// The P this M had when it entered a syscall (Go's `m.oldp`).
    pub(crate) oldp: Cell<*mut P>,
    /// The M is running C code (Go's `m.incgo`; the C-call rule, cgocall.rs): set after
    /// entering syscall state and cleared before leaving it; while set, no
    /// goroutine may be switched on this M.
    pub(crate) incgo: AtomicBool,
    /// Calls into C made on this M, and callbacks from C run on it (Go's
    /// `m.ncgocall`). Written only by the M's thread, read by stats.
    pub(crate) ncgocall: AtomicU64,
    pub(crate) ncallback: AtomicU64,
    /// The kernel's id of this M's thread once it started (`mstart`); 0
    /// before, and for extra Ms. Read by sysmon (preempt.rs: whether the
    /// thread of a slice that ran out was running or waiting for a CPU).
    pub(crate) tid: AtomicI32,
    /// Set by `execute` when the goroutine's callback body returned
    /// (`Request::CallbackReturn`): the callback's scheduling loop ends.
    pub(crate) callback_returned: Cell<bool>,
    /// An extra M: bound to a thread the runtime did not create, to run
    /// callbacks from C there (Go's `m.isextra`), with the G that runs them
    /// (null for other Ms). Set once when the M is made.
    pub(crate) extra: bool,
    pub(crate) extra_g: *mut G,
    /// Switches and steals of this M, for `stats()`.
    pub(crate) counters: MCounters,
    /// This M's half of the retake handshake (see `preempt`).
    pub(crate) lv: crate::handshake::MLive,
}

// SAFETY: see M's invariants; cross-thread fields are atomics or the note.
unsafe impl Sync for M {}

// SAFETY: as above.
unsafe impl Send for M {}

impl M {
    pub(crate) fn new(id: u64, sched: *const ()) -> M {
        M {
            id,
            sched_erased: sched,
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
            tid: AtomicI32::new(0),
            ncallback: AtomicU64::new(0),
            callback_returned: Cell::new(false),
            extra: false,
            extra_g: ptr::null_mut(),
            counters: MCounters::default(),
            lv: crate::handshake::MLive::default(),
        }
    }

    /// The stack pointer at which g0 is suspended (0 if it is not): the
    /// system stack below it is free while a goroutine runs on this M.
    /// The P this M holds, or null.
    #[inline(always)]
    pub(crate) fn p(&self) -> *mut P {
        self.p.get()
    }

    /// Go's `acquirep`: this M holds `p` from now on (and had none).
    #[inline(always)]
    pub(crate) fn acquirep(&self, p: HeldP) {
        debug_assert!(self.p.get().is_null(), "acquirep: M already holds a P");
        self.p.set(p.into_raw());
    }

    /// Go's `releasep`: this M gives up its P, if it holds one.
    #[inline(always)]
    pub(crate) fn releasep(&self) -> Option<HeldP> {
        let p = self.p.replace(ptr::null_mut());
        // SAFETY: the M held p; clearing `self.p` gave that up to us.
        (!p.is_null()).then(|| unsafe { HeldP::claim(p) })
    }

    /// sysmon took this M's P while its goroutine ran user code, and the
    /// M just learned it at its entry (`MLive::entry` returned true): the
    /// M forgets the P. Unlike `releasep`, no `HeldP` comes back: sysmon
    /// claimed the P's ownership when it won the handshake, so this M's
    /// claim ended then; the field was only a stale name.
    #[inline]
    pub(crate) fn forget_retaken_p(&self) {
        self.p.set(ptr::null_mut());
    }

    /// Hands `p` to this (parked or not yet started) M through `nextp`;
    /// the caller wakes it after (`startm`, `start_locked_m`).
    #[inline(always)]
    pub(crate) fn give_nextp(&self, p: HeldP) {
        self.nextp.store(p.into_raw(), Ordering::Release);
    }

    /// Go's mPark followed by acquirep: sleeps on the M's note until woken,
    /// clears it (so the note is always clear when an M goes to sleep and
    /// no wakeup is lost), and takes the P the waker handed over. False
    /// when woken without one (shutdown with nothing left to run).
    pub(crate) fn sleep_until_handed_p(&self) -> bool {
        self.park.sleep();
        self.park.clear();
        let Some(p) = self.take_nextp() else {
            return false;
        };
        self.acquirep(p);
        true
    }

    /// The P handed to this M through `nextp`, if any (after a wakeup).
    #[inline(always)]
    pub(crate) fn take_nextp(&self) -> Option<HeldP> {
        let p = self.nextp.swap(ptr::null_mut(), Ordering::Acquire);
        // SAFETY: whoever stored p in nextp gave it up to this M.
        (!p.is_null()).then(|| unsafe { HeldP::claim(p) })
    }

    pub(crate) fn g0_sp(&self) -> usize {
        let g0 = self.g0.take();
        let sp = g0.stack_pointer();
        self.g0.set(g0);
        sp
    }

    pub(crate) fn fastrand(&self) -> u32 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        (x >> 32) as u32
    }
}

/// Counters of one M. Must hold: written only by the M's own thread (plain
/// load + store, no read-modify-write: one writer), read by anyone.
#[derive(Debug, Default)]
pub(crate) struct MCounters {
    pub(crate) switches: AtomicU64,
    pub(crate) steals: AtomicU64,
}

impl MCounters {
    /// One more switch to a goroutine on this M.
    #[inline(always)]
    pub(crate) fn bump_switch(&self) {
        let n = self.switches.load(Ordering::Relaxed);
        self.switches.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    /// One more successful steal by this M.
    #[inline(always)]
    pub(crate) fn bump_steal(&self) {
        let n = self.steals.load(Ordering::Relaxed);
        self.steals.store(n.wrapping_add(1), Ordering::Relaxed);
    }
}

impl G {
    /// The M running this goroutine (`G::m_erased`, typed).
    #[inline(always)]
    pub(crate) fn m(&self) -> *mut M {
        self.m_erased.get().cast()
    }

    #[inline(always)]
    pub(crate) fn set_m(&self, m: *mut M) {
        self.m_erased.set(m.cast());
    }

    /// The M this goroutine is locked to (`G::lockedm_erased`, typed).
    #[inline(always)]
    pub(crate) fn lockedm(&self) -> *mut M {
        self.lockedm_erased.get().cast()
    }

    #[inline(always)]
    pub(crate) fn set_lockedm(&self, m: *mut M) {
        self.lockedm_erased.set(m.cast());
    }
}

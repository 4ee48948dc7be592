//! The retake handshake: the words an M and sysmon use to agree on who
//! holds the M's P while its goroutine runs user code (the protocol and
//! its proof are in `preempt`'s essay). Kept apart, as `pstatus` is, so
//! that `tests/loom_retake.rs` models exactly this code.

use crate::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU8, Ordering};
// The runtime-wide counters are never modelled: std's atomics, as the
// Sched's own (`npidle`) that they are read with.
use std::ptr;
use std::sync::atomic::{AtomicBool as StdAtomicBool, AtomicU64, AtomicUsize};

/// The hot side's fence (see `membarrier`); a SeqCst fence under loom,
/// which models no membarrier.
#[inline(always)]
fn light_fence() {
    #[cfg(not(loom))]
    crate::membarrier::light_fence();
    #[cfg(loom)]
    crate::sync::atomic::fence(Ordering::SeqCst);
}

/// The rare side's fence.
fn heavy_fence() {
    #[cfg(not(loom))]
    crate::membarrier::heavy_fence();
    #[cfg(loom)]
    crate::sync::atomic::fence(Ordering::SeqCst);
}

/// How long one goroutine (or a chain that inherits its slice) may hold a
/// P while other work waits (Go's `forcePreemptNS`).
pub(crate) const SLICE_NS: u64 = 10_000_000;

/// How long after the mark sysmon waits for a cooperative yield before it
/// retakes the P.
pub(crate) const GRACE_NS: u64 = 1_000_000;

/// Default cap on Ms left running a goroutine without a P after a retake.
/// Each costs a thread competing for the same cores; past a few dozen the
/// extra threads only divide CPU time further, while each still costs a
/// kernel task and its stack. 64 keeps latency for programs with up to
/// that many concurrent CPU-bound goroutines; beyond it fairness degrades
/// to "a hog keeps its P", never to a failure (Go's limit of 10,000
/// threads is fatal when reached).
pub const DEFAULT_MAX_RETAKEN: usize = 64;

/// sysmon asks the goroutine on this M to yield at its next preemption
/// point.
pub const PREEMPT: u8 = 1;
/// sysmon is deciding whether to take this M's P.
pub const RETAKING: u8 = 2;
/// sysmon took this M's P: the M must forget it at its next entry.
pub const TAKEN: u8 = 4;

/// The low bit of `MLive::user_p`: the M runs runtime code (Ps are boxed,
/// so a P's address has it clear).
const IN_RUNTIME: usize = 1;

fn tag(p: *mut ()) -> *mut () {
    p.map_addr(|a| a | IN_RUNTIME)
}

fn untag(p: *mut ()) -> *mut () {
    p.map_addr(|a| a & !IN_RUNTIME)
}

/// An M's half of the retake protocol (see the module's essay).
///
/// Must hold: `user_p` is written only by the M's own thread; it is
/// non-null only while a goroutine of this M runs code that touches no P
/// state. `signal`'s `RETAKING` and `TAKEN` are set only by sysmon.
#[derive(Debug)]
pub struct MLive {
    user_p: AtomicPtr<()>,
    pub(crate) signal: AtomicU8,
}

impl Default for MLive {
    fn default() -> Self {
        MLive {
            user_p: AtomicPtr::new(ptr::null_mut()),
            signal: AtomicU8::new(0),
        }
    }
}

/// A P's slice bookkeeping.
///
/// Must hold: `schedtick` is written only by the P's holder (load and
/// store, one writer); `preempt` is set by sysmon (or by the holder) and
/// cleared by the holder.
#[derive(Debug, Default)]
pub struct PLive {
    /// Slices begun on this P (Go's `p.schedtick`).
    pub(crate) schedtick: AtomicU32,
    /// The running slice is over: the next scheduling point takes no
    /// inherited `runnext` and looks at the global queue first.
    pub(crate) preempt: AtomicBool,
}

impl PLive {
    /// A new slice begins on this P (the holder, in `execute`).
    #[inline(always)]
    pub(crate) fn new_slice(&self) -> u32 {
        let t = self.schedtick.load(Ordering::Relaxed).wrapping_add(1);
        self.schedtick.store(t, Ordering::Relaxed);
        if self.preempt.load(Ordering::Relaxed) {
            self.preempt.store(false, Ordering::Relaxed);
        }
        t
    }

    /// The slice is over (read by the holder at a scheduling point).
    #[inline(always)]
    pub(crate) fn expired(&self) -> bool {
        self.preempt.load(Ordering::Relaxed)
    }
}

impl MLive {
    /// The hot half of the handshake: the M is about to touch its P (or
    /// runs runtime code). Returns true if the M lost its P to sysmon: the
    /// caller forgets it. The caller is the M's own thread.
    #[inline(always)]
    pub fn entry(&self) -> bool {
        let u = self.user_p.load(Ordering::Relaxed);
        if u as usize & IN_RUNTIME != 0 || u.is_null() {
            return false;
        }
        self.user_p.store(tag(u), Ordering::Relaxed);
        light_fence();
        if self.signal.load(Ordering::Acquire) & (RETAKING | TAKEN) == 0 {
            return false;
        }
        self.entry_slow()
    }

    #[cold]
    #[inline(never)]
    fn entry_slow(&self) -> bool {
        loop {
            let s = self.signal.load(Ordering::Acquire);
            if s & RETAKING != 0 {
                // sysmon decides within a few instructions.
                crate::sync::yield_now();
                continue;
            }
            if s & TAKEN != 0 {
                // The M forgets the P: nothing of it is left to find here.
                self.user_p.store(ptr::null_mut(), Ordering::Relaxed);
                self.signal.fetch_and(!TAKEN, Ordering::AcqRel);
                return true;
            }
            return false;
        }
    }

    /// The goroutine on this M goes back to user code, holding `p` (null:
    /// none). The caller is the M's own thread and touches no P state
    /// until its next `entry`.
    #[inline(always)]
    pub fn leave(&self, p: *mut ()) {
        self.user_p.store(p, Ordering::Release);
    }

    /// The goroutine on this M yielded, or a new slice began: the
    /// preemption request is consumed. The caller is the M's own thread.
    pub fn clear_preempt(&self) {
        if self.signal.load(Ordering::Relaxed) & PREEMPT != 0 {
            self.signal.fetch_and(!PREEMPT, Ordering::AcqRel);
        }
    }

    /// sysmon: whether this M holds `p` (in user code or in the runtime),
    /// unless it lost a P already. A snapshot: `p` may change hands.
    pub fn holds(&self, p: *mut ()) -> bool {
        untag(self.user_p.load(Ordering::Relaxed)) == p
            && self.signal.load(Ordering::Acquire) & TAKEN == 0
    }

    /// sysmon: whether this M holds `p` in user code (the one M that
    /// `try_take` can take it from). A snapshot, as `holds`.
    pub fn in_user_code_with(&self, p: *mut ()) -> bool {
        self.user_p.load(Ordering::Relaxed) == p
    }

    /// sysmon: ask the goroutine to yield. True if it was not asked yet.
    pub fn request_preempt(&self) -> bool {
        self.signal.fetch_or(PREEMPT, Ordering::AcqRel) & PREEMPT == 0
    }

    /// sysmon: try to take `p` from this M (the rare half). True if the P
    /// is now the caller's; the M will find out at its next entry.
    pub fn try_take(&self, p: *mut ()) -> bool {
        let s = self.signal.fetch_or(RETAKING, Ordering::AcqRel);
        if s & TAKEN != 0 {
            self.signal.fetch_and(!RETAKING, Ordering::AcqRel);
            return false;
        }
        heavy_fence();
        if self.user_p.load(Ordering::Acquire) == p {
            // RETAKING -> TAKEN in one store: nobody else writes those bits,
            // and PREEMPT is moot for an M without a P.
            self.signal.store(TAKEN, Ordering::Release);
            true
        } else {
            self.signal.fetch_and(!RETAKING, Ordering::AcqRel);
            false
        }
    }
}

/// The runtime-wide half: the cap and the counters.
#[derive(Debug)]
pub(crate) struct SchedLive {
    /// Ms running a goroutine without a P after a retake, now.
    pub(crate) retaken: AtomicUsize,
    /// Most such Ms at once (`Builder::max_retaken`).
    pub(crate) max_retaken: usize,
    /// Ps retaken from running goroutines since the start (stats).
    pub(crate) retakes: AtomicU64,
    /// Preemption marks sysmon set (stats).
    pub(crate) preempts: AtomicU64,
    /// Retakes not made because the cap was reached (stats).
    pub(crate) capped: AtomicU64,
    /// Slices extended because their thread waited for a CPU (stats).
    pub(crate) extended: AtomicU64,
    /// sysmon may sleep past the next slice's end: every P was idle when
    /// it last looked. The first P taken off the idle list wakes it.
    sysmon_idle: StdAtomicBool,
}

impl SchedLive {
    pub(crate) fn new(max_retaken: usize) -> SchedLive {
        SchedLive {
            retaken: AtomicUsize::new(0),
            max_retaken,
            retakes: AtomicU64::new(0),
            preempts: AtomicU64::new(0),
            capped: AtomicU64::new(0),
            extended: AtomicU64::new(0),
            sysmon_idle: StdAtomicBool::new(false),
        }
    }

    /// sysmon, before it sleeps: whether some P runs goroutines (then it
    /// must watch slices). A Dekker with `sysmon_must_wake`, all SeqCst:
    /// either this load sees the P leave the idle list, or that side sees
    /// `sysmon_idle` and wakes sysmon.
    pub(crate) fn sysmon_busy(&self, npidle: &AtomicUsize, procs: usize) -> bool {
        self.sysmon_idle.store(true, Ordering::SeqCst);
        let busy = npidle.load(Ordering::SeqCst) < procs;
        if busy {
            self.sysmon_idle.store(false, Ordering::Relaxed);
        }
        busy
    }

    /// A P left the idle list (after its SeqCst `npidle` decrement):
    /// whether the caller must wake sysmon.
    #[inline]
    pub(crate) fn sysmon_must_wake(&self) -> bool {
        self.sysmon_idle.load(Ordering::SeqCst) && self.sysmon_idle.swap(false, Ordering::AcqRel)
    }
}

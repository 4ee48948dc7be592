//! The goroutine: the G, its handle [`GRef`], its goroutine-local values,
//! and the rules for changing its status.
//!
//! A G is allocated once, boxed and owned by its runtime (`Sched::allgs`),
//! and never freed while the runtime lives: dead Gs are reused from free
//! lists (gfree.rs), so a `*mut G` stays valid and a `GRef` is just an
//! address. A goroutine never changes its own status: it switches to its
//! M's g0 with a request (mcall.rs), and g0 saves it before acting.
//!
//! | from | to | by |
//! |---|---|---|
//! | Dead | Runnable | `Sched::new_g` (spawn.rs) |
//! | Runnable | Running | `execute` (schedule.rs), the M that dequeued it |
//! | Running | Runnable | `execute`, on a `Yield` request |
//! | Running | Waiting | `execute`, on a `Park` request, before its unlock runs |
//! | Waiting | Runnable | `ready` or the winning wake (a CAS: one of several racing wakers wins) |
//! | Running | Syscall and back | the goroutine's own M (syscall.rs, cgocall.rs) |
//! | Running | Dead | `gdestroy` (spawn.rs), on an `Exit` request |
//!
//! Only a Waiting G is ever claimed by another thread (with a CAS); every
//! other transition is made by the G's one owner with a check and a
//! release store (`owner_set_status`), because a locked CAS costs ~20
//! cycles and a yield used to pay two.
//!
//! Layering: the G is the lowest of the scheduler's data. It names its M,
//! its locking M and its runtime by untyped addresses (`m_erased`,
//! `lockedm_erased`, `sched_erased`), which m.rs and sched.rs type with
//! accessors (`G::m`, `G::lockedm`, `G::sched`). That keeps G, and with it
//! wakers (waker.rs) and timers (timer.rs), below the M and the Sched that
//! hold them, so no module imports one that imports it back. Rejected:
//! one module for G, M, P and Sched (Go's runtime2.go), which would have
//! had to hold the timer and waker types too.

use crate::gstate::GState;
use crate::status::{Status, WaitReason};
use gort_arch::Context;
use gort_stack::Stack;
use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::ptr::NonNull;
use std::sync::atomic::AtomicBool;

/// A goroutine.
///
/// Must hold:
/// - A G is allocated once (boxed, owned by `Sched::allgs`) and never freed
///   while its runtime lives; dead Gs are reused, so a `*mut G` stays valid.
/// - `ctx` holds the suspended goroutine whenever it is not `Running`
///   (written by the g0 that switched away from it, before anything can make
///   it runnable again); it is empty while it runs, and empty for a
///   goroutine that has not run yet (`execute` makes its first frame).
/// - `entry`, `stack` and `ctx` are touched only by the M that owns the G at
///   that moment: the one running it, or the one that took it off a queue.
/// - `m` is the M running the goroutine (set by `execute` before each
///   switch to it); goroutine code reads it after every switch, never a
///   value cached before one.
/// - `state` may carry the `SCAN` bit on top of `Waiting` while a
///   goroutine dump walks the G's stack; every change out of `Waiting`
///   (`try_cas_status`, a wake that readies, gstate.rs) waits for the bit
///   to clear, never through a plain store. (Transitions between other
///   states may be plain stores: only `Waiting` is ever claimed.)
pub(crate) struct G {
    pub(crate) id: Cell<u64>,
    /// The status and `park_with`'s one-shot in one word (gstate.rs, whose
    /// invariants hold): the wake that wins a parked goroutine's wait also
    /// makes it Runnable, in one CAS.
    pub(crate) state: GState,
    pub(crate) ctx: UnsafeCell<Context>,
    pub(crate) stack: UnsafeCell<Option<Stack>>,
    pub(crate) entry: UnsafeCell<Option<crate::entry::Entry>>,
    /// The M running the goroutine, and the runtime it belongs to: typed
    /// by `G::m` (m.rs) and `G::sched` (sched.rs), which live above this
    /// module (see the layering in the module docs).
    pub(crate) m_erased: Cell<*mut ()>,
    pub(crate) sched_erased: *const (),
    pub(crate) wait_reason: Cell<WaitReason>,
    /// Set at shutdown: the next (or current) park unwinds the goroutine.
    pub(crate) cancel: AtomicBool,
    /// The goroutine is Waiting and its park's unlock function has
    /// returned: from here on shutdown may ready it. False from before its
    /// g0's status change to Waiting until then (the unlock function reads the
    /// goroutine's stack, which must not run elsewhere meanwhile). Written
    /// by the parking M's g0; read by `begin_shutdown` (shutdown.rs).
    pub(crate) parked: AtomicBool,
    /// The runtime's main goroutine: its exit ends `run`.
    pub(crate) is_main: Cell<bool>,
    /// The M this goroutine is locked to (lock_os_thread), or null. Set and
    /// cleared only by the goroutine itself while it runs on that M.
    pub(crate) lockedm_erased: Cell<*mut ()>,
    /// gort-unwind's per-execution state (quiet scopes, resume points),
    /// installed as the thread's (`gort_unwind::install_state`) while the G
    /// runs; touched only by the thread running the G, or its owner.
    pub(crate) unwind: UnsafeCell<gort_unwind::UnwindState>,
    /// Goroutine-local values (`local!`); touched only by the goroutine.
    pub(crate) locals: UnsafeCell<LocalMap>,
}

// SAFETY: a G moves between threads by design; its non-atomic fields are
// only touched by the single M that owns it at a time (see the invariants).
unsafe impl Send for G {}

// SAFETY: as above; fields shared between threads are atomics.
unsafe impl Sync for G {}

impl G {
    pub(crate) fn new(sched: *const ()) -> G {
        G {
            id: Cell::new(0),
            state: GState::new(Status::Dead as u64),
            ctx: UnsafeCell::new(Context::empty()),
            stack: UnsafeCell::new(None),
            entry: UnsafeCell::new(None),
            m_erased: Cell::new(std::ptr::null_mut()),
            sched_erased: sched,
            wait_reason: Cell::new(WaitReason::None),
            cancel: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            is_main: Cell::new(false),
            lockedm_erased: Cell::new(std::ptr::null_mut()),
            unwind: UnsafeCell::new(gort_unwind::UnwindState::new()),
            locals: UnsafeCell::new(LocalMap::default()),
        }
    }

    pub(crate) fn status(&self) -> Status {
        Status::from_u8(self.state.status() as u8)
    }

    /// The state word (waker.rs).
    pub(crate) fn state(&self) -> &GState {
        &self.state
    }

    /// Sets the status of a G nobody else can reach (a dead one being
    /// reused, an extra M's G between callbacks).
    pub(crate) fn set_status(&self, s: Status) {
        self.state.set_status_exclusive(s as u64);
    }

    /// A transition that only the G's owner makes and nobody races (every
    /// one but those out of Waiting: Runnable -> Running by the M that
    /// dequeued it, Running -> Runnable/Waiting/Dead/Syscall and back by
    /// the M running it): no other thread does a read-modify-write of the
    /// status unless it is Waiting, so a check and a release store do
    /// (a locked CAS costs ~20 cycles twice per switch). A fatal error if
    /// the G was not in `from`.
    #[inline]
    pub(crate) fn owner_set_status(&self, from: Status, to: Status) {
        if let Err(cur) = self.state.owner_set(from as u64, to as u64) {
            self.bad_status(from, to, cur as u8);
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn bad_status(&self, from: Status, to: Status, actual: u8) -> ! {
        crate::fatal::fatal(&format!(
            "goroutine {}: status {:?} -> {:?} but it was {:?}",
            self.id.get(),
            from,
            to,
            Status::from_u8(actual)
        ))
    }

    /// Moves from `from` to `to` if the G is in `from`; only one of several
    /// racing wakers wins.
    pub(crate) fn try_cas_status(&self, from: Status, to: Status) -> bool {
        self.state.try_cas_status(from as u64, to as u64)
    }

    /// Moves from `from` to `to`; a fatal error if the G was not in `from`
    /// (Go's `casgstatus` throws the same way).
    #[allow(dead_code)]
    pub(crate) fn cas_status(&self, from: Status, to: Status) {
        if !self.try_cas_status(from, to) {
            self.bad_status(from, to, self.state.load() as u8);
        }
    }
}

impl G {
    /// Claims a `Waiting` G for a dump: it stays `Waiting` (so its saved
    /// context and stack stay unchanged) until `release_scan`. False if it
    /// is not waiting (or already claimed). See `gstate::SCAN`.
    ///
    /// Only `Waiting` is claimed: `Runnable` -> `Running` is a plain store
    /// in `execute` (the M that dequeued the G owns it), which a claim
    /// could not hold off.
    pub(crate) fn try_claim_scan(&self) -> bool {
        self.state.try_claim_scan()
    }

    /// Ends a claim made by `try_claim_scan`.
    pub(crate) fn release_scan(&self) {
        self.state.release_scan();
    }
}

/// A handle to a goroutine for the layers above (channels, mutexes):
/// what `current_g` gives and `ready` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GRef(pub(crate) NonNull<G>);

// SAFETY: a GRef is an address of a G that lives as long as its runtime;
// handing it to another thread is how one goroutine wakes another.
unsafe impl Send for GRef {}

// SAFETY: as above.
unsafe impl Sync for GRef {}

impl GRef {
    pub(crate) fn as_ptr(self) -> *mut G {
        self.0.as_ptr()
    }

    /// The goroutine's id.
    pub fn id(self) -> u64 {
        // SAFETY: Gs live as long as their runtime, which outlives every
        // GRef handed out (see Sched's invariants).
        unsafe { (*self.as_ptr()).id.get() }
    }
}

/// One goroutine's values, keyed by the address of their `LocalKey`.
/// Values are boxed so that a reference handed out by `with` stays valid
/// while other keys are added.
#[derive(Default)]
pub(crate) struct LocalMap {
    pub(crate) entries: Vec<(usize, Box<dyn Any>)>,
}

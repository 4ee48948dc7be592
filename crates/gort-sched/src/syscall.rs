//! Syscalls (Go's `entersyscall`, `exitsyscall`): [`syscall`] runs a
//! blocking call with the goroutine keeping its M while its P may be
//! handed to another M.
//!
//! Entering sets the P's status word (pstatus.rs) to SYSCALL, where three
//! parties race to take the P with one CAS each, and exactly one wins:
//! - the M coming back (`try_exit_syscall`, the fast path: it keeps its P);
//! - sysmon (`try_retake`, sysmon.rs and retake.rs), for a long syscall
//!   when something waits for the P, then `handoffp`;
//! - a stop-the-world (`try_stop`, stw.rs); entering while a stop is
//!   pending gives the P to it at once (Go's `entersyscall_gcwait`).
//!
//! A returning M that lost its P takes an idle one, else switches to g0
//! with an `ExitSyscall` request: the goroutine goes to the global queue
//! and the M parks (Go's `exitsyscall0`). `tests/loom_handoff.rs` models
//! the three-way race on the real `PStatus` code.
//!
//! `enter_syscall` is the hot path of every C call (gort-cgo's `call`):
//! plain stores and loads, no clock read and no locked instruction. sysmon
//! times syscalls itself by watching each P's `syscalltick` (retake.rs),
//! and a syscall wakes a sysmon sleeping long through an asymmetric Dekker
//! handshake (`watch_syscall`, membarrier.rs): the entry pays a compiler
//! fence, sysmon a `membarrier` before each long sleep.

use crate::current::{current_g, sched_of};
use crate::g::G;
use crate::m::M;
use crate::mcall::{switch_to_g0, Request};
use crate::p::HeldP;
use crate::park::check_cancel;
use crate::sched::Sched;
use crate::status::Status;
use std::panic::resume_unwind;
use std::ptr::{self};
use std::sync::atomic::Ordering;

/// Runs `f`, a blocking system call or anything else that may block the
/// thread, in syscall state: the goroutine keeps its thread, but its P can
/// be handed to another thread by sysmon after ~20 µs, so the other
/// goroutines keep running (Go's `entersyscall`/`exitsyscall`). On return
/// the goroutine takes its old P back if it is still free (one CAS), else
/// an idle one, else it queues and its thread parks. Outside a goroutine,
/// `f` just runs.
///
/// `f` must not call back into the scheduler (spawn, park, channels):
/// it runs without a P.
pub fn syscall<R>(f: impl FnOnce() -> R) -> R {
    let g = current_g();
    if g.is_null() {
        return f();
    }
    crate::park::preempt_check(g);
    // SAFETY: the running goroutine is live.
    let gr = unsafe { &*g };
    let sched = sched_of(g);
    sched.enter_syscall(gr);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    sched.exit_syscall(gr);
    check_cancel(g);
    match r {
        Ok(v) => v,
        Err(payload) => resume_unwind(payload),
    }
}

impl Sched {
    /// Go's `entersyscall`: the goroutine keeps its M but its P becomes
    /// retakeable (status SYSCALL) by sysmon or a stop-the-world.
    ///
    /// The fast path is plain stores and one load: no clock read (sysmon
    /// times syscalls by watching `syscalltick`) and no read-modify-write
    /// on shared memory (see `watch_syscall` for how sysmon still never
    /// misses one).
    #[inline(always)]
    pub(crate) fn enter_syscall(&self, g: &G) {
        let m = g.m();
        // SAFETY: g runs on m (read after its last switch).
        let mr = unsafe { &*m };
        // The entry half of the retake handshake first: if sysmon took
        // the P from this goroutine (see `preempt`), the M forgets it there
        // and enters the syscall without one.
        self.held_p(m);
        // From `pr.status.enter_syscall()` below, the P belongs to its
        // status word: whoever wins it (this M coming back, sysmon, a
        // stop) owns it next.
        let p = mr.releasep().map_or(ptr::null_mut(), HeldP::into_raw);
        mr.oldp.set(p);
        if p.is_null() {
            // sysmon took the P (see `preempt`): a syscall without one;
            // exit_syscall finds an idle P or queues the goroutine.
            g.owner_set_status(Status::Running, Status::Syscall);
            return;
        }
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
            // SAFETY: winning the stop made p the stop's.
            self.stw_stop_p(&mut l, unsafe { HeldP::claim(p) });
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
    pub(crate) fn watch_syscall(&self) {
        crate::membarrier::light_fence();
        if !self.sysmon_polling.load(Ordering::Relaxed) {
            self.sysmon_polling.store(true, Ordering::Relaxed);
            self.sysmon_note.wake();
        }
    }

    /// Go's `exitsyscall`: take the old P back with one CAS if nobody took
    /// it (fast path), else an idle P, else queue the goroutine and park
    /// this M (slow path, on g0). Always inlined: out of line, the call
    /// cost a tenth of a cgo round trip (callgrind: 17 of 487 instructions).
    #[inline(always)]
    pub(crate) fn exit_syscall(&self, g: &G) {
        let m = g.m();
        // SAFETY: a goroutine in a syscall has not switched: still on m.
        let mr = unsafe { &*m };
        if self.exit_syscall_fast(mr) {
            g.owner_set_status(Status::Syscall, Status::Running);
            self.leave_runtime(m);
            return;
        }
        exit_syscall_slow(g);
    }

    /// The part of `exitsyscall` that needs no switch: the old P back with
    /// one CAS, else an idle P. True when the M holds a P again.
    #[inline]
    pub(crate) fn exit_syscall_fast(&self, mr: &M) -> bool {
        let oldp = mr.oldp.replace(ptr::null_mut());
        // SAFETY: Ps live as long as the Sched.
        if !oldp.is_null() && unsafe { (*oldp).status.try_exit_syscall() } {
            // SAFETY: winning the status word gave the P back to this M.
            mr.acquirep(unsafe { HeldP::claim(oldp) });
            return true;
        }
        self.exit_syscall_idle_p(mr)
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn exit_syscall_idle_p(&self, mr: &M) -> bool {
        let idle = {
            let mut l = self.lock();
            self.pidle_get(&mut l)
        };
        match idle {
            Some(p) => {
                mr.acquirep(p);
                true
            }
            None => false,
        }
    }
}

/// `exit_syscall` without a P to be had at once: queue the goroutine and
/// park this M, on g0.
#[cold]
#[inline(never)]
fn exit_syscall_slow(g: &G) {
    let mut req = Request::ExitSyscall;
    switch_to_g0(g as *const G as *mut G, &mut req);
}

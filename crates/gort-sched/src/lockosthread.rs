//! Goroutines wired to threads (Go's `LockOSThread`, `stoplockedm`,
//! `startlockedm`, `mexit`).
//!
//! Counted as in Go: `M::locked_ext` for the user's calls, `M::locked_int`
//! for the runtime's own (a C callback's goroutine, and a goroutine that
//! parks or yields while unwinding: std's panic count is per thread, so it
//! is pinned for that park). While either is non-zero, `M::lockedg` and
//! `G::lockedm` point at each other, and:
//! - the M runs nothing else: when its goroutine parks, `stop_locked_m`
//!   hands the P off (proc.rs) and sleeps until the goroutine is runnable;
//! - an M that dequeues someone else's locked goroutine gives that
//!   goroutine's M its own P (`start_locked_m`, the P travelling in
//!   `nextp` with the G in hand) and stops itself;
//! - a goroutine that exits while locked ends its thread
//!   (`exit_locked_m`), M0's too: M0 is a thread `run` started, and the
//!   caller of `run` only waits (Go, whose m0 is the process's main thread,
//!   wedges it instead).
//!
//! Two details copied from Go after a test caught them: `start_locked_m`
//! takes the target out of `nmidlelocked` *before* handing it the P (Go's
//! `incidlelocked(-1)`), else checkdead could see every M idle while the
//! target is about to run; and a locked M's note is not cleared before it
//! sleeps, because its goroutine can be readied and handed back first.
//! `nmidlelocked` is signed for the same reason.

use crate::current::running_g;
use crate::fatal::fatal;
use crate::g::{GRef, G};
use crate::m::M;
use crate::sched::Sched;
use crate::status::Status;
use std::sync::atomic::Ordering;

impl Sched {
    /// Go's `stoplockedm`: the locked goroutine is not runnable; give the P
    /// away and sleep until `start_locked_m` hands one back with the
    /// goroutine runnable. False if the run is over.
    pub(crate) fn stop_locked_m(&self, m: *mut M) -> bool {
        // SAFETY: m is the M of this thread.
        let mr = unsafe { &*m };
        // The note is clear here (every sleep is followed by a clear), and
        // it is not cleared again: start_locked_m may wake us before we get
        // to sleep, since our goroutine can be readied and dequeued by
        // another M as soon as its park's unlock function ran.
        if let Some(p) = mr.releasep() {
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
        // The waker (start_locked_m) took us out of nmidlelocked before it
        // handed us the P, so checkdead never sees us idle while we are
        // about to run.
        if !mr.sleep_until_handed_p() {
            return false;
        }
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
    pub(crate) fn take_own_locked_g(&self, mr: &M) -> bool {
        let mine = mr.lockedg.get();
        let p = mr.p();
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
            let p = mr
                .releasep()
                .unwrap_or_else(|| fatal("stoplockedm: M without a P"));
            self.handoffp(p);
            return self.stop_locked_m(mr as *const M as *mut M);
        }
        true
    }

    /// Go's `startlockedm`: `g` is locked to another M; hand it our P (with
    /// g in hand) and park this M. False if the run is over.
    pub(crate) fn start_locked_m(&self, m: *mut M, g: GRef) -> bool {
        // SAFETY: m is the M of this thread; g's lockedm is a live M.
        let (mr, target) = unsafe { (&*m, &*(*g.as_ptr()).lockedm()) };
        // The target stops counting as idle before it gets the P (Go's
        // incidlelocked(-1) in startlockedm): otherwise, once this M parks,
        // checkdead would see every M idle while the target is about to run.
        self.lock().nmidlelocked -= 1;
        let p = mr
            .releasep()
            .unwrap_or_else(|| fatal("startlockedm: M without a P"));
        // The P travels with the goroutine to its M; startlockedm's caller
        // owns it until the target takes it from nextp (a P in transit has
        // an owner).
        target.give_nextp(p);
        target.park.wake();
        self.stopm(m)
    }

    /// A goroutine exited while locked to this M: the thread goes with it
    /// (Go's `mexit`), M0's too (a thread `run` started; the caller of
    /// `run` only waits).
    pub(crate) fn exit_locked_m(&self, mr: &M) {
        mr.exit_thread.set(false);
        let p = mr.releasep();
        if mr.spinning.replace(false) {
            self.nmspinning.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(p) = p {
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
}

/// Wires the calling goroutine to its current OS thread (Go's
/// `runtime.LockOSThread`): until a matching number of
/// [`unlock_os_thread`] calls, it always runs on this thread, and the
/// thread runs no other goroutine. Calls nest. A goroutine that exits while
/// locked takes its thread with it (the thread ends), as in Go.
///
/// This is how thread-local values (`thread_local!`) stay put across
/// parks: without it, a goroutine may resume on another thread after any
/// park or yield. Lock before the first thread-local use: code in the same
/// function from before the lock may have kept a thread-local's address
/// (aarch64, i686), and the goroutine may have moved since. Spawning with
/// [`GoBuilder::locked`](crate::GoBuilder::locked) locks from the first
/// line.
///
/// # Panics
/// Outside a goroutine.
pub fn lock_os_thread() {
    let g = running_g("lock_os_thread");
    // SAFETY: as in lock_internal.
    unsafe {
        let m = (*g).m();
        let n = (*m).locked_ext.get();
        if n == u32::MAX {
            crate::fatal::fatal("lock_os_thread nested too deeply");
        }
        (*m).locked_ext.set(n + 1);
        (*m).lockedg.set(g);
        (*g).set_lockedm(m);
    }
}

/// Undoes one [`lock_os_thread`]; when none is left (and the runtime holds
/// no lock of its own), the goroutine may move between threads again.
/// Without a matching lock it does nothing, as in Go.
///
/// # Panics
/// Outside a goroutine.
pub fn unlock_os_thread() {
    let g = running_g("unlock_os_thread");
    // SAFETY: as in lock_internal.
    unsafe {
        let m = (*g).m();
        let n = (*m).locked_ext.get();
        if n == 0 {
            return;
        }
        (*m).locked_ext.set(n - 1);
        if n == 1 && (*m).locked_int.get() == 0 {
            (*m).lockedg.set(std::ptr::null_mut());
            (*g).set_lockedm(std::ptr::null_mut());
        }
    }
}

/// `lock_internal` for a goroutine that is not running yet, on M `m`
/// (a callback from C locks before leaving syscall state).
pub(crate) fn lock_m(m: *mut crate::m::M, g: *mut G) {
    // SAFETY: m is the calling thread's M and g the goroutine about to run
    // on it (the caller's contract); both live as long as their Sched.
    unsafe {
        (*m).locked_int.set((*m).locked_int.get() + 1);
        (*m).lockedg.set(g);
        (*g).set_lockedm(m);
    }
}

pub(crate) fn lock_internal(g: *mut G) {
    // SAFETY: g is the running goroutine and g.m its M (set by execute
    // before the last switch to it; read now, after that switch).
    unsafe {
        let m = (*g).m();
        (*m).locked_int.set((*m).locked_int.get() + 1);
        (*m).lockedg.set(g);
        (*g).set_lockedm(m);
    }
}

pub(crate) fn unlock_internal(g: *mut G) {
    // SAFETY: as in lock_internal.
    unsafe {
        let m = (*g).m();
        let n = (*m).locked_int.get();
        if n == 0 {
            crate::fatal::fatal("unlock of an internal thread lock that is not held");
        }
        (*m).locked_int.set(n - 1);
        if n == 1 && (*m).locked_ext.get() == 0 {
            (*m).lockedg.set(std::ptr::null_mut());
            (*g).set_lockedm(std::ptr::null_mut());
        }
    }
}

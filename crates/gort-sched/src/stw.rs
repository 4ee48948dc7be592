//! Stop-the-world and the resize it protects (Go's `stopTheWorld`,
//! `procresize`, `startTheWorld`), for [`set_procs`].
//!
//! 1. Stop: set `stw_wait`, take every idle P, and count the others. An M
//!    notices `stw_wait` at the top of find_runnable and gives its P to the
//!    stop; `pidle_put` gives a P to the stop instead of the idle list
//!    while `stw_wait` is set, so no P can go idle unseen; a P in a
//!    syscall is stopped on the spot (a CAS on its status word, pstatus.rs),
//!    and a goroutine entering a syscall while a stop is pending gives its
//!    P at once. A P in transit to an M is stopped by that M, its owner.
//!    The last P to stop wakes the caller.
//! 2. Resize with every P in hand: new Ps are made (or earlier ones
//!    reused: Ps are never freed, so a reader of `allp` racing the resize
//!    always sees a valid P); removed Ps' goroutines go to the global
//!    queue and their caches to the shared pools; the caller moves to P 0
//!    if its own P was removed.
//! 3. Start: Ps with work get an M, the rest go idle, and `wakep` runs.
//!
//! One stop at a time (`stw_active`); a second caller yields until the
//! first is done, so that its own P can be stopped. A goroutine that runs
//! without entering the runtime delays the stop by about a slice: sysmon
//! counts a pending stop as work waiting and retakes its P (preempt.rs),
//! which `handoffp` then gives to the stop.

use crate::current::{running_g, sched_of};
use crate::error::Error;
use crate::fatal::fatal;
use crate::g::GRef;
use crate::m::M;
use crate::p::{HeldP, P};
use crate::park::yield_now;
use crate::sched::{Locked, Sched, MAX_PROCS};
use std::sync::atomic::Ordering;

impl Sched {
    /// Counts `p` as stopped for the stop-the-world in progress.
    pub(crate) fn stw_stop_p(&self, l: &mut Locked, p: HeldP) {
        l.stw_stopped.push(p.into_raw());
        l.stw_wait_for -= 1;
        if l.stw_wait_for == 0 {
            self.stw_note.wake();
        }
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

    /// Go's `stopTheWorld` + `procresize` + `startTheWorld`, for
    /// `set_procs`. Runs on the calling goroutine's M, which keeps its P
    /// throughout; every other P is stopped first (idle ones at once,
    /// running ones when their goroutine next enters the runtime, or when
    /// sysmon retakes the P of one that does not). Returns the previous
    /// number of Ps.
    pub(crate) fn set_procs(&self, m: *mut M, n: usize) -> usize {
        // SAFETY: m is the caller's M, holding a P.
        let mr = unsafe { &*m };
        let mine = mr.p();
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
                // SAFETY: winning the stop made p ours.
                self.stw_stop_p(&mut l, unsafe { HeldP::claim(p as *const P as *mut P) });
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
                    pstore.push(P::new(i, &self.sysmon_note, &self.sysmon_until));
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
        // This M held its P throughout. SAFETY: as above.
        if unsafe { (*mine).id } >= n {
            // Its P was removed: the P stays in `pstore`, unused, and this M
            // takes P 0, which the stop gave to us (it was not ours).
            let removed = mr
                .releasep()
                .unwrap_or_else(|| fatal("set_procs: M without a P"));
            let _ = removed.into_raw();
            // SAFETY: P 0 is in `ps`, stopped and ours.
            mr.acquirep(unsafe { HeldP::claim(self.p(0) as *const P as *mut P) });
        }
        let mine = mr.p();
        self.stw_wait.store(false, Ordering::Release);
        let mut runnable = Vec::new();
        for &p in &ps {
            // SAFETY: as above.
            let pr = unsafe { &*p };
            if pr.id >= n || p == mine {
                continue;
            }
            // SAFETY: as above: the stop list gave p to us.
            let p = unsafe { HeldP::claim(p) };
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
}

/// Changes the number of Ps (GOMAXPROCS) of the current runtime and
/// returns the previous number.
///
/// The world is stopped first, as in Go: Ps that are idle stop at once,
/// Ps running a goroutine stop when that goroutine next enters the
/// runtime; sysmon takes the P of a goroutine that does not within about a
/// slice (10 ms). Goroutines queued on removed Ps move to the global queue.
///
/// # Errors
/// `Error::Config` for 0 or more than [`MAX_PROCS`].
///
/// # Panics
/// Outside a goroutine.
pub fn set_procs(n: usize) -> Result<usize, Error> {
    if n == 0 {
        return Err(crate::error::ConfigError::new("set_procs", 0, "at least 1").into());
    }
    if n > MAX_PROCS {
        return Err(
            crate::error::ConfigError::new("set_procs", n, format!("at most {MAX_PROCS}")).into(),
        );
    }
    let g = running_g("set_procs");
    let sched = sched_of(g);
    while !sched.try_begin_stw() {
        yield_now();
    }
    // The entry half of the retake handshake (see `preempt`): from here
    // sysmon cannot take our P, so `M::p` names a P we own. If sysmon took
    // it already (the goroutine ran user code since its last switch), the
    // M forgets it here, and we yield to come back on an M that holds one.
    let m = loop {
        // SAFETY: g is the running goroutine; g.m is its current M (read
        // after the last switch).
        let m = unsafe { (*g).m() };
        if !sched.held_p(m).is_null() {
            break m;
        }
        yield_now();
    };
    let old = sched.set_procs(m, n);
    sched.end_stw();
    sched.leave_runtime(m);
    Ok(old)
}

//! The end of a run: when the main goroutine exits (or checkdead fires),
//! every other goroutine is unwound and every M stops.
//!
//! `begin_shutdown` sets the flag and readies every waiting G with its
//! `cancel` flag set; a park (or yield) by a cancelled goroutine, or by
//! any goroutine during shutdown, unwinds it with the payload `Shutdown`,
//! which its entry catches, so destructors run. Wait registrations must
//! therefore be guards that deregister on drop. When the last goroutine is
//! gone (`finish`: the exit that brings the count to zero, spawn.rs) sysmon
//! stops, the idle Ms are woken and exit, M0's loop returns, and `run`
//! joins every M thread.
//!
//! # Parks racing the shutdown
//!
//! A park sets the goroutine Waiting on its g0 and then runs the unlock
//! function, which reads the goroutine's stack. Two races with the scan
//! above, both seen under qemu: the scan readied a goroutine whose unlock
//! had not run yet, another M resumed it, and the unlock read a stack in
//! use (a crash); and a goroutine that checked the flag before it was set
//! parked after the scan had passed it, and waited for ever (a hang). So
//! the g0 sets `G::parked` after the unlock function returns; the scan
//! readies only Waiting goroutines with `parked` set; and the g0, after
//! `parked`, reads the shutdown flag and readies the goroutine itself if
//! it is set. A Dekker pair: shutdown sets the flag, `heavy_fence`, scans;
//! the g0 sets `parked`, `light_fence`, reads the flag (membarrier makes
//! the park's side a compiler fence). Either the scan sees `parked` or the
//! g0 sees the flag; if both, `ready`'s compare-and-swap on the status
//! lets one of them queue it. `parked` is cleared at the start of each
//! park, before the Waiting store (a release) that the scan reads first.
//! The same re-check makes a check before the park unneeded: a goroutine
//! that parks during the shutdown is readied by its own g0 and unwinds
//! when it resumes (one switch more, during the shutdown only, and none
//! on the hot path of every wait).
//!
//! # Detached goroutines
//!
//! A goroutine that never enters the runtime (a CPU loop, a blocking std
//! call) or sits in `syscall()` for ever cannot be unwound: gort never
//! interrupts a goroutine (preempt.rs says why). Go does not wait for it
//! either: when `main` returns, the process exits. gort's `run` must
//! return to its caller instead, so it returns without that goroutine:
//!
//! - During shutdown sysmon asks every M's goroutine to yield
//!   (`request_preempt`); a goroutine that reaches a preemption point then
//!   unwinds there (`park::preempt_point`), as it would at a park, so a
//!   loop of non-blocking operations ends too.
//! - When every goroutine left has been running or in a syscall (none
//!   runnable, none parked) for `DETACH_GRACE_NS`, sysmon ends the run
//!   (`detach`): `finished` and `detached` are set, idle Ms exit, and
//!   `run` returns without joining the threads of the Ms still running
//!   goroutines. The main goroutine runs on an M of its own, never on the
//!   caller's thread (runtime.rs), so that thread is always free to return.
//! - A detached goroutine keeps its thread, its M and its stack: `run`
//!   leaks its `Sched` (and the stacks, Ms and Gs it owns) instead of
//!   dropping it, so nothing the goroutine can reach is freed under it. At
//!   its next runtime entry it unwinds (destructors run, on its thread),
//!   its M finds the run finished when it goes idle (`stopm`) and its
//!   thread ends. A goroutine that never enters the runtime keeps its
//!   thread until the process exits, as in Go.
//!
//! Rejected: waiting for such goroutines (`run` never returned: a program
//! whose main returned beside a spinning goroutine hung), and freeing the
//! runtime under them (use after free). Reference-counting the `Sched`
//! from every M thread would give the memory back when the last detached
//! goroutine unwinds; the leak is bounded by one runtime per `run` that
//! ended this way, which a program does rarely, so the simpler rule wins.

use crate::g::{GRef, G};
use crate::handshake::SLICE_NS;
use crate::m::M;
use crate::sched::{Ending, Locked, Sched};
use crate::status::Status;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

/// How long sysmon waits, during shutdown, for goroutines that are all
/// running or in a syscall to return to the runtime before it ends the run
/// without them: two slices, so that a goroutine about to park (and
/// unwind) or finishing its last computation is not cut loose for nothing.
const DETACH_GRACE_NS: u64 = 2 * SLICE_NS;

impl Sched {
    /// The last goroutine of a shutdown is gone: stop sysmon, wake M0's
    /// wait and every idle M so that they exit.
    pub(crate) fn finish(&self, l: &mut Locked) {
        self.finished.store(true, Ordering::Release);
        self.sysmon_note.wake();
        self.netpoll_finish();
        self.done.wake();
        for m in std::mem::take(&mut l.midle) {
            // SAFETY: idle Ms are parked on their notes; nextp stays null
            // so they exit.
            unsafe { (*m).park.wake() };
        }
    }

    pub(crate) fn set_ending(&self, ending: Ending) {
        let mut e = self.ending.lock().unwrap_or_else(|e| e.into_inner());
        if e.is_none() {
            *e = Some(ending);
        }
    }

    pub(crate) fn take_ending(&self) -> Option<Ending> {
        self.ending.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Starts shutdown: every parked goroutine is made runnable with its
    /// cancel flag set, so that its park unwinds it (destructors run).
    pub(crate) fn begin_shutdown(&self) {
        if self.shutdown.swap(true, Ordering::AcqRel) {
            return;
        }
        // Pairs with the parking g0's fence (schedule.rs, the Park
        // request): a park whose `parked` this scan does not see reads the
        // flag set above and readies itself.
        crate::membarrier::heavy_fence();
        let waiting: Vec<GRef> = {
            let allgs = self.lock_allgs();
            allgs
                .iter()
                .filter(|g| g.status() == Status::Waiting && g.parked.load(Ordering::Relaxed))
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
        // at once (see `park`). sysmon hurries the running ones
        // (`shutdown_pass`).
        self.sysmon_note.wake();
    }

    /// Wakes every idle M so that it notices the end of the run.
    pub(crate) fn wake_all_idle(&self) {
        let idle: Vec<*mut M> = std::mem::take(&mut self.lock().midle);
        for m in idle {
            // SAFETY: idle Ms are parked on their notes; nextp stays null so
            // they exit.
            unsafe { (*m).park.wake() };
        }
    }

    #[inline]
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// sysmon's pass during shutdown: asks every goroutine running on an
    /// M to yield (its next preemption point unwinds it), and ends the
    /// run without the goroutines that stay outside the runtime for
    /// `DETACH_GRACE_NS` (see "Detached goroutines" above). `since` is
    /// sysmon's record of when it first saw only such goroutines left.
    /// Returns how soon sysmon should look again, if it should.
    pub(crate) fn shutdown_pass(&self, now: u64, since: &mut Option<u64>) -> Option<u64> {
        if self.finished.load(Ordering::Acquire) {
            return None;
        }
        for m in self.lock_allm().iter() {
            m.lv.request_preempt();
        }
        let (mut outside, mut inside) = (0usize, 0usize);
        for g in self.lock_allgs().iter() {
            match g.status() {
                Status::Running | Status::Syscall => outside += 1,
                Status::Runnable | Status::Waiting => inside += 1,
                Status::Dead => {}
            }
        }
        if outside == 0 || inside > 0 {
            *since = None;
            return Some(DETACH_GRACE_NS);
        }
        let first = *since.get_or_insert(now);
        if now.saturating_sub(first) < DETACH_GRACE_NS {
            return Some(DETACH_GRACE_NS - (now - first));
        }
        self.detach();
        None
    }

    /// Ends the run without the goroutines still outside the runtime.
    fn detach(&self) {
        let mut l = self.lock();
        if self.finished.load(Ordering::Acquire) {
            return;
        }
        self.detached.store(true, Ordering::Release);
        self.finish(&mut l);
    }

    /// Joins the threads of every M (called by `run` once the run is
    /// over). After a detach, joins none: some run goroutines that may
    /// never return to the runtime; every M thread ends by itself once its
    /// goroutine is gone (`stopm` sees `finished`).
    pub(crate) fn join_threads(&self) {
        if self.detached.load(Ordering::Acquire) {
            drop(std::mem::take(&mut self.lock().threads));
            return;
        }
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

    /// Waits until the run is over (for M0 after its loop ended early).
    pub(crate) fn wait_done(&self) {
        self.done.sleep();
    }
}

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
//! joins every M thread. A goroutine that never parks or yields cannot be
//! stopped: there is no preemption.

use crate::g::{GRef, G};
use crate::m::M;
use crate::sched::{Ending, Locked, Sched};
use crate::status::Status;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

impl Sched {
    /// The last goroutine of a shutdown is gone: stop sysmon, wake M0's
    /// wait and every idle M so that they exit.
    pub(crate) fn finish(&self, l: &mut Locked) {
        self.finished.store(true, Ordering::Release);
        self.sysmon_note.wake();
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
    pub(crate) fn wake_all_idle(&self) {
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

    /// Waits until the run is over (for M0 after its loop ended early).
    pub(crate) fn wait_done(&self) {
        self.done.sleep();
    }
}

//! Ps changing hands: the idle list (Go's `pidleget`, `pidleput`), M0's
//! first P, and `handoffp`.
//!
//! Every function here moves a P between the owners listed in p.rs, and
//! each takes the P from exactly one owner and gives it to exactly one:
//! - `pidle_get` (under the lock) makes the caller the owner of a P from
//!   the idle list and marks it running;
//! - `pidle_put` (under the lock) takes a P from the caller: to the idle
//!   list, or, while the world is being stopped, to the stop (Go checks
//!   `gcwaiting` in handoffp and findRunnable for the same reason): a P
//!   must never go idle unseen by a stop. An idle P carries no goroutine
//!   credit (spawn.rs), so that checkdead sees an exact count;
//! - `handoffp` gives away the P of an M about to block (a syscall retaken
//!   by sysmon, a locked goroutine that parked, an exiting thread): to a
//!   new M if there is work for it, to a spinning M if nobody is looking
//!   for work, else to the idle list.

use crate::m::M;
use crate::p::{HeldP, P};
use crate::sched::{Locked, Sched};
use std::sync::atomic::Ordering;

impl Sched {
    /// Makes M0, holding P 0, with every other P idle. Returns M0, for
    /// `run` to start on a thread of its own (`mstart`).
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
        unsafe { (*m0).acquirep(HeldP::claim(self.p(0) as *const P as *mut P)) };
        m0
    }

    /// Go's `pidleget`: a P off the idle list, owned by the caller now.
    pub(crate) fn pidle_get(&self, l: &mut Locked) -> Option<HeldP> {
        let p = l.pidle.pop()?;
        // SeqCst: pairs with sysmon's check before it sleeps past the next
        // slice's end (`SchedLive::sysmon_busy`).
        self.npidle.fetch_sub(1, Ordering::SeqCst);
        if self.live.sysmon_must_wake() {
            self.sysmon_note.wake();
        }
        // SAFETY: the idle list owned p, and we took it off under the lock.
        let p = unsafe { HeldP::claim(p) };
        p.status.set_running();
        Some(p)
    }

    /// Puts a P on the idle list, or, while the world is being stopped,
    /// hands it to the stop instead (Go's check of `gcwaiting` in handoffp
    /// and findRunnable): a P must never go idle unseen by a stop.
    pub(crate) fn pidle_put(&self, l: &mut Locked, p: HeldP) {
        // Idle Ps carry no exits, so that checkdead (every P idle) sees an
        // exact count.
        if self.flush_exits(&p) {
            self.finish(l);
        }
        if self.stw_wait.load(Ordering::Acquire) {
            self.stw_stop_p(l, p);
            return;
        }
        l.pidle.push(p.into_raw());
        self.npidle.fetch_add(1, Ordering::AcqRel);
    }

    /// Go's `handoffp`: gives away a P whose M is about to block: to a new
    /// M if there is work for it, to a spinning M if nobody is looking for
    /// work, else to the idle list.
    pub(crate) fn handoffp(&self, p: HeldP) {
        let has_local = !p.runq.is_empty();
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
        // SAFETY: we hold p.
        unsafe { p.owned() }.stacks.flush(&self.stacks);
        self.pidle_put(&mut l, p);
    }

    pub(crate) fn release_for_exit(&self, mr: &M) {
        if let Some(p) = mr.releasep() {
            let mut l = self.lock();
            // SAFETY: we hold p until it goes back to the idle list here.
            let owned = unsafe { p.owned() };
            owned.stacks.flush(&self.stacks);
            self.pidle_put(&mut l, p);
        }
        if mr.spinning.replace(false) {
            self.nmspinning.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

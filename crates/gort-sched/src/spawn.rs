//! Making goroutines and ending them (Go's `newproc`, `goexit0`), and
//! counting them.
//!
//! A spawn touches no shared cache line with a locked instruction:
//! - the id comes from a per-P batch of 16 (Go's `goidcache`: ids are
//!   unique and increase on each P; the main goroutine is 1);
//! - the count `ngoroutines` is kept with per-P credit: a P reserves 32
//!   counts at a time and spends one per spawn, an exit gives one back to
//!   its P, and all of it is returned before a P goes idle and at every
//!   exit once shutdown began. The count therefore never falls below the
//!   truth, a zero is exact, and with every P idle (checkdead) it is exact;
//! - the new goroutine's first frame is written by the M that runs it
//!   (mcall.rs, `first_context`), not by the spawner, which would miss on a
//!   stack line last written by another M.
//!
//! Order in `gdestroy` (must hold): the main goroutine starts the shutdown
//! *before* its exit is subtracted, so whichever exit brings the count to
//! zero also sees `shutdown` and wakes `run`. The other order let a
//! goroutine exiting on another M reach zero in between, and nobody woke
//! `run` (`tests/exit_race.rs`).

use crate::current::current_m_of;
use crate::fatal::fatal;
use crate::g::{GRef, G};
use crate::gfree::{GFREE_BATCH, GFREE_LOCAL_MAX};
use crate::m::M;
use crate::p::P;
use crate::sched::{Ending, Sched};
use crate::status::{Status, WaitReason};
use gort_arch::Context;
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering;

/// Counts a P reserves in `Sched::ngoroutines` at a time (and keeps when it
/// gives some back).
pub(crate) const COUNT_BATCH: usize = 32;

/// Goroutine ids a P takes at a time (Go's `_GoidCacheBatch`).
pub(crate) const GOID_BATCH: u64 = 16;

impl Sched {
    /// Go's `newproc`: makes a runnable G for `f` and queues it on the
    /// current P (runnext) or, from outside the runtime, on the global queue.
    pub(crate) fn spawn(
        &self,
        f: crate::entry::Entry,
        stack_size: Option<usize>,
        is_main: bool,
    ) -> Result<GRef, gort_stack::StackError> {
        // In a forked child, its other Ms and sysmon are gone (fork.rs).
        crate::fork::check(self.fork_gen, "a goroutine was spawned");
        let cur_m = current_m_of(self);
        let g = self.new_g(cur_m, f, stack_size)?;
        // SAFETY: g was just made and is owned by us.
        unsafe { (*g.as_ptr()).is_main.set(is_main) };
        self.count_spawn(cur_m);
        self.make_runnable(cur_m, g, true);
        self.leave_runtime(cur_m);
        Ok(g)
    }

    pub(crate) fn new_g(
        &self,
        cur_m: *mut M,
        f: crate::entry::Entry,
        stack_size: Option<usize>,
    ) -> Result<GRef, gort_stack::StackError> {
        let size = stack_size.unwrap_or(self.default_stack_size);
        let pooled = size == self.stacks.stack_size();
        let p = if cur_m.is_null() {
            ptr::null_mut()
        } else {
            self.held_p(cur_m)
        };
        // A dead G: the P's cache (refilled from the global list a batch at
        // a time, Go's gfget), else the global list, else a new one.
        let mut g: *mut G = if !p.is_null() {
            // SAFETY: we hold p (it is our M's P).
            let owned = unsafe { (*p).owned() };
            if owned.gfree.is_empty() {
                let mut l = self.lock();
                let n = l.gfree.len().min(GFREE_BATCH);
                let at = l.gfree.len() - n;
                owned.gfree.extend(l.gfree.drain(at..));
            }
            owned.gfree.pop().unwrap_or(ptr::null_mut())
        } else {
            self.lock().gfree.pop().unwrap_or(ptr::null_mut())
        };
        if g.is_null() {
            let mut boxed = Box::new(G::new((self as *const Sched).cast()));
            g = &mut *boxed;
            self.lock_allgs().push(boxed);
        }
        // SAFETY: g is dead and now exclusively ours.
        let gr = unsafe { &*g };
        // Reuse the G's stack when it has the right size.
        // SAFETY: as above.
        let stack_slot = unsafe { &mut *gr.stack.get() };
        if stack_slot.as_ref().is_some_and(|s| s.size() != size) {
            let old = stack_slot.take().expect("checked");
            if self.stacks.accepts(&old) {
                self.stacks.put(old);
            }
        }
        if stack_slot.is_none() {
            let stack = if pooled && !p.is_null() {
                // SAFETY: we hold p.
                unsafe { (*p).owned().stacks.get(&self.stacks)? }
            } else if pooled {
                self.stacks.get()?
            } else {
                gort_stack::Stack::new(gort_stack::StackConfig {
                    size,
                    ..Default::default()
                })?
            };
            *stack_slot = Some(stack);
        }
        debug_assert!(stack_slot.is_some());
        gr.id.set(self.next_goid(p));
        gr.cancel.store(false, Ordering::Relaxed);
        gr.wait_reason.set(WaitReason::None);
        // SAFETY: exclusively ours (dead G).
        unsafe {
            let old = std::mem::take(&mut *gr.unwind.get());
            if old.has_resume_point() {
                fatal("a goroutine exited with a live resume point");
            }
        }
        // SAFETY: exclusively ours (dead G).
        unsafe { *gr.entry.get() = Some(f) };
        // No first frame yet: `execute` writes it on the M that runs the
        // goroutine (see `first_context`). Writing it here made the
        // spawner miss on a stack line last written by another M.
        // SAFETY: exclusively ours (dead G).
        unsafe { *gr.ctx.get() = Context::empty() };
        gr.set_status(Status::Runnable);
        // SAFETY: g is non-null.
        Ok(GRef(unsafe { NonNull::new_unchecked(g) }))
    }

    /// Counts a new goroutine in `ngoroutines`: from the P's credit, which
    /// is topped up a batch at a time.
    pub(crate) fn count_spawn(&self, cur_m: *mut M) {
        let p = if cur_m.is_null() {
            ptr::null_mut()
        } else {
            self.held_p(cur_m)
        };
        if p.is_null() {
            self.ngoroutines.fetch_add(1, Ordering::AcqRel);
            return;
        }
        // SAFETY: our M holds p (so only we write its credit).
        let pr = unsafe { &*p };
        let mut credit = pr.credit.load(Ordering::Relaxed);
        if credit == 0 {
            self.ngoroutines.fetch_add(COUNT_BATCH, Ordering::AcqRel);
            credit = COUNT_BATCH;
        }
        pr.credit.store(credit - 1, Ordering::Release);
    }

    /// A new goroutine id: from the P's batch when there is a P (ids are
    /// unique and increase on each P, as Go's), else from the global
    /// counter (the main goroutine: 1).
    pub(crate) fn next_goid(&self, p: *mut P) -> u64 {
        if p.is_null() {
            return self.goid.fetch_add(1, Ordering::Relaxed) + 1;
        }
        // SAFETY: our M holds p.
        let owned = unsafe { (*p).owned() };
        if owned.goid_next == owned.goid_end {
            let first = self.goid.fetch_add(GOID_BATCH, Ordering::Relaxed) + 1;
            owned.goid_next = first;
            owned.goid_end = first + GOID_BATCH;
        }
        let id = owned.goid_next;
        owned.goid_next += 1;
        id
    }

    /// Live goroutines: `ngoroutines` less every P's credit (a snapshot).
    /// A P reserves counts (`ngoroutines` up) before its credit shows them,
    /// and gives them back (credit down) before `ngoroutines` drops: if
    /// `ngoroutines` did not change while the credits were read, the
    /// result never counts a live goroutine out; it may count one that
    /// just exited, for a moment.
    pub(crate) fn num_goroutines(&self) -> usize {
        loop {
            let total = self.ngoroutines.load(Ordering::Acquire);
            let credit: usize = self.allp().map(|p| p.credit.load(Ordering::Acquire)).sum();
            if self.ngoroutines.load(Ordering::Acquire) == total {
                return total.saturating_sub(credit);
            }
        }
    }

    /// Gives a P's credit back to `ngoroutines`. True if that brought it
    /// to zero during shutdown: the run is over, and the caller must call
    /// `finish` (with the lock; not held here).
    ///
    /// The caller holds `p`.
    pub(crate) fn flush_exits(&self, p: &P) -> bool {
        self.flush_credit(p, 0)
    }

    /// Gives back all of a P's credit but `keep`; see `flush_exits`. The
    /// caller holds `p`.
    pub(crate) fn flush_credit(&self, p: &P, keep: usize) -> bool {
        let credit = p.credit.load(Ordering::Relaxed);
        if credit <= keep {
            return false;
        }
        let n = credit - keep;
        p.credit.store(keep, Ordering::Release);
        let left = self.ngoroutines.fetch_sub(n, Ordering::AcqRel) - n;
        left == 0 && self.shutdown.load(Ordering::Acquire)
    }

    /// Go's `goexit0`: the G is dead; keep it (and its stack) for reuse.
    pub(crate) fn gdestroy(&self, mr: &M, gr: &G) {
        gr.owner_set_status(Status::Running, Status::Dead);
        let is_main = gr.is_main.replace(false);
        if !gr.lockedm().is_null() {
            if mr.locked_int.get() != 0 {
                fatal("a goroutine exited while locked by the runtime (internal lock_os_thread)");
            }
            // Exiting while locked: the thread exits with the goroutine.
            gr.set_lockedm(ptr::null_mut());
            mr.lockedg.set(ptr::null_mut());
            mr.locked_ext.set(0);
            mr.exit_thread.set(true);
        }
        let p = mr.p();
        let gp = gr as *const G as *mut G;
        if p.is_null() {
            // sysmon took the P (see `preempt`): no caches, no credit.
            return self.gdestroy_without_p(gp, is_main);
        }
        // SAFETY: our M holds p.
        let owned = unsafe { (*p).owned() };
        owned.gfree.push(gp);
        if owned.gfree.len() >= GFREE_LOCAL_MAX {
            // Go's gfput: move half to the global list under one lock
            // acquisition, not one per goroutine.
            let at = owned.gfree.len() - GFREE_BATCH;
            self.lock().gfree.extend(owned.gfree.drain(at..));
        }
        // SAFETY: our M holds p (so only we write its credit).
        let pr = unsafe { &*p };
        let credit = pr.credit.load(Ordering::Relaxed) + 1;
        pr.credit.store(credit, Ordering::Release);
        // The main goroutine starts the shutdown before its exit is
        // subtracted (main's fix for a rare hang): whichever flush brings
        // the count to 0 must see `shutdown`, or nobody wakes `done`.
        if is_main {
            self.set_ending(Ending::MainExited);
            self.begin_shutdown();
        }
        let finished = if self.shutdown.load(Ordering::Acquire) {
            self.flush_exits(pr)
        } else if credit >= 2 * COUNT_BATCH {
            self.flush_credit(pr, COUNT_BATCH)
        } else {
            false
        };
        if finished {
            self.finish(&mut self.lock());
        }
    }

    /// `gdestroy` on an M that lost its P: the global free list and the
    /// global count.
    #[cold]
    fn gdestroy_without_p(&self, gp: *mut G, is_main: bool) {
        self.lock().gfree.push(gp);
        if is_main {
            self.set_ending(Ending::MainExited);
            self.begin_shutdown();
        }
        let left = self.ngoroutines.fetch_sub(1, Ordering::AcqRel) - 1;
        if left == 0 && self.shutdown.load(Ordering::Acquire) {
            self.finish(&mut self.lock());
        }
    }
}

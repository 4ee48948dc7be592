//! Spinning and idle Ms (Go's `wakep`, `startm`, `stopm`,
//! `resetspinning`): how the scheduler finds a thread for new work without
//! waking one per goroutine, and never leaves work queued with every
//! thread asleep.
//!
//! The protocol (Go's proc.go, "Worker thread parking/unparking"):
//! - A goroutine made runnable calls `wakep`, which starts one M only if
//!   there is an idle P and no M is spinning (`nmspinning` 0 → 1, a CAS).
//!   A spinning M looks for work (find_runnable, schedule.rs); when it
//!   finds some it stops spinning, and if it was the last spinner it calls
//!   `wakep` again (`reset_spinning`), so there is a spinner for the next
//!   goroutine as long as there are idle Ps.
//! - An M that gives up spinning first gives its P back, then stops
//!   counting as spinning, and only then re-checks every run queue: work
//!   queued in between was queued by someone who saw it spinning and woke
//!   nobody. With nothing found it parks in `stopm`.
//! - `startm` hands a P to an idle M (or a new one) through `M::nextp`,
//!   then wakes its note. It is called with the scheduler lock held, and a
//!   new M is counted in `mcount` before the lock drops, so checkdead never
//!   sees "no M running" while one starts.
//! - With one P, a producer that holds it wakes nobody (`make_runnable`):
//!   no P can be idle and no M spin while it holds the only one.
//! - Every note is cleared *after* its sleep (Go's `mPark`), never before:
//!   a wakeup that comes before the sleep is never lost.
//!
//! Why nobody misses the other (Go's "#StoreLoad-style memory barrier"
//! in proc.go's "Worker thread parking/unparking"). The two sides are
//!
//! ```text
//! producer (make_runnable, global_put)   spinner dropping out (find_runnable)
//!   queue g (runnext, ring or global)      pidle_put: npidle += 1
//!   wakep: fence(SeqCst)                   stop_spinning: nmspinning -= 1,
//!          read npidle, nmspinning                        fence(SeqCst)
//!                                          read every run queue
//! ```
//!
//! Each side writes, then reads what the other wrote: the store-buffering
//! shape, where release stores and acquire loads allow *both* reads to see
//! the old values (the producer sees a spinner, the spinner sees empty
//! queues), and the goroutine waits with an idle P while every M sleeps
//! (for a producer without a P, forever). The two SeqCst fences are in
//! the single total order of SeqCst fences: if the producer's comes first,
//! the spinner's reads after its own fence see the queued g; if the
//! spinner's comes first, the producer's reads see npidle > 0 and
//! nmspinning decremented, so it starts an M (or another spinner exists,
//! which re-checks the same way when it drops out). A release store into
//! an empty runnext is enough for the queue itself (only the owner fills
//! it): the fence at the top of `wakep` stands where Go's runqput has a
//! CAS and Go's atomics are sequentially consistent. SeqCst loads and
//! stores on the counters alone would not do: the queue's own stores and
//! loads would have to be SeqCst too, on every push. The model is
//! tests/loom_idle.rs (loom implements SeqCst fences, not SeqCst
//! accesses); without the fences it finds the lost wakeup.
//!
//! Rejected: waking an M per runnable goroutine (threads thrash and steal
//! from each other) and Ms polling for work (an idle runtime would cost
//! CPU).

use crate::fatal::fatal;
use crate::m::M;
use crate::outside::OwnThread;
use crate::p::HeldP;
use crate::sched::{Locked, Sched};
use std::sync::atomic::{fence, Ordering};
use std::sync::MutexGuard;

impl Sched {
    /// Go's `wakep`: if there is an idle P and no spinning M, start one
    /// spinning M to look for the work just made.
    pub(crate) fn wakep(&self) {
        // Orders the caller's queueing of work before the reads of npidle
        // and nmspinning (the essay: the spinner's fence in
        // `stop_spinning` pairs with this one).
        fence(Ordering::SeqCst);
        if self.npidle.load(Ordering::Acquire) == 0 {
            return;
        }
        if self.nmspinning.load(Ordering::Acquire) != 0
            || self
                .nmspinning
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        let mut l = self.lock();
        // No idle M, and one blocked in the network poller: break its
        // poll; it takes the idle P itself (netpoll.rs), no new thread.
        if l.midle.is_empty() && self.netpoll_break_for_work(l.polling) {
            self.nmspinning.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let Some(p) = self.pidle_get(&mut l) else {
            self.nmspinning.fetch_sub(1, Ordering::AcqRel);
            return;
        };
        // The P is in transit from the idle list to the M we start: startm
        // owns it until the M takes it (a P in transit has an owner).
        self.startm(l, p, true);
    }

    /// Go's `startm`: hands `p` to an idle M, or to a new one. Called with
    /// the lock held; a new M is counted in `mcount` before the
    /// lock drops, so checkdead never sees "no M running" while one starts.
    pub(crate) fn startm(&self, mut l: MutexGuard<'_, Locked>, p: HeldP, spinning: bool) {
        if let Some(m) = l.midle.pop() {
            drop(l);
            // SAFETY: m is idle (parked on its note): nobody else touches
            // nextp until it runs; Ms live as long as the Sched.
            let mr = unsafe { &*m };
            if spinning {
                // Read by the M itself after it wakes.
                mr.spinning.set(true);
            }
            mr.give_nextp(p);
            mr.park.wake();
            return;
        }
        l.mcount += 1;
        let m = self.new_m_struct();
        // SAFETY: m was just made; its thread does not exist yet.
        let mr = unsafe { &*m };
        mr.spinning.set(spinning);
        mr.give_nextp(p);
        let sched_addr = self as *const Sched as usize;
        let m_addr = m as usize;
        let outside = self.outside.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("gort-m{}", mr.id))
            .spawn(move || {
                let _own = OwnThread::enter(outside);
                // SAFETY: the Sched outlives all its Ms: run joins them, or
                // after a detach leaks it (shutdown.rs).
                let sched = unsafe { &*(sched_addr as *const Sched) };
                sched.mstart(m_addr as *mut M);
            });
        match spawned {
            Ok(handle) => l.threads.push(handle),
            Err(e) => fatal(&format!("cannot start an M thread: {e}")),
        }
    }

    pub(crate) fn new_m_struct(&self) -> *mut M {
        let mut allm = self.lock_allm();
        let mut m = Box::new(M::new(allm.len() as u64, (self as *const Sched).cast()));
        let ptr: *mut M = &mut *m;
        allm.push(m);
        ptr
    }

    /// Entry of a new M's thread (Go's `mstart`).
    pub(crate) fn mstart(&self, m: *mut M) {
        // SAFETY: this thread is m.
        let mr = unsafe { &*m };
        #[cfg(any(target_os = "linux", target_os = "android"))]
        // SAFETY: gettid has no preconditions.
        mr.tid.store(unsafe { libc::gettid() }, Ordering::Relaxed);
        // Every thread that runs goroutines needs the overflow handler's
        // alternate signal stack.
        if let Err(e) = gort_stack::overflow::install() {
            fatal(&format!(
                "M{}: cannot install the stack overflow handler: {e}",
                mr.id
            ));
        }
        // M0 holds its P from `start`; every other M takes it from nextp.
        if mr.p().is_null() {
            match mr.take_nextp() {
                Some(p) => mr.acquirep(p),
                None => fatal(&format!("M{}: started without a P", mr.id)),
            }
        }
        self.schedule(m);
    }

    /// Go's `resetspinning`: the last spinner to find work wakes another.
    pub(crate) fn reset_spinning(&self, mr: &M) {
        mr.spinning.set(false);
        let prev = self.nmspinning.fetch_sub(1, Ordering::AcqRel);
        if prev == 0 {
            fatal("resetspinning: negative nmspinning");
        }
        if prev == 1 {
            self.wakep();
        }
    }

    /// A spinning M that found nothing and gave up its P stops counting
    /// as spinning; the caller must then look at every run queue again
    /// (the essay: this fence pairs with the one in `wakep`).
    pub(crate) fn stop_spinning(&self, mr: &M) {
        mr.spinning.set(false);
        if self.nmspinning.fetch_sub(1, Ordering::AcqRel) == 0 {
            fatal("findRunnable: negative nmspinning");
        }
        fence(Ordering::SeqCst);
    }

    /// Go's `stopm`: parks this M (it has no P) until `startm` hands it
    /// one. Returns false if the M should exit instead.
    pub(crate) fn stopm(&self, m: *mut M) -> bool {
        // No other M or sysmon exists to wake this one in a forked child.
        crate::fork::check(self.fork_gen, "one of its Ms went idle");
        // SAFETY: m is the M of this thread.
        let mr = unsafe { &*m };
        let mut l = self.lock();
        // `finished` is set under this lock (`finish`): an M that comes
        // here after the end exits (a detached goroutine's M, shutdown.rs);
        // one that came before is woken by `finish`.
        if self.finished.load(Ordering::Acquire)
            || (self.shutdown.load(Ordering::Acquire)
                && self.ngoroutines.load(Ordering::Acquire) == 0)
        {
            return false;
        }
        l.midle.push(m);
        if let Some(dump) = self.checkdead(&l) {
            // Every M is idle and every goroutine blocked: report, then
            // unwind the goroutines so that `run` can return.
            l.midle.pop();
            self.report_deadlock(l, mr, dump);
            return true;
        }
        drop(l);
        // Woken without a P: shutdown with no goroutines left.
        mr.sleep_until_handed_p()
    }
}

//! The scheduler loop (Go's `schedule`, `findRunnable`, `execute`,
//! `stealWork`, `runqput`, `globrunqget`, `ready`): g0 finds a runnable G,
//! runs it until it comes back with a request, and acts on the request.
//!
//! `find_runnable`: every 61st tick the global queue first (fairness);
//! then the local queue (runnext first); then the global queue (a batch
//! of `len/procs + 1`, at most half a ring); then, if this M may spin
//! (at most half the busy Ps have a spinner), four rounds of stealing from
//! the other Ps in random order, the last also taking runnext. With
//! nothing found it gives the P back under the lock (re-checking the
//! global queue there) and goes idle (idle.rs), blocking in the network
//! poller instead of on its note when someone waits for an fd and no
//! other M is blocked there (netpoll.rs). A stop-the-world in
//! progress takes the P at the top of the loop (Go's `gcstopm`).
//!
//! `execute` switches to the G (mcall.rs) and, when it comes back, acts on
//! its request (`handle_request`): a yield goes to the tail of the local
//! queue (Go's Gosched uses the global queue: same fairness on this P,
//! stealable by others, and no lock); a park runs its unlock function on
//! g0 and then, usually, the goroutine the park woke into `runnext`
//! (`next_after_park`, inheriting the time slice, as findRunnable would);
//! an exit frees the G (spawn.rs).
//!
//! A runnable G goes to the current P's local queue (runnext when it was
//! just woken or made) or, without a P, to the global queue, and then
//! `wakep` looks for an idle P to run it (idle.rs).
//!
//! Two goroutines that keep readying each other run from runnext with the
//! time slice inherited; when that slice runs out (sysmon's mark, taken at
//! their next park), `find_runnable` looks at the global queue first and
//! moves runnext to the ring's tail, so the rest of the P's queue runs
//! (Go's sysmon preempts the running goroutine to the global queue).

use crate::current::{current_m_of, set_current};
use crate::fatal::fatal;
use crate::g::{GRef, G};
use crate::m::M;
use crate::mcall::{enter_g, first_context, leave_g, Request};
use crate::netpoll::IdlePoll;
use crate::p::P;
use crate::sched::{Locked, Sched};
use crate::status::{Status, WaitReason};
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering;

impl Sched {
    /// Go's `schedule`: finds a runnable G and runs it, forever, until the
    /// runtime shuts down and no goroutine is left. Runs on g0.
    pub(crate) fn schedule(&self, m: *mut M) {
        // SAFETY: m is the M of this thread.
        let mr = unsafe { &*m };
        loop {
            if mr.locks.get() != 0 {
                fatal("schedule: holding locks (acquirem)");
            }
            let (g, inherit) = if !mr.lockedg.get().is_null() {
                // This M runs only its locked goroutine: wait for it.
                if !self.stop_locked_m(m) {
                    break;
                }
                // SAFETY: lockedg is non-null and runnable (stop_locked_m).
                (
                    GRef(unsafe { NonNull::new_unchecked(mr.lockedg.get()) }),
                    false,
                )
            } else {
                let Some(found) = self.find_runnable(m) else {
                    break;
                };
                found
            };
            if mr.spinning.get() {
                self.reset_spinning(mr);
            }
            // SAFETY: g is owned by this M now.
            let lockedm = unsafe { (*g.as_ptr()).lockedm() };
            if !lockedm.is_null() && lockedm != m {
                // Someone else's locked goroutine: give it our P and its M.
                if !self.start_locked_m(m, g) {
                    break;
                }
                continue;
            }
            self.execute(m, g, inherit);
            if mr.exit_thread.get() {
                self.exit_locked_m(mr);
                break;
            }
            if mr.p().is_null() && mr.lockedg.get().is_null() {
                // The goroutine left a syscall and found no P: it is queued;
                // this M has nothing to run with.
                if !self.stopm(m) {
                    break;
                }
            }
        }
        set_current(ptr::null_mut(), ptr::null_mut());
    }

    /// Go's `findRunnable`: local queue (global every 61 ticks), global
    /// queue, stealing; otherwise gives up the P and parks the M. Returns
    /// None when the M should exit (shutdown, no goroutines left).
    pub(crate) fn find_runnable(&self, m: *mut M) -> Option<(GRef, bool)> {
        // SAFETY: m is the M of this thread.
        let mr = unsafe { &*m };
        'top: loop {
            let p = mr.p();
            if p.is_null() {
                fatal("findRunnable: M without a P");
            }
            if self.stw_wait.load(Ordering::Acquire) {
                // Go's gcstopm: give the P to the stop, then idle.
                if mr.spinning.replace(false) {
                    self.nmspinning.fetch_sub(1, Ordering::AcqRel);
                }
                let p = mr
                    .releasep()
                    .unwrap_or_else(|| fatal("gcstopm: M without a P"));
                self.stw_stop_p(&mut self.lock(), p);
                if !self.stopm(m) {
                    return None;
                }
                continue 'top;
            }
            // Go's checkTimers: this P's due timers run first, so the
            // goroutines they wake are found below (checktimers.rs).
            // SAFETY: our M holds p; Ps are never freed.
            self.check_timers(unsafe { &*p });
            if self.shutdown.load(Ordering::Acquire)
                && self.ngoroutines.load(Ordering::Acquire) == 0
            {
                self.release_for_exit(mr);
                return None;
            }
            // SAFETY: our M holds p.
            let lv = unsafe { &(*p).lv };
            // Fairness: every 61st slice, and when a slice ran out (see
            // `preempt`), look at the global queue first; a slice that ran
            // out is not inherited by `runnext`.
            let expired = lv.expired();
            if (expired || lv.schedtick.load(Ordering::Relaxed) % 61 == 0)
                && self.runq_len.load(Ordering::Acquire) > 0
            {
                let mut l = self.lock();
                if let Some(g) = self.global_get(&mut l, p, 1) {
                    return Some((g, false));
                }
            }
            // SAFETY: our M holds p.
            let q = unsafe { (*p).queue() };
            if expired {
                // The slice ran out, and marks are taken at parks: the
                // goroutine that parked has usually just readied its
                // partner into runnext, and a pair readying each other
                // would keep the P for ever, slice after slice, while the
                // ring waits. The partner goes to the ring's tail instead.
                // (Go's sysmon preempts the running goroutine into the
                // global queue, which breaks the chain the same way.)
                if let Some(g) = q.pop_runnext() {
                    if let Err(overflow) = q.push(g, false) {
                        self.runq_overflow(overflow);
                    }
                }
            }
            if let Some((g, inherit)) = q.pop() {
                return Some((GRef(g), inherit && !expired));
            }
            if self.runq_len.load(Ordering::Acquire) > 0 {
                let mut l = self.lock();
                if let Some(g) = self.global_get(&mut l, p, 0) {
                    return Some((g, false));
                }
            }
            // The network poller, without blocking, if nobody is blocked
            // in it and someone waits (Go's findRunnable).
            if let Some(g) = self.netpoll_nonblocking() {
                return Some((g, false));
            }
            // Spin: steal, but keep the number of spinning Ms at most half
            // the busy Ps, so that idle Ms do not burn CPU (Go's limit).
            let busy = self
                .procs()
                .saturating_sub(self.npidle.load(Ordering::Acquire));
            if mr.spinning.get() || 2 * self.nmspinning.load(Ordering::Acquire) < busy {
                if !mr.spinning.get() {
                    mr.spinning.set(true);
                    self.nmspinning.fetch_add(1, Ordering::AcqRel);
                }
                if let Some(g) = self.steal_work(mr, p) {
                    return Some((g, false));
                }
            }
            // Nothing found: give up the P (Go's "delicate dance").
            let mut l = self.lock();
            if let Some(g) = self.global_get(&mut l, p, 0) {
                return Some((g, false));
            }
            let p = mr
                .releasep()
                .unwrap_or_else(|| fatal("findRunnable: M without a P"));
            self.pidle_put(&mut l, p);
            drop(l);
            let was_spinning = mr.spinning.get();
            if was_spinning {
                self.stop_spinning(mr);
                // Work may have been queued after we looked but before we
                // stopped counting as spinning: whoever queued it saw us
                // spinning and did not wake anyone. Look again.
                let victim_has_work = self.allp().any(|pp| !pp.runq.is_empty());
                if victim_has_work || self.runq_len.load(Ordering::Acquire) > 0 {
                    let mut l = self.lock();
                    if let Some(p2) = self.pidle_get(&mut l) {
                        drop(l);
                        mr.acquirep(p2);
                        mr.spinning.set(true);
                        self.nmspinning.fetch_add(1, Ordering::AcqRel);
                        continue 'top;
                    }
                }
            }
            // Someone waits for an fd and no M is blocked in the poller:
            // block there instead of on our note (netpoll.rs).
            match self.netpoll_idle(mr) {
                IdlePoll::Run(Some(g)) => return Some((g, false)),
                IdlePoll::Run(None) => continue 'top,
                IdlePoll::NoP | IdlePoll::NotPolled => {}
            }
            if !self.stopm(m) {
                return None;
            }
        }
    }

    /// Steals from the other Ps in random order, four rounds, the last one
    /// also taking `runnext` (Go's `stealWork`).
    pub(crate) fn steal_work(&self, mr: &M, p: *mut P) -> Option<GRef> {
        let n = self.procs();
        if n == 1 {
            return None;
        }
        // SAFETY: our M holds p.
        let mine = unsafe { (*p).queue() };
        for round in 0..4 {
            let last = round == 3;
            let start = mr.fastrand() as usize % n;
            for i in 0..n {
                let victim = self.p((start + i) % n);
                if ptr::eq(victim, p) || victim.runq.is_empty() {
                    continue;
                }
                if let Some(g) = mine.steal_from(&victim.runq, last, &mut std::thread::yield_now) {
                    mr.counters.bump_steal();
                    return Some(GRef(g));
                }
            }
        }
        None
    }

    /// Go's `execute`: runs g on this M until it comes back to g0, then acts
    /// on its request.
    pub(crate) fn execute(&self, m: *mut M, g: GRef, inherit: bool) {
        // SAFETY: m is this thread's M and holds a P.
        let mr = unsafe { &*m };
        let mut inherit = inherit;
        let mut g = g;
        loop {
            // SAFETY: g came off a run queue: this M owns it now.
            let gr = unsafe { &*g.as_ptr() };
            if !inherit {
                // SAFETY: our M holds its P.
                unsafe { (*mr.p()).lv.new_slice() };
                mr.lv.clear_preempt();
            }
            // Runnable -> Running: the G is ours (off a queue, or handed
            // over); nobody else moves a runnable G.
            gr.owner_set_status(Status::Runnable, Status::Running);
            mr.counters.bump_switch();
            // SAFETY: g is ours and about to run on this thread; g0's state
            // is reinstalled below before g0 runs on.
            let g0_unwind = unsafe { enter_g(m, gr) };
            // SAFETY: a runnable G's ctx holds its suspended context; the
            // switch hands g0's context to the goroutine, which keeps it in
            // `m.g0`.
            let (gctx, req) = unsafe {
                let mut ctx = (*gr.ctx.get()).take();
                if ctx.is_empty() {
                    ctx = first_context(gr);
                }
                gort_arch::switch(ctx, m as usize)
            };
            // Back on g0. Save the goroutine before anything else can see it.
            // SAFETY: the G is suspended; we are its owner; g0_unwind is
            // this g0's own state.
            unsafe {
                *gr.ctx.get() = gctx;
                leave_g(m, m, g0_unwind);
            }
            // SAFETY: the goroutine passed a pointer to a Request on its own
            // stack, which stays valid while it is suspended; we read it
            // before making the G runnable again.
            let req = unsafe { &mut *(req as *mut Request<'_>) };
            match self.handle_request(m, g, req) {
                Some(next) => {
                    g = next;
                    inherit = true;
                }
                None => return,
            }
        }
    }

    /// The g0 side of a goroutine's switch to g0 with `req` (the tail of
    /// Go's `mcall` functions: park_m, gosched_m, goexit0, exitsyscall0):
    /// `g` is suspended and its context saved. Returns the goroutine this
    /// M runs next without going through `schedule` (inheriting the time
    /// slice), or None to go back to the caller.
    pub(crate) fn handle_request(&self, m: *mut M, g: GRef, req: &mut Request<'_>) -> Option<GRef> {
        // SAFETY: m is this thread's M; g is suspended and ours.
        let (mr, gr) = unsafe { (&*m, &*g.as_ptr()) };
        match req {
            Request::Preempt => {
                self.preempted(mr, g);
                None
            }
            Request::Yield => {
                gr.owner_set_status(Status::Running, Status::Runnable);
                // Unlike Go's Gosched (global queue), yield goes to the
                // tail of the local queue: same fairness on this P,
                // stealable by others, and no lock.
                self.make_runnable(m, g, false);
                None
            }
            Request::Park(unlock) => {
                // Cleared before the status says Waiting (its store is a
                // release): shutdown's scan never sees this park's Waiting
                // with an earlier park's `parked`.
                gr.parked.store(false, Ordering::Relaxed);
                gr.owner_set_status(Status::Running, Status::Waiting);
                if unlock(g) {
                    // The park is complete; a shutdown that began before
                    // `parked` was set did not ready this goroutine (it
                    // skips one whose unlock may still run): ready it here
                    // (shutdown.rs, "Parks racing the shutdown").
                    gr.parked.store(true, Ordering::Relaxed);
                    crate::membarrier::light_fence();
                    if self.is_shutting_down() {
                        gr.cancel.store(true, Ordering::Release);
                        self.ready(g);
                    }
                    // Usually the park follows a wake into runnext (a
                    // channel partner, a joiner): run it from here.
                    return self.next_after_park(mr);
                }
                // The park was aborted: run it again at once, like Go's
                // park_m does when waitunlockf returns false; unless a
                // `ready` (shutdown's) got it first and queued it.
                if !gr.try_cas_status(Status::Waiting, Status::Runnable) {
                    return None;
                }
                gr.wait_reason.set(WaitReason::None);
                if mr.p().is_null() {
                    // No P to run it with (see `preempt`): queue it.
                    self.make_runnable(m, g, false);
                    return None;
                }
                Some(g)
            }
            Request::Exit => {
                self.gdestroy(mr, gr);
                None
            }
            Request::CallbackReturn => {
                // Back into syscall state, on the way back to C: the
                // callback's own loop (Sched::callback_loop) takes over.
                mr.callback_returned.set(true);
                None
            }
            Request::ExitSyscall => {
                gr.owner_set_status(Status::Syscall, Status::Runnable);
                let mut l = self.lock();
                if let Some(p) = self.pidle_get(&mut l) {
                    drop(l);
                    p.status.set_running();
                    mr.acquirep(p);
                    return Some(g);
                }
                l.runq.push_back(g);
                self.runq_len.store(l.runq.len(), Ordering::Release);
                drop(l);
                self.wakep();
                None
            }
        }
    }

    /// After a park, the goroutine in this P's `runnext` if the scheduler
    /// loop has nothing else to do first: what `schedule` would pick
    /// (findRunnable takes runnext first, inheriting the time slice), minus
    /// its checks. None (back to `schedule`) when this M is locked to a
    /// goroutine, a stop-the-world waits, or runnext is empty; a popped G
    /// locked to another M goes back for `schedule` to hand over.
    #[inline]
    pub(crate) fn next_after_park(&self, mr: &M) -> Option<GRef> {
        if !mr.lockedg.get().is_null() || self.stw_wait.load(Ordering::Acquire) {
            return None;
        }
        let p = mr.p();
        // No P (sysmon took it: see `preempt`), or the slice ran out.
        // SAFETY: our M holds p (a parking goroutine keeps its M's P).
        if p.is_null() || unsafe { (*p).lv.expired() } {
            return None;
        }
        // SAFETY: as above.
        let q = unsafe { (*p).queue() };
        let next = if self.procs() == 1 {
            // SAFETY: ours is the only P, so no M can steal, and the count
            // of Ps changes only in a stop-the-world, which would have to
            // stop our P first: not while we hold it here.
            unsafe { q.pop_runnext_unshared() }
        } else {
            q.pop_runnext()
        };
        let next = GRef(next?);
        // SAFETY: popped: the G is ours.
        if unsafe { !(*next.as_ptr()).lockedm().is_null() } {
            self.make_runnable(mr as *const M as *mut M, next, true);
            return None;
        }
        Some(next)
    }

    /// Queues a runnable G: on the current M's P when there is one (in
    /// runnext when `next`), else on the global queue; then wakes an idle P
    /// if one is free (Go's `ready` and `newproc` tail).
    ///
    /// Inlined up to the common case of a wake (a free `runnext` on the
    /// caller's P, one P): every channel hop and yield takes it, and a call
    /// would save and restore six registers for a dozen instructions. The
    /// rest is `make_runnable_rest`.
    #[inline(always)]
    pub(crate) fn make_runnable(&self, cur_m: *mut M, g: GRef, next: bool) {
        let p = if cur_m.is_null() {
            ptr::null_mut()
        } else {
            self.held_p(cur_m)
        };
        // SAFETY: our M holds p.
        if next && !p.is_null() && unsafe { (*p).queue().try_put_runnext(g.0) } {
            // With one P, and this M holding it, no P is idle and no M
            // spins (a spinner holds a P): there is nobody to wake, and
            // `wakep`'s fence is the dearest instruction of a wake. Exact,
            // not a guess: the count of Ps changes only with the world
            // stopped, which needs our P.
            if self.procs() == 1 {
                return;
            }
            self.wakep();
            return;
        }
        self.make_runnable_rest(p, g, next);
    }

    /// `make_runnable` past its inlined case, with `p` the P the caller's
    /// M holds (null: none).
    #[inline(never)]
    fn make_runnable_rest(&self, p: *mut P, g: GRef, next: bool) {
        if p.is_null() {
            if next {
                // A wake from outside any P (sysmon's timers, a plain
                // thread, an M that lost its P): the global queue's head,
                // as a wake on a P would take its runnext, so that the
                // next slice to end runs it (see `preempt`).
                self.global_put_front(g);
            } else {
                self.global_put(g);
            }
        } else {
            // SAFETY: our M holds p.
            let q = unsafe { (*p).queue() };
            if let Err(overflow) = q.push(g.0, next) {
                self.runq_overflow(overflow);
            }
            // One P, held by us: nobody to wake (as above).
            if self.procs() == 1 {
                return;
            }
        }
        self.wakep();
    }

    /// Go's `runqputslow` tail: half of a full local queue goes to the
    /// global queue. Cold and out of line, to keep `make_runnable` small.
    #[cold]
    #[inline(never)]
    pub(crate) fn runq_overflow(
        &self,
        overflow: crate::runq::Overflow<G, { crate::runq::LOCAL_QUEUE_LEN }>,
    ) {
        let mut l = self.lock();
        for item in overflow.items() {
            l.runq.push_back(GRef(item));
        }
        self.runq_len.store(l.runq.len(), Ordering::Release);
    }

    pub(crate) fn global_put(&self, g: GRef) {
        let mut l = self.lock();
        l.runq.push_back(g);
        self.runq_len.store(l.runq.len(), Ordering::Release);
    }

    #[cold]
    fn global_put_front(&self, g: GRef) {
        let mut l = self.lock();
        l.runq.push_front(g);
        self.runq_len.store(l.runq.len(), Ordering::Release);
    }

    /// Go's `globrunqget`: takes a batch from the global queue onto `p`'s
    /// local queue and returns one G. Called with the lock held.
    pub(crate) fn global_get(&self, l: &mut Locked, p: *mut P, max: usize) -> Option<GRef> {
        if l.runq.is_empty() {
            return None;
        }
        let mut n = (l.runq.len() / self.procs() + 1).min(l.runq.len());
        if max > 0 {
            n = n.min(max);
        }
        n = n.min(crate::runq::LOCAL_QUEUE_LEN / 2);
        let first = l.runq.pop_front();
        // SAFETY: the caller's M holds p.
        let q = unsafe { (*p).queue() };
        for _ in 1..n {
            let g = l.runq.pop_front().expect("n <= len");
            if let Err(overflow) = q.push(g.0, false) {
                // Cannot happen with n <= half the ring on a queue we just
                // found empty, but stay correct if it does.
                for item in overflow.items() {
                    l.runq.push_back(GRef(item));
                }
                break;
            }
        }
        self.runq_len.store(l.runq.len(), Ordering::Release);
        first
    }

    /// Go's `ready`: makes a waiting G runnable. A G that is not waiting
    /// (already readied, e.g. by shutdown's cancel) is left alone.
    pub(crate) fn ready(&self, g: GRef) {
        // SAFETY: Gs live as long as the Sched.
        let gr = unsafe { &*g.as_ptr() };
        if !gr.try_cas_status(Status::Waiting, Status::Runnable) {
            return;
        }
        gr.wait_reason.set(WaitReason::None);
        let m = current_m_of(self);
        self.make_runnable(m, g, true);
        self.leave_runtime(m);
    }

    /// Queues a G that the caller has just moved from Waiting to Runnable
    /// itself (a wake that won, waker.rs): the tail of `ready`.
    pub(crate) fn ready_won(&self, g: GRef) {
        // SAFETY: Gs live as long as the Sched; the caller's CAS made the
        // G ours to queue.
        unsafe { (*g.as_ptr()).wait_reason.set(WaitReason::None) };
        let m = current_m_of(self);
        self.make_runnable(m, g, true);
        self.leave_runtime(m);
    }
}

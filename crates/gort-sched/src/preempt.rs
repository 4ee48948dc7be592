//! Liveness without signals: fair slices, cooperative preemption, and the
//! retake of a P from a goroutine that never enters the runtime.
//!
//! Go preempts a goroutine that has run for a slice (10 ms,
//! `forcePreemptNS`) by setting a flag its function prologues check, and,
//! since Go 1.14, by a signal that stops it at an instruction the compiler
//! recorded as safe (golang/go#24543). Rust records no such points: a
//! goroutine interrupted anywhere may hold a pthread mutex (malloc's), may
//! have thread-local addresses in registers, so it can neither be moved to
//! another thread nor have another goroutine run on its thread. gort never
//! switches a goroutine out asynchronously. It takes the P, not the
//! goroutine, as the syscall handoff already does (`pstatus`): the
//! goroutine keeps running on its thread, and another M runs the P's work.
//! Java's Loom adds a carrier thread for a virtual thread pinned to its
//! carrier for the same reason.
//!
//! Three mechanisms, from cheapest to dearest:
//!
//! 1. Fair slices. A goroutine readied into `runnext` inherits the running
//!    slice (Go's `inheritTime`): a chain of goroutines that wake each
//!    other and park (channel ping-pong) runs as one slice. sysmon watches
//!    each P's `schedtick` (bumped by `execute` at every new slice); when
//!    a P has run one slice for `SLICE_NS` it sets the P's `preempt` flag.
//!    The next scheduling point on that P (a park's `next_after_park`,
//!    `find_runnable`) then takes no inherited `runnext` and looks at the
//!    global queue first, where timers and other threads put the work
//!    they ready. Nothing queued waits much more than a slice.
//! 2. Cooperative preemption. sysmon also marks the M running that P
//!    (`PREEMPT` in its signal word). Every preemption point
//!    (`preempt_point`, in the park tier: `go`, `yield_now`, `sleep`, `syscall`,
//!    `cgo::call`, and gort-sync's channel, select, Mutex, RwLock and
//!    WaitGroup operations) reads the word with one relaxed load and, when marked,
//!    yields to the back of the global queue (Go's `gopreempt_m`).
//! 3. Retake. A goroutine in a CPU loop, in `std::thread::sleep`, or
//!    blocked in a std call without `syscall()`, reaches no preemption
//!    point. If its P still runs the same slice `GRACE_NS` after the mark
//!    and other work waits, sysmon takes the P from the M and hands it to
//!    another M (`handoffp`), as for a syscall. The goroutine runs on,
//!    without a P, on its own thread. Its next runtime entry finds the P
//!    gone: code that needs a P then takes the P-less path (the global
//!    queue, the global caches) as a plain thread would, and the next
//!    switch to g0 parks the M and queues the goroutine, so that it runs
//!    again when an M with a P picks it up (exitsyscall's slow path).
//!
//! # The retake protocol
//!
//! The holder of a P touches the P's owned state (run queue, caches)
//! without atomics. sysmon may take a P only when its holder is provably
//! not inside such an access, and the holder must learn that it lost the
//! P before its next access. Two words per M:
//!
//! - `user_p`: the P the M holds while its goroutine runs user code, or
//!   null while it runs runtime code (or g0 runs, or it holds no P).
//!   Written only by the M's thread: `leave` stores the P (Release) when
//!   a goroutine goes back to user code; `entry` stores null before any
//!   access to the P.
//! - `signal`: bits set by sysmon (`PREEMPT`, `RETAKING`, `TAKEN`), cleared
//!   by whoever consumes them.
//!
//! The handshake is an asymmetric Dekker, as `membarrier.rs` describes:
//!
//! ```text
//!   holder (entry, hot)                sysmon (retake, rare)
//!   user_p := null                     signal |= RETAKING
//!   light_fence()                      heavy_fence()   (membarrier)
//!   s := signal                        u := user_p
//!   if s has RETAKING|TAKEN: slow      if u == p: signal := TAKEN; hand p off
//!                                      else:      signal &= !RETAKING
//! ```
//!
//! At least one side sees the other's store. If sysmon reads `u == p`, the
//! holder's `user_p := null` of any entry not yet seen comes after the
//! barrier, so that entry's load sees `RETAKING` (or `TAKEN`) and goes
//! slow; the holder was in user code, touching no P state, since its last
//! `leave` (whose Release store sysmon's Acquire load pairs with, so
//! everything the holder wrote to the P is visible to the M it is handed
//! to). If sysmon reads null, the holder is inside the runtime; sysmon
//! backs off (the mark stays: it will honour it or be retaken at a later
//! pass). The holder's slow path waits (yielding its thread) while
//! `RETAKING` is set, since sysmon's verdict follows within a few
//! instructions: then `TAKEN` means the P is gone (the M forgets it and
//! clears the bit), nothing means it stays. Only sysmon sets `RETAKING`
//! and `TAKEN`, and never on an M whose `TAKEN` is still set, so the
//! stale `user_p` of an M that lost its P is never mistaken for the P's
//! new holder. `tests/loom_retake.rs` models that code (`handshake.rs`) with loom
//! and checks the invariant: never do the holder and the P's new owner both
//! believe they hold the P at once.
//!
//! Cost on the entry points: `entry` is one load of `user_p` when it is
//! already null (g0, nested calls), else a store, a compiler fence (a full
//! fence where `membarrier` is missing) and a load; `leave` is one store.
//! No read-modify-write, no clock. sysmon pays one `membarrier` per retake
//! attempt.
//!
//! # The cap
//!
//! Every retake leaves a thread running a goroutine without a P and needs
//! another M to run the P: one more thread. The threads made this way are
//! capped (`Builder::max_retaken`, default [`DEFAULT_MAX_RETAKEN`]); at the
//! cap a hog keeps its P, and `stats().retaken` equals the cap
//! (schedtrace prints `retaken=N/CAP`). A retaken M leaves the count when
//! its goroutine next enters the runtime.
//!
//! Rejected designs:
//! - Signals and a switch at the interrupted instruction (Go's async
//!   preemption): unsound without compiler-recorded safe points (above).
//! - A check of the clock at every entry point: a vDSO call per channel
//!   operation, and still useless against a loop that never enters.
//! - A CAS on the P's status word at every entry and exit (the syscall
//!   protocol made symmetric): two locked instructions per channel
//!   operation, where the asymmetric fence costs a compiler fence.

use crate::g::GRef;
use crate::handshake::SLICE_NS;
use crate::m::M;
use crate::p::{HeldP, P};
use crate::sched::Sched;
use crate::status::Status;
use std::sync::atomic::Ordering;

impl Sched {
    /// How long sysmon may sleep while a P runs: until the next slice runs
    /// out, at most `SLICE_NS / 4` (the error on a slice's start), and never
    /// past the next timer.
    pub(crate) fn slice_poll(
        &self,
        wake_at: Option<std::time::Instant>,
        slice_due: Option<u64>,
    ) -> Option<std::time::Instant> {
        let mut d = SLICE_NS / 4;
        if let Some(due) = slice_due {
            d = d.min(due.saturating_sub(self.now_nanos()));
        }
        let at = std::time::Instant::now() + std::time::Duration::from_nanos(d.max(1));
        Some(wake_at.map_or(at, |t| t.min(at)))
    }

    /// The P that `m` (this thread's M) holds, after the entry half of the
    /// handshake: null if it holds none, or if sysmon took it (then the M
    /// forgets it here). Every access to a P's owned state from a
    /// goroutine's code goes through this.
    #[inline(always)]
    pub(crate) fn held_p(&self, m: *mut M) -> *mut P {
        // SAFETY: m is this thread's M (callers' contract).
        let mr = unsafe { &*m };
        if mr.lv.entry() {
            self.forget_p(mr);
        }
        mr.p()
    }

    /// The M learned at its entry that sysmon took its P: it clears its
    /// stale `M::p` (`M::forget_retaken_p`). No `HeldP` comes back: sysmon
    /// claimed the P's token when it won the handshake.
    #[cold]
    #[inline(never)]
    fn forget_p(&self, mr: &M) {
        mr.forget_retaken_p();
        self.live.retaken.fetch_sub(1, Ordering::AcqRel);
    }

    /// The goroutine running on `m` (this thread's M, or null) goes back
    /// to user code: its P becomes retakeable. Not on g0, not for a locked
    /// goroutine (a callback's frames rely on keeping the P), not on an
    /// extra M.
    #[inline(always)]
    pub(crate) fn leave_runtime(&self, m: *mut M) {
        // SAFETY: m is this thread's M (callers' contract), or null.
        if let Some(mr) = unsafe { m.as_ref() } {
            mr.leave_for_user();
        }
    }

    /// g0's side of `Request::Preempt`: the goroutine goes to the back of
    /// the global queue; the next pick on this P looks there first.
    pub(crate) fn preempted(&self, mr: &M, g: GRef) {
        // SAFETY: g is suspended and ours.
        let gr = unsafe { &*g.as_ptr() };
        gr.owner_set_status(Status::Running, Status::Runnable);
        let p = mr.p();
        if !p.is_null() {
            // SAFETY: our M holds p.
            unsafe { (*p).lv.preempt.store(true, Ordering::Relaxed) };
        }
        self.global_put(g);
        self.wakep();
    }

    /// sysmon's pass over the Ps (the slice half of Go's `retake`): marks
    /// a P whose slice ran out, and retakes it from a goroutine that has
    /// not yielded `GRACE_NS` later while other work waits. Returns when
    /// the next slice runs out (sysmon's clock), if one is running.
    pub(crate) fn preempt_pass(
        &self,
        now: u64,
        watch: &mut Vec<crate::retake::SliceWatch>,
    ) -> Option<u64> {
        let mut next_due: Option<u64> = None;
        let procs = self.procs();
        if watch.len() < procs {
            watch.resize(procs, Default::default());
        }
        if self.npidle.load(Ordering::Acquire) >= procs {
            return None;
        }
        for (i, p) in self.allp().enumerate() {
            let w = &mut watch[i];
            if p.status.in_syscall() {
                w.clear();
                continue;
            }
            let v = w.observe(p.lv.schedtick.load(Ordering::Relaxed), now);
            if let Some(due) = v.due {
                next_due = Some(next_due.map_or(due, |d: u64| d.min(due)));
            }
            if !v.mark && !v.retake {
                continue;
            }
            let pp = p as *const P as *mut P;
            // Work waits for the P: goroutines queued, or a stop of the
            // world (`set_procs`) that needs every P (a retaken P goes to
            // the stop through `handoffp`).
            let waiting = !p.runq.is_empty()
                || self.runq_len.load(Ordering::Acquire) > 0
                || self.stw_wait.load(Ordering::Acquire);
            if v.mark && waiting {
                p.lv.preempt.store(true, Ordering::Relaxed);
            }
            // The Ms that may hold p: its holder, and Ms that held it
            // before and have not left the runtime since (marking one of
            // those too is harmless). Collected first: the allm lock is
            // taken under the scheduler lock elsewhere, never around it.
            let holders: Vec<*const M> = self
                .lock_allm()
                .iter()
                .filter(|m| m.lv.holds(pp.cast()))
                .map(|m| &**m as *const M)
                .collect();
            for &m in &holders {
                // SAFETY: Ms live as long as the Sched.
                if v.mark && waiting && unsafe { (*m).lv.request_preempt() } {
                    self.live.preempts.fetch_add(1, Ordering::Relaxed);
                }
            }
            // The holder in user code (the others held p before and are
            // in the runtime, or idle, now).
            let holder_times = || {
                holders
                    .iter()
                    // SAFETY: Ms live as long as the Sched.
                    .find(|&&m| unsafe { (*m).lv.in_user_code_with(pp.cast()) })
                    .and_then(|&m| thread_times(m))
            };
            if v.mark {
                w.marked(now, holder_times);
            }
            if !v.retake || !waiting || holders.is_empty() {
                continue;
            }
            // The holder's thread spent the grace waiting for a CPU (an
            // oversubscribed machine): its goroutine hogged nothing, and a
            // new thread for its P would wait for the same CPUs. One more
            // slice, once (retake.rs, `SliceWatch::descheduled`).
            if w.descheduled(holder_times(), now) {
                self.live.extended.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // The cap, on retaken Ms and on threads: the P goes to an idle
            // M, or to a new one only while the Ms number fewer than the Ps
            // plus the cap (a retaken M whose goroutine came back and is
            // on its way to idle still counts).
            let room = self.live.retaken.load(Ordering::Acquire) < self.live.max_retaken && {
                let l = self.lock();
                !l.midle.is_empty() || l.mcount < procs + self.live.max_retaken
            };
            if !room {
                self.live.capped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // Counted before the take, so the M's forget never sees zero.
            self.live.retaken.fetch_add(1, Ordering::AcqRel);
            // Only the holder, in user code, can lose it.
            let taken = holders.iter().any(|&m| {
                // SAFETY: Ms live as long as the Sched.
                unsafe { (*m).lv.try_take(pp.cast()) }
            });
            if taken {
                w.retaken();
                self.live.retakes.fetch_add(1, Ordering::Relaxed);
                // The P's ownership moves here, without the holder's
                // `HeldP` (it is spent: `M::acquirep` turned it into the
                // M's `p` field). Winning the handshake is the transfer,
                // as winning the status word is for a syscall's P: the M
                // made its claim revocable when it let its goroutine run
                // user code (`leave`), and it can no longer touch the P
                // (its next `entry` goes slow and sees `TAKEN`). Until
                // then its `M::p` names the P but owns nothing; the M
                // clears it at that entry (`forget_p`), never reads
                // through it before, and never hands it on.
                // SAFETY: winning `try_take` made pp ours (above); no other
                // `HeldP` for it exists, since the M's was spent into
                // `M::p` and ownership left it with that field.
                self.handoffp(unsafe { HeldP::claim(pp) });
            } else {
                self.live.retaken.fetch_sub(1, Ordering::AcqRel);
            }
        }
        next_due
    }
}

/// What Linux says of `m`'s thread (/proc's schedstat and stat; None
/// elsewhere, for an M whose thread has not started, or when /proc says
/// nothing). Read by sysmon at most twice per slice that runs out.
fn thread_times(m: *const M) -> Option<crate::retake::CpuTimes> {
    // SAFETY: Ms live as long as the Sched.
    let tid = unsafe { (*m).tid.load(Ordering::Relaxed) };
    if tid == 0 {
        return None;
    }
    let dir = format!("/proc/self/task/{tid}");
    let schedstat = std::fs::read_to_string(format!("{dir}/schedstat")).ok()?;
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    crate::retake::parse_cpu_times(&schedstat, &stat)
}

impl M {
    /// `held_p` for a switch to g0: the goroutine on this M is about to
    /// switch; g0 runs with whatever P the M still holds.
    ///
    /// # Safety
    /// This is the calling thread's M, running a goroutine.
    #[inline(always)]
    pub(crate) unsafe fn enter_for_switch(&self) {
        if self.lv.entry() {
            // SAFETY: an M's Sched outlives it.
            unsafe { (*self.sched_erased.cast::<Sched>()).forget_p(self) };
        }
    }

    /// See `Sched::leave_runtime`. The caller is this M's thread.
    #[inline(always)]
    pub(crate) fn leave_for_user(&self) {
        if self.curg.get().is_null() || !self.lockedg.get().is_null() || self.extra {
            return;
        }
        self.lv.leave(self.p().cast());
    }
}

//! sysmon (Go's `sysmon`): a thread without a P that fires timers, retakes
//! the Ps of Ms stuck in syscalls, and sleeps when there is nothing to do.
//!
//! Each pass: fire the due timers (timer.rs), then run checkdead if any
//! fired, poll the network if nobody has for 10 ms (netpoll.rs) (a stale timer may have been all that kept it quiet); then look
//! at every P in a syscall (`retake`, with retake.rs's record of when each
//! syscall was first seen) and hand off the Ps of long ones that something
//! waits for. Then sleep:
//! - every 25 µs while a P is in a syscall or a syscall started in the
//!   last 10 ms, and exactly until a syscall seen in flight becomes long
//!   enough to retake, so a stuck syscall loses its P within a poll and
//!   20 µs; but after 50 passes that saw only short syscalls (a C loop)
//!   the interval doubles per pass up to 800 µs, and a syscall that then
//!   blocks loses its P within two polls (`retake::Backoff`; Go backs off
//!   to 10 ms);
//! - otherwise until the next timer, or until woken (`add_timer` with a new
//!   earliest deadline, `watch_syscall`, checkdead's suspicion): an idle
//!   runtime costs no CPU;
//! - but at most until the next re-check while a deadlock is suspected
//!   (every goroutine blocked while a thread outside the runtime may be
//!   alive: checkdead.rs), 10 ms backing off to 1 s.
//!
//! sysmon's thread sets its timer slack to 1 µs: Linux stretches every
//! timed sleep by the thread's slack (50 µs by default), which turned the
//! 25 µs polls into ~75 µs. docs/sched.md has the measurements and the
//! alternatives weighed (a coarse timestamp per syscall, shorter polls).

use crate::p::{HeldP, P};
use crate::sched::Sched;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What one `retake` pass saw.
pub(crate) struct RetakePass {
    /// Some P is in a syscall.
    in_syscall: bool,
    /// When the next syscall not yet long enough becomes due.
    due: Option<u64>,
    /// Some syscall in flight now was in flight at the previous pass.
    lasting: bool,
    /// A P was retaken.
    retook: bool,
}

impl Sched {
    /// Go's `sysmon`: a thread without a P. Fires timers when they are due,
    /// retakes the Ps of Ms stuck in syscalls (`retake`), and sleeps until
    /// the next timer, poll or retake; with no timer pending and no syscall
    /// made for 10 ms it sleeps until a timer is added or a syscall starts,
    /// so an idle runtime costs no CPU.
    pub(crate) fn sysmon(&self) {
        // Linux delays a timed sleep by up to the thread's timer slack, 50
        // µs by default: that turned the 25 µs polls below into ~75 µs.
        // sysmon is the one thread whose wakeups must be on time.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        // SAFETY: PR_SET_TIMERSLACK takes a value in ns and affects only
        // the calling thread; no pointers.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong);
        }
        // Per P: the syscall in flight and when sysmon first saw it.
        let mut watch: Vec<crate::retake::Watch> = Vec::new();
        let mut backoff = crate::retake::Backoff::default();
        let mut slices: Vec<crate::retake::SliceWatch> = Vec::new();
        let mut last_ticks = self.syscall_ticks();
        let mut last_activity = 0u64;
        let mut prev_pass = 0u64;
        // During shutdown: when sysmon first saw only goroutines outside
        // the runtime left (shutdown.rs).
        let mut outside_since: Option<u64> = None;
        loop {
            if self.finished.load(Ordering::Acquire) {
                return;
            }
            // The fallback for the Ps' timers (checktimers.rs).
            let (fired, next) = self.sysmon_timers(Instant::now());
            if fired || self.dead_suspect.load(Ordering::SeqCst) {
                // Timers that fired for waiters already woken may have
                // been all that kept checkdead quiet; or every goroutine
                // was blocked while a thread outside the runtime lived
                // (checkdead.rs): look again.
                self.sysmon_checkdead();
            }
            let now_ns = self.now_nanos();
            // The network poller's fallback: poll if nobody has for 10 ms
            // and someone waits (netpoll.rs).
            let io_soon = self.sysmon_netpoll(now_ns);
            // During shutdown: hurry running goroutines to their unwind,
            // and end the run without those that stay outside (shutdown.rs).
            let detach_at = if self.is_shutting_down() {
                self.shutdown_pass(now_ns, &mut outside_since)
            } else {
                None
            };
            let pass = self.retake(now_ns, prev_pass, &mut watch);
            let in_syscall = pass.in_syscall;
            prev_pass = now_ns;
            let slice_due = self.preempt_pass(now_ns, &mut slices);
            let ticks = self.syscall_ticks();
            if ticks != last_ticks {
                last_ticks = ticks;
                last_activity = now_ns;
            }
            // Poll while a P is in a syscall or syscalls were made in the
            // last 10 ms, and wake exactly when a syscall seen in flight
            // becomes long enough to retake (both relaxed after a run of
            // short syscalls only: `Backoff`). Otherwise sleep until the
            // next timer: an idle runtime costs nothing.
            let mut poll = in_syscall || now_ns.saturating_sub(last_activity) < 10_000_000;
            if !poll {
                self.sysmon_polling.store(false, Ordering::Relaxed);
                // Every thread's SYSCALL stores before this point are now
                // visible, and every later syscall entry sees `false` above
                // and wakes us (see `watch_syscall`).
                crate::membarrier::heavy_fence();
                poll = self.allp().any(|p| p.status.in_syscall());
            }
            if poll {
                self.sysmon_polling.store(true, Ordering::Relaxed);
                backoff.pass(pass.lasting, pass.retook);
            } else {
                backoff.reset();
            }
            // When to wake: the next timer, and while polling, the poll
            // interval from now or when a watched syscall becomes long, if
            // sooner (not while backed off: see `Backoff`).
            let wake_at = if poll {
                let now = Instant::now();
                let mut d = Duration::from_nanos(backoff.interval_ns());
                if let Some(due) = pass.due.filter(|_| backoff.chase_due()) {
                    d = d.min(Duration::from_nanos(due.saturating_sub(self.now_nanos())));
                }
                let at = now + d;
                Some(next.map_or(at, |t| t.min(at)))
            } else {
                next
            };
            // While a P runs goroutines, watch its slice (see `preempt`).
            let wake_at = if !poll && self.live.sysmon_busy(&self.npidle, self.procs()) {
                self.slice_poll(wake_at, slice_due)
            } else {
                wake_at
            };
            let wake_at = match detach_at {
                Some(d) => {
                    let at = Instant::now() + Duration::from_nanos(d);
                    Some(wake_at.map_or(at, |t| t.min(at)))
                }
                None => wake_at,
            };
            // Every goroutine looked blocked while a thread outside the
            // runtime lived (checkdead.rs): look again soon.
            let wake_at = if self.dead_suspect.load(Ordering::SeqCst) {
                let recheck = Instant::now() + self.outside.recheck_in();
                Some(wake_at.map_or(recheck, |t| t.min(recheck)))
            } else {
                wake_at
            };
            // Someone waits for an fd and no M is blocked in the poller:
            // come back to poll within 10 ms.
            let wake_at = if io_soon {
                let at = Instant::now() + Duration::from_nanos(crate::netpoll::SYSMON_POLL_NS);
                Some(wake_at.map_or(at, |t| t.min(at)))
            } else {
                wake_at
            };
            // Tell the timer heaps when we wake (they kick us only for an
            // earlier timer), then look once more: a timer pushed before
            // the store and missed by the pass above is seen here, one
            // pushed after it reads the store (checktimers.rs).
            let until = wake_at.map_or(u64::MAX, crate::timer::nanos);
            self.sysmon_until.store(until, Ordering::SeqCst);
            if self.timers_next_nanos() >= until {
                match wake_at {
                    Some(at) => {
                        let d = at.saturating_duration_since(Instant::now());
                        if !d.is_zero() {
                            self.sysmon_note.sleep_timeout(d);
                        }
                    }
                    None => self.sysmon_note.sleep(),
                }
            }
            self.sysmon_until.store(0, Ordering::SeqCst);
            self.sysmon_note.clear();
        }
    }

    /// Go's `retake`: hands off the P of every M whose syscall is long
    /// (see `retake.rs`: watched for 20 µs, or the P's next syscall after
    /// a long one), unless nothing is waiting for the P (no local work and
    /// spare Ms or Ps to take new work) and sysmon has watched it for less
    /// than 10 ms. `now` is this pass, `prev` the previous one. Returns what
    /// the pass saw, for sysmon's sleep.
    pub(crate) fn retake(
        &self,
        now: u64,
        prev: u64,
        watch: &mut Vec<crate::retake::Watch>,
    ) -> RetakePass {
        let mut pass = RetakePass {
            in_syscall: false,
            due: None,
            lasting: false,
            retook: false,
        };
        for p in self.allp() {
            if watch.len() <= p.id {
                watch.resize(p.id + 1, Default::default());
            }
            let w = &mut watch[p.id];
            if !p.status.in_syscall() {
                w.clear();
                continue;
            }
            pass.in_syscall = true;
            let seen = w.observe(p.syscalltick.load(Ordering::Relaxed), now, prev);
            pass.lasting |= seen.watched > 0;
            let spare =
                self.nmspinning.load(Ordering::Acquire) + self.npidle.load(Ordering::Acquire) > 0;
            let waiting = !p.runq.is_empty() || self.runq_len.load(Ordering::Acquire) > 0;
            if !waiting && spare && seen.watched < 10_000_000 {
                continue;
            }
            if seen.due > now {
                pass.due = Some(pass.due.map_or(seen.due, |d| d.min(seen.due)));
                continue;
            }
            if p.status.try_retake() {
                w.retaken();
                pass.retook = true;
                self.handoffs.fetch_add(1, Ordering::Relaxed);
                // SAFETY: winning the retake made p ours.
                let p = unsafe { HeldP::claim(p as *const P as *mut P) };
                p.status.set_running();
                self.handoffp(p);
            }
        }
        pass
    }

    /// Sum of every P's `syscalltick`: changes when any syscall started.
    pub(crate) fn syscall_ticks(&self) -> u32 {
        self.allp().fold(0u32, |a, p| {
            a.wrapping_add(p.syscalltick.load(Ordering::Relaxed))
        })
    }

    pub(crate) fn now_nanos(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

//! sysmon's record of the syscalls in flight on each P, and when one is
//! long enough to retake (Go's `sysmontick` and the timing half of
//! `retake`).
//!
//! `enter_syscall` reads no clock (it is the hot path of every C call): it
//! bumps the P's `syscalltick` with a plain load and store, and sysmon
//! times each syscall from its own passes. A syscall sysmon sees for the
//! first time at a pass began after the previous pass (which did not see
//! it) and before this one, so sysmon's own clock brackets its start
//! without any timestamp from the syscall side: a timestamp that sysmon
//! published and `enter_syscall` copied would say no more than "after the
//! previous pass".
//!
//! Two ways for a syscall to become long enough to retake:
//!
//! - proven: sysmon has watched it for `LONG_NS` (it was in flight at a
//!   pass and still is, same tick, `LONG_NS` later). sysmon sleeps until
//!   exactly then instead of waiting for its next regular poll.
//! - presumed: it is the next syscall on a P whose previous syscall was
//!   long (proven, or retaken), and it may have run `LONG_NS` already (the
//!   previous pass was that long ago): retaken at first sight. A goroutine
//!   that blocks in a syscall, gets its P retaken, and blocks again
//!   (`read` in a loop, a worker in a blocking C call) loses its P within
//!   one poll of every call, not one poll plus `LONG_NS`. Short calls in a
//!   loop never qualify: their ticks move by more than one between passes.
//!   A short call retaken on presumption keeps it alive only if the P's
//!   very next call is again in flight at a pass.
//!
//! Go gets the second behaviour by accident: its `syscalltick` moves only
//! on the fast exit path, so after a retake the same P's next syscall
//! carries the old tick and is retaken at first sight (its repeated
//! handoffs take 10-30 µs here, docs/performance.md).

/// How long a syscall runs before its P may be retaken (Go: one sysmon
/// tick, at least 20 µs).
pub(crate) const LONG_NS: u64 = 20_000;

/// sysmon's poll interval while syscalls are being made.
pub(crate) const POLL_NS: u64 = 25_000;

/// Polling passes that see only short syscalls before the interval starts
/// to double (Go: 50 idle passes).
pub(crate) const BACKOFF_AFTER: u32 = 50;

/// The longest poll interval: 32 x `POLL_NS`. A syscall that blocks after
/// a run of short ones loses its P within two polls, 1.6 ms (Go backs off
/// to 10 ms, so its handoff after such a run takes up to 20 ms).
pub(crate) const MAX_POLL_NS: u64 = POLL_NS << 5;

/// sysmon's poll interval while syscalls are being made (Go's `delay` in
/// `sysmon`): `POLL_NS` while some syscall lasts from one pass to the
/// next or a P was just retaken, doubling per pass after `BACKOFF_AFTER`
/// passes that saw only short ones, up to `MAX_POLL_NS`.
///
/// Why: a thread that calls C in a loop (a C program's main loop calling
/// Rust, a goroutine making many small C calls) has its P in the syscall
/// state at nearly every pass, each time with a new tick. Polled every
/// 25 µs and woken again 20 µs after each sighting to judge it, that was
/// ~14,000 sysmon wakeups a second doing nothing, on a core the program
/// could use. Backed off, sysmon also stops chasing the `due` of syscalls
/// first seen at a pass: the next pass judges them (a blocked one has
/// then been watched for a whole interval, so it is long at once).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Backoff {
    short_passes: u32,
}

impl Backoff {
    /// A polling pass: `lasting` when a syscall in flight now was in
    /// flight at the previous pass too, `retook` when a P was retaken.
    pub(crate) fn pass(&mut self, lasting: bool, retook: bool) {
        self.short_passes = if lasting || retook {
            0
        } else {
            self.short_passes.saturating_add(1)
        };
    }

    /// sysmon stopped polling (no syscall for 10 ms): start afresh.
    pub(crate) fn reset(&mut self) {
        self.short_passes = 0;
    }

    /// How long to sleep until the next pass.
    pub(crate) fn interval_ns(&self) -> u64 {
        let doublings = self.short_passes.saturating_sub(BACKOFF_AFTER).min(5);
        (POLL_NS << doublings).min(MAX_POLL_NS)
    }

    /// Whether to wake when a syscall seen in flight becomes long enough
    /// to retake (not while backed off).
    pub(crate) fn chase_due(&self) -> bool {
        self.short_passes <= BACKOFF_AFTER
    }
}

/// sysmon's record of one P between passes. Owned by sysmon alone.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Watch {
    /// The `syscalltick` of the syscall in flight at the last pass
    /// (meaningful while `since != 0`).
    tick: u32,
    /// sysmon's clock at the first pass that saw that syscall; 0: the P
    /// was not in a syscall at the last pass.
    since: u64,
    /// sysmon's clock at the pass before `since`: the syscall began after.
    after: u64,
    /// The tick of this P's last syscall known (or presumed) to be long.
    long: Option<u32>,
}

/// What sysmon knows of a syscall in flight at a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    /// How long sysmon has watched it (its age is at least this), ns.
    pub(crate) watched: u64,
    /// When it may be retaken (sysmon's clock, ns); `<= now`: now.
    pub(crate) due: u64,
}

impl Watch {
    /// The P is not in a syscall at this pass.
    pub(crate) fn clear(&mut self) {
        self.since = 0;
    }

    /// The P is in syscall `tick` at this pass, at `now`; sysmon's
    /// previous pass was at `prev` (0: none).
    pub(crate) fn observe(&mut self, tick: u32, now: u64, prev: u64) -> Seen {
        if self.since == 0 || self.tick != tick {
            // Not in flight at the previous pass: it began after `prev`.
            self.tick = tick;
            self.since = now.max(1);
            self.after = prev;
        }
        let watched = now.saturating_sub(self.since);
        if watched >= LONG_NS {
            self.long = Some(tick);
        }
        let proven = self.since.saturating_add(LONG_NS);
        let due = if self.long == Some(tick.wrapping_sub(1)) {
            proven.min(self.after.saturating_add(LONG_NS))
        } else {
            proven
        };
        Seen { watched, due }
    }

    /// sysmon retook the P of the syscall last observed: its next syscall
    /// is presumed long too.
    pub(crate) fn retaken(&mut self) {
        self.long = Some(self.tick);
    }
}

/// sysmon's record of one P's slice between passes (Go's `sysmontick`'s
/// `schedtick` and `schedwhen`): the slice in progress and when sysmon
/// first saw it. Owned by sysmon alone. A slice first seen at a pass
/// began after the previous pass, so its age is at most one poll more
/// than sysmon's count; sysmon polls at least every `SLICE_NS / 4` while
/// a P runs (see `sysmon`), which bounds that error.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SliceWatch {
    tick: u32,
    /// sysmon's clock at the first pass that saw `tick`; 0: none.
    since: u64,
    /// The holder thread's CPU times when the slice was first marked, and
    /// sysmon's clock then.
    at_mark_times: Option<CpuTimes>,
    at_mark_at: u64,
    /// The slice was extended once for a thread that waited for a CPU.
    extended: bool,
}

/// What Linux says of a thread: its time on a CPU, ns (the first field of
/// /proc/<pid>/task/<tid>/schedstat), and whether it is runnable now
/// (state R in its stat: on a CPU or waiting for one, not blocked).
/// schedstat's second field, the time waited for a CPU, is not used: the
/// kernel adds a wait only when the wait ends, so it says nothing of a
/// thread that is waiting now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    pub(crate) on_cpu: u64,
    pub(crate) runnable: bool,
}

/// What sysmon makes of a P's slice at a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SliceSeen {
    /// The slice ran out: mark it (cooperative preemption).
    pub(crate) mark: bool,
    /// It ran out `GRACE_NS` ago and was not given up: retake the P.
    pub(crate) retake: bool,
    /// When the next of those becomes due (sysmon's clock).
    pub(crate) due: Option<u64>,
}

impl SliceWatch {
    /// The P is in a syscall (the syscall watch has it) or idle.
    pub(crate) fn clear(&mut self) {
        self.since = 0;
    }

    /// The P's `schedtick` is `tick` at this pass, at `now`.
    pub(crate) fn observe(&mut self, tick: u32, now: u64) -> SliceSeen {
        use crate::handshake::{GRACE_NS, SLICE_NS};
        if self.since == 0 || self.tick != tick {
            *self = SliceWatch {
                tick,
                since: now.max(1),
                at_mark_times: None,
                at_mark_at: 0,
                extended: false,
            };
        }
        let age = now.saturating_sub(self.since);
        let mark_at = self.since.saturating_add(SLICE_NS);
        let retake_at = mark_at.saturating_add(GRACE_NS);
        SliceSeen {
            mark: age >= SLICE_NS,
            retake: age >= SLICE_NS + GRACE_NS,
            due: if now < mark_at {
                Some(mark_at)
            } else if now < retake_at {
                Some(retake_at)
            } else {
                None
            },
        }
    }

    /// sysmon retook the P: its next slice is watched afresh.
    pub(crate) fn retaken(&mut self) {
        self.since = 0;
    }

    /// The slice was marked at `now`; `times` reads its holder's (None:
    /// unknown). Only the first mark of a slice reads them.
    pub(crate) fn marked(&mut self, now: u64, times: impl FnOnce() -> Option<CpuTimes>) {
        if self.at_mark_times.is_none() {
            self.at_mark_times = times();
            self.at_mark_at = now;
        }
    }

    /// At the retake: whether the holder's thread spent the grace since
    /// the mark waiting for a CPU: runnable now, and on a CPU for less
    /// than half the time since the mark (the OS preempted it; its
    /// goroutine did not hog anything). Then the slice is extended, once:
    /// watched afresh from `now`, the mark standing, so that the goroutine
    /// gets a slice of real CPU to reach a preemption point before its P
    /// goes to another thread. A thread that ran, or is blocked (outside
    /// the runtime, as in a plain blocking call), is retaken as before.
    pub(crate) fn descheduled(&mut self, times: Option<CpuTimes>, now: u64) -> bool {
        let (Some(then), Some(now_t)) = (self.at_mark_times, times) else {
            return false;
        };
        if self.extended || !now_t.runnable {
            return false;
        }
        let ran = now_t.on_cpu.saturating_sub(then.on_cpu);
        if ran >= now.saturating_sub(self.at_mark_at) / 2 {
            return false;
        }
        self.extended = true;
        self.since = now.max(1);
        self.at_mark_times = None;
        true
    }
}

/// A thread's `CpuTimes` from its schedstat line (time on a CPU, ns, first)
/// and its stat line (the state after the command's closing parenthesis).
pub(crate) fn parse_cpu_times(schedstat: &str, stat: &str) -> Option<CpuTimes> {
    let on_cpu = schedstat.split_whitespace().next()?.parse().ok()?;
    let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
    Some(CpuTimes {
        on_cpu,
        runnable: state == "R",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(on_cpu: u64, runnable: bool) -> Option<CpuTimes> {
        Some(CpuTimes { on_cpu, runnable })
    }

    #[test]
    fn a_slice_whose_thread_waited_for_a_cpu_is_extended_once() {
        use crate::handshake::{GRACE_NS, SLICE_NS};
        const MS: u64 = 1_000_000;
        let mut w = SliceWatch::default();
        let t0 = 1_000;
        w.observe(5, t0);
        let mark = t0 + SLICE_NS;
        let at = mark + GRACE_NS;
        assert!(w.observe(5, mark).mark);
        w.marked(mark, || times(3 * MS, true));
        w.marked(mark + 1, || panic!("a later mark does not read"));
        assert!(w.observe(5, at).retake);
        // Runnable, and on a CPU for 0.1 ms of the 1 ms grace: extended.
        assert!(w.descheduled(times(3 * MS + MS / 10, true), at));
        let v = w.observe(5, at + MS);
        assert!(!v.mark && !v.retake, "watched afresh: {v:?}");
        // Marked again a slice later; retaken this time though it waited
        // again: once per slice.
        assert!(w.observe(5, at + SLICE_NS).mark);
        w.marked(at + SLICE_NS, || times(4 * MS, true));
        assert!(w.observe(5, at + SLICE_NS + GRACE_NS).retake);
        assert!(!w.descheduled(times(4 * MS, true), at + SLICE_NS + GRACE_NS));
        // A new slice starts with a clean record.
        w.observe(6, at + 2 * SLICE_NS);
        w.marked(at + 3 * SLICE_NS, || times(0, true));
        assert!(w.descheduled(times(0, true), at + 3 * SLICE_NS + GRACE_NS));
    }

    #[test]
    fn a_slice_whose_thread_ran_or_blocked_is_retaken() {
        const MS: u64 = 1_000_000;
        let mut w = SliceWatch::default();
        w.observe(1, 1);
        w.marked(10 * MS, || times(10 * MS, true));
        let at = 11 * MS;
        assert!(
            !w.descheduled(times(10 * MS + MS / 2, true), at),
            "ran half: a hog"
        );
        assert!(
            !w.descheduled(times(10 * MS, false), at),
            "blocked outside the runtime"
        );
        assert!(!w.descheduled(None, at), "unknown: retaken");
        let mut fresh = SliceWatch::default();
        assert!(
            !fresh.descheduled(times(0, true), at),
            "no reading at the mark"
        );
    }

    #[test]
    fn cpu_times_parse_from_schedstat_and_stat() {
        let stat = |state: &str| format!("42 (gort-m1 (x)) {state} 1 42 42 0 -1");
        assert_eq!(parse_cpu_times("123 456 7\n", &stat("R")), times(123, true));
        assert_eq!(
            parse_cpu_times("123 456 7\n", &stat("S")),
            times(123, false)
        );
        assert_eq!(parse_cpu_times("", &stat("R")), None);
        assert_eq!(parse_cpu_times("1 2 3", "garbage"), None);
    }

    #[test]
    fn polling_backs_off_only_after_a_run_of_short_passes() {
        let mut b = Backoff::default();
        for _ in 0..BACKOFF_AFTER {
            b.pass(false, false);
            assert_eq!(b.interval_ns(), POLL_NS);
            assert!(b.chase_due());
        }
        b.pass(false, false);
        assert_eq!(b.interval_ns(), 2 * POLL_NS);
        assert!(!b.chase_due(), "backed off, dues are left to the next pass");
        for _ in 0..100 {
            b.pass(false, false);
        }
        assert_eq!(b.interval_ns(), MAX_POLL_NS);
        // A syscall that lasts across passes, or a retake: back to the
        // base interval at once.
        b.pass(true, false);
        assert_eq!(b.interval_ns(), POLL_NS);
        assert!(b.chase_due());
        for _ in 0..200 {
            b.pass(false, false);
        }
        b.pass(false, true);
        assert_eq!(b.interval_ns(), POLL_NS);
        for _ in 0..200 {
            b.pass(false, false);
        }
        b.reset();
        assert_eq!(b.interval_ns(), POLL_NS);
    }

    const US: u64 = 1_000;

    #[test]
    fn a_syscall_is_due_once_watched_for_long_ns() {
        let mut w = Watch::default();
        // First seen at 100 µs (previous pass at 60 µs): due at 120 µs.
        let s = w.observe(7, 100 * US, 60 * US);
        assert_eq!(
            s,
            Seen {
                watched: 0,
                due: 120 * US
            }
        );
        // Still the same syscall 15 µs later: not yet.
        let s = w.observe(7, 115 * US, 100 * US);
        assert_eq!(s.watched, 15 * US);
        assert!(s.due > 115 * US);
        // At 120 µs: due.
        let s = w.observe(7, 120 * US, 115 * US);
        assert!(s.due <= 120 * US);
    }

    #[test]
    fn a_new_tick_restarts_the_watch() {
        let mut w = Watch::default();
        w.observe(7, 100 * US, 60 * US);
        // Another syscall (tick 9: 8 came and went) at the next pass.
        let s = w.observe(9, 140 * US, 100 * US);
        assert_eq!(
            s,
            Seen {
                watched: 0,
                due: 160 * US
            }
        );
        // A pass with the P out of its syscall, then its next one.
        w.clear();
        let s = w.observe(10, 200 * US, 180 * US);
        assert_eq!(
            s,
            Seen {
                watched: 0,
                due: 220 * US
            }
        );
    }

    #[test]
    fn the_syscall_after_a_long_one_is_due_at_first_sight() {
        let mut w = Watch::default();
        w.observe(7, 100 * US, 60 * US);
        w.observe(7, 125 * US, 100 * US); // proven long
        w.clear();
        // The P's next syscall, first seen a poll later: due now.
        let s = w.observe(8, 300 * US, 250 * US);
        assert!(s.due <= 300 * US, "{s:?}");
    }

    #[test]
    fn the_syscall_after_a_retaken_one_is_due_at_first_sight() {
        let mut w = Watch::default();
        w.observe(3, 100 * US, 60 * US);
        w.retaken();
        w.clear();
        let s = w.observe(4, 200 * US, 150 * US);
        assert!(s.due <= 200 * US, "{s:?}");
    }

    #[test]
    fn presumption_waits_until_the_syscall_may_have_run_long_ns() {
        let mut w = Watch::default();
        w.observe(3, 100 * US, 60 * US);
        w.retaken();
        w.clear();
        // The previous pass was only 5 µs ago: the syscall is at most 5 µs
        // old; due 20 µs after that pass.
        let s = w.observe(4, 205 * US, 200 * US);
        assert_eq!(s.due, 220 * US);
    }

    #[test]
    fn short_syscalls_in_between_break_the_presumption() {
        let mut w = Watch::default();
        w.observe(3, 100 * US, 60 * US);
        w.retaken();
        w.clear();
        // Ticks 4 and 5 came and went unseen: 6 is watched in full.
        let s = w.observe(6, 200 * US, 150 * US);
        assert_eq!(s.due, 220 * US);
        // And a short syscall that was retaken on presumption does not
        // extend the chain past the calls it did not see.
        let mut w = Watch::default();
        w.observe(3, 100 * US, 60 * US);
        w.retaken();
        w.clear();
        w.observe(4, 200 * US, 150 * US);
        w.retaken();
        w.clear();
        let s = w.observe(9, 300 * US, 250 * US);
        assert_eq!(s.due, 320 * US);
    }

    #[test]
    fn ticks_wrap() {
        let mut w = Watch::default();
        w.observe(u32::MAX, 100 * US, 60 * US);
        w.retaken();
        w.clear();
        let s = w.observe(0, 200 * US, 150 * US);
        assert!(s.due <= 200 * US);
    }
    const MS: u64 = 1_000_000;

    #[test]
    fn a_slice_is_marked_after_slice_ns_and_retaken_after_the_grace() {
        let mut w = SliceWatch::default();
        let s = w.observe(5, 100 * MS);
        assert_eq!(
            s,
            SliceSeen {
                mark: false,
                retake: false,
                due: Some(110 * MS)
            }
        );
        let s = w.observe(5, 110 * MS);
        assert!(s.mark && !s.retake, "{s:?}");
        assert_eq!(s.due, Some(111 * MS));
        let s = w.observe(5, 111 * MS);
        assert!(s.mark && s.retake, "{s:?}");
        assert_eq!(s.due, None);
    }

    #[test]
    fn a_new_slice_restarts_the_watch() {
        let mut w = SliceWatch::default();
        w.observe(5, 100 * MS);
        let s = w.observe(6, 109 * MS);
        assert_eq!(s.due, Some(119 * MS));
        assert!(!w.observe(6, 118 * MS).mark);
        w.retaken();
        assert!(!w.observe(6, 125 * MS).mark);
        w.clear();
        assert!(!w.observe(6, 130 * MS).mark);
    }
}

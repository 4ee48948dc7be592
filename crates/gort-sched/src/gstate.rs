//! The protocol of a G's state word (`G::state`): its status and the
//! one-shot of `park_with` (park.rs) in one atomic word, so that the wake
//! that wins a parked goroutine's wait also makes it Runnable, in one CAS.
//! Its own module so that `tests/loom_gstate.rs` models the real code.
//!
//! Layout: status in bits 0-2 (`Status`'s values), the outcome of the
//! current wait in bits 3-4 (WOKEN, TIMED_OUT), PARKED in bit 5, SCAN in
//! bit 6, and the number of the current wait above (counted over the G's
//! whole life, across reuse).

use crate::sync::atomic::{AtomicU64, Ordering};

/// Status values (as `g::Status`).
pub const RUNNABLE: u64 = 1;
/// Running on an M.
pub const RUNNING: u64 = 2;
/// Parked.
pub const WAITING: u64 = 3;
/// The status bits.
pub const STATUS_MASK: u64 = 0b111;
/// Where the outcome sits.
pub const OUTCOME_SHIFT: u32 = 3;
/// The outcome bits.
pub const OUTCOME_MASK: u64 = 0b11 << OUTCOME_SHIFT;
/// Outcomes (before the shift): none yet, a wake won, the deadline won.
pub const NO_OUTCOME: u8 = 0;
/// A wake won.
pub const WOKEN: u8 = 1;
/// The deadline won.
pub const TIMED_OUT: u8 = 2;
/// The goroutine is parked in its current wait, and the wake that wins it
/// makes it Runnable (in the same CAS) and queues it.
pub const PARKED: u64 = 1 << 5;
/// Set on top of WAITING while a goroutine dump reads the G's suspended
/// stack (Go's `_Gscan`): a change out of WAITING waits until it clears,
/// so the stack stays unchanged while it is walked. Set only by
/// `try_claim_scan`, cleared by `release_scan`.
pub const SCAN: u64 = 1 << 6;
/// One wait to the next.
pub const WAIT_STEP: u64 = 1 << 7;
/// The bits that name a wait and its outcome.
pub const WAIT_MASK: u64 = !(STATUS_MASK | PARKED | SCAN);

/// A status change met a dump reading the G's stack: wait (the walk takes
/// microseconds and takes no lock a waker could hold).
#[cold]
fn scan_wait() {
    for _ in 0..64 {
        std::hint::spin_loop();
    }
    crate::sync::yield_now();
}

/// A G's state word.
///
/// Must hold: other threads only CAS (or, for SCAN, fetch_and) the word,
/// and only while the status is WAITING (`try_cas_status` from WAITING:
/// `ready`; a winning `win`; a dump's SCAN claim) or with the number of
/// the current wait and no outcome (`win`, `win_quietly` recording an
/// outcome); so while the G is Runnable, Running, in a syscall or dead,
/// its owner may rewrite the word with plain stores (`owner_set`,
/// `begin_wait`). Only the goroutine itself moves the wait number on
/// (`begin_wait`). SCAN is set only on a WAITING G, and nothing moves the
/// G out of WAITING while it is set.
#[derive(Debug)]
pub struct GState(AtomicU64);

impl GState {
    /// A word with status `status`, wait number 0.
    pub fn new(status: u64) -> GState {
        GState(AtomicU64::new(status))
    }

    /// The whole word (acquire).
    pub fn load(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// The status bits (acquire).
    pub fn status(&self) -> u64 {
        self.load() & STATUS_MASK
    }

    /// The owner's transition `from` -> `to` (never out of WAITING, which
    /// others race): a check and a release store. Err(actual word) if the
    /// status was not `from`. Inlined: it is on every switch and on the
    /// cgo call path, where a call costs as much as the body.
    #[inline]
    pub fn owner_set(&self, from: u64, to: u64) -> Result<(), u64> {
        debug_assert!(from != WAITING, "transitions out of Waiting race");
        let cur = self.0.load(Ordering::Relaxed);
        if cur & STATUS_MASK != from {
            return Err(cur);
        }
        self.0.store((cur & !STATUS_MASK) | to, Ordering::Release);
        Ok(())
    }

    /// Sets the status of a G nobody else can reach.
    pub fn set_status_exclusive(&self, to: u64) {
        let w = self.0.load(Ordering::Relaxed);
        self.0.store((w & !STATUS_MASK) | to, Ordering::Release);
    }

    /// `from` -> `to` if the status is `from`, keeping the other bits; of
    /// several racing callers one wins.
    pub fn try_cas_status(&self, from: u64, to: u64) -> bool {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if cur & STATUS_MASK != from {
                return false;
            }
            if cur & SCAN != 0 {
                scan_wait();
                cur = self.0.load(Ordering::Acquire);
                continue;
            }
            match self.0.compare_exchange_weak(
                cur,
                (cur & !STATUS_MASK) | to,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(c) => cur = c,
            }
        }
    }

    /// A running goroutine starts a new wait (eager: PARKED from the
    /// start); returns its number. A plain store: the goroutine is
    /// Running, so nobody else writes the word.
    pub fn begin_wait(&self, eager: bool) -> u64 {
        let cur = self.0.load(Ordering::Relaxed);
        debug_assert_eq!(cur & STATUS_MASK, RUNNING);
        let word = (cur | (WAIT_STEP - 1)) + 1;
        self.0.store(
            word | RUNNING | if eager { PARKED } else { 0 },
            Ordering::Release,
        );
        word
    }

    /// Whether wait `word` has no outcome yet.
    pub fn is_waiting(&self, word: u64) -> bool {
        self.load() & WAIT_MASK == word
    }

    /// The outcome of the current wait.
    pub fn outcome(&self) -> u8 {
        ((self.load() & OUTCOME_MASK) >> OUTCOME_SHIFT) as u8
    }

    /// Puts outcome `to` on wait `word` if it has none yet; None if another
    /// wake (or the wait's end) came first. If the goroutine is parked in
    /// the wait (PARKED, WAITING), the same CAS makes it Runnable:
    /// Some(true), and the caller must queue it.
    pub fn win(&self, word: u64, to: u8) -> Option<bool> {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if cur & WAIT_MASK != word {
                return None;
            }
            let parked = cur & PARKED != 0 && cur & STATUS_MASK == WAITING;
            if parked && cur & SCAN != 0 {
                scan_wait();
                cur = self.0.load(Ordering::Acquire);
                continue;
            }
            let mut new = cur | (u64::from(to) << OUTCOME_SHIFT);
            if parked {
                new = (new & !STATUS_MASK) | RUNNABLE;
            }
            // Release: what the waker wrote for the waiter (a channel
            // entry) happens before the waiter sees the outcome.
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(parked),
                Err(c) => cur = c,
            }
        }
    }

    /// Puts outcome `to` on wait `word` without readying anyone (the waiter
    /// itself, leaving the wait); false if a wake came first.
    pub fn win_quietly(&self, word: u64, to: u8) -> bool {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if cur & WAIT_MASK != word {
                return false;
            }
            let new = cur | (u64::from(to) << OUTCOME_SHIFT);
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(c) => cur = c,
            }
        }
    }

    /// A deferred park's last step (on g0, the G WAITING): from now on a
    /// winning wake readies it. False if a wake came first: the park is
    /// called off. True also if a plain `ready` (shutdown) made it Runnable
    /// meanwhile: that one queued it.
    pub fn mark_parked(&self, word: u64) -> bool {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if cur & WAIT_MASK != word {
                return false;
            }
            if cur & STATUS_MASK != WAITING {
                return true;
            }
            match self.0.compare_exchange_weak(
                cur,
                cur | PARKED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(c) => cur = c,
            }
        }
    }

    /// Claims a WAITING G for a dump (sets SCAN); false if it is not
    /// waiting or already claimed.
    pub fn try_claim_scan(&self) -> bool {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if cur & STATUS_MASK != WAITING || cur & SCAN != 0 {
                return false;
            }
            match self
                .0
                .compare_exchange_weak(cur, cur | SCAN, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(c) => cur = c,
            }
        }
    }

    /// Ends a claim made by `try_claim_scan`.
    pub fn release_scan(&self) {
        self.0.fetch_and(!SCAN, Ordering::Release);
    }
}

// Plain-thread tests of the one-shot wake protocol, small enough for Miri
// (which checks the racing CASes for data races and the waiter's read of
// what the winner wrote). The loom model explores the interleavings.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A G that started wait `word` and parked in it.
    fn parked() -> (Arc<GState>, u64) {
        let g = Arc::new(GState::new(RUNNING));
        let word = g.begin_wait(false);
        g.owner_set(RUNNING, WAITING).unwrap();
        assert!(g.mark_parked(word));
        (g, word)
    }

    #[test]
    fn of_racing_wakes_exactly_one_wins_and_readies_the_waiter() {
        let rounds = if cfg!(miri) { 20 } else { 500 };
        for _ in 0..rounds {
            let (g, word) = parked();
            let racers: Vec<_> = [WOKEN, TIMED_OUT, WOKEN]
                .into_iter()
                .map(|to| {
                    let g = g.clone();
                    std::thread::spawn(move || (to, g.win(word, to)))
                })
                .collect();
            let results: Vec<(u8, Option<bool>)> =
                racers.into_iter().map(|r| r.join().unwrap()).collect();
            let winners: Vec<u8> = results
                .iter()
                .filter_map(|&(to, r)| (r == Some(true)).then_some(to))
                .collect();
            assert_eq!(winners.len(), 1, "{results:?}");
            assert!(results.iter().all(|&(_, r)| r != Some(false)));
            assert_eq!(g.status(), RUNNABLE);
            assert_eq!(g.outcome(), winners[0]);
            assert!(!g.is_waiting(word));
        }
    }

    #[test]
    fn a_waker_of_an_earlier_wait_never_wins_a_later_one() {
        let g = GState::new(RUNNING);
        let first = g.begin_wait(false);
        assert_eq!(g.win(first, WOKEN), Some(false), "running: not readied");
        let second = g.begin_wait(false);
        assert_ne!(first, second);
        assert_eq!(g.outcome(), NO_OUTCOME);
        assert_eq!(g.win(first, WOKEN), None, "stale waker");
        assert!(g.is_waiting(second));
        assert!(g.win_quietly(second, TIMED_OUT));
        assert_eq!(g.win(second, WOKEN), None, "the wait already ended");
        assert_eq!(g.outcome(), TIMED_OUT);
    }

    #[test]
    fn a_wake_before_the_park_calls_the_park_off() {
        let g = GState::new(RUNNING);
        let word = g.begin_wait(false);
        g.owner_set(RUNNING, WAITING).unwrap();
        assert_eq!(g.win(word, WOKEN), Some(false), "not parked yet");
        assert!(!g.mark_parked(word), "the park is called off");
        assert_eq!(g.status(), WAITING, "the waiter itself moves on");
    }

    #[test]
    fn a_scan_claim_is_exclusive_and_only_on_waiting() {
        let (g, _) = parked();
        assert!(g.try_claim_scan());
        assert!(!g.try_claim_scan());
        g.release_scan();
        assert!(g.try_claim_scan());
        g.release_scan();
        let running = GState::new(RUNNING);
        assert!(!running.try_claim_scan());
    }
}

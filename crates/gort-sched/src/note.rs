//! One-shot sleep and wakeup on a futex (Go's `note`: `notesleep`,
//! `notetsleep`, `notewakeup`, `noteclear`).
//!
//! An idle M sleeps on its note; whoever hands it work wakes it. The note
//! remembers a wakeup that comes before the sleep, so the waker never has to
//! know whether the sleeper got there yet.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const CLEAR: u32 = 0;
const WOKEN: u32 = 1;

/// Must hold: `state` is `CLEAR` or `WOKEN`; only `clear` moves it back to
/// `CLEAR`, and only the note's owner (the single sleeper) calls `clear`,
/// when no wakeup for the previous round can still arrive.
#[derive(Debug, Default)]
pub(crate) struct Note {
    state: AtomicU32,
}

impl Note {
    pub(crate) const fn new() -> Note {
        Note {
            state: AtomicU32::new(CLEAR),
        }
    }

    /// Rearms the note for the next sleep.
    pub(crate) fn clear(&self) {
        self.state.store(CLEAR, Ordering::Relaxed);
    }

    /// Wakes the sleeper (now or at its next sleep). Release: what the waker
    /// wrote before is visible to the sleeper after it wakes.
    pub(crate) fn wake(&self) {
        if self.state.swap(WOKEN, Ordering::Release) == CLEAR {
            futex_wake(&self.state);
        }
    }

    /// Sleeps until woken.
    pub(crate) fn sleep(&self) {
        while self.state.load(Ordering::Acquire) == CLEAR {
            futex_wait(&self.state, CLEAR, None);
        }
    }

    /// Sleeps until woken or `timeout` passes; true if woken. (For sysmon
    /// and timers.)
    #[allow(dead_code)]
    pub(crate) fn sleep_timeout(&self, timeout: Duration) -> bool {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            self.sleep();
            return true;
        };
        loop {
            if self.state.load(Ordering::Acquire) == WOKEN {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            futex_wait(&self.state, CLEAR, Some(deadline - now));
        }
    }

    /// Whether a wakeup has been delivered since the last `clear`.
    #[allow(dead_code)]
    pub(crate) fn is_woken(&self) -> bool {
        self.state.load(Ordering::Acquire) == WOKEN
    }
}

/// Blocks while `*word == expected`, up to `timeout`. Spurious returns are
/// fine: callers loop.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT reads the u32 behind a valid reference and an
    // optional relative timeout from a live timespec; it writes nothing.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
        );
    }
}

/// Wakes one waiter blocked on `word`.
pub(crate) fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wake_before_sleep_is_remembered() {
        let n = Note::new();
        n.wake();
        n.sleep();
        assert!(n.is_woken());
    }

    #[test]
    fn sleep_timeout_expires_without_a_wakeup() {
        let n = Note::new();
        assert!(!n.sleep_timeout(Duration::from_millis(5)));
        n.clear();
        n.wake();
        assert!(n.sleep_timeout(Duration::from_secs(10)));
    }

    #[test]
    fn wakeup_from_another_thread_ends_the_sleep() {
        for _ in 0..100 {
            let n = Arc::new(Note::new());
            let w = n.clone();
            let t = std::thread::spawn(move || w.wake());
            n.sleep();
            t.join().unwrap();
            assert!(n.is_woken());
        }
    }
}

//! Go's `sync.Mutex`, as a `Mutex<T>` with a guard. The design (normal and
//! starvation modes, step for step after Go's lockSlow/unlockSlow) is on
//! the type and in docs/sync.md.

use crate::sema::{Sema, Unwound};
use gort_sched::park::{current, WaitReason};
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---- Mutex ---------------------------------------------------------------------------

const LOCKED: u32 = 1;
const WOKEN: u32 = 2;
const STARVING: u32 = 4;
const WAITER_SHIFT: u32 = 3;
const WAITER: u32 = 1 << WAITER_SHIFT;
/// Go's starvationThresholdNs.
const STARVATION_THRESHOLD: Duration = Duration::from_millis(1);

/// A mutual exclusion lock that parks goroutines (not their threads), after
/// Go's `sync.Mutex`, protecting a `T`. Plain threads may use it too (they
/// block).
///
/// Two modes, as in Go. Normal: waiters queue FIFO, but a woken waiter
/// competes with newly arriving lockers, which usually win (they are
/// already running); a waiter that loses goes back to the head of the
/// queue. A waiter that has waited more than 1 ms switches the mutex to
/// starvation mode: unlock hands ownership directly to the waiter at the
/// head, and newcomers queue at the tail without trying. The mutex returns
/// to normal mode when the waiter that takes it is the last one, or waited
/// less than 1 ms. Normal mode is much faster (a goroutine can take the
/// lock many times in a row); starvation mode bounds the tail latency.
///
/// Unlike `std::sync::Mutex`, there is no poisoning (Go has none): a panic
/// while the guard is held unlocks the mutex.
pub struct Mutex<T: ?Sized> {
    /// LOCKED | WOKEN | STARVING | waiters << WAITER_SHIFT (Go's m.state).
    state: AtomicU32,
    sema: Sema,
    /// Times a waiter switched the mutex into starvation mode.
    starvations: AtomicUsize,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex gives access to `T` to one holder at a time, which may
// be on any thread, so `T: Send` suffices for both (as for std's Mutex).
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// Holds a [`Mutex`] locked; unlocks on drop. Dereferences to the data.
#[must_use = "the mutex unlocks as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    /// Read by `Condvar`, which unlocks and relocks it around a wait.
    pub(crate) mutex: &'a Mutex<T>,
    // Send iff T: Send, Sync iff T: Sync (the guard hands out &T and &mut T).
    _marker: PhantomData<&'a mut T>,
}

impl<T> Mutex<T> {
    /// A new, unlocked mutex.
    pub const fn new(value: T) -> Self {
        Mutex {
            state: AtomicU32::new(0),
            sema: Sema::new(),
            starvations: AtomicUsize::new(0),
            data: UnsafeCell::new(value),
        }
    }

    /// The data, consuming the mutex.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, parking the goroutine (or blocking the thread) until the
    /// mutex is free.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        gort_sched::park::preempt_point();
        if self
            .state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
        MutexGuard {
            mutex: self,
            _marker: PhantomData,
        }
    }

    /// Locks if the mutex is free now (and not in starvation mode, where it
    /// belongs to the queued waiters).
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        gort_sched::park::preempt_point();
        let mut old = self.state.load(Ordering::Relaxed);
        loop {
            if old & (LOCKED | STARVING) != 0 {
                return None;
            }
            match self.state.compare_exchange_weak(
                old,
                old | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(MutexGuard {
                        mutex: self,
                        _marker: PhantomData,
                    })
                }
                Err(cur) => old = cur,
            }
        }
    }

    /// The data, through an exclusive borrow (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// Go's lockSlow, step for step.
    #[cold]
    fn lock_slow(&self) {
        let mut wait_start: Option<Instant> = None;
        let mut starving = false;
        let mut awoke = false;
        let mut iter = 0;
        let mut old = self.state.load(Ordering::Relaxed);
        loop {
            // Spin while the holder may be about to unlock (normal mode
            // only: in starvation mode the mutex goes to the queue anyway).
            if old & (LOCKED | STARVING) == LOCKED && can_spin(iter) {
                // Set WOKEN so that unlock does not wake another waiter
                // while we are about to take the lock.
                if !awoke
                    && old & WOKEN == 0
                    && old >> WAITER_SHIFT != 0
                    && self
                        .state
                        .compare_exchange(old, old | WOKEN, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    awoke = true;
                }
                for _ in 0..30 {
                    std::hint::spin_loop();
                }
                iter += 1;
                old = self.state.load(Ordering::Relaxed);
                continue;
            }
            let mut new = old;
            // Newcomers do not take a starving mutex; they queue.
            if old & STARVING == 0 {
                new |= LOCKED;
            }
            if old & (LOCKED | STARVING) != 0 {
                new += WAITER;
            }
            // Switch to starvation mode, unless the mutex was just unlocked
            // (unlock expects waiters in starvation mode).
            if starving && old & LOCKED != 0 {
                new |= STARVING;
            }
            if awoke {
                // We were woken (or claimed WOKEN spinning): clear it.
                debug_assert!(new & WOKEN != 0, "inconsistent mutex state");
                new &= !WOKEN;
            }
            match self
                .state
                .compare_exchange_weak(old, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    if old & (LOCKED | STARVING) == 0 {
                        return; // locked by the CAS
                    }
                    if new & STARVING != 0 && old & STARVING == 0 {
                        self.starvations.fetch_add(1, Ordering::Relaxed);
                    }
                    // A waiter that waited before goes to the head.
                    let lifo = wait_start.is_some();
                    let start = *wait_start.get_or_insert_with(Instant::now);
                    self.sema
                        .acquire(WaitReason::Mutex, lifo, |left| match left {
                            // Unwound while queued (shutdown): stop counting us.
                            Unwound::Queued => {
                                self.state.fetch_sub(WAITER, Ordering::Relaxed);
                            }
                            // Handed the token as we were unwound: pass it on.
                            Unwound::Handed => self.sema.release(false),
                        });
                    starving = starving || start.elapsed() > STARVATION_THRESHOLD;
                    old = self.state.load(Ordering::Relaxed);
                    if old & STARVING != 0 {
                        // Handed off: the mutex is ours, though LOCKED is
                        // not set and we still count as a waiter.
                        debug_assert!(
                            old & (LOCKED | WOKEN) == 0 && old >> WAITER_SHIFT != 0,
                            "inconsistent mutex state"
                        );
                        let mut delta = LOCKED.wrapping_sub(WAITER);
                        if !starving || old >> WAITER_SHIFT == 1 {
                            // Leave starvation mode: we waited little, or we
                            // are the last waiter.
                            delta = delta.wrapping_sub(STARVING);
                        }
                        self.state.fetch_add(delta, Ordering::Acquire);
                        return;
                    }
                    awoke = true;
                    iter = 0;
                }
                Err(cur) => old = cur,
            }
        }
    }

    fn unlock(&self) {
        let new = self.state.fetch_sub(LOCKED, Ordering::Release) - LOCKED;
        if new != 0 {
            self.unlock_slow(new);
        }
    }

    /// Go's unlockSlow.
    #[cold]
    fn unlock_slow(&self, new: u32) {
        debug_assert!(
            new.wrapping_add(LOCKED) & LOCKED != 0,
            "unlock of unlocked mutex"
        );
        if new & STARVING != 0 {
            // Hand ownership to the first waiter, and let it run now.
            self.sema.release(true);
            return;
        }
        let mut old = new;
        loop {
            // No waiters, or someone already woken, or the mutex already
            // taken again: nobody to wake.
            if old >> WAITER_SHIFT == 0 || old & (LOCKED | WOKEN | STARVING) != 0 {
                return;
            }
            let new = (old - WAITER) | WOKEN;
            match self
                .state
                .compare_exchange_weak(old, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.sema.release(false);
                    return;
                }
                Err(cur) => old = cur,
            }
        }
    }
}

/// Go's runtime_canSpin, approximately: a few rounds, only with more than
/// one CPU and (on a goroutine) more than one P, since spinning on the only
/// P would just delay the holder.
fn can_spin(iter: u32) -> bool {
    if iter >= 4 {
        return false;
    }
    static MULTICORE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let multicore =
        *MULTICORE.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1));
    multicore && (current().is_none() || gort_sched::procs() > 1)
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the mutex, so no one else accesses the
        // data until it is dropped.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in deref, and `&mut self` makes this borrow unique.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(v: T) -> Self {
        Mutex::new(v)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Mutex;
    use gort_sched::{go, sleep, yield_now, Runtime};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    fn rt(procs: usize) -> Runtime {
        Runtime::builder().procs(procs).build().unwrap()
    }

    /// Go's scenario: a holder keeps re-taking the lock (it is running, so in
    /// normal mode it wins every race against the woken waiter); once the
    /// waiter has waited over 1 ms it switches the mutex to starvation mode,
    /// and the next unlock hands the lock straight to it.
    #[test]
    fn a_waiter_starved_for_1ms_switches_to_starvation_mode_and_gets_the_lock() {
        rt(1)
            .run(|| {
                let m = Arc::new(Mutex::new(Vec::new()));
                let stop = Arc::new(AtomicUsize::new(0));
                let (m2, stop2) = (m.clone(), stop.clone());
                let holder = go(move || {
                    let mut rounds = 0;
                    while stop2.load(Ordering::Relaxed) == 0 && rounds < 1000 {
                        let mut g = m2.lock();
                        g.push("holder");
                        // Park 2 ms holding the lock: the waiter runs, finds it
                        // locked, and has waited too long.
                        sleep(Duration::from_millis(2));
                        drop(g);
                        rounds += 1;
                    }
                    rounds
                });
                yield_now(); // let the holder take it first
                let mut g = m.lock();
                g.push("waiter");
                stop.store(1, Ordering::Relaxed);
                drop(g);
                let rounds = holder.join().unwrap();
                assert!(
                    rounds < 1000,
                    "the waiter got the lock only after the holder quit"
                );
                assert!(
                    m.starvations.load(Ordering::Relaxed) >= 1,
                    "starvation mode was entered"
                );
                // Back in normal mode: the uncontended fast path works.
                assert!(m.try_lock().is_some());
            })
            .unwrap();
    }
}

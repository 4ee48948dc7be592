//! The channel's lock: a test-and-test-and-set spinlock whose unlock is a
//! plain release store.
//!
//! A channel's critical sections are a few dozen instructions with no user
//! code and no blocking (values are dropped after unlocking, and a parking
//! goroutine's lock is released by the scheduler right after the switch),
//! so a waiter never has anything to sleep through: it spins briefly, then
//! yields its thread to the holder. std's `Mutex` pays a locked `xchg` at
//! every unlock to find sleepers that cannot exist here; that was two of
//! the five locked instructions of a rendezvous hop (docs/sync.md,
//! "Costs"). No poisoning either: nothing under the lock can panic
//! half-way through a change (see `Chan::lock`).

#[cfg(loom)]
use loom::sync::atomic::{AtomicBool, Ordering};
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicBool, Ordering};

/// Must hold: `value` is touched only through a `SpinGuard`, and at most
/// one guard exists at a time (the one whose acquire CAS moved `locked`
/// from false to true; it stores false when dropped).
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands `&mut T` to one thread at a time (the guard's
// holder), so sharing the lock moves `T` between threads: `T: Send`.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: as above; the lock owns its `T`.
unsafe impl<T: Send> Send for SpinLock<T> {}

/// The holder's access. `&'a mut T` in the marker: the guard is `Sync`
/// only for `T: Sync` (it hands out `&T`), as std's guard.
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    _holds: PhantomData<&'a mut T>,
}

impl<T> SpinLock<T> {
    pub(crate) fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        if self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        SpinGuard {
            lock: self,
            _holds: PhantomData,
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        let mut spins = 0u32;
        loop {
            // Test before test-and-set: wait on a shared copy of the line.
            while self.locked.load(Ordering::Relaxed) {
                if cfg!(loom) {
                    // The model explores the holder's steps instead.
                    #[cfg(loom)]
                    loom::thread::yield_now();
                } else if spins < 64 {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    // The holder's thread is descheduled (or on the same
                    // CPU): let it run.
                    std::thread::yield_now();
                }
            }
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard is the one holder (SpinLock's invariant).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in deref; `&mut self` makes the borrow unique.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Release: everything done under the lock is visible to the next
        // holder, whose acquire CAS reads this store.
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_other_threads() {
        // Under Miri (which checks every access for data races) a few
        // hundred rounds are enough and take seconds instead of hours.
        let rounds: u64 = if cfg!(miri) { 200 } else { 100_000 };
        let lock = Arc::new(SpinLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..rounds {
                        // A non-atomic read-modify-write: a lost update
                        // would show in the total.
                        let mut g = lock.lock();
                        let v = *g;
                        std::hint::black_box(());
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 4 * rounds);
    }

    #[test]
    fn a_guard_unlocks_when_dropped() {
        let lock = SpinLock::new(vec![1]);
        lock.lock().push(2);
        let g = lock.lock();
        assert_eq!(*g, vec![1, 2]);
    }
}

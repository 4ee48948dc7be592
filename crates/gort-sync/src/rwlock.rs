//! Go's `sync.RWMutex` as a `RwLock<T>` with read and write guards.
//!
//! # Why Go's design
//!
//! Readers share the lock; a writer excludes everyone. The question is who
//! waits when both want it. A lock that lets readers in whenever readers
//! hold it starves writers under a steady stream of overlapping readers
//! (std's `RwLock` leaves the policy to the OS; pthread's default prefers
//! readers). Go prefers the writer: once a writer asks, new readers queue
//! behind it, so a writer waits only for the readers already inside, and
//! the readers that queued behind it all enter together when it unlocks.
//! Readers then cannot starve a writer and a writer cannot starve readers
//! (each writer lets in the batch that queued during its turn).
//!
//! # The protocol (rwmutex.go, step for step)
//!
//! - `reader_count`: readers inside or queued, minus `MAX_READERS` while a
//!   writer is pending or inside. A reader adds 1: if the result is
//!   negative a writer is pending, and it parks on `reader_sem`.
//! - A writer first takes `w` (a `Mutex`, so writers queue among
//!   themselves), then subtracts `MAX_READERS` from `reader_count`: from
//!   now on new readers queue. The readers that were inside (`r`, the old
//!   count) must leave: it adds `r` to `reader_wait` and parks on
//!   `writer_sem` unless they already left.
//! - A leaving reader subtracts 1 from `reader_count`; a negative result
//!   means a writer is pending, and the reader counts itself out of
//!   `reader_wait`; the last one releases `writer_sem`.
//! - The writer unlocks by adding `MAX_READERS` back: the result is the
//!   number of readers that queued meanwhile; it releases `reader_sem` once
//!   for each, then unlocks `w`.
//!
//! Both semaphores count tokens (sema.rs), so a release that comes before
//! the acquire is not lost. A recursive read lock can deadlock (a writer
//! queued between the two read locks waits for the first, and the second
//! waits for the writer), as in Go: do not take a read lock twice.
//!
//! # Unwinding at shutdown
//!
//! A queued reader that is unwound stops counting itself (or, if a writer
//! handed it the lock meanwhile, unlocks it). A writer unwound while
//! waiting for the readers to leave still waits for them (parks are
//! allowed while unwinding) and then unlocks: undoing its claim while
//! leaving readers race to count themselves out of `reader_wait` would
//! corrupt the count for the next writer.
//!
//! Rejected: a reader count under a std mutex with a condition variable
//! (a locked section per read lock; Go's fast paths are one atomic add),
//! and phase-fair locks (fairer in theory, but Go's behaviour is the one
//! ported code was written against).

use crate::mutex::{Mutex, MutexGuard};
use crate::sema::{Sema, Unwound};
use gort_sched::park::WaitReason;
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicI32, Ordering};

/// Go's rwmutexMaxReaders: more readers than this at once is a fatal
/// misuse.
const MAX_READERS: i32 = 1 << 30;

const RLOCK: WaitReason = WaitReason::Other("sync.RWMutex.RLock");
const LOCK: WaitReason = WaitReason::Other("sync.RWMutex.Lock");

/// A reader-writer lock that parks goroutines (not their threads), after
/// Go's `sync.RWMutex`, protecting a `T`. Plain threads may use it too
/// (they block).
///
/// Many readers or one writer. Writers are preferred: once a writer waits,
/// new readers wait behind it, so readers cannot starve writers. Taking a
/// read lock twice on one goroutine can therefore deadlock (a writer may
/// queue in between), as in Go.
///
/// No poisoning (Go has none): a panic while a guard is held unlocks.
///
/// ```
/// use std::sync::Arc;
/// use gort_sync::sync::RwLock;
///
/// gort_sched::run(|| {
///     let config = Arc::new(RwLock::new(String::from("v1")));
///     let readers: Vec<_> = (0..4)
///         .map(|_| {
///             let config = config.clone();
///             gort_sched::go(move || config.read().len())
///         })
///         .collect();
///     config.write().push_str("-patched");
///     for r in readers {
///         let n = r.join().unwrap();
///         assert!(n == 2 || n == 10);
///     }
///     assert_eq!(*config.read(), "v1-patched");
/// })
/// .unwrap();
/// ```
pub struct RwLock<T: ?Sized> {
    /// Held by the writer (pending or inside): writers queue here.
    w: Mutex<()>,
    /// Readers inside or queued; minus MAX_READERS while a writer is
    /// pending or inside.
    reader_count: AtomicI32,
    /// Readers the pending writer still waits for.
    reader_wait: AtomicI32,
    writer_sem: Sema,
    reader_sem: Sema,
    data: UnsafeCell<T>,
}

// SAFETY: a write guard gives `&mut T` to one holder at a time on any
// thread (T: Send), and read guards share `&T` between threads (T: Sync),
// as std's RwLock requires.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// Shared access to a [`RwLock`]'s data; the read lock is released on drop.
#[must_use = "the read lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    // Sync iff T: Sync; never Send for T: !Sync (it hands out &T).
    _marker: PhantomData<&'a T>,
}

/// Exclusive access to a [`RwLock`]'s data; the write lock is released on
/// drop.
#[must_use = "the write lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    /// Dropped after `Drop::drop` has let the queued readers in: writers
    /// queue behind readers that queued behind this writer.
    _w: MutexGuard<'a, ()>,
    _marker: PhantomData<&'a mut T>,
}

impl<T> RwLock<T> {
    /// A new, unlocked lock.
    pub const fn new(value: T) -> Self {
        RwLock {
            w: Mutex::new(()),
            reader_count: AtomicI32::new(0),
            reader_wait: AtomicI32::new(0),
            writer_sem: Sema::new(),
            reader_sem: Sema::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// The data, consuming the lock.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for reading, parking the goroutine (or blocking the thread)
    /// while a writer holds the lock or waits for it.
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        gort_sched::park::preempt_point();
        let r = self.reader_count.fetch_add(1, Ordering::AcqRel) + 1;
        if r < 0 {
            // A writer is pending or inside: wait for its unlock.
            self.reader_sem.acquire(RLOCK, false, |left| match left {
                Unwound::Queued => {
                    // The writer's unlock counts the queued readers from
                    // reader_count: leave it.
                    self.reader_count.fetch_sub(1, Ordering::AcqRel);
                }
                Unwound::Handed => self.read_unlock(),
            });
        } else if r == MAX_READERS {
            fatal_too_many_readers();
        }
        RwLockReadGuard {
            lock: self,
            _marker: PhantomData,
        }
    }

    /// Locks for reading if no writer holds the lock or waits for it.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        gort_sched::park::preempt_point();
        let mut c = self.reader_count.load(Ordering::Relaxed);
        loop {
            if c < 0 {
                return None;
            }
            if c + 1 == MAX_READERS {
                fatal_too_many_readers();
            }
            match self.reader_count.compare_exchange_weak(
                c,
                c + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(RwLockReadGuard {
                        lock: self,
                        _marker: PhantomData,
                    })
                }
                Err(cur) => c = cur,
            }
        }
    }

    /// Go's RUnlock.
    fn read_unlock(&self) {
        let r = self.reader_count.fetch_sub(1, Ordering::AcqRel) - 1;
        if r < 0 {
            self.read_unlock_slow(r);
        }
    }

    /// Go's rUnlockSlow: a writer is pending; the last of the readers it
    /// waits for lets it in.
    #[cold]
    fn read_unlock_slow(&self, r: i32) {
        // Guards make an unlock of an unlocked RwLock impossible.
        debug_assert!(
            r + 1 != 0 && r + 1 != -MAX_READERS,
            "read unlock of unlocked RwLock"
        );
        if self.reader_wait.fetch_sub(1, Ordering::AcqRel) - 1 == 0 {
            self.writer_sem.release(false);
        }
    }

    /// Locks for writing, parking the goroutine (or blocking the thread)
    /// until no reader or other writer holds it. New readers wait from the
    /// moment this call starts waiting.
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        gort_sched::park::preempt_point();
        // Writers queue among themselves on `w`.
        let w = self.w.lock();
        // Announce the pending writer to readers.
        let r = self.reader_count.fetch_sub(MAX_READERS, Ordering::AcqRel);
        // Wait for the readers inside, unless they already left.
        if r != 0 && self.reader_wait.fetch_add(r, Ordering::AcqRel) + r != 0 {
            self.writer_sem.acquire(LOCK, false, |left| {
                // See "Unwinding at shutdown" above: finish waiting for
                // the readers, then unlock (`w` unlocks as it drops).
                if left == Unwound::Queued {
                    self.writer_sem.acquire(LOCK, false, |_| {});
                }
                self.write_unlock_readers();
            });
        }
        RwLockWriteGuard {
            lock: self,
            _w: w,
            _marker: PhantomData,
        }
    }

    /// Locks for writing if nobody holds the lock now (and no writer waits).
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        gort_sched::park::preempt_point();
        let w = self.w.try_lock()?;
        if self
            .reader_count
            .compare_exchange(0, -MAX_READERS, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return None; // `w` unlocks
        }
        Some(RwLockWriteGuard {
            lock: self,
            _w: w,
            _marker: PhantomData,
        })
    }

    /// The data, through an exclusive borrow (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The first half of Go's Unlock (the caller then unlocks `w`).
    fn write_unlock_readers(&self) {
        // Announce to readers there is no active writer.
        let r = self.reader_count.fetch_add(MAX_READERS, Ordering::AcqRel) + MAX_READERS;
        debug_assert!(r < MAX_READERS, "write unlock of unlocked RwLock");
        // Let in the readers that queued behind this writer.
        for _ in 0..r {
            self.reader_sem.release(false);
        }
    }
}

/// 2^30 read guards at once (leaked ones, in practice) would overflow
/// the count into the writer's bit. Go throws; a panic could be caught by
/// `recover` and the lock used on, so abort with the message instead.
#[cold]
fn fatal_too_many_readers() -> ! {
    eprintln!("fatal error: gort: sync: RwLock has 2^30 readers");
    std::process::abort()
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.read_unlock();
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.write_unlock_readers();
        // `_w` drops next: the next writer may go.
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read guard exists only while reader_count counts it,
        // and a writer enters only once every counted reader left; readers
        // share `&T`, which `T: Sync` (RwLock's Sync bound) allows.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the write guard excludes readers (reader_count is
        // negative and every reader inside has left) and other writers
        // (it holds `w`) until dropped.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in deref; `&mut self` makes this borrow unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(v: T) -> Self {
        RwLock::new(v)
    }
}

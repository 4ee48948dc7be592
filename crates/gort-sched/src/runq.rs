//! The P-local run queue: a fixed ring of 256 slots plus a `runnext` slot,
//! after Go's `runqput`, `runqget`, `runqgrab` and `runqsteal` (proc.go).
//!
//! Roles are kept apart in types. The M that holds a P is the queue's only
//! *owner*: it pushes (writes `tail`), pops, and steals *into* its queue
//! from a victim. Everyone else sees a `&LocalQueue` and can only take
//! items away, through [`Owner::steal_from`] on their own queue, or ask
//! whether it is empty. Pops and steals both advance `head` by CAS, so
//! an item leaves the queue exactly once.
//!
//! Items are raw pointers (the scheduler's `*mut G`); the queue never
//! dereferences them. An item in the queue is owned by the queue: whoever
//! takes it out owns it.

use crate::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::ptr::{self, NonNull};

/// Slots in a P's local run queue (Go: `len(p.runq)`).
pub const LOCAL_QUEUE_LEN: usize = 256;

/// A single-producer, multi-consumer ring of `N` slots plus `runnext`.
///
/// Must hold:
/// - `tail` is written only by the owner (the M holding the P).
/// - `head` only moves forward, by CAS, by the owner or a stealer.
/// - `tail - head` (wrapping) is at most `N`; the slots `head..tail` (mod N)
///   hold the queued items, in FIFO order; the owner writes a slot only
///   after observing (acquire) that `head` has moved past its old content.
/// - `runnext`, when non-null, holds one more item that the owner runs
///   before the ring (it inherits the current time slice in Go). Only the
///   owner makes it non-null; others only CAS a non-null value to null (so
///   the owner may fill an empty one with a plain store).
pub struct LocalQueue<T, const N: usize = LOCAL_QUEUE_LEN> {
    head: AtomicU32,
    tail: AtomicU32,
    runnext: AtomicPtr<T>,
    slots: [AtomicPtr<T>; N],
}

// SAFETY: the queue holds raw pointers that it never dereferences; moving
// an item between threads through it is the scheduler's business (Gs are
// handed between Ms by design). All shared state is atomic.
unsafe impl<T, const N: usize> Send for LocalQueue<T, N> {}
// SAFETY: as above; every method that takes `&self` uses atomics only.
unsafe impl<T, const N: usize> Sync for LocalQueue<T, N> {}

/// Items taken off a full local queue to go to the global queue (Go's
/// `runqputslow`): the older half of the ring, then the item being pushed,
/// in FIFO order.
///
/// The items are on the heap, not in an array of `N` inline: `push` is
/// inlined into the scheduler's hot paths, and a 2 KiB return value there
/// gave every caller a 4 KiB frame with a stack probe, touching a second
/// page of every goroutine stack (docs/performance.md).
///
/// Must hold: `items` holds only non-null items and is never empty.
pub struct Overflow<T, const N: usize> {
    items: Vec<*mut T>,
}

impl<T, const N: usize> Overflow<T, N> {
    /// The items, oldest first.
    pub fn items(&self) -> impl ExactSizeIterator<Item = NonNull<T>> + '_ {
        self.items.iter().map(|&p| {
            // SAFETY: only non-null items are stored (see the invariants).
            unsafe { NonNull::new_unchecked(p) }
        })
    }

    /// Number of items (for the tests and loom models).
    #[cfg(any(test, loom))]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Never true: an overflow carries at least the pushed item.
    #[cfg(loom)]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<T, const N: usize> std::fmt::Debug for Overflow<T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.items).finish()
    }
}

impl<T, const N: usize> Default for LocalQueue<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> LocalQueue<T, N> {
    const CHECK: () = assert!(N >= 2 && N.is_power_of_two() && N <= 1 << 30);

    /// An empty queue.
    pub fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHECK;
        LocalQueue {
            head: AtomicU32::new(0),
            tail: AtomicU32::new(0),
            runnext: AtomicPtr::new(ptr::null_mut()),
            slots: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }

    /// The owner's handle.
    ///
    /// # Safety
    ///
    /// At most one `Owner` of a queue may exist at a time: the caller must
    /// hold the P this queue belongs to (or otherwise be its sole owner)
    /// for the handle's lifetime.
    pub unsafe fn owner(&self) -> Owner<'_, T, N> {
        Owner { q: self }
    }

    fn slot(&self, i: u32) -> &AtomicPtr<T> {
        &self.slots[i as usize % N]
    }

    /// Whether the queue holds nothing, ring and `runnext` both (Go's
    /// `runqempty`). Exact for the owner; for others a snapshot that was
    /// true at one instant: it re-reads `tail` so that an item moving from
    /// `runnext` to the ring between the reads is not missed.
    pub fn is_empty(&self) -> bool {
        loop {
            let head = self.head.load(Ordering::Acquire);
            let tail = self.tail.load(Ordering::Acquire);
            let runnext = self.runnext.load(Ordering::Acquire);
            if tail == self.tail.load(Ordering::Acquire) {
                return head == tail && runnext.is_null();
            }
        }
    }

    /// Number of items in the ring plus `runnext` (a snapshot for others).
    pub fn len(&self) -> usize {
        loop {
            let head = self.head.load(Ordering::Acquire);
            let tail = self.tail.load(Ordering::Acquire);
            let runnext = self.runnext.load(Ordering::Acquire);
            if tail == self.tail.load(Ordering::Acquire) {
                let ring = tail.wrapping_sub(head) as usize;
                return ring.min(N) + usize::from(!runnext.is_null());
            }
        }
    }

    /// Moves up to half of this queue's items into `batch` starting at
    /// `batch_head`, without publishing them there (Go's `runqgrab`).
    /// Returns how many were moved. With `steal_runnext`, takes `runnext`
    /// when the ring is empty, after calling `before_runnext` (the caller's
    /// back-off: Go sleeps ~3 µs when the victim P is running, since a P
    /// that just readied a goroutine into runnext usually runs it soon).
    fn grab(
        &self,
        batch: &[AtomicPtr<T>; N],
        batch_head: u32,
        steal_runnext: bool,
        before_runnext: &mut dyn FnMut(),
    ) -> u32 {
        loop {
            let h = self.head.load(Ordering::Acquire);
            let t = self.tail.load(Ordering::Acquire);
            let ring = t.wrapping_sub(h);
            let n = ring - ring / 2;
            if n == 0 {
                if steal_runnext {
                    let next = self.runnext.load(Ordering::Acquire);
                    if !next.is_null() {
                        before_runnext();
                        if self
                            .runnext
                            .compare_exchange(
                                next,
                                ptr::null_mut(),
                                Ordering::AcqRel,
                                Ordering::Relaxed,
                            )
                            .is_err()
                        {
                            continue;
                        }
                        batch[batch_head as usize % N].store(next, Ordering::Relaxed);
                        return 1;
                    }
                }
                return 0;
            }
            if n > (N / 2) as u32 {
                // h and t were read at different times and are inconsistent.
                continue;
            }
            for i in 0..n {
                let item = self.slot(h.wrapping_add(i)).load(Ordering::Relaxed);
                batch[batch_head.wrapping_add(i) as usize % N].store(item, Ordering::Relaxed);
            }
            // Release: our slot reads happen before the owner, acquiring the
            // new head, may overwrite those slots.
            if self
                .head
                .compare_exchange(h, h.wrapping_add(n), Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                return n;
            }
        }
    }
}

/// The owner's end of a [`LocalQueue`]: the only handle that can push.
///
/// Must hold: at most one `Owner` per queue exists at any time (made by the
/// unsafe [`LocalQueue::owner`]); it belongs to the M holding the P.
pub struct Owner<'q, T, const N: usize = LOCAL_QUEUE_LEN> {
    q: &'q LocalQueue<T, N>,
}

impl<T, const N: usize> Owner<'_, T, N> {
    /// Queues `item` (Go's `runqput`). With `next`, it goes into `runnext`
    /// and whatever was there is queued at the tail instead. When the ring
    /// is full, half of it plus the item comes back as an [`Overflow`] for
    /// the caller to put on the global queue.
    pub fn push(&self, item: NonNull<T>, next: bool) -> Result<(), Overflow<T, N>> {
        let mut item = item.as_ptr();
        if next {
            // Only the owner makes runnext non-null, and stealers only CAS
            // a non-null one to null: an empty runnext stays empty until we
            // fill it, so a release store does (no read-modify-write on the
            // common path; Go's runqput CASes, one more locked step). The
            // #StoreLoad barrier Go's CAS also gives, between queueing and
            // reading nmspinning, is the fence at the top of `wakep`
            // (idle.rs's essay).
            if self.q.runnext.load(Ordering::Relaxed).is_null() {
                self.q.runnext.store(item, Ordering::Release);
                return Ok(());
            }
            let old = self.q.runnext.swap(item, Ordering::AcqRel);
            if old.is_null() {
                return Ok(());
            }
            item = old;
        }
        loop {
            let h = self.q.head.load(Ordering::Acquire);
            let t = self.q.tail.load(Ordering::Relaxed);
            if t.wrapping_sub(h) < N as u32 {
                self.q.slot(t).store(item, Ordering::Relaxed);
                // Release: publishes the slot (and the item's contents) to
                // stealers, who acquire `tail`.
                self.q.tail.store(t.wrapping_add(1), Ordering::Release);
                return Ok(());
            }
            if let Some(overflow) = self.push_slow(item, h, t) {
                return Err(overflow);
            }
            // A stealer took items meanwhile: there is room again.
        }
    }

    /// Go's `runqputslow`: takes the older half of a full ring. Cold and
    /// out of line, so that its allocation and loop stay out of the frames
    /// of `push`'s callers.
    #[cold]
    #[inline(never)]
    fn push_slow(&self, item: *mut T, h: u32, t: u32) -> Option<Overflow<T, N>> {
        let n = t.wrapping_sub(h) / 2;
        debug_assert_eq!(n as usize, N / 2, "push_slow on a queue that is not full");
        let mut items = Vec::with_capacity(n as usize + 1);
        for i in 0..n {
            items.push(self.q.slot(h.wrapping_add(i)).load(Ordering::Relaxed));
        }
        if self
            .q
            .head
            .compare_exchange(h, h.wrapping_add(n), Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        items.push(item);
        Some(Overflow { items })
    }

    /// Puts `item` in an empty `runnext` (the common case of `push(item,
    /// true)`, small enough to inline): false, with nothing changed, if
    /// runnext holds an item already. Owner only, as `push`.
    #[inline(always)]
    pub fn try_put_runnext(&self, item: NonNull<T>) -> bool {
        // As in `push`: an empty runnext stays empty until its owner fills it.
        if self.q.runnext.load(Ordering::Relaxed).is_null() {
            self.q.runnext.store(item.as_ptr(), Ordering::Release);
            return true;
        }
        false
    }

    /// Takes the item in `runnext`, if any (and no stealer takes it first).
    pub fn pop_runnext(&self) -> Option<NonNull<T>> {
        let next = self.q.runnext.load(Ordering::Relaxed);
        // Only the owner sets runnext to non-null, so a null read here is
        // exact; a stealer may still race us for a non-null one.
        if next.is_null()
            || self
                .q
                .runnext
                .compare_exchange(next, ptr::null_mut(), Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        NonNull::new(next)
    }

    /// [`pop_runnext`](Self::pop_runnext) without the CAS, for an owner
    /// that knows nobody can steal now.
    ///
    /// # Safety
    /// No stealer may touch this queue for the duration of the call (the
    /// scheduler: its P is the only one, and the count of Ps cannot change
    /// while it holds it).
    pub unsafe fn pop_runnext_unshared(&self) -> Option<NonNull<T>> {
        let next = NonNull::new(self.q.runnext.load(Ordering::Acquire))?;
        self.q.runnext.store(ptr::null_mut(), Ordering::Relaxed);
        Some(next)
    }

    /// Takes the next item (Go's `runqget`): `runnext` first, then the ring
    /// in FIFO order. The flag is true for `runnext`, whose goroutine
    /// inherits the current time slice.
    pub fn pop(&self) -> Option<(NonNull<T>, bool)> {
        let next = self.q.runnext.load(Ordering::Relaxed);
        // Only the owner sets runnext to non-null, so a null read here is
        // exact; a stealer may still race us for a non-null one.
        if !next.is_null()
            && self
                .q
                .runnext
                .compare_exchange(next, ptr::null_mut(), Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            // SAFETY: checked non-null above.
            return Some((unsafe { NonNull::new_unchecked(next) }, true));
        }
        loop {
            let h = self.q.head.load(Ordering::Acquire);
            let t = self.q.tail.load(Ordering::Relaxed);
            if t == h {
                return None;
            }
            let item = self.q.slot(h).load(Ordering::Relaxed);
            if self
                .q
                .head
                .compare_exchange(h, h.wrapping_add(1), Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                // SAFETY: slots between head and tail hold pushed, non-null items.
                return Some((unsafe { NonNull::new_unchecked(item) }, false));
            }
        }
    }

    /// Steals half of `victim`'s items into this queue and returns one of
    /// them to run (Go's `runqsteal`). With `steal_runnext`, takes the
    /// victim's `runnext` when its ring is empty, after `before_runnext`.
    ///
    /// # Panics
    ///
    /// If this queue has less than half its slots free: the scheduler steals
    /// only into an empty local queue.
    pub fn steal_from(
        &self,
        victim: &LocalQueue<T, N>,
        steal_runnext: bool,
        before_runnext: &mut dyn FnMut(),
    ) -> Option<NonNull<T>> {
        assert!(
            !ptr::eq(self.q, victim),
            "runq: a P cannot steal from itself"
        );
        let t = self.q.tail.load(Ordering::Relaxed);
        let h = self.q.head.load(Ordering::Acquire);
        assert!(
            t.wrapping_sub(h) as usize <= N / 2,
            "runq: steal into a queue that is more than half full"
        );
        let n = victim.grab(&self.q.slots, t, steal_runnext, before_runnext);
        if n == 0 {
            return None;
        }
        let n = n - 1;
        let item = self.q.slot(t.wrapping_add(n)).load(Ordering::Relaxed);
        if n > 0 {
            // Publish the rest; release pairs with stealers' acquire of tail.
            self.q.tail.store(t.wrapping_add(n), Ordering::Release);
        }
        // SAFETY: grab copied non-null items into slots t..t+n+1.
        Some(unsafe { NonNull::new_unchecked(item) })
    }

    /// Empties the queue, oldest first, `runnext` last (for a P being
    /// destroyed by `set_procs`: its goroutines go to the global queue).
    pub fn drain(&self, mut f: impl FnMut(NonNull<T>)) {
        let next = self.q.runnext.swap(ptr::null_mut(), Ordering::Acquire);
        while let Some((item, _)) = self.pop() {
            f(item);
        }
        if let Some(next) = NonNull::new(next) {
            f(next);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn item(i: usize) -> NonNull<u8> {
        NonNull::new(i as *mut u8).unwrap()
    }

    #[test]
    fn fifo_with_runnext_first() {
        let q = LocalQueue::<u8, 8>::new();
        // SAFETY: the test is the queue's only owner.
        let o = unsafe { q.owner() };
        assert!(q.is_empty());
        for i in 1..=3 {
            o.push(item(i), false).unwrap();
        }
        o.push(item(10), true).unwrap();
        // A second runnext push kicks 10 to the tail.
        o.push(item(11), true).unwrap();
        assert_eq!(q.len(), 5);
        let order: Vec<(usize, bool)> = std::iter::from_fn(|| o.pop())
            .map(|(p, next)| (p.as_ptr() as usize, next))
            .collect();
        assert_eq!(
            order,
            [(11, true), (1, false), (2, false), (3, false), (10, false)]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn full_ring_overflows_half_plus_the_item() {
        let q = LocalQueue::<u8, 8>::new();
        // SAFETY: sole owner.
        let o = unsafe { q.owner() };
        for i in 1..=8 {
            o.push(item(i), false).unwrap();
        }
        let overflow = o.push(item(9), false).unwrap_err();
        let moved: Vec<usize> = overflow.items().map(|p| p.as_ptr() as usize).collect();
        assert_eq!(moved, [1, 2, 3, 4, 9], "older half, then the pushed item");
        let left: Vec<usize> = std::iter::from_fn(|| o.pop())
            .map(|(p, _)| p.as_ptr() as usize)
            .collect();
        assert_eq!(left, [5, 6, 7, 8]);
    }

    #[test]
    fn steal_takes_the_older_half_and_returns_one() {
        let victim = LocalQueue::<u8, 8>::new();
        let thief = LocalQueue::<u8, 8>::new();
        // SAFETY: sole owners.
        let (v, t) = unsafe { (victim.owner(), thief.owner()) };
        for i in 1..=5 {
            v.push(item(i), false).unwrap();
        }
        let got = t.steal_from(&victim, false, &mut || {}).unwrap();
        // ceil(5/2) = 3 taken: 1, 2 queued on the thief, 3 returned.
        assert_eq!(got.as_ptr() as usize, 3);
        let thief_items: Vec<usize> = std::iter::from_fn(|| t.pop())
            .map(|(p, _)| p.as_ptr() as usize)
            .collect();
        assert_eq!(thief_items, [1, 2]);
        let victim_items: Vec<usize> = std::iter::from_fn(|| v.pop())
            .map(|(p, _)| p.as_ptr() as usize)
            .collect();
        assert_eq!(victim_items, [4, 5]);
    }

    #[test]
    fn runnext_is_stolen_only_when_asked_and_after_the_backoff() {
        let victim = LocalQueue::<u8, 8>::new();
        let thief = LocalQueue::<u8, 8>::new();
        // SAFETY: sole owners.
        let (v, t) = unsafe { (victim.owner(), thief.owner()) };
        v.push(item(7), true).unwrap();
        assert!(t.steal_from(&victim, false, &mut || {}).is_none());
        let mut backed_off = false;
        let got = t
            .steal_from(&victim, true, &mut || backed_off = true)
            .unwrap();
        assert_eq!(got.as_ptr() as usize, 7);
        assert!(backed_off);
        assert!(victim.is_empty() && thief.is_empty());
    }

    #[test]
    fn drain_returns_everything() {
        let q = LocalQueue::<u8, 8>::new();
        // SAFETY: sole owner.
        let o = unsafe { q.owner() };
        for i in 1..=4 {
            o.push(item(i), false).unwrap();
        }
        o.push(item(9), true).unwrap();
        let mut out = Vec::new();
        o.drain(|p| out.push(p.as_ptr() as usize));
        assert_eq!(out, [1, 2, 3, 4, 9]);
        assert!(q.is_empty());
    }

    #[test]
    #[should_panic(expected = "cannot steal from itself")]
    fn stealing_from_itself_is_refused() {
        let q = LocalQueue::<u8, 8>::new();
        // SAFETY: sole owner.
        let o = unsafe { q.owner() };
        o.steal_from(&q, true, &mut || {});
    }
}

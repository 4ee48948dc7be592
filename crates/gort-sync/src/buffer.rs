//! The channel's buffer: a ring of values (`VecDeque`) that gives memory
//! back after a burst.
//!
//! A bounded channel is Go's: its ring is allocated when the channel is
//! made (up to 1,024 slots; a larger capacity grows to it on demand) and
//! keeps that size. An unbounded channel's ring doubles as values queue up,
//! and used to keep its peak size for the channel's life: a server that
//! once queued 100,000 values kept a megabyte per channel. Now a pop that
//! leaves the ring at most a quarter full halves its capacity, down to a
//! floor (about 1 KiB of values, or the bounded channel's own allocation):
//!
//! - Amortized O(1): a halving copies at most a quarter of the old
//!   capacity, paid for by the pops that emptied the other quarters.
//! - Hysteresis: after halving, the ring is at most half full, so neither
//!   a push nor a pop resizes it again soon; a channel hovering around a
//!   size does not reallocate back and forth.
//! - Memory: once drained, the floor; while draining, at most four times
//!   the values still queued (plus the floor).
//! - The hot path pays one compare per pop: a ping-pong channel's ring
//!   stays at its floor and never reallocates.
//!
//! A channel of capacity one (a result, a signal, every timer's channel)
//! keeps its value in the buffer itself: no ring, so making it costs one
//! allocation (the channel) instead of two, as Go's `makechan` puts a
//! small buffer in the same allocation as the channel.
//!
//! Rejected: crossbeam-channel's list of fixed blocks, freed as each is
//! consumed. It gives memory back at once, but a steady stream allocates
//! and frees a block every 31 values and follows a pointer at each block
//! boundary, where a ring allocates nothing in a steady state. Rejected
//! too: `shrink_to_fit` whenever the ring empties, which reallocates at
//! every hop of a channel that empties every hop.
//!
//! Everything here runs under the channel's lock; no user code runs in it
//! (values are dropped by the caller after unlocking). This room uses
//! nothing of the crate.

use std::collections::VecDeque;

/// Values an unbounded channel's ring keeps however empty it gets: about
/// this many bytes' worth.
const KEEP_BYTES: usize = 1024;

/// Must hold: `q.len() <= cap` for a bounded channel (the channel core's
/// check); `floor` is a capacity the ring keeps: it is halved only while
/// its capacity is above `floor`. If `single` (capacity one), the value is
/// in `one` and `q` stays empty, with no allocation.
pub(crate) struct Buffer<T> {
    q: VecDeque<T>,
    floor: usize,
    single: bool,
    one: Option<T>,
}

impl<T> Buffer<T> {
    /// The ring of a channel of capacity `cap` (None: unbounded).
    pub(crate) fn new(cap: Option<usize>) -> Self {
        let size = std::mem::size_of::<T>();
        let single = cap == Some(1);
        if size == 0 || single {
            // Zero-sized values take no memory: nothing to give back; a
            // single value lives in `one`.
            return Buffer {
                q: VecDeque::new(),
                floor: usize::MAX,
                single,
                one: None,
            };
        }
        let q = VecDeque::with_capacity(cap.unwrap_or(0).min(1024));
        let keep = (KEEP_BYTES / size).max(4);
        let floor = keep.max(q.capacity());
        Buffer {
            q,
            floor,
            single,
            one: None,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        if self.single {
            return usize::from(self.one.is_some());
        }
        self.q.len()
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `v`; the caller checked the capacity.
    #[inline]
    pub(crate) fn push_back(&mut self, v: T) {
        if self.single {
            debug_assert!(self.one.is_none(), "a push into a full single slot");
            self.one = Some(v);
            return;
        }
        self.q.push_back(v);
    }

    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.single {
            return self.one.take();
        }
        let v = self.q.pop_front()?;
        let cap = self.q.capacity();
        if cap > self.floor && self.q.len() <= cap / 4 {
            self.shrink();
        }
        Some(v)
    }

    /// Halves the ring (never below the floor).
    #[cold]
    #[inline(never)]
    fn shrink(&mut self) {
        self.q.shrink_to((self.q.capacity() / 2).max(self.floor));
    }

    /// Every value, taken out (for the caller to drop after unlocking);
    /// the ring's memory goes with them.
    pub(crate) fn take_all(&mut self) -> (Option<T>, VecDeque<T>) {
        (self.one.take(), std::mem::take(&mut self.q))
    }

    /// The ring's capacity now, in values (for tests).
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.q.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_slot_holds_one_value_without_a_ring() {
        let mut b = Buffer::<String>::new(Some(1));
        assert_eq!(b.capacity(), 0, "no ring allocated");
        assert!(b.is_empty());
        b.push_back("a".into());
        assert_eq!(b.len(), 1);
        assert_eq!(b.pop_front().as_deref(), Some("a"));
        assert_eq!(b.pop_front(), None);
        b.push_back("b".into());
        let (one, rest) = b.take_all();
        assert_eq!((one.as_deref(), rest.len()), (Some("b"), 0));
        assert!(b.is_empty());
    }

    #[test]
    fn an_unbounded_ring_shrinks_to_its_floor_once_drained() {
        let mut b = Buffer::<u64>::new(None);
        for i in 0..100_000 {
            b.push_back(i);
        }
        assert!(b.capacity() >= 100_000);
        for i in 0..100_000 {
            assert_eq!(b.pop_front(), Some(i), "FIFO order kept across shrinks");
        }
        assert!(b.capacity() <= KEEP_BYTES / 8, "{}", b.capacity());
    }

    #[test]
    fn the_ring_holds_at_most_four_times_its_values_while_draining() {
        let mut b = Buffer::<u64>::new(None);
        for i in 0..10_000 {
            b.push_back(i);
        }
        for _ in 0..9_000 {
            b.pop_front();
        }
        assert!(
            b.capacity() <= 4 * b.len(),
            "{} for {}",
            b.capacity(),
            b.len()
        );
    }

    #[test]
    fn a_bounded_ring_keeps_its_allocation() {
        let mut b = Buffer::<u64>::new(Some(512));
        let cap = b.capacity();
        assert!(cap >= 512);
        for round in 0..3 {
            for i in 0..512 {
                b.push_back(i + round);
            }
            while b.pop_front().is_some() {}
            assert_eq!(b.capacity(), cap);
        }
    }

    #[test]
    fn zero_sized_values_are_counted() {
        let mut b = Buffer::<()>::new(None);
        for _ in 0..1000 {
            b.push_back(());
        }
        assert_eq!(b.len(), 1000);
        while b.pop_front().is_some() {}
        assert!(b.is_empty());
    }
}

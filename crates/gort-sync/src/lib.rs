//! Go's synchronization layer for gort: channels ([`chan`]), [`select!`]
//! (and [`select_biased!`]), [`sync::Mutex`] and [`sync::WaitGroup`].
//!
//! Everything here blocks by `gort_sched::park::park`/[`gort_sched::park::park_with`]: a goroutine parks
//! (its thread runs other goroutines), a plain thread blocks. Both kinds of
//! waiter can meet on the same channel or lock.
//!
//! The design (wait queues, direct handoff, the one-shot waker protocol,
//! select's algorithm, the Mutex's normal and starvation modes) and the
//! invariants of each structure are in `docs/sync.md`.
//!
//! The rooms, lower first (a module uses only those above it): `lock`
//! (the channel's spinlock), `park` (the one-shot signal over
//! gort-sched's park), `rand` (select's generator), `errors`, `buffer`
//! (the ring that gives memory back), `waitq` (entries and wait queues:
//! Go's sudog and waitq), `hchan` (the channel core: Go's hchan), `chan`
//! (the public ends), `select`; and `waitlist` under `sync`.

#![deny(unsafe_op_in_unsafe_fn)]

mod buffer;
pub mod chan;
mod errors;
mod hchan;
mod lock;
mod park;
mod rand;
mod select;
pub mod sync;
mod waitlist;
mod waitq;

#[doc(hidden)]
pub mod __private {
    //! Used by the expansion of [`select!`](crate::select!); not public API.
    pub use crate::park::Signal;
    pub use crate::select::{select, Arm, Mode, RecvArm, SendArm};
}

// The README's example is compiled and run as a doctest, so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

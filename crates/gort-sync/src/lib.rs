//! Go's synchronization layer for gort: channels ([`chan`]), [`select!`]
//! (and [`select_biased!`]), [`sync::Mutex`], [`sync::RwLock`],
//! [`sync::Condvar`], [`sync::Once`] and [`sync::WaitGroup`].
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
//! (the public ends), `select`; `waitlist` and `sema` (the locks' FIFO
//! and semaphore) under the `sync` rooms: `mutex`, `waitgroup`, and
//! `rwlock`, `condvar`, `once` (which use `mutex`); `time` and `context`
//! (on `chan` and gort-sched's timers).

#![deny(unsafe_op_in_unsafe_fn)]

mod buffer;
pub mod chan;
mod condvar;
pub mod context;
mod errors;
mod hchan;
mod lock;
mod mutex;
mod once;
mod park;
mod rand;
mod rwlock;
mod select;
mod sema;
pub mod time;
mod waitgroup;
mod waitlist;
mod waitq;

pub mod sync {
    //! Go's `sync` package: [`Mutex`], [`RwLock`], [`Condvar`], [`Once`]
    //! and [`WaitGroup`]. Each parks a goroutine (its thread runs other
    //! goroutines) and blocks a plain thread; both kinds of waiter can meet
    //! on one lock.

    pub use crate::condvar::{Condvar, WaitTimeoutResult};
    pub use crate::mutex::{Mutex, MutexGuard};
    pub use crate::once::Once;
    pub use crate::rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
    pub use crate::waitgroup::WaitGroup;
}

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

//! Go's synchronization layer for gort: channels ([`chan`]), [`select!`],
//! [`sync::Mutex`] and [`sync::WaitGroup`].
//!
//! Everything here blocks by `gort_sched::park`/[`gort_sched::park_with`]: a goroutine parks
//! (its thread runs other goroutines), a plain thread blocks. Both kinds of
//! waiter can meet on the same channel or lock.
//!
//! The design (wait queues, direct handoff, the one-shot waker protocol,
//! select's algorithm, the Mutex's normal and starvation modes) and the
//! invariants of each structure are in `docs/sync.md`.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod chan;
mod lock;
mod park;
mod rand;
mod select;
pub mod sync;
mod waitlist;

#[doc(hidden)]
pub mod __private {
    //! Used by the expansion of [`select!`](crate::select!); not public API.
    pub use crate::park::Signal;
    pub use crate::select::{select, Arm, Mode, RecvArm, SendArm};
}

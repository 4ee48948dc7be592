//! The M/P/G scheduler after Go's proc.go.
//!
//! - G: a goroutine, with its own stack (gort-stack) and saved context
//!   (gort-arch). [`go`] makes one; [`JoinHandle::join`] waits for it.
//! - P: the right to run goroutines, with a local run queue ([`runq`]) of
//!   256 slots plus `runnext`; the number of Ps is [`procs`] (GOMAXPROCS).
//! - M: an OS thread. The thread that calls [`Runtime::run`] is M0; others
//!   are started on demand when there is work and an idle P (`wakep`,
//!   `startm`), and park on a futex when there is none (`stopm`).
//!
//! Status: the core loop (spawn, run queues, stealing, spinning Ms, park,
//! ready, yield, join, shutdown that unwinds parked goroutines, deadlock
//! detection, lock_os_thread, goroutine-local storage, set_procs) is built;
//! syscalls, sysmon and timers are not yet. See docs/sched.md.

#![deny(unsafe_op_in_unsafe_fn)]

#[doc(hidden)]
pub mod cgo;
mod g;
#[doc(hidden)]
pub mod gstate;
mod local;
mod membarrier;
mod note;
#[doc(hidden)]
pub mod pstatus;
mod retake;
pub mod runq;
mod runtime;
mod sched;
mod sync;
mod wake;

pub use g::{GRef, Status, WaitReason};
pub use local::LocalKey;
pub use runtime::{
    current, go, id, lock_os_thread, lock_os_thread_internal, num_goroutines, park, procs, ready,
    run, set_procs, syscall, unlock_os_thread, unlock_os_thread_internal, yield_now, Builder,
    Error, GoBuilder, JoinHandle, Runtime, Shutdown, MIN_STACK_SIZE,
};
pub use sched::observe::{dump, dump_string, stats, Stats};
pub use sched::MAX_PROCS;
pub use wake::{park_with, park_with_eager, sleep, Waker, Woke};

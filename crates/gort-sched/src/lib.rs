//! The M/P/G scheduler after Go's proc.go.
//!
//! - G: a goroutine, with its own stack (gort-stack) and saved context
//!   (gort-arch). [`go`] makes one; [`JoinHandle::join`] waits for it.
//! - P: the right to run goroutines, with a local run queue of 256 slots
//!   plus `runnext`; the number of Ps is [`procs`] (GOMAXPROCS).
//! - M: an OS thread. [`Runtime::run`] starts M0 on a thread of its own
//!   and waits for the run on the calling thread; other Ms are started on
//!   demand when there is work and an idle P (`wakep`,
//!   `startm`), and park on a futex when there is none (`stopm`).
//!
//! # Layers
//!
//! One room per mechanism; no module imports a module that imports it
//! back. From the bottom:
//!
//! 1. Leaves: `fatal` (the one fatal path), `sync` (std or loom atomics),
//!    the state words `gstate` and `pstatus` with `membarrier`, `note`
//!    (futex sleep), `runq` (the local run queue), `retake` (sysmon's
//!    record), `handshake` (the retake handshake's words), `status`,
//!    `entry`, `error`.
//! 2. The data, each naming only those before it: `g` (the G, which names
//!    its M and runtime untyped), `waker`, `timer` (a P's timer heap and
//!    the runtime timers under `gort::time`), `p` (which owns a heap), `m`,
//!    then `sched` (the `Sched` that holds them all).
//! 3. `current` (this thread's G and M) and `mcall` (switching between a
//!    goroutine and g0).
//! 4. The mechanisms, each an `impl Sched` block: `spawn`, `gfree`,
//!    `schedule`, `idle`, `proc`, `lockosthread`, `stw`, `syscall`,
//!    `sysmon`, `preempt`, `checkdead`, `checktimers` (the heaps meet the scheduler:
//!    Go's checkTimers, sysmon's fallback pass), `shutdown`,
//!    `cgocallback`, `observe`, `netpoll` (the network poller, whose
//!    public half is gort-net's tier). They
//!    call each other's methods through `Sched` and import only layers
//!    1-3, except for free functions: `lockosthread`'s pinning (used by
//!    `park` and `cgocallback`) and the park tier (used by the public
//!    `set_procs` and `syscall`).
//! 5. The API: `runtime` (Runtime, Builder, run), `go` (go, JoinHandle),
//!    `park` (the tier gort-sync builds on), `cgocall` (the tier gort-cgo
//!    builds on), `local`.
//!
//! See docs/sched.md.

#![deny(unsafe_op_in_unsafe_fn)]

// 1. Leaves. The state words and the run queue are public only to the
// loom models (tests/loom_*.rs, built with `--cfg loom`), which check the
// real code.
mod entry;
mod error;
mod fatal;
mod fork;
#[cfg(loom)]
pub mod gstate;
#[cfg(not(loom))]
mod gstate;
#[cfg(loom)]
pub mod handshake;
#[cfg(not(loom))]
mod handshake;
mod membarrier;
mod netpoll_epoll;
mod note;
mod outside;
#[cfg(loom)]
pub mod pstatus;
#[cfg(not(loom))]
mod pstatus;
mod retake;
#[cfg(loom)]
pub mod runq;
#[cfg(not(loom))]
mod runq;
#[cfg(all(test, not(loom)))]
mod runq_stress;
mod status;
mod sync;

// 2. The data.
mod g;
mod m;
mod p;
mod sched;
mod timer;
mod waker;

// 3. This thread, and switching.
mod current;
mod mcall;

// 4. The mechanisms.
mod cgocallback;
mod checkdead;
mod checktimers;
mod gfree;
mod idle;
mod lockosthread;
mod observe;
mod preempt;
mod proc;
mod schedule;
mod shutdown;
mod spawn;
mod stw;
mod syscall;
mod sysmon;

// 5. The API: the user's (re-exported below, and by the gort facade) and
// the two tiers for the crates above.
pub mod cgocall;
mod go;
mod local;
pub mod netpoll;
pub mod park;
mod runtime;

pub use current::id;
pub use error::{ConfigError, Error};
pub use go::{go, GoBuilder, JoinHandle};
pub use handshake::DEFAULT_MAX_RETAKEN;
pub use local::LocalKey;
pub use lockosthread::{lock_os_thread, unlock_os_thread};
pub use observe::{dump, dump_string, stats, Stats};
pub use park::{sleep, yield_now};
pub use runtime::{num_goroutines, procs, run, Builder, Runtime, Shutdown, MIN_STACK_SIZE};
pub use sched::MAX_PROCS;
pub use stw::set_procs;
pub use syscall::syscall;

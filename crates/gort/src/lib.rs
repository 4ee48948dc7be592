//! gort: Go's runtime core in Rust. Stackful goroutines on Go's M:N
//! scheduler (M = OS thread, P = processor with a local run queue,
//! G = goroutine), channels and `select!`, goroutine-aware `Mutex` and
//! `WaitGroup`, Go's deadlock detector, and `defer!`/`recover`; plain
//! blocking code, no async colouring.
//!
//! ```
//! use std::time::Duration;
//!
//! let total = gort::run(|| {
//!     let (tx, rx) = gort::chan::bounded(0); // a rendezvous channel, as Go's make(chan int)
//!     for i in 1..=10u64 {
//!         let tx = tx.clone();
//!         gort::go(move || tx.send(i * i).unwrap());
//!     }
//!     drop(tx); // the channel closes when the last sender is gone
//!     let mut sum = 0;
//!     loop {
//!         gort::select! {
//!             recv(rx) -> v => match v {
//!                 Ok(v) => sum += v,
//!                 Err(_) => break, // closed
//!             },
//!             default(Duration::from_secs(5)) => panic!("timed out"),
//!         }
//!     }
//!     sum
//! })
//! .unwrap();
//! assert_eq!(total, 385);
//! ```
//!
//! # The API at a glance
//!
//! | Go | gort |
//! |---|---|
//! | `func main()` running the scheduler | [`#[gort::main]`](main), [`run`], or [`Runtime::builder`] for settings; [`#[gort::test]`](test) for tests |
//! | `go f()` | [`go`] returns a [`JoinHandle`]; [`Builder`] names it or sizes its stack |
//! | `runtime.Gosched`, `time.Sleep` | [`yield_now`], [`sleep`] |
//! | `runtime.GOMAXPROCS`, `runtime.NumGoroutine` | [`procs`], [`set_procs`], [`num_goroutines`] |
//! | `runtime.LockOSThread` | [`lock_os_thread`], [`unlock_os_thread`] |
//! | `make(chan T, n)`, `close` | [`chan::bounded`], [`chan::unbounded`]; closed when every sender is dropped |
//! | `select { ... }` | [`select!`] with `recv`, `send`, `default` and timeout arms ([`select_biased!`] to prefer the order written) |
//! | a nil channel in a `select` | [`chan::never()`] |
//! | `sync.Mutex`, `sync.WaitGroup` | [`sync::Mutex`], [`sync::WaitGroup`] |
//! | `sync.RWMutex`, `sync.Cond`, `sync.Once` | [`sync::RwLock`], [`sync::Condvar`], [`sync::Once`] |
//! | `time.After`, `time.Tick`, `time.NewTimer`, `time.NewTicker`, `time.AfterFunc` | [`time::after`], [`time::tick`], [`time::Timer`], [`time::Ticker`], [`time::after_func`] |
//! | `context.Background`, `WithCancel`, `WithTimeout`, `WithDeadline` | [`context::background`], [`context::with_cancel`], [`context::with_timeout`], [`context::with_deadline`] |
//! | `defer`, `recover()` | [`defer!`], [`recover`], [`Panic`] |
//! | a blocking syscall | [`syscall`] (other goroutines keep running) |
//! | goroutine-local storage (none in Go) | [`local!`] |
//! | `GODEBUG=schedtrace=1000`, SIGQUIT traceback | `GORT_DEBUG=schedtrace=1000`, SIGQUIT, [`dump`], [`stats`] |
//! | `fatal error: all goroutines are asleep - deadlock!` | [`Error::Deadlock`] from [`run`] |
//!
//! # `#[gort::main]` and `#[gort::test]`
//!
//! The attributes run a function's body as the main goroutine of a fresh
//! runtime, with options `procs = N`, `stack_size = BYTES`,
//! `external_wakers = true` and `crate = "path"`. A runtime error (a
//! deadlock, a bad setting) ends `main` as Go ends a program (`fatal error:
//! ...` on stderr, exit status 2) and fails a test; a panic propagates.
//!
//! ```
//! #[gort::main(procs = 2)]
//! fn main() -> Result<(), std::num::ParseIntError> {
//!     let h = gort::go(|| "42".parse::<u32>());
//!     assert_eq!(h.join().unwrap()?, 42);
//!     assert_eq!(gort::procs(), 2);
//!     Ok(())
//! }
//! ```
//!
//! ```compile_fail
//! #[gort::main(procs = 0)] // error: procs must be at least 1
//! fn main() {}
//! ```
//!
//! # Threads, thread-locals and goroutines
//!
//! Goroutines move between OS threads whenever they park or yield (never
//! in between: gort preempts only at runtime entries, and takes the P, not
//! the thread, from a goroutine that never enters).
//! So a `thread_local!` value may change under a goroutine at any park, and
//! on aarch64 and i686 the compiler may keep a thread-local's address from
//! before a park and use the old thread's slot after it. Use [`local!`] for
//! goroutine-local values, or spawn with `Builder::new().locked(true)`
//! (locked to one thread from its first line) where thread-local
//! libraries are used; `lock_os_thread` in the middle of a function that
//! already touched a thread-local is too late. docs/thread-locals.md has the rules, the
//! evidence and a list of common crates that use thread-locals.
//!
//! # Environment
//!
//! - `GORT_PROCS=n`: the default number of Ps (else the number of CPUs).
//! - `GORT_DEBUG=schedtrace=MS`: a scheduler line on stderr every MS
//!   milliseconds, as Go's `GODEBUG=schedtrace` prints.
//! - SIGQUIT (Ctrl-\\): every goroutine of every live runtime is printed to
//!   stderr with its backtrace, and the process exits with status 2, as a Go
//!   program does (unless the program installed its own SIGQUIT handler
//!   first).
//!
//! # Crates beneath
//!
//! gort re-exports gort-sched (scheduler), gort-sync (channels, select,
//! the sync locks, time, context), gort-macros (`#[gort::main]`,
//! `#[gort::test]`), gort-unwind (defer, recover, Panic) and gort-cgo
//! (`cgo::call`, `cgo::callback`); gort-arch
//! (stack switching) and gort-stack (goroutine stacks and OS stack bounds)
//! are usable on their own. See the repository's docs/ for each crate's
//! design.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub use gort_macros::{main, test};
pub use gort_sched::{
    dump, dump_string, go, id, local, lock_os_thread, num_goroutines, procs, run, set_procs, sleep,
    stats, syscall, unlock_os_thread, yield_now, ConfigError, Error, JoinHandle, LocalKey, Runtime,
    Stats, MAX_PROCS, MIN_STACK_SIZE,
};
pub use gort_sync::{select, select_biased};
pub use gort_unwind::{defer, recover, Panic};

/// Calls into C that never stall other goroutines, and callbacks from C on
/// any thread (gort-cgo; docs/cgo.md): [`cgo::call`], [`cgo::try_call`],
/// [`cgo::callback`], [`cgo::set_callback_runtime`], [`cgo::counts`].
pub mod cgo {
    pub use gort_cgo::*;
}

/// Networking for goroutines, shaped like `std::net` (gort-net; docs/net.md):
/// [`net::TcpListener`], [`net::TcpStream`], [`net::UdpSocket`], Unix
/// sockets, and [`net::PollFd`] for any non-blocking fd. A blocking call
/// parks the goroutine on the network poller, not its thread.
pub mod net {
    pub use gort_net::*;
}

/// Configures a goroutine before spawning it, like `std::thread::Builder`
/// (gort-sched's `GoBuilder`).
///
/// ```
/// gort::run(|| {
///     let h = gort::Builder::new()
///         .name("worker")
///         .stack_size(64 * 1024)
///         .spawn(|| 6 * 7)
///         .unwrap();
///     assert_eq!(h.join().unwrap(), 42);
/// })
/// .unwrap();
/// ```
pub type Builder = gort_sched::GoBuilder;

/// Configures a [`Runtime`]: made by [`Runtime::builder`].
///
/// ```
/// let rt = gort::Runtime::builder().procs(2).stack_size(128 * 1024).build().unwrap();
/// assert_eq!(rt.run(gort::procs).unwrap(), 2);
/// assert!(gort::Runtime::builder().procs(0).build().is_err());
/// ```
pub type RuntimeBuilder = gort_sched::Builder;

pub mod chan {
    //! Go's channels: [`bounded`] (capacity 0 is a rendezvous, as Go's
    //! unbuffered channel) and [`unbounded`]; `send`/`recv` park the goroutine
    //! (or block a plain thread), with `try_*` and `*_timeout` variants. A
    //! channel is closed when every [`Sender`] is dropped: receivers then get
    //! the buffered values, then [`RecvError`]. [`never()`] is Go's nil
    //! channel: a receiver that never receives, to switch a select arm off.
    //!
    //! ```
    //! gort::run(|| {
    //!     let (tx, rx) = gort::chan::bounded(1);
    //!     gort::go(move || {
    //!         for i in 0..3 {
    //!             tx.send(i).unwrap();
    //!         }
    //!     });
    //!     assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
    //! })
    //! .unwrap();
    //! ```

    pub use gort_sync::chan::*;
}

pub mod time {
    //! Go's `time` channels on the scheduler's per-P timers: [`after`],
    //! [`tick`], [`Timer`], [`Ticker`], [`after_func`]. Go 1.23's rules:
    //! after `stop` or `reset` returns no value from before is received; a
    //! slow receiver misses ticks; a dropped timer is stopped and freed.
    //! `Duration::MAX` means for ever (here and in `sleep` and timeouts).
    //! Usable in [`select!`](crate::select) and from plain threads.
    //!
    //! ```
    //! use std::time::Duration;
    //! use gort::time::Timer;
    //!
    //! gort::run(|| {
    //!     let t = Timer::new(Duration::from_millis(1));
    //!     gort::sleep(Duration::from_millis(10)); // expired, value unread
    //!     assert!(t.stop(), "the unread value counts as pending (Go 1.23)");
    //!     assert!(t.receiver().try_recv().is_err(), "and is gone");
    //! })
    //! .unwrap();
    //! ```

    pub use gort_sync::time::*;
}

pub mod context {
    //! Go's `context` for cancellation: [`background`], [`with_cancel`],
    //! [`with_timeout`], [`with_deadline`]; [`Context::done`] is a receiver
    //! that disconnects when the context is cancelled, for `select!`.
    //! Cancellation flows down the tree, never up.
    //!
    //! ```
    //! use std::time::Duration;
    //! use gort::context;
    //!
    //! gort::run(|| {
    //!     let (ctx, _cancel) = context::with_timeout(&context::background(), Duration::from_millis(5));
    //!     assert!(ctx.done().recv().is_err(), "disconnected at the deadline");
    //!     assert_eq!(ctx.err(), Some(context::ContextError::DeadlineExceeded));
    //! })
    //! .unwrap();
    //! ```

    pub use gort_sync::context::*;
}

pub mod sync {
    //! Goroutine-aware locks: they park the goroutine, not the thread.
    //!
    //! - [`Mutex`]: Go's `sync.Mutex` (with its starvation mode), holding its
    //!   data as `std::sync::Mutex` does; no poisoning.
    //! - [`RwLock`]: Go's `sync.RWMutex` with read and write guards; a
    //!   waiting writer keeps new readers out, so writers do not starve.
    //! - [`Condvar`]: Go's `sync.Cond` in std's shape (`wait`, `wait_while`,
    //!   `wait_timeout`, `notify_one`, `notify_all`) over [`MutexGuard`].
    //! - [`Once`]: Go's `sync.Once` (`call_once`); the other callers park
    //!   until it is done; a panicking function counts as done, as in Go.
    //! - [`WaitGroup`]: as crossbeam's: each clone adds one, dropping a clone
    //!   is `Done`, `wait(self)` waits for all the others.
    //!
    //! ```
    //! use std::sync::Arc;
    //! use gort::sync::{Mutex, WaitGroup};
    //!
    //! let n = gort::run(|| {
    //!     let counter = Arc::new(Mutex::new(0));
    //!     let wg = WaitGroup::new();
    //!     for _ in 0..100 {
    //!         let (counter, wg) = (counter.clone(), wg.clone());
    //!         gort::go(move || {
    //!             *counter.lock() += 1;
    //!             drop(wg);
    //!         });
    //!     }
    //!     wg.wait();
    //!     let n = *counter.lock();
    //!     n
    //! })
    //! .unwrap();
    //! assert_eq!(n, 100);
    //! ```

    pub use gort_sync::sync::{
        Condvar, Mutex, MutexGuard, Once, RwLock, RwLockReadGuard, RwLockWriteGuard, WaitGroup,
        WaitTimeoutResult,
    };
}

// The README's example is compiled and run as a doctest, so it cannot rot
// (crates/gort/README.md is a link to the repository's README.md, so that the
// packaged crate carries it).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

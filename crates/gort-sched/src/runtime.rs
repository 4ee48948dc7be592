//! The user's entry: [`Runtime`], its [`Builder`], and [`run`].
//!
//! `Runtime::run` makes a `Sched`, turns the calling thread into M0 with
//! P 0, spawns the main goroutine, starts sysmon and the observer thread,
//! and runs the scheduler loop until the main goroutine has exited and
//! every other goroutine is gone. Then it joins every thread, puts back
//! the caller's own current G and M (a runtime can be run from inside
//! another's goroutine), and returns the main goroutine's value, resumes
//! its panic, or reports a deadlock.

use crate::current::{running_g, sched_of};
use crate::entry::Entry;
use crate::error::{ConfigError, Error};
use crate::outside::OwnThread;
use crate::sched::{Config, Ending, Sched, MAX_PROCS};
use gort_stack::{StackConfig, StackPool};
use gort_unwind::Panic;
use std::sync::{Arc, Mutex};

/// Smallest goroutine stack accepted by the builder.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// Configures a [`Runtime`].
#[derive(Clone, Debug, Default)]
pub struct Builder {
    procs: Option<usize>,
    stack_size: Option<usize>,
    external_wakers: Option<bool>,
    max_retaken: Option<usize>,
}

impl Builder {
    /// Number of Ps (GOMAXPROCS): how many goroutines run at once. Default:
    /// `GORT_PROCS` from the environment, else the number of CPUs.
    pub fn procs(mut self, n: usize) -> Self {
        self.procs = Some(n);
        self
    }

    /// Default stack size of goroutines, in bytes of address space (only
    /// touched pages cost memory). Default 256 KiB.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Whether goroutines may be woken from outside the runtime (by plain
    /// threads holding channel ends, or by C threads calling back), which
    /// decides when a moment with every goroutine blocked is a deadlock
    /// (`run` returns [`Error::Deadlock`]):
    ///
    /// - not called (the default): a deadlock only if no thread outside
    ///   the runtime is alive in the process, since any such thread may
    ///   hold the other end; reported once the last one is gone (at most
    ///   about a second later). Never ends a correct program; exact in a
    ///   process whose only threads are the runtime's.
    /// - `true`: never a deadlock (the runtime waits for outside wakers
    ///   forever, as a Go program using cgo does).
    /// - `false`: only the runtime's goroutines wake each other; every
    ///   goroutine blocked is a deadlock at once, whatever other threads
    ///   exist (for programs and tests whose other threads never touch the
    ///   runtime, e.g. under libtest, whose main thread always exists).
    ///
    /// See docs/sched.md, "Deadlock detection".
    pub fn external_wakers(mut self, yes: bool) -> Self {
        self.external_wakers = Some(yes);
        self
    }

    /// The most threads that may run goroutines without a P at once after
    /// sysmon took their P (a goroutine that held it for a slice without
    /// entering the runtime, while other work waited). Each such retake
    /// costs a thread; at the cap a goroutine that never enters the
    /// runtime keeps its P. Default [`crate::DEFAULT_MAX_RETAKEN`]; 0
    /// turns retakes off (slices are then only cooperative). See
    /// docs/sched.md, "Liveness".
    pub fn max_retaken(mut self, n: usize) -> Self {
        self.max_retaken = Some(n);
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<Runtime, Error> {
        let procs = match self.procs {
            Some(0) => return Err(ConfigError::new("procs", 0, "at least 1").into()),
            Some(n) => n,
            None => procs_from_env()?.min(MAX_PROCS),
        };
        if procs > MAX_PROCS {
            return Err(ConfigError::new("procs", procs, format!("at most {MAX_PROCS}")).into());
        }
        let stack_size = self.stack_size.unwrap_or(StackConfig::DEFAULT_SIZE);
        if stack_size < MIN_STACK_SIZE {
            return Err(ConfigError::new(
                "stack_size",
                stack_size,
                format!("at least {MIN_STACK_SIZE} bytes"),
            )
            .into());
        }
        Ok(Runtime {
            procs,
            stack_size,
            external_wakers: self.external_wakers,
            max_retaken: self.max_retaken.unwrap_or(crate::DEFAULT_MAX_RETAKEN),
        })
    }
}

pub(crate) fn procs_from_env() -> Result<usize, Error> {
    match std::env::var("GORT_PROCS") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(0) | Err(_) => Err(ConfigError::new(
                "GORT_PROCS",
                format_args!("{v:?}"),
                "a number of at least 1",
            )
            .into()),
            Ok(n) => Ok(n),
        },
        Err(_) => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// A configured runtime: [`Runtime::run`] starts it on the calling thread.
#[derive(Clone, Debug)]
pub struct Runtime {
    procs: usize,
    stack_size: usize,
    external_wakers: Option<bool>,
    max_retaken: usize,
}

/// Runs `f` as the main goroutine of a fresh runtime with default settings
/// and returns its value; a panic in `f` is resumed on the caller.
pub fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    Runtime::builder().build()?.run(f)
}

impl Runtime {
    /// A builder with default settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Number of Ps this runtime will run with.
    pub fn procs(&self) -> usize {
        self.procs
    }

    /// Runs `f` as the main goroutine (id 1) on a new scheduler, and waits
    /// on the calling thread. Returns when the main goroutine returns,
    /// after every other goroutine has exited or been unwound (goroutines
    /// still parked then are unwound so their destructors run) and every
    /// thread of the runtime has stopped. A panic in `f` is resumed here.
    ///
    /// Goroutines that stay outside the runtime (a CPU loop, a blocking
    /// call, `syscall()`) are not waited for: about 20 ms after every other
    /// goroutine is gone, `run` returns without them. Each keeps its thread
    /// and stack and unwinds at its next entry into the runtime; the
    /// runtime's memory stays allocated for them (docs/sched.md,
    /// "Shutdown").
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let stacks = StackPool::new(StackConfig {
            size: self.stack_size,
            ..StackConfig::default()
        })?;
        gort_stack::overflow::install()?;
        crate::membarrier::init();
        let sched = Arc::new(Sched::new(
            Config {
                procs: self.procs,
                stack_size: self.stack_size,
                external_wakers: self.external_wakers,
                max_retaken: self.max_retaken,
            },
            stacks,
        ));
        let result: Arc<Mutex<Option<Result<T, Panic>>>> = Arc::new(Mutex::new(None));
        let slot = result.clone();
        // This thread waits for the run, so it wakes no goroutine: it
        // counts as the runtime's own until the run is over.
        let caller_own = OwnThread::enter(sched.outside.clone());
        let saved = crate::current::save_current();
        // schedtrace and SIGQUIT (observe.rs), and the registration that
        // lets `stats()` on other threads see this runtime: before the
        // main goroutine can run (an M woken by its spawn may run it at
        // once), so that whatever main tells other threads, they find the
        // runtime. Without its thread the runtime still runs, unobserved.
        let observer = match crate::observe::Observer::start(&sched) {
            Ok(o) => Some(o),
            Err(e) => {
                eprintln!("gort: {e}; no schedtrace or SIGQUIT dump for this run");
                None
            }
        };
        let m0 = sched.start();
        let main = move || {
            // Not quiet: the panic is resumed on the caller of run, and
            // resuming does not print, so it is reported where it happens,
            // as a panic in a plain `main` is.
            let r = gort_unwind::catch(false, f);
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        };
        if let Err(e) = sched.spawn(Entry::boxed(main), None, true) {
            crate::current::restore_current(saved);
            return Err(Error::Stack(e));
        }
        let sysmon = {
            let sched = sched.clone();
            std::thread::Builder::new()
                .name("gort-sysmon".into())
                .spawn(move || {
                    let _own = OwnThread::enter(sched.outside.clone());
                    sched.sysmon()
                })
                .map_err(|source| Error::Thread {
                    what: "sysmon",
                    source,
                })
        };
        let sysmon = match sysmon {
            Ok(t) => t,
            Err(e) => {
                crate::current::restore_current(saved);
                return Err(e);
            }
        };
        // M0 runs on a thread of its own, never on this one: a goroutine
        // that never returns to the runtime may be running on M0 when the
        // run ends, and this thread must be free to return then
        // (shutdown.rs, "Detached goroutines"). Without a thread, M0 is
        // this thread, as before.
        let m0_thread = {
            let sched = sched.clone();
            let m0 = m0 as usize;
            std::thread::Builder::new()
                .name("gort-m0".into())
                .spawn(move || {
                    let _own = OwnThread::enter(sched.outside.clone());
                    sched.mstart(m0 as *mut crate::m::M);
                })
        };
        match m0_thread {
            Ok(t) => sched.lock().threads.push(t),
            Err(_) => sched.schedule(m0),
        }
        // In a forked child, the Ms and sysmon to wait for do not exist.
        crate::fork::check(sched.fork_gen, "its run came to an end");
        sched.wait_done();
        // sysmon first: until it has exited, a retake of its could still
        // start an M (`handoffp`) that the join below would miss.
        let _ = sysmon.join();
        sched.join_threads();
        sched.clear_timers();
        sched.netpoll_close();
        drop(observer);
        drop(caller_own);
        crate::current::restore_current(saved);
        let ending = sched.take_ending();
        if sched.detached.load(std::sync::atomic::Ordering::Acquire) {
            // Goroutines still run on the Ms and stacks this owns.
            std::mem::forget(sched);
        } else {
            drop(sched);
        }
        if let Some(Ending::Deadlock(goroutines)) = ending {
            return Err(Error::Deadlock { goroutines });
        }
        let outcome = result
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("the main goroutine ended without a result");
        match outcome {
            Ok(v) => Ok(v),
            Err(panic) => panic.resume(),
        }
    }
}

/// Marker payload that unwinds a goroutine parked at shutdown; caught at
/// the goroutine's entry, never reported as a panic.
#[derive(Debug)]
pub struct Shutdown;

/// Number of live goroutines in the current runtime.
///
/// # Panics
/// Outside a goroutine.
pub fn num_goroutines() -> usize {
    sched_of(running_g("num_goroutines")).num_goroutines()
}

/// Number of Ps of the current runtime (GOMAXPROCS).
///
/// # Panics
/// Outside a goroutine.
pub fn procs() -> usize {
    sched_of(running_g("procs")).procs()
}

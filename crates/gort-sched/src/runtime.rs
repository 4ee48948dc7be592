//! The public face of the scheduler: `Runtime`, `run`, `go`, `JoinHandle`,
//! `yield_now`, `id`, and `park`/`ready` for the layers above.

use crate::g::{GRef, WaitReason, G};
use crate::note::Note;
use crate::sched::{
    current_g, switch_to_g0, Config, Ending, Request, Sched, CELL_LAYOUT, MAX_PROCS,
};
use gort_stack::{StackConfig, StackPool};
use gort_unwind::Panic;
use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::panic::resume_unwind;
use std::ptr::NonNull;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What can go wrong running a runtime.
#[derive(Debug)]
pub enum Error {
    /// Every goroutine was blocked and nothing could wake one (Go's "all
    /// goroutines are asleep - deadlock!"). `goroutines` lists each live
    /// goroutine with its state and wait reason.
    Deadlock {
        /// One line per goroutine: id, state, wait reason.
        goroutines: String,
    },
    /// A bad setting (procs 0, an unparsable `GORT_PROCS`, a stack size
    /// too small).
    Config(String),
    /// The system refused a resource (threads, stack memory, mappings).
    Resource(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Deadlock { goroutines } => {
                write!(f, "all goroutines are asleep - deadlock!\n\n{goroutines}")
            }
            Error::Config(msg) => write!(f, "gort configuration: {msg}"),
            Error::Resource(msg) => write!(f, "gort resource: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

/// Smallest goroutine stack accepted by the builder.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// Configures a [`Runtime`].
#[derive(Clone, Debug, Default)]
pub struct Builder {
    procs: Option<usize>,
    stack_size: Option<usize>,
    external_wakers: bool,
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

    /// Declares that goroutines may be woken from outside the runtime (by
    /// plain threads holding channel ends, or by C threads that have not
    /// called in yet), so that a moment when every goroutine is blocked is
    /// not a deadlock. Off by default.
    pub fn external_wakers(mut self, yes: bool) -> Self {
        self.external_wakers = yes;
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<Runtime, Error> {
        let procs = match self.procs {
            Some(0) => return Err(Error::Config("procs must be at least 1, got 0".into())),
            Some(n) => n,
            None => procs_from_env()?.min(MAX_PROCS),
        };
        if procs > MAX_PROCS {
            return Err(Error::Config(format!(
                "procs must be at most {MAX_PROCS}, got {procs}"
            )));
        }
        let stack_size = self.stack_size.unwrap_or(StackConfig::DEFAULT_SIZE);
        if stack_size < MIN_STACK_SIZE {
            return Err(Error::Config(format!(
                "stack_size must be at least {MIN_STACK_SIZE} bytes, got {stack_size}"
            )));
        }
        Ok(Runtime {
            procs,
            stack_size,
            external_wakers: self.external_wakers,
        })
    }
}

fn procs_from_env() -> Result<usize, Error> {
    match std::env::var("GORT_PROCS") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(0) | Err(_) => Err(Error::Config(format!(
                "GORT_PROCS must be a number of at least 1, got {v:?}"
            ))),
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
    external_wakers: bool,
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

    /// Runs `f` as the main goroutine (id 1) on a new scheduler whose first
    /// M is the calling thread. Returns when the main goroutine returns,
    /// after every other goroutine has exited or been unwound (goroutines
    /// still parked then are unwound so their destructors run) and every
    /// thread of the runtime has stopped. A panic in `f` is resumed here.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let stacks = StackPool::new(StackConfig {
            size: self.stack_size,
            ..StackConfig::default()
        })
        .map_err(|e| Error::Resource(e.to_string()))?;
        gort_stack::overflow::install().map_err(|e| Error::Resource(e.to_string()))?;
        crate::membarrier::init();
        let sched = Arc::new(Sched::new(
            Config {
                procs: self.procs,
                stack_size: self.stack_size,
                external_wakers: self.external_wakers,
            },
            stacks,
        ));
        let result: Arc<Mutex<Option<Result<T, Panic>>>> = Arc::new(Mutex::new(None));
        let slot = result.clone();
        let saved = crate::sched::save_current();
        let m0 = sched.start();
        let main = move || {
            // Not quiet: the panic is resumed on the caller of run, and
            // resuming does not print, so it is reported where it happens,
            // as a panic in a plain `main` is.
            let r = gort_unwind::catch(false, f);
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        };
        if let Err(e) = sched.spawn(Entry::boxed(main), None, true) {
            crate::sched::restore_current(saved);
            return Err(Error::Resource(e.to_string()));
        }
        let sysmon = {
            let sched = sched.clone();
            std::thread::Builder::new()
                .name("gort-sysmon".into())
                .spawn(move || sched.sysmon())
                .map_err(|e| Error::Resource(format!("cannot start sysmon: {e}")))
        };
        let sysmon = match sysmon {
            Ok(t) => t,
            Err(e) => {
                crate::sched::restore_current(saved);
                return Err(e);
            }
        };
        // schedtrace and SIGQUIT (sched/observe.rs); without its thread the
        // runtime still runs, unobserved.
        let observer = match crate::sched::observe::Observer::start(&sched) {
            Ok(o) => Some(o),
            Err(e) => {
                eprintln!("gort: {e}; no schedtrace or SIGQUIT dump for this run");
                None
            }
        };
        sched.schedule(m0);
        // M0 leaves its loop early only when a goroutine exited while
        // locked to it; then it waits here for the end of the run.
        sched.wait_done();
        sched.join_threads();
        let _ = sysmon.join();
        drop(observer);
        crate::sched::restore_current(saved);
        let ending = sched.take_ending();
        drop(sched);
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

fn running_g(what: &str) -> *mut G {
    let g = current_g();
    if g.is_null() {
        panic!("gort::{what} called outside a goroutine (from a plain thread or the scheduler)");
    }
    g
}

fn sched_of(g: *mut G) -> &'static Sched {
    // SAFETY: a running G's Sched lives until every goroutine is gone; the
    // 'static is confined to the call that made it.
    unsafe { &*(*g).sched }
}

/// The goroutine running now, if this thread is running one.
pub fn current() -> Option<GRef> {
    std::ptr::NonNull::new(current_g()).map(GRef)
}

/// The current goroutine's id (the main goroutine is 1).
///
/// # Panics
/// Outside a goroutine.
pub fn id() -> u64 {
    let g = running_g("id");
    // SAFETY: the running G is live.
    unsafe { (*g).id.get() }
}

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

/// Changes the number of Ps (GOMAXPROCS) of the current runtime and
/// returns the previous number.
///
/// The world is stopped first, as in Go: Ps that are idle stop at once,
/// Ps running a goroutine stop when that goroutine next parks or yields
/// (there is no preemption, so a goroutine spinning without either delays
/// this call). Goroutines queued on removed Ps move to the global queue.
///
/// # Errors
/// `Error::Config` for 0 or more than [`MAX_PROCS`].
///
/// # Panics
/// Outside a goroutine.
pub fn set_procs(n: usize) -> Result<usize, Error> {
    if n == 0 {
        return Err(Error::Config(
            "set_procs: procs must be at least 1, got 0".into(),
        ));
    }
    if n > MAX_PROCS {
        return Err(Error::Config(format!(
            "set_procs: procs must be at most {MAX_PROCS}, got {n}"
        )));
    }
    let g = running_g("set_procs");
    let sched = sched_of(g);
    while !sched.try_begin_stw() {
        yield_now();
    }
    // SAFETY: g is the running goroutine; g.m is its current M (read after
    // the last switch), which holds a P.
    let old = sched.set_procs(unsafe { (*g).m.get() }, n);
    sched.end_stw();
    Ok(old)
}

/// Runs `f`, a blocking system call or anything else that may block the
/// thread, in syscall state: the goroutine keeps its thread, but its P can
/// be handed to another thread by sysmon after ~20 µs, so the other
/// goroutines keep running (Go's `entersyscall`/`exitsyscall`). On return
/// the goroutine takes its old P back if it is still free (one CAS), else
/// an idle one, else it queues and its thread parks. Outside a goroutine,
/// `f` just runs.
///
/// `f` must not call back into the scheduler (spawn, park, channels):
/// it runs without a P.
pub fn syscall<R>(f: impl FnOnce() -> R) -> R {
    let g = current_g();
    if g.is_null() {
        return f();
    }
    // SAFETY: the running goroutine is live.
    let gr = unsafe { &*g };
    let sched = sched_of(g);
    sched.enter_syscall(gr);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    sched.exit_syscall(gr);
    check_cancel(g);
    match r {
        Ok(v) => v,
        Err(payload) => resume_unwind(payload),
    }
}

/// Lets other goroutines run; this one goes to the back of its P's queue.
///
/// # Panics
/// Outside a goroutine.
pub fn yield_now() {
    let g = running_g("yield_now");
    let pinned = pin_if_unwinding(g);
    let mut req = Request::Yield;
    switch_to_g0(g, &mut req);
    unpin(g, pinned);
    check_cancel(g);
}

/// A goroutine that parks while unwinding stays on its thread until the
/// park returns: std's panic count is per thread (design brief, "Thread-
/// locals and migration").
fn pin_if_unwinding(g: *mut G) -> bool {
    if std::thread::panicking() {
        lock_internal(g);
        true
    } else {
        false
    }
}

fn unpin(g: *mut G, pinned: bool) {
    if pinned {
        unlock_internal(g);
    }
}

/// `lock_internal` for a goroutine that is not running yet, on M `m`
/// (a callback from C locks before leaving syscall state).
pub(crate) fn lock_m(m: *mut crate::sched::M, g: *mut G) {
    // SAFETY: m is the calling thread's M and g the goroutine about to run
    // on it (the caller's contract); both live as long as their Sched.
    unsafe {
        (*m).locked_int.set((*m).locked_int.get() + 1);
        (*m).lockedg.set(g);
        (*g).lockedm.set(m);
    }
}

fn lock_internal(g: *mut G) {
    // SAFETY: g is the running goroutine and g.m its M (set by execute
    // before the last switch to it; read now, after that switch).
    unsafe {
        let m = (*g).m.get();
        (*m).locked_int.set((*m).locked_int.get() + 1);
        (*m).lockedg.set(g);
        (*g).lockedm.set(m);
    }
}

pub(crate) fn unlock_internal(g: *mut G) {
    // SAFETY: as in lock_internal.
    unsafe {
        let m = (*g).m.get();
        let n = (*m).locked_int.get();
        if n == 0 {
            crate::sched::fatal("unlock of an internal thread lock that is not held");
        }
        (*m).locked_int.set(n - 1);
        if n == 1 && (*m).locked_ext.get() == 0 {
            (*m).lockedg.set(std::ptr::null_mut());
            (*g).lockedm.set(std::ptr::null_mut());
        }
    }
}

/// Wires the calling goroutine to its current OS thread (Go's
/// `runtime.LockOSThread`): until a matching number of
/// [`unlock_os_thread`] calls, it always runs on this thread, and the
/// thread runs no other goroutine. Calls nest. A goroutine that exits while
/// locked takes its thread with it (the thread ends), as in Go.
///
/// This is how thread-local values (`thread_local!`) stay put across
/// parks: without it, a goroutine may resume on another thread after any
/// park or yield.
///
/// # Panics
/// Outside a goroutine.
pub fn lock_os_thread() {
    let g = running_g("lock_os_thread");
    // SAFETY: as in lock_internal.
    unsafe {
        let m = (*g).m.get();
        let n = (*m).locked_ext.get();
        if n == u32::MAX {
            crate::sched::fatal("lock_os_thread nested too deeply");
        }
        (*m).locked_ext.set(n + 1);
        (*m).lockedg.set(g);
        (*g).lockedm.set(m);
    }
}

/// Undoes one [`lock_os_thread`]; when none is left (and the runtime holds
/// no lock of its own), the goroutine may move between threads again.
/// Without a matching lock it does nothing, as in Go.
///
/// # Panics
/// Outside a goroutine.
pub fn unlock_os_thread() {
    let g = running_g("unlock_os_thread");
    // SAFETY: as in lock_internal.
    unsafe {
        let m = (*g).m.get();
        let n = (*m).locked_ext.get();
        if n == 0 {
            return;
        }
        (*m).locked_ext.set(n - 1);
        if n == 1 && (*m).locked_int.get() == 0 {
            (*m).lockedg.set(std::ptr::null_mut());
            (*g).lockedm.set(std::ptr::null_mut());
        }
    }
}

/// The runtime's own thread lock (Go's `lockOSThread`, counted apart from
/// the user's): for gort-cgo, which locks a callback's goroutine to its
/// thread for the callback's duration (seed 000).
///
/// # Panics
/// Outside a goroutine.
#[doc(hidden)]
pub fn lock_os_thread_internal() {
    lock_internal(running_g("lock_os_thread_internal"));
}

/// Undoes one [`lock_os_thread_internal`]; a fatal error without one.
///
/// # Panics
/// Outside a goroutine.
#[doc(hidden)]
pub fn unlock_os_thread_internal() {
    unlock_internal(running_g("unlock_os_thread_internal"));
}

/// Parks the current goroutine with `reason`. Once the goroutine is fully
/// suspended, `unlock(g)` runs on the scheduler's stack: it typically
/// publishes `g` where a waker will find it and releases a lock. If it
/// returns false the park is called off and the goroutine continues at
/// once. Returns when someone calls [`ready`] on it.
///
/// The publication must be the last thing `unlock` does with anything on
/// the parking goroutine's stack (its captures, usually): from then on the
/// goroutine can be readied and run on another thread while `unlock` is
/// still running. Copy what is needed afterwards into locals first, as
/// [`park_with`](crate::park_with) does.
///
/// During shutdown the goroutine is unwound instead (payload [`Shutdown`]):
/// keep wait registrations in guards whose `Drop` removes them. A park may
/// also return when a stale waker from before a shutdown readies a reused
/// goroutine; callers re-check their condition.
///
/// # Panics
/// Outside a goroutine.
pub fn park(reason: WaitReason, unlock: impl FnMut(GRef) -> bool) {
    park_g(running_g("park"), reason, unlock);
}

/// `park` for a caller that already has the running goroutine `g`.
pub(crate) fn park_g(g: *mut G, reason: WaitReason, mut unlock: impl FnMut(GRef) -> bool) {
    check_cancel(g);
    // SAFETY: the running G is live and ours.
    unsafe { (*g).wait_reason.set(reason) };
    let pinned = pin_if_unwinding(g);
    let mut req = Request::Park(&mut unlock);
    switch_to_g0(g, &mut req);
    unpin(g, pinned);
    check_cancel(g);
}

pub(crate) fn check_cancel(g: *mut G) {
    // SAFETY: the running G is live.
    let gr = unsafe { &*g };
    if gr.cancel.load(Ordering::Acquire) && !std::thread::panicking() {
        resume_unwind(Box::new(Shutdown));
    }
    if sched_of(g).is_shutting_down() && !std::thread::panicking() && !gr.is_main.get() {
        gr.cancel.store(true, Ordering::Release);
        resume_unwind(Box::new(Shutdown));
    }
}

/// Makes a goroutine parked by [`park`] runnable again. Safe to call from
/// any thread while the goroutine's runtime runs; a goroutine that is not
/// parked is left alone.
pub fn ready(g: GRef) {
    // SAFETY: Gs live as long as their runtime (the caller's contract).
    let sched = unsafe { &*(*g.as_ptr()).sched };
    sched.ready(g);
}

// ---- go / JoinHandle ---------------------------------------------------------

/// What a goroutine runs, type-erased without a box of its own (Go's
/// funcval): a pointer and the functions that run or drop it. `go` points
/// it at the goroutine's task cell, so a goroutine costs one allocation.
///
/// Must hold: `data` is valid for `vtable`'s functions, and exactly one of
/// them is called, once (`call` consumes the entry; `Drop` drops it).
pub(crate) struct Entry {
    data: *mut (),
    vtable: &'static EntryVTable,
}

struct EntryVTable {
    /// Runs and consumes `data`.
    run: unsafe fn(*mut ()),
    /// Drops `data` without running it.
    drop: unsafe fn(*mut ()),
}

// SAFETY: an Entry is made only from `Send` closures (`boxed`) or task
// cells of `Send` closures and results (`task_entry`).
unsafe impl Send for Entry {}

impl Entry {
    /// A boxed closure (the main goroutine's).
    pub(crate) fn boxed<F: FnOnce() + Send + 'static>(f: F) -> Entry {
        unsafe fn run<F: FnOnce()>(data: *mut ()) {
            // SAFETY: data is the Box<F> made below, consumed once.
            let f = unsafe { Box::from_raw(data.cast::<F>()) };
            f();
        }
        unsafe fn drop<F>(data: *mut ()) {
            // SAFETY: as above.
            std::mem::drop(unsafe { Box::from_raw(data.cast::<F>()) });
        }
        Entry {
            data: Box::into_raw(Box::new(f)).cast(),
            vtable: &EntryVTable {
                run: run::<F>,
                drop: drop::<F>,
            },
        }
    }

    /// Runs the goroutine's function (on the goroutine's stack).
    pub(crate) fn call(self) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the data is valid for its vtable; `this` is not dropped,
        // so this is the one call.
        unsafe { (this.vtable.run)(this.data) }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // SAFETY: not called (call forgets self): the one drop.
        unsafe { (self.vtable.drop)(self.data) }
    }
}

const RUNNING: usize = 0;
const DONE: usize = 1;
/// Low bits of a join state holding a parked joining goroutine's G pointer
/// (Gs are 8-aligned). A joining plain thread's `Arc<ThreadWaiter>`
/// pointer has these bits clear.
const JOINER_G: usize = 2;

/// A plain thread waiting in `join`.
struct ThreadWaiter {
    note: Note,
}

/// The join state of a goroutine, shared by the goroutine and its handle.
///
/// Must hold: `result` is written once, by the goroutine, before `state`
/// becomes DONE (release); after that it is taken only by the one joiner
/// and otherwise only read (to report a panic nobody will join). `state`
/// is RUNNING, DONE, the G of a parked joining goroutine tagged with
/// JOINER_G (set by the joiner's park on g0, cleared by `complete`'s swap
/// or the joiner's unregister), or an `Arc<ThreadWaiter>` pointer owned by
/// `state` until someone swaps or CASes it out.
struct JoinInner<T> {
    state: AtomicUsize,
    result: UnsafeCell<Option<Result<T, Panic>>>,
    /// The JoinHandle was dropped without joining.
    detached: AtomicBool,
    /// The panic of a detached goroutine has been printed.
    reported: AtomicBool,
}

// SAFETY: see the invariants: the result moves from one thread to another
// through the release/acquire pair on `state`.
unsafe impl<T: Send> Sync for JoinInner<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for JoinInner<T> {}

impl<T> JoinInner<T> {
    fn new() -> JoinInner<T> {
        JoinInner {
            state: AtomicUsize::new(RUNNING),
            result: UnsafeCell::new(None),
            detached: AtomicBool::new(false),
            reported: AtomicBool::new(false),
        }
    }

    fn complete(&self, r: Result<T, Panic>) {
        // SAFETY: only the goroutine writes, once, before publishing DONE.
        unsafe { *self.result.get() = Some(r) };
        let prev = self.state.swap(DONE, Ordering::SeqCst);
        if self.detached.load(Ordering::SeqCst) {
            self.report_unjoined_panic();
        }
        if prev > DONE {
            if prev & JOINER_G != 0 {
                let g = (prev & !JOINER_G) as *mut G;
                // SAFETY: a joiner publishes its own live G; Gs live as
                // long as their runtime, which runs this goroutine.
                ready(GRef(unsafe { std::ptr::NonNull::new_unchecked(g) }));
            } else {
                // SAFETY: a registered thread waiter's Arc is owned by
                // `state`; the swap moved it to us.
                let waiter = unsafe { Arc::from_raw(prev as *const ThreadWaiter) };
                waiter.note.wake();
            }
        }
    }

    /// Prints the panic of a goroutine whose handle was dropped (once):
    /// nobody else will see it. Cancellation at shutdown is not a panic.
    fn report_unjoined_panic(&self) {
        if self.reported.swap(true, Ordering::AcqRel) {
            return;
        }
        // SAFETY: DONE was published (SeqCst) before either caller got
        // here, and the result is only read, never taken, once detached.
        if let Some(Err(panic)) = unsafe { &*self.result.get() } {
            if !panic.payload().is::<Shutdown>() {
                eprintln!("{panic}");
            }
        }
    }

    fn take(&self) -> Result<T, Panic> {
        // SAFETY: DONE was observed with acquire; we are the only joiner.
        unsafe { (*self.result.get()).take() }.expect("join result taken twice")
    }

    /// Publishes `word` (a tagged G or a thread waiter) as the joiner;
    /// false if the goroutine already finished.
    fn register(&self, word: usize) -> bool {
        self.state
            .compare_exchange(RUNNING, word, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Takes a registered joiner back out (one that is being unwound);
    /// true if it was still there.
    fn unregister(&self, word: usize) -> bool {
        self.state
            .compare_exchange(word, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// The head of every task cell (see `Task`).
///
/// Must hold: `refs` counts the live references (the goroutine's entry
/// and the JoinHandle: 2 at first); whoever takes it to zero calls
/// `destroy` once, after an acquire fence, and nobody touches the cell
/// after.
#[repr(C)]
struct TaskHeader {
    refs: AtomicUsize,
    /// Drops the cell's contents and frees it.
    destroy: unsafe fn(NonNull<TaskHeader>),
}

/// A goroutine's task cell: its closure, then its join state and result
/// (tokio's task cell). One block per goroutine, and for small closures
/// and results a block from the P's cache of task cells
/// (`Sched::cell_alloc`): no allocator call in the steady state.
///
/// Must hold: `f` is taken once, by the goroutine, before anything else of
/// the goroutine runs; nobody else touches it. `header` and `join` come
/// first (repr(C)), so `TaskPrefix<T>` finds the join state without
/// knowing `F`.
#[repr(C)]
struct Task<F, T> {
    header: TaskHeader,
    join: JoinInner<T>,
    f: UnsafeCell<Option<F>>,
}

/// The part of a `Task<F, T>` the JoinHandle sees: the same first two
/// fields at the same offsets.
#[repr(C)]
struct TaskPrefix<T> {
    header: TaskHeader,
    join: JoinInner<T>,
}

/// Whether a task cell of `layout` fits a cached cell.
fn fits_cell(layout: Layout) -> bool {
    layout.size() <= CELL_LAYOUT.size() && layout.align() <= CELL_LAYOUT.align()
}

/// A new task cell for `f`, with two references.
fn new_task<F, T>(sched: &Sched, f: F) -> NonNull<Task<F, T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    unsafe fn destroy<F, T>(h: NonNull<TaskHeader>) {
        let task = h.cast::<Task<F, T>>().as_ptr();
        // SAFETY: the last reference is gone (TaskHeader's invariants):
        // the cell is ours to drop and free, with the layout it was made
        // with.
        unsafe {
            std::ptr::drop_in_place(task);
            free_cell(task.cast(), Layout::new::<Task<F, T>>());
        }
    }
    let layout = Layout::new::<Task<F, T>>();
    let block = if fits_cell(layout) {
        sched.cell_alloc()
    } else {
        // SAFETY: the layout is not zero-sized (it holds a header).
        unsafe { std::alloc::alloc(layout) }
    };
    let Some(block) = NonNull::new(block.cast::<Task<F, T>>()) else {
        std::alloc::handle_alloc_error(layout)
    };
    // SAFETY: a fresh block big and aligned enough for Task<F, T>.
    unsafe {
        block.as_ptr().write(Task {
            header: TaskHeader {
                refs: AtomicUsize::new(2),
                destroy: destroy::<F, T>,
            },
            join: JoinInner::new(),
            f: UnsafeCell::new(Some(f)),
        });
    }
    block
}

/// Frees a task cell's block.
///
/// # Safety
/// `block` was made by `new_task` with `layout` and is not used again.
unsafe fn free_cell(block: *mut u8, layout: Layout) {
    if !fits_cell(layout) {
        // SAFETY: allocated with this layout by the global allocator.
        unsafe { std::alloc::dealloc(block, layout) };
        return;
    }
    let g = current_g();
    if g.is_null() {
        // SAFETY: a CELL_LAYOUT block of the global allocator.
        unsafe { std::alloc::dealloc(block, CELL_LAYOUT) };
    } else {
        // SAFETY: as above; the running goroutine's runtime keeps it.
        unsafe { sched_of(g).cell_free(block) };
    }
}

/// Drops one reference to a task cell.
///
/// # Safety
/// The caller owns one of the cell's references and does not use it again.
unsafe fn release_task(h: NonNull<TaskHeader>) {
    // SAFETY: the caller's reference keeps the cell alive until here.
    let refs = unsafe { &(*h.as_ptr()).refs };
    if refs.fetch_sub(1, Ordering::Release) == 1 {
        std::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: the last reference: nobody else touches the cell.
        unsafe { ((*h.as_ptr()).destroy)(h) };
    }
}

/// The entry of a goroutine made by `go`: runs the closure from the task
/// cell and completes the join state with its value or panic. Holds one
/// of the cell's references.
fn task_entry<F, T>(task: NonNull<Task<F, T>>) -> Entry
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    unsafe fn run<F, T>(data: *mut ())
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let h = NonNull::new(data.cast::<TaskHeader>()).expect("task entry");
        let task = h.cast::<Task<F, T>>().as_ptr();
        // SAFETY: the entry's reference keeps the cell alive; the goroutine
        // is the only one to touch `f`, once.
        let f = unsafe { (*(*task).f.get()).take() }.expect("goroutine closure taken twice");
        // Quiet: the panic goes to the JoinHandle; it is printed only if
        // nobody can join it any more (see report_unjoined_panic).
        let r = gort_unwind::catch(true, f).map_err(|mut p| {
            p.set_goroutine(current().map(GRef::id));
            p
        });
        // SAFETY: as above; then the entry's reference is given up.
        unsafe {
            (*task).join.complete(r);
            release_task(h);
        }
    }
    unsafe fn drop(data: *mut ()) {
        // SAFETY: the entry's reference, given up without running.
        unsafe { release_task(NonNull::new_unchecked(data.cast())) };
    }
    Entry {
        data: task.as_ptr().cast(),
        vtable: &EntryVTable {
            run: run::<F, T>,
            drop,
        },
    }
}

/// An owned permission to wait for a goroutine and take its result, like
/// `std::thread::JoinHandle`.
///
/// Must hold: `task` is a reference to a `Task<_, T>` cell (released on
/// drop).
pub struct JoinHandle<T> {
    task: NonNull<TaskHeader>,
    id: u64,
    _result: PhantomData<T>,
}

// SAFETY: the handle only reaches the join state, which moves a `T: Send`
// result between threads through its release/acquire protocol.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: as above; shared access is atomics only (`is_finished`, `id`).
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("goroutine", &self.id)
            .finish()
    }
}

impl<T> JoinHandle<T> {
    fn inner(&self) -> &JoinInner<T> {
        // SAFETY: our reference keeps the cell alive; its first fields are
        // laid out as TaskPrefix<T> (Task's invariants).
        unsafe { &(*self.task.as_ptr().cast::<TaskPrefix<T>>()).join }
    }

    /// The goroutine's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the goroutine has finished.
    pub fn is_finished(&self) -> bool {
        self.inner().state.load(Ordering::Acquire) == DONE
    }

    /// Waits for the goroutine and returns its value, or its panic (with
    /// message, location and goroutine id). From a goroutine this parks only
    /// the goroutine; from a plain thread it blocks the thread.
    pub fn join(self) -> Result<T, Panic> {
        let inner = self.inner();
        if inner.state.load(Ordering::Acquire) == DONE {
            return inner.take();
        }
        match current() {
            Some(g) => self.join_goroutine(g),
            None => self.join_thread(),
        }
    }

    fn join_goroutine(&self, g: GRef) -> Result<T, Panic> {
        let inner = self.inner();
        let word = g.as_ptr() as usize | JOINER_G;
        struct Unregister<'a, T>(&'a JoinInner<T>, usize);
        impl<T> Drop for Unregister<'_, T> {
            fn drop(&mut self) {
                self.0.unregister(self.1);
            }
        }
        let _guard = Unregister(inner, word);
        // `register` publishes this goroutine with its CAS and touches
        // nothing of this goroutine's stack after it: once published, the
        // goroutine can be readied and run elsewhere while g0 is still in
        // here.
        park(WaitReason::Join, |_| inner.register(word));
        loop {
            if inner.state.load(Ordering::Acquire) == DONE {
                return inner.take();
            }
            // Readied by a stray `ready`: wait without parking again (an
            // unlock function could not safely re-check our registration).
            yield_now();
        }
    }

    fn join_thread(&self) -> Result<T, Panic> {
        let inner = self.inner();
        let waiter = Arc::new(ThreadWaiter { note: Note::new() });
        let raw = Arc::into_raw(waiter.clone()) as usize;
        if inner.register(raw) {
            waiter.note.sleep();
        } else {
            // SAFETY: not published: take our clone back.
            drop(unsafe { Arc::from_raw(raw as *const ThreadWaiter) });
        }
        inner.take()
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        // A joined handle was consumed by `join` (its result taken); only
        // an unjoined one gets here with a result possibly pending.
        let inner = self.inner();
        inner.detached.store(true, Ordering::SeqCst);
        if inner.state.load(Ordering::SeqCst) == DONE {
            inner.report_unjoined_panic();
        }
        // SAFETY: the handle's reference, not used again.
        unsafe { release_task(self.task) };
    }
}

/// Configures a goroutine before spawning it, like `std::thread::Builder`.
#[derive(Clone, Debug, Default)]
pub struct GoBuilder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl GoBuilder {
    /// A builder with the runtime's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// A name, shown in dumps.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// This goroutine's stack size in bytes.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawns `f` as a goroutine of the current runtime.
    ///
    /// # Panics
    /// Outside a goroutine; or if no stack can be had (see the error).
    pub fn spawn<T: Send + 'static>(
        self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<JoinHandle<T>, Error> {
        let g = running_g("go");
        let sched = sched_of(g);
        if let Some(size) = self.stack_size {
            if size < MIN_STACK_SIZE {
                return Err(Error::Config(format!(
                    "stack_size must be at least {MIN_STACK_SIZE} bytes, got {size}"
                )));
            }
        }
        let task = new_task(sched, f);
        // Made first, so that a failed spawn releases its reference too.
        let mut handle = JoinHandle {
            task: task.cast(),
            id: 0,
            _result: PhantomData,
        };
        let gref = sched
            .spawn(task_entry(task), self.stack_size, false)
            .map_err(|e| Error::Resource(e.to_string()))?;
        handle.id = gref.id();
        Ok(handle)
    }
}

/// Spawns `f` as a new goroutine of the current runtime (Go's `go f()`).
///
/// # Panics
/// Outside a goroutine, or when no stack memory can be had.
pub fn go<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    match GoBuilder::new().spawn(f) {
        Ok(h) => h,
        Err(e) => panic!("gort::go: {e}"),
    }
}

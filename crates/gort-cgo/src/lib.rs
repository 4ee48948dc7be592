//! Calls into C that never stall other goroutines, and callbacks from C on
//! any thread, with Go's cgo semantics (golang/go#62102, #21827, #68285).
//!
//! - [`call`]: runs a function that calls C on the M's system stack (C
//!   gets the thread's full stack), in syscall state: if C blocks, sysmon
//!   hands the goroutine's P to another thread within ~50 µs, so other
//!   goroutines keep running. The goroutine is not locked to its thread.
//! - [`callback`]: at the top of every `extern "C"` function that C calls.
//!   It works on every thread:
//!   - inside a [`call`] (C -> Rust -> C -> Rust, any depth): the body
//!     runs as the goroutine that called into C, on its stack;
//!   - on a thread the runtime did not create (a C library's thread, a C
//!     program's main thread): the thread is bound to an extra M of the
//!     *callback runtime* (see [`set_callback_runtime`]), which stays bound
//!     until the thread exits, and the body runs as a goroutine locked to
//!     that thread;
//!   - before any runtime exists: the default callback runtime starts (as
//!     Go's c-archive does).
//!
//!   Inside a callback the goroutine can park (channels, sleep, join),
//!   spawn, and call into C again.
//!
//! Panics: a panic in a callback body skips the C frames and continues in
//! the goroutine (or plain thread) that made the [`call`], right after it,
//! where `recover` or a destructor sees it. With no Rust caller above the C
//! code (a C thread, a C program's main thread) the process aborts with a
//! message naming the callback and the panic.
//!
//! See docs/cgo.md for the three paths, the seed ordering rules and costs.
//!
//! ```
//! // A C function that calls back (here written in Rust as extern "C").
//! extern "C" fn c_library(cb: extern "C" fn(i32) -> i32, x: i32) -> i32 {
//!     cb(x) + 1
//! }
//! extern "C" fn double(x: i32) -> i32 {
//!     // SAFETY: the top of an extern "C" function that holds nothing else.
//!     unsafe { gort_cgo::callback(|| x * 2) }
//! }
//! let r = gort_sched::run(|| {
//!     // SAFETY: the closure only calls the C function.
//!     unsafe { gort_cgo::call(|| c_library(double, 20)) }
//! });
//! assert_eq!(r.unwrap(), 41);
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

use std::cell::RefCell;
use std::sync::{mpsc, Mutex};

use gort_sched::cgocall::{fatal, BoundM, CallbackSite, RuntimeRef};

/// Runs `f`, which calls into C, the way Go's cgo calls C: on the M's
/// system stack, in syscall state, with the M marked as in C (golang/go#21827:
/// in-C is set after entering syscall state and cleared before leaving
/// it). While `f` runs, the goroutine's P may be handed to another thread
/// (after ~20-50 µs, and only when other goroutines need it), and the
/// goroutine cannot be switched away from its thread. No OS-thread lock is
/// taken. On return the goroutine takes its P back (one CAS) or waits for
/// one.
///
/// Callbacks that `f`'s C code makes run as this goroutine (see
/// [`callback`]); a panic in one continues here, after the C frames are
/// skipped, and is raised again from this call.
///
/// From a plain thread, `f` runs on the current stack (a panic in a
/// callback still comes back here).
///
/// `f` must not park, yield or spawn (it runs without a P): doing so is a
/// fatal error ("goroutine switch while its M is in C").
///
/// # Safety
///
/// While C code that may call back runs, no Rust frame inside `f` may hold
/// a value with a destructor: a panic in a callback abandons those frames
/// without running anything in them (as it abandons the C frames). In
/// practice `f` calls the C function with plain arguments and returns its
/// result, which is all the C call needs.
#[inline]
pub unsafe fn call<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: forwarded from this function's contract.
    unsafe { gort_sched::cgocall::call(f) }
}

/// [`call`], returning a panic in `f` or in a callback that its C code
/// makes as `Err` instead of raising it again here: the panic unwinds once
/// (in the callback body) instead of twice, which makes a recovered panic
/// across C frames about twice as fast as `recover(|| call(f))`.
///
/// ```
/// # extern "C" fn c_library(cb: extern "C" fn()) { cb() }
/// extern "C" fn fails() {
///     // SAFETY: the top of an extern "C" function that holds nothing.
///     unsafe { gort_cgo::callback(|| panic!("callback failed")) }
/// }
/// gort_sched::run(|| {
///     // SAFETY: the closure only calls the C function.
///     let r = unsafe { gort_cgo::try_call(|| c_library(fails)) };
///     assert_eq!(r.unwrap_err().message(), Some("callback failed"));
/// })
/// .unwrap();
/// ```
///
/// # Safety
/// As [`call`].
#[inline]
pub unsafe fn try_call<R>(f: impl FnOnce() -> R) -> Result<R, gort_unwind::Panic> {
    // A quiet scope, as `recover`: the panic is handed to the caller, so
    // the panic hook does not print it. Nothing unwinds through this catch
    // (the panic comes back as a value), so it costs nothing.
    // SAFETY: forwarded from this function's contract.
    gort_unwind::catch(true, || unsafe { gort_sched::cgocall::try_call(f) }).and_then(|r| r)
}

/// Runs the body of a callback from C, `f`, as a goroutine: call it at the
/// top of every `extern "C"` function that C calls, with the function's
/// whole body inside `f`.
///
/// - Inside a [`call`] on this thread: `f` runs as the calling goroutine,
///   on its stack below the call, locked to this thread for its duration
///   (golang/go#62102); it gets a P first, which may mean waiting for one.
/// - On any other thread: the thread is bound to an extra M of the
///   callback runtime (once; the binding lasts until the thread exits) and
///   `f` runs as a goroutine locked to it. The system-stack bounds are
///   re-probed only when the cached ones do not contain the stack pointer,
///   and restored after (golang/go#68285).
/// - Called from Rust, not from C (a goroutine that is not in [`call`]),
///   `f` just runs.
///
/// A panic in `f` skips the C frames to the nearest [`call`] on this
/// thread and continues there; with none, the process aborts with
/// `fatal error: gort: panic in a callback from C with no Rust caller to
/// unwind to`, naming the callback and the panic.
///
/// # Safety
///
/// The calling `extern "C"` function must hold nothing with a destructor
/// outside `f`: if `f` panics, its frame is abandoned along with the C
/// frames. (Everything inside `f` is unwound normally.)
pub unsafe fn callback<R>(f: impl FnOnce() -> R) -> R {
    match gort_sched::cgocall::callback_site() {
        CallbackSite::Nested => {
            let saved = update_system_stack_bounds();
            // SAFETY: forwarded; the site is Nested. (A panic in `f` does
            // not come back here: the outer callback's bounds are put back
            // by the outer callback itself when it returns.)
            let r = unsafe { gort_sched::cgocall::callback_nested(f) };
            restore_system_stack_bounds(saved);
            r
        }
        CallbackSite::Inline => f(),
        // SAFETY: forwarded.
        CallbackSite::Foreign => unsafe { foreign_callback(f) },
    }
}

/// golang/go#68285, at a callback's entry on the system stack: this thread's
/// stack bounds for the callback are the cached ones when they are
/// accurate and contain SP (no probe: Go's fix that took main-thread
/// callbacks from 96 us to 0.1 us), else re-probed around SP, an estimate
/// when the probe fails or does not contain SP. Returns what to restore.
#[inline]
fn update_system_stack_bounds() -> gort_stack::SavedBounds {
    let saved = gort_stack::save_thread_bounds();
    let _ = gort_stack::thread_bounds_at(gort_arch::current_sp());
    saved
}

/// At a callback's return: the bounds of the callback outside this one
/// come back (a nested callback may have run on another stack). With none
/// outside, the cache keeps what this callback found, for the next one.
#[inline]
fn restore_system_stack_bounds(saved: gort_stack::SavedBounds) {
    if !saved.is_empty() {
        gort_stack::restore_thread_bounds(saved);
    }
}

thread_local! {
    /// This thread's extra M, when the runtime did not create the thread.
    /// Its destructor runs at thread exit and gives the M back to its
    /// runtime's pool (Go uses a pthread key destructor the same way).
    static BINDING: Binding = const { Binding(RefCell::new(None)) };
}

/// The thread's binding; its destructor (thread exit) clears the fast
/// path before the M goes back to the pool.
struct Binding(RefCell<Option<BoundM>>);

impl Drop for Binding {
    fn drop(&mut self) {
        BOUND.with(|p| p.set(std::ptr::null()));
    }
}

/// The runtime that serves callbacks from threads it did not create.
static CALLBACK_RUNTIME: Mutex<Option<RuntimeRef>> = Mutex::new(None);

/// Makes the runtime of the calling goroutine the one that serves
/// callbacks from C threads it did not create (and from C programs' main
/// threads), instead of the default callback runtime that would otherwise
/// start on the first such callback. Threads already bound to another
/// runtime stay bound to it while that runtime runs.
///
/// Goroutines waiting for such callbacks are not reported as deadlocked
/// under default settings while the C threads that will call are alive
/// (they are threads outside the runtime); a runtime built with
/// `external_wakers(false)` would report them.
///
/// # Panics
/// Outside a goroutine.
pub fn set_callback_runtime() {
    let rt =
        RuntimeRef::current().expect("gort::cgo::set_callback_runtime called outside a goroutine");
    *CALLBACK_RUNTIME.lock().unwrap_or_else(|e| e.into_inner()) = Some(rt);
}

/// The callback runtime: the one set by [`set_callback_runtime`] while it
/// runs, else the default one, started on first use on its own thread with
/// default settings (procs from `GORT_PROCS` or the core count), never
/// reported as deadlocked (it waits for callbacks).
fn callback_runtime() -> RuntimeRef {
    let mut slot = CALLBACK_RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = slot.as_ref().filter(|rt| !rt.is_finished()) {
        return rt.clone();
    }
    let rt = start_default_runtime();
    *slot = Some(rt.clone());
    rt
}

fn start_default_runtime() -> RuntimeRef {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("gort-callbacks".into())
        .spawn(move || {
            let built = gort_sched::Runtime::builder().external_wakers(true).build();
            let rt = match built {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let r = rt.run(move || {
                let _ = tx.send(Ok(RuntimeRef::current().expect("in a goroutine")));
                // Serve callbacks for the life of the process.
                loop {
                    gort_sched::park::park(
                        gort_sched::park::WaitReason::Other("serving callbacks from C"),
                        |_| true,
                    );
                }
            });
            if let Err(e) = r {
                fatal(&format!("the default callback runtime failed: {e}"));
            }
        });
    if let Err(e) = spawned {
        fatal(&format!("cannot start the default callback runtime: {e}"));
    }
    match rx.recv() {
        Ok(Ok(rt)) => rt,
        Ok(Err(e)) => fatal(&format!("cannot build the default callback runtime: {e}")),
        Err(_) => fatal("the default callback runtime did not start"),
    }
}

thread_local! {
    /// Fast path to this thread's binding (a const thread-local without a
    /// destructor: one load): null until the first callback binds.
    static BOUND: std::cell::Cell<*const BoundM> = const { std::cell::Cell::new(std::ptr::null()) };
}

/// The extra M bound to this thread, binding one first if needed (or if
/// the runtime it was bound to has ended).
#[inline]
fn bound_m() -> *const BoundM {
    let m = BOUND.with(|b| b.get());
    // SAFETY: a non-null BOUND points into this thread's BINDING slot,
    // which holds the BoundM until the thread exits (it is cleared first).
    if !m.is_null() && !unsafe { (*m).is_finished() } {
        return m;
    }
    bind_slow()
}

#[cold]
#[inline(never)]
fn bind_slow() -> *const BoundM {
    let bound = BINDING.try_with(|b| {
        let mut b = b.0.borrow_mut();
        BOUND.with(|p| p.set(std::ptr::null()));
        // Drop a stale binding first: its M goes back to its pool.
        *b = None;
        let rt = callback_runtime();
        match rt.bind_thread() {
            Ok(m) => *b = Some(m),
            Err(e) => fatal(&format!(
                "cannot bind this thread for callbacks from C: {e}"
            )),
        }
        let m = b.as_ref().expect("bound above") as *const BoundM;
        BOUND.with(|p| p.set(m));
        m
    });
    bound.unwrap_or_else(|_| {
        fatal(
            "a callback from C on a thread that is exiting (after its thread-local \
             destructors ran): the thread can no longer run goroutines",
        )
    })
}

/// A callback on a thread the runtime did not create (or a plain Rust
/// thread): Go's `needm` (once per thread here) and `cgocallbackg`.
///
/// # Safety
/// As [`callback`].
unsafe fn foreign_callback<R, F: FnOnce() -> R>(f: F) -> R {
    let saved = update_system_stack_bounds();
    let m = bound_m();
    // SAFETY: the binding stays in this thread's slot until the thread
    // exits; nothing replaces it while a callback of it runs (a nested
    // callback takes the Nested path, not this one).
    let r = unsafe { (*m).callback(f) };
    restore_system_stack_bounds(saved);
    match r {
        Ok(v) => v,
        Err(p) => {
            if gort_unwind::has_resume_point() {
                // A plain Rust thread called C through `call`: continue
                // there. SAFETY: this frame holds nothing with a
                // destructor (the panic moves into the call), and the
                // caller's frame holds nothing (our contract).
                unsafe { gort_unwind::unwind_to_resume_point(p) }
            }
            fatal(&format!(
                "panic in a callback from C with no Rust caller to unwind to \
                 (callback {}, on a thread the runtime did not create): {p}",
                callback_name::<F>()
            ))
        }
    }
}

/// The callback's name for messages: the closure's type names the
/// function it is written in (`my_lib::on_event::{{closure}}`).
fn callback_name<F>() -> &'static str {
    let name = std::any::type_name::<F>();
    name.strip_suffix("::{{closure}}").unwrap_or(name)
}

/// Calls into C and callbacks made so far, and Ms in C now, in the
/// runtime of the calling goroutine (None on a plain thread).
pub fn counts() -> Option<Counts> {
    RuntimeRef::current().map(|rt| {
        let (calls, callbacks, in_c, extra_ms) = rt.cgo_counts();
        Counts {
            calls,
            callbacks,
            in_c,
            extra_ms,
        }
    })
}

/// cgo counters of one runtime (see [`counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls into C made with [`call`].
    pub calls: u64,
    /// Callbacks from C run.
    pub callbacks: u64,
    /// Threads in a C call right now.
    pub in_c: usize,
    /// Extra Ms made for threads the runtime did not create (bound now or
    /// pooled for the next such thread).
    pub extra_ms: usize,
}

// The README's example is compiled and run as a doctest, so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

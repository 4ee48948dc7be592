//! Helpers shared by the integration tests; each test crate uses a subset.
#![allow(dead_code)]

use std::cell::Cell;
use std::ffi::c_void;

use gort_arch::{init, switch, Context};
use gort_stack::{Stack, StackConfig};
use gort_unwind::{callback_boundary, catch, swap_thread_state, Panic, UnwindState};
use gort_unwind_cframes::{gort_c_call, gort_c_call_deep, gort_c_recurse, Marks};

// ---------------------------------------------------------------------------
// Stacks
// ---------------------------------------------------------------------------

/// A guarded 256 KiB stack from gort-stack, for callees and fibers.
pub fn stack() -> Stack {
    Stack::new(StackConfig::new().with_size(256 * 1024)).expect("a 256 KiB test stack")
}

/// Whether `addr` lies in `stack`'s usable memory.
pub fn in_stack(stack: &Stack, addr: usize) -> bool {
    addr >= stack.bottom() as usize && addr < stack.top() as usize
}

// ---------------------------------------------------------------------------
// Destructor counting
// ---------------------------------------------------------------------------

/// Counts its drops in a `Cell` (tests check "exactly once").
pub struct DropCount<'a>(pub &'a Cell<u32>);

impl Drop for DropCount<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

// ---------------------------------------------------------------------------
// Calls into C with a Rust callback
// ---------------------------------------------------------------------------

/// Which C function makes the call.
#[derive(Clone, Copy, Debug)]
pub enum CFrame {
    /// `gort_c_call`: one small C frame.
    Plain,
    /// `gort_c_call_deep`: a C frame with a 40,000-byte array.
    Deep,
    /// `gort_c_recurse(n)`: n nested C frames.
    Recurse(i32),
}

/// The `extern "C"` callback that every test passes to C: runs the
/// `&mut dyn FnMut()` that `arg` points to, at a callback boundary.
unsafe extern "C" fn trampoline(arg: *mut c_void) {
    // SAFETY: `arg` points to the `&mut dyn FnMut()` in `call_c`'s frame,
    // which is suspended below us (in C) and outlives this call. This frame
    // holds only that pointer, so a panic may abandon it: C called us from
    // inside a call_with_resume_point (or the test expects the abort).
    unsafe { callback_boundary(|| (*arg.cast::<&mut dyn FnMut()>())()) }
}

/// Calls C (`frame`), which calls back `body` through [`trampoline`].
///
/// This frame holds only references (no destructors), so it is a plain old
/// frame while C runs, as the frames a resume point skips must be.
#[inline(never)]
pub fn call_c(frame: CFrame, marks: &mut Marks, body: &mut dyn FnMut()) {
    let mut body = body;
    let arg = (&raw mut body).cast::<c_void>();
    // SAFETY: the C functions call `trampoline(arg)` once and return.
    unsafe {
        match frame {
            CFrame::Plain => gort_c_call(trampoline, arg, marks),
            CFrame::Deep => gort_c_call_deep(trampoline, arg, marks),
            CFrame::Recurse(n) => gort_c_recurse(n, trampoline, arg, marks),
        }
    }
}

// ---------------------------------------------------------------------------
// A minimal goroutine: a fiber that swaps gort-unwind's state like the
// scheduler will, with a catch at its entry
// ---------------------------------------------------------------------------

type Body = Box<dyn FnOnce(&Suspender) + Send>;

/// Must hold: boxed (stable address) for as long as the fiber can run;
/// `fiber` holds the suspended fiber while the resumer runs, `caller` the
/// suspended resumer while the fiber runs; `state` holds the fiber's
/// gort-unwind state while it is suspended.
struct Inner {
    fiber: Context,
    caller: Context,
    body: Option<Body>,
    result: Option<Result<(), Panic>>,
    state: UnwindState,
}

/// A goroutine-like fiber on a gort-stack stack.
///
/// Its entry runs the body under `gort_unwind::catch(false, ..)`: a panic
/// that nothing in the body catches is caught there and reported as the
/// fiber's result, never unwinding off the stack's base. `resume` swaps
/// the thread's unwind state with the fiber's, as the scheduler does at
/// every switch, so a fiber may be resumed on another thread.
pub struct Fiber {
    inner: Box<Inner>,
    stack: Stack,
}

// SAFETY: a fiber's stack and state are plain memory; moving a suspended
// fiber to another thread is what goroutines do. Bodies are Send.
unsafe impl Send for Fiber {}

/// Given to the body to suspend the fiber.
pub struct Suspender(*mut Inner);

impl Suspender {
    /// Switches back to the resumer; returns at the next `resume`, possibly
    /// on another thread.
    pub fn suspend(&self) {
        let inner = self.0;
        // SAFETY: the fiber runs, so `caller` holds its suspended resumer.
        unsafe {
            let (caller, _) = switch((*inner).caller.take(), 0);
            (*inner).caller = caller;
        }
    }
}

unsafe extern "C" fn fiber_entry(arg: usize, from: Context, _value: usize) -> ! {
    let inner = arg as *mut Inner;
    // SAFETY: `arg` is the boxed Inner, alive while the fiber can run.
    unsafe {
        (*inner).caller = from;
        let body = (*inner).body.take().expect("fiber body");
        let suspender = Suspender(inner);
        let result = catch(false, move || body(&suspender));
        (*inner).result = Some(result);
        let _ = switch((*inner).caller.take(), 0);
    }
    unreachable!("a finished fiber was resumed");
}

impl Fiber {
    /// A fiber that will run `body` on a fresh 256 KiB stack.
    pub fn new(body: impl FnOnce(&Suspender) + Send + 'static) -> Fiber {
        let stack = stack();
        let mut inner = Box::new(Inner {
            fiber: Context::empty(),
            caller: Context::empty(),
            body: Some(Box::new(body)),
            result: None,
            state: UnwindState::new(),
        });
        let arg = &raw mut *inner as usize;
        // SAFETY: the stack is fresh, owned by the fiber, and outlives it.
        inner.fiber = unsafe { init(stack.top(), fiber_entry, arg) };
        Fiber { inner, stack }
    }

    /// Runs the fiber until it suspends or finishes, on this thread, with
    /// its own unwind state installed meanwhile.
    pub fn resume(&mut self) {
        assert!(self.inner.result.is_none(), "resumed a finished fiber");
        // SAFETY: the fiber's state goes in, ours comes back out when it
        // suspends: the scheduler's pattern.
        let ours = unsafe { swap_thread_state(std::mem::take(&mut self.inner.state)) };
        // SAFETY: the fiber is suspended (not finished): `fiber` holds it.
        let (fiber, _) = unsafe { switch(self.inner.fiber.take(), 0) };
        self.inner.fiber = fiber;
        // SAFETY: as above, the other way round.
        self.inner.state = unsafe { swap_thread_state(ours) };
    }

    /// The body's outcome once it finished: Ok, or the panic caught at the
    /// fiber's entry.
    pub fn take_result(&mut self) -> Option<Result<(), Panic>> {
        self.inner.result.take()
    }

    /// Whether the fiber's saved unwind state holds a resume point.
    pub fn has_resume_point(&self) -> bool {
        self.inner.state.has_resume_point()
    }

    /// The fiber's stack.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }
}

// ---------------------------------------------------------------------------
// Child processes (death tests): gort-stack's helpers, shared by every
// test crate that re-executes itself
// ---------------------------------------------------------------------------

// Each test crate uses a subset.
#[allow(unused_imports)]
pub use gort_testing::{describe, is_child, run_child, scaled, under_qemu};

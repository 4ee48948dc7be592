//! A tour of gort as it stands: stack switching with gort-arch.
//!
//! Run it from the repository root:
//!
//! ```text
//! cargo run --release --example tour
//! ```
//!
//! Goroutines are built on one primitive: saving the registers of the code
//! that runs now, moving the stack pointer to another stack, and restoring
//! the registers saved there. gort-arch provides it for x86_64, aarch64 and
//! x86; this tour uses it directly to run a generator on its own stack, to
//! time a switch round trip, and to call a closure on another stack. The
//! scheduler, channels and the C bridge are built on top of it in later
//! issues.

use std::ptr;
use std::time::Instant;

use gort_arch::{current_sp, init, on_stack, switch, Context, EntryFn};

/// Stack size for the contexts in this tour (only touched pages cost memory).
const STACK_SIZE: usize = 256 * 1024;

/// Round trips to time.
const ROUND_TRIPS: usize = 1_000_000;

fn main() {
    println!("gort tour: stack switching with gort-arch");
    println!(
        "  arch {}, stacks of {} KiB",
        std::env::consts::ARCH,
        STACK_SIZE / 1024
    );

    generator();
    round_trips();
    system_stack_call();

    println!();
    println!(
        "That is the layer the tour shows today. Built beneath it and tested on three \
         targets, not yet behind this facade: the M:N scheduler (gort-sched: go, join, \
         park, syscall, set_procs), channels and select (gort-sync). Next: the facade \
         (gort::run, gort::go) and the C bridge (cgo::call, cgo::callback)."
    );
}

// ---------------------------------------------------------------------------
// 1. A generator on its own stack
// ---------------------------------------------------------------------------

/// A Fibonacci generator: a context that yields the next number each time it
/// is resumed. Its state (two integers) lives in its own stack frame, which
/// stays put while the main thread runs: that is what "stackful" means.
fn generator() {
    section("1. A generator on its own stack");
    let mut fib = Coroutine::new(fibonacci);
    let numbers: Vec<String> = (0..20).map(|_| fib.resume(0).to_string()).collect();
    println!("  first 20 Fibonacci numbers: {}", numbers.join(" "));
    println!(
        "  main runs at sp {:#x}; the generator's stack is {:#x}..{:#x}",
        current_sp(),
        fib.stack.bottom() as usize,
        fib.stack.top() as usize
    );
}

/// The generator's body. `caller` is the suspended context that resumed it:
/// each switch back to it hands over the caller's next suspended context.
unsafe extern "C" fn fibonacci(_arg: usize, mut caller: Context, _first: usize) -> ! {
    let (mut a, mut b) = (0usize, 1usize);
    loop {
        // SAFETY: `caller` is the suspended context that resumed us (the
        // main thread's), not resumed since, on a live stack.
        (caller, _) = unsafe { switch(caller, a) };
        (a, b) = (b, a.wrapping_add(b));
    }
}

// ---------------------------------------------------------------------------
// 2. Round trips
// ---------------------------------------------------------------------------

/// Times main -> context -> main round trips, with a value going each way
/// (the context answers n + 1 to n).
fn round_trips() {
    section("2. Switch round trips");
    let mut echo = Coroutine::new(increment);
    // Warm up caches and branch predictors.
    let mut value = 0;
    for _ in 0..10_000 {
        value = echo.resume(value);
    }
    let start = Instant::now();
    let mut value = 0;
    for _ in 0..ROUND_TRIPS {
        value = echo.resume(std::hint::black_box(value));
    }
    let elapsed = start.elapsed();
    assert_eq!(value, ROUND_TRIPS, "every round trip adds one");
    println!(
        "  {ROUND_TRIPS} round trips in {:.1} ms: {:.1} ns per round trip (two switches){}",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_nanos() as f64 / ROUND_TRIPS as f64,
        if cfg!(debug_assertions) {
            "  [debug build: use --release for real numbers]"
        } else {
            ""
        }
    );
}

/// Answers every value with value + 1.
unsafe extern "C" fn increment(_arg: usize, mut caller: Context, first: usize) -> ! {
    let mut value = first;
    loop {
        // SAFETY: `caller` is the suspended context that resumed us.
        (caller, value) = unsafe { switch(caller, value + 1) };
    }
}

// ---------------------------------------------------------------------------
// 3. Calling a closure on another stack
// ---------------------------------------------------------------------------

/// `on_stack` runs a closure on another stack and comes back with its result,
/// or with its panic as a value: the primitive the scheduler uses to run on a
/// thread's system stack, as Go's systemstack does.
fn system_stack_call() {
    section("3. A closure on another stack");
    let stack = Stack::new(STACK_SIZE);
    let range = stack.bottom() as usize..stack.top() as usize;

    // SAFETY: the stack is ours, aligned, unused, and outlives the call.
    let result = unsafe { on_stack(stack.top(), || (current_sp(), depth(1000))) };
    let (sp, d) = result.expect("the closure does not panic");
    println!(
        "  on_stack ran at sp {sp:#x} (inside {:#x}..{:#x}: {}), recursed {d} frames deep",
        range.start,
        range.end,
        range.contains(&sp)
    );

    // A panic on the other stack comes back as a value; silence the default
    // message for the demonstration.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    // SAFETY: as above.
    let result = unsafe { on_stack(stack.top(), || -> u32 { panic!("boom on the other stack") }) };
    std::panic::set_hook(hook);
    match result {
        Ok(_) => unreachable!("the closure panics"),
        Err(payload) => {
            let msg = payload.downcast_ref::<&str>().copied().unwrap_or("?");
            println!("  a panic inside on_stack came back as a value: {msg:?}");
        }
    }
}

/// Recursion that the optimizer cannot flatten, to use some stack.
#[inline(never)]
fn depth(n: usize) -> usize {
    let pad = std::hint::black_box([0u8; 64]);
    if n == 0 {
        pad[0] as usize
    } else {
        1 + depth(std::hint::black_box(n - 1)) + pad[63] as usize
    }
}

// ---------------------------------------------------------------------------
// Plumbing: stacks and a minimal coroutine
// ---------------------------------------------------------------------------

/// Stack memory from mmap, with a guard page below it so that an overflow
/// faults instead of corrupting memory.
struct Stack {
    base: *mut u8,
    len: usize,
    guard: usize,
}

impl Stack {
    fn new(size: usize) -> Stack {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = size.next_multiple_of(page) + page;
        // SAFETY: a fresh anonymous private mapping; no existing memory is touched.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap of a stack failed");
        // SAFETY: the first page belongs to the mapping just made.
        let rc = unsafe { libc::mprotect(base, page, libc::PROT_NONE) };
        assert_eq!(rc, 0, "mprotect of the guard page failed");
        Stack {
            base: base.cast(),
            len,
            guard: page,
        }
    }

    /// Lowest usable address (just above the guard page).
    fn bottom(&self) -> *mut u8 {
        self.base.wrapping_add(self.guard)
    }

    /// One past the highest usable address: where the stack starts, since
    /// stacks grow down. Page-aligned, hence 16-byte aligned.
    fn top(&self) -> *mut u8 {
        self.base.wrapping_add(self.len)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; nothing runs on it now.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// A context on its own stack that the caller resumes and that switches
/// back. `switch` hands each side the other's suspended context in a
/// register: the coroutine keeps its caller in a local variable, the caller
/// keeps the coroutine here. Nothing is stored in shared memory.
struct Coroutine {
    /// The suspended coroutine (empty only while it runs).
    context: Context,
    stack: Stack,
}

impl Coroutine {
    /// A coroutine that runs `body(0, caller, first_value)` on first resume.
    /// `body` must only ever leave by switching back to its caller.
    fn new(body: EntryFn) -> Coroutine {
        let stack = Stack::new(STACK_SIZE);
        // SAFETY: the stack is fresh, page-aligned, and lives as long as the
        // context (both are dropped with the coroutine).
        let context = unsafe { init(stack.top(), body, 0) };
        Coroutine { context, stack }
    }

    /// Runs the coroutine until it switches back, sending it `value`;
    /// returns the value it sent back.
    fn resume(&mut self, value: usize) -> usize {
        // SAFETY: `context` holds the coroutine as `init` or its last switch
        // back left it, not resumed since, and its stack is alive. Our own
        // stack (the main thread's) outlives the coroutine.
        let (context, answer) = unsafe { switch(self.context.take(), value) };
        self.context = context;
        answer
    }
}

// Dropping a Coroutine abandons it, suspended inside `switch`: its frames
// hold only integers, so there is nothing to unwind, and its stack is
// unmapped with it.

/// Prints a section header.
fn section(title: &str) {
    println!();
    println!("{title}");
    println!("{}", "-".repeat(title.len()));
}

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
        "That is what exists today. The M:N scheduler (gort::go, gort::run), channels and \
         select, and the C bridge (cgo::call, cgo::callback) arrive in later issues."
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

/// The generator's body. `link` is the coroutine's `Link`.
unsafe extern "C" fn fibonacci(link: usize, from: Context, _first: usize) -> ! {
    let link = link as *mut Link;
    // SAFETY: `link` is the live Link of the coroutine that resumed us.
    unsafe { (*link).caller = from };
    let (mut a, mut b) = (0usize, 1usize);
    loop {
        // SAFETY: `link` is the live Link of the coroutine that resumed us.
        unsafe { yield_to_caller(link, a) };
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
unsafe extern "C" fn increment(link: usize, from: Context, first: usize) -> ! {
    let link = link as *mut Link;
    // SAFETY: `link` is the live Link of the coroutine that resumed us.
    unsafe { (*link).caller = from };
    let mut value = first;
    loop {
        // SAFETY: `link` is the live Link of the coroutine that resumed us.
        value = unsafe { yield_to_caller(link, value + 1) };
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

/// The two suspended contexts of a coroutine: the caller's while the
/// coroutine runs, the coroutine's while the caller runs. Heap-allocated so that its
/// address stays fixed while both sides hold a pointer to it.
struct Link {
    caller: Context,
    coroutine: Context,
}

/// A context on its own stack that the caller resumes and that yields back.
struct Coroutine {
    link: *mut Link,
    stack: Stack,
}

impl Coroutine {
    /// A coroutine that runs `body(link, from, first_value)` on first resume.
    /// `body` must store `from` (the suspended caller) in the link's
    /// `caller` and only ever leave through `yield_to_caller`.
    fn new(body: EntryFn) -> Coroutine {
        let stack = Stack::new(STACK_SIZE);
        let link = Box::into_raw(Box::new(Link {
            caller: Context::empty(),
            coroutine: Context::empty(),
        }));
        // SAFETY: the stack is fresh and lives as long as the coroutine;
        // `link` stays valid until the coroutine is dropped.
        let ctx = unsafe { init(stack.top(), body, link as usize) };
        // SAFETY: `link` was just allocated and nothing else uses it yet.
        unsafe { (*link).coroutine = ctx };
        Coroutine { link, stack }
    }

    /// Runs the coroutine until it yields, sending it `value`; returns what
    /// it yielded.
    fn resume(&mut self, value: usize) -> usize {
        // SAFETY: `link` is valid (freed only in Drop); `coroutine` holds the
        // context made by `init` or handed back by the coroutine's last
        // yield, and its stack is alive. The switch hands our own suspended
        // context to the coroutine, which keeps it in `caller`.
        unsafe {
            let (coroutine, yielded) = switch((*self.link).coroutine.take(), value);
            (*self.link).coroutine = coroutine;
            yielded
        }
    }
}

impl Drop for Coroutine {
    fn drop(&mut self) {
        // The coroutine is suspended in `yield_to_caller` and is never
        // resumed; its frames hold only integers, so there is nothing to
        // unwind, and the stack is unmapped with it.
        // SAFETY: `link` came from Box::into_raw in `new` and is freed once.
        drop(unsafe { Box::from_raw(self.link) });
    }
}

/// Called on the coroutine's stack: resumes the caller with `value` and
/// returns the value of the next `resume`, keeping the resumer's suspended
/// context in `caller` for the next yield.
///
/// # Safety
///
/// `link` must be the `Link` of the coroutine running this code, whose
/// `caller` holds the context that resumed it.
unsafe fn yield_to_caller(link: *mut Link, value: usize) -> usize {
    // SAFETY: per this function's contract.
    unsafe {
        let (caller, next) = switch((*link).caller.take(), value);
        (*link).caller = caller;
        next
    }
}

/// Prints a section header.
fn section(title: &str) {
    println!();
    println!("{title}");
    println!("{}", "-".repeat(title.len()));
}

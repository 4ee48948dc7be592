//! A minimal coroutine built on gort-arch alone: a generator that yields
//! values to its caller until its body returns, on a stack of its own.
//!
//! ```text
//! cargo run -p gort-arch --example coroutine
//! ```
//!
//! The whole protocol is two calls to `switch`: `next()` switches to the
//! coroutine, `Yielder::give` switches back. Each side receives the other's
//! suspended `Context` and keeps it until its next switch, so every context
//! is resumed exactly once. The stack here is a plain `Vec` with no guard
//! page; gort-stack's `Stack` adds one (and an overflow report).

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use gort_arch::{init, switch, Context};

/// What the body yields, and whether it has finished; shared through a
/// pointer because both sides run on one thread, one at a time.
struct Shared<T> {
    out: Cell<Option<T>>,
    done: Cell<bool>,
}

/// The coroutine's handle on its caller.
struct Yielder<T> {
    caller: Context,
    shared: *const Shared<T>,
}

impl<T> Yielder<T> {
    /// Hands `value` to the caller's `next()` and suspends until the caller
    /// asks for the next one.
    fn give(&mut self, value: T) {
        // SAFETY: `shared` lives in the Generator, which outlives every
        // switch to this coroutine.
        unsafe { (*self.shared).out.set(Some(value)) };
        // SAFETY: `caller` is the context suspended in `next()`, on a live
        // stack; it hands us back a fresh caller context when it resumes us.
        let (caller, _) = unsafe { switch(self.caller.take(), 0) };
        self.caller = caller;
    }
}

/// A generator: an iterator whose items come from a body that runs on its
/// own stack and calls `Yielder::give`.
struct Generator<T> {
    /// The suspended coroutine (empty once finished).
    co: Context,
    shared: Box<Shared<T>>,
    /// Declared last: dropped after everything that points into it.
    _stack: Vec<u128>,
}

struct Start<T, F> {
    body: F,
    shared: *const Shared<T>,
}

/// The coroutine's first frame: runs the body, then switches back for good.
unsafe extern "C" fn entry<T, F: FnOnce(&mut Yielder<T>)>(
    arg: usize,
    caller: Context,
    _value: usize,
) -> ! {
    // SAFETY: `arg` is the Box<Start> that `Generator::new` leaked for us,
    // taken back exactly once, here.
    let start = unsafe { Box::from_raw(arg as *mut Start<T, F>) };
    let Start { body, shared } = *start;
    let mut y = Yielder { caller, shared };
    // A panic must not unwind off the coroutine's stack (there is no frame
    // below this one): catch it and stop the process with a message.
    if catch_unwind(AssertUnwindSafe(|| body(&mut y))).is_err() {
        eprintln!("fatal: the generator's body panicked");
        std::process::abort();
    }
    // SAFETY: as in `give`; the generator never switches to us again.
    unsafe {
        (*y.shared).done.set(true);
        switch(y.caller.take(), 0);
    }
    unreachable!("a finished generator was resumed");
}

impl<T> Generator<T> {
    fn new<F: FnOnce(&mut Yielder<T>) + 'static>(body: F) -> Generator<T> {
        let mut stack = vec![0u128; 4096]; // 64 KiB, 16-byte aligned
        let shared = Box::new(Shared {
            out: Cell::new(None),
            done: Cell::new(false),
        });
        let start = Box::new(Start {
            body,
            shared: &*shared,
        });
        let top = stack.as_mut_ptr_range().end.cast::<u8>();
        // SAFETY: the stack lives as long as the generator, which is the
        // only one to switch to this context; `entry` never returns.
        let co = unsafe { init(top, entry::<T, F>, Box::into_raw(start) as usize) };
        Generator {
            co,
            shared,
            _stack: stack,
        }
    }
}

impl<T> Iterator for Generator<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.shared.done.get() {
            return None;
        }
        // SAFETY: `co` is the coroutine suspended by `init` or by `give`,
        // on our stack, which is alive.
        let (co, _) = unsafe { switch(self.co.take(), 0) };
        self.co = co;
        self.shared.out.take()
    }
}

// Dropping an unfinished generator abandons its stack without running the
// body's destructors (nothing unwinds there); gort's goroutines unwind
// theirs with gort-unwind. These examples always run their bodies to the end.

fn main() {
    let fib = Generator::new(|y: &mut Yielder<u64>| {
        let (mut a, mut b) = (0u64, 1u64);
        for _ in 0..12 {
            y.give(a);
            (a, b) = (b, a + b);
        }
    });
    let got: Vec<u64> = fib.collect();
    println!("fibonacci from a coroutine: {got:?}");
    assert_eq!(got, [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89]);

    // Two generators interleaved on one thread: each keeps its own stack
    // (its loop counter and locals) between switches.
    let mut words = Generator::new(|y: &mut Yielder<String>| {
        for w in ["one", "two", "three"] {
            y.give(w.to_uppercase());
        }
    });
    let mut squares = Generator::new(|y: &mut Yielder<u32>| (1..=3).for_each(|i| y.give(i * i)));
    let mut pairs = Vec::new();
    loop {
        match (words.next(), squares.next()) {
            (Some(w), Some(s)) => pairs.push((w, s)),
            (None, None) => break,
            _ => panic!("the generators yield the same number of items"),
        }
    }
    println!("interleaved: {pairs:?}");
    assert_eq!(
        pairs,
        [
            ("ONE".to_string(), 1),
            ("TWO".to_string(), 4),
            ("THREE".to_string(), 9)
        ]
    );
    println!("ok");
}

//! gort-stack alone, on plain threads: `remaining_stack()` to decide how
//! deep a recursion may go, and a guarded stack to run code on, where an
//! overflow is reported by name instead of corrupting memory.
//!
//! ```text
//! cargo run -p gort-stack --example guarded            # the tour
//! cargo run -p gort-stack --example guarded overflow   # the overflow report (aborts)
//! ```

use gort_stack::{
    clear_running_stack, overflow, remaining_stack, set_running_stack, Stack, StackConfig,
};

/// Recurses while more than `reserve` bytes of stack are left; returns the
/// depth it reached. Each level keeps a 1 KiB buffer alive.
#[inline(never)]
fn descend(depth: usize, reserve: usize) -> usize {
    let left = remaining_stack().expect("accurate bounds on this stack");
    if left < reserve {
        return depth;
    }
    let buf = std::hint::black_box([depth as u8; 1024]);
    let d = descend(depth + 1, reserve);
    std::hint::black_box(&buf);
    d
}

/// Recurses without limit: an overflow, on purpose.
#[inline(never)]
#[allow(unconditional_recursion)]
fn bottomless(n: u64) -> u64 {
    let buf = std::hint::black_box([n; 128]);
    bottomless(n + 1) + buf[0]
}

fn main() {
    // 1. On a plain thread: remaining_stack() probes the thread's bounds
    //    once (pthread_getattr_np) and caches them.
    let depth = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(|| {
            let at_start = remaining_stack().expect("a std thread has accurate bounds");
            println!("plain thread: {at_start} bytes of stack left at its start");
            assert!(at_start > 400 * 1024 && at_start <= 512 * 1024);
            descend(0, 64 * 1024)
        })
        .unwrap()
        .join()
        .unwrap();
    println!("recursed {depth} levels, stopping with 64 KiB left");
    assert!(depth > 100, "about 440 KiB of 1 KiB frames: {depth}");

    // 2. A guarded stack: 128 KiB usable above a 64 KiB guard region.
    let stack = Stack::new(StackConfig::new().with_size(128 * 1024)).expect("stack");
    println!(
        "stack [{:p}, {:p}): {} bytes above a {} byte guard ({:?})",
        stack.bottom(),
        stack.top(),
        stack.size(),
        stack.guard_size(),
        stack.guard_strategy()
    );
    // The overflow handler: a fault in a guard region names the stack and
    // aborts; any other fault goes to the handler installed before it.
    overflow::install().expect("overflow handler");

    let overflow_wanted = std::env::args().nth(1).as_deref() == Some("overflow");
    // SAFETY: the stack is 16-byte aligned at its top, used by nothing else,
    // and outlives the call.
    let depth = unsafe {
        gort_arch::on_stack(stack.top(), || {
            // Name the running stack so that remaining_stack() and the
            // overflow report know its bounds (the scheduler does this on
            // every switch; 7 stands for a goroutine id).
            set_running_stack(7, &stack);
            let left = remaining_stack().expect("the running stack is named");
            println!("on the guarded stack: {left} bytes left");
            assert!(left <= 128 * 1024 && left > 100 * 1024);
            if overflow_wanted {
                // Prints "fatal: goroutine stack overflow (goroutine 7, ...)"
                // and aborts.
                bottomless(0);
            }
            let d = descend(0, 16 * 1024);
            clear_running_stack();
            d
        })
    }
    .expect("no panic on the stack");
    println!("recursed {depth} levels on the guarded stack, stopping with 16 KiB left");
    assert!(depth > 50, "{depth}");
    println!("ok");
}

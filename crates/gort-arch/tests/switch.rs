//! Behaviour of init/switch/on_stack/on_stack_resumable on the host target and, through
//! `cargo xtask test --target`, on aarch64 and i686 under qemu-user.

mod common;

use common::{sp_at_call, under_qemu, Fiber, TestStack};
use gort_arch::{current_sp, init, on_stack, switch, Context, STACK_ALIGN};
use std::backtrace::Backtrace;
use std::hint::black_box;
use std::panic::{catch_unwind, AssertUnwindSafe};

const STACK: usize = 256 * 1024;

#[test]
fn million_round_trips_pass_values_both_ways() {
    let rounds: usize = 1_000_000;
    let mut fiber = Fiber::new(STACK, |link, mut v| {
        // Each value sent in is answered with a function of it, so a value
        // lost or delivered twice in either direction is caught.
        loop {
            if v == usize::MAX {
                return 7;
            }
            v = link.suspend(v.wrapping_mul(3) ^ 0x5a);
        }
    });
    let mut sum = 0usize;
    for i in 0..rounds {
        let got = fiber.resume(i);
        assert_eq!(got, i.wrapping_mul(3) ^ 0x5a, "round trip {i}");
        sum = sum.wrapping_add(got);
    }
    assert_eq!(fiber.resume(usize::MAX), 7);
    assert!(fiber.is_done());
    assert_ne!(sum, 0);
}

#[test]
fn entry_receives_arg_the_switcher_and_the_first_value() {
    unsafe extern "C" fn entry(arg: usize, from: Context, value: usize) -> ! {
        // Switching to `from` must land back in the test, right after its
        // switch, with our value.
        // SAFETY: `from` is the test's suspended context.
        let (back, second) = unsafe { switch(from, arg + value) };
        // The test resumed us once more: answer with what it sent.
        // SAFETY: as above.
        unsafe { switch(back, second * 2) };
        unreachable!("resumed a third time")
    }

    let stack = TestStack::new(64 * 1024);
    // SAFETY: the stack outlives the context, which is abandoned suspended
    // (owning nothing) at the end.
    unsafe {
        let ctx = init(stack.top(), entry, 0xabc0);
        let (ctx, got) = switch(ctx, 0x12);
        assert_eq!(got, 0xabc0 + 0x12);
        assert!(
            stack.contains(ctx.stack_pointer()),
            "handed back the context's own stack"
        );
        let (ctx, got) = switch(ctx, 21);
        assert_eq!(got, 42);
        assert!(stack.contains(ctx.stack_pointer()));
    }
}

#[test]
fn stack_pointer_is_aligned_at_every_entry_point() {
    assert_eq!(sp_at_call() % STACK_ALIGN, 0, "host stack");
    let mut fiber = Fiber::new(STACK, |link, _| {
        let first = sp_at_call();
        let on_fiber = common::page_size(); // keep the closure non-trivial
        let after_resume = {
            link.suspend(first);
            sp_at_call()
        };
        link.suspend(after_resume);
        on_fiber
    });
    let at_entry = fiber.resume(0);
    assert!(
        fiber.stack().contains(at_entry),
        "entry ran on the fiber's stack"
    );
    assert_eq!(at_entry % STACK_ALIGN, 0, "sp at entry {at_entry:#x}");
    let after_resume = fiber.resume(0);
    assert_eq!(
        after_resume % STACK_ALIGN,
        0,
        "sp after resume {after_resume:#x}"
    );
    fiber.resume(0);
    assert!(fiber.is_done());

    let stack = TestStack::new(64 * 1024);
    // SAFETY: the stack is unused and 16-aligned at its top.
    let inside = unsafe { on_stack(stack.top(), sp_at_call) }.unwrap();
    assert!(stack.contains(inside));
    assert_eq!(inside % STACK_ALIGN, 0, "sp inside on_stack {inside:#x}");
}

#[test]
fn panic_is_caught_on_the_switched_to_stack() {
    let mut fiber = Fiber::new(STACK, |link, _| {
        let sp = current_sp();
        let caught = catch_unwind(|| {
            let v = black_box(41);
            if v == 41 {
                panic!("boom on the fiber");
            }
            v
        });
        let msg = caught.unwrap_err();
        let ok = msg.downcast_ref::<&str>() == Some(&"boom on the fiber");
        // The fiber keeps running normally after the caught panic.
        let next = link.suspend(ok as usize);
        next + sp % 2
    });
    assert_eq!(fiber.resume(0), 1, "the payload came back intact");
    let last = fiber.resume(10);
    assert!(last == 10 || last == 11);
    assert!(fiber.is_done());
}

#[inline(never)]
fn capture_backtrace_in_fiber_marker() -> String {
    format!("{}", Backtrace::force_capture())
}

#[test]
fn backtrace_inside_a_context_ends_at_its_entry() {
    let mut fiber = Fiber::new(STACK, |link, _| {
        let text = capture_backtrace_in_fiber_marker();
        let ptr = Box::into_raw(Box::new(text)) as usize;
        link.suspend(ptr);
        0
    });
    let ptr = fiber.resume(0);
    // SAFETY: the fiber passed a pointer from Box::into_raw.
    let text = *unsafe { Box::from_raw(ptr as *mut String) };
    fiber.resume(0);
    println!("{text}");
    let frames: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .collect();
    assert!(
        text.contains("capture_backtrace_in_fiber_marker"),
        "backtrace names the capturing function"
    );
    assert!(
        text.contains("fiber_entry"),
        "backtrace reaches the entry function"
    );
    // The walk stops at the start trampoline: nothing of the test thread's
    // own stack (test harness frames) appears, and there are no garbage frames.
    assert!(
        !text.contains("test::run_test") && !text.contains("std::rt::lang_start"),
        "backtrace leaked past the context's bottom frame"
    );
    assert!(
        frames.len() < 40,
        "{} frames: the walk did not stop",
        frames.len()
    );
    let last = frames.last().expect("no frames");
    assert!(
        last.contains("__gort_arch_v0_start") || last.contains("fiber_entry"),
        "last frame is the entry or its trampoline: {last}"
    );
}

/// Recurses with a 512-byte frame until the stack pointer drops below
/// `limit`; returns (deepest depth, checksum of a byte every frame kept).
fn recurse_until(limit: usize, depth: usize, min_sp: &mut usize) -> (usize, u64) {
    let mut buf = [0u8; 512];
    buf[depth % 512] = depth as u8;
    let buf = black_box(buf);
    let sp = current_sp();
    *min_sp = (*min_sp).min(sp);
    let (deepest, below) = if sp > limit {
        recurse_until(limit, depth + 1, min_sp)
    } else {
        (depth, 0)
    };
    (deepest, below + u64::from(buf[depth % 512]))
}

fn expected_checksum(deepest: usize) -> u64 {
    (0..=deepest).map(|d| u64::from(d as u8)).sum()
}

#[test]
fn deep_recursion_close_to_the_end_of_the_stack() {
    let mut fiber = Fiber::new(STACK, |link, bottom| {
        let mut min_sp = usize::MAX;
        // Leave 8 KiB above the guard page: enough for one more frame and
        // the formatting machinery of a failing assert.
        let (deepest, sum) = recurse_until(bottom + 8 * 1024, 0, &mut min_sp);
        link.suspend(min_sp);
        link.suspend(deepest);
        sum as usize
    });
    let bottom = fiber.stack().bottom();
    let min_sp = fiber.resume(bottom);
    assert!(min_sp > bottom && min_sp - bottom <= 8 * 1024 + 1024);
    let used = fiber.stack().top() as usize - min_sp;
    assert!(used > STACK - 10 * 1024, "used only {used} bytes");
    let deepest = fiber.resume(0);
    let sum = fiber.resume(0);
    // Every frame's buffer survived, all the way down and back.
    assert!(deepest > 100, "depth {deepest}");
    assert_eq!(sum as u64, expected_checksum(deepest));
}

#[test]
fn nested_contexts_switch_a_to_b_to_c_and_back() {
    let mut a = Fiber::new(STACK, |link_a, v| {
        let mut b = Fiber::new(STACK, |link_b, v| {
            let mut c = Fiber::new(STACK, |link_c, v| {
                let v = link_c.suspend(v + 100);
                v + 1000
            });
            let from_c = c.resume(v + 10);
            let v = link_b.suspend(from_c);
            let from_c = c.resume(v);
            assert!(c.is_done());
            from_c + 20
        });
        let from_b = b.resume(v + 1);
        let v = link_a.suspend(from_b);
        let from_b = b.resume(v);
        assert!(b.is_done());
        from_b + 3
    });
    // main -> A (+1) -> B (+10) -> C (+100), back up unchanged.
    assert_eq!(a.resume(0), 111);
    // main -> A -> B -> C (+1000) -> B (+20) -> A (+3) -> main.
    assert_eq!(a.resume(5), 5 + 1000 + 20 + 3);
    assert!(a.is_done());
}

#[test]
fn suspended_context_resumes_on_another_thread() {
    let mut fiber = Fiber::new(STACK, |link, v| {
        let mut total = v;
        for _ in 0..3 {
            total += link.suspend(total);
        }
        total
    });
    assert_eq!(fiber.resume(1), 1);
    let fiber = std::thread::spawn(move || {
        assert_eq!(fiber.resume(2), 3);
        fiber
    })
    .join()
    .unwrap();
    let mut fiber = std::thread::spawn(move || {
        let mut fiber = fiber;
        assert_eq!(fiber.resume(3), 6);
        fiber
    })
    .join()
    .unwrap();
    assert_eq!(fiber.resume(4), 10);
    assert!(fiber.is_done());
}

#[test]
fn on_stack_returns_the_value_computed_on_the_other_stack() {
    let stack = TestStack::new(128 * 1024);
    let outer_sp = current_sp();
    let data = vec![1u64, 2, 3];
    // SAFETY: the stack is unused and outlives the call.
    let (sum, sp) = unsafe {
        on_stack(stack.top(), || {
            let mut min_sp = usize::MAX;
            let (deepest, sum) = recurse_until(stack.bottom() + 64 * 1024, 0, &mut min_sp);
            assert_eq!(sum, expected_checksum(deepest));
            (data.iter().sum::<u64>(), current_sp())
        })
    }
    .expect("no panic");
    assert_eq!(sum, 6);
    assert!(stack.contains(sp), "closure ran on the given stack");
    assert!(!stack.contains(outer_sp));
    assert_eq!(current_sp(), outer_sp, "back on the original stack");
    drop(data);
}

#[test]
fn on_stack_returns_a_caught_panic_as_a_value() {
    let stack = TestStack::new(128 * 1024);
    let dropped = std::rc::Rc::new(std::cell::Cell::new(0));
    struct CountDrop(std::rc::Rc<std::cell::Cell<u32>>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let guard = CountDrop(dropped.clone());
    // SAFETY: the stack is unused and outlives the call.
    let result: std::thread::Result<u32> = unsafe {
        on_stack(stack.top(), move || {
            let _guard = guard;
            panic!("raised on the other stack: {}", black_box(42));
        })
    };
    let payload = result.unwrap_err();
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("raised on the other stack: 42")
    );
    assert_eq!(dropped.get(), 1, "the closure's captures were dropped once");
    // The value can be raised again on this side and caught here.
    let again = catch_unwind(AssertUnwindSafe(|| std::panic::resume_unwind(payload)));
    assert!(again.is_err());
}

#[inline(never)]
fn on_stack_backtrace_caller_marker(stack: &TestStack) -> String {
    // SAFETY: the stack is unused and outlives the call.
    let text = unsafe { on_stack(stack.top(), || format!("{}", Backtrace::force_capture())) };
    black_box(text.unwrap())
}

#[test]
fn backtrace_inside_on_stack_continues_into_the_caller() {
    let stack = TestStack::new(256 * 1024);
    let text = on_stack_backtrace_caller_marker(&stack);
    assert!(
        text.contains("__gort_arch_v0_on_stack"),
        "the trampoline frame appears:\n{text}"
    );
    assert!(
        text.contains("on_stack_backtrace_caller_marker"),
        "the walk crossed back to the original stack:\n{text}"
    );
}

#[test]
fn on_stack_nests_and_works_inside_a_context() {
    let mut fiber = Fiber::new(STACK, |link, _| {
        let s1 = TestStack::new(64 * 1024);
        let s2 = TestStack::new(64 * 1024);
        // SAFETY: both stacks are unused and outlive the calls.
        let v = unsafe {
            on_stack(s1.top(), || {
                let in1 = current_sp();
                let in2 = on_stack(s2.top(), current_sp).unwrap();
                (s1.contains(in1) && s2.contains(in2)) as usize
            })
        }
        .unwrap();
        link.suspend(v);
        0
    });
    assert_eq!(fiber.resume(0), 1);
    fiber.resume(0);
}

#[test]
#[should_panic(expected = "is not 16-byte aligned")]
fn on_stack_rejects_a_misaligned_top() {
    let stack = TestStack::new(64 * 1024);
    // SAFETY: rejected before the stack is touched.
    let _ = unsafe { on_stack(stack.top().wrapping_sub(8), || 1) };
}

#[test]
fn many_contexts_interleave() {
    let n = if under_qemu() { 64 } else { 256 };
    let mut fibers: Vec<Fiber> = (0..n)
        .map(|id| {
            Fiber::new(64 * 1024, move |link, mut v| {
                for step in 0..10 {
                    v = link.suspend(id * 1000 + step + v);
                }
                id
            })
        })
        .collect();
    for step in 0..10 {
        for (id, f) in fibers.iter_mut().enumerate() {
            assert_eq!(f.resume(0), id * 1000 + step);
        }
    }
    for (id, f) in fibers.iter_mut().enumerate() {
        assert_eq!(f.resume(0), id);
        assert!(f.is_done());
    }
}

/// The shared state of the on_stack_resumable tests: the callee's stack,
/// the resume slot, and what the callee saw.
struct Resumable {
    slot: Context,
    third: TestStack,
    sp_in_callee: usize,
    backtrace: String,
}

impl Resumable {
    fn new(third: usize) -> Resumable {
        Resumable {
            slot: Context::empty(),
            third: TestStack::new(third),
            sp_in_callee: 0,
            backtrace: String::new(),
        }
    }

    /// Runs `f(self)` through on_stack_resumable on `stack`.
    fn run(&mut self, stack: &TestStack, f: gort_arch::ResumableFn) -> usize {
        // SAFETY: the stack is unused at each call (the tests' callees
        // finish or are abandoned before the next); self outlives the call.
        unsafe {
            gort_arch::on_stack_resumable(
                stack.top(),
                f,
                self as *mut Resumable as usize,
                &raw mut self.slot,
            )
        }
    }
}

unsafe extern "C" fn resumable_returns(arg: usize) -> usize {
    let r = arg as *mut Resumable;
    // SAFETY: the test's Resumable outlives the call.
    unsafe {
        (*r).sp_in_callee = current_sp();
        assert!(!(*r).slot.is_empty(), "the caller is resumable inside f");
    }
    0x1234
}

#[test]
fn on_stack_resumable_returns_f_s_value_on_the_other_stack() {
    let stack = TestStack::new(64 * 1024);
    let mut r = Resumable::new(64 * 1024);
    let outer = current_sp();
    for _ in 0..10_000 {
        let v = r.run(&stack, resumable_returns);
        assert_eq!(v, 0x1234);
        assert!(r.slot.is_empty());
        assert!(stack.contains(r.sp_in_callee));
        assert_eq!(current_sp(), outer);
    }
}

/// Starts a context on a third stack; that context switches to the caller
/// left in the slot. The callee's frame and the third stack are abandoned.
unsafe extern "C" fn resumable_leaves_from_a_third_context(arg: usize) -> usize {
    unsafe extern "C" fn third(arg: usize, _from: Context, _: usize) -> ! {
        let r = arg as *mut Resumable;
        // SAFETY: the Resumable outlives the call; its slot holds the
        // suspended caller, switched to once.
        unsafe {
            let caller = (*r).slot.take();
            let _ = switch(caller, 77);
        }
        unreachable!("an abandoned context was resumed");
    }
    let r = arg as *mut Resumable;
    // SAFETY: the third stack is unused; the context runs until it
    // switches to the caller, abandoning this frame.
    unsafe {
        let ctx = init((*r).third.top(), third, arg);
        let _ = switch(ctx, 0);
    }
    unreachable!("the callee was resumed after its caller left");
}

#[test]
fn on_stack_resumable_returns_a_value_switched_in_from_another_context() {
    let stack = TestStack::new(64 * 1024);
    let mut r = Resumable::new(64 * 1024);
    let outer = current_sp();
    let live = vec![3u8; 3];
    for _ in 0..10_000 {
        let v = r.run(&stack, resumable_leaves_from_a_third_context);
        assert_eq!(v, 77);
        assert!(r.slot.is_empty());
        assert_eq!(current_sp(), outer);
    }
    assert_eq!(black_box(live).iter().sum::<u8>(), 9);
}

unsafe extern "C" fn resumable_backtrace(arg: usize) -> usize {
    let r = arg as *mut Resumable;
    // SAFETY: the Resumable outlives the call.
    unsafe { (*r).backtrace = format!("{}", Backtrace::force_capture()) };
    0
}

#[inline(never)]
fn on_stack_resumable_caller_marker(stack: &TestStack, r: &mut Resumable) {
    r.run(stack, resumable_backtrace);
    black_box(r);
}

#[test]
fn backtrace_inside_on_stack_resumable_continues_into_the_caller() {
    let stack = TestStack::new(256 * 1024);
    let mut r = Resumable::new(4096);
    on_stack_resumable_caller_marker(&stack, &mut r);
    let text = &r.backtrace;
    assert!(
        text.contains("__gort_arch_v0_on_stack_resumable"),
        "the trampoline frame appears:\n{text}"
    );
    assert!(
        text.contains("on_stack_resumable_caller_marker"),
        "the walk crossed back to the original stack:\n{text}"
    );
}

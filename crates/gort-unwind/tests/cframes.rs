//! Panics in callbacks from C: the C frames are skipped and the panic
//! continues in the Rust frame that made the call (Go's cgo semantics).
//!
//! Every test goes Rust -> real C (compiled by the cc crate from
//! cframes/c/frames.c) -> Rust callback, with markers that the C code sets
//! before and after calling back.

mod common;

use std::cell::Cell;

use common::{call_c, in_stack, scaled, stack, CFrame, DropCount};
use gort_arch::current_sp;
use gort_unwind::{
    call_with_resume_point, call_with_resume_point_below, catch, catch_on_stack, has_resume_point,
    recover, resume_point_caller_sp, Panic,
};
use gort_unwind_cframes::Marks;

/// Rust -> C -> Rust callback panics: the C frame is skipped (its code after
/// the callback does not run), the callback's destructors and the outer
/// frame's run exactly once, the hook runs once, and the panic is recovered
/// in the outer Rust frame with its message and location.
#[test]
fn panic_in_callback_skips_c_and_is_recovered_in_the_caller() {
    let callee = stack();
    let mut marks = Marks::default();
    let in_callback = Cell::new(0);
    let outer = Cell::new(0);
    let hook_ran = Cell::new(0);
    let caller_sp = Cell::new(None);
    let mut panic_line = 0;
    let here = current_sp();
    assert_eq!(resume_point_caller_sp(), None);

    let r = recover(|| {
        let _outer = DropCount(&outer);
        // SAFETY: the stack is ours and unused; f only calls C.
        let r = unsafe {
            call_with_resume_point(
                callee.top(),
                |p: &Panic| {
                    assert_eq!(p.message(), Some("boom in callback"));
                    hook_ran.set(hook_ran.get() + 1);
                },
                || {
                    call_c(CFrame::Plain, &mut marks, &mut || {
                        let _d = DropCount(&in_callback);
                        caller_sp.set(resume_point_caller_sp());
                        panic_line = line!() + 1;
                        panic!("boom in callback");
                    })
                },
            )
        };
        assert_eq!(
            in_callback.get(),
            1,
            "callback frames unwound before the jump"
        );
        assert_eq!(outer.get(), 0);
        assert!(!has_resume_point(), "resume point popped");
        r.unwrap_or_else(|p| p.resume())
    });

    let p = r.unwrap_err();
    assert_eq!(p.message(), Some("boom in callback"));
    let loc = p.location().expect("location");
    assert_eq!((loc.file(), loc.line()), (file!(), panic_line));
    assert_eq!(marks.counts(), (1, 0), "C code after the callback ran");
    assert!(
        in_stack(&callee, marks.frame()),
        "C ran on the callee stack"
    );
    assert_eq!(in_callback.get(), 1);
    assert_eq!(outer.get(), 1);
    assert_eq!(hook_ran.get(), 1);
    assert!(!has_resume_point());
    assert_eq!(resume_point_caller_sp(), None);
    // Inside the callback, the caller was suspended on this thread's stack,
    // below this frame.
    let sp = caller_sp.get().expect("a resume point inside the callback");
    assert!(sp < here && sp > here - 64 * 1024, "{sp:#x} vs {here:#x}");
}

/// The callback returns normally: its value reaches C, C's code after the
/// callback runs, f's value comes back, the hook does not run.
#[test]
fn callback_that_returns_lets_c_finish() {
    let callee = stack();
    let mut marks = Marks::default();
    let seen = Cell::new(0);
    // SAFETY: as above.
    let r = unsafe {
        call_with_resume_point(
            callee.top(),
            |_: &Panic| panic!("hook must not run"),
            || {
                call_c(CFrame::Plain, &mut marks, &mut || seen.set(seen.get() + 1));
                42
            },
        )
    };
    assert_eq!(r.unwrap(), 42);
    assert_eq!(marks.counts(), (1, 1));
    assert_eq!(seen.get(), 1);
    assert!(!has_resume_point());
}

/// Many C frames between the resume point and the callback: all skipped.
#[test]
fn nested_c_frames_are_all_skipped() {
    let callee = stack();
    let mut marks = Marks::default();
    // SAFETY: as above.
    let r = unsafe {
        call_with_resume_point(
            callee.top(),
            |_: &Panic| {},
            || call_c(CFrame::Recurse(20), &mut marks, &mut || panic!("deep")),
        )
    };
    assert_eq!(r.unwrap_err().message(), Some("deep"));
    assert_eq!(marks.counts(), (1, 0));
}

/// Go's TestDeepStack shape: the C frame that calls back holds a
/// 40,000-byte array. Skipped on a panic; intact after a normal return.
#[test]
fn c_frame_with_40000_byte_array() {
    let callee = stack();
    let top = callee.top() as usize;

    let mut marks = Marks::default();
    let cb_sp = Cell::new(0);
    // SAFETY: as above; 256 KiB holds the 40,000-byte frame.
    let r = unsafe {
        call_with_resume_point(
            callee.top(),
            |_: &Panic| {},
            || {
                call_c(CFrame::Deep, &mut marks, &mut || {
                    cb_sp.set(current_sp());
                    panic!("under a big C frame");
                })
            },
        )
    };
    assert_eq!(r.unwrap_err().message(), Some("under a big C frame"));
    assert_eq!(marks.counts(), (1, 0));
    assert!(in_stack(&callee, cb_sp.get()));
    assert!(
        top - cb_sp.get() > 40_000,
        "the callback runs below the C frame's array ({} bytes below the top)",
        top - cb_sp.get()
    );

    // The same frame with a callback that returns: the array is intact
    // (`after` grows by 1, not by 1000).
    let mut marks = Marks::default();
    // SAFETY: as above.
    let r = unsafe {
        call_with_resume_point(
            callee.top(),
            |_: &Panic| {},
            || call_c(CFrame::Deep, &mut marks, &mut || {}),
        )
    };
    r.unwrap();
    assert_eq!(marks.counts(), (1, 1));
}

/// A panic in f itself (Rust code on the callee stack, no callback) is
/// caught at the callee stack's entry and comes back as Err, the hook
/// having run: nothing unwinds off the callee stack's base.
#[test]
fn panic_in_the_callee_itself_is_caught_at_its_entry() {
    let callee = stack();
    let dropped = Cell::new(0);
    let hook_ran = Cell::new(0);
    let sp = Cell::new(0);
    // SAFETY: as above; f holds a destructor, but nothing skips its frame
    // (no callback is involved): it unwinds normally.
    let r: Result<(), Panic> = unsafe {
        call_with_resume_point(
            callee.top(),
            |_: &Panic| hook_ran.set(hook_ran.get() + 1),
            || {
                let _d = DropCount(&dropped);
                sp.set(current_sp());
                panic!("in f");
            },
        )
    };
    let p = r.unwrap_err();
    assert_eq!(p.message(), Some("in f"));
    assert_eq!(p.location().unwrap().file(), file!());
    assert!(in_stack(&callee, sp.get()));
    assert_eq!(dropped.get(), 1);
    assert_eq!(hook_ran.get(), 1);
    assert!(!has_resume_point());
}

/// Where the inner call into C (C2) runs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Inner {
    /// On the same stack as C1, below the callback's frame
    /// (`call_with_resume_point_below`).
    Below,
    /// On a stack of its own.
    OwnStack,
    /// The C bridge's shape: C runs on a system stack, Rust on the
    /// goroutine's. The middle callback (on the system stack, below C1) runs
    /// its body on the caller's stack right below the suspended frame that
    /// called C1 (`resume_point_caller_sp`), and the body calls C2 with an
    /// explicit top on the system stack below the callback's frame.
    Bridge,
}

/// What one run of the two-level case saw.
#[derive(Debug, Default, PartialEq, Clone, Copy)]
struct TwoLevel {
    /// Stack pointer in the deepest callback (the lowest point reached).
    deepest_sp: usize,
    /// Stack pointer in the middle callback.
    middle_sp: usize,
    /// Frames of C1 and C2.
    c1_frame: usize,
    c2_frame: usize,
    /// Stack pointer in the middle callback's body (Bridge only).
    body_sp: usize,
}

/// Rust -> C1 -> Rust (middle) -> C2 -> Rust (deepest) panics, recovered at
/// the middle level: C2's code after its callback is skipped, C1's code
/// after its callback runs, every destructor runs once, only the inner
/// resume point's hook runs, and the outer call returns normally.
fn two_level(inner: Inner, outer_stack: &gort_stack::Stack, aux: &gort_stack::Stack) -> TwoLevel {
    let mut m1 = Marks::default();
    let mut m2 = Marks::default();
    let drops_middle = Cell::new(0);
    let drops_deepest = Cell::new(0);
    let hook1 = Cell::new(0);
    let hook2 = Cell::new(0);
    let mut seen = TwoLevel::default();
    let deepest_sp = Cell::new(0);
    let middle_sp = Cell::new(0);
    let body_sp = Cell::new(0);
    let here = current_sp();

    let mut deepest = || {
        let _d = DropCount(&drops_deepest);
        deepest_sp.set(current_sp());
        panic!("deepest");
    };
    // The middle callback's body: calls C2, recovers the deepest panic.
    let middle_body = |m2: &mut Marks, deepest: &mut dyn FnMut(), c2_top: Option<*mut u8>| {
        let hook = |p: &Panic| {
            assert_eq!(p.message(), Some("deepest"));
            hook2.set(hook2.get() + 1);
        };
        let f = || call_c(CFrame::Plain, m2, deepest);
        // A quiet scope around the call, as a recover around a cgo call
        // makes one: the deepest panic, raised below two C frames, is not
        // printed.
        // SAFETY: the stacks are ours and unused below the live frames; f
        // only calls C.
        let r = catch(true, || unsafe {
            match c2_top {
                None => call_with_resume_point_below(hook, f),
                Some(top) => call_with_resume_point(top, hook, f),
            }
        });
        let p = r.expect("no panic escapes the resume point").unwrap_err();
        assert_eq!(p.message(), Some("deepest"));
    };

    let mut middle = || {
        let _d = DropCount(&drops_middle);
        middle_sp.set(current_sp());
        match inner {
            Inner::Below => middle_body(&mut m2, &mut deepest, None),
            Inner::OwnStack => middle_body(&mut m2, &mut deepest, Some(aux.top())),
            Inner::Bridge => {
                // The system-stack position below this callback's frame
                // (and below catch_on_stack's trampoline, which stays on
                // this stack): where C2 starts.
                let below_callback = (current_sp() - 4096) & !15;
                // The goroutine-stack position below the frame that made
                // the call into C1 (its registers lie at and above it).
                let below_caller = (resume_point_caller_sp().unwrap() - 128) & !15;
                // SAFETY: below the suspended caller, its stack is free
                // while the callee runs.
                let r = unsafe {
                    catch_on_stack(below_caller as *mut u8, || {
                        body_sp.set(current_sp());
                        middle_body(&mut m2, &mut deepest, Some(below_callback as *mut u8))
                    })
                };
                r.unwrap();
            }
        }
    };

    // SAFETY: the outer stack is ours and unused; f only calls C.
    let r = unsafe {
        call_with_resume_point(
            outer_stack.top(),
            |_: &Panic| hook1.set(hook1.get() + 1),
            || call_c(CFrame::Plain, &mut m1, &mut middle),
        )
    };
    r.unwrap();

    assert_eq!(m1.counts(), (1, 1), "C1's code after its callback runs");
    assert_eq!(
        m2.counts(),
        (1, 0),
        "C2's code after its callback is skipped"
    );
    assert_eq!(drops_middle.get(), 1);
    assert_eq!(drops_deepest.get(), 1);
    assert_eq!(hook1.get(), 0);
    assert_eq!(hook2.get(), 1);
    assert!(!has_resume_point());
    assert!(in_stack(outer_stack, m1.frame()));
    assert!(in_stack(outer_stack, middle_sp.get()));
    if inner == Inner::Bridge {
        // The body ran on this thread's stack, below this frame, while C1's
        // frame stayed on the outer (system) stack.
        assert!(body_sp.get() < here && body_sp.get() > here - 64 * 1024);
        assert!(!in_stack(outer_stack, body_sp.get()));
    }
    match inner {
        Inner::Below | Inner::Bridge => {
            assert!(in_stack(outer_stack, m2.frame()));
            assert!(in_stack(outer_stack, deepest_sp.get()));
            assert!(
                m2.frame() < middle_sp.get(),
                "C2 runs below the middle callback"
            );
            assert!(m2.frame() < m1.frame(), "C2 runs below C1");
        }
        Inner::OwnStack => {
            assert!(in_stack(aux, m2.frame()));
            assert!(in_stack(aux, deepest_sp.get()));
        }
    }
    seen.deepest_sp = deepest_sp.get();
    seen.middle_sp = middle_sp.get();
    seen.c1_frame = m1.frame();
    seen.c2_frame = m2.frame();
    seen.body_sp = body_sp.get();
    seen
}

#[test]
fn two_levels_recovered_at_the_middle_below_on_the_same_stack() {
    two_level(Inner::Below, &stack(), &stack());
}

#[test]
fn two_levels_recovered_at_the_middle_on_another_stack() {
    two_level(Inner::OwnStack, &stack(), &stack());
}

#[test]
fn two_levels_recovered_at_the_middle_bridge_shape() {
    two_level(Inner::Bridge, &stack(), &stack());
}

/// The lowest address of `stack` whose bytes are not `fill` any more.
fn lowest_touched(stack: &gort_stack::Stack, fill: u8) -> usize {
    let lo = stack.bottom() as usize;
    let len = stack.top() as usize - lo;
    // SAFETY: the stack's usable memory is mapped and readable, and no
    // context runs on it now.
    let bytes = unsafe { std::slice::from_raw_parts(lo as *const u8, len) };
    lo + bytes.iter().position(|&b| b != fill).unwrap_or(len)
}

fn fill_stack(stack: &gort_stack::Stack, fill: u8) {
    let lo = stack.bottom();
    let len = stack.top() as usize - lo as usize;
    // SAFETY: as above; nothing runs on the stack now.
    unsafe { std::ptr::write_bytes(lo, fill, len) };
}

/// 100,000 repetitions of the two-level case (10,000 under qemu) grow no
/// stack: the test thread's stack pointer at each iteration, the stack
/// pointers in both callbacks, the C frames' addresses and the lowest byte
/// ever written on the C stacks are the same as in the first iteration. (A
/// leak of the saved stack position, as Go's unwindm once had, would move
/// them down every time and overflow within a few hundred iterations.)
fn repeat_two_level(inner: Inner) {
    let outer = stack();
    let aux = stack();
    fill_stack(&outer, 0xa5);
    fill_stack(&aux, 0xa5);
    let n = scaled(100_000);
    let mut first: Option<(usize, TwoLevel, usize, usize)> = None;
    for i in 0..n {
        let sp = current_sp();
        let seen = two_level(inner, &outer, &aux);
        match first {
            None => {
                first = Some((
                    sp,
                    seen,
                    lowest_touched(&outer, 0xa5),
                    lowest_touched(&aux, 0xa5),
                ));
            }
            Some((sp0, seen0, _, _)) => {
                assert_eq!(sp, sp0, "test thread's stack moved at iteration {i}");
                assert_eq!(seen, seen0, "callback or C frames moved at iteration {i}");
            }
        }
    }
    let (_, _, outer_low, aux_low) = first.unwrap();
    assert_eq!(lowest_touched(&outer, 0xa5), outer_low, "outer stack grew");
    assert_eq!(lowest_touched(&aux, 0xa5), aux_low, "aux stack grew");
}

#[test]
fn two_levels_repeated_grow_no_stack_below() {
    repeat_two_level(Inner::Below);
}

#[test]
fn two_levels_repeated_grow_no_stack_on_another_stack() {
    repeat_two_level(Inner::OwnStack);
}

#[test]
fn two_levels_repeated_grow_no_stack_bridge_shape() {
    repeat_two_level(Inner::Bridge);
}

/// N levels (Rust -> C -> Rust -> ... -> C -> Rust panics), each inner call
/// below the previous callback on the same stack, recovered at callback
/// `recover_at` (None: by nobody, the outermost call returns the panic).
fn n_levels(depth: usize, recover_at: Option<usize>) {
    struct Level<'a> {
        depth: usize,
        recover_at: Option<usize>,
        marks: Vec<Marks>,
        drops: &'a [Cell<u32>],
        hooks: &'a [Cell<u32>],
    }

    // Makes call `i` into C; its callback makes call `i + 1` or panics.
    fn call(l: &mut Level<'_>, i: usize, top: Option<*mut u8>) -> Result<(), Panic> {
        let hooks = l.hooks;
        let hook = move |_: &Panic| hooks[i].set(hooks[i].get() + 1);
        let marks: *mut Marks = &mut l.marks[i];
        let l: *mut Level<'_> = l;
        let f = move || {
            // SAFETY: `marks` and `l` point into the test's frame, which
            // outlives every level; the levels run one at a time.
            call_c(CFrame::Plain, unsafe { &mut *marks }, &mut || unsafe {
                callback(&mut *l, i)
            })
        };
        // SAFETY: the stacks are ours; f only calls C.
        unsafe {
            match top {
                Some(t) => call_with_resume_point(t, hook, f),
                None => call_with_resume_point_below(hook, f),
            }
        }
    }

    fn callback(l: &mut Level<'_>, i: usize) {
        let _d = DropCount(&l.drops[i]);
        if i + 1 == l.depth {
            panic!("level {i}");
        }
        let r = call(l, i + 1, None);
        if l.recover_at == Some(i) {
            assert_eq!(
                r.unwrap_err().message(),
                Some(&*format!("level {}", l.depth - 1))
            );
        } else if let Err(p) = r {
            p.resume();
        }
    }

    let s = stack();
    let drops: Vec<Cell<u32>> = (0..depth).map(|_| Cell::new(0)).collect();
    let hooks: Vec<Cell<u32>> = (0..depth).map(|_| Cell::new(0)).collect();
    let mut l = Level {
        depth,
        recover_at,
        marks: (0..depth).map(|_| Marks::default()).collect(),
        drops: &drops,
        hooks: &hooks,
    };
    let r = call(&mut l, 0, Some(s.top()));
    match recover_at {
        Some(_) => r.unwrap(),
        None => assert_eq!(
            r.unwrap_err().message(),
            Some(&*format!("level {}", depth - 1))
        ),
    }
    for i in 0..depth {
        let recovered_below = recover_at.is_some_and(|k| i <= k);
        let after = if recovered_below { 1 } else { 0 };
        assert_eq!(l.marks[i].counts(), (1, after), "C call {i}");
        assert_eq!(drops[i].get(), 1, "callback {i} destructors");
        assert_eq!(
            hooks[i].get(),
            if recovered_below { 0 } else { 1 },
            "hook of resume point {i}"
        );
    }
    assert!(!has_resume_point());
}

#[test]
fn three_and_four_levels_recovered_at_each_level() {
    for depth in [3, 4] {
        n_levels(depth, None);
        for k in 0..depth - 1 {
            n_levels(depth, Some(k));
        }
    }
}

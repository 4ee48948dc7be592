//! Panic::resume's fast path: straight to the innermost recover when no
//! frame between would run anything while unwinding; the unwinder
//! otherwise, with destructors, defer blocks and catches between seeing
//! the panic as before.

use std::cell::Cell;
use std::hint::black_box;
use std::panic::catch_unwind;

use gort_unwind::{defer, jumps_on_this_thread, recover, Panic};

fn a_panic(msg: &'static str) -> Panic {
    recover(|| -> () { std::panic::panic_any(msg) }).unwrap_err()
}

/// Raises `p` again from a few frames down, holding nothing.
#[inline(never)]
fn resume_deep(p: Panic, depth: u32) -> u32 {
    if depth == 0 {
        p.resume()
    }
    black_box(resume_deep(p, black_box(depth - 1))) + 1
}

#[test]
fn resume_with_nothing_between_jumps_to_recover() {
    let p = a_panic("boom");
    let loc = p.location();
    let before = jumps_on_this_thread();
    let q = recover(move || -> () { p.resume() }).unwrap_err();
    assert_eq!(jumps_on_this_thread(), before + 1, "took the unwinder");
    assert_eq!(q.message(), Some("boom"));
    assert_eq!(q.location(), loc);
}

#[test]
fn resume_from_deeper_frames_jumps() {
    for depth in [0, 1, 5, 20] {
        let p = a_panic("deep");
        let before = jumps_on_this_thread();
        let q = recover(move || resume_deep(p, depth)).unwrap_err();
        assert_eq!(jumps_on_this_thread(), before + 1, "depth {depth}");
        assert_eq!(q.message(), Some("deep"));
    }
}

#[test]
fn a_destructor_between_runs() {
    struct Guard<'a>(&'a Cell<u32>);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let dropped = Cell::new(0);
    let p = a_panic("drop");
    let before = jumps_on_this_thread();
    let q = recover(|| {
        let _g = Guard(&dropped);
        resume_deep(p, 3)
    })
    .unwrap_err();
    assert_eq!(dropped.get(), 1);
    assert_eq!(q.message(), Some("drop"));
    assert_eq!(jumps_on_this_thread(), before, "skipped a destructor");
}

#[test]
fn a_defer_between_runs() {
    let ran = Cell::new(false);
    let p = a_panic("defer");
    let before = jumps_on_this_thread();
    let q = recover(|| {
        defer! { ran.set(true) }
        resume_deep(p, 2)
    })
    .unwrap_err();
    assert!(ran.get());
    assert_eq!(q.message(), Some("defer"));
    assert_eq!(jumps_on_this_thread(), before, "skipped a defer block");
}

#[test]
fn a_catch_unwind_between_catches() {
    let p = a_panic("inner");
    let before = jumps_on_this_thread();
    let r = recover(|| {
        let inner = catch_unwind(std::panic::AssertUnwindSafe(|| resume_deep(p, 1)));
        let payload = inner.unwrap_err();
        *payload.downcast::<&'static str>().unwrap()
    });
    assert_eq!(r.unwrap(), "inner");
    assert_eq!(jumps_on_this_thread(), before, "skipped a catch_unwind");
}

#[test]
fn the_innermost_recover_gets_it() {
    let p = a_panic("nested");
    let before = jumps_on_this_thread();
    let outer = recover(|| {
        let inner = recover(|| resume_deep(p, 2));
        assert_eq!(inner.unwrap_err().message(), Some("nested"));
        7
    });
    assert_eq!(outer.unwrap(), 7);
    assert_eq!(jumps_on_this_thread(), before + 1);
}

#[test]
fn recover_still_returns_values_and_catches_panics() {
    assert_eq!(recover(|| 41 + 1).unwrap(), 42);
    let big = recover(|| [7u8; 4096]).unwrap();
    assert!(big.iter().all(|&b| b == 7));
    let p = recover(|| -> () { panic!("plain {}", black_box(1)) }).unwrap_err();
    assert_eq!(p.message(), Some("plain 1"));
}

#[test]
fn resume_outside_recover_unwinds_to_catch_unwind() {
    let p = a_panic("outside");
    let before = jumps_on_this_thread();
    let r = catch_unwind(std::panic::AssertUnwindSafe(move || -> () { p.resume() }));
    assert_eq!(
        *r.unwrap_err().downcast::<&'static str>().unwrap(),
        "outside"
    );
    assert_eq!(jumps_on_this_thread(), before);
}

#[test]
fn many_rounds_keep_the_stack_where_it_was() {
    let sp = |_: ()| gort_arch::current_sp();
    let first = recover(|| sp(())).unwrap();
    for _ in 0..10_000 {
        let p = a_panic("again");
        let q = recover(move || resume_deep(p, 3)).unwrap_err();
        assert_eq!(q.message(), Some("again"));
        assert_eq!(recover(|| sp(())).unwrap(), first);
    }
}

//! Panics raised with gort-unwind's own walk (src/raise.rs) instead of the
//! system unwinder's two passes: the catch gets the panic, every
//! destructor between runs once and innermost first, the registers the
//! catching and cleaning frames keep across the call are intact after the
//! landing, and std's panic state is back to normal after each catch.
//!
//! Each test also checks that the landings were gort's (the count goes
//! up), so a build where the system unwinder quietly did the work fails.
//! With the `fast-raise` feature off (or on a target without it) there is
//! nothing of gort's to test.
#![cfg(feature = "fast-raise")]

use std::cell::RefCell;
use std::hint::black_box;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use gort_unwind::fast_landings_on_this_thread as landings;

/// Keeps the tests' own panics quiet (a `u64` payload, or a message
/// from [`guarded`]); failed assertions still print.
fn quiet() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let p = info.payload();
            let ours = p.is::<u64>()
                || p.downcast_ref::<String>()
                    .is_some_and(|m| m.starts_with("intended"));
            if !ours {
                previous(info)
            }
        }))
    });
}

/// Panics `depth` frames down, each frame holding values that must
/// survive until it returns (so the compiler keeps them in callee-saved
/// registers or in the frame).
#[inline(never)]
fn deep(depth: u32, seed: u64) -> u64 {
    let a = black_box(seed.wrapping_mul(3));
    let b = black_box(seed ^ 0x5555);
    if depth == 0 {
        resume_unwind(Box::new(seed));
    }
    let r = deep(black_box(depth - 1), seed.wrapping_add(1));
    a.wrapping_add(b).wrapping_add(r)
}

/// A frame with a destructor: records its id when dropped.
struct Guard<'a> {
    id: u32,
    log: &'a RefCell<Vec<u32>>,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.log.borrow_mut().push(self.id);
    }
}

/// Panics below `depth` frames, each holding a [`Guard`].
#[inline(never)]
fn guarded(depth: u32, log: &RefCell<Vec<u32>>, msg: &str) -> u32 {
    let _g = Guard { id: depth, log };
    if depth == 0 {
        panic!("{msg}");
    }
    black_box(guarded(black_box(depth - 1), log, msg)) + 1
}

#[test]
fn a_panic_lands_in_its_catch() {
    quiet();
    for i in 0..1000u64 {
        let before = landings();
        let r = catch_unwind(|| deep(black_box(5), i));
        // At least the catch's landing (std's frames may add cleanups).
        assert!(landings() > before, "iteration {i}: not landed by gort");
        let payload = r.expect_err("no panic");
        assert_eq!(payload.downcast_ref::<u64>(), Some(&(i + 5)));
        // std's panic count went back down: the catch ran std's cleanup.
        assert!(!std::thread::panicking());
    }
}

/// Catches a panic from `depth` frames down while holding values in
/// locals that live across the call: more integers and floats than there
/// are callee-saved registers, so the compiler keeps them in those
/// registers (d8-d15 for the floats on aarch64) and in spill slots. The
/// result depends on every one of them.
#[inline(never)]
fn catch_holding(depth: u32, seed: u64) -> (u64, f64, bool) {
    let i: [u64; 10] =
        std::array::from_fn(|k| black_box(seed.rotate_left(k as u32 * 5) ^ k as u64));
    let [i0, i1, i2, i3, i4, i5, i6, i7, i8, i9] = i;
    let f: [f64; 10] = std::array::from_fn(|k| black_box(seed as f64 * 0.25 + k as f64));
    let [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9] = f;
    let caught = catch_unwind(|| deep(depth, seed)).is_err();
    let ints = i0
        ^ i1.wrapping_mul(3)
        ^ i2.rotate_left(7)
        ^ i3.wrapping_add(i4)
        ^ i5.wrapping_mul(i6 | 1)
        ^ i7.rotate_right(3)
        ^ i8.wrapping_sub(i9);
    let floats = f0
        + f1 * 2.0
        + f2 * 3.0
        + f3 * 4.0
        + f4 * 5.0
        + f5 * 6.0
        + f6 * 7.0
        + f7 * 8.0
        + f8 * 9.0
        + f9 * 10.0;
    (ints, floats, caught)
}

/// What [`catch_holding`] returns when nothing clobbered its locals.
fn expected(seed: u64) -> (u64, f64) {
    let i: Vec<u64> = (0..10)
        .map(|k| seed.rotate_left(k * 5) ^ k as u64)
        .collect();
    let ints = i[0]
        ^ i[1].wrapping_mul(3)
        ^ i[2].rotate_left(7)
        ^ i[3].wrapping_add(i[4])
        ^ i[5].wrapping_mul(i[6] | 1)
        ^ i[7].rotate_right(3)
        ^ i[8].wrapping_sub(i[9]);
    let floats = (0..10)
        .map(|k| (seed as f64 * 0.25 + k as f64) * (k + 1) as f64)
        .sum();
    (ints, floats)
}

#[test]
fn registers_kept_across_the_call_survive_the_landing() {
    quiet();
    for depth in 0..24 {
        let seed = black_box(depth as u64 * 7919 + 13);
        let before = landings();
        let (ints, floats, caught) = catch_holding(depth, seed);
        assert!(caught, "depth {depth}: no panic");
        assert!(landings() > before, "depth {depth}: not landed by gort");
        let (want_ints, want_floats) = expected(seed);
        assert_eq!(
            ints, want_ints,
            "depth {depth}: an integer register was clobbered"
        );
        assert_eq!(
            floats, want_floats,
            "depth {depth}: a float register was clobbered"
        );
    }
}

#[test]
fn destructors_between_run_once_innermost_first() {
    quiet();
    for depth in [0u32, 1, 3, 10, 30] {
        let log = RefCell::new(Vec::new());
        let before = landings();
        let r = catch_unwind(AssertUnwindSafe(|| {
            guarded(depth, &log, "intended guarded")
        }));
        let payload = r.expect_err("no panic");
        assert_eq!(
            payload.downcast_ref::<String>().map(String::as_str),
            Some("intended guarded")
        );
        let expect: Vec<u32> = (0..=depth).collect();
        assert_eq!(*log.borrow(), expect, "depth {depth}");
        // One landing per guarded frame (the raise lands in the first,
        // each cleanup's resume in the next) and one for the catch; std's
        // own frames may add cleanups of their own.
        assert!(
            landings() - before > depth as u64 + 1,
            "depth {depth}: {} landings",
            landings() - before
        );
        assert!(!std::thread::panicking());
    }
}

#[test]
fn the_innermost_catch_catches() {
    quiet();
    let log = RefCell::new(Vec::new());
    let outer = catch_unwind(AssertUnwindSafe(|| {
        let _g = Guard { id: 100, log: &log };
        let inner = catch_unwind(AssertUnwindSafe(|| guarded(2, &log, "intended inner")));
        assert!(inner.is_err());
        log.borrow_mut().push(200);
        guarded(1, &log, "intended outer")
    }));
    let payload = outer.expect_err("no outer panic");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("intended outer")
    );
    assert_eq!(*log.borrow(), [0, 1, 2, 200, 0, 1, 100]);
}

#[test]
fn a_panic_in_a_destructor_caught_inside_it() {
    quiet();
    // A destructor that runs during the unwind (in a landing pad) and
    // itself raises and catches a panic: two walks nest on this thread.
    struct Nested<'a>(&'a RefCell<Vec<u32>>);
    impl Drop for Nested<'_> {
        fn drop(&mut self) {
            let r = catch_unwind(|| deep(3, 7));
            assert!(r.is_err());
            self.0.borrow_mut().push(7);
        }
    }
    let log = RefCell::new(Vec::new());
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _n = Nested(&log);
        guarded(2, &log, "intended outer")
    }));
    assert!(r.is_err());
    assert_eq!(*log.borrow(), [0, 1, 2, 7]);
}

#[test]
fn many_threads_panic_at_once() {
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            std::thread::spawn(move || {
                quiet();
                let mut landed = 0;
                for i in 0..2000u64 {
                    let before = landings();
                    let log = RefCell::new(Vec::new());
                    let depth = ((i + t) % 7) as u32;
                    let r = catch_unwind(AssertUnwindSafe(|| guarded(depth, &log, "intended t")));
                    assert!(r.is_err());
                    assert_eq!(log.borrow().len(), depth as usize + 1);
                    let seed = t * 1_000_000 + i;
                    let r = catch_unwind(|| deep(depth, seed));
                    assert_eq!(
                        r.unwrap_err().downcast_ref::<u64>(),
                        Some(&(seed + depth as u64))
                    );
                    landed += landings() - before;
                }
                landed
            })
        })
        .collect();
    for t in threads {
        let landed = t.join().expect("a thread failed");
        assert!(landed >= 2 * 2000, "only {landed} landings");
    }
}

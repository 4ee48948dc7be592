//! Stack bounds of created threads, the per-thread cache (golang/go#68285) with
//! real and injected probes, stacks switched under the cache's feet (a C
//! coroutine library, simulated with gort-arch), nested callbacks, and
//! remaining_stack on thread and goroutine stacks. The main thread has its
//! own test binary (main_thread.rs).

// Linux only: the checks use Linux system calls and /proc.
#![cfg(target_os = "linux")]

mod common;

use std::cell::Cell;

use gort_arch::current_sp;
use gort_stack::bounds::{
    restore_thread_bounds, save_thread_bounds, set_thread_probe, thread_bounds_at, thread_probes,
    ESTIMATE_ABOVE, ESTIMATE_BELOW,
};
use gort_stack::{
    clear_running_stack, remaining_stack, running_stack, set_running_stack, thread_bounds,
    thread_stack_bounds, Bounds, Stack, StackConfig,
};

/// Runs `f` on a new thread made with pthread_create and a stack of exactly
/// `size` bytes (std would add room for TLS to the size asked).
fn on_pthread(size: usize, f: fn()) {
    extern "C" fn start(arg: *mut libc::c_void) -> *mut libc::c_void {
        // SAFETY: `arg` is the fn pointer passed below.
        let f: fn() = unsafe { std::mem::transmute::<*mut libc::c_void, fn()>(arg) };
        match std::panic::catch_unwind(f) {
            Ok(()) => std::ptr::null_mut(),
            // Any non-null value says "panicked".
            Err(_) => std::ptr::dangling_mut(),
        }
    }
    // SAFETY: standard pthread calls on locals that outlive them.
    unsafe {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
        assert_eq!(libc::pthread_attr_init(attr.as_mut_ptr()), 0);
        assert_eq!(libc::pthread_attr_setstacksize(attr.as_mut_ptr(), size), 0);
        let mut t = std::mem::MaybeUninit::<libc::pthread_t>::uninit();
        let r = libc::pthread_create(t.as_mut_ptr(), attr.as_ptr(), start, f as *mut libc::c_void);
        assert_eq!(r, 0);
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        let mut ret = std::ptr::null_mut();
        assert_eq!(libc::pthread_join(t.assume_init(), &mut ret), 0);
        assert!(ret.is_null(), "the thread's test panicked");
    }
}

const THREAD_STACK: usize = 1 << 20;

#[test]
fn created_thread_bounds_contain_sp_and_match_its_size() {
    on_pthread(THREAD_STACK, || {
        let b = thread_stack_bounds().expect("pthread_getattr_np");
        let sp = current_sp();
        assert!(b.is_accurate());
        assert!(b.contains(sp), "{b:?} must contain sp {sp:#x}");
        assert_eq!(b.size(), THREAD_STACK, "{b:?}");
        // The thread stands near the top of its stack.
        assert!(b.hi() - sp < 64 * 1024, "{b:?}, sp {sp:#x}");
    });
    std::thread::Builder::new()
        .stack_size(THREAD_STACK)
        .spawn(|| {
            let b = thread_stack_bounds().unwrap();
            assert!(b.contains(current_sp()));
            // std adds glibc's minimum (TLS) to the size asked for.
            assert!(
                b.size() >= THREAD_STACK && b.size() < THREAD_STACK + (1 << 20),
                "{b:?}"
            );
        })
        .unwrap()
        .join()
        .unwrap();
}

thread_local! {
    static COUNTED: Cell<usize> = const { Cell::new(0) };
}

fn counting_probe() -> Option<Bounds> {
    COUNTED.with(|c| c.set(c.get() + 1));
    thread_stack_bounds()
}

#[test]
fn cache_hits_do_not_probe() {
    on_pthread(THREAD_STACK, || {
        set_thread_probe(counting_probe);
        let first = thread_bounds();
        assert!(first.is_accurate());
        assert_eq!(first.size(), THREAD_STACK);
        for _ in 0..10_000 {
            assert_eq!(thread_bounds(), first);
        }
        assert_eq!(COUNTED.with(Cell::get), 1);
        assert_eq!(thread_probes(), 1);
    });
}

fn failing_probe() -> Option<Bounds> {
    COUNTED.with(|c| c.set(c.get() + 1));
    None
}

#[test]
fn failing_probe_gives_an_inaccurate_estimate_and_is_asked_again() {
    on_pthread(THREAD_STACK, || {
        set_thread_probe(failing_probe);
        let sp = current_sp();
        let b = thread_bounds_at(sp);
        assert!(!b.is_accurate());
        assert_eq!((b.lo(), b.hi()), (sp - ESTIMATE_BELOW, sp + ESTIMATE_ABOVE));
        assert_eq!(b, Bounds::estimate_around(sp));
        assert_eq!(remaining_stack(), None, "no accurate bounds, no answer");
        assert!(!thread_bounds().is_accurate());
        assert_eq!(COUNTED.with(Cell::get), 3, "an estimate is never trusted");
    });
}

/// The "C coroutine" stacks of the tests below: plain heap memory the OS
/// knows nothing about. A probe that knows them stands for a coroutine
/// library that can name its stacks.
struct Region {
    mem: Vec<u128>,
}

impl Region {
    fn new(bytes: usize) -> Region {
        Region {
            mem: vec![0; bytes / 16],
        }
    }
    fn bounds(&self) -> Bounds {
        let lo = self.mem.as_ptr() as usize;
        Bounds::new(lo, lo + self.mem.len() * 16)
    }
    fn top(&self) -> *mut u8 {
        self.bounds().hi() as *mut u8
    }
}

thread_local! {
    /// The coroutine stacks this thread's region_probe knows.
    static KNOWN: std::cell::RefCell<Vec<Bounds>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Knows this thread's coroutine regions, else asks the OS.
fn region_probe() -> Option<Bounds> {
    COUNTED.with(|c| c.set(c.get() + 1));
    let sp = current_sp();
    KNOWN
        .with(|k| k.borrow().iter().copied().find(|b| b.contains(sp)))
        .or_else(thread_stack_bounds)
}

fn know(r: &Region) {
    KNOWN.with(|k| k.borrow_mut().push(r.bounds()));
}

/// Runs `f` on `r` as a C coroutine library would, with gort-arch.
fn on_region<R>(r: &Region, f: impl FnOnce() -> R) -> R {
    // SAFETY: the region is ours, 16-byte aligned (u128) and unused.
    match unsafe { gort_arch::on_stack(r.top(), f) } {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

#[test]
fn sp_on_another_stack_gets_fresh_bounds_and_the_thread_stack_its_own_back() {
    on_pthread(THREAD_STACK, || {
        let thread = thread_bounds();
        assert!(thread.is_accurate());
        let probes = thread_probes();

        // A coroutine stack the OS probe knows nothing about: the thread's
        // accurate bounds do not contain SP, so the cache re-estimates and
        // probes, and drops the OS answer, which does not contain SP.
        let coroutine = Region::new(128 * 1024);
        let inside = on_region(&coroutine, || (thread_bounds(), current_sp()));
        assert!(!inside.0.is_accurate(), "{:?}", inside.0);
        assert!(inside.0.contains(inside.1));
        assert!(coroutine.bounds().contains(inside.1));
        assert_eq!(thread_probes(), probes + 1);

        // Back on the thread's stack the estimate is not trusted: probe again.
        assert_eq!(thread_bounds(), thread);
        assert_eq!(thread_probes(), probes + 2);

        // With a probe that knows the coroutine's stack, its bounds are
        // accurate, and reused while SP stays inside.
        set_thread_probe(region_probe);
        let second = Region::new(64 * 1024);
        know(&coroutine);
        know(&second);
        let (a, b) = on_region(&coroutine, || (thread_bounds(), thread_bounds()));
        assert_eq!(a, coroutine.bounds());
        assert_eq!(b, a);
        assert_eq!(thread_probes(), probes + 3, "the second lookup was a hit");
        // Another coroutine stack: outside the cached bounds, so re-probed.
        assert_eq!(on_region(&second, thread_bounds), second.bounds());
        assert_eq!(thread_probes(), probes + 4);
        assert_eq!(thread_bounds(), thread);
    });
}

#[test]
fn nested_callbacks_save_and_restore_their_bounds() {
    on_pthread(THREAD_STACK, || {
        set_thread_probe(region_probe);
        let regions = [
            Region::new(64 * 1024),
            Region::new(96 * 1024),
            Region::new(64 * 1024),
        ];
        for r in &regions {
            know(r);
        }
        let outer = thread_bounds();
        let probes = thread_probes();

        // C -> Rust on the thread stack, which calls C, which switches to
        // coroutine stack 0 and calls back into Rust, and so on, three deep.
        // Each callback saves the bounds at entry and restores them at exit.
        fn callback(depth: usize, regions: &[Region; 3]) -> usize {
            let saved = save_thread_bounds();
            let mine = thread_bounds();
            let mut probes_inside = 0;
            if depth < regions.len() {
                assert_eq!(
                    mine,
                    if depth == 0 {
                        mine
                    } else {
                        regions[depth - 1].bounds()
                    }
                );
                probes_inside = on_region(&regions[depth], || callback(depth + 1, regions));
                // Back from the nested callback: our bounds are back, no probe.
                let before = thread_probes();
                assert_eq!(thread_bounds(), mine);
                assert_eq!(thread_probes(), before);
            } else {
                assert_eq!(mine, regions[2].bounds());
            }
            restore_thread_bounds(saved);
            probes_inside + 1
        }
        let levels = callback(0, &regions);
        assert_eq!(levels, 4);
        assert_eq!(thread_bounds(), outer);
        // One probe per coroutine level (the outer bounds were cached), and
        // none after any restore.
        assert_eq!(thread_probes(), probes + 3);
    });
}

#[test]
fn remaining_stack_on_the_thread_and_on_a_goroutine_stack() {
    on_pthread(THREAD_STACK, || {
        let left = remaining_stack().expect("accurate thread bounds");
        let sp = current_sp();
        let b = thread_bounds();
        assert!(
            left <= b.size() && left > b.size() - 64 * 1024,
            "{left} of {b:?}"
        );
        assert!(left.abs_diff(sp - b.lo()) < 4096);

        let stack = Stack::new(StackConfig::new()).unwrap();
        set_running_stack(9, &stack);
        let r = running_stack().unwrap();
        assert_eq!(
            (r.goid, r.bounds, r.guard_lo),
            (9, stack.bounds(), stack.guard_bottom() as usize)
        );
        // SAFETY: the stack is ours, aligned and unused.
        let on_goroutine = unsafe { gort_arch::on_stack(stack.top(), remaining_stack) }.unwrap();
        let on_goroutine = on_goroutine.expect("the running stack's bounds");
        assert!(on_goroutine < stack.size() && on_goroutine > stack.size() - 4096);
        // Off the goroutine stack, the slot does not contain SP: the
        // thread's bounds answer, and they were not disturbed.
        let probes = thread_probes();
        assert!(remaining_stack().unwrap().abs_diff(left) < 4096);
        assert_eq!(thread_probes(), probes);
        clear_running_stack();
        assert_eq!(running_stack(), None);
    });
}

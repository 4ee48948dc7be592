//! cgo::call and cgo::callback inside one process: real C frames (the
//! gort-unwind-cframes helper), goroutines calling into C, C calling back,
//! nesting, parking inside callbacks, panics across C frames, C threads.
//! The C-program tests (a staticlib linked by gcc into C programs) are in
//! crates/gort-cgo/ctests.

use gort_testing as common;

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort_cgo::{call, callback};
use gort_sched::Runtime;
use gort_unwind_cframes as c;

fn rt(procs: usize) -> Runtime {
    Runtime::builder().procs(procs).build().unwrap()
}

fn tid() -> libc::c_long {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

#[test]
fn call_returns_the_c_result_and_counts() {
    let (v, counts) = rt(1)
        .run(|| {
            // SAFETY: the closure only calls the C function.
            let v: i32 = (0..100).map(|i| unsafe { call(|| c::gort_c_inc(i)) }).sum();
            (v, gort_cgo::counts().unwrap())
        })
        .unwrap();
    assert_eq!(v, (1..=100).sum::<i32>());
    assert_eq!(counts.calls, 100);
    assert_eq!(counts.in_c, 0);
}

#[test]
fn call_from_a_plain_thread_just_runs() {
    // SAFETY: the closure only calls the C function.
    assert_eq!(unsafe { call(|| c::gort_c_add(2, 3)) }, 5);
}

/// With one P, a goroutine blocked in C does not stop another goroutine:
/// its P is handed off while it sleeps. The C call ends only when the other
/// goroutine has run (or after 30 s, which fails the test).
#[test]
fn a_blocking_c_call_does_not_stall_other_goroutines() {
    let released_by_other = rt(1)
        .run(|| {
            let in_c = Arc::new(AtomicBool::new(false));
            let other_ran = Arc::new(AtomicBool::new(false));
            let (i, o) = (in_c.clone(), other_ran.clone());
            let blocker = gort_sched::go(move || {
                // SAFETY: the closure calls the C function and reads
                // atomics; it never parks.
                unsafe {
                    call(|| {
                        i.store(true, Ordering::SeqCst);
                        let deadline = Instant::now() + Duration::from_secs(30);
                        while !o.load(Ordering::SeqCst) && Instant::now() < deadline {
                            c::gort_c_sleep_us(1_000);
                        }
                        o.load(Ordering::SeqCst)
                    })
                }
            });
            while !in_c.load(Ordering::SeqCst) {
                gort_sched::yield_now();
            }
            let o = other_ran.clone();
            gort_sched::go(move || o.store(true, Ordering::SeqCst));
            blocker.join().unwrap()
        })
        .unwrap();
    assert!(
        released_by_other,
        "the other goroutine did not run while the first was in C (30 s)"
    );
}

struct Nest {
    depth: usize,
    ids: Vec<u64>,
    tids: Vec<libc::c_long>,
    sps: Vec<usize>,
    marks: [c::Marks; 4],
}

unsafe extern "C" fn nest_cb(arg: *mut c_void) {
    // SAFETY: this frame holds nothing; C passes our Nest.
    unsafe {
        callback(|| {
            let n = &mut *(arg as *mut Nest);
            n.ids.push(gort_sched::id());
            n.tids.push(tid());
            n.sps.push(gort_arch::current_sp());
            // Park inside the callback: the M schedules below the C frames.
            gort_sched::sleep(Duration::from_millis(1));
            gort_sched::yield_now();
            assert_eq!(n.tids.last(), Some(&tid()), "moved off its thread");
            if n.depth < 3 {
                n.depth += 1;
                let d = n.depth;
                let m: *mut c::Marks = &mut n.marks[d];
                call(|| c::gort_c_call(nest_cb, arg, m));
            }
        })
    }
}

/// Rust -> C -> Rust -> C -> Rust -> C -> Rust: each callback runs as the
/// same goroutine on the same thread, lower on its stack than the one
/// before, and parks and yields while other goroutines run.
#[test]
fn nested_callbacks_run_as_the_calling_goroutine() {
    let rounds = common::scaled(50);
    rt(2)
        .run(move || {
            let busy = Arc::new(AtomicUsize::new(0));
            let mut first_sps: Option<Vec<usize>> = None;
            for _ in 0..rounds {
                let b = busy.clone();
                let bg = gort_sched::go(move || {
                    for _ in 0..20 {
                        b.fetch_add(1, Ordering::Relaxed);
                        gort_sched::yield_now();
                    }
                });
                let mut n = Box::new(Nest {
                    depth: 1,
                    ids: vec![],
                    tids: vec![],
                    sps: vec![],
                    marks: Default::default(),
                });
                let me = gort_sched::id();
                let arg: *mut Nest = &mut *n;
                let m: *mut c::Marks = &mut n.marks[1];
                // SAFETY: the closure only calls the C function.
                unsafe { call(|| c::gort_c_call(nest_cb, arg.cast(), m)) };
                assert_eq!(n.ids, vec![me; 3]);
                assert!(n.tids.windows(2).all(|w| w[0] == w[1]));
                assert!(n.sps.windows(2).all(|w| w[1] < w[0]), "{:x?}", n.sps);
                for d in 1..=3 {
                    assert_eq!(n.marks[d].counts(), (1, 1), "C frame at depth {d}");
                }
                // The same positions every round: nothing leaks stack.
                match &first_sps {
                    None => first_sps = Some(n.sps.clone()),
                    Some(f) => assert_eq!(f, &n.sps),
                }
                bg.join().unwrap();
            }
            assert_eq!(busy.load(Ordering::Relaxed), 20 * rounds);
        })
        .unwrap();
}

unsafe extern "C" fn panicking_cb(arg: *mut c_void) {
    // SAFETY: this frame holds nothing.
    unsafe {
        callback(|| {
            let depth = *(arg as *const usize);
            if depth == 0 {
                panic!("deep callback failed");
            }
        })
    }
}

/// A panic in a callback skips the C frames (the 40,000-byte one included)
/// and is recovered in the Rust frame that made the call; the goroutine
/// goes on normally, on the same stack positions every time.
#[test]
fn a_panic_in_a_callback_is_recovered_across_c_frames() {
    let rounds = common::scaled(2000);
    rt(2)
        .run(move || {
            let mut sp0 = None;
            for i in 0..rounds {
                let mut marks = c::Marks::default();
                let mut zero = 0usize;
                let m: *mut c::Marks = &mut marks;
                let arg: *mut usize = &mut zero;
                let r = gort_unwind::recover(|| {
                    // SAFETY: the closure only calls the C function.
                    unsafe { call(|| c::gort_c_call_deep(panicking_cb, arg.cast(), m)) }
                });
                let p = r.unwrap_err();
                assert_eq!(p.message(), Some("deep callback failed"));
                assert_eq!(marks.counts(), (1, 0), "C code after the callback ran");
                // The goroutine still works: parks, calls C again.
                if i % 100 == 0 {
                    gort_sched::sleep(Duration::from_micros(10));
                }
                let mut one = 1usize;
                let arg: *mut usize = &mut one;
                // SAFETY: as above.
                unsafe { call(|| c::gort_c_call_deep(panicking_cb, arg.cast(), m)) };
                assert_eq!(marks.counts(), (2, 1));
                let sp = gort_arch::current_sp();
                assert_eq!(*sp0.get_or_insert(sp), sp);
            }
            let counts = gort_cgo::counts().unwrap();
            assert_eq!(counts.in_c, 0);
            assert_eq!(counts.callbacks, 2 * rounds as u64);
        })
        .unwrap();
}

/// Go's shape, `recover(|| call(..))` with a panicking callback: with
/// nothing to drop between the call and the recover, the panic goes from
/// the call straight to the recover (one unwind, the callback body's);
/// with a destructor or a deferred block between, the unwinder runs them
/// as before. Also after parking inside the recover (possibly moving to
/// another thread).
#[test]
fn a_recovered_panic_across_c_skips_the_second_unwind_only_when_nothing_runs() {
    struct Count<'a>(&'a std::cell::Cell<u32>);
    impl Drop for Count<'_> {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    rt(2)
        .run(|| {
            let mut marks = c::Marks::default();
            let m: *mut c::Marks = &mut marks;
            let mut zero = 0usize;
            let arg: *mut usize = &mut zero;
            let panicking = || {
                // SAFETY: the closure only calls the C function.
                unsafe { call(|| c::gort_c_call_deep(panicking_cb, arg.cast(), m)) }
            };
            // Locked, so that the per-thread jump count is this goroutine's.
            gort_sched::lock_os_thread();
            for _ in 0..common::scaled(100) {
                let before = gort_unwind::jumps_on_this_thread();
                let p = gort_unwind::recover(panicking).unwrap_err();
                assert_eq!(p.message(), Some("deep callback failed"));
                assert_eq!(gort_unwind::jumps_on_this_thread(), before + 1);

                let dropped = std::cell::Cell::new(0);
                let ran = std::cell::Cell::new(false);
                let p = gort_unwind::recover(|| {
                    let _c = Count(&dropped);
                    gort_unwind::defer! { ran.set(true) }
                    panicking()
                })
                .unwrap_err();
                assert_eq!(p.message(), Some("deep callback failed"));
                assert_eq!((dropped.get(), ran.get()), (1, true));
                assert_eq!(gort_unwind::jumps_on_this_thread(), before + 1);
            }
            gort_sched::unlock_os_thread();
            for _ in 0..common::scaled(100) {
                let p = gort_unwind::recover(|| {
                    gort_sched::sleep(Duration::from_micros(50));
                    panicking()
                })
                .unwrap_err();
                assert_eq!(p.message(), Some("deep callback failed"));
            }
            assert_eq!(marks.counts().1, 0, "C code after the callback ran");
        })
        .unwrap();
}

static FOREIGN_CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn counting_cb(_arg: *mut c_void) {
    // SAFETY: this frame holds nothing.
    unsafe {
        callback(|| {
            let n = FOREIGN_CALLS.fetch_add(1, Ordering::Relaxed);
            assert!(gort_sched::id() > 0);
            if n % 64 == 0 {
                gort_sched::yield_now();
            }
        })
    }
}

/// C threads the runtime did not create call back: every callback runs
/// exactly once, as a goroutine of the default callback runtime; threads
/// that exit give their M back.
#[test]
fn callbacks_from_c_threads() {
    let per = common::scaled(10_000) as std::ffi::c_long;
    for round in 0..4 {
        FOREIGN_CALLS.store(0, Ordering::Relaxed);
        // SAFETY: C calls back through `callback`.
        let e = unsafe { c::gort_c_threads(16, per, counting_cb, std::ptr::null_mut()) };
        assert_eq!(e, 0);
        assert_eq!(
            FOREIGN_CALLS.load(Ordering::Relaxed),
            16 * per as usize,
            "round {round}"
        );
    }
}

fn main_thread_like_sum() -> usize {
    FOREIGN_CALLS.load(Ordering::Relaxed)
}

#[test]
fn callbacks_from_a_plain_thread() {
    // This test's thread is a plain thread (libtest's): like a C program's
    // main thread, it gets an extra M on its first callback.
    let n = common::scaled(1000) as std::ffi::c_long;
    let before = main_thread_like_sum();
    let _ = before;
    let hits = Arc::new(AtomicUsize::new(0));
    let arg = Arc::as_ptr(&hits) as *mut c_void;
    unsafe extern "C" fn cb(arg: *mut c_void) {
        // SAFETY: this frame holds nothing; arg is our counter.
        unsafe {
            callback(|| {
                let h = &*(arg as *const AtomicUsize);
                h.fetch_add(1, Ordering::Relaxed);
            })
        }
    }
    // SAFETY: C calls back through `callback`.
    unsafe { c::gort_c_loop(n, cb, arg) };
    assert_eq!(hits.load(Ordering::Relaxed), n as usize);
}

unsafe extern "C" fn parking_cb(arg: *mut c_void) {
    // SAFETY: this frame holds nothing; arg is a channel receiver.
    unsafe {
        callback(|| {
            let rx = &*(arg as *const gort_sync::chan::Receiver<u64>);
            let t = tid();
            let v = rx.recv().unwrap();
            gort_sched::yield_now();
            assert_eq!(tid(), t, "a callback's goroutine moved off its thread");
            std::hint::black_box(v);
        })
    }
}

/// golang/go#62102 under stress: 64 goroutines on 2 Ps call C, which calls back;
/// each callback parks on a channel and yields, so Ms hand Ps around while
/// callbacks wait. C always continues on the thread it called from (the
/// goroutine stayed locked until it was back in C), and every C frame
/// after the callback runs exactly once.
#[test]
fn callbacks_that_park_return_to_c_on_the_same_thread() {
    let per = common::scaled(200);
    rt(2)
        .run(move || {
            let (tx, rx) = gort_sync::chan::bounded::<u64>(0);
            let feeder = gort_sched::go(move || {
                for i in 0..(64 * per) as u64 {
                    tx.send(i).unwrap();
                }
            });
            let workers: Vec<_> = (0..64)
                .map(|_| {
                    let rx = rx.clone();
                    gort_sched::go(move || {
                        let mut tids = [0 as std::ffi::c_long; 2];
                        for _ in 0..per {
                            let arg = &rx as *const _ as *mut c_void;
                            let t: *mut std::ffi::c_long = tids.as_mut_ptr();
                            // SAFETY: the closure only calls the C function.
                            unsafe { call(|| c::gort_c_call_tid(parking_cb, arg, t)) };
                            assert_eq!(tids[0], tids[1], "C resumed on another thread");
                        }
                    })
                })
                .collect();
            feeder.join().unwrap();
            for w in workers {
                w.join().unwrap();
            }
            let counts = gort_cgo::counts().unwrap();
            assert_eq!(counts.callbacks, 64 * per as u64);
            assert_eq!(counts.in_c, 0);
        })
        .unwrap();
}

/// golang/go#21827: the scheduler refuses to switch goroutines on an M in C.
#[test]
fn parking_inside_a_c_call_is_a_fatal_error() {
    const NAME: &str = "parking_inside_a_c_call_is_a_fatal_error";
    if common::is_child(NAME) {
        rt(1)
            .run(|| {
                // SAFETY: the closure holds nothing with a destructor.
                unsafe { call(gort_sched::yield_now) }
            })
            .unwrap();
        return;
    }
    assert_child_died_with(
        NAME,
        "fatal error: gort: goroutine switch while its M is in C",
    );
}

/// Runs test `name` again as a child; it must fail and print `message`.
fn assert_child_died_with(name: &str, message: &str) {
    let out = common::run_child(name);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{name} exited with {:?}", out.status);
    assert!(stderr.contains(message), "{stderr}");
}

/// A callback from C code that was called with `syscall` (no P, not in
/// C state) is a clear fatal error, not a scheduler corruption.
#[test]
fn a_callback_inside_syscall_is_a_fatal_error() {
    const NAME: &str = "a_callback_inside_syscall_is_a_fatal_error";
    if common::is_child(NAME) {
        rt(1)
            .run(|| {
                let mut marks = c::Marks::default();
                let m: *mut c::Marks = &mut marks;
                // SAFETY: C calls back through `callback`.
                gort_sched::syscall(|| unsafe {
                    c::gort_c_call(parking_cb, std::ptr::null_mut(), m)
                });
            })
            .unwrap();
        return;
    }
    assert_child_died_with(NAME, "a callback from C inside gort::syscall");
}

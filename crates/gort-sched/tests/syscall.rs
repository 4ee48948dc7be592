//! syscall(f): the P of a goroutine blocked in a syscall goes to other
//! goroutines; the fast and slow exits; stop-the-world with Ps in syscalls;
//! locked goroutines. All three targets.

#![cfg(not(loom))]

use gort_sched::{go, sleep, syscall, yield_now, Runtime};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort_testing::under_qemu;

fn rt(procs: usize) -> Runtime {
    Runtime::builder().procs(procs).build().unwrap()
}

fn usleep(us: u32) {
    // SAFETY: usleep has no preconditions.
    unsafe { libc::usleep(us) };
}

/// Blocks (in `usleep` steps, a real blocking call) until `flag` is set,
/// for at most 30 s; whether the flag was seen. A wait that only another
/// goroutine can end: with the P stuck in the call it times out.
fn block_until(flag: &AtomicBool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !flag.load(Ordering::SeqCst) {
        if Instant::now() > deadline {
            return false;
        }
        usleep(1_000);
    }
    true
}

/// At procs 1: a goroutine runs `before`, then blocks in a syscall until
/// another goroutine, made runnable only then, has run; whether it did
/// (false: the call timed out after 30 s). The only P belongs to the
/// blocked goroutine's M until sysmon retakes it, so the other goroutine
/// can run only after that handoff.
fn other_goroutine_runs_while_a_syscall_blocks(before: fn()) -> bool {
    rt(1)
        .run(move || {
            let started = Arc::new(AtomicBool::new(false));
            let other_ran = Arc::new(AtomicBool::new(false));
            let (s, o) = (started.clone(), other_ran.clone());
            let blocker = go(move || {
                before();
                syscall(|| {
                    s.store(true, Ordering::SeqCst);
                    block_until(&o)
                })
            });
            while !started.load(Ordering::SeqCst) {
                yield_now();
            }
            let o = other_ran.clone();
            go(move || o.store(true, Ordering::SeqCst));
            blocker.join().unwrap()
        })
        .unwrap()
}

#[test]
fn a_blocking_syscall_does_not_stop_other_goroutines_at_procs_1() {
    for _ in 0..3 {
        assert!(
            other_goroutine_runs_while_a_syscall_blocks(|| {}),
            "the other goroutine did not run while the syscall blocked (30 s)"
        );
    }
}

#[test]
fn a_syscall_that_blocks_after_a_run_of_short_ones_still_loses_its_p() {
    // 100 ms of short syscalls first: sysmon sees only short ones and
    // backs off its polling (retake.rs, `Backoff`); the blocking call that
    // follows must still lose its P (within two backed-off polls).
    let short_calls = || {
        let t = Instant::now();
        let mut calls = 0u64;
        while t.elapsed() < Duration::from_millis(100) {
            calls += syscall(|| 1);
        }
        assert!(calls > 0);
    };
    assert!(
        other_goroutine_runs_while_a_syscall_blocks(short_calls),
        "the other goroutine did not run while the syscall blocked (30 s)"
    );
}

#[test]
fn repeated_blocking_syscalls_each_hand_the_p_to_the_waiting_goroutine() {
    // The same goroutine blocks again and again in one runtime (sysmon
    // retakes its P at first sight from the second call on, see
    // retake.rs); each time a goroutine made runnable just before must
    // run while the call still blocks, not after it.
    let rounds = if under_qemu() { 5 } else { 20 };
    let (ran_during, handoffs) = rt(1)
        .run(move || {
            let before = gort_sched::stats().syscall_handoffs;
            let mut ran_during = 0;
            for _ in 0..rounds {
                let ran = Arc::new(AtomicBool::new(false));
                let r = ran.clone();
                let other = go(move || r.store(true, Ordering::SeqCst));
                // 20 ms: 100x the 200 µs target, so a miss is a bug, not
                // a slow machine.
                let during = syscall(|| {
                    usleep(20_000);
                    ran.load(Ordering::SeqCst)
                });
                other.join().unwrap();
                ran_during += usize::from(during);
            }
            (ran_during, gort_sched::stats().syscall_handoffs - before)
        })
        .unwrap();
    assert_eq!(
        ran_during, rounds,
        "the other goroutine ran during the call"
    );
    assert!(
        handoffs >= rounds as u64,
        "{handoffs} handoffs for {rounds} calls"
    );
}

#[test]
fn many_syscalls_alongside_compute_goroutines_all_complete() {
    let n = if under_qemu() { 40 } else { 200 };
    let done = rt(2)
        .run(move || {
            let count = Arc::new(AtomicUsize::new(0));
            let mut hs = Vec::new();
            for i in 0..n {
                let c = count.clone();
                hs.push(go(move || {
                    for _ in 0..5 {
                        syscall(|| usleep(if i % 3 == 0 { 2_000 } else { 10 }));
                        yield_now();
                    }
                    c.fetch_add(1, Ordering::SeqCst);
                }));
            }
            for _ in 0..8 {
                let c = count.clone();
                hs.push(go(move || {
                    let mut x = 0u64;
                    for i in 0..20_000u64 {
                        x = x.wrapping_mul(31).wrapping_add(i);
                        if i % 1_000 == 0 {
                            yield_now();
                        }
                    }
                    std::hint::black_box(x);
                    c.fetch_add(1, Ordering::SeqCst);
                }));
            }
            for h in hs {
                h.join().unwrap();
            }
            count.load(Ordering::SeqCst)
        })
        .unwrap();
    assert_eq!(done, n + 8);
}

#[test]
fn syscall_returns_values_and_carries_panics_out() {
    rt(2)
        .run(|| {
            assert_eq!(syscall(|| 6 * 7), 42);
            let r =
                std::panic::catch_unwind(|| syscall(|| -> u32 { panic!("inside the syscall") }));
            assert!(r.is_err());
            // The goroutine is schedulable again afterwards.
            assert_eq!(go(|| 1).join().unwrap(), 1);
            yield_now();
        })
        .unwrap();
    // Outside a goroutine, f just runs.
    assert_eq!(syscall(|| 5), 5);
}

#[test]
fn set_procs_stops_the_ps_of_goroutines_in_syscalls() {
    rt(4)
        .run(|| {
            let blockers: Vec<_> = (0..3).map(|_| go(|| syscall(|| usleep(30_000)))).collect();
            sleep(Duration::from_millis(2));
            for n in [2, 1, 3, 4] {
                gort_sched::set_procs(n).unwrap();
                assert_eq!(gort_sched::procs(), n);
            }
            for b in blockers {
                b.join().unwrap();
            }
        })
        .unwrap();
}

#[test]
fn a_locked_goroutine_stays_on_its_thread_through_slow_syscall_exits() {
    rt(1)
        .run(|| {
            let h = go(|| {
                gort_sched::lock_os_thread();
                // SAFETY: gettid has no preconditions.
                let tid = unsafe { libc::gettid() };
                for _ in 0..5 {
                    // Long enough for sysmon to retake the P: the exit is slow.
                    syscall(|| usleep(2_000));
                    // SAFETY: as above.
                    assert_eq!(unsafe { libc::gettid() }, tid);
                }
                gort_sched::unlock_os_thread();
            });
            let spinner = go(|| {
                for _ in 0..200 {
                    yield_now();
                }
            });
            h.join().unwrap();
            spinner.join().unwrap();
        })
        .unwrap();
}

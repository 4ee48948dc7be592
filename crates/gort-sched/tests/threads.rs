//! No OS thread outlives `run`: every M the runtime started is joined
//! before `run` returns, including Ms that were idle, spinning, locked to a
//! goroutine, or ended by a goroutine exiting while locked. One test in
//! this binary, so that no other test's threads come and go meanwhile.

#![cfg(not(loom))]

use gort_sched::park::{park, WaitReason};
use gort_sched::{go, yield_now, Runtime};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static PEAK: AtomicUsize = AtomicUsize::new(0);

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// The names of the process's threads, for a failure message.
fn thread_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn run_leaves_no_thread_behind() {
    let before = threads();
    let before_names = thread_names();
    for procs in [1, 2, 4, 8] {
        PEAK.store(0, Ordering::SeqCst);
        Runtime::builder()
            .procs(procs)
            .build()
            .unwrap()
            .run(|| {
                let mut hs = Vec::new();
                for i in 0..64 {
                    hs.push(go(move || {
                        if i % 8 == 0 {
                            gort_sched::lock_os_thread();
                        }
                        for _ in 0..10 {
                            PEAK.fetch_max(threads(), Ordering::SeqCst);
                            yield_now();
                        }
                        // Exiting locked ends this goroutine's thread.
                    }));
                }
                // Goroutines parked forever are unwound at shutdown.
                for _ in 0..8 {
                    go(|| park(WaitReason::Other("forever"), |_| true));
                }
                for h in hs {
                    h.join().unwrap();
                }
            })
            .unwrap();
        let peak = PEAK.load(Ordering::SeqCst);
        if procs > 1 {
            assert!(
                peak > before,
                "procs {procs}: no M thread ever ran (peak {peak})"
            );
        }
        // run joined every M thread; under qemu-user the emulator's host
        // thread can outlive the guest's join by a moment, so allow a short
        // grace period. A leaked thread never goes away.
        let deadline = Instant::now() + Duration::from_secs(2);
        while threads() != before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let after = threads();
        assert!(
            after == before,
            "procs {procs}: {after} threads after run, {before} before: before {before_names:?}, after {:?}",
            thread_names()
        );
    }
}

//! The main goroutine's exit racing another goroutine's exit on another M:
//! whichever brings the goroutine count to zero must see the shutdown and
//! end the run (a rare hang before the fix: the other exit reached zero
//! between main's decrement and its begin_shutdown, so nobody woke `run`).

#![cfg(not(loom))]

use gort_sched::{go, yield_now, Runtime};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[test]
fn main_exiting_while_another_goroutine_exits_ends_the_run() {
    let runs = if gort_testing::under_qemu() {
        300
    } else {
        3_000
    };
    let (tx, rx) = mpsc::channel();
    // The runs happen on a helper thread so that a hang fails the test
    // (after a generous timeout) instead of hanging the harness.
    std::thread::spawn(move || {
        let rt = Runtime::builder().procs(2).build().unwrap();
        for i in 0..runs {
            rt.run(move || {
                // A goroutine that exits just as main does, on the other M
                // (which steals it while main spins): both exits race.
                let flag = Arc::new(AtomicBool::new(false));
                let theirs = flag.clone();
                drop(go(move || theirs.store(true, Ordering::Release)));
                let start = Instant::now();
                while !flag.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                    if start.elapsed() > Duration::from_millis(100) {
                        yield_now(); // not stolen: let it run here
                    }
                }
                for _ in 0..(i % 64) {
                    std::hint::spin_loop();
                }
            })
            .unwrap();
            tx.send(i).unwrap();
        }
    });
    let mut done = 0;
    while done < runs {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(_) => done += 1,
            Err(_) => panic!("run {done} of {runs} did not return"),
        }
    }
}

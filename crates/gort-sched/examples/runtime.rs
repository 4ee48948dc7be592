//! gort-sched alone: a runtime with two Ps, goroutines that spawn, yield,
//! sleep, park and wake each other, and join, with no channels (those are
//! gort-sync's) and no facade.
//!
//! ```text
//! cargo run -p gort-sched --example runtime
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gort_sched::park::{park_with, WaitReason, Waker};
use gort_sched::{go, Runtime};

fn main() -> Result<(), gort_sched::Error> {
    let rt = Runtime::builder().procs(2).build()?;
    let total = rt.run(|| {
        // 1. Fan out: 100 goroutines, each yields a few times, then returns
        //    a value that join() hands back.
        let handles: Vec<_> = (1..=100u64)
            .map(|n| {
                go(move || {
                    for _ in 0..3 {
                        gort_sched::yield_now();
                    }
                    n * n
                })
            })
            .collect();
        let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        println!("sum of squares from 100 goroutines: {sum}");
        assert_eq!(sum, 338_350);

        // 2. Park and ready by hand, the primitive gort-sync builds on: a
        //    goroutine parks with a Waker; another wakes it after a sleep.
        let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
        let woken = Arc::new(AtomicU64::new(0));
        let sleeper = {
            let (slot, woken) = (slot.clone(), woken.clone());
            go(move || {
                // `register` publishes the waker and says "park" (true).
                park_with(WaitReason::Other("example"), None, |w| {
                    *slot.lock().unwrap() = Some(w.clone());
                    true
                });
                woken.fetch_add(1, Ordering::SeqCst);
            })
        };
        go(move || loop {
            gort_sched::sleep(Duration::from_millis(5));
            if let Some(w) = slot.lock().unwrap().take() {
                w.wake();
                break;
            }
        })
        .join()
        .unwrap();
        sleeper.join().unwrap();
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        println!("a parked goroutine was woken by another");
        println!(
            "goroutines now: {}, procs: {}",
            gort_sched::num_goroutines(),
            gort_sched::procs()
        );
        sum
    })?;
    assert_eq!(total, 338_350);
    println!("ok");
    Ok(())
}

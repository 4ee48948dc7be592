//! Liveness: no goroutine starves, without signals (docs/sched.md,
//! "Liveness"). Fair slices end runnext chains; sysmon's marks make
//! goroutines that enter the runtime yield; sysmon retakes the P of a
//! goroutine that never does. Bounds are loose (10x or more): latency is
//! the behaviour here, and qemu-user runs these 5-20x slower.

use gort::chan;
use gort_testing::under_qemu;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rt(procs: usize) -> gort::Runtime {
    gort::Runtime::builder().procs(procs).build().unwrap()
}

/// Loose bounds, looser under qemu.
fn bound(ms: u64) -> Duration {
    Duration::from_millis(if under_qemu() { ms * 5 } else { ms })
}

/// Spins on the CPU for `d` without entering the runtime.
fn spin_for(d: Duration) {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < d {
        for i in 0..1000u64 {
            x = black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
    black_box(x);
}

/// Spins until `stop` is set, without entering the runtime.
fn spin_until(stop: &AtomicBool) {
    let mut x = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for i in 0..1000u64 {
            x = black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
    black_box(x);
}

/// A pair of goroutines ping-ponging on rendezvous channels until `stop`.
fn ping_pong_pair(stop: Arc<AtomicBool>) {
    let (tx1, rx1) = chan::bounded::<u32>(0);
    let (tx2, rx2) = chan::bounded::<u32>(0);
    let s = stop.clone();
    gort::go(move || {
        while !s.load(Ordering::Relaxed) {
            if tx1.send(1).is_err() || rx2.recv().is_err() {
                break;
            }
        }
    });
    gort::go(move || {
        while !stop.load(Ordering::Relaxed) {
            match rx1.recv() {
                Ok(v) => {
                    if tx2.send(v).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
}

fn sleep_beside_pairs(procs: usize, pairs: usize) -> Duration {
    rt(procs)
        .run(move || {
            let stop = Arc::new(AtomicBool::new(false));
            for _ in 0..pairs {
                ping_pong_pair(stop.clone());
            }
            gort::yield_now();
            let t = Instant::now();
            gort::sleep(Duration::from_millis(10));
            let slept = t.elapsed();
            stop.store(true, Ordering::Relaxed);
            slept
        })
        .unwrap()
}

#[test]
fn ping_pong_does_not_hold_a_sleep_at_procs_1() {
    let slept = sleep_beside_pairs(1, 1);
    assert!(slept < bound(500), "a 10 ms sleep took {slept:?}");
}

#[test]
fn ping_pong_pairs_do_not_hold_a_sleep_at_procs_2() {
    let slept = sleep_beside_pairs(2, 4);
    assert!(slept < bound(500), "a 10 ms sleep took {slept:?}");
}

#[test]
fn a_goroutine_a_ping_pong_pair_woke_runs_at_procs_1() {
    // One of the pair readies main into runnext; the pair's next hop
    // readies its partner there, pushing main to the ring behind it. From
    // then on each park hands the P to the partner in runnext: when the
    // slice runs out at such a park, the partner must lose runnext's
    // priority, or main waits for ever (a flake of the sleep test above
    // when main's timer fired on the P itself). A plain thread ends the
    // pair after 10 s so that a failure is an assertion, not a hang.
    let waited = rt(1)
        .run(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let (wake_tx, wake_rx) = chan::bounded::<Instant>(1);
            let (tx1, rx1) = chan::bounded::<u32>(0);
            let (tx2, rx2) = chan::bounded::<u32>(0);
            let s = stop.clone();
            gort::go(move || {
                let mut wake = Some(wake_tx);
                while !s.load(Ordering::Relaxed) {
                    if let Some(w) = wake.take() {
                        w.send(Instant::now()).unwrap();
                    }
                    if tx1.send(1).is_err() || rx2.recv().is_err() {
                        break;
                    }
                }
            });
            let s = stop.clone();
            gort::go(move || {
                while !s.load(Ordering::Relaxed) {
                    match rx1.recv() {
                        Ok(v) if tx2.send(v).is_ok() => {}
                        _ => break,
                    }
                }
            });
            let s = stop.clone();
            let watchdog = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(10));
                s.store(true, Ordering::Relaxed);
            });
            let woken = wake_rx.recv().unwrap();
            let waited = woken.elapsed();
            stop.store(true, Ordering::Relaxed);
            drop(watchdog);
            waited
        })
        .unwrap();
    assert!(
        waited < bound(500),
        "main waited {waited:?} behind the pair"
    );
}

#[test]
fn a_goroutine_woken_from_a_plain_thread_runs_beside_ping_pong() {
    for procs in [1, 2] {
        let waited = rt(procs)
            .run(move || {
                let stop = Arc::new(AtomicBool::new(false));
                for _ in 0..procs {
                    ping_pong_pair(stop.clone());
                }
                let (tx, rx) = chan::bounded::<Instant>(0);
                let (done_tx, done_rx) = chan::bounded::<Duration>(1);
                gort::go(move || {
                    let sent = rx.recv().unwrap();
                    done_tx.send(sent.elapsed()).unwrap();
                });
                let t = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(5));
                    tx.send(Instant::now()).unwrap();
                });
                let waited = done_rx.recv().unwrap();
                stop.store(true, Ordering::Relaxed);
                t.join().unwrap();
                waited
            })
            .unwrap();
        assert!(
            waited < bound(500),
            "procs {procs}: the woken goroutine waited {waited:?}"
        );
    }
}

/// At procs 1, how late a 50 ms sleep of main is beside a goroutine that
/// runs `hog` for 1 s without entering the runtime.
fn timer_lateness_beside(hog: fn()) -> Duration {
    rt(1)
        .run(move || {
            let t = Instant::now();
            let h = gort::go(hog);
            // Parks: the hog takes the only P.
            gort::sleep(Duration::from_millis(50));
            let late = t.elapsed().saturating_sub(Duration::from_millis(50));
            h.join().unwrap();
            late
        })
        .unwrap()
}

#[test]
fn a_timer_fires_beside_a_cpu_loop_at_procs_1() {
    let late = timer_lateness_beside(|| spin_for(Duration::from_secs(1)));
    assert!(late < bound(100), "the timer fired {late:?} late");
}

#[test]
fn a_timer_fires_beside_a_thread_sleep_at_procs_1() {
    let late = timer_lateness_beside(|| std::thread::sleep(Duration::from_secs(1)));
    assert!(late < bound(100), "the timer fired {late:?} late");
}

#[test]
fn a_std_mutex_held_across_a_park_does_not_hang_at_procs_1() {
    let n = rt(1)
        .run(|| {
            let m = Arc::new(std::sync::Mutex::new(0u32));
            let held = Arc::new(AtomicBool::new(false));
            let (m1, h1) = (m.clone(), held.clone());
            let holder = gort::go(move || {
                let mut g = m1.lock().unwrap();
                h1.store(true, Ordering::SeqCst);
                // Parks holding the std lock.
                gort::sleep(Duration::from_millis(20));
                *g += 1;
            });
            while !held.load(Ordering::SeqCst) {
                gort::yield_now();
            }
            // Blocks this thread (and, without retake, the only P) on the
            // std lock until the holder runs again.
            *m.lock().unwrap() += 1;
            holder.join().unwrap();
            let n = *m.lock().unwrap();
            n
        })
        .unwrap();
    assert_eq!(n, 2);
}

#[test]
fn busy_non_blocking_loops_beside_a_sleeper_finish() {
    // crossbeam-channel's `loop_try`, with goroutines for threads.
    rt(2)
        .run(|| {
            let (tx, rx) = chan::bounded::<u32>(0);
            let (done_tx, done_rx) = chan::bounded::<()>(0);
            let r1 = {
                let rx = rx.clone();
                let done_rx = done_rx.clone();
                gort::go(move || loop {
                    if rx.try_recv().is_ok() {
                        return;
                    }
                    if done_rx.try_recv().is_ok() {
                        return;
                    }
                })
            };
            let r2 = gort::go(move || loop {
                gort::select! {
                    recv(rx) -> _ => return,
                    recv(done_rx) -> _ => return,
                    default => {}
                }
            });
            let s = gort::go(move || {
                gort::sleep(Duration::from_millis(500));
                tx.send(1).unwrap();
                done_tx.send(()).unwrap();
            });
            s.join().unwrap();
            r1.join().unwrap();
            r2.join().unwrap();
        })
        .unwrap();
}

#[test]
fn dump_string_returns_beside_eight_cpu_loops() {
    let dump = rt(2)
        .run(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let s = stop.clone();
                    gort::go(move || spin_until(&s))
                })
                .collect();
            gort::sleep(Duration::from_millis(30));
            let d = gort::dump_string();
            stop.store(true, Ordering::Relaxed);
            for h in hs {
                h.join().unwrap();
            }
            d
        })
        .unwrap();
    assert!(dump.contains("running"), "{dump}");
}

#[test]
fn cpu_bound_goroutines_stay_within_the_thread_cap() {
    const CAP: usize = 3;
    const PROCS: usize = 2;
    let (max_threads, max_retaken) = gort::Runtime::builder()
        .procs(PROCS)
        .max_retaken(CAP)
        .build()
        .unwrap()
        .run(|| {
            let max_threads = Arc::new(AtomicUsize::new(0));
            let max_retaken = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = (0..100)
                .map(|_| {
                    let (mt, mr) = (max_threads.clone(), max_retaken.clone());
                    gort::go(move || {
                        for _ in 0..4 {
                            spin_for(Duration::from_millis(10));
                            let s = gort::stats();
                            mt.fetch_max(s.threads, Ordering::Relaxed);
                            mr.fetch_max(s.retaken, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            (
                max_threads.load(Ordering::Relaxed),
                max_retaken.load(Ordering::Relaxed),
            )
        })
        .unwrap();
    assert!(
        max_threads <= CAP + PROCS,
        "{max_threads} threads for cap {CAP} at procs {PROCS}"
    );
    assert!(max_retaken <= CAP, "{max_retaken} retaken for cap {CAP}");
    assert!(max_retaken > 0, "no retake among 100 CPU-bound goroutines");
}

/// At procs 1 with retakes off, a goroutine that loops on `op` (a
/// runtime entry that never blocks) lets a sleeping main run again: only
/// cooperative preemption can.
fn main_wakes_beside_a_loop_on(op: LoopOp) -> Duration {
    gort::Runtime::builder()
        .procs(1)
        .max_retaken(0)
        .build()
        .unwrap()
        .run(move || {
            let stop = Arc::new(AtomicBool::new(false));
            let s = stop.clone();
            let h = gort::go(move || {
                let ctx = LoopCtx::new();
                while !s.load(Ordering::Relaxed) {
                    op(&ctx);
                }
            });
            let t = Instant::now();
            gort::sleep(Duration::from_millis(10));
            let slept = t.elapsed();
            stop.store(true, Ordering::Relaxed);
            h.join().unwrap();
            slept
        })
        .unwrap()
}

/// One runtime entry that never blocks, looped on.
type LoopOp = fn(&LoopCtx);

struct LoopCtx {
    tx: chan::Sender<u32>,
    rx: chan::Receiver<u32>,
    _keep: chan::Receiver<u32>,
    mutex: gort::sync::Mutex<u32>,
}

impl LoopCtx {
    fn new() -> LoopCtx {
        let (tx, keep) = chan::bounded(1);
        tx.send(0).unwrap(); // full: try_send fails
        LoopCtx {
            tx,
            rx: chan::bounded(0).1,
            _keep: keep,
            mutex: gort::sync::Mutex::new(0),
        }
    }
}

#[test]
fn cooperative_preemption_at_the_runtime_entries() {
    let ops: [(&str, LoopOp); 6] = [
        ("try_recv", |c| {
            let _ = c.rx.try_recv();
        }),
        ("try_send", |c| {
            let _ = c.tx.try_send(1);
        }),
        ("select with default", |c| {
            gort::select! {
                recv(c.rx) -> _ => {},
                default => {}
            }
        }),
        ("mutex", |c| {
            *c.mutex.lock() += 1;
        }),
        ("go", |_| {
            gort::go(|| {});
        }),
        ("syscall", |_| gort::syscall(|| {})),
    ];
    for (name, op) in ops {
        let slept = main_wakes_beside_a_loop_on(op);
        assert!(slept < bound(500), "{name}: a 10 ms sleep took {slept:?}");
    }
}

/// Sets its flag when dropped: the goroutine that owns it was unwound.
struct SetOnDrop(&'static AtomicBool);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Waits up to `limit` for `flag`.
fn wait_for(flag: &AtomicBool, limit: Duration) -> bool {
    let start = Instant::now();
    while !flag.load(Ordering::SeqCst) {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Runs a runtime whose main goroutine starts `outside` in a goroutine,
/// lets it get going, and returns. Returns how long `run` took from main's
/// return. `outside` runs until `release`, then enters the runtime
/// (`yield_now`) and must be unwound there: `unwound` is set by its
/// destructor, `resumed` only if it ran on past the entry.
fn run_returns_beside(
    procs: usize,
    outside: fn(&'static AtomicBool),
    release: &'static AtomicBool,
    unwound: &'static AtomicBool,
    resumed: &'static AtomicBool,
) -> Duration {
    // On a thread of its own, so that a `run` that never returns fails the
    // test instead of hanging it.
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let main_returned = rt(procs)
            .run(move || {
                gort::go(move || {
                    let _guard = SetOnDrop(unwound);
                    outside(release);
                    gort::yield_now();
                    resumed.store(true, Ordering::SeqCst);
                });
                gort::sleep(Duration::from_millis(30));
                Instant::now()
            })
            .unwrap();
        done.send(main_returned.elapsed()).unwrap();
    });
    let took = ended
        .recv_timeout(bound(10_000))
        .unwrap_or_else(|_| panic!("procs {procs}: run did not return after main returned"));
    assert!(
        !unwound.load(Ordering::SeqCst),
        "the goroutine was still outside"
    );
    release.store(true, Ordering::SeqCst);
    assert!(
        wait_for(unwound, Duration::from_secs(20)),
        "the detached goroutine was not unwound at its next entry"
    );
    assert!(!resumed.load(Ordering::SeqCst), "it ran on past its entry");
    took
}

fn spin_outside(release: &'static AtomicBool) {
    spin_until(release);
}

fn block_in_syscall(release: &'static AtomicBool) {
    gort::syscall(|| {
        while !release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// `run_returns_beside` at procs 1 and 2, each with flags of its own.
fn run_returns_at_procs_1_and_2_beside(outside: fn(&'static AtomicBool)) {
    for procs in [1, 2] {
        let flag = || &*Box::leak(Box::new(AtomicBool::new(false)));
        let took = run_returns_beside(procs, outside, flag(), flag(), flag());
        assert!(
            took < bound(1000),
            "procs {procs}: run took {took:?} after main returned"
        );
    }
}

#[test]
fn run_returns_beside_a_goroutine_spinning_for_ever() {
    run_returns_at_procs_1_and_2_beside(spin_outside);
}

#[test]
fn run_returns_beside_a_goroutine_in_syscall_for_ever() {
    run_returns_at_procs_1_and_2_beside(block_in_syscall);
}

#[test]
fn set_procs_does_not_wait_for_a_goroutine_that_never_enters() {
    // On a thread of its own, so that a stop that never completes fails
    // the test instead of hanging it.
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let took = rt(2)
            .run(|| {
                let stop = Arc::new(AtomicBool::new(false));
                let s = stop.clone();
                let running = Arc::new(AtomicBool::new(false));
                let r = running.clone();
                let h = gort::go(move || {
                    r.store(true, Ordering::SeqCst);
                    spin_until(&s)
                });
                // Main keeps its P (no park), so the hog runs on the other
                // one, with nothing queued behind it.
                while !running.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
                let start = Instant::now();
                gort::set_procs(3).unwrap();
                let took = start.elapsed();
                stop.store(true, Ordering::Relaxed);
                h.join().unwrap();
                took
            })
            .unwrap();
        done.send(took).unwrap();
    });
    let took = ended
        .recv_timeout(bound(10_000))
        .unwrap_or_else(|_| panic!("set_procs never returned beside a hog"));
    assert!(took < bound(1000), "set_procs took {took:?} beside a hog");
}

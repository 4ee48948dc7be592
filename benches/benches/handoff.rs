//! Handoff latency: with one P, a goroutine blocks in a system
//! call while another goroutine is runnable; how long until the other one
//! runs? Go's shape is benches/go/handoff (a blocking `syscall.Syscall`).
//!
//! One call: the main goroutine spawns B (which only reads the clock),
//! reads the clock itself (t0) and enters `syscall(|| nanosleep 5 ms)`. B
//! sits in the P's run queue until sysmon hands the P to another M; it
//! records when it ran (t1). Latency = t1 - t0. Without a handoff it
//! would be the whole 5 ms.
//!
//! - first call: one call in a fresh runtime (sysmon asleep, no spare M
//!   yet: the handoff starts a thread), repeated over fresh runtimes;
//! - repeated: 20 calls in a row in one runtime;
//! - after_busy: 20 calls, each after the goroutine computed for 30 ms
//!   (Go's sysmon, finding nothing to retake for 1 ms, has backed off to
//!   10 ms sleeps by then: that is where Go's ~20 ms handoffs come from).
//!
//! Prints median and max of each. The design allows no timing assertions
//! in tests, so this is a bench binary, not a test.
//!
//! Run: `cargo bench -p gort-benches --bench handoff`
//! (`-- --calls N --fresh N --block-ms N --busy-ms N` to change the shape).

use std::time::{Duration, Instant};

fn block(d: Duration) {
    let ts = libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    };
    // SAFETY: nanosleep with a valid timespec and no remainder pointer.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

/// One handoff on the calling goroutine: the latency until a goroutine
/// made runnable just before the blocking call runs.
fn one_call(block_for: Duration) -> Duration {
    let b = gort_sched::go(Instant::now);
    let t0 = Instant::now();
    gort_sched::syscall(|| block(block_for));
    let t1 = b.join().expect("B");
    t1.saturating_duration_since(t0)
}

/// Computes (does not park or yield) for `d`.
fn busy(d: Duration) {
    let t = Instant::now();
    let mut x = 0u64;
    while t.elapsed() < d {
        for i in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
}

fn runtime() -> gort_sched::Runtime {
    gort_sched::Runtime::builder()
        .procs(1)
        .build()
        .expect("runtime")
}

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let median = v[v.len() / 2];
    let max = *v.last().expect("samples");
    let min = v[0];
    println!(
        "handoff/{name:<10} n={:<3} median {:>9.1} us   max {:>9.1} us   min {:>8.1} us",
        v.len(),
        median.as_secs_f64() * 1e6,
        max.as_secs_f64() * 1e6,
        min.as_secs_f64() * 1e6,
    );
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn main() {
    // `cargo bench` passes --bench; anything else criterion-like is ignored.
    let calls = arg("--calls", 20) as usize;
    let fresh = arg("--fresh", 10) as usize;
    let block_for = Duration::from_millis(arg("--block-ms", 5));

    let first: Vec<Duration> = (0..fresh)
        .map(|_| runtime().run(move || one_call(block_for)).expect("run"))
        .collect();
    stats("first", first);

    let repeated = runtime()
        .run(move || {
            // The first call of this runtime is not counted.
            one_call(block_for);
            (0..calls).map(|_| one_call(block_for)).collect::<Vec<_>>()
        })
        .expect("run");
    stats("repeated", repeated);

    let busy_for = Duration::from_millis(arg("--busy-ms", 30));
    let after_busy = runtime()
        .run(move || {
            one_call(block_for);
            (0..calls)
                .map(|_| {
                    busy(busy_for);
                    one_call(block_for)
                })
                .collect::<Vec<_>>()
        })
        .expect("run");
    stats("after_busy", after_busy);
    println!(
        "(procs 1; a goroutine blocks {} ms in syscall() while another is runnable; latency = until the other runs)",
        block_for.as_millis()
    );
}

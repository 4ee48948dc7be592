//! gort-sched against may and tokio (Go's figures come from benches/go/sched,
//! same shapes):
//!
//! - `spawn_join/procs{1,2}`: goroutines spawned in rounds of 10,000, each
//!   round joined handle by handle; one iteration = one goroutine (each
//!   sample runs whole rounds and scales the time to the iterations asked).
//!   `may_round1000`: may in rounds of 1,000, the stacks its pool keeps.
//! - `spawn_join_1m/procs{1,2}`: 1,000,000 goroutines spawned, then all
//!   joined; one iteration = one such round (divide by 1,000,000).
//! - `yield_ping_pong`: two goroutines on one P yielding in turn; one
//!   iteration = one yield, which switches to the other goroutine.
//!
//! Peers: tokio with `current_thread` for procs 1 and `multi_thread` with 2
//! workers for procs 2 (the spawning loop runs as a task on a worker, as the
//! main goroutine runs on a P); may with `set_workers(n)`, the spawning loop
//! in a coroutine. may's worker count is process-global and fixed once its
//! scheduler starts, so each may configuration runs in a child process (this
//! same binary, `GORT_BENCH_MAY_WORKERS=n`) that times the work itself and
//! reports the elapsed nanoseconds over a pipe. may cannot hold 1,000,000
//! live coroutines (two mappings per coroutine stack against
//! vm.max_map_count); the bench prints the error it gets instead.
//!
//! Each gort measurement runs in a fresh runtime, after an untimed warm-up
//! round of 10,000 goroutines (Gs and stacks to reuse, as a running program
//! has; Go's benchmarks warm up the same way).
//!
//! Run: `cargo bench -p gort-benches --bench sched`

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};

/// Goroutines spawned before a round is joined; below may's limit of about
/// 32,700 live coroutines.
const ROUND: u64 = 10_000;
/// may's pool of coroutine stacks kept for reuse (its default
/// `pool_capacity`).
const MAY_POOL: u64 = 1_000;
/// The headline: goroutines alive at once, then joined.
const MILLION: u64 = 1_000_000;

/// Spawns `n` goroutines in rounds of at most `round`, joining each round
/// handle by handle. `$spawn` makes one handle, `$join` waits for one.
macro_rules! spawn_join_rounds {
    ($n:expr, $round:expr, $spawn:expr, $join:expr) => {{
        let mut left: u64 = $n;
        let mut handles = Vec::with_capacity($round.min($n) as usize);
        while left > 0 {
            let k = left.min($round);
            for _ in 0..k {
                handles.push($spawn);
            }
            for h in handles.drain(..) {
                $join(h);
            }
            left -= k;
        }
    }};
}

/// Checks that two yielders alternate: `repeats` counts a yielder following
/// itself (each yield should switch to the other one).
#[derive(Default)]
struct Turns {
    last: AtomicUsize,
    repeats: AtomicU64,
}

impl Turns {
    fn new() -> Arc<Turns> {
        Arc::new(Turns {
            last: AtomicUsize::new(usize::MAX),
            repeats: AtomicU64::new(0),
        })
    }

    fn take_turn(&self, me: usize) {
        if self.last.swap(me, Ordering::Relaxed) == me {
            self.repeats.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Yields of each side: together exactly `iters`.
    fn shares(iters: u64) -> [u64; 2] {
        [iters.div_ceil(2), iters / 2]
    }

    /// The repeats, shown when `GORT_BENCH_SHOW_REPEATS` is set.
    fn repeats(&self, iters: u64, who: &str) -> u64 {
        let repeats = self.repeats.load(Ordering::Relaxed);
        if std::env::var_os("GORT_BENCH_SHOW_REPEATS").is_some() {
            eprintln!("{who}: {repeats} repeats in {iters} yields");
        }
        repeats
    }

    fn check(&self, iters: u64, who: &str) {
        let repeats = self.repeats(iters, who);
        // A few repeats are allowed while the two start and end (the side
        // with one more yield ends alone), and rare ones after (Go's every-61st
        // global-queue check does that); more means no switch per yield.
        assert!(
            repeats <= 8 + iters / 10,
            "{who}: the two yielders did not alternate ({repeats} repeats in {iters} yields)"
        );
    }
}

// ---- gort -------------------------------------------------------------------

fn gort_runtime(procs: usize) -> gort_sched::Runtime {
    gort_sched::Runtime::builder()
        .procs(procs)
        .build()
        .expect("gort runtime")
}

fn gort_rounds(n: u64, round: u64) {
    spawn_join_rounds!(
        n,
        round,
        gort_sched::go(|| ()),
        |h: gort_sched::JoinHandle<()>| h.join().unwrap()
    );
}

fn gort_spawn_join(procs: usize, n: u64, round: u64) -> Duration {
    gort_runtime(procs)
        .run(move || {
            gort_rounds(ROUND, ROUND);
            let start = Instant::now();
            gort_rounds(n, round);
            start.elapsed()
        })
        .expect("gort run")
}

fn gort_ping_pong(iters: u64) -> Duration {
    gort_runtime(1)
        .run(move || {
            let turns = Turns::new();
            let start = Instant::now();
            let handles: Vec<_> = Turns::shares(iters)
                .into_iter()
                .enumerate()
                .map(|(me, n)| {
                    let turns = turns.clone();
                    gort_sched::go(move || {
                        for _ in 0..n {
                            turns.take_turn(me);
                            gort_sched::yield_now();
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            let took = start.elapsed();
            turns.check(iters, "gort");
            took
        })
        .expect("gort run")
}

// ---- tokio ------------------------------------------------------------------

fn tokio_runtime(procs: usize) -> tokio::runtime::Runtime {
    if procs == 1 {
        tokio::runtime::Builder::new_current_thread().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(procs)
            .build()
    }
    .expect("tokio runtime")
}

/// Runs `f` as a task (on a worker thread for multi_thread) and returns its
/// value.
fn tokio_main<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    rt.block_on(async move { tokio::spawn(f).await.unwrap() })
}

async fn tokio_rounds(n: u64, round: u64) {
    let mut left = n;
    let mut handles = Vec::with_capacity(round.min(n) as usize);
    while left > 0 {
        let k = left.min(round);
        for _ in 0..k {
            handles.push(tokio::spawn(async {}));
        }
        for h in handles.drain(..) {
            h.await.unwrap();
        }
        left -= k;
    }
}

fn tokio_spawn_join(rt: &tokio::runtime::Runtime, n: u64, round: u64) -> Duration {
    tokio_main(rt, async move {
        tokio_rounds(ROUND, ROUND).await;
        let start = Instant::now();
        tokio_rounds(n, round).await;
        start.elapsed()
    })
}

fn tokio_ping_pong(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    tokio_main(rt, async move {
        let turns = Turns::new();
        let start = Instant::now();
        let handles: Vec<_> = Turns::shares(iters)
            .into_iter()
            .enumerate()
            .map(|(me, n)| {
                let turns = turns.clone();
                tokio::spawn(async move {
                    for _ in 0..n {
                        turns.take_turn(me);
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        let took = start.elapsed();
        // Not checked: tokio's yield_now defers the wakeup until the run
        // queue is empty, then wakes the deferred tasks last-in first-out,
        // so the pair runs A B, B A, A B, ...: every other yield re-polls
        // the same task (about half the yields are repeats).
        turns.repeats(iters, "tokio");
        took
    })
}

// ---- may (in a child process per worker count) -------------------------------

/// Environment variable that makes this binary a may child with that many
/// workers.
const MAY_CHILD: &str = "GORT_BENCH_MAY_WORKERS";

/// A may child process: one request per line on its stdin, one answer per
/// line on its stdout.
struct MayChild {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
}

impl MayChild {
    fn start(workers: usize) -> MayChild {
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .env(MAY_CHILD, workers.to_string())
            // Out of mappings, a backtrace cannot allocate (and deadlocks).
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the may child");
        let to = child.stdin.take().expect("piped");
        let from = BufReader::new(child.stdout.take().expect("piped"));
        MayChild { child, to, from }
    }

    fn ask(&mut self, request: &str) -> std::io::Result<String> {
        writeln!(self.to, "{request}")?;
        self.to.flush()?;
        let mut line = String::new();
        if self.from.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other(format!(
                "the may child exited on {request:?}"
            )));
        }
        Ok(line.trim_end().to_string())
    }

    fn time(&mut self, request: &str) -> Duration {
        let answer = self.ask(request).expect("may child");
        Duration::from_nanos(
            answer
                .parse()
                .unwrap_or_else(|_| panic!("may child: {answer}")),
        )
    }
}

impl Drop for MayChild {
    fn drop(&mut self) {
        if self.ask("exit").is_err() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Runs `f` in a may coroutine and returns its value.
fn may_main<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    // SAFETY: may's contract for spawn: the coroutine touches no
    // thread-local storage of its own (it may migrate between workers) and
    // stays within its stack; these closures only spawn, yield and join.
    unsafe { may::coroutine::spawn(f) }.join().unwrap()
}

fn may_spawn() -> may::coroutine::JoinHandle<()> {
    // SAFETY: as in `may_main`: an empty coroutine.
    unsafe { may::coroutine::spawn(|| ()) }
}

fn may_rounds(n: u64, round: u64) {
    spawn_join_rounds!(n, round, may_spawn(), |h: may::coroutine::JoinHandle<()>| h
        .join()
        .unwrap());
}

/// The may child: serves requests until "exit" or end of input.
fn may_child(workers: usize) {
    may::config().set_workers(workers);
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.expect("read a request");
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["spawn_join", n, round] => {
                let (n, round): (u64, u64) = (n.parse().unwrap(), round.parse().unwrap());
                let took = may_main(move || {
                    may_rounds(ROUND, ROUND);
                    let start = Instant::now();
                    may_rounds(n, round);
                    start.elapsed()
                });
                took.as_nanos().to_string()
            }
            ["ping_pong", iters] => {
                let iters: u64 = iters.parse().unwrap();
                let took = may_main(move || {
                    let turns = Turns::new();
                    let start = Instant::now();
                    let handles: Vec<_> = Turns::shares(iters)
                        .into_iter()
                        .enumerate()
                        .map(|(me, n)| {
                            let turns = turns.clone();
                            // SAFETY: as in `may_main`.
                            unsafe {
                                may::coroutine::spawn(move || {
                                    for _ in 0..n {
                                        turns.take_turn(me);
                                        may::coroutine::yield_now();
                                    }
                                })
                            }
                        })
                        .collect();
                    for h in handles {
                        h.join().unwrap();
                    }
                    let took = start.elapsed();
                    turns.check(iters, "may");
                    took
                });
                took.as_nanos().to_string()
            }
            ["spawn_all", n] => {
                // Spawn n live coroutines (none finishes before the join: a
                // one-worker scheduler runs this coroutine until it joins),
                // stopping at the first error. may reports a failed stack
                // allocation by panicking inside `spawn` (an `expect`), so
                // the panic is caught, silently: printing it would need
                // memory that is no longer there.
                let n: u64 = n.parse().unwrap();
                std::panic::set_hook(Box::new(|_| {}));
                let answer = may_main(move || {
                    let mut handles = Vec::with_capacity(n as usize);
                    let mut error = None;
                    for _ in 0..n {
                        let spawned = std::panic::catch_unwind(|| {
                            // SAFETY: as in `may_main`.
                            unsafe { may::coroutine::Builder::new().spawn(|| ()) }
                        });
                        match spawned {
                            Ok(Ok(h)) => handles.push(h),
                            Ok(Err(e)) => {
                                error = Some(e.to_string());
                                break;
                            }
                            Err(payload) => {
                                error = Some(
                                    payload
                                        .downcast_ref::<String>()
                                        .cloned()
                                        .or_else(|| {
                                            payload.downcast_ref::<&str>().map(|s| s.to_string())
                                        })
                                        .unwrap_or_else(|| "a panic".into()),
                                );
                                break;
                            }
                        }
                    }
                    let live = handles.len();
                    for h in handles {
                        h.join().unwrap();
                    }
                    match error {
                        None => format!("ok: {live} live coroutines"),
                        Some(e) => format!("spawn failed with {live} live coroutines: {e}"),
                    }
                });
                let _ = std::panic::take_hook();
                answer
            }
            ["exit"] => {
                let _ = writeln!(out, "bye");
                return;
            }
            _ => format!("unknown request {line:?}"),
        };
        writeln!(out, "{answer}").expect("answer");
        out.flush().expect("flush");
    }
}

// ---- the benchmarks -----------------------------------------------------------

/// Runs `iters` rounded up to whole rounds of `ROUND` goroutines with `run`
/// (which returns the time for the goroutines it was given) and scales the
/// time back to `iters`: every sample measures the same shape, however few
/// iterations criterion asks for.
fn whole_rounds(iters: u64, mut run: impl FnMut(u64) -> Duration) -> Duration {
    let n = iters.div_ceil(ROUND) * ROUND;
    let took = run(n);
    Duration::from_nanos((took.as_nanos() * u128::from(iters) / u128::from(n)) as u64)
}

fn spawn_join_group(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, procs: usize) {
    g.bench_function("gort", |b| {
        b.iter_custom(|iters| whole_rounds(iters, |n| gort_spawn_join(procs, n, ROUND)))
    });
    let mut may = None;
    g.bench_function("may", |b| {
        let may = may.get_or_insert_with(|| MayChild::start(procs));
        b.iter_custom(|iters| whole_rounds(iters, |n| may.time(&format!("spawn_join {n} {ROUND}"))))
    });
    // may keeps 1,000 coroutines' stacks for reuse and maps (and unmaps) a
    // fresh stack for every coroutine beyond that; rounds of 1,000 show it
    // at its best.
    g.bench_function("may_round1000", |b| {
        let may = may.get_or_insert_with(|| MayChild::start(procs));
        b.iter_custom(|iters| {
            whole_rounds(iters, |n| may.time(&format!("spawn_join {n} {MAY_POOL}")))
        })
    });
    drop(may);
    let rt = tokio_runtime(procs);
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| whole_rounds(iters, |n| tokio_spawn_join(&rt, n, ROUND)))
    });
}

fn spawn_join(c: &mut Criterion) {
    for procs in [1, 2] {
        let mut g = c.benchmark_group(format!("spawn_join/procs{procs}"));
        g.sample_size(20);
        spawn_join_group(&mut g, procs);
        g.finish();
    }
}

fn spawn_join_million(c: &mut Criterion) {
    for procs in [1, 2] {
        let mut g = c.benchmark_group(format!("spawn_join_1m/procs{procs}"));
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_secs(10))
            .throughput(Throughput::Elements(MILLION));
        g.bench_function("gort", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| gort_spawn_join(procs, MILLION, MILLION))
                    .sum()
            })
        });
        let rt = tokio_runtime(procs);
        g.bench_function("tokio", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| tokio_spawn_join(&rt, MILLION, MILLION))
                    .sum()
            })
        });
        drop(rt);
        if procs == 1 && criterion_would_run(&format!("spawn_join_1m/procs{procs}/may")) {
            match MayChild::start(1).ask(&format!("spawn_all {MILLION}")) {
                Ok(answer) => eprintln!("spawn_join_1m/procs1/may: not measured: {answer}"),
                Err(e) => eprintln!("spawn_join_1m/procs1/may: not measured: {e}"),
            }
        }
        g.finish();
    }
}

/// Whether the command line's filter (if any) selects `id`. criterion's
/// filter is a regex; this is a substring check of the positional arguments
/// (skipping the values of criterion's options), enough to skip the may
/// probe when another benchmark is asked for.
fn criterion_would_run(id: &str) -> bool {
    const TAKES_VALUE: [&str; 14] = [
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--save-baseline",
        "--baseline",
        "--load-baseline",
        "--profile-time",
        "--plotting-backend",
        "--output-format",
        "--color",
    ];
    let mut filters = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if TAKES_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    filters.is_empty() || filters.iter().any(|f| id.contains(f.as_str()))
}

fn yield_ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("yield_ping_pong");
    g.bench_function("gort", |b| b.iter_custom(gort_ping_pong));
    let mut may = None;
    g.bench_function("may", |b| {
        let may = may.get_or_insert_with(|| MayChild::start(1));
        b.iter_custom(|iters| may.time(&format!("ping_pong {iters}")))
    });
    drop(may);
    let rt = tokio_runtime(1);
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| tokio_ping_pong(&rt, iters))
    });
    g.finish();
}

fn main() {
    if let Ok(workers) = std::env::var(MAY_CHILD) {
        may_child(workers.parse().expect("GORT_BENCH_MAY_WORKERS"));
        return;
    }
    // What criterion_group!/criterion_main! expand to, written out so that
    // the may child can take over `main` first.
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    yield_ping_pong(&mut c);
    spawn_join(&mut c);
    spawn_join_million(&mut c);
    c.final_summary();
}

//! A tour of gort: goroutines, channels, select, an echo server, the
//! deadlock detector and the scheduler's counters, through the `gort`
//! facade.
//!
//! Run it from the repository root (it takes a few seconds):
//!
//! ```text
//! cargo run --release --example tour
//! GORT_DEBUG=schedtrace=200 cargo run --release --example tour   # with Go's scheduler trace
//! ```
//!
//! Each section is a function called from `main`, in order; a section runs
//! in the tour's runtime unless it needs a fresh one (the deadlock).

use std::time::{Duration, Instant};

use gort::chan;

/// A 64-bit target: room in the address space for 100,000 goroutine stacks.
const WIDE: bool = cfg!(target_pointer_width = "64");

fn main() {
    println!("gort tour: Go's runtime core in Rust");
    println!(
        "  arch {}, {} CPUs; GORT_PROCS={}",
        std::env::consts::ARCH,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::env::var("GORT_PROCS").unwrap_or_else(|_| "(unset: one P per CPU)".into())
    );
    let start = Instant::now();

    // A 32-bit process has 4 GiB of address space (less under qemu-i386),
    // and each live goroutine holds its stack (256 KiB by default) and a
    // 64 KiB guard of it: 10,000 parked goroutines would need 3.2 GB. So on
    // 32-bit targets the tour's goroutines get 64 KiB stacks and section 1
    // spawns a tenth as many. (Go grows 8 KiB stacks instead.)
    let builder = gort::Runtime::builder();
    let builder = if WIDE {
        builder
    } else {
        builder.stack_size(64 * 1024)
    };
    let stats = builder
        .build()
        .expect("the tour's runtime")
        .run(|| {
            many_goroutines();
            whispers();
            select_with_timeout();
            timers_and_context();
            echo_server();
            blocking_c_call();
            c_threads_call_back();
            panic_across_c();
            gort::stats()
        })
        .expect("the tour's runtime");

    deadlock_is_an_error();
    summary(&stats, start.elapsed());
}

// ---------------------------------------------------------------------------
// 5. An echo server: a goroutine per connection on the network poller
// ---------------------------------------------------------------------------

fn echo_server() {
    use gort::net::{TcpListener, TcpStream};
    use std::io::{Read, Write};
    // Two fds per connection (both ends are here): 200 stays far below the
    // common soft limit of 1,024 open files.
    const CONNS: usize = 200;
    const ROUNDS: usize = 50;
    section(&format!(
        "5. An echo server: {CONNS} connections, a goroutine each, {ROUNDS} round trips"
    ));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let server = listener.clone();
    gort::go(move || {
        // Ends when `close` below wakes the accept with an error.
        for conn in server.incoming() {
            let Ok(mut conn) = conn else { return };
            gort::go(move || {
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    if conn.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let t = Instant::now();
    let clients: Vec<_> = (0..CONNS)
        .map(|i| {
            gort::go(move || {
                let mut c = TcpStream::connect(addr).expect("connect");
                let mut back = [0u8; 64];
                for r in 0..ROUNDS {
                    let msg = [(i + r) as u8; 64];
                    c.write_all(&msg).unwrap();
                    c.read_exact(&mut back).unwrap();
                    assert_eq!(msg, back);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    listener.close();
    let s = gort::stats();
    println!(
        "  {} round trips in {} ms, on {} OS threads for {} Ps (a blocked read parks its goroutine, not its thread)",
        CONNS * ROUNDS,
        t.elapsed().as_millis(),
        s.threads,
        s.procs
    );
}

// ---------------------------------------------------------------------------
// C: a blocking call, callbacks from C threads, a panic across C frames
// ---------------------------------------------------------------------------

use gort_unwind_cframes as c;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

fn blocking_c_call() {
    section("C1. A blocking C call does not stall the other goroutines");
    // One goroutine sleeps 100 ms inside C; another ticks every 200 us.
    // The ticker's worst gap is the stall the C call caused: sysmon hands
    // the blocked goroutine's P to another thread after ~20-50 us.
    let (done_tx, done_rx) = chan::bounded::<()>(1);
    let ticker = gort::go(move || {
        let mut last = Instant::now();
        let mut worst = Duration::ZERO;
        let mut ticks = 0;
        while done_rx.try_recv().is_err() {
            gort::sleep(Duration::from_micros(200));
            worst = worst.max(last.elapsed());
            last = Instant::now();
            ticks += 1;
        }
        (ticks, worst)
    });
    let t = Instant::now();
    // SAFETY: the closure only calls the C function.
    unsafe { gort::cgo::call(|| c::gort_c_sleep_us(100_000)) };
    let in_c = t.elapsed();
    done_tx.send(()).unwrap();
    let (ticks, worst) = ticker.join().unwrap();
    println!("  the caller spent {in_c:.1?} in C (nanosleep); meanwhile another");
    println!("  goroutine ticked {ticks} times, its longest gap {worst:.2?} (asked: 200us)");
}

static CALLBACKS: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn on_event(arg: *mut c_void) {
    // SAFETY: this frame holds nothing; `arg` is the channel's sender.
    unsafe {
        gort::cgo::callback(|| {
            let tx = &*(arg as *const chan::Sender<u64>);
            // A goroutine of the tour's runtime, locked to this C thread
            // for the callback: it may park on the channel.
            tx.send(gort::id()).unwrap();
            CALLBACKS.fetch_add(1, Ordering::Relaxed);
        })
    }
}

fn c_threads_call_back() {
    section("C2. C threads call back into goroutines");
    // Callbacks from threads the runtime did not create go to the callback
    // runtime: make it this one.
    gort::cgo::set_callback_runtime();
    let (tx, rx) = chan::bounded::<u64>(16);
    let consumer = gort::go(move || rx.iter().count());
    let t = Instant::now();
    let arg = &tx as *const chan::Sender<u64> as *mut c_void;
    // SAFETY: C calls back through `callback`; the C threads are joined
    // before `tx` goes away. syscall: pthread_join blocks this thread.
    let e = gort::syscall(|| unsafe { c::gort_c_threads(8, 2_500, on_event, arg) });
    assert_eq!(e, 0);
    drop(tx);
    let received = consumer.join().unwrap();
    println!(
        "  8 C pthreads x 2,500 callbacks, each sending on a channel to a goroutine: \
         {received} received in {:.1?}",
        t.elapsed()
    );
    let counts = gort::cgo::counts().unwrap();
    println!(
        "  {} callbacks so far, {} extra Ms bound to C threads",
        counts.callbacks, counts.extra_ms
    );
}

unsafe extern "C" fn fails(_arg: *mut c_void) {
    // SAFETY: this frame holds nothing.
    unsafe { gort::cgo::callback(|| panic!("a callback failed deep in C")) }
}

fn panic_across_c() {
    section("C3. A panic in a callback, recovered across C frames");
    let mut marks = c::Marks::default();
    let m: *mut c::Marks = &mut marks;
    let r = gort::recover(|| {
        // SAFETY: the closure only calls the C function.
        unsafe { gort::cgo::call(|| c::gort_c_recurse(5, fails, std::ptr::null_mut(), m)) }
    });
    let p = r.unwrap_err();
    let (before, after) = marks.counts();
    println!("  recovered: {:?}", p.message().unwrap_or("?"));
    println!(
        "  five C frames skipped: C code before the callback ran {before}x, after it {after}x"
    );
}

// ---------------------------------------------------------------------------
// 1. 100,000 goroutines meeting on one channel
// ---------------------------------------------------------------------------

/// Number of steps the Collatz sequence of `n` takes to reach 1: a little
/// work per goroutine.
fn collatz_steps(mut n: u64) -> u64 {
    let mut steps = 0;
    while n != 1 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

fn many_goroutines() {
    const N: u64 = if WIDE { 100_000 } else { 10_000 };
    section(&format!("1. {N} goroutines, one channel"));
    let t = Instant::now();
    let (tx, rx) = chan::bounded::<(u64, u64)>(1024);
    // A collector goroutine reduces what the workers send.
    let collector = gort::go(move || {
        let mut best = (0, 0);
        let mut total = 0u64;
        // The loop ends when every sender is gone: the channel is closed.
        for (n, steps) in rx.iter() {
            total += steps;
            if steps > best.1 {
                best = (n, steps);
            }
        }
        (total, best)
    });
    let mut peak = 0;
    for n in 1..=N {
        let tx = tx.clone();
        gort::go(move || tx.send((n, collatz_steps(n))).unwrap());
        // Goroutines are not preempted: let the spawned ones run now and
        // then, so they finish and their stacks are reused.
        if n % 1_000 == 0 {
            peak = peak.max(gort::num_goroutines());
            gort::yield_now();
        }
    }
    drop(tx);
    let (total, (n, steps)) = collector.join().unwrap();
    println!("  {N} goroutines each computed a Collatz length and sent it on a channel of 1024");
    println!("  longest: {n} takes {steps} steps; {total} steps in all");
    println!(
        "  {:.1} ms, {:.0} ns per goroutine; at most {peak} alive at a sample point",
        t.elapsed().as_secs_f64() * 1e3,
        t.elapsed().as_nanos() as f64 / N as f64
    );
}

/// Go's "whispers": a chain of goroutines, each passing a number one to the
/// right plus one, all parked on rendezvous channels until it comes by.
fn whispers() {
    section("2. A chain of 10,000 goroutines (Go's whispers)");
    const N: usize = 10_000;
    let t = Instant::now();
    let (first_tx, mut left) = chan::bounded::<u64>(0);
    for _ in 0..N {
        let (tx, rx) = chan::bounded::<u64>(0);
        let from = std::mem::replace(&mut left, rx);
        gort::go(move || {
            let v = from.recv().unwrap();
            tx.send(v + 1).unwrap();
        });
    }
    let parked = gort::num_goroutines() - 1;
    first_tx.send(1).unwrap();
    let v = left.recv().unwrap();
    println!("  {parked} goroutines parked on channels; 1 went in, {v} came out");
    println!(
        "  {:.1} ms to build and run the chain",
        t.elapsed().as_secs_f64() * 1e3
    );
}

// ---------------------------------------------------------------------------
// 3. select with a timeout
// ---------------------------------------------------------------------------

fn select_with_timeout() {
    section("3. select with a timeout");
    let (ticks_tx, ticks) = chan::bounded::<u32>(0);
    let (words_tx, words) = chan::unbounded::<&'static str>();
    gort::go(move || {
        for i in 1..=3 {
            gort::sleep(Duration::from_millis(10));
            ticks_tx.send(i).unwrap();
        }
        words_tx.send("done ticking").unwrap();
        // Keep the tick channel open but silent: only the timeout can end
        // the select below.
        gort::sleep(Duration::from_millis(500));
        drop(ticks_tx);
    });
    let t = Instant::now();
    loop {
        gort::select! {
            recv(ticks) -> v => println!("  tick {} at {:>3} ms", v.unwrap(), t.elapsed().as_millis()),
            recv(words) -> w => println!("  word {:?} at {:>3} ms", w.unwrap(), t.elapsed().as_millis()),
            default(Duration::from_millis(50)) => {
                println!("  nothing for 50 ms: timed out at {} ms", t.elapsed().as_millis());
                break;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 4. Timers and a context: tick, after, cancellation down a tree
// ---------------------------------------------------------------------------

fn timers_and_context() {
    section("4. Timers and a context: tick, after, with_timeout, cancel");
    use gort::context::{self, ContextError};
    use gort::time;
    // A job's context times out after 30 ms; three workers under it tick
    // every 5 ms until their context is done.
    let t = Instant::now();
    let (job, _cancel_job) =
        context::with_timeout(&context::background(), Duration::from_millis(30));
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let (ctx, cancel) = context::with_cancel(&job);
            let h = gort::go(move || {
                let ticks = time::tick(Duration::from_millis(5));
                let mut n = 0;
                loop {
                    gort::select! {
                        recv(ticks) -> _ => n += 1,
                        recv(ctx.done()) -> _ => return (i, n, ctx.err()),
                    }
                }
            });
            (h, cancel)
        })
        .collect();
    // Worker 0 is cancelled on its own after 10 ms; the others end with
    // the job's deadline (cancellation flows down, never up).
    gort::select! {
        recv(time::after(Duration::from_millis(10))) -> _ => workers[0].1.cancel(),
    }
    for (h, _) in workers {
        let (i, n, err) = h.join().unwrap();
        let why = match err {
            Some(ContextError::Canceled) => "cancelled",
            Some(ContextError::DeadlineExceeded) => "the job's deadline",
            None => "?",
        };
        println!(
            "  worker {i}: {n:>2} ticks, stopped by {why} at {:>2} ms",
            t.elapsed().as_millis()
        );
    }
    assert_eq!(job.err(), Some(ContextError::DeadlineExceeded));
}

// ---------------------------------------------------------------------------
// 5. A deadlock, caught and reported as an error
// ---------------------------------------------------------------------------

fn deadlock_is_an_error() {
    section("6. A deadlock is an error, not a hang");
    let t = Instant::now();
    let result = gort::run(|| {
        let (tx, rx) = chan::bounded::<u32>(0);
        // Nobody will ever send: the sender is held, but by a goroutine
        // that waits for the main goroutine.
        let (done_tx, done_rx) = chan::bounded::<()>(0);
        gort::go(move || {
            let _keep = tx;
            done_rx.recv().ok();
        });
        let v = rx.recv();
        done_tx.send(()).ok();
        v
    });
    match result {
        Err(gort::Error::Deadlock { goroutines }) => {
            println!(
                "  gort::run returned Error::Deadlock after {:.1} ms:",
                t.elapsed().as_secs_f64() * 1e3
            );
            println!("    all goroutines are asleep - deadlock!");
            for line in goroutines.lines() {
                println!("    {line}");
            }
        }
        other => println!("  unexpected: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// 7. What the scheduler did
// ---------------------------------------------------------------------------

fn summary(s: &gort::Stats, took: Duration) {
    section("7. gort::stats() at the end of the tour's runtime");
    println!("  procs (GOMAXPROCS)     {}", s.procs);
    println!(
        "  OS threads (Ms)        {} ({} idle, {} spinning)",
        s.threads, s.idle_threads, s.spinning_threads
    );
    println!("  goroutines alive       {}", s.goroutines);
    println!("  goroutine switches     {}", s.context_switches);
    println!("  steals between Ps      {}", s.steals);
    println!("  syscall P handoffs     {}", s.syscall_handoffs);
    println!(
        "  C calls / callbacks    {} / {}",
        s.cgo_calls, s.cgo_callbacks
    );
    println!();
    println!("Tour done in {:.2} s.", took.as_secs_f64());
}

fn section(title: &str) {
    println!();
    println!("{title}");
}

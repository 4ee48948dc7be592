//! Observability through the facade: `stats()` counters move, `dump()`
//! names a parked goroutine's wait reason and a frame of the function it
//! parked in, `GORT_DEBUG=schedtrace=MS` prints at its period, and SIGQUIT
//! dumps every goroutine and exits with status 2 (the last two in a child
//! process: this test binary run again, through the cross runner when
//! there is one).

use gort_testing::{child_command, is_child, under_qemu};
use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::time::{Duration, Instant};

fn rt(procs: usize) -> gort::Runtime {
    gort::Runtime::builder().procs(procs).build().unwrap()
}

/// Parks on `rx` in a frame of its own, so that a dump can name it.
#[inline(never)]
fn parked_in_known_function(rx: gort::chan::Receiver<u32>) -> u32 {
    let v = rx.recv().unwrap();
    std::hint::black_box(v)
}

/// Stands in for a C library that calls back.
extern "C" fn c_library(cb: extern "C" fn()) {
    cb()
}

extern "C" fn callback_from_c() {
    // SAFETY: the top of an extern "C" function that holds nothing.
    unsafe { gort_cgo::callback(|| std::hint::black_box(())) }
}

/// Waits (yielding, or sleeping on a plain thread) until `cond`; panics
/// after 20 s.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        gort::sleep(Duration::from_millis(1));
    }
}

#[test]
fn stats_counters_move() {
    rt(2)
        .run(|| {
            let before = gort::stats();
            assert_eq!(before.procs, 2);
            assert_eq!(before.goroutines, 1, "{before:?}");
            assert!(before.threads >= 1, "{before:?}");
            assert_eq!(before.local_runqueues.len(), 2);

            // Switches: every yield is one more switch to a goroutine.
            let n = if under_qemu() { 200 } else { 2_000 };
            // The goroutines stay alive until the count is read: each ends
            // by waiting for the gate to close (they could otherwise all
            // finish on the other P first, as they did once under qemu).
            let (gate, gate_rx) = gort::chan::bounded::<()>(0);
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let gate_rx = gate_rx.clone();
                    gort::go(move || {
                        for _ in 0..n / 4 {
                            gort::yield_now();
                        }
                        assert!(gate_rx.recv().is_err(), "the gate only closes");
                    })
                })
                .collect();
            let during = gort::stats();
            assert_eq!(during.goroutines, 5, "{during:?}");
            drop((gate, gate_rx));
            for h in hs {
                h.join().unwrap();
            }
            let after = gort::stats();
            assert!(
                after.context_switches >= before.context_switches + n as u64,
                "{before:?} -> {after:?}"
            );

            // Steals: with two Ps, the second M takes work from the first's
            // queue when goroutines pile up there.
            wait_until("a steal", || {
                let hs: Vec<_> = (0..64).map(|_| gort::go(gort::yield_now)).collect();
                for h in hs {
                    h.join().unwrap();
                }
                gort::stats().steals > 0
            });

            // A handoff: a syscall that blocks while another goroutine waits
            // for the P loses the P to sysmon after ~20 µs.
            let handoffs = gort::stats().syscall_handoffs;
            let ready = gort::go(|| 1);
            gort::syscall(|| std::thread::sleep(Duration::from_millis(50)));
            assert_eq!(ready.join().unwrap(), 1);
            assert!(gort::stats().syscall_handoffs > handoffs);

            // The C counters: gort-cgo's calls and the callbacks made in them.
            let s = gort::stats();
            for _ in 0..3 {
                // SAFETY: the closure only calls the "C" function.
                unsafe { gort_cgo::call(|| c_library(callback_from_c)) };
            }
            let t = gort::stats();
            assert_eq!(
                (t.cgo_calls, t.cgo_callbacks),
                (s.cgo_calls + 3, s.cgo_callbacks + 3)
            );
            assert!(t.to_string().contains("gomaxprocs=2"), "{t}");
        })
        .unwrap();
}

/// Outside a goroutine `stats()` sums the runtimes running in the process
/// (other tests' here, so only that it answers is checked; misuse.rs checks
/// the numbers from a C thread in a process of its own).
#[test]
fn stats_outside_a_goroutine_answer() {
    assert!(std::panic::catch_unwind(gort::stats).is_ok());
}

#[test]
fn dump_names_a_parked_goroutines_wait_reason_and_frames() {
    rt(2)
        .run(|| {
            let (tx, rx) = gort::chan::bounded(0);
            let parked = gort::go(move || parked_in_known_function(rx));
            let (ltx, lrx) = gort::chan::bounded::<u32>(0);
            let locked = gort::go(move || {
                gort::lock_os_thread();
                lrx.recv().unwrap()
            });
            let pid = parked.id();
            wait_until("both goroutines to park", || {
                let d = gort::dump_string();
                d.matches("[chan receive").count() == 2
            });
            let dump = gort::dump_string();
            let mine = gort::id();
            assert!(
                dump.contains(&format!("goroutine {mine} [running] (main):")),
                "{dump}"
            );
            // The parked goroutine's section: header, then its frames, read
            // from the context it saved when it parked.
            let section = dump
                .split("\n\n")
                .find(|s| s.starts_with(&format!("goroutine {pid} [")))
                .unwrap_or_else(|| panic!("no goroutine {pid} in\n{dump}"));
            assert!(
                section.starts_with(&format!("goroutine {pid} [chan receive]:")),
                "{section}"
            );
            assert!(section.contains("parked_in_known_function"), "{section}");
            assert!(section.contains("observe.rs:"), "{section}");
            // The locked one names its thread.
            let lid = locked.id();
            assert!(
                dump.contains(&format!(
                    "goroutine {lid} [chan receive, locked to thread M"
                )),
                "{dump}"
            );
            // The dump's own frames show who asked.
            let main_section = dump
                .split("\n\n")
                .find(|s| s.starts_with(&format!("goroutine {mine} [")))
                .unwrap();
            assert!(
                main_section.contains("dump_names_a_parked_goroutines"),
                "{main_section}"
            );
            tx.send(7).unwrap();
            ltx.send(8).unwrap();
            assert_eq!(parked.join().unwrap(), 7);
            assert_eq!(locked.join().unwrap(), 8);
            // Walking them did not disturb them, nor the counts. (A join
            // returns once the value is delivered; the goroutine leaves the
            // count a moment later, on its M, so wait for that.)
            wait_until("both goroutines to be gone", || gort::num_goroutines() == 1);
        })
        .unwrap();
}

#[test]
fn dumping_while_goroutines_park_and_wake_is_safe() {
    // Dumps race with goroutines moving between waiting, runnable and
    // running: a claimed goroutine's wakers wait for the walk to finish.
    let rounds = if under_qemu() { 20 } else { 200 };
    rt(2)
        .run(move || {
            let (tx, rx) = gort::chan::bounded::<u32>(0);
            let (back_tx, back_rx) = gort::chan::bounded::<u32>(0);
            let echo = gort::go(move || {
                while let Ok(v) = rx.recv() {
                    back_tx.send(v + 1).unwrap();
                }
            });
            let pinger = gort::go(move || {
                for i in 0..rounds * 20 {
                    tx.send(i).unwrap();
                    assert_eq!(back_rx.recv().unwrap(), i + 1);
                }
            });
            for _ in 0..rounds {
                let d = gort::dump_string();
                assert!(d.contains("(main)"), "{d}");
            }
            pinger.join().unwrap();
            echo.join().unwrap();
        })
        .unwrap();
}

// ---- child processes ---------------------------------------------------------

fn spawn_child(name: &str, env: &[(&str, &str)]) -> Child {
    let mut cmd = child_command(name);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"))
}

/// Waits for the child, killing it after `limit`; returns (status, stderr).
fn finish(mut child: Child, limit: Duration) -> (std::process::ExitStatus, String) {
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).ok();
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("child still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status, reader.join().unwrap())
}

#[test]
fn schedtrace_prints_a_line_per_period() {
    const PERIOD_MS: u64 = 50;
    const RUN_MS: u64 = 1_000;
    if is_child("schedtrace_prints_a_line_per_period") {
        rt(2)
            .run(|| {
                let h = gort::go(|| gort::sleep(Duration::from_millis(RUN_MS)));
                h.join().unwrap();
            })
            .unwrap();
        return;
    }
    let child = spawn_child(
        "schedtrace_prints_a_line_per_period",
        &[("GORT_DEBUG", &format!("schedtrace={PERIOD_MS}"))],
    );
    let started = Instant::now();
    let (status, stderr) = finish(child, Duration::from_secs(120));
    let took = started.elapsed();
    assert!(status.success(), "{status}\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("SCHED ")).collect();
    // About RUN_MS / PERIOD_MS = 20 lines; allow 10x either way (and more
    // when the child took longer, as under qemu).
    let expected = RUN_MS / PERIOD_MS;
    let most = (took.as_millis() as u64 / PERIOD_MS + 1) * 10;
    assert!(
        lines.len() as u64 >= expected / 10 && lines.len() as u64 <= most,
        "{} SCHED lines in {took:?}:\n{stderr}",
        lines.len()
    );
    for l in &lines {
        assert!(
            l.contains("ms: gomaxprocs=2 idleprocs=")
                && l.contains(" threads=")
                && l.contains(" spinningthreads=")
                && l.contains(" idlethreads=")
                && l.contains(" runqueue=")
                && l.contains(" ["),
            "{l}"
        );
    }
    // Time stamps increase, by about the period.
    let stamps: Vec<u64> = lines
        .iter()
        .map(|l| l["SCHED ".len()..l.find("ms:").unwrap()].parse().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[1] > w[0]), "{stamps:?}");
    let first = stamps[0];
    assert!(
        first >= PERIOD_MS / 10 && first <= PERIOD_MS * 10 + took.as_millis() as u64 / 2,
        "first line at {first} ms"
    );
}

#[test]
fn sigquit_dumps_every_goroutine_and_exits_with_status_2() {
    if is_child("sigquit_dumps_every_goroutine_and_exits_with_status_2") {
        rt(2)
            .run(|| {
                let (_tx, rx) = gort::chan::bounded(0);
                gort::go(move || parked_in_known_function(rx));
                // Tell the parent once both the goroutine and main are
                // parked (a third goroutine watches).
                gort::go(|| {
                    wait_until("the goroutines to park", || {
                        let d = gort::dump_string();
                        d.contains("[chan receive]:") && d.contains("goroutine 1 [sleep]")
                    });
                    println!("parked");
                });
                gort::sleep(Duration::from_secs(600));
            })
            .unwrap();
        unreachable!("SIGQUIT should have ended the process");
    }
    let mut child = spawn_child("sigquit_dumps_every_goroutine_and_exits_with_status_2", &[]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).unwrap();
        assert!(n > 0, "the child ended before it was ready");
        if line.trim_end().ends_with("parked") {
            break;
        }
    }
    // SAFETY: signals our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) }, 0);
    let (status, stderr) = finish(child, Duration::from_secs(120));
    assert_eq!(status.code(), Some(2), "{status}\n{stderr}");
    assert!(stderr.contains("SIGQUIT: quit"), "{stderr}");
    assert!(stderr.contains("SCHED "), "{stderr}");
    assert!(stderr.contains("goroutine 1 [sleep] (main):"), "{stderr}");
    let parked = stderr
        .split("\n\n")
        .find(|s| s.contains("[chan receive]:"))
        .unwrap_or_else(|| panic!("no parked goroutine in\n{stderr}"));
    assert!(parked.contains("parked_in_known_function"), "{parked}");
}

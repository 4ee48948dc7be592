//! Misuse, tried as a new user would: each mistake gets a named message or
//! a documented working behaviour, never a hang, undefined behaviour or a
//! bare signal. Mistakes that end the process run in a child: this test
//! binary again (through the cross runner when there is one), where the
//! test runs on the main thread with no other thread alive (`harness =
//! false`: libtest would keep a thread of its own waiting). All three
//! targets.

use gort_testing::{assert_child_died_with, describe, is_child, run_child, Test};
use gort_unwind_cframes as c;
use std::ffi::c_void;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

fn rt(procs: usize) -> gort::Runtime {
    gort::Runtime::builder().procs(procs).build().unwrap()
}

fn main() {
    const TESTS: &[Test] = &[
        (
            "a_c_frame_of_88_kib_on_a_goroutine_stack_is_an_overflow_report",
            a_c_frame_of_88_kib_on_a_goroutine_stack_is_an_overflow_report,
        ),
        (
            "a_c_frame_of_96_kib_on_a_goroutine_stack_is_an_overflow_report",
            a_c_frame_of_96_kib_on_a_goroutine_stack_is_an_overflow_report,
        ),
        (
            "a_channel_receive_inside_syscall_is_a_fatal_error",
            a_channel_receive_inside_syscall_is_a_fatal_error,
        ),
        (
            "a_sleep_inside_syscall_is_a_fatal_error",
            a_sleep_inside_syscall_is_a_fatal_error,
        ),
        (
            "stats_work_from_a_plain_c_thread_and_a_std_thread",
            stats_work_from_a_plain_c_thread_and_a_std_thread,
        ),
        (
            "a_forked_child_using_the_parents_runtime_gets_a_clear_error",
            a_forked_child_using_the_parents_runtime_gets_a_clear_error,
        ),
        (
            "a_forked_child_can_run_a_new_runtime",
            a_forked_child_can_run_a_new_runtime,
        ),
        (
            "a_goroutine_waiting_for_a_std_thread_is_not_a_deadlock",
            a_goroutine_waiting_for_a_std_thread_is_not_a_deadlock,
        ),
        (
            "a_goroutine_waiting_for_a_c_thread_callback_is_not_a_deadlock",
            a_goroutine_waiting_for_a_c_thread_callback_is_not_a_deadlock,
        ),
        (
            "goroutines_deadlocked_among_themselves_are_reported",
            goroutines_deadlocked_among_themselves_are_reported,
        ),
        (
            "a_deadlock_is_reported_after_a_plain_thread_used_a_timer",
            a_deadlock_is_reported_after_a_plain_thread_used_a_timer,
        ),
    ];
    gort_testing::harness(TESTS)
}

// ---- a large C frame on a goroutine stack ----------------------------------

/// C with a large frame called directly on a small goroutine stack (not
/// through `cgo::call`): the frame's first store lands 72-96 KiB below the
/// stack, which jumped a 64 KiB guard into a neighbouring goroutine's
/// stack. The guard below every goroutine stack is larger than such frames,
/// so the store faults in it and the overflow report names the goroutine.
fn big_c_frame_on_a_goroutine_stack(name: &str, frame: unsafe extern "C" fn() -> std::ffi::c_long) {
    if is_child(name) {
        gort::Runtime::builder()
            .procs(1)
            .stack_size(gort::MIN_STACK_SIZE)
            .build()
            .unwrap()
            .run(move || {
                // Neighbours on both sides in the stack slab.
                let mut hs: Vec<_> = (0..8).map(|_| gort::go(gort::yield_now)).collect();
                let h = gort::go(move || {
                    eprintln!("big frame on goroutine {}", gort::id());
                    // SAFETY: the function only writes its own frame; that
                    // the frame does not fit is the point.
                    unsafe { frame() }
                });
                hs.extend((0..8).map(|_| gort::go(gort::yield_now)));
                h.join().unwrap();
            })
            .unwrap();
        return;
    }
    let out = run_child(name);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let id = stderr
        .lines()
        .find_map(|l| l.strip_prefix("big frame on goroutine "))
        .unwrap_or_else(|| panic!("the child did not start the call\n{}", describe(&out)));
    let report = format!("fatal error: gort: goroutine stack overflow (goroutine {id}, stack [");
    assert!(
        stderr.contains(&report),
        "missing {report:?}\n{}",
        describe(&out)
    );
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{}",
        describe(&out)
    );
}

fn a_c_frame_of_88_kib_on_a_goroutine_stack_is_an_overflow_report() {
    big_c_frame_on_a_goroutine_stack(
        "a_c_frame_of_88_kib_on_a_goroutine_stack_is_an_overflow_report",
        c::gort_c_frame_88k,
    );
}

fn a_c_frame_of_96_kib_on_a_goroutine_stack_is_an_overflow_report() {
    big_c_frame_on_a_goroutine_stack(
        "a_c_frame_of_96_kib_on_a_goroutine_stack_is_an_overflow_report",
        c::gort_c_frame_96k,
    );
}

// ---- a park inside syscall() ----------------------------------------------------

/// `syscall`'s closure runs without a P: a park there (here a channel
/// receive) used to switch away from an M that had given its P up, and die
/// later by SIGSEGV. It is a named fatal error, as the same mistake inside
/// `cgo::call` is.
fn a_channel_receive_inside_syscall_is_a_fatal_error() {
    const NAME: &str = "a_channel_receive_inside_syscall_is_a_fatal_error";
    if is_child(NAME) {
        rt(1)
            .run(|| {
                let (_tx, rx) = gort::chan::bounded::<()>(0);
                gort::syscall(|| {
                    let _ = rx.recv();
                });
            })
            .unwrap();
        return;
    }
    assert_child_died_with(
        NAME,
        "fatal error: gort: a goroutine parked inside gort::syscall",
    );
}

fn a_sleep_inside_syscall_is_a_fatal_error() {
    const NAME: &str = "a_sleep_inside_syscall_is_a_fatal_error";
    if is_child(NAME) {
        rt(2)
            .run(|| gort::syscall(|| gort::sleep(Duration::from_millis(1))))
            .unwrap();
        return;
    }
    assert_child_died_with(
        NAME,
        "fatal error: gort: a goroutine parked inside gort::syscall",
    );
}

// ---- stats() from any thread -------------------------------------------------------

unsafe extern "C" fn stats_cb(arg: *mut c_void) {
    // SAFETY: `arg` is the `Option<gort::Stats>` of the test's frame, which
    // waits for this thread (gort_c_threads joins it).
    unsafe { *arg.cast::<Option<gort::Stats>>() = Some(gort::stats()) };
}

/// `stats()` on a thread that runs no goroutine (a plain C thread, the
/// test's own thread) describes the runtimes running in the process; it
/// used to panic "called outside a goroutine".
fn stats_work_from_a_plain_c_thread_and_a_std_thread() {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = gort::chan::bounded::<()>(0);
    let runner = std::thread::spawn(move || {
        gort::Runtime::builder()
            .procs(2)
            .external_wakers(true)
            .build()
            .unwrap()
            .run(move || {
                let hs: Vec<_> = (0..3)
                    .map(|_| {
                        let rx = stop_rx.clone();
                        gort::go(move || while rx.recv().is_ok() {})
                    })
                    .collect();
                ready_tx.send(()).unwrap();
                while stop_rx.recv().is_ok() {}
                hs.into_iter().for_each(|h| h.join().unwrap());
            })
            .unwrap()
    });
    ready_rx.recv().unwrap();
    let mut from_c: Option<gort::Stats> = None;
    // SAFETY: the callback writes `from_c`, which outlives the joined thread.
    let rc = unsafe { c::gort_c_threads(1, 1, stats_cb, (&raw mut from_c).cast()) };
    assert_eq!(rc, 0);
    let from_std = gort::stats();
    drop(stop_tx);
    runner.join().unwrap();
    for (who, s) in [
        ("a C thread", from_c.expect("the C thread ran")),
        ("a std thread", from_std),
    ] {
        assert_eq!(s.procs, 2, "{who}: {s}");
        assert!(s.goroutines >= 4, "{who}: main and three waiting: {s}");
        assert!(s.threads >= 1, "{who}: {s}");
    }
    // No runtime left: zeros, not a panic.
    assert_eq!(gort::stats().goroutines, 0);
}

// ---- fork without exec -------------------------------------------------------------

/// Waits for `pid` at most `limit`; kills it if it is still running then.
/// "exited N", "killed by signal N" or "hung".
fn wait_child(pid: libc::pid_t, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: waits for our own child without blocking.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid: {}", std::io::Error::last_os_error());
        if r == pid {
            return if libc::WIFEXITED(status) {
                format!("exited {}", libc::WEXITSTATUS(status))
            } else {
                format!("killed by signal {}", libc::WTERMSIG(status))
            };
        }
        if Instant::now() > deadline {
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: reaps it.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            return "hung".to_string();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What a forked child does with gort: spawn, join, a channel, a sleep.
fn use_gort_in_the_child() -> u64 {
    let (tx, rx) = gort::chan::bounded(1);
    let h = gort::go(move || tx.send(21u64).unwrap());
    h.join().unwrap();
    gort::sleep(Duration::from_millis(5));
    rx.recv().unwrap() * 2
}

/// A goroutine forks (no exec) and the child goes on using the runtime:
/// the runtime's other threads (its Ms, sysmon) do not exist there, and
/// the child used to hang. It is a named fatal error in the child.
fn a_forked_child_using_the_parents_runtime_gets_a_clear_error() {
    const NAME: &str = "a_forked_child_using_the_parents_runtime_gets_a_clear_error";
    if is_child(NAME) {
        rt(2)
            .run(|| {
                let hs: Vec<_> = (0..4)
                    .map(|_| gort::go(|| gort::sleep(Duration::from_millis(20))))
                    .collect();
                // SAFETY: the child only uses gort and then leaves by _exit.
                let pid = unsafe { libc::fork() };
                assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
                if pid == 0 {
                    let v = use_gort_in_the_child();
                    eprintln!("forked child: the runtime worked ({v})");
                    // SAFETY: ends the child without running the parent's
                    // destructors or atexit handlers.
                    unsafe { libc::_exit(0) };
                }
                eprintln!("forked child: {}", wait_child(pid, Duration::from_secs(60)));
                hs.into_iter().for_each(|h| h.join().unwrap());
            })
            .unwrap();
        return;
    }
    let out = run_child(NAME);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!stderr.contains("forked child: hung"), "{}", describe(&out));
    assert!(
        stderr.contains("fatal error: gort: this runtime was started before fork()"),
        "{}",
        describe(&out)
    );
    assert!(
        stderr.contains(&format!("forked child: killed by signal {}", libc::SIGABRT)),
        "{}",
        describe(&out)
    );
}

/// A thread that runs no goroutine forks while a runtime runs on another
/// thread; the child runs a runtime of its own: that works (documented in
/// docs/sched.md).
fn a_forked_child_can_run_a_new_runtime() {
    const NAME: &str = "a_forked_child_can_run_a_new_runtime";
    if gort_testing::under_qemu() {
        // The emulator, not gort: qemu-user 7.2 aborts in the forked child
        // of a multithreaded guest when that child starts a thread
        // ("qemu_plugin_vcpu_init_hook: assertion failed", exit 127).
        gort_testing::skip!(
            "qemu-user aborts when the forked child of a multithreaded process starts a thread"
        );
    }
    if is_child(NAME) {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = gort::chan::bounded::<()>(0);
        let runner = std::thread::spawn(move || {
            gort::Runtime::builder()
                .procs(2)
                .external_wakers(true)
                .build()
                .unwrap()
                .run(move || {
                    let hs: Vec<_> = (0..4)
                        .map(|_| {
                            gort::go(|| {
                                for _ in 0..100 {
                                    gort::sleep(Duration::from_micros(100));
                                }
                            })
                        })
                        .collect();
                    ready_tx.send(()).unwrap();
                    hs.into_iter().for_each(|h| h.join().unwrap());
                    let _ = stop_rx.recv();
                })
                .unwrap()
        });
        ready_rx.recv().unwrap();
        // SAFETY: the child runs a new runtime and then leaves by _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let v = rt(2).run(use_gort_in_the_child).unwrap();
            eprintln!("forked child: a new runtime worked ({v})");
            // SAFETY: as above.
            unsafe { libc::_exit(0) };
        }
        eprintln!("forked child: {}", wait_child(pid, Duration::from_secs(60)));
        drop(stop_tx);
        runner.join().unwrap();
        return;
    }
    let out = run_child(NAME);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stderr.contains("forked child: a new runtime worked (42)"),
        "{}",
        describe(&out)
    );
    assert!(
        stderr.contains("forked child: exited 0"),
        "{}",
        describe(&out)
    );
}

// ---- deadlock detection under default settings -------------------------------------

/// A goroutine waits on a channel whose sender is a plain std thread that
/// sends after 200 ms: a correct program, which `run` used to end with
/// `Error::Deadlock` under default settings. Run in a child so that the
/// std thread is the only thread outside the runtime.
fn a_goroutine_waiting_for_a_std_thread_is_not_a_deadlock() {
    const NAME: &str = "a_goroutine_waiting_for_a_std_thread_is_not_a_deadlock";
    if is_child(NAME) {
        let v = rt(2)
            .run(|| {
                let (tx, rx) = gort::chan::bounded(0);
                let t = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(200));
                    tx.send(7).unwrap();
                });
                let v = rx.recv().unwrap();
                t.join().unwrap();
                v
            })
            .unwrap();
        println!("received {v}");
        return;
    }
    child_succeeds_printing(NAME, "received 7");
}

/// Runs test `name` as a child: it must exit successfully and print `text`.
fn child_succeeds_printing(name: &str, text: &str) {
    let out = run_child(name);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(text),
        "{}",
        describe(&out)
    );
}

unsafe extern "C" fn send_from_c(arg: *mut c_void) {
    // SAFETY: `arg` is the leaked Sender of the test, used once.
    let tx = unsafe { Box::from_raw(arg.cast::<gort::chan::Sender<u32>>()) };
    // SAFETY: C called us on its own thread; the closure does not unwind.
    unsafe { gort::cgo::callback(move || tx.send(9).unwrap()) };
}

/// A goroutine waits for a callback that a C library makes from a thread
/// of its own 200 ms later: not a deadlock under default settings.
fn a_goroutine_waiting_for_a_c_thread_callback_is_not_a_deadlock() {
    const NAME: &str = "a_goroutine_waiting_for_a_c_thread_callback_is_not_a_deadlock";
    if is_child(NAME) {
        let v = rt(2)
            .run(|| {
                gort::cgo::set_callback_runtime();
                let (tx, rx) = gort::chan::bounded::<u32>(0);
                let arg = Box::into_raw(Box::new(tx)).cast::<c_void>();
                // SAFETY: the C thread calls send_from_c(arg) once.
                let rc = unsafe { c::gort_c_after_ms(200, send_from_c, arg) };
                assert_eq!(rc, 0);
                rx.recv().unwrap()
            })
            .unwrap();
        println!("received {v}");
        return;
    }
    child_succeeds_printing(NAME, "received 9");
}

/// Goroutines that wait only for each other, in a process with no thread
/// outside the runtime: still reported, under default settings.
/// The process-wide timer thread (timers made on plain threads) counts as
/// a thread that could end a deadlock only while it has a timer to fire:
/// once it is idle, a deadlock among goroutines is reported.
fn a_deadlock_is_reported_after_a_plain_thread_used_a_timer() {
    const NAME: &str = "a_deadlock_is_reported_after_a_plain_thread_used_a_timer";
    if is_child(NAME) {
        // A hang (no report) ends the child in 30 s instead of the
        // harness's 120; a watchdog thread would itself be an outside one.
        // SAFETY: alarm(2) only arms a timer; SIGALRM ends the process.
        unsafe { libc::alarm(30) };
        // Starts the process-wide timer thread, and waits for its firing.
        std::thread::spawn(|| gort::time::after(Duration::from_millis(1)).recv().unwrap())
            .join()
            .unwrap();
        let err = rt(2)
            .run(|| {
                let (_tx, rx) = gort::chan::bounded::<()>(0);
                let _ = rx.recv();
            })
            .unwrap_err();
        println!("{err}");
        return;
    }
    let out = run_child(NAME);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("all goroutines are asleep - deadlock!"),
        "{}",
        describe(&out)
    );
}

fn goroutines_deadlocked_among_themselves_are_reported() {
    const NAME: &str = "goroutines_deadlocked_among_themselves_are_reported";
    if is_child(NAME) {
        let start = Instant::now();
        let err = rt(2)
            .run(|| {
                let (tx1, rx1) = gort::chan::bounded::<()>(0);
                let (tx2, rx2) = gort::chan::bounded::<()>(0);
                let h = gort::go(move || {
                    let _keep = tx1;
                    let _ = rx2.recv();
                });
                let _keep = tx2;
                let _ = rx1.recv();
                h.join().unwrap();
            })
            .unwrap_err();
        println!("after {:?}: {err}", start.elapsed());
        return;
    }
    let out = run_child(NAME);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("all goroutines are asleep - deadlock!"),
        "{}",
        describe(&out)
    );
    assert!(stdout.contains("chan receive"), "{}", describe(&out));
}

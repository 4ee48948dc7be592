//! Deadlock reports under default settings in a process that uses the
//! process-wide poller (a socket made on a plain thread). With libtest a
//! thread the test did not start is always alive, so these tests run in a
//! child on its main thread (gort_testing::harness).

use gort_net::TcpListener;
use gort_sched::Runtime;
use gort_testing::{describe, is_child, run_child, Test};

fn main() {
    const TESTS: &[Test] = &[(
        "a_deadlock_is_reported_after_the_process_wide_poller_started",
        a_deadlock_is_reported_after_the_process_wide_poller_started,
    )];
    gort_testing::harness(TESTS)
}

fn a_deadlock_is_reported_after_the_process_wide_poller_started() {
    const NAME: &str = "a_deadlock_is_reported_after_the_process_wide_poller_started";
    if is_child(NAME) {
        // A hang (no report) ends the child in 20 s instead of the
        // harness's 120: a watchdog thread would itself be an outside one.
        // SAFETY: alarm(2) only arms a timer; SIGALRM's default action
        // ends the process.
        unsafe { libc::alarm(20) };
        // A socket made outside any run starts the poller's own thread,
        // which must not count as an outside thread that could wake main.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let _accepting = std::thread::spawn(move || {
            // Blocks this plain thread in the process-wide poller, then
            // ends: only the poller's thread stays.
            l.set_deadline(Some(std::time::Instant::now()));
            let _ = l.accept();
        })
        .join();
        let r = Runtime::builder().procs(2).build().unwrap().run(|| {
            let (_tx, rx) = gort_sync::chan::bounded::<u8>(0);
            let _ = rx.recv();
        });
        match r {
            Err(gort_sched::Error::Deadlock { .. }) => println!("DEADLOCK-REPORTED"),
            other => println!("unexpected: {other:?}"),
        }
        return;
    }
    let out = run_child(NAME);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("DEADLOCK-REPORTED"), "{}", describe(&out));
}

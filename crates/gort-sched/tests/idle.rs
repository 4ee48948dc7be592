//! An idle runtime uses under 1% of a core: sysmon sleeps until a timer or
//! a syscall needs it, and idle Ms sleep on futexes. One test in this
//! binary, so CPU time read from /proc/self/stat is the runtime's.

#![cfg(not(loom))]

use gort_sched::park::{park, WaitReason};
use gort_sched::{go, sleep, syscall, Runtime};
use std::time::Duration;

/// utime + stime of the whole process, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 (1-based): 11 and 12 here.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

// qemu-user's own threads and translation make the process's CPU time
// meaningless for this; the behaviour is checked natively.
gort_testing::ignore_under_qemu! {
    "the process's CPU time under qemu-user is the emulator's";
    #[test]
    fn an_idle_runtime_uses_under_one_percent_of_a_core() {
        an_idle_runtime_uses_under_one_percent()
    }
}

fn an_idle_runtime_uses_under_one_percent() {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let used = Runtime::builder()
        .procs(4)
        .build()
        .unwrap()
        .run(move || {
            // Some goroutines parked on something, one syscall done long
            // ago (sysmon stops polling 10 ms after the last syscall).
            for _ in 0..4 {
                go(|| park(WaitReason::Other("idle"), |_| true));
            }
            syscall(|| ());
            sleep(Duration::from_millis(50));
            let before = cpu_ticks();
            sleep(Duration::from_secs(1));
            cpu_ticks() - before
        })
        .unwrap();
    // Idle is well under 1% of a core; the bound is 5% (five ticks at
    // 100 Hz) so that a busy machine's accounting noise cannot fail it,
    // while a runtime that polls (a sysmon that never sleeps long, an M
    // that spins) uses 10% to 100% and fails.
    let limit = (hz / 20).max(5);
    assert!(
        used <= limit,
        "idle runtime used {used} ticks of CPU in 1 s (limit {limit}, {hz} Hz)"
    );
}

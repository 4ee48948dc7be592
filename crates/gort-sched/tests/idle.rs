//! An idle runtime uses under 1% of a core: sysmon sleeps until a timer or
//! a syscall needs it, and idle Ms sleep on futexes. One test in this
//! binary, so CPU time read from /proc/self/stat is the runtime's.

#![cfg(not(loom))]

use gort_sched::{go, park, sleep, syscall, Runtime, WaitReason};
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

#[test]
fn an_idle_runtime_uses_under_one_percent_of_a_core() {
    if std::env::var_os("GORT_UNDER_QEMU").is_some() {
        // qemu-user's own threads and translation make the process's CPU
        // time meaningless for this; the behaviour is checked natively.
        println!("skipped under qemu-user: emulator CPU time is not the runtime's");
        return;
    }
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
    // 1% of a core over one second, in ticks (at least one tick of slack
    // for the sampling granularity).
    let limit = (hz / 100).max(1);
    assert!(
        used <= limit,
        "idle runtime used {used} ticks of CPU in 1 s (limit {limit}, {hz} Hz)"
    );
}

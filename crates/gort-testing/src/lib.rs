//! Test support shared by gort's crates (dev-dependency only, never
//! published).
//!
//! # What is here and why
//!
//! - **qemu-user.** gort's tests also run for aarch64 and i686 under
//!   qemu-user, 5-20x slower than native, where a few things the kernel does
//!   natively are not emulated (qemu accepts `MADV_GUARD_INSTALL` and ignores
//!   it; the process's CPU time is the emulator's). [`under_qemu`] says so at
//!   run time (to scale iteration counts with [`scaled`]);
//!   [`ignore_under_qemu!`] marks a test `#[ignore]` at build time, so libtest
//!   reports it as *ignored* with the reason instead of as passed.
//! - **Skips.** A test whose precondition can only be checked at run time
//!   (a kernel feature) cannot become "ignored": libtest has no run-time skip.
//!   [`skip!`] prints `skipped: <test>: <reason>` straight to the process's
//!   stderr, past libtest's output capture, so the line shows in a plain
//!   `cargo test` run next to the test's `ok`, and returns from the test.
//!   Use it only for what the build cannot know; prefer `#[cfg_attr(cond,
//!   ignore = "reason")]` or [`ignore_under_qemu!`].
//! - **Re-executing the test binary** (death tests: a child that must die
//!   with a fatal message, or be signalled): [`child_command`] and
//!   [`run_child`] run one test of this binary again, alone, in the child
//!   role ([`is_child`]), through the cross runner when there is one.
//! - **Memory.** [`alloc::Counting`], a counting global allocator, for tests
//!   that check what memory a structure keeps.
//!
//! Rejected: a copy of these helpers per test file (seven copies of
//! `under_qemu` had drifted apart: some tested `== "1"`, some only that the
//! variable was set); a proc-macro attribute for the build-time ignore (a
//! proc macro is built for the host and shared by the host and cross builds,
//! so the qemu decision would flip it back and forth between runs).

#![deny(unsafe_op_in_unsafe_fn)]

pub mod alloc;

use std::ffi::OsString;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Whether the tests run under qemu-user: the runner (`cargo xtask test`, or
/// the documented cargo variables) says so with `GORT_UNDER_QEMU=1`.
pub fn under_qemu() -> bool {
    std::env::var("GORT_UNDER_QEMU").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether this build of the tests is for a qemu-user run (decided when it
/// was compiled; see [`ignore_under_qemu!`]).
pub const BUILT_FOR_QEMU: bool = cfg!(gort_under_qemu);

/// `native` iterations natively, a tenth (at least 1) under qemu, where
/// everything runs 5-20x slower.
pub fn scaled(native: usize) -> usize {
    if under_qemu() {
        (native / 10).max(1)
    } else {
        native
    }
}

/// Marks the wrapped items (a `#[test]` fn) `#[ignore = REASON]` when the
/// tests are built for a run under qemu-user, so libtest reports them as
/// ignored with the reason; natively they are left as they are.
///
/// ```
/// gort_testing::ignore_under_qemu! {
///     "qemu-user's CPU time is the emulator's";
///     // #[test] goes here, in a test file.
///     fn an_idle_runtime_is_idle() {
///         // ...
///     }
/// }
/// # fn main() { an_idle_runtime_is_idle() }
/// ```
#[cfg(gort_under_qemu)]
#[macro_export]
macro_rules! ignore_under_qemu {
    ($reason:literal; $($item:tt)*) => {
        #[ignore = $reason]
        $($item)*
    };
}

/// Marks the wrapped items (a `#[test]` fn) `#[ignore = REASON]` when the
/// tests are built for a run under qemu-user, so libtest reports them as
/// ignored with the reason; natively they are left as they are.
///
/// ```
/// gort_testing::ignore_under_qemu! {
///     "qemu-user's CPU time is the emulator's";
///     // #[test] goes here, in a test file.
///     fn an_idle_runtime_is_idle() {
///         // ...
///     }
/// }
/// # fn main() { an_idle_runtime_is_idle() }
/// ```
#[cfg(not(gort_under_qemu))]
#[macro_export]
macro_rules! ignore_under_qemu {
    ($reason:literal; $($item:tt)*) => {
        $($item)*
    };
}

/// Skips the current test at run time: prints `skipped: <test>: <reason>`
/// to the process's stderr (not captured by libtest, so it shows in a plain
/// `cargo test` run) and returns from the enclosing function.
///
/// For preconditions only the running system can answer (a kernel feature);
/// what the build knows belongs in `#[ignore]`.
#[macro_export]
macro_rules! skip {
    ($($reason:tt)+) => {{
        $crate::report_skip(&::std::format!($($reason)+));
        return;
    }};
}

/// Prints the skip line of [`skip!`]; call the macro instead.
pub fn report_skip(reason: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    // Straight to the stream: libtest captures print!/eprint! only.
    let _ = writeln!(std::io::stderr().lock(), "skipped: {test}: {reason}");
    // A [`harness`] test: reported as ignored, with the reason.
    *SKIPPED.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_string());
}

/// The reason of the last [`skip!`], for [`harness`].
static SKIPPED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Environment variable that puts a re-executed test binary in the child
/// role of the test it names.
pub const CHILD_ROLE: &str = "GORT_TEST_CHILD";

/// Whether this process is the child of test `name`.
pub fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ROLE).is_ok_and(|v| v == name)
}

/// A command that runs this test binary again.
///
/// Natively that is `current_exe()`. A cross-compiled test binary runs under
/// a runner (qemu-user, or the i686 dynamic loader), and exec of it from
/// inside the runner fails with ENOEXEC unless binfmt_misc is set up (it is
/// not on the CI machine; qemu's emulated vfork cannot even report the
/// error to posix_spawn, so the child just exits with status 127). The child
/// therefore goes through the same runner:
/// `GORT_TEST_RUNNER` (set by `cargo xtask test`), else cargo's
/// `CARGO_TARGET_<TRIPLE>_RUNNER` for this target, which the test inherits
/// from the cargo command line. Under a runner, argv\[0\] names the test
/// binary (current_exe() names the loader under `--native-i686`).
pub fn self_command() -> Command {
    let runner = std::env::var("GORT_TEST_RUNNER")
        .ok()
        .or_else(|| std::env::var(format!("CARGO_TARGET_{}_RUNNER", target_triple_env())).ok())
        .filter(|r| !r.trim().is_empty());
    match runner {
        Some(r) => {
            let mut words = r.split_whitespace();
            let mut c = Command::new(words.next().unwrap());
            c.args(words);
            c.arg(
                std::env::args_os()
                    .next()
                    .unwrap_or_else(|| OsString::from("?")),
            );
            c
        }
        None => Command::new(std::env::current_exe().expect("current_exe")),
    }
}

fn target_triple_env() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "X86_64_UNKNOWN_LINUX_GNU"
    } else if cfg!(target_arch = "aarch64") {
        "AARCH64_UNKNOWN_LINUX_GNU"
    } else if cfg!(target_arch = "x86") {
        "I686_UNKNOWN_LINUX_GNU"
    } else {
        "UNKNOWN"
    }
}

/// The command that runs test `name` of this binary again in the child
/// role, alone, with its output piped (for tests that need the `Child`
/// itself, to signal it; [`run_child`] waits for it).
pub fn child_command(name: &str) -> Command {
    let mut cmd = self_command();
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ROLE, name)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs test `name` of this binary again as a child in the child role and
/// returns its output; kills it after 120 s (a hang is a failure, never a
/// stuck test run).
pub fn run_child(name: &str) -> Output {
    run_child_with(child_command(name), name)
}

/// [`run_child`] with a command from [`child_command`] the caller adjusted
/// (extra environment).
pub fn run_child_with(mut cmd: Command, name: &str) -> Output {
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    // Read the pipes on threads so a chatty child cannot block on them.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).ok();
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).ok();
        v
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("child {name} still running after 120 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    };
    if out.status.code() == Some(127) && out.stdout.is_empty() {
        panic!(
            "could not execute {cmd:?} (exit status 127); a cross-compiled test \
             needs its runner in GORT_TEST_RUNNER or CARGO_TARGET_<TRIPLE>_RUNNER"
        );
    }
    out
}

/// The child's status and output, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts that the child of test `name` failed and printed `message` on
/// stderr (a death test's usual check).
pub fn assert_child_died_with(name: &str, message: &str) {
    let out = run_child(name);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{name} exited successfully\n{}",
        describe(&out)
    );
    assert!(
        stderr.contains(message),
        "missing {message:?}\n{}",
        describe(&out)
    );
}

/// A test of a [`harness`] binary: its name and body.
pub type Test = (&'static str, fn());

/// The `main` of a test binary built with `harness = false`, for tests
/// whose child must run on the process's **main thread with no other
/// thread alive** (libtest keeps its main thread waiting while a test runs
/// on another one, so a process under libtest always has a thread the
/// test did not start).
///
/// In the child role ([`is_child`]) it runs that one test on the main
/// thread and exits. Otherwise it runs every test whose name contains the
/// command line's filter (the whole name with `--exact`), one after the
/// other on the main thread, each under `catch_unwind`, and prints
/// libtest's lines (`test NAME ... ok`, the summary; a test that called
/// [`skip!`] is reported `ignored, <reason>`); the exit status is 101 if
/// one failed. `--list` lists them. Other flags that cargo passes
/// (`--nocapture`, `--test-threads=N`, `-q`) are accepted and ignored.
pub fn harness(tests: &[Test]) -> ! {
    if let Ok(role) = std::env::var(CHILD_ROLE) {
        match tests.iter().find(|(n, _)| *n == role) {
            Some((_, body)) => {
                body();
                std::process::exit(0);
            }
            None => {
                eprintln!("no test named {role:?} in this binary");
                std::process::exit(101);
            }
        }
    }
    let mut exact = false;
    let mut list = false;
    let mut filters = Vec::new();
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--exact" => exact = true,
            "--list" => list = true,
            _ if a.starts_with('-') => {}
            _ => filters.push(a),
        }
    }
    let selected: Vec<&Test> = tests
        .iter()
        .filter(|(n, _)| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        n == f
                    } else {
                        n.contains(f.as_str())
                    }
                })
        })
        .collect();
    if list {
        for (n, _) in &selected {
            println!("{n}: test");
        }
        std::process::exit(0);
    }
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    let mut ignored = 0;
    for (name, body) in &selected {
        *SKIPPED.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let r = std::panic::catch_unwind(body);
        let skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner()).take();
        match (r, skipped) {
            (Ok(()), Some(reason)) => {
                ignored += 1;
                println!("test {name} ... ignored, {reason}");
            }
            (Ok(()), None) => println!("test {name} ... ok"),
            (Err(_), _) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for n in &failed {
            println!("    {n}");
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; {ignored} ignored; 0 measured; {} filtered out\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len() - ignored,
        failed.len(),
        tests.len() - selected.len()
    );
    std::process::exit(if failed.is_empty() { 0 } else { 101 });
}

//! Helpers shared by the integration tests; each test crate uses a subset.
#![allow(dead_code)]

use std::ffi::OsString;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Whether the tests run under qemu-user: the runner (`cargo xtask test`, or
/// the documented cargo variables) says so with GORT_UNDER_QEMU=1.
pub fn under_qemu() -> bool {
    std::env::var("GORT_UNDER_QEMU").is_ok_and(|v| v == "1")
}

/// Iterations scaled down under qemu, where everything runs ~10x slower.
pub fn scaled(native: usize) -> usize {
    if under_qemu() {
        (native / 10).max(1)
    } else {
        native
    }
}

/// The running kernel's (major, minor) version from uname(2).
pub fn kernel_version() -> (u32, u32) {
    // SAFETY: uname fills in the zeroed struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is valid for writes.
    assert_eq!(unsafe { libc::uname(&mut u) }, 0);
    // SAFETY: uname NUL-terminates the field.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy();
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|s| s.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Whether the kernel refuses to read `addr` on our behalf: write(2) of one
/// byte from it into a pipe fails with EFAULT. Touches nothing itself, so it
/// is safe to ask about a guard page.
pub fn kernel_cannot_read(addr: *const u8) -> bool {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the kernel checks the source address itself.
    let r = unsafe { libc::write(fds[1], addr.cast(), 1) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    // SAFETY: our descriptors.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    match r {
        1 => false,
        -1 if errno == Some(libc::EFAULT) => true,
        _ => panic!("write(2) from {addr:p}: {r}, errno {errno:?}"),
    }
}

/// Residency of each page in `[lo, lo + len)` (mincore(2)).
pub fn resident_pages(lo: *const u8, len: usize) -> Vec<bool> {
    let page = page_size();
    let n = len.div_ceil(page);
    let mut v = vec![0u8; n];
    // SAFETY: `v` has one byte per page of the range.
    let r = unsafe { libc::mincore(lo as *mut _, len, v.as_mut_ptr()) };
    assert_eq!(r, 0, "mincore: {}", std::io::Error::last_os_error());
    v.into_iter().map(|b| b & 1 == 1).collect()
}

pub fn page_size() -> usize {
    // SAFETY: no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Environment variable that puts a re-executed test binary in the child
/// role of the test it names.
pub const CHILD_ROLE: &str = "GORT_STACK_TEST_CHILD";

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
/// GORT_TEST_RUNNER (set by `cargo xtask test`), else cargo's
/// CARGO_TARGET_<TRIPLE>_RUNNER for this target, which the test inherits
/// from the cargo command line. Under a runner, argv[0] names the test
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
/// itself, to signal it; `run_child` waits for it).
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
/// returns its output; kills it after 120 s.
pub fn run_child(name: &str) -> Output {
    let mut cmd = child_command(name);
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

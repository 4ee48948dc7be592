//! C programs linked with the gort-cgo-ctests staticlib (Go's c-archive
//! shape): built here with the target's C compiler (`CC_<target>`, set by
//! `cargo xtask test`, else `cc`), run through the target's runner
//! (qemu-user for cross targets), and checked by their output.

use gort_testing as common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// Link the library into this test too, so cargo builds its staticlib
// (next to this binary's deps directory) before running us.
use gort_cgo_ctests as _;

/// The staticlib cargo built for this test run: in this test binary's
/// `deps/` directory, `libgort_cgo_ctests-<hash>.a` (cargo does not copy it
/// up for test builds); the newest one if several builds left theirs.
fn staticlib() -> PathBuf {
    let exe = PathBuf::from(std::env::args_os().next().expect("argv[0]"));
    let deps = exe.parent().expect("test binary's directory");
    let newest = std::fs::read_dir(deps)
        .expect("deps directory")
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("libgort_cgo_ctests-") && n.ends_with(".a")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
    newest
        .unwrap_or_else(|| {
            panic!(
                "no libgort_cgo_ctests-*.a in {}: cargo builds it with this test \
                 (crate-type staticlib)",
                deps.display()
            )
        })
        .path()
}

fn c_compiler() -> String {
    let target = env!("CTESTS_TARGET");
    std::env::var(format!("CC_{}", target.replace('-', "_")))
        .or_else(|_| std::env::var(format!("CC_{target}")))
        .unwrap_or_else(|_| "cc".to_string())
}

/// Compiles and links `c/<name>.c` with the staticlib; returns the program.
fn build(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("c")
        .join(format!("{name}.c"));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(env!("CTESTS_TARGET"))
        .join(name);
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let cc = c_compiler();
    let status = Command::new(&cc)
        .args(["-O1", "-g", "-fno-omit-frame-pointer", "-fno-inline", "-o"])
        .arg(&out)
        .arg(&src)
        .arg(staticlib())
        // What rustc's --print native-static-libs lists for a std staticlib.
        .args([
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
            "-lc",
        ])
        .status()
        .unwrap_or_else(|e| panic!("running the C compiler {cc}: {e}"));
    assert!(status.success(), "{cc} failed to build {name}.c");
    out
}

/// Runs a built C program (through the target's runner) with `args`.
fn run(prog: &Path, args: &[&str]) -> Output {
    let runner = std::env::var("GORT_TEST_RUNNER")
        .ok()
        .filter(|r| !r.trim().is_empty());
    let mut cmd = match runner {
        Some(r) => {
            let mut w = r.split_whitespace();
            let mut c = Command::new(w.next().unwrap());
            c.args(w).arg(prog);
            c
        }
        None => Command::new(prog),
    };
    cmd.args(args).env("RUST_BACKTRACE", "0");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    out
}

fn run_ok(name: &str, args: &[&str]) -> String {
    let prog = build(name);
    let out = run(&prog, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.starts_with("ok "),
        "{name} {args:?}: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

fn field(out: &str, key: &str) -> i64 {
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == key {
            return words.next().unwrap().parse().unwrap();
        }
    }
    panic!("no {key} in {out:?}")
}

/// The C main thread calls back N times; the first call starts the
/// default callback runtime.
#[test]
fn main_thread_callbacks() {
    let n = common::scaled(100_000).to_string();
    let out = run_ok("main10", &[&n]);
    assert_eq!(field(&out, "ok").to_string(), n);
    // golang/go#68285: the main thread's stack bounds are probed once, then
    // reused by every later callback (Go 1.22 probed every time).
    assert_eq!(field(&out, "probes"), 1, "{out}");
}

/// Callbacks at C stack depths 1-4 with a 40,000-byte C frame each, the
/// deepest panicking; recovered in the outer Rust callback, from the C main
/// thread and from a goroutine that called C. C code after the panicking
/// callback never runs.
#[test]
fn deep_stack_panics_are_recovered_in_the_outer_rust_frame() {
    let rounds = common::scaled(200).to_string();
    run_ok("deep", &[&rounds]);
}

/// 16 pthreads x N callbacks x 4 rounds: exact counts; the runtime's own
/// threads stay bounded (callbacks need a P, not a new thread).
#[test]
fn pthread_callbacks_are_counted_exactly_with_few_runtime_threads() {
    let per = common::scaled(10_000).to_string();
    let out = run_ok("threads", &[&per]);
    let procs = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    let threads = field(&out, "runtime_threads");
    // M0 of the callback runtime, sysmon, and at most one M per P for
    // spinning and handoffs, plus one in transit.
    assert!(
        threads <= 2 * procs + 3,
        "{threads} runtime threads with {procs} procs: {out}"
    );
    let extra = field(&out, "extra_ms");
    // One per C thread at most at once (16) plus the main thread.
    assert!((1..=17).contains(&extra), "extra Ms: {out}");
}

/// Callbacks from C threads park on a channel fed by a goroutine; a C
/// thread that exits gives its M back to the pool.
#[test]
fn callbacks_park_on_channels_and_exited_threads_return_their_m() {
    let per = common::scaled(1000).to_string();
    run_ok("park", &[&per]);
}

/// A panic in a callback with no Rust caller above it aborts with a
/// message naming the callback and the panic.
#[test]
fn a_panic_with_no_rust_caller_is_a_clear_fatal_error() {
    let prog = build("panic");
    let out = run(&prog, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("panic in a callback from C with no Rust caller to unwind to")
            && stderr.contains("fx_panic_no_caller")
            && stderr.contains("nobody to catch this"),
        "stderr:\n{stderr}"
    );
}

//! `cargo xtask`: the project's task runner (setup, cross-target tests under
//! qemu-user, benches, CI).
//!
//! It is reached through the alias in `.cargo/config.toml`
//! (`xtask = "run --quiet --package xtask --"`) and depends on std only, so it
//! builds in seconds on a fresh machine. Run `cargo xtask --help` for the
//! commands.
//!
//! Design notes:
//! - Cross targets get their linker, qemu runner and C compiler through
//!   environment variables set on the child `cargo` only
//!   (`CARGO_TARGET_<TRIPLE>_LINKER`, `CARGO_TARGET_<TRIPLE>_RUNNER`,
//!   `CC_<triple>`, `AR_<triple>`), so nobody needs a config of their own and
//!   variables the user already set win.
//! - The host target is tested without `--target`, so `cargo xtask test`
//!   shares `target/debug` with plain `cargo test` and `cargo run`.
//! - Every requested target runs even when one fails; the summary names each
//!   failed target.

use std::env;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

mod report;

// ---------------------------------------------------------------------------
// Targets and what they need
// ---------------------------------------------------------------------------

const X86_64: &str = "x86_64-unknown-linux-gnu";
const AARCH64: &str = "aarch64-unknown-linux-gnu";
const I686: &str = "i686-unknown-linux-gnu";

/// The three supported targets, in the order they are tested.
const ALL_TARGETS: [&str; 3] = [X86_64, AARCH64, I686];

/// Workspace members that `xtask test` leaves out: this program, and the
/// benchmarks (compiled by `ci` with `cargo bench --no-run`).
const TEST_EXCLUDED: [&str; 2] = ["xtask", "gort-benches"];

/// rustup components `ci` needs.
const COMPONENTS: [&str; 2] = ["rustfmt", "clippy"];

/// How a cross target is built and run from an x86_64 Linux host.
struct Cross {
    /// C compiler, also the linker.
    gcc: &'static str,
    /// Archiver for the cc crate.
    ar: &'static str,
    /// qemu-user binary.
    qemu: &'static str,
    /// Sysroot of Debian's cross libc, given to qemu with `-L`.
    sysroot: &'static str,
    /// Debian packages: (package, how to tell it is installed).
    packages: &'static [(&'static str, Probe)],
}

/// How to tell that a Debian package is installed.
#[derive(Clone, Copy)]
enum Probe {
    /// A program on PATH that the package provides.
    Program(&'static str),
    /// No program to look for: ask dpkg (or, without dpkg, look for a file).
    Dpkg { fallback_file: &'static str },
}

const AARCH64_CROSS: Cross = Cross {
    gcc: "aarch64-linux-gnu-gcc",
    ar: "aarch64-linux-gnu-ar",
    qemu: "qemu-aarch64",
    sysroot: "/usr/aarch64-linux-gnu",
    packages: &[
        (
            "gcc-aarch64-linux-gnu",
            Probe::Program("aarch64-linux-gnu-gcc"),
        ),
        (
            "libc6-dev-arm64-cross",
            Probe::Dpkg {
                fallback_file: "/usr/aarch64-linux-gnu/lib/libc.so",
            },
        ),
        ("qemu-user", Probe::Program("qemu-aarch64")),
    ],
};

const I686_CROSS: Cross = Cross {
    gcc: "i686-linux-gnu-gcc",
    ar: "i686-linux-gnu-ar",
    qemu: "qemu-i386",
    sysroot: "/usr/i686-linux-gnu",
    packages: &[
        ("gcc-i686-linux-gnu", Probe::Program("i686-linux-gnu-gcc")),
        (
            "libc6-dev-i386-cross",
            Probe::Dpkg {
                fallback_file: "/usr/i686-linux-gnu/lib/libc.so",
            },
        ),
        ("qemu-user", Probe::Program("qemu-i386")),
    ],
};

/// The i686 dynamic loader from Debian's libc6-i386-cross (a dependency of
/// libc6-dev-i386-cross): runs i686 binaries natively on x86_64.
const I686_LOADER: &str = "/usr/i686-linux-gnu/lib/ld-linux.so.2";
const I686_LIBDIR: &str = "/usr/i686-linux-gnu/lib";
const I686_LOADER_PACKAGE: &str = "libc6-i386-cross";

fn cross_for(triple: &str) -> Option<&'static Cross> {
    match triple {
        AARCH64 => Some(&AARCH64_CROSS),
        I686 => Some(&I686_CROSS),
        _ => None,
    }
}

/// How one target's tests are built and run.
struct Plan {
    triple: String,
    /// Run natively, without `--target`.
    native: bool,
    /// Environment for the child cargo.
    env: Vec<(String, String)>,
    /// Human-readable description of how the tests run.
    how: String,
}

/// Builds the environment for testing (or linting) `triple`.
fn plan_for(triple: &str, host: &str, native_i686: bool) -> Result<Plan, String> {
    if triple == host {
        return Ok(Plan {
            triple: triple.to_string(),
            native: true,
            env: Vec::new(),
            how: "native".to_string(),
        });
    }
    let cross = match cross_for(triple) {
        Some(c) if host == X86_64 => c,
        _ => {
            return Err(format!(
                "no recipe to test {triple} from host {host} (supported: {} from {X86_64})",
                ALL_TARGETS.join(", ")
            ))
        }
    };
    let upper = triple.to_uppercase().replace('-', "_");
    let lower = triple.replace('-', "_");
    let mut env = vec![
        (
            format!("CARGO_TARGET_{upper}_LINKER"),
            cross.gcc.to_string(),
        ),
        (format!("CC_{lower}"), cross.gcc.to_string()),
        (format!("AR_{lower}"), cross.ar.to_string()),
    ];
    let runner = if triple == I686 && native_i686 {
        format!("{I686_LOADER} --library-path {I686_LIBDIR}")
    } else {
        env.push(("GORT_UNDER_QEMU".to_string(), "1".to_string()));
        format!("{} -L {}", cross.qemu, cross.sysroot)
    };
    let runner_var = format!("CARGO_TARGET_{upper}_RUNNER");
    // Tests that re-execute their own binary (death tests) must go through
    // the runner too: an aarch64 binary does not run on the host. A runner
    // the user set wins, here as below.
    let runner = env::var(&runner_var).unwrap_or(runner);
    env.push((runner_var, runner.clone()));
    env.push(("GORT_TEST_RUNNER".to_string(), runner.clone()));
    // A variable the user set already wins over ours.
    env.retain(|(k, _)| env::var_os(k).is_none());
    Ok(Plan {
        triple: triple.to_string(),
        native: false,
        env,
        how: format!("runner: {runner}"),
    })
}

// ---------------------------------------------------------------------------
// Entry point and argument parsing
// ---------------------------------------------------------------------------

const MAIN_HELP: &str = "\
cargo xtask: gort's task runner

USAGE:
    cargo xtask <COMMAND> [OPTIONS]

COMMANDS:
    setup    install the toolchains, cross compilers and qemu-user the targets need
    test     cargo test on one or more targets (cross targets under qemu-user)
    bench    run the benchmarks
    loom     run the loom models of the scheduler's lock-free protocols
    ci       setup, fmt, clippy, docs, tests on all targets, loom models, benches compiled: what CI runs
    help     print this message, or `help <COMMAND>` for a command's

Targets: x86_64-unknown-linux-gnu (host, native), aarch64-unknown-linux-gnu and
i686-unknown-linux-gnu (both under qemu-user).
";

const SETUP_HELP: &str = "\
cargo xtask setup: install what the targets need and is missing

USAGE:
    cargo xtask setup [--target TRIPLE]...

Checks first and does nothing when all is there (quick, no network):
  - rustup components rustfmt and clippy, and `rustup target add` for each target;
  - for aarch64-unknown-linux-gnu: Debian packages gcc-aarch64-linux-gnu,
    libc6-dev-arm64-cross, qemu-user;
  - for i686-unknown-linux-gnu: gcc-i686-linux-gnu, libc6-dev-i386-cross, qemu-user.
Debian packages are installed with apt-get when running as root (apt-get update
first, once, only when something is missing); otherwise the exact command is
printed and setup fails. Nothing reads stdin.

OPTIONS:
    --target TRIPLE    a target to prepare (repeatable); default: all three
    -h, --help         print this message
";

const TEST_HELP: &str = "\
cargo xtask test: cargo test on one or more targets

USAGE:
    cargo xtask test [--target TRIPLE]... [--all-targets] [--native-i686] [-- ARGS...]

Runs `cargo test --workspace --exclude xtask --exclude gort-benches` for each
target (the host without --target, cross targets with --target TRIPLE), with
the linker, qemu-user runner and cc crate compiler passed through
CARGO_TARGET_<TRIPLE>_LINKER, CARGO_TARGET_<TRIPLE>_RUNNER, CC_<triple> and
AR_<triple>; variables already set in the environment win. Tests run under
qemu see GORT_UNDER_QEMU=1 (to scale iteration counts down), and cross tests
see GORT_TEST_RUNNER, the runner command, for tests that re-execute their own
binary (`$GORT_TEST_RUNNER argv[0] ...`; under --native-i686 current_exe()
names the loader, argv[0] the test). Every target runs even when one fails;
the command fails naming each failed target. Missing tools: run
`cargo xtask setup --target TRIPLE`.

OPTIONS:
    --target TRIPLE    a target to test (repeatable); default: the host only
    --all-targets      test x86_64, aarch64 and i686
    --native-i686      run i686 tests through the i686 dynamic loader
                       (/usr/i686-linux-gnu/lib/ld-linux.so.2) instead of
                       qemu-i386: faster and stricter; qemu stays the default
    -- ARGS...         appended to each `cargo test` command line, e.g.
                       `-- switch` (a test-name filter), `-- -- --nocapture`
                       (a test harness flag), `-- -p gort-arch` (one package
                       instead of the workspace)
    -h, --help         print this message
";

const BENCH_HELP: &str = "\
cargo xtask bench: run the benchmarks and write the comparison report

USAGE:
    cargo xtask bench [--report-only] [--no-go] [-- ARGS...]

1. `cargo bench -p gort-benches ARGS...` (criterion). ARGS pick a subset:
   `-- --bench switch` (one bench target), `-- --bench sched -- yield`
   (a criterion filter inside it).
2. The Go benchmarks of each module in benches/go/ with
   `go test -run - -bench . -benchtime 1000000x`, at GOMAXPROCS=1 and 2,
   when Go is installed (`go` on PATH or /usr/lib/go-1.23/bin/go; skipped
   with a note otherwise). With `--bench NAME` in ARGS only the Go module
   of that name runs (benches/go/NAME), if there is one. Results are kept
   in <target>/go-bench/ for later reports.
3. The report: the comparison table (gort vs Go vs may vs tokio vs
   corosensei, ratios, the machine) between the bench-report markers of
   docs/performance.md, and the bar chart docs/performance.svg. Rows come
   from every result criterion and the Go runs have saved, so a partial run
   updates its rows and keeps the others.

OPTIONS:
    --report-only   skip 1 and 2: rewrite the report from saved results
    --no-go         skip the Go benchmarks
    -- ARGS...      appended to the `cargo bench` command line
    -h, --help      print this message
";

const LOOM_HELP: &str = "\
cargo xtask loom: the loom models of gort-sched's lock-free protocols

USAGE:
    cargo xtask loom [-- ARGS]

Builds gort-sched's integration tests with RUSTFLAGS=\"--cfg loom\" in release
mode, in their own target dir (<target>/loom, so the normal build cache is
kept), and runs them: the models are the tests named loom_*; every other test
file is compiled out under cfg(loom). ARGS go to cargo test.

OPTIONS:
    -h, --help    print this message
";

const CI_HELP: &str = "\
cargo xtask ci: everything CI checks, in order

USAGE:
    cargo xtask ci

Steps (stops at the first failing step; the test step runs every target first):
  1. setup for all targets (installs what is missing; see `cargo xtask setup --help`)
  2. cargo fmt --all --check
  3. cargo clippy --workspace --all-targets -- -D warnings
  4. cargo clippy for aarch64 and i686 (-D warnings): the per-architecture code
     that the host never compiles
  5. cargo doc --no-deps --workspace with RUSTDOCFLAGS=-D warnings: every
     public item documented, every intra-doc link resolved
  6. tests on x86_64, aarch64 and i686 (doc tests included on the host, where
     rustdoc runs them: the README's example among them)
  7. loom models (see `cargo xtask loom --help`)
  8. cargo bench --workspace --no-run (benches compiled, not run)
Uses cargo's target dir (CARGO_TARGET_DIR when set).

OPTIONS:
    -h, --help    print this message
";

/// An error ends the command with a message; usage errors also print a hint.
enum Error {
    Usage(String),
    Failed(String),
}

fn fail<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error::Failed(msg.into()))
}

fn usage<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error::Usage(msg.into()))
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Usage(msg)) => {
            eprintln!("error: {msg}");
            eprintln!("run `cargo xtask --help` for usage");
            ExitCode::from(2)
        }
        Err(Error::Failed(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &[String]) -> Result<(), Error> {
    let Some((cmd, rest)) = args.split_first() else {
        print!("{MAIN_HELP}");
        return Ok(());
    };
    let wants_help = |rest: &[String]| {
        rest.iter()
            .take_while(|a| *a != "--")
            .any(|a| a == "-h" || a == "--help")
    };
    match cmd.as_str() {
        "-h" | "--help" => {
            print!("{MAIN_HELP}");
            Ok(())
        }
        "help" => {
            let text = match rest.first().map(String::as_str) {
                None => MAIN_HELP,
                Some("setup") => SETUP_HELP,
                Some("test") => TEST_HELP,
                Some("bench") => BENCH_HELP,
                Some("ci") => CI_HELP,
                Some("loom") => LOOM_HELP,
                Some(other) => return usage(format!("no command `{other}`")),
            };
            print!("{text}");
            Ok(())
        }
        "setup" if wants_help(rest) => {
            print!("{SETUP_HELP}");
            Ok(())
        }
        "test" if wants_help(rest) => {
            print!("{TEST_HELP}");
            Ok(())
        }
        "bench" if wants_help(rest) => {
            print!("{BENCH_HELP}");
            Ok(())
        }
        "loom" if wants_help(rest) => {
            print!("{LOOM_HELP}");
            Ok(())
        }
        "loom" => {
            let extra = match rest.split_first() {
                None => &[][..],
                Some((dashdash, extra)) if dashdash == "--" => extra,
                Some((other, _)) => {
                    return usage(format!("unexpected `{other}` (loom ARGS go after `--`)"))
                }
            };
            loom(extra)
        }
        "ci" if wants_help(rest) => {
            print!("{CI_HELP}");
            Ok(())
        }
        "setup" => {
            let opts = parse_target_opts(rest, false)?;
            if !opts.extra.is_empty() {
                return usage("setup takes no `-- ARGS`");
            }
            let targets = if opts.targets.is_empty() {
                all_targets()
            } else {
                opts.targets
            };
            setup(&targets)
        }
        "test" => {
            let opts = parse_target_opts(rest, true)?;
            let host = host_triple()?;
            let targets = if opts.targets.is_empty() {
                vec![host.clone()]
            } else {
                opts.targets
            };
            if opts.native_i686 && !targets.iter().any(|t| t == I686) {
                eprintln!("note: --native-i686 has no effect without --target {I686}");
            }
            test(&host, &targets, opts.native_i686, &opts.extra)
        }
        "bench" => {
            let mut opts = BenchOpts::default();
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--report-only" => opts.report_only = true,
                    "--no-go" => opts.no_go = true,
                    "--" => {
                        opts.extra = it.cloned().collect();
                        break;
                    }
                    other => {
                        return usage(format!("unexpected `{other}` (bench ARGS go after `--`)"))
                    }
                }
            }
            bench(&opts)
        }
        "ci" => {
            if let Some(other) = rest.first() {
                return usage(format!("ci takes no arguments, got `{other}`"));
            }
            ci()
        }
        other => usage(format!("no command `{other}`")),
    }
}

struct TargetOpts {
    targets: Vec<String>,
    native_i686: bool,
    extra: Vec<String>,
}

/// Parses `[--target T]... [--all-targets] [--native-i686] [-- ARGS...]`;
/// `--all-targets` and `--native-i686` only when `test` is true.
fn parse_target_opts(args: &[String], test: bool) -> Result<TargetOpts, Error> {
    let mut opts = TargetOpts {
        targets: Vec::new(),
        native_i686: false,
        extra: Vec::new(),
    };
    let add = |opts: &mut TargetOpts, t: &str| -> Result<(), Error> {
        if !ALL_TARGETS.contains(&t) {
            return usage(format!(
                "unsupported target `{t}` (supported: {})",
                ALL_TARGETS.join(", ")
            ));
        }
        if !opts.targets.iter().any(|x| x == t) {
            opts.targets.push(t.to_string());
        }
        Ok(())
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--" => {
                opts.extra = it.cloned().collect();
                break;
            }
            "--target" => match it.next() {
                Some(t) => add(&mut opts, t)?,
                None => return usage("--target needs a value"),
            },
            "--all-targets" if test => {
                for t in ALL_TARGETS {
                    add(&mut opts, t)?;
                }
            }
            "--native-i686" if test => opts.native_i686 = true,
            a if a.starts_with("--target=") => add(&mut opts, &a["--target=".len()..])?,
            a => {
                let hint = if test {
                    " (cargo test arguments go after `--`)"
                } else {
                    ""
                };
                return usage(format!("unexpected argument `{a}`{hint}"));
            }
        }
    }
    Ok(opts)
}

fn all_targets() -> Vec<String> {
    ALL_TARGETS.iter().map(|t| t.to_string()).collect()
}

// ---------------------------------------------------------------------------
// Process helpers
// ---------------------------------------------------------------------------

/// The workspace root: xtask's manifest directory's parent.
fn workspace_root() -> PathBuf {
    let dir = env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.parent().map(Path::to_path_buf).unwrap_or(dir)
}

/// `cargo` (the one that runs us) in the workspace root, without the
/// variables `cargo run` set for xtask itself.
fn cargo() -> Command {
    let program = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(program);
    cmd.current_dir(workspace_root());
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(
                key,
                "CARGO_BIN_NAME" | "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// The command line as a shell would show it.
fn display(cmd: &Command) -> String {
    let mut out = String::new();
    for (key, val) in cmd.get_envs() {
        if let Some(val) = val {
            let _ = write!(
                out,
                "{}={} ",
                key.to_string_lossy(),
                quote(&val.to_string_lossy())
            );
        }
    }
    out.push_str(&quote(&cmd.get_program().to_string_lossy()));
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&quote(&arg.to_string_lossy()));
    }
    out
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `cmd` with inherited stdio, echoing it first; Ok when it exits 0.
fn status(cmd: &mut Command) -> Result<(), Error> {
    println!("$ {}", display(cmd));
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => fail(format!("`{}` failed ({s})", short(cmd))),
        Err(e) => fail(format!("could not run `{}`: {e}", short(cmd))),
    }
}

/// Program and arguments only, for error messages.
fn short(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

/// Runs `cmd` quietly and returns its stdout when it exits 0.
fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Looks `name` up on PATH as `command -v` does.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|dir| dir.join(name)).find(|p| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

fn host_triple() -> Result<String, Error> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let Some(out) = output(Command::new(&rustc).arg("-vV")) else {
        return fail("`rustc -vV` failed: is Rust installed?");
    };
    match out.lines().find_map(|l| l.strip_prefix("host: ")) {
        Some(host) => Ok(host.trim().to_string()),
        None => fail("`rustc -vV` printed no host line"),
    }
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:04.1}s", (s / 60.0) as u64, s % 60.0)
    }
}

// ---------------------------------------------------------------------------
// setup
// ---------------------------------------------------------------------------

/// What is missing for a set of targets.
#[derive(Default)]
struct Missing {
    components: Vec<&'static str>,
    rust_targets: Vec<String>,
    /// Debian packages with the reason each is wanted.
    packages: Vec<(&'static str, String)>,
}

impl Missing {
    fn is_empty(&self) -> bool {
        self.components.is_empty() && self.rust_targets.is_empty() && self.packages.is_empty()
    }
}

fn rustup_available() -> bool {
    on_path("rustup").is_some()
}

fn rustup_list(what: &str) -> Result<Vec<String>, Error> {
    match output(Command::new("rustup").args([what, "list", "--installed"])) {
        Some(out) => Ok(out.lines().map(|l| l.trim().to_string()).collect()),
        None => fail(format!("`rustup {what} list --installed` failed")),
    }
}

/// Without rustup: is the target's standard library in rustc's sysroot?
fn sysroot_has_target(triple: &str) -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    output(Command::new(rustc).args(["--print", "sysroot"])).is_some_and(|root| {
        Path::new(root.trim())
            .join("lib/rustlib")
            .join(triple)
            .join("lib")
            .is_dir()
    })
}

fn dpkg_installed(package: &str) -> Option<bool> {
    on_path("dpkg-query")?;
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim() == "install ok installed")
}

/// Checks what `targets` need, installing nothing.
fn check(targets: &[String], want_components: bool) -> Result<Missing, Error> {
    let mut missing = Missing::default();
    if rustup_available() {
        if want_components {
            let installed = rustup_list("component")?;
            for c in COMPONENTS {
                let have = installed
                    .iter()
                    .any(|l| l == c || l.starts_with(&format!("{c}-")));
                if !have {
                    missing.components.push(c);
                }
            }
        }
        let installed = rustup_list("target")?;
        for t in targets {
            if !installed.iter().any(|l| l == t) {
                missing.rust_targets.push(t.clone());
            }
        }
    } else {
        for t in targets {
            if !sysroot_has_target(t) {
                missing.rust_targets.push(t.clone());
            }
        }
        if want_components {
            for (c, program) in [("rustfmt", "rustfmt"), ("clippy", "cargo-clippy")] {
                if on_path(program).is_none() {
                    missing.components.push(c);
                }
            }
        }
    }
    for t in targets {
        let Some(cross) = cross_for(t) else { continue };
        for &(package, probe) in cross.packages {
            if missing.packages.iter().any(|(p, _)| *p == package) {
                continue;
            }
            let present = match probe {
                Probe::Program(name) => on_path(name).is_some(),
                Probe::Dpkg { fallback_file } => {
                    dpkg_installed(package).unwrap_or_else(|| Path::new(fallback_file).exists())
                }
            };
            if !present {
                let why = match probe {
                    Probe::Program(p) => format!("{p} for {t}"),
                    Probe::Dpkg { .. } => format!("C library for {t}"),
                };
                missing.packages.push((package, why));
            }
        }
    }
    Ok(missing)
}

fn apt_install_line(packages: &[&str], sudo: bool) -> String {
    let sudo = if sudo { "sudo " } else { "" };
    format!(
        "{sudo}apt-get update && {sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    )
}

fn setup(targets: &[String]) -> Result<(), Error> {
    let start = Instant::now();
    let missing = check(targets, true)?;
    if missing.is_empty() {
        println!(
            "setup: everything is installed for {} ({})",
            targets.join(", "),
            secs(start.elapsed())
        );
        return Ok(());
    }

    // rustup first: it needs no root.
    if !missing.components.is_empty() || !missing.rust_targets.is_empty() {
        if !rustup_available() {
            let mut what: Vec<String> = missing.components.iter().map(|c| c.to_string()).collect();
            what.extend(
                missing
                    .rust_targets
                    .iter()
                    .map(|t| format!("rust-std for {t}")),
            );
            return fail(format!(
                "missing {} and rustup is not installed: install them with your Rust \
                 toolchain manager, or install rustup from https://rustup.rs",
                what.join(", ")
            ));
        }
        if !missing.components.is_empty() {
            status(
                Command::new("rustup")
                    .args(["component", "add"])
                    .args(&missing.components),
            )?;
        }
        if !missing.rust_targets.is_empty() {
            status(
                Command::new("rustup")
                    .args(["target", "add"])
                    .args(&missing.rust_targets),
            )?;
        }
    }

    if !missing.packages.is_empty() {
        let names: Vec<&str> = missing.packages.iter().map(|(p, _)| *p).collect();
        for (p, why) in &missing.packages {
            println!("setup: missing Debian package {p} ({why})");
        }
        if on_path("apt-get").is_none() {
            return fail(format!(
                "apt-get not found: install the equivalents of {} with your system's \
                 package manager (cross gcc and libc for the targets, qemu-user)",
                names.join(", ")
            ));
        }
        if !is_root() {
            eprintln!("setup: installing system packages needs root; run:");
            eprintln!();
            eprintln!("    {}", apt_install_line(&names, true));
            eprintln!();
            eprintln!("then run `cargo xtask setup` again.");
            return fail(format!("missing Debian packages: {}", names.join(" ")));
        }
        status(
            Command::new("apt-get")
                .args(["update"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        status(
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends"])
                .args(&names)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }

    // Trust nothing: check again.
    let still = check(targets, true)?;
    if !still.is_empty() {
        let mut what: Vec<String> = still.components.iter().map(|c| c.to_string()).collect();
        what.extend(
            still
                .rust_targets
                .iter()
                .map(|t| format!("rust target {t}")),
        );
        what.extend(still.packages.iter().map(|(p, why)| format!("{p} ({why})")));
        return fail(format!("still missing after setup: {}", what.join(", ")));
    }
    println!(
        "setup: done for {} ({})",
        targets.join(", "),
        secs(start.elapsed())
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// test
// ---------------------------------------------------------------------------

/// Does `args` (cargo arguments, before any `--` for the harness) select
/// packages itself? Then `--workspace --exclude ...` is left out.
fn selects_packages(args: &[String]) -> bool {
    args.iter().take_while(|a| *a != "--").any(|a| {
        a == "-p"
            || a == "--package"
            || a.starts_with("--package=")
            || (a.starts_with("-p") && !a.starts_with("--"))
    })
}

/// Checks the tools one target needs; Err says what is missing and how to
/// get it.
fn preflight(plan: &Plan, native_i686: bool) -> Result<(), String> {
    if plan.native {
        return Ok(());
    }
    let missing = check(std::slice::from_ref(&plan.triple), false).map_err(|e| match e {
        Error::Usage(m) | Error::Failed(m) => m,
    })?;
    let mut what: Vec<String> = missing
        .rust_targets
        .iter()
        .map(|t| format!("rust target {t}"))
        .collect();
    what.extend(
        missing
            .packages
            .iter()
            .filter(|(p, _)| !(native_i686 && plan.triple == I686 && *p == "qemu-user"))
            .map(|(p, why)| format!("{p} ({why})")),
    );
    if plan.triple == I686 && native_i686 && !Path::new(I686_LOADER).exists() {
        what.push(format!(
            "{I686_LOADER} (Debian package {I686_LOADER_PACKAGE})"
        ));
    }
    if what.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "missing {}; run `cargo xtask setup --target {}`",
            what.join(", "),
            plan.triple
        ))
    }
}

/// Tests each target in turn; all run even when one fails.
fn test(host: &str, targets: &[String], native_i686: bool, extra: &[String]) -> Result<(), Error> {
    struct Outcome {
        triple: String,
        how: String,
        time: Duration,
        error: Option<String>,
    }
    let mut outcomes = Vec::new();
    for triple in targets {
        let start = Instant::now();
        let plan = match plan_for(triple, host, native_i686) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                outcomes.push(Outcome {
                    triple: triple.clone(),
                    how: String::new(),
                    time: start.elapsed(),
                    error: Some(e),
                });
                continue;
            }
        };
        println!();
        println!("==> test {} ({})", plan.triple, plan.how);
        let result = preflight(&plan, native_i686).and_then(|()| {
            let mut cmd = cargo();
            cmd.arg("test");
            if !selects_packages(extra) {
                cmd.arg("--workspace");
                for p in TEST_EXCLUDED {
                    cmd.args(["--exclude", p]);
                }
            }
            if !plan.native {
                cmd.args(["--target", &plan.triple]);
            }
            cmd.args(extra);
            for (k, v) in &plan.env {
                cmd.env(k, v);
            }
            status(&mut cmd).map_err(|e| match e {
                Error::Usage(m) | Error::Failed(m) => m,
            })
        });
        if let Err(e) = &result {
            eprintln!("error: {}: {e}", plan.triple);
        }
        outcomes.push(Outcome {
            triple: plan.triple,
            how: plan.how,
            time: start.elapsed(),
            error: result.err(),
        });
    }

    println!();
    println!("test summary:");
    let width = outcomes.iter().map(|o| o.triple.len()).max().unwrap_or(0);
    for o in &outcomes {
        let verdict = if o.error.is_some() { "FAILED" } else { "ok" };
        println!(
            "  {:<width$}  {:<6}  {:>8}  {}",
            o.triple,
            verdict,
            secs(o.time),
            o.how
        );
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.error.is_some())
        .map(|o| o.triple.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        fail(format!("tests failed on: {}", failed.join(", ")))
    }
}

// ---------------------------------------------------------------------------
// bench
// ---------------------------------------------------------------------------

/// Runs the loom models: gort-sched's tests under `--cfg loom`, release
/// mode, in a target dir of their own so the flag does not invalidate the
/// normal build cache.
fn loom(extra: &[String]) -> Result<(), Error> {
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("loom");
    status(
        cargo()
            .env("RUSTFLAGS", "--cfg loom")
            .env("CARGO_TARGET_DIR", &target_dir)
            .args(["test", "--release", "-p", "gort-sched", "--tests"])
            .args(extra),
    )
}

#[derive(Default)]
struct BenchOpts {
    report_only: bool,
    no_go: bool,
    extra: Vec<String>,
}

/// Runs the criterion benchmarks, then the Go benchmarks in benches/go/*/
/// when a Go toolchain is installed (skipped with a note otherwise), then
/// writes the report (docs/performance.md's table, docs/performance.svg).
fn bench(opts: &BenchOpts) -> Result<(), Error> {
    let target = report::target_dir(&workspace_root());
    if !opts.report_only {
        status(
            cargo()
                .args(["bench", "-p", "gort-benches"])
                .args(&opts.extra),
        )?;
        if !opts.no_go {
            go_benches(&target, &bench_targets(&opts.extra))?;
        }
    }
    write_report(&target)
}

/// The bench targets that `--bench NAME` (or `--bench=NAME`) in cargo's
/// arguments select; empty when all run.
fn bench_targets(extra: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    let mut it = extra.iter().take_while(|a| *a != "--");
    while let Some(a) = it.next() {
        if a == "--bench" {
            names.extend(it.next().cloned());
        } else if let Some(n) = a.strip_prefix("--bench=") {
            names.push(n.to_string());
        }
    }
    names
}

/// Writes the comparison table into docs/performance.md and the chart into
/// docs/performance.svg from every saved result.
fn write_report(target: &Path) -> Result<(), Error> {
    let crit = report::read_criterion(target);
    let go = report::read_go(target);
    let measured = report::measure(&report::rows(), &crit, &go);
    let machine = machine();
    let docs = workspace_root().join("docs");
    let md_path = docs.join("performance.md");
    let svg_name = "performance.svg";
    let doc = std::fs::read_to_string(&md_path).unwrap_or_default();
    let new = report::splice(&doc, &report::table(&measured, &machine, svg_name));
    let wrote = std::fs::write(&md_path, new)
        .and_then(|()| std::fs::write(docs.join(svg_name), report::svg(&measured, &machine)));
    if let Err(e) = wrote {
        return fail(format!("writing the report in {}: {e}", docs.display()));
    }
    println!(
        "report: {} rows (from {} criterion results and {} Go results) in {} and {}",
        measured.len(),
        crit.len(),
        go.len(),
        md_path.display(),
        docs.join(svg_name).display()
    );
    Ok(())
}

/// CPU model, cores, kernel, rustc and Go versions, the date.
fn machine() -> report::Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k.trim(), "model name" | "Model" | "cpu model").then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| format!("{} CPU", env::consts::ARCH));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let rustc = output(Command::new(rustc).arg("-V"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "rustc ?".into());
    let go = go_tool()
        .and_then(|go| output(Command::new(go).env("GOTOOLCHAIN", "local").arg("version")))
        .map(|s| {
            // "go version go1.23.5 linux/amd64" -> "1.23.5 (linux/amd64)"
            let v = s.trim().trim_start_matches("go version go");
            match v.split_once(' ') {
                Some((ver, platform)) => format!("{ver} ({platform})"),
                None => v.to_string(),
            }
        })
        .unwrap_or_else(|| "no Go toolchain (Go columns from earlier runs, if any)".into());
    report::Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel,
        rustc,
        go: format!("Go {go}"),
        date: report::utc_now(),
    }
}

/// Debian's golang-1.23-go installs here without putting `go` on PATH.
const DEBIAN_GO: &str = "/usr/lib/go-1.23/bin/go";

/// `go` from PATH, else Debian's Go 1.23.
fn go_tool() -> Option<PathBuf> {
    on_path("go").or_else(|| {
        let debian = PathBuf::from(DEBIAN_GO);
        debian.is_file().then_some(debian)
    })
}

/// Runs `go test -bench .` in every module under benches/go/ (or those
/// named in `only`), once with GOMAXPROCS=1 and once with 2; each
/// benchmark's ns/op is per goroutine or per operation, so
/// `-benchtime 1000000x` means a million of them. Saves the results under
/// `target`/go-bench for the report.
fn go_benches(target: &Path, only: &[String]) -> Result<(), Error> {
    let Some(go) = go_tool() else {
        println!(
            "note: no Go toolchain (`go` on PATH or {DEBIAN_GO}): skipping the Go benchmarks in benches/go/"
        );
        return Ok(());
    };
    let root = workspace_root().join("benches").join("go");
    let mut modules: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("go.mod").is_file())
                .collect()
        })
        .unwrap_or_default();
    modules.sort();
    if !only.is_empty() {
        modules.retain(|m| {
            m.file_name()
                .is_some_and(|n| only.iter().any(|o| n == o.as_str()))
        });
        if modules.is_empty() {
            println!("note: no Go module in benches/go/ for {}", only.join(", "));
            return Ok(());
        }
    } else if modules.is_empty() {
        println!("note: no Go modules in {}", root.display());
    }
    for module in modules {
        println!("# Go benchmarks in {}", module.display());
        let mut results = Vec::new();
        for procs in [1u32, 2] {
            let mut cmd = Command::new(&go);
            cmd.current_dir(&module)
                // Never download a newer toolchain named by go.mod.
                .env("GOTOOLCHAIN", "local")
                .env("GOMAXPROCS", procs.to_string())
                .args(["test", "-run", "-", "-bench", ".", "-benchtime", "1000000x"]);
            println!("$ {}", display(&cmd));
            let out = match cmd.output() {
                Ok(o) => o,
                Err(e) => return fail(format!("could not run `{}`: {e}", short(&cmd))),
            };
            let stdout = String::from_utf8_lossy(&out.stdout);
            print!("{stdout}");
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            if !out.status.success() {
                return fail(format!("`{}` failed ({})", short(&cmd), out.status));
            }
            results.extend(report::parse_go_output(&stdout, procs));
        }
        let name = module
            .file_name()
            .map_or_else(|| "go".into(), |n| n.to_string_lossy().into_owned());
        if let Err(e) = report::save_go(target, &name, &results) {
            return fail(format!("saving Go results under {}: {e}", target.display()));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// ci
// ---------------------------------------------------------------------------

fn ci() -> Result<(), Error> {
    type Step = (&'static str, Box<dyn Fn() -> Result<(), Error>>);
    let steps: Vec<Step> = vec![
        ("setup (all targets)", Box::new(|| setup(&all_targets()))),
        (
            "cargo fmt --all --check",
            Box::new(|| status(cargo().args(["fmt", "--all", "--check"]))),
        ),
        (
            "cargo clippy (host)",
            Box::new(|| {
                status(cargo().args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ]))
            }),
        ),
        ("cargo clippy (aarch64, i686)", Box::new(clippy_cross)),
        (
            "cargo doc --no-deps (warnings are errors)",
            Box::new(|| {
                status(cargo().env("RUSTDOCFLAGS", "-D warnings").args([
                    "doc",
                    "--no-deps",
                    "--workspace",
                    "--exclude",
                    "xtask",
                ]))
            }),
        ),
        (
            "tests (x86_64, aarch64, i686)",
            Box::new(|| test(&host_triple()?, &all_targets(), false, &[])),
        ),
        ("loom models", Box::new(|| loom(&[]))),
        (
            "cargo bench --workspace --no-run",
            Box::new(|| status(cargo().args(["bench", "--workspace", "--no-run"]))),
        ),
    ];

    let start = Instant::now();
    let total = steps.len();
    let mut done: Vec<(&str, Duration, bool)> = Vec::new();
    let mut failure = None;
    for (i, (name, step)) in steps.iter().enumerate() {
        println!();
        println!(
            "=================== ci [{}/{total}] {name}  (at {})",
            i + 1,
            secs(start.elapsed())
        );
        let t = Instant::now();
        let result = step();
        done.push((name, t.elapsed(), result.is_ok()));
        if let Err(e) = result {
            failure = Some(e);
            break;
        }
    }

    println!();
    println!("=================== ci summary ({})", secs(start.elapsed()));
    for (i, (name, _)) in steps.iter().enumerate() {
        match done.get(i) {
            Some((_, time, true)) => println!("  ok       {:>8}  {name}", secs(*time)),
            Some((_, time, false)) => println!("  FAILED   {:>8}  {name}", secs(*time)),
            None => println!("  skipped  {:>8}  {name}", ""),
        }
    }
    match failure {
        None => {
            println!("ci: all {total} steps passed");
            Ok(())
        }
        Some(Error::Usage(m) | Error::Failed(m)) => {
            let (name, _, _) = done[done.len() - 1];
            fail(format!("ci failed at `{name}`: {m}"))
        }
    }
}

/// Clippy for the cross targets: the per-architecture code (cfg'd on
/// target_arch) is never compiled by the host's clippy.
fn clippy_cross() -> Result<(), Error> {
    let host = host_triple()?;
    for triple in [AARCH64, I686] {
        let plan = plan_for(triple, &host, false).map_err(Error::Failed)?;
        let mut cmd = cargo();
        cmd.args(["clippy", "--workspace", "--all-targets"]);
        for p in TEST_EXCLUDED {
            cmd.args(["--exclude", p]);
        }
        cmd.args(["--target", triple, "--", "-D", "warnings"]);
        for (k, v) in &plan.env {
            cmd.env(k, v);
        }
        status(&mut cmd)?;
    }
    Ok(())
}

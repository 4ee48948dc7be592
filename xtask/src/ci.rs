//! `cargo xtask ci`: every check CI runs, in order, each step timed.

use std::time::{Duration, Instant};

use crate::checks::{examples, miri, msrv_build, no_default_features, package, release_tests};
use crate::lint::lint;
use crate::loom::loom;
use crate::process::{cargo, fail, host_triple, secs, status, take_failure_lines, Error};
use crate::setup::setup;
use crate::targets::{all_targets, plan_for, AARCH64, I686, TEST_EXCLUDED};
use crate::test::test;

pub(crate) const CI_HELP: &str = "\
cargo xtask ci: everything CI checks, in order

USAGE:
    cargo xtask ci [--only WORD]...

Steps, in order; every step runs even when an earlier one failed (except
after a failed setup), and the command fails naming each failed step. docs/ci.md says what each checks and why.
   1. setup: all targets, plus the MSRV toolchain and a nightly with Miri
   2. lint: no source file over 1,000 lines, no import cycle inside a crate
   3. cargo fmt --all --check
   4. cargo clippy --workspace --all-targets -- -D warnings
   5. cargo clippy for aarch64 and i686 (-D warnings): the per-architecture
      code that the host never compiles
   6. cargo doc --no-deps --workspace with RUSTDOCFLAGS=-D warnings
   7. MSRV: cargo check --all-targets with the rust-version toolchain
   8. tests on x86_64, aarch64 and i686 (debug at opt-level 1; doc tests on
      the host, every crate's README example among them)
   9. each crate's examples run on x86_64, aarch64 and i686
  10. each crate with --no-default-features (tests where it has features)
  11. tests in release (thin LTO): every crate on the host; the runtime
      crates on aarch64 and i686 under qemu
  12. Miri on the unit tests of the pure data structures
  13. loom models (see `cargo xtask loom --help`)
  14. cargo package of every publishable crate, verified
  15. cargo bench --workspace --no-run (benches compiled, not run)
Each step is timed; the summary prints each time and the total against the
40-minute budget.
Uses cargo's target dir (CARGO_TARGET_DIR when set).

OPTIONS:
    --only WORD   run only the steps whose name contains WORD (repeatable),
                  e.g. `--only Miri`, `--only examples`, `--only package`
    -h, --help    print this message
";

/// What the whole of `ci` may take on CI's 2-core machine.
const BUDGET: Duration = Duration::from_secs(40 * 60);

/// Runs the steps (those whose name contains one of `only`, when given).
pub(crate) fn ci(only: &[String]) -> Result<(), Error> {
    type Step = (&'static str, Box<dyn Fn() -> Result<(), Error>>);
    let steps: Vec<Step> = vec![
        (
            "setup (all targets, MSRV and Miri toolchains)",
            Box::new(|| setup(&all_targets(), true)),
        ),
        ("lint (file length, import cycles)", Box::new(lint)),
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
        ("MSRV: cargo check with rust-version", Box::new(msrv_build)),
        (
            "tests (x86_64, aarch64, i686)",
            Box::new(|| test(&host_triple()?, &all_targets(), false, &[])),
        ),
        ("examples (x86_64, aarch64, i686)", Box::new(examples)),
        ("--no-default-features", Box::new(no_default_features)),
        (
            "tests in release, thin LTO (x86_64; runtime crates on aarch64, i686)",
            Box::new(release_tests),
        ),
        ("Miri (pure data structures)", Box::new(miri)),
        ("loom models", Box::new(|| loom(&[]))),
        (
            "cargo package (publishable crates, verified)",
            Box::new(package),
        ),
        (
            "cargo bench --workspace --no-run",
            Box::new(|| status(cargo().args(["bench", "--workspace", "--no-run"]))),
        ),
    ];

    let steps: Vec<Step> = steps
        .into_iter()
        .filter(|(name, _)| only.is_empty() || only.iter().any(|w| name.contains(w.as_str())))
        .collect();
    let start = Instant::now();
    let total = steps.len();
    let mut done: Vec<(&str, Duration, bool)> = Vec::new();
    let mut failures: Vec<(&str, String, Vec<String>)> = Vec::new();
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
        let lines = take_failure_lines();
        if let Err(Error::Usage(m) | Error::Failed(m)) = result {
            eprintln!("ci: step `{name}` failed: {m}");
            failures.push((*name, m, lines));
            // Without the tools nothing else can run; any other step's
            // failure leaves the rest worth running (one run shows every
            // failing step).
            if name.starts_with("setup") {
                break;
            }
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
    let elapsed = start.elapsed();
    let verdict = if elapsed > BUDGET { "OVER" } else { "within" };
    println!(
        "  total {}: {verdict} the {} budget",
        secs(elapsed),
        secs(BUDGET)
    );
    if failures.is_empty() {
        println!("ci: all {total} steps passed");
        return Ok(());
    }
    // What failed, where the reader of a log's tail sees it.
    for (name, message, lines) in &failures {
        println!();
        println!("failed: {name}");
        println!("  {message}");
        for line in lines {
            println!("  | {line}");
        }
    }
    let names: Vec<&str> = failures.iter().map(|(n, _, _)| *n).collect();
    fail(format!(
        "ci: {} of {total} steps failed: {}",
        failures.len(),
        names.join("; ")
    ))
}

/// Clippy for the cross targets: the per-architecture code (cfg'd on
/// target_arch) is never compiled by the host's clippy.
pub(crate) fn clippy_cross() -> Result<(), Error> {
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

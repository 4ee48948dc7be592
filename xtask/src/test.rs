//! `cargo xtask test`: `cargo test` on each requested target, cross
//! targets under qemu-user, every target run even when one fails.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::process::{cargo, fail, secs, status, Error};
use crate::setup::check;
use crate::targets::{plan_for, Plan, I686, I686_LOADER, I686_LOADER_PACKAGE, TEST_EXCLUDED};

pub(crate) const TEST_HELP: &str = "\
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

// ---------------------------------------------------------------------------

/// Does `args` (cargo arguments, before any `--` for the harness) select
/// packages itself? Then `--workspace --exclude ...` is left out.
pub(crate) fn selects_packages(args: &[String]) -> bool {
    args.iter().take_while(|a| *a != "--").any(|a| {
        a == "-p"
            || a == "--package"
            || a.starts_with("--package=")
            || (a.starts_with("-p") && !a.starts_with("--"))
    })
}

/// Checks the tools one target needs; Err says what is missing and how to
/// get it.
pub(crate) fn preflight(plan: &Plan, native_i686: bool) -> Result<(), String> {
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
pub(crate) fn test(
    host: &str,
    targets: &[String],
    native_i686: bool,
    extra: &[String],
) -> Result<(), Error> {
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

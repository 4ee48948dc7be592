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

mod bench;
mod checks;
mod ci;
mod lint;
mod loom;
mod process;
mod report;
mod setup;
mod targets;
mod test;
mod toolchains;

use std::env;
use std::process::ExitCode;

use crate::bench::{bench, BenchOpts, BENCH_HELP};
use crate::ci::{ci, CI_HELP};
use crate::lint::{lint, LINT_HELP};
use crate::loom::{loom, LOOM_HELP};
use crate::process::{host_triple, usage, Error};
use crate::setup::{setup, SETUP_HELP};
use crate::targets::{all_targets, ALL_TARGETS, I686};
use crate::test::{test, TEST_HELP};

const MAIN_HELP: &str = "\
cargo xtask: gort's task runner

USAGE:
    cargo xtask <COMMAND> [OPTIONS]

COMMANDS:
    setup    install the toolchains, cross compilers and qemu-user the targets need
    test     cargo test on one or more targets (cross targets under qemu-user)
    bench    run the benchmarks
    loom     run the loom models of the scheduler's and the channels' protocols
    lint     fail on a source file over 1,000 lines or an import cycle inside a crate
    ci       everything CI runs: setup, lint, fmt, clippy, docs, MSRV, tests (debug and
             release) and examples on all targets, Miri, loom, packaging, benches compiled
    help     print this message, or `help <COMMAND>` for a command's

Targets: x86_64-unknown-linux-gnu (host, native), aarch64-unknown-linux-gnu and
i686-unknown-linux-gnu (both under qemu-user).
";

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
                Some("lint") => LINT_HELP,
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
        "lint" if wants_help(rest) => {
            print!("{LINT_HELP}");
            Ok(())
        }
        "lint" => {
            if let Some(other) = rest.first() {
                return usage(format!("lint takes no arguments, got `{other}`"));
            }
            lint()
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
            // Without --target: everything, CI's toolchains included.
            let everything = opts.targets.is_empty();
            let targets = if everything {
                all_targets()
            } else {
                opts.targets
            };
            setup(&targets, everything)
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
            let mut only = Vec::new();
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                match (a.as_str(), it.next()) {
                    ("--only", Some(word)) => only.push(word.clone()),
                    _ => return usage(format!("ci takes only `--only WORD`, got `{a}`")),
                }
            }
            ci(&only)
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

// ---------------------------------------------------------------------------
// Process helpers
// ---------------------------------------------------------------------------

//! The CI steps beyond fmt, clippy, docs and the debug tests: what users
//! build. Each is one function that `ci` times; docs/ci.md says what each
//! checks and why.
//!
//! - `package`: every publishable crate packaged and built from its
//!   packaged sources alone.
//! - `examples`: each crate's examples run on the three targets.
//! - `release_tests`: tests built as users build (release, thin LTO,
//!   codegen-units 1, no debug assertions), on the host and under qemu.
//! - `no_default_features`: each crate without its default features.
//! - `msrv`: the workspace builds with the declared `rust-version`.
//! - `miri`: the pure data structures' unit tests under Miri.

use std::path::PathBuf;

use crate::process::{cargo, host_triple, status, subdirs, workspace_root, Error};
use crate::targets::{all_targets, plan_for, AARCH64, I686, TEST_EXCLUDED};
use crate::test::test;
use crate::toolchains::{msrv, toolchain_cargo, NIGHTLY};

/// Examples that are tools rather than demonstrations: built by the test
/// step like every example, but not run here. (package, example, why)
const NOT_RUN: [(&str, &str, &str); 1] = [(
    "gort-unwind",
    "unwind_probe",
    "a measuring tool that needs a scenario and a count (docs/performance.md)",
)];

/// The release-mode tests that run under qemu (aarch64, i686), as cargo
/// arguments, one `cargo test` per entry. Every release test binary is a
/// whole-program thin-LTO link (std included), 30-60 CPU-seconds each on
/// CI's machine, so the cross targets get the tests where optimized code
/// meets goroutine migration: a thread-local's address kept across a park
/// is wrong once the goroutine resumes on another thread, and on aarch64
/// the compiler does keep it in release builds. That is every test of the
/// scheduler, the channels, the C bridge and the facade, gort-unwind's
/// migration test (its per-goroutine state swapped at each switch), and
/// gort-arch's (the switch itself; small binaries, no dependencies). Left
/// to the host's release run and the three-target debug run: gort-stack
/// (mappings, signals and guard pages: no migration), gort-unwind's other
/// tests (panics on one thread) and gort-cgo's C-program tests.
const RELEASE_CROSS: [&[&str]; 3] = [
    &[
        "-p",
        "gort-sched",
        "-p",
        "gort-sync",
        "-p",
        "gort-cgo",
        "-p",
        "gort",
        "--tests",
    ],
    &["-p", "gort-unwind", "--test", "migrate"],
    &["-p", "gort-arch", "--tests"],
];

/// A workspace package: its name, directory and whether it is published.
pub(crate) struct Package {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) publish: bool,
}

/// The packages under crates/ (two levels deep), from their manifests.
pub(crate) fn crate_packages() -> Vec<Package> {
    let root = workspace_root().join("crates");
    let mut dirs = Vec::new();
    for d in subdirs(&root) {
        dirs.extend(subdirs(&d));
        dirs.push(d);
    }
    let mut out: Vec<Package> = dirs
        .into_iter()
        .filter_map(|dir| {
            let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
            let mut in_package = false;
            let (mut name, mut publish) = (None, true);
            for line in text.lines() {
                let line = line.trim();
                if line.starts_with('[') {
                    in_package = line == "[package]";
                    continue;
                }
                let Some((k, v)) = line.split_once('=') else {
                    continue;
                };
                match (in_package, k.trim()) {
                    (true, "name") => name = Some(v.trim().trim_matches('"').to_string()),
                    (true, "publish") => publish = v.trim() != "false",
                    _ => {}
                }
            }
            Some(Package {
                name: name?,
                dir,
                publish,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn published() -> Vec<Package> {
    crate_packages().into_iter().filter(|p| p.publish).collect()
}

/// `cargo package` with verification for every publishable crate, all in
/// one command: the crates depend on each other by path and none is on
/// crates.io yet, so each is verified against the others' packaged
/// sources (cargo >= 1.89 packages path dependencies together this way;
/// `cargo package -p gort-stack` alone would look gort-arch up on
/// crates.io). Verification builds each crate from its .crate file in
/// target/package, with only the files the package ships.
pub(crate) fn package() -> Result<(), Error> {
    let crates = published();
    forget_stale_extractions(&crates);
    // Cargo never rebuilds a registry package whose version it has built
    // (registry sources are immutable), and ours keep their version between
    // commits: verify in a target dir of its own, where our crates'
    // fingerprints are removed first (the dependencies stay built).
    let verify_dir = target_dir().join("package-verify");
    let fingerprints = verify_dir.join("debug").join(".fingerprint");
    for entry in std::fs::read_dir(&fingerprints)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = crates.iter().any(|c| {
            name.strip_prefix(&format!("{}-", c.name))
                .is_some_and(|hash| hash.chars().all(|ch| ch.is_ascii_hexdigit()))
        });
        if ours {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let mut cmd = cargo();
    cmd.env("CARGO_TARGET_DIR", &verify_dir);
    // --allow-dirty: check the working tree as it is (CI's clone is clean).
    cmd.args(["package", "--allow-dirty"]);
    for p in &crates {
        cmd.args(["-p", &p.name]);
    }
    status(&mut cmd)
}

/// Cargo verifies each crate against the others' packages through a
/// temporary local registry, and extracts those packages under
/// `$CARGO_HOME/registry/src/<that registry>/NAME-VERSION`, where it reuses
/// an extraction that exists: since our version number does not change
/// between commits, a second `cargo package` on the same machine verified
/// against the first one's sources (seen here: gort-cgo against a gort-sched
/// from before a refactor). So our own crates' extractions in registries
/// other than crates.io's are removed first; nothing else is touched.
fn forget_stale_extractions(crates: &[Package]) {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let Some(home) = home else { return };
    for registry in subdirs(&home.join("registry").join("src")) {
        let is_crates_io = registry
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("index.crates.io-"));
        if is_crates_io {
            continue;
        }
        for dir in subdirs(&registry) {
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            let ours = name.is_some_and(|n| {
                crates.iter().any(|c| {
                    n.strip_prefix(&format!("{}-", c.name))
                        .is_some_and(|v| v.starts_with(|ch: char| ch.is_ascii_digit()))
                })
            });
            if ours {
                println!("package: removing the stale extraction {}", dir.display());
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
}

/// Runs each publishable crate's examples on the three targets (cross
/// targets under qemu, as `cargo xtask test --target` runs tests). Debug
/// builds, which share the test step's cache.
pub(crate) fn examples() -> Result<(), Error> {
    let host = host_triple()?;
    let mut runs = Vec::new();
    for p in published() {
        let mut names: Vec<String> = std::fs::read_dir(p.dir.join("examples"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let path = e.path();
                (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(String::from))?
            })
            .collect();
        names.sort();
        for name in names {
            match NOT_RUN
                .iter()
                .find(|(pk, ex, _)| *pk == p.name && *ex == name)
            {
                Some((_, _, why)) => println!("examples: not running {}/{name}: {why}", p.name),
                None => runs.push((p.name.clone(), name)),
            }
        }
    }
    for triple in all_targets() {
        let plan = plan_for(&triple, &host, false).map_err(Error::Failed)?;
        for (package, example) in &runs {
            let mut cmd = cargo();
            cmd.args(["run", "-p", package, "--example", example]);
            if !plan.native {
                cmd.args(["--target", &triple]);
            }
            for (k, v) in &plan.env {
                cmd.env(k, v);
            }
            status(&mut cmd)?;
        }
    }
    Ok(())
}

/// The tests in the release profile (opt-level 3, thin LTO, one codegen
/// unit, no debug assertions: what users ship): every crate on the host,
/// the selection in `RELEASE_CROSS` on aarch64 and i686 under qemu (each
/// selection on both targets even when one fails).
pub(crate) fn release_tests() -> Result<(), Error> {
    let host = host_triple()?;
    let mut cmd = cargo();
    cmd.args(["test", "--release", "--workspace", "--tests"]);
    for p in TEST_EXCLUDED {
        cmd.args(["--exclude", p]);
    }
    let mut failed = Vec::new();
    if let Err(Error::Usage(m) | Error::Failed(m)) = status(&mut cmd) {
        failed.push(format!("host: {m}"));
    }
    for args in RELEASE_CROSS {
        let mut extra = vec!["--release".to_string()];
        extra.extend(args.iter().map(|a| a.to_string()));
        if let Err(Error::Usage(m) | Error::Failed(m)) = test(
            &host,
            &[AARCH64.to_string(), I686.to_string()],
            false,
            &extra,
        ) {
            failed.push(format!("{}: {m}", args.join(" ")));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "release tests failed: {}",
            failed.join("; ")
        )))
    }
}

/// Each publishable crate built with `--no-default-features` (all targets:
/// lib, tests, examples), and the tests of the crates that have default
/// features run without them. Only gort-unwind has features today
/// (`fast-raise`); its dependents ask for its defaults, so its fallback
/// path is tested through its own tests alone.
pub(crate) fn no_default_features() -> Result<(), Error> {
    for p in published() {
        let manifest = std::fs::read_to_string(p.dir.join("Cargo.toml")).unwrap_or_default();
        let has_defaults = manifest.lines().any(|l| {
            l.split_once('=')
                .is_some_and(|(k, _)| k.trim() == "default")
        });
        let verb = if has_defaults { "test" } else { "check" };
        let mut cmd = cargo();
        cmd.args([
            verb,
            "-p",
            &p.name,
            "--no-default-features",
            "--all-targets",
        ]);
        status(&mut cmd)?;
    }
    Ok(())
}

/// `cargo check` of every crate, its tests and examples with the declared
/// MSRV toolchain, in a target dir of its own (target/msrv) so the default
/// toolchain's cache is kept.
pub(crate) fn msrv_build() -> Result<(), Error> {
    let version = msrv()?;
    let target_dir = target_dir().join("msrv");
    let mut cmd = toolchain_cargo(&version);
    cmd.env("CARGO_TARGET_DIR", &target_dir)
        .args(["check", "--workspace", "--all-targets"]);
    for p in TEST_EXCLUDED {
        cmd.args(["--exclude", p]);
    }
    status(&mut cmd)
}

/// What Miri runs: (package, unit-test filters; empty: every unit test).
/// gort-sched's unit tests are the run queue, the G state word, the P
/// status, note and retake's ticks; gort-stack's the bounds cache and the
/// registry; gort-sync's the spin lock and the bounded ring. Left out:
/// gort-sync's unit tests that start a runtime (goroutine switches are asm,
/// which Miri cannot run) and the 100,000-value buffer tests (minutes under
/// Miri; the bounded-ring test covers the same code at a small size).
const MIRI: [(&str, &[&str]); 3] = [
    ("gort-sched", &[]),
    ("gort-stack", &[]),
    ("gort-sync", &["lock::", "buffer::tests::a_bounded_ring"]),
];

/// The unit tests of the pure data structures under Miri, which interprets
/// every access and reports data races and undefined behaviour; the
/// integration tests (stack switches in asm, mmap'd stacks, signals,
/// futexes, many threads) are beyond it.
///
/// `-Zmiri-permissive-provenance`: the run queue's tests use small
/// integers as stand-in pointers (never dereferenced).
pub(crate) fn miri() -> Result<(), Error> {
    for (package, filters) in MIRI {
        let mut cmd = toolchain_cargo(NIGHTLY);
        cmd.env("MIRIFLAGS", "-Zmiri-permissive-provenance")
            .args(["miri", "test", "-p", package, "--lib"]);
        if !filters.is_empty() {
            cmd.arg("--").args(filters);
        }
        status(&mut cmd)?;
    }
    Ok(())
}

/// Cargo's target directory (CARGO_TARGET_DIR when set).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

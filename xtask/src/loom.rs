//! `cargo xtask loom`: the loom models of gort-sched and gort-sync.

use std::env;
use std::path::PathBuf;

use crate::process::{cargo, status, workspace_root, Error};

pub(crate) const LOOM_HELP: &str = "\
cargo xtask loom: the loom models of gort-sched's lock-free protocols and
gort-sync's channel wait queue

USAGE:
    cargo xtask loom [-- ARGS]

Builds gort-sched's and gort-sync's tests with RUSTFLAGS=\"--cfg loom\" in release
mode, in their own target dir (<target>/loom, so the normal build cache is
kept), and runs them: the models are the tests named loom_*; every other test
file is compiled out under cfg(loom). ARGS go to cargo test.

OPTIONS:
    -h, --help    print this message
";

/// Runs the loom models: gort-sched's and gort-sync's tests under `--cfg loom`, release
/// mode, in a target dir of their own so the flag does not invalidate the
/// normal build cache.
pub(crate) fn loom(extra: &[String]) -> Result<(), Error> {
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("loom");
    status(
        cargo()
            .env("RUSTFLAGS", "--cfg loom")
            .env("CARGO_TARGET_DIR", &target_dir)
            .args([
                "test",
                "--release",
                "-p",
                "gort-sched",
                "-p",
                "gort-sync",
                "--tests",
            ])
            .args(extra),
    )
}

//! `cargo xtask setup`: checks what the targets and the CI steps need and
//! installs what is missing (rustup components, targets and toolchains;
//! Debian packages through apt-get when running as root).

use std::env;
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::process::{fail, is_root, on_path, output, secs, status, Error};
use crate::targets::{cross_for, Probe, COMPONENTS};
use crate::toolchains::{check_toolchains, install_toolchains, MissingToolchains};

pub(crate) const SETUP_HELP: &str = "\
cargo xtask setup: install what the targets need and is missing

USAGE:
    cargo xtask setup [--target TRIPLE]...

Checks first and does nothing when all is there (quick, no network):
  - rustup components rustfmt and clippy, and `rustup target add` for each target;
  - without --target (as `cargo xtask ci` runs it), also the toolchains CI's
    steps use: the declared MSRV (rust-version in Cargo.toml) and
    a nightly with miri and rust-src, both with rustup's minimal profile;
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

/// What is missing for a set of targets.
#[derive(Default)]
pub(crate) struct Missing {
    pub(crate) components: Vec<&'static str>,
    pub(crate) rust_targets: Vec<String>,
    /// Debian packages with the reason each is wanted.
    pub(crate) packages: Vec<(&'static str, String)>,
}

impl Missing {
    pub(crate) fn is_empty(&self) -> bool {
        self.components.is_empty() && self.rust_targets.is_empty() && self.packages.is_empty()
    }
}

pub(crate) fn rustup_available() -> bool {
    on_path("rustup").is_some()
}

pub(crate) fn rustup_list(what: &str) -> Result<Vec<String>, Error> {
    match output(Command::new("rustup").args([what, "list", "--installed"])) {
        Some(out) => Ok(out.lines().map(|l| l.trim().to_string()).collect()),
        None => fail(format!("`rustup {what} list --installed` failed")),
    }
}

/// Without rustup: is the target's standard library in rustc's sysroot?
pub(crate) fn sysroot_has_target(triple: &str) -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    output(Command::new(rustc).args(["--print", "sysroot"])).is_some_and(|root| {
        Path::new(root.trim())
            .join("lib/rustlib")
            .join(triple)
            .join("lib")
            .is_dir()
    })
}

pub(crate) fn dpkg_installed(package: &str) -> Option<bool> {
    on_path("dpkg-query")?;
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim() == "install ok installed")
}

/// Checks what `targets` need, installing nothing.
pub(crate) fn check(targets: &[String], want_components: bool) -> Result<Missing, Error> {
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

pub(crate) fn apt_install_line(packages: &[&str], sudo: bool) -> String {
    let sudo = if sudo { "sudo " } else { "" };
    format!(
        "{sudo}apt-get update && {sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    )
}

/// Installs what `targets` need; with `toolchains`, also the MSRV
/// toolchain and the nightly with Miri that CI's steps run.
pub(crate) fn setup(targets: &[String], toolchains: bool) -> Result<(), Error> {
    let start = Instant::now();
    let missing = check(targets, true)?;
    let missing_toolchains = if toolchains && rustup_available() {
        check_toolchains()?
    } else {
        MissingToolchains::default()
    };
    if toolchains && !rustup_available() {
        let msrv = crate::toolchains::msrv()?;
        return fail(format!(
            "CI needs the Rust {msrv} toolchain and a nightly with Miri, installed through \
             rustup, which is not installed: install rustup from https://rustup.rs"
        ));
    }
    if missing_toolchains.is_empty() && missing.is_empty() {
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

    if !missing_toolchains.is_empty() {
        for what in missing_toolchains.describe() {
            println!("setup: missing {what}");
        }
        install_toolchains(&missing_toolchains)?;
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
    let still_toolchains = toolchains && !check_toolchains()?.is_empty();
    if !still.is_empty() || still_toolchains {
        let mut what: Vec<String> = still.components.iter().map(|c| c.to_string()).collect();
        what.extend(
            still
                .rust_targets
                .iter()
                .map(|t| format!("rust target {t}")),
        );
        what.extend(still.packages.iter().map(|(p, why)| format!("{p} ({why})")));
        if toolchains {
            what.extend(check_toolchains()?.describe());
        }
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

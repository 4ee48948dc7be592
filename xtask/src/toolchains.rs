//! The Rust toolchains CI needs beside the default one: the declared MSRV
//! (the workspace's `rust-version`, checked with a real build) and a nightly
//! with Miri. Installed by `setup` through rustup (minimal profile), run
//! through `rustup run`, so that the cargo running xtask stays the default.

use std::process::Command;

use crate::process::{fail, on_path, output, remove_package_env, status, workspace_root, Error};

/// The nightly toolchain that runs Miri.
pub(crate) const NIGHTLY: &str = "nightly";

/// Components the nightly needs: Miri, and the standard library's source
/// from which Miri builds its own sysroot.
const NIGHTLY_COMPONENTS: [&str; 2] = ["miri", "rust-src"];

/// The workspace's declared minimum Rust version (`rust-version` in
/// Cargo.toml's `[workspace.package]`).
pub(crate) fn msrv() -> Result<String, Error> {
    let manifest = workspace_root().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap_or_default();
    let found = text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "rust-version").then(|| v.trim().trim_matches('"').to_string())
    });
    match found {
        Some(v) if !v.is_empty() => Ok(v),
        _ => fail(format!("no rust-version in {}", manifest.display())),
    }
}

/// What is missing: toolchains to install, and nightly components to add.
#[derive(Default)]
pub(crate) struct MissingToolchains {
    pub(crate) toolchains: Vec<String>,
    pub(crate) nightly_components: Vec<&'static str>,
}

impl MissingToolchains {
    pub(crate) fn is_empty(&self) -> bool {
        self.toolchains.is_empty() && self.nightly_components.is_empty()
    }

    pub(crate) fn describe(&self) -> Vec<String> {
        let mut what: Vec<String> = self
            .toolchains
            .iter()
            .map(|t| format!("Rust toolchain {t}"))
            .collect();
        what.extend(
            self.nightly_components
                .iter()
                .map(|c| format!("{c} for {NIGHTLY}")),
        );
        what
    }
}

fn installed(name: &str, toolchains: &str) -> bool {
    toolchains.lines().any(|l| {
        let l = l.trim();
        l == name || l.starts_with(&format!("{name}-"))
    })
}

/// Checks for the MSRV toolchain and the nightly with Miri (no network).
pub(crate) fn check_toolchains() -> Result<MissingToolchains, Error> {
    let mut missing = MissingToolchains::default();
    let Some(list) = output(Command::new("rustup").args(["toolchain", "list"])) else {
        return fail("`rustup toolchain list` failed");
    };
    let msrv = msrv()?;
    if !installed(&msrv, &list) {
        missing.toolchains.push(msrv);
    }
    if !installed(NIGHTLY, &list) {
        missing.toolchains.push(NIGHTLY.to_string());
        missing.nightly_components.extend(NIGHTLY_COMPONENTS);
    } else {
        let comps = output(Command::new("rustup").args([
            "component",
            "list",
            "--installed",
            "--toolchain",
            NIGHTLY,
        ]))
        .unwrap_or_default();
        for c in NIGHTLY_COMPONENTS {
            if !comps
                .lines()
                .any(|l| l.trim() == c || l.trim().starts_with(&format!("{c}-")))
            {
                missing.nightly_components.push(c);
            }
        }
    }
    Ok(missing)
}

/// Installs what `check_toolchains` found missing.
pub(crate) fn install_toolchains(missing: &MissingToolchains) -> Result<(), Error> {
    if missing.is_empty() {
        return Ok(());
    }
    if on_path("rustup").is_none() {
        return fail(format!(
            "missing {} and rustup is not installed: install rustup from https://rustup.rs",
            missing.describe().join(", ")
        ));
    }
    for t in &missing.toolchains {
        let mut cmd = Command::new("rustup");
        cmd.args(["toolchain", "install", t, "--profile", "minimal"]);
        if t == NIGHTLY {
            // The newest nightly that has Miri (not every nightly does).
            cmd.args(["--allow-downgrade", "--component"])
                .arg(NIGHTLY_COMPONENTS.join(","));
        }
        status(&mut cmd)?;
    }
    if !missing.nightly_components.is_empty() && !missing.toolchains.iter().any(|t| t == NIGHTLY) {
        status(
            Command::new("rustup")
                .args(["component", "add", "--toolchain", NIGHTLY])
                .args(&missing.nightly_components),
        )?;
    }
    Ok(())
}

/// `cargo` of toolchain `name` (through `rustup run`), in the workspace
/// root, without the variables that tie a child to the running toolchain.
pub(crate) fn toolchain_cargo(name: &str) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", name, "cargo"]);
    cmd.current_dir(workspace_root());
    for key in ["CARGO", "RUSTC", "RUSTDOC", "RUSTUP_TOOLCHAIN"] {
        cmd.env_remove(key);
    }
    remove_package_env(&mut cmd);
    cmd
}

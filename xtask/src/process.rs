//! Running commands: the child `cargo`, echoing command lines, quiet
//! probes, PATH lookups, and the error type every task returns.
//!
//! The bottom of xtask's module graph: it imports no other module of xtask.

use std::env;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// An error ends the command with a message; usage errors also print a hint.
pub(crate) enum Error {
    Usage(String),
    Failed(String),
}

pub(crate) fn fail<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error::Failed(msg.into()))
}

pub(crate) fn usage<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error::Usage(msg.into()))
}

/// The workspace root: xtask's manifest directory's parent.
pub(crate) fn workspace_root() -> PathBuf {
    let dir = env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.parent().map(Path::to_path_buf).unwrap_or(dir)
}

/// `cargo` (the one that runs us) in the workspace root, without the
/// variables `cargo run` set for xtask itself.
pub(crate) fn cargo() -> Command {
    let program = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(program);
    cmd.current_dir(workspace_root());
    remove_package_env(&mut cmd);
    cmd
}

/// Takes out of `cmd`'s environment the variables `cargo run` set for
/// xtask itself (its package, manifest and binary), which would otherwise
/// describe xtask to the cargo we start.
pub(crate) fn remove_package_env(cmd: &mut Command) {
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
}

/// The directories directly inside `dir`, sorted (none if it cannot be read).
pub(crate) fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The command line as a shell would show it.
pub(crate) fn display(cmd: &Command) -> String {
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

pub(crate) fn quote(s: &str) -> String {
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
pub(crate) fn status(cmd: &mut Command) -> Result<(), Error> {
    println!("$ {}", display(cmd));
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => fail(format!("`{}` failed ({s})", short(cmd))),
        Err(e) => fail(format!("could not run `{}`: {e}", short(cmd))),
    }
}

/// Program and arguments only, for error messages.
pub(crate) fn short(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

/// Runs `cmd` quietly and returns its stdout when it exits 0.
pub(crate) fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Looks `name` up on PATH as `command -v` does.
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|dir| dir.join(name)).find(|p| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

pub(crate) fn host_triple() -> Result<String, Error> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let Some(out) = output(Command::new(&rustc).arg("-vV")) else {
        return fail("`rustc -vV` failed: is Rust installed?");
    };
    match out.lines().find_map(|l| l.strip_prefix("host: ")) {
        Some(host) => Ok(host.trim().to_string()),
        None => fail("`rustc -vV` printed no host line"),
    }
}

pub(crate) fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}

pub(crate) fn secs(d: Duration) -> String {
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

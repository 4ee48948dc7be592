//! Running commands: the child `cargo`, echoing command lines, quiet
//! probes, PATH lookups, and the error type every task returns.
//!
//! The bottom of xtask's module graph: it imports no other module of xtask.

use std::env;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
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

/// Runs `cmd`, echoing it first and passing its output through; Ok when
/// it exits 0. The lines that name a failure (see [`names_a_failure`]) are
/// also kept, for `ci`'s summary: CI shows a log's head and tail, and a
/// failed test's name sits in the middle of thousands of lines.
pub(crate) fn status(cmd: &mut Command) -> Result<(), Error> {
    println!("$ {}", display(cmd));
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return fail(format!("could not run `{}`: {e}", short(cmd))),
    };
    let out = child.stdout.take().map(|r| pass_through(r, false));
    let err = child.stderr.take().map(|r| pass_through(r, true));
    let result = child.wait();
    for reader in [out, err].into_iter().flatten() {
        let _ = reader.join();
    }
    match result {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => fail(format!("`{}` failed ({s})", short(cmd))),
        Err(e) => fail(format!("could not run `{}`: {e}", short(cmd))),
    }
}

/// Lines that named a failure since the last [`take_failure_lines`].
static FAILURE_LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// At most this many failure lines are kept per step.
const FAILURE_LINES_KEPT: usize = 60;

/// The failure lines the commands run since the last call printed.
pub(crate) fn take_failure_lines() -> Vec<String> {
    std::mem::take(&mut *FAILURE_LINES.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Copies `from` to our stdout (or stderr) line by line, keeping the lines
/// that name a failure.
fn pass_through(from: impl Read + Send + 'static, to_stderr: bool) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut from = BufReader::new(from);
        let mut line = Vec::new();
        let mut keep_next = false;
        loop {
            line.clear();
            match from.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let _ = if to_stderr {
                io::stderr().lock().write_all(&line)
            } else {
                io::stdout().lock().write_all(&line)
            };
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            // A panic's message is on the line after its location.
            let keep = std::mem::replace(&mut keep_next, text.contains("panicked at"));
            if keep || names_a_failure(text) {
                let mut kept = FAILURE_LINES.lock().unwrap_or_else(|e| e.into_inner());
                if kept.len() < FAILURE_LINES_KEPT {
                    kept.push(text.to_string());
                }
            }
        }
    })
}

/// Whether a line of cargo's or the test harness's output names a failure:
/// a failed test, a panic, a test binary killed by a signal, a watchdog.
fn names_a_failure(line: &str) -> bool {
    let t = line.trim_start();
    (t.starts_with("test ") && t.ends_with("FAILED"))
        || (t.starts_with("---- ") && t.ends_with(" ----"))
        || t.contains("panicked at")
        || t.starts_with("error: test failed")
        || t.starts_with("test result: FAILED")
        || t.contains("(signal:")
        || t.contains("has been running for over")
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

//! The three targets and what each needs from an x86_64 Linux host: the
//! cross gcc, Debian's cross libc, qemu-user, and the environment the child
//! cargo gets (`plan_for`).

use std::env;

pub(crate) const X86_64: &str = "x86_64-unknown-linux-gnu";
pub(crate) const AARCH64: &str = "aarch64-unknown-linux-gnu";
pub(crate) const I686: &str = "i686-unknown-linux-gnu";

/// The three supported targets, in the order they are tested.
pub(crate) const ALL_TARGETS: [&str; 3] = [X86_64, AARCH64, I686];

/// Workspace members that `xtask test` leaves out: this program, and the
/// benchmarks (compiled by `ci` with `cargo bench --no-run`).
pub(crate) const TEST_EXCLUDED: [&str; 2] = ["xtask", "gort-benches"];

/// rustup components `ci` needs.
pub(crate) const COMPONENTS: [&str; 2] = ["rustfmt", "clippy"];

/// How a cross target is built and run from an x86_64 Linux host.
pub(crate) struct Cross {
    /// C compiler, also the linker.
    pub(crate) gcc: &'static str,
    /// Archiver for the cc crate.
    pub(crate) ar: &'static str,
    /// qemu-user binary.
    pub(crate) qemu: &'static str,
    /// Sysroot of Debian's cross libc, given to qemu with `-L`.
    pub(crate) sysroot: &'static str,
    /// Debian packages: (package, how to tell it is installed).
    pub(crate) packages: &'static [(&'static str, Probe)],
}

/// How to tell that a Debian package is installed.
#[derive(Clone, Copy)]
pub(crate) enum Probe {
    /// A program on PATH that the package provides.
    Program(&'static str),
    /// No program to look for: ask dpkg (or, without dpkg, look for a file).
    Dpkg { fallback_file: &'static str },
}

pub(crate) const AARCH64_CROSS: Cross = Cross {
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

pub(crate) const I686_CROSS: Cross = Cross {
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
pub(crate) const I686_LOADER: &str = "/usr/i686-linux-gnu/lib/ld-linux.so.2";
pub(crate) const I686_LIBDIR: &str = "/usr/i686-linux-gnu/lib";
pub(crate) const I686_LOADER_PACKAGE: &str = "libc6-i386-cross";

pub(crate) fn cross_for(triple: &str) -> Option<&'static Cross> {
    match triple {
        AARCH64 => Some(&AARCH64_CROSS),
        I686 => Some(&I686_CROSS),
        _ => None,
    }
}

/// How one target's tests are built and run.
pub(crate) struct Plan {
    pub(crate) triple: String,
    /// Run natively, without `--target`.
    pub(crate) native: bool,
    /// Environment for the child cargo.
    pub(crate) env: Vec<(String, String)>,
    /// Human-readable description of how the tests run.
    pub(crate) how: String,
}

/// Builds the environment for testing (or linting) `triple`.
pub(crate) fn plan_for(triple: &str, host: &str, native_i686: bool) -> Result<Plan, String> {
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

/// All three targets, as owned strings.
pub(crate) fn all_targets() -> Vec<String> {
    ALL_TARGETS.iter().map(|t| t.to_string()).collect()
}

//! `cargo xtask bench`: the criterion benchmarks, their Go peers in
//! benches/go/, and the report (docs/performance.md's table and
//! docs/performance.svg, drawn by `report`).

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{cargo, display, fail, on_path, output, short, status, workspace_root, Error};
use crate::report;

pub(crate) const BENCH_HELP: &str = "\
cargo xtask bench: run the benchmarks and write the comparison report

USAGE:
    cargo xtask bench [--report-only] [--no-go] [-- ARGS...]

1. `cargo bench -p gort-benches ARGS...` (criterion). ARGS pick a subset:
   `-- --bench switch` (one bench target), `-- --bench sched -- yield`
   (a criterion filter inside it).
2. The Go benchmarks of each module in benches/go/ with
   `go test -run - -bench . -benchtime 1000000x`, at GOMAXPROCS=1 and 2,
   when Go is installed (`go` on PATH or /usr/lib/go-1.23/bin/go; skipped
   with a note otherwise). With `--bench NAME` in ARGS only the Go module
   of that name runs (benches/go/NAME), if there is one. Then, unless
   another `--bench` was named, `--bench cprog` too: benches/cprog/run.sh
   times a C program calling a user staticlib's callback against Go's
   c-archive; and `--bench echo`: benches/echo/run.sh, the echo servers of
   gort, Go and tokio with 1,000 and 10,000 connections. Results are kept
   in <target>/go-bench/ and <target>/echo-bench.md for later reports.
3. The report: the comparison table (gort vs Go vs may vs tokio vs
   corosensei, ratios, the machine) between the bench-report markers of
   docs/performance.md, and the bar chart docs/performance.svg. Rows come
   from every result criterion and the Go runs have saved, so a partial run
   updates its rows and keeps the others.

OPTIONS:
    --report-only   skip 1 and 2: rewrite the report from saved results
    --no-go         skip the Go benchmarks
    -- ARGS...      appended to the `cargo bench` command line
    -h, --help      print this message
";

#[derive(Default)]
pub(crate) struct BenchOpts {
    pub(crate) report_only: bool,
    pub(crate) no_go: bool,
    pub(crate) extra: Vec<String>,
}

/// Runs the criterion benchmarks, then the Go benchmarks in benches/go/*/
/// when a Go toolchain is installed (skipped with a note otherwise), then
/// writes the report (docs/performance.md's table, docs/performance.svg).
pub(crate) fn bench(opts: &BenchOpts) -> Result<(), Error> {
    let target = report::target_dir(&workspace_root());
    if !opts.report_only {
        status(
            cargo()
                .args(["bench", "-p", "gort-benches"])
                .args(&opts.extra),
        )?;
        if !opts.no_go {
            go_benches(&target, &bench_targets(&opts.extra))?;
        }
    }
    write_report(&target)
}

/// The bench targets that `--bench NAME` (or `--bench=NAME`) in cargo's
/// arguments select; empty when all run.
pub(crate) fn bench_targets(extra: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    let mut it = extra.iter().take_while(|a| *a != "--");
    while let Some(a) = it.next() {
        if a == "--bench" {
            names.extend(it.next().cloned());
        } else if let Some(n) = a.strip_prefix("--bench=") {
            names.push(n.to_string());
        }
    }
    names
}

/// Writes the comparison table into docs/performance.md and the chart into
/// docs/performance.svg from every saved result.
pub(crate) fn write_report(target: &Path) -> Result<(), Error> {
    let crit = report::read_criterion(target);
    let go = report::read_go(target);
    let measured = report::measure(&report::rows(), &crit, &go);
    let machine = machine();
    let docs = workspace_root().join("docs");
    let md_path = docs.join("performance.md");
    let svg_name = "performance.svg";
    let doc = std::fs::read_to_string(&md_path).unwrap_or_default();
    let mut new = report::splice(&doc, &report::table(&measured, &machine, svg_name));
    if let Ok(echo) = std::fs::read_to_string(target.join("echo-bench.md")) {
        new = report::splice_echo(&new, &echo);
    }
    let wrote = std::fs::write(&md_path, new)
        .and_then(|()| std::fs::write(docs.join(svg_name), report::svg(&measured, &machine)));
    if let Err(e) = wrote {
        return fail(format!("writing the report in {}: {e}", docs.display()));
    }
    println!(
        "report: {} rows (from {} criterion results and {} Go results) in {} and {}",
        measured.len(),
        crit.len(),
        go.len(),
        md_path.display(),
        docs.join(svg_name).display()
    );
    Ok(())
}

/// CPU model, cores, kernel, rustc and Go versions, the date.
pub(crate) fn machine() -> report::Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k.trim(), "model name" | "Model" | "cpu model").then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| format!("{} CPU", env::consts::ARCH));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let rustc = output(Command::new(rustc).arg("-V"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "rustc ?".into());
    let go = go_tool()
        .and_then(|go| output(Command::new(go).env("GOTOOLCHAIN", "local").arg("version")))
        .map(|s| {
            // "go version go1.23.5 linux/amd64" -> "1.23.5 (linux/amd64)"
            let v = s.trim().trim_start_matches("go version go");
            match v.split_once(' ') {
                Some((ver, platform)) => format!("{ver} ({platform})"),
                None => v.to_string(),
            }
        })
        .unwrap_or_else(|| "no Go toolchain (Go columns from earlier runs, if any)".into());
    report::Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel,
        rustc,
        go: format!("Go {go}"),
        date: report::utc_now(),
    }
}

/// Debian's golang-1.23-go installs here without putting `go` on PATH.
pub(crate) const DEBIAN_GO: &str = "/usr/lib/go-1.23/bin/go";

/// `go` from PATH, else Debian's Go 1.23.
pub(crate) fn go_tool() -> Option<PathBuf> {
    on_path("go").or_else(|| {
        let debian = PathBuf::from(DEBIAN_GO);
        debian.is_file().then_some(debian)
    })
}

/// Runs `go test -bench .` in every module under benches/go/ (or those
/// named in `only`), once with GOMAXPROCS=1 and once with 2; each
/// benchmark's ns/op is per goroutine or per operation, so
/// `-benchtime 1000000x` means a million of them (a module with a
/// `benchtime` file runs that many instead). Saves the results under
/// `target`/go-bench for the report.
pub(crate) fn go_benches(target: &Path, only: &[String]) -> Result<(), Error> {
    let Some(go) = go_tool() else {
        println!(
            "note: no Go toolchain (`go` on PATH or {DEBIAN_GO}): skipping the Go benchmarks in benches/go/"
        );
        return Ok(());
    };
    let root = workspace_root().join("benches").join("go");
    let mut modules: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("go.mod").is_file())
                .collect()
        })
        .unwrap_or_default();
    modules.sort();
    if !only.is_empty() {
        modules.retain(|m| {
            m.file_name()
                .is_some_and(|n| only.iter().any(|o| n == o.as_str()))
        });
        if modules.is_empty() {
            println!("note: no Go module in benches/go/ for {}", only.join(", "));
            return Ok(());
        }
    } else if modules.is_empty() {
        println!("note: no Go modules in {}", root.display());
    }
    for module in modules {
        println!("# Go benchmarks in {}", module.display());
        // A module whose operations are long (liveness: 300 ms an op) says
        // how many to run in a `benchtime` file; the others run a million.
        let benchtime = std::fs::read_to_string(module.join("benchtime"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "1000000x".into());
        let mut results = Vec::new();
        for procs in [1u32, 2] {
            let mut cmd = Command::new(&go);
            cmd.current_dir(&module)
                // Never download a newer toolchain named by go.mod.
                .env("GOTOOLCHAIN", "local")
                .env("GOMAXPROCS", procs.to_string())
                .args(["test", "-run", "-", "-bench", ".", "-benchtime", &benchtime]);
            println!("$ {}", display(&cmd));
            let out = match cmd.output() {
                Ok(o) => o,
                Err(e) => return fail(format!("could not run `{}`: {e}", short(&cmd))),
            };
            let stdout = String::from_utf8_lossy(&out.stdout);
            print!("{stdout}");
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            if !out.status.success() {
                return fail(format!("`{}` failed ({})", short(&cmd), out.status));
            }
            results.extend(report::parse_go_output(&stdout, procs));
        }
        let name = module
            .file_name()
            .map_or_else(|| "go".into(), |n| n.to_string_lossy().into_owned());
        if let Err(e) = report::save_go(target, &name, &results) {
            return fail(format!("saving Go results under {}: {e}", target.display()));
        }
    }
    if only.is_empty() || only.iter().any(|o| o == "cprog") {
        // The C program against Go's c-archive: a script, as it builds a
        // crate outside the workspace (it saves go-bench/cprog.txt).
        let script = workspace_root()
            .join("benches")
            .join("cprog")
            .join("run.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(&script).env("GO", &go);
        println!("$ {}", display(&cmd));
        status(&mut cmd)?;
    }
    if only.is_empty() || only.iter().any(|o| o == "echo") {
        // The echo servers, each a process beside its client (it saves
        // echo-bench.md, spliced into the report).
        let script = workspace_root().join("benches").join("echo").join("run.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(&script).env("GO", &go);
        println!("$ {}", display(&cmd));
        status(&mut cmd)?;
    }
    Ok(())
}

//! gort-unwind alone, on a plain thread: Go's `defer` and `recover`
//! without a scheduler.
//!
//! ```text
//! cargo run -p gort-unwind --example defer_recover
//! ```

use std::cell::RefCell;

use gort_unwind::{defer, recover};

/// Parses a config line; panics on a malformed one, as a careless library
/// might. The deferred block runs either way.
fn parse(line: &str, log: &RefCell<Vec<String>>) -> u32 {
    defer! { log.borrow_mut().push(format!("closed {line:?}")) }
    let (key, value) = line.split_once('=').expect("a line is key=value");
    log.borrow_mut().push(format!("parsed key {key}"));
    value.trim().parse().expect("the value is a number")
}

fn main() {
    let worker = std::thread::spawn(|| {
        let log = RefCell::new(Vec::new());
        let mut results = Vec::new();
        for line in ["workers = 4", "no equals sign", "depth = deep"] {
            // recover: the panic is caught quietly (nothing printed, as Go
            // prints nothing for a recovered panic) and comes back as a
            // value with its message and location.
            match recover(|| parse(line, &log)) {
                Ok(n) => results.push(format!("{line:?} -> {n}")),
                Err(p) => results.push(format!(
                    "{line:?} -> recovered panic {:?} at line {}",
                    p.message().unwrap_or("?"),
                    p.location().map_or(0, |l| l.line())
                )),
            }
        }
        (results, log.into_inner())
    });
    let (results, log) = worker.join().expect("the thread does not panic");
    for r in &results {
        println!("{r}");
    }
    println!("deferred log: {log:?}");
    assert!(results[0].ends_with("-> 4"));
    assert!(results[1].contains("a line is key=value"));
    assert!(results[2].contains("the value is a number"));
    // Every call ran its deferred block, panicking or not.
    assert_eq!(log.iter().filter(|l| l.starts_with("closed")).count(), 3);
    println!("ok");
}

//! Runs one panic scenario N times, for measuring CPU time per iteration
//! with `perf stat -e task-clock` (CPU time does not count the time the
//! process waits for a busy core, unlike criterion's wall clock). See the
//! gort-unwind section of docs/performance.md.
//!
//! ```text
//! cargo build --release -p gort-unwind --example unwind_probe
//! perf stat -e task-clock target/release/examples/unwind_probe SCENARIO N
//! ```
//!
//! Scenarios: `empty`, `std_resume`, `std_noop`, `recover_resume`,
//! `recover`, `call_c`, `across_err`, `across_recovered` (the same shapes
//! as benches/benches/unwind.rs).

use std::ffi::c_void;
use std::hint::black_box;
use std::panic::{catch_unwind, resume_unwind};

use gort_stack::{Stack, StackConfig};
use gort_unwind::{call_with_resume_point, callback_boundary, catch, recover, Panic};
use gort_unwind_cframes::{gort_c_add, gort_c_call, Marks};

unsafe extern "C" fn panicking_callback(_arg: *mut c_void) {
    // SAFETY: C calls this inside call_with_resume_point; this frame holds
    // nothing.
    unsafe { callback_boundary(|| -> () { panic!("{}", black_box("boom")) }) }
}

/// Rust -> C -> Rust callback that panics; the panic comes back as a value.
#[inline(never)]
fn panic_across_c(top: *mut u8, marks: &mut Marks) -> Result<(), Panic> {
    // SAFETY: `top` is an unused stack of ours; f only calls C.
    unsafe {
        call_with_resume_point(
            top,
            |_: &Panic| {},
            || gort_c_call(panicking_callback, std::ptr::null_mut(), marks),
        )
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (which, n) = match args.as_slice() {
        [_, w, n] => (w.as_str(), n.parse::<usize>().expect("N")),
        _ => {
            eprintln!("usage: unwind_probe SCENARIO N");
            std::process::exit(2);
        }
    };
    let stack = Stack::new(StackConfig::new()).expect("a callee stack");
    let top = stack.top();
    let mut marks = Marks::default();
    if which.starts_with("std") || which == "empty" {
        // std alone: a hook that does nothing instead of printing.
        std::panic::set_hook(Box::new(|_| {}));
    } else {
        // Install gort-unwind's hook before the loop.
        let _ = recover(|| ());
    }
    let mut ok = 0usize;
    for _ in 0..n {
        let done = match which {
            "empty" => black_box(true),
            "std_resume" => {
                catch_unwind(|| -> () { resume_unwind(Box::new(black_box("boom"))) }).is_err()
            }
            "std_noop" => catch_unwind(|| -> () { panic!("{}", black_box("boom")) }).is_err(),
            "recover_resume" => {
                recover(|| -> () { resume_unwind(Box::new(black_box("boom"))) }).is_err()
            }
            "recover" => recover(|| -> () { panic!("{}", black_box("boom")) }).is_err(),
            "call_c" => {
                // SAFETY: as in panic_across_c.
                let r = unsafe {
                    call_with_resume_point(
                        top,
                        |_: &Panic| {},
                        || gort_c_add(black_box(1), black_box(2)),
                    )
                };
                r.is_ok()
            }
            "across_err" => catch(true, || panic_across_c(top, &mut marks))
                .expect("the resume point returns the panic")
                .is_err(),
            "across_recovered" => {
                recover(|| panic_across_c(top, &mut marks).unwrap_or_else(|p| p.resume())).is_err()
            }
            other => panic!("unknown scenario {other}"),
        };
        ok += usize::from(done);
    }
    assert_eq!(ok, n);
    assert_eq!(marks.counts().1, 0, "C code after a skipped callback ran");
}

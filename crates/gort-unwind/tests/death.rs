//! Fatal paths: each test runs this binary again as a child (through the
//! qemu runner on cross targets) that aborts, and checks its message.

#![cfg(target_os = "linux")]

mod common;

use std::os::unix::process::ExitStatusExt;

use common::{call_c, describe, is_child, run_child, CFrame};
use gort_unwind::{defer, has_resume_point, unwind_to_resume_point, Panic};
use gort_unwind_cframes::Marks;

fn assert_aborted_with(name: &str, needles: &[&str]) {
    let out = run_child(name);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "child should abort\n{}",
        describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for n in needles {
        assert!(stderr.contains(n), "missing {n:?}\n{}", describe(&out));
    }
}

/// A callback's panic with no resume point (C called from a thread no Rust
/// caller waits on: the foreign-thread case) aborts with a clear message
/// and the panic's location, rather than unwinding into C.
#[test]
fn callback_panic_without_resume_point_aborts() {
    const NAME: &str = "callback_panic_without_resume_point_aborts";
    if is_child(NAME) {
        assert!(!has_resume_point());
        let mut marks = Marks::default();
        call_c(CFrame::Plain, &mut marks, &mut || panic!("lost panic"));
        unreachable!("the callback's panic came back through C");
    }
    let loc = format!("at {}:", file!());
    assert_aborted_with(
        NAME,
        &[
            "fatal error: gort: panic in a callback from C with no Rust caller to unwind to: lost panic",
            &loc,
        ],
    );
}

/// A deferred block that panics while another panic unwinds aborts with our
/// message, naming the deferred block's panic and where it was raised.
#[test]
fn defer_panicking_while_unwinding_aborts() {
    const NAME: &str = "defer_panicking_while_unwinding_aborts";
    let defer_line = line!() + 3;
    if is_child(NAME) {
        let _ = gort_unwind::recover(|| {
            defer! { panic!("in defer") }
            panic!("outer");
        });
        unreachable!("survived a panic in a defer block during unwinding");
    }
    let loc = format!("at {}:{}:", file!(), defer_line);
    assert_aborted_with(
        NAME,
        &[
            "fatal error: gort: defer block panicked while unwinding another panic: in defer",
            &loc,
        ],
    );
}

/// unwind_to_resume_point from a destructor while a panic unwinds would
/// abandon the unwinder's own frames: fatal.
#[test]
fn unwind_to_resume_point_while_panicking_aborts() {
    const NAME: &str = "unwind_to_resume_point_while_panicking_aborts";
    if is_child(NAME) {
        struct JumpOnDrop;
        impl Drop for JumpOnDrop {
            fn drop(&mut self) {
                // SAFETY: never reaches a switch: the call is fatal first.
                unsafe { unwind_to_resume_point(Panic::new(Box::new("jump"))) }
            }
        }
        let _ = gort_unwind::recover(|| {
            let _j = JumpOnDrop;
            panic!("unwinding");
        });
        unreachable!();
    }
    assert_aborted_with(
        NAME,
        &["fatal error: gort: unwind_to_resume_point while another panic is unwinding: jump"],
    );
}

/// Calls `f` through a pointer, so that the call stays a call.
#[inline(never)]
fn call_through(f: extern "C" fn()) {
    std::hint::black_box(f)()
}

/// A panic that leaves an `extern "C"` function (which must not unwind)
/// aborts with std's message, with the catch above it or not: the raise
/// (gort's walk, or the system unwinder where it falls back) ends in
/// std's abort, not in the catch.
#[test]
fn a_panic_out_of_a_nounwind_function_aborts() {
    const NAME: &str = "a_panic_out_of_a_nounwind_function_aborts";
    extern "C" fn nounwind() {
        panic!("escaping");
    }
    if is_child(NAME) {
        let _ = std::panic::catch_unwind(|| call_through(nounwind));
        unreachable!("a panic left an extern \"C\" function");
    }
    assert_aborted_with(
        NAME,
        &["escaping", "panic in a function that cannot unwind"],
    );
}

/// A panic with no catch anywhere on its stack (a thread started with
/// pthread_create, not std) aborts as std says: the raise finds no
/// handler.
#[test]
fn a_panic_with_no_catch_on_its_stack_aborts() {
    const NAME: &str = "a_panic_with_no_catch_on_its_stack_aborts";
    extern "C-unwind" fn start(_: *mut libc::c_void) -> *mut libc::c_void {
        std::panic::resume_unwind(Box::new("uncaught"));
    }
    if is_child(NAME) {
        let mut t: libc::pthread_t = 0;
        // SAFETY: a plain thread running `start`, joined below; `start`
        // never unwinds into pthread's frames (with no catch, the raise
        // fails and std aborts), so the "C" pointer type is not a lie.
        unsafe {
            let f: extern "C" fn(*mut libc::c_void) -> *mut libc::c_void =
                std::mem::transmute(start as extern "C-unwind" fn(_) -> _);
            assert_eq!(
                libc::pthread_create(&mut t, std::ptr::null(), f, std::ptr::null_mut()),
                0
            );
            libc::pthread_join(t, std::ptr::null_mut());
        }
        unreachable!("the uncaught panic's thread ended");
    }
    assert_aborted_with(NAME, &["failed to initiate panic"]);
}

//! The panic hook: quiet inside recover, delegating outside, recording
//! locations, following a goroutine that moves between threads, and what
//! happens when the program replaces it.
//!
//! One test in its own binary: the hook is process-wide, and the checks
//! count the calls of the hook that was installed before gort-unwind's.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use common::Fiber;
use gort_unwind::{catch, hook_installed, recover};

static PREVIOUS: AtomicUsize = AtomicUsize::new(0);
static REPLACEMENT: AtomicUsize = AtomicUsize::new(0);

fn previous_calls() -> usize {
    PREVIOUS.load(Ordering::SeqCst)
}

#[test]
fn hook_is_quiet_in_recover_and_delegates_outside() {
    // The program's hook, set before gort-unwind's is installed.
    std::panic::set_hook(Box::new(|_| {
        PREVIOUS.fetch_add(1, Ordering::SeqCst);
    }));
    assert!(!hook_installed());

    // recover installs the hook; inside it the previous hook is not called.
    let line = line!() + 1;
    let p = recover(|| -> () { panic!("quiet") }).unwrap_err();
    assert!(hook_installed());
    assert_eq!(previous_calls(), 0, "recovered panic was printed");
    assert_eq!(p.location().unwrap().line(), line);

    // A non-quiet catch delegates: the previous hook runs once.
    let p = catch(false, || -> () { panic!("loud") }).unwrap_err();
    assert_eq!(previous_calls(), 1);
    assert_eq!(p.message(), Some("loud"));
    assert!(p.location().is_some());

    // A non-quiet boundary inside a recover is quiet: the recover will
    // handle whatever the boundary hands on.
    let r = recover(|| catch(false, || -> () { panic!("inner") }));
    assert_eq!(r.unwrap().unwrap_err().message(), Some("inner"));
    assert_eq!(previous_calls(), 1);

    // A panic in a callback from C, under a recover around the call: quiet
    // although it crossed a stack switch and a C frame; Err comes back.
    let callee = common::stack();
    let mut marks = gort_unwind_cframes::Marks::default();
    let r = recover(|| {
        // SAFETY: the stack is ours and unused; f only calls C.
        unsafe {
            gort_unwind::call_with_resume_point(
                callee.top(),
                |_: &gort_unwind::Panic| {},
                || common::call_c(common::CFrame::Plain, &mut marks, &mut || panic!("in C")),
            )
        }
    });
    assert_eq!(r.unwrap().unwrap_err().message(), Some("in C"));
    assert_eq!(marks.counts(), (1, 0));
    assert_eq!(
        previous_calls(),
        1,
        "a recovered callback panic was printed"
    );

    // The quiet depth goes back to zero after recover, even after a panic.
    let _ = catch(false, || -> () { panic!("loud again") });
    assert_eq!(previous_calls(), 2);

    // A goroutine inside recover that parks on one thread and panics on
    // another is still quiet: its unwind state moved with it.
    let (tx, rx) = mpsc::channel();
    let mut f = Fiber::new(move |s| {
        let p = recover(|| -> () {
            s.suspend();
            panic!("after migrating")
        })
        .unwrap_err();
        tx.send((p.message().map(str::to_owned), std::thread::current().id()))
            .unwrap();
    });
    f.resume();
    let here = std::thread::current().id();
    let mut f = std::thread::spawn(move || {
        f.resume();
        f
    })
    .join()
    .unwrap();
    assert!(f.take_result().unwrap().is_ok());
    let (msg, thread) = rx.recv().unwrap();
    assert_eq!(msg.as_deref(), Some("after migrating"));
    assert_ne!(thread, here, "the panic happened on the other thread");
    assert_eq!(previous_calls(), 2, "a migrated recover scope printed");

    // The same goroutine shape without recover: the fiber's entry catch is
    // not quiet, so the panic is reported (once).
    let mut g = Fiber::new(|s| {
        s.suspend();
        panic!("uncaught in fiber");
    });
    g.resume();
    let mut g = std::thread::spawn(move || {
        g.resume();
        g
    })
    .join()
    .unwrap();
    assert_eq!(
        g.take_result().unwrap().unwrap_err().message(),
        Some("uncaught in fiber")
    );
    assert_eq!(previous_calls(), 3);

    // The program replaces the hook: catching still works, locations become
    // unknown, and quiet scopes print (the program's hook decides).
    std::panic::set_hook(Box::new(|_| {
        REPLACEMENT.fetch_add(1, Ordering::SeqCst);
    }));
    let p = recover(|| -> () { panic!("after replacement") }).unwrap_err();
    assert_eq!(p.message(), Some("after replacement"));
    assert_eq!(p.location(), None);
    assert_eq!(REPLACEMENT.load(Ordering::SeqCst), 1);
    assert_eq!(previous_calls(), 3);
    let _ = std::panic::take_hook();
}

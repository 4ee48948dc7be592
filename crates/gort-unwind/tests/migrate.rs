//! The resume chain belongs to the goroutine, not to the thread: a
//! goroutine that calls into C, is called back, parks inside the callback
//! and resumes on another thread can still unwind to its resume point there
//! (the scheduler moves its UnwindState with swap_thread_state).

mod common;

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use common::{call_c, stack, CFrame, DropCount, Fiber};
use gort_unwind::{call_with_resume_point, has_resume_point, Panic};
use gort_unwind_cframes::Marks;

/// The thread running the caller, read afresh. Not inlined: in a release
/// build the compiler keeps a thread-local's address across the switch in
/// the caller, and `thread::current()` read there after the fiber moved
/// would still name the first thread (docs/thread-locals.md).
#[inline(never)]
fn current_thread() -> std::thread::ThreadId {
    std::thread::current().id()
}

#[test]
fn resume_point_follows_the_goroutine_to_another_thread() {
    let (tx, rx) = mpsc::channel();
    let hook_ran = Arc::new(AtomicUsize::new(0));
    let hook_ran2 = hook_ran.clone();
    let mut f = Fiber::new(move |s| {
        let callee = stack();
        let mut marks = Marks::default();
        let dropped = Cell::new(0);
        let threads = Cell::new((None, None));
        // SAFETY: the stack is ours and unused; f only calls C.
        let r = unsafe {
            call_with_resume_point(
                callee.top(),
                |_: &Panic| {
                    hook_ran2.fetch_add(1, Ordering::SeqCst);
                },
                || {
                    call_c(CFrame::Plain, &mut marks, &mut || {
                        let _d = DropCount(&dropped);
                        let before = current_thread();
                        // Park inside the callback, C frames above us.
                        s.suspend();
                        threads.set((Some(before), Some(current_thread())));
                        panic!("after migrating");
                    })
                },
            )
        };
        let p = r.unwrap_err();
        tx.send((
            p.message().map(str::to_owned),
            marks.counts(),
            dropped.get(),
            threads.get(),
            has_resume_point(),
        ))
        .unwrap();
    });

    f.resume();
    // Suspended inside the callback: the resume point is in the fiber's
    // state, not in this thread's.
    assert!(f.has_resume_point());
    assert!(!has_resume_point());

    let mut f = std::thread::spawn(move || {
        assert!(!has_resume_point());
        f.resume();
        assert!(!has_resume_point());
        f
    })
    .join()
    .unwrap();
    assert!(f.take_result().unwrap().is_ok());
    assert!(!f.has_resume_point());

    let (msg, counts, dropped, (before, after), inside_has_rp) = rx.recv().unwrap();
    assert_eq!(msg.as_deref(), Some("after migrating"));
    assert_eq!(counts, (1, 0), "C code after the callback ran");
    assert_eq!(dropped, 1);
    assert_ne!(before, after, "the callback resumed on another thread");
    assert!(!inside_has_rp);
    assert_eq!(hook_ran.load(Ordering::SeqCst), 1);
}

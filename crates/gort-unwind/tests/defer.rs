//! `defer!`: scope exit, unwinding, order.

use std::cell::RefCell;

use gort_unwind::{defer, recover};

#[test]
fn runs_at_scope_exit_in_reverse_order() {
    let log = RefCell::new(Vec::new());
    {
        defer! { log.borrow_mut().push(1) }
        defer! { log.borrow_mut().push(2) }
        defer! { log.borrow_mut().push(3); }
        log.borrow_mut().push(0);
        assert_eq!(*log.borrow(), [0]);
    }
    assert_eq!(*log.borrow(), [0, 3, 2, 1]);
}

#[test]
fn runs_on_early_return() {
    let log = RefCell::new(Vec::new());
    fn f(log: &RefCell<Vec<&'static str>>, early: bool) -> u32 {
        defer! { log.borrow_mut().push("deferred") }
        if early {
            return 1;
        }
        log.borrow_mut().push("late");
        2
    }
    assert_eq!(f(&log, true), 1);
    assert_eq!(*log.borrow(), ["deferred"]);
    assert_eq!(f(&log, false), 2);
    assert_eq!(*log.borrow(), ["deferred", "late", "deferred"]);
}

/// The block's value, if any, is discarded (Go discards a deferred call's
/// results).
#[test]
fn discards_the_value_of_the_block() {
    let v = RefCell::new(vec![1, 2]);
    {
        defer! { v.borrow_mut().pop() }
    }
    assert_eq!(*v.borrow(), [1]);
}

#[test]
fn runs_once_per_loop_iteration() {
    let log = RefCell::new(Vec::new());
    for i in 0..3 {
        defer! { log.borrow_mut().push(i) }
    }
    assert_eq!(*log.borrow(), [0, 1, 2]);
}

/// While a panic unwinds, every deferred block on the way runs, innermost
/// scope first and in reverse order within a scope, and the panic goes on.
#[test]
fn runs_while_unwinding() {
    let log = RefCell::new(Vec::new());
    let r = recover(|| {
        defer! { log.borrow_mut().push("outer") }
        {
            defer! { log.borrow_mut().push("a") }
            defer! {
                assert!(std::thread::panicking());
                log.borrow_mut().push("b")
            }
            panic!("unwinding");
        }
    });
    assert_eq!(r.unwrap_err().message(), Some("unwinding"));
    assert_eq!(*log.borrow(), ["b", "a", "outer"]);
}

/// A deferred block that panics on a normal exit panics like any code; the
/// blocks deferred before it still run (they see that panic unwinding).
#[test]
fn panic_in_defer_on_normal_exit_propagates() {
    let log = RefCell::new(Vec::new());
    let line = line!() + 3;
    let r = recover(|| {
        defer! { log.borrow_mut().push(std::thread::panicking()) }
        defer! { panic!("from defer") }
    });
    let p = r.unwrap_err();
    assert_eq!(p.message(), Some("from defer"));
    assert_eq!(p.location().unwrap().line(), line);
    assert_eq!(*log.borrow(), [true]);
}

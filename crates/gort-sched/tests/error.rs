//! `Error` keeps its causes: the refused setting as a value, the stack
//! error (map limit or system call) with `source()`.

// Runs on real threads; the loom build (cargo xtask loom) leaves it out.
#![cfg(not(loom))]

use gort_sched::{ConfigError, Error, Runtime};
use std::error::Error as _;

#[test]
fn a_refused_setting_names_itself_its_value_and_the_rule() {
    let e = Runtime::builder().procs(0).build().unwrap_err();
    let Error::Config(c) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(c.setting(), "procs");
    assert_eq!(c.value(), "0");
    assert_eq!(c.expected(), "at least 1");
    let src = e.source().expect("a config error has a source");
    assert_eq!(src.downcast_ref::<ConfigError>(), Some(c));
    assert_eq!(
        e.to_string(),
        "gort configuration: procs must be at least 1, got 0"
    );

    let e = Runtime::builder().stack_size(1024).build().unwrap_err();
    let Error::Config(c) = &e else {
        panic!("{e:?}")
    };
    assert_eq!((c.setting(), c.value()), ("stack_size", "1024"));

    let e = Runtime::builder().procs(100_000).build().unwrap_err();
    let Error::Config(c) = &e else {
        panic!("{e:?}")
    };
    assert_eq!((c.setting(), c.value()), ("procs", "100000"));
}

#[test]
fn set_procs_refuses_zero_with_a_config_error() {
    let e = Runtime::builder()
        .procs(1)
        .build()
        .unwrap()
        .run(|| gort_sched::set_procs(0).unwrap_err())
        .unwrap();
    let Error::Config(c) = &e else {
        panic!("{e:?}")
    };
    assert_eq!((c.setting(), c.value()), ("set_procs", "0"));
}

/// A stack no system can map: the runtime fails to start with the stack
/// error itself, reachable through `source()`.
#[test]
fn a_stack_that_cannot_be_had_keeps_the_stack_error() {
    // Three quarters of the address space: too big on 32 bits as on 64.
    let huge = usize::MAX / 4 * 3;
    let e = Runtime::builder()
        .procs(1)
        .stack_size(huge)
        .build()
        .unwrap()
        .run(|| ())
        .unwrap_err();
    let Error::Stack(se) = &e else {
        panic!("{e:?}")
    };
    let src = e.source().expect("a stack error has a source");
    assert!(src.downcast_ref::<gort_stack::StackError>().is_some());
    assert!(e.to_string().contains(&se.to_string()));
}

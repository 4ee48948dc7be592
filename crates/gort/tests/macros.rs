//! `#[gort::test]` (and, through the same expansion, `#[gort::main]`):
//! options reach the runtime, the body runs on a goroutine, values and
//! `?` come back, panics propagate, and runtime errors fail the test.

use std::time::Duration;

#[gort::test]
fn the_body_runs_as_the_main_goroutine() {
    assert_eq!(gort::id(), 1);
    let (tx, rx) = gort::chan::bounded(0);
    gort::go(move || tx.send(7).unwrap());
    assert_eq!(rx.recv().unwrap(), 7);
}

#[gort::test(procs = 3, stack_size = 131072)]
fn options_reach_the_runtime() {
    assert_eq!(gort::procs(), 3);
    assert_eq!(gort::go(|| 6 * 7).join().unwrap(), 42);
}

/// The builder sees the stack size: one below its minimum is refused, and
/// the refusal fails the test.
#[gort::test(stack_size = 1024)]
#[should_panic(expected = "stack_size must be at least")]
fn a_bad_setting_fails_the_test() {}

#[gort::test(procs = 1, external_wakers = true)]
fn external_wakers_lets_a_plain_thread_wake_main() {
    let (tx, rx) = gort::chan::bounded(0);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send(()).unwrap();
    });
    rx.recv().unwrap();
    t.join().unwrap();
}

#[gort::test]
fn a_test_may_return_a_result() -> Result<(), std::num::ParseIntError> {
    let n: u32 = gort::go(|| "12".parse()).join().unwrap()?;
    assert_eq!(n, 12);
    Ok(())
}

#[gort::test]
#[should_panic(expected = "boom in the body")]
fn a_panic_in_the_body_fails_the_test() {
    panic!("boom in the body");
}

#[gort::test(procs = 1)]
#[should_panic(expected = "all goroutines are asleep - deadlock!")]
fn a_deadlock_fails_the_test_with_go_s_message() {
    let (_tx, rx) = gort::chan::bounded::<()>(0);
    let _ = rx.recv();
}

mod renamed {
    extern crate gort as my_gort;

    #[my_gort::test(crate = "my_gort")]
    fn crate_option_names_a_renamed_gort() {
        assert_eq!(my_gort::id(), 1);
    }
}

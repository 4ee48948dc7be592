//! `Panic`, `catch`, `recover` and `catch_on_stack`.

mod common;

use std::any::Any;

use common::{in_stack, stack, DropCount, Fiber};
use gort_arch::current_sp;
use gort_unwind::{catch, catch_on_stack, recover, Location, Panic};

#[test]
fn recover_returns_message_and_location() {
    let line = line!() + 1;
    let p = recover(|| -> () { panic!("boom {}", 7) }).unwrap_err();
    assert_eq!(p.message(), Some("boom 7"));
    let loc = p.location().expect("location");
    assert_eq!(loc.file(), file!());
    assert_eq!(loc.line(), line);
    assert_eq!(loc.column(), 32);
    assert_eq!(p.goroutine(), None);
}

#[test]
fn recover_passes_the_value_through() {
    assert_eq!(recover(|| 5).unwrap(), 5);
    assert_eq!(catch(false, || "x").unwrap(), "x");
}

#[test]
fn static_str_and_non_string_payloads() {
    let p = recover(|| -> () { panic!("static") }).unwrap_err();
    assert_eq!(p.message(), Some("static"));
    assert!(p.payload().is::<&'static str>());

    let p = recover(|| -> () { std::panic::panic_any(42i32) }).unwrap_err();
    assert_eq!(p.message(), None);
    assert_eq!(p.payload().downcast_ref::<i32>(), Some(&42));
    let shown = p.to_string();
    assert!(shown.ends_with(":\nBox<dyn Any>"), "{shown}");
    let payload: Box<dyn Any + Send> = p.into_payload();
    assert_eq!(*payload.downcast::<i32>().unwrap(), 42);
}

#[test]
fn display_debug_and_error() {
    let line = line!() + 1;
    let mut p = recover(|| -> () { panic!("boom") }).unwrap_err();
    let at = format!("{}:{}:{}", file!(), line, 36);
    assert_eq!(p.location().unwrap().to_string(), at);
    assert_eq!(p.to_string(), format!("panicked at {at}:\nboom"));

    p.set_goroutine(Some(7));
    assert_eq!(
        p.to_string(),
        format!("goroutine 7 panicked at {at}:\nboom")
    );
    let dbg = format!("{p:?}");
    assert!(
        dbg.contains("\"boom\"") && dbg.contains("goroutine: Some(7)"),
        "{dbg}"
    );

    let bare = Panic::new(Box::new("no location"));
    assert_eq!(bare.to_string(), "no location");
    assert_eq!(bare.location(), None);

    let e: &dyn std::error::Error = &bare;
    assert_eq!(e.to_string(), "no location");
    fn is_send<T: Send + 'static>(_: &T) {}
    is_send(&bare);
}

#[test]
fn with_location_and_caller() {
    let here = Location::caller();
    assert_eq!(here.file(), file!());
    let p = Panic::with_location(Box::new(String::from("m")), here);
    assert_eq!(p.location(), Some(here));
    assert_eq!(p.message(), Some("m"));
}

/// Raising a Panic again carries its location to the next catch, though
/// resume_unwind does not run the hook.
#[test]
fn resume_keeps_message_and_location() {
    let line = line!() + 1;
    let inner = recover(|| -> () { panic!("first") }).unwrap_err();
    let dropped = std::cell::Cell::new(0);
    let outer = recover(|| {
        let _d = DropCount(&dropped);
        inner.resume()
    })
    .unwrap_err();
    assert_eq!(dropped.get(), 1);
    assert_eq!(outer.message(), Some("first"));
    assert_eq!(outer.location().unwrap().line(), line);
}

/// A Panic raised as a payload (panic_any) comes back unwrapped.
#[test]
fn panic_any_of_a_panic_is_not_nested() {
    let p = Panic::with_location(Box::new("inner"), Location::new("a.rs", 1, 2));
    let q = recover(|| -> () { std::panic::panic_any(p) }).unwrap_err();
    assert_eq!(q.message(), Some("inner"));
    assert_eq!(q.location(), Some(Location::new("a.rs", 1, 2)));
}

#[test]
fn nested_recover_catches_innermost_first() {
    let r = recover(|| {
        let inner = recover(|| -> () { panic!("inner") });
        assert_eq!(inner.unwrap_err().message(), Some("inner"));
        panic!("outer")
    });
    let p: Panic = r.unwrap_err();
    assert_eq!(p.message(), Some("outer"));
}

/// A panic on another stack is caught at that stack's entry and comes back
/// as a value; a value comes back as a value.
#[test]
fn catch_on_stack_carries_values_and_panics_across() {
    let s = stack();
    // SAFETY: the stack is ours, aligned (page-aligned top) and unused.
    let v = unsafe { catch_on_stack(s.top(), current_sp) }.unwrap();
    assert!(in_stack(&s, v));

    let dropped = std::cell::Cell::new(0);
    let line = line!() + 5;
    // SAFETY: as above.
    let r: Result<(), Panic> = unsafe {
        catch_on_stack(s.top(), || {
            let _d = DropCount(&dropped);
            panic!("on the other stack")
        })
    };
    let p = r.unwrap_err();
    assert_eq!(p.message(), Some("on the other stack"));
    assert_eq!(p.location().unwrap().line(), line);
    assert_eq!(dropped.get(), 1);

    // The caller may raise it again on its own stack.
    let q = recover(|| p.resume()).unwrap_err();
    assert_eq!(q.message(), Some("on the other stack"));
}

/// A deliberately uncaught panic inside a context (a goroutine-like fiber
/// whose body does not catch it) is caught at the context's entry and
/// reported as the fiber's result: it never unwinds off the stack's base
/// (which would abort the process: the entry is `extern "C"`).
#[test]
fn uncaught_panic_in_a_context_is_caught_at_its_entry() {
    let mut f = Fiber::new(|_| {
        let v: Vec<u8> = Vec::with_capacity(8);
        std::hint::black_box(&v);
        panic!("nobody catches this");
    });
    f.resume();
    let p = f.take_result().expect("finished").unwrap_err();
    assert_eq!(p.message(), Some("nobody catches this"));
    assert_eq!(p.location().unwrap().file(), file!());
    assert!(!f.has_resume_point());

    let mut g = Fiber::new(|_| {});
    g.resume();
    assert!(g.take_result().unwrap().is_ok());
}

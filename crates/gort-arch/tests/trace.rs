//! `backtrace_of`: the frames of a suspended context, walked from the frame
//! its switch saved, on all three targets.

use gort_arch::{backtrace_of, init, switch, Context};
use std::ffi::c_void;
use std::hint::black_box;

/// Every function name at each address (inlined ones included).
fn names(ips: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    for &ip in ips {
        backtrace::resolve((ip - 1) as *mut c_void, |s| {
            if let Some(n) = s.name() {
                out.push(format!("{n:#}"));
            }
        });
    }
    out
}

#[inline(never)]
fn outer_known_frame(caller: Context, depth: usize) -> Context {
    if depth > 0 {
        // A chain of real frames, several deep.
        return black_box(outer_known_frame(caller, depth - 1));
    }
    inner_known_frame(caller)
}

#[inline(never)]
fn inner_known_frame(caller: Context) -> Context {
    // SAFETY: caller is the suspended main side; it switches back later.
    let (caller, _) = unsafe { switch(caller, 1) };
    black_box(caller)
}

unsafe extern "C" fn entry(_arg: usize, caller: Context, _v: usize) -> ! {
    let caller = outer_known_frame(caller, 3);
    // SAFETY: as above; we are never resumed after this.
    unsafe { switch(caller, 2) };
    unreachable!()
}

#[test]
fn walks_a_suspended_contexts_frames_up_to_its_entry() {
    let mut stack = vec![0u128; 16 * 1024];
    let top = stack.as_mut_ptr_range().end.cast::<u8>();
    // SAFETY: the stack outlives the context, which is run to its end.
    unsafe {
        let ctx = init(top, entry, 0);
        let (ctx, v) = switch(ctx, 0);
        assert_eq!(v, 1);
        let mut buf = [0usize; 64];
        let n = backtrace_of(&ctx, &mut buf);
        let names = names(&buf[..n]);
        let pos = |f: &str| {
            names
                .iter()
                .position(|n| n.ends_with(f))
                .unwrap_or_else(|| panic!("no {f} in {names:#?}"))
        };
        // Innermost first, the whole chain, and nothing of this thread's
        // own stack (the walk ends at the context's initial frame).
        let inner = pos("inner_known_frame");
        let outer = pos("outer_known_frame");
        let top = pos("entry");
        assert!(inner < outer && outer < top, "{names:#?}");
        assert!(
            names
                .iter()
                .filter(|n| n.ends_with("outer_known_frame"))
                .count()
                >= 2,
            "{names:#?}"
        );
        assert!(
            !names
                .iter()
                .any(|n| n.contains("walks_a_suspended_context")),
            "{names:#?}"
        );
        assert!(n < buf.len(), "the walk did not stop at the entry");
        // A short buffer gets the innermost frames.
        let mut two = [0usize; 2];
        assert_eq!(backtrace_of(&ctx, &mut two), 2);
        assert_eq!(two, buf[..2]);
        // The walk left the context intact: it resumes and finishes.
        let (_ctx, v) = switch(ctx, 0);
        assert_eq!(v, 2);
    }
    drop(stack);
}

#[test]
fn an_empty_context_has_no_frames() {
    let mut buf = [0usize; 4];
    // SAFETY: an empty context is never walked.
    assert_eq!(unsafe { backtrace_of(&Context::empty(), &mut buf) }, 0);
}

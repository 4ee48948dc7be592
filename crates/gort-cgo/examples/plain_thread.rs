//! gort-cgo from a plain thread, with no runtime started by the program:
//! a C call, a C library calling back into Rust, and a panic in that
//! callback that skips the C frames and comes back as a value.
//!
//! ```text
//! cargo run -p gort-cgo --example plain_thread
//! ```
//!
//! On a goroutine the same calls also keep the other goroutines running
//! while C blocks (see the crate's documentation); on a plain thread `call`
//! runs the closure on the current stack.

use std::ffi::{c_int, c_void, CStr};

/// qsort's comparator: C calls it, so its body runs inside `callback`.
unsafe extern "C" fn compare(a: *const c_void, b: *const c_void) -> c_int {
    // SAFETY: the top of an extern "C" function called by C; this frame
    // holds nothing that needs dropping. qsort passes pointers to two
    // elements of the i32 array.
    unsafe {
        gort_cgo::callback(|| {
            let (a, b) = (*a.cast::<i32>(), *b.cast::<i32>());
            a.cmp(&b) as c_int
        })
    }
}

/// A comparator that panics on the first comparison it sees.
unsafe extern "C" fn compare_and_panic(_a: *const c_void, _b: *const c_void) -> c_int {
    // SAFETY: as in `compare`.
    unsafe { gort_cgo::callback(|| panic!("comparator gave up")) }
}

fn main() {
    let worker = std::thread::spawn(|| {
        // 1. A plain C call.
        // SAFETY: getpid takes nothing and cannot call back.
        let pid = unsafe { gort_cgo::call(|| libc::getpid()) };
        println!("getpid from C: {pid}");
        assert_eq!(pid as u32, std::process::id());

        // 2. C calls back into Rust: qsort with a Rust comparator.
        let mut v = [5i32, 3, 9, 1, 7, 2];
        let (base, len) = (v.as_mut_ptr().cast::<c_void>(), v.len());
        // SAFETY: the closure only calls qsort with plain arguments; the
        // array outlives the call.
        unsafe { gort_cgo::call(|| libc::qsort(base, len, size_of::<i32>(), Some(compare))) };
        println!("sorted by C's qsort calling Rust: {v:?}");
        assert_eq!(v, [1, 2, 3, 5, 7, 9]);

        // 3. A panic in the callback: qsort's frames are skipped, not
        //    unwound, and the panic comes back from try_call as a value.
        let mut w = [2i32, 1];
        let (base, len) = (w.as_mut_ptr().cast::<c_void>(), w.len());
        // SAFETY: as above; nothing in the closure needs dropping.
        let r = unsafe {
            gort_cgo::try_call(|| libc::qsort(base, len, size_of::<i32>(), Some(compare_and_panic)))
        };
        let p = r.expect_err("the callback panicked");
        println!("the callback's panic came back: {:?}", p.message());
        assert_eq!(p.message(), Some("comparator gave up"));

        // SAFETY: getenv returns a pointer into the environment or null.
        let home = unsafe { gort_cgo::call(|| libc::getenv(c"PATH".as_ptr())) };
        // SAFETY: non-null getenv results are NUL-terminated strings.
        let set = !home.is_null() && unsafe { !CStr::from_ptr(home).is_empty() };
        println!("PATH is set: {set}");
    });
    worker.join().expect("the plain thread finishes");
    println!("ok");
}

//! Test helpers built only on gort-arch's public API: an mmap'd stack with a
//! guard page, and a minimal fiber (resume/suspend) over `init`/`switch`.

#![allow(dead_code)]

use gort_arch::{init, switch, Context};
use std::ptr;

#[allow(unused_imports)]
pub use gort_testing::under_qemu;

/// An anonymous mapping with one PROT_NONE guard page at its low end.
///
/// Must hold: `base .. base + len` is mapped by this value alone, the lowest
/// page is PROT_NONE, the rest read-write; unmapped on drop.
pub struct TestStack {
    base: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value.
unsafe impl Send for TestStack {}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

impl TestStack {
    pub fn new(usable: usize) -> TestStack {
        let page = page_size();
        let len = usable.div_ceil(page) * page + page;
        // SAFETY: a fresh private anonymous mapping; the result is checked.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap of a test stack failed");
        // SAFETY: the first page belongs to the mapping just created.
        let rc = unsafe { libc::mprotect(base, page, libc::PROT_NONE) };
        assert_eq!(rc, 0, "mprotect of the guard page failed");
        TestStack {
            base: base.cast(),
            len,
        }
    }

    /// One past the highest usable byte (16-aligned: the mapping is page-aligned).
    pub fn top(&self) -> *mut u8 {
        // SAFETY: one past the end of the mapping.
        unsafe { self.base.add(self.len) }
    }

    /// Lowest usable address (just above the guard page).
    pub fn bottom(&self) -> usize {
        self.base as usize + page_size()
    }

    pub fn contains(&self, addr: usize) -> bool {
        addr >= self.bottom() && addr < self.top() as usize
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        // SAFETY: base/len describe the mapping this value owns.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

type Body = Box<dyn FnOnce(&Link, usize) -> usize>;

/// Must hold: lives at a stable address (boxed) for as long as the fiber can
/// run; `fiber` holds the suspended fiber while the caller runs, `caller`
/// holds the suspended caller while the fiber runs.
struct Inner {
    fiber: Context,
    caller: Context,
    body: Option<Body>,
    done: bool,
}

/// A minimal asymmetric coroutine for tests: `resume` runs the body until it
/// suspends or returns.
pub struct Fiber {
    inner: Box<Inner>,
    stack: TestStack,
}

// SAFETY: a fiber's stack and state are plain memory; moving a suspended
// fiber to another thread is exactly what goroutines do. Bodies in these
// tests capture only Send data or none.
unsafe impl Send for Fiber {}

/// Handle given to the fiber's body to suspend itself.
pub struct Link(*mut Inner);

impl Link {
    /// Switches back to whoever resumed the fiber, passing `value`; returns
    /// the value of the next `resume`.
    pub fn suspend(&self, value: usize) -> usize {
        let inner = self.0;
        // SAFETY: the fiber is running, so `caller` holds the suspended
        // resumer, and `inner` outlives the fiber.
        unsafe {
            let (caller, value) = switch((*inner).caller.take(), value);
            (*inner).caller = caller;
            value
        }
    }
}

unsafe extern "C" fn fiber_entry(arg: usize, from: Context, value: usize) -> ! {
    let inner = arg as *mut Inner;
    // SAFETY: `arg` is the boxed Inner passed to init; it outlives the fiber.
    unsafe {
        (*inner).caller = from;
        let body = (*inner).body.take().expect("fiber body already taken");
        let result = body(&Link(inner), value);
        (*inner).done = true;
        let _ = switch((*inner).caller.take(), result);
    }
    unreachable!("a finished fiber was resumed");
}

impl Fiber {
    pub fn new(stack_size: usize, body: impl FnOnce(&Link, usize) -> usize + 'static) -> Fiber {
        let stack = TestStack::new(stack_size);
        let mut inner = Box::new(Inner {
            fiber: Context::empty(),
            caller: Context::empty(),
            body: Some(Box::new(body)),
            done: false,
        });
        let arg = &raw mut *inner as usize;
        // SAFETY: the stack is fresh, owned by the fiber, and outlives it.
        inner.fiber = unsafe { init(stack.top(), fiber_entry, arg) };
        Fiber { inner, stack }
    }

    /// Runs the fiber until it suspends or finishes; returns what it passed.
    pub fn resume(&mut self, value: usize) -> usize {
        assert!(!self.inner.done, "resumed a finished fiber");
        // SAFETY: the fiber is suspended (not done), so `fiber` holds it.
        let (fiber, value) = unsafe { switch(self.inner.fiber.take(), value) };
        self.inner.fiber = fiber;
        value
    }

    pub fn is_done(&self) -> bool {
        self.inner.done
    }

    pub fn stack(&self) -> &TestStack {
        &self.stack
    }
}

impl Drop for Fiber {
    fn drop(&mut self) {
        // A suspended fiber's frames are not unwound; tests finish theirs.
        if !std::thread::panicking() {
            assert!(self.inner.done, "test fiber dropped while suspended");
        }
    }
}

// Returns the stack pointer at its call site (before the call pushed
// anything), which must be 16-byte aligned on all three ABIs.
#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".globl gort_test_sp_at_call",
    "gort_test_sp_at_call:",
    "lea rax, [rsp + 8]",
    "ret",
);
#[cfg(target_arch = "aarch64")]
std::arch::global_asm!(
    ".globl gort_test_sp_at_call",
    "gort_test_sp_at_call:",
    "mov x0, sp",
    "ret",
);
#[cfg(target_arch = "x86")]
std::arch::global_asm!(
    ".globl gort_test_sp_at_call",
    "gort_test_sp_at_call:",
    "lea eax, [esp + 4]",
    "ret",
);

extern "C" {
    fn gort_test_sp_at_call() -> usize;
}

/// The stack pointer at a call instruction made from the caller's frame.
#[inline(never)]
pub fn sp_at_call() -> usize {
    // SAFETY: the asm reads the stack pointer and returns.
    unsafe { gort_test_sp_at_call() }
}

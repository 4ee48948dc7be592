//! The two ways a guard region below a stack is made inaccessible, and the
//! self-test that picks one per process.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::sys;

/// How the guard region below each stack is made inaccessible.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GuardStrategy {
    /// `madvise(MADV_GUARD_INSTALL)` (Linux 6.13+): guard markers in the page
    /// tables of one large read-write mapping. An access faults like a
    /// `PROT_NONE` page, and the guard costs no mapping of the process's
    /// `vm.max_map_count` and no memory beyond page-table entries.
    Installed,
    /// `mprotect(PROT_NONE)`: works everywhere, but every guard splits its
    /// mapping, so each stack costs two mappings of `vm.max_map_count`.
    Mprotect,
}

const UNKNOWN: u8 = 0;
const INSTALLED: u8 = 1;
const MPROTECT: u8 = 2;

/// The strategy this process uses, decided by a self-test on first call.
///
/// The test maps two pages, installs a guard marker on the first and checks
/// that the kernel refuses to read from it on our behalf: `write(2)` from the
/// guard page into a pipe must fail with `EFAULT` (the guard page itself is
/// never touched, so the test cannot fault). The advice's return code is not
/// trusted: qemu-user accepts the advice, returns 0 and ignores it. When any
/// step fails (old kernel: `EINVAL`; no file descriptor left for the pipe),
/// the answer is [`GuardStrategy::Mprotect`], which works everywhere.
///
/// Concurrent first calls may each run the test; they reach the same answer.
pub fn guard_strategy() -> GuardStrategy {
    static STRATEGY: AtomicU8 = AtomicU8::new(UNKNOWN);
    match STRATEGY.load(Ordering::Relaxed) {
        INSTALLED => GuardStrategy::Installed,
        MPROTECT => GuardStrategy::Mprotect,
        _ => {
            let s = if installed_guards_work() {
                GuardStrategy::Installed
            } else {
                GuardStrategy::Mprotect
            };
            let v = match s {
                GuardStrategy::Installed => INSTALLED,
                GuardStrategy::Mprotect => MPROTECT,
            };
            STRATEGY.store(v, Ordering::Relaxed);
            s
        }
    }
}

/// Whether `madvise(MADV_GUARD_INSTALL)` really makes a page inaccessible.
#[cfg(target_os = "linux")]
fn installed_guards_work() -> bool {
    let page = sys::page_size();
    let Ok(mem) = sys::map_stack_memory(2 * page) else {
        return false;
    };
    // SAFETY: `mem` is the start of the two pages just mapped.
    let ok = unsafe { probe_guard(mem, page) };
    // SAFETY: we mapped `mem` above and nothing else knows of it.
    unsafe { sys::unmap(mem, 2 * page) };
    ok
}

/// Installs a guard on the first page at `mem` and checks, through the
/// kernel, that the first page is inaccessible and the second is not.
///
/// # Safety
/// `mem` must be the start of two read-write pages owned by the caller.
#[cfg(target_os = "linux")]
unsafe fn probe_guard(mem: *mut u8, page: usize) -> bool {
    // SAFETY: the first page is ours.
    if unsafe { libc::madvise(mem.cast(), page, sys::MADV_GUARD_INSTALL) } != 0 {
        return false;
    }
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return false;
    }
    // write(2) copies from the buffer in the kernel, which reports an
    // inaccessible source as EFAULT instead of raising a signal.
    // SAFETY: both addresses lie in our mapping; the kernel checks access.
    let guard = unsafe { libc::write(fds[1], mem.cast(), 1) };
    let guard_errno = sys::errno();
    // SAFETY: as above; the second page has no guard.
    let plain = unsafe { libc::write(fds[1], mem.add(page).cast(), 1) };
    // SAFETY: both descriptors are ours.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    guard == -1 && guard_errno == libc::EFAULT && plain == 1
}

#[cfg(not(target_os = "linux"))]
fn installed_guards_work() -> bool {
    false
}

/// Makes `[addr, addr + len)` a guard region with `strategy`.
///
/// # Safety
/// The range must be page-aligned, lie in a mapping this crate owns, and
/// hold nothing anyone uses.
pub(crate) unsafe fn make_guard(
    strategy: GuardStrategy,
    addr: *mut u8,
    len: usize,
) -> Result<(), i32> {
    let r = match strategy {
        #[cfg(target_os = "linux")]
        // SAFETY: forwarded from the caller.
        GuardStrategy::Installed => unsafe {
            libc::madvise(addr.cast(), len, sys::MADV_GUARD_INSTALL)
        },
        #[cfg(not(target_os = "linux"))]
        GuardStrategy::Installed => return Err(libc::EINVAL),
        // SAFETY: forwarded from the caller.
        GuardStrategy::Mprotect => unsafe { libc::mprotect(addr.cast(), len, libc::PROT_NONE) },
    };
    if r == 0 {
        Ok(())
    } else {
        Err(sys::errno())
    }
}

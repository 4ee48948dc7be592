//! Helpers shared by gort-stack's integration tests; each test crate uses a
//! subset. The generic ones (qemu, re-exec, skips) are gort-testing's.
#![allow(dead_code)]

#[allow(unused_imports)]
pub use gort_testing::{is_child, run_child, scaled, under_qemu};

/// The running kernel's (major, minor) version from uname(2).
pub fn kernel_version() -> (u32, u32) {
    // SAFETY: uname fills in the zeroed struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is valid for writes.
    assert_eq!(unsafe { libc::uname(&mut u) }, 0);
    // SAFETY: uname NUL-terminates the field.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy();
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|s| s.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Whether the kernel refuses to read `addr` on our behalf: write(2) of one
/// byte from it into a pipe fails with EFAULT. Touches nothing itself, so it
/// is safe to ask about a guard page.
pub fn kernel_cannot_read(addr: *const u8) -> bool {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the kernel checks the source address itself.
    let r = unsafe { libc::write(fds[1], addr.cast(), 1) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    // SAFETY: our descriptors.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    match r {
        1 => false,
        -1 if errno == Some(libc::EFAULT) => true,
        _ => panic!("write(2) from {addr:p}: {r}, errno {errno:?}"),
    }
}

/// Residency of each page in `[lo, lo + len)` (mincore(2)).
pub fn resident_pages(lo: *const u8, len: usize) -> Vec<bool> {
    let page = page_size();
    let n = len.div_ceil(page);
    let mut v = vec![0u8; n];
    // SAFETY: `v` has one byte per page of the range.
    let r = unsafe { libc::mincore(lo as *mut _, len, v.as_mut_ptr()) };
    assert_eq!(r, 0, "mincore: {}", std::io::Error::last_os_error());
    v.into_iter().map(|b| b & 1 == 1).collect()
}

pub fn page_size() -> usize {
    // SAFETY: no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

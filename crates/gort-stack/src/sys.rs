//! Thin wrappers over the system calls the crate makes, and the few numbers
//! it reads from /proc.

use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `madvise` advice that installs guard markers in the page tables (Linux
/// 6.13+). Not in the libc crate yet; the value is part of the uapi.
#[cfg(target_os = "linux")]
pub(crate) const MADV_GUARD_INSTALL: libc::c_int = 102;

/// The size of a page, read once.
pub(crate) fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let p = PAGE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let p = if p > 0 { p as usize } else { 4096 };
    assert!(p.is_power_of_two(), "page size {p} is not a power of two");
    PAGE.store(p, Ordering::Relaxed);
    p
}

/// Rounds `n` up to a multiple of the page size; `None` on overflow.
pub(crate) fn round_to_page(n: usize) -> Option<usize> {
    let p = page_size();
    Some(n.checked_add(p - 1)? & !(p - 1))
}

/// The calling thread's errno.
pub(crate) fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Maps `len` bytes of private, anonymous, read-write memory that is not
/// charged against the commit limit (`MAP_NORESERVE`: only touched pages
/// cost memory). `MAP_STACK` keeps transparent huge pages out of it on
/// Linux 6.7+, so that touching one page of a stack never faults in 2 MiB.
pub(crate) fn map_stack_memory(len: usize) -> Result<*mut u8, i32> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let extra = libc::MAP_NORESERVE | libc::MAP_STACK;
    #[cfg(target_os = "freebsd")]
    let extra = libc::MAP_STACK;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let extra = 0;
    // SAFETY: an anonymous mapping at an address of the kernel's choice
    // touches no existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANON | extra,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(errno())
    } else {
        Ok(p.cast())
    }
}

/// Unmaps a region this crate mapped.
///
/// # Safety
/// `[p, p + len)` must be a region this crate mapped and nothing may use it
/// afterwards.
pub(crate) unsafe fn unmap(p: *mut u8, len: usize) {
    // SAFETY: forwarded from the caller.
    let r = unsafe { libc::munmap(p.cast(), len) };
    // munmap of a region we mapped fails only on a bug (bad arguments).
    debug_assert_eq!(r, 0, "munmap({p:p}, {len}) failed: errno {}", errno());
}

/// Counts the calling process's memory mappings: the lines of
/// /proc/self/maps, which is what `vm.max_map_count` limits.
pub(crate) fn count_mappings() -> io::Result<usize> {
    let mut f = std::fs::File::open("/proc/self/maps")?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut lines = 0;
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(lines),
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads `vm.max_map_count` from /proc/sys/vm/max_map_count.
pub(crate) fn read_max_map_count() -> io::Result<usize> {
    let s = std::fs::read_to_string("/proc/sys/vm/max_map_count")?;
    s.trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes all of `bytes` to file descriptor 2 with write(2) alone, retrying
/// on EINTR and short writes: async-signal-safe, no allocation, no lock.
pub(crate) fn write_stderr_raw(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is valid for reads of its length.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n > 0 {
            bytes = &bytes[n as usize..];
        } else if n < 0 && errno() == libc::EINTR {
            continue;
        } else {
            return;
        }
    }
}

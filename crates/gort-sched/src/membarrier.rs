//! Asymmetric fences: a free fence on a hot path, paid for by a heavy one
//! on a rare path (Linux `membarrier`, as userspace RCU and Folly's
//! hazard pointers use it).
//!
//! The pattern (a Dekker handshake): the hot side stores X, then
//! `light_fence()`, then loads Y; the rare side stores Y, then
//! `heavy_fence()`, then loads X. At least one side sees the other's store.
//! `heavy_fence` makes every running thread of the process execute a full
//! memory barrier, so the hot side needs only a compiler fence.
//!
//! If `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` is unavailable (old
//! kernels, qemu-user without it), both sides fall back to `SeqCst` fences.

use std::sync::atomic::{compiler_fence, fence, AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const EXPEDITED: u8 = 1;
const FENCES: u8 = 2;

/// Whether `membarrier` works in this process. Decided once, before any
/// runtime starts a thread (see `init`), so the hot side reads a settled
/// value.
static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// Registers the process for expedited private membarriers. Called when a
/// runtime is built, before its threads start: a thread that already runs
/// the hot side when the mode changes from fences to membarrier would not
/// have fenced, so the mode is settled before any hot side can run, and
/// never changes after.
pub(crate) fn init() {
    if MODE.load(Ordering::Acquire) != UNKNOWN {
        return;
    }
    // GORT_NO_MEMBARRIER=1 forces the fence fallback (to test it).
    let forced_off = std::env::var_os("GORT_NO_MEMBARRIER").is_some_and(|v| v == "1");
    // SAFETY: membarrier takes (cmd, flags, cpu_id) and has no memory
    // arguments; an unknown command fails with EINVAL or ENOSYS.
    let ok = !forced_off
        && unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
                0 as libc::c_long,
                0 as libc::c_long,
            )
        } == 0;
    let _ = MODE.compare_exchange(
        UNKNOWN,
        if ok { EXPEDITED } else { FENCES },
        Ordering::AcqRel,
        Ordering::Acquire,
    );
}

/// The hot side's fence.
#[inline(always)]
pub(crate) fn light_fence() {
    // The compiler fence either way (it orders nothing at run time); the
    // CPU fence only without membarrier: one compare and a branch taken
    // never on a kernel that has it.
    compiler_fence(Ordering::SeqCst);
    if MODE.load(Ordering::Relaxed) != EXPEDITED {
        fence(Ordering::SeqCst);
    }
}

/// The rare side's fence: every thread of the process has executed a full
/// barrier when this returns.
pub(crate) fn heavy_fence() {
    fence(Ordering::SeqCst);
    if MODE.load(Ordering::Relaxed) == EXPEDITED {
        // SAFETY: as in `init`; registered there.
        let r = unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                MEMBARRIER_CMD_PRIVATE_EXPEDITED,
                0 as libc::c_long,
                0 as libc::c_long,
            )
        };
        if r != 0 {
            crate::fatal::fatal(&format!(
                "membarrier failed after registration: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
}

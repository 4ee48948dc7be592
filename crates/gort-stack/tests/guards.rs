//! Guard regions: which strategy the self-test picks, that guards are
//! inaccessible and stacks usable, with both strategies.

// Linux only: the checks use Linux system calls and /proc.
#![cfg(target_os = "linux")]

mod common;

use common::kernel_cannot_read;
use gort_stack::{guard_strategy, GuardStrategy, Stack, StackConfig, StackPool};

/// The strategies this machine can run: mprotect always, installed guards
/// where the self-test found them working.
fn strategies() -> Vec<GuardStrategy> {
    let mut v = vec![GuardStrategy::Mprotect];
    if guard_strategy() == GuardStrategy::Installed {
        v.push(GuardStrategy::Installed);
    }
    v
}

#[test]
fn self_test_picks_installed_guards_natively_and_mprotect_under_qemu() {
    let expected = if common::under_qemu() {
        // qemu-user accepts MADV_GUARD_INSTALL and ignores it.
        GuardStrategy::Mprotect
    } else if common::kernel_version() >= (6, 13) {
        GuardStrategy::Installed
    } else {
        GuardStrategy::Mprotect
    };
    eprintln!(
        "kernel {:?}, under qemu: {}, strategy: {:?}",
        common::kernel_version(),
        common::under_qemu(),
        guard_strategy()
    );
    assert_eq!(guard_strategy(), expected);
}

#[test]
fn installed_guards_are_refused_where_they_do_not_work() {
    let config = StackConfig {
        strategy: Some(GuardStrategy::Installed),
        ..StackConfig::new()
    };
    match guard_strategy() {
        GuardStrategy::Installed => assert!(StackPool::new(config).is_ok()),
        GuardStrategy::Mprotect => assert!(StackPool::new(config).is_err()),
    }
}

/// Checks one stack: its memory is usable from bottom to top, its guard is
/// inaccessible at both ends, and its geometry is what was asked for.
fn check_stack(s: &Stack, size: usize, guard: usize) {
    assert_eq!(s.size(), size);
    assert_eq!(s.guard_size(), guard);
    assert_eq!(
        s.top() as usize % common::page_size(),
        0,
        "top is page-aligned"
    );
    assert_eq!(s.bounds().size(), size);
    assert_eq!(s.bottom() as usize - s.guard_bottom() as usize, guard);
    let page = common::page_size();
    for off in (0..size).step_by(page) {
        // SAFETY: inside the stack's read-write memory.
        unsafe {
            s.bottom().add(off).write_volatile(0xa5);
            s.bottom().add(off + page - 1).write_volatile(0x5a);
        }
    }
    assert!(kernel_cannot_read(s.guard_bottom()), "{s:?}: guard bottom");
    // One byte below the stack: the guard's top byte.
    assert!(
        kernel_cannot_read(s.bottom().wrapping_sub(1)),
        "{s:?}: guard top"
    );
    assert!(!kernel_cannot_read(s.bottom()), "{s:?}: stack bottom");
    assert!(
        !kernel_cannot_read(s.top().wrapping_sub(1)),
        "{s:?}: stack top"
    );
}

#[test]
fn guards_fault_and_stacks_are_usable_with_each_strategy() {
    for strategy in strategies() {
        let config = StackConfig {
            size: 64 * 1024,
            guard: 64 * 1024,
            strategy: Some(strategy),
            ..StackConfig::new()
        };
        let pool = StackPool::new(config).unwrap();
        assert_eq!(pool.guard_strategy(), strategy);
        // 40 stacks span the first two slabs (16, then 32 stacks).
        let stacks: Vec<Stack> = (0..40).map(|_| pool.get().unwrap()).collect();
        assert_eq!(pool.stats().slabs_mapped, 2);
        for s in &stacks {
            assert_eq!(s.guard_strategy(), strategy);
            check_stack(s, 64 * 1024, 64 * 1024);
        }
        // No two stacks overlap, guards included.
        let mut spans: Vec<(usize, usize)> = stacks
            .iter()
            .map(|s| (s.guard_bottom() as usize, s.top() as usize))
            .collect();
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "overlapping stacks {w:?}");
        }
    }
}

#[test]
fn sizes_are_rounded_to_pages_and_zero_is_refused() {
    let page = common::page_size();
    let s = Stack::new(StackConfig {
        size: 3 * page + 1,
        guard: 1,
        ..StackConfig::new()
    })
    .unwrap();
    check_stack(&s, 4 * page, page);
    assert!(Stack::new(StackConfig::new().with_size(0)).is_err());
    assert!(Stack::new(StackConfig {
        guard: 0,
        ..StackConfig::new()
    })
    .is_err());
}

// A pooled stack's memory is discarded with MADV_DONTNEED; with installed
// guards the markers must survive that (the kernel documents that
// MADV_DONTNEED leaves them; checked here, also for a range covering the
// guard itself).
gort_testing::ignore_under_qemu! {
    "qemu-user ignores MADV_GUARD_INSTALL: no installed guard to check";
    #[test]
    fn installed_guard_survives_pooling_and_madv_dontneed() {
        installed_guard_survives_pooling()
    }
}

fn installed_guard_survives_pooling() {
    if guard_strategy() != GuardStrategy::Installed {
        gort_testing::skip!("this kernel has no MADV_GUARD_INSTALL (6.13+)");
    }
    let pool = StackPool::new(StackConfig {
        strategy: Some(GuardStrategy::Installed),
        ..StackConfig::new()
    })
    .unwrap();
    let s = pool.get().unwrap();
    let (guard_bottom, size, guard) = (s.guard_bottom(), s.size(), s.guard_size());
    // SAFETY: the stack's own memory.
    unsafe { std::ptr::write_bytes(s.bottom(), 0xee, size) };
    pool.put(s);
    let s = pool.get().unwrap();
    assert_eq!(
        s.guard_bottom(),
        guard_bottom,
        "the pool hands back the same stack"
    );
    assert!(kernel_cannot_read(s.guard_bottom()));
    // SAFETY: the stack's own memory.
    let first = unsafe { s.bottom().read_volatile() };
    assert_eq!(first, 0, "trimmed memory reads as zero");

    // SAFETY: discarding our own guard region and stack; nothing runs there.
    let r = unsafe { libc::madvise(guard_bottom.cast(), guard + size, libc::MADV_DONTNEED) };
    assert_eq!(r, 0);
    assert!(
        kernel_cannot_read(s.guard_bottom()),
        "guard marker survives MADV_DONTNEED"
    );
    assert!(kernel_cannot_read(s.bottom().wrapping_sub(1)));
    check_stack(&s, size, guard);
}

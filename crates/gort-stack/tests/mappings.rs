//! What stacks cost in memory mappings (`vm.max_map_count`): a million
//! stacks with installed guards, two mappings per stack with mprotect guards,
//! and the budget error before the limit.
//!
//! These tests count the lines of /proc/self/maps, so they run one at a time
//! (SERIAL) in a test binary of their own: other tests mapping memory in
//! parallel would blur the counts.

// Linux only: the checks use Linux system calls and /proc.
#![cfg(target_os = "linux")]

mod common;

use std::sync::{Mutex, MutexGuard};

use gort_stack::{
    count_mappings, guard_strategy, max_map_count, GuardStrategy, MapBudget, Stack, StackConfig,
    StackError, StackPool,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn maps() -> usize {
    count_mappings().expect("/proc/self/maps")
}

#[cfg(target_pointer_width = "64")]
gort_testing::ignore_under_qemu! {
    "qemu-user ignores MADV_GUARD_INSTALL: no installed guards to count";
    #[test]
    fn a_million_guarded_stacks_fit_under_the_default_max_map_count() {
        a_million_guarded_stacks()
    }
}

#[cfg(target_pointer_width = "32")]
#[test]
#[ignore = "a million stacks of 80 KiB need 80 GB of address space, a 32-bit process has 4 GB"]
fn a_million_guarded_stacks_fit_under_the_default_max_map_count() {
    a_million_guarded_stacks()
}

fn a_million_guarded_stacks() {
    let _s = serial();
    if guard_strategy() != GuardStrategy::Installed {
        gort_testing::skip!(
            "this kernel has no MADV_GUARD_INSTALL (6.13+); mprotect guards cost two \
             mappings per stack, see \
             mprotect_pool_stops_at_its_budget_with_a_clear_error_and_recovers"
        );
    }
    const N: usize = 1_000_000;
    let limit = max_map_count().expect("vm.max_map_count");
    let config = StackConfig {
        size: 16 * 1024,
        guard: 64 * 1024,
        strategy: Some(GuardStrategy::Installed),
        ..StackConfig::new()
    };
    let before = maps();
    let start = std::time::Instant::now();
    let pool = StackPool::new(config).unwrap();
    let mut stacks = Vec::with_capacity(N);
    for _ in 0..N {
        stacks.push(pool.get().expect("stack"));
    }
    let took = start.elapsed();
    let during = maps();
    let stats = pool.stats();
    eprintln!(
        "{N} stacks of 16 KiB + 64 KiB installed guard in {took:?}: {} mappings before, \
         {during} with them (+{}), {} slabs; vm.max_map_count = {limit}",
        before,
        during as isize - before as isize,
        stats.slabs_mapped,
    );
    assert_eq!(stats.stacks_carved, N as u64);
    assert!(
        during < limit,
        "{during} mappings >= vm.max_map_count {limit}"
    );
    assert!(
        during <= before + stats.slabs_mapped as usize + 8,
        "guards must not add mappings: {before} -> {during}, {} slabs",
        stats.slabs_mapped
    );
    // Every stack is distinct and guarded; check a spread of them.
    let page = common::page_size();
    for s in stacks.iter().step_by(9_973) {
        assert!(common::kernel_cannot_read(s.guard_bottom()), "{s:?}");
        // The guard's top page, just below the stack.
        let guard_top = s.bottom().wrapping_sub(page);
        assert!(common::kernel_cannot_read(guard_top), "{s:?}");
        // SAFETY: the stack's top word.
        unsafe {
            let w = s.top().cast::<usize>().sub(1);
            w.write_volatile(w as usize);
            assert_eq!(w.read_volatile(), w as usize);
        }
    }
    drop(stacks);
    drop(pool);
    let after = maps();
    assert!(after <= before + 8, "slabs unmapped: {before} -> {after}");
}

#[test]
fn installed_guards_cost_no_mapping_mprotect_guards_two_per_stack() {
    let _s = serial();
    let mut strategies = vec![GuardStrategy::Mprotect];
    if guard_strategy() == GuardStrategy::Installed {
        strategies.push(GuardStrategy::Installed);
    }
    const N: usize = 496; // exactly five slabs: 16 + 32 + 64 + 128 + 256
    for strategy in strategies {
        let pool = StackPool::new(StackConfig {
            size: 32 * 1024,
            strategy: Some(strategy),
            ..StackConfig::new()
        })
        .unwrap();
        let before = maps();
        let stacks: Vec<Stack> = (0..N).map(|_| pool.get().unwrap()).collect();
        let delta = maps() as isize - before as isize;
        let slabs = pool.stats().slabs_mapped as isize;
        eprintln!("{strategy:?}: {N} stacks in {slabs} slabs added {delta} mappings");
        assert_eq!(slabs, 5);
        match strategy {
            // At most one per slab (the kernel merges adjacent ones), give
            // or take a mapping of the allocator or an exiting thread.
            GuardStrategy::Installed => assert!(delta <= slabs + 2, "{delta} for {slabs} slabs"),
            // Each guard splits its slab: guard + stack above it; the first
            // guard of a slab only splits off the rest of the slab.
            GuardStrategy::Mprotect => assert!(
                (2 * N as isize - slabs..=2 * N as isize + slabs).contains(&delta),
                "{delta} mappings for {N} stacks"
            ),
        }
        drop(stacks);
        drop(pool);
    }
}

#[test]
fn mprotect_pool_stops_at_its_budget_with_a_clear_error_and_recovers() {
    let _s = serial();
    let config = StackConfig {
        size: 16 * 1024,
        strategy: Some(GuardStrategy::Mprotect),
        ..StackConfig::new()
    };
    // An artificial cap 100 mappings above what the process has now: the
    // real vm.max_map_count is never approached.
    let limit = maps() + 100;
    let budget = MapBudget::with_limit(limit).reserve(0);

    let fill = |pool: &StackPool| -> (Vec<Stack>, StackError) {
        let mut held = Vec::new();
        loop {
            match pool.get() {
                Ok(s) => held.push(s),
                Err(e) => return (held, e),
            }
            assert!(
                held.len() < 1_000,
                "no error after 1000 stacks under a cap of +100"
            );
        }
    };

    let pool = StackPool::with_budget(config, budget).unwrap();
    let (mut held, err) = fill(&pool);
    let StackError::MapLimit(m) = err else {
        panic!("expected the mapping-limit error, got {err:?}");
    };
    eprintln!("{} stacks before the error: {err}", held.len());
    // Two mappings per stack; the estimate between counts of
    // /proc/self/maps may drift by a few mappings.
    assert!(
        (40..=55).contains(&held.len()),
        "{} stacks under a cap of +100",
        held.len()
    );
    assert_eq!(m.limit, limit);
    assert_eq!(m.needed, 2);
    assert!(m.count + m.needed > m.limit, "{m:?}");
    assert!(m.count <= m.limit + 8, "{m:?}");
    // The count is the one read when the allocation was refused (threads
    // of earlier tests may still be exiting and unmapping their stacks).
    assert!(m.count.abs_diff(maps()) <= 4, "{m:?} vs {} now", maps());
    let msg = err.to_string();
    for want in [
        "vm.max_map_count".to_string(),
        format!("limit is {limit}"),
        format!("has {} memory mappings", m.count),
    ] {
        assert!(msg.contains(&want), "{msg:?} lacks {want:?}");
    }

    // Stacks put back are reused: no new mappings needed.
    for s in held.drain(..10) {
        pool.put(s);
    }
    let carved = pool.stats().stacks_carved;
    let mut again: Vec<Stack> = (0..10).map(|_| pool.get().unwrap()).collect();
    assert_eq!(pool.stats().stacks_carved, carved);
    // Still at the limit (give or take a mapping an exiting thread of an
    // earlier test gives back).
    again.extend((0..3).map_while(|_| pool.get().ok()));
    assert!(again.len() < 13, "the budget no longer holds");

    // Dropping everything gives the mappings back: a new pool within the same
    // budget gets as many stacks again.
    let first_round = held.len() + again.len();
    drop(again);
    drop(held);
    drop(pool);
    let pool = StackPool::with_budget(config, budget).unwrap();
    let (held, err) = fill(&pool);
    assert!(matches!(err, StackError::MapLimit(_)), "{err:?}");
    assert!(
        held.len().abs_diff(first_round) <= 3,
        "{} stacks after freeing, {first_round} before",
        held.len()
    );
}

#[test]
fn system_budget_is_read_from_proc_sys_vm_max_map_count() {
    let file: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(max_map_count(), Some(file));
    assert_eq!(MapBudget::system().limit(), file);
    assert_eq!(MapBudget::system().reserved(), (file / 64).clamp(64, 1024));
    let pool = StackPool::new(StackConfig::new()).unwrap();
    assert_eq!(pool.budget(), MapBudget::system());
}

/// Whether any mapping in /proc/self/maps overlaps `[lo, hi)`.
fn mapped(lo: usize, hi: usize) -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.split_once('-'))
        .map(|(a, b)| {
            (
                usize::from_str_radix(a, 16).unwrap(),
                usize::from_str_radix(b, 16).unwrap(),
            )
        })
        .any(|(a, b)| a < hi && lo < b)
}

#[test]
fn a_standalone_stack_returns_its_mapping_when_dropped() {
    let _s = serial();
    let s = Stack::new(StackConfig::new()).unwrap();
    let (lo, hi) = (s.guard_bottom() as usize, s.top() as usize);
    assert!(mapped(lo, hi));
    drop(s);
    assert!(!mapped(lo, hi), "[{lo:#x}, {hi:#x}) still mapped");
}

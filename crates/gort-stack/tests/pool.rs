//! Pools and per-owner caches: reuse without mapping, memory given back
//! beyond the warm part, stacks never shared between owners.

// Linux only: the checks use Linux system calls and /proc.
#![cfg(target_os = "linux")]

mod common;

use std::collections::HashSet;

use gort_stack::{PoolStats, Stack, StackCache, StackConfig, StackPool};

fn touch_all(s: &Stack) {
    let page = common::page_size();
    for off in (0..s.size()).step_by(page) {
        // SAFETY: inside the stack's memory.
        unsafe { s.bottom().add(off).write_volatile(1) };
    }
}

/// The counters that stand for mmap, munmap and guard creation.
fn mapping_work(s: PoolStats) -> (u64, u64, u64) {
    (s.slabs_mapped, s.slabs_unmapped, s.stacks_carved)
}

#[test]
fn get_and_put_after_warm_up_neither_map_nor_unmap() {
    let pool = StackPool::new(StackConfig::new().with_size(64 * 1024)).unwrap();
    let mut a = StackCache::with_capacity(8);
    let mut b = StackCache::with_capacity(8);
    // Warm-up: the most stacks held at once below is 3 * 24.
    let warm: Vec<Stack> = (0..72).map(|_| a.get(&pool).unwrap()).collect();
    for s in warm {
        a.put(&pool, s);
    }
    let before = pool.stats();
    assert!(before.stacks_carved >= 72);

    for round in 0..common::scaled(2_000) {
        let n = 1 + round % 24;
        // Owner a gets, owner b puts (a goroutine that moved to another P),
        // and the shared pool is used directly too.
        let mut held: Vec<Stack> = (0..n).map(|_| a.get(&pool).unwrap()).collect();
        held.extend((0..n).map(|_| b.get(&pool).unwrap()));
        held.extend((0..n).map(|_| pool.get().unwrap()));
        for (i, s) in held.into_iter().enumerate() {
            match i % 3 {
                0 => b.put(&pool, s),
                1 => a.put(&pool, s),
                _ => pool.put(s),
            }
        }
    }
    let after = pool.stats();
    assert_eq!(
        mapping_work(after),
        mapping_work(before),
        "{before:?} -> {after:?}"
    );
    assert!(
        after.stacks_trimmed > before.stacks_trimmed,
        "stacks went through the pool"
    );
}

#[test]
fn cache_hands_back_the_warmest_stack_and_spills_half_when_full() {
    let pool = StackPool::new(StackConfig::new().with_size(32 * 1024)).unwrap();
    let mut cache = StackCache::with_capacity(4);
    let stacks: Vec<Stack> = (0..5).map(|_| cache.get(&pool).unwrap()).collect();
    let tops: Vec<*mut u8> = stacks.iter().map(Stack::top).collect();
    let trimmed = pool.stats().stacks_trimmed;
    let mut it = stacks.into_iter();
    for s in it.by_ref().take(4) {
        cache.put(&pool, s);
    }
    assert_eq!(cache.len(), 4);
    assert_eq!(
        pool.stats().stacks_trimmed,
        trimmed,
        "a put into the cache makes no system call"
    );
    cache.put(&pool, it.next().unwrap());
    // The two oldest went to the pool, trimmed; three stay, the last on top.
    assert_eq!(cache.len(), 3);
    assert_eq!(pool.stats().stacks_trimmed, trimmed + 2);
    assert_eq!(pool.stats().free, 2);
    assert_eq!(cache.get(&pool).unwrap().top(), tops[4]);
    cache.flush(&pool);
    assert!(cache.is_empty());
    assert_eq!(pool.stats().free, 4);
}

#[test]
fn pooled_stack_keeps_its_warm_top_and_gives_back_the_rest() {
    let config = StackConfig {
        size: 256 * 1024,
        warm: 16 * 1024,
        ..StackConfig::new()
    };
    let pool = StackPool::new(config).unwrap();
    let page = common::page_size();
    let s = pool.get().unwrap();
    touch_all(&s);
    let (bottom, size) = (s.bottom(), s.size());
    assert!(common::resident_pages(bottom, size).iter().all(|&r| r));
    pool.put(s);
    let resident = common::resident_pages(bottom, size);
    let warm_pages = 16 * 1024 / page;
    let (cold, warm) = resident.split_at(resident.len() - warm_pages);
    assert!(
        cold.iter().all(|&r| !r),
        "pages below the warm part were given back"
    );
    assert!(warm.iter().all(|&r| r), "the warm part stays resident");
    let s = pool.get().unwrap();
    assert_eq!(s.bottom(), bottom);
    // SAFETY: the stack's own memory.
    unsafe {
        assert_eq!(
            s.bottom().read_volatile(),
            0,
            "given-back memory reads as zero"
        );
        assert_eq!(
            s.top().sub(page).read_volatile(),
            1,
            "the warm part is kept"
        );
    }
}

#[test]
fn stacks_of_another_size_are_not_pooled() {
    let small = StackPool::new(StackConfig::new().with_size(32 * 1024)).unwrap();
    let large = StackPool::new(StackConfig::new().with_size(128 * 1024)).unwrap();
    let s = large.get().unwrap();
    assert!(!small.accepts(&s));
    small.put(s);
    assert_eq!(small.stats().free, 0);
    let mut cache = StackCache::new();
    cache.put(&small, large.get().unwrap());
    assert!(cache.is_empty());
    assert!(small.accepts(&small.get().unwrap()));
}

#[test]
fn slabs_grow_and_go_away_with_their_last_stack() {
    let pool = StackPool::new(StackConfig::new().with_size(16 * 1024)).unwrap();
    let first: Vec<Stack> = (0..16).map(|_| pool.get().unwrap()).collect();
    assert_eq!(pool.stats().slabs_mapped, 1);
    let second: Vec<Stack> = (0..32).map(|_| pool.get().unwrap()).collect();
    assert_eq!(
        pool.stats().slabs_mapped,
        2,
        "the second slab holds twice as many"
    );
    let third = pool.get().unwrap();
    assert_eq!(pool.stats().slabs_mapped, 3);
    drop(first);
    assert_eq!(
        pool.stats().slabs_unmapped,
        1,
        "first slab unmapped with its last stack"
    );
    drop(second);
    assert_eq!(pool.stats().slabs_unmapped, 2);
    drop(pool);
    // The third slab lives on with its stack, after the pool is gone.
    touch_all(&third);
    assert!(!common::kernel_cannot_read(third.bottom()));
}

#[test]
fn concurrent_owners_never_share_a_stack() {
    let pool = StackPool::new(StackConfig::new().with_size(16 * 1024)).unwrap();
    let threads = 4;
    let rounds = common::scaled(2_000);
    std::thread::scope(|sc| {
        for t in 0..threads {
            let pool = &pool;
            sc.spawn(move || {
                let mut cache = StackCache::with_capacity(4);
                for round in 0..rounds {
                    let held: Vec<Stack> = (0..1 + round % 7)
                        .map(|_| cache.get(pool).unwrap())
                        .collect();
                    let tag = (t * rounds + round) as u64;
                    for s in &held {
                        // SAFETY: the top word of a stack we hold.
                        unsafe { s.top().cast::<u64>().sub(1).write_volatile(tag) };
                    }
                    std::thread::yield_now();
                    for s in &held {
                        // SAFETY: as above.
                        let seen = unsafe { s.top().cast::<u64>().sub(1).read_volatile() };
                        assert_eq!(seen, tag, "another owner wrote to {s:?}");
                    }
                    for s in held {
                        if round % 5 == 0 {
                            pool.put(s);
                        } else {
                            cache.put(pool, s);
                        }
                    }
                }
                cache.flush(pool);
            });
        }
    });
    // Every stack ended in the shared pool; each appears once.
    let mut seen = HashSet::new();
    let mut all = Vec::new();
    while pool.stats().free > 0 {
        let s = pool.get().unwrap();
        assert!(seen.insert(s.top() as usize), "stack pooled twice: {s:?}");
        all.push(s);
    }
    assert_eq!(all.len() as u64, pool.stats().stacks_carved);
}

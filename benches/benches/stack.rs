//! gort-stack: cached stack-bounds lookup, the OS probe on the main thread
//! and on a created thread, pooled get+put, a fresh stack, and allocating
//! 100,000 stacks.
//!
//! Run: `cargo bench -p gort-benches --bench stack`

use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{black_box, BatchSize, Criterion};
use gort_stack::{
    count_mappings, guard_strategy, remaining_stack, thread_bounds, thread_stack_bounds, Bounds,
    GuardStrategy, Stack, StackCache, StackConfig, StackPool,
};

/// Keeps `b` alive field by field: black_box on a whole `Bounds` makes LLVM
/// copy its padding byte by byte, which costs more than a cached lookup.
fn consume(b: Bounds) {
    black_box(b.lo());
    black_box(b.hi());
    black_box(b.is_accurate());
}

fn bounds(c: &mut Criterion) {
    let mut g = c.benchmark_group("bounds");
    // The golang/go#68285 cache hit: accurate bounds that contain SP.
    assert!(thread_bounds().is_accurate());
    g.bench_function("cached_lookup", |b| {
        b.iter(|| {
            consume(thread_bounds());
        })
    });
    g.bench_function("remaining_stack", |b| {
        b.iter(|| black_box(remaining_stack()))
    });
    // What a miss costs: the OS probe itself (pthread_getattr_np). criterion
    // runs on the main thread, where glibc reads /proc/self/maps.
    g.bench_function("probe_main_thread", |b| {
        b.iter(|| consume(thread_stack_bounds().unwrap()))
    });

    // The same probe on a thread created by pthread_create (std): a worker
    // thread runs the iterations criterion asks for and times them itself.
    let (work, todo) = mpsc::channel::<u64>();
    let (done, took) = mpsc::channel::<Duration>();
    let worker = std::thread::spawn(move || {
        for iters in todo {
            let start = Instant::now();
            for _ in 0..iters {
                consume(thread_stack_bounds().unwrap());
            }
            done.send(start.elapsed()).unwrap();
        }
    });
    g.bench_function("probe_created_thread", |b| {
        b.iter_custom(|iters| {
            work.send(iters).unwrap();
            took.recv().unwrap()
        })
    });
    g.finish();
    drop(work);
    worker.join().unwrap();
}

fn pool(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool");
    let pool = StackPool::new(StackConfig::new()).unwrap();
    let mut cache = StackCache::new();
    let s = cache.get(&pool).unwrap();
    cache.put(&pool, s);
    // A P's cache: no lock, no atomic, no system call.
    g.bench_function("cache_get_put", |b| {
        b.iter(|| {
            let s = cache.get(&pool).unwrap();
            cache.put(&pool, black_box(s));
        })
    });
    // The shared pool: a lock-free queue and MADV_DONTNEED of the cold part.
    g.bench_function("shared_get_put", |b| {
        b.iter(|| {
            let s = pool.get().unwrap();
            pool.put(black_box(s));
        })
    });
    // A new stack from the current slab: claim a slot, make its guard (with
    // the process's strategy, and with mprotect for comparison; the 2,000
    // stacks a sample holds at most stay far from vm.max_map_count).
    let strategies = [
        ("carve_from_slab", None),
        ("carve_from_slab_mprotect", Some(GuardStrategy::Mprotect)),
    ];
    for (name, strategy) in strategies {
        let config = StackConfig {
            strategy,
            ..StackConfig::new()
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(2_000);
                    left -= n;
                    let pool = StackPool::new(config).unwrap();
                    let mut held = Vec::with_capacity(n as usize);
                    let start = Instant::now();
                    for _ in 0..n {
                        held.push(pool.get().unwrap());
                    }
                    total += start.elapsed();
                }
                total
            })
        });
    }
    // A stack with a mapping of its own: mmap, guard, munmap.
    g.bench_function("fresh_stack_new_drop", |b| {
        b.iter(|| drop(black_box(Stack::new(StackConfig::new()).unwrap())))
    });
    g.finish();
}

fn hundred_thousand(c: &mut Criterion) {
    const N: usize = 100_000;
    let mut g = c.benchmark_group("alloc_100k");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let config = StackConfig::new();
    if guard_strategy() == GuardStrategy::Mprotect {
        // Two mappings per stack: 100,000 stacks do not fit the default
        // vm.max_map_count.
        eprintln!("alloc_100k: skipped, mprotect guards here");
        return;
    }
    let before = count_mappings().unwrap();
    let pool = StackPool::new(config).unwrap();
    let held: Vec<Stack> = (0..N).map(|_| pool.get().unwrap()).collect();
    eprintln!(
        "alloc_100k: {N} stacks of {} KiB + {} KiB guard ({:?}) added {} mappings ({} slabs)",
        config.size / 1024,
        config.guard / 1024,
        guard_strategy(),
        count_mappings().unwrap() as isize - before as isize,
        pool.stats().slabs_mapped,
    );
    drop(held);
    drop(pool);
    g.bench_function("default_stacks", |b| {
        b.iter_batched(
            || StackPool::new(config).unwrap(),
            |pool| {
                let held: Vec<Stack> = (0..N).map(|_| pool.get().unwrap()).collect();
                (pool, held)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn main() {
    // What criterion_group!/criterion_main! expand to, written out so that
    // no undocumented public function is generated.
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bounds(&mut c);
    pool(&mut c);
    hundred_thousand(&mut c);
    c.final_summary();
}

//! Pools of stacks: a shared pool per runtime and a cache per owner (a P).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crossbeam_queue::SegQueue;

use crate::budget::MapBudget;
use crate::guard::GuardStrategy;
use crate::stack::{Counters, Geometry, Slab, MAX_SLAB_BYTES};
use crate::{Stack, StackConfig, StackError};

/// Stacks in the first slab of a pool; each further slab doubles, up to
/// [`MAX_SLAB_BYTES`] of address space.
const FIRST_SLAB_SLOTS: usize = 16;

/// A shared pool of stacks of one geometry, carved from slabs.
///
/// [`get`](Self::get) takes a free stack or carves a new one from the
/// current slab, mapping a new slab when that one is full; each slab is one
/// mapping, twice the size of the previous one. [`put`](Self::put) gives the
/// stack's memory below its warm top back to the OS and keeps the stack for
/// reuse: a pool never unmaps, so after warm-up `get` and `put` make no
/// mapping system call at all. Owners that get and put often (a P) go
/// through a [`StackCache`], which makes no system call either.
///
/// A stack dropped instead of put back gives back its memory, but its slot
/// is not reused; the slab's address space goes back to the OS when its last
/// stack is dropped. Dropping the pool drops its free stacks.
///
/// Must hold: every stack in `free` has this pool's geometry and had its
/// memory below `warm` discarded when it was put.
pub struct StackPool {
    geom: Geometry,
    warm: usize,
    budget: MapBudget,
    max_slots: usize,
    free: SegQueue<Stack>,
    carver: Mutex<Carver>,
    counters: Arc<Counters>,
}

/// The slab stacks are carved from, and the size of the next one.
struct Carver {
    slab: Option<Arc<Slab>>,
    next_slots: usize,
}

/// Counts of the expensive operations behind a pool; see
/// [`StackPool::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Slabs mapped (one mmap each).
    pub slabs_mapped: u64,
    /// Slabs unmapped (one munmap each).
    pub slabs_unmapped: u64,
    /// Stacks carved from slabs (one guard made each).
    pub stacks_carved: u64,
    /// Stacks whose memory was given back (one `MADV_DONTNEED` each).
    pub stacks_trimmed: u64,
    /// Free stacks in the shared pool now.
    pub free: usize,
}

impl StackPool {
    /// A pool for stacks shaped by `config`, within the system's mapping
    /// budget ([`MapBudget::system`]).
    pub fn new(config: StackConfig) -> Result<StackPool, StackError> {
        StackPool::with_budget(config, MapBudget::system())
    }

    /// A pool within an explicit mapping budget.
    pub fn with_budget(config: StackConfig, budget: MapBudget) -> Result<StackPool, StackError> {
        let (geom, warm) = config.geometry()?;
        Ok(StackPool {
            geom,
            warm,
            budget,
            max_slots: (MAX_SLAB_BYTES / geom.stride()).max(1),
            free: SegQueue::new(),
            carver: Mutex::new(Carver {
                slab: None,
                next_slots: FIRST_SLAB_SLOTS,
            }),
            counters: Arc::default(),
        })
    }

    /// A stack: a free one, or a new one carved from a slab.
    pub fn get(&self) -> Result<Stack, StackError> {
        match self.free.pop() {
            Some(s) => Ok(s),
            None => self.carve(),
        }
    }

    /// Takes a stack back: gives its memory below the warm top back to the
    /// OS and keeps it for reuse. A stack of another geometry is dropped.
    pub fn put(&self, stack: Stack) {
        if stack.geometry() != self.geom {
            return;
        }
        stack.discard(self.warm);
        self.free.push(stack);
    }

    /// Carves a new stack, mapping a slab when needed.
    #[cold]
    fn carve(&self) -> Result<Stack, StackError> {
        let mut c = self.carver.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(slab) = &c.slab {
                if let Some(s) = slab.carve(&self.budget)? {
                    return Ok(s);
                }
            }
            let slots = c.next_slots.min(self.max_slots);
            let slab = Slab::map(self.geom, slots, &self.budget, Arc::clone(&self.counters))?;
            c.next_slots = slots.saturating_mul(2).min(self.max_slots);
            c.slab = Some(slab);
        }
    }

    /// Whether `stack` has this pool's geometry.
    pub fn accepts(&self, stack: &Stack) -> bool {
        stack.geometry() == self.geom
    }

    /// Usable bytes of each stack.
    pub fn stack_size(&self) -> usize {
        self.geom.size
    }

    /// Bytes of guard below each stack.
    pub fn guard_size(&self) -> usize {
        self.geom.guard
    }

    /// Bytes at the top of a stack kept resident while it is pooled.
    pub fn warm_size(&self) -> usize {
        self.warm
    }

    /// The guard strategy of this pool's stacks.
    pub fn guard_strategy(&self) -> GuardStrategy {
        self.geom.strategy
    }

    /// The mapping budget allocations are checked against.
    pub fn budget(&self) -> MapBudget {
        self.budget
    }

    /// Counts of the expensive operations so far.
    pub fn stats(&self) -> PoolStats {
        let c = &self.counters;
        PoolStats {
            slabs_mapped: c.slabs_mapped.load(Ordering::Relaxed),
            slabs_unmapped: c.slabs_unmapped.load(Ordering::Relaxed),
            stacks_carved: c.stacks_carved.load(Ordering::Relaxed),
            stacks_trimmed: c.stacks_trimmed.load(Ordering::Relaxed),
            free: self.free.len(),
        }
    }
}

impl std::fmt::Debug for StackPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackPool")
            .field("stack_size", &self.geom.size)
            .field("guard_size", &self.geom.guard)
            .field("warm_size", &self.warm)
            .field("strategy", &self.geom.strategy)
            .field("budget", &self.budget)
            .field("stats", &self.stats())
            .finish()
    }
}

/// An owner's cache of stacks in front of a [`StackPool`] (Go's per-P
/// `stackcache`). A plain value: the owner (a P) holds it and passes the
/// pool in; no locks, no atomics, no system calls on a hit.
///
/// [`get`](Self::get) takes the most recently put stack, refilling half the
/// capacity from the pool when empty. [`put`](Self::put) keeps the stack as
/// it is, warm; when the cache is full, the older half goes to the pool,
/// which gives their memory back to the OS. So each cache holds at most
/// `capacity` untrimmed stacks; [`flush`](Self::flush) (for an owner going
/// idle) hands them all to the pool.
///
/// Must hold: `stacks.len() <= cap` and the vector never reallocates (its
/// capacity is `cap` from the start).
#[derive(Debug)]
pub struct StackCache {
    stacks: Vec<Stack>,
    cap: usize,
}

impl StackCache {
    /// Default capacity: 16 stacks.
    pub const DEFAULT_CAPACITY: usize = 16;

    /// An empty cache of the default capacity.
    pub fn new() -> StackCache {
        StackCache::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// An empty cache holding up to `cap` stacks (at least 2).
    pub fn with_capacity(cap: usize) -> StackCache {
        let cap = cap.max(2);
        StackCache {
            stacks: Vec::with_capacity(cap),
            cap,
        }
    }

    /// A stack from the cache, else from `pool`.
    #[inline]
    pub fn get(&mut self, pool: &StackPool) -> Result<Stack, StackError> {
        match self.stacks.pop() {
            Some(s) => Ok(s),
            None => self.refill(pool),
        }
    }

    #[cold]
    fn refill(&mut self, pool: &StackPool) -> Result<Stack, StackError> {
        while self.stacks.len() < self.cap / 2 {
            match pool.free.pop() {
                Some(s) => self.stacks.push(s),
                None => break,
            }
        }
        match self.stacks.pop() {
            Some(s) => Ok(s),
            None => pool.carve(),
        }
    }

    /// Keeps `stack` for the next [`get`](Self::get). A stack that `pool`
    /// does not accept (another geometry) is dropped.
    #[inline]
    pub fn put(&mut self, pool: &StackPool, stack: Stack) {
        if self.stacks.len() == self.cap {
            self.spill(pool);
        }
        if pool.accepts(&stack) {
            self.stacks.push(stack);
        }
    }

    #[cold]
    fn spill(&mut self, pool: &StackPool) {
        for s in self.stacks.drain(..self.cap / 2) {
            pool.put(s);
        }
    }

    /// Hands every cached stack to `pool`.
    pub fn flush(&mut self, pool: &StackPool) {
        for s in self.stacks.drain(..) {
            pool.put(s);
        }
    }

    /// Stacks in the cache.
    pub fn len(&self) -> usize {
        self.stacks.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.stacks.is_empty()
    }

    /// The most stacks the cache holds.
    pub fn capacity(&self) -> usize {
        self.cap
    }
}

impl Default for StackCache {
    fn default() -> Self {
        StackCache::new()
    }
}

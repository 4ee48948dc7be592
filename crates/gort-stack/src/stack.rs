//! Stacks and the slabs they are carved from.

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::bounds::{self, Bounds};
use crate::budget::{self, MapBudget};
use crate::error::StackError;
use crate::guard::{self, GuardStrategy};
use crate::registry;
use crate::sys;

/// The shape of the stacks to allocate. Sizes are rounded up to whole pages
/// when a pool or stack is made from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackConfig {
    /// Usable bytes of each stack, above its guard. Default 256 KiB of
    /// address space; only touched pages cost memory.
    pub size: usize,
    /// Bytes of guard region below each stack, at least one page. Default
    /// [`DEFAULT_GUARD`](Self::DEFAULT_GUARD): larger than the frames of C
    /// compiled without `-fstack-clash-protection` (Debian's default)
    /// that a program calls directly on a goroutine stack, so the first
    /// store of such a frame faults in the guard instead of landing in a
    /// neighbouring stack. Costs address space and, with installed guards,
    /// one page-table entry per guard page; never memory pages or extra
    /// mappings.
    pub guard: usize,
    /// Bytes at the top of a stack that stay resident when a pool takes the
    /// stack back; the rest is given back to the OS (`MADV_DONTNEED`).
    /// Default 16 KiB. Clamped to `size`.
    pub warm: usize,
    /// The guard strategy; `None` (the default) uses the process's,
    /// [`guard_strategy`](crate::guard_strategy). Asking for
    /// [`GuardStrategy::Installed`] where it does not work is an error.
    pub strategy: Option<GuardStrategy>,
}

impl StackConfig {
    /// Default usable size of a stack: 256 KiB.
    pub const DEFAULT_SIZE: usize = 256 * 1024;
    /// Default guard size: 128 KiB, whichever the strategy.
    ///
    /// Rust code probes every page of a large frame, so any guard catches
    /// it; C built without stack-clash protection moves the stack pointer
    /// by the whole frame and may store at its lowest address first (a big
    /// buffer for a short string), so only a guard larger than the frame
    /// (less what was left of the stack) catches it. 64 KiB let an 88 KiB
    /// frame on a 16 KiB stack write into the next stack down, silently.
    /// 128 KiB covers frames twice the 64 KiB buffers common in C; larger
    /// frames still jump it (C should run on the system stack:
    /// `cgo::call`).
    ///
    /// Cost per stack: installed guards (Linux 6.13+) are page-table
    /// markers, no memory pages and no mapping, but one 8-byte entry per
    /// guard page (256 bytes), and installing them takes time in
    /// proportion: carving a fresh slot took 6 µs against 5 µs with 64 KiB
    /// and 10 µs with 256 KiB (100,000 stacks, same process, loaded
    /// machine); pooled stacks pay nothing again. The mprotect fallback is
    /// a `PROT_NONE` range with no pages and no page-table entries at any
    /// size, and two mappings per stack either way, so it keeps the same
    /// size. Both cost address space: 128 GiB for a million goroutines.
    pub const DEFAULT_GUARD: usize = 128 * 1024;
    /// Default warm part kept resident in a pool: 16 KiB.
    pub const DEFAULT_WARM: usize = 16 * 1024;

    /// The default configuration.
    pub const fn new() -> StackConfig {
        StackConfig {
            size: Self::DEFAULT_SIZE,
            guard: Self::DEFAULT_GUARD,
            warm: Self::DEFAULT_WARM,
            strategy: None,
        }
    }

    /// The same configuration with `size` usable bytes per stack.
    pub const fn with_size(self, size: usize) -> StackConfig {
        StackConfig { size, ..self }
    }

    /// Checks the configuration and rounds it to pages.
    pub(crate) fn geometry(&self) -> Result<(Geometry, usize), StackError> {
        let size =
            sys::round_to_page(self.size).ok_or(StackError::Config("stack size overflows"))?;
        let guard =
            sys::round_to_page(self.guard).ok_or(StackError::Config("guard size overflows"))?;
        if size == 0 {
            return Err(StackError::Config("stack size must not be zero"));
        }
        if guard == 0 {
            return Err(StackError::Config("guard size must not be zero"));
        }
        if size.checked_add(guard).is_none_or(|s| s > MAX_SLAB_BYTES) {
            return Err(StackError::Config(
                "stack size plus guard exceeds the maximum slab size",
            ));
        }
        let strategy = match self.strategy {
            None => guard::guard_strategy(),
            Some(GuardStrategy::Installed)
                if guard::guard_strategy() != GuardStrategy::Installed =>
            {
                return Err(StackError::Config(
                    "installed guards (MADV_GUARD_INSTALL) do not work on this system",
                ))
            }
            Some(s) => s,
        };
        let warm = sys::round_to_page(self.warm.min(size))
            .unwrap_or(size)
            .min(size);
        Ok((
            Geometry {
                size,
                guard,
                strategy,
            },
            warm,
        ))
    }
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig::new()
    }
}

/// Page-rounded sizes and the guard strategy of a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) size: usize,
    pub(crate) guard: usize,
    pub(crate) strategy: GuardStrategy,
}

impl Geometry {
    pub(crate) fn stride(&self) -> usize {
        self.size + self.guard
    }
}

/// The largest slab: address space only, but one slab must fit comfortably
/// in a 32-bit address space.
#[cfg(target_pointer_width = "64")]
pub(crate) const MAX_SLAB_BYTES: usize = 4 << 30;
/// The largest slab: address space only, but one slab must fit comfortably
/// in a 32-bit address space.
#[cfg(not(target_pointer_width = "64"))]
pub(crate) const MAX_SLAB_BYTES: usize = 64 << 20;

/// Counters of the expensive operations behind a pool, shared with its
/// slabs.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) slabs_mapped: AtomicU64,
    pub(crate) slabs_unmapped: AtomicU64,
    pub(crate) stacks_carved: AtomicU64,
    pub(crate) stacks_trimmed: AtomicU64,
}

/// One mapping holding `slots` stacks of the same geometry, each a guard
/// region followed by the stack, at consecutive `stride`s from `base`.
///
/// Must hold:
/// - `[base, base + slots * stride)` is one mapping made by this slab, read
///   and write except for guards, unmapped when the slab drops;
/// - slots below `next` (capped at `slots`) have been carved exactly once
///   each: their guard is made and one [`Stack`] owns the slot; slots from
///   `next` on belong to no one;
/// - `charged` mappings are on the crate's account for this slab and are
///   returned when it drops;
/// - while `token` is set, the registry describes this slab exactly.
pub(crate) struct Slab {
    base: NonNull<u8>,
    slots: usize,
    geom: Geometry,
    next: AtomicUsize,
    charged: AtomicUsize,
    token: Option<registry::Token>,
    counters: Arc<Counters>,
}

// SAFETY: a slab is an address range and counters; its fields are immutable
// or atomic, and the memory it owns is handed out to one Stack per slot.
unsafe impl Send for Slab {}
// SAFETY: as above; shared access only reads immutable fields or updates
// atomics.
unsafe impl Sync for Slab {}

impl Slab {
    /// Maps a slab for `slots` stacks of `geom`, charging one mapping.
    pub(crate) fn map(
        geom: Geometry,
        slots: usize,
        budget: &MapBudget,
        counters: Arc<Counters>,
    ) -> Result<Arc<Slab>, StackError> {
        debug_assert!(slots >= 1 && slots.checked_mul(geom.stride()).is_some());
        let len = slots * geom.stride();
        budget.charge(1)?;
        let base = match sys::map_stack_memory(len) {
            Ok(p) => p,
            Err(errno) => {
                budget::uncharge(1);
                return Err(os_or_limit(budget, Op::Mmap, errno, 1));
            }
        };
        counters.slabs_mapped.fetch_add(1, Ordering::Relaxed);
        let token = registry::register(base as usize, len, geom.stride(), geom.guard);
        Ok(Arc::new(Slab {
            // SAFETY: mmap never returns a null mapping.
            base: unsafe { NonNull::new_unchecked(base) },
            slots,
            geom,
            next: AtomicUsize::new(0),
            charged: AtomicUsize::new(1),
            token,
            counters,
        }))
    }

    /// Carves the next free slot into a stack, making its guard. `Ok(None)`
    /// when the slab is full.
    pub(crate) fn carve(self: &Arc<Self>, budget: &MapBudget) -> Result<Option<Stack>, StackError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if i >= self.slots {
            self.next.store(self.slots, Ordering::Relaxed);
            return Ok(None);
        }
        // SAFETY: `i < slots`, so the slot lies in the mapping.
        let slot = unsafe { self.base.as_ptr().add(i * self.geom.stride()) };
        // An mprotect guard splits the slab's mapping: it costs the guard's
        // mapping and the one of the stack above it.
        let needed = match self.geom.strategy {
            GuardStrategy::Installed => 0,
            GuardStrategy::Mprotect => 2,
        };
        if needed > 0 {
            if let Err(e) = budget.charge(needed) {
                self.give_back(i);
                return Err(e);
            }
        }
        // SAFETY: slot `i` was claimed above, so no one else uses its guard
        // region, which lies in our mapping.
        if let Err(errno) = unsafe { guard::make_guard(self.geom.strategy, slot, self.geom.guard) }
        {
            budget::uncharge(needed);
            self.give_back(i);
            let op = match self.geom.strategy {
                GuardStrategy::Installed => Op::GuardInstall,
                GuardStrategy::Mprotect => Op::Mprotect,
            };
            return Err(os_or_limit(budget, op, errno, needed.max(1)));
        }
        self.charged.fetch_add(needed, Ordering::Relaxed);
        self.counters.stacks_carved.fetch_add(1, Ordering::Relaxed);
        Ok(Some(Stack {
            // SAFETY: inside a non-null mapping.
            slot: unsafe { NonNull::new_unchecked(slot) },
            slab: Arc::clone(self),
        }))
    }

    /// Undoes the claim of slot `i` after a failure, when it is still the
    /// last claimed one; otherwise the slot is lost for the slab's lifetime.
    fn give_back(&self, i: usize) {
        let _ = self
            .next
            .compare_exchange(i + 1, i, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Bytes of the mapping.
    fn len(&self) -> usize {
        self.slots * self.geom.stride()
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        if let Some(t) = self.token.take() {
            registry::unregister(t);
        }
        // SAFETY: the mapping is ours; every Stack carved from it held a
        // reference to this slab, so none is left.
        unsafe { sys::unmap(self.base.as_ptr(), self.len()) };
        budget::uncharge(self.charged.load(Ordering::Relaxed));
        self.counters.slabs_unmapped.fetch_add(1, Ordering::Relaxed);
    }
}

/// The system calls that create mappings or guards.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Mmap,
    Mprotect,
    GuardInstall,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Mmap => "mmap",
            Op::Mprotect => "mprotect",
            Op::GuardInstall => "madvise(MADV_GUARD_INSTALL)",
        }
    }
}

/// The error for a failed system call: the mapping limit when the process
/// is at it (the kernel says ENOMEM both for "no memory" and for "too many
/// mappings"), the call's error otherwise.
fn os_or_limit(budget: &MapBudget, op: Op, errno: i32, needed: usize) -> StackError {
    if errno == libc::ENOMEM && op != Op::GuardInstall {
        let count = budget::recount();
        let system = budget::system_limit().unwrap_or(usize::MAX);
        let limit = budget.limit().min(system);
        // An mprotect of memory we own fails with ENOMEM only for the
        // mapping limit; an mmap also for address space or commit charge.
        if op == Op::Mprotect
            || count.saturating_add(needed) >= limit.saturating_sub(budget.reserved())
        {
            return MapBudget::with_limit(limit)
                .reserve(budget.reserved().min(limit))
                .exceeded(count, needed);
        }
    }
    StackError::Os {
        op: op.name(),
        errno,
    }
}

/// A goroutine stack: `size` bytes of read-write memory above a guard
/// region that faults on access.
///
/// Memory layout, growing down from [`top`](Self::top):
///
/// ```text
/// guard_bottom()      bottom()                         top()
///     | guard (no access) | stack (read-write) ..........|
/// ```
///
/// `top` is page-aligned (so aligned for every ABI). Stacks come from a
/// [`StackPool`](crate::StackPool) (cheap, reused) or from
/// [`Stack::new`] (one mapping of its own). Dropping a stack gives its
/// memory back to the OS; its address space is returned when the last
/// stack of its slab is gone.
///
/// Must hold: `slot` is the start of a slot of `slab` that this stack alone
/// owns; the slot's guard is made; the stack's memory stays mapped while
/// this value lives (the `Arc` keeps the slab).
pub struct Stack {
    slot: NonNull<u8>,
    slab: Arc<Slab>,
}

// SAFETY: a Stack owns its memory exclusively; nothing in it is tied to a
// thread.
unsafe impl Send for Stack {}
// SAFETY: `&Stack` only exposes addresses and sizes.
unsafe impl Sync for Stack {}

impl Stack {
    /// A stack with a slab of its own, charged against the system's mapping
    /// budget.
    pub fn new(config: StackConfig) -> Result<Stack, StackError> {
        let (geom, _) = config.geometry()?;
        let slab = Slab::map(geom, 1, &MapBudget::system(), Arc::default())?;
        Ok(slab
            .carve(&MapBudget::system())?
            .expect("a fresh slab has a free slot"))
    }

    /// One past the highest usable address: where a new stack starts.
    pub fn top(&self) -> *mut u8 {
        // SAFETY: the slot's end is the end of its stride, inside or one
        // past the slab.
        unsafe { self.slot.as_ptr().add(self.slab.geom.stride()) }
    }

    /// The lowest usable address.
    pub fn bottom(&self) -> *mut u8 {
        // SAFETY: inside the slot.
        unsafe { self.slot.as_ptr().add(self.slab.geom.guard) }
    }

    /// The lowest address of the guard region below the stack.
    pub fn guard_bottom(&self) -> *mut u8 {
        self.slot.as_ptr()
    }

    /// Usable bytes.
    pub fn size(&self) -> usize {
        self.slab.geom.size
    }

    /// Bytes of guard region.
    pub fn guard_size(&self) -> usize {
        self.slab.geom.guard
    }

    /// How the guard was made.
    pub fn guard_strategy(&self) -> GuardStrategy {
        self.slab.geom.strategy
    }

    /// The stack's bounds `[bottom, top)`, accurate.
    pub fn bounds(&self) -> Bounds {
        Bounds::new(self.bottom() as usize, self.top() as usize)
    }

    pub(crate) fn geometry(&self) -> Geometry {
        self.slab.geom
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.slab.counters
    }

    /// Gives the memory of `[bottom, top - keep)` back to the OS; it reads
    /// as zeros when touched again. Never touches the guard: installed guard
    /// markers survive `MADV_DONTNEED` anyway, but there is no reason to ask.
    pub(crate) fn discard(&self, keep: usize) {
        let len = self.size() - keep.min(self.size());
        if len == 0 {
            return;
        }
        // SAFETY: `[bottom, bottom + len)` is this stack's own memory, and
        // the caller owns the stack, so nothing runs on it.
        let r = unsafe { libc::madvise(self.bottom().cast(), len, libc::MADV_DONTNEED) };
        debug_assert_eq!(
            r,
            0,
            "madvise(MADV_DONTNEED) failed: errno {}",
            sys::errno()
        );
        self.counters()
            .stacks_trimmed
            .fetch_add(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("guard_bottom", &self.guard_bottom())
            .field("bottom", &self.bottom())
            .field("top", &self.top())
            .field("strategy", &self.guard_strategy())
            .finish()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The slot is not reused before its slab dies; give back its memory
        // now unless the slab (and all of it) goes away with this stack.
        if Arc::strong_count(&self.slab) > 1 {
            self.discard(0);
        }
    }
}

/// Names `stack` as the stack the calling thread runs goroutine `goid` on.
///
/// The scheduler calls this on every switch to a goroutine (and
/// [`clear_running_stack`](crate::clear_running_stack) on every switch back
/// to the thread's own stack). It feeds
/// [`remaining_stack`](crate::remaining_stack) and the overflow handler,
/// which names `goid` in its message.
#[inline(never)]
pub fn set_running_stack(goid: u64, stack: &Stack) {
    let b = stack.bounds();
    bounds::set_running(goid, b.lo(), b.hi(), stack.guard_bottom() as usize);
}

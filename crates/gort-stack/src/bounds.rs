//! Stack bounds: what the OS says about a thread's stack, the per-thread
//! cache that decides when to ask it again (golang/go#68285), and the slot
//! that names the goroutine stack a thread is running on.
//!
//! # Two kinds of stack, one question
//!
//! Code asks "how much stack is left below me?" ([`remaining_stack`]). On an
//! OS thread's own stack (a runtime thread's system stack, a C thread calling
//! back into Rust) the answer comes from the thread's bounds, probed from
//! the OS once and cached per thread. On a goroutine stack the scheduler
//! knows the bounds exactly: it names the running stack in a per-thread slot
//! on every switch ([`set_running_stack`](crate::set_running_stack)), and [`remaining_stack`] prefers
//! that slot whenever SP lies inside it.
//!
//! # Migration
//!
//! Goroutines move between threads at any park. Every function here that
//! touches the thread-local is `#[inline(never)]` and reaches it afresh (the
//! few `#[inline]` ones only call those), so no caller can end up with the
//! address of the thread-local of the thread it ran on before a switch. Callers must
//! not keep what these functions return across a park either: a
//! [`Bounds`] of the *thread* describes the thread the goroutine ran on when
//! it asked, not the one it resumes on. (`BoundsCache` methods take `&self`
//! of a cache the caller holds; a cache kept in a `thread_local!` must be
//! reached through such an accessor, never through a reference kept across
//! a switch.)

use std::cell::Cell;
use std::sync::atomic::{compiler_fence, AtomicU64, AtomicUsize, Ordering};

/// How far below SP an estimate reaches: Go's assumption for a stack it
/// knows nothing about (`callbackUpdateSystemStack`).
pub const ESTIMATE_BELOW: usize = 32 * 1024;
/// How far above SP an estimate reaches.
pub const ESTIMATE_ABOVE: usize = 1024;

/// The most stack a main thread is taken to have. Under `ulimit -s
/// unlimited` glibc reports the main thread's stack as reaching down to the
/// end of the previous mapping, terabytes away; the bound is capped to Go's
/// maximum goroutine stack size (1 GB on 64-bit, 250 MB on 32-bit, here in
/// binary units).
#[cfg(target_pointer_width = "64")]
pub const MAIN_THREAD_STACK_CAP: usize = 1 << 30;
/// The most stack a main thread is taken to have. Under `ulimit -s
/// unlimited` glibc reports the main thread's stack as reaching down to the
/// end of the previous mapping; the bound is capped to Go's maximum
/// goroutine stack size (1 GB on 64-bit, 250 MB on 32-bit, here in binary
/// units).
#[cfg(not(target_pointer_width = "64"))]
pub const MAIN_THREAD_STACK_CAP: usize = 256 << 20;

/// The bounds `[lo, hi)` of a stack, which grows down from `hi`.
///
/// An SP is inside when `lo < sp <= hi` (SP equal to `hi` is an empty
/// stack), the convention of Go's `g.stack`.
///
/// Must hold: `lo <= hi`. `accurate` is true only for bounds that came from
/// the OS or from an allocator that knows them, never for a guess.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bounds {
    lo: usize,
    hi: usize,
    accurate: bool,
}

impl Bounds {
    /// Accurate bounds `[lo, hi)`.
    ///
    /// # Panics
    /// If `lo > hi`.
    pub const fn new(lo: usize, hi: usize) -> Bounds {
        assert!(lo <= hi, "stack bounds with lo > hi");
        Bounds {
            lo,
            hi,
            accurate: true,
        }
    }

    /// The guess used when the OS cannot tell: `[sp - 32 KiB, sp + 1 KiB]`
    /// (saturating at the ends of the address space), marked inaccurate.
    pub const fn estimate_around(sp: usize) -> Bounds {
        Bounds {
            lo: sp.saturating_sub(ESTIMATE_BELOW),
            hi: sp.saturating_add(ESTIMATE_ABOVE),
            accurate: false,
        }
    }

    /// The lowest address of the stack.
    pub const fn lo(&self) -> usize {
        self.lo
    }

    /// One past the highest address of the stack: its top.
    pub const fn hi(&self) -> usize {
        self.hi
    }

    /// `hi - lo`.
    pub const fn size(&self) -> usize {
        self.hi - self.lo
    }

    /// Whether the bounds are known rather than estimated.
    pub const fn is_accurate(&self) -> bool {
        self.accurate
    }

    /// Whether `sp` lies inside: `lo < sp <= hi`.
    pub const fn contains(&self, sp: usize) -> bool {
        self.lo < sp && sp <= self.hi
    }
}

/// The bounds of the calling thread's stack, as the OS reports them, or
/// `None` where it cannot tell. Not cached: see [`thread_bounds`].
///
/// - Linux: `pthread_getattr_np`. On the main thread glibc derives the
///   bounds from `/proc/self/maps` and `RLIMIT_STACK` (tens of µs, growing
///   with the number of mappings); the low bound is capped to
///   [`MAIN_THREAD_STACK_CAP`] below the top.
/// - macOS: `pthread_get_stackaddr_np` and `pthread_get_stacksize_np`
///   (compiled, untested).
/// - FreeBSD: `pthread_attr_get_np` (compiled, untested).
/// - Elsewhere: `None`.
pub fn thread_stack_bounds() -> Option<Bounds> {
    os::thread_stack_bounds()
}

/// Caps the low bound of a main thread's stack `[lo, hi)` to
/// [`MAIN_THREAD_STACK_CAP`] below `hi`.
pub(crate) fn cap_main_thread(lo: usize, hi: usize) -> usize {
    lo.max(hi.saturating_sub(MAIN_THREAD_STACK_CAP))
}

#[cfg(target_os = "linux")]
mod os {
    use super::{cap_main_thread, Bounds, MAIN_THREAD_STACK_CAP};
    use std::mem::MaybeUninit;

    pub(super) fn thread_stack_bounds() -> Option<Bounds> {
        let mut attr = MaybeUninit::<libc::pthread_attr_t>::uninit();
        // SAFETY: pthread_getattr_np initializes `attr` when it returns 0.
        if unsafe { libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) } != 0 {
            return None;
        }
        let mut addr = std::ptr::null_mut();
        let mut size = 0;
        // SAFETY: `attr` was initialized above and is destroyed once, here.
        let r = unsafe {
            let r = libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size);
            libc::pthread_attr_destroy(attr.as_mut_ptr());
            r
        };
        if r != 0 || addr.is_null() || size == 0 {
            return None;
        }
        let lo = addr as usize;
        let hi = lo.checked_add(size)?;
        // Only a main thread's size can be absurd; ask (a system call) only
        // then.
        // SAFETY: getpid and the gettid system call have no preconditions.
        let lo = if size > MAIN_THREAD_STACK_CAP
            && unsafe { libc::syscall(libc::SYS_gettid) == libc::getpid() as libc::c_long }
        {
            cap_main_thread(lo, hi)
        } else {
            lo
        };
        Some(Bounds::new(lo, hi))
    }
}

#[cfg(target_os = "macos")]
mod os {
    use super::{cap_main_thread, Bounds};

    pub(super) fn thread_stack_bounds() -> Option<Bounds> {
        // SAFETY: both calls only read the calling thread's descriptor.
        let (hi, size, main) = unsafe {
            let t = libc::pthread_self();
            (
                libc::pthread_get_stackaddr_np(t) as usize,
                libc::pthread_get_stacksize_np(t),
                libc::pthread_main_np() != 0,
            )
        };
        if hi == 0 || size == 0 {
            return None;
        }
        let lo = hi.checked_sub(size)?;
        let lo = if main { cap_main_thread(lo, hi) } else { lo };
        Some(Bounds::new(lo, hi))
    }
}

#[cfg(target_os = "freebsd")]
mod os {
    use super::{cap_main_thread, Bounds};
    use std::mem::MaybeUninit;

    pub(super) fn thread_stack_bounds() -> Option<Bounds> {
        let mut attr = MaybeUninit::<libc::pthread_attr_t>::uninit();
        // SAFETY: pthread_attr_init initializes `attr` when it returns 0.
        if unsafe { libc::pthread_attr_init(attr.as_mut_ptr()) } != 0 {
            return None;
        }
        let mut addr = std::ptr::null_mut();
        let mut size = 0;
        // SAFETY: `attr` was initialized above and is destroyed once, here.
        let (r, main) = unsafe {
            let mut r = libc::pthread_attr_get_np(libc::pthread_self(), attr.as_mut_ptr());
            if r == 0 {
                r = libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size);
            }
            libc::pthread_attr_destroy(attr.as_mut_ptr());
            (r, libc::pthread_main_np() == 1)
        };
        if r != 0 || addr.is_null() || size == 0 {
            return None;
        }
        let lo = addr as usize;
        let hi = lo.checked_add(size)?;
        let lo = if main { cap_main_thread(lo, hi) } else { lo };
        Some(Bounds::new(lo, hi))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "freebsd")))]
mod os {
    use super::Bounds;

    pub(super) fn thread_stack_bounds() -> Option<Bounds> {
        None
    }
}

/// A source of accurate stack bounds for the calling thread, asked by a
/// [`BoundsCache`] on a miss. `None` means "cannot tell"; an answer must
/// never be a guess.
pub type Probe = fn() -> Option<Bounds>;

/// Bounds of an OS thread's stack, with Go's rules for when to trust them
/// (golang/go#68285, `callbackUpdateSystemStack`):
///
/// - [`update`](Self::update) reuses the cached bounds only when they are
///   accurate and contain SP;
/// - otherwise it sets an estimate around SP ([`Bounds::estimate_around`]),
///   asks the probe, and keeps the probe's answer only when it is accurate
///   and contains SP (C may have switched stacks: a coroutine library, a
///   signal stack); otherwise the estimate stays, marked inaccurate, so the
///   next update probes again;
/// - [`save`](Self::save) and [`restore`](Self::restore) bracket a nested
///   callback, so that an inner callback on another stack gets its own
///   bounds and the outer callback finds its own again.
///
/// It is a plain single-threaded value: hold one per OS thread (in the M, as
/// Go keeps `g0.stack`), or use the calling thread's own through
/// [`thread_bounds`] and friends.
///
/// Must hold: when `accurate`, `[lo, hi)` came from a probe and contained the
/// SP it was probed for; `lo == hi == 0` means empty.
#[derive(Debug)]
pub struct BoundsCache {
    lo: Cell<usize>,
    hi: Cell<usize>,
    accurate: Cell<bool>,
    probes: Cell<u64>,
}

/// Bounds saved by [`BoundsCache::save`], to be given back to
/// [`BoundsCache::restore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SavedBounds {
    lo: usize,
    hi: usize,
    accurate: bool,
}

impl SavedBounds {
    /// True when nothing was cached when these were saved.
    pub fn is_empty(&self) -> bool {
        self.hi == 0
    }
}

impl BoundsCache {
    /// An empty cache: the first update probes.
    pub const fn new() -> BoundsCache {
        BoundsCache {
            lo: Cell::new(0),
            hi: Cell::new(0),
            accurate: Cell::new(false),
            probes: Cell::new(0),
        }
    }

    /// The cached bounds, accurate or not; `None` when empty.
    pub fn get(&self) -> Option<Bounds> {
        let (lo, hi) = (self.lo.get(), self.hi.get());
        (hi != 0).then_some(Bounds {
            lo,
            hi,
            accurate: self.accurate.get(),
        })
    }

    /// The bounds for code running at `sp`, probing with `probe` only when
    /// the cache cannot answer (see the type's rules).
    #[inline]
    pub fn update(&self, sp: usize, probe: Probe) -> Bounds {
        let (lo, hi) = (self.lo.get(), self.hi.get());
        if self.accurate.get() && lo < sp && sp <= hi {
            return Bounds {
                lo,
                hi,
                accurate: true,
            };
        }
        self.miss(sp, probe)
    }

    #[cold]
    #[inline(never)]
    fn miss(&self, sp: usize, probe: Probe) -> Bounds {
        self.probes.set(self.probes.get() + 1);
        let b = match probe() {
            Some(p) if p.accurate && p.contains(sp) => p,
            _ => Bounds::estimate_around(sp),
        };
        self.lo.set(b.lo);
        self.hi.set(b.hi);
        self.accurate.set(b.accurate);
        b
    }

    /// The cached bounds, to be restored after a nested callback.
    pub fn save(&self) -> SavedBounds {
        SavedBounds {
            lo: self.lo.get(),
            hi: self.hi.get(),
            accurate: self.accurate.get(),
        }
    }

    /// Puts back bounds returned by [`save`](Self::save).
    pub fn restore(&self, saved: SavedBounds) {
        self.lo.set(saved.lo);
        self.hi.set(saved.hi);
        self.accurate.set(saved.accurate);
    }

    /// Forgets the bounds (Go's `dropm`): the next update probes.
    pub fn clear(&self) {
        self.restore(SavedBounds {
            lo: 0,
            hi: 0,
            accurate: false,
        });
    }

    /// How many times this cache has called its probe.
    pub fn probes(&self) -> u64 {
        self.probes.get()
    }
}

impl Default for BoundsCache {
    fn default() -> Self {
        BoundsCache::new()
    }
}

/// The goroutine stack a thread runs on, as the scheduler named it.
///
/// Read by the overflow handler, which can interrupt the writer on the same
/// thread: `lo` is zeroed first and written last, with compiler fences
/// between, so a reader that sees a non-zero `lo` sees the fields written
/// with it. (Atomics, not `Cell`s, because the handler's read is formally
/// concurrent with the writer.)
struct RunningSlot {
    guard_lo: AtomicUsize,
    lo: AtomicUsize,
    hi: AtomicUsize,
    goid: AtomicU64,
}

struct ThreadState {
    cache: BoundsCache,
    probe: Cell<Probe>,
    running: RunningSlot,
}

thread_local! {
    // const-initialized and without Drop: no lazy initialization and no
    // destructor registration, so reading it is a plain TLS access, safe in
    // a signal handler.
    static THREAD: ThreadState = const {
        ThreadState {
            cache: BoundsCache::new(),
            probe: Cell::new(thread_stack_bounds),
            running: RunningSlot {
                guard_lo: AtomicUsize::new(0),
                lo: AtomicUsize::new(0),
                hi: AtomicUsize::new(0),
                goid: AtomicU64::new(0),
            },
        }
    };
}

/// The bounds of the calling thread's stack at the current SP, from the
/// thread's [`BoundsCache`] (golang/go#68285 rules; probes with the thread's probe,
/// [`thread_stack_bounds`] unless [`set_thread_probe`] changed it).
///
/// Call it on the thread's own stack: on a goroutine stack the thread's
/// bounds do not contain SP, so the cache would replace them with an
/// estimate around the goroutine's SP (use [`remaining_stack`] there).
#[inline]
pub fn thread_bounds() -> Bounds {
    thread_bounds_at(gort_arch::current_sp())
}

/// [`thread_bounds`] for an explicit SP, e.g. the one a callback saved at
/// its entry.
#[inline]
pub fn thread_bounds_at(sp: usize) -> Bounds {
    // Only `lookup` touches the thread-local, and it is not inlined. It
    // returns two words, which travel in registers (a `Bounds` would go
    // through memory and cost more than the lookup); (0, 0) stands for the
    // estimate around `sp`, since accurate bounds contain SP and so have
    // `hi > 0`.
    match lookup(sp) {
        (0, 0) => Bounds::estimate_around(sp),
        (lo, hi) => Bounds {
            lo,
            hi,
            accurate: true,
        },
    }
}

/// The thread's cache at `sp`: accurate bounds, or (0, 0) for the estimate.
#[inline(never)]
fn lookup(sp: usize) -> (usize, usize) {
    let (lo, hi, accurate) = THREAD.with(|t| {
        let c = &t.cache;
        (c.lo.get(), c.hi.get(), c.accurate.get())
    });
    if accurate && lo < sp && sp <= hi {
        return (lo, hi);
    }
    let b = THREAD.with(|t| t.cache.miss(sp, t.probe.get()));
    if b.accurate {
        (b.lo, b.hi)
    } else {
        (0, 0)
    }
}

/// Saves the calling thread's cached bounds ([`BoundsCache::save`]).
#[inline(never)]
pub fn save_thread_bounds() -> SavedBounds {
    THREAD.with(|t| t.cache.save())
}

/// Restores the calling thread's cached bounds ([`BoundsCache::restore`]).
#[inline(never)]
pub fn restore_thread_bounds(saved: SavedBounds) {
    THREAD.with(|t| t.cache.restore(saved))
}

/// Forgets the calling thread's cached bounds ([`BoundsCache::clear`]).
#[inline(never)]
pub fn clear_thread_bounds() {
    THREAD.with(|t| t.cache.clear())
}

/// Replaces the probe the calling thread's cache asks on a miss and returns
/// the previous one. The default is [`thread_stack_bounds`]; a program that
/// knows more (a coroutine library that can name its stacks) or a test that
/// counts calls may set its own.
#[inline(never)]
pub fn set_thread_probe(probe: Probe) -> Probe {
    THREAD.with(|t| t.probe.replace(probe))
}

/// How many times the calling thread's cache has probed.
#[inline(never)]
pub fn thread_probes() -> u64 {
    THREAD.with(|t| t.cache.probes())
}

/// Names `[lo, hi)` (guard region from `guard_lo`) as the goroutine stack
/// the calling thread runs goroutine `goid` on: the slot behind
/// [`set_running_stack`](crate::set_running_stack).
#[inline(always)]
pub(crate) fn set_running(goid: u64, lo: usize, hi: usize, guard_lo: usize) {
    THREAD.with(|t| {
        let r = &t.running;
        r.lo.store(0, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        r.guard_lo.store(guard_lo, Ordering::Relaxed);
        r.hi.store(hi, Ordering::Relaxed);
        r.goid.store(goid, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        r.lo.store(lo, Ordering::Relaxed);
    })
}

/// Says the calling thread runs on its own stack again.
#[inline(never)]
pub fn clear_running_stack() {
    THREAD.with(|t| t.running.lo.store(0, Ordering::Relaxed))
}

/// The goroutine stack the calling thread runs on, as named by
/// [`set_running_stack`](crate::set_running_stack).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunningStack {
    /// The goroutine's id.
    pub goid: u64,
    /// The stack's bounds (accurate).
    pub bounds: Bounds,
    /// The lowest address of the guard region below the stack.
    pub guard_lo: usize,
}

/// The stack named by [`set_running_stack`](crate::set_running_stack) on the calling thread, if any.
#[inline(never)]
pub fn running_stack() -> Option<RunningStack> {
    THREAD.with(|t| read_running(&t.running))
}

fn read_running(r: &RunningSlot) -> Option<RunningStack> {
    let lo = r.lo.load(Ordering::Relaxed);
    if lo == 0 {
        return None;
    }
    compiler_fence(Ordering::SeqCst);
    Some(RunningStack {
        goid: r.goid.load(Ordering::Relaxed),
        bounds: Bounds::new(lo, r.hi.load(Ordering::Relaxed)),
        guard_lo: r.guard_lo.load(Ordering::Relaxed),
    })
}

/// The running-stack slot, for the overflow handler. Async-signal-safe: a
/// const-initialized thread-local without destructor, atomics only.
pub(crate) fn running_stack_in_handler() -> Option<RunningStack> {
    THREAD.try_with(|t| read_running(&t.running)).ok().flatten()
}

/// Bytes of stack left below the current SP, or `None` when no accurate
/// bounds contain SP.
///
/// On a goroutine stack named with [`set_running_stack`](crate::set_running_stack), the distance to
/// its bottom. Otherwise the distance to the bottom of the thread's bounds,
/// from the thread's cache (probing on a miss, as [`thread_bounds`]); when
/// only an estimate is known, `None`: the caller decides how careful to be
/// (an estimate is [`Bounds::estimate_around`]).
#[inline(never)]
pub fn remaining_stack() -> Option<usize> {
    let sp = gort_arch::current_sp();
    THREAD.with(|t| {
        if let Some(r) = read_running(&t.running) {
            if r.bounds.contains(sp) {
                return Some(sp - r.bounds.lo());
            }
        }
        let b = t.cache.update(sp, t.probe.get());
        b.is_accurate().then(|| sp - b.lo())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never() -> Option<Bounds> {
        panic!("probed on a hit")
    }
    fn fails() -> Option<Bounds> {
        None
    }
    fn region_a() -> Option<Bounds> {
        Some(Bounds::new(0x10_0000, 0x20_0000))
    }
    fn guesses() -> Option<Bounds> {
        Some(Bounds::estimate_around(0x18_0000))
    }

    #[test]
    fn hit_needs_accurate_bounds_containing_sp() {
        let c = BoundsCache::new();
        assert_eq!(c.get(), None);
        assert_eq!(c.update(0x18_0000, region_a), region_a().unwrap());
        assert_eq!(c.probes(), 1);
        // Inside, including SP == hi: no probe.
        assert_eq!(c.update(0x20_0000, never), region_a().unwrap());
        assert_eq!(c.update(0x10_0001, never), region_a().unwrap());
        // SP == lo is outside: probe again.
        let b = c.update(0x10_0000, fails);
        assert_eq!(b, Bounds::estimate_around(0x10_0000));
        assert!(!b.is_accurate());
        assert_eq!(c.probes(), 2);
    }

    #[test]
    fn estimate_is_never_reused_even_when_it_contains_sp() {
        let c = BoundsCache::new();
        let e = c.update(0x50_0000, fails);
        assert_eq!((e.lo(), e.hi()), (0x50_0000 - 32 * 1024, 0x50_0000 + 1024));
        assert!(!e.is_accurate());
        c.update(0x50_0000 - 8, fails);
        assert_eq!(c.probes(), 2, "an inaccurate estimate must be re-probed");
    }

    #[test]
    fn probe_answer_not_containing_sp_or_inaccurate_is_dropped() {
        let c = BoundsCache::new();
        assert_eq!(
            c.update(0x90_0000, region_a),
            Bounds::estimate_around(0x90_0000)
        );
        assert_eq!(
            c.update(0x18_0000, guesses),
            Bounds::estimate_around(0x18_0000)
        );
        assert!(!c.get().unwrap().is_accurate());
    }

    #[test]
    fn save_restore_and_clear() {
        let c = BoundsCache::new();
        c.update(0x18_0000, region_a);
        let outer = c.save();
        c.update(0x90_0000, fails);
        assert_eq!(c.get(), Some(Bounds::estimate_around(0x90_0000)));
        c.restore(outer);
        assert_eq!(c.update(0x18_0000, never), region_a().unwrap());
        c.clear();
        assert_eq!(c.get(), None);
    }

    #[test]
    fn estimate_saturates_at_the_ends_of_the_address_space() {
        let low = Bounds::estimate_around(100);
        assert_eq!((low.lo(), low.hi()), (0, 1124));
        let high = Bounds::estimate_around(usize::MAX - 10);
        assert_eq!(high.hi(), usize::MAX);
    }

    #[test]
    fn main_thread_cap() {
        let hi = (usize::MAX / 2) & !0xfff;
        assert_eq!(cap_main_thread(hi - (8 << 20), hi), hi - (8 << 20));
        assert_eq!(cap_main_thread(0x1000, hi), hi - MAIN_THREAD_STACK_CAP);
    }
}

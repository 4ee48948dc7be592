//! Accounting of memory mappings against `vm.max_map_count`.
//!
//! Linux refuses to create a mapping (mmap, or an mprotect that splits one)
//! once a process holds `vm.max_map_count` of them; with mprotect guards each
//! stack costs two. Running into the limit inside mmap gives ENOMEM, and
//! running into it elsewhere in the process (a thread stack, malloc) can
//! crash code that never expected it. So a pool checks before it maps: the
//! mappings this crate holds are counted exactly (process-wide), the others
//! are estimated from the last count of /proc/self/maps, and the file is
//! read again only when the estimate comes near the limit (reading it costs
//! about 0.2 µs per mapping).

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{MapLimit, StackError};
use crate::sys;

/// Mappings this crate holds in the process, across all pools.
static OURS: AtomicUsize = AtomicUsize::new(0);
/// Mappings held by the rest of the process at the last count;
/// `usize::MAX` before the first.
static OTHERS: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Mappings this crate charged or returned since the last count: how far
/// the estimate may have drifted (a slab the kernel merged with its
/// neighbour was charged one mapping but added none).
static CHANGED: AtomicUsize = AtomicUsize::new(0);

/// How many memory mappings stack allocation may bring the process to.
///
/// An allocation that needs `n` more mappings is admitted only while
/// `count + n + reserve <= limit`, where `count` is the process's mapping
/// count; otherwise it fails with [`StackError::MapLimit`]. The reserve is
/// left for the rest of the process (thread stacks, malloc arenas, dlopen).
///
/// Installed guards need one mapping per slab of many stacks, so only the
/// mprotect strategy ever comes near a real limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapBudget {
    limit: usize,
    reserve: usize,
}

impl MapBudget {
    /// The system's limit, read from `/proc/sys/vm/max_map_count`
    /// (`usize::MAX` where that file does not exist: no limit known), with
    /// the default reserve: 1/64 of the limit, at least 64 and at most 1024
    /// mappings (1023 for the default limit of 65530).
    pub fn system() -> MapBudget {
        MapBudget::with_limit(system_limit().unwrap_or(usize::MAX))
    }

    /// A budget with an explicit `limit` and the default reserve; for tests
    /// and for programs that want to stop well before the system's limit.
    pub fn with_limit(limit: usize) -> MapBudget {
        let reserve = if limit == usize::MAX {
            0
        } else {
            (limit / 64).clamp(64, 1024).min(limit / 2)
        };
        MapBudget { limit, reserve }
    }

    /// The same budget with `reserve` mappings left for the rest of the
    /// process.
    pub fn reserve(self, reserve: usize) -> MapBudget {
        MapBudget { reserve, ..self }
    }

    /// The limit mappings are counted against.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Mappings left for the rest of the process.
    pub fn reserved(&self) -> usize {
        self.reserve
    }

    /// Charges `needed` mappings to this crate's account if the process
    /// stays within the budget; the caller either creates them or calls
    /// [`uncharge`] with the same number.
    ///
    /// The estimate is checked against /proc/self/maps when it reaches the
    /// limit, and on the way there: once it is within a margin of the limit
    /// (1/64 of it, at least 32), again whenever this crate has charged or
    /// returned half a margin of mappings since the last count. So it can
    /// only overshoot by what the rest of the process maps meanwhile, which
    /// the reserve absorbs.
    pub(crate) fn charge(&self, needed: usize) -> Result<(), StackError> {
        if self.limit == usize::MAX {
            OURS.fetch_add(needed, Ordering::Relaxed);
            return Ok(());
        }
        let threshold = self.limit - self.reserve.min(self.limit);
        let margin = (self.limit / 64).max(32);
        let ours = OURS.load(Ordering::Relaxed);
        let estimate = match OTHERS.load(Ordering::Relaxed) {
            usize::MAX => usize::MAX,
            others => others.saturating_add(ours).saturating_add(needed),
        };
        let near = estimate.saturating_add(margin) > threshold;
        let stale = CHANGED.load(Ordering::Relaxed) >= margin / 2;
        let estimate = if estimate > threshold || (near && stale) {
            recount().saturating_add(needed)
        } else {
            estimate
        };
        if estimate <= threshold {
            OURS.fetch_add(needed, Ordering::Relaxed);
            CHANGED.fetch_add(needed, Ordering::Relaxed);
            Ok(())
        } else {
            Err(self.exceeded(estimate - needed, needed))
        }
    }

    /// The error for a process holding `count` mappings that needs `needed`
    /// more.
    pub(crate) fn exceeded(&self, count: usize, needed: usize) -> StackError {
        StackError::MapLimit(MapLimit {
            count,
            limit: self.limit,
            reserve: self.reserve,
            needed,
        })
    }
}

impl Default for MapBudget {
    fn default() -> Self {
        MapBudget::system()
    }
}

/// Returns mappings charged with [`MapBudget::charge`].
pub(crate) fn uncharge(n: usize) {
    OURS.fetch_sub(n, Ordering::Relaxed);
    CHANGED.fetch_add(n, Ordering::Relaxed);
}

/// Counts the process's mappings, updates the estimate of the others', and
/// returns the count (or the estimate when /proc is unreadable).
pub(crate) fn recount() -> usize {
    let ours = OURS.load(Ordering::Relaxed);
    match sys::count_mappings() {
        Ok(count) => {
            OTHERS.store(count.saturating_sub(ours), Ordering::Relaxed);
            CHANGED.store(0, Ordering::Relaxed);
            count
        }
        Err(_) => {
            let others = match OTHERS.load(Ordering::Relaxed) {
                usize::MAX => 0,
                n => n,
            };
            OTHERS.store(others, Ordering::Relaxed);
            others + ours
        }
    }
}

/// `vm.max_map_count`, where the system has it; read from
/// `/proc/sys/vm/max_map_count` once per process.
pub fn system_limit() -> Option<usize> {
    // 0: not read yet; usize::MAX: no such file.
    static LIMIT: AtomicUsize = AtomicUsize::new(0);
    let l = match LIMIT.load(Ordering::Relaxed) {
        0 => {
            let l = sys::read_max_map_count().unwrap_or(usize::MAX).max(1);
            LIMIT.store(l, Ordering::Relaxed);
            l
        }
        l => l,
    };
    (l != usize::MAX).then_some(l)
}

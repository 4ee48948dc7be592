//! Caches of dead Gs and task cells, per P and global (Go's `gfget`,
//! `gfput`).
//!
//! A goroutine that exits leaves its G (with its stack) on its P's free
//! list, up to 64; past that, 32 move to the global list under one lock
//! acquisition. A spawn takes from its P's list, refilled 32 at a time.
//! Task cells (go.rs: closure, join state and result in one 128-byte
//! block) are cached the same way, so a program that spawns and joins
//! makes no allocator call and takes no lock in the steady state: the
//! joiner's P gets back the cells its spawns took.
//!
//! Cells are plain global-allocator blocks of `CELL_LAYOUT`, so a cell
//! freed on another runtime, or with no P at hand, goes to the allocator.
//! The Sched gives every cached cell back when it is dropped.

use crate::current::current_m_of;
use crate::p::POwned;
use crate::sched::Sched;

/// Dead Gs a P keeps before moving a batch to the global free list, and
/// the batch size both ways (Go's gfput/gfget use 64 and 32).
pub(crate) const GFREE_LOCAL_MAX: usize = 64;

pub(crate) const GFREE_BATCH: usize = 32;

/// The blocks of the task-cell cache: every goroutine made by `go` whose
/// closure and result are small takes one (go.rs). They are plain
/// global-allocator blocks of this layout, so any of them may be freed
/// with `dealloc` and any P may keep them.
pub(crate) const CELL_LAYOUT: std::alloc::Layout =
    match std::alloc::Layout::from_size_align(128, 16) {
        Ok(l) => l,
        Err(_) => panic!("cell layout"),
    };

/// Free cells a P keeps before moving a batch to the global list, and the
/// batch size both ways (as for dead Gs).
pub(crate) const CELLS_LOCAL_MAX: usize = 64;

pub(crate) const CELLS_BATCH: usize = 32;

impl Sched {
    /// A `CELL_LAYOUT` block for a task cell: from the current P's cache
    /// (refilled from the global list 32 at a time), else from the global
    /// allocator. No allocation, no lock in the steady state of a program
    /// that spawns and joins: the joiner's P gets back the cells its spawns
    /// took. Null if the allocator fails.
    pub(crate) fn cell_alloc(&self) -> *mut u8 {
        if let Some(owned) = self.current_p_owned() {
            if owned.cells.is_empty() {
                let mut l = self.lock();
                let n = l.cells.len().min(CELLS_BATCH);
                let at = l.cells.len() - n;
                owned.cells.extend(l.cells.drain(at..));
            }
            if let Some(c) = owned.cells.pop() {
                return c;
            }
        }
        // SAFETY: CELL_LAYOUT has a non-zero size.
        unsafe { std::alloc::alloc(CELL_LAYOUT) }
    }

    /// Gives back a block from `cell_alloc` (of any runtime: they are all
    /// global-allocator blocks of `CELL_LAYOUT`).
    ///
    /// # Safety
    /// `cell` is a `CELL_LAYOUT` block from the global allocator, not used
    /// again by the caller.
    pub(crate) unsafe fn cell_free(&self, cell: *mut u8) {
        if let Some(owned) = self.current_p_owned() {
            owned.cells.push(cell);
            if owned.cells.len() >= CELLS_LOCAL_MAX {
                let at = owned.cells.len() - CELLS_BATCH;
                self.lock().cells.extend(owned.cells.drain(at..));
            }
            return;
        }
        // SAFETY: the caller's contract.
        unsafe { std::alloc::dealloc(cell, CELL_LAYOUT) }
    }

    /// The caches of the P held by this thread's M, when this thread is an
    /// M of this runtime holding one (not in a syscall).
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn current_p_owned(&self) -> Option<&mut POwned> {
        let m = current_m_of(self);
        if m.is_null() {
            return None;
        }
        let p = self.held_p(m);
        if p.is_null() {
            return None;
        }
        // SAFETY: our M holds p; the reference is used only within the
        // caller, on this thread, without a switch in between.
        Some(unsafe { (*p).owned() })
    }
}

impl Drop for Sched {
    fn drop(&mut self) {
        // Every M has stopped: the caches of free task cells go back to
        // the allocator.
        let l = self.lock.get_mut().unwrap_or_else(|e| e.into_inner());
        let pstore = self.pstore.get_mut().unwrap_or_else(|e| e.into_inner());
        let per_p = pstore
            .iter_mut()
            .flat_map(|p| std::mem::take(&mut p.owned.get_mut().cells));
        for cell in std::mem::take(&mut l.cells).into_iter().chain(per_p) {
            // SAFETY: cached cells are unused CELL_LAYOUT blocks of the
            // global allocator.
            unsafe { std::alloc::dealloc(cell, CELL_LAYOUT) };
        }
    }
}

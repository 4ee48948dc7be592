//! Goroutine stacks for gort: mmap'd stacks with guard regions that cost no
//! mappings, per-owner pools, the stack-overflow handler, and the bounds of
//! OS thread stacks with Go's cache rules (golang/go#68285).
//!
//! - [`Stack`]: usable memory above a guard region. From a [`StackPool`]
//!   (shared, one per runtime) through a [`StackCache`] (one per P), or
//!   standalone with [`Stack::new`].
//! - Guards: [`GuardStrategy::Installed`] (`MADV_GUARD_INSTALL`, Linux
//!   6.13+: no mapping per guard, so a million stacks fit under the default
//!   `vm.max_map_count`) or [`GuardStrategy::Mprotect`] (two mappings per
//!   stack), chosen once per process by a self-test ([`guard_strategy`]).
//! - [`MapBudget`]: allocation stops with [`StackError::MapLimit`], a message
//!   naming `vm.max_map_count`, before the process runs out of mappings.
//! - [`overflow::install`]: a SIGSEGV/SIGBUS handler that reports
//!   `fatal error: gort: goroutine stack overflow (goroutine N, stack [lo, hi), S bytes)`
//!   and aborts, and chains every other fault to the previous handler.
//! - [`bounds`]: [`thread_stack_bounds`], the per-thread [`BoundsCache`],
//!   [`remaining_stack`], and the running-stack slot the scheduler sets on
//!   every switch ([`set_running_stack`]).
//!
//! See docs/stack.md in the repository for the design and its invariants.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod bounds;
mod budget;
mod error;
mod guard;
pub mod overflow;
mod pool;
mod registry;
mod stack;
mod sys;

pub use bounds::{
    clear_running_stack, remaining_stack, restore_thread_bounds, running_stack, save_thread_bounds,
    thread_bounds, thread_bounds_at, thread_probes, thread_stack_bounds, Bounds, BoundsCache,
    RunningStack, SavedBounds,
};
pub use budget::{system_limit as max_map_count, MapBudget};
pub use error::{MapLimit, StackError};
pub use guard::{guard_strategy, GuardStrategy};
pub use pool::{PoolStats, StackCache, StackPool};
pub use stack::{set_running_stack, Stack, StackConfig};

/// The number of memory mappings the process holds now (lines of
/// `/proc/self/maps`), for reports and tests.
pub fn count_mappings() -> std::io::Result<usize> {
    sys::count_mappings()
}

// The README's example is compiled and run as a doctest, so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

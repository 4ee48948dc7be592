//! Why a stack could not be allocated: [`StackError`] and the mapping
//! budget's [`MapLimit`]. A room of their own so that the allocators
//! (stack.rs, budget.rs, pool.rs) and the overflow handler all name them
//! without naming each other.

use std::fmt;
use std::io;

/// Why a stack could not be allocated: the process is at its mapping
/// budget. Displayed as a message that names `vm.max_map_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapLimit {
    /// Mappings the process held when the allocation was refused.
    pub count: usize,
    /// The limit the allocation was checked against.
    pub limit: usize,
    /// Mappings kept free for the rest of the process.
    pub reserve: usize,
    /// Mappings the allocation needed.
    pub needed: usize,
}

impl fmt::Display for MapLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot allocate a goroutine stack: the process has {} memory mappings, \
             the limit is {} (sysctl vm.max_map_count), {} are kept for the rest of \
             the process and the stack needs {} more; raise vm.max_map_count \
             (e.g. `sysctl -w vm.max_map_count={}`) or run fewer goroutines at once",
            self.count,
            self.limit,
            self.reserve,
            self.needed,
            self.limit.saturating_mul(2).max(262_144),
        )
    }
}

/// Why a stack could not be allocated.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StackError {
    /// The process is at its mapping budget (`vm.max_map_count`).
    MapLimit(MapLimit),
    /// A system call failed.
    Os {
        /// The call.
        op: &'static str,
        /// Its errno.
        errno: i32,
    },
    /// The configuration cannot be honored.
    Config(&'static str),
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackError::MapLimit(m) => m.fmt(f),
            StackError::Os { op, errno } => write!(
                f,
                "cannot allocate a goroutine stack: {op} failed: {}",
                io::Error::from_raw_os_error(*errno)
            ),
            StackError::Config(what) => write!(f, "bad stack configuration: {what}"),
        }
    }
}

impl std::error::Error for StackError {}

//! The M/P/G scheduler after Go's proc.go (in progress: see docs/sched.md).
//!
//! Built so far: the P-local run queue ([`runq`]).

#![deny(unsafe_op_in_unsafe_fn)]

pub mod runq;
mod sync;

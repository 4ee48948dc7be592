//! The M/P/G scheduler after Go's proc.go. Filled by the gort-sched issue.

#![deny(unsafe_op_in_unsafe_fn)]

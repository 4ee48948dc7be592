//! The syscall and C bridge: cgo::call and cgo::callback with Go's rules (seeds 000, 001, 002). Filled by the gort-cgo issue.

#![deny(unsafe_op_in_unsafe_fn)]

//! Goroutine stacks: mmap'd stacks with guard pages, per-owner pools, the stack-overflow handler and OS stack-bound probes (seed 002). Filled by the gort-stack issue.

#![deny(unsafe_op_in_unsafe_fn)]

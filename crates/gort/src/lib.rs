//! gort: Go's runtime core in Rust. The facade crate that re-exports the public API; filled as the layers land.

#![deny(unsafe_op_in_unsafe_fn)]

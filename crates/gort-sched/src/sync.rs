//! Atomics used by the scheduler's lock-free parts: std's normally, loom's
//! when built with `--cfg loom` so that the models in `runq` explore every
//! interleaving.

#[cfg(loom)]
pub(crate) use loom::sync::atomic;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic;

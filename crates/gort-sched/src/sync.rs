//! Atomics used by the scheduler's lock-free parts: std's normally, loom's
//! when built with `--cfg loom` so that the models in `runq` explore every
//! interleaving.

#[cfg(loom)]
pub(crate) use loom::sync::atomic;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic;

/// Lets other threads run (loom's, so that a model that waits can make
/// progress).
#[cfg(loom)]
pub(crate) fn yield_now() {
    loom::thread::yield_now();
}

/// Lets other threads run.
#[cfg(not(loom))]
pub(crate) fn yield_now() {
    std::thread::yield_now();
}

//! What can go wrong running a runtime: [`Error`].

use std::fmt;

/// What can go wrong running a runtime.
#[derive(Debug)]
pub enum Error {
    /// Every goroutine was blocked and nothing could wake one (Go's "all
    /// goroutines are asleep - deadlock!"). `goroutines` lists each live
    /// goroutine with its state and wait reason.
    Deadlock {
        /// One line per goroutine: id, state, wait reason.
        goroutines: String,
    },
    /// A bad setting (procs 0, an unparsable `GORT_PROCS`, a stack size
    /// too small).
    Config(String),
    /// The system refused a resource (threads, stack memory, mappings).
    Resource(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Deadlock { goroutines } => {
                write!(f, "all goroutines are asleep - deadlock!\n\n{goroutines}")
            }
            Error::Config(msg) => write!(f, "gort configuration: {msg}"),
            Error::Resource(msg) => write!(f, "gort resource: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

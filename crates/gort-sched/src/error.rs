//! What can go wrong running a runtime: [`Error`], and [`ConfigError`] for
//! a setting that was refused.
//!
//! Each variant keeps its cause as a value, not a string, so a caller can
//! tell the map limit from an mmap failure, or read back the refused
//! setting, and `source()` walks the chain as `std::error::Error` users
//! expect. `#[non_exhaustive]`: new causes (the poller's, for one) can be
//! added without breaking matches.

use std::fmt;

/// What can go wrong running a runtime.
///
/// Matches need a wildcard arm (`#[non_exhaustive]`):
///
/// ```compile_fail
/// fn kind(e: &gort_sched::Error) -> &str {
///     match e {
///         gort_sched::Error::Deadlock { .. } => "deadlock",
///         gort_sched::Error::Config(_) => "config",
///         gort_sched::Error::Stack(_) => "stack",
///         gort_sched::Error::Thread { .. } => "thread",
///     }
/// }
/// ```
///
/// ```
/// use std::error::Error as _;
/// let e = gort_sched::Runtime::builder().procs(0).build().unwrap_err();
/// let gort_sched::Error::Config(c) = &e else { panic!("{e}") };
/// assert_eq!((c.setting(), c.value(), c.expected()), ("procs", "0", "at least 1"));
/// assert!(e.source().is_some());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Every goroutine was blocked and nothing could wake one (Go's "all
    /// goroutines are asleep - deadlock!"). `goroutines` lists each live
    /// goroutine with its state and wait reason.
    Deadlock {
        /// One line per goroutine: id, state, wait reason.
        goroutines: String,
    },
    /// A setting was refused (procs 0, an unparsable `GORT_PROCS`, a stack
    /// size too small): which one, the value, and the rule.
    Config(ConfigError),
    /// A goroutine stack (or the stack overflow handler) could not be had:
    /// the process is at its mapping limit
    /// ([`StackError::MapLimit`](gort_stack::StackError::MapLimit), with
    /// the count and the limit), or a system call failed.
    Stack(gort_stack::StackError),
    /// The system refused a thread the runtime needs.
    Thread {
        /// Which thread ("sysmon", ...).
        what: &'static str,
        /// The error from `std::thread::Builder::spawn`.
        source: std::io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Deadlock { goroutines } => {
                write!(f, "all goroutines are asleep - deadlock!\n\n{goroutines}")
            }
            Error::Config(c) => write!(f, "gort configuration: {c}"),
            Error::Stack(e) => write!(f, "gort: {e}"),
            Error::Thread { what, source } => {
                write!(f, "gort: cannot start the {what} thread: {source}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Deadlock { .. } => None,
            Error::Config(c) => Some(c),
            Error::Stack(e) => Some(e),
            Error::Thread { source, .. } => Some(source),
        }
    }
}

impl From<gort_stack::StackError> for Error {
    fn from(e: gort_stack::StackError) -> Error {
        Error::Stack(e)
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e)
    }
}

/// A refused setting: its name, the value given, and what it must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    setting: &'static str,
    value: String,
    expected: String,
}

impl ConfigError {
    pub(crate) fn new(
        setting: &'static str,
        value: impl fmt::Display,
        expected: impl fmt::Display,
    ) -> Self {
        ConfigError {
            setting,
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }

    /// The setting: "procs", "stack_size", "GORT_PROCS", "set_procs".
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// The value that was refused, as given.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// What the value must be.
    pub fn expected(&self) -> &str {
        &self.expected
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} must be {}, got {}",
            self.setting, self.expected, self.value
        )
    }
}

impl std::error::Error for ConfigError {}

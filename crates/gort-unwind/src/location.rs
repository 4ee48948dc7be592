//! [`Location`]: where a panic was raised.

use std::fmt;

/// Where a panic was raised: file, line and column, as std's hook reports
/// them.
///
/// The file name is `'static`: std hands the panic hook a borrowed location,
/// so the hook interns each distinct file name once (a program has a
/// bounded number of them) and a `Location` is then a plain `Copy` value
/// that costs no allocation per panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    file: &'static str,
    line: u32,
    column: u32,
}

impl Location {
    /// A location from its parts.
    pub const fn new(file: &'static str, line: u32, column: u32) -> Location {
        Location { file, line, column }
    }

    /// The location of the caller (through `#[track_caller]`), as
    /// [`std::panic::Location::caller`].
    #[track_caller]
    pub fn caller() -> Location {
        Location::from(std::panic::Location::caller())
    }

    /// The source file.
    pub const fn file(&self) -> &'static str {
        self.file
    }

    /// The line, from 1.
    pub const fn line(&self) -> u32 {
        self.line
    }

    /// The column, from 1.
    pub const fn column(&self) -> u32 {
        self.column
    }
}

impl fmt::Display for Location {
    /// `file:line:column`, as std prints locations.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

impl From<&'static std::panic::Location<'static>> for Location {
    fn from(l: &'static std::panic::Location<'static>) -> Location {
        Location::new(l.file(), l.line(), l.column())
    }
}

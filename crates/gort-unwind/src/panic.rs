//! [`Panic`], an owned panic, and [`Location`], where it was raised.

use std::any::Any;
use std::fmt;

use crate::{fast, state};

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

impl From<&'static std::panic::Location<'static>> for Location {
    fn from(l: &'static std::panic::Location<'static>) -> Location {
        Location::new(l.file(), l.line(), l.column())
    }
}

impl fmt::Display for Location {
    /// `file:line:column`, as std prints locations.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// An owned panic: what a boundary catch, [`recover`](crate::recover) or a
/// resume point hands back instead of letting the panic unwind further.
///
/// It holds the payload (the value given to `panic!` or
/// `std::panic::panic_any`), the location where the panic was raised when
/// gort-unwind's panic hook saw it, and a goroutine id slot that the
/// scheduler fills in. [`Panic::resume`] raises it again.
///
/// `Display` reads like std's report of a panic, without the thread name:
///
/// ```text
/// panicked at src/main.rs:4:5:
/// boom
/// ```
///
/// or `goroutine 7 panicked at ...` when the goroutine is known, or just the
/// message when the location is not known. A payload that is neither `&str`
/// nor `String` prints as `Box<dyn Any>`, as std prints it.
pub struct Panic {
    payload: Box<dyn Any + Send + 'static>,
    location: Option<Location>,
    goroutine: Option<u64>,
}

impl Panic {
    /// A panic with this payload, no location and no goroutine.
    ///
    /// A payload that is itself a `Panic` (raised with `panic_any(panic)`)
    /// is unwrapped rather than nested.
    pub fn new(payload: Box<dyn Any + Send + 'static>) -> Panic {
        match payload.downcast::<Panic>() {
            Ok(inner) => *inner,
            Err(payload) => Panic {
                payload,
                location: None,
                goroutine: None,
            },
        }
    }

    /// A panic with this payload and location.
    pub fn with_location(payload: Box<dyn Any + Send + 'static>, location: Location) -> Panic {
        let mut p = Panic::new(payload);
        p.location = Some(location);
        p
    }

    /// Converts a payload that a `catch_unwind` on this thread just caught:
    /// the location is the one the panic hook recorded for it.
    pub(crate) fn caught(payload: Box<dyn Any + Send + 'static>) -> Panic {
        let location = state::take_location();
        let mut p = Panic::new(payload);
        if p.location.is_none() {
            p.location = location;
        }
        p
    }

    /// The payload.
    pub fn payload(&self) -> &(dyn Any + Send + 'static) {
        &*self.payload
    }

    /// The payload, giving up the panic (for `std::panic::resume_unwind` or
    /// code that expects std's form).
    pub fn into_payload(self) -> Box<dyn Any + Send + 'static> {
        self.payload
    }

    /// The message, when the payload is a `&'static str` or a `String` (as
    /// for every `panic!` with a message).
    pub fn message(&self) -> Option<&str> {
        if let Some(s) = self.payload.downcast_ref::<&'static str>() {
            Some(s)
        } else {
            self.payload.downcast_ref::<String>().map(String::as_str)
        }
    }

    /// Where the panic was raised, when known: known when gort-unwind's hook
    /// was installed and saw the panic (see the crate docs for when it is
    /// not).
    pub fn location(&self) -> Option<Location> {
        self.location
    }

    /// The goroutine that panicked, when the scheduler has set it.
    pub fn goroutine(&self) -> Option<u64> {
        self.goroutine
    }

    /// Records the goroutine that panicked (the scheduler calls this at a
    /// goroutine's entry).
    pub fn set_goroutine(&mut self, id: Option<u64>) {
        self.goroutine = id;
    }

    /// Raises the panic again, from here: the panic hook does not run again
    /// (the panic was reported, or kept quiet, when first raised), and the
    /// next catch gets this panic's location back.
    ///
    /// When the nearest catch is a [`recover`](crate::recover) and no frame
    /// between here and it would run anything while unwinding (no value
    /// with a destructor live, no `catch_unwind` or `defer!` pending), the
    /// panic goes straight to that `recover`, without the platform
    /// unwinder: the common shape `recover(|| cgo::call(..))` costs one
    /// unwind instead of two. Otherwise it is raised with
    /// [`std::panic::resume_unwind`], and destructors and catches between
    /// see it as usual. See docs/unwind.md ("Resuming without the
    /// unwinder").
    // Never inlined: the fast path's frame walk expects this function's
    // frame right above its own.
    #[inline(never)]
    pub fn resume(self) -> ! {
        if let Some(scope) = fast::innermost_scope() {
            fast::count_jump();
            // SAFETY: the scope was found above this frame on this stack,
            // with nothing between that the unwinder would run; `self`
            // moves into the call, so this frame owns nothing.
            unsafe { fast::jump(scope, self) }
        }
        state::set_location(self.location);
        std::panic::resume_unwind(self.payload)
    }
}

impl fmt::Display for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.message().unwrap_or("Box<dyn Any>");
        if let Some(g) = self.goroutine {
            write!(f, "goroutine {g} ")?;
        }
        match self.location {
            Some(loc) => write!(f, "panicked at {loc}:\n{message}"),
            None if self.goroutine.is_some() => write!(f, "panicked:\n{message}"),
            None => f.write_str(message),
        }
    }
}

impl fmt::Debug for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Panic");
        match self.message() {
            Some(m) => d.field("message", &m),
            None => d.field("payload", &format_args!("Box<dyn Any>")),
        };
        d.field("location", &self.location)
            .field("goroutine", &self.goroutine)
            .finish()
    }
}

impl std::error::Error for Panic {}

//! [`Panic`], an owned panic.

use std::any::Any;
use std::fmt;

use crate::location::Location;

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
    pub(crate) payload: Box<dyn Any + Send + 'static>,
    pub(crate) location: Option<Location>,
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

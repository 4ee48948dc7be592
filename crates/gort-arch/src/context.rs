//! `Context`: a suspended execution, as the switch hands it over.
//!
//! Its own module so that the backends (`x86_64.rs`, `aarch64.rs`,
//! `x86.rs`) and `trace.rs` can name it without importing the crate root,
//! which imports them.

/// A suspended execution context: the stack pointer at which [`switch`](crate::switch) (or
/// [`init`](crate::init)) left the context's saved registers.
///
/// Must hold: a non-empty `Context` points into a live stack whose saved
/// state was written by [`switch`](crate::switch) or [`init`](crate::init) and has not been resumed
/// since. There is exactly one `Context` per suspended execution: `switch`
/// consumes the one it resumes and hands the one it suspends to the resumed
/// side, and a `Context` is neither `Clone` nor `Copy`. Dropping one
/// abandons that execution without running anything on its stack.
#[repr(transparent)]
#[derive(Debug, PartialEq, Eq)]
pub struct Context {
    /// The saved stack pointer; `init` and `switch` (in lib.rs) make
    /// contexts from it and read it.
    pub(crate) sp: usize,
}

impl Context {
    /// A placeholder that holds no context; [`switch`](crate::switch) fills it in.
    #[inline]
    pub const fn empty() -> Self {
        Context { sp: 0 }
    }

    /// True for a placeholder that holds no context.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.sp == 0
    }

    /// The saved stack pointer (0 when empty). Useful to check that a
    /// suspended context's stack lies inside its allocation, or to walk it.
    #[inline]
    pub const fn stack_pointer(&self) -> usize {
        self.sp
    }

    /// The raw stack pointer, giving up ownership (for storing a context in
    /// an atomic or passing it through C). Rebuild it with [`Context::from_raw`].
    #[inline]
    pub fn into_raw(self) -> usize {
        self.sp
    }

    /// Rebuilds a context from [`Context::into_raw`].
    ///
    /// # Safety
    ///
    /// `sp` must come from `into_raw` of a context that has not been rebuilt
    /// since (or be 0, which gives an empty context).
    #[inline]
    pub unsafe fn from_raw(sp: usize) -> Context {
        Context { sp }
    }

    /// Takes the context out, leaving an empty one in its place.
    #[inline]
    pub fn take(&mut self) -> Context {
        std::mem::take(self)
    }
}

impl Default for Context {
    fn default() -> Self {
        Context::empty()
    }
}

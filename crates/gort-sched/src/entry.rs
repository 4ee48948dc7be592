//! What a goroutine runs: [`Entry`], a type-erased function without a box
//! of its own (Go's `funcval`).
//!
//! A goroutine made by `go` costs one allocation, its task cell (go.rs):
//! the closure, the join state and the result in one block. The G's entry
//! points into that cell with a table of two functions (run, drop), so
//! nothing else is boxed. The main goroutine's closure is boxed
//! (`Entry::boxed`): it runs once per `run`.
//!
//! Rejected: `Box<dyn FnOnce()>` per goroutine (a second allocation and a
//! second cache miss on every spawn), and a generic G (Gs are reused for
//! goroutines of any type, from per-P free lists).

/// What a goroutine runs, type-erased without a box of its own (Go's
/// funcval): a pointer and the functions that run or drop it. `go` points
/// it at the goroutine's task cell, so a goroutine costs one allocation.
///
/// Must hold: `data` is valid for `vtable`'s functions, and exactly one of
/// them is called, once (`call` consumes the entry; `Drop` drops it).
pub(crate) struct Entry {
    pub(crate) data: *mut (),
    pub(crate) vtable: &'static EntryVTable,
}

pub(crate) struct EntryVTable {
    /// Runs and consumes `data`.
    pub(crate) run: unsafe fn(*mut ()),
    /// Drops `data` without running it.
    pub(crate) drop: unsafe fn(*mut ()),
}

// SAFETY: an Entry is made only from `Send` closures (`boxed`) or task
// cells of `Send` closures and results (`task_entry`).
unsafe impl Send for Entry {}

impl Entry {
    /// A boxed closure (the main goroutine's).
    pub(crate) fn boxed<F: FnOnce() + Send + 'static>(f: F) -> Entry {
        unsafe fn run<F: FnOnce()>(data: *mut ()) {
            // SAFETY: data is the Box<F> made below, consumed once.
            let f = unsafe { Box::from_raw(data.cast::<F>()) };
            f();
        }
        unsafe fn drop<F>(data: *mut ()) {
            // SAFETY: as above.
            std::mem::drop(unsafe { Box::from_raw(data.cast::<F>()) });
        }
        Entry {
            data: Box::into_raw(Box::new(f)).cast(),
            vtable: &EntryVTable {
                run: run::<F>,
                drop: drop::<F>,
            },
        }
    }

    /// Runs the goroutine's function (on the goroutine's stack).
    pub(crate) fn call(self) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the data is valid for its vtable; `this` is not dropped,
        // so this is the one call.
        unsafe { (this.vtable.run)(this.data) }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // SAFETY: not called (call forgets self): the one drop.
        unsafe { (self.vtable.drop)(self.data) }
    }
}

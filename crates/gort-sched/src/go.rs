//! Starting goroutines and waiting for them: [`go`], [`GoBuilder`],
//! [`JoinHandle`].
//!
//! A goroutine made by `go` costs one block, its task cell (tokio's task
//! cell): a header (reference count, destructor), the join state with the
//! result, then the closure. Cells of up to 128 bytes come from the P's
//! cache (gfree.rs); larger ones from the allocator. The cell is shared by
//! the goroutine's entry (entry.rs) and the `JoinHandle`, with a
//! hand-rolled count of two; the handle sees it as `TaskPrefix<T>`,
//! without the closure's type.
//!
//! Joining: the join state is one word: RUNNING, DONE, or a waiter. A
//! goroutine that joins parks with its G pointer tagged into the word (no
//! waiter allocation); a plain thread registers a `ThreadWaiter`. The
//! finishing goroutine swaps in DONE and wakes whoever was there.
//!
//! Panics: a spawned goroutine's body runs in a quiet `gort_unwind::catch`:
//! its panic goes to the JoinHandle, and is printed once only if the
//! handle is dropped without joining. The `Shutdown` unwinding is never
//! reported.

use crate::current::{current, current_g, running_g, sched_of};
use crate::entry::{Entry, EntryVTable};
use crate::error::Error;
use crate::g::{GRef, G};
use crate::gfree::CELL_LAYOUT;
use crate::note::Note;
use crate::park::{park, ready, yield_now};
use crate::runtime::{Shutdown, MIN_STACK_SIZE};
use crate::sched::Sched;
use crate::status::WaitReason;
use gort_unwind::Panic;
use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

const RUNNING: usize = 0;

const DONE: usize = 1;

/// Low bits of a join state holding a parked joining goroutine's G pointer
/// (Gs are 8-aligned). A joining plain thread's `Arc<ThreadWaiter>`
/// pointer has these bits clear.
const JOINER_G: usize = 2;

/// A plain thread waiting in `join`.
struct ThreadWaiter {
    note: Note,
}

/// The join state of a goroutine, shared by the goroutine and its handle.
///
/// Must hold: `result` is written once, by the goroutine, before `state`
/// becomes DONE (release); after that it is taken only by the one joiner
/// and otherwise only read (to report a panic nobody will join). `state`
/// is RUNNING, DONE, the G of a parked joining goroutine tagged with
/// JOINER_G (set by the joiner's park on g0, cleared by `complete`'s swap
/// or the joiner's unregister), or an `Arc<ThreadWaiter>` pointer owned by
/// `state` until someone swaps or CASes it out.
struct JoinInner<T> {
    state: AtomicUsize,
    result: UnsafeCell<Option<Result<T, Panic>>>,
    /// The JoinHandle was dropped without joining.
    detached: AtomicBool,
    /// The panic of a detached goroutine has been printed.
    reported: AtomicBool,
}

// SAFETY: see the invariants: the result moves from one thread to another
// through the release/acquire pair on `state`.
unsafe impl<T: Send> Sync for JoinInner<T> {}

// SAFETY: as above.
unsafe impl<T: Send> Send for JoinInner<T> {}

impl<T> JoinInner<T> {
    fn new() -> JoinInner<T> {
        JoinInner {
            state: AtomicUsize::new(RUNNING),
            result: UnsafeCell::new(None),
            detached: AtomicBool::new(false),
            reported: AtomicBool::new(false),
        }
    }

    fn complete(&self, r: Result<T, Panic>) {
        // SAFETY: only the goroutine writes, once, before publishing DONE.
        unsafe { *self.result.get() = Some(r) };
        let prev = self.state.swap(DONE, Ordering::SeqCst);
        if self.detached.load(Ordering::SeqCst) {
            self.report_unjoined_panic();
        }
        if prev > DONE {
            if prev & JOINER_G != 0 {
                let g = (prev & !JOINER_G) as *mut G;
                // SAFETY: a joiner publishes its own live G; Gs live as
                // long as their runtime, which runs this goroutine.
                ready(GRef(unsafe { std::ptr::NonNull::new_unchecked(g) }));
            } else {
                // SAFETY: a registered thread waiter's Arc is owned by
                // `state`; the swap moved it to us.
                let waiter = unsafe { Arc::from_raw(prev as *const ThreadWaiter) };
                waiter.note.wake();
            }
        }
    }

    /// Prints the panic of a goroutine whose handle was dropped (once):
    /// nobody else will see it. Cancellation at shutdown is not a panic.
    fn report_unjoined_panic(&self) {
        if self.reported.swap(true, Ordering::AcqRel) {
            return;
        }
        // SAFETY: DONE was published (SeqCst) before either caller got
        // here, and the result is only read, never taken, once detached.
        if let Some(Err(panic)) = unsafe { &*self.result.get() } {
            if !panic.payload().is::<Shutdown>() {
                eprintln!("{panic}");
            }
        }
    }

    fn take(&self) -> Result<T, Panic> {
        // SAFETY: DONE was observed with acquire; we are the only joiner.
        unsafe { (*self.result.get()).take() }.expect("join result taken twice")
    }

    /// Publishes `word` (a tagged G or a thread waiter) as the joiner;
    /// false if the goroutine already finished.
    fn register(&self, word: usize) -> bool {
        self.state
            .compare_exchange(RUNNING, word, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Takes a registered joiner back out (one that is being unwound);
    /// true if it was still there.
    fn unregister(&self, word: usize) -> bool {
        self.state
            .compare_exchange(word, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// The head of every task cell (see `Task`).
///
/// Must hold: `refs` counts the live references (the goroutine's entry
/// and the JoinHandle: 2 at first); whoever takes it to zero calls
/// `destroy` once, after an acquire fence, and nobody touches the cell
/// after.
#[repr(C)]
struct TaskHeader {
    refs: AtomicUsize,
    /// Drops the cell's contents and frees it.
    destroy: unsafe fn(NonNull<TaskHeader>),
}

/// A goroutine's task cell: its closure, then its join state and result
/// (tokio's task cell). One block per goroutine, and for small closures
/// and results a block from the P's cache of task cells
/// (`Sched::cell_alloc`): no allocator call in the steady state.
///
/// Must hold: `f` is taken once, by the goroutine, before anything else of
/// the goroutine runs; nobody else touches it. `header` and `join` come
/// first (repr(C)), so `TaskPrefix<T>` finds the join state without
/// knowing `F`.
#[repr(C)]
struct Task<F, T> {
    header: TaskHeader,
    join: JoinInner<T>,
    f: UnsafeCell<Option<F>>,
}

/// The part of a `Task<F, T>` the JoinHandle sees: the same first two
/// fields at the same offsets.
#[repr(C)]
struct TaskPrefix<T> {
    header: TaskHeader,
    join: JoinInner<T>,
}

/// Whether a task cell of `layout` fits a cached cell.
fn fits_cell(layout: Layout) -> bool {
    layout.size() <= CELL_LAYOUT.size() && layout.align() <= CELL_LAYOUT.align()
}

/// A new task cell for `f`, with two references.
fn new_task<F, T>(sched: &Sched, f: F) -> NonNull<Task<F, T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    unsafe fn destroy<F, T>(h: NonNull<TaskHeader>) {
        let task = h.cast::<Task<F, T>>().as_ptr();
        // SAFETY: the last reference is gone (TaskHeader's invariants):
        // the cell is ours to drop and free, with the layout it was made
        // with.
        unsafe {
            std::ptr::drop_in_place(task);
            free_cell(task.cast(), Layout::new::<Task<F, T>>());
        }
    }
    let layout = Layout::new::<Task<F, T>>();
    let block = if fits_cell(layout) {
        sched.cell_alloc()
    } else {
        // SAFETY: the layout is not zero-sized (it holds a header).
        unsafe { std::alloc::alloc(layout) }
    };
    let Some(block) = NonNull::new(block.cast::<Task<F, T>>()) else {
        std::alloc::handle_alloc_error(layout)
    };
    // SAFETY: a fresh block big and aligned enough for Task<F, T>.
    unsafe {
        block.as_ptr().write(Task {
            header: TaskHeader {
                refs: AtomicUsize::new(2),
                destroy: destroy::<F, T>,
            },
            join: JoinInner::new(),
            f: UnsafeCell::new(Some(f)),
        });
    }
    block
}

/// Frees a task cell's block.
///
/// # Safety
/// `block` was made by `new_task` with `layout` and is not used again.
unsafe fn free_cell(block: *mut u8, layout: Layout) {
    if !fits_cell(layout) {
        // SAFETY: allocated with this layout by the global allocator.
        unsafe { std::alloc::dealloc(block, layout) };
        return;
    }
    let g = current_g();
    if g.is_null() {
        // SAFETY: a CELL_LAYOUT block of the global allocator.
        unsafe { std::alloc::dealloc(block, CELL_LAYOUT) };
    } else {
        // SAFETY: as above; the running goroutine's runtime keeps it.
        unsafe { sched_of(g).cell_free(block) };
    }
}

/// Drops one reference to a task cell.
///
/// # Safety
/// The caller owns one of the cell's references and does not use it again.
unsafe fn release_task(h: NonNull<TaskHeader>) {
    // SAFETY: the caller's reference keeps the cell alive until here.
    let refs = unsafe { &(*h.as_ptr()).refs };
    if refs.fetch_sub(1, Ordering::Release) == 1 {
        std::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: the last reference: nobody else touches the cell.
        unsafe { ((*h.as_ptr()).destroy)(h) };
    }
}

/// The entry of a goroutine made by `go`: runs the closure from the task
/// cell and completes the join state with its value or panic. Holds one
/// of the cell's references.
fn task_entry<F, T>(task: NonNull<Task<F, T>>) -> Entry
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    unsafe fn run<F, T>(data: *mut ())
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let h = NonNull::new(data.cast::<TaskHeader>()).expect("task entry");
        let task = h.cast::<Task<F, T>>().as_ptr();
        // SAFETY: the entry's reference keeps the cell alive; the goroutine
        // is the only one to touch `f`, once.
        let f = unsafe { (*(*task).f.get()).take() }.expect("goroutine closure taken twice");
        // Quiet: the panic goes to the JoinHandle; it is printed only if
        // nobody can join it any more (see report_unjoined_panic).
        let r = gort_unwind::catch(true, f).map_err(|mut p| {
            p.set_goroutine(current().map(GRef::id));
            p
        });
        // SAFETY: as above; then the entry's reference is given up.
        unsafe {
            (*task).join.complete(r);
            release_task(h);
        }
    }
    unsafe fn drop(data: *mut ()) {
        // SAFETY: the entry's reference, given up without running.
        unsafe { release_task(NonNull::new_unchecked(data.cast())) };
    }
    Entry {
        data: task.as_ptr().cast(),
        vtable: &EntryVTable {
            run: run::<F, T>,
            drop,
        },
    }
}

/// An owned permission to wait for a goroutine and take its result, like
/// `std::thread::JoinHandle`.
///
/// Must hold: `task` is a reference to a `Task<_, T>` cell (released on
/// drop).
pub struct JoinHandle<T> {
    task: NonNull<TaskHeader>,
    id: u64,
    _result: PhantomData<T>,
}

// SAFETY: the handle only reaches the join state, which moves a `T: Send`
// result between threads through its release/acquire protocol.
unsafe impl<T: Send> Send for JoinHandle<T> {}

// SAFETY: as above; shared access is atomics only (`is_finished`, `id`).
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("goroutine", &self.id)
            .finish()
    }
}

impl<T> JoinHandle<T> {
    fn inner(&self) -> &JoinInner<T> {
        // SAFETY: our reference keeps the cell alive; its first fields are
        // laid out as TaskPrefix<T> (Task's invariants).
        unsafe { &(*self.task.as_ptr().cast::<TaskPrefix<T>>()).join }
    }

    /// The goroutine's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the goroutine has finished.
    pub fn is_finished(&self) -> bool {
        self.inner().state.load(Ordering::Acquire) == DONE
    }

    /// Waits for the goroutine and returns its value, or its panic (with
    /// message, location and goroutine id). From a goroutine this parks only
    /// the goroutine; from a plain thread it blocks the thread.
    pub fn join(self) -> Result<T, Panic> {
        let inner = self.inner();
        if inner.state.load(Ordering::Acquire) == DONE {
            return inner.take();
        }
        match current() {
            Some(g) => self.join_goroutine(g),
            None => self.join_thread(),
        }
    }

    fn join_goroutine(&self, g: GRef) -> Result<T, Panic> {
        let inner = self.inner();
        let word = g.as_ptr() as usize | JOINER_G;
        struct Unregister<'a, T>(&'a JoinInner<T>, usize);
        impl<T> Drop for Unregister<'_, T> {
            fn drop(&mut self) {
                self.0.unregister(self.1);
            }
        }
        let _guard = Unregister(inner, word);
        // `register` publishes this goroutine with its CAS and touches
        // nothing of this goroutine's stack after it: once published, the
        // goroutine can be readied and run elsewhere while g0 is still in
        // here.
        park(WaitReason::Join, |_| inner.register(word));
        loop {
            if inner.state.load(Ordering::Acquire) == DONE {
                return inner.take();
            }
            // Readied by a stray `ready`: wait without parking again (an
            // unlock function could not safely re-check our registration).
            yield_now();
        }
    }

    fn join_thread(&self) -> Result<T, Panic> {
        let inner = self.inner();
        let waiter = Arc::new(ThreadWaiter { note: Note::new() });
        let raw = Arc::into_raw(waiter.clone()) as usize;
        if inner.register(raw) {
            waiter.note.sleep();
        } else {
            // SAFETY: not published: take our clone back.
            drop(unsafe { Arc::from_raw(raw as *const ThreadWaiter) });
        }
        inner.take()
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        // A joined handle was consumed by `join` (its result taken); only
        // an unjoined one gets here with a result possibly pending.
        let inner = self.inner();
        inner.detached.store(true, Ordering::SeqCst);
        if inner.state.load(Ordering::SeqCst) == DONE {
            inner.report_unjoined_panic();
        }
        // SAFETY: the handle's reference, not used again.
        unsafe { release_task(self.task) };
    }
}

/// Configures a goroutine before spawning it, like `std::thread::Builder`.
#[derive(Clone, Debug, Default)]
pub struct GoBuilder {
    name: Option<String>,
    stack_size: Option<usize>,
    locked: bool,
}

impl GoBuilder {
    /// A builder with the runtime's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// A name, shown in dumps.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// This goroutine's stack size in bytes.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Wires the goroutine to an OS thread from its first instruction to
    /// its end (as if its first line were
    /// [`lock_os_thread`](crate::lock_os_thread), never undone): it never
    /// migrates, so `thread_local!` values, `!Send` values and code that
    /// caches a thread-local's address are safe anywhere in it.
    ///
    /// The cost is Go's for a locked goroutine: its thread runs nothing
    /// else, so every such goroutine holds a thread (and its kernel stack)
    /// for its life, and every park hands the P off to another thread and
    /// back (a wake of the locked thread, some microseconds, instead of a
    /// switch of tens of nanoseconds). The thread ends with the goroutine,
    /// running the thread-locals' destructors, so no value set by it is
    /// seen by another goroutine. For the few goroutines that need
    /// thread-local libraries, not for many small ones.
    pub fn locked(mut self, locked: bool) -> Self {
        self.locked = locked;
        self
    }

    /// Spawns `f` as a goroutine of the current runtime.
    ///
    /// # Panics
    /// Outside a goroutine; or if no stack can be had (see the error).
    pub fn spawn<T: Send + 'static>(
        self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<JoinHandle<T>, Error> {
        let g = running_g("go");
        crate::park::preempt_check(g);
        let sched = sched_of(g);
        if let Some(size) = self.stack_size {
            if size < MIN_STACK_SIZE {
                return Err(crate::error::ConfigError::new(
                    "stack_size",
                    size,
                    format!("at least {MIN_STACK_SIZE} bytes"),
                )
                .into());
            }
        }
        if self.locked {
            // Locked before any of `f` runs: `f` sees one thread only. The
            // lock is never undone, so the thread ends with the goroutine.
            let f = move || {
                crate::lockosthread::lock_os_thread();
                f()
            };
            spawn_task(sched, f, self.stack_size)
        } else {
            spawn_task(sched, f, self.stack_size)
        }
    }
}

/// Makes `f`'s task and spawns its goroutine.
fn spawn_task<T: Send + 'static>(
    sched: &Sched,
    f: impl FnOnce() -> T + Send + 'static,
    stack_size: Option<usize>,
) -> Result<JoinHandle<T>, Error> {
    // Before the task's cell is had (maybe under the scheduler lock): in a
    // forked child the error then names the spawn (fork.rs).
    crate::fork::check(sched.fork_gen, "a goroutine was spawned");
    let task = new_task(sched, f);
    // Made first, so that a failed spawn releases its reference too.
    let mut handle = JoinHandle {
        task: task.cast(),
        id: 0,
        _result: PhantomData,
    };
    let gref = sched.spawn(task_entry(task), stack_size, false)?;
    handle.id = gref.id();
    Ok(handle)
}

/// Spawns `f` as a new goroutine of the current runtime (Go's `go f()`).
///
/// # Panics
/// Outside a goroutine, or when no stack memory can be had.
pub fn go<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    match GoBuilder::new().spawn(f) {
        Ok(h) => h,
        Err(e) => panic!("gort::go: {e}"),
    }
}

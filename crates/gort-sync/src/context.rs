//! Go's `context` package, for cancellation: a tree of contexts where
//! cancelling one cancels its whole subtree, never its parent, and each
//! context's [`done`](Context::done) receiver disconnects when it is
//! cancelled (usable in `select!` and from plain threads).
//!
//! # The design
//!
//! A context is an `Arc`'d node: a channel whose only sender the node
//! keeps (cancelling drops it, so every receiver, present and future, sees
//! the channel disconnected: Go's closed `Done()` channel), the error, the
//! deadline, and its live children (weak references, keyed by an id).
//! `cancel` sets the error and drops the sender under the node's lock,
//! then cancels the children it took out of the node with a work list,
//! not recursion, so a 10,000-deep chain cannot overflow a goroutine's
//! stack. A cancelled child leaves its parent's map at once; a child
//! dropped uncancelled (every clone and its canceller gone) leaves it in
//! its `Drop`, so a long-lived parent does not accumulate dead children.
//! A deadline is a runtime timer (gort-sched's `Timer`) whose firing
//! starts a goroutine that cancels the node (Go's AfterFunc); the timer
//! holds the node weakly and is stopped by any earlier cancellation.
//!
//! Locks: a node's lock is never held while another node's is taken.
//!
//! Rejected: Go's `Value` (Rust code passes values explicitly; a typed
//! map on every context costs every user), and cancelling on the
//! canceller's drop (Go cancels explicitly; `let (ctx, _) = ...` would
//! cancel at once).

use crate::chan::{self, Receiver, Sender};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

/// Why a context was cancelled. Go's `context.Canceled` and
/// `context.DeadlineExceeded`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContextError {
    /// [`Canceller::cancel`] was called (on it or an ancestor).
    Canceled,
    /// Its deadline (or an ancestor's) passed.
    DeadlineExceeded,
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContextError::Canceled => "context canceled",
            ContextError::DeadlineExceeded => "context deadline exceeded",
        })
    }
}

impl std::error::Error for ContextError {}

/// A cancellation scope: cheap to clone (clones are the same context),
/// `Send + Sync`. Made by [`background`], [`with_cancel`],
/// [`with_timeout`] and [`with_deadline`].
///
/// ```
/// use std::time::Duration;
/// use gort_sync::context;
///
/// gort_sched::run(|| {
///     let (ctx, cancel) = context::with_cancel(&context::background());
///     let worker = {
///         let ctx = ctx.clone();
///         gort_sched::go(move || {
///             let (_tx, work) = gort_sync::chan::bounded::<u32>(0);
///             gort_sync::select! {
///                 recv(work) -> _ => unreachable!(),
///                 recv(ctx.done()) -> _ => ctx.err(),
///             }
///         })
///     };
///     let (child, _c) = context::with_timeout(&ctx, Duration::from_secs(60));
///     cancel.cancel();
///     assert_eq!(worker.join().unwrap(), Some(context::ContextError::Canceled));
///     assert_eq!(child.err(), Some(context::ContextError::Canceled), "flows down");
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Context {
    node: Arc<Node>,
}

/// Cancels its [`Context`] (and every context derived from it). Dropping
/// it does not cancel, as in Go: call [`cancel`](Canceller::cancel) when
/// the work is done to release the context's resources (its timer, its
/// place in its parent) early.
#[must_use = "a context's resources are released when it is cancelled: keep the canceller and call cancel()"]
pub struct Canceller {
    node: Arc<Node>,
}

/// Must hold: `err` is set once and never cleared; `tx` is `Some` iff
/// `err` is `None`; a node is in its parent's `children` only while both
/// are uncancelled and the node lives.
struct Node {
    id: u64,
    parent: Option<Arc<Node>>,
    done: Receiver<()>,
    deadline: Option<Instant>,
    state: Mutex<State>,
}

struct State {
    tx: Option<Sender<()>>,
    err: Option<ContextError>,
    children: HashMap<u64, Weak<Node>>,
    timer: Option<gort_sched::park::Timer>,
}

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Node {
    fn new(parent: Option<Arc<Node>>, deadline: Option<Instant>) -> Arc<Node> {
        let (tx, done) = chan::bounded(0);
        Arc::new(Node {
            id: next_id(),
            parent,
            done,
            deadline,
            state: Mutex::new(State {
                tx: Some(tx),
                err: None,
                children: HashMap::new(),
                timer: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Cancels this node and its subtree (iteratively).
    fn cancel(self: &Arc<Self>, err: ContextError) {
        let mut work = vec![self.clone()];
        while let Some(n) = work.pop() {
            let (tx, children, timer) = {
                let mut s = n.lock();
                if s.err.is_some() {
                    continue;
                }
                s.err = Some(err);
                (s.tx.take(), std::mem::take(&mut s.children), s.timer.take())
            };
            drop(tx); // disconnects `done`: every receiver wakes
            drop(timer); // stops it
            work.extend(children.into_values().filter_map(|w| w.upgrade()));
            if let Some(p) = &n.parent {
                p.lock().children.remove(&n.id);
            }
        }
    }
}

impl Drop for Node {
    /// Leaves the parent's map; if this held the parent's last reference,
    /// the parent goes too, in a loop (a 10,000-deep chain dropped at once
    /// must not recurse 10,000 frames deep).
    fn drop(&mut self) {
        let mut id = self.id;
        let mut parent = self.parent.take();
        while let Some(p) = parent {
            p.lock().children.remove(&id);
            match Arc::try_unwrap(p) {
                Ok(mut node) => {
                    id = node.id;
                    parent = node.parent.take();
                    // `node` drops here with no parent: no recursion.
                }
                Err(_) => break,
            }
        }
    }
}

/// The root context: never cancelled, no deadline. Go's
/// `context.Background()`.
pub fn background() -> Context {
    static BACKGROUND: OnceLock<Context> = OnceLock::new();
    BACKGROUND
        .get_or_init(|| Context {
            node: Node::new(None, None),
        })
        .clone()
}

/// A child of `parent` that is cancelled by the returned canceller or when
/// `parent` is. Go's `context.WithCancel`.
pub fn with_cancel(parent: &Context) -> (Context, Canceller) {
    child(parent, parent.node.deadline)
}

/// A child of `parent` that is also cancelled, with
/// [`ContextError::DeadlineExceeded`], at `deadline` (or earlier, if the
/// parent's deadline is earlier). Go's `context.WithDeadline`.
pub fn with_deadline(parent: &Context, deadline: Instant) -> (Context, Canceller) {
    if parent.node.deadline.is_some_and(|d| d <= deadline) {
        // The parent's deadline comes first: it cancels us in time.
        return with_cancel(parent);
    }
    let (ctx, canceller) = child(parent, Some(deadline));
    if deadline <= Instant::now() {
        ctx.node.cancel(ContextError::DeadlineExceeded);
        return (ctx, canceller);
    }
    let weak = Arc::downgrade(&ctx.node);
    let timer = gort_sched::park::Timer::new(move |fire| {
        let weak = weak.clone();
        // Go's AfterFunc: cancelling a subtree may take a while; the
        // timer's thread must not wait for it.
        fire.go(move || {
            if let Some(n) = weak.upgrade() {
                n.cancel(ContextError::DeadlineExceeded);
            }
        });
        false
    });
    timer.reset(deadline, None);
    let mut s = ctx.node.lock();
    if s.err.is_none() {
        s.timer = Some(timer);
    }
    drop(s);
    (ctx, canceller)
}

/// [`with_deadline`] at `timeout` from now; `Duration::MAX` (or any
/// timeout past the representable future) never expires. Go's
/// `context.WithTimeout`.
pub fn with_timeout(parent: &Context, timeout: Duration) -> (Context, Canceller) {
    match Instant::now().checked_add(timeout) {
        Some(deadline) => with_deadline(parent, deadline),
        None => with_cancel(parent),
    }
}

fn child(parent: &Context, deadline: Option<Instant>) -> (Context, Canceller) {
    let node = Node::new(Some(parent.node.clone()), deadline);
    let inherited = {
        let mut p = parent.node.lock();
        match p.err {
            Some(e) => Some(e),
            None => {
                p.children.insert(node.id, Arc::downgrade(&node));
                None
            }
        }
    };
    if let Some(e) = inherited {
        node.cancel(e);
    }
    (Context { node: node.clone() }, Canceller { node })
}

impl Context {
    /// A receiver that disconnects when the context is cancelled: a
    /// `recv` (or a `select!` arm) on it returns `Err` then, and blocks
    /// until then. Go's `ctx.Done()`.
    pub fn done(&self) -> &Receiver<()> {
        &self.node.done
    }

    /// Why the context was cancelled, or `None` while it is not. Go's
    /// `ctx.Err()`.
    pub fn err(&self) -> Option<ContextError> {
        self.node.lock().err
    }

    /// When the context will be cancelled by a deadline, if ever. Go's
    /// `ctx.Deadline()`.
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline
    }

    /// Number of live, uncancelled children (tests: nothing left behind).
    pub fn children(&self) -> usize {
        self.node.lock().children.len()
    }
}

impl Canceller {
    /// Cancels the context and its descendants with
    /// [`ContextError::Canceled`] (if not already cancelled). Idempotent.
    pub fn cancel(&self) {
        self.node.cancel(ContextError::Canceled);
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("err", &self.err())
            .field("deadline", &self.deadline())
            .finish()
    }
}

impl fmt::Debug for Canceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Canceller").finish_non_exhaustive()
    }
}

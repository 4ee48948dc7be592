//! A `WaitGroup` in crossbeam's shape (Go's `sync.WaitGroup`): a count of
//! members under a lock and the waiters woken when it reaches zero.

use crate::park::wait;
use crate::waitlist::WaitList;
use gort_sched::park::WaitReason;
use std::fmt;
use std::sync::{Arc, PoisonError};

/// Waits for a group of goroutines (or threads) to finish, in crossbeam's
/// shape: every clone is one member; dropping a clone marks it done;
/// [`wait`](WaitGroup::wait) consumes one clone and blocks until all the
/// others are dropped. (Go's `Add`/`Done` become `clone`/`drop`.)
pub struct WaitGroup {
    inner: Arc<WgInner>,
}

/// Must hold: `count` is the number of live `WaitGroup`s (plus waiters
/// between their drop and their wake-up check: none, since `wait` drops
/// its own first); when it reaches 0 every queued waiter is woken.
struct WgInner {
    state: std::sync::Mutex<WgState>,
}

struct WgState {
    count: usize,
    waiters: WaitList,
}

impl WgInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, WgState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A queued `wait`, removed from the list if unwound.
struct WgWait<'a> {
    inner: &'a WgInner,
    ticket: Option<u64>,
}

impl Drop for WgWait<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket {
            self.inner.lock().waiters.remove(t);
        }
    }
}

impl WaitGroup {
    /// A group with one member (this handle).
    pub fn new() -> Self {
        WaitGroup {
            inner: Arc::new(WgInner {
                state: std::sync::Mutex::new(WgState {
                    count: 1,
                    waiters: WaitList::new(),
                }),
            }),
        }
    }

    /// Drops this member and blocks (parks the goroutine) until every other
    /// member is dropped.
    pub fn wait(self) {
        gort_sched::park::preempt_point();
        let inner = self.inner.clone();
        drop(self);
        loop {
            let mut g = inner.lock();
            if g.count == 0 {
                return;
            }
            let mut queued = WgWait {
                inner: &inner,
                ticket: None,
            };
            wait(WaitReason::WaitGroup, None, |w| {
                queued.ticket = Some(g.waiters.push(w, false));
                drop(g);
                true
            });
            // Woken: the last drop popped us.
            queued.ticket = None;
        }
    }
}

impl Default for WaitGroup {
    fn default() -> Self {
        WaitGroup::new()
    }
}

impl Clone for WaitGroup {
    fn clone(&self) -> Self {
        self.inner.lock().count += 1;
        WaitGroup {
            inner: self.inner.clone(),
        }
    }
}

impl Drop for WaitGroup {
    fn drop(&mut self) {
        let mut g = self.inner.lock();
        g.count -= 1;
        if g.count == 0 && !g.waiters.is_empty() {
            let waiters = g.waiters.take_all();
            drop(g);
            for (_, w) in waiters {
                w.wake();
            }
        }
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.inner.lock().count)
            .finish()
    }
}

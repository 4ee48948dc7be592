//! Loom model of `JoinHandle`'s join state (go.rs, `JoinInner`):
//! `cargo xtask loom`.
//!
//! Invariant: the joiner gets the goroutine's result exactly once, and the
//! write of the result happens before the joiner reads it (loom's
//! `UnsafeCell` reports any access not ordered so); a joiner that
//! registered (its G tagged into the state word, or a thread waiter) is
//! woken exactly once, by the finishing goroutine, and one that finds the
//! goroutine already done is never woken and takes the result at once.
//!
//! An extract: `JoinInner` is private and its wake-ups go through the
//! scheduler. Correspondence with go.rs:
//!
//! | model | go.rs |
//! | --- | --- |
//! | `complete`: write `result`, `state.swap(DONE, SeqCst)`, wake `prev` if a waiter | `JoinInner::complete` (`ready(g)` / `note.wake()` become `woken += 1`) |
//! | `join`: `state.load(Acquire) == DONE` → take | `JoinHandle::join`'s fast path |
//! | `register`: `compare_exchange(RUNNING, word, AcqRel, Acquire)` | `JoinInner::register`, the park's unlock function |
//! | wait until woken, then `state.load(Acquire) == DONE` → take | `join_goroutine`'s loop after `park` (`join_thread`: `note.sleep`) |
//! | `woken` (Acquire) | `ready` / the note: a wake orders what came before it |

#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

const RUNNING: usize = 0;
const DONE: usize = 1;
const JOINER_G: usize = 2;
/// A joining goroutine's G pointer (8-aligned) tagged with JOINER_G.
const TAGGED_G: usize = 0x1000 | JOINER_G;

struct JoinInner {
    state: AtomicUsize,
    result: UnsafeCell<Option<u32>>,
    /// Wake-ups delivered to the registered joiner.
    woken: AtomicUsize,
}

impl JoinInner {
    fn complete(&self, r: u32) {
        // SAFETY (model): only the goroutine writes, once, before DONE.
        self.result.with_mut(|p| unsafe { *p = Some(r) });
        let prev = self.state.swap(DONE, Ordering::SeqCst);
        if prev > DONE {
            assert_eq!(prev, TAGGED_G, "the state held something else");
            // ready(g): the wake is a release the joiner acquires.
            self.woken.fetch_add(1, Ordering::Release);
        }
    }

    fn take(&self) -> u32 {
        // SAFETY (model): DONE observed with acquire; the only joiner.
        self.result
            .with_mut(|p| unsafe { (*p).take() })
            .expect("join result taken twice")
    }

    fn join(&self) -> u32 {
        if self.state.load(Ordering::Acquire) == DONE {
            return self.take();
        }
        if self
            .state
            .compare_exchange(RUNNING, TAGGED_G, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // Parked until readied.
            while self.woken.load(Ordering::Acquire) == 0 {
                thread::yield_now();
            }
        }
        // Readied, or the register found DONE (the park returns at once).
        assert_eq!(
            self.state.load(Ordering::Acquire),
            DONE,
            "joiner resumed before the goroutine finished"
        );
        self.take()
    }
}

#[test]
fn joiner_gets_the_result_once_and_is_woken_once() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let inner = Arc::new(JoinInner {
            state: AtomicUsize::new(RUNNING),
            result: UnsafeCell::new(None),
            woken: AtomicUsize::new(0),
        });
        let g = {
            let inner = inner.clone();
            thread::spawn(move || inner.complete(42))
        };
        assert_eq!(inner.join(), 42);
        g.join().unwrap();
        assert!(
            inner.woken.load(Ordering::Relaxed) <= 1,
            "joiner woken twice"
        );
        // Nothing left behind: no waiter in the word, no result.
        assert_eq!(inner.state.load(Ordering::Relaxed), DONE);
        // SAFETY: every thread of the model has been joined; loom checks
        // the read is ordered after their writes.
        inner.result.with(|p| assert!(unsafe { (*p).is_none() }));
    });
}

//! Loom model of a G's state word (`gort_sched::gstate`, used by
//! `park_with` and `ready`): a parked goroutine is raced for by a wake, its
//! deadline and shutdown's plain `ready` (`cargo xtask loom`).
//!
//! Invariant: the goroutine is made runnable exactly once (queued by the
//! winning wake or by `ready`, or run again at once by a park that was
//! called off), never twice; and when a wake or the deadline won, the
//! outcome is the winner's.

#![cfg(loom)]

use gort_sched::gstate::{GState, RUNNABLE, RUNNING, TIMED_OUT, WAITING, WOKEN};
use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// The published waker: the wait's number, 0 while unpublished.
struct Shared {
    state: GState,
    published: AtomicU64,
    /// Times the goroutine was made runnable.
    readied: AtomicUsize,
    /// Which one-shot outcome the winner put there (0: none).
    won: AtomicUsize,
}

fn waker(s: Arc<Shared>, outcome: u8) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let word = s.published.load(Ordering::Acquire);
        if word == 0 {
            return; // not published yet: nothing to wake
        }
        if let Some(readied) = s.state.win(word, outcome) {
            s.won.store(outcome as usize, Ordering::SeqCst);
            if readied {
                s.readied.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
}

fn shutdown(s: Arc<Shared>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        // begin_shutdown: every Waiting G is readied with a plain ready.
        if s.state.status() == WAITING && s.state.try_cas_status(WAITING, RUNNABLE) {
            s.readied.fetch_add(1, Ordering::SeqCst);
        }
    })
}

/// The parking goroutine and its g0: a new wait, Running -> Waiting, the
/// register step publishes the waker, then (deferred) the last step marks
/// it PARKED or calls the park off.
fn park(s: &Shared, eager: bool) {
    let word = s.state.begin_wait(eager);
    s.state
        .owner_set(RUNNING, WAITING)
        .unwrap_or_else(|_| panic!("not running"));
    s.published.store(word, Ordering::Release);
    if !eager && !s.state.mark_parked(word) {
        // Called off: execute runs it again at once, unless a plain ready
        // got it first (then that one queued it).
        if s.state.try_cas_status(WAITING, RUNNABLE) {
            s.readied.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn race(eager: bool, with_shutdown: bool) {
    model(move || {
        let s = Arc::new(Shared {
            state: GState::new(RUNNING),
            published: AtomicU64::new(0),
            readied: AtomicUsize::new(0),
            won: AtomicUsize::new(0),
        });
        let w = waker(s.clone(), WOKEN);
        let t = waker(s.clone(), TIMED_OUT);
        let d = with_shutdown.then(|| shutdown(s.clone()));
        park(&s, eager);
        w.join().unwrap();
        t.join().unwrap();
        if let Some(d) = d {
            d.join().unwrap();
        }
        let readied = s.readied.load(Ordering::SeqCst);
        let won = s.won.load(Ordering::SeqCst);
        assert!(readied <= 1, "made runnable {readied} times");
        if won != 0 {
            assert_eq!(readied, 1, "a wake won but nobody made the G runnable");
            assert_eq!(
                s.state.outcome() as usize,
                won,
                "the outcome is the winner's"
            );
        }
        if readied == 1 {
            assert_eq!(s.state.status(), RUNNABLE);
        } else {
            // Nobody came (the wakers looked before the publication):
            // still parked.
            assert_eq!(s.state.status(), WAITING);
        }
    });
}

#[test]
fn eager_wait_is_readied_once_by_its_winner() {
    race(true, false);
}

#[test]
fn deferred_wait_is_readied_once_or_called_off() {
    race(false, false);
}

#[test]
fn shutdown_ready_and_wakes_never_queue_twice_eager() {
    race(true, true);
}

#[test]
fn shutdown_ready_and_wakes_never_queue_twice_deferred() {
    race(false, true);
}

#[test]
fn a_stale_waker_never_wins_a_later_wait() {
    model(|| {
        let s = Arc::new(Shared {
            state: GState::new(RUNNING),
            published: AtomicU64::new(0),
            readied: AtomicUsize::new(0),
            won: AtomicUsize::new(0),
        });
        // A first wait that ended (its waker kept by a queue)...
        let old = s.state.begin_wait(true);
        assert!(s.state.win_quietly(old, TIMED_OUT));
        // ...and a second one, raced by the stale waker and a fresh one.
        let s2 = s.clone();
        let stale = thread::spawn(move || s2.state.win(old, WOKEN).is_some());
        park(&s, true);
        let fresh = waker(s.clone(), WOKEN);
        assert!(!stale.join().unwrap(), "a stale waker won");
        fresh.join().unwrap();
        assert!(s.readied.load(Ordering::SeqCst) <= 1);
    });
}

//! Loom model of the spinning/wakeup protocol (idle.rs's essay): a
//! goroutine made runnable against the last spinning M dropping out
//! (`cargo xtask loom`).
//!
//! Invariant: when a producer has queued a goroutine and called `wakep`,
//! and the last spinning M has given up its P, stopped counting as
//! spinning and re-checked the queues, then the spinner found the work or
//! `wakep` saw an idle P and no spinner and started an M. Never neither:
//! that is a runnable goroutine with an idle P and every other M asleep.
//!
//! The run queue is the real [`LocalQueue`] (its `push` and `is_empty`,
//! loom's atomics under `--cfg loom`); the global queue is a loom mutex
//! with the real code's `runq_len` beside it. The counters and the two
//! paths are an extract of the scheduler, which runs only on real
//! threads; each step names the line it stands for:
//!
//! | model | code |
//! | --- | --- |
//! | `owner.push(g, next)` | schedule.rs `make_runnable`: `q.push(g.0, next)` |
//! | `global_put` | schedule.rs `global_put`: lock, push, `runq_len.store(Release)` |
//! | `wakep` | idle.rs `wakep`: the fence, `npidle.load(Acquire)`, `nmspinning.load(Acquire)`, `compare_exchange(0, 1, AcqRel)` |
//! | `global` locked: empty?, `npidle.fetch_add(1, AcqRel)` | schedule.rs `find_runnable`: `global_get`, then proc.rs `pidle_put`, under the lock |
//! | `nmspinning.fetch_sub(1, AcqRel)`, fence | schedule.rs `find_runnable`, "give up the P": `stop_spinning` (idle.rs) |
//! | `q.is_empty()`, `runq_len.load(Acquire)` | the re-check after it: `allp().any(!runq.is_empty())`, `runq_len` |
//!
//! `FENCES = false` is the protocol before the fences: the model must find
//! the lost wakeup there (the store-buffering shape: each side's store sits
//! unseen while it reads the other's old value). Loom treats SeqCst loads,
//! stores and read-modify-writes as AcqRel (its README), so it would also
//! report SeqCst accesses without fences as broken; it does implement
//! `fence(SeqCst)`, the form the code uses. It does not explore every
//! load-buffering execution, which this protocol's invariant does not
//! depend on (each side only reads after it writes).

#![cfg(loom)]

use gort_sched::runq::LocalQueue;
use loom::sync::atomic::{fence, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;
use std::ptr::NonNull;

type Q = LocalQueue<u8, 4>;

struct Sched {
    /// The producer's P's queue (P 0).
    q: Q,
    global: Mutex<usize>,
    runq_len: AtomicUsize,
    npidle: AtomicUsize,
    nmspinning: AtomicUsize,
    /// Ms started by `wakep`.
    started: AtomicUsize,
}

impl Sched {
    /// idle.rs `wakep`, up to `startm` (counted, not run).
    fn wakep(&self, fences: bool) {
        if fences {
            fence(Ordering::SeqCst);
        }
        if self.npidle.load(Ordering::Acquire) == 0 {
            return;
        }
        if self.nmspinning.load(Ordering::Acquire) != 0
            || self
                .nmspinning
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        // pidle_get under the lock finds the spinner's P: start an M on it.
        self.started.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy)]
enum Put {
    /// `ready`: the producer's P's runnext (release store of an empty one).
    Runnext,
    /// `yield_now`: the tail of the producer's P's ring.
    Ring,
    /// A producer without a P (a plain thread's wake, an M leaving a
    /// syscall without a P): the global queue under the lock.
    Global,
}

fn model(put: Put, fences: bool) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        // Two Ps: the producer's M holds P 0; the spinner's M holds P 1,
        // is the only spinner and has just found nothing to steal.
        let s = Arc::new(Sched {
            q: Q::new(),
            global: Mutex::new(0),
            runq_len: AtomicUsize::new(0),
            npidle: AtomicUsize::new(0),
            nmspinning: AtomicUsize::new(1),
            started: AtomicUsize::new(0),
        });
        let spinner = {
            let s = s.clone();
            thread::spawn(move || {
                // "Nothing found: give up the P": under the lock, a last
                // look at the global queue and pidle_put; then stop
                // counting as spinning, then look again.
                {
                    let l = s.global.lock().unwrap();
                    if *l > 0 {
                        return true;
                    }
                    s.npidle.fetch_add(1, Ordering::AcqRel);
                }
                s.nmspinning.fetch_sub(1, Ordering::AcqRel);
                if fences {
                    fence(Ordering::SeqCst);
                }
                !s.q.is_empty() || s.runq_len.load(Ordering::Acquire) > 0
            })
        };
        match put {
            Put::Runnext | Put::Ring => {
                // SAFETY: the model's main thread is P 0's M, the only owner.
                let owner = unsafe { s.q.owner() };
                let g = NonNull::new(1 as *mut u8).unwrap();
                owner.push(g, matches!(put, Put::Runnext)).unwrap();
            }
            Put::Global => {
                let mut l = s.global.lock().unwrap();
                *l += 1;
                s.runq_len.store(*l, Ordering::Release);
            }
        }
        s.wakep(fences);
        let found = spinner.join().unwrap();
        let started = s.started.load(Ordering::Relaxed);
        assert!(
            found || started == 1,
            "lost wakeup: a goroutine is queued, a P idle, and no M looks for it"
        );
    });
}

#[test]
fn runnext_put_is_found_or_wakes_an_m() {
    model(Put::Runnext, true);
}

#[test]
fn ring_put_is_found_or_wakes_an_m() {
    model(Put::Ring, true);
}

#[test]
fn global_put_is_found_or_wakes_an_m() {
    model(Put::Global, true);
}

/// The protocol without the two fences loses the wakeup: the model can
/// fail, and does where the code once was.
#[test]
#[should_panic(expected = "lost wakeup")]
fn without_fences_runnext_put_loses_the_wakeup() {
    model(Put::Runnext, false);
}

#[test]
#[should_panic(expected = "lost wakeup")]
fn without_fences_global_put_loses_the_wakeup() {
    model(Put::Global, false);
}

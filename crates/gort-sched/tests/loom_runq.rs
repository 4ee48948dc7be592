//! Loom models of the local run queue (build with `--cfg loom`; run by
//! `cargo xtask loom`). Queues have 4 slots so that loom can explore every
//! interleaving of the owner and a stealer.
//!
//! Invariant checked by every model: each item pushed is taken out exactly
//! once, by the owner's pop, by a stealer, or in an overflow batch bound for
//! the global queue; no item is lost or duplicated, and the queues are empty
//! at the end.

#![cfg(loom)]

use gort_sched::runq::LocalQueue;
use loom::sync::Arc;
use loom::thread;
use std::ptr::NonNull;

type Q = LocalQueue<u8, 4>;

fn item(i: usize) -> NonNull<u8> {
    NonNull::new(i as *mut u8).unwrap()
}

fn id(p: NonNull<u8>) -> usize {
    p.as_ptr() as usize
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// A stealer that steals once from `victim` into its own queue and then
/// pops everything it got.
fn spawn_stealer(victim: Arc<Q>, steal_runnext: bool) -> thread::JoinHandle<Vec<usize>> {
    thread::spawn(move || {
        let mine = Q::new();
        // SAFETY: this thread is the only owner of `mine`.
        let owner = unsafe { mine.owner() };
        let mut got = Vec::new();
        if let Some(first) = owner.steal_from(&victim, steal_runnext, &mut || thread::yield_now()) {
            got.push(id(first));
        }
        while let Some((p, _)) = owner.pop() {
            got.push(id(p));
        }
        got
    })
}

fn assert_exactly_once(mut all: Vec<usize>, expected: std::ops::RangeInclusive<usize>) {
    all.sort_unstable();
    assert_eq!(
        all,
        expected.collect::<Vec<_>>(),
        "an item was lost or taken twice"
    );
}

#[test]
fn push_pop_and_steal_take_each_item_once() {
    model(|| {
        let q = Arc::new(Q::new());
        let stealer = spawn_stealer(q.clone(), false);
        // SAFETY: the model's main thread is the only owner of `q`.
        let owner = unsafe { q.owner() };
        let mut all = Vec::new();
        for i in 1..=3 {
            owner.push(item(i), false).unwrap();
        }
        if let Some((p, _)) = owner.pop() {
            all.push(id(p));
        }
        let stolen = stealer.join().unwrap();
        while let Some((p, _)) = owner.pop() {
            all.push(id(p));
        }
        all.extend(stolen);
        assert_exactly_once(all, 1..=3);
        assert!(q.is_empty());
    });
}

#[test]
fn overflow_races_a_stealer_without_loss() {
    model(|| {
        let q = Arc::new(Q::new());
        // SAFETY: the model's main thread is the only owner of `q`.
        let owner = unsafe { q.owner() };
        for i in 1..=4 {
            owner.push(item(i), false).unwrap();
        }
        let stealer = spawn_stealer(q.clone(), false);
        let mut all = Vec::new();
        // The ring is full unless the stealer got there first.
        if let Err(overflow) = owner.push(item(5), false) {
            assert_eq!(overflow.len(), 3, "half of the ring plus the item");
            all.extend(overflow.items().map(id));
        }
        let stolen = stealer.join().unwrap();
        while let Some((p, _)) = owner.pop() {
            all.push(id(p));
        }
        all.extend(stolen);
        assert_exactly_once(all, 1..=5);
    });
}

#[test]
fn runnext_is_taken_once_by_owner_or_stealer() {
    model(|| {
        let q = Arc::new(Q::new());
        let stealer = spawn_stealer(q.clone(), true);
        // SAFETY: the model's main thread is the only owner of `q`.
        let owner = unsafe { q.owner() };
        let mut all = Vec::new();
        owner.push(item(1), true).unwrap();
        // Kicks 1 out of runnext into the ring (if nobody took it yet).
        owner.push(item(2), true).unwrap();
        if let Some((p, _)) = owner.pop() {
            all.push(id(p));
        }
        let stolen = stealer.join().unwrap();
        while let Some((p, _)) = owner.pop() {
            all.push(id(p));
        }
        all.extend(stolen);
        assert_exactly_once(all, 1..=2);
        assert!(q.is_empty());
    });
}

#[test]
fn two_stealers_and_the_owner_share_without_duplicates() {
    model(|| {
        let q = Arc::new(Q::new());
        // SAFETY: the model's main thread is the only owner of `q`.
        let owner = unsafe { q.owner() };
        for i in 1..=3 {
            owner.push(item(i), false).unwrap();
        }
        let a = spawn_stealer(q.clone(), true);
        let b = spawn_stealer(q.clone(), false);
        let mut all = Vec::new();
        while let Some((p, _)) = owner.pop() {
            all.push(id(p));
        }
        all.extend(a.join().unwrap());
        all.extend(b.join().unwrap());
        assert_exactly_once(all, 1..=3);
    });
}

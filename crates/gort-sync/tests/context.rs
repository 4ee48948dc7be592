//! gort::context: a 10,000-node tree cancels completely (wide and deep),
//! cancellation flows down never up, deadlines (own and inherited),
//! `done()` in select! from goroutines and plain threads, and dropped
//! children leave their parent. All three targets.

// Runs on real threads; the loom build (cargo xtask loom) leaves it out.
#![cfg(not(loom))]

mod common;

use common::{goroutines_left, rt, rt_with_threads, under_qemu};

use gort_sched::go;
use gort_sync::chan::{self, RecvError};
use gort_sync::context::{
    background, with_cancel, with_deadline, with_timeout, Context, ContextError,
};
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);

fn is_done(ctx: &Context) -> bool {
    ctx.done().try_recv().is_err_and(|e| e.is_disconnected())
}

/// 10,000 nodes: a root with 100 children of 99 grandchildren each; a
/// chain of 10,000 below one grandchild. Cancelling a middle node stops
/// its subtree only; cancelling the root stops everything.
#[test]
fn a_10k_node_tree_cancels_completely_and_never_upwards() {
    rt(2)
        .run(|| {
            let (root, cancel_root) = with_cancel(&background());
            let mut all = Vec::new();
            let mut cancellers = Vec::new();
            for _ in 0..100 {
                let (child, c) = with_cancel(&root);
                for _ in 0..99 {
                    let (g, gc) = with_cancel(&child);
                    all.push(g);
                    cancellers.push(gc);
                }
                all.push(child);
                cancellers.push(c);
            }
            assert_eq!(all.len(), 10_000);
            assert_eq!(root.children(), 100);
            // Cancel one middle node: its 99 children go, nobody else.
            let middle = &all[99];
            cancellers[99].cancel();
            assert_eq!(middle.err(), Some(ContextError::Canceled));
            assert!(all[..99].iter().all(is_done));
            assert!(!is_done(&root), "cancellation went up");
            assert!(
                all[100..].iter().all(|c| c.err().is_none()),
                "went sideways"
            );
            assert_eq!(root.children(), 99, "a cancelled child leaves its parent");
            // Cancel the root: everything.
            cancel_root.cancel();
            assert!(is_done(&root));
            assert!(all.iter().all(is_done), "a node missed the cancel");
            assert!(all.iter().all(|c| c.err() == Some(ContextError::Canceled)));
            assert_eq!(root.children(), 0);
            assert!(
                background().err().is_none(),
                "background is never cancelled"
            );
        })
        .unwrap();
}

/// A chain 10,000 deep cancels without recursion (a goroutine's stack is
/// small) and is dropped without recursion too.
#[test]
fn a_10k_deep_chain_cancels_and_drops_on_a_goroutine() {
    rt(1)
        .run(|| {
            let (root, cancel) = with_cancel(&background());
            let mut leaf = root.clone();
            let mut keep = Vec::new();
            for _ in 0..10_000 {
                let (c, cc) = with_cancel(&leaf);
                keep.push(cc);
                leaf = c;
            }
            cancel.cancel();
            assert!(is_done(&leaf));
            // Uncancelled this time, dropped leaf first.
            let (root2, _c2) = with_cancel(&background());
            let mut leaf2 = root2.clone();
            let mut keep2 = Vec::new();
            for _ in 0..10_000 {
                let (c, cc) = with_cancel(&leaf2);
                keep2.push(cc);
                leaf2 = c;
            }
            drop(keep2);
            drop(leaf2);
            assert_eq!(root2.children(), 0, "the dropped chain left its parent");
        })
        .unwrap();
}

#[test]
fn dropped_children_leave_their_parent() {
    let (root, _c) = with_cancel(&background());
    for _ in 0..1000 {
        let _child = with_cancel(&root);
        let _timed = with_timeout(&root, Duration::from_secs(3600));
    }
    assert_eq!(root.children(), 0);
}

#[test]
fn deadlines_expire_and_are_inherited() {
    rt(2)
        .run(|| {
            let start = Instant::now();
            let (ctx, _c) = with_timeout(&background(), 10 * MS);
            assert_eq!(ctx.done().recv(), Err(RecvError));
            assert!(start.elapsed() >= 10 * MS);
            assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
            // A child asking for later gets the parent's deadline, and
            // ends with it.
            let (parent, _pc) = with_timeout(&background(), 10 * MS);
            let (child, _cc) = with_timeout(&parent, Duration::from_secs(3600));
            assert_eq!(child.deadline(), parent.deadline());
            assert_eq!(child.done().recv(), Err(RecvError));
            assert_eq!(child.err(), Some(ContextError::DeadlineExceeded));
            // A deadline already past: born cancelled.
            let (past, _p) = with_deadline(&background(), Instant::now());
            assert_eq!(past.err(), Some(ContextError::DeadlineExceeded));
            // A child of a cancelled parent: born cancelled.
            let (dead, dc) = with_cancel(&background());
            dc.cancel();
            let (born, _b) = with_timeout(&dead, Duration::from_secs(3600));
            assert_eq!(born.err(), Some(ContextError::Canceled));
            // Cancel before the deadline: Canceled, and the timer is gone.
            let (early, ec) = with_timeout(&background(), Duration::from_secs(3600));
            ec.cancel();
            assert_eq!(early.err(), Some(ContextError::Canceled));
            // Duration::MAX never expires.
            let (never, _n) = with_timeout(&background(), Duration::MAX);
            assert!(never.done().recv_timeout(20 * MS).is_err());
            assert!(never.err().is_none());
            assert_eq!(goroutines_left(), 0);
        })
        .unwrap();
}

/// Workers select on their context's done() and on work; cancelling
/// stops every worker, goroutines and a plain thread alike.
#[test]
fn done_works_in_select_from_goroutines_and_plain_threads() {
    let n = if under_qemu() { 8 } else { 64 };
    rt_with_threads(2)
        .run(move || {
            let (ctx, cancel) = with_cancel(&background());
            let (work_tx, work) = chan::bounded::<u32>(0);
            let worker = |ctx: Context, work: chan::Receiver<u32>| {
                let mut done = 0;
                loop {
                    gort_sync::select! {
                        recv(work) -> v => { v.unwrap(); done += 1; },
                        recv(ctx.done()) -> _ => return (done, ctx.err()),
                    }
                }
            };
            let gs: Vec<_> = (0..n)
                .map(|_| {
                    let (ctx, work) = (ctx.clone(), work.clone());
                    go(move || worker(ctx, work))
                })
                .collect();
            let (tctx, twork) = (ctx.clone(), work.clone());
            let t = std::thread::spawn(move || worker(tctx, twork));
            for i in 0..1000 {
                work_tx.send(i).unwrap();
            }
            cancel.cancel();
            let mut total = 0;
            for g in gs {
                let (done, err) = g.join().unwrap();
                assert_eq!(err, Some(ContextError::Canceled));
                total += done;
            }
            let (done, err) = t.join().unwrap();
            assert_eq!(err, Some(ContextError::Canceled));
            assert_eq!(total + done, 1000);
        })
        .unwrap();
}

#[test]
fn context_is_clone_send_sync() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<Context>();
    assert_eq!(ContextError::Canceled.to_string(), "context canceled");
    assert_eq!(
        ContextError::DeadlineExceeded.to_string(),
        "context deadline exceeded"
    );
}

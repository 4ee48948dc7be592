//! gort-sync alone, between plain OS threads: Go's channels, `select!`,
//! `WaitGroup` and `Mutex`, with no runtime started. A plain thread blocks
//! where a goroutine would park; the same channel can connect both.
//!
//! ```text
//! cargo run -p gort-sync --example threads
//! ```

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use gort_sync::sync::{Mutex, WaitGroup};
use gort_sync::{chan, select};

fn main() {
    // A pipeline: a producer, three workers on an unbuffered channel (each
    // send is a rendezvous, as in Go), results on a buffered one.
    let (jobs, inbox) = chan::bounded::<u64>(0);
    let (results, outbox) = chan::bounded::<(usize, u64)>(8);
    // A WaitGroup member per worker: wait() returns when all are dropped.
    let wg = WaitGroup::new();
    let per_worker = Arc::new(Mutex::new([0u32; 3]));
    for w in 0..3 {
        let (inbox, results, wg, per_worker) = (
            inbox.clone(),
            results.clone(),
            wg.clone(),
            per_worker.clone(),
        );
        thread::spawn(move || {
            for n in inbox.iter() {
                per_worker.lock()[w] += 1;
                results.send((w, n * n)).unwrap();
            }
            drop(wg); // this worker is done
        });
    }
    drop((inbox, results));
    thread::spawn(move || {
        for n in 1..=100 {
            jobs.send(n).unwrap();
        }
        // Dropping the last sender closes the channel: the workers' loops end.
    });

    // select! over the results and a ticker, with a timeout as a safety net.
    let (tick_tx, ticks) = chan::bounded::<()>(1);
    let ticker = thread::spawn(move || {
        while tick_tx.send(()).is_ok() {
            thread::sleep(Duration::from_millis(5));
        }
    });
    let (mut sum, mut count, mut tick_count) = (0u64, 0, 0);
    loop {
        select! {
            recv(outbox) -> r => match r {
                Ok((_, sq)) => { sum += sq; count += 1; }
                Err(_) => break, // empty and closed: every worker is done
            },
            recv(ticks) -> _ => tick_count += 1,
            default(Duration::from_secs(10)) => panic!("no result in 10 s"),
        }
    }
    drop(ticks); // the ticker's next send fails and it exits
    ticker.join().unwrap();
    wg.wait();

    let per_worker = *per_worker.lock();
    println!("{count} results, sum of squares {sum}, {tick_count} ticks meanwhile");
    println!("jobs per worker: {per_worker:?}");
    assert_eq!(count, 100);
    assert_eq!(sum, 338_350);
    assert_eq!(per_worker.iter().sum::<u32>(), 100);
    println!("ok");
}

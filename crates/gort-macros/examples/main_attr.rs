//! `#[gort::main]`: `main`'s body runs as the main goroutine of a runtime
//! with two Ps. Four goroutines square numbers; main sums what they send.
//! A deadlock or a bad option would end the program as Go's runtime does:
//! `fatal error: ...` on stderr, exit status 2.
//!
//! `cargo run -p gort-macros --example main_attr`

#[gort::main(procs = 2)]
fn main() {
    let (tx, rx) = gort::chan::bounded(0);
    let workers: Vec<_> = (1..=4u32)
        .map(|i| {
            let tx = tx.clone();
            gort::go(move || tx.send(i * i).unwrap())
        })
        .collect();
    drop(tx);
    let mut sum = 0;
    while let Ok(v) = rx.recv() {
        sum += v;
    }
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(sum, 1 + 4 + 9 + 16);
    println!(
        "sum of squares from 4 goroutines on {} Ps: {sum}",
        gort::procs()
    );
}

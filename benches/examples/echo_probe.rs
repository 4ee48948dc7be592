//! The echo server and client of docs/performance.md's network table
//! (benches/echo/run.sh runs them): one goroutine per connection, 64-byte
//! round trips.
//!
//! ```text
//! echo_probe server ADDR CONNS          gort server; exits after CONNS connections closed
//! echo_probe tokio-server ADDR CONNS    the same server on tokio (a task per connection)
//! echo_probe client ADDR CONNS ROUNDS   gort client: CONNS goroutines, ROUNDS round trips each
//! echo_probe tokio-client ADDR CONNS ROUNDS   the same client on tokio
//! ```
//!
//! A server prints its peak thread count (sampled every millisecond) and
//! its peak RSS (VmHWM) when done; the client prints its wall time. Go's
//! server and client are `benches/go/echo` (`go run . server|client ...`).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_string())
        .unwrap_or_default()
}

/// Samples the thread count every millisecond; returns the peak holder.
fn watch_threads() -> Arc<AtomicUsize> {
    let peak = Arc::new(AtomicUsize::new(0));
    let p = peak.clone();
    std::thread::spawn(move || loop {
        let n: usize = status("Threads:").parse().unwrap_or(0);
        p.fetch_max(n, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(1));
    });
    peak
}

fn report(peak: &AtomicUsize) {
    // The sampler thread itself is not the server's.
    println!(
        "server threads peak {} (without the sampler), VmHWM {}",
        peak.load(Ordering::Relaxed).saturating_sub(1),
        status("VmHWM:")
    );
}

fn gort_server(addr: String, conns: usize) {
    let peak = watch_threads();
    gort_sched::run(move || {
        let l = gort_net::TcpListener::bind(addr).unwrap();
        let wg = gort_sync::sync::WaitGroup::new();
        for _ in 0..conns {
            let (mut s, _) = l.accept().unwrap();
            let wg = wg.clone();
            gort_sched::go(move || {
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                drop(wg);
            });
        }
        wg.wait();
        let st = gort_sched::stats();
        println!(
            "gort: {} Ms, {} slices marked, {} Ps retaken from running goroutines, {} slices extended",
            st.threads, st.preempt_marks, st.preempt_retakes, st.slices_extended
        );
    })
    .unwrap();
    report(&peak);
}

fn tokio_server(addr: String, conns: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let peak = watch_threads();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind(addr).await.unwrap();
        let mut tasks = Vec::with_capacity(conns);
        for _ in 0..conns {
            let (mut s, _) = l.accept().await.unwrap();
            tasks.push(tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    if s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    report(&peak);
}

fn gort_client(addr: String, conns: usize, rounds: usize) {
    let start = Instant::now();
    gort_sched::run(move || {
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        let hs: Vec<_> = (0..conns)
            .map(|_| {
                gort_sched::go(move || {
                    let mut c = gort_net::TcpStream::connect(addr).unwrap();
                    c.set_nodelay(true).unwrap();
                    let msg = [7u8; 64];
                    let mut back = [0u8; 64];
                    for _ in 0..rounds {
                        c.write_all(&msg).unwrap();
                        c.read_exact(&mut back).unwrap();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    })
    .unwrap();
    print_client(conns, rounds, start);
}

fn print_client(conns: usize, rounds: usize, start: Instant) {
    println!(
        "client: {conns} connections x {rounds} round trips in {:.3} s",
        start.elapsed().as_secs_f64()
    );
}

fn tokio_client(addr: String, conns: usize, rounds: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let start = Instant::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        let tasks: Vec<_> = (0..conns)
            .map(|_| {
                tokio::spawn(async move {
                    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
                    c.set_nodelay(true).unwrap();
                    let msg = [7u8; 64];
                    let mut back = [0u8; 64];
                    for _ in 0..rounds {
                        c.write_all(&msg).await.unwrap();
                        c.read_exact(&mut back).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    print_client(conns, rounds, start);
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize| a.get(i).cloned().expect("see the usage in the source");
    match arg(1).as_str() {
        "server" => gort_server(arg(2), arg(3).parse().unwrap()),
        "tokio-server" => tokio_server(arg(2), arg(3).parse().unwrap()),
        "client" => gort_client(arg(2), arg(3).parse().unwrap(), arg(4).parse().unwrap()),
        "tokio-client" => tokio_client(arg(2), arg(3).parse().unwrap(), arg(4).parse().unwrap()),
        m => panic!("unknown mode {m}"),
    }
}

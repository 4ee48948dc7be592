//! gort-net end to end: goroutines on sockets, deadlines, close while
//! blocked, UDP, Unix sockets, plain threads, shutdown, checkdead.
//! EMFILE and the fd-leak test are in tests/limits.rs.

use gort_net::{PollFd, TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};
use gort_sched::{go, Runtime};
use gort_testing::scaled;
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rt(procs: usize) -> Runtime {
    Runtime::builder().procs(procs).build().unwrap()
}

/// An echo server goroutine per connection, `n` client goroutines each
/// doing `rounds` round trips of 64 bytes.
fn echo(procs: usize, n: usize, rounds: usize) {
    rt(procs)
        .run(move || {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let server = l.clone();
            go(move || {
                for s in server.incoming() {
                    let Ok(mut s) = s else { return };
                    go(move || {
                        let mut buf = [0u8; 64];
                        loop {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => return,
                                Ok(k) => s.write_all(&buf[..k]).unwrap(),
                            }
                        }
                    });
                }
            });
            let done = Arc::new(AtomicUsize::new(0));
            let clients: Vec<_> = (0..n)
                .map(|i| {
                    let done = done.clone();
                    go(move || {
                        let mut c = TcpStream::connect(addr).unwrap();
                        c.set_nodelay(true).unwrap();
                        let mut msg = [0u8; 64];
                        let mut back = [0u8; 64];
                        for r in 0..rounds {
                            msg.fill((i + r) as u8);
                            c.write_all(&msg).unwrap();
                            c.read_exact(&mut back).unwrap();
                            assert_eq!(msg, back);
                        }
                        done.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            for c in clients {
                c.join().unwrap();
            }
            l.close();
            assert_eq!(done.load(Ordering::SeqCst), n);
        })
        .unwrap();
}

#[test]
fn echo_1000_connections() {
    echo(2, scaled(1000), 10);
}

#[test]
fn echo_at_procs_1() {
    // A goroutine blocked on a socket must not hold the only P.
    echo(1, scaled(100), 10);
}

#[test]
fn read_deadline_times_out() {
    rt(2)
        .run(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (_s, _) = l.accept().unwrap();
            c.set_read_deadline(Some(Instant::now() + Duration::from_millis(50)));
            let mut buf = [0u8; 8];
            let e = (&c).read(&mut buf).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut);
            // A deadline in the past fails at once, and clearing it works.
            let e = (&c).read(&mut buf).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut);
            c.set_read_deadline(None);
            // std's per-operation timeout.
            c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
            let e = (&c).read(&mut buf).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut);
            assert!(c.set_read_timeout(Some(Duration::ZERO)).is_err());
        })
        .unwrap();
}

#[test]
fn deadline_moved_while_a_read_waits() {
    rt(2)
        .run(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (mut s, _) = l.accept().unwrap();
            // Far deadline, then moved near while the read waits: the read
            // must end with TimedOut, long before the first deadline.
            c.set_read_deadline(Some(Instant::now() + Duration::from_secs(30)));
            let reader = c.clone();
            let start = Instant::now();
            let h = go(move || {
                let mut buf = [0u8; 8];
                (&reader).read(&mut buf).map_err(|e| e.kind())
            });
            gort_sched::sleep(Duration::from_millis(50));
            c.set_read_deadline(Some(Instant::now() + Duration::from_millis(50)));
            assert_eq!(h.join().unwrap(), Err(ErrorKind::TimedOut));
            // Latency is the behaviour here: ~100 ms expected, 10 s allowed.
            assert!(start.elapsed() < Duration::from_secs(10));
            // Near deadline moved far while the read waits: data that comes
            // after the first deadline is read.
            c.set_read_deadline(Some(Instant::now() + Duration::from_millis(500)));
            let reader = c.clone();
            let h = go(move || {
                let mut buf = [0u8; 8];
                (&reader).read(&mut buf).map_err(|e| e.kind())
            });
            gort_sched::sleep(Duration::from_millis(20));
            c.set_read_deadline(Some(Instant::now() + Duration::from_secs(3600)));
            gort_sched::sleep(Duration::from_millis(700));
            s.write_all(b"late").unwrap();
            assert_eq!(h.join().unwrap(), Ok(4));
        })
        .unwrap();
}

#[test]
fn close_wakes_blocked_reader_and_acceptor() {
    rt(2)
        .run(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (_s, _) = l.accept().unwrap();
            let reader = c.clone();
            let r = go(move || {
                let mut buf = [0u8; 8];
                (&reader).read(&mut buf).map_err(|e| e.kind())
            });
            let acceptor = l.clone();
            let a = go(move || acceptor.accept().map(|_| ()).map_err(|e| e.kind()));
            gort_sched::sleep(Duration::from_millis(50));
            c.close();
            l.close();
            assert_eq!(r.join().unwrap(), Err(ErrorKind::ConnectionAborted));
            assert_eq!(a.join().unwrap(), Err(ErrorKind::ConnectionAborted));
            // And every later operation fails the same way.
            assert_eq!(
                (&c).write(b"x").unwrap_err().kind(),
                ErrorKind::ConnectionAborted
            );
        })
        .unwrap();
}

#[test]
fn peer_reset_is_an_error() {
    rt(2)
        .run(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, _) = l.accept().unwrap();
            // Unread data at close makes the kernel send a RST.
            (&c).write_all(b"unread").unwrap();
            gort_sched::sleep(Duration::from_millis(20));
            drop(s);
            let mut buf = [0u8; 8];
            let mut got_error = false;
            for _ in 0..100 {
                if (&c).write(b"more").is_err() {
                    got_error = true;
                    break;
                }
                if (&c).read(&mut buf).is_err() {
                    got_error = true;
                    break;
                }
            }
            assert!(got_error, "a reset connection never reported an error");
        })
        .unwrap();
}

#[test]
fn connect_timeout_and_refused() {
    rt(2)
        .run(|| {
            // Nobody listens on a port we bound and closed.
            let port = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap()
            };
            let e = TcpStream::connect(port).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let c = TcpStream::connect_timeout(&l.local_addr().unwrap(), Duration::from_secs(10))
                .unwrap();
            assert_eq!(c.peer_addr().unwrap(), l.local_addr().unwrap());
            // Name resolution through the syscall handoff.
            let c2 = TcpStream::connect(("localhost", l.local_addr().unwrap().port()));
            if let Ok(c2) = c2 {
                assert_eq!(
                    c2.peer_addr().unwrap().port(),
                    l.local_addr().unwrap().port()
                );
            }
        })
        .unwrap();
}

#[test]
fn udp() {
    rt(2)
        .run(|| {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
            // A receive that waits, then a send from another goroutine.
            let rb = b.clone();
            let h = go(move || {
                let mut buf = [0u8; 16];
                let (n, from) = rb.recv_from(&mut buf).unwrap();
                (buf[..n].to_vec(), from)
            });
            gort_sched::sleep(Duration::from_millis(20));
            a.send_to(b"hello", ba).unwrap();
            assert_eq!(h.join().unwrap(), (b"hello".to_vec(), aa));
            // Connected send and recv.
            a.connect(ba).unwrap();
            b.connect(aa).unwrap();
            a.send(b"one").unwrap();
            let mut buf = [0u8; 16];
            assert_eq!(b.recv(&mut buf).unwrap(), 3);
            assert_eq!(&buf[..3], b"one");
            b.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
            assert_eq!(b.recv(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
        })
        .unwrap();
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("gort-net-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn unix_sockets() {
    rt(2)
        .run(|| {
            let path = temp_path("stream");
            let l = UnixListener::bind(&path).unwrap();
            let server = l.clone();
            go(move || {
                let (mut s, _) = server.accept().unwrap();
                let mut buf = [0u8; 5];
                s.read_exact(&mut buf).unwrap();
                s.write_all(&buf).unwrap();
            });
            let mut c = UnixStream::connect(&path).unwrap();
            c.write_all(b"howdy").unwrap();
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"howdy");
            let _ = std::fs::remove_file(&path);

            let (x, y) = UnixStream::pair().unwrap();
            let h = go(move || {
                let mut buf = [0u8; 3];
                (&y).read_exact(&mut buf).unwrap();
                buf
            });
            gort_sched::sleep(Duration::from_millis(10));
            (&x).write_all(b"abc").unwrap();
            assert_eq!(&h.join().unwrap(), b"abc");

            let dpath = temp_path("dgram");
            let d = UnixDatagram::bind(&dpath).unwrap();
            let rd = d.clone();
            let h = go(move || {
                let mut buf = [0u8; 8];
                let n = rd.recv(&mut buf).unwrap();
                buf[..n].to_vec()
            });
            gort_sched::sleep(Duration::from_millis(10));
            let u = UnixDatagram::unbound().unwrap();
            u.send_to(b"dg", &dpath).unwrap();
            assert_eq!(h.join().unwrap(), b"dg");
            let _ = std::fs::remove_file(&dpath);
        })
        .unwrap();
}

#[test]
fn plain_threads_block() {
    // Made and used outside any run: the process-wide poller.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).unwrap();
        buf
    });
    let (mut s, _) = l.accept().unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).unwrap();
    s.write_all(b"pong").unwrap();
    assert_eq!(&t.join().unwrap(), b"pong");

    // A socket of a run, waited on from a plain thread while the run goes.
    rt(2)
        .run(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let t = std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 2];
                s.read_exact(&mut buf).unwrap();
                buf
            });
            let mut c = TcpStream::connect(addr).unwrap();
            gort_sched::sleep(Duration::from_millis(20));
            c.write_all(b"ok").unwrap();
            let r = gort_sched::syscall(|| t.join().unwrap());
            assert_eq!(&r, b"ok");
        })
        .unwrap();
}

#[test]
fn pollfd_on_a_pipe() {
    rt(2)
        .run(|| {
            let (r, mut w) = std::io::pipe().unwrap();
            gort_net::set_nonblocking(&r).unwrap();
            let pr = PollFd::new(r).unwrap();
            let e = pr
                .readable(Some(Instant::now() + Duration::from_millis(20)))
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut);
            go(move || {
                gort_sched::sleep(Duration::from_millis(20));
                w.write_all(b"x").unwrap();
            });
            pr.readable(None).unwrap();
            // Level-triggered from the user's view: still readable.
            pr.readable(None).unwrap();
            let mut buf = [0u8; 1];
            let mut r = pr.get_ref();
            assert_eq!(r.read(&mut buf).unwrap(), 1);
        })
        .unwrap();
}

static UNWOUND: AtomicUsize = AtomicUsize::new(0);

#[test]
fn shutdown_unwinds_goroutines_parked_on_sockets() {
    struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            UNWOUND.fetch_add(1, Ordering::SeqCst);
        }
    }
    let n = 8;
    rt(2)
        .run(move || {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let acceptor = l.clone();
            go(move || {
                let _g = Guard;
                let _ = acceptor.accept();
            });
            for _ in 0..n {
                let c = TcpStream::connect(addr).unwrap();
                go(move || {
                    let _g = Guard;
                    let mut buf = [0u8; 1];
                    let _ = (&c).read(&mut buf);
                });
            }
            gort_sched::sleep(Duration::from_millis(50));
            // main returns with n + 1 goroutines parked on sockets.
        })
        .unwrap();
    assert_eq!(UNWOUND.load(Ordering::SeqCst), n + 1);
}

#[test]
fn no_false_deadlock_on_another_poller() {
    // The socket is registered outside the run (the process-wide poller):
    // no M of the run polls for it, and checkdead must still not call the
    // goroutine that waits for it deadlocked.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::from_std(std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap())
        .unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        s.write_all(b"late").unwrap();
    });
    let r = Runtime::builder()
        .procs(2)
        .external_wakers(false)
        .build()
        .unwrap()
        .run(move || {
            let mut buf = [0u8; 4];
            (&c).read_exact(&mut buf).unwrap();
            buf
        });
    t.join().unwrap();
    assert_eq!(&r.unwrap(), b"late");
}

#[test]
fn no_false_deadlock_while_waiting_on_io() {
    // Only the runtime's own threads may wake goroutines, as far as the
    // builder knows: checkdead must still see the wait for the socket.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"late").unwrap();
    });
    let r = Runtime::builder()
        .procs(2)
        .external_wakers(false)
        .build()
        .unwrap()
        .run(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            let mut buf = [0u8; 4];
            c.read_exact(&mut buf).unwrap();
            buf
        });
    t.join().unwrap();
    assert_eq!(&r.unwrap(), b"late");
}

#[test]
fn ping_pong_churn_loses_no_wakeup() {
    // Many socket pairs bouncing a byte, with sleeps and yields mixed in,
    // at more Ps than cores: readiness, the idle M's poll, wakep's break
    // and the batch injection all race. A lost wakeup hangs the run (the
    // harness's timeout, or the join below, never returns).
    let pairs = scaled(200);
    let rounds = 200;
    rt(4)
        .run(move || {
            let hs: Vec<_> = (0..pairs)
                .map(|i| {
                    let (a, b) = UnixStream::pair().unwrap();
                    go(move || {
                        let mut x = [0u8; 1];
                        for _ in 0..rounds {
                            (&b).read_exact(&mut x).unwrap();
                            (&b).write_all(&x).unwrap();
                        }
                    });
                    go(move || {
                        let mut x = [i as u8; 1];
                        for r in 0..rounds {
                            (&a).write_all(&x).unwrap();
                            (&a).read_exact(&mut x).unwrap();
                            assert_eq!(x[0], i as u8);
                            match (i + r) % 50 {
                                0 => gort_sched::sleep(Duration::from_micros(100)),
                                1 => gort_sched::yield_now(),
                                _ => {}
                            }
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        })
        .unwrap();
}

#[test]
fn work_from_outside_breaks_the_poll() {
    // procs 1: one goroutine waits for a socket that never becomes ready,
    // so the only M blocks in the poller; a plain thread then readies main
    // through a channel. Its wakep finds no idle M and must break the poll
    // (the eventfd), or main waits until its 10 s timeout.
    let (tx, rx) = gort_sync::chan::bounded::<u32>(1);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        tx.send(7).unwrap();
    });
    let start = Instant::now();
    let r = rt(1)
        .run(move || {
            let (a, _b) = UnixStream::pair().unwrap();
            go(move || {
                let mut x = [0u8; 1];
                let _ = (&a).read(&mut x);
            });
            rx.recv_timeout(Duration::from_secs(10))
        })
        .unwrap();
    t.join().unwrap();
    assert_eq!(r, Ok(7));
    // Latency is the behaviour: ~100 ms expected. Without the break, main
    // runs only when the poll times out for its 10 s timer.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "main ran after {:?}: the poll was not broken",
        start.elapsed()
    );
}

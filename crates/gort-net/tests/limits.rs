//! Faults and resource limits: EMFILE on accept (in a child process with a
//! lowered RLIMIT_NOFILE), and connect/close cycles that must leak no fd
//! and no memory (in a child too: the allocator's count is process-wide).

use gort_net::{TcpListener, TcpStream};
use gort_sched::Runtime;
use gort_testing::alloc::{live, Counting};
use gort_testing::{describe, is_child, run_child, scaled};
use std::time::Duration;

#[global_allocator]
static ALLOC: Counting = Counting;

fn count_fds() -> usize {
    // The directory's own fd is counted in every call alike.
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rt(procs: usize) -> Runtime {
    Runtime::builder().procs(procs).build().unwrap()
}

#[test]
fn emfile_on_accept_is_an_error_and_the_listener_keeps_serving() {
    const NAME: &str = "emfile_on_accept_is_an_error_and_the_listener_keeps_serving";
    if is_child(NAME) {
        rt(1)
            .run(|| {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = l.local_addr().unwrap();
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                // SAFETY: getrlimit/setrlimit with a valid rlimit.
                unsafe {
                    assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
                    lim.rlim_cur = (count_fds() + 16) as libc::rlim_t;
                    assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
                }
                // Use up every fd, then free one for the client's socket.
                let mut fill = Vec::new();
                loop {
                    match std::fs::File::open("/dev/null") {
                        Ok(f) => fill.push(f),
                        Err(e) => {
                            assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                            break;
                        }
                    }
                }
                fill.pop();
                let _c = TcpStream::connect(addr).unwrap();
                // The connection is queued, and no fd is left to accept it.
                let e = l.accept().unwrap_err();
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                println!("accept error: {e}");
                fill.truncate(fill.len() - 4);
                // The queued connection is still there, and new ones come.
                let (_s, _) = l.accept().unwrap();
                let _c2 = TcpStream::connect(addr).unwrap();
                let (_s2, _) = l.accept().unwrap();
                println!("EMFILE-OK");
            })
            .unwrap();
        return;
    }
    let out = run_child(NAME);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("EMFILE-OK"),
        "{}",
        describe(&out)
    );
    assert!(stdout.contains("Too many open files"), "{}", describe(&out));
}

#[test]
fn connect_close_cycles_leak_no_fd() {
    // In a child: other tests of this binary open fds (pipes to their
    // children) while this one counts.
    const NAME: &str = "connect_close_cycles_leak_no_fd";
    if !is_child(NAME) {
        let out = run_child(NAME);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("NO-LEAK-OK"),
            "{}",
            describe(&out)
        );
        return;
    }
    let n = scaled(100_000);
    rt(2)
        .run(move || {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let cycle = || {
                let c = TcpStream::connect(addr).unwrap();
                let (s, _) = l.accept().unwrap();
                // A reset instead of TIME_WAIT: 100,000 cycles would use up
                // the ephemeral ports otherwise.
                socket2::SockRef::from(&c)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
                drop(c);
                drop(s);
            };
            // Warm up: the poller's descriptor pool, the run queues and
            // the stack pools reach their working size first.
            for _ in 0..1_000 {
                cycle();
            }
            let fds = count_fds();
            let bytes = live();
            for _ in 0..n {
                cycle();
            }
            assert_eq!(count_fds(), fds);
            let grew = live() - bytes;
            // A leak of even one small allocation per cycle would be 1.6
            // MB or more; 64 KiB allows for a queue or pool resizing.
            assert!(grew < 64 * 1024, "{grew} bytes more after {n} cycles");
            println!("memory: {grew} bytes more after {n} cycles");
        })
        .unwrap();
    println!("NO-LEAK-OK");
}

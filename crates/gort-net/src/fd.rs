//! The socket under every type of this crate (Go's `netFD` with its
//! `poll.FD`): a non-blocking std socket, its registration with the
//! network poller, and the loop every blocking operation runs.
//!
//! The loop: try the system call; if it says EAGAIN, wait for the
//! direction (gort-sched's `Registration::wait`, which parks the goroutine
//! or blocks a plain thread) and try again. EINTR retries. The wait is
//! edge-triggered, and the loop only waits after a failed try, which is
//! the registration's contract.
//!
//! Sharing: a socket type is an `Arc<NetFd>`, and `try_clone` shares it
//! (Go's model: a `net.Conn` is one descriptor, usable from several
//! goroutines) instead of dup(2)ing the fd as std does. So `close` on any
//! handle wakes every goroutine blocked on the socket with an error, and
//! the fd itself is closed when the last handle is dropped, after the
//! last operation using it returned: an fd number is never reused under a
//! goroutine still using it.
//!
//! Deadlines: Go's absolute `SetDeadline` lives in the registration (a new
//! one applies to a wait in progress); std's relative `set_read_timeout`
//! is kept here and turned into a deadline at the start of each operation.

use gort_sched::netpoll::{closed_error, Mode, Registration};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// No timeout, in the `AtomicU64`s below.
const NO_TIMEOUT: u64 = u64::MAX;

/// A registered non-blocking socket.
///
/// Must hold: `sock` is non-blocking and registered as `reg` for as long
/// as both live; `reg` is dropped (deregistered) before `sock` is closed
/// (field order). `closed` is set only by `close` and never cleared.
pub(crate) struct NetFd<S: AsFd> {
    reg: Registration,
    sock: S,
    closed: AtomicBool,
    /// std-style per-operation timeouts, in ns (`NO_TIMEOUT`: none).
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
}

impl<S: AsFd> NetFd<S> {
    /// Registers `sock`, which the caller made non-blocking.
    pub(crate) fn new(sock: S) -> io::Result<Arc<NetFd<S>>> {
        let reg = Registration::new(sock.as_fd().as_raw_fd())?;
        Ok(Arc::new(NetFd {
            reg,
            sock,
            closed: AtomicBool::new(false),
            read_timeout: AtomicU64::new(NO_TIMEOUT),
            write_timeout: AtomicU64::new(NO_TIMEOUT),
        }))
    }

    /// The std socket (non-blocking).
    pub(crate) fn sock(&self) -> &S {
        &self.sock
    }

    /// Runs `op` until it does not say EAGAIN, waiting for `mode` in
    /// between; the std timeout of the direction, if set, bounds the wait.
    pub(crate) fn io<T>(
        &self,
        mode: Mode,
        mut op: impl FnMut(&S) -> io::Result<T>,
    ) -> io::Result<T> {
        let timeout = match mode {
            Mode::Read => self.read_timeout.load(Ordering::Relaxed),
            Mode::Write => self.write_timeout.load(Ordering::Relaxed),
        };
        let mut until: Option<Instant> = None;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(closed_error());
            }
            match op(&self.sock) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if until.is_none() && timeout != NO_TIMEOUT {
                        until = Some(Instant::now() + Duration::from_nanos(timeout));
                    }
                    self.reg.wait_until(mode, until)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    /// Waits for `mode` once (after a failed non-blocking connect), with
    /// an extra deadline.
    pub(crate) fn wait(&self, mode: Mode, until: Option<Instant>) -> io::Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        self.reg.wait_until(mode, until)
    }

    /// Go's `Close`: every operation in progress on any handle, and every
    /// later one, fails with an error; the fd closes with the last handle.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.reg.close();
    }

    /// std's `set_read_timeout` / `set_write_timeout`: a zero duration is
    /// an error, as in std.
    pub(crate) fn set_timeout(&self, mode: Mode, d: Option<Duration>) -> io::Result<()> {
        let v = match d {
            Some(d) if d.is_zero() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "cannot set a 0 duration timeout",
                ))
            }
            Some(d) => d.as_nanos().min(u128::from(NO_TIMEOUT - 1)) as u64,
            None => NO_TIMEOUT,
        };
        match mode {
            Mode::Read => self.read_timeout.store(v, Ordering::Relaxed),
            Mode::Write => self.write_timeout.store(v, Ordering::Relaxed),
        }
        Ok(())
    }

    pub(crate) fn timeout(&self, mode: Mode) -> Option<Duration> {
        let v = match mode {
            Mode::Read => self.read_timeout.load(Ordering::Relaxed),
            Mode::Write => self.write_timeout.load(Ordering::Relaxed),
        };
        (v != NO_TIMEOUT).then(|| Duration::from_nanos(v))
    }

    /// Go's `SetReadDeadline`/`SetWriteDeadline` (mode None: both).
    pub(crate) fn set_deadline(&self, mode: Option<Mode>, at: Option<Instant>) {
        self.reg.set_deadline(mode, at);
    }
}

/// `std` for a `NetFd` that is the last handle: the socket, made blocking
/// again, or an error if other handles share it.
pub(crate) fn into_std<S: AsFd>(
    fd: Arc<NetFd<S>>,
    set_blocking: impl FnOnce(&S) -> io::Result<()>,
) -> io::Result<S> {
    let fd = Arc::try_unwrap(fd).map_err(|_| {
        io::Error::other("cannot convert a socket shared by try_clone handles into a std socket")
    })?;
    let NetFd { reg, sock, .. } = fd;
    drop(reg);
    set_blocking(&sock)?;
    Ok(sock)
}

/// The listen backlog Go uses on Linux: /proc/sys/net/core/somaxconn,
/// capped to 65535 (older kernels keep it in 16 bits), else 4096.
pub(crate) fn max_listener_backlog() -> i32 {
    static BACKLOG: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *BACKLOG.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|&n| n > 0)
            .map_or(4096, |n| n.min(65535) as i32)
    })
}

/// Resolves `addr` through the syscall handoff (getaddrinfo may block for
/// seconds: the goroutine's P goes to other goroutines meanwhile).
pub(crate) fn resolve<A: std::net::ToSocketAddrs>(
    addr: A,
) -> io::Result<Vec<std::net::SocketAddr>> {
    gort_sched::syscall(|| addr.to_socket_addrs().map(|i| i.collect()))
}

/// Tries `f` on each address, returning the first success or the last
/// error (std's rule).
pub(crate) fn each_addr<A: std::net::ToSocketAddrs, T>(
    addr: A,
    mut f: impl FnMut(&std::net::SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in resolve(addr)? {
        match f(&a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

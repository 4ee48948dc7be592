//! TCP: [`TcpListener`] and [`TcpStream`], shaped like std's, blocking
//! from the goroutine's point of view (fd.rs has the loop and the
//! sharing model).
//!
//! Setup goes through socket2: sockets are made non-blocking and
//! close-on-exec in one call (`SOCK_NONBLOCK | SOCK_CLOEXEC`), listeners
//! get `SO_REUSEADDR` and the system's `somaxconn` backlog as Go's do, and
//! accepted sockets come from `accept4` with the same flags, so no socket
//! of this crate is ever blocking or leaks into a child process.

use crate::fd::{each_addr, into_std, max_listener_backlog, NetFd};
use gort_sched::netpoll::Mode;
use socket2::{Domain, SockAddr, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A TCP listening socket (std's `TcpListener`; Go's `net.TCPListener`).
///
/// ```
/// gort_sched::run(|| {
///     let l = gort_net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = l.local_addr().unwrap();
///     gort_sched::go(move || {
///         let mut c = gort_net::TcpStream::connect(addr).unwrap();
///         std::io::Write::write_all(&mut c, b"hi").unwrap();
///     });
///     let (mut s, _) = l.accept().unwrap();
///     let mut buf = [0; 2];
///     std::io::Read::read_exact(&mut s, &mut buf).unwrap();
///     assert_eq!(&buf, b"hi");
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct TcpListener(Arc<NetFd<std::net::TcpListener>>);

/// A TCP connection (std's `TcpStream`; Go's `net.TCPConn`).
#[derive(Clone)]
pub struct TcpStream(Arc<NetFd<std::net::TcpStream>>);

/// Iterator over the connections of a listener ([`TcpListener::incoming`]).
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TcpListener").field(self.0.sock()).finish()
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TcpStream").field(self.0.sock()).finish()
    }
}

fn domain(addr: &SocketAddr) -> Domain {
    if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    }
}

fn new_socket(addr: &SocketAddr) -> io::Result<Socket> {
    Socket::new(domain(addr), Type::STREAM.nonblocking(), None)
}

impl TcpListener {
    /// Binds to `addr` (resolved through the syscall handoff) and listens
    /// with the system's `somaxconn` backlog.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(addr, |a| {
            let s = new_socket(a)?;
            s.set_reuse_address(true)?;
            s.bind(&SockAddr::from(*a))?;
            s.listen(max_listener_backlog())?;
            TcpListener::register(s.into())
        })
    }

    fn register(l: std::net::TcpListener) -> io::Result<TcpListener> {
        l.set_nonblocking(true)?;
        Ok(TcpListener(NetFd::new(l)?))
    }

    /// Accepts a connection, parking until one comes. Errors such as
    /// EMFILE (too many open files) are returned as they are; the
    /// connection stays queued, and the next `accept` tries again.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, addr) = self.0.io(Mode::Read, |l| accept4(l.as_raw_fd()))?;
        let addr = addr.as_socket().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "accepted a non-IP address")
        })?;
        Ok((TcpStream(NetFd::new(s.into())?), addr))
    }

    /// An iterator over accepted connections (never `None`).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.sock().local_addr()
    }

    /// Another handle to the same listener (not a dup: see the crate doc).
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(self.clone())
    }

    /// Go's `Close`: an `accept` blocked on any handle returns an error,
    /// and so does every later one; the fd closes with the last handle.
    pub fn close(&self) {
        self.0.close();
        // Stop the kernel from queueing connections for us.
        let _ = socket2::SockRef::from(self.0.sock()).shutdown(Shutdown::Both);
    }

    /// Go's `SetDeadline`: `accept` fails with `TimedOut` after `at`
    /// (None: never), also an `accept` already waiting.
    pub fn set_deadline(&self, at: Option<Instant>) {
        self.0.set_deadline(Some(Mode::Read), at);
    }

    /// SO_ERROR.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.0.sock().take_error()
    }

    /// Registers a std listener (made non-blocking here).
    pub fn from_std(l: std::net::TcpListener) -> io::Result<TcpListener> {
        TcpListener::register(l)
    }

    /// The std listener, blocking again. Fails if other handles share it.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        into_std(self.0, |l| l.set_nonblocking(false))
    }
}

/// `accept4` with `SOCK_NONBLOCK | SOCK_CLOEXEC`.
fn accept4(fd: RawFd) -> io::Result<(Socket, SockAddr)> {
    // SAFETY: `try_init` hands us zeroed storage and its length, which is
    // what accept4 fills; it reads the address only if we return Ok.
    let (fd, addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            let r = libc::accept4(
                fd,
                storage.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            );
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(r)
            }
        })?
    };
    // SAFETY: accept4 returned a new fd that nothing else owns.
    Ok((unsafe { Socket::from_raw_fd(fd) }, addr))
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl TcpStream {
    /// Connects to `addr` (resolved through the syscall handoff), parking
    /// while the handshake is in progress; tries each address in turn.
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, |a| TcpStream::connect_until(a, None))
    }

    /// Connects to `addr`, failing with `TimedOut` after `timeout`.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        TcpStream::connect_until(addr, Some(Instant::now() + timeout))
    }

    fn connect_until(addr: &SocketAddr, until: Option<Instant>) -> io::Result<TcpStream> {
        let s = new_socket(addr)?;
        let fd = NetFd::new(std::net::TcpStream::from(s))?;
        let sa = SockAddr::from(*addr);
        match socket2::SockRef::from(fd.sock()).connect(&sa) {
            Ok(()) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::EINPROGRESS)
                    || e.raw_os_error() == Some(libc::EINTR) =>
            {
                // Writable when the handshake ended, either way.
                loop {
                    fd.wait(Mode::Write, until)?;
                    if let Some(e) = fd.sock().take_error()? {
                        return Err(e);
                    }
                    // Spurious: still in progress unless connected.
                    match fd.sock().peer_addr() {
                        Ok(_) => break,
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) => return Err(e),
        }
        Ok(TcpStream(fd))
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.sock().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.sock().local_addr()
    }

    /// Shuts down the read half, the write half, or both (shutdown(2)): a
    /// peer's read sees the end of the stream; a read blocked here on the
    /// read half returns 0.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.0.sock().shutdown(how)
    }

    /// TCP_NODELAY.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.0.sock().set_nodelay(nodelay)
    }

    /// TCP_NODELAY.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.0.sock().nodelay()
    }

    /// IP_TTL.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.0.sock().set_ttl(ttl)
    }

    /// std's per-operation read timeout: a read that waits longer fails
    /// with `TimedOut`. A zero duration is an error.
    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.0.set_timeout(Mode::Read, d)
    }

    /// std's per-operation write timeout.
    pub fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.0.set_timeout(Mode::Write, d)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.0.timeout(Mode::Read))
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.0.timeout(Mode::Write))
    }

    /// Go's `SetDeadline`: reads and writes fail with `TimedOut` after
    /// `at` (None: never), also those already waiting.
    pub fn set_deadline(&self, at: Option<Instant>) {
        self.0.set_deadline(None, at);
    }

    /// Go's `SetReadDeadline`.
    pub fn set_read_deadline(&self, at: Option<Instant>) {
        self.0.set_deadline(Some(Mode::Read), at);
    }

    /// Go's `SetWriteDeadline`.
    pub fn set_write_deadline(&self, at: Option<Instant>) {
        self.0.set_deadline(Some(Mode::Write), at);
    }

    /// Another handle to the same connection (not a dup: see the crate
    /// doc). Deadlines and timeouts are shared.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(self.clone())
    }

    /// Go's `Close`: reads and writes blocked on any handle return an
    /// error (and every later one); the peer sees the end of the stream;
    /// the fd closes with the last handle.
    pub fn close(&self) {
        self.0.close();
        let _ = self.0.sock().shutdown(Shutdown::Both);
    }

    /// Reads without consuming (MSG_PEEK), parking until data comes.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.io(Mode::Read, |s| s.peek(buf))
    }

    /// SO_ERROR.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.0.sock().take_error()
    }

    /// Registers a connected std stream (made non-blocking here).
    pub fn from_std(s: std::net::TcpStream) -> io::Result<TcpStream> {
        s.set_nonblocking(true)?;
        Ok(TcpStream(NetFd::new(s)?))
    }

    /// The std stream, blocking again. Fails if other handles share it.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        into_std(self.0, |s| s.set_nonblocking(false))
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.io(Mode::Read, |mut s| s.read(buf))
    }
    fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        self.0.io(Mode::Read, |mut s| s.read_vectored(bufs))
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.io(Mode::Write, |mut s| s.write(buf))
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.io(Mode::Write, |mut s| s.write_vectored(bufs))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
    fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

crate::fd_conversions!(TcpStream, std::net::TcpStream);
crate::fd_conversions!(TcpListener, std::net::TcpListener);

//! Unix domain sockets: [`UnixListener`], [`UnixStream`],
//! [`UnixDatagram`], shaped like `std::os::unix::net`'s, parking the
//! goroutine while they wait.
//!
//! A non-blocking connect to a Unix socket whose backlog is full fails
//! with EAGAIN (not EINPROGRESS, as TCP's): the connect waits for
//! writability and tries again.

use crate::fd::{into_std, max_listener_backlog, NetFd};
use gort_sched::netpoll::Mode;
use socket2::{Domain, SockAddr, Socket, Type};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{self as unet, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A Unix stream listener (std's `UnixListener`).
#[derive(Clone)]
pub struct UnixListener(Arc<NetFd<unet::UnixListener>>);

/// A Unix stream connection (std's `UnixStream`).
#[derive(Clone)]
pub struct UnixStream(Arc<NetFd<unet::UnixStream>>);

/// A Unix datagram socket (std's `UnixDatagram`).
#[derive(Clone)]
pub struct UnixDatagram(Arc<NetFd<unet::UnixDatagram>>);

/// Iterator over a Unix listener's connections.
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

macro_rules! debug_via_sock {
    ($t:ident) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($t)).field(self.0.sock()).finish()
            }
        }
    };
}
debug_via_sock!(UnixListener);
debug_via_sock!(UnixStream);
debug_via_sock!(UnixDatagram);

impl UnixListener {
    /// Binds to `path` and listens with the system's `somaxconn` backlog.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        let s = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        s.bind(&SockAddr::unix(path)?)?;
        s.listen(max_listener_backlog())?;
        Ok(UnixListener(NetFd::new(unet::UnixListener::from(s))?))
    }

    /// Accepts a connection, parking until one comes.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, a) = self.0.io(Mode::Read, |l| l.accept())?;
        s.set_nonblocking(true)?;
        Ok((UnixStream(NetFd::new(s)?), a))
    }

    /// An iterator over accepted connections (never `None`).
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.sock().local_addr()
    }

    /// Another handle to the same listener (not a dup).
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        Ok(self.clone())
    }

    /// Go's `Close`: an `accept` blocked on any handle returns an error.
    pub fn close(&self) {
        self.0.close();
    }

    /// Go's `SetDeadline` for `accept`.
    pub fn set_deadline(&self, at: Option<Instant>) {
        self.0.set_deadline(Some(Mode::Read), at);
    }

    /// Registers a std listener (made non-blocking here).
    pub fn from_std(l: unet::UnixListener) -> io::Result<UnixListener> {
        l.set_nonblocking(true)?;
        Ok(UnixListener(NetFd::new(l)?))
    }

    /// The std listener, blocking again. Fails if other handles share it.
    pub fn into_std(self) -> io::Result<unet::UnixListener> {
        into_std(self.0, |l| l.set_nonblocking(false))
    }
}

impl Iterator for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;
    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl UnixStream {
    /// Connects to the socket at `path`, parking while its backlog is full.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let addr = SockAddr::unix(path)?;
        let s = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        let fd = NetFd::new(unet::UnixStream::from(s))?;
        loop {
            match socket2::SockRef::from(fd.sock()).connect(&addr) {
                Ok(()) => return Ok(UnixStream(fd)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => fd.wait(Mode::Write, None)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// A connected pair (socketpair(2)).
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = unet::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.sock().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.sock().peer_addr()
    }

    /// shutdown(2).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.0.sock().shutdown(how)
    }

    /// std's per-operation read timeout (fails with `TimedOut`).
    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.0.set_timeout(Mode::Read, d)
    }

    /// std's per-operation write timeout.
    pub fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.0.set_timeout(Mode::Write, d)
    }

    /// Go's `SetDeadline` (applies to waits in progress).
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

    /// Another handle to the same connection (not a dup).
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(self.clone())
    }

    /// Go's `Close`: operations blocked on any handle return an error.
    pub fn close(&self) {
        self.0.close();
        let _ = self.0.sock().shutdown(Shutdown::Both);
    }

    /// Registers a connected std stream (made non-blocking here).
    pub fn from_std(s: unet::UnixStream) -> io::Result<UnixStream> {
        s.set_nonblocking(true)?;
        Ok(UnixStream(NetFd::new(s)?))
    }

    /// The std stream, blocking again. Fails if other handles share it.
    pub fn into_std(self) -> io::Result<unet::UnixStream> {
        into_std(self.0, |s| s.set_nonblocking(false))
    }
}

impl Read for &UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.io(Mode::Read, |mut s| s.read(buf))
    }
}

impl Write for &UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.io(Mode::Write, |mut s| s.write(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl UnixDatagram {
    /// Binds to `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        let s = Socket::new(Domain::UNIX, Type::DGRAM.nonblocking(), None)?;
        s.bind(&SockAddr::unix(path)?)?;
        Ok(UnixDatagram(NetFd::new(unet::UnixDatagram::from(s))?))
    }

    /// An unbound socket.
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(unet::UnixDatagram::unbound()?)
    }

    /// A connected pair (socketpair(2)).
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = unet::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Sets the default peer.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.0.sock().connect(path)
    }

    /// Sends to `path`, parking while the receiver's queue is full.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.0.io(Mode::Write, |s| s.send_to(buf, path))
    }

    /// Receives a datagram and its sender's address.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.io(Mode::Read, |s| s.recv_from(buf))
    }

    /// Sends to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.io(Mode::Write, |s| s.send(buf))
    }

    /// Receives from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.io(Mode::Read, |s| s.recv(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.sock().local_addr()
    }

    /// std's per-operation read timeout (fails with `TimedOut`).
    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.0.set_timeout(Mode::Read, d)
    }

    /// Go's `SetDeadline` (applies to waits in progress).
    pub fn set_deadline(&self, at: Option<Instant>) {
        self.0.set_deadline(None, at);
    }

    /// Another handle to the same socket (not a dup).
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        Ok(self.clone())
    }

    /// Go's `Close`: operations blocked on any handle return an error.
    pub fn close(&self) {
        self.0.close();
    }

    /// Registers a std socket (made non-blocking here).
    pub fn from_std(s: unet::UnixDatagram) -> io::Result<UnixDatagram> {
        s.set_nonblocking(true)?;
        Ok(UnixDatagram(NetFd::new(s)?))
    }

    /// The std socket, blocking again. Fails if other handles share it.
    pub fn into_std(self) -> io::Result<unet::UnixDatagram> {
        into_std(self.0, |s| s.set_nonblocking(false))
    }
}

crate::fd_conversions!(UnixListener, unet::UnixListener);
crate::fd_conversions!(UnixStream, unet::UnixStream);
crate::fd_conversions!(UnixDatagram, unet::UnixDatagram);

//! UDP: [`UdpSocket`], shaped like std's, parking the goroutine while a
//! receive waits for a datagram (or a send for buffer space).

use crate::fd::{each_addr, into_std, NetFd};
use gort_sched::netpoll::Mode;
use socket2::{Domain, SockAddr, Socket, Type};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A UDP socket (std's `UdpSocket`; Go's `net.UDPConn`).
///
/// ```
/// gort_sched::run(|| {
///     let a = gort_net::UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = gort_net::UdpSocket::bind("127.0.0.1:0").unwrap();
///     a.send_to(b"ping", b.local_addr().unwrap()).unwrap();
///     let mut buf = [0; 8];
///     let (n, from) = b.recv_from(&mut buf).unwrap();
///     assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr().unwrap()));
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct UdpSocket(Arc<NetFd<std::net::UdpSocket>>);

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("UdpSocket").field(self.0.sock()).finish()
    }
}

impl UdpSocket {
    /// Binds to `addr` (resolved through the syscall handoff).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(addr, |a| {
            let d = if a.is_ipv4() {
                Domain::IPV4
            } else {
                Domain::IPV6
            };
            let s = Socket::new(d, Type::DGRAM.nonblocking(), None)?;
            s.bind(&SockAddr::from(*a))?;
            Ok(UdpSocket(NetFd::new(std::net::UdpSocket::from(s))?))
        })
    }

    /// Receives one datagram and its sender, parking until one comes.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.io(Mode::Read, |s| s.recv_from(buf))
    }

    /// Like `recv_from`, without taking the datagram off the queue.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.io(Mode::Read, |s| s.peek_from(buf))
    }

    /// Sends `buf` to `addr` (resolved through the syscall handoff; the
    /// first address is used).
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let to = crate::fd::resolve(addr)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
            })?;
        self.0.io(Mode::Write, |s| s.send_to(buf, to))
    }

    /// Sets the default peer: `send` and `recv` use it, and datagrams from
    /// others are dropped.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |a| self.0.sock().connect(a))
    }

    /// Sends to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.io(Mode::Write, |s| s.send(buf))
    }

    /// Receives from the connected peer, parking until a datagram comes.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.io(Mode::Read, |s| s.recv(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.sock().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.sock().peer_addr()
    }

    /// SO_BROADCAST.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.0.sock().set_broadcast(on)
    }

    /// std's per-operation read timeout (fails with `TimedOut`).
    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.0.set_timeout(Mode::Read, d)
    }

    /// std's per-operation write timeout.
    pub fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.0.set_timeout(Mode::Write, d)
    }

    /// Go's `SetDeadline` (both directions; applies to waits in progress).
    pub fn set_deadline(&self, at: Option<Instant>) {
        self.0.set_deadline(None, at);
    }

    /// Go's `SetReadDeadline`.
    pub fn set_read_deadline(&self, at: Option<Instant>) {
        self.0.set_deadline(Some(Mode::Read), at);
    }

    /// Another handle to the same socket (not a dup).
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(self.clone())
    }

    /// Go's `Close`: receives blocked on any handle return an error.
    pub fn close(&self) {
        self.0.close();
    }

    /// SO_ERROR.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.0.sock().take_error()
    }

    /// Registers a std socket (made non-blocking here).
    pub fn from_std(s: std::net::UdpSocket) -> io::Result<UdpSocket> {
        s.set_nonblocking(true)?;
        Ok(UdpSocket(NetFd::new(s)?))
    }

    /// The std socket, blocking again. Fails if other handles share it.
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        into_std(self.0, |s| s.set_nonblocking(false))
    }
}

crate::fd_conversions!(UdpSocket, std::net::UdpSocket);

//! Networking for goroutines, shaped like `std::net` (Go's `net`): a
//! blocking call parks the goroutine, not its thread, so a server can
//! run a goroutine per connection. From a plain thread the same calls
//! block the thread, as channels do.
//!
//! - TCP: [`TcpListener`] (bound with the system's `somaxconn` backlog, as
//!   Go's), [`TcpStream`].
//! - UDP: [`UdpSocket`].
//! - Unix domain sockets: [`UnixListener`], [`UnixStream`],
//!   [`UnixDatagram`].
//! - [`PollFd`]: waits until any non-blocking fd (a pipe, an eventfd, a C
//!   library's socket) is readable or writable, so other libraries can
//!   integrate with the scheduler.
//!
//! Differences from std, all Go's:
//! - `try_clone` gives another handle to the same socket (no dup), and
//!   `close` on any handle wakes every goroutine blocked on it with an
//!   error of kind `ConnectionAborted`; the fd is closed when the last
//!   handle is dropped.
//! - Besides std's per-operation timeouts (`set_read_timeout`, which fail
//!   with `TimedOut`, not `WouldBlock`), absolute deadlines
//!   (`set_deadline`, `set_read_deadline`, `set_write_deadline`, Go's
//!   SetDeadline) that also apply to an operation already waiting.
//! - Name resolution (`getaddrinfo`) runs through `gort::syscall`, so a
//!   slow DNS lookup does not hold a P.
//!
//! The poller itself is gort-sched's netpoll room (docs/net.md has the
//! design).

#![deny(unsafe_op_in_unsafe_fn)]

mod convert;
mod fd;
mod pollfd;
mod tcp;
mod udp;
mod unix;

pub use pollfd::{set_nonblocking, PollFd};
pub use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, ToSocketAddrs};
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixIncoming, UnixListener, UnixStream};

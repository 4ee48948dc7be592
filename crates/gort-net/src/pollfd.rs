//! [`PollFd`]: readiness for any non-blocking fd the user owns (a pipe,
//! an eventfd, a C library's socket), so that code outside this crate can
//! park a goroutine until its fd is ready instead of blocking a thread.
//!
//! The poller is edge-triggered, but a user cannot be asked to drain the
//! fd before each wait (a C library reads what it wants). So each wait
//! first asks poll(2), with a zero timeout, whether the fd is ready now,
//! and parks only if not: a level-triggered view at the price of one
//! system call per wait. An edge that comes between that check and the
//! park is kept by the descriptor (gort-sched's netpoll protocol), so it
//! is not lost.

use gort_sched::netpoll::{closed_error, Mode, Registration};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Instant;

/// A user's non-blocking fd registered with the network poller; waits
/// park the goroutine (or block a plain thread).
///
/// ```
/// use std::io::Write;
/// gort_sched::run(|| {
///     let (r, mut w) = std::io::pipe().unwrap();
///     gort_net::set_nonblocking(&r).unwrap();
///     let pr = gort_net::PollFd::new(r).unwrap();
///     gort_sched::go(move || w.write_all(b"x").unwrap());
///     pr.readable(None).unwrap();
/// })
/// .unwrap();
/// ```
pub struct PollFd<F: AsFd> {
    reg: Registration,
    inner: F,
}

impl<F: AsFd> std::fmt::Debug for PollFd<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollFd")
            .field("fd", &self.inner.as_fd().as_raw_fd())
            .finish()
    }
}

impl<F: AsFd> PollFd<F> {
    /// Registers `inner`'s fd, which must be non-blocking (see
    /// [`set_nonblocking`]) and pollable (not a
    /// regular file: epoll refuses those with EPERM).
    pub fn new(inner: F) -> io::Result<PollFd<F>> {
        let reg = Registration::new(inner.as_fd().as_raw_fd())?;
        Ok(PollFd { reg, inner })
    }

    /// Parks until the fd is readable (or has hung up, or an error), or
    /// `until` passes (`TimedOut`), or [`close`](PollFd::close) (an error).
    pub fn readable(&self, until: Option<Instant>) -> io::Result<()> {
        self.ready(Mode::Read, until)
    }

    /// Parks until the fd is writable; as [`readable`](PollFd::readable).
    pub fn writable(&self, until: Option<Instant>) -> io::Result<()> {
        self.ready(Mode::Write, until)
    }

    fn ready(&self, mode: Mode, until: Option<Instant>) -> io::Result<()> {
        loop {
            if self.reg.is_closing() {
                return Err(closed_error());
            }
            if self.ready_now(mode)? {
                return Ok(());
            }
            self.reg.wait_until(mode, until)?;
        }
    }

    /// poll(2) with a zero timeout.
    fn ready_now(&self, mode: Mode) -> io::Result<bool> {
        let events = match mode {
            Mode::Read => libc::POLLIN,
            Mode::Write => libc::POLLOUT,
        };
        let mut p = libc::pollfd {
            fd: self.inner.as_fd().as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let r = unsafe { libc::poll(&mut p, 1, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(e);
        }
        Ok(r > 0 && p.revents != 0)
    }

    /// Go's `SetDeadline` for both directions (applies to waits in
    /// progress; None: none).
    pub fn set_deadline(&self, at: Option<Instant>) {
        self.reg.set_deadline(None, at);
    }

    /// Every wait in progress and every later one fails with an error of
    /// kind `ConnectionAborted`. The fd stays open until the drop.
    pub fn close(&self) {
        self.reg.close();
    }

    /// The fd's owner.
    pub fn get_ref(&self) -> &F {
        &self.inner
    }

    /// Deregisters and gives the owner back.
    pub fn into_inner(self) -> F {
        let PollFd { reg, inner } = self;
        drop(reg);
        inner
    }
}

impl<F: AsFd> AsFd for PollFd<F> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

/// Sets O_NONBLOCK on `fd` (for [`PollFd`]).
pub fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on a borrowed, open fd; no pointers.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        if flags < 0 || libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

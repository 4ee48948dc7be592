//! Conversions every socket type shares: to and from raw fds and std
//! types. A macro, because the types differ only in their std socket.
//!
//! - `AsRawFd`/`AsFd` borrow the socket's fd (still registered and
//!   non-blocking: an operation on it directly may see EAGAIN).
//! - `FromRawFd` takes an fd, makes it non-blocking and registers it; a
//!   failed registration (no poller could be made, or the fd is not
//!   pollable) panics with the reason, since the trait cannot fail;
//!   `from_std` and `TryFrom` return it as an error instead.
//! - `IntoRawFd` deregisters and gives the fd back, blocking again. A
//!   socket still shared by `try_clone` handles cannot be given away
//!   (another handle would keep using the fd): that panics with a message
//!   saying so; `into_std` returns it as an error instead.

/// Implements the conversions for `$t`, a tuple struct around
/// `Arc<NetFd<$std>>` with `from_std` and `into_std`.
#[macro_export]
#[doc(hidden)]
macro_rules! fd_conversions {
    ($t:ident, $std:ty) => {
        impl std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(self.0.sock())
            }
        }

        impl std::os::fd::AsFd for $t {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(self.0.sock())
            }
        }

        impl std::os::fd::FromRawFd for $t {
            unsafe fn from_raw_fd(fd: std::os::fd::RawFd) -> $t {
                // SAFETY: the caller gives us an open fd of this kind that
                // nothing else owns (the trait's contract).
                let s = unsafe { <$std as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                <$t>::from_std(s).unwrap_or_else(|e| {
                    panic!(
                        concat!(stringify!($t), "::from_raw_fd: cannot register fd {}: {}"),
                        fd, e
                    )
                })
            }
        }

        impl std::os::fd::IntoRawFd for $t {
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                match self.into_std() {
                    Ok(s) => std::os::fd::IntoRawFd::into_raw_fd(s),
                    Err(e) => panic!(concat!(stringify!($t), "::into_raw_fd: {}"), e),
                }
            }
        }

        impl TryFrom<$std> for $t {
            type Error = std::io::Error;
            fn try_from(s: $std) -> std::io::Result<$t> {
                <$t>::from_std(s)
            }
        }

        impl TryFrom<$t> for $std {
            type Error = std::io::Error;
            fn try_from(s: $t) -> std::io::Result<$std> {
                s.into_std()
            }
        }
    };
}

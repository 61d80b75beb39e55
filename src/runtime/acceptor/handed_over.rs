//! Accepting on a listening socket another process handed over (a service
//! manager's, see `runtime/listen_fds.rs`, or the process this one replaces)
//! instead of binding one.

use std::os::fd::{FromRawFd, IntoRawFd, RawFd};

use mio::net::TcpListener;

use super::Acceptor;
use crate::runtime::error::{Error, Result};

impl Acceptor {
    /// Accepts on `fd`, a listening socket handed over. The acceptor owns
    /// `fd` from then on (closed by `stop`); on failure it stays the
    /// caller's. `InvalidArgument` unless `fd` is a listening TCP socket.
    pub fn start_fd(&self, fd: RawFd) -> Result<()> {
        let reactor = self.ready_to_start()?;
        if !is_listening_stream(fd) {
            return Err(Error::InvalidArgument("not a listening TCP socket"));
        }
        // SAFETY: `fd` is an open socket (checked above) that the caller hands
        // over; it is given back below (into_raw_fd) if it cannot be used.
        let std_listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        if std_listener.set_nonblocking(true).is_err() {
            let _ = std_listener.into_raw_fd();
            return Err(Error::Io("making the socket non-blocking"));
        }
        self.listen_on(reactor, TcpListener::from_std(std_listener))
            .map_err(|(listener, e)| {
                // Not ours after all: the caller keeps it open.
                let _ = listener.into_raw_fd();
                e
            })
    }
}

/// Whether `fd` is a TCP socket (IPv4 or IPv6) in the listening state.
fn is_listening_stream(fd: RawFd) -> bool {
    if fd < 0 {
        return false;
    }
    let option = |name: i32| {
        let mut value: i32 = 0;
        let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `value`; a bad fd
        // is an error, not undefined behaviour.
        let ok = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, name, (&mut value as *mut i32).cast(), &mut len) };
        (ok == 0).then_some(value)
    };
    // SAFETY: an all-zero sockaddr_storage is valid; getsockname writes at
    // most `len` bytes into it.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: as above; the pointer and length describe `addr`.
    let named = unsafe { libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_storage).cast(), &mut len) } == 0;
    let inet = matches!(i32::from(addr.ss_family), libc::AF_INET | libc::AF_INET6);
    named && inet && option(libc::SO_TYPE) == Some(libc::SOCK_STREAM) && option(libc::SO_ACCEPTCONN) == Some(1)
}

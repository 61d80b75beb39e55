//! Socket I/O of reactor connections, behind a small trait: plain connections
//! use it directly, TLS (`tls/stream.rs`) moves its records through it.

use std::io::{self, IoSlice};
use std::mem::{ManuallyDrop, MaybeUninit};
use std::os::fd::{FromRawFd, RawFd};

/// A peer that went away must yield EPIPE, not kill the program with SIGPIPE.
#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: i32 = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: i32 = 0;

/// Moves bytes between a connection and its peer.
pub trait Transport {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Reads into memory not yet initialized; `Ok(n)`: its first `n` bytes are.
    fn read_uninit(&self, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize>;
    fn write(&self, buf: &[u8]) -> io::Result<usize>;
    /// Writes `first` then `second` in one call (gathered); returns the bytes taken.
    fn write2(&self, first: &[u8], second: &[u8]) -> io::Result<usize>;
}

/// A connected, non-blocking TCP socket, by descriptor (the connection owns it).
#[derive(Clone, Copy)]
pub struct Socket(pub RawFd);

impl Transport for Socket {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for `buf.len()` writable bytes; the fd is owned by
        // the connection and open while it calls this.
        let n = unsafe { libc::read(self.0, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn read_uninit(&self, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for `buf.len()` writable bytes (read(2) only
        // writes, never reads them); the fd is open.
        let n = unsafe { libc::read(self.0, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn write2(&self, first: &[u8], second: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(first), IoSlice::new(second)])
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for `buf.len()` readable bytes; the fd is open.
        let n = unsafe { libc::send(self.0, buf.as_ptr().cast(), buf.len(), SEND_FLAGS) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

impl Socket {
    /// Writes `bufs` in order in one call (gathered); returns the bytes taken.
    pub fn write_vectored(self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // SAFETY: an all-zero msghdr is valid (no address, no control data).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        // IoSlice is ABI-compatible with iovec on Unix (documented by std).
        msg.msg_iov = bufs.as_ptr().cast_mut().cast();
        msg.msg_iovlen = bufs.len() as _;
        // SAFETY: the iovecs point to slices readable for their lengths and
        // alive during the call (sendmsg only reads them); the fd is open.
        let n = unsafe { libc::sendmsg(self.0, &msg, SEND_FLAGS) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Runs `f` on the socket as a `mio` stream without taking ownership.
    fn with_stream<R>(self, f: impl FnOnce(&mio::net::TcpStream) -> R) -> R {
        // SAFETY: the fd is an open socket owned by the connection; ManuallyDrop
        // keeps the temporary stream from closing it.
        let stream = ManuallyDrop::new(unsafe { mio::net::TcpStream::from_raw_fd(self.0) });
        f(&stream)
    }

    /// Makes the socket non-blocking (a program may hand over a blocking one).
    pub fn set_nonblocking(self) -> io::Result<()> {
        // SAFETY: fcntl on an open fd; errors are reported.
        let ok = unsafe {
            let flags = libc::fcntl(self.0, libc::F_GETFL);
            // Accepted sockets usually are already (one system call saved).
            flags >= 0
                && (flags & libc::O_NONBLOCK != 0 || libc::fcntl(self.0, libc::F_SETFL, flags | libc::O_NONBLOCK) >= 0)
        };
        if ok {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Disables Nagle's algorithm: the reactor batches writes itself.
    pub fn set_nodelay(self) {
        let _ = self.with_stream(|s| s.set_nodelay(true));
    }

    /// After a non-blocking connect: `Ok(true)` connected, `Ok(false)` still in
    /// progress, `Err` failed.
    pub fn connect_status(self) -> io::Result<bool> {
        self.with_stream(|s| {
            if let Some(error) = s.take_error()? {
                return Err(error);
            }
            match s.peer_addr() {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    /// Reads without taking the bytes out of the socket.
    pub fn peek(self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for `buf.len()` writable bytes; the fd is open.
        let n = unsafe { libc::recv(self.0, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_PEEK) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// The address of the peer (IPv4-mapped IPv6 addresses as IPv4).
    pub fn peer_addr(self) -> Option<std::net::SocketAddr> {
        self.with_stream(|s| s.peer_addr().ok())
            .map(|a| std::net::SocketAddr::new(a.ip().to_canonical(), a.port()))
    }

    pub fn close(self) {
        // SAFETY: the connection owns the fd and forgets it after this call.
        unsafe { libc::close(self.0) };
    }

    /// Reads away (at most `most` bytes of) what the peer sent and is not
    /// read yet, without waiting: closing a socket with unread input resets
    /// the connection, and a reset can make the peer drop what it had
    /// received but not read yet, such as the close frame just sent to it.
    pub fn discard_input(self, most: usize) {
        let mut buf = [0u8; 4096];
        let mut left = most;
        while left > 0 {
            match self.read(&mut buf[..left.min(4096)]) {
                Ok(0) => return,
                Ok(n) => left -= n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

//! The io_uring transport (cargo feature `io-uring`): the same reactor, with
//! the sockets of its server connections and listeners driven by one ring
//! instead of epoll readiness.
//!
//! - listeners: one multishot accept each;
//! - connections: one multishot receive each into a ring of provided buffers
//!   shared by the reactor (`buffers.rs`); the bytes are fed to the session
//!   where they lie and the buffer goes back to the ring at once (bytes a
//!   connection cannot take now are kept in its backlog, charged to the
//!   memory budget, and its receive is cancelled until it reads again);
//! - output: the session's output buffer moves into an in-flight send
//!   (`outgoing.rs`), the session gets a spare one; newer output waits until
//!   the send completed, and a partial send resubmits the rest first;
//! - the turn: what a turn queued is submitted in one `io_uring_enter`,
//!   which also waits for the next completions until the first timer's
//!   deadline (the wait's timeout);
//! - everything else stays on epoll: the epoll instance is itself watched by
//!   the ring, so the program's fds, the cross-thread waker, client
//!   connections (connect, proxies) and sockets waiting for a PROXY header
//!   run as they do without the ring.
//!
//! Completions carry the token and a generation of the slot they were made
//! for (`ops.rs`): one arriving after its connection closed finds another
//! generation and touches nothing of whoever holds the token now.
//!
//! Which transport a reactor uses is chosen when it is made: `WSCONN_IO`
//! (`epoll` or `uring`), else [`IoBackend::DEFAULT`]; without the feature, or
//! where io_uring is unavailable (a seccomp policy denies it, a kernel too
//! old for multishot receive and buffer rings), it is epoll.

#[cfg(feature = "io-uring")]
mod buffers;
#[cfg(not(feature = "io-uring"))]
mod disabled;
#[cfg(feature = "io-uring")]
mod driver;
#[cfg(feature = "io-uring")]
mod ops;
mod outgoing;

#[cfg(not(feature = "io-uring"))]
pub(crate) use disabled::Driver;
#[cfg(feature = "io-uring")]
pub(crate) use driver::Driver;
pub(crate) use outgoing::{Outgoing, MAX_PIECES};

/// The environment variable that chooses a reactor's transport.
pub const IO_ENV: &str = "WSCONN_IO";

/// How a reactor moves its sockets' bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoBackend {
    /// Readiness from epoll (mio), reads and writes by system calls.
    Epoll,
    /// Completions from an io_uring (feature `io-uring`).
    Uring,
}

impl IoBackend {
    /// What a reactor uses when `WSCONN_IO` does not say: epoll, until the
    /// ring wins on every benchmark row (see the README).
    pub const DEFAULT: IoBackend = IoBackend::Epoll;

    /// The transport `WSCONN_IO` asks for (`epoll` or `uring`, any case),
    /// else [`IoBackend::DEFAULT`]. Another value is ignored (the default).
    pub fn from_env() -> IoBackend {
        match std::env::var(IO_ENV) {
            Ok(v) if v.eq_ignore_ascii_case("uring") || v.eq_ignore_ascii_case("io_uring") => IoBackend::Uring,
            Ok(v) if v.eq_ignore_ascii_case("epoll") => IoBackend::Epoll,
            _ => IoBackend::DEFAULT,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            IoBackend::Epoll => "epoll",
            IoBackend::Uring => "uring",
        }
    }
}

/// What the ring reports to an object of the reactor.
#[cfg_attr(not(feature = "io-uring"), allow(dead_code))]
pub(crate) enum RingEvent<'a> {
    /// Bytes received (in a ring buffer, given back when this returns).
    Received(&'a mut [u8]),
    /// The multishot receive ended: 0 at the peer's EOF, else `-errno`
    /// (`ECANCELED` when asked, `ENOBUFS` when the buffers ran out).
    ReceiveEnded(i32),
    /// The output handed to the ring was written (`Ok`) or failed (`-errno`).
    Sent(Result<Box<Outgoing>, i32>),
    /// A listener accepted a socket (non-blocking, close-on-exec), or
    /// failed (`-errno`).
    Accepted(i32),
}

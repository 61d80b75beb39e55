//! What can go wrong in the runtime: the session's errors, and those of
//! sockets, timers and the objects' own state.

use crate::proto::error::Error as SessionError;
use crate::runtime::tls::TlsError;

/// An error of the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The protocol core refused or failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// An argument has a bad value (an IP address, a port, a URL).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A socket or system call failed (bind, listen, connect, resolve, read, write).
    #[error("{0} failed")]
    Io(&'static str),
    /// A handshake, pong or closing-handshake timer expired.
    #[error("{0} timeout")]
    Timeout(&'static str),
    /// The call is not valid in the object's current state.
    #[error("not valid in the object's current state")]
    State,
    /// The call would drop or restart a connection whose input is being processed
    /// (e.g. `start` from inside one of its own callbacks after `stop`).
    #[error("not allowed from inside a callback of the same connection")]
    Reentrant,
    /// A reactor's queue of jobs from other threads is full (it runs them
    /// slower than they come): nothing was queued; retry later.
    #[error("the reactor's job queue is full")]
    QueueFull,
    /// The reactor drained: the connection was cut at the drain's deadline,
    /// or was not open yet when the drain began.
    #[error("ended by the reactor's drain")]
    Drained,
    /// TLS failed: its setup (files, trust store) or a handshake or record.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The proxy refused to open the tunnel: its HTTP status (403, 502…) or
    /// the SOCKS5 reply (1-8).
    #[error("the proxy refused the tunnel: {0}")]
    ProxyRefused(u16),
    /// The proxy wants credentials or refused ours: HTTP 407 (or 401), or
    /// SOCKS5's answer (255: no method acceptable; else the RFC 1929 status).
    #[error("the proxy refused the credentials: {0}")]
    ProxyAuth(u16),
    /// The proxy broke off the dialogue: it closed the connection, or
    /// answered what is not HTTP or SOCKS5.
    #[error("proxy: {0}")]
    ProxyProtocol(&'static str),
    /// A redirect that is not followed: one too many, a loop, from `wss://`
    /// to `ws://`, or a `Location` that is missing or not a WebSocket URL.
    #[error("redirect not followed: {0}")]
    Redirect(&'static str),
}

pub type Result<T> = std::result::Result<T, Error>;

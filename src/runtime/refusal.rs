//! Why a server turned a connection away before it opened, and where each
//! reason is counted and logged. Every refusal is noted in one place
//! (`Reactor::note_refusal`, in `observe.rs`), which counts it and tells
//! the log, so that whatever watches refusals hangs off one call.

use std::cell::Cell;

use crate::proto::error::Error as SessionError;
use crate::runtime::log::LogEvent;
use crate::runtime::stats::Counters;

/// Why a connection was refused before its WebSocket opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The request was not a valid upgrade (400, 426, 431), or the client
    /// left or broke off before completing it.
    BadRequest,
    /// Its `Origin` is not allowed (403).
    Origin,
    /// The program rejected it (its upgrade callback).
    Program,
    /// Over the acceptor's limits (total or per address): closed at accept.
    Limits,
    /// PROXY protocol expected, and no valid header came.
    ProxyHeader,
    /// The TLS handshake failed.
    Tls,
    /// The handshake (TLS, PROXY header, upgrade or the program's decision)
    /// took longer than the handshake timeout.
    Timeout,
    /// The server shuts down: a drain refused the handshakes in progress
    /// (503), or the program refused the pending decisions
    /// (`Reactor::refuse_pending`).
    Shutdown,
}

impl Refusal {
    pub const ALL: [Refusal; 8] = [
        Refusal::BadRequest,
        Refusal::Origin,
        Refusal::Program,
        Refusal::Limits,
        Refusal::ProxyHeader,
        Refusal::Tls,
        Refusal::Timeout,
        Refusal::Shutdown,
    ];

    /// The counter it moves.
    pub(crate) fn counter(self, c: &Counters) -> &Cell<u64> {
        match self {
            Refusal::BadRequest => &c.refused_bad_request,
            Refusal::Origin => &c.refused_origin,
            Refusal::Program => &c.refused_program,
            Refusal::Limits => &c.refused_limits,
            Refusal::ProxyHeader => &c.proxy_header_failures,
            Refusal::Tls => &c.refused_tls,
            Refusal::Timeout => &c.refused_timeout,
            Refusal::Shutdown => &c.refused_draining,
        }
    }

    /// The line it is logged as.
    pub fn log_event(self) -> LogEvent {
        match self {
            Refusal::BadRequest | Refusal::Shutdown => LogEvent::HandshakeRefused,
            Refusal::Origin => LogEvent::OriginRefused,
            Refusal::Program => LogEvent::ProgramRefused,
            Refusal::Limits => LogEvent::LimitRefused,
            Refusal::ProxyHeader => LogEvent::ProxyHeaderFailed,
            Refusal::Tls => LogEvent::TlsFailed,
            Refusal::Timeout => LogEvent::HandshakeTimeout,
        }
    }

    /// The refusal a session's handshake failure is.
    pub fn of_handshake_error(error: &SessionError) -> Refusal {
        match error {
            SessionError::OriginNotAllowed => Refusal::Origin,
            SessionError::UpgradeRefused(_) => Refusal::Program,
            _ => Refusal::BadRequest,
        }
    }
}

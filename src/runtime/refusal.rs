//! Why a server turned a connection away before it opened, and the one place
//! every such refusal is noted (`Reactor::note_refusal`), so that counters,
//! logs and whatever else watches refusals hang off one call.

use std::cell::Cell;

use crate::proto::error::Error as SessionError;

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
    /// The server refused the pending decisions it was still waiting for
    /// (e.g. when draining before a shutdown).
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

    /// The refusal a session's handshake failure is.
    pub fn of_handshake_error(error: &SessionError) -> Refusal {
        match error {
            SessionError::OriginNotAllowed => Refusal::Origin,
            SessionError::UpgradeRefused(_) => Refusal::Program,
            _ => Refusal::BadRequest,
        }
    }
}

/// A reactor's count of refusals, by reason (plain integers of its thread).
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    counts: [Cell<u64>; Refusal::ALL.len()],
}

impl Refusals {
    pub fn note(&self, reason: Refusal) {
        let count = &self.counts[reason as usize];
        count.set(count.get() + 1);
    }

    pub fn count(&self, reason: Refusal) -> u64 {
        self.counts[reason as usize].get()
    }
}

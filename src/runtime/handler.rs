//! What a connection calls: the program's side of a reactor connection, as a
//! Rust trait. The C API's callback table is one implementation of it
//! (`ffi::callbacks`); a Rust program writes its own.

use crate::proto::event::{Message, MessageKind};
use crate::proto::handshake::request::UpgradeRequest;
use crate::runtime::connection::Connection;
use crate::runtime::error::Error;

/// How a connection ended, as `ConnHandler::on_close` is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending<'a> {
    /// The peer's close code (1005 if its close frame had none); or the one sent
    /// to it when it broke the protocol (1002, 1007, 1009…); 1000 after a plain
    /// HTTP exchange; 1006 when TCP dropped, an I/O error or a timeout ended it
    /// without a closing handshake.
    pub code: u16,
    pub reason: &'a str,
    /// What went wrong; `None` for a completed closing handshake or HTTP exchange.
    pub error: Option<Error>,
}

/// What `ConnHandler::on_upgrade` decided, unless it decided inside with
/// `Connection::upgrade_accept` / `upgrade_reject` (the answer is then ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeDecision {
    /// Accept with the defaults (the configured subprotocol selection, no
    /// extra header line).
    Accept,
    /// Refuse with this status (400-599), no extra line, no body.
    Reject(u16),
    /// Decide later, on the reactor's thread, within the handshake timeout.
    Pending,
}

/// The program's handling of one connection's events. Every method has a
/// default that does nothing. Methods receive the connection, which they may
/// use from inside (send, close, pause, ...): the data they are given is valid
/// only during the call.
#[allow(unused_variables)]
pub trait ConnHandler: Sized + 'static {
    /// The opening handshake completed. `path` is the request target (server
    /// role) or the path requested (client role).
    fn on_open(&self, conn: &Connection<Self>, path: &str, subprotocol: Option<&str>) {}

    /// Server: whether this handler decides upgrades (`on_upgrade`);
    /// without it every valid upgrade is accepted. Asked once per start.
    fn decides_upgrades(&self) -> bool {
        false
    }

    /// Server, when `decides_upgrades`: a valid upgrade request (its
    /// `Origin` allowed), before any byte of the response. `request` is
    /// valid during the call; later, while the decision is pending,
    /// `Connection::with_upgrade_request` reads it.
    fn on_upgrade(&self, conn: &Connection<Self>, request: &UpgradeRequest) -> UpgradeDecision {
        UpgradeDecision::Accept
    }

    /// A complete message (unless streaming receive is on).
    fn on_message(&self, conn: &Connection<Self>, message: Message<'_>) {}

    /// Streaming receive (`Connection::set_streaming`): the next piece of a
    /// message, `fin` on the last.
    fn on_fragment(&self, conn: &Connection<Self>, kind: MessageKind, data: &[u8], fin: bool) {}

    /// A ping arrived (its pong is already queued).
    fn on_ping(&self, conn: &Connection<Self>, data: &[u8]) {}

    /// A pong arrived.
    fn on_pong(&self, conn: &Connection<Self>, data: &[u8]) {}

    /// A plain HTTP request (`Connection::set_serve_http`): answer with
    /// `Connection::http_respond` from inside, or 404 is sent.
    fn on_http(&self, conn: &Connection<Self>, method: &str, path: &str) {}

    /// Output fell to a quarter of the max output after a send failed with
    /// `Full` or left output at half of it or more: sending may resume.
    fn on_drain(&self, conn: &Connection<Self>) {}

    /// The connection ended; called once, with the socket still open (it is
    /// closed when this returns).
    fn on_close(&self, conn: &Connection<Self>, ending: &Ending<'_>) {}
}

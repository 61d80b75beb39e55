//! The program's decision on a server connection's upgrade request: asked
//! in `ConnHandler::on_upgrade` once a valid request is parsed and before any
//! byte of the response, and taken there or later on the reactor's thread
//! (`upgrade_accept`, `upgrade_reject`). While it is pending the connection
//! is an ordinary one in its handshake: the handshake timeout runs, the
//! client's early bytes are held within the handshake size limit (and the
//! memory budget), and a client that leaves ends it (the close callbacks run;
//! a decision taken afterwards returns `Closed`). Every refusal is noted in
//! the reactor with its reason.

use crate::proto::error::Error as SessionError;
use crate::proto::handshake::answer::Header;
use crate::proto::handshake::request::UpgradeRequest;
use crate::proto::role::Role;
use crate::proto::session::Subprotocol;
use crate::proto::state::State;
use crate::runtime::connection::{Connection, Flags, Lifecycle};
use crate::runtime::error::{Error, Result};
use crate::runtime::handler::{ConnHandler, UpgradeDecision};
use crate::runtime::refusal::Refusal;

impl<H: ConnHandler> Connection<H> {
    /// `Event::Upgrade`: the handler decides now, or leaves it pending.
    pub(super) fn ask_handler(&self, request: &UpgradeRequest) {
        let decision = self.handler.on_upgrade(self, request);
        if self.state() != Some(State::Deciding) || self.has(Flags::RELEASED) {
            return; // decided inside, or released there (its answer is moot)
        }
        let _ = match decision {
            UpgradeDecision::Accept => self.upgrade_accept(Subprotocol::Default, &[]),
            UpgradeDecision::Reject(status) => self.upgrade_reject(status, &[], b""),
            UpgradeDecision::Pending => Ok(()),
        };
    }

    /// Whether a decision on this connection's upgrade is pending.
    pub fn upgrade_pending(&self) -> bool {
        self.lifecycle.get() == Lifecycle::Running && self.state() == Some(State::Deciding)
    }

    /// Runs `f` on the upgrade request while its decision is pending (outside
    /// `on_upgrade`, which is given it); `None` otherwise, also in the close
    /// callbacks of a connection that ended undecided (the request is freed
    /// right after them, whatever ended it).
    pub fn with_upgrade_request<R>(&self, f: impl FnOnce(&UpgradeRequest) -> R) -> Option<R> {
        if !self.upgrade_pending() {
            return None;
        }
        self.session()?.with_upgrade_request(f)
    }

    /// The session's decision call, or the error telling why none can be
    /// taken: `Closed` once the connection ended, `InvalidArgument` when no
    /// decision is pending.
    fn decide(&self, f: impl FnOnce(&crate::proto::session::Session) -> crate::proto::error::Result<()>) -> Result<()> {
        if self.lifecycle.get() != Lifecycle::Running {
            return Err(match self.lifecycle.get() {
                Lifecycle::Closed => SessionError::Closed.into(),
                _ => SessionError::InvalidArgument.into(),
            });
        }
        let session = self.session().ok_or(Error::Session(SessionError::Closed))?;
        Ok(f(&session)?)
    }

    /// Accepts the pending upgrade: the 101 (with `headers` after the
    /// library's lines) is queued and the connection opens (`on_open`, then
    /// what the client sent meanwhile). See `Session::accept_upgrade` for the
    /// rules; errors change nothing: `InvalidArgument` (a bad header line, a
    /// subprotocol not offered, no decision pending), `Closed` (the
    /// connection ended).
    pub fn upgrade_accept(&self, subprotocol: Subprotocol<'_>, headers: &[Header<'_>]) -> Result<()> {
        self.decide(|s| s.accept_upgrade(subprotocol, headers))?;
        // Outside the request's event: open now (inside, the session does as
        // the event returns, and this feed is refused as re-entrant).
        self.feed(&mut []);
        self.after_input();
        self.arm_timer();
        self.schedule_flush();
        // Reading stopped while the early bytes filled the handshake limit.
        self.set(Flags::READABLE);
        self.schedule_ready();
        Ok(())
    }

    /// Rejects the pending upgrade with `status` (400-599), `headers` and
    /// `body` (see `Session::reject_upgrade`); the connection ends once the
    /// answer is written (the close callbacks run, `close_error` giving the
    /// refusal). Errors as for [`Connection::upgrade_accept`].
    pub fn upgrade_reject(&self, status: u16, headers: &[Header<'_>], body: &[u8]) -> Result<()> {
        self.decide(|s| s.reject_upgrade(status, headers, body))?;
        self.refused(
            status,
            Refusal::Program,
            Error::Session(SessionError::UpgradeRefused(status)),
        );
        Ok(())
    }

    /// The reactor refuses what is still pending (`Reactor::refuse_pending`).
    pub(super) fn refuse_if_pending(&self, status: u16) -> bool {
        let error = Error::Session(SessionError::UpgradeRefused(status));
        self.upgrade_pending() && self.refuse_handshake(status, error).is_ok()
    }

    /// The server shuts down: refuses the opening handshake in progress
    /// with `status`, its request still being read or being decided; the
    /// close callbacks report `error`. Errors as for `upgrade_reject`, and
    /// `InvalidArgument` for a connection past its handshake.
    pub(super) fn refuse_handshake(&self, status: u16, error: Error) -> Result<()> {
        self.decide(|s| s.refuse_handshake(status).map_err(|_| SessionError::InvalidArgument))?;
        self.refused(status, Refusal::Shutdown, error);
        Ok(())
    }

    /// The session queued a refusal with `status`: noted (with the reactor,
    /// counted and logged), and the connection ends once it is written.
    fn refused(&self, status: u16, reason: Refusal, error: Error) {
        self.extra().close_error.get_or_insert(error);
        self.note_refusal(reason, || match reason {
            Refusal::Program => format!("handshake refused by the program with {status}"),
            _ => format!("handshake refused with {status}: the server shuts down"),
        });
        self.begin_closing();
        self.schedule_flush();
    }

    /// A server connection (the refusals noted are a server's).
    pub(super) fn is_server(&self) -> bool {
        self.session().is_some_and(|s| s.role() == Role::Server)
    }
}

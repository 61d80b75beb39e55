//! The program's decision on an upgrade request (server role, with
//! [`Session::set_decides_upgrades`]): accept, with extra header lines and a
//! chosen subprotocol, or reject with a status, lines and a body; taken
//! inside `Event::Upgrade` or at any later time.

use std::cell::Ref;

use super::{Options, Session};
use crate::proto::error::{Error, Result};
use crate::proto::handshake::answer::{self, Header};
use crate::proto::handshake::request::UpgradeRequest;
use crate::proto::handshake::server;
use crate::proto::state::State;

/// The subprotocol an accepted upgrade names in its 101.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subprotocol<'a> {
    /// The first configured one the client offered (as without a decision).
    Default,
    /// None, whatever was offered.
    None,
    /// This one, which the client must have offered.
    Named(&'a str),
}

impl Session {
    /// Server: the program decides each upgrade (`Event::Upgrade`) instead of
    /// the session accepting every valid one. Set before the first feed.
    pub fn set_decides_upgrades(&self, on: bool) {
        self.switch(Options::DECIDES_UPGRADES, on);
    }

    /// The request being decided, outside its event (inside, the event
    /// carries it); `None` when no decision is pending or inside a feed.
    pub fn upgrade_request(&self) -> Option<Ref<'_, UpgradeRequest>> {
        let rx = self.rx.try_borrow().ok()?;
        Ref::filter_map(rx, |rx| rx.pending_request()).ok()
    }

    /// How many more bytes may be fed now: while an upgrade is being decided,
    /// the client's early bytes are held up to the handshake size limit (more
    /// fails the handshake with 431). `None`: no such limit now.
    pub fn input_room(&self) -> Option<usize> {
        let rx = self.rx.try_borrow().ok()?;
        rx.input_room(self.state(), self.config.max_handshake_size())
    }

    /// The decision may be taken now: [`Error::Closed`] once the session
    /// ended (the client left, a timeout), [`Error::InvalidArgument`] when no
    /// upgrade waits for one (already decided, or not a deciding server).
    fn check_deciding(&self) -> Result<()> {
        match self.state() {
            State::Deciding => Ok(()),
            State::Closed | State::CloseSent | State::AwaitingEof => Err(Error::Closed),
            State::Handshake | State::HttpRequest | State::Open => Err(Error::InvalidArgument),
        }
    }

    /// Accepts the upgrade being decided: queues the 101 with `headers` after
    /// the library's lines (each name a token, each value free of CR, LF, NUL
    /// and other controls but tab; none of the lines the library writes:
    /// Upgrade, Connection, Sec-WebSocket-*, Content-Length,
    /// Transfer-Encoding) and opens the session. Inside `Event::Upgrade`,
    /// `Event::Open` follows when the handler returns; later, the next
    /// [`Session::feed`] (an empty one will do) delivers `Event::Open` and
    /// then the frames the client sent meanwhile. Errors (nothing changed):
    /// [`Error::InvalidArgument`] for a bad line, a subprotocol the client did
    /// not offer, or no decision pending; [`Error::Closed`] once the session
    /// ended.
    pub fn accept_upgrade(&self, subprotocol: Subprotocol<'_>, headers: &[Header<'_>]) -> Result<()> {
        self.check_deciding()?;
        answer::check_accept(headers)?;
        let mut tx = self.sender()?;
        let answering = tx.answering().ok_or(Error::InvalidArgument)?;
        let chosen = match subprotocol {
            Subprotocol::Default => answering.default_subprotocol.clone(),
            Subprotocol::None => None,
            Subprotocol::Named(name) if answering.offered.iter().any(|o| o == name) => Some(name.to_owned()),
            Subprotocol::Named(_) => return Err(Error::InvalidArgument),
        };
        let key = std::mem::take(&mut answering.key);
        let deflate = answering.deflate;
        answering.chosen = chosen.clone();
        server::write_accept_with(tx.buffer(), &key, chosen.as_deref(), deflate.as_ref(), headers);
        self.deflate.set(deflate.map_or(0, |a| a.pack()));
        self.state.set(State::Open);
        Ok(())
    }

    /// Rejects the upgrade being decided: queues exactly `HTTP/1.1 status
    /// reason`, `headers` in order, `Content-Length`, `Connection: close`, a
    /// blank line and `body` (add a `Content-Type` line for a body); the
    /// session then ends once the output is written. `status` is 400-599;
    /// lines as for [`Session::accept_upgrade`] (here only Connection,
    /// Content-Length and Transfer-Encoding are the library's). Errors as for
    /// `accept_upgrade`.
    pub fn reject_upgrade(&self, status: u16, headers: &[Header<'_>], body: &[u8]) -> Result<()> {
        self.check_deciding()?;
        answer::check_reject(status, headers)?;
        let mut tx = self.sender()?;
        tx.set_answering(None);
        answer::write_reject(tx.buffer(), status, headers, body);
        drop(tx);
        self.state.set(State::Closed);
        if let Ok(mut rx) = self.rx.try_borrow_mut() {
            rx.drop_pending();
        }
        Ok(())
    }
}

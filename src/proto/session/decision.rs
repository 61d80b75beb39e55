//! The program's decision on an upgrade request (server role, with
//! [`Session::set_decides_upgrades`]): accept, with extra header lines and a
//! chosen subprotocol, or reject with a status, lines and a body; taken
//! inside `Event::Upgrade` or at any later time.

use super::{Options, Session};
use crate::proto::error::{Error, Result};
use crate::proto::handshake::answer::{self, Header};
use crate::proto::handshake::request::UpgradeRequest;
use crate::proto::handshake::server;
use crate::proto::role::Role;
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

    /// Runs `f` on the request being decided, outside its event (inside,
    /// the event carries it); `None` when no decision is pending or inside a
    /// feed. `f` must not call back into the session.
    pub fn with_upgrade_request<R>(&self, f: impl FnOnce(&UpgradeRequest) -> R) -> Option<R> {
        self.peek_rx(|rx| rx.pending_request().map(f)).flatten()
    }

    /// How many more bytes may be fed now: while an upgrade is being decided,
    /// the client's early bytes are held up to the handshake size limit (more
    /// fails the handshake with 431). `None`: no such limit now.
    pub fn input_room(&self) -> Option<usize> {
        let (state, cap) = (self.state(), self.config.max_handshake_size());
        self.peek_rx(|rx| rx.input_room(state, cap)).flatten()
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
        self.write_refusal(status, headers, body)
    }

    /// Server: refuses the opening handshake in progress with `status`
    /// (400-599, no lines or body of the program's), whether its request is
    /// still being read or being decided: e.g. 503 when the server shuts
    /// down. The session ends once the output is written. [`Error::NotOpen`]
    /// (nothing done) unless this is a server session in its handshake;
    /// [`Error::InvalidArgument`] for a status out of range.
    pub fn refuse_handshake(&self, status: u16) -> Result<()> {
        let in_handshake = match self.state() {
            State::Deciding => true,
            State::Handshake => self.role() == Role::Server,
            _ => false,
        };
        if !in_handshake {
            return Err(Error::NotOpen);
        }
        answer::check_reject(status, &[])?;
        self.write_refusal(status, &[], b"")
    }

    /// Queues the refusal; the session ends once it is written.
    fn write_refusal(&self, status: u16, headers: &[Header<'_>], body: &[u8]) -> Result<()> {
        let mut tx = self.sender()?;
        tx.set_answering(None);
        answer::write_reject(tx.buffer(), status, headers, body);
        drop(tx);
        self.state.set(State::Closed);
        if let Ok(mut loan) = self.lend_rx() {
            loan.rx.drop_pending();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::proto::config::Config;
    use crate::proto::event::{Event, Message};

    const REQUEST: &[u8] = b"GET /r?t=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Protocol: a, b\r\n\r\n";
    /// A masked text frame "hi" (key 0).
    const HI: &[u8] = &[0x81, 0x82, 0, 0, 0, 0, b'h', b'i'];

    fn deciding() -> Session {
        let mut config = Config::default();
        config.add_subprotocol("b").unwrap();
        let s = Session::server(Arc::new(config));
        s.set_decides_upgrades(true);
        s
    }

    #[test]
    fn pending_keeps_the_request_and_early_frames_until_accepted() {
        let s = deciding();
        let mut input = [REQUEST, HI].concat();
        let mut asked = 0;
        s.feed(&mut input, &mut |_: &Session, e: Event<'_>| {
            if let Event::Upgrade(r) = e {
                assert_eq!(r.target(), "/r?t=1");
                asked += 1;
            }
        })
        .unwrap();
        assert_eq!((asked, s.state(), s.buffered()), (1, State::Deciding, 0));
        assert_eq!(
            s.with_upgrade_request(|r| r.header("host", 0).map(<[u8]>::to_vec))
                .unwrap(),
            Some(b"x".to_vec())
        );
        assert_eq!(s.input_room(), Some(8192 - HI.len()));
        assert_eq!(s.send_text("no"), Err(Error::NotOpen));
        assert_eq!(
            s.accept_upgrade(Subprotocol::Named("c"), &[]),
            Err(Error::InvalidArgument)
        );
        s.accept_upgrade(
            Subprotocol::Named("a"),
            &[Header {
                name: "Set-Cookie",
                value: b"k=v",
            }],
        )
        .unwrap();
        assert_eq!(s.accept_upgrade(Subprotocol::Default, &[]), Err(Error::InvalidArgument));
        let mut events = Vec::new();
        s.feed(&mut [], &mut |s: &Session, e: Event<'_>| match e {
            Event::Open { path, subprotocol, .. } => events.push(format!("open {path} {subprotocol:?}")),
            Event::Message(Message::Text(t)) => {
                events.push(format!("text {t}"));
                s.send_text(t).unwrap();
            }
            _ => {}
        })
        .unwrap();
        assert_eq!(events, ["open /r?t=1 Some(\"a\")", "text hi"]);
        assert!(s
            .pending()
            .ends_with(b"Sec-WebSocket-Protocol: a\r\nSet-Cookie: k=v\r\n\r\n\x81\x02hi"));
        assert_eq!(s.with_upgrade_request(|_| ()), None);
    }

    #[test]
    fn a_handshake_is_refused_while_read_or_decided_and_only_then() {
        let ignore = &mut |_: &Session, _: Event<'_>| {};
        // Its request half read.
        let s = Session::server(Arc::new(Config::default()));
        s.feed(&mut REQUEST[..20].to_vec(), ignore).unwrap();
        assert_eq!(s.refuse_handshake(200), Err(Error::InvalidArgument));
        assert_eq!(s.state(), State::Handshake, "nothing done");
        s.refuse_handshake(503).unwrap();
        assert_eq!(s.state(), State::Closed);
        assert!(s.pending().starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
        assert_eq!(s.refuse_handshake(503), Err(Error::NotOpen));
        // Being decided.
        let s = deciding();
        s.feed(&mut REQUEST.to_vec(), ignore).unwrap();
        s.refuse_handshake(503).unwrap();
        assert_eq!(s.accept_upgrade(Subprotocol::Default, &[]), Err(Error::Closed));
        // Open already, or a client's.
        let s = Session::server(Arc::new(Config::default()));
        s.feed(&mut REQUEST.to_vec(), ignore).unwrap();
        assert_eq!((s.state(), s.refuse_handshake(503)), (State::Open, Err(Error::NotOpen)));
        let client = Session::client(Arc::new(Config::default()), "x", "/").unwrap();
        assert_eq!(client.refuse_handshake(503), Err(Error::NotOpen));
    }

    #[test]
    fn decided_inside_the_event_or_refused_later() {
        let s = deciding();
        s.feed(&mut REQUEST.to_vec(), &mut |s: &Session, e: Event<'_>| {
            if let Event::Upgrade(_) = e {
                s.reject_upgrade(
                    401,
                    &[Header {
                        name: "WWW-Authenticate",
                        value: b"Bearer",
                    }],
                    b"no",
                )
                .unwrap();
            }
        })
        .unwrap();
        assert_eq!(s.state(), State::Closed);
        assert!(s
            .pending()
            .starts_with(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n"));
        assert_eq!(s.accept_upgrade(Subprotocol::Default, &[]), Err(Error::Closed));

        let s = deciding();
        s.feed(&mut REQUEST.to_vec(), &mut |_: &Session, _: Event<'_>| {})
            .unwrap();
        s.reject_upgrade(503, &[], b"").unwrap();
        assert_eq!(
            &*s.pending(),
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        assert!(!s.wants_read());

        // Early bytes beyond the handshake limit fail the handshake (431).
        let s = deciding();
        let mut input = [REQUEST, &[0u8; 9000][..]].concat();
        assert_eq!(
            s.feed(&mut input, &mut |_: &Session, _: Event<'_>| {}),
            Err(Error::HandshakeTooLarge)
        );
        assert!(s.pending().starts_with(b"HTTP/1.1 431 "));
    }
}

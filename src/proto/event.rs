//! What a session reports to the program.

use crate::proto::error::Error;
use crate::proto::handshake::headers::Headers;
use crate::proto::handshake::request::UpgradeRequest;

/// The two kinds of data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Binary,
}

/// A complete data message. Text is a `&str`: its validity is a fact of its type,
/// so sending it back ([`crate::Session::send_message`]) needs no second check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// A message of `kind` made of `data`; text must be UTF-8
    /// ([`Error::InvalidArgument`] otherwise).
    pub fn new(kind: MessageKind, data: &'a [u8]) -> Result<Message<'a>, Error> {
        Ok(match kind {
            MessageKind::Text => Message::Text(simdutf8::basic::from_utf8(data).map_err(|_| Error::InvalidArgument)?),
            MessageKind::Binary => Message::Binary(data),
        })
    }

    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Text(_) => MessageKind::Text,
            Message::Binary(_) => MessageKind::Binary,
        }
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(data) => data,
        }
    }
}

/// An event of a session. Borrowed data is valid only while the event is handled.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The opening handshake completed. `path` is the request target (server role)
    /// or the path requested (client role). `headers`: client role, the
    /// header lines of the server's 101 response; server role, none.
    Open {
        path: &'a str,
        subprotocol: Option<&'a str>,
        headers: Headers<'a>,
    },
    /// Server, when the program decides upgrades
    /// ([`crate::Session::set_decides_upgrades`]): a valid upgrade request
    /// (its `Origin` allowed) waits for the answer. Call
    /// [`crate::Session::accept_upgrade`] or [`crate::Session::reject_upgrade`]
    /// while handling it, or later (the session stays
    /// [`crate::State::Deciding`] until then).
    Upgrade(&'a UpgradeRequest),
    /// Client role: the server answered the upgrade request with `status`
    /// (not 101: a redirect, 401, 403, 503…) and these header lines. The
    /// session has failed: `Error(Refused(status))` follows.
    Refused { status: u16, headers: Headers<'a> },
    /// A complete message.
    Message(Message<'a>),
    /// Streaming receive ([`crate::Session::set_streaming`]): the next piece of a
    /// message, as it arrived; `fin` marks the last. Text pieces are valid UTF-8
    /// up to a code point that may continue in the next piece.
    Fragment {
        kind: MessageKind,
        data: &'a [u8],
        fin: bool,
    },
    /// A plain HTTP request (no WebSocket upgrade), when the session serves HTTP
    /// ([`crate::Session::set_serve_http`]). Answer with
    /// [`crate::Session::http_response`] while handling it, or 404 is sent.
    HttpRequest { method: &'a str, path: &'a str },
    /// A ping arrived; its pong is already queued.
    Ping(&'a [u8]),
    /// A pong arrived.
    Pong(&'a [u8]),
    /// The peer's close frame arrived (`code` 1005 when it had none); the reply
    /// close frame is already queued.
    Close { code: u16, reason: &'a str },
    /// The session failed: the peer broke the protocol (the matching close frame
    /// is queued), the handshake was refused, or the connection dropped.
    Error(Error),
}

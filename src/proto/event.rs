//! What a session reports to the program.

use crate::proto::error::Error;

/// The two kinds of data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Binary,
}

/// An event of a session. Borrowed data is valid only while the event is handled.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The opening handshake completed. `path` is the request target (server role)
    /// or the path requested (client role).
    Open {
        path: &'a str,
        subprotocol: Option<&'a str>,
    },
    /// A complete message (text is valid UTF-8).
    Message { kind: MessageKind, data: &'a [u8] },
    /// Streaming receive ([`crate::Receiver::set_streaming`]): the next piece of a
    /// message, as it arrived; `fin` marks the last. Text pieces are valid UTF-8
    /// up to a code point that may continue in the next piece.
    Fragment {
        kind: MessageKind,
        data: &'a [u8],
        fin: bool,
    },
    /// A plain HTTP request (no WebSocket upgrade), when the receiver serves HTTP
    /// ([`crate::Receiver::set_http`]). Answer with
    /// [`crate::Sender::http_response`] while handling it, or 404 is sent.
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

//! What can go wrong in the protocol core: misuse by the program, and the
//! peer's violations of RFC 6455 (each with the close code it calls for).

use crate::proto::close_code::CloseCode;

/// An error of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid argument")]
    InvalidArgument,
    #[error("output buffer full: nothing was queued, retry once output drains")]
    Full,
    #[error("the opening handshake is not complete")]
    NotOpen,
    #[error("the connection is closing or closed")]
    Closed,
    #[error("not allowed from inside an event of the same session")]
    Reentrant,
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("invalid UTF-8 in a text message or close reason")]
    InvalidUtf8,
    #[error("frame or message larger than the configured limit")]
    MessageTooBig,
    /// permessage-deflate: the peer's messages inflated more, for what it
    /// sent compressed, than the configured ratio allows (see
    /// `DeflateConfig::max_inflate_ratio`); closed with 1009.
    #[error("the peer's compressed messages inflate too much for their size")]
    InflateRatio,
    #[error("bad opening handshake: {0}")]
    Handshake(&'static str),
    #[error("opening handshake larger than the configured limit")]
    HandshakeTooLarge,
    #[error("the peer closed the TCP connection without a close handshake")]
    Eof,
    /// Server: the request's `Origin` is not allowed (403 queued).
    #[error("the upgrade request's origin is not allowed")]
    OriginNotAllowed,
    /// Server: the program refused the upgrade with this HTTP status.
    #[error("the upgrade was refused with HTTP {0}")]
    UpgradeRefused(u16),
    /// A compression setting was changed on a config with compression off.
    #[error("permessage-deflate is off in this config")]
    DeflateOff,
    /// Client role: the server answered the upgrade with this HTTP status
    /// instead of 101 (a redirect, 401, 403, 503…).
    #[error("the server refused the upgrade: HTTP {0}")]
    Refused(u16),
}

impl Error {
    /// The close code this error puts on the wire, for errors caused by the peer's frames.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Error::Protocol(_) => Some(CloseCode::PROTOCOL_ERROR),
            Error::InvalidUtf8 => Some(CloseCode::INVALID_PAYLOAD),
            Error::MessageTooBig | Error::InflateRatio => Some(CloseCode::MESSAGE_TOO_BIG),
            _ => None,
        }
    }

    /// The reason sent with that close code.
    pub fn close_reason(&self) -> &'static str {
        match self {
            Error::InvalidUtf8 => "invalid UTF-8",
            Error::MessageTooBig => "message too big",
            Error::InflateRatio => "inflates too much for its compressed size",
            _ => "protocol error",
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

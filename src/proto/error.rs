//! One error type for the whole crate, and its stable negative code for C.

use crate::proto::close_code::CloseCode;

/// Everything that can go wrong in wsconn.
///
/// Each variant maps to one stable negative `int` in the C API ([`Error::code`]);
/// errors caused by the peer also name the close code sent to it
/// ([`Error::close_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("a required pointer argument was NULL")]
    Null,
    #[error("invalid argument")]
    InvalidArgument,
    #[error("internal panic caught at the API boundary")]
    Panic,
    #[error("output buffer full: nothing was queued, retry once output drains")]
    Full,
    #[error("the opening handshake is not complete")]
    NotOpen,
    #[error("the connection is closing or closed")]
    Closed,
    #[error("called from inside a callback of the same session")]
    Reentrant,
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("invalid UTF-8 in a text message or close reason")]
    InvalidUtf8,
    #[error("frame or message larger than the configured limit")]
    MessageTooBig,
    #[error("bad opening handshake: {0}")]
    Handshake(&'static str),
    #[error("opening handshake larger than the configured limit")]
    HandshakeTooLarge,
    #[error("the peer closed the TCP connection without a close handshake")]
    Eof,
    #[error("a socket or system call failed")]
    Io,
    #[error("timed out")]
    Timeout,
    #[error("not valid in the object's current state")]
    State,
}

impl Error {
    /// The stable C code of this error (see `wsconn_result` in the header).
    pub fn code(&self) -> i32 {
        match self {
            Error::Null => -1,
            Error::InvalidArgument => -2,
            Error::Panic => -3,
            Error::Full => -4,
            Error::NotOpen => -5,
            Error::Closed => -6,
            Error::Reentrant => -7,
            Error::Protocol(_) => -8,
            Error::InvalidUtf8 => -9,
            Error::MessageTooBig => -10,
            Error::Handshake(_) => -11,
            Error::HandshakeTooLarge => -12,
            Error::Eof => -13,
            Error::Io => -14,
            Error::Timeout => -15,
            Error::State => -16,
        }
    }

    /// The close code this error puts on the wire, for errors caused by the peer's frames.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Error::Protocol(_) => Some(CloseCode::PROTOCOL_ERROR),
            Error::InvalidUtf8 => Some(CloseCode::INVALID_PAYLOAD),
            Error::MessageTooBig => Some(CloseCode::MESSAGE_TOO_BIG),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

//! Result codes and their messages.

use std::ffi::c_char;

/// Return codes of wsconn functions: `WSCONN_OK` (0) or a negative error.
/// A call that fails changed nothing (a refused send queued nothing).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsconn_result {
    /// Success.
    WSCONN_OK = 0,
    /// A required pointer argument was NULL.
    WSCONN_ERR_NULL = -1,
    /// An argument has a bad value: unknown message type, close code not allowed on
    /// the wire, control payload over 125 bytes, text that is not UTF-8, a string
    /// that is not UTF-8, or a call out of order (e.g. a whole message while a
    /// fragmented one is being sent).
    WSCONN_ERR_INVALID_ARGUMENT = -2,
    /// An internal panic was caught at the API boundary (a bug in wsconn).
    WSCONN_ERR_PANIC = -3,
    /// Output is over the configured limit: nothing was queued; write the pending
    /// output and retry.
    WSCONN_ERR_FULL = -4,
    /// The opening handshake is not complete yet.
    WSCONN_ERR_NOT_OPEN = -5,
    /// A close frame was already sent, or the session failed: nothing more is sent.
    WSCONN_ERR_CLOSED = -6,
    /// The call is not allowed from inside a callback of the same session.
    WSCONN_ERR_REENTRANT = -7,
    /// The peer broke RFC 6455; a close frame with 1002 was queued.
    WSCONN_ERR_PROTOCOL = -8,
    /// The peer sent text or a close reason that is not UTF-8; close 1007 was queued.
    WSCONN_ERR_INVALID_UTF8 = -9,
    /// The peer's frame or message exceeds the configured limit; close 1009 was queued.
    WSCONN_ERR_MESSAGE_TOO_BIG = -10,
    /// The opening handshake was invalid (server: an HTTP error response was queued).
    WSCONN_ERR_HANDSHAKE = -11,
    /// The opening handshake exceeded the configured size (server: 431 was queued).
    WSCONN_ERR_HANDSHAKE_TOO_LARGE = -12,
    /// The peer closed the TCP connection without a close handshake (1006).
    WSCONN_ERR_EOF = -13,
    /// A socket or system call failed (bind, listen, connect, resolve, read, write).
    WSCONN_ERR_IO = -14,
    /// A handshake, pong or closing-handshake timer expired.
    WSCONN_ERR_TIMEOUT = -15,
    /// The call is not valid in the object's current state (e.g. start twice,
    /// start without an fd, release a reactor from inside its dispatch).
    WSCONN_ERR_STATE = -16,
}

fn message(code: i32) -> &'static str {
    match code {
        0 => "success\0",
        -1 => "a required pointer argument was NULL\0",
        -2 => "invalid argument\0",
        -3 => "internal panic caught at the API boundary\0",
        -4 => "output buffer full: nothing was queued, retry once output drains\0",
        -5 => "the opening handshake is not complete\0",
        -6 => "the connection is closing or closed\0",
        -7 => "not allowed from inside a callback of the same session\0",
        -8 => "protocol error: the peer broke RFC 6455 (close 1002 sent)\0",
        -9 => "invalid UTF-8 from the peer (close 1007 sent)\0",
        -10 => "frame or message larger than the configured limit (close 1009 sent)\0",
        -11 => "bad opening handshake\0",
        -12 => "opening handshake larger than the configured limit\0",
        -13 => "the peer closed the TCP connection without a close handshake\0",
        -14 => "a socket or system call failed\0",
        -15 => "timed out\0",
        -16 => "not valid in the object's current state\0",
        _ => "unknown error code\0",
    }
}

/// A static, NUL-terminated English description of a `wsconn_result` code
/// (or of any int: unknown codes give "unknown error code"). Never NULL; the
/// string must not be freed. Thread-safe.
#[no_mangle]
pub extern "C" fn wsconn_strerror(code: i32) -> *const c_char {
    ffi_boundary!(c"internal panic".as_ptr(), { message(code).as_ptr().cast() })
}

/// The library version as a static NUL-terminated string, e.g. "0.1.0".
/// Never NULL; must not be freed. Thread-safe.
#[no_mangle]
pub extern "C" fn wsconn_version() -> *const c_char {
    ffi_boundary!(c"unknown".as_ptr(), {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::error::Error;
    use std::ffi::CStr;

    #[test]
    fn every_error_has_its_own_message_and_code() {
        let errors = [
            Error::Null,
            Error::InvalidArgument,
            Error::Panic,
            Error::Full,
            Error::NotOpen,
            Error::Closed,
            Error::Reentrant,
            Error::Protocol("x"),
            Error::InvalidUtf8,
            Error::MessageTooBig,
            Error::Handshake("x"),
            Error::HandshakeTooLarge,
            Error::Eof,
            Error::Io,
            Error::Timeout,
            Error::State,
        ];
        let mut seen = std::collections::HashSet::new();
        for (i, e) in errors.iter().enumerate() {
            assert_eq!(e.code(), -(i as i32) - 1, "{e:?}");
            // SAFETY: wsconn_strerror returns a static NUL-terminated string.
            let text = unsafe { CStr::from_ptr(wsconn_strerror(e.code())) }.to_str().unwrap();
            assert!(seen.insert(text), "duplicate message {text}");
            assert_ne!(text, "unknown error code");
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(wsconn_strerror(-999)) };
        assert_eq!(unknown.to_str().unwrap(), "unknown error code");
        assert_eq!(wsconn_result::WSCONN_ERR_EOF as i32, Error::Eof.code());
    }
}

//! The C result codes (`wsconn_result`, made from the list in
//! `result_codes.rs`), the mapping of every Rust error to one of them, and
//! their messages.

use std::ffi::c_char;

use crate::proto::error::Error as S;
use crate::runtime::error::Error as R;
use crate::runtime::tls::TlsError as T;

/// Whatever a C entry point can fail with: the layers' errors, and the two
/// that only the C boundary knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// A required pointer argument was NULL.
    Null,
    /// A panic was caught at the boundary.
    Panic,
    Session(S),
    /// Never holds `R::Session` (see `From<R>`).
    Runtime(R),
}

impl From<S> for Failure {
    fn from(e: S) -> Failure {
        Failure::Session(e)
    }
}

impl From<R> for Failure {
    fn from(e: R) -> Failure {
        match e {
            R::Session(e) => Failure::Session(e),
            other => Failure::Runtime(other),
        }
    }
}

/// Defines `wsconn_result` and its messages from the rows of `result_codes.rs`.
macro_rules! result_codes {
    (
        $(#[doc = $enum_doc:literal])*
        enum $enum:ident;
        $(
        $(#[doc = $doc:literal])*
        $name:ident = $value:literal, $message:literal $(, [$($from:pat),+])? ;
    )*) => {
        // (The header's copy is written by build.rs from the same list.)
        $(#[doc = $enum_doc])*
        #[repr(i32)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $enum {
            $( $(#[doc = $doc])* $name = $value, )*
        }

        impl wsconn_result {
            /// Every code, in order.
            pub const ALL: &'static [wsconn_result] = &[$(wsconn_result::$name),*];

            /// The code's message, NUL-terminated.
            fn message(self) -> &'static str {
                match self {
                    $( wsconn_result::$name => concat!($message, "\0"), )*
                }
            }

            pub fn from_code(code: i32) -> Option<wsconn_result> {
                match code {
                    $( $value => Some(wsconn_result::$name), )*
                    _ => None,
                }
            }
        }

        impl From<Failure> for wsconn_result {
            fn from(failure: Failure) -> wsconn_result {
                use Failure::*;
                match failure {
                    $( $( $($from)|+ => wsconn_result::$name, )? )*
                    // Normalized away by `From<R> for Failure`.
                    Runtime(R::Session(e)) => wsconn_result::from(Session(e)),
                }
            }
        }
    };
}

include!("result_codes.rs");

/// The C code of a failure.
pub(crate) fn code(failure: impl Into<Failure>) -> i32 {
    wsconn_result::from(failure.into()) as i32
}

/// Maps a result to a C return code.
pub(crate) fn code_of<E: Into<Failure>>(result: Result<(), E>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => code(e),
    }
}

/// A static, NUL-terminated English description of a `wsconn_result` code
/// (or of any int: unknown codes give "unknown error code"). Never NULL; the
/// string must not be freed. Thread-safe.
#[no_mangle]
pub extern "C" fn wsconn_strerror(code: i32) -> *const c_char {
    ffi_boundary!(c"internal panic".as_ptr(), {
        wsconn_result::from_code(code)
            .map_or("unknown error code\0", wsconn_result::message)
            .as_ptr()
            .cast()
    })
}

/// The library's version as a static NUL-terminated string, e.g. "0.1.0":
/// the `WSCONN_VERSION_STRING` of the header it was built with, so a program
/// can compare the two to find a library other than the one it was compiled
/// against. Never NULL; must not be freed. Thread-safe.
#[no_mangle]
pub extern "C" fn wsconn_version() -> *const c_char {
    ffi_boundary!(c"unknown".as_ptr(), {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn every_code_has_its_own_message() {
        let mut seen = std::collections::HashSet::new();
        for (i, code) in wsconn_result::ALL.iter().enumerate() {
            assert_eq!(*code as i32, -(i as i32), "{code:?}");
            // SAFETY: wsconn_strerror returns a static NUL-terminated string.
            let text = unsafe { CStr::from_ptr(wsconn_strerror(*code as i32)) }
                .to_str()
                .unwrap();
            assert!(seen.insert(text), "duplicate message {text}");
            assert_ne!(text, "unknown error code");
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(wsconn_strerror(-999)) };
        assert_eq!(unknown.to_str().unwrap(), "unknown error code");
    }

    #[test]
    fn every_rust_error_has_its_code() {
        use wsconn_result::*;
        let cases: [(Failure, wsconn_result); 25] = [
            (Failure::Null, WSCONN_ERR_NULL),
            (Failure::Panic, WSCONN_ERR_PANIC),
            (S::InvalidArgument.into(), WSCONN_ERR_INVALID_ARGUMENT),
            (R::InvalidArgument("x").into(), WSCONN_ERR_INVALID_ARGUMENT),
            (S::Full.into(), WSCONN_ERR_FULL),
            (R::QueueFull.into(), WSCONN_ERR_FULL),
            (S::NotOpen.into(), WSCONN_ERR_NOT_OPEN),
            (S::Closed.into(), WSCONN_ERR_CLOSED),
            (S::Reentrant.into(), WSCONN_ERR_REENTRANT),
            (R::Reentrant.into(), WSCONN_ERR_REENTRANT),
            (S::Protocol("x").into(), WSCONN_ERR_PROTOCOL),
            (S::InvalidUtf8.into(), WSCONN_ERR_INVALID_UTF8),
            (S::MessageTooBig.into(), WSCONN_ERR_MESSAGE_TOO_BIG),
            (S::InflateRatio.into(), WSCONN_ERR_INFLATE_RATIO),
            (S::Handshake("x").into(), WSCONN_ERR_HANDSHAKE),
            (S::HandshakeTooLarge.into(), WSCONN_ERR_HANDSHAKE_TOO_LARGE),
            (S::Eof.into(), WSCONN_ERR_EOF),
            (R::Io("x").into(), WSCONN_ERR_IO),
            (R::Timeout("x").into(), WSCONN_ERR_TIMEOUT),
            (R::State.into(), WSCONN_ERR_STATE),
            (R::Session(S::Full).into(), WSCONN_ERR_FULL),
            (Failure::Runtime(R::Session(S::Eof)), WSCONN_ERR_EOF),
            (S::DeflateOff.into(), WSCONN_ERR_DEFLATE_OFF),
            (R::Tls(T::BufferFull).into(), WSCONN_ERR_TLS_BUFFER_FULL),
            (R::Tls(T::CaCertificate).into(), WSCONN_ERR_TLS_CA_CERTIFICATE),
        ];
        for (failure, expected) in cases {
            assert_eq!(wsconn_result::from(failure), expected, "{failure:?}");
        }
    }
}

//! The C API: every `extern "C"` item, every C type, the C result codes and
//! the panic boundary. Each entry checks its arguments, converts them, calls
//! the protocol core or the runtime, and maps errors to `wsconn_result` codes;
//! it decides nothing itself. No panic crosses the boundary ([`ffi_boundary!`]
//! wraps every body).
//!
//! Types exported to C keep their C names (`wsconn_session_t`, …) so that the
//! generated header reads like a C library's.
#![allow(non_camel_case_types)]

/// Runs the body of an exported function, turning a panic into `$on_panic`.
/// Every `extern "C"` function's body goes through this macro (a test checks).
macro_rules! ffi_boundary {
    ($on_panic:expr, $body:block) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(_) => $on_panic,
        }
    };
}

pub mod acceptor;
pub mod callbacks;
pub mod client;
pub mod config;
pub mod conn;
pub mod deflate;
pub mod drain;
pub mod log;
pub mod reactor;
pub mod request;
pub mod result;
pub mod session;
pub mod stats;
pub mod tls;
pub mod topics;
pub mod upgrade;
pub mod watch;

pub use acceptor::*;
pub use callbacks::*;
pub use client::*;
pub use config::*;
pub use conn::*;
pub use deflate::*;
pub use drain::*;
pub use log::*;
pub use reactor::*;
pub use request::*;
pub use result::*;
pub use session::*;
pub use stats::*;
pub use tls::*;
pub use topics::*;
pub use upgrade::*;
pub use watch::*;

use std::ffi::{c_char, c_int, CStr};

use crate::proto::error::Error;
use crate::proto::event::MessageKind;
use result::Failure;

/// The bytes at `ptr..ptr+len`, or an error for NULL with a nonzero length.
/// A zero length accepts any pointer, NULL included.
///
/// # Safety
/// If `len > 0`, `ptr` must point to `len` readable bytes that stay valid and
/// unchanged for `'a`.
pub(crate) unsafe fn bytes_arg<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::Null);
    }
    if len > isize::MAX as usize {
        return Err(Error::InvalidArgument.into());
    }
    // SAFETY: non-NULL, and the caller guarantees `len` readable bytes for 'a.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Like [`bytes_arg`], for a buffer the library may modify in place.
///
/// # Safety
/// If `len > 0`, `ptr` must point to `len` writable bytes not otherwise accessed for `'a`.
pub(crate) unsafe fn bytes_arg_mut<'a>(ptr: *mut u8, len: usize) -> Result<&'a mut [u8], Failure> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(Failure::Null);
    }
    if len > isize::MAX as usize {
        return Err(Error::InvalidArgument.into());
    }
    // SAFETY: non-NULL, and the caller guarantees `len` exclusive writable bytes for 'a.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr`, if not NULL, must point to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::Null);
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's guarantee.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str().map_err(|_| Error::InvalidArgument.into())
}

/// Copies `text` into `buf` of `size` bytes like snprintf, returning its length.
pub(crate) fn copy_out(text: &str, buf: *mut c_char, size: usize) -> i32 {
    if size > 0 && !buf.is_null() {
        let n = text.len().min(size - 1);
        // SAFETY: the caller gave `size` writable bytes at `buf`; n + 1 <= size.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
            *buf.add(n) = 0;
        }
    }
    i32::try_from(text.len()).unwrap_or(i32::MAX)
}

/// Message types for `on_message` and the send functions.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsconn_msg_type {
    /// A text message: valid UTF-8.
    WSCONN_MSG_TEXT = 1,
    /// A binary message.
    WSCONN_MSG_BINARY = 2,
}

impl From<MessageKind> for wsconn_msg_type {
    fn from(kind: MessageKind) -> wsconn_msg_type {
        match kind {
            MessageKind::Text => wsconn_msg_type::WSCONN_MSG_TEXT,
            MessageKind::Binary => wsconn_msg_type::WSCONN_MSG_BINARY,
        }
    }
}

/// A `wsconn_msg_type` argument.
pub(crate) fn kind_arg(kind: c_int) -> Result<MessageKind, Failure> {
    match kind {
        k if k == wsconn_msg_type::WSCONN_MSG_TEXT as c_int => Ok(MessageKind::Text),
        k if k == wsconn_msg_type::WSCONN_MSG_BINARY as c_int => Ok(MessageKind::Binary),
        _ => Err(Error::InvalidArgument.into()),
    }
}

/// A `wsconn_msg_type` for a callback.
pub(crate) fn kind_code(kind: MessageKind) -> c_int {
    wsconn_msg_type::from(kind) as c_int
}

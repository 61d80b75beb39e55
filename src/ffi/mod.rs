//! The C API: `extern "C"` functions only. Each one checks its arguments, calls
//! the core, and maps errors to `wsconn_result` codes; no panic crosses the
//! boundary ([`ffi_boundary!`] wraps every body).
//!
//! Types exported to C keep their C names (`wsconn_session_t`, …) so that the
//! generated header reads like a C library's.
#![allow(non_camel_case_types)]

/// Runs the body of an exported function, turning a panic into `$on_panic`.
/// Every `extern "C"` function's body goes through this macro.
macro_rules! ffi_boundary {
    ($on_panic:expr, $body:block) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(_) => $on_panic,
        }
    };
}

pub mod acceptor;
pub mod config;
pub mod conn;
pub mod reactor;
pub mod result;
pub mod session;

pub use acceptor::*;
pub use config::*;
pub use conn::*;
pub use reactor::*;
pub use result::*;
pub use session::*;

use crate::proto::error::Error;
use std::ffi::{c_char, CStr};

/// The bytes at `ptr..ptr+len`, or an error for NULL with a nonzero length.
/// A zero length accepts any pointer, NULL included.
///
/// # Safety
/// If `len > 0`, `ptr` must point to `len` readable bytes that stay valid and
/// unchanged for `'a`.
pub(crate) unsafe fn bytes_arg<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Error::Null);
    }
    if len > isize::MAX as usize {
        return Err(Error::InvalidArgument);
    }
    // SAFETY: non-NULL, and the caller guarantees `len` readable bytes for 'a.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Like [`bytes_arg`], for a buffer the library may modify in place.
///
/// # Safety
/// If `len > 0`, `ptr` must point to `len` writable bytes not otherwise accessed for `'a`.
pub(crate) unsafe fn bytes_arg_mut<'a>(ptr: *mut u8, len: usize) -> Result<&'a mut [u8], Error> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(Error::Null);
    }
    if len > isize::MAX as usize {
        return Err(Error::InvalidArgument);
    }
    // SAFETY: non-NULL, and the caller guarantees `len` exclusive writable bytes for 'a.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr`, if not NULL, must point to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char) -> Result<&'a str, Error> {
    if ptr.is_null() {
        return Err(Error::Null);
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's guarantee.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str().map_err(|_| Error::InvalidArgument)
}

/// A `wsconn_msg_type` argument.
pub(crate) fn kind_arg(kind: std::ffi::c_int) -> Result<crate::proto::event::MessageKind, Error> {
    match kind {
        1 => Ok(crate::proto::event::MessageKind::Text),
        2 => Ok(crate::proto::event::MessageKind::Binary),
        _ => Err(Error::InvalidArgument),
    }
}

/// Maps a core result to a C return code.
pub(crate) fn code_of(result: Result<(), Error>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}

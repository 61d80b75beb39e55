//! `wsconn_acceptor_t`: a listening socket on a reactor (C name of [`Acceptor`]).

use super::str_arg;
use crate::proto::error::Error;
use crate::runtime::acceptor::{wsconn_accept_func, Acceptor};
use crate::runtime::reactor::Reactor;
use std::ffi::{c_char, c_void};

/// Creates an acceptor on `reactor` (which must outlive it). Release it with
/// `wsconn_acceptor_release`. Returns NULL if `reactor` is NULL.
///
/// # Safety
/// `reactor` is NULL or a live reactor.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_create(reactor: *mut Reactor) -> *mut Acceptor {
    ffi_boundary!(std::ptr::null_mut(), {
        if reactor.is_null() {
            return std::ptr::null_mut();
        }
        Box::into_raw(Box::new(Acceptor::new(reactor)))
    })
}

/// Sets the function called with each accepted socket, and its `arg`. Without one,
/// accepted sockets are closed. NULL `acceptor` is ignored.
///
/// # Safety
/// `acceptor` is NULL or a live acceptor.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_set_accept_func(
    acceptor: *mut Acceptor,
    func: wsconn_accept_func,
    arg: *mut c_void,
) {
    ffi_boundary!((), {
        // SAFETY: NULL or live per the caller.
        if let Some(acceptor) = unsafe { acceptor.as_ref() } {
            acceptor.set_accept_func(func, arg);
        }
    })
}

/// Listens on `ip` (an IPv4 or IPv6 literal, e.g. "127.0.0.1" or "::1") and
/// `port` (0: a free port, see `wsconn_acceptor_port`), with SO_REUSEADDR.
/// Returns `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_INVALID_ARGUMENT` (bad ip or
/// port), `WSCONN_ERR_IO` (bind/listen failed, e.g. port in use), `WSCONN_ERR_STATE`
/// (already listening, or the reactor was released).
///
/// # Safety
/// `acceptor` is NULL or a live acceptor; `ip` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_start(acceptor: *mut Acceptor, ip: *const c_char, port: i32) -> i32 {
    ffi_boundary!(Error::Panic.code(), {
        // SAFETY: NULL or live per the caller.
        let Some(a) = (unsafe { acceptor.as_ref() }) else {
            return Error::Null.code();
        };
        // SAFETY: NULL or NUL-terminated per the caller.
        let ip = match unsafe { str_arg(ip) } {
            Ok(ip) => ip,
            Err(e) => return e.code(),
        };
        match a.start(acceptor, ip, port) {
            Ok(()) => 0,
            Err(e) => e.code(),
        }
    })
}

/// The port the acceptor listens on (useful after starting on port 0), or
/// `WSCONN_ERR_NULL`, `WSCONN_ERR_STATE` (not listening).
///
/// # Safety
/// `acceptor` is NULL or a live acceptor.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_port(acceptor: *const Acceptor) -> i32 {
    ffi_boundary!(Error::Panic.code(), {
        // SAFETY: NULL or live per the caller.
        let Some(a) = (unsafe { acceptor.as_ref() }) else {
            return Error::Null.code();
        };
        match a.port() {
            Ok(port) => port as i32,
            Err(e) => e.code(),
        }
    })
}

/// Stops listening and closes the listening socket (accepted connections are not
/// affected). Returns `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_STATE` (not listening).
///
/// # Safety
/// `acceptor` is NULL or a live acceptor.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_stop(acceptor: *mut Acceptor) -> i32 {
    ffi_boundary!(Error::Panic.code(), {
        // SAFETY: NULL or live per the caller.
        let Some(a) = (unsafe { acceptor.as_ref() }) else {
            return Error::Null.code();
        };
        match a.stop() {
            Ok(()) => 0,
            Err(e) => e.code(),
        }
    })
}

/// Stops and frees the acceptor. NULL is a no-op. Safe inside its accept
/// callback (it is then freed when the dispatch ends). Returns `WSCONN_OK`.
///
/// # Safety
/// `acceptor` is NULL or a live acceptor, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_release(acceptor: *mut Acceptor) -> i32 {
    ffi_boundary!(Error::Panic.code(), {
        if !acceptor.is_null() {
            // SAFETY: live and given up per the caller.
            unsafe { Acceptor::release(acceptor) };
        }
        0
    })
}

/// Sets SO_REUSEPORT (nonzero `on`) for the next `wsconn_acceptor_start`: several
/// acceptors, each on its own reactor and thread, may then listen on the same
/// port, and the kernel spreads new connections among them (one reactor per core,
/// no shared state). Returns `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_STATE`
/// (already listening).
///
/// # Safety
/// `acceptor` is NULL or a live acceptor.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_set_reuseport(acceptor: *mut Acceptor, on: i32) -> i32 {
    ffi_boundary!(Error::Panic.code(), {
        // SAFETY: NULL or live per the caller.
        let Some(a) = (unsafe { acceptor.as_ref() }) else {
            return Error::Null.code();
        };
        match a.set_reuse_port(on != 0) {
            Ok(()) => 0,
            Err(e) => e.code(),
        }
    })
}

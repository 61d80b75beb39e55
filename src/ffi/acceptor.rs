//! `wsconn_acceptor_t`: a listening socket on a reactor (C name of [`Acceptor`]).

use std::ffi::{c_char, c_int, c_void};

use super::result::{code, code_of, Failure};
use super::str_arg;
use crate::runtime::acceptor::Acceptor;
use crate::runtime::reactor::Reactor;

/// Called with each accepted socket (non-blocking, TCP_NODELAY). Return a
/// negative value to have it closed; otherwise the socket belongs to the program
/// (typically given to a `wsconn_t` with `wsconn_set_fd`).
pub type wsconn_accept_func = Option<extern "C" fn(fd: c_int, arg: *mut c_void) -> c_int>;

/// Creates an acceptor on `reactor` (which must outlive it). Release it with
/// `wsconn_acceptor_release`. Returns NULL if `reactor` is NULL.
///
/// # Safety
/// `reactor` is NULL or a live reactor.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_create(reactor: *mut Reactor) -> *mut Acceptor {
    ffi_boundary!(std::ptr::null_mut(), {
        // SAFETY: NULL or live per the caller.
        let Some(reactor) = (unsafe { reactor.as_ref() }) else {
            return std::ptr::null_mut();
        };
        Acceptor::create(reactor).as_ptr()
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
            acceptor.set_on_accept(
                func.map(|f| -> crate::runtime::acceptor::AcceptFn { Box::new(move |_, fd| f(fd, arg) >= 0) }),
            );
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
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(a) = (unsafe { acceptor.as_ref() }) else {
            return code(Failure::Null);
        };
        // SAFETY: NULL or NUL-terminated per the caller.
        let ip = match unsafe { str_arg(ip) } {
            Ok(ip) => ip,
            Err(e) => return code(e),
        };
        code_of(a.start(ip, port))
    })
}

/// The port the acceptor listens on (useful after starting on port 0), or
/// `WSCONN_ERR_NULL`, `WSCONN_ERR_STATE` (not listening).
///
/// # Safety
/// `acceptor` is NULL or a live acceptor.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_port(acceptor: *const Acceptor) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(a) = (unsafe { acceptor.as_ref() }) else {
            return code(Failure::Null);
        };
        match a.port() {
            Ok(port) => port as i32,
            Err(e) => code(e),
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
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(a) = (unsafe { acceptor.as_ref() }) else {
            return code(Failure::Null);
        };
        code_of(a.stop())
    })
}

/// Stops and frees the acceptor. NULL is a no-op. Safe inside its accept
/// callback (it is then freed when the dispatch ends). Returns `WSCONN_OK`.
///
/// # Safety
/// `acceptor` is NULL or a live acceptor, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_release(acceptor: *mut Acceptor) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
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
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(a) = (unsafe { acceptor.as_ref() }) else {
            return code(Failure::Null);
        };
        code_of(a.set_reuse_port(on != 0))
    })
}

/// Accepts on `fd`, a listening TCP socket the program was handed (by a
/// service manager: see `wsconn_listen_fds`; or by the process it replaces),
/// instead of binding one. For a restart without refusing anyone, run the
/// new process on the same socket, then drain the old one
/// (`wsconn_reactor_drain`): connections waiting in the socket's queue go to
/// whichever process accepts them. Several acceptors (one per reactor and
/// thread) may share one socket: give each a `dup(fd)`. The acceptor owns
/// `fd` once this succeeds (closed by `wsconn_acceptor_stop`/`_release`); on
/// failure it stays the caller's. TLS and the accept function work as with
/// `wsconn_acceptor_start`. Returns `WSCONN_OK`, `WSCONN_ERR_NULL`,
/// `WSCONN_ERR_INVALID_ARGUMENT` (not a listening TCP socket),
/// `WSCONN_ERR_IO`, `WSCONN_ERR_STATE` (already listening, the reactor
/// released or draining).
///
/// # Safety
/// `acceptor` is NULL or a live acceptor; `fd` is not used by the program
/// afterwards if this succeeds.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_start_fd(acceptor: *mut Acceptor, fd: c_int) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(a) = (unsafe { acceptor.as_ref() }) else {
            return code(Failure::Null);
        };
        code_of(a.start_fd(fd))
    })
}

/// systemd's socket activation protocol (as `sd_listen_fds(3)`): how many
/// listening sockets this process was handed, as fds 3, 4, … (0 when none,
/// or when `LISTEN_PID` names another process). Each gets FD_CLOEXEC. With
/// `unset_environment` nonzero, `LISTEN_PID`, `LISTEN_FDS` and
/// `LISTEN_FDNAMES` are removed from the environment (call it before
/// starting threads). Returns the count, or `WSCONN_ERR_INVALID_ARGUMENT`
/// (a variable is not a number, or names a closed fd).
#[no_mangle]
pub extern "C" fn wsconn_listen_fds(unset_environment: c_int) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        match crate::runtime::listen_fds::listen_fds(unset_environment != 0) {
            Ok(n) => n.min(i32::MAX as usize) as i32,
            Err(e) => code(e),
        }
    })
}

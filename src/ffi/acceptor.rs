//! `wsconn_acceptor_t`: a listening socket on a reactor (C name of [`Acceptor`]).

use std::ffi::{c_char, c_int, c_void};

use super::result::{code, code_of, Failure};
use super::str_arg;
use crate::ffi::callbacks::CCallbacks;
use crate::runtime::acceptor::accepted::{self, Accepted};
use crate::runtime::acceptor::Acceptor;
use crate::runtime::connection::Connection;
use crate::runtime::reactor::Reactor;

/// Called with each accepted socket (non-blocking, TCP_NODELAY), past the
/// acceptor's limits and PROXY header. Who owns the fd afterwards, one rule:
/// once `wsconn_set_fd` gave it to a connection inside this callback (or
/// `wsconn_accepted_take` took it), the connection (the taken object) owns
/// it and closes it, whatever the callback returns — so a program whose
/// `wsconn_start` failed releases its connection (which closes the fd) and
/// may return -1 without a double close. Otherwise a negative return has
/// the acceptor close it, and any other leaves the bare fd to the program.
/// A connection started on the fd inside the callback gets the acceptor's
/// TLS, the client's address from the PROXY header and its place in the
/// limits; to start it elsewhere (another reactor's thread), take it with
/// `wsconn_accepted_take`: a bare fd kept past the callback has none of them
/// (on a TLS acceptor it would speak plain WebSocket).
pub type wsconn_accept_func = Option<extern "C" fn(fd: c_int, arg: *mut c_void) -> c_int>;

/// An accepted socket with what its acceptor decided for it (TLS, the
/// PROXY protocol address, its place in the limits), taken out of the accept
/// callback to start a connection on elsewhere. May be passed to another
/// thread. Give it to a connection with `wsconn_set_accepted`, or free it
/// with `wsconn_accepted_free` (which closes the socket).
pub struct wsconn_accepted_t {
    inner: Accepted,
}

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

/// Limits the connections the acceptor feeds at once: `max_total` in all and
/// `max_per_address` from one client address (IPv6 clients by /64); 0 is no
/// limit. Over either, a new socket is closed at accept, before TLS or any
/// read (behind PROXY protocol, as soon as its header named the client). A
/// connection holds its place from its start on the socket (in the accept
/// callback, or through `wsconn_accepted_take`) until it closes. Before
/// `wsconn_acceptor_start` only. Returns `WSCONN_OK`, `WSCONN_ERR_NULL`,
/// `WSCONN_ERR_STATE` (already listening).
///
/// # Safety
/// `acceptor` is NULL or a live acceptor.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_set_limits(
    acceptor: *mut Acceptor,
    max_total: u32,
    max_per_address: u32,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(a) = (unsafe { acceptor.as_ref() }) else {
            return code(Failure::Null);
        };
        code_of(a.set_limits(max_total, max_per_address))
    })
}

/// Expects (nonzero `on`) a PROXY protocol header, version 1 or 2, at the
/// start of every accepted socket, as a load balancer (haproxy `send-proxy`,
/// `send-proxy-v2`) sends it: it is read first (before TLS), at most 4 KiB,
/// within the handshake timeout of the reactor's config; the client address
/// it gives is the connection's for the limits and `wsconn_peer_address`
/// (a LOCAL header, e.g. a health check, keeps the socket's). A socket
/// without a valid header is closed. Only for a port that trusted balancers
/// alone can reach. Before `wsconn_acceptor_start` only. Returns as
/// `wsconn_acceptor_set_limits`.
///
/// # Safety
/// `acceptor` is NULL or a live acceptor.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_set_proxy_protocol(acceptor: *mut Acceptor, on: i32) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(a) = (unsafe { acceptor.as_ref() }) else {
            return code(Failure::Null);
        };
        code_of(a.set_proxy_protocol(on != 0))
    })
}

/// Inside the accept callback of `fd` only: takes the accepted socket with
/// what the acceptor decided for it, to start a connection on later or on
/// another reactor's thread (`wsconn_set_accepted`). The socket is the
/// object's from now on (the callback's return value no longer matters for
/// it). NULL outside that callback or for another fd.
#[no_mangle]
pub extern "C" fn wsconn_accepted_take(fd: c_int) -> *mut wsconn_accepted_t {
    ffi_boundary!(std::ptr::null_mut(), {
        match accepted::take(fd) {
            Some(inner) => Box::into_raw(Box::new(wsconn_accepted_t { inner })),
            None => std::ptr::null_mut(),
        }
    })
}

/// The socket of an accepted object, or -1 for NULL.
///
/// # Safety
/// `accepted` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn wsconn_accepted_fd(accepted: *const wsconn_accepted_t) -> c_int {
    ffi_boundary!(-1, {
        // SAFETY: NULL or live per the caller.
        unsafe { accepted.as_ref() }.map_or(-1, |a| a.inner.fd())
    })
}

/// Frees an accepted object that was not given to a connection, closing its
/// socket. NULL is a no-op.
///
/// # Safety
/// `accepted` is NULL or live, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn wsconn_accepted_free(accepted: *mut wsconn_accepted_t) {
    ffi_boundary!((), {
        if !accepted.is_null() {
            // SAFETY: from Box::into_raw in wsconn_accepted_take, given up per the caller.
            drop(unsafe { Box::from_raw(accepted) });
        }
    })
}

/// Gives a connection (not started) the accepted socket and its acceptor's
/// decisions, on the connection's thread: `wsconn_start` then serves it as
/// the acceptor would have (TLS, the PROXY address, its place in the limits).
/// The object is consumed, whatever the result (on failure its socket is
/// closed). Returns `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_STATE`
/// (the connection runs).
///
/// # Safety
/// `con` is NULL or a live connection; `accepted` is NULL or live, not used
/// afterwards.
#[no_mangle]
pub unsafe extern "C" fn wsconn_set_accepted(
    con: *mut Connection<CCallbacks>,
    accepted: *mut wsconn_accepted_t,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        if accepted.is_null() {
            return code(Failure::Null);
        }
        // SAFETY: from Box::into_raw in wsconn_accepted_take, given up per the caller.
        let accepted = unsafe { Box::from_raw(accepted) }.inner;
        // SAFETY: NULL or live per the caller.
        match unsafe { con.as_ref() } {
            Some(conn) => code_of(conn.set_accepted(accepted)),
            None => code(Failure::Null),
        }
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

//! Deciding who may connect, from C: the upgrade callback, the decision
//! (accept with header lines and a subprotocol, reject with a status, lines
//! and a body; inside the callback or later), the client's address and what
//! TLS knows of it, for reactor connections and sans-IO sessions.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::net::SocketAddr;

use super::callbacks::{wsconn_upgrade_func, CCallbacks, Slot};
use super::conn::with_conn;
use super::result::{code, Failure};
use super::session::{wsconn_session_t, wsconn_session_upgrade_func};
use super::{bytes_arg, copy_out, str_arg};
use crate::proto::error::Error;
use crate::proto::handshake::answer::Header;
use crate::proto::session::Subprotocol;
use crate::runtime::connection::Connection;
use crate::runtime::reactor::Reactor;

/// A header line of an answer: `name` a token, `value` free of CR, LF, NUL
/// and other control bytes but tab; both NUL-terminated, read during the
/// call only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wsconn_header_t {
    pub name: *const c_char,
    pub value: *const c_char,
}

/// The lines of `count` headers at `headers` (NULL when `count` is 0).
///
/// # Safety
/// `headers` is NULL or points to `count` headers whose strings are NULL or
/// NUL-terminated and valid for `'a`.
unsafe fn headers_arg<'a>(headers: *const wsconn_header_t, count: usize) -> Result<Vec<Header<'a>>, Failure> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if headers.is_null() {
        return Err(Failure::Null);
    }
    // SAFETY: `count` headers per the caller.
    let headers = unsafe { std::slice::from_raw_parts(headers, count) };
    headers
        .iter()
        .map(|h| {
            if h.value.is_null() {
                return Err(Failure::Null);
            }
            // SAFETY: NULL or NUL-terminated per the caller (NULL checked).
            let name = unsafe { str_arg(h.name) }?;
            // SAFETY: non-NULL and NUL-terminated per the caller.
            let value = unsafe { CStr::from_ptr(h.value) }.to_bytes();
            Ok(Header { name, value })
        })
        .collect()
}

/// The subprotocol argument of an accept: NULL, the default; "", none.
///
/// # Safety
/// `name` is NULL or NUL-terminated.
unsafe fn subprotocol_arg<'a>(name: *const c_char) -> Result<Subprotocol<'a>, Failure> {
    if name.is_null() {
        return Ok(Subprotocol::Default);
    }
    // SAFETY: forwarded caller guarantee.
    Ok(match unsafe { str_arg(name) }? {
        "" => Subprotocol::None,
        name => Subprotocol::Named(name),
    })
}

/// The status argument of a reject.
fn status_arg(status: c_int) -> Result<u16, Failure> {
    u16::try_from(status).map_err(|_| Error::InvalidArgument.into())
}

/// Sets the upgrade callback (`wsconn_upgrade_func`) and its `arg`: with one
/// set before `wsconn_start`, each valid upgrade request waits for the
/// program's decision before any byte of the response (without one, every
/// valid upgrade is accepted, as before). Plain HTTP requests still go to the
/// HTTP callback; requests whose `Origin` the config refuses never reach it.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_set_upgrade_func(
    con: *mut Connection<CCallbacks>,
    func: wsconn_upgrade_func,
    arg: *mut c_void,
) {
    ffi_boundary!((), {
        // SAFETY: NULL or live per the caller.
        if let Some(conn) = unsafe { con.as_ref() } {
            conn.handler().set(Slot::Upgrade, |t| t.upgrade = func, arg);
        }
    })
}

/// Accepts the upgrade being decided, inside the upgrade callback or later
/// (on the reactor's thread): the 101 answer carries `subprotocol` (NULL: the
/// first of the config's the client offered, as without a callback; "":
/// none; a name: one the client offered) and the `count` lines of `headers`
/// (e.g. Set-Cookie) after the library's; the connection then opens (the
/// build callback runs, then the messages the client sent meanwhile). The
/// library's own lines may not be given (Upgrade, Connection,
/// Sec-WebSocket-*, Content-Length, Transfer-Encoding). Returns `WSCONN_OK`;
/// `WSCONN_ERR_INVALID_ARGUMENT` (a name that is not a token, a value with
/// CR, LF, NUL or another control byte, a reserved line, a subprotocol not
/// offered, or no decision pending: already decided, no upgrade callback);
/// `WSCONN_ERR_CLOSED` (the connection ended meanwhile: the client left, the
/// handshake timed out; the close callbacks already ran); `WSCONN_ERR_NULL`.
/// A failed call changed nothing.
///
/// # Safety
/// `con` is NULL or a live connection; `subprotocol` is NULL or
/// NUL-terminated; `headers` points to `count` valid headers.
#[no_mangle]
pub unsafe extern "C" fn wsconn_upgrade_accept(
    con: *mut Connection<CCallbacks>,
    subprotocol: *const c_char,
    headers: *const wsconn_header_t,
    count: usize,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_conn(con, |c| {
            let (subprotocol, headers) = (subprotocol_arg(subprotocol)?, headers_arg(headers, count)?);
            Ok(c.upgrade_accept(subprotocol, &headers)?)
        })
    }
}

/// Rejects the upgrade being decided, inside the upgrade callback or later:
/// the answer is exactly `HTTP/1.1 <status> <reason>`, the `count` lines of
/// `headers` in order (e.g. `WWW-Authenticate: Bearer`; give `Content-Type`
/// with a body), `Content-Length`, `Connection: close`, a blank line and the
/// `len` bytes of `body` (copied; NULL when `len` is 0). `status` is
/// 400-599. The connection closes once the answer is written: the close
/// callbacks run (code 1006, `wsconn_close_error` giving
/// `WSCONN_ERR_REFUSED`). Returns as `wsconn_upgrade_accept` (here only
/// Connection, Content-Length and Transfer-Encoding are reserved).
///
/// # Safety
/// `con` is NULL or a live connection; `headers` points to `count` valid
/// headers; `body` to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_upgrade_reject(
    con: *mut Connection<CCallbacks>,
    status: c_int,
    headers: *const wsconn_header_t,
    count: usize,
    body: *const c_void,
    len: usize,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_conn(con, |c| {
            let (headers, body) = (headers_arg(headers, count)?, bytes_arg(body.cast(), len)?);
            Ok(c.upgrade_reject(status_arg(status)?, &headers, body)?)
        })
    }
}

/// Whether an upgrade decision is pending on the connection: 1 yes, 0 no
/// (also for NULL).
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_upgrade_pending(con: *const Connection<CCallbacks>) -> c_int {
    ffi_boundary!(0, {
        // SAFETY: NULL or live per the caller.
        unsafe { con.as_ref() }.is_some_and(|c| c.upgrade_pending()) as c_int
    })
}

/// Refuses now, with `status` (400-599, e.g. 503 when draining before a
/// shutdown), every upgrade on `reactor` whose decision is still pending
/// (counted in `refused_draining`; `wsconn_reactor_drain` does this with 503
/// itself, to requests still being read too). Returns how many, or
/// `WSCONN_ERR_INVALID_ARGUMENT`, `WSCONN_ERR_NULL`. On the reactor's thread
/// only.
///
/// # Safety
/// `reactor` is NULL or a live reactor.
#[no_mangle]
pub unsafe extern "C" fn wsconn_reactor_refuse_pending(reactor: *mut Reactor, status: c_int) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(reactor) = (unsafe { reactor.as_ref() }) else {
            return code(Failure::Null);
        };
        match status_arg(status) {
            Ok(status) if (400..=599).contains(&status) => reactor.refuse_pending(status) as i32,
            _ => code(Error::InvalidArgument),
        }
    })
}

/// Writes the text of an address into `buf`, returns its port.
fn address_out(addr: Option<SocketAddr>, buf: *mut c_char, size: usize) -> i32 {
    match addr {
        None => code(crate::runtime::error::Error::State),
        Some(addr) if size > 0 && (addr.ip().to_string().len() < size) => {
            copy_out(&addr.ip().to_string(), buf, size);
            addr.port() as i32
        }
        Some(_) => code(Error::InvalidArgument),
    }
}

/// The client's address (server role; the server's for a client): its IP as
/// text into `buf` (`size` bytes, NUL-terminated; "192.0.2.7", "2001:db8::1";
/// an IPv4 client of an IPv6 socket as IPv4; 46 bytes always suffice) and its
/// port as the return value. Behind an acceptor reading PROXY headers
/// (`wsconn_acceptor_set_proxy_protocol`), the address the header gave.
/// Available from the accept of the socket to its close. Returns the port
/// (0-65535), or `WSCONN_ERR_STATE` (no socket), `WSCONN_ERR_INVALID_ARGUMENT`
/// (`buf` too small), `WSCONN_ERR_NULL`.
///
/// # Safety
/// `con` is NULL or a live connection; `buf` is NULL or `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_peer_address(con: *const Connection<CCallbacks>, buf: *mut c_char, size: usize) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(conn) = (unsafe { con.as_ref() }) else {
            return code(Failure::Null);
        };
        if buf.is_null() {
            return code(Failure::Null);
        }
        address_out(conn.peer_addr(), buf, size)
    })
}

/// Over TLS (server role): the host name the client asked for (SNI), or
/// NULL (none sent, not TLS, handshake not done, or NULL `con`).
/// NUL-terminated; owned by the connection, valid until it is released or
/// started again.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_tls_server_name(con: *const Connection<CCallbacks>) -> *const c_char {
    ffi_boundary!(std::ptr::null(), {
        // SAFETY: NULL or live per the caller.
        let Some(conn) = (unsafe { con.as_ref() }) else {
            return std::ptr::null();
        };
        match conn.tls_server_name() {
            Some(name) => conn.handler().server_name(&name),
            None => std::ptr::null(),
        }
    })
}

/// Over TLS: certificate `index` of the peer's verified chain in DER (0 is
/// its own, then its issuers as sent): a server sees the client's under
/// mutual TLS (`wsconn_acceptor_set_tls_client_ca`). Sets `*len` and returns
/// the bytes, owned by the connection and valid until it closes; NULL when
/// there is none (no such index, no client certificate, not TLS) or an
/// argument is NULL.
///
/// # Safety
/// `con` is NULL or a live connection; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wsconn_tls_peer_certificate(
    con: *const Connection<CCallbacks>,
    index: usize,
    len: *mut usize,
) -> *const u8 {
    ffi_boundary!(std::ptr::null(), {
        // SAFETY: NULL or live per the caller.
        let (Some(conn), false) = (unsafe { con.as_ref() }, len.is_null()) else {
            return std::ptr::null();
        };
        // The bytes stay where rustls keeps them until the TLS state goes
        // (the connection's close).
        match conn.with_tls_peer_certificate(index, |der| (der.as_ptr(), der.len())) {
            Some((ptr, n)) => {
                // SAFETY: non-NULL and writable per the caller.
                unsafe { *len = n };
                ptr
            }
            None => std::ptr::null(),
        }
    })
}

/// Sets a server session's upgrade callback and its `arg`, before its first
/// feed: each valid upgrade request then waits for the program's decision,
/// as for a reactor connection (`wsconn_upgrade_func`): read it with
/// `wsconn_session_request_*`, decide inside with `wsconn_session_upgrade_accept`
/// / `_reject` or return a `wsconn_upgrade`. While the decision is pending,
/// `wsconn_session_feed` keeps the client's bytes up to the max handshake
/// size (`wsconn_session_want_read` turns 0 there; more fails the handshake
/// with 431). NULL `session` is ignored.
///
/// # Safety
/// `session` is NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_set_upgrade_func(
    session: *mut wsconn_session_t,
    func: wsconn_session_upgrade_func,
    arg: *mut c_void,
) {
    ffi_boundary!((), {
        // SAFETY: NULL or live per the caller.
        if let Some(s) = unsafe { session.as_ref() } {
            s.upgrade.set((func, arg));
            s.session().set_decides_upgrades(func.is_some());
        }
    })
}

/// `wsconn_upgrade_accept` for a session: queues the 101; outside the upgrade
/// callback, `on_open` and then the messages the client sent meanwhile are
/// delivered inside this call. Returns as `wsconn_upgrade_accept` (plus the
/// codes of `wsconn_session_feed` for those messages).
///
/// # Safety
/// As `wsconn_upgrade_accept`, for a session.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_upgrade_accept(
    session: *mut wsconn_session_t,
    subprotocol: *const c_char,
    headers: *const wsconn_header_t,
    count: usize,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(s) = (unsafe { session.as_ref() }) else {
            return code(Failure::Null);
        };
        // SAFETY: forwarded caller guarantees.
        let args = unsafe { subprotocol_arg(subprotocol).and_then(|p| Ok((p, headers_arg(headers, count)?))) };
        let (subprotocol, headers) = match args {
            Ok(args) => args,
            Err(e) => return code(e),
        };
        if let Err(e) = s.session().accept_upgrade(subprotocol, &headers) {
            return code(e);
        }
        if s.is_feeding() {
            return 0; // the running feed opens it
        }
        // SAFETY: live per the caller; not inside one of its callbacks.
        unsafe { wsconn_session_t::feeding(session, |s, callbacks| s.feed(&mut [], callbacks).map(|_| ())) }
    })
}

/// `wsconn_upgrade_reject` for a session: the answer is queued and the
/// session closes (write the output, then close the socket). Returns as
/// `wsconn_upgrade_reject`.
///
/// # Safety
/// As `wsconn_upgrade_reject`, for a session.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_upgrade_reject(
    session: *mut wsconn_session_t,
    status: c_int,
    headers: *const wsconn_header_t,
    count: usize,
    body: *const c_void,
    len: usize,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        super::session::with_session(session, |s| {
            let (headers, body) = (headers_arg(headers, count)?, bytes_arg(body.cast(), len)?);
            Ok(s.reject_upgrade(status_arg(status)?, &headers, body)?)
        })
    }
}

//! `wsconn_t`: a WebSocket connection on a reactor, with gbase's function
//! names and callbacks, and what gbase lacked.

use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;

use super::callbacks::{message_arg, CallbackTable, Slot};
use super::result::{code, code_of, Failure};
use super::{bytes_arg, kind_arg, str_arg, wsconn_config_t};
use crate::ffi::callbacks::*;
use crate::proto::error::Error;
use crate::proto::event::MessageKind;
use crate::runtime::connection::Connection;
use crate::runtime::reactor::Reactor;

/// Runs `f` on a live connection, mapping NULL and panics to codes.
///
/// # Safety
/// `con` is NULL or a live connection.
pub(crate) unsafe fn with_conn(
    con: *const Connection<CCallbacks>,
    f: impl FnOnce(&Connection<CCallbacks>) -> Result<(), Failure>,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller; only shared references are made.
        match unsafe { con.as_ref() } {
            Some(conn) => code_of(f(conn)),
            None => code(Failure::Null),
        }
    })
}

/// Sets one callback of a live connection; NULL `con` is ignored.
///
/// # Safety
/// `con` is NULL or a live connection.
unsafe fn set_callback(
    con: *mut Connection<CCallbacks>,
    slot: Slot,
    change: impl FnOnce(&mut CallbackTable),
    arg: *mut c_void,
) {
    ffi_boundary!((), {
        // SAFETY: NULL or live per the caller.
        if let Some(conn) = unsafe { con.as_ref() } {
            let handler = conn.handler();
            handler.set(slot, change, arg);
            conn.set_streaming(handler.table().fragment.is_some());
            conn.set_serve_http(handler.table().http.is_some());
        }
    })
}

/// Creates a connection on `reactor` (which must outlive it), with the reactor's
/// current options. Give it a socket with `wsconn_set_fd` + `wsconn_start`
/// (server) or call `wsconn_connect` (client). Release it with `wsconn_release`.
/// Returns NULL if `reactor` is NULL.
///
/// # Safety
/// `reactor` is NULL or a live reactor.
#[no_mangle]
pub unsafe extern "C" fn wsconn_create(reactor: *mut Reactor) -> *mut Connection<CCallbacks> {
    ffi_boundary!(std::ptr::null_mut(), {
        // SAFETY: NULL or live per the caller.
        let Some(reactor) = (unsafe { reactor.as_ref() }) else {
            return std::ptr::null_mut();
        };
        Connection::create(reactor, CCallbacks::default()).as_ptr()
    })
}

/// Frees the connection, closing its socket if still open, without a closing
/// handshake and without calling the close callbacks (a client's reconnection
/// ends with it). Safe inside the
/// connection's own callbacks (gbase programs release in the close callback): it
/// is then freed when the dispatch ends, and none of its callbacks runs after
/// the release (what an upgrade callback that released it returns is
/// ignored). NULL is a no-op. Returns `WSCONN_OK`.
///
/// # Safety
/// `con` is NULL or a live connection, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn wsconn_release(con: *mut Connection<CCallbacks>) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        if !con.is_null() {
            // SAFETY: live, made by wsconn_create, and given up per the caller.
            unsafe { Connection::release(con) };
        }
        0
    })
}

/// Sets gbase's build callback (handshake completed) and its `arg`.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_set_build_func(
    con: *mut Connection<CCallbacks>,
    func: wsconn_build_func,
    arg: *mut c_void,
) {
    // SAFETY: forwarded caller guarantee.
    unsafe { set_callback(con, Slot::Build, |t| t.build = func, arg) }
}

/// Sets gbase's read callback (each complete message, text or binary) and its `arg`.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_set_read_func(
    con: *mut Connection<CCallbacks>,
    func: wsconn_read_func,
    arg: *mut c_void,
) {
    // SAFETY: forwarded caller guarantee.
    unsafe { set_callback(con, Slot::Read, |t| t.read = func, arg) }
}

/// Sets gbase's close callback and its `arg`.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_set_close_func(
    con: *mut Connection<CCallbacks>,
    func: wsconn_close_func,
    arg: *mut c_void,
) {
    // SAFETY: forwarded caller guarantee.
    unsafe { set_callback(con, Slot::Close, |t| t.close = func, arg) }
}

/// Sets the message callback (complete message with its type), replacing the
/// read callback while set.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_set_message_func(
    con: *mut Connection<CCallbacks>,
    func: wsconn_message_func,
    arg: *mut c_void,
) {
    // SAFETY: forwarded caller guarantee.
    unsafe { set_callback(con, Slot::Message, |t| t.message = func, arg) }
}

/// Sets the streaming-receive callback: messages arrive piece by piece and are
/// never reassembled (for huge messages); replaces the message and read callbacks
/// while set.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_set_fragment_func(
    con: *mut Connection<CCallbacks>,
    func: wsconn_fragment_func,
    arg: *mut c_void,
) {
    // SAFETY: forwarded caller guarantee.
    unsafe { set_callback(con, Slot::Fragment, |t| t.fragment = func, arg) }
}

/// Sets the close callback that tells the close code and reason.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_set_close_ex_func(
    con: *mut Connection<CCallbacks>,
    func: wsconn_close_ex_func,
    arg: *mut c_void,
) {
    // SAFETY: forwarded caller guarantee.
    unsafe { set_callback(con, Slot::CloseEx, |t| t.close_ex = func, arg) }
}

/// Sets the drain callback (output fell low again after `WSCONN_ERR_FULL`).
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_set_drain_func(
    con: *mut Connection<CCallbacks>,
    func: wsconn_drain_func,
    arg: *mut c_void,
) {
    // SAFETY: forwarded caller guarantee.
    unsafe { set_callback(con, Slot::Drain, |t| t.drain = func, arg) }
}

/// Sets the pong callback.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_set_pong_func(
    con: *mut Connection<CCallbacks>,
    func: wsconn_pong_func,
    arg: *mut c_void,
) {
    // SAFETY: forwarded caller guarantee.
    unsafe { set_callback(con, Slot::Pong, |t| t.pong = func, arg) }
}

/// Sets the HTTP callback: with one set before `wsconn_start`, a request that is
/// not a WebSocket upgrade is handed to it (answer with `wsconn_http_respond`)
/// instead of being refused with 400.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_set_http_func(
    con: *mut Connection<CCallbacks>,
    func: wsconn_http_func,
    arg: *mut c_void,
) {
    // SAFETY: forwarded caller guarantee.
    unsafe { set_callback(con, Slot::Http, |t| t.http = func, arg) }
}

/// Uses these options instead of the reactor's (copied). Only before
/// `wsconn_start`/`wsconn_connect`. Returns `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_STATE`.
///
/// # Safety
/// `con` and `config` are NULL or live.
#[no_mangle]
pub unsafe extern "C" fn wsconn_set_config(con: *mut Connection<CCallbacks>, config: *const wsconn_config_t) -> i32 {
    // SAFETY: NULL or live per the caller.
    let Some(config) = (unsafe { config.as_ref() }) else {
        return code(Failure::Null);
    };
    // SAFETY: forwarded caller guarantee.
    unsafe { with_conn(con, |c| Ok(c.set_config(Arc::new(config.inner.clone()))?)) }
}

/// The connection's socket, or -1 (none, or closed).
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_fd(con: *const Connection<CCallbacks>) -> c_int {
    ffi_boundary!(-1, {
        // SAFETY: NULL or live per the caller.
        unsafe { con.as_ref() }.map_or(-1, |c| c.fd())
    })
}

/// Gives the connection a connected socket (e.g. from the accept callback); the
/// connection owns it from now on and closes it (inside the accept callback,
/// whatever the callback then returns: see `wsconn_accept_func`). A socket
/// from elsewhere may be blocking: `wsconn_start` makes it non-blocking and
/// sets TCP_NODELAY (one from the accept callback is both already). Ignored
/// if `con` is NULL, `fd` is negative, or the connection is running.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_set_fd(con: *mut Connection<CCallbacks>, fd: c_int) {
    ffi_boundary!((), {
        // SAFETY: NULL or live per the caller.
        if let Some(conn) = unsafe { con.as_ref() } {
            let _ = conn.set_fd(fd);
        }
    })
}

/// Starts the server role on the socket: the client's opening handshake (or a
/// plain HTTP request, if an HTTP callback is set), then messages. Returns
/// `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_STATE` (no fd, already started, or
/// the reactor is gone), `WSCONN_ERR_IO`, `WSCONN_ERR_REENTRANT` (restarting,
/// from one of its own callbacks, a connection stopped there).
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_start(con: *mut Connection<CCallbacks>) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { with_conn(con, |c| Ok(c.start()?)) }
}

/// Drops the connection at once: no closing handshake, no callbacks, the socket
/// is closed, and a client's reconnection stops. The connection can then be
/// given a new socket, or connect again (also from inside its close
/// callbacks). Returns `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_STATE`
/// (not started).
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_stop(con: *mut Connection<CCallbacks>) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { with_conn(con, |c| Ok(c.stop()?)) }
}

/// 0 when the opening handshake is complete and no close has started, as in
/// gbase; else `WSCONN_ERR_NOT_OPEN`, `WSCONN_ERR_CLOSED` or `WSCONN_ERR_NULL`.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_established(con: *const Connection<CCallbacks>) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { with_conn(con, |c| Ok(c.established()?)) }
}

/// gbase's send: queues a TEXT message of `buflen` bytes (valid UTF-8; `buffer`
/// is copied). Output leaves at the end of the reactor's turn. Returns
/// `WSCONN_OK`; `WSCONN_ERR_FULL` (output over the max, nothing queued; a drain
/// callback follows); `WSCONN_ERR_NOT_OPEN`; `WSCONN_ERR_CLOSED`;
/// `WSCONN_ERR_INVALID_ARGUMENT` (negative length, not UTF-8); `WSCONN_ERR_NULL`.
///
/// # Safety
/// `con` is NULL or a live connection; `buffer` points to `buflen` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_send(con: *mut Connection<CCallbacks>, buffer: *const c_char, buflen: c_int) -> i32 {
    let Ok(len) = usize::try_from(buflen) else {
        return code(Error::InvalidArgument);
    };
    // SAFETY: forwarded caller guarantees.
    unsafe { with_conn(con, |c| send(c, MessageKind::Text, bytes_arg(buffer.cast(), len)?)) }
}

/// Queues a text message (valid UTF-8). Returns as `wsconn_send`.
///
/// # Safety
/// `con` is NULL or a live connection; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_send_text(con: *mut Connection<CCallbacks>, data: *const c_char, len: usize) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe { with_conn(con, |c| send(c, MessageKind::Text, bytes_arg(data.cast(), len)?)) }
}

/// Queues a binary message. Returns as `wsconn_send`.
///
/// # Safety
/// `con` is NULL or a live connection; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_send_binary(con: *mut Connection<CCallbacks>, data: *const c_void, len: usize) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe { with_conn(con, |c| send(c, MessageKind::Binary, bytes_arg(data.cast(), len)?)) }
}

/// Queues one fragment of a message sent piece by piece: `type` is
/// `WSCONN_MSG_TEXT` or `WSCONN_MSG_BINARY` (the same for every piece), `fin`
/// nonzero on the last. Returns as `wsconn_send`.
///
/// # Safety
/// `con` is NULL or a live connection; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_send_fragment(
    con: *mut Connection<CCallbacks>,
    r#type: c_int,
    data: *const c_void,
    len: usize,
    fin: c_int,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_conn(con, |c| {
            Ok(c.send_fragment(kind_arg(r#type)?, bytes_arg(data.cast(), len)?, fin != 0)?)
        })
    }
}

/// Queues a ping (payload at most 125 bytes). Returns as `wsconn_send`.
///
/// # Safety
/// `con` is NULL or a live connection; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_ping(con: *mut Connection<CCallbacks>, data: *const c_void, len: usize) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe { with_conn(con, |c| Ok(c.ping(bytes_arg(data.cast(), len)?)?)) }
}

/// Starts the closing handshake with `code` (1000–1003, 1007–1011, 3000–4999, or
/// 1005 for none) and `reason` (NULL or NUL-terminated UTF-8, at most 123 bytes).
/// The close callbacks follow when the peer answers, or after the close timeout.
/// A client that has not opened yet (resolving, connecting, talking to its
/// proxy, in the TLS or opening handshake) or that waits to connect again is
/// ended at once instead, for good: its close callbacks run at the next
/// dispatch (never inside this call) with `code`, `reason` and
/// `wsconn_close_error` 0. Inside the close callbacks, it cancels the
/// reconnection they announced (no callback follows). A client closed by
/// the program never reconnects. Returns `WSCONN_OK`,
/// `WSCONN_ERR_INVALID_ARGUMENT`, `WSCONN_ERR_CLOSED`, `WSCONN_ERR_NOT_OPEN`
/// (a server connection in its handshake, or one not started),
/// `WSCONN_ERR_NULL`.
///
/// # Safety
/// `con` is NULL or a live connection; `reason` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wsconn_close(con: *mut Connection<CCallbacks>, code: c_int, reason: *const c_char) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_conn(con, |c| {
            let reason = if reason.is_null() { "" } else { str_arg(reason)? };
            let code = u16::try_from(code).map_err(|_| Error::InvalidArgument)?;
            Ok(c.close(code, reason)?)
        })
    }
}

/// Output bytes queued and not yet written to the socket (0 for NULL).
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_buffered_amount(con: *const Connection<CCallbacks>) -> usize {
    ffi_boundary!(0, {
        // SAFETY: NULL or live per the caller.
        unsafe { con.as_ref() }.map_or(0, |c| c.buffered_amount())
    })
}

/// Stops reading from the connection (and delivering what was already read)
/// until `wsconn_resume_read`: inbound flow control. Callable from the
/// connection's callbacks. Returns `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_STATE`.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_pause_read(con: *mut Connection<CCallbacks>) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { with_conn(con, |c| Ok(c.pause_read()?)) }
}

/// Resumes reading after `wsconn_pause_read`. Returns as `wsconn_pause_read`.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_resume_read(con: *mut Connection<CCallbacks>) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { with_conn(con, |c| Ok(c.resume_read()?)) }
}

/// Client role: connects to `url` ("ws://[user:password@]host[:port][/path]",
/// or "wss://…" over TLS: the server is verified against the system's trust
/// store, or the config's `wsconn_config_set_tls_ca_file`, for the URL's
/// host name, sent as SNI). The URL's credentials (percent-decoded) go as
/// `Authorization: Basic`, after the config's header lines
/// (`wsconn_config_add_header`, `wsconn_add_header`). The config's proxy
/// (`wsconn_config_set_proxy`, `_from_env`) is asked for a tunnel first;
/// redirects are followed as the config allows (`_max_redirects`). Host
/// names are resolved on a worker thread (the reactor never blocks); the
/// reactor connects without blocking, talks to the proxy, runs the TLS and
/// opening handshakes, and calls the build callback — or the close callbacks
/// (code 1006, `wsconn_close_error` telling `WSCONN_ERR_IO`,
/// `WSCONN_ERR_TIMEOUT`, `WSCONN_ERR_HANDSHAKE_REFUSED` (the status in
/// `wsconn_handshake_status`), `WSCONN_ERR_REDIRECT`,
/// `WSCONN_ERR_PROXY_REFUSED`, `_PROXY_AUTH` (the proxy's status in
/// `wsconn_proxy_status`), `_PROXY_PROTOCOL`, or the TLS failure:
/// `WSCONN_ERR_TLS_UNKNOWN_CA`, `_NAME_MISMATCH`, `_EXPIRED`,
/// `_BAD_CERTIFICATE`, `_CA_CERTIFICATE`, `_ALERT`, `_NOT_TLS`, `_PROTOCOL`,
/// `_BUFFER_FULL`, `_TRUST_STORE`) if a step fails or
/// the handshake timeout (which covers them all) passes first. With
/// reconnection (`wsconn_config_set_reconnect`), a connection that ends
/// connects again by itself. Allowed on a new or stopped connection, and on
/// one that closed, also from inside its close callbacks: it starts again
/// (with the reactor's options of now, unless it has its own). Returns
/// `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_INVALID_ARGUMENT` (bad URL),
/// `WSCONN_ERR_IO` (an IP address that cannot be connected to at once),
/// `WSCONN_ERR_STATE` (running), `WSCONN_ERR_REENTRANT` (as for
/// `wsconn_start`), and for `wss://` or an `https://` proxy:
/// `WSCONN_ERR_TLS_NOT_BUILT`. The system's trust store is read by the first
/// `wss://` connection that needs it, on a worker thread, and kept; if it
/// cannot be read, that connection's close callbacks get
/// `WSCONN_ERR_TLS_TRUST_STORE` (and the next connection reads it again).
///
/// # Safety
/// `con` is NULL or a live connection; `url` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wsconn_connect(con: *mut Connection<CCallbacks>, url: *const c_char) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe { with_conn(con, |c| Ok(c.connect(str_arg(url)?)?)) }
}

/// Inside the build callback: the request target the client asked for (server
/// role, e.g. "/room/lobby?x=1") or the path requested (client role), a
/// NUL-terminated string valid until the callback returns. NULL elsewhere, or
/// if `con` is NULL.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_request_path(con: *const Connection<CCallbacks>) -> *const c_char {
    ffi_boundary!(std::ptr::null(), {
        if con.is_null() {
            return std::ptr::null();
        }
        with_open_path(con, |path| path.map_or(std::ptr::null(), |p| p.as_ptr()))
    })
}

/// The subprotocol selected in the handshake, or NULL (none, or not open yet).
/// The string belongs to the connection and lives as long as it.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_subprotocol(con: *const Connection<CCallbacks>) -> *const c_char {
    ffi_boundary!(std::ptr::null(), {
        // SAFETY: NULL or live per the caller.
        unsafe { con.as_ref() }.map_or(std::ptr::null(), |c| c.handler().subprotocol())
    })
}

/// Answers the plain HTTP request being handled, from inside the HTTP callback
/// only: `status` (100–999), `content_type` (e.g. "text/html"), `body` of `len`
/// bytes (copied). The connection closes once the response is written. Returns
/// `WSCONN_OK`, `WSCONN_ERR_NOT_OPEN` (not inside the HTTP callback, or already
/// answered), `WSCONN_ERR_INVALID_ARGUMENT`, `WSCONN_ERR_NULL`.
///
/// # Safety
/// `con` is NULL or a live connection; `content_type` is NULL or NUL-terminated;
/// `body` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_http_respond(
    con: *mut Connection<CCallbacks>,
    status: c_int,
    content_type: *const c_char,
    body: *const c_void,
    len: usize,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_conn(con, |c| {
            let status = u16::try_from(status).map_err(|_| Error::InvalidArgument)?;
            Ok(c.http_respond(status, str_arg(content_type)?, bytes_arg(body.cast(), len)?)?)
        })
    }
}

/// Sends a message from the program: the text the running message callback
/// was lent is known valid (an echo is not checked twice); other text is.
#[inline(always)]
fn send(conn: &Connection<CCallbacks>, kind: MessageKind, data: &[u8]) -> Result<(), Failure> {
    Ok(conn.send_message(message_arg(conn.reactor(), kind, data)?)?)
}

/// What ended the connection, for the close callbacks (and afterwards, until it
/// is started again): `WSCONN_OK` (0) when the closing handshake completed (or
/// a plain HTTP exchange did, or the connection has not ended); else the
/// negative `wsconn_result`: `WSCONN_ERR_EOF` (the peer dropped TCP),
/// `WSCONN_ERR_TIMEOUT` (handshake, pong or close timeout), `WSCONN_ERR_IO`
/// (resolution, connect, read or write failed), `WSCONN_ERR_PROTOCOL`,
/// `WSCONN_ERR_INVALID_UTF8`, `WSCONN_ERR_MESSAGE_TOO_BIG` (the peer broke the
/// protocol), `WSCONN_ERR_HANDSHAKE`, `WSCONN_ERR_HANDSHAKE_TOO_LARGE`; over
/// TLS, what the TLS handshake or a record failed with:
/// `WSCONN_ERR_TLS_UNKNOWN_CA`, `WSCONN_ERR_TLS_NAME_MISMATCH`,
/// `WSCONN_ERR_TLS_EXPIRED`, `WSCONN_ERR_TLS_BAD_CERTIFICATE`,
/// `WSCONN_ERR_TLS_CA_CERTIFICATE` (the peer's certificate),
/// `WSCONN_ERR_TLS_ALERT` (the peer refused ours, or the handshake),
/// `WSCONN_ERR_TLS_NOT_TLS`, `WSCONN_ERR_TLS_PROTOCOL`,
/// `WSCONN_ERR_TLS_BUFFER_FULL`, and for a `wss://` client
/// `WSCONN_ERR_TLS_TRUST_STORE` (the system's trust store could not be read);
/// for a client also `WSCONN_ERR_HANDSHAKE_REFUSED`, `WSCONN_ERR_REDIRECT`,
/// `WSCONN_ERR_PROXY_REFUSED`, `WSCONN_ERR_PROXY_AUTH`,
/// `WSCONN_ERR_PROXY_PROTOCOL`; 0 too when the program closed a client
/// before it opened; or `WSCONN_ERR_NULL`.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_close_error(con: *const Connection<CCallbacks>) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        match unsafe { con.as_ref() } {
            Some(conn) => conn.close_error().map_or(0, code),
            None => code(Failure::Null),
        }
    })
}

//! `wsconn_session_t`: the sans-IO session for programs that own their sockets
//! and event loop. The program feeds received bytes, gets events through
//! callbacks, and writes what the session queues.

use super::{bytes_arg, bytes_arg_mut, code_of, kind_arg, str_arg, wsconn_config_t};
use crate::proto::config::Config;
use crate::proto::error::Error;
use crate::proto::event::{Event, MessageKind};
use crate::proto::receiver::{Handler, Receiver};
use crate::proto::sender::Sender;
use crate::proto::session::{client_parts, state_of, wants_read, wants_write};
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::Arc;

/// Message types for `on_message` and the send functions.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsconn_msg_type {
    /// A text message: valid UTF-8.
    WSCONN_MSG_TEXT = 1,
    /// A binary message.
    WSCONN_MSG_BINARY = 2,
}

/// What `wsconn_session_state` returns.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsconn_state {
    /// The opening handshake is under way.
    WSCONN_STATE_CONNECTING = 0,
    /// Messages flow both ways.
    WSCONN_STATE_OPEN = 1,
    /// A close frame was sent or received; the closing handshake is not finished.
    WSCONN_STATE_CLOSING = 2,
    /// Nothing more is received or sent beyond the pending output: write it, then
    /// close the socket.
    WSCONN_STATE_CLOSED = 3,
}

/// Called when the opening handshake completes. `path` is the request target (server)
/// or the requested path (client); `subprotocol` the one selected, or NULL.
pub type wsconn_on_open = Option<
    extern "C" fn(session: *mut wsconn_session_t, arg: *mut c_void, path: *const c_char, subprotocol: *const c_char),
>;
/// Called for each complete message; `type` is a `wsconn_msg_type`. Text is valid
/// UTF-8 (not NUL-terminated).
pub type wsconn_on_message =
    Option<extern "C" fn(session: *mut wsconn_session_t, arg: *mut c_void, r#type: c_int, data: *const u8, len: usize)>;
/// Called for a ping (whose pong the library already queued) or a pong.
pub type wsconn_on_control =
    Option<extern "C" fn(session: *mut wsconn_session_t, arg: *mut c_void, data: *const u8, len: usize)>;
/// Called when the peer's close frame arrives: `code` is its status (1005 if it
/// had none) and `reason` its UTF-8 reason, NUL-terminated, `reason_len` bytes
/// long. The library already queued the reply close frame.
pub type wsconn_on_close = Option<
    extern "C" fn(
        session: *mut wsconn_session_t,
        arg: *mut c_void,
        code: c_int,
        reason: *const c_char,
        reason_len: usize,
    ),
>;
/// Called when the session fails; `error` is a negative `wsconn_result` (e.g.
/// `WSCONN_ERR_PROTOCOL`: the close frame it calls for is already queued).
pub type wsconn_on_error = Option<extern "C" fn(session: *mut wsconn_session_t, arg: *mut c_void, error: c_int)>;

/// The callbacks of a session; any member may be NULL. Every callback receives the
/// session and the `arg` given at creation. Pointers passed to a callback are
/// valid only during that call. Callbacks may call the send, ping, pong, close,
/// output and free functions on their session, but not `wsconn_session_feed`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct wsconn_session_callbacks_t {
    pub on_open: wsconn_on_open,
    pub on_message: wsconn_on_message,
    pub on_ping: wsconn_on_control,
    pub on_pong: wsconn_on_control,
    pub on_close: wsconn_on_close,
    pub on_error: wsconn_on_error,
}

/// A WebSocket session over a connection the program owns (server or client
/// role). Not thread-safe: use a session from one thread at a time.
pub struct wsconn_session_t {
    rx: RefCell<Receiver>,
    tx: RefCell<Sender>,
    callbacks: wsconn_session_callbacks_t,
    arg: *mut c_void,
    /// Set by `wsconn_session_free` called from a callback: the feed that is
    /// running frees the session when it returns.
    free_requested: Cell<bool>,
}

impl wsconn_session_t {
    fn new(rx: Receiver, tx: Sender, callbacks: Option<&wsconn_session_callbacks_t>, arg: *mut c_void) -> *mut Self {
        Box::into_raw(Box::new(wsconn_session_t {
            rx: RefCell::new(rx),
            tx: RefCell::new(tx),
            callbacks: callbacks.copied().unwrap_or_default(),
            arg,
            free_requested: Cell::new(false),
        }))
    }
}

/// Connects the receiver to the sender and the program's callbacks during a feed.
struct Callbacks<'a> {
    session: &'a wsconn_session_t,
    ptr: *mut wsconn_session_t,
}

impl Handler for Callbacks<'_> {
    fn with_sender<R>(&mut self, f: impl FnOnce(&mut Sender) -> R) -> R {
        f(&mut self.session.tx.borrow_mut())
    }

    fn on_event(&mut self, event: Event<'_>) {
        let cb = &self.session.callbacks;
        let (s, arg) = (self.ptr, self.session.arg);
        match event {
            Event::Open { path, subprotocol } => {
                if let Some(f) = cb.on_open {
                    let path = CString::new(path).unwrap_or_default();
                    let protocol = subprotocol.and_then(|p| CString::new(p).ok());
                    let protocol_ptr = protocol.as_ref().map_or(std::ptr::null(), |p| p.as_ptr());
                    f(s, arg, path.as_ptr(), protocol_ptr);
                }
            }
            Event::Message { kind, data } => {
                if let Some(f) = cb.on_message {
                    let kind = match kind {
                        MessageKind::Text => wsconn_msg_type::WSCONN_MSG_TEXT,
                        MessageKind::Binary => wsconn_msg_type::WSCONN_MSG_BINARY,
                    };
                    f(s, arg, kind as c_int, data.as_ptr(), data.len());
                }
            }
            Event::Ping(data) => {
                if let Some(f) = cb.on_ping {
                    f(s, arg, data.as_ptr(), data.len());
                }
            }
            Event::Pong(data) => {
                if let Some(f) = cb.on_pong {
                    f(s, arg, data.as_ptr(), data.len());
                }
            }
            Event::Close { code, reason } => {
                if let Some(f) = cb.on_close {
                    // A close reason is at most 123 bytes: NUL-terminate it on the stack.
                    let mut text = [0u8; 124];
                    text[..reason.len()].copy_from_slice(reason.as_bytes());
                    f(s, arg, code as c_int, text.as_ptr().cast(), reason.len());
                }
            }
            Event::Error(error) => {
                if let Some(f) = cb.on_error {
                    f(s, arg, error.code());
                }
            }
            // Sessions made here enable neither streaming receive nor HTTP serving.
            Event::Fragment { .. } | Event::HttpRequest { .. } => {}
        }
    }

    fn stopped(&self) -> bool {
        self.session.free_requested.get()
    }
}

/// The config behind a possibly-NULL pointer, or the defaults.
///
/// # Safety
/// `config` is NULL or a live config.
unsafe fn config_arg(config: *const wsconn_config_t) -> Arc<Config> {
    // SAFETY: NULL or live per the caller.
    match unsafe { config.as_ref() } {
        Some(c) => Arc::clone(&c.inner),
        None => Arc::new(Config::default()),
    }
}

/// Creates a server session: it expects the client's opening handshake as its
/// first input. `config` may be NULL (defaults) and is not kept; `callbacks` may
/// be NULL (no callbacks) and is copied; `arg` is passed to every callback.
/// Free the session with `wsconn_session_free`. Returns NULL only if a panic was caught.
///
/// # Safety
/// `config` is NULL or a live config; `callbacks` is NULL or points to a valid struct.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_server_new(
    config: *const wsconn_config_t,
    callbacks: *const wsconn_session_callbacks_t,
    arg: *mut c_void,
) -> *mut wsconn_session_t {
    ffi_boundary!(std::ptr::null_mut(), {
        // SAFETY: forwarded caller guarantee.
        let config = unsafe { config_arg(config) };
        let tx = Sender::new(crate::proto::role::Role::Server, config.max_output);
        // SAFETY: NULL or a valid struct per the caller.
        let callbacks = unsafe { callbacks.as_ref() };
        wsconn_session_t::new(Receiver::server(config), tx, callbacks, arg)
    })
}

/// Creates a client session and queues its opening handshake request (a GET of
/// `path` with `Host: host` and a fresh random key): write the output first.
/// `host` is the Host header value (add ":port" when not 80) and `path` starts
/// with '/'; both are copied. `config`, `callbacks` and `arg` as for
/// `wsconn_session_server_new`. Returns NULL if `host` or `path` is NULL,
/// empty, not printable ASCII without spaces, or `path` lacks the leading '/'.
///
/// # Safety
/// `config` is NULL or a live config; `host` and `path` are NULL or NUL-terminated
/// strings; `callbacks` is NULL or points to a valid struct.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_client_new(
    config: *const wsconn_config_t,
    host: *const c_char,
    path: *const c_char,
    callbacks: *const wsconn_session_callbacks_t,
    arg: *mut c_void,
) -> *mut wsconn_session_t {
    ffi_boundary!(std::ptr::null_mut(), {
        // SAFETY: forwarded caller guarantees.
        let (host, path) = match unsafe { (str_arg(host), str_arg(path)) } {
            (Ok(host), Ok(path)) => (host, path),
            _ => return std::ptr::null_mut(),
        };
        // SAFETY: forwarded caller guarantee.
        let config = unsafe { config_arg(config) };
        let Ok((rx, tx)) = client_parts(config, host, path) else {
            return std::ptr::null_mut();
        };
        // SAFETY: NULL or a valid struct per the caller.
        let callbacks = unsafe { callbacks.as_ref() };
        wsconn_session_t::new(rx, tx, callbacks, arg)
    })
}

/// Frees a session and its buffers. NULL is a no-op. May be called from inside
/// one of the session's callbacks: the session then stops processing input and is
/// freed when the library returns from the callback. Freeing twice is undefined.
///
/// # Safety
/// `session` is NULL or a live session; it must not be used after this call.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_free(session: *mut wsconn_session_t) {
    ffi_boundary!((), {
        // SAFETY: NULL or live per the caller.
        let Some(s) = (unsafe { session.as_ref() }) else { return };
        if s.rx.try_borrow_mut().is_err() {
            // A feed is running this session's callbacks: it frees the session.
            s.free_requested.set(true);
            return;
        }
        // SAFETY: the pointer came from Box::into_raw and no feed holds it.
        drop(unsafe { Box::from_raw(session) });
    })
}

/// Runs `f` on a live session, mapping NULL and panics to codes.
///
/// # Safety
/// `session` is NULL or a live session.
unsafe fn with_session(
    session: *const wsconn_session_t,
    f: impl FnOnce(&wsconn_session_t) -> Result<(), Error>,
) -> i32 {
    ffi_boundary!(Error::Panic.code(), {
        // SAFETY: NULL or live per the caller; only shared references are made.
        match unsafe { session.as_ref() } {
            Some(s) => code_of(f(s)),
            None => Error::Null.code(),
        }
    })
}

/// Runs `f` on the sender of a live session.
///
/// # Safety
/// `session` is NULL or a live session.
unsafe fn with_sender(session: *const wsconn_session_t, f: impl FnOnce(&mut Sender) -> Result<(), Error>) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        with_session(session, |s| {
            let mut tx = s.tx.try_borrow_mut().map_err(|_| Error::Reentrant)?;
            f(&mut tx)
        })
    }
}

/// Feeds bytes received from the peer. Callbacks run inside this call. The
/// library unmasks frames IN PLACE: the bytes of `data` are modified; `data` is
/// only borrowed for the call (nothing is kept pointing into it).
///
/// Returns `WSCONN_OK`, or the error that failed the session (the same code the
/// `on_error` callback received; the close frame or HTTP error it calls for is
/// queued as output): `WSCONN_ERR_PROTOCOL`, `WSCONN_ERR_INVALID_UTF8`,
/// `WSCONN_ERR_MESSAGE_TOO_BIG`, `WSCONN_ERR_HANDSHAKE`,
/// `WSCONN_ERR_HANDSHAKE_TOO_LARGE`; or `WSCONN_ERR_NULL` (session NULL, or data
/// NULL with len > 0), `WSCONN_ERR_REENTRANT` (called from a callback).
/// Bytes fed after the session closed are ignored.
///
/// # Safety
/// `session` is NULL or a live session; `data` points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_feed(session: *mut wsconn_session_t, data: *mut u8, len: usize) -> i32 {
    ffi_boundary!(Error::Panic.code(), {
        // SAFETY: NULL or live per the caller; only shared references are made.
        let Some(s) = (unsafe { session.as_ref() }) else {
            return Error::Null.code();
        };
        // SAFETY: the caller lends `len` writable bytes for the call.
        let data = match unsafe { bytes_arg_mut(data, len) } {
            Ok(data) => data,
            Err(e) => return e.code(),
        };
        let Ok(mut rx) = s.rx.try_borrow_mut() else {
            return Error::Reentrant.code();
        };
        let result = rx.feed(
            data,
            &mut Callbacks {
                session: s,
                ptr: session,
            },
        );
        drop(rx);
        if s.free_requested.get() {
            // SAFETY: freed from a callback; no reference to the session remains
            // after this point.
            drop(unsafe { Box::from_raw(session) });
            return 0;
        }
        code_of(result.map(|_| ()))
    })
}

/// Tells the session the peer closed the TCP connection (read returned 0).
/// Returns `WSCONN_OK` if the closing handshake had completed, else
/// `WSCONN_ERR_EOF` (and `on_error` gets it); `WSCONN_ERR_NULL`, `WSCONN_ERR_REENTRANT`.
///
/// # Safety
/// `session` is NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_feed_eof(session: *mut wsconn_session_t) -> i32 {
    ffi_boundary!(Error::Panic.code(), {
        // SAFETY: NULL or live per the caller.
        let Some(s) = (unsafe { session.as_ref() }) else {
            return Error::Null.code();
        };
        let Ok(mut rx) = s.rx.try_borrow_mut() else {
            return Error::Reentrant.code();
        };
        let result = rx.feed_eof(&mut Callbacks {
            session: s,
            ptr: session,
        });
        drop(rx);
        if s.free_requested.get() {
            // SAFETY: freed from a callback; no reference remains after this point.
            drop(unsafe { Box::from_raw(session) });
            return 0;
        }
        code_of(result)
    })
}

/// The bytes waiting to be written to the peer: sets `*data` to them and returns
/// their length (0 if none; then `*data` is unspecified). The pointer stays valid
/// until the next call that changes the session (consume, send, feed, free).
/// Returns 0 if `session` or `data` is NULL.
///
/// # Safety
/// `session` is NULL or a live session; `data` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_output(session: *const wsconn_session_t, data: *mut *const u8) -> usize {
    ffi_boundary!(0, {
        // SAFETY: NULL or live per the caller.
        let (Some(s), false) = (unsafe { session.as_ref() }, data.is_null()) else {
            return 0;
        };
        let Ok(tx) = s.tx.try_borrow() else { return 0 };
        let pending = tx.pending();
        // SAFETY: `data` is non-NULL and writable per the caller.
        unsafe { *data = pending.as_ptr() };
        pending.len()
    })
}

/// Marks the first `n` output bytes as written. Returns `WSCONN_OK`,
/// `WSCONN_ERR_NULL`, or `WSCONN_ERR_INVALID_ARGUMENT` if `n` exceeds the output.
///
/// # Safety
/// `session` is NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_consume(session: *mut wsconn_session_t, n: usize) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { with_sender(session, |tx| tx.consume(n)) }
}

/// 1 if the program should read from the socket and feed the bytes, else 0
/// (the session is closed on the receiving side, or its output reached half the
/// configured max output: a peer that does not read is not read either). 0 for NULL.
///
/// # Safety
/// `session` is NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_want_read(session: *const wsconn_session_t) -> c_int {
    ffi_boundary!(0, {
        // SAFETY: NULL or live per the caller.
        let Some(s) = (unsafe { session.as_ref() }) else {
            return 0;
        };
        match (s.rx.try_borrow(), s.tx.try_borrow()) {
            (Ok(rx), Ok(tx)) => wants_read(&rx, &tx) as c_int,
            _ => 0,
        }
    })
}

/// 1 if output is waiting to be written, else 0 (also for NULL). When both
/// `want_read` and `want_write` are 0 the session is over: close the socket.
///
/// # Safety
/// `session` is NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_want_write(session: *const wsconn_session_t) -> c_int {
    ffi_boundary!(0, {
        // SAFETY: NULL or live per the caller.
        let Some(s) = (unsafe { session.as_ref() }) else {
            return 0;
        };
        s.tx.try_borrow().map_or(0, |tx| wants_write(&tx) as c_int)
    })
}

/// The session's `wsconn_state`, or `WSCONN_ERR_NULL` for NULL.
///
/// # Safety
/// `session` is NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_state(session: *const wsconn_session_t) -> c_int {
    ffi_boundary!(Error::Panic.code(), {
        // SAFETY: NULL or live per the caller.
        let Some(s) = (unsafe { session.as_ref() }) else {
            return Error::Null.code();
        };
        // During a feed the receiver is busy; it is still open or closing then.
        let Ok(tx) = s.tx.try_borrow() else {
            return Error::Reentrant.code();
        };
        match s.rx.try_borrow() {
            Ok(rx) => state_of(&rx, &tx) as c_int,
            Err(_) if tx.is_closed() => wsconn_state::WSCONN_STATE_CLOSING as c_int,
            Err(_) => wsconn_state::WSCONN_STATE_OPEN as c_int,
        }
    })
}

/// Number of output bytes queued and not yet consumed (0 for NULL).
///
/// # Safety
/// `session` is NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_buffered_amount(session: *const wsconn_session_t) -> usize {
    ffi_boundary!(0, {
        // SAFETY: NULL or live per the caller.
        let Some(s) = (unsafe { session.as_ref() }) else {
            return 0;
        };
        s.tx.try_borrow().map_or(0, |tx| tx.buffered())
    })
}

/// Queues a whole message of `type` (`WSCONN_MSG_TEXT`, which must be valid
/// UTF-8, or `WSCONN_MSG_BINARY`). `data` may be NULL when `len` is 0; it is
/// copied. Returns `WSCONN_OK`; `WSCONN_ERR_FULL` (output over the limit, nothing
/// queued); `WSCONN_ERR_NOT_OPEN`; `WSCONN_ERR_CLOSED`; `WSCONN_ERR_INVALID_ARGUMENT`;
/// `WSCONN_ERR_NULL`.
///
/// # Safety
/// `session` is NULL or a live session; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_send(
    session: *mut wsconn_session_t,
    r#type: c_int,
    data: *const u8,
    len: usize,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe { with_sender(session, |tx| tx.send(kind_arg(r#type)?, bytes_arg(data, len)?)) }
}

/// Queues one fragment of a message (for messages sent piece by piece). The first
/// fragment's `type` is the message's; the following ones must give the same
/// type; `fin` nonzero ends the message. Text is checked across fragments. No
/// whole message may be sent while a fragmented one is unfinished (control frames
/// may). Returns as `wsconn_session_send`.
///
/// # Safety
/// `session` is NULL or a live session; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_send_fragment(
    session: *mut wsconn_session_t,
    r#type: c_int,
    data: *const u8,
    len: usize,
    fin: c_int,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_sender(session, |tx| {
            tx.send_fragment(kind_arg(r#type)?, bytes_arg(data, len)?, fin != 0)
        })
    }
}

/// Queues a ping with up to 125 bytes of payload (copied). Returns as
/// `wsconn_session_send` (`WSCONN_ERR_INVALID_ARGUMENT` for `len` > 125).
///
/// # Safety
/// `session` is NULL or a live session; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_ping(session: *mut wsconn_session_t, data: *const u8, len: usize) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe { with_sender(session, |tx| tx.ping(bytes_arg(data, len)?)) }
}

/// Queues an unsolicited pong (a heartbeat; pings are answered automatically).
/// Returns as `wsconn_session_ping`.
///
/// # Safety
/// `session` is NULL or a live session; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_pong(session: *mut wsconn_session_t, data: *const u8, len: usize) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe { with_sender(session, |tx| tx.pong(bytes_arg(data, len)?)) }
}

/// Starts the closing handshake: queues a close frame with `code` (1000–1003,
/// 1007–1011, 3000–4999; or 1005 for a close frame without status and reason)
/// and `reason` (NULL, or a NUL-terminated UTF-8 string of at most 123 bytes).
/// Nothing may be sent after it; the session reaches `WSCONN_STATE_CLOSED` when
/// the peer answers (apply a timeout of your own). Returns `WSCONN_OK`,
/// `WSCONN_ERR_INVALID_ARGUMENT`, `WSCONN_ERR_CLOSED`, `WSCONN_ERR_NOT_OPEN`, `WSCONN_ERR_NULL`.
///
/// # Safety
/// `session` is NULL or a live session; `reason` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_close(
    session: *mut wsconn_session_t,
    code: c_int,
    reason: *const c_char,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_sender(session, |tx| {
            let reason = if reason.is_null() { "" } else { str_arg(reason)? };
            let code = u16::try_from(code).map_err(|_| Error::InvalidArgument)?;
            tx.close(code, reason)
        })
    }
}

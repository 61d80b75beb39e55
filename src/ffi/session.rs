//! `wsconn_session_t`: the sans-IO session for programs that own their sockets
//! and event loop. The program feeds received bytes, gets events through
//! callbacks, and writes what the session queues.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::Arc;

use super::result::{code, code_of, Failure};
use super::{bytes_arg, bytes_arg_mut, kind_arg, kind_code, str_arg, wsconn_config_t};
use crate::ffi::request::{lending_request, upgrade_decision};
use crate::proto::config::Config;
use crate::proto::error::Error;
use crate::proto::event::{Event, Message};
use crate::proto::handshake::headers::{HeaderBlock, Headers};
use crate::proto::role::Role;
use crate::proto::session::Subprotocol;
use crate::proto::session::{EventHandler, Session};
use crate::proto::state::State;
use crate::runtime::handler::UpgradeDecision;

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
/// UTF-8 (not NUL-terminated). `data` points into the buffer given to
/// `wsconn_session_feed`, unmasked in place (or into the library's reassembly
/// buffer); a program that changes it and sends it back has it checked again.
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
/// Called when a server session's upgrade request is to be decided (see
/// `wsconn_session_set_upgrade_func`); returns a `wsconn_upgrade` unless it
/// decided inside.
pub type wsconn_session_upgrade_func = Option<extern "C" fn(session: *mut wsconn_session_t, arg: *mut c_void) -> c_int>;

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
///
/// Sessions know no TLS. Over TLS, the program runs its own TLS library on
/// its socket: it feeds `wsconn_session_feed` the decrypted bytes, and
/// encrypts what `wsconn_session_output` gives before writing it (then
/// `wsconn_session_consume`). The reactor API does TLS itself
/// (`wsconn_acceptor_set_tls`, `wss://` URLs).
pub struct wsconn_session_t {
    session: Session,
    callbacks: wsconn_session_callbacks_t,
    arg: *mut c_void,
    /// A feed is running the callbacks.
    feeding: Cell<bool>,
    /// Set by `wsconn_session_free` called from a callback: the feed that is
    /// running frees the session when it returns.
    free_requested: Cell<bool>,
    /// The upgrade callback and its arg.
    pub(crate) upgrade: Cell<(wsconn_session_upgrade_func, *mut c_void)>,
    /// Client role: the status of the server's answer (0: none yet) and its
    /// header lines.
    status: Cell<u16>,
    response: RefCell<Option<HeaderBlock>>,
}

impl wsconn_session_t {
    /// Client role: keeps the server's answer to the opening handshake.
    fn answered(&self, status: u16, headers: &Headers<'_>) {
        self.status.set(status);
        *self.response.borrow_mut() = Some(headers.to_block());
    }

    /// The session inside.
    pub(crate) fn session(&self) -> &Session {
        &self.session
    }

    /// A feed is running its callbacks.
    pub(crate) fn is_feeding(&self) -> bool {
        self.feeding.get()
    }

    fn new(session: Session, callbacks: Option<&wsconn_session_callbacks_t>, arg: *mut c_void) -> *mut Self {
        Box::into_raw(Box::new(wsconn_session_t {
            session,
            callbacks: callbacks.copied().unwrap_or_default(),
            arg,
            feeding: Cell::new(false),
            free_requested: Cell::new(false),
            upgrade: Cell::new((None, std::ptr::null_mut())),
            status: Cell::new(0),
            response: RefCell::new(None),
        }))
    }

    /// Runs a feed (or EOF) with the C callbacks; frees the session afterwards
    /// if a callback asked for it. Returns the code for C.
    ///
    /// # Safety
    /// `this` is a live session.
    pub(crate) unsafe fn feeding(
        this: *mut Self,
        feed: impl FnOnce(&Session, &mut Callbacks<'_>) -> Result<(), Error>,
    ) -> i32 {
        // SAFETY: live per the caller; only shared references are made.
        let s = unsafe { &*this };
        if s.feeding.get() {
            // A callback fed its own session: refuse before touching the flag,
            // which the outer feed still needs (a free requested later in that
            // feed must wait for it).
            return code(Failure::Session(Error::Reentrant));
        }
        s.feeding.set(true);
        let result = feed(&s.session, &mut Callbacks { session: s, ptr: this });
        s.feeding.set(false);
        if s.free_requested.get() {
            // SAFETY: freed from a callback; no reference to the session remains
            // after this point.
            drop(unsafe { Box::from_raw(this) });
            return 0;
        }
        code_of(result)
    }
}

/// Connects the session's events to the program's callbacks during a feed.
pub(crate) struct Callbacks<'a> {
    session: &'a wsconn_session_t,
    ptr: *mut wsconn_session_t,
}

impl EventHandler for Callbacks<'_> {
    fn on_event(&mut self, _: &Session, event: Event<'_>) {
        if self.session.free_requested.get() {
            return; // freed by a callback of this feed: no callback after that
        }
        let cb = &self.session.callbacks;
        let (s, arg) = (self.ptr, self.session.arg);
        match event {
            Event::Open {
                path,
                subprotocol,
                headers,
            } => {
                if self.session.session.role() == Role::Client {
                    self.session.answered(101, &headers);
                }
                if let Some(f) = cb.on_open {
                    let path = CString::new(path).unwrap_or_default();
                    let protocol = subprotocol.and_then(|p| CString::new(p).ok());
                    let protocol_ptr = protocol.as_ref().map_or(std::ptr::null(), |p| p.as_ptr());
                    f(s, arg, path.as_ptr(), protocol_ptr);
                }
            }
            Event::Upgrade(request) => {
                let (Some(f), up_arg) = self.session.upgrade.get() else {
                    return;
                };
                let answer = lending_request(s as usize, request, || f(s, up_arg));
                if self.session.session.state() == State::Deciding && !self.session.free_requested.get() {
                    let _ = match upgrade_decision(answer) {
                        UpgradeDecision::Accept => self.session.session.accept_upgrade(Subprotocol::Default, &[]),
                        UpgradeDecision::Reject(status) => self.session.session.reject_upgrade(status, &[], b""),
                        UpgradeDecision::Pending => Ok(()),
                    };
                }
            }
            Event::Message(message) => {
                if let Some(f) = cb.on_message {
                    let data = message.as_bytes();
                    f(s, arg, kind_code(message.kind()), data.as_ptr(), data.len());
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
                    f(s, arg, code(error));
                }
            }
            // Sessions made here enable neither streaming receive nor HTTP serving.
            Event::Refused { status, headers } => self.session.answered(status, &headers),
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
        Some(c) => Arc::clone(&c.inner.protocol),
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
        // SAFETY: NULL or a valid struct per the caller.
        let callbacks = unsafe { callbacks.as_ref() };
        wsconn_session_t::new(Session::server(config), callbacks, arg)
    })
}

/// Creates a client session and queues its opening handshake request (a GET of
/// `path` with `Host: host` and a fresh random key, then the config's
/// subprotocols, deflate offer and header lines of `wsconn_config_add_header`):
/// write the output first. Interim answers (1xx) are passed over; a final
/// answer other than 101 fails the session with `WSCONN_ERR_HANDSHAKE_REFUSED`
/// (`wsconn_session_handshake_status`, `wsconn_session_response_header`).
/// Redirects and proxies are the program's to follow here.
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
        let Ok(session) = Session::client(config, host, path) else {
            return std::ptr::null_mut();
        };
        // SAFETY: NULL or a valid struct per the caller.
        let callbacks = unsafe { callbacks.as_ref() };
        wsconn_session_t::new(session, callbacks, arg)
    })
}

/// Frees a session and its buffers. NULL is a no-op. May be called from inside
/// one of the session's callbacks: the session then stops processing input, runs
/// no more callbacks (what an upgrade callback that freed it returns is ignored)
/// and is freed when the library returns from the callback. Freeing twice is
/// undefined.
///
/// # Safety
/// `session` is NULL or a live session; it must not be used after this call.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_free(session: *mut wsconn_session_t) {
    ffi_boundary!((), {
        // SAFETY: NULL or live per the caller.
        let Some(s) = (unsafe { session.as_ref() }) else { return };
        if s.feeding.get() {
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
pub(crate) unsafe fn with_session(
    session: *const wsconn_session_t,
    f: impl FnOnce(&Session) -> Result<(), Failure>,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller; only shared references are made.
        match unsafe { session.as_ref() } {
            Some(s) => code_of(f(&s.session)),
            None => code(Failure::Null),
        }
    })
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
    ffi_boundary!(code(Failure::Panic), {
        if session.is_null() {
            return code(Failure::Null);
        }
        // SAFETY: the caller lends `len` writable bytes for the call.
        let data = match unsafe { bytes_arg_mut(data, len) } {
            Ok(data) => data,
            Err(e) => return code(e),
        };
        // SAFETY: live per the caller.
        unsafe { wsconn_session_t::feeding(session, |s, callbacks| s.feed(data, callbacks).map(|_| ())) }
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
    ffi_boundary!(code(Failure::Panic), {
        if session.is_null() {
            return code(Failure::Null);
        }
        // SAFETY: live per the caller.
        unsafe { wsconn_session_t::feeding(session, |s, callbacks| s.feed_eof(callbacks)) }
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
        let pending = s.session.pending();
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
    unsafe { with_session(session, |s| Ok(s.consume(n)?)) }
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
        s.session.wants_read() as c_int
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
        s.session.wants_write() as c_int
    })
}

/// The session's `wsconn_state`, or `WSCONN_ERR_NULL` for NULL.
///
/// # Safety
/// `session` is NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_state(session: *const wsconn_session_t) -> c_int {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(s) = (unsafe { session.as_ref() }) else {
            return code(Failure::Null);
        };
        wsconn_state::from(s.session.state()) as c_int
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
        s.session.buffered()
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
    unsafe {
        with_session(session, |s| {
            Ok(s.send_message(Message::new(kind_arg(r#type)?, bytes_arg(data, len)?)?)?)
        })
    }
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
        with_session(session, |s| {
            Ok(s.send_fragment(kind_arg(r#type)?, bytes_arg(data, len)?, fin != 0)?)
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
    unsafe { with_session(session, |s| Ok(s.ping(bytes_arg(data, len)?)?)) }
}

/// Queues an unsolicited pong (a heartbeat; pings are answered automatically).
/// Returns as `wsconn_session_ping`.
///
/// # Safety
/// `session` is NULL or a live session; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_pong(session: *mut wsconn_session_t, data: *const u8, len: usize) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe { with_session(session, |s| Ok(s.pong(bytes_arg(data, len)?)?)) }
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
        with_session(session, |s| {
            let reason = if reason.is_null() { "" } else { str_arg(reason)? };
            let code = u16::try_from(code).map_err(|_| Error::InvalidArgument)?;
            Ok(s.close(code, reason)?)
        })
    }
}

impl From<State> for wsconn_state {
    fn from(state: State) -> wsconn_state {
        match state {
            State::Handshake | State::Deciding => wsconn_state::WSCONN_STATE_CONNECTING,
            State::Open => wsconn_state::WSCONN_STATE_OPEN,
            State::HttpRequest | State::CloseSent => wsconn_state::WSCONN_STATE_CLOSING,
            State::AwaitingEof | State::Closed => wsconn_state::WSCONN_STATE_CLOSED,
        }
    }
}

/// Client role: the HTTP status of the server's answer to the opening
/// handshake: 101 once open; another when it refused (the session then
/// failed with `WSCONN_ERR_HANDSHAKE_REFUSED`: 401, 403, a redirect…,
/// which the program follows itself); 0 before any answer, and for a server
/// session. `WSCONN_ERR_NULL` for NULL.
///
/// # Safety
/// `session` is NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_handshake_status(session: *const wsconn_session_t) -> c_int {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        match unsafe { session.as_ref() } {
            Some(s) => s.status.get() as c_int,
            None => code(Failure::Null),
        }
    })
}

/// Client role: the value of the `index`-th (from 0) header line called
/// `name` (any case) in the server's answer to the opening handshake (its
/// 101, from `on_open` on; or its refusal, from `on_error` on), without the
/// blanks around it. A NUL-terminated string owned by the session, valid
/// until it is freed. NULL when there is no such line, no answer yet, or
/// `session` or `name` is NULL.
///
/// # Safety
/// `session` is NULL or a live session; `name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_response_header(
    session: *const wsconn_session_t,
    name: *const c_char,
    index: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null(), {
        // SAFETY: NULL or live per the caller.
        let Some(s) = (unsafe { session.as_ref() }) else {
            return std::ptr::null();
        };
        // SAFETY: NULL or NUL-terminated per the caller.
        let Ok(name) = (unsafe { str_arg(name) }) else {
            return std::ptr::null();
        };
        // The block is replaced only by another answer, which a session
        // gets once: the value stays where it is until the session is freed.
        s.response
            .borrow()
            .as_ref()
            .and_then(|b| b.get_with_nul(name, index))
            .map_or(std::ptr::null(), |value| value.as_ptr().cast())
    })
}

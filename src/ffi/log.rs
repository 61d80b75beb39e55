//! The reactor's log, told to a C function: what the library refused or
//! ended on its own (`wsconn_log_event`), rate-limited per event.

use std::ffi::{c_char, c_int, c_void, CString};

use super::result::{code, Failure};
use crate::ffi::callbacks::CCallbacks;
use crate::proto::error::Error;
use crate::runtime::connection::Connection;
use crate::runtime::log::{Level, LogEvent, LogRecord};
use crate::runtime::reactor::Reactor;

/// How much a log line matters, in increasing order.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsconn_log_level {
    WSCONN_LOG_DEBUG = 0,
    WSCONN_LOG_INFO = 1,
    WSCONN_LOG_WARN = 2,
    WSCONN_LOG_ERROR = 3,
}

/// What a log line is about: stable codes (`wsconn_log_event_name` gives a
/// short name). Each has a fixed level, given with it.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsconn_log_event {
    /// WARN: a server refused an opening handshake: a malformed or
    /// unacceptable request (400, 426, 431), or the server shutting down (a
    /// drain's 503, `wsconn_reactor_refuse_pending`); the message says why.
    /// Every refusal is told once, under its own event (this one, the
    /// handshake timeout, TLS, origin, the program, the limits, the PROXY
    /// header), with the client's address: the PROXY header's when the
    /// acceptor reads one.
    WSCONN_LOG_HANDSHAKE_REFUSED = 1,
    /// INFO: an opening handshake (a PROXY header included) did not complete
    /// within the handshake timeout.
    WSCONN_LOG_HANDSHAKE_TIMEOUT = 2,
    /// WARN: a TLS handshake or record failed (the message names the failure).
    WSCONN_LOG_TLS_FAILED = 3,
    /// INFO: a peer broke the protocol: closed with 1002, 1007 or 1009.
    WSCONN_LOG_PROTOCOL_ERROR = 4,
    /// INFO: an open connection's timer ran out: idle (closed with 1001),
    /// pong, message (1008) or close timeout.
    WSCONN_LOG_TIMEOUT = 5,
    /// INFO: a connection stopped being read: the reactor's memory budget is spent.
    WSCONN_LOG_BUDGET_PAUSED = 6,
    /// DEBUG: a connection the budget held back is read again.
    WSCONN_LOG_BUDGET_RESUMED = 7,
    /// INFO: slow subscribers missed a published message (policy skip; one
    /// line per publish, no connection).
    WSCONN_LOG_SLOW_SKIPPED = 8,
    /// WARN: a slow subscriber was closed with 1008 (policy close).
    WSCONN_LOG_SLOW_CLOSED = 9,
    /// ERROR: accept() failed (out of file descriptors, …).
    WSCONN_LOG_ACCEPT_FAILED = 10,
    /// INFO: a drain began.
    WSCONN_LOG_DRAIN_STARTED = 11,
    /// WARN: a drain's deadline cut a connection.
    WSCONN_LOG_DRAIN_CUT = 12,
    /// INFO: a drain ended.
    WSCONN_LOG_DRAIN_DONE = 13,
    /// WARN: a server refused a handshake for its Origin.
    WSCONN_LOG_ORIGIN_REFUSED = 14,
    /// INFO: the program refused a handshake (its upgrade decision).
    WSCONN_LOG_PROGRAM_REFUSED = 15,
    /// WARN: an acceptor refused a socket over its limits (in all, or per
    /// address): no connection was made (`con` is NULL).
    WSCONN_LOG_LIMIT_REFUSED = 16,
    /// WARN: a PROXY protocol header was malformed, or the socket ended before
    /// it came: no connection was made (`con` is NULL; `peer` is the
    /// balancer's address).
    WSCONN_LOG_PROXY_HEADER_FAILED = 17,
    /// WARN: a compressed message inflated beyond the allowed ratio: closed
    /// (not told yet: no such limit yet).
    WSCONN_LOG_INFLATE_RATIO_CLOSED = 18,
    /// INFO: a client connection waits to reconnect (the message says how long).
    WSCONN_LOG_RECONNECT_WAITING = 19,
}

// The C values are the runtime's.
const _: () = {
    use wsconn_log_event as C;
    use LogEvent as R;
    let pairs = [
        (C::WSCONN_LOG_HANDSHAKE_REFUSED, R::HandshakeRefused),
        (C::WSCONN_LOG_HANDSHAKE_TIMEOUT, R::HandshakeTimeout),
        (C::WSCONN_LOG_TLS_FAILED, R::TlsFailed),
        (C::WSCONN_LOG_PROTOCOL_ERROR, R::ProtocolError),
        (C::WSCONN_LOG_TIMEOUT, R::Timeout),
        (C::WSCONN_LOG_BUDGET_PAUSED, R::BudgetPaused),
        (C::WSCONN_LOG_BUDGET_RESUMED, R::BudgetResumed),
        (C::WSCONN_LOG_SLOW_SKIPPED, R::SlowSkipped),
        (C::WSCONN_LOG_SLOW_CLOSED, R::SlowClosed),
        (C::WSCONN_LOG_ACCEPT_FAILED, R::AcceptFailed),
        (C::WSCONN_LOG_DRAIN_STARTED, R::DrainStarted),
        (C::WSCONN_LOG_DRAIN_CUT, R::DrainCut),
        (C::WSCONN_LOG_DRAIN_DONE, R::DrainDone),
        (C::WSCONN_LOG_ORIGIN_REFUSED, R::OriginRefused),
        (C::WSCONN_LOG_PROGRAM_REFUSED, R::ProgramRefused),
        (C::WSCONN_LOG_LIMIT_REFUSED, R::LimitRefused),
        (C::WSCONN_LOG_PROXY_HEADER_FAILED, R::ProxyHeaderFailed),
        (C::WSCONN_LOG_INFLATE_RATIO_CLOSED, R::InflateRatioClosed),
        (C::WSCONN_LOG_RECONNECT_WAITING, R::ReconnectWaiting),
    ];
    assert!(pairs.len() == LogEvent::ALL.len());
    let mut i = 0;
    while i < pairs.len() {
        assert!(pairs[i].0 as i32 == pairs[i].1 as i32);
        i += 1;
    }
    assert!(
        wsconn_log_level::WSCONN_LOG_DEBUG as i32 == Level::Debug as i32
            && wsconn_log_level::WSCONN_LOG_INFO as i32 == Level::Info as i32
            && wsconn_log_level::WSCONN_LOG_WARN as i32 == Level::Warn as i32
            && wsconn_log_level::WSCONN_LOG_ERROR as i32 == Level::Error as i32
    );
};

/// A log line: its `level` (`wsconn_log_level`), `event` (`wsconn_log_event`),
/// the connection it is about (NULL for a reactor's or acceptor's event, and
/// for "suppressed" lines), the peer's address ("192.0.2.1:51234",
/// "[2001:db8::1]:443"; NULL when unknown) and a message, both
/// NUL-terminated and valid during the call. Runs on the reactor's thread,
/// inside a dispatch (or inside the call that caused it); lines it causes
/// itself are dropped.
pub type wsconn_log_func = Option<
    extern "C" fn(
        arg: *mut c_void,
        level: c_int,
        event: c_int,
        con: *mut Connection<CCallbacks>,
        peer: *const c_char,
        message: *const c_char,
    ),
>;

/// Tells `func(arg, …)` what the library refuses or ends on its own:
/// refused handshakes with their reason, TLS failures, timeouts, protocol
/// errors, budget pauses and resumes, slow subscribers skipped or closed,
/// accept failures, drains (see `wsconn_log_event`), those of `min_level`
/// (`wsconn_log_level`) and above. Silent by default; `func` NULL silences it
/// again. An attack cannot flood it: each event code gets at most 10 lines a
/// second on this reactor (`wsconn_reactor_set_log_rate`), and the lines
/// refused are then told in one line, "suppressed N <name> lines in the last
/// second", with the event's code, once that second is over. Returns `WSCONN_OK`,
/// `WSCONN_ERR_NULL` (reactor), `WSCONN_ERR_INVALID_ARGUMENT` (`min_level`).
///
/// # Safety
/// `reactor` is NULL or a live reactor, on its own thread; `arg` stays valid
/// while the function is set.
#[no_mangle]
pub unsafe extern "C" fn wsconn_reactor_set_log_func(
    reactor: *mut Reactor,
    func: wsconn_log_func,
    arg: *mut c_void,
    min_level: c_int,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(reactor) = (unsafe { reactor.as_ref() }) else {
            return code(Failure::Null);
        };
        let Some(level) = Level::from_i32(min_level) else {
            return code(Error::InvalidArgument);
        };
        let func = func.map(|f| -> crate::runtime::log::LogFn { Box::new(move |r: &LogRecord<'_>| call(f, arg, r)) });
        reactor.set_log(func, level);
        0
    })
}

/// Calls the program's function with C strings made of `record`.
fn call(
    f: extern "C" fn(*mut c_void, c_int, c_int, *mut Connection<CCallbacks>, *const c_char, *const c_char),
    arg: *mut c_void,
    record: &LogRecord<'_>,
) {
    let peer = record.peer.map(|p| CString::new(p.to_string()).unwrap_or_default());
    // Messages are the library's: no NUL inside, but stay safe if one were.
    let message = CString::new(record.message.replace('\0', " ")).unwrap_or_default();
    // The connections of a C program are all `wsconn_t`s.
    let con = record
        .conn
        .map_or(std::ptr::null_mut(), |c| c.as_ptr().cast::<Connection<CCallbacks>>());
    f(
        arg,
        record.level as c_int,
        record.event.code(),
        con,
        peer.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
        message.as_ptr(),
    );
}

/// At most `per_second` lines a second per event code (default 10; 0 is
/// taken as 1). Returns `WSCONN_OK`, `WSCONN_ERR_NULL`.
///
/// # Safety
/// `reactor` is NULL or a live reactor, on its own thread.
#[no_mangle]
pub unsafe extern "C" fn wsconn_reactor_set_log_rate(reactor: *mut Reactor, per_second: u32) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(reactor) = (unsafe { reactor.as_ref() }) else {
            return code(Failure::Null);
        };
        reactor.set_log_rate(per_second);
        0
    })
}

/// A short stable name of a `wsconn_log_event` ("handshake_refused"), or
/// "unknown". Static, NUL-terminated, never NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn wsconn_log_event_name(event: c_int) -> *const c_char {
    ffi_boundary!(c"unknown".as_ptr(), {
        match LogEvent::from_code(event) {
            Some(e) => name_of(e).as_ptr(),
            None => c"unknown".as_ptr(),
        }
    })
}

/// The name of `event`, NUL-terminated (made once per event, kept).
fn name_of(event: LogEvent) -> &'static std::ffi::CStr {
    use std::sync::OnceLock;
    static NAMES: OnceLock<Vec<CString>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        LogEvent::ALL
            .iter()
            .map(|e| CString::new(e.name()).unwrap_or_default())
            .collect()
    });
    &names[event.code() as usize - 1]
}

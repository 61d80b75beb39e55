//! Reading the upgrade request being decided, from C: its method, target,
//! header lines and offered subprotocols, for a reactor connection
//! (`wsconn_request_*`) or a sans-IO session (`wsconn_session_request_*`).
//! Inside the upgrade callback the request is lent (a per-thread slot keyed
//! by the connection or session); afterwards, while the decision is pending,
//! it is read where the session keeps it. Every string returned is
//! NUL-terminated and stays valid until the decision is taken or the
//! connection (session) ends, whichever comes first.

use std::cell::Cell;
use std::ffi::{c_char, c_int};

use super::result::{code, Failure};
use super::session::wsconn_session_t;
use super::{copy_out, str_arg};
use crate::ffi::callbacks::CCallbacks;
use crate::proto::handshake::request::UpgradeRequest;
use crate::runtime::connection::Connection;
use crate::runtime::handler::UpgradeDecision;

/// What the upgrade callback returns when it did not decide inside.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsconn_upgrade {
    /// Accept with the defaults: the configured subprotocol selection, no
    /// extra header line.
    WSCONN_UPGRADE_ACCEPT = 0,
    /// Decide later with `wsconn_upgrade_accept` / `wsconn_upgrade_reject`
    /// (`wsconn_session_upgrade_*` for a session), on the same thread.
    WSCONN_UPGRADE_PENDING = 1,
    /// Refuse with 403 Forbidden (any value not listed here does too).
    WSCONN_UPGRADE_REJECT = 2,
}

/// The decision an upgrade callback's return value stands for.
pub(crate) fn upgrade_decision(answer: c_int) -> UpgradeDecision {
    match answer {
        a if a == wsconn_upgrade::WSCONN_UPGRADE_ACCEPT as c_int => UpgradeDecision::Accept,
        a if a == wsconn_upgrade::WSCONN_UPGRADE_PENDING as c_int => UpgradeDecision::Pending,
        _ => UpgradeDecision::Reject(403),
    }
}

thread_local! {
    /// The request lent to the upgrade callback running on this thread: its
    /// owner (connection or session address) and the request.
    static LENT: Cell<(usize, *const UpgradeRequest)> = const { Cell::new((0, std::ptr::null())) };
}

/// Runs `call` with `request` lent to `owner`'s upgrade callback.
pub(crate) fn lending_request<R>(owner: usize, request: &UpgradeRequest, call: impl FnOnce() -> R) -> R {
    /// Restores the previous loan even if `call` unwinds.
    struct Restore((usize, *const UpgradeRequest));
    impl Drop for Restore {
        fn drop(&mut self) {
            LENT.with(|l| l.set(self.0));
        }
    }
    let _restore = Restore(LENT.with(|l| l.replace((owner, request))));
    call()
}

/// Runs `f` on the request of `owner`: the one lent to its running callback,
/// else `pending` (the one kept while the decision waits).
fn with_request<R>(
    owner: usize,
    pending: impl FnOnce(&dyn Fn(&UpgradeRequest) -> R) -> Option<R>,
    f: impl Fn(&UpgradeRequest) -> R,
) -> Option<R> {
    let (lent_to, lent) = LENT.with(Cell::get);
    if lent_to == owner && !lent.is_null() {
        // SAFETY: lent by `lending_request` for the callback still running on
        // this thread (the loan is withdrawn when it returns).
        return Some(f(unsafe { &*lent }));
    }
    pending(&f)
}

/// The request of a connection, if one is being decided.
///
/// # Safety
/// `con` is NULL or a live connection.
unsafe fn of_conn<R>(con: *const Connection<CCallbacks>, f: impl Fn(&UpgradeRequest) -> R) -> Option<R> {
    // SAFETY: NULL or live per the caller.
    let conn = unsafe { con.as_ref() }?;
    with_request(con as usize, |f| conn.with_upgrade_request(f), f)
}

/// The request of a session, if one is being decided.
///
/// # Safety
/// `session` is NULL or a live session.
unsafe fn of_session<R>(session: *const wsconn_session_t, f: impl Fn(&UpgradeRequest) -> R) -> Option<R> {
    // SAFETY: NULL or live per the caller.
    let s = unsafe { session.as_ref() }?;
    with_request(session as usize, |f| s.session().with_upgrade_request(f), f)
}

fn c_str(bytes_with_nul: &[u8]) -> *const c_char {
    bytes_with_nul.as_ptr().cast()
}

/// A header's value by name (case-insensitive) and index (0: the first line
/// of that name; repeated lines follow in order).
///
/// # Safety
/// `name` is NULL or NUL-terminated.
unsafe fn header(request: &UpgradeRequest, name: *const c_char, index: usize) -> *const c_char {
    // SAFETY: forwarded caller guarantee.
    match unsafe { str_arg(name) } {
        Ok(name) => request.header_with_nul(name, index).map_or(std::ptr::null(), c_str),
        Err(_) => std::ptr::null(),
    }
}

/// Header line `index`'s name and value into `*name` and `*value`.
///
/// # Safety
/// `name` and `value` are writable (not NULL).
unsafe fn header_at(
    request: &UpgradeRequest,
    index: usize,
    name: *mut *const c_char,
    value: *mut *const c_char,
) -> i32 {
    match request.header_at_with_nul(index) {
        Some((n, v)) => {
            // SAFETY: both writable per the caller.
            unsafe {
                *name = c_str(n);
                *value = c_str(v);
            }
            0
        }
        None => code(crate::proto::error::Error::InvalidArgument),
    }
}

fn subprotocol(request: &UpgradeRequest, index: usize) -> Option<String> {
    request.subprotocols().nth(index).map(str::to_owned)
}

fn method(r: &UpgradeRequest) -> *const c_char {
    c_str(r.method_with_nul())
}

fn target(r: &UpgradeRequest) -> *const c_char {
    c_str(r.target_with_nul())
}

fn count_code(count: Option<usize>) -> c_int {
    match count {
        Some(n) => n.min(c_int::MAX as usize) as c_int,
        None => code(crate::runtime::error::Error::State),
    }
}

fn at_code(result: Option<c_int>) -> c_int {
    result.unwrap_or_else(|| code(crate::runtime::error::Error::State))
}

fn subprotocol_code(found: Option<Option<String>>, buf: *mut c_char, size: usize) -> c_int {
    match found {
        None => code(crate::runtime::error::Error::State),
        Some(None) => code(crate::proto::error::Error::InvalidArgument),
        Some(Some(name)) => copy_out(&name, buf, size),
    }
}

/// While an upgrade is being decided (inside the upgrade callback, or later
/// while it is pending): the request's method ("GET"); NULL otherwise or for
/// NULL `con`. Valid until the decision is taken or the connection ends.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_request_method(con: *const Connection<CCallbacks>) -> *const c_char {
    // SAFETY: forwarded caller guarantee.
    ffi_boundary!(std::ptr::null(), {
        unsafe { of_conn(con, method) }.unwrap_or(std::ptr::null())
    })
}

/// While an upgrade is being decided: the request target as sent (e.g.
/// "/chat?access_token=abc"); NULL otherwise. Valid as for the method.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_request_target(con: *const Connection<CCallbacks>) -> *const c_char {
    // SAFETY: forwarded caller guarantee.
    ffi_boundary!(std::ptr::null(), {
        unsafe { of_conn(con, target) }.unwrap_or(std::ptr::null())
    })
}

/// While an upgrade is being decided: the value of header `name`
/// (case-insensitive), line `index` of that name (0 is the first; repeated
/// lines such as Cookie follow in order), NUL-terminated, as sent without
/// the spaces around it; NULL if there is no such line, no upgrade is being
/// decided, or an argument is NULL. Valid as for the method.
///
/// # Safety
/// `con` is NULL or a live connection; `name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wsconn_request_header(
    con: *const Connection<CCallbacks>,
    name: *const c_char,
    index: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null(), {
        // SAFETY: forwarded caller guarantees.
        unsafe { of_conn(con, |r| header(r, name, index)) }.unwrap_or(std::ptr::null())
    })
}

/// While an upgrade is being decided: the number of header lines of the
/// request (walk them with `wsconn_request_header_at`); `WSCONN_ERR_STATE`
/// when none is being decided, `WSCONN_ERR_NULL`.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_request_header_count(con: *const Connection<CCallbacks>) -> c_int {
    ffi_boundary!(code(Failure::Panic), {
        if con.is_null() {
            return code(Failure::Null);
        }
        // SAFETY: forwarded caller guarantee.
        count_code(unsafe { of_conn(con, UpgradeRequest::header_count) })
    })
}

/// While an upgrade is being decided: header line `index` (0 to the count
/// minus 1, in the order received) into `*name` and `*value`
/// (NUL-terminated, valid as for the method). Returns `WSCONN_OK`,
/// `WSCONN_ERR_INVALID_ARGUMENT` (no such line), `WSCONN_ERR_STATE` (none
/// being decided), `WSCONN_ERR_NULL`.
///
/// # Safety
/// `con` is NULL or a live connection; `name` and `value` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wsconn_request_header_at(
    con: *const Connection<CCallbacks>,
    index: usize,
    name: *mut *const c_char,
    value: *mut *const c_char,
) -> c_int {
    ffi_boundary!(code(Failure::Panic), {
        if con.is_null() || name.is_null() || value.is_null() {
            return code(Failure::Null);
        }
        // SAFETY: forwarded caller guarantees (the out-pointers not NULL).
        at_code(unsafe { of_conn(con, |r| header_at(r, index, name, value)) })
    })
}

/// While an upgrade is being decided: subprotocol `index` (from 0) the
/// client offered, in its order over all its Sec-WebSocket-Protocol lines,
/// copied into `buf` (`size` bytes, NUL-terminated, truncated like snprintf;
/// `buf` may be NULL when `size` is 0). Returns its full length, or
/// `WSCONN_ERR_INVALID_ARGUMENT` (no such offer), `WSCONN_ERR_STATE` (none
/// being decided), `WSCONN_ERR_NULL`.
///
/// # Safety
/// `con` is NULL or a live connection; `buf` is NULL or `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_request_subprotocol(
    con: *const Connection<CCallbacks>,
    index: usize,
    buf: *mut c_char,
    size: usize,
) -> c_int {
    ffi_boundary!(code(Failure::Panic), {
        if con.is_null() || (buf.is_null() && size > 0) {
            return code(Failure::Null);
        }
        // SAFETY: forwarded caller guarantee.
        subprotocol_code(unsafe { of_conn(con, |r| subprotocol(r, index)) }, buf, size)
    })
}

/// `wsconn_request_method` for a sans-IO server session.
///
/// # Safety
/// `session` is NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_request_method(session: *const wsconn_session_t) -> *const c_char {
    // SAFETY: forwarded caller guarantee.
    ffi_boundary!(std::ptr::null(), {
        unsafe { of_session(session, method) }.unwrap_or(std::ptr::null())
    })
}

/// `wsconn_request_target` for a sans-IO server session.
///
/// # Safety
/// `session` is NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_request_target(session: *const wsconn_session_t) -> *const c_char {
    // SAFETY: forwarded caller guarantee.
    ffi_boundary!(std::ptr::null(), {
        unsafe { of_session(session, target) }.unwrap_or(std::ptr::null())
    })
}

/// `wsconn_request_header` for a sans-IO server session.
///
/// # Safety
/// `session` is NULL or a live session; `name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_request_header(
    session: *const wsconn_session_t,
    name: *const c_char,
    index: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null(), {
        // SAFETY: forwarded caller guarantees.
        unsafe { of_session(session, |r| header(r, name, index)) }.unwrap_or(std::ptr::null())
    })
}

/// `wsconn_request_header_count` for a sans-IO server session.
///
/// # Safety
/// `session` is NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_request_header_count(session: *const wsconn_session_t) -> c_int {
    ffi_boundary!(code(Failure::Panic), {
        if session.is_null() {
            return code(Failure::Null);
        }
        // SAFETY: forwarded caller guarantee.
        count_code(unsafe { of_session(session, UpgradeRequest::header_count) })
    })
}

/// `wsconn_request_header_at` for a sans-IO server session.
///
/// # Safety
/// `session` is NULL or a live session; `name` and `value` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_request_header_at(
    session: *const wsconn_session_t,
    index: usize,
    name: *mut *const c_char,
    value: *mut *const c_char,
) -> c_int {
    ffi_boundary!(code(Failure::Panic), {
        if session.is_null() || name.is_null() || value.is_null() {
            return code(Failure::Null);
        }
        // SAFETY: forwarded caller guarantees (the out-pointers not NULL).
        at_code(unsafe { of_session(session, |r| header_at(r, index, name, value)) })
    })
}

/// `wsconn_request_subprotocol` for a sans-IO server session.
///
/// # Safety
/// `session` is NULL or a live session; `buf` is NULL or `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_request_subprotocol(
    session: *const wsconn_session_t,
    index: usize,
    buf: *mut c_char,
    size: usize,
) -> c_int {
    ffi_boundary!(code(Failure::Panic), {
        if session.is_null() || (buf.is_null() && size > 0) {
            return code(Failure::Null);
        }
        // SAFETY: forwarded caller guarantee.
        subprotocol_code(unsafe { of_session(session, |r| subprotocol(r, index)) }, buf, size)
    })
}

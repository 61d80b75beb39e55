//! Hands an acceptor's TLS config to the connection started on the socket it
//! just accepted: while the program's accept callback runs, the socket and the
//! config wait here, and `Connection::start` on that socket takes them. A
//! connection started later, outside the callback, runs without TLS.
//!
//! Per thread, because an acceptor and the connections it feeds share their
//! reactor's thread; no reactor field is needed for it.

use std::cell::RefCell;
use std::os::fd::RawFd;

use super::ServerTls;

thread_local! {
    static ACCEPTING: RefCell<Option<(RawFd, ServerTls)>> = const { RefCell::new(None) };
}

/// Runs the accept callback `f` with `tls` offered to a connection started on `fd`.
pub(crate) fn while_accepting<R>(fd: RawFd, tls: Option<&ServerTls>, f: impl FnOnce() -> R) -> R {
    let Some(tls) = tls else { return f() };
    let outer = ACCEPTING.with(|a| a.replace(Some((fd, tls.clone()))));
    let result = f();
    ACCEPTING.with(|a| *a.borrow_mut() = outer);
    result
}

/// The TLS config offered for `fd`, if it is the socket being accepted.
pub(crate) fn take_accepted(fd: RawFd) -> Option<ServerTls> {
    ACCEPTING.with(|a| {
        let mut slot = a.borrow_mut();
        match slot.as_ref() {
            Some((accepted, _)) if *accepted == fd => slot.take().map(|(_, tls)| tls),
            _ => None,
        }
    })
}

//! Draining a reactor (`wsconn_reactor_drain`): its connections end without
//! anyone being dropped, then the program's function runs.

use std::ffi::c_void;

use super::result::{code, code_of, Failure};
use crate::runtime::reactor::Reactor;

/// A drain is over: every connection ended, or the deadline cut `cut` of
/// them. Runs on the reactor's thread, inside a dispatch.
pub type wsconn_drained_func = Option<extern "C" fn(reactor: *mut Reactor, arg: *mut c_void, cut: usize)>;

/// Drains the reactor, to stop it without dropping anyone: its acceptors
/// stop listening at once (a listening socket shared with another process,
/// see `wsconn_acceptor_start_fd`, keeps serving there); handshakes in progress
/// (a request still being read, or waiting for the program's decision) are
/// refused with 503, client connections not yet open end, and those waiting
/// to reconnect end without another attempt (their close callbacks run;
/// `WSCONN_ERR_DRAINED`); every open connection is closed with 1001 "server
/// going away" (one sending a fragmented message once its last fragment is
/// sent). When all have ended, or `deadline_ms` after this call (the rest
/// cut: `wsconn_close_error` gives `WSCONN_ERR_DRAINED`), `func(reactor,
/// arg, cut)` runs (NULL: nothing runs). Each reactor of a program drains on
/// its own thread: call this on each (e.g. through `wsconn_reactor_defer`).
/// The connections' part begins at the end of the current (or next)
/// dispatch turn (connections started until then are drained with the
/// others); the close callbacks run as the connections end. Connections
/// still end by their own close timeout if it comes first. Afterwards the
/// reactor takes no new connection (acceptors' starts return
/// `WSCONN_ERR_STATE` from this call on, `wsconn_start` and `wsconn_connect`
/// once the drain began). Called again while draining, the deadline can
/// only come sooner (0: cut at the end of the turn, e.g. on a second SIGTERM)
/// and `func`/`arg` replace those given before; `func` runs once. Returns
/// `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_STATE` (the drain is over).
///
/// # Safety
/// `reactor` is NULL or a live reactor, on its own thread; `arg` stays valid
/// until `func` ran.
#[no_mangle]
pub unsafe extern "C" fn wsconn_reactor_drain(
    reactor: *mut Reactor,
    deadline_ms: u32,
    func: wsconn_drained_func,
    arg: *mut c_void,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(r) = (unsafe { reactor.as_ref() }) else {
            return code(Failure::Null);
        };
        let done: crate::runtime::drain::DrainFn = Box::new(move |r: &Reactor, cut| {
            if let Some(f) = func {
                f(r as *const Reactor as *mut Reactor, arg, cut);
            }
        });
        code_of(r.drain(u64::from(deadline_ms), done))
    })
}

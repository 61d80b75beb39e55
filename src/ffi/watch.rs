//! The program's own file descriptors and timers on a reactor: other
//! libraries' sockets (a database, a broker client) and the program's periodic
//! work live on the same loop as its WebSocket connections.

use std::ffi::{c_int, c_void};
use std::rc::Rc;

use super::result::{code, code_of, Failure};
use crate::runtime::reactor::Reactor;
use crate::runtime::user_timer::UserTimer;
use crate::runtime::watch::{READABLE, WRITABLE};

// The C values are the runtime's.
const _: () = assert!(
    wsconn_watch_events::WSCONN_WATCH_READ as u32 == READABLE
        && wsconn_watch_events::WSCONN_WATCH_WRITE as u32 == WRITABLE
);

/// The events of a watched fd (`wsconn_reactor_watch`), OR-ed together.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsconn_watch_events {
    /// Readable (or hung up, or an error is pending).
    WSCONN_WATCH_READ = 1,
    /// Writable (or an error is pending).
    WSCONN_WATCH_WRITE = 2,
}

/// A watched fd is ready: `events` is what it is ready for, among those asked
/// (`WSCONN_WATCH_READ`, `WSCONN_WATCH_WRITE`). Level-triggered: called again
/// on later turns while the fd stays ready. May call `wsconn_reactor_watch`
/// and `wsconn_reactor_unwatch` (on this fd too) and anything else of the reactor.
pub type wsconn_watch_func = Option<extern "C" fn(reactor: *mut Reactor, fd: c_int, events: c_int, arg: *mut c_void)>;

/// A timer fired. May start, stop or release this timer (or others).
pub type wsconn_timer_func = Option<extern "C" fn(timer: *mut UserTimer, arg: *mut c_void)>;

/// Has the reactor watch `fd`, one of the program's file descriptors (it stays
/// the program's: close it after `wsconn_reactor_unwatch`), for `events`
/// (`WSCONN_WATCH_READ | WSCONN_WATCH_WRITE`; 0 keeps the watch, asking for
/// nothing). `func(reactor, fd, ready, arg)` runs on the reactor's thread
/// during a dispatch while the fd is ready. Called again for an fd already
/// watched, it changes its events, `func` and `arg` (the way an adapter for a
/// client library adds and removes read and write interest). Returns
/// `WSCONN_OK`, `WSCONN_ERR_INVALID_ARGUMENT` (negative fd, unknown events),
/// `WSCONN_ERR_IO` (the poll refused the fd, e.g. a regular file),
/// `WSCONN_ERR_NULL`.
///
/// # Safety
/// `reactor` is NULL or a live reactor, on its own thread; `fd` stays open
/// while watched.
#[no_mangle]
pub unsafe extern "C" fn wsconn_reactor_watch(
    reactor: *mut Reactor,
    fd: c_int,
    events: c_int,
    func: wsconn_watch_func,
    arg: *mut c_void,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let (Some(r), Some(func)) = (unsafe { reactor.as_ref() }, func) else {
            return code(Failure::Null);
        };
        let Ok(events) = u32::try_from(events) else {
            return code(crate::proto::error::Error::InvalidArgument);
        };
        let callback = Rc::new(move |r: &Reactor, fd: c_int, ready: u32| {
            func(r as *const Reactor as *mut Reactor, fd, ready as c_int, arg)
        });
        code_of(r.watch(fd, events, callback))
    })
}

/// Stops watching `fd` (safe inside its callback). Returns `WSCONN_OK`,
/// `WSCONN_ERR_STATE` (not watched), `WSCONN_ERR_NULL`.
///
/// # Safety
/// `reactor` is NULL or a live reactor, on its own thread.
#[no_mangle]
pub unsafe extern "C" fn wsconn_reactor_unwatch(reactor: *mut Reactor, fd: c_int) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(r) = (unsafe { reactor.as_ref() }) else {
            return code(Failure::Null);
        };
        code_of(r.unwatch(fd))
    })
}

/// Creates a stopped timer on `reactor`, calling `func(timer, arg)` on the
/// reactor's thread when it fires. Release it with `wsconn_timer_release`
/// (before the reactor, or after: a released reactor leaves its timers
/// stopped). Returns NULL if `reactor` or `func` is NULL.
///
/// # Safety
/// `reactor` is NULL or a live reactor, on its own thread.
#[no_mangle]
pub unsafe extern "C" fn wsconn_timer_create(
    reactor: *mut Reactor,
    func: wsconn_timer_func,
    arg: *mut c_void,
) -> *mut UserTimer {
    ffi_boundary!(std::ptr::null_mut(), {
        // SAFETY: NULL or live per the caller.
        let (Some(r), Some(func)) = (unsafe { reactor.as_ref() }, func) else {
            return std::ptr::null_mut();
        };
        let callback = Box::new(move |t: &UserTimer| func(t as *const UserTimer as *mut UserTimer, arg));
        UserTimer::create(r, callback).as_ptr()
    })
}

/// Starts (or restarts) the timer: it fires after `delay_ms` milliseconds, then
/// every `interval_ms` (0: once). The reactor's timer wheel ticks every 8 ms:
/// a timer fires at its time or up to one tick later. Returns `WSCONN_OK`,
/// `WSCONN_ERR_STATE` (its reactor was released), `WSCONN_ERR_NULL`.
///
/// # Safety
/// `timer` is NULL or a live timer, on its reactor's thread.
#[no_mangle]
pub unsafe extern "C" fn wsconn_timer_start(timer: *mut UserTimer, delay_ms: u64, interval_ms: u64) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        match unsafe { timer.as_ref() } {
            Some(t) => code_of(t.start(delay_ms, interval_ms)),
            None => code(Failure::Null),
        }
    })
}

/// Stops the timer (it may be started again). Returns `WSCONN_OK`, `WSCONN_ERR_NULL`.
///
/// # Safety
/// `timer` is NULL or a live timer, on its reactor's thread.
#[no_mangle]
pub unsafe extern "C" fn wsconn_timer_stop(timer: *mut UserTimer) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        match unsafe { timer.as_ref() } {
            Some(t) => {
                t.stop();
                0
            }
            None => code(Failure::Null),
        }
    })
}

/// Stops and frees the timer; safe inside its own callback. NULL is a no-op.
/// Returns `WSCONN_OK`.
///
/// # Safety
/// `timer` is NULL or a live timer, on its reactor's thread, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn wsconn_timer_release(timer: *mut UserTimer) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        if !timer.is_null() {
            // SAFETY: from wsconn_timer_create, given up per the caller.
            unsafe { UserTimer::release(timer) };
        }
        0
    })
}

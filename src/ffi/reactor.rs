//! `wsconn_reactor_t`: the event loop (C name of [`Reactor`]).

use std::ffi::c_void;
use std::sync::Arc;

use super::result::{code, code_of, Failure};
use super::wsconn_config_t;
use crate::runtime::reactor::Reactor;

/// A function run on the reactor's thread by `wsconn_reactor_defer`.
pub type wsconn_defer_func = Option<extern "C" fn(arg: *mut c_void)>;

/// A deferred C call, sent to the reactor's thread.
struct DeferredCall {
    func: extern "C" fn(arg: *mut c_void),
    arg: *mut c_void,
}

// SAFETY: the program hands `arg` to the reactor's thread on purpose (that is
// what wsconn_reactor_defer is for, documented); the library never touches it.
unsafe impl Send for DeferredCall {}

impl DeferredCall {
    fn run(self) {
        (self.func)(self.arg)
    }
}

/// Creates a reactor (an epoll/kqueue event loop with timers). It belongs to the
/// thread that dispatches it: every object made on it is used from that thread
/// only; `wsconn_reactor_defer` is the one call allowed from other threads.
/// Returns NULL if the system refused (out of file descriptors) or a panic was caught.
#[no_mangle]
pub extern "C" fn wsconn_reactor_create() -> *mut Reactor {
    ffi_boundary!(std::ptr::null_mut(), {
        match Reactor::new() {
            // SAFETY: the reactor stays pinned: C only ever holds this pointer,
            // and wsconn_reactor_release drops it where it is (Box::from_raw).
            Ok(reactor) => Box::into_raw(unsafe { std::pin::Pin::into_inner_unchecked(reactor) }),
            Err(_) => std::ptr::null_mut(),
        }
    })
}

/// Runs one turn of the loop: waits at most `timeout_ms` milliseconds (negative:
/// until something happens) for socket events, handles them and the due timers
/// (callbacks run inside), then writes the output of the turn, one write per
/// connection. Returns the number of events handled (0 on timeout), or
/// `WSCONN_ERR_NULL`, `WSCONN_ERR_REENTRANT` (called from a callback), `WSCONN_ERR_IO`,
/// `WSCONN_ERR_PANIC` (a bug in wsconn was caught; the reactor may be
/// dispatched again).
///
/// # Safety
/// `reactor` is NULL or a live reactor, on its own thread.
#[no_mangle]
pub unsafe extern "C" fn wsconn_reactor_dispatch(reactor: *mut Reactor, timeout_ms: i32) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(reactor) = (unsafe { reactor.as_ref() }) else {
            return code(Failure::Null);
        };
        match reactor.dispatch(timeout_ms) {
            Ok(handled) => handled.min(i32::MAX as usize) as i32,
            Err(e) => code(e),
        }
    })
}

/// Frees a reactor. Release its connections and acceptors first; any still
/// registered are detached (their sockets closed, no callbacks run) and must
/// still be released by the program. Functions deferred to it
/// (`wsconn_reactor_defer`) and not run yet are not called. NULL is a no-op
/// (returns `WSCONN_OK`).
/// Returns `WSCONN_ERR_STATE` (nothing freed) when called from inside a dispatch.
///
/// # Safety
/// `reactor` is NULL or a live reactor; no other thread may defer to it anymore.
#[no_mangle]
pub unsafe extern "C" fn wsconn_reactor_release(reactor: *mut Reactor) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(r) = (unsafe { reactor.as_ref() }) else {
            return 0;
        };
        if r.is_dispatching() {
            return code(crate::runtime::error::Error::State);
        }
        r.detach_all();
        // SAFETY: from Box::into_raw in wsconn_reactor_create; not dispatching.
        drop(unsafe { Box::from_raw(reactor) });
        0
    })
}

/// Runs `fn(arg)` on the reactor's thread during a later dispatch, and wakes the
/// reactor if it is waiting. THREAD-SAFE: the one function that may be called
/// from any thread (e.g. to hand work to the reactor's thread). Functions run in
/// the order they were deferred. The queue holds at most 65,536 of them (and
/// 64 MiB of messages from `wsconn_publish_async`): a program deferring
/// faster than the reactor runs them gets `WSCONN_ERR_FULL` (nothing queued;
/// retry after the reactor's next dispatch) rather than a queue that grows
/// without bound. Returns `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_FULL`,
/// `WSCONN_ERR_IO` (the reactor could not be woken). On failure nothing was
/// queued: `fn` will not be called, and `arg` is still the caller's to free.
///
/// # Safety
/// `reactor` is NULL or a live reactor that is not being released.
#[no_mangle]
pub unsafe extern "C" fn wsconn_reactor_defer(
    reactor: *const Reactor,
    func: wsconn_defer_func,
    arg: *mut c_void,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        let Some(func) = func else { return code(Failure::Null) };
        if reactor.is_null() {
            return code(Failure::Null);
        }
        let call = DeferredCall { func, arg };
        // SAFETY: live per the caller; defer_on touches only the thread-safe part.
        code_of(unsafe { Reactor::defer_on(reactor, Box::new(move |_| call.run())) })
    })
}

/// Sets the options (limits, subprotocols, timeouts) that connections created on
/// this reactor afterwards start with (copied; `config` may be freed after).
/// Returns `WSCONN_OK` or `WSCONN_ERR_NULL`.
///
/// # Safety
/// `reactor` and `config` are NULL or live.
#[no_mangle]
pub unsafe extern "C" fn wsconn_reactor_set_config(reactor: *mut Reactor, config: *const wsconn_config_t) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let (Some(reactor), Some(config)) = (unsafe { reactor.as_ref() }, unsafe { config.as_ref() }) else {
            return code(Failure::Null);
        };
        reactor.set_config(Arc::new(config.inner.clone()));
        0
    })
}

/// Limits the bytes that all connections of this reactor hold together,
/// counted by capacity (what is held, not what is in use): partial messages,
/// frames cut by a read, queued output, permessage-deflate streams, and each
/// published message once however many subscribers hold it. Default 256 MiB
/// per reactor (a program running several reactors, one per thread, has one
/// budget each); 0: no limit. Over the budget, a connection holding a partial
/// message or output is not read until memory is given back (its peer is
/// slowed down by TCP; nothing is dropped or closed), except one at a time
/// whose message keeps being read to its end, so large messages still
/// complete one after the other; its message, idle and pong clocks stop
/// meanwhile. Other connections keep being read: small messages flow. Also
/// over it, compression streams are trimmed once their message is handled,
/// new connections agree on permessage-deflate without context takeover, and
/// client-role subscribers (which need a copy of each message) count as slow.
/// Each connection may pass the budget by one read (64 KiB) before it waits,
/// and the holder by one message; set the message timeout
/// (`wsconn_config_set_message_timeout`) so that a stalled holder ends.
/// Returns `WSCONN_OK`, `WSCONN_ERR_NULL`.
///
/// # Safety
/// `reactor` is NULL or a live reactor, on its own thread.
#[no_mangle]
pub unsafe extern "C" fn wsconn_reactor_set_memory_budget(reactor: *mut Reactor, bytes: usize) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(reactor) = (unsafe { reactor.as_ref() }) else {
            return code(Failure::Null);
        };
        reactor.set_memory_budget(bytes);
        0
    })
}

/// Reports the reactor's memory use, for the program's metrics: `*buffered`
/// gets the bytes its connections hold in buffers now (each connection's share
/// rounded up to whole KiB), `*waiting` the number of connections not being
/// read because the budget is spent. Either pointer may be NULL. Returns
/// `WSCONN_OK`, `WSCONN_ERR_NULL` (reactor NULL).
///
/// # Safety
/// `reactor` is NULL or a live reactor, on its own thread; `buffered` and
/// `waiting` are NULL or point to writable `size_t`s.
#[no_mangle]
pub unsafe extern "C" fn wsconn_reactor_memory(
    reactor: *const Reactor,
    buffered: *mut usize,
    waiting: *mut usize,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(reactor) = (unsafe { reactor.as_ref() }) else {
            return code(Failure::Null);
        };
        let usage = reactor.memory_usage();
        // SAFETY: NULL or writable per the caller.
        if let Some(out) = unsafe { buffered.as_mut() } {
            *out = usage.buffered;
        }
        // SAFETY: NULL or writable per the caller.
        if let Some(out) = unsafe { waiting.as_mut() } {
            *out = usage.waiting;
        }
        0
    })
}

/// Busy polling: before the reactor's thread sleeps in
/// `wsconn_reactor_dispatch`, it looks for I/O without waiting for up to
/// `microseconds` (at most 1,000,000; never longer than the dispatch's
/// timeout) and handles what comes then at once. Clients that talk to a
/// thread that does not sleep do not pay for waking it: on loopback and
/// fast networks a wake-up costs the sender more than a small message, so
/// connection and request rates rise when the load generator, not the
/// server, is the limit. The price is CPU: the thread polls instead of
/// sleeping for that long after each turn. 0 (the default) sleeps at once.
/// Returns `WSCONN_OK`, `WSCONN_ERR_NULL`.
///
/// # Safety
/// `reactor` is NULL or a live reactor, on its own thread.
#[no_mangle]
pub unsafe extern "C" fn wsconn_reactor_set_busy_poll(reactor: *mut Reactor, microseconds: u32) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(reactor) = (unsafe { reactor.as_ref() }) else {
            return code(Failure::Null);
        };
        reactor.set_busy_poll(std::time::Duration::from_micros(u64::from(microseconds)));
        0
    })
}

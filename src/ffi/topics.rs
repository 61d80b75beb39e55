//! Publish/subscribe from C: connections subscribe to topics, a publish is
//! framed once and queued to every subscriber of its reactor (and of the
//! reactors sharing its topics) without a copy per subscriber.

use std::ffi::{c_char, c_int, c_void};

use super::callbacks::{message_arg, CCallbacks};
use super::result::{code, Failure};
use super::{bytes_arg, kind_arg, str_arg};
use crate::proto::error::Error;
use crate::runtime::connection::Connection;
use crate::runtime::reactor::Reactor;
use crate::runtime::topics::SlowPolicy;

/// What happens to a slow subscriber of a topic (`wsconn_topic_set_policy`):
/// one whose output (replies, published messages) is over its max output
/// (`wsconn_config_set_max_output`) when a message is published to it, or a
/// client-role one while its reactor is over its memory budget (it would
/// need a copy of its own). A full budget does not make other subscribers
/// slow: what they hold is shared, and bounded by their max output.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsconn_slow_policy {
    /// It misses this message (the default); later ones reach it once its
    /// output has room. Its drain callback runs when the output has drained.
    WSCONN_SLOW_SKIP = 0,
    /// It is closed with 1008 (policy violation), after the output it has.
    WSCONN_SLOW_CLOSE = 1,
}

/// Runs `f` on a live object and a topic argument, mapping NULL, a topic that
/// is not UTF-8, and panics to codes.
///
/// # Safety
/// `object` is NULL or live; `topic` is NULL or a NUL-terminated string.
unsafe fn with_topic<T>(object: *const T, topic: *const c_char, f: impl FnOnce(&T, &str) -> i32) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(object) = (unsafe { object.as_ref() }) else {
            return code(Failure::Null);
        };
        // SAFETY: NULL or NUL-terminated per the caller.
        match unsafe { str_arg(topic) } {
            Ok(topic) => f(object, topic),
            Err(e) => code(e),
        }
    })
}

/// Converts a count to the non-negative int a publish returns.
fn count(n: usize) -> i32 {
    n.min(i32::MAX as usize) as i32
}

/// Subscribes the connection to `topic` (a NUL-terminated UTF-8 string; any
/// bytes, compared exactly) on its reactor. Subscribing twice is once. The
/// subscription ends with `wsconn_unsubscribe`, or when the connection closes,
/// stops or is released. Returns `WSCONN_OK`; `WSCONN_ERR_STATE` (not started,
/// or already closed); `WSCONN_ERR_INVALID_ARGUMENT` (topic not UTF-8);
/// `WSCONN_ERR_NULL`.
///
/// # Safety
/// `con` is NULL or a live connection, on its reactor's thread; `topic` is
/// NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wsconn_subscribe(con: *mut Connection<CCallbacks>, topic: *const c_char) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_topic(con, topic, |conn, topic| match conn.subscribe(topic) {
            Ok(_) => 0,
            Err(e) => code(e),
        })
    }
}

/// Ends the connection's subscription to `topic` (if it had one). Returns
/// `WSCONN_OK`, `WSCONN_ERR_INVALID_ARGUMENT` (topic not UTF-8), `WSCONN_ERR_NULL`.
///
/// # Safety
/// `con` is NULL or a live connection, on its reactor's thread; `topic` is
/// NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wsconn_unsubscribe(con: *mut Connection<CCallbacks>, topic: *const c_char) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_topic(con, topic, |conn, topic| {
            conn.unsubscribe(topic);
            0
        })
    }
}

/// 1 if the connection subscribes to `topic`, 0 if not (or an argument is NULL).
///
/// # Safety
/// `con` is NULL or a live connection; `topic` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wsconn_is_subscribed(con: *const Connection<CCallbacks>, topic: *const c_char) -> c_int {
    ffi_boundary!(0, {
        // SAFETY: NULL or live per the caller; NULL or NUL-terminated.
        match (unsafe { con.as_ref() }, unsafe { str_arg(topic) }) {
            (Some(conn), Ok(topic)) => conn.is_subscribed(topic) as c_int,
            _ => 0,
        }
    })
}

/// Publishes a message to every subscriber of `topic`: framed once (an
/// unmasked, uncompressed frame), the same bytes queued to each subscriber of
/// this reactor now (written at the end of the turn, in order with what else is
/// sent to it), and to the subscribers of the reactors sharing its topics
/// (`wsconn_reactor_share_topics`) during their next dispatch. `type` is
/// `WSCONN_MSG_TEXT` (valid UTF-8) or `WSCONN_MSG_BINARY`; `data` is copied.
/// Subscribers that are not open yet, or closing, are passed over; slow ones
/// meet the topic's policy (`wsconn_topic_set_policy`). The message is held
/// once, and charged once to this reactor's memory budget, however many
/// subscribers wait for it; TLS subscribers share it too (it is encrypted for
/// each as its socket takes it). Client-role subscribers get a copy (masked
/// with their own key), made only while the reactor is under its memory
/// budget (over it they count as slow) and charged at once. Returns the
/// number of subscribers of this reactor the message was queued for (>= 0),
/// or `WSCONN_ERR_INVALID_ARGUMENT` (bad type, text not UTF-8),
/// `WSCONN_ERR_NULL`.
///
/// # Safety
/// `reactor` is NULL or a live reactor, on its own thread (from another thread
/// use `wsconn_publish_async`); `topic` is NULL or a NUL-terminated string;
/// `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_publish(
    reactor: *mut Reactor,
    topic: *const c_char,
    r#type: c_int,
    data: *const c_void,
    len: usize,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(reactor) = (unsafe { reactor.as_ref() }) else {
            return code(Failure::Null);
        };
        // SAFETY: forwarded caller guarantees.
        let published = unsafe { publish_args(topic, r#type, data, len) }
            .and_then(|(topic, kind, data)| Ok(reactor.publish(topic, message_arg(kind, data)?, None)));
        match published {
            Ok(n) => count(n),
            Err(e) => code(e),
        }
    })
}

/// Like `wsconn_publish` on the connection's reactor, to every subscriber but
/// `sender` (which need not subscribe). Returns as `wsconn_publish`, or
/// `WSCONN_ERR_STATE` when `sender` is not running on a reactor.
///
/// # Safety
/// `sender` is NULL or a live connection, on its reactor's thread; the other
/// arguments as for `wsconn_publish`.
#[no_mangle]
pub unsafe extern "C" fn wsconn_publish_except(
    sender: *mut Connection<CCallbacks>,
    topic: *const c_char,
    r#type: c_int,
    data: *const c_void,
    len: usize,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(conn) = (unsafe { sender.as_ref() }) else {
            return code(Failure::Null);
        };
        // SAFETY: forwarded caller guarantees.
        let published = unsafe { publish_args(topic, r#type, data, len) }
            .and_then(|(topic, kind, data)| Ok(conn.publish_to_others(topic, message_arg(kind, data)?)?));
        match published {
            Ok(n) => count(n),
            Err(e) => code(e),
        }
    })
}

/// THREAD-SAFE: publishes from any thread. The message is framed once (here)
/// and handed to `reactor` and to every reactor sharing its topics, each
/// queueing it for its subscribers during its next dispatch, in the order
/// published. Each reactor's queue holds at most 64 MiB of such messages
/// (and 65,536 jobs, see `wsconn_reactor_defer`): when `reactor`'s is full,
/// `WSCONN_ERR_FULL` (nothing queued there; retry later); another reactor of
/// the group whose queue is full misses the message, as a slow subscriber
/// does. Returns `WSCONN_OK`, `WSCONN_ERR_INVALID_ARGUMENT`,
/// `WSCONN_ERR_NULL`, `WSCONN_ERR_FULL`, `WSCONN_ERR_IO` (the reactor could
/// not be woken).
///
/// # Safety
/// `reactor` is NULL or a live reactor that is not being released; the other
/// arguments as for `wsconn_publish`.
#[no_mangle]
pub unsafe extern "C" fn wsconn_publish_async(
    reactor: *const Reactor,
    topic: *const c_char,
    r#type: c_int,
    data: *const c_void,
    len: usize,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        if reactor.is_null() {
            return code(Failure::Null);
        }
        // SAFETY: forwarded caller guarantees.
        let published = unsafe { publish_args(topic, r#type, data, len) }.and_then(|(topic, kind, data)| {
            let message = crate::proto::event::Message::new(kind, data)?;
            // SAFETY: live per the caller; remote_of reads only the thread-safe part.
            Ok(unsafe { Reactor::remote_of(reactor) }.publish(topic, message)?)
        });
        match published {
            Ok(()) => 0,
            Err(e) => code(e),
        }
    })
}

/// The arguments of a publish.
///
/// # Safety
/// `topic` is NULL or NUL-terminated; `data` points to `len` readable bytes.
unsafe fn publish_args<'a>(
    topic: *const c_char,
    kind: c_int,
    data: *const c_void,
    len: usize,
) -> Result<(&'a str, crate::proto::event::MessageKind, &'a [u8]), Failure> {
    // SAFETY: forwarded caller guarantees.
    let (topic, data) = unsafe { (str_arg(topic)?, bytes_arg(data.cast(), len)?) };
    Ok((topic, kind_arg(kind)?, data))
}

/// THREAD-SAFE: makes `reactor` share topics with `other` (each usually on a
/// thread of its own, as with `echo_server -t N`): the reactors that share
/// with either (directly or through others) form one group, and a publish on
/// any of them reaches the subscribers of all. The order of the calls does not
/// matter: share(R1, R0) then share(R0, R2) joins all three. A reactor leaves
/// its group when released. Returns `WSCONN_OK`, `WSCONN_ERR_NULL`.
///
/// # Safety
/// `reactor` and `other` are NULL or live reactors that are not being released.
#[no_mangle]
pub unsafe extern "C" fn wsconn_reactor_share_topics(reactor: *const Reactor, other: *const Reactor) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        if reactor.is_null() || other.is_null() {
            return code(Failure::Null);
        }
        // SAFETY: live per the caller; only the thread-safe parts are used.
        let (remote, other) = unsafe { (Reactor::remote_of(reactor), Reactor::remote_of(other)) };
        remote.join_group_of(&other);
        0
    })
}

/// Subscribers of `topic` on this reactor (0 if an argument is NULL).
///
/// # Safety
/// `reactor` is NULL or a live reactor, on its own thread; `topic` is NULL or
/// a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wsconn_topic_subscribers(reactor: *const Reactor, topic: *const c_char) -> usize {
    ffi_boundary!(0, {
        // SAFETY: NULL or live per the caller; NULL or NUL-terminated.
        match (unsafe { reactor.as_ref() }, unsafe { str_arg(topic) }) {
            (Some(reactor), Ok(topic)) => reactor.subscribers(topic),
            _ => 0,
        }
    })
}

/// Topics with at least one subscriber on this reactor (0 if NULL).
///
/// # Safety
/// `reactor` is NULL or a live reactor, on its own thread.
#[no_mangle]
pub unsafe extern "C" fn wsconn_topic_count(reactor: *const Reactor) -> usize {
    ffi_boundary!(0, {
        // SAFETY: NULL or live per the caller.
        unsafe { reactor.as_ref() }.map_or(0, Reactor::topic_count)
    })
}

/// Sets what happens to slow subscribers of `topic` on this reactor (a
/// `wsconn_slow_policy`; set it on each reactor sharing the topic). The policy
/// holds while the topic has subscribers on this reactor: set before the
/// first one joins, it is kept until then; it is forgotten when the last one
/// leaves (so that policies of rooms named by peers do not pile up): set it
/// again when a topic comes back, e.g. when `wsconn_topic_subscribers` is 1
/// after a subscribe. Returns `WSCONN_OK`, `WSCONN_ERR_INVALID_ARGUMENT`,
/// `WSCONN_ERR_NULL`.
///
/// # Safety
/// `reactor` is NULL or a live reactor, on its own thread; `topic` is NULL or
/// a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wsconn_topic_set_policy(reactor: *mut Reactor, topic: *const c_char, policy: c_int) -> i32 {
    let policy = match policy {
        p if p == wsconn_slow_policy::WSCONN_SLOW_SKIP as c_int => SlowPolicy::Skip,
        p if p == wsconn_slow_policy::WSCONN_SLOW_CLOSE as c_int => SlowPolicy::Close,
        _ => return code(Error::InvalidArgument),
    };
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_topic(reactor, topic, |reactor, topic| {
            reactor.set_topic_policy(topic, policy);
            0
        })
    }
}

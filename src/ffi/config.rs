//! `wsconn_config_t`: limits and subprotocols, shared by the sessions made from it.

use std::ffi::c_char;
use std::sync::Arc;

use super::result::{code, code_of, Failure};
use super::str_arg;
use crate::proto::config::Config;
use crate::runtime::config::{ConnConfig, Timeouts};

/// Session options. Sessions copy what they need when created, so a config may be
/// changed or freed afterwards. Not thread-safe: use from one thread at a time.
pub struct wsconn_config_t {
    pub(crate) inner: ConnConfig,
}

/// Creates a config holding the defaults: max frame and message 16 MiB, max
/// output 16 MiB, max handshake 8 KiB, no subprotocols. Free it with
/// `wsconn_config_free`. Returns NULL only if a panic was caught.
#[no_mangle]
pub extern "C" fn wsconn_config_new() -> *mut wsconn_config_t {
    ffi_boundary!(std::ptr::null_mut(), {
        Box::into_raw(Box::new(wsconn_config_t {
            inner: ConnConfig::default(),
        }))
    })
}

/// Frees a config made by `wsconn_config_new`. NULL is a no-op; freeing twice is
/// undefined behaviour.
///
/// # Safety
/// `config` is NULL or a live config from `wsconn_config_new`.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_free(config: *mut wsconn_config_t) {
    ffi_boundary!((), {
        if !config.is_null() {
            // SAFETY: the pointer came from Box::into_raw in wsconn_config_new and
            // the caller gives up ownership.
            drop(unsafe { Box::from_raw(config) });
        }
    })
}

/// Applies `change` to everything behind `config`.
///
/// # Safety
/// `config` is NULL or a live config.
pub(crate) unsafe fn update_conn(
    config: *mut wsconn_config_t,
    change: impl FnOnce(&mut ConnConfig) -> Result<(), Failure>,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or a live config, used by one thread at a time (documented).
        let Some(config) = (unsafe { config.as_mut() }) else {
            return code(Failure::Null);
        };
        code_of(change(&mut config.inner))
    })
}

/// Applies `change` to the protocol options behind `config`.
///
/// # Safety
/// `config` is NULL or a live config.
pub(crate) unsafe fn update(
    config: *mut wsconn_config_t,
    change: impl FnOnce(&mut Config) -> Result<(), Failure>,
) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { update_conn(config, |c| change(Arc::make_mut(&mut c.protocol))) }
}

/// Applies `change` to the timeouts behind `config`.
///
/// # Safety
/// `config` is NULL or a live config.
unsafe fn update_timeouts(
    config: *mut wsconn_config_t,
    change: impl FnOnce(&mut Timeouts) -> Result<(), Failure>,
) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { update_conn(config, |c| change(&mut c.timeouts)) }
}

/// Sets a timeout for which any value is valid (0 turns it off).
///
/// # Safety
/// `config` is NULL or a live config.
pub(crate) unsafe fn set_optional_timeout(config: *mut wsconn_config_t, set: fn(&mut Timeouts, u32), ms: u32) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        update_conn(config, |c| {
            set(&mut c.timeouts, ms);
            Ok(())
        })
    }
}

/// Sets the largest frame payload accepted from the peer (a larger one closes the
/// connection with 1009). Returns `WSCONN_OK`, `WSCONN_ERR_NULL`, or
/// `WSCONN_ERR_INVALID_ARGUMENT` for 0.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_max_frame_size(config: *mut wsconn_config_t, bytes: usize) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { update(config, |c| Ok(c.set_max_frame_size(bytes)?)) }
}

/// Sets the largest message accepted from the peer, summed over its fragments
/// (1009 above it; checked against each frame header before any payload is
/// stored). Returns `WSCONN_OK`, `WSCONN_ERR_NULL`, or `WSCONN_ERR_INVALID_ARGUMENT` for 0.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_max_message_size(config: *mut wsconn_config_t, bytes: usize) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { update(config, |c| Ok(c.set_max_message_size(bytes)?)) }
}

/// Sets how many output bytes a session may hold: a send that would exceed it
/// while output is pending fails with `WSCONN_ERR_FULL` (nothing queued), and
/// `want_read` turns 0 while output is at or over half of it, so that a program
/// that stops reading then has room to answer what it already read. Returns `WSCONN_OK`, `WSCONN_ERR_NULL`, or
/// `WSCONN_ERR_INVALID_ARGUMENT` for 0.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_max_output(config: *mut wsconn_config_t, bytes: usize) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { update(config, |c| Ok(c.set_max_output(bytes)?)) }
}

/// Sets the largest opening handshake head (request or response) accepted; a
/// server answers a larger request with 431. Returns `WSCONN_OK`,
/// `WSCONN_ERR_NULL`, or `WSCONN_ERR_INVALID_ARGUMENT` for 0.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_max_handshake_size(config: *mut wsconn_config_t, bytes: usize) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { update(config, |c| Ok(c.set_max_handshake_size(bytes)?)) }
}

/// Adds a subprotocol. A server selects the first added that the client offers
/// (or none); a client offers all, in order, and refuses a server that selects
/// another. `name` is copied; it must be a non-empty HTTP token (no spaces,
/// commas or control characters). Returns `WSCONN_OK`, `WSCONN_ERR_NULL`, or
/// `WSCONN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `config` is NULL or a live config; `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_add_subprotocol(config: *mut wsconn_config_t, name: *const c_char) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe { update(config, |c| Ok(c.add_subprotocol(str_arg(name)?)?)) }
}

/// Sets the time a reactor connection has for its TCP connect and opening
/// handshake before it is dropped (close code 1006). Default 10000 ms; 0 is
/// refused. Returns `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_handshake_timeout(config: *mut wsconn_config_t, ms: u32) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { update_timeouts(config, |t| Ok(t.set_handshake_ms(ms)?)) }
}

/// Sets how long a reactor connection may go without input before it is closed
/// with 1001 ("idle timeout"). Default 0: never. Returns `WSCONN_OK`, `WSCONN_ERR_NULL`.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_idle_timeout(config: *mut wsconn_config_t, ms: u32) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { set_optional_timeout(config, Timeouts::set_idle_ms, ms) }
}

/// Sets how long a reactor connection may take to receive one message, from
/// its first byte to its last, before it is closed with 1008 ("message
/// timeout"; `wsconn_close_error` then gives `WSCONN_ERR_TIMEOUT`): a peer that
/// starts a large message and stalls, even while answering pings, cannot hold
/// the memory of its partial message for longer. Default 60000 ms; 0: never.
/// Returns `WSCONN_OK`, `WSCONN_ERR_NULL`.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_message_timeout(config: *mut wsconn_config_t, ms: u32) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { set_optional_timeout(config, Timeouts::set_message_ms, ms) }
}

/// Keepalive: a reactor connection sends a ping after `ms` without input, and is
/// dropped (1006, "pong timeout") if no input follows within the pong timeout.
/// Default 0: no pings. Returns `WSCONN_OK`, `WSCONN_ERR_NULL`.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_ping_interval(config: *mut wsconn_config_t, ms: u32) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { set_optional_timeout(config, Timeouts::set_ping_interval_ms, ms) }
}

/// Sets how long a keepalive ping may go unanswered (no input at all) before the
/// connection is dropped. Default 10000 ms; 0 is refused. Returns `WSCONN_OK`,
/// `WSCONN_ERR_NULL`, `WSCONN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_pong_timeout(config: *mut wsconn_config_t, ms: u32) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { update_timeouts(config, |t| Ok(t.set_pong_ms(ms)?)) }
}

/// Sets how long a reactor connection waits for the peer to finish the closing
/// handshake (or, as a client, to close TCP) before dropping it. Default 5000 ms;
/// 0 is refused. Returns `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_close_timeout(config: *mut wsconn_config_t, ms: u32) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { update_timeouts(config, |t| Ok(t.set_close_ms(ms)?)) }
}

/// Server: allows upgrade requests whose `Origin` is `origin`, given as
/// scheme://host[:port] (e.g. "https://chat.example.com"; scheme and host
/// compared case-insensitively, a scheme's default port the same as none; no
/// path). Once one is added, a request with another origin (or several
/// Origin lines) is refused with 403 before the upgrade callback runs
/// (`wsconn_close_error` gives `WSCONN_ERR_REFUSED`): a web page elsewhere
/// cannot make its visitors' browsers connect with their cookies. Requests
/// without `Origin` (non-browser clients) pass unless
/// `wsconn_config_set_require_origin`. No origin added: any passes. Returns
/// `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_INVALID_ARGUMENT` (not of
/// that form).
///
/// # Safety
/// `config` is NULL or a live config; `origin` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_add_allowed_origin(config: *mut wsconn_config_t, origin: *const c_char) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe { update(config, |c| Ok(c.add_allowed_origin(str_arg(origin)?)?)) }
}

/// Server: with nonzero `on`, an upgrade request without `Origin` is refused
/// with 403 too (browsers always send it). Default 0. Returns `WSCONN_OK`,
/// `WSCONN_ERR_NULL`.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_require_origin(config: *mut wsconn_config_t, on: i32) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        update(config, |c| {
            c.set_require_origin(on != 0);
            Ok(())
        })
    }
}

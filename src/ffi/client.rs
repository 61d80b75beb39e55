//! The client's C API: request headers, proxies, redirects and reconnection
//! on a config; the server's (and the proxy's) answer and the next attempt
//! of a connection.

use std::ffi::{c_char, c_int};
use std::sync::Arc;

use super::config::update_conn;
use super::conn::with_conn;
use super::result::{code, Failure};
use super::{str_arg, wsconn_config_t};
use crate::ffi::callbacks::CCallbacks;
use crate::runtime::client::backoff::Backoff;
use crate::runtime::client::no_proxy::NoProxy;
use crate::runtime::client::proxy_rules::ProxyRules;
use crate::runtime::client::proxy_url::ProxyUrl;
use crate::runtime::client::ClientOptions;
use crate::runtime::connection::Connection;
use crate::runtime::error::Error;

/// Applies `change` to the client options of `config`.
///
/// # Safety
/// `config` is NULL or a live config.
unsafe fn update_client(
    config: *mut wsconn_config_t,
    change: impl FnOnce(&mut ClientOptions) -> Result<(), Failure>,
) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { update_conn(config, |c| change(&mut c.client)) }
}

/// Client role: adds the header line `name: value` to the opening handshake
/// of clients made with this config (reactor connections and sans-IO client
/// sessions), after those added before (a name may repeat). Both strings are
/// copied. `name` must be an HTTP token other than those the handshake
/// writes itself (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-*`,
/// `Content-Length`, `Transfer-Encoding`); `value` must hold no CR or LF.
/// An `Authorization` set here replaces the one of a URL's credentials.
/// Returns `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_INVALID_ARGUMENT` (the
/// config is then unchanged).
///
/// # Safety
/// `config` is NULL or a live config; `name` and `value` are NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_add_header(
    config: *mut wsconn_config_t,
    name: *const c_char,
    value: *const c_char,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        update_conn(config, |c| {
            // SAFETY: NULL or NUL-terminated per the caller.
            let (name, value) = (str_arg(name)?, str_arg(value)?);
            Ok(Arc::make_mut(&mut c.protocol).add_header(name, value)?)
        })
    }
}

/// Clients made with this config go through the proxy of `url`:
/// `http://[user:password@]host[:port]` (HTTP CONNECT, with
/// `Proxy-Authorization: Basic` when credentials are given; default port
/// 1080), `https://…` (the same over TLS to the proxy, verified like a
/// `wss://` server with the config's TLS settings; default port 443),
/// `socks5://…` (SOCKS5, host names resolved here) or `socks5h://…` (names
/// resolved by the proxy), both with optional user and password (RFC 1929;
/// default port 1080). No scheme means `http://`; credentials are
/// percent-decoded. `wss://` runs TLS with the server inside the tunnel:
/// SNI and the certificate check are the server's, never the proxy's. An
/// empty `url` means no proxy. Replaces what `wsconn_config_set_proxy_from_env`
/// set; `wsconn_config_set_no_proxy` still applies. Returns `WSCONN_OK`,
/// `WSCONN_ERR_NULL`, `WSCONN_ERR_INVALID_ARGUMENT` (not such a URL: the
/// config is then unchanged).
///
/// # Safety
/// `config` is NULL or a live config; `url` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_proxy(config: *mut wsconn_config_t, url: *const c_char) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        update_client(config, |c| {
            // SAFETY: NULL or NUL-terminated per the caller.
            let url = str_arg(url)?;
            let proxy = match url.is_empty() {
                true => None,
                false => Some(ProxyUrl::parse(url)?),
            };
            let no_proxy = std::mem::take(&mut c.proxies);
            c.proxies = ProxyRules::fixed(proxy, no_proxy.no_proxy().clone());
            Ok(())
        })
    }
}

/// Clients made with this config take their proxies from the environment,
/// read now, with curl's rules: `ws://` URLs go through `ws_proxy`,
/// `WS_PROXY`, else `http_proxy` (never `HTTP_PROXY`); `wss://` URLs through
/// `wss_proxy`, `WSS_PROXY`, `https_proxy`, else `HTTPS_PROXY`; both fall
/// back to `all_proxy`, then `ALL_PROXY`. The hosts of `no_proxy` (else
/// `NO_PROXY`) are reached directly: a comma-separated list of names (each
/// also matching its subdomains; a leading dot is ignored), IP addresses and
/// CIDR ranges (`10.0.0.0/8`), or `*` alone for all. Proxy URLs are as for
/// `wsconn_config_set_proxy`; empty variables count as unset; with none set,
/// clients connect directly. Reading the environment while another thread
/// changes it (`setenv`) is undefined in C: call this before starting
/// threads, or while none does. Returns `WSCONN_OK`, `WSCONN_ERR_NULL`,
/// `WSCONN_ERR_INVALID_ARGUMENT` (a variable it would use holds no usable
/// proxy URL: the config is then unchanged).
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_proxy_from_env(config: *mut wsconn_config_t) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        update_client(config, |c| {
            c.proxies = ProxyRules::from_process_env()?;
            Ok(())
        })
    }
}

/// Clients made with this config reach the hosts of `list` directly, not
/// through their proxy: `no_proxy`'s syntax (see
/// `wsconn_config_set_proxy_from_env`); "" for none. Replaces the list read
/// from the environment, if any. Returns `WSCONN_OK`, `WSCONN_ERR_NULL`,
/// `WSCONN_ERR_INVALID_ARGUMENT` (not UTF-8).
///
/// # Safety
/// `config` is NULL or a live config; `list` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_no_proxy(config: *mut wsconn_config_t, list: *const c_char) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        update_client(config, |c| {
            // SAFETY: NULL or NUL-terminated per the caller.
            c.proxies.set_no_proxy(NoProxy::new(str_arg(list)?));
            Ok(())
        })
    }
}

/// Clients made with this config follow up to `count` redirects (301, 302,
/// 303, 307, 308) per connection attempt, as curl does: a relative
/// `Location` is resolved against the URL that answered, `http://` and
/// `https://` stand for `ws://` and `wss://`, `ws://` may lead to `wss://`
/// but `wss://` never to `ws://`, a URL seen before in the chain ends it
/// (a loop), and a URL's credentials go only to the same scheme, host and
/// port. The handshake timeout covers the whole chain. A redirect not
/// followed ends the connection with `WSCONN_ERR_REDIRECT`. Default 0: none
/// (a redirect is then `WSCONN_ERR_HANDSHAKE_REFUSED` with its status).
/// Returns `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_INVALID_ARGUMENT`
/// (over 255).
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_max_redirects(config: *mut wsconn_config_t, count: u32) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        update_client(config, |c| {
            c.max_redirects = u8::try_from(count).map_err(|_| Error::InvalidArgument("over 255 redirects"))?;
            Ok(())
        })
    }
}

/// Reconnection: a client made with this config whose connection ends
/// without the program closing it (the peer's EOF or close, an error, a
/// timeout, or a failed attempt: refused, unreachable, a proxy's refusal…)
/// connects again to the URL it was given, resolving its name again, after
/// a wait drawn at random between `min_ms` and a ceiling that doubles after
/// each consecutive failure (2·min_ms, 4·min_ms…) up to `max_ms` (exponential
/// backoff with full jitter); a connection that stayed open `max_ms` or
/// longer starts it over. The close callbacks run at every end, and
/// `wsconn_reconnect_delay` tells them whether an attempt follows and when;
/// the build callback runs at every success. `wsconn_close` (also inside the
/// close callbacks), `wsconn_stop` and `wsconn_release` stop it. `0, 0`
/// turns it off (the default). Returns `WSCONN_OK`, `WSCONN_ERR_NULL`,
/// `WSCONN_ERR_INVALID_ARGUMENT` (unless `0 < min_ms <= max_ms`, or both 0).
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_reconnect(config: *mut wsconn_config_t, min_ms: u32, max_ms: u32) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        update_client(config, |c| {
            c.reconnect = match (min_ms, max_ms) {
                (0, 0) => None,
                _ => Some(Backoff::new(min_ms, max_ms)?),
            };
            Ok(())
        })
    }
}

/// Client role: adds the header line `name: value` to this connection's
/// opening handshake, after the config's (checked as by
/// `wsconn_config_add_header`; copied). The connection keeps its own options
/// from then on: `wsconn_set_config` replaces them, so call it first. Only
/// before `wsconn_connect`. Returns `WSCONN_OK`, `WSCONN_ERR_NULL`,
/// `WSCONN_ERR_INVALID_ARGUMENT`, `WSCONN_ERR_STATE` (already started).
///
/// # Safety
/// `con` is NULL or a live connection; `name` and `value` are NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wsconn_add_header(
    con: *mut Connection<CCallbacks>,
    name: *const c_char,
    value: *const c_char,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_conn(con, |c| {
            // SAFETY: NULL or NUL-terminated per the caller.
            let (name, value) = (str_arg(name)?, str_arg(value)?);
            Ok(c.add_header(name, value)?)
        })
    }
}

/// Client role: the HTTP status the server answered the last opening
/// handshake with: 101 when it opened; another (401, 403, 503, or a
/// redirect not followed) when it refused, which the close callbacks report
/// as `WSCONN_ERR_HANDSHAKE_REFUSED`; 0 when no answer came (yet), and for
/// a server connection. Valid in the callbacks and afterwards, until the
/// connection connects again. `WSCONN_ERR_NULL` for NULL.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_handshake_status(con: *const Connection<CCallbacks>) -> c_int {
    // SAFETY: forwarded caller guarantee.
    unsafe { status_of(con, Connection::handshake_status) }
}

/// A status of a connection, or `WSCONN_ERR_NULL`.
///
/// # Safety
/// `con` is NULL or a live connection.
unsafe fn status_of(con: *const Connection<CCallbacks>, status: fn(&Connection<CCallbacks>) -> u16) -> c_int {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        match unsafe { con.as_ref() } {
            Some(conn) => status(conn) as c_int,
            None => code(Failure::Null),
        }
    })
}

/// Client role: what the proxy refused in the last attempt (with
/// `WSCONN_ERR_PROXY_REFUSED` or `WSCONN_ERR_PROXY_AUTH` in the close
/// callbacks): its HTTP status (407 or 401, 403, 502…), or its SOCKS5 reply (1-8),
/// or, for SOCKS5 credentials, 255 (no acceptable method) or the RFC 1929
/// status; 0 when it refused nothing (or there is no proxy). Valid until the
/// connection connects again. `WSCONN_ERR_NULL` for NULL.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_proxy_status(con: *const Connection<CCallbacks>) -> c_int {
    // SAFETY: forwarded caller guarantee.
    unsafe { status_of(con, Connection::proxy_status) }
}

/// Client role: the value of the `index`-th (from 0) header line called
/// `name` (any case) in the server's answer to the opening handshake: its
/// 101 (in the build callback and afterwards), or its refusal (in the close
/// callbacks after `WSCONN_ERR_HANDSHAKE_REFUSED`, e.g. `WWW-Authenticate`
/// or `Location`). A NUL-terminated string without the blanks around it,
/// owned by the connection: valid until it connects again (also by
/// reconnection or redirect), stops or is released. NULL when there is no
/// such line, no answer, or `con` or `name` is NULL.
///
/// # Safety
/// `con` is NULL or a live connection; `name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wsconn_response_header(
    con: *const Connection<CCallbacks>,
    name: *const c_char,
    index: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null(), {
        // SAFETY: NULL or live per the caller.
        let Some(conn) = (unsafe { con.as_ref() }) else {
            return std::ptr::null();
        };
        // SAFETY: NULL or NUL-terminated per the caller.
        let Ok(name) = (unsafe { str_arg(name) }) else {
            return std::ptr::null();
        };
        // The value lies in the block the connection keeps until its next
        // attempt (documented above), NUL-terminated.
        conn.with_response(|block| {
            block
                .and_then(|b| b.get_with_nul(name, index))
                .map_or(std::ptr::null(), |value| value.as_ptr().cast())
        })
    })
}

/// Client role, with reconnection (`wsconn_config_set_reconnect`): in the
/// close callbacks, and while the connection waits to connect again, the
/// milliseconds until the next attempt (0 or more); `WSCONN_ERR_STATE` when
/// none follows (reconnection off, the program closed or stopped the
/// connection, or it is not waiting); `WSCONN_ERR_NULL` for NULL.
///
/// # Safety
/// `con` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn wsconn_reconnect_delay(con: *const Connection<CCallbacks>) -> i64 {
    ffi_boundary!(code(Failure::Panic) as i64, {
        // SAFETY: NULL or live per the caller.
        match unsafe { con.as_ref() } {
            Some(conn) => match conn.reconnect_delay() {
                Some(ms) => ms.min(i64::MAX as u64) as i64,
                None => code(Error::State) as i64,
            },
            None => code(Failure::Null) as i64,
        }
    })
}

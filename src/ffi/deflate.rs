//! permessage-deflate from C: the config switches, sending with a choice of
//! compression, and reading what was agreed.

use std::ffi::{c_char, c_int, c_void};

use super::callbacks::{message_arg, CCallbacks};
use super::config::{set_optional_timeout, update, wsconn_config_t};
use super::conn::with_conn;
use super::result::{code, Failure};
use super::session::{with_session, wsconn_session_t};
use super::{bytes_arg, copy_out, kind_arg};
use crate::proto::deflate::{Compress, DeflateConfig};
use crate::proto::error::Error;
use crate::runtime::config::Timeouts;
use crate::runtime::connection::Connection;
use crate::runtime::reactor::Reactor;

/// How permessage-deflate spends memory (`wsconn_config_set_deflate`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsconn_deflate_mode {
    /// No compression: the extension is neither offered nor accepted.
    WSCONN_DEFLATE_OFF = 0,
    /// No context takeover either way: each message is compressed on its own
    /// with streams shared by the connections of a thread, so a compressed
    /// connection costs no more memory than a plain one (about 0.5 MiB per
    /// thread). Smaller ratios on small similar messages.
    WSCONN_DEFLATE_SHARED = 1,
    /// Context takeover: each connection has its own streams, made at its
    /// first compressed message: up to about 430 KiB per connection with the
    /// default 15-bit windows and memory level 8 (the compressor's hash table
    /// alone is 128 KiB), about 190 KiB with 9-bit windows and memory level 1.
    /// Best ratios. A reactor connection quiet for a second gives the streams
    /// back, keeping only the window the peer may refer to (a few KiB; see
    /// `wsconn_config_set_deflate_idle_ms`); a sans-IO session does so when
    /// the program calls `wsconn_session_trim_compression`.
    WSCONN_DEFLATE_DEDICATED = 2,
}

/// Flags of `wsconn_send_ex` and `wsconn_session_send_ex`.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsconn_send_flags {
    /// Compress when permessage-deflate was agreed and the message reaches
    /// the configured minimum size (what `wsconn_send` does).
    WSCONN_SEND_DEFAULT = 0,
    /// Compress whatever the size (when agreed; an empty message never is).
    WSCONN_SEND_COMPRESS = 1,
    /// Do not compress (small or already compressed payloads).
    WSCONN_SEND_NO_COMPRESS = 2,
}

fn compress_arg(flags: c_int) -> Result<Compress, Failure> {
    match flags {
        0 => Ok(Compress::Auto),
        1 => Ok(Compress::Always),
        2 => Ok(Compress::Never),
        _ => Err(Error::InvalidArgument.into()),
    }
}

/// The deflate settings of a config, which must have the extension on.
fn deflate_of(c: &mut crate::proto::config::Config) -> Result<&mut DeflateConfig, Failure> {
    Ok(c.deflate_settings()?)
}

/// Turns permessage-deflate (RFC 7692) on in `mode`, or off. A server
/// accepts the first valid offer of a client and answers with what it will
/// do; a client offers the extension. Both then compress messages of at least
/// 64 bytes (`wsconn_config_set_deflate_min_size`) at level 1, and
/// decompress what arrives within the max message size (a message that
/// inflates beyond it closes the connection with 1009, before more than that
/// is held) and within the ratio (`wsconn_config_set_deflate_max_ratio`). Resets the other deflate settings to the mode's defaults
/// (15-bit windows, level 1, memory level 8). Returns `WSCONN_OK`,
/// `WSCONN_ERR_NULL`, or `WSCONN_ERR_INVALID_ARGUMENT` for an unknown mode.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_deflate(config: *mut wsconn_config_t, mode: c_int) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        update(config, |c| {
            let deflate = match mode {
                0 => None,
                1 => Some(DeflateConfig::shared()),
                2 => Some(DeflateConfig::dedicated(15)?),
                _ => return Err(Error::InvalidArgument.into()),
            };
            c.set_deflate(deflate);
            Ok(())
        })
    }
}

/// Sets the largest LZ77 windows, as powers of two (8-15): `server_bits` for
/// what the server compresses, `client_bits` for what the client compresses.
/// A server keeps to the smaller of its own and what the client asks; it asks
/// a client for `client_bits` when the client's offer allows it. A client
/// offers both. Smaller windows cost less memory in the dedicated mode and
/// compress less. Returns `WSCONN_OK`, `WSCONN_ERR_NULL`,
/// `WSCONN_ERR_INVALID_ARGUMENT` (outside 8-15), `WSCONN_ERR_DEFLATE_OFF`.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_deflate_window_bits(
    config: *mut wsconn_config_t,
    server_bits: c_int,
    client_bits: c_int,
) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        update(config, |c| {
            let bits = |b: c_int| u8::try_from(b).map_err(|_| Failure::from(Error::InvalidArgument));
            let (server_bits, client_bits) = (bits(server_bits)?, bits(client_bits)?);
            let mut changed = deflate_of(c)?.clone();
            changed.set_server_max_window_bits(server_bits)?;
            changed.set_client_max_window_bits(client_bits)?;
            *c.deflate_mut() = changed;
            Ok(())
        })
    }
}

/// Sets whether each side keeps its compression context from one message to
/// the next (nonzero: keep). Not keeping it is what lets a side use the
/// thread's shared streams. A server always grants a client that asks it not
/// to keep its context; a client offers what it is told. Returns `WSCONN_OK`,
/// `WSCONN_ERR_NULL`, `WSCONN_ERR_DEFLATE_OFF`.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_deflate_context_takeover(
    config: *mut wsconn_config_t,
    server_takeover: c_int,
    client_takeover: c_int,
) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        update(config, |c| {
            let d = deflate_of(c)?;
            d.set_server_no_context_takeover(server_takeover == 0);
            d.set_client_no_context_takeover(client_takeover == 0);
            Ok(())
        })
    }
}

/// Sets the zlib compression level (0-9; default 1, the fastest that
/// compresses) and memory level (1-9; default 8: lower costs less memory per
/// dedicated compressor and compresses less). Returns `WSCONN_OK`,
/// `WSCONN_ERR_NULL`, `WSCONN_ERR_INVALID_ARGUMENT`, `WSCONN_ERR_DEFLATE_OFF`.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_deflate_level(
    config: *mut wsconn_config_t,
    level: c_int,
    mem_level: c_int,
) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        update(config, |c| {
            let small = |v: c_int| u8::try_from(v).map_err(|_| Failure::from(Error::InvalidArgument));
            let (level, mem_level) = (small(level)?, small(mem_level)?);
            let mut changed = deflate_of(c)?.clone();
            changed.set_level(level)?;
            changed.set_mem_level(mem_level)?;
            *c.deflate_mut() = changed;
            Ok(())
        })
    }
}

/// Sets the size below which messages are sent uncompressed (default 64
/// bytes; 0 compresses every non-empty message). Returns `WSCONN_OK`,
/// `WSCONN_ERR_NULL`, `WSCONN_ERR_DEFLATE_OFF`.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_deflate_min_size(config: *mut wsconn_config_t, bytes: usize) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        update(config, |c| {
            deflate_of(c)?.set_min_size(bytes);
            Ok(())
        })
    }
}

/// Limits how much a peer may make this side inflate: at most `ratio` bytes
/// inflated per compressed byte it sent, over the connection, with a reserve
/// of 1 MiB (a message may exceed the ratio now and then; doing so message
/// after message spends the reserve). Past it the connection is closed with
/// 1009, `wsconn_close_error` gives `WSCONN_ERR_INFLATE_RATIO`, and the
/// reactor counts it (`wsconn_reactor_inflate_ratio_closes`). Default 256:
/// above what context takeover gives messages that repeat earlier ones
/// (typically 50-200), far under what a bomb does (about 1,000: 15 KiB on the
/// wire making 15 MiB). 0: no limit but the max message size. Returns
/// `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_DEFLATE_OFF` (deflate is off
/// in this config).
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_deflate_max_ratio(config: *mut wsconn_config_t, ratio: u32) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        update(config, |c| {
            deflate_of(c)?.set_max_inflate_ratio(ratio);
            Ok(())
        })
    }
}

/// How many connections of `reactor` were closed because their peer's
/// compressed messages inflated past the configured ratio
/// (`wsconn_config_set_deflate_max_ratio`), since it was created: a plain
/// counter for metrics (sum it over a program's reactors). 0 for NULL. Not
/// thread-safe (the reactor's thread).
///
/// # Safety
/// `reactor` is NULL or a live reactor.
#[no_mangle]
pub unsafe extern "C" fn wsconn_reactor_inflate_ratio_closes(reactor: *const Reactor) -> u64 {
    ffi_boundary!(0, {
        // SAFETY: NULL or live per the caller.
        unsafe { reactor.as_ref() }.map_or(0, Reactor::inflate_ratio_closes)
    })
}

/// Sets how long a reactor connection with context takeover
/// (`WSCONN_DEFLATE_DEDICATED`) may go without a message in or out before its
/// compression streams are trimmed: the compressor is dropped and the
/// decompressor reduced to the peer's window, the last min(bytes received
/// inflated, 2^window_bits) bytes. An idle connection then holds a few KiB
/// instead of 180-430 KiB (about 1 KiB after one 1 KiB message each way,
/// 32 KiB at most). The next compressed message makes a new compressor and
/// restores the window: messages still decode exactly, the first one after a
/// trim compresses a little less. Default 1000 ms; 0: never trim (the streams
/// live as long as the connection). Returns `WSCONN_OK`, `WSCONN_ERR_NULL`.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_deflate_idle_ms(config: *mut wsconn_config_t, ms: u32) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { set_optional_timeout(config, Timeouts::set_deflate_idle_ms, ms) }
}

/// The sans-IO form of the trim `wsconn_config_set_deflate_idle_ms` sets up:
/// gives back the memory of the session's compression streams (context
/// takeover), keeping only the peer's window (a few KiB instead of 180-430
/// KiB). Call it when the session has been quiet for a while, not after every
/// message (the next compressed message makes a new compressor). Safe between
/// feeds at any time: a compressed message being received keeps its
/// decompressor. Nothing to do without context takeover. Returns `WSCONN_OK`,
/// `WSCONN_ERR_NULL`, `WSCONN_ERR_REENTRANT` (called from a callback).
///
/// # Safety
/// `session` is NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_trim_compression(session: *mut wsconn_session_t) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { with_session(session, |s| Ok(s.trim_compression()?)) }
}

/// Queues a whole message like `wsconn_send_text`/`wsconn_send_binary`
/// (`type` is `WSCONN_MSG_TEXT` or `WSCONN_MSG_BINARY`), with `flags` from
/// `wsconn_send_flags` choosing whether it is compressed. Returns as
/// `wsconn_send`, and `WSCONN_ERR_INVALID_ARGUMENT` for unknown flags.
///
/// # Safety
/// `con` is NULL or a live connection; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_send_ex(
    con: *mut Connection<CCallbacks>,
    r#type: c_int,
    data: *const c_void,
    len: usize,
    flags: c_int,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_conn(con, |c| {
            let message = message_arg(kind_arg(r#type)?, bytes_arg(data.cast(), len)?)?;
            Ok(c.send_message_with(message, compress_arg(flags)?)?)
        })
    }
}

/// The sans-IO form of `wsconn_send_ex`. Returns as `wsconn_session_send`,
/// and `WSCONN_ERR_INVALID_ARGUMENT` for unknown flags.
///
/// # Safety
/// `session` is NULL or a live session; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_send_ex(
    session: *mut wsconn_session_t,
    r#type: c_int,
    data: *const u8,
    len: usize,
    flags: c_int,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        with_session(session, |s| {
            let message = message_arg(kind_arg(r#type)?, bytes_arg(data, len)?)?;
            Ok(s.send_message_with(message, compress_arg(flags)?)?)
        })
    }
}

/// Writes the extensions in force, as the server's `Sec-WebSocket-Extensions`
/// answered them (e.g. "permessage-deflate; server_no_context_takeover"), into
/// `buf` (`size` bytes, NUL-terminated, truncated like snprintf; `buf` may be
/// NULL when `size` is 0). An empty string: no extension, or not open yet.
/// Returns the full length (without the NUL), or `WSCONN_ERR_NULL`.
///
/// # Safety
/// `con` is NULL or a live connection; `buf` is NULL or has `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_extensions(con: *const Connection<CCallbacks>, buf: *mut c_char, size: usize) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        match unsafe { con.as_ref() } {
            Some(conn) => copy_out(&conn.extensions(), buf, size),
            None => code(Failure::Null),
        }
    })
}

/// The sans-IO form of `wsconn_extensions`.
///
/// # Safety
/// `session` is NULL or a live session; `buf` is NULL or has `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_session_extensions(
    session: *const wsconn_session_t,
    buf: *mut c_char,
    size: usize,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        match unsafe { session.as_ref() } {
            Some(s) => copy_out(&s.session().extensions(), buf, size),
            None => code(Failure::Null),
        }
    })
}

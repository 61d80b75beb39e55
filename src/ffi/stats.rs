//! Counters of a reactor for the program's metrics (`wsconn_stats_t`), and
//! their Prometheus text.

use std::ffi::{c_char, c_int};
use std::mem::offset_of;

use super::result::{code, Failure};
use crate::proto::error::Error;
use crate::runtime::metrics::{write_prometheus, ProcessStats};
use crate::runtime::reactor::Reactor;
use crate::runtime::stats::Stats;

/// Flags of `wsconn_stats_prometheus`.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsconn_metrics_flags {
    /// Also the process's figures: `process_resident_memory_bytes` and
    /// `process_open_fds` (from /proc/self).
    WSCONN_METRICS_PROCESS = 1,
}

/// A copy of a reactor's counters (`wsconn_reactor_stats`). It starts with
/// its size, so that it can grow: fields are only ever added at the end, and
/// a program built against an older header gets the fields it knows.
/// Counters only grow; the fields marked *gauge* say how things stand now.
/// Every field is a `uint64_t`. Fields for features a build lacks read 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wsconn_stats_t {
    /// The bytes of this struct the library filled (set by
    /// `wsconn_reactor_stats`; set it to `sizeof(wsconn_stats_t)` in a total
    /// you sum into with `wsconn_stats_add`).
    pub size: usize,
    /// Gauge: WebSocket connections open (handshake done, not ended yet;
    /// closing ones included).
    pub connections_open: u64,
    /// Gauge: connections whose opening handshake has not completed (server
    /// connections reading a request or answering plain HTTP, client
    /// connections resolving, connecting or waiting for the answer).
    pub handshakes_pending: u64,
    /// Server connections started (accepted sockets handed to a connection).
    pub connections_accepted: u64,
    /// Client connection attempts: each `wsconn_connect` and each
    /// reconnection (the hops of a redirect are one attempt).
    pub connections_dialed: u64,
    /// Opening handshakes completed, both roles.
    pub handshakes_completed: u64,
    /// Server handshakes refused: a malformed or unacceptable request (400,
    /// 426, 431, or a plain request on a WebSocket-only server).
    pub refused_bad_request: u64,
    /// Server handshakes refused for their Origin (the allow-list).
    pub refused_origin: u64,
    /// Server handshakes the program refused (its upgrade decision).
    pub refused_program: u64,
    /// Sockets refused by an acceptor's limits (`wsconn_acceptor_set_limits`:
    /// in all, or from one address), closed at accept.
    pub refused_limits: u64,
    /// Server handshakes that failed in the TLS handshake (not TLS, no common
    /// protocol or cipher, a bad record, no client certificate): the sum of
    /// `wsconn_acceptor_tls_refused` over the reactor's acceptors.
    pub refused_tls: u64,
    /// Server handshakes not completed within the handshake timeout (a PROXY
    /// header that never came included).
    pub refused_timeout: u64,
    /// Server handshakes refused because the server shuts down: with 503 by
    /// a drain, or by `wsconn_reactor_refuse_pending`.
    pub refused_draining: u64,
    /// Client handshakes that failed (name resolution, connect, TLS, a bad
    /// answer, the handshake timeout, a drain).
    pub client_handshakes_failed: u64,
    /// Plain HTTP requests answered.
    pub http_requests: u64,
    /// Data messages received (a fragmented message counts once).
    pub messages_in: u64,
    /// Data messages sent (a fragmented message counts once, at its last
    /// fragment).
    pub messages_out: u64,
    /// Bytes of data messages received, as delivered (inflated).
    pub payload_bytes_in: u64,
    /// Bytes of data messages sent, as the program gave them.
    pub payload_bytes_out: u64,
    /// Bytes read from sockets (TLS records included).
    pub wire_bytes_in: u64,
    /// Bytes written to sockets (TLS records included).
    pub wire_bytes_out: u64,
    /// Data messages received compressed (permessage-deflate).
    pub compressed_messages_in: u64,
    /// Data messages sent compressed.
    pub compressed_messages_out: u64,
    /// Open connections that ended after a clean closing handshake with 1000.
    pub closes_normal: u64,
    /// … with 1001 (going away: the idle timeout, a drain, a peer leaving).
    pub closes_going_away: u64,
    /// … because a peer broke the protocol (1002, 1003, 1007).
    pub closes_protocol: u64,
    /// … with 1008 (policy: a slow subscriber closed, the program's 1008).
    pub closes_policy: u64,
    /// … because a message was too big (1009).
    pub closes_too_big: u64,
    /// … by a timer: pong, message, close timeout, or a drain's deadline.
    pub closes_timeout: u64,
    /// … because TCP ended without a closing handshake, or a read, write or
    /// TLS record failed.
    pub closes_eof_io: u64,
    /// … any other way (1011, application codes, 1005, released open).
    pub closes_other: u64,
    /// Pings received.
    pub pings_in: u64,
    /// Pings sent (keepalive and the program's).
    pub pings_out: u64,
    /// Pongs received.
    pub pongs_in: u64,
    /// Pongs sent (each ping is answered).
    pub pongs_out: u64,
    /// Gauge: bytes the connections hold in buffers (the memory budget's sum).
    pub budget_bytes: u64,
    /// Gauge: connections not read because the memory budget is spent.
    pub budget_waiting: u64,
    /// Times a connection stopped being read because the budget was spent.
    pub budget_pauses: u64,
    /// Messages published on this reactor (`wsconn_publish`, `_except`, and
    /// `wsconn_publish_async` naming it).
    pub publishes: u64,
    /// Published messages queued to a subscriber of this reactor.
    pub published_deliveries: u64,
    /// Published messages a slow subscriber missed (policy skip).
    pub slow_skipped: u64,
    /// Slow subscribers closed (policy close, 1008).
    pub slow_closed: u64,
    /// Sockets whose PROXY protocol header was malformed, or that ended before
    /// it came (`wsconn_acceptor_set_proxy_protocol`).
    pub proxy_header_failures: u64,
    /// Connections closed because a compressed message inflated beyond the
    /// allowed ratio (0 for now: no such limit yet).
    pub inflate_ratio_closes: u64,
    /// Gauge: client connections waiting for their next attempt
    /// (`wsconn_config_set_reconnect`).
    pub reconnects_waiting: u64,
    /// Connections a drain cut at its deadline.
    pub drain_cut: u64,
    /// Gauge: 1 while the reactor drains (and after), else 0.
    pub draining: u64,
    /// accept() failures (out of file descriptors, …).
    pub accept_failures: u64,
    /// Log lines suppressed by the rate limit.
    pub log_suppressed: u64,
}

/// Where the counters start, and how many the library knows.
const FIRST: usize = offset_of!(wsconn_stats_t, connections_open);
const KNOWN: usize = (std::mem::size_of::<wsconn_stats_t>() - FIRST) / 8;
const _: () = assert!(std::mem::size_of::<wsconn_stats_t>() == FIRST + 8 * KNOWN);

/// How many counters a struct of `size` bytes holds (of those the library knows).
fn counters_in(size: usize) -> usize {
    (size.saturating_sub(FIRST) / 8).min(KNOWN)
}

/// The counters of `stats` (its `size` says how many).
///
/// # Safety
/// `stats` points to at least `stats.size` readable bytes.
unsafe fn read_counters(stats: *const wsconn_stats_t) -> Vec<u64> {
    // SAFETY: readable per the caller.
    let size = unsafe { (*stats).size };
    let n = counters_in(size);
    // SAFETY: the counters are `n` u64s from FIRST, within `size` bytes.
    let first = unsafe { stats.cast::<u8>().add(FIRST).cast::<u64>() };
    // SAFETY: as above (read unaligned: a program's copy may be packed anyhow).
    (0..n).map(|i| unsafe { first.add(i).read_unaligned() }).collect()
}

/// Copies the counters of `reactor` into `out`, a `wsconn_stats_t` of `size`
/// bytes (pass `sizeof(wsconn_stats_t)`): `out->size` says how many bytes
/// were filled (less than `size` when the library is older than the header
/// the program was built with; the rest is zeroed). Plain counters of the
/// reactor's thread: call it there (another thread publishes copies it made
/// on the reactor's thread, e.g. through `wsconn_reactor_defer`). Returns
/// `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_INVALID_ARGUMENT` (`size` too
/// small for the size field).
///
/// # Safety
/// `reactor` is NULL or a live reactor, on its own thread; `out` is NULL or
/// points to `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_reactor_stats(reactor: *const Reactor, out: *mut wsconn_stats_t, size: usize) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(reactor) = (unsafe { reactor.as_ref() }) else {
            return code(Failure::Null);
        };
        if out.is_null() {
            return code(Failure::Null);
        }
        if size < FIRST {
            return code(Error::InvalidArgument);
        }
        // SAFETY: `out` has `size` writable bytes per the caller.
        unsafe { write_counters(out, size, &reactor.stats().values()) };
        0
    })
}

/// Zeroes the `size` bytes of `out`, then writes its size field and as many
/// of `values` as it holds.
///
/// # Safety
/// `out` points to `size` writable bytes, `size` >= FIRST.
unsafe fn write_counters(out: *mut wsconn_stats_t, size: usize, values: &[u64]) {
    let n = counters_in(size).min(values.len());
    // SAFETY: the size field and `n` counters lie within the `size` bytes.
    unsafe {
        std::ptr::write_bytes(out.cast::<u8>(), 0, size);
        out.cast::<usize>().write_unaligned(FIRST + 8 * n);
        let first = out.cast::<u8>().add(FIRST).cast::<u64>();
        for (i, value) in values.iter().take(n).enumerate() {
            first.add(i).write_unaligned(*value);
        }
    }
}

/// Adds the counters of `one` to `total`, field by field (gauges too: the
/// sum over the reactors of a program, one per thread, is its total), for
/// the fields both hold (their `size`). Start `total` as
/// `wsconn_stats_t total = { .size = sizeof total };`. Returns `WSCONN_OK`,
/// `WSCONN_ERR_NULL`.
///
/// # Safety
/// `total` and `one` are NULL or point to structs of at least their `size`
/// bytes; they may not overlap.
#[no_mangle]
pub unsafe extern "C" fn wsconn_stats_add(total: *mut wsconn_stats_t, one: *const wsconn_stats_t) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        if total.is_null() || one.is_null() {
            return code(Failure::Null);
        }
        // SAFETY: both readable for their size per the caller.
        let (sums, more) = unsafe { (read_counters(total), read_counters(one)) };
        // SAFETY: `total` has room for `sums.len()` counters from FIRST.
        let first = unsafe { total.cast::<u8>().add(FIRST).cast::<u64>() };
        for (i, (sum, add)) in sums.iter().zip(&more).enumerate() {
            // SAFETY: i < sums.len(), within `total`'s size.
            unsafe { first.add(i).write_unaligned(sum.wrapping_add(*add)) };
        }
        0
    })
}

/// Writes `stats` (one reactor's, or a sum) in Prometheus' text exposition
/// format (version 0.0.4: serve it as `text/plain; version=0.0.4`): HELP and
/// TYPE lines, `wsconn_*_total` counters, one series per reason, class or
/// direction as labels, `wsconn_connections_open` the gauge of open
/// connections; with `WSCONN_METRICS_PROCESS` in `flags`, also the
/// process's resident memory and open fds. Like `snprintf`: writes at most
/// `size` bytes into `buf` (NUL-terminated when `size` > 0) and returns the
/// length of the whole text (without the NUL): call it with `NULL, 0` to
/// learn the size to allocate (+1). Returns a negative `WSCONN_ERR_NULL`
/// (`stats` NULL, or `buf` NULL with `size` > 0), `WSCONN_ERR_INVALID_ARGUMENT`
/// (unknown flags). Thread-safe (it reads only its arguments and /proc).
///
/// # Safety
/// `stats` is NULL or points to at least `stats->size` readable bytes; `buf`
/// is NULL or points to `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_stats_prometheus(
    stats: *const wsconn_stats_t,
    flags: c_int,
    buf: *mut c_char,
    size: usize,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        if stats.is_null() || (buf.is_null() && size > 0) {
            return code(Failure::Null);
        }
        let process_flag = wsconn_metrics_flags::WSCONN_METRICS_PROCESS as c_int;
        if flags & !process_flag != 0 {
            return code(Error::InvalidArgument);
        }
        // SAFETY: readable for its size per the caller.
        let values = unsafe { read_counters(stats) };
        let mut text = String::new();
        let process = (flags & process_flag != 0).then(ProcessStats::read).flatten();
        write_prometheus(&mut text, &Stats::from_values(&values), process);
        if size > 0 {
            let n = text.len().min(size - 1);
            // SAFETY: `buf` has `size` writable bytes; n + 1 <= size.
            unsafe {
                std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
                *buf.add(n) = 0;
            }
        }
        i32::try_from(text.len()).unwrap_or(i32::MAX)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C struct's fields are the runtime's, in the same order.
    #[test]
    // Safe code (reads this file's text): long under Miri, nothing to find.
    #[cfg_attr(miri, ignore)]
    fn the_struct_has_every_counter_in_order() {
        let source = include_str!("stats.rs");
        let body = &source[source.find("pub struct wsconn_stats_t {").unwrap()..];
        let body = &body[..body.find("\n}").unwrap()];
        let fields: Vec<&str> = body
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub ")?.strip_suffix(": u64,"))
            .collect();
        assert_eq!(fields, Stats::NAMES);
        assert_eq!(KNOWN, Stats::NAMES.len());
    }

    #[test]
    #[cfg_attr(miri, ignore = "epoll and sockets: not run under Miri")]
    fn a_reactor_fills_what_the_struct_holds() {
        let reactor = Reactor::new().unwrap();
        let mut small = [7u64; 4];
        // SAFETY: `small` has 32 writable bytes; 24 are given.
        let rc = unsafe { wsconn_reactor_stats(&*reactor, small.as_mut_ptr().cast(), FIRST + 16) };
        assert_eq!((rc, small[0] as usize, small[1], small[3]), (0, FIRST + 16, 0, 7));
        // SAFETY: as above; too small for the size field.
        let rc = unsafe { wsconn_reactor_stats(&*reactor, small.as_mut_ptr().cast(), 4) };
        assert_eq!(rc, code(Error::InvalidArgument));
    }

    #[test]
    fn a_smaller_struct_gets_what_it_holds_and_sums_add_up() {
        // An "older header" of two counters.
        let mut small = [7u64; 4];
        let size = FIRST + 16;
        // SAFETY: `small` has 32 writable bytes; size is 24.
        unsafe { write_counters(small.as_mut_ptr().cast(), size, &[5, 6, 8]) };
        assert_eq!(&small[..3], &[size as u64, 5, 6]);
        assert_eq!(small[3], 7, "nothing written past its size");
        // A newer program's struct: the library's counters, then zeros.
        let mut big = [7u64; 8];
        // SAFETY: `big` has 64 writable bytes.
        unsafe { write_counters(big.as_mut_ptr().cast(), 64, &[1, 2]) };
        assert_eq!(big, [FIRST as u64 + 16, 1, 2, 0, 0, 0, 0, 0]);
        // SAFETY: a whole struct, zeroed but for its size.
        let mut total: wsconn_stats_t = unsafe { std::mem::zeroed() };
        total.size = std::mem::size_of::<wsconn_stats_t>();
        let mut one = total;
        one.messages_in = 5;
        one.connections_open = 2;
        for _ in 0..2 {
            // SAFETY: both whole structs.
            assert_eq!(unsafe { wsconn_stats_add(&mut total, &one) }, 0);
        }
        assert_eq!((total.messages_in, total.connections_open), (10, 4));
        let mut buf = [0 as c_char; 64];
        // SAFETY: a whole struct and a 64-byte buffer.
        let len = unsafe { wsconn_stats_prometheus(&total, 0, buf.as_mut_ptr(), buf.len()) };
        assert!(len > 64, "the whole text's length, {len}");
        assert_eq!(buf[63], 0, "truncated and terminated");
    }
}

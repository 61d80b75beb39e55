//! A reactor's counters: what its connections did, for the program's metrics.
//!
//! Plain integers of the reactor's thread (a `Cell` each: no atomic, no lock),
//! bumped where the work is counted anyway: per read, per write, per message
//! delivered or sent, per handshake, per close. The program reads a copy
//! ([`Stats`]) on the reactor's thread; summing the copies of several
//! reactors (one per thread) is the program's affair.
//!
//! Refusals are counted where they are noted (`Reactor::note_refusal`, one
//! counter per `Refusal`); inflate ratio closes by
//! `Connection::count_inflate_ratio_close`.

use std::cell::Cell;

/// Defines [`Stats`] (the copy the program reads), [`Counters`] (the live
/// cells) and the names of the fields, in order, from one list.
macro_rules! stats {
    ($($(#[doc = $doc:literal])* $field:ident,)*) => {
        /// A copy of a reactor's counters. Counters only grow; the fields
        /// marked *gauge* say how things stand now.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct Stats {
            $($(#[doc = $doc])* pub $field: u64,)*
        }

        /// The live counters of a reactor.
        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $(pub $field: Cell<u64>,)*
        }

        impl Counters {
            pub fn snapshot(&self) -> Stats {
                Stats { $($field: self.$field.get(),)* }
            }
        }

        impl Stats {
            /// The fields' names, in order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

            /// The fields' values, in the order of [`Stats::NAMES`].
            pub fn values(&self) -> Vec<u64> {
                vec![$(self.$field),*]
            }

            /// A `Stats` of `values` in the order of [`Stats::NAMES`] (missing
            /// ones are 0, extra ones ignored).
            pub fn from_values(values: &[u64]) -> Stats {
                let mut values = values.iter().copied();
                Stats { $($field: values.next().unwrap_or(0),)* }
            }

            /// Adds `other` field by field (gauges too: the sum over several
            /// reactors is the program's total).
            pub fn add(&mut self, other: &Stats) {
                $(self.$field = self.$field.wrapping_add(other.$field);)*
            }
        }
    };
}

stats! {
    /// Gauge: WebSocket connections open (handshake done, not ended yet;
    /// closing ones included).
    connections_open,
    /// Gauge: connections whose opening handshake has not completed (server
    /// connections reading a request or answering plain HTTP, client
    /// connections resolving, connecting or waiting for the answer).
    handshakes_pending,
    /// Server connections started (accepted sockets handed to a connection).
    connections_accepted,
    /// Client connection attempts: each `connect` and each reconnection (the
    /// hops of a redirect are one attempt).
    connections_dialed,
    /// Opening handshakes completed, both roles.
    handshakes_completed,
    /// Server handshakes refused: a malformed or unacceptable request (400,
    /// 426, 431, or a plain request on a WebSocket-only server).
    refused_bad_request,
    /// Server handshakes refused for their Origin (the allow-list).
    refused_origin,
    /// Server handshakes the program refused (its upgrade decision).
    refused_program,
    /// Connections refused by the acceptor's limits (in all, or from one
    /// address): closed at accept, before TLS or any read.
    refused_limits,
    /// Server handshakes that failed in the TLS handshake (not TLS, no common
    /// protocol or cipher, a bad record, no client certificate), as the
    /// acceptors count them (`Acceptor::tls_refused`).
    refused_tls,
    /// Server handshakes not completed within the handshake timeout (a PROXY
    /// header that never came included).
    refused_timeout,
    /// Server handshakes refused because the server shuts down: with 503 by
    /// a drain, or by `refuse_pending` (the program's status).
    refused_draining,
    /// Client handshakes that failed (name resolution, connect, TLS, a bad
    /// answer, the handshake timeout, a drain).
    client_handshakes_failed,
    /// Plain HTTP requests answered.
    http_requests,
    /// Data messages received (a fragmented message counts once).
    messages_in,
    /// Data messages sent (a fragmented message counts once, at its last
    /// fragment).
    messages_out,
    /// Bytes of data messages received, as delivered (inflated).
    payload_bytes_in,
    /// Bytes of data messages sent, as the program gave them.
    payload_bytes_out,
    /// Bytes read from sockets (TLS records included).
    wire_bytes_in,
    /// Bytes written to sockets (TLS records included).
    wire_bytes_out,
    /// Data messages received compressed (permessage-deflate).
    compressed_messages_in,
    /// Data messages sent compressed.
    compressed_messages_out,
    /// Open connections that ended after a clean closing handshake with 1000.
    closes_normal,
    /// … with 1001 (going away: the idle timeout, a drain, a peer leaving).
    closes_going_away,
    /// … because a peer broke the protocol (1002, 1003, 1007).
    closes_protocol,
    /// … with 1008 (policy: a slow subscriber closed, the program's 1008).
    closes_policy,
    /// … because a message was too big (1009).
    closes_too_big,
    /// … by a timer: pong, message, close timeout, or a drain's deadline.
    closes_timeout,
    /// … because TCP ended without a closing handshake, or a read, write or
    /// TLS record failed.
    closes_eof_io,
    /// … any other way (1011, application codes, 1005, released open).
    closes_other,
    /// Pings received.
    pings_in,
    /// Pings sent (keepalive and the program's).
    pings_out,
    /// Pongs received.
    pongs_in,
    /// Pongs sent (each ping is answered).
    pongs_out,
    /// Gauge: bytes the connections hold in buffers (the memory budget's sum).
    budget_bytes,
    /// Gauge: connections not read because the memory budget is spent.
    budget_waiting,
    /// Times a connection stopped being read because the budget was spent.
    budget_pauses,
    /// Messages published on this reactor's thread (`publish`).
    publishes,
    /// Published messages queued to a subscriber of this reactor.
    published_deliveries,
    /// Published messages a slow subscriber missed (policy skip).
    slow_skipped,
    /// Slow subscribers closed (policy close, 1008).
    slow_closed,
    /// Connections whose PROXY protocol header was malformed, or whose
    /// socket ended before it came (one that did not come within the
    /// handshake timeout counts in `refused_timeout`).
    proxy_header_failures,
    /// Connections closed because a compressed message inflated beyond the
    /// allowed ratio.
    inflate_ratio_closes,
    /// Gauge: client connections waiting for their next attempt.
    reconnects_waiting,
    /// Connections a drain cut at its deadline.
    drain_cut,
    /// Gauge: 1 while the reactor drains (and after), else 0.
    draining,
    /// accept() failures (out of file descriptors, …).
    accept_failures,
    /// Log lines suppressed by the rate limit.
    log_suppressed,
}

/// Adds to a counter (wrapping: a counter that ran for centuries restarts).
pub(crate) trait Bump {
    fn add(&self, n: u64);
    fn sub(&self, n: u64);
}

impl Bump for Cell<u64> {
    #[inline]
    fn add(&self, n: u64) {
        self.set(self.get().wrapping_add(n));
    }

    #[inline]
    fn sub(&self, n: u64) {
        self.set(self.get().saturating_sub(n));
    }
}

/// How an open connection ended, for `closes_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseClass {
    Normal,
    GoingAway,
    Protocol,
    Policy,
    TooBig,
    Timeout,
    EofIo,
    Other,
}

impl CloseClass {
    /// The class of an end with `code` (the close code seen or sent) and, if
    /// something went wrong, what (`timeout`: a timer ended it; `broken`: TCP
    /// or TLS ended it without a closing handshake).
    pub fn of(code: u16, timeout: bool, broken: bool) -> CloseClass {
        if timeout {
            return CloseClass::Timeout;
        }
        if broken {
            return CloseClass::EofIo;
        }
        match code {
            1000 => CloseClass::Normal,
            1001 => CloseClass::GoingAway,
            1002 | 1003 | 1007 => CloseClass::Protocol,
            1008 => CloseClass::Policy,
            1009 => CloseClass::TooBig,
            1006 => CloseClass::EofIo,
            _ => CloseClass::Other,
        }
    }

    pub(crate) fn counter(self, c: &Counters) -> &Cell<u64> {
        match self {
            CloseClass::Normal => &c.closes_normal,
            CloseClass::GoingAway => &c.closes_going_away,
            CloseClass::Protocol => &c.closes_protocol,
            CloseClass::Policy => &c.closes_policy,
            CloseClass::TooBig => &c.closes_too_big,
            CloseClass::Timeout => &c.closes_timeout,
            CloseClass::EofIo => &c.closes_eof_io,
            CloseClass::Other => &c.closes_other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_values_and_names_line_up() {
        let c = Counters::default();
        c.messages_in.add(3);
        c.connections_open.add(2);
        c.connections_open.sub(1);
        c.connections_open.sub(5);
        let s = c.snapshot();
        assert_eq!(
            (s.messages_in, s.connections_open),
            (3, 0),
            "a gauge never goes below 0"
        );
        let at = |name| Stats::NAMES.iter().position(|n| *n == name).unwrap();
        assert_eq!(s.values()[at("messages_in")], 3);
        assert_eq!(Stats::NAMES.len(), s.values().len());
        let mut sum = s;
        sum.add(&s);
        assert_eq!(sum.messages_in, 6);
    }

    #[test]
    fn close_classes() {
        assert_eq!(CloseClass::of(1000, false, false), CloseClass::Normal);
        assert_eq!(CloseClass::of(1001, false, false), CloseClass::GoingAway);
        assert_eq!(CloseClass::of(1007, false, false), CloseClass::Protocol);
        assert_eq!(CloseClass::of(1008, true, false), CloseClass::Timeout);
        assert_eq!(CloseClass::of(1006, false, true), CloseClass::EofIo);
        assert_eq!(CloseClass::of(1006, false, false), CloseClass::EofIo);
        assert_eq!(CloseClass::of(4000, false, false), CloseClass::Other);
        assert_eq!(CloseClass::of(1005, false, false), CloseClass::Other);
    }
}

//! A connection's share of its reactor's counters and log: counted when it
//! begins, opens, waits to reconnect and ends (gauges follow it), and logged
//! where the library refuses or ends it on its own. Its refusal is noted once,
//! through the reactor's one place for refusals.

use std::ptr::NonNull;

use crate::proto::error::Error as SessionError;
use crate::runtime::connection::{Connection, Counted};
use crate::runtime::error::Error;
use crate::runtime::handler::ConnHandler;
use crate::runtime::log::LogEvent;
use crate::runtime::refusal::Refusal;
use crate::runtime::stats::{Bump, CloseClass, Counters};

impl<H: ConnHandler> Connection<H> {
    /// The reactor's counters (none once the reactor is gone).
    pub(super) fn counters(&self) -> Option<&Counters> {
        self.reactor().map(|r| r.counters())
    }

    pub(super) fn is_counted(&self, mark: Counted) -> bool {
        self.counted.get().contains(mark)
    }

    pub(super) fn set_counted(&self, mark: Counted, on: bool) {
        let mut counted = self.counted.get();
        counted.set(mark, on);
        self.counted.set(counted);
    }

    /// Started (`start`, server) or connecting (`connect`, client): a
    /// handshake is pending.
    pub(super) fn count_begin(&self, client: bool) {
        // Out of the gauges it was in (waiting to reconnect).
        self.uncount();
        let Some(c) = self.counters() else { return };
        if client {
            c.connections_dialed.add(1);
        } else {
            c.connections_accepted.add(1);
        }
        c.handshakes_pending.add(1);
        self.counted.set(if client {
            Counted::PENDING | Counted::CLIENT
        } else {
            Counted::PENDING
        });
    }

    /// The opening handshake completed.
    pub(super) fn count_open(&self) {
        let Some(c) = self.counters() else { return };
        c.handshakes_completed.add(1);
        if self.is_counted(Counted::PENDING) {
            c.handshakes_pending.sub(1);
        }
        c.connections_open.add(1);
        self.set_counted(Counted::PENDING, false);
        self.set_counted(Counted::OPEN, true);
    }

    /// The connection ends (its handler is told): an open one counts in its
    /// close class, a pending client one as failed if something went wrong.
    /// (A server's refusal was counted when it was noted.)
    pub(super) fn count_end(&self, code: u16) {
        let Some(c) = self.counters() else { return };
        let error = self.close_error();
        if self.is_counted(Counted::OPEN) {
            let timeout = matches!(error, Some(Error::Timeout(_) | Error::Drained));
            let broken = matches!(
                error,
                Some(Error::Io(_) | Error::Tls(_) | Error::Session(SessionError::Eof))
            );
            // A close this side began is classed by its own code (the peer
            // may answer another, e.g. 1000 to a 1001).
            let code = match self.with_extra(|e| e.initiated_code) {
                Some(initiated) if initiated != 0 => initiated,
                _ => code,
            };
            CloseClass::of(code, timeout, broken).counter(c).add(1);
        } else if self.is_counted(Counted::PENDING | Counted::CLIENT) && error.is_some() {
            c.client_handshakes_failed.add(1);
        }
    }

    /// A message (`whole`) or a fragment of `bytes` was queued to send.
    pub(super) fn count_sent(&self, bytes: usize, whole: bool, compressed: bool) {
        if let Some(c) = self.counters() {
            c.messages_out.add(u64::from(whole));
            c.payload_bytes_out.add(bytes as u64);
            if compressed {
                c.compressed_messages_out.add(1);
            }
        }
    }

    /// The program dropped the connection (stop, release) without a close:
    /// an open one counts among the other closes.
    pub(super) fn count_dropped(&self) {
        if let (true, Some(c)) = (self.is_counted(Counted::OPEN), self.counters()) {
            c.closes_other.add(1);
        }
    }

    /// Leaves the gauges (when it leaves the reactor).
    pub(super) fn uncount(&self) {
        let counted = self.counted.get();
        if let Some(c) = self.counters() {
            if counted.contains(Counted::PENDING) {
                c.handshakes_pending.sub(1);
            }
            if counted.contains(Counted::OPEN) {
                c.connections_open.sub(1);
            }
        }
        if let (true, Some(reactor)) = (counted.contains(Counted::WAITING), self.reactor()) {
            reactor.count_reconnect_wait(None, false, 0);
        }
        self.counted.set(Counted::empty());
    }

    /// Client: it waits `delay_ms` for its next attempt (`reconnects_waiting`
    /// until it leaves the reactor or starts that attempt).
    pub(super) fn count_waiting(&self, delay_ms: u64) {
        let Some(reactor) = self.reactor() else { return };
        self.uncount();
        self.counted.set(Counted::WAITING | Counted::CLIENT);
        reactor.count_reconnect_wait(Some(self.address()), true, delay_ms);
    }

    /// Its opening handshake was refused (server) or failed (client) for
    /// `reason`, noted once: a server's through the reactor's one place for
    /// refusals (`Reactor::note_refusal`: counted, and logged with `detail`
    /// and the client's address); a client's TLS failure or timeout is only
    /// logged (its failure counts when it ends).
    pub(super) fn note_refusal(&self, reason: Refusal, detail: impl FnOnce() -> String) {
        if self.is_counted(Counted::REFUSED) {
            return;
        }
        self.set_counted(Counted::REFUSED, true);
        let Some(reactor) = self.reactor() else { return };
        let conn = Some(self.address());
        if self.is_server() {
            reactor.note_refusal(reason, conn, || self.peer_addr(), detail);
        } else if matches!(reason, Refusal::Tls | Refusal::Timeout) {
            reactor.log(reason.log_event(), conn, || self.peer_addr(), detail);
        }
    }

    /// A compressed message inflated beyond the allowed ratio: counted and
    /// logged (the part that checks the ratio closes the connection).
    pub fn count_inflate_ratio_close(&self, detail: &str) {
        if let Some(c) = self.counters() {
            c.inflate_ratio_closes.add(1);
        }
        self.log(LogEvent::InflateRatioClosed, || format!("inflate ratio: {detail}"));
    }

    /// Its address, as the log gives it.
    fn address(&self) -> NonNull<()> {
        NonNull::from(self).cast::<()>()
    }

    /// Tells the reactor's log `event` about this connection; `message` is
    /// made only if the line is told.
    pub(super) fn log(&self, event: LogEvent, message: impl FnOnce() -> String) {
        if let Some(reactor) = self.reactor() {
            reactor.log(event, Some(self.address()), || self.peer_addr(), message);
        }
    }
}

//! A server connection on the io_uring transport (see `runtime::uring`):
//! its bytes arrive in the ring's buffers and are fed from there; its output
//! moves into the ring's send and the session goes on with a spare buffer.
//!
//! Reading stops as it does on epoll (a pause, the memory budget, output
//! full, an upgrade being decided), but a multishot receive may already hold
//! bytes then: they are kept in the backlog (charged to the budget) and the
//! receive is cancelled; reading again feeds the backlog first, then arms a
//! new receive. `Flags::READABLE` means here "the receive is to be armed",
//! `Flags::PEER_CLOSED` "the peer's EOF came" (handled once the backlog is
//! fed).
//!
//! Over TLS, the records received go to rustls from the ring's buffer (what
//! it cannot take yet waits in `Extra::ring_records`, charged, before newer
//! records), and the records to send are collected into the ring's send,
//! charged while it owns them; session output moves into TLS only once the
//! send before it completed, so what waits stays in the session's output.

// Without the feature no ring exists: its events never come.
#![cfg_attr(not(feature = "io-uring"), allow(dead_code))]

use crate::proto::close_code::CloseCode;
use crate::runtime::connection::{Connection, Flags, Lifecycle};
use crate::runtime::error::Error;
use crate::runtime::handler::ConnHandler;
use crate::runtime::reactor::Reactor;
use crate::runtime::stats::Bump;
use crate::runtime::tls::{self, Stream};
use crate::runtime::uring::{Driver, Outgoing, RingEvent};

/// TLS records collected into one send at most (the rest waits for it).
const RECORDS_PER_SEND: usize = 256 << 10;

impl<H: ConnHandler> Connection<H> {
    /// The ring and this connection's token, while its socket runs on one
    /// (the ring knows: `Connection` has no room for a flag).
    fn ring(&self) -> Option<(&Driver, u32)> {
        let (reactor, token) = self.registered()?;
        let ring = reactor.ring()?;
        let token = token.0 as u32;
        ring.is_open(token).then_some((ring, token))
    }

    /// Its socket runs on the reactor's ring, not on epoll.
    pub(super) fn runs_on_ring(&self) -> bool {
        self.ring().is_some()
    }

    /// Runs the socket on the reactor's ring, when it has one. Returns
    /// whether it does.
    pub(super) fn open_on_ring(&self, reactor: &Reactor, token: mio::Token) -> bool {
        let Some(ring) = reactor.ring() else { return false };
        ring.open(token.0 as u32, self.fd.get());
        true
    }

    /// The socket leaves the ring (its receive cancelled, a send in flight
    /// left to complete), before its fd closes. Returns whether it was on it.
    pub(super) fn leave_ring(&self, reactor: &Reactor, token: mio::Token) -> bool {
        match reactor.ring() {
            Some(ring) if ring.is_open(token.0 as u32) => {
                let records = ring.close(token.0 as u32, !reactor.is_dispatching());
                self.charge(-(records as isize));
                true
            }
            _ => false,
        }
    }

    /// Output is on its way: bytes the ring has not written yet.
    pub(super) fn ring_sending(&self) -> bool {
        self.ring().is_some_and(|(ring, token)| ring.is_sending(token))
    }

    // ------------------------------------------------------------ input

    /// Reading may go on: the peer's EOF if it came, else the receive is
    /// armed again (the backlog was fed).
    pub(super) fn ring_read(&self, reactor: &Reactor) {
        if self.is_tls() && !self.take_waiting_records(reactor) {
            return;
        }
        if self.has(Flags::PEER_CLOSED) {
            self.clear(Flags::READABLE);
            return self.on_eof();
        }
        if !self.has(Flags::READABLE) || !self.budget_allows_read(reactor) {
            return;
        }
        if let Some((ring, token)) = self.ring() {
            // Over budget, one buffer at a time: a multishot receive could
            // take many before this connection is stopped. Not for the one
            // reading its message to its end (the budget's holder: the only
            // one in a message that may read now).
            let once = reactor.budget().exceeded() && !self.has(Flags::IN_MESSAGE);
            if ring.arm(token, once) {
                self.clear(Flags::READABLE);
            }
        }
    }

    pub(super) fn ring_event(&self, event: RingEvent<'_>) {
        match event {
            RingEvent::Received(data) => self.ring_received(data),
            RingEvent::ReceiveEnded(result) => self.ring_receive_ended(result),
            RingEvent::Sent(Ok(output)) => self.ring_sent(*output),
            RingEvent::Sent(Err(_)) => self.finish(CloseCode::ABNORMAL.0, "write failed", Some(Error::Io("write"))),
            RingEvent::Accepted(_) => {}
        }
    }

    fn ring_received(&self, data: &mut [u8]) {
        if self.lifecycle.get() != Lifecycle::Running || self.has(Flags::RELEASED) {
            return;
        }
        let Some(reactor) = self.reactor() else { return };
        reactor.counters().wire_bytes_in.add(data.len() as u64);
        self.last_input_ms.set(self.now32());
        if self.is_tls() {
            return self.ring_received_records(reactor, data);
        }
        let behind = self.with_extra(|e| !e.backlog.is_empty()).unwrap_or(false);
        if behind || !self.can_read() || !self.budget_allows_read(reactor) {
            return self.keep_input(data);
        }
        let room = self.input_room(data.len());
        self.feed(&mut data[..room]);
        self.after_input();
        if self.lifecycle.get() != Lifecycle::Running || self.has(Flags::RELEASED) {
            return;
        }
        if room < data.len() {
            self.keep_input(&data[room..]);
        } else if self.has(Flags::PAUSED) {
            self.stop_receiving();
        }
        // The replies leave with the turn's output.
        self.schedule_flush();
    }

    /// TLS records received: to rustls, after those waiting; what it cannot
    /// take now waits.
    fn ring_received_records(&self, reactor: &Reactor, data: &[u8]) {
        let waiting = self.with_extra(|e| !e.ring_records.is_empty()).unwrap_or(false);
        let used = if waiting { 0 } else { self.take_records(reactor, data) };
        if self.lifecycle.get() != Lifecycle::Running || self.has(Flags::RELEASED) {
            return;
        }
        if used < data.len() {
            self.extra().ring_records.extend_from_slice(&data[used..]);
            self.charge((data.len() - used) as isize);
            if waiting {
                // Behind the records waiting, which may go now.
                self.take_waiting_records(reactor);
            }
        }
        if self.with_extra(|e| !e.ring_records.is_empty()).unwrap_or(false) {
            self.stop_receiving();
        }
    }

    /// Gives rustls the records waiting; returns whether none is left.
    fn take_waiting_records(&self, reactor: &Reactor) -> bool {
        let records = self
            .extra
            .borrow_mut()
            .as_mut()
            .map(|e| std::mem::take(&mut e.ring_records))
            .unwrap_or_default();
        if records.is_empty() {
            self.feed_plaintext(reactor);
            return true;
        }
        let used = self.take_records(reactor, &records);
        self.charge(-(used as isize));
        if self.lifecycle.get() != Lifecycle::Running || self.has(Flags::RELEASED) {
            return false;
        }
        let left = records.len() - used;
        if left > 0 {
            // Nothing came since: the rest goes back as it was.
            let mut records = records;
            records.drain(..used);
            self.extra().ring_records = records;
        }
        left == 0
    }

    /// Gives `records` to rustls while the connection reads, feeding the
    /// plaintext as it comes; returns how many bytes rustls took.
    fn take_records(&self, reactor: &Reactor, records: &[u8]) -> usize {
        let mut used = 0;
        self.feed_plaintext(reactor);
        while used < records.len()
            && self.lifecycle.get() == Lifecycle::Running
            && self.can_read()
            && self.budget_allows_read(reactor)
        {
            let n = match self.with_tls(|t| t.read_records_from(&records[used..])) {
                Some(Ok(n)) => n,
                Some(Err(e)) => {
                    match tls::read_refusal(&e) {
                        Some(kind) => self.fail_tls(kind),
                        None => self.finish(CloseCode::ABNORMAL.0, "read failed", Some(Error::Io("read"))),
                    }
                    return used;
                }
                None => return used,
            };
            if n == 0 {
                break;
            }
            used += n;
            if let Some(Err(kind)) = self.with_tls(Stream::process) {
                self.fail_tls(kind);
                return used;
            }
            self.feed_plaintext(reactor);
            // Handshake answers, alerts, and the session's replies.
            self.schedule_flush();
        }
        used
    }

    /// Input that cannot be taken now: kept until reading resumes.
    fn keep_input(&self, data: &[u8]) {
        if !data.is_empty() {
            self.keep_in_backlog(data);
        }
        self.stop_receiving();
    }

    /// Cancels the receive: armed again when reading resumes.
    fn stop_receiving(&self) {
        if let Some((ring, token)) = self.ring() {
            ring.disarm(token);
        }
        self.set(Flags::READABLE);
    }

    fn ring_receive_ended(&self, result: i32) {
        if self.lifecycle.get() != Lifecycle::Running || self.has(Flags::RELEASED) {
            return;
        }
        match -result {
            0 => self.set(Flags::PEER_CLOSED | Flags::READABLE),
            // Cancelled, out of buffers, or nothing to read after all:
            // armed again when it may read.
            libc::ECANCELED | libc::ENOBUFS | libc::EAGAIN | libc::EINTR => self.set(Flags::READABLE),
            _ => return self.finish(CloseCode::ABNORMAL.0, "read failed", Some(Error::Io("read"))),
        }
        if self.can_read() {
            self.schedule_ready();
        }
    }

    // ------------------------------------------------------------ output

    /// Hands the output to the ring, unless a send is on its way (what came
    /// since waits for it, so order holds).
    pub(super) fn flush_ring(&self) {
        let Some((ring, token)) = self.ring() else { return };
        if ring.is_sending(token) {
            return;
        }
        let output = if self.is_tls() {
            self.take_records_to_send()
        } else if self.has_published() {
            self.take_output_with_frames()
        } else {
            self.take_session_output()
        };
        if let Some(output) = output {
            ring.send(token, Box::new(output));
        }
    }

    /// TLS: the output encrypted into records (up to `RECORDS_PER_SEND`),
    /// charged to the budget while the send owns them.
    fn take_records_to_send(&self) -> Option<Outgoing> {
        let mut records = Vec::new();
        while records.len() < RECORDS_PER_SEND {
            if !self.with_tls(|t| t.wants_write()).unwrap_or(false) && !self.encrypt_output() {
                break;
            }
            match self.with_tls(|t| t.write_records_into(&mut records)) {
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        let len = records.len();
        if len == 0 {
            return None;
        }
        self.charge(len as isize);
        let mut output = Outgoing::new(records);
        output.add_buffer(0, len);
        output.records = len;
        Some(output)
    }

    /// The session's pending output, moved out whole.
    fn take_session_output(&self) -> Option<Outgoing> {
        let (buffer, start) = self.session()?.take_output().ok().flatten()?;
        let end = buffer.len();
        let mut output = Outgoing::new(buffer);
        output.add_buffer(start, end);
        output.session_bytes = end - start;
        Some(output)
    }

    /// A send completed whole: its bytes stop counting, its buffer is reused,
    /// and what waited behind it goes with the turn's output.
    fn ring_sent(&self, mut output: Outgoing) {
        if let Some(c) = self.counters() {
            c.wire_bytes_out.add(output.len() as u64);
        }
        if let Some(session) = self.session() {
            let _ = session.written_out(output.session_bytes);
        }
        self.published_written(&mut output);
        self.charge(-(output.records as isize));
        if let Some(reactor) = self.reactor() {
            reactor.keep_output_buffer(output.into_buffer());
        }
        self.schedule_flush();
    }
}

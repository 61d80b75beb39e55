//! Reading: from the socket (or the backlog a pause left) into the session,
//! a bounded number of reads per turn, then the replies are written.

use std::io::ErrorKind;

use crate::proto::close_code::CloseCode;
use crate::runtime::connection::delivery::Delivery;
use crate::runtime::connection::{Connection, Flags, Lifecycle};
use crate::runtime::error::Error;
use crate::runtime::handler::ConnHandler;
use crate::runtime::reactor::{Reactor, READ_BUFFER_SIZE};
use crate::runtime::stats::Bump;
use crate::runtime::transport::Transport;

/// Reads per readiness event before other connections get their turn.
const READS_PER_TURN: usize = 16;

impl<H: ConnHandler> Connection<H> {
    pub(super) fn on_poll_event(&self, readable: bool, writable: bool, peer_closed: bool) {
        if peer_closed {
            self.set(Flags::PEER_CLOSED);
        }
        if self.lifecycle.get() == Lifecycle::Connecting {
            self.check_connected();
        }
        if self.lifecycle.get() == Lifecycle::Tunneling {
            return self.tunnel_event(readable, writable);
        }
        if self.lifecycle.get() != Lifecycle::Running {
            return;
        }
        if writable {
            self.flush();
        }
        if readable {
            self.set(Flags::READABLE);
            self.read_input();
        }
    }

    /// Input is waiting: in the socket, or held back by a pause.
    pub(super) fn has_input(&self) -> bool {
        self.has(Flags::READABLE) || self.with_extra(|e| !e.backlog.is_empty()).unwrap_or(false)
    }

    pub(super) fn can_read(&self) -> bool {
        !self.has(Flags::PAUSED | Flags::RELEASED)
            && self.lifecycle.get() == Lifecycle::Running
            && self.session().is_some_and(|s| s.wants_read())
    }

    /// Reads and processes input until the socket is drained, reading must stop,
    /// or this connection had its share of the turn; then writes the replies.
    pub(super) fn read_input(&self) {
        let Some(reactor) = self.reactor() else { return };
        if !self.can_read() {
            return;
        }
        if self.feed_backlog() {
            self.read_socket(reactor);
        }
        self.flush();
    }

    /// Processes input a pause left unprocessed. Returns false while some is
    /// still held back (paused again): newer input must wait behind it.
    fn feed_backlog(&self) -> bool {
        let backlog = match self.extra.borrow_mut().as_mut() {
            Some(extra) if !extra.backlog.is_empty() => std::mem::take(&mut extra.backlog),
            _ => return true,
        };
        let mut backlog = backlog;
        self.charge(-(backlog.len() as isize));
        self.feed(&mut backlog);
        self.after_input();
        self.with_extra(|e| e.backlog.is_empty()).unwrap_or(true)
    }

    fn read_socket(&self, reactor: &Reactor) {
        if self.runs_on_ring() {
            return self.ring_read(reactor);
        }
        if self.is_tls() {
            return self.read_tls_socket(reactor, READS_PER_TURN);
        }
        let mut reads = 0;
        while self.has(Flags::READABLE) && self.can_read() && self.budget_allows_read(reactor) {
            if reads == READS_PER_TURN {
                self.schedule_ready();
                break;
            }
            reads += 1;
            // The rest of a large frame goes straight into the message being
            // reassembled; anything else into the reactor's shared buffer.
            let mut buffer = None;
            let (read, room) = match self.read_direct() {
                Some(direct) => direct,
                None => {
                    let mut b = reactor.take_read_buffer();
                    let room = self.input_room(b.len());
                    let read = self.socket().read(&mut b[..room]);
                    buffer = Some(b);
                    (read, room)
                }
            };
            match read {
                Ok(0) => {
                    if let Some(b) = buffer {
                        reactor.return_read_buffer(b);
                    }
                    self.clear(Flags::READABLE);
                    self.on_eof();
                    return;
                }
                Ok(n) => {
                    reactor.counters().wire_bytes_in.add(n as u64);
                    if n < room && !self.has(Flags::PEER_CLOSED) {
                        // A short read drained the socket; new data raises a new
                        // event (but an EOF already signalled raises none).
                        self.clear(Flags::READABLE);
                    }
                    if let Some(mut b) = buffer {
                        self.last_input_ms.set(self.now32());
                        self.feed(&mut b[..n]);
                        reactor.return_read_buffer(b);
                    }
                    if self.has(Flags::READABLE) {
                        self.after_input();
                    } else {
                        // The socket is drained: the flush that follows
                        // (`read_input`) does the accounting for both.
                        self.end_if_session_ended();
                    }
                }
                Err(e) => {
                    if let Some(b) = buffer {
                        reactor.return_read_buffer(b);
                    }
                    match e.kind() {
                        ErrorKind::WouldBlock => self.clear(Flags::READABLE),
                        ErrorKind::Interrupted => {}
                        _ => {
                            self.clear(Flags::READABLE);
                            self.finish(CloseCode::ABNORMAL.0, "read failed", Some(Error::Io("read")));
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Reads straight into the message being reassembled when at least a read
    /// buffer's worth of a data frame's payload is still to come (see
    /// `Session::read_direct`); what was read is processed at once. Returns the
    /// read's outcome and the room offered, or `None` to read the usual way.
    fn read_direct(&self) -> Option<(std::io::Result<usize>, usize)> {
        let socket = self.socket();
        let mut room = 0;
        let read = {
            let session = self.session()?;
            // SAFETY: read_uninit returns Ok(n) only after read(2) wrote the first
            // n bytes of the room.
            unsafe {
                session.read_direct(
                    READ_BUFFER_SIZE,
                    |buf| {
                        room = buf.len();
                        let read = socket.read_uninit(buf);
                        if let Ok(1..) = read {
                            self.last_input_ms.set(self.now32());
                        }
                        read
                    },
                    &mut Delivery::new(self),
                )
            }
        };
        self.drop_session_if_asked();
        read.map(|read| (read, room))
    }

    /// How much of a read buffer of `len` bytes input may fill now (less
    /// while an upgrade is being decided: its early bytes are bounded).
    pub(super) fn input_room(&self, len: usize) -> usize {
        self.session()
            .and_then(|s| s.input_room())
            .map_or(len, |room| room.min(len))
    }

    /// Gives input to the session; keeps what a pause left unprocessed, and
    /// what follows the message whose handler panicked (the panic goes on
    /// out of `dispatch`; the rest is fed at the next turn, so that a
    /// program that catches it loses no message of this connection).
    pub(super) fn feed(&self, data: &mut [u8]) {
        let Some(session) = self.session() else { return };
        if let (false, Some(reactor)) = (data.is_empty(), self.reactor()) {
            // Replies go into the reactor's spare buffer (taken back once
            // written, `account`).
            reactor.lend_output_buffer(&session);
        }
        let mut delivery = Delivery::of_input(self, data);
        let fed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session.feed(data, &mut delivery)));
        let delivered_to = delivery.delivered_to();
        drop(delivery);
        drop(session);
        let used = match fed {
            Ok(used) => used,
            Err(panic) => {
                if delivered_to > 0 && delivered_to < data.len() && !self.has(Flags::RELEASED) {
                    self.keep_in_backlog(&data[delivered_to..]);
                    self.set(Flags::READABLE);
                    self.schedule_ready();
                }
                std::panic::resume_unwind(panic)
            }
        };
        self.drop_session_if_asked();
        if let Ok(used) = used {
            if used < data.len() && self.has(Flags::PAUSED) && !self.has(Flags::RELEASED) {
                self.keep_in_backlog(&data[used..]);
            }
        }
    }

    /// Keeps input that cannot be processed now, charged to the budget, for
    /// `feed_backlog`.
    pub(super) fn keep_in_backlog(&self, data: &[u8]) {
        self.extra().backlog.extend_from_slice(data);
        self.charge(data.len() as isize);
    }

    pub(super) fn on_eof(&self) {
        if let Some(session) = self.session() {
            let _ = session.feed_eof(&mut Delivery::new(self));
        }
        self.drop_session_if_asked();
        self.flush();
        // The flush may have ended it already (and `on_close` started it again).
        if self.lifecycle.get() == Lifecycle::Running {
            self.finish_with_recorded_code();
        }
    }

    /// After input: its accounting, and the end of the session, if it came.
    pub(super) fn after_input(&self) {
        self.account();
        self.end_if_session_ended();
    }

    /// Starts closing if the session is ending.
    fn end_if_session_ended(&self) {
        if self.lifecycle.get() != Lifecycle::Running || self.has(Flags::RELEASED) {
            return;
        }
        if self.state().is_some_and(|s| s.is_ending()) {
            self.begin_closing();
        }
    }

    pub(super) fn begin_closing(&self) {
        if !self.has(Flags::CLOSING) {
            self.drop_waiting_frames();
            self.set(Flags::CLOSING);
            self.mark_ms.set(self.now32());
            self.arm_timer();
        }
    }
}

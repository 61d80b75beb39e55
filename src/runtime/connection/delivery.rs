//! Session events to the connection's handler, and what the connection keeps
//! of them (the close code and reason it will report). What a feed delivered
//! is tallied here and added to the reactor's counters once, when the feed
//! is over.

use crate::proto::close_code::CloseCode;
use crate::proto::error::Error as SessionError;
use crate::proto::event::{Event, Message};
use crate::proto::session::{EventHandler, Session};
use crate::runtime::connection::{Connection, Flags, Lifecycle};
use crate::runtime::error::Error;
use crate::runtime::handler::ConnHandler;
use crate::runtime::log::LogEvent;
use crate::runtime::refusal::Refusal;
use crate::runtime::stats::Bump;

/// The event handler a connection gives its session during a feed.
pub(super) struct Delivery<'a, H: ConnHandler> {
    conn: &'a Connection<H>,
    /// Data messages delivered whole (or ended by their last fragment).
    messages: u64,
    /// Their bytes.
    bytes: u64,
    compressed: u64,
    /// The input being fed (address, length), and where in it the last
    /// message delivered in place ends: what follows it is kept if a
    /// handler's panic unwinds through the feed (`Connection::feed`).
    input: (usize, usize),
    delivered_to: usize,
}

impl<'a, H: ConnHandler> Delivery<'a, H> {
    pub fn new(conn: &'a Connection<H>) -> Self {
        Self::of_input(conn, &[])
    }

    /// A delivery of messages read from `input`.
    pub fn of_input(conn: &'a Connection<H>, input: &[u8]) -> Self {
        Delivery {
            conn,
            messages: 0,
            bytes: 0,
            compressed: 0,
            input: (input.as_ptr() as usize, input.len()),
            delivered_to: 0,
        }
    }

    /// Where in the input the last message delivered in place ends (0:
    /// none was).
    pub fn delivered_to(&self) -> usize {
        self.delivered_to
    }
}

impl<H: ConnHandler> Drop for Delivery<'_, H> {
    /// The feed is over: its tally goes to the reactor's counters.
    fn drop(&mut self) {
        if self.messages | self.bytes == 0 {
            return;
        }
        if let Some(c) = self.conn.counters() {
            c.messages_in.add(self.messages);
            c.payload_bytes_in.add(self.bytes);
            if self.compressed > 0 {
                c.compressed_messages_in.add(self.compressed);
            }
        }
    }
}

impl<H: ConnHandler> EventHandler for Delivery<'_, H> {
    // Inlined into the feed: the usual message takes a few instructions,
    // everything else goes to `deliver`, kept apart.
    #[inline(always)]
    fn on_event(&mut self, session: &Session, event: Event<'_>) {
        match &event {
            Event::Message(message) => {
                self.messages += 1;
                let bytes = message.as_bytes();
                self.bytes += bytes.len() as u64;
                // Addresses compared as numbers: only where the message ends.
                let end = (bytes.as_ptr() as usize + bytes.len()).wrapping_sub(self.input.0);
                if end <= self.input.1 {
                    self.delivered_to = end;
                }
            }
            Event::Fragment { data, fin, .. } => {
                self.messages += u64::from(*fin);
                self.bytes += data.len() as u64;
            }
            _ => {}
        }
        match event {
            // The usual event, on a short path.
            Event::Message(message) if !self.conn.has(Flags::RELEASED) => self.conn.deliver_message(session, message),
            event => self.conn.deliver(session, event),
        }
    }

    fn compressed_message(&mut self) {
        self.compressed += 1;
    }

    /// The program paused reading, stopped or released the connection.
    fn stopped(&self) -> bool {
        self.conn.has(Flags::PAUSED | Flags::RELEASED) || self.conn.lifecycle.get() != Lifecycle::Running
    }
}

impl<H: ConnHandler> Connection<H> {
    #[inline(always)]
    fn deliver_message(&self, session: &Session, message: Message<'_>) {
        self.message_ended();
        self.message_passed_on(session);
        self.handler.on_message(self, message)
    }

    #[inline(never)]
    fn deliver(&self, session: &Session, event: Event<'_>) {
        if self.has(Flags::RELEASED) {
            // Released in a callback of this feed (e.g. the upgrade callback,
            // whose accept would open it): the program is done with it.
            return;
        }
        let handler = &self.handler;
        match event {
            Event::Open {
                path,
                subprotocol,
                headers,
            } => {
                self.count_open();
                self.arm_timer();
                if self.is_client() {
                    self.answered(101, &headers);
                }
                handler.on_open(self, path, subprotocol);
            }
            Event::Upgrade(request) => self.ask_handler(request),
            Event::Refused { status, headers } => self.answered(status, &headers),
            Event::Message(message) => self.deliver_message(session, message),
            Event::Fragment { kind, data, fin } => {
                if fin {
                    self.message_ended();
                }
                self.message_passed_on(session);
                handler.on_fragment(self, kind, data, fin)
            }
            Event::Ping(data) => {
                if let Some(c) = self.counters() {
                    c.pings_in.add(1);
                    // Its pong is queued already.
                    c.pongs_out.add(1);
                }
                handler.on_ping(self, data)
            }
            Event::Pong(data) => {
                if let Some(c) = self.counters() {
                    c.pongs_in.add(1);
                }
                handler.on_pong(self, data)
            }
            Event::Close { code, reason } => {
                self.close_code.set(code);
                self.extra().close_reason = reason.to_owned();
            }
            Event::Error(error) => {
                self.log_error(error);
                let mut extra = self.extra();
                if self.close_code.get() == 0 {
                    let code = error.close_code().unwrap_or(CloseCode::ABNORMAL);
                    self.close_code.set(code.0);
                    extra.close_reason = error.to_string();
                }
                extra.close_error.get_or_insert(Error::Session(error));
            }
            Event::HttpRequest { method, path } => {
                if let Some(c) = self.counters() {
                    c.http_requests.add(1);
                }
                self.close_code.set(CloseCode::NORMAL.0);
                handler.on_http(self, method, path);
            }
        }
    }

    /// A refused handshake is noted (counted and logged); a peer that broke
    /// the protocol goes to the log.
    fn log_error(&self, error: SessionError) {
        match error {
            SessionError::Handshake(_) | SessionError::HandshakeTooLarge | SessionError::OriginNotAllowed => self
                .note_refusal(Refusal::of_handshake_error(&error), || {
                    format!("handshake refused: {error}")
                }),
            SessionError::InflateRatio => self.count_inflate_ratio_close(&error.to_string()),
            _ if error.close_code().is_some() => self.log(LogEvent::ProtocolError, || {
                format!("closing with {}: {error}", error.close_code().map_or(0, |c| c.0))
            }),
            _ => {}
        }
    }
}

//! Session events to the connection's handler, and what the connection keeps
//! of them (the close code and reason it will report).

use crate::proto::close_code::CloseCode;
use crate::proto::error::Error as SessionError;
use crate::proto::event::Event;
use crate::proto::session::{EventHandler, Session};
use crate::runtime::connection::{Connection, Flags, Lifecycle};
use crate::runtime::error::Error;
use crate::runtime::handler::ConnHandler;
use crate::runtime::refusal::Refusal;

/// The event handler a connection gives its session during a feed.
pub(super) struct Delivery<'a, H: ConnHandler> {
    pub conn: &'a Connection<H>,
}

impl<H: ConnHandler> EventHandler for Delivery<'_, H> {
    fn on_event(&mut self, _session: &Session, event: Event<'_>) {
        self.conn.deliver(event);
    }

    /// The program paused reading, stopped or released the connection.
    fn stopped(&self) -> bool {
        self.conn.has(Flags::PAUSED | Flags::RELEASED) || self.conn.lifecycle.get() != Lifecycle::Running
    }
}

impl<H: ConnHandler> Connection<H> {
    fn deliver(&self, event: Event<'_>) {
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
                self.arm_timer();
                if self.is_client() {
                    self.answered(101, &headers);
                }
                handler.on_open(self, path, subprotocol);
            }
            Event::Upgrade(request) => self.ask_handler(request),
            Event::Refused { status, headers } => self.answered(status, &headers),
            Event::Message(message) => {
                self.message_ended();
                self.message_passed();
                handler.on_message(self, message)
            }
            Event::Fragment { kind, data, fin } => {
                if fin {
                    self.message_ended();
                }
                self.message_passed();
                handler.on_fragment(self, kind, data, fin)
            }
            Event::Ping(data) => handler.on_ping(self, data),
            Event::Pong(data) => handler.on_pong(self, data),
            Event::Close { code, reason } => {
                self.close_code.set(code);
                self.extra().close_reason = reason.to_owned();
            }
            Event::Error(error) => {
                if matches!(
                    error,
                    SessionError::Handshake(_) | SessionError::HandshakeTooLarge | SessionError::OriginNotAllowed
                ) {
                    self.note_refusal(Refusal::of_handshake_error(&error));
                }
                if error == SessionError::InflateRatio {
                    if let Some(reactor) = self.reactor() {
                        reactor.count_inflate_ratio_close();
                    }
                }
                let mut extra = self.extra();
                if self.close_code.get() == 0 {
                    let code = error.close_code().unwrap_or(CloseCode::ABNORMAL);
                    self.close_code.set(code.0);
                    extra.close_reason = error.to_string();
                }
                extra.close_error.get_or_insert(Error::Session(error));
            }
            Event::HttpRequest { method, path } => {
                self.close_code.set(CloseCode::NORMAL.0);
                handler.on_http(self, method, path);
            }
        }
    }
}

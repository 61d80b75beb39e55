//! How a connection ends when its reactor drains (`runtime/drain.rs`): the
//! one place that decides it for each stage of a connection's life.

use crate::proto::close_code::CloseCode;
use crate::proto::state::State;
use crate::runtime::connection::{Connection, Counted, Flags, Lifecycle};
use crate::runtime::error::Error;
use crate::runtime::handler::ConnHandler;
use crate::runtime::log::LogEvent;

/// The reason of the 1001 a drain closes with.
const GOING_AWAY_REASON: &str = "server going away";

impl<H: ConnHandler> Connection<H> {
    /// The reactor begins to drain.
    pub(super) fn begin_draining(&self) {
        match self.lifecycle.get() {
            // Client connections not yet open: nothing to close, they end now.
            Lifecycle::Resolving | Lifecycle::Connecting | Lifecycle::Tunneling => {
                self.end_drained("not open when the drain began")
            }
            // A client waiting to reconnect: its last close callbacks run
            // now, and no attempt follows.
            // (One the program closed meanwhile ends with its close at once.)
            Lifecycle::Waiting if self.with_client(|c| c.owed_close.is_none()).unwrap_or(true) => {
                self.stop_reconnecting();
                // What ended the last attempt is not what ends this.
                self.extra().close_error = None;
                self.end_drained("waiting to reconnect when the drain began");
            }
            Lifecycle::Running => match self.state() {
                // A server connection not upgraded yet, whatever it waits for
                // (the rest of its request, or the program's decision on
                // it): refused with 503. A client one ends.
                Some(State::Handshake | State::Deciding) if self.is_counted(Counted::CLIENT) => {
                    self.end_drained("not open when the drain began")
                }
                Some(State::Handshake | State::Deciding) => {
                    let _ = self.refuse_handshake(503, Error::Drained);
                }
                Some(State::Open) if !self.has(Flags::CLOSING) => {
                    if self.session().is_some_and(|s| s.sending_fragments()) {
                        // Closed when its last fragment is sent (`fragment_sent`).
                        self.set_counted(Counted::GOING_AWAY, true);
                    } else {
                        let _ = self.close(CloseCode::GOING_AWAY.0, GOING_AWAY_REASON);
                    }
                }
                // Answering plain HTTP, or closing already: it ends by itself.
                _ => {}
            },
            // Not running: nothing to end.
            Lifecycle::Idle | Lifecycle::Closed | Lifecycle::Waiting => {}
        }
    }

    /// The program sent the last fragment of a message: a drain that waited
    /// for it closes now.
    pub(super) fn go_away_if_asked(&self) {
        if self.is_counted(Counted::GOING_AWAY) {
            self.set_counted(Counted::GOING_AWAY, false);
            let _ = self.close(CloseCode::GOING_AWAY.0, GOING_AWAY_REASON);
        }
    }

    fn end_drained(&self, why: &str) {
        self.finish(CloseCode::ABNORMAL.0, why, Some(Error::Drained));
    }

    /// The drain's deadline passed: ends the connection now. Returns whether
    /// there was one to end.
    pub(super) fn cut_drained(&self) -> bool {
        if !matches!(
            self.lifecycle.get(),
            Lifecycle::Resolving
                | Lifecycle::Connecting
                | Lifecycle::Tunneling
                | Lifecycle::Running
                | Lifecycle::Waiting
        ) || self.has(Flags::RELEASED)
        {
            return false;
        }
        self.log(LogEvent::DrainCut, || "cut at the drain's deadline".to_owned());
        if self.lifecycle.get() == Lifecycle::Waiting {
            // What ended its last attempt is not what ends it.
            self.extra().close_error = None;
        }
        let code = match self.close_code.get() {
            0 => CloseCode::ABNORMAL.0,
            code => code,
        };
        self.finish(code, "drain deadline", Some(Error::Drained));
        true
    }
}

//! The connection's timers: handshake, idle, keepalive ping and pong, message,
//! the trim of idle compression streams, and the closing handshake. One
//! deadline is armed in the reactor's wheel at a time: the next moment any of
//! them must be checked.

use crate::proto::close_code::CloseCode;
use crate::proto::state::State;
use crate::runtime::connection::{Connection, Flags, Lifecycle};
use crate::runtime::error::Error;
use crate::runtime::handler::ConnHandler;
use crate::runtime::log::LogEvent;
use crate::runtime::refusal::Refusal;

impl<H: ConnHandler> Connection<H> {
    /// Milliseconds since `then` (a truncated reactor time).
    fn since(&self, then: u32) -> u64 {
        self.now32().wrapping_sub(then) as u64
    }

    /// Whether the opening handshake (or the connect before it) is under way.
    fn handshaking(&self) -> bool {
        match self.lifecycle.get() {
            Lifecycle::Resolving | Lifecycle::Connecting | Lifecycle::Tunneling => true,
            Lifecycle::Running => matches!(self.state(), Some(State::Handshake | State::Deciding)),
            Lifecycle::Idle | Lifecycle::Closed | Lifecycle::Waiting => false,
        }
    }

    /// Milliseconds until the next moment a timer has something to check.
    fn next_wait(&self) -> Option<u64> {
        match self.lifecycle.get() {
            Lifecycle::Idle | Lifecycle::Closed => return None,
            Lifecycle::Waiting => return self.waiting_wait(),
            _ => {}
        }
        let t = self.config().timeouts;
        let closing = self.has(Flags::CLOSING);
        let left = |since: u32, timeout: u32| (timeout as u64).saturating_sub(self.since(since));
        let mut wait: Option<u64> = None;
        let mut consider = |ms: u64| wait = Some(wait.map_or(ms, |w| w.min(ms)));
        if self.handshaking() {
            consider(left(self.started_ms.get(), t.handshake_ms()));
        } else if !closing {
            // Held back by the budget, input waits unread: no clock that
            // measures the peer's silence runs.
            let held = self.has(Flags::HELD_BACK);
            if t.idle_ms() > 0 && !held {
                consider(left(self.last_input_ms.get(), t.idle_ms()));
            }
            if t.message_ms() > 0 && self.message_clock_runs() {
                consider(left(self.started_ms.get(), t.message_ms()));
            }
            if t.deflate_idle_ms() > 0 && self.can_trim_compression() {
                consider(left(self.mark_ms.get(), t.deflate_idle_ms()));
            }
            if t.ping_interval_ms() > 0 && !held {
                match self.ping_sent_ms.get() {
                    0 => consider(left(self.last_input_ms.get(), t.ping_interval_ms())),
                    sent => consider(left(sent, t.pong_ms())),
                }
            }
        }
        if closing {
            consider(left(self.mark_ms.get(), t.close_ms()));
        }
        wait
    }

    /// A message is arriving and the library is reading it: its clock runs
    /// (stopped while the memory budget holds the connection back, as are
    /// the idle and pong clocks).
    fn message_clock_runs(&self) -> bool {
        self.has(Flags::IN_MESSAGE) && !self.has(Flags::HELD_BACK)
    }

    /// Whether the session holds compression streams a trim would drop.
    fn can_trim_compression(&self) -> bool {
        self.session().is_some_and(|s| s.can_trim_compression())
    }

    /// Trims the idle session's compression streams and gives the memory
    /// back to the budget.
    fn trim_compression(&self) {
        if let Some(session) = self.session() {
            let _ = session.trim_compression();
        }
        self.account();
    }

    /// A message went in or out. With context takeover, the compression
    /// streams are trimmed once the connection has been quiet for the
    /// configured while: that while starts again now, and the timer is brought
    /// forward if it would fire later than its end.
    pub(super) fn message_passed(&self) {
        // Once closing, `mark_ms` times the close: messages the peer still
        // sends must not put its end off.
        if self.has(Flags::CLOSING) {
            return;
        }
        let takeover = self
            .session()
            .and_then(|s| s.deflate())
            .is_some_and(|a| !(a.server_no_context_takeover && a.client_no_context_takeover));
        let Some(reactor) = self.reactor().filter(|_| takeover) else {
            return;
        };
        self.mark_ms.set(self.now32());
        let idle = self.config().timeouts.deflate_idle_ms();
        let due = reactor.now_ms() + idle as u64;
        if idle > 0 && self.timer.deadline().map_or(true, |armed| armed > due) {
            self.arm_timer();
        }
    }

    /// Puts this connection in the reactor's timer wheel for its next deadline
    /// (or takes it out when it has none).
    pub(super) fn arm_timer(&self) {
        let Some((reactor, token)) = self.registered() else {
            return;
        };
        match self.next_wait() {
            Some(wait) => reactor.arm_timer(token, reactor.now_ms() + wait),
            None => reactor.disarm_timer(token),
        }
    }

    pub(super) fn on_timer(&self) {
        let t = self.config().timeouts;
        let now = self.now32();
        match self.lifecycle.get() {
            Lifecycle::Idle | Lifecycle::Closed => return,
            Lifecycle::Waiting => return self.on_waiting_timer(),
            _ => {}
        }
        if self.handshaking() {
            if self.since(self.started_ms.get()) >= t.handshake_ms() as u64 {
                self.note_refusal(Refusal::Timeout, || {
                    format!("no opening handshake within {} ms", t.handshake_ms())
                });
                let error = Some(Error::Timeout("handshake"));
                self.finish(CloseCode::ABNORMAL.0, "handshake timeout", error);
                return;
            }
        } else if self.has(Flags::CLOSING) {
            if self.since(self.mark_ms.get()) >= t.close_ms() as u64 {
                self.log(LogEvent::Timeout, || {
                    format!("close timeout: no closing handshake within {} ms", t.close_ms())
                });
                let code = match self.close_code.get() {
                    0 => CloseCode::ABNORMAL.0,
                    code => code,
                };
                self.finish(code, "close timeout", Some(Error::Timeout("close")));
                return;
            }
        } else {
            let held = self.has(Flags::HELD_BACK);
            if t.idle_ms() > 0 && !held && self.since(self.last_input_ms.get()) >= t.idle_ms() as u64 {
                self.log(LogEvent::Timeout, || {
                    format!("idle timeout: no input for {} ms, closing with 1001", t.idle_ms())
                });
                let _ = self.close(CloseCode::GOING_AWAY.0, "idle timeout");
            }
            let idle = t.deflate_idle_ms();
            if idle > 0 && self.since(self.mark_ms.get()) >= idle as u64 && self.can_trim_compression() {
                self.trim_compression();
            }
            if self.message_clock_runs()
                && t.message_ms() > 0
                && self.since(self.started_ms.get()) >= t.message_ms() as u64
            {
                self.clear(Flags::IN_MESSAGE);
                self.log(LogEvent::Timeout, || {
                    format!(
                        "message timeout: a message took over {} ms, closing with 1008",
                        t.message_ms()
                    )
                });
                self.extra().close_error.get_or_insert(Error::Timeout("message"));
                let _ = self.close(CloseCode::POLICY_VIOLATION.0, "message timeout");
            }
            if t.ping_interval_ms() > 0 && !held && !self.has(Flags::CLOSING) {
                let sent = self.ping_sent_ms.get();
                // Input since the ping answers it; input in the very millisecond
                // counts (pings go out only after a quiet interval).
                let answered = sent != 0 && self.since(self.last_input_ms.get()) <= self.since(sent);
                if answered {
                    self.ping_sent_ms.set(0);
                } else if sent != 0 && self.since(sent) >= t.pong_ms() as u64 {
                    self.log(LogEvent::Timeout, || {
                        format!("pong timeout: no answer within {} ms", t.pong_ms())
                    });
                    self.finish(CloseCode::ABNORMAL.0, "pong timeout", Some(Error::Timeout("pong")));
                    return;
                }
                if self.ping_sent_ms.get() == 0
                    && self.since(self.last_input_ms.get()) >= t.ping_interval_ms() as u64
                    && self.ping(b"").is_ok()
                {
                    self.ping_sent_ms.set(now.max(1));
                }
            }
        }
        self.arm_timer();
    }
}

//! The connection's share of the reactor's memory budget: what its session
//! holds (and input a pause left unprocessed) is charged after every read and
//! write and given back when the session goes; over budget, reading waits,
//! compression streams are trimmed as soon as their message is handled, and
//! new connections agree on permessage-deflate without context takeover.
//! Also the message clock: it starts when a message begins, and stops while
//! the budget holds the connection back (the library, not the peer, is then
//! the one not reading; the idle and pong clocks stop too, `timeouts.rs`).

use crate::proto::session::Session;
use crate::proto::state::State;
use crate::runtime::budget::MemoryBudget;
use crate::runtime::connection::{Connection, Flags, Lifecycle};
use crate::runtime::handler::ConnHandler;
use crate::runtime::log::LogEvent;
use crate::runtime::reactor::Reactor;
use crate::runtime::stats::Bump;

impl<H: ConnHandler> Connection<H> {
    /// Adds `delta` held bytes to the reactor's sum; wakes the connections
    /// waiting for memory if that gave some back.
    pub(super) fn charge(&self, delta: isize) {
        if let Some(reactor) = self.reactor() {
            if reactor.budget().charge(delta) {
                reactor.wake_waiting();
            }
        }
    }

    /// After input or output: gives a drained output buffer back to the
    /// reactor, charges the change in what the session holds,
    /// hands the right to grow over budget on when this connection no longer
    /// uses it, and starts the message clock when a message began. Over
    /// budget, compression streams go once their message is handled.
    pub(super) fn account(&self) {
        let Some((reactor, token)) = self.registered() else {
            return;
        };
        let budget = reactor.budget();
        let (delta, in_message) = match self.session() {
            Some(s) => {
                // A drained output buffer goes back to the reactor (it was
                // lent for input, `Connection::feed`) before it is charged.
                reactor.take_back_output_buffer(&s);
                if budget.exceeded() && s.can_trim_compression() {
                    // A compressed message under way keeps its stream.
                    let _ = s.trim_compression();
                }
                let (delta, receiving) = s.memory_change_and_message();
                (delta, receiving && s.state() == State::Open)
            }
            None => return,
        };
        let mut wake = budget.charge(delta);
        if !in_message || !self.can_read() {
            wake |= budget.release_holder(token.0 as u32);
        }
        if wake {
            reactor.wake_waiting();
        }
        if in_message && !self.has(Flags::IN_MESSAGE) {
            self.set(Flags::IN_MESSAGE);
            // Held back, the clock holds the time run so far (none yet).
            let start = if self.has(Flags::HELD_BACK) { 0 } else { self.now32() };
            self.started_ms.set(start);
            self.arm_timer();
        }
    }

    /// A message was delivered whole (or its last fragment was): the next one
    /// starts its own clock.
    pub(super) fn message_ended(&self) {
        self.clear(Flags::IN_MESSAGE);
    }

    /// Whether the budget lets this connection read now. Over budget, one that
    /// holds buffers that reading would grow (a partial message, output)
    /// waits, and is read again when memory is given back, unless it is the
    /// one connection whose message keeps being read to its end. Compression
    /// streams do not count: they are bounded, and trimmed over budget.
    pub(super) fn budget_allows_read(&self, reactor: &Reactor) -> bool {
        let budget = reactor.budget();
        if !budget.exceeded() {
            self.stop_holding_back(budget);
            return true;
        }
        let token = self.token.get();
        let holds = self.session().is_some_and(|s| {
            if s.state() == State::Handshake {
                // New connections keep no compression stream while memory is short.
                s.set_context_takeover_allowed(false);
            }
            s.holds_buffers() && !(growing_message(&s) && budget.may_hold(token))
        });
        if holds {
            budget.wait(token);
            self.set_held_back(budget, true);
        } else {
            self.stop_holding_back(budget);
        }
        !holds
    }

    /// The budget no longer holds this connection back: its clocks run again.
    fn stop_holding_back(&self, budget: &MemoryBudget) {
        if self.has(Flags::HELD_BACK) {
            self.set_held_back(budget, false);
            self.arm_timer();
        }
    }

    /// Keeps the budget's count of connections held back, and stops or
    /// restarts the message clock: while held back, `started_ms` holds the
    /// time the message ran so far instead of when it began.
    pub(super) fn set_held_back(&self, budget: &MemoryBudget, on: bool) {
        if self.has(Flags::HELD_BACK) != on {
            budget.hold_back(on);
            if self.has(Flags::IN_MESSAGE) {
                self.started_ms.set(self.now32().wrapping_sub(self.started_ms.get()));
            }
            if on {
                self.set(Flags::HELD_BACK);
                if let Some(c) = self.counters() {
                    c.budget_pauses.add(1);
                }
                self.log(LogEvent::BudgetPaused, || {
                    format!(
                        "reading paused: memory budget spent ({} of {} bytes held)",
                        budget.used(),
                        budget.limit()
                    )
                });
            } else {
                self.clear(Flags::HELD_BACK);
                if self.lifecycle.get() != Lifecycle::Running || self.has(Flags::RELEASED) {
                    return;
                }
                self.log(LogEvent::BudgetResumed, || {
                    "reading resumed: memory given back".to_owned()
                });
            }
        }
    }

    /// The session goes (with its buffers): gives back what it was charged.
    pub(super) fn discharge(&self, session: &Session) {
        self.charge(-(session.memory_reported() as isize));
    }
}

/// A message is arriving on an open session: the one thing worth reading
/// over budget (a closing session only waits for the close).
fn growing_message(session: &Session) -> bool {
    session.state() == State::Open && session.receiving_message()
}

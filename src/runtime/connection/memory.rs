//! The connection's share of the reactor's memory budget: what its session
//! holds (and input a pause left unprocessed) is charged after every read and
//! write and given back when the session goes; over budget, reading waits.
//! Also notes when a message begins, for the message timeout.

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

    /// After input or output: charges the change in what the session holds,
    /// hands the right to grow over budget on when this connection no longer
    /// uses it, and starts the message timer when a message began.
    pub(super) fn account(&self) {
        let Some((reactor, token)) = self.registered() else {
            return;
        };
        let (delta, in_message) = match self.session() {
            Some(s) => (s.memory_change(), growing_message(&s)),
            None => return,
        };
        let budget = reactor.budget();
        let mut wake = budget.charge(delta);
        if !in_message || !self.can_read() {
            wake |= budget.release_holder(token.0 as u32);
        }
        if wake {
            reactor.wake_waiting();
        }
        if in_message && !self.has(Flags::IN_MESSAGE) {
            self.set(Flags::IN_MESSAGE);
            self.started_ms.set(self.now32());
            self.arm_timer();
        }
    }

    /// A message was delivered whole (or its last fragment was): the next one
    /// starts its own clock.
    pub(super) fn message_ended(&self) {
        self.clear(Flags::IN_MESSAGE);
    }

    /// Whether the budget lets this connection read now. Over budget, one that
    /// holds memory waits (and is read again when memory is given back), unless
    /// it is the one connection whose message keeps being read to its end.
    pub(super) fn budget_allows_read(&self, reactor: &Reactor) -> bool {
        let budget = reactor.budget();
        if !budget.exceeded() {
            self.set_held_back(budget, false);
            return true;
        }
        let token = self.token.get();
        let holds = self
            .session()
            .is_some_and(|s| s.memory_reported() > 0 && !(growing_message(&s) && budget.may_hold(token)));
        if holds {
            budget.wait(token);
        }
        self.set_held_back(budget, holds);
        !holds
    }

    /// Keeps the budget's count of connections held back.
    pub(super) fn set_held_back(&self, budget: &MemoryBudget, on: bool) {
        if self.has(Flags::HELD_BACK) != on {
            budget.hold_back(on);
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

//! Draining a reactor, to stop it without dropping anyone: its acceptors stop
//! listening; handshakes in progress (read or being decided) are refused
//! (503); client connections not yet open, or waiting to reconnect, end;
//! every open connection is closed with 1001 (once a
//! fragmented send in progress ends); when all have ended, or at the
//! deadline (the rest cut), the program's function runs.
//!
//! Acceptors stop as soon as the drain is asked for (so that no connection
//! is accepted only to be refused). The rest happens in the reactor's
//! dispatch, at the end of a turn, where handlers may run: the connections'
//! part begins at the end of the turn it was asked in (or of the next one,
//! asked between turns), and the end is checked at the end of every turn
//! after. Connections started meanwhile are drained with the others.

use std::cell::Cell;

use crate::runtime::error::{Error, Result};
use crate::runtime::log::LogEvent;
use crate::runtime::reactor::Reactor;
use crate::runtime::stats::Bump;

/// Run when a drain is over, with the number of connections its deadline cut.
pub type DrainFn = Box<dyn FnOnce(&Reactor, usize)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    #[default]
    None,
    /// Asked for: begins at the end of the turn.
    Asked,
    /// Begun: connections are ending.
    Running,
    /// Over (the reactor takes no new connection).
    Done,
}

/// A reactor's drain.
#[derive(Default)]
pub(crate) struct Drain {
    phase: Cell<Phase>,
    deadline_ms: Cell<u64>,
    done: Cell<Option<DrainFn>>,
}

impl Drain {
    /// Whether a drain was asked for (acceptors may not start).
    pub fn asked(&self) -> bool {
        self.phase.get() != Phase::None
    }

    /// Whether the drain began (connections may not start).
    pub fn begun(&self) -> bool {
        matches!(self.phase.get(), Phase::Running | Phase::Done)
    }
}

impl Reactor {
    /// Drains the reactor within `deadline_ms`, then runs `done` (on the
    /// reactor's thread, during a dispatch). Called again while draining, the
    /// deadline can only come sooner (0: cut at the end of the turn) and
    /// `done` replaces the function given before; it runs once. `State` once
    /// the drain is over.
    pub fn drain(&self, deadline_ms: u64, done: DrainFn) -> Result<()> {
        let drain = self.drain_state();
        let deadline = self.current_ms().saturating_add(deadline_ms);
        match drain.phase.get() {
            Phase::Done => return Err(Error::State),
            Phase::None => {
                drain.phase.set(Phase::Asked);
                drain.deadline_ms.set(deadline);
                self.counters().draining.set(1);
                self.each_source(|s| s.stop_accepting());
            }
            Phase::Asked | Phase::Running => drain.deadline_ms.set(drain.deadline_ms.get().min(deadline)),
        }
        drain.done.set(Some(done));
        Ok(())
    }

    /// Whether a drain was asked for (even if over): no acceptor starts.
    pub fn is_draining(&self) -> bool {
        self.drain_state().asked()
    }

    /// Whether a drain began (even if over): no connection starts.
    pub(crate) fn drain_begun(&self) -> bool {
        self.drain_state().begun()
    }

    /// How long the poll may wait for the drain: not at all when it is to
    /// begin, until its deadline while it runs.
    pub(crate) fn drain_wait(&self) -> Option<u64> {
        let drain = self.drain_state();
        match drain.phase.get() {
            Phase::Asked => Some(0),
            Phase::Running => Some(drain.deadline_ms.get().saturating_sub(self.now_ms())),
            Phase::None | Phase::Done => None,
        }
    }

    /// At the end of a turn: begins a drain asked for, ends one that is over.
    pub(crate) fn drain_step(&self) {
        let drain = self.drain_state();
        match drain.phase.get() {
            Phase::None | Phase::Done => {}
            Phase::Asked => {
                drain.phase.set(Phase::Running);
                let deadline = drain.deadline_ms.get().saturating_sub(self.now_ms());
                self.log(
                    LogEvent::DrainStarted,
                    None,
                    || None,
                    || {
                        format!(
                            "draining: {} connections, deadline in {deadline} ms",
                            self.live_connections()
                        )
                    },
                );
                self.each_source(|s| s.drain());
            }
            Phase::Running => {}
        }
        if drain.phase.get() == Phase::Running {
            self.flush_pending_output();
            let over = self.live_connections() == 0 || self.now_ms() >= drain.deadline_ms.get();
            if over {
                self.end_drain();
            }
        }
    }

    /// Connections that keep a drain going: open, in their handshake, or
    /// waiting to reconnect.
    fn live_connections(&self) -> u64 {
        let c = self.counters();
        c.connections_open.get() + c.handshakes_pending.get() + c.reconnects_waiting.get()
    }

    /// Cuts what is left and runs the program's function.
    fn end_drain(&self) {
        let drain = self.drain_state();
        let mut cut = 0;
        self.each_source(|s| {
            if s.cut() {
                cut += 1;
            }
        });
        self.counters().drain_cut.add(cut as u64);
        drain.phase.set(Phase::Done);
        self.log(
            LogEvent::DrainDone,
            None,
            || None,
            || format!("drained: {cut} connections cut at the deadline"),
        );
        if let Some(done) = drain.done.take() {
            done(self, cut);
        }
    }
}

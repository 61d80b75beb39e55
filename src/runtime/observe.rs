//! What a reactor tells the program about itself: a copy of its counters
//! (`stats.rs`) and the lines of its log (`log.rs`), and the functions the
//! parts of the library that count or log without a connection call: the
//! one place refusals are noted among them.

use std::net::SocketAddr;
use std::ptr::NonNull;

use crate::runtime::log::{Admit, Level, LogEvent, LogFn, LogRecord};
use crate::runtime::reactor::Reactor;
use crate::runtime::refusal::Refusal;
use crate::runtime::stats::{Bump, Stats};

impl Reactor {
    /// A copy of the counters, the memory budget's gauges included.
    pub fn stats(&self) -> Stats {
        let mut stats = self.counters().snapshot();
        let usage = self.memory_usage();
        stats.budget_bytes = usage.buffered as u64;
        stats.budget_waiting = usage.waiting as u64;
        stats
    }

    /// Tells `func` the events of `min_level` and above (`None`: silence,
    /// the default).
    pub fn set_log(&self, func: Option<LogFn>, min_level: Level) {
        self.log_state().set(func, min_level);
    }

    /// At most `per_second` lines a second per event code (at least 1;
    /// default [`crate::runtime::log::DEFAULT_LINES_PER_SECOND`]).
    pub fn set_log_rate(&self, per_second: u32) {
        self.log_state().set_rate(per_second);
    }

    /// Tells the log `event` about `conn` (the address of a `Connection`)
    /// unless it is silenced or over its rate; `peer` and `message` are
    /// asked for only if the line is told.
    pub(crate) fn log(
        &self,
        event: LogEvent,
        conn: Option<NonNull<()>>,
        peer: impl FnOnce() -> Option<SocketAddr>,
        message: impl FnOnce() -> String,
    ) {
        let log = self.log_state();
        let now = self.current_ms();
        log.tell_summaries(now);
        match log.admit(event, now) {
            Admit::Silent => {}
            Admit::Suppressed => self.counters().log_suppressed.add(1),
            Admit::Tell => {
                let message = message();
                log.tell(&LogRecord {
                    level: event.level(),
                    event,
                    conn,
                    peer: peer(),
                    message: &message,
                });
            }
        }
    }

    /// Tells the "suppressed N" lines that are due (at the end of a turn).
    pub(crate) fn tell_log_summaries(&self) {
        if self.log_state().summary_due().is_some() {
            self.log_state().tell_summaries(self.now_ms());
        }
    }

    /// The one place every connection refused before it opened is noted:
    /// counted under `reason` and logged with the connection (`conn`, the
    /// address of its `Connection`, if one was made), the client's address
    /// (PROXY protocol's when the acceptor reads it) and `detail`. `peer` and
    /// `detail` are asked for only if the line is told.
    pub(crate) fn note_refusal(
        &self,
        reason: Refusal,
        conn: Option<NonNull<()>>,
        peer: impl FnOnce() -> Option<SocketAddr>,
        detail: impl FnOnce() -> String,
    ) {
        reason.counter(self.counters()).add(1);
        self.log(reason.log_event(), conn, peer, detail);
    }

    /// Connections refused so far for `reason`.
    pub fn refused(&self, reason: Refusal) -> u64 {
        reason.counter(self.counters()).get()
    }

    /// A client connection (`conn`, the address of its `Connection`) starts
    /// (`true`, reconnecting in `delay_ms`) or stops (`false`) waiting to
    /// reconnect: the gauge follows, and the start is logged.
    pub(crate) fn count_reconnect_wait(&self, conn: Option<NonNull<()>>, waiting: bool, delay_ms: u64) {
        let gauge = &self.counters().reconnects_waiting;
        if waiting {
            gauge.add(1);
            self.log(
                LogEvent::ReconnectWaiting,
                conn,
                || None,
                || format!("reconnecting in {delay_ms} ms"),
            );
        } else {
            gauge.sub(1);
        }
    }
}

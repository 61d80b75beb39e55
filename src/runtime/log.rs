//! A reactor's log: what the library refused or ended on its own (bad
//! handshakes, TLS failures, timeouts, budget pauses, slow subscribers, a
//! drain), told to the program's function, if it set one.
//!
//! Silent by default: without a function nothing is formatted. Each event has
//! a stable code and a fixed level; events under the program's minimum level
//! are dropped before anything else. An attacker cannot flood the log: each
//! code gets at most `per_second` lines a second, and the lines it was
//! refused are then told in one "suppressed N" line (when its second is over,
//! at the end of a turn).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::ptr::NonNull;

/// How much an event matters (in increasing order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

impl Level {
    pub fn from_i32(level: i32) -> Option<Level> {
        Some(match level {
            0 => Level::Debug,
            1 => Level::Info,
            2 => Level::Warn,
            3 => Level::Error,
            _ => return None,
        })
    }
}

/// Defines [`LogEvent`] with each event's stable code, name and level.
macro_rules! log_events {
    ($($(#[doc = $doc:literal])* $name:ident = $code:literal, $text:literal, $level:ident;)*) => {
        /// What happened. The codes are stable: they are the C API's.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum LogEvent {
            $($(#[doc = $doc])* $name = $code,)*
        }

        impl LogEvent {
            /// Every event, in code order.
            pub const ALL: &'static [LogEvent] = &[$(LogEvent::$name),*];

            /// A short stable name (`handshake_refused`).
            pub fn name(self) -> &'static str {
                match self {
                    $(LogEvent::$name => $text,)*
                }
            }

            /// The level it is told at.
            pub fn level(self) -> Level {
                match self {
                    $(LogEvent::$name => Level::$level,)*
                }
            }

            pub fn code(self) -> i32 {
                self as i32
            }

            pub fn from_code(code: i32) -> Option<LogEvent> {
                LogEvent::ALL.iter().copied().find(|e| e.code() == code)
            }
        }
    };
}

log_events! {
    /// A server refused an opening handshake: a malformed or unacceptable
    /// request, or the server shutting down (the message says which status
    /// and why).
    HandshakeRefused = 1, "handshake_refused", Warn;
    /// An opening handshake did not complete within the handshake timeout.
    HandshakeTimeout = 2, "handshake_timeout", Info;
    /// A TLS handshake or record failed.
    TlsFailed = 3, "tls_failed", Warn;
    /// A peer broke the protocol: closed with 1002, 1007 or 1009.
    ProtocolError = 4, "protocol_error", Info;
    /// An open connection ended by a timer: idle, pong, message or close timeout.
    Timeout = 5, "timeout", Info;
    /// A connection stopped being read: the reactor's memory budget is spent.
    BudgetPaused = 6, "budget_paused", Info;
    /// A connection the budget held back is read again.
    BudgetResumed = 7, "budget_resumed", Debug;
    /// A slow subscriber missed a published message (policy skip).
    SlowSkipped = 8, "slow_skipped", Info;
    /// A slow subscriber was closed with 1008 (policy close).
    SlowClosed = 9, "slow_closed", Warn;
    /// accept() failed (out of file descriptors, …).
    AcceptFailed = 10, "accept_failed", Error;
    /// A drain began.
    DrainStarted = 11, "drain_started", Info;
    /// A drain's deadline cut a connection.
    DrainCut = 12, "drain_cut", Warn;
    /// A drain ended: every connection ended or was cut.
    DrainDone = 13, "drain_done", Info;
    /// A server refused a handshake for its Origin.
    OriginRefused = 14, "origin_refused", Warn;
    /// The program refused a handshake (its upgrade decision).
    ProgramRefused = 15, "program_refused", Info;
    /// An acceptor refused a socket over its limits (in all, or per address).
    LimitRefused = 16, "limit_refused", Warn;
    /// A PROXY protocol header was malformed, or the socket ended before it.
    ProxyHeaderFailed = 17, "proxy_header_failed", Warn;
    /// A compressed message inflated beyond the allowed ratio: closed.
    InflateRatioClosed = 18, "inflate_ratio_closed", Warn;
    /// A client connection waits to reconnect.
    ReconnectWaiting = 19, "reconnect_waiting", Info;
}

/// One line of the log, as the program's function gets it.
#[derive(Debug, Clone, Copy)]
pub struct LogRecord<'a> {
    pub level: Level,
    pub event: LogEvent,
    /// The connection it is about (the address of its `Connection`), if any.
    pub conn: Option<NonNull<()>>,
    /// The peer's address, when known.
    pub peer: Option<SocketAddr>,
    pub message: &'a str,
}

/// The program's log function.
pub type LogFn = Box<dyn FnMut(&LogRecord<'_>)>;

/// Lines per second per event code, unless the program says otherwise.
pub const DEFAULT_LINES_PER_SECOND: u32 = 10;

/// One event code's current second.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    start_ms: u64,
    told: u32,
    suppressed: u64,
}

/// A reactor's log: the program's function and the rate limit.
pub(crate) struct Log {
    /// Taken out while it runs (a line it causes is dropped, not told inside it).
    func: Cell<Option<LogFn>>,
    min_level: Cell<Level>,
    per_second: Cell<u32>,
    windows: RefCell<Vec<Window>>,
    /// The earliest end of a second with suppressed lines to tell (0: none).
    summary_due_ms: Cell<u64>,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            func: Cell::new(None),
            min_level: Cell::new(Level::Info),
            per_second: Cell::new(DEFAULT_LINES_PER_SECOND),
            windows: RefCell::new(vec![Window::default(); LogEvent::ALL.len() + 1]),
            summary_due_ms: Cell::new(0),
        }
    }
}

/// What `Log::admit` decided.
pub(crate) enum Admit {
    /// Tell it.
    Tell,
    /// Dropped: no function or under the minimum level (nothing counted).
    Silent,
    /// Over the rate: counted among the suppressed.
    Suppressed,
}

impl Log {
    pub fn set(&self, func: Option<LogFn>, min_level: Level) {
        self.func.set(func);
        self.min_level.set(min_level);
    }

    pub fn set_rate(&self, per_second: u32) {
        self.per_second.set(per_second.max(1));
    }

    /// Whether an event of `event` would reach the program at all (cheap:
    /// callers check before they format anything).
    pub fn enabled(&self, event: LogEvent) -> bool {
        // Taken while it runs: a line it causes is not told.
        let func = self.func.take();
        let on = func.is_some();
        self.func.set(func);
        on && event.level() >= self.min_level.get()
    }

    /// Decides, at `now_ms`, whether a line of `event` is told.
    pub fn admit(&self, event: LogEvent, now_ms: u64) -> Admit {
        if !self.enabled(event) {
            return Admit::Silent;
        }
        let mut windows = self.windows.borrow_mut();
        let w = &mut windows[event.code() as usize];
        // A second with suppressed lines ends with their summary
        // (`tell_summaries`), which starts the next one.
        if w.suppressed == 0 && (w.told == 0 || now_ms.saturating_sub(w.start_ms) >= 1000) {
            *w = Window {
                start_ms: now_ms,
                told: 0,
                suppressed: 0,
            };
        }
        if w.suppressed == 0 && w.told < self.per_second.get() {
            w.told += 1;
            return Admit::Tell;
        }
        w.suppressed += 1;
        let due = w.start_ms + 1000;
        let current = self.summary_due_ms.get();
        if current == 0 || due < current {
            self.summary_due_ms.set(due);
        }
        Admit::Suppressed
    }

    /// Runs the program's function on `record` (not inside itself).
    pub fn tell(&self, record: &LogRecord<'_>) {
        if let Some(mut func) = self.func.take() {
            func(record);
            // Unless it set another one meanwhile.
            let replaced = self.func.take();
            self.func.set(replaced.or(Some(func)));
        }
    }

    /// When the next summary is due (for the reactor's wait), if any.
    pub fn summary_due(&self) -> Option<u64> {
        match self.summary_due_ms.get() {
            0 => None,
            due => Some(due),
        }
    }

    /// Tells the "suppressed N" lines whose second is over at `now_ms`.
    pub fn tell_summaries(&self, now_ms: u64) {
        let due = self.summary_due_ms.get();
        if due == 0 || now_ms < due {
            return;
        }
        let mut ready = Vec::new();
        let mut next_due = 0;
        {
            let mut windows = self.windows.borrow_mut();
            for event in LogEvent::ALL {
                let w = &mut windows[event.code() as usize];
                if w.suppressed == 0 {
                    continue;
                }
                let end = w.start_ms + 1000;
                if now_ms >= end {
                    ready.push((*event, w.suppressed));
                    // The summary is the first line of the next second.
                    *w = Window {
                        start_ms: now_ms,
                        told: 1,
                        suppressed: 0,
                    };
                } else if next_due == 0 || end < next_due {
                    next_due = end;
                }
            }
        }
        self.summary_due_ms.set(next_due);
        for (event, suppressed) in ready {
            let message = format!("suppressed {suppressed} {} lines in the last second", event.name());
            self.tell(&LogRecord {
                level: event.level(),
                event,
                conn: None,
                peer: None,
                message: &message,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn collecting(log: &Log, min: Level) -> Rc<RefCell<Vec<(LogEvent, String)>>> {
        let lines: Rc<RefCell<Vec<(LogEvent, String)>>> = Rc::default();
        let sink = Rc::clone(&lines);
        log.set(
            Some(Box::new(move |r: &LogRecord<'_>| {
                sink.borrow_mut().push((r.event, r.message.to_owned()))
            })),
            min,
        );
        lines
    }

    fn say(log: &Log, event: LogEvent, now: u64) {
        if let Admit::Tell = log.admit(event, now) {
            log.tell(&LogRecord {
                level: event.level(),
                event,
                conn: None,
                peer: None,
                message: "x",
            });
        }
    }

    #[test]
    fn silent_without_a_function_and_under_the_minimum_level() {
        let log = Log::default();
        assert!(matches!(log.admit(LogEvent::HandshakeRefused, 0), Admit::Silent));
        let lines = collecting(&log, Level::Warn);
        assert!(matches!(log.admit(LogEvent::Timeout, 0), Admit::Silent), "Info < Warn");
        say(&log, LogEvent::HandshakeRefused, 0);
        assert_eq!(lines.borrow().len(), 1);
    }

    #[test]
    fn each_code_gets_its_rate_then_one_summary_line() {
        let log = Log::default();
        log.set_rate(3);
        let lines = collecting(&log, Level::Debug);
        for i in 0..100 {
            say(&log, LogEvent::HandshakeRefused, 10 + i);
        }
        // Another code has its own allowance.
        say(&log, LogEvent::Timeout, 50);
        assert_eq!(lines.borrow().len(), 4);
        assert_eq!(log.summary_due(), Some(1010));
        log.tell_summaries(900);
        assert_eq!(lines.borrow().len(), 4, "not before its second is over");
        log.tell_summaries(1010);
        let got = lines.borrow().clone();
        assert_eq!(got.len(), 5);
        assert_eq!(got[4].0, LogEvent::HandshakeRefused);
        assert!(got[4].1.contains("suppressed 97 "), "{:?}", got[4]);
        assert_eq!(log.summary_due(), None);
        // The summary used one line of the new second.
        for i in 0..10 {
            say(&log, LogEvent::HandshakeRefused, 1020 + i);
        }
        assert_eq!(lines.borrow().len(), 7);
        // A quiet second later, the allowance is whole again.
        log.tell_summaries(2100);
        for i in 0..3 {
            say(&log, LogEvent::HandshakeRefused, 3200 + i);
        }
        let got = lines.borrow().clone();
        assert!(got[7].1.contains("suppressed 8 "), "{:?}", got[7]);
        assert_eq!(got.len(), 11);
    }

    #[test]
    fn codes_names_and_levels_are_stable() {
        for (i, event) in LogEvent::ALL.iter().enumerate() {
            assert_eq!(event.code(), i as i32 + 1);
            assert_eq!(LogEvent::from_code(event.code()), Some(*event));
        }
        assert_eq!(LogEvent::from_code(0), None);
        assert_eq!(LogEvent::HandshakeRefused.name(), "handshake_refused");
        assert_eq!(LogEvent::AcceptFailed.level(), Level::Error);
    }
}

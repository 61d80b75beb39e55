//! The reactor's timer wheel. Each connection has at most one deadline (the
//! next moment one of its timeouts must be checked); armed connections are
//! linked through the `TimerLinks` they carry, so an armed timer costs no
//! memory of its own.

use std::cell::{Cell, RefCell};
use std::time::Duration;

/// "No connection" in the wheel's links.
pub(crate) const NO_TOKEN: u32 = u32::MAX;
/// A `prev` link with this bit set: the connection heads the list of the slot
/// in the low bits.
const HEAD: u32 = 1 << 31;
/// Slots of this many milliseconds…
const TICK_MS: u64 = 8;
/// …in a wheel of this many (one turn: about 8 s; later deadlines wait in their
/// slot for the turns to pass).
const SLOTS: u64 = 1024;

/// A connection's place in the wheel.
#[derive(Debug)]
pub(crate) struct TimerLinks {
    deadline: Cell<u64>,
    prev: Cell<u32>,
    next: Cell<u32>,
}

impl Default for TimerLinks {
    fn default() -> Self {
        TimerLinks {
            deadline: Cell::new(u64::MAX),
            prev: Cell::new(NO_TOKEN),
            next: Cell::new(NO_TOKEN),
        }
    }
}

impl TimerLinks {
    /// The armed deadline (reactor milliseconds), if any.
    pub fn deadline(&self) -> Option<u64> {
        Some(self.deadline.get()).filter(|&d| d != u64::MAX)
    }
}

/// The wheel: each slot heads a list of connections (by token).
pub(crate) struct TimerWheel {
    slots: RefCell<Vec<u32>>,
    /// The last tick whose slot was fully processed.
    tick: Cell<u64>,
    armed: Cell<usize>,
}

impl TimerWheel {
    pub fn new() -> TimerWheel {
        TimerWheel {
            slots: RefCell::new(vec![NO_TOKEN; SLOTS as usize]),
            tick: Cell::new(0),
            armed: Cell::new(0),
        }
    }

    fn tick_of(deadline_ms: u64) -> u64 {
        deadline_ms / TICK_MS
    }

    /// The slot for a deadline: never one already passed in this turn of the
    /// wheel, so that it is looked at again.
    fn slot_for(&self, deadline_ms: u64) -> u32 {
        let tick = Self::tick_of(deadline_ms).max(self.tick.get() + 1);
        (tick % SLOTS) as u32
    }

    /// Arms (or moves) the timer of the connection at `token`; `links_of` finds
    /// any connection's links by token.
    pub fn arm<'a>(&self, token: u32, deadline_ms: u64, links_of: impl Fn(u32) -> Option<&'a TimerLinks>) {
        let Some(links) = links_of(token) else { return };
        if links.deadline() == Some(deadline_ms) {
            return;
        }
        self.disarm(token, &links_of);
        let slot = self.slot_for(deadline_ms);
        let head = std::mem::replace(&mut self.slots.borrow_mut()[slot as usize], token);
        links.prev.set(HEAD | slot);
        links.next.set(head);
        links.deadline.set(deadline_ms);
        if let Some(next) = links_of(head) {
            next.prev.set(token);
        }
        self.armed.set(self.armed.get() + 1);
    }

    /// Disarms the timer of the connection at `token`, if armed.
    pub fn disarm<'a>(&self, token: u32, links_of: impl Fn(u32) -> Option<&'a TimerLinks>) {
        let Some(links) = links_of(token) else { return };
        if links.deadline().is_none() {
            return;
        }
        let (prev, next) = (links.prev.get(), links.next.get());
        if prev & HEAD != 0 {
            let mut slots = self.slots.borrow_mut();
            let slot = &mut slots[(prev & !HEAD) as usize];
            if *slot == token {
                *slot = next;
            }
        } else if let Some(p) = links_of(prev) {
            p.next.set(next);
        }
        if let Some(n) = links_of(next) {
            n.prev.set(prev);
        }
        links.deadline.set(u64::MAX);
        links.prev.set(NO_TOKEN);
        links.next.set(NO_TOKEN);
        self.armed.set(self.armed.get().saturating_sub(1));
    }

    /// How long from `now_ms` until the earliest non-empty slot comes up.
    pub fn next_wait(&self, now_ms: u64) -> Option<Duration> {
        if self.armed.get() == 0 {
            return None;
        }
        let slots = self.slots.borrow();
        let first = self.tick.get() + 1;
        (first..first + SLOTS)
            .find(|tick| slots[(tick % SLOTS) as usize] != NO_TOKEN)
            .map(|tick| Duration::from_millis((tick * TICK_MS).saturating_sub(now_ms)))
    }

    /// Takes the timers due at `now_ms` out of the wheel and returns their
    /// tokens: the slots from the last processed tick up to now are walked (the
    /// current tick is walked again next time: it is not over yet).
    pub fn expire<'a>(&self, now_ms: u64, links_of: impl Fn(u32) -> Option<&'a TimerLinks>) -> Vec<u32> {
        let now_tick = Self::tick_of(now_ms);
        let from = self.tick.get() + 1;
        let mut due = Vec::new();
        if now_tick < from {
            return due;
        }
        if self.armed.get() > 0 {
            for tick in from..from + (now_tick - from + 1).min(SLOTS) {
                let mut cursor = self.slots.borrow()[(tick % SLOTS) as usize];
                while let Some(links) = links_of(cursor) {
                    let next = links.next.get();
                    if links.deadline().is_some_and(|d| d <= now_ms) {
                        self.disarm(cursor, &links_of);
                        due.push(cursor);
                    }
                    cursor = next;
                }
            }
        }
        self.tick.set(now_tick.saturating_sub(1).max(self.tick.get()));
        due
    }
}

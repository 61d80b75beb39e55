//! The event loop: one `mio::Poll` (epoll, kqueue), a timer wheel for its
//! connections, a read buffer and an output ("cork") buffer shared by all of them,
//! and a thread-safe queue of functions to run on its thread.
//!
//! Objects registered on the reactor (connections, acceptors) are owned by the
//! program; the reactor keeps raw pointers to them in a slab indexed by token.
//! Everything is used from one thread and mutated through `Cell`/`RefCell`, so the
//! program's callbacks may call back into any object while the reactor runs.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Registry, Token, Waker};

use crate::proto::config::Config;
use crate::proto::error::{Error, Result};
use crate::runtime::acceptor::Acceptor;
use crate::runtime::callbacks::{CallbackFns, CALLBACKS};
use crate::runtime::connection::Conn;

/// A function run on the reactor's thread by `defer`.
pub type DeferFn = extern "C" fn(arg: *mut c_void);

/// Size of the read buffer shared by every connection of a reactor.
pub const READ_BUFFER_SIZE: usize = 64 << 10;

const WAKER_TOKEN: Token = Token(usize::MAX);

/// "No connection" in the timer wheel's links.
pub const NO_TOKEN: u32 = u32::MAX;
/// Timer wheel: slots of this many milliseconds…
const TICK_MS: u64 = 8;
/// …in a wheel of this many slots (one turn: about 8 s; later deadlines wait in
/// their slot for the turns to pass).
const SLOTS: u64 = 1024;

/// What the reactor shares with other threads.
struct Shared {
    deferred: Mutex<Vec<(DeferFn, usize)>>,
    waker: Waker,
}

#[derive(Clone, Copy)]
enum Slot {
    Free,
    Conn(*const Conn),
    Acceptor(*const Acceptor),
}

pub struct Reactor {
    poll: RefCell<Poll>,
    events: RefCell<Events>,
    registry: Registry,
    shared: Arc<Shared>,
    slots: RefCell<Vec<Slot>>,
    free_slots: RefCell<Vec<usize>>,
    /// Timer wheel: each slot heads an intrusive list of connections (linked
    /// through the connections themselves, so an armed timer costs no memory).
    wheel: RefCell<Vec<u32>>,
    /// The last tick whose slot was fully processed.
    wheel_tick: Cell<u64>,
    armed_timers: Cell<usize>,
    /// Callback tables shared by the connections that use the same functions.
    callback_tables: RefCell<HashMap<[usize; CALLBACKS], Box<CallbackFns>>>,
    /// Connections with output to write at the end of the turn.
    dirty: RefCell<Vec<usize>>,
    /// Connections with input left to read (read cap reached, or reading resumed).
    ready: RefCell<Vec<usize>>,
    /// The batch being processed from `dirty` or `ready` (kept to reuse its memory).
    batch: RefCell<Vec<usize>>,
    /// Objects released during a dispatch, freed when it ends.
    graveyard: RefCell<Vec<Slot>>,
    read_buffer: RefCell<Vec<u8>>,
    config: RefCell<Arc<Config>>,
    dispatching: Cell<bool>,
    start: Instant,
    now_ms: Cell<u64>,
}

impl Reactor {
    pub fn new() -> Result<Reactor> {
        let poll = Poll::new().map_err(|_| Error::Io)?;
        let registry = poll.registry().try_clone().map_err(|_| Error::Io)?;
        let waker = Waker::new(poll.registry(), WAKER_TOKEN).map_err(|_| Error::Io)?;
        Ok(Reactor {
            poll: RefCell::new(poll),
            events: RefCell::new(Events::with_capacity(1024)),
            registry,
            shared: Arc::new(Shared {
                deferred: Mutex::new(Vec::new()),
                waker,
            }),
            slots: RefCell::new(Vec::new()),
            free_slots: RefCell::new(Vec::new()),
            wheel: RefCell::new(vec![NO_TOKEN; SLOTS as usize]),
            wheel_tick: Cell::new(0),
            armed_timers: Cell::new(0),
            callback_tables: RefCell::new(HashMap::new()),
            dirty: RefCell::new(Vec::new()),
            ready: RefCell::new(Vec::new()),
            batch: RefCell::new(Vec::new()),
            graveyard: RefCell::new(Vec::new()),
            read_buffer: RefCell::new(Vec::new()),
            config: RefCell::new(Arc::new(Config::default())),
            dispatching: Cell::new(false),
            start: Instant::now(),
            now_ms: Cell::new(0),
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Milliseconds since the reactor started, as of the current turn.
    pub fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }

    fn update_now(&self) {
        self.now_ms.set(self.start.elapsed().as_millis() as u64);
    }

    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.borrow())
    }

    pub fn set_config(&self, config: Arc<Config>) {
        *self.config.borrow_mut() = config;
    }

    pub fn is_dispatching(&self) -> bool {
        self.dispatching.get()
    }

    // ------------------------------------------------------------ registration

    fn insert(&self, slot: Slot) -> usize {
        let mut slots = self.slots.borrow_mut();
        match self.free_slots.borrow_mut().pop() {
            Some(index) => {
                slots[index] = slot;
                index
            }
            None => {
                slots.push(slot);
                slots.len() - 1
            }
        }
    }

    pub fn add_conn(&self, conn: *const Conn) -> Token {
        Token(self.insert(Slot::Conn(conn)))
    }

    pub fn add_acceptor(&self, acceptor: *const Acceptor) -> Token {
        Token(self.insert(Slot::Acceptor(acceptor)))
    }

    /// Forgets a token: later events for it are ignored.
    pub fn remove(&self, token: Token) {
        let mut slots = self.slots.borrow_mut();
        if let Some(slot) = slots.get_mut(token.0) {
            if !matches!(slot, Slot::Free) {
                *slot = Slot::Free;
                self.free_slots.borrow_mut().push(token.0);
            }
        }
    }

    pub fn conn_at(&self, index: usize) -> Option<*const Conn> {
        match self.slots.borrow().get(index) {
            Some(Slot::Conn(conn)) => Some(*conn),
            _ => None,
        }
    }

    /// Frees a connection released from inside a callback once the dispatch ends.
    pub fn bury_conn(&self, conn: *const Conn) {
        self.graveyard.borrow_mut().push(Slot::Conn(conn));
    }

    pub fn bury_acceptor(&self, acceptor: *const Acceptor) {
        self.graveyard.borrow_mut().push(Slot::Acceptor(acceptor));
    }

    // ------------------------------------------------------------ shared parts

    /// The shared table holding these callback functions (connections keep a
    /// pointer to it, not nine function pointers each).
    pub fn intern_callbacks(&self, fns: CallbackFns) -> *const CallbackFns {
        let mut tables = self.callback_tables.borrow_mut();
        let table = tables.entry(fns.key()).or_insert_with(|| Box::new(fns));
        &**table as *const CallbackFns
    }

    /// Takes the shared read buffer (given back with `return_read_buffer`).
    pub fn take_read_buffer(&self) -> Vec<u8> {
        let mut buffer = std::mem::take(&mut *self.read_buffer.borrow_mut());
        if buffer.len() < READ_BUFFER_SIZE {
            buffer = vec![0; READ_BUFFER_SIZE];
        }
        buffer
    }

    pub fn return_read_buffer(&self, buffer: Vec<u8>) {
        *self.read_buffer.borrow_mut() = buffer;
    }

    // ------------------------------------------------------------ scheduling

    /// Output to write at the end of this turn (or at the start of the next one).
    pub fn mark_dirty(&self, token: Token) {
        self.dirty.borrow_mut().push(token.0);
    }

    /// Input to read without waiting for the socket to signal it again.
    pub fn mark_ready(&self, token: Token) {
        self.ready.borrow_mut().push(token.0);
    }

    // ------------------------------------------------------------ timer wheel

    fn tick_of(deadline_ms: u64) -> u64 {
        deadline_ms / TICK_MS
    }

    /// The wheel slot for a deadline: never one already passed in this turn of
    /// the wheel, so that it is looked at again.
    fn slot_for(&self, deadline_ms: u64) -> usize {
        let tick = Self::tick_of(deadline_ms).max(self.wheel_tick.get() + 1);
        (tick % SLOTS) as usize
    }

    /// Arms (or moves) the timer of the connection at `token` to `deadline_ms`.
    pub fn arm_timer(&self, conn: &Conn, token: u32, deadline_ms: u64) {
        self.disarm_timer(conn, token);
        let slot = self.slot_for(deadline_ms);
        let head = {
            let mut wheel = self.wheel.borrow_mut();
            std::mem::replace(&mut wheel[slot], token)
        };
        conn.set_timer_links(NO_TOKEN, head, deadline_ms, slot as u16);
        if let Some(next) = self.conn_at(head as usize) {
            // SAFETY: live while in a slot (see `turn`).
            unsafe { &*next }.set_timer_prev(token);
        }
        self.armed_timers.set(self.armed_timers.get() + 1);
    }

    /// Disarms the timer of the connection at `token`, if armed.
    pub fn disarm_timer(&self, conn: &Conn, token: u32) {
        let Some((prev, next, slot)) = conn.timer_links() else {
            return;
        };
        match self.conn_at(prev as usize) {
            // SAFETY: live while in a slot.
            Some(p) => unsafe { &*p }.set_timer_next(next),
            None => {
                let mut wheel = self.wheel.borrow_mut();
                if wheel[slot as usize] == token {
                    wheel[slot as usize] = next;
                }
            }
        }
        if let Some(n) = self.conn_at(next as usize) {
            // SAFETY: live while in a slot.
            unsafe { &*n }.set_timer_prev(prev);
        }
        conn.clear_timer_links();
        self.armed_timers.set(self.armed_timers.get().saturating_sub(1));
    }

    /// How long until the earliest non-empty wheel slot comes up.
    fn next_timer_wait(&self) -> Option<Duration> {
        if self.armed_timers.get() == 0 {
            return None;
        }
        let wheel = self.wheel.borrow();
        let first = self.wheel_tick.get() + 1;
        (first..first + SLOTS)
            .find(|tick| wheel[(tick % SLOTS) as usize] != NO_TOKEN)
            .map(|tick| {
                let at = tick * TICK_MS;
                Duration::from_millis(at.saturating_sub(self.now_ms()))
            })
    }

    /// Fires the timers due: walks the wheel slots from the last processed tick up
    /// to now (the current tick is walked again next time: it is not over yet).
    fn run_timers(&self) -> usize {
        let now = self.now_ms();
        let now_tick = Self::tick_of(now);
        let from = self.wheel_tick.get() + 1;
        if now_tick < from {
            return 0;
        }
        let mut due = Vec::new();
        if self.armed_timers.get() > 0 {
            for tick in from..from + (now_tick - from + 1).min(SLOTS) {
                let mut cursor = self.wheel.borrow()[(tick % SLOTS) as usize];
                while let Some(conn) = self.conn_at(cursor as usize) {
                    // SAFETY: live while in a slot (see `turn`).
                    let conn = unsafe { &*conn };
                    let next = conn.timer_links().map_or(NO_TOKEN, |(_, next, _)| next);
                    if conn.timer_deadline() <= now {
                        self.disarm_timer(conn, cursor);
                        due.push(cursor);
                    }
                    cursor = next;
                }
            }
        }
        self.wheel_tick
            .set(now_tick.saturating_sub(1).max(self.wheel_tick.get()));
        for &token in &due {
            if let Some(conn) = self.conn_at(token as usize) {
                // SAFETY: live while in a slot; a callback of an earlier timer may
                // have released it, which empties its slot.
                unsafe { &*conn }.on_timer();
            }
        }
        due.len()
    }

    // ------------------------------------------------------------ other threads

    /// Thread-safe: queues `f(arg)` to run on the reactor's thread and wakes it.
    ///
    /// # Safety
    /// `reactor` points to a live reactor (released only after every thread stopped
    /// deferring to it).
    pub unsafe fn defer_on(reactor: *const Reactor, f: DeferFn, arg: *mut c_void) -> Result<()> {
        // SAFETY: only the `shared` field is read, through a raw field pointer, so no
        // reference to the thread-bound parts of the reactor is made on this thread;
        // `shared` is set at creation and never changes.
        let shared: &Arc<Shared> = unsafe { &*std::ptr::addr_of!((*reactor).shared) };
        shared
            .deferred
            .lock()
            .map_err(|_| Error::State)?
            .push((f, arg as usize));
        shared.waker.wake().map_err(|_| Error::Io)
    }

    fn run_deferred(&self) -> usize {
        let batch = std::mem::take(&mut *self.shared.deferred.lock().unwrap_or_else(|e| e.into_inner()));
        for (f, arg) in &batch {
            f(*arg as *mut c_void);
        }
        batch.len()
    }

    // ------------------------------------------------------------ the loop

    /// Runs one turn: waits at most `timeout_ms` (negative: until something
    /// happens) for I/O, handles it and the due timers, then writes the output of
    /// the turn. Returns the number of events handled.
    pub fn dispatch(&self, timeout_ms: i32) -> Result<usize> {
        if self.dispatching.replace(true) {
            return Err(Error::Reentrant);
        }
        let result = self.turn(timeout_ms);
        self.flush_dirty();
        self.free_graveyard();
        self.dispatching.set(false);
        result
    }

    fn turn(&self, timeout_ms: i32) -> Result<usize> {
        self.update_now();
        // Output queued between turns goes out before waiting.
        self.flush_dirty();
        let mut timeout = if timeout_ms < 0 {
            None
        } else {
            Some(Duration::from_millis(timeout_ms as u64))
        };
        if !self.ready.borrow().is_empty() {
            timeout = Some(Duration::ZERO);
        }
        if let Some(wait) = self.next_timer_wait() {
            timeout = Some(timeout.map_or(wait, |t| t.min(wait)));
        }
        let mut events = std::mem::replace(&mut *self.events.borrow_mut(), Events::with_capacity(0));
        let polled = self.poll.borrow_mut().poll(&mut events, timeout);
        if let Err(e) = polled {
            *self.events.borrow_mut() = events;
            return if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(Error::Io)
            };
        }
        self.update_now();
        let mut handled = 0;
        for event in events.iter() {
            handled += 1;
            if event.token() == WAKER_TOKEN {
                handled += self.run_deferred();
                continue;
            }
            let slot = self.slots.borrow().get(event.token().0).copied();
            match slot {
                Some(Slot::Conn(conn)) => {
                    // SAFETY: slots hold live objects: a released one leaves its slot
                    // at once and is freed only when the dispatch ends.
                    let conn = unsafe { &*conn };
                    let peer_closed = event.is_read_closed() || event.is_error();
                    conn.on_event(event.is_readable() || peer_closed, event.is_writable(), peer_closed);
                }
                Some(Slot::Acceptor(acceptor)) => {
                    // SAFETY: as above.
                    unsafe { &*acceptor }.on_readable();
                }
                _ => {}
            }
        }
        *self.events.borrow_mut() = events;
        handled += self.run_ready();
        handled += self.run_timers();
        Ok(handled)
    }

    /// Runs `f` on the connections listed in `list` so far (those it adds go to
    /// the next batch), reusing one vector's memory from turn to turn.
    fn run_list(&self, list: &RefCell<Vec<usize>>, f: impl Fn(&Conn)) -> usize {
        let mut batch = std::mem::take(&mut *self.batch.borrow_mut());
        std::mem::swap(&mut batch, &mut *list.borrow_mut());
        let count = batch.len();
        for &index in &batch {
            if let Some(conn) = self.conn_at(index) {
                // SAFETY: live while in a slot (see `turn`).
                f(unsafe { &*conn });
            }
        }
        batch.clear();
        let mut kept = self.batch.borrow_mut();
        if kept.capacity() < batch.capacity() {
            *kept = batch;
        }
        count
    }

    /// Reads from connections that had input left over.
    fn run_ready(&self) -> usize {
        self.run_list(&self.ready, Conn::on_ready)
    }

    fn flush_dirty(&self) {
        while self.run_list(&self.dirty, Conn::flush) > 0 {}
    }

    fn free_graveyard(&self) {
        let dead = std::mem::take(&mut *self.graveyard.borrow_mut());
        for slot in dead {
            match slot {
                // SAFETY: released objects came from Box::into_raw and nothing refers
                // to them once the dispatch that buried them has returned.
                Slot::Conn(conn) => drop(unsafe { Box::from_raw(conn as *mut Conn) }),
                // SAFETY: as above.
                Slot::Acceptor(acceptor) => drop(unsafe { Box::from_raw(acceptor as *mut Acceptor) }),
                Slot::Free => {}
            }
        }
    }

    /// Detaches every registered object (their sockets are closed, no callbacks
    /// run); they can still be released afterwards.
    pub fn detach_all(&self) {
        let slots = std::mem::take(&mut *self.slots.borrow_mut());
        for slot in slots {
            match slot {
                // SAFETY: live while in a slot.
                Slot::Conn(conn) => unsafe { &*conn }.detach(),
                // SAFETY: as above.
                Slot::Acceptor(acceptor) => unsafe { &*acceptor }.detach(),
                Slot::Free => {}
            }
        }
        self.free_graveyard();
    }
}

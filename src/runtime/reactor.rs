//! The event loop: one `mio::Poll` (epoll, kqueue), a timer wheel for its
//! connections, a read buffer shared by all of them, lists of the connections
//! with output to write or input left to read, and a thread-safe queue of jobs
//! to run on its thread.
//!
//! Objects registered on the reactor (connections, acceptors) are owned by the
//! program or by the reactor itself; the reactor keeps raw pointers to them in
//! a slab indexed by token. Everything is used from one thread and changed
//! through `Cell`/`RefCell`, so handlers may call back into any object while
//! the reactor runs.

use std::cell::{Cell, RefCell};
use std::io;
use std::marker::PhantomPinned;
use std::net::SocketAddr;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Registry, Token, Waker};

use crate::proto::sender::SPARE_CAPACITY;
use crate::proto::session::Session;
use crate::runtime::budget::MemoryBudget;
use crate::runtime::config::ConnConfig;
use crate::runtime::drain::Drain;
use crate::runtime::error::{Error, Result};
use crate::runtime::log::Log;
use crate::runtime::resolver::{system_resolver, ResolveFn};
use crate::runtime::stats::Counters;
use crate::runtime::timers::{TimerLinks, TimerWheel};
use crate::runtime::topics::{Delivery, HeldFrame, TopicGroup, Topics};
use crate::runtime::uring::{Driver, IoBackend, RingEvent};
use crate::runtime::watch::Watches;

/// Size of the read buffer shared by every connection of a reactor.
pub const READ_BUFFER_SIZE: usize = 64 << 10;

const WAKER_TOKEN: Token = Token(usize::MAX);
/// Events taken from the poll at once.
const EVENTS_PER_POLL: usize = 1024;
/// Writes between two looks at the sockets while a turn's output is written
/// (see `flush_dirty`).
const POLL_WHILE_FLUSHING: usize = 128;

/// What the reactor drives: its connections and acceptors.
pub(crate) trait Source {
    /// Readiness from the poll.
    fn on_event(&self, readable: bool, writable: bool, peer_closed: bool);
    /// Input left over from an earlier turn may be read now.
    fn on_ready(&self) {}
    /// Output queued during the turn may be written now.
    fn flush(&self) {}
    /// The deadline armed in the timer wheel passed.
    fn on_timer(&self) {}
    /// The links of this object in the timer wheel, if it uses timers.
    fn timer_links(&self) -> Option<&TimerLinks> {
        None
    }
    /// A name resolution it asked for (`request`) finished.
    fn on_resolved(&self, _request: u32, _addrs: io::Result<Vec<SocketAddr>>) {}
    /// A message published to a topic it subscribes to (connections only).
    fn deliver(&self, _frame: &std::rc::Rc<HeldFrame>) -> Delivery {
        Delivery::NotOpen
    }
    /// Its output was full for a topic whose policy closes slow subscribers.
    fn close_slow(&self) {}
    /// A completion of the io_uring transport for it.
    #[cfg_attr(not(feature = "io-uring"), allow(dead_code))]
    fn on_ring(&self, _event: RingEvent<'_>) {}
    /// Refuses its upgrade now with `status` if a decision on it is pending
    /// (connections only); returns whether it did.
    fn refuse_pending(&self, _status: u16) -> bool {
        false
    }
    /// A drain was asked for: stop accepting (acceptors).
    fn stop_accepting(&self) {}
    /// The reactor's drain begins: end (connections: refuse a handshake in
    /// progress, close with 1001).
    fn drain(&self) {}
    /// The drain's deadline passed: end now. Returns true when a connection
    /// was cut.
    fn cut(&self) -> bool {
        false
    }
    /// The reactor is going away: close the socket, run no handler. Returns
    /// true when the object belongs to the reactor (which then frees it).
    fn detach(&self) -> bool;
}

/// Work handed to the reactor's thread from any thread.
pub type Job = Box<dyn FnOnce(&Reactor) + Send>;

/// Jobs a reactor's queue holds at most: a thread that defers (or publishes
/// to it) faster than it runs them is told [`Error::QueueFull`] instead of
/// growing the queue without bound.
pub const MAX_QUEUED_JOBS: usize = 65_536;
/// Bytes of published messages its queue holds at most (a message larger
/// than this is taken when the queue holds none).
pub const MAX_QUEUED_BYTES: usize = 64 << 20;

/// What the reactor shares with other threads.
struct Shared {
    jobs: Mutex<Jobs>,
    waker: Waker,
    /// The reactors its publishes reach (itself alone at first).
    group: Mutex<Arc<TopicGroup>>,
}

/// The jobs waiting for the reactor's thread.
#[derive(Default)]
struct Jobs {
    queue: Vec<Job>,
    /// Bytes of the published messages among them.
    bytes: usize,
    /// The reactor is gone: nothing will run them.
    closed: bool,
}

impl Shared {
    fn jobs(&self) -> std::sync::MutexGuard<'_, Jobs> {
        // A job runs outside the lock: a panic cannot leave the queue half-changed.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job`, which holds `bytes` of published messages, and wakes the
    /// reactor, or changes nothing: a job that could not be queued, or the
    /// reactor not woken for, is not kept.
    fn defer(&self, job: Job, bytes: usize) -> Result<()> {
        let mut jobs = self.jobs();
        if jobs.closed {
            return Err(Error::State);
        }
        let too_many_bytes = jobs.bytes > 0 && jobs.bytes.saturating_add(bytes) > MAX_QUEUED_BYTES;
        if jobs.queue.len() >= MAX_QUEUED_JOBS || too_many_bytes {
            return Err(Error::QueueFull);
        }
        jobs.queue.push(job);
        // Woken under the lock: the reactor cannot take the job meanwhile, so
        // on failure the job is still the last one, and taken back.
        if self.waker.wake().is_err() {
            jobs.queue.pop();
            return Err(Error::Io("waking the reactor"));
        }
        jobs.bytes += bytes;
        Ok(())
    }

    /// The reactor goes away: later defers fail, waiting jobs are dropped.
    fn close(&self) {
        let waiting = {
            let mut jobs = self.jobs();
            jobs.closed = true;
            jobs.bytes = 0;
            std::mem::take(&mut jobs.queue)
        };
        drop(waiting);
    }
}

/// A handle to a reactor that any thread may hold: runs jobs on its thread.
#[derive(Clone)]
pub struct Remote(Arc<Shared>);

impl Remote {
    /// Queues `job` to run on the reactor's thread during a later dispatch, in
    /// the order deferred, and wakes the reactor if it is waiting. On failure
    /// nothing is queued (the job is dropped): `State` once the reactor is
    /// gone, [`Error::QueueFull`] when [`MAX_QUEUED_JOBS`] wait, `Io` if it
    /// could not be woken.
    pub fn defer(&self, job: Job) -> Result<()> {
        self.0.defer(job, 0)
    }

    /// Like [`Remote::defer`], for a job that holds `bytes` of a published
    /// message (bounded apart: [`MAX_QUEUED_BYTES`]).
    pub(crate) fn defer_publish(&self, job: Job, bytes: usize) -> Result<()> {
        self.0.defer(job, bytes)
    }

    /// Whether both handles are of the same reactor.
    pub fn same_reactor(&self, other: &Remote) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The group of reactors this one publishes to.
    pub(crate) fn group(&self) -> Arc<TopicGroup> {
        Arc::clone(&self.0.group.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Moves this reactor into `group` (leaving its former one); the caller
    /// holds the lock on group changes (see `topics.rs`).
    pub(crate) fn set_group(&self, group: Arc<TopicGroup>) {
        let old = std::mem::replace(
            &mut *self.0.group.lock().unwrap_or_else(|e| e.into_inner()),
            Arc::clone(&group),
        );
        old.leave(self);
        group.join(self.clone());
    }
}

type SourcePtr = NonNull<dyn Source>;

/// A reactor's memory use, for the program's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Bytes its connections hold in buffers.
    pub buffered: usize,
    /// Connections not read because the budget is spent.
    pub waiting: usize,
}

/// The event loop of one thread: its connections, acceptors, watched fds and
/// timers, and the jobs other threads hand it.
///
/// A reactor never moves: the objects made on it keep its address, so
/// [`Reactor::new`] returns it pinned in a box. The box itself moves freely,
/// and `&reactor` is a `&Reactor` wherever one is asked for:
///
/// ```
/// use std::os::fd::AsRawFd;
/// use std::pin::Pin;
/// use std::rc::Rc;
/// use wsconn::runtime::reactor::Reactor;
/// use wsconn::runtime::watch::READABLE;
///
/// struct Server {
///     reactor: Pin<Box<Reactor>>,
/// }
/// let (_a, b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let reactor = Reactor::new().unwrap();
/// reactor.watch(b.as_raw_fd(), READABLE, Rc::new(|_, _, _| {})).unwrap();
/// let server = Server { reactor }; // the box moved, the reactor did not
/// fn turn(reactor: &Reactor) -> usize {
///     reactor.dispatch(0).unwrap()
/// }
/// assert_eq!(turn(&server.reactor), 0);
/// ```
///
/// Moving the reactor itself (into a struct, another box, out of its pin)
/// does not compile, so no object is left pointing where it was:
///
/// ```compile_fail
/// use std::os::fd::AsRawFd;
/// use std::rc::Rc;
/// use wsconn::runtime::reactor::Reactor;
/// use wsconn::runtime::watch::READABLE;
///
/// struct Server {
///     reactor: Reactor,
/// }
/// let (_a, b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let reactor = Reactor::new().unwrap();
/// reactor.watch(b.as_raw_fd(), READABLE, Rc::new(|_, _, _| {})).unwrap();
/// let server = Server { reactor };
/// ```
///
/// ```compile_fail
/// use wsconn::runtime::reactor::Reactor;
/// let reactor = Reactor::new().unwrap();
/// let moved: Reactor = *std::pin::Pin::into_inner(reactor);
/// ```
///
/// ```compile_fail
/// use wsconn::runtime::reactor::Reactor;
/// let mut a = Reactor::new().unwrap();
/// let mut b = Reactor::new().unwrap();
/// std::mem::swap(&mut *a, &mut *b);
/// ```
pub struct Reactor {
    poll: RefCell<Poll>,
    events: RefCell<Events>,
    registry: Registry,
    shared: Arc<Shared>,
    slots: RefCell<Vec<Option<SourcePtr>>>,
    free_slots: RefCell<Vec<usize>>,
    timers: TimerWheel,
    /// Connections with output to write at the end of the turn.
    dirty: RefCell<Vec<usize>>,
    /// Connections with input left to read (read cap reached, or reading resumed).
    ready: RefCell<Vec<usize>>,
    /// The batch being processed from `dirty` or `ready` (kept to reuse its memory).
    batch: RefCell<Vec<usize>>,
    /// Objects released during a dispatch, freed when it ends.
    graveyard: RefCell<Vec<SourcePtr>>,
    read_buffer: RefCell<Vec<u8>>,
    /// One drained output buffer, lent to the connection whose input is
    /// processed and taken back once its output is written: idle
    /// connections hold none, busy ones allocate none.
    output_spare: Cell<Vec<u8>>,
    budget: MemoryBudget,
    counters: Counters,
    log: Log,
    drain: Drain,
    topics: Topics,
    watches: Watches,
    config: RefCell<Arc<ConnConfig>>,
    resolver: RefCell<ResolveFn>,
    dispatching: Cell<bool>,
    /// The text message a handler on this reactor is being lent right now
    /// (address, length): see `lending_text`.
    lent_text: Cell<(usize, usize)>,
    /// How long a turn polls without sleeping before it waits (0: it
    /// waits at once): see `set_busy_poll`.
    busy_poll: Cell<Duration>,
    start: Instant,
    now_ms: Cell<u64>,
    /// The io_uring transport, when the reactor uses it (see `runtime::uring`).
    ring: Option<Box<Driver>>,
    /// Objects keep the reactor's address: it must not move (see `new`).
    _pinned: PhantomPinned,
}

impl Reactor {
    /// A new reactor, pinned: connections, acceptors, watches and timers made
    /// on it keep its address, so it stays where it is until dropped (which
    /// detaches them). Pass `&reactor` where a `&Reactor` is asked for.
    ///
    /// Its transport is epoll, or io_uring where `WSCONN_IO=uring` asks for
    /// it (feature `io-uring`; epoll where the kernel refuses it): see
    /// [`IoBackend::from_env`] and [`Reactor::with_io`].
    pub fn new() -> Result<Pin<Box<Reactor>>> {
        Self::with_io(IoBackend::from_env())
    }

    /// A new reactor on the transport `io` (io_uring falls back to epoll
    /// where it is not available: [`Reactor::io`] says which it got).
    pub fn with_io(io: IoBackend) -> Result<Pin<Box<Reactor>>> {
        let poll = Poll::new().map_err(|_| Error::Io("creating the poll"))?;
        let registry = poll
            .registry()
            .try_clone()
            .map_err(|_| Error::Io("creating the poll"))?;
        let waker = Waker::new(poll.registry(), WAKER_TOKEN).map_err(|_| Error::Io("creating the poll"))?;
        let ring = match io {
            IoBackend::Uring => {
                use std::os::fd::AsRawFd;
                Driver::new(poll.as_raw_fd()).ok().map(Box::new)
            }
            IoBackend::Epoll => None,
        };
        let reactor = Reactor {
            poll: RefCell::new(poll),
            events: RefCell::new(Events::with_capacity(EVENTS_PER_POLL)),
            registry,
            shared: Arc::new(Shared {
                jobs: Mutex::default(),
                waker,
                group: Mutex::new(Arc::default()),
            }),
            slots: RefCell::new(Vec::new()),
            free_slots: RefCell::new(Vec::new()),
            timers: TimerWheel::new(),
            dirty: RefCell::new(Vec::new()),
            ready: RefCell::new(Vec::new()),
            batch: RefCell::new(Vec::new()),
            graveyard: RefCell::new(Vec::new()),
            read_buffer: RefCell::new(Vec::new()),
            output_spare: Cell::new(Vec::new()),
            budget: MemoryBudget::default(),
            counters: Counters::default(),
            log: Log::default(),
            drain: Drain::default(),
            topics: Topics::default(),
            watches: Watches::default(),
            config: RefCell::new(Arc::default()),
            resolver: RefCell::new(system_resolver()),
            dispatching: Cell::new(false),
            lent_text: Cell::new((0, 0)),
            busy_poll: Cell::new(Duration::ZERO),
            start: Instant::now(),
            now_ms: Cell::new(0),
            ring,
            _pinned: PhantomPinned,
        };
        reactor.remote().group().join(reactor.remote());
        Ok(Box::pin(reactor))
    }

    /// The transport it runs on.
    pub fn io(&self) -> IoBackend {
        match self.ring {
            Some(_) => IoBackend::Uring,
            None => IoBackend::Epoll,
        }
    }

    /// The io_uring transport, when it runs on one.
    pub(crate) fn ring(&self) -> Option<&Driver> {
        self.ring.as_deref()
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A handle for other threads.
    pub fn remote(&self) -> Remote {
        Remote(Arc::clone(&self.shared))
    }

    /// Milliseconds since the reactor started, as of the current turn.
    pub fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }

    pub(crate) fn update_now(&self) {
        self.now_ms.set(self.start.elapsed().as_millis() as u64);
    }

    /// The current time (between turns, the clock is read again).
    pub(crate) fn current_ms(&self) -> u64 {
        if !self.is_dispatching() {
            self.update_now();
        }
        self.now_ms()
    }

    /// The options connections created on this reactor start with.
    pub fn config(&self) -> Arc<ConnConfig> {
        Arc::clone(&self.config.borrow())
    }

    pub fn set_config(&self, config: Arc<ConnConfig>) {
        *self.config.borrow_mut() = config;
    }

    /// How client connections resolve host names (on worker threads).
    pub fn resolver(&self) -> ResolveFn {
        Arc::clone(&self.resolver.borrow())
    }

    /// Resolves host names with `resolve` instead of the system's resolver.
    pub fn set_resolver(&self, resolve: ResolveFn) {
        *self.resolver.borrow_mut() = resolve;
    }

    /// Runs `call` while `text` (a received message, validated, in the
    /// library's buffers, read-only for the handler) is lent to it: sending
    /// exactly these bytes back (an echo) needs no second check
    /// (`lent_text`). State of the reactor, not of the thread: a shared
    /// library reaches thread-locals through a function call.
    pub(crate) fn lending_text<R>(&self, text: &str, call: impl FnOnce() -> R) -> R {
        /// Restores the previous loan even if `call` unwinds.
        struct Restore<'a>(&'a Cell<(usize, usize)>, (usize, usize));
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let previous = self.lent_text.replace((text.as_ptr() as usize, text.len()));
        let _restore = Restore(&self.lent_text, previous);
        call()
    }

    /// Whether `data` is exactly the text being lent (see `lending_text`).
    pub(crate) fn is_lent_text(&self, data: &[u8]) -> bool {
        !data.is_empty() && self.lent_text.get() == (data.as_ptr() as usize, data.len())
    }

    pub fn is_dispatching(&self) -> bool {
        self.dispatching.get()
    }

    // ------------------------------------------------------------ registration

    /// Registers an object; events for the token returned go to it.
    pub(crate) fn add(&self, source: SourcePtr) -> Token {
        let mut slots = self.slots.borrow_mut();
        match self.free_slots.borrow_mut().pop() {
            Some(index) => {
                slots[index] = Some(source);
                Token(index)
            }
            None => {
                slots.push(Some(source));
                Token(slots.len() - 1)
            }
        }
    }

    /// Forgets a token: later events for it are ignored. Its timer must be
    /// disarmed first.
    pub(crate) fn remove(&self, token: Token) {
        let mut slots = self.slots.borrow_mut();
        if let Some(slot) = slots.get_mut(token.0) {
            if slot.take().is_some() {
                self.free_slots.borrow_mut().push(token.0);
            }
        }
    }

    /// The object registered at `index`, as the slot holds it.
    fn slot(&self, index: usize) -> Option<SourcePtr> {
        self.slots.borrow().get(index).copied().flatten()
    }

    pub(crate) fn source(&self, index: usize) -> Option<&dyn Source> {
        let source = self.slot(index)?;
        // SAFETY: slots hold live objects: a released one leaves its slot at once
        // and is freed only when the dispatch ends (see `bury`).
        Some(unsafe { source.as_ref() })
    }

    /// Frees an object released from inside a handler once the dispatch ends.
    ///
    /// # Safety
    /// `source` came from `Box::into_raw` and is not registered anymore.
    pub(crate) unsafe fn bury(&self, source: SourcePtr) {
        self.graveyard.borrow_mut().push(source);
    }

    // ------------------------------------------------------------ shared parts

    /// Takes the shared read buffer (given back with `return_read_buffer`).
    pub(crate) fn take_read_buffer(&self) -> Vec<u8> {
        let mut buffer = std::mem::take(&mut *self.read_buffer.borrow_mut());
        if buffer.len() < READ_BUFFER_SIZE {
            buffer = vec![0; READ_BUFFER_SIZE];
        }
        buffer
    }

    pub(crate) fn return_read_buffer(&self, buffer: Vec<u8>) {
        *self.read_buffer.borrow_mut() = buffer;
    }

    /// Lends the spare output buffer to `session` if it holds none.
    #[inline]
    pub(crate) fn lend_output_buffer(&self, session: &Session) {
        let spare = self.output_spare.take();
        if spare.capacity() > 0 {
            if let Some(back) = session.lend_output_buffer(spare) {
                self.output_spare.set(back);
            }
        }
    }

    /// Takes `session`'s output buffer back if all of it was written.
    #[inline]
    pub(crate) fn take_back_output_buffer(&self, session: &Session) {
        if let Some(buffer) = session.take_drained_output() {
            self.keep_output_buffer(buffer);
        }
    }

    /// Keeps an emptied output buffer (e.g. one an io_uring send wrote) if
    /// it beats the one kept.
    pub(crate) fn keep_output_buffer(&self, mut buffer: Vec<u8>) {
        let spare = self.output_spare.take();
        if buffer.capacity() > spare.capacity() && buffer.capacity() <= SPARE_CAPACITY {
            buffer.clear();
            self.output_spare.set(buffer);
        } else {
            self.output_spare.set(spare);
        }
    }

    /// Its topics and their subscribers.
    pub(crate) fn topics(&self) -> &Topics {
        &self.topics
    }

    /// The program's file descriptors it watches.
    pub(crate) fn watches(&self) -> &Watches {
        &self.watches
    }

    /// Refuses now, with `status` (e.g. 503), every upgrade whose decision is
    /// still pending (noted as [`crate::runtime::refusal::Refusal::Shutdown`]);
    /// returns how many.
    pub fn refuse_pending(&self, status: u16) -> usize {
        let mut refused = 0;
        self.each_source(|s| refused += usize::from(s.refuse_pending(status)));
        refused
    }

    /// Its counters (`stats.rs`).
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Its log (`log.rs`, told through `observe.rs`).
    pub(crate) fn log_state(&self) -> &Log {
        &self.log
    }

    /// Its drain (`drain.rs`).
    pub(crate) fn drain_state(&self) -> &Drain {
        &self.drain
    }

    /// Runs `f` on every registered object, looked up one at a time: `f` may
    /// end or release others (their slots are then skipped).
    pub(crate) fn each_source(&self, mut f: impl FnMut(&dyn Source)) {
        let count = self.slots.borrow().len();
        for index in 0..count {
            if let Some(source) = self.source(index) {
                f(source);
            }
        }
    }

    // ------------------------------------------------------------ memory

    /// The budget its connections' buffers are held to.
    pub(crate) fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// Limits the bytes all connections of this reactor hold (0: no limit).
    /// Over it, connections holding a partial message or output are not read
    /// until some is given back, except one that keeps reading its message to
    /// its end; compression streams are trimmed once their message is handled;
    /// new connections agree on no context takeover.
    pub fn set_memory_budget(&self, bytes: usize) {
        if self.budget.set_limit(bytes) {
            self.wake_waiting();
        }
    }

    /// Busy polling: before it sleeps, a turn looks for I/O without waiting
    /// for up to `spin` (at most 1 s), and takes what comes then at once.
    /// Peers that talk to a thread that does not sleep do not pay for waking
    /// it (on loopback and fast networks, a wake-up costs the sender more
    /// than the message); the thread spends its CPU on polling instead while
    /// it is idle. Zero (the default) sleeps at once.
    pub fn set_busy_poll(&self, spin: Duration) {
        self.busy_poll.set(spin.min(Duration::from_secs(1)));
    }

    pub fn busy_poll(&self) -> Duration {
        self.busy_poll.get()
    }

    pub fn memory_budget(&self) -> usize {
        self.budget.limit()
    }

    /// What the connections hold now: bytes buffered (KiB-rounded per
    /// connection) and how many connections the budget keeps from reading.
    pub fn memory_usage(&self) -> MemoryUsage {
        MemoryUsage {
            buffered: self.budget.used(),
            waiting: self.budget.held_back(),
        }
    }

    /// How many connections were closed (1009) because their peer's
    /// compressed messages inflated past the configured ratio
    /// (`DeflateConfig::max_inflate_ratio`), since the reactor was made.
    pub fn inflate_ratio_closes(&self) -> u64 {
        self.counters.inflate_ratio_closes.get()
    }

    /// Reads again, in order, the connections that waited for memory.
    pub(crate) fn wake_waiting(&self) {
        for token in self.budget.take_waiting() {
            self.mark_ready(Token(token as usize));
        }
    }

    // ------------------------------------------------------------ scheduling

    /// Output to write at the end of this turn (or at the start of the next one).
    pub(crate) fn mark_dirty(&self, token: Token) {
        self.dirty.borrow_mut().push(token.0);
    }

    /// Input to read without waiting for the socket to signal it again.
    pub(crate) fn mark_ready(&self, token: Token) {
        self.ready.borrow_mut().push(token.0);
    }

    fn links_of(&self, token: u32) -> Option<&TimerLinks> {
        // SAFETY: see `source`; the links live as long as their object.
        let source = self.slot(token as usize)?;
        unsafe { source.as_ref() }.timer_links()
    }

    /// Arms (or moves) the timer of the object at `token` to `deadline_ms`.
    pub(crate) fn arm_timer(&self, token: Token, deadline_ms: u64) {
        self.timers.arm(token.0 as u32, deadline_ms, |t| self.links_of(t));
    }

    /// Disarms the timer of the object at `token`, if armed.
    pub(crate) fn disarm_timer(&self, token: Token) {
        self.timers.disarm(token.0 as u32, |t| self.links_of(t));
    }

    fn run_timers(&self) -> usize {
        let due = self.timers.expire(self.now_ms(), |t| self.links_of(t));
        // Each due object as it is now: a handler of an earlier timer may
        // release it (its slot is then empty) or release it and make another
        // object that takes its slot, which must not fire in its stead. An
        // object released during the dispatch is freed only when it ends, so
        // no new one can have its address meanwhile.
        let due: Vec<(usize, SourcePtr)> = due
            .iter()
            .filter_map(|&token| Some((token as usize, self.slot(token as usize)?)))
            .collect();
        for &(token, object) in &due {
            if self
                .slot(token)
                .is_some_and(|now| std::ptr::addr_eq(now.as_ptr(), object.as_ptr()))
            {
                if let Some(source) = self.source(token) {
                    source.on_timer();
                }
            }
        }
        due.len()
    }

    // ------------------------------------------------------------ other threads

    /// Thread-safe: queues `job` to run on the reactor's thread and wakes it.
    ///
    /// # Safety
    /// `reactor` points to a live reactor (released only after every thread
    /// stopped deferring to it).
    pub unsafe fn defer_on(reactor: *const Reactor, job: Job) -> Result<()> {
        // SAFETY: only the `shared` field is read, through a raw field pointer, so no
        // reference to the thread-bound parts of the reactor is made on this thread;
        // `shared` is set at creation and never changes.
        let shared: &Arc<Shared> = unsafe { &*std::ptr::addr_of!((*reactor).shared) };
        shared.defer(job, 0)
    }

    /// Thread-safe: a handle to `reactor` for this thread.
    ///
    /// # Safety
    /// As for [`Reactor::defer_on`].
    pub unsafe fn remote_of(reactor: *const Reactor) -> Remote {
        // SAFETY: as in `defer_on`: only the thread-safe `shared` field is read.
        let shared: &Arc<Shared> = unsafe { &*std::ptr::addr_of!((*reactor).shared) };
        Remote(Arc::clone(shared))
    }

    fn run_jobs(&self) -> usize {
        let batch = {
            let mut jobs = self.shared.jobs();
            jobs.bytes = 0;
            std::mem::take(&mut jobs.queue)
        };
        let count = batch.len();
        for job in batch {
            job(self);
        }
        count
    }

    /// Hands the outcome of a name resolution to the object at `token` (which
    /// checks that `request` is still the one it waits for).
    pub(crate) fn deliver_resolved(&self, token: Token, request: u32, addrs: io::Result<Vec<SocketAddr>>) {
        if let Some(source) = self.source(token.0) {
            source.on_resolved(request, addrs);
        }
    }

    // ------------------------------------------------------------ the loop

    /// Runs one turn: waits at most `timeout_ms` (negative: until something
    /// happens) for I/O, handles it and the due timers, then writes the output of
    /// the turn. Returns the number of events handled.
    ///
    /// A panic in a handler unwinds out of `dispatch`; a program that catches
    /// it may dispatch again (what the rest of that turn had to handle may be
    /// lost: a connection whose event it was is read again when more arrives).
    pub fn dispatch(&self, timeout_ms: i32) -> Result<usize> {
        if self.dispatching.replace(true) {
            return Err(Error::Reentrant);
        }
        /// Ends the dispatch even when a handler's panic unwinds through it.
        struct Dispatching<'a>(&'a Cell<bool>);
        impl Drop for Dispatching<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let _dispatching = Dispatching(&self.dispatching);
        let result = self.turn(timeout_ms);
        self.flush_dirty();
        self.drain_step();
        self.tell_log_summaries();
        if let Some(ring) = self.ring() {
            // The turn's output leaves before `dispatch` returns.
            ring.submit();
        }
        self.free_graveyard();
        result
    }

    fn turn(&self, timeout_ms: i32) -> Result<usize> {
        self.update_now();
        // Output queued between turns goes out before waiting.
        self.flush_dirty();
        let mut timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        if !self.ready.borrow().is_empty() {
            timeout = Some(Duration::ZERO);
        }
        if let Some(wait) = self.timers.next_wait(self.now_ms()) {
            timeout = Some(timeout.map_or(wait, |t| t.min(wait)));
        }
        // A drain to begin or end, a log summary to tell.
        let due = [
            self.drain_wait(),
            self.log.summary_due().map(|d| d.saturating_sub(self.now_ms())),
        ];
        for wait in due.into_iter().flatten().map(Duration::from_millis) {
            timeout = Some(timeout.map_or(wait, |t| t.min(wait)));
        }
        let mut handled = self.poll_and_handle(timeout)?;
        handled += self.run_list(&self.ready, |s| s.on_ready());
        handled += self.run_timers();
        Ok(handled)
    }

    /// Waits at most `timeout` for I/O and runs the handlers of what happened.
    /// Returns the number of events handled.
    fn poll_and_handle(&self, timeout: Option<Duration>) -> Result<usize> {
        let poll = |wait| match self.ring() {
            Some(ring) => ring.turn(self, wait).map_err(|_| Error::Io("waiting on the ring")),
            None => self.poll_epoll(wait),
        };
        let mut timeout = timeout;
        if let Some(handled) = self.spin(&mut timeout, || poll(Some(Duration::ZERO)))? {
            return Ok(handled);
        }
        poll(timeout)
    }

    /// Busy polling (`set_busy_poll`): polls with `poll_now` until it finds
    /// something or the spin (or `timeout`, if shorter) has passed. `None`:
    /// nothing came, and `timeout` is what is left of it to wait.
    fn spin(
        &self,
        timeout: &mut Option<Duration>,
        mut poll_now: impl FnMut() -> Result<usize>,
    ) -> Result<Option<usize>> {
        let spin = timeout.map_or(self.busy_poll.get(), |t| t.min(self.busy_poll.get()));
        if spin.is_zero() {
            return Ok(None);
        }
        let start = Instant::now();
        loop {
            let handled = poll_now()?;
            if handled > 0 {
                return Ok(Some(handled));
            }
            let spent = start.elapsed();
            if spent >= spin {
                *timeout = timeout.map(|t| t.saturating_sub(spent));
                return Ok(None);
            }
            std::hint::spin_loop();
        }
    }

    /// Waits at most `timeout` for epoll's events and handles them (on the
    /// ring: when the ring saw the epoll instance ready).
    pub(crate) fn poll_epoll(&self, timeout: Option<Duration>) -> Result<usize> {
        let mut events = std::mem::replace(&mut *self.events.borrow_mut(), Events::with_capacity(0));
        if events.capacity() == 0 {
            // Never given back: a handler's panic unwound through the last turn.
            events = Events::with_capacity(EVENTS_PER_POLL);
        }
        let polled = self.poll.borrow_mut().poll(&mut events, timeout);
        if let Err(e) = polled {
            *self.events.borrow_mut() = events;
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(Error::Io("polling"))
            };
        }
        self.update_now();
        let mut handled = 0;
        for event in events.iter() {
            handled += 1;
            if event.token() == WAKER_TOKEN {
                handled += self.run_jobs();
                continue;
            }
            if let Some(source) = self.source(event.token().0) {
                let peer_closed = event.is_read_closed() || event.is_error();
                source.on_event(event.is_readable() || peer_closed, event.is_writable(), peer_closed);
            }
        }
        *self.events.borrow_mut() = events;
        Ok(handled)
    }

    /// Runs `f` on the objects listed in `list` so far (those it adds go to the
    /// next batch), reusing one vector's memory from turn to turn. A handler's
    /// panic unwinding through `f` leaves the objects not run yet (and the one
    /// it ran on) in `list`: their READY and DIRTY flags stay set, so nothing
    /// would list them again, and a connection on the ring would wait for a
    /// receive nobody arms.
    fn run_list(&self, list: &RefCell<Vec<usize>>, mut f: impl FnMut(&dyn Source)) -> usize {
        /// Puts back what was not run if `f` unwinds.
        struct Rest<'a> {
            batch: Vec<usize>,
            next: usize,
            list: &'a RefCell<Vec<usize>>,
        }
        impl Drop for Rest<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.list.borrow_mut().extend_from_slice(&self.batch[self.next..]);
                }
            }
        }
        let mut rest = Rest {
            batch: std::mem::take(&mut *self.batch.borrow_mut()),
            next: 0,
            list,
        };
        std::mem::swap(&mut rest.batch, &mut *list.borrow_mut());
        let count = rest.batch.len();
        while rest.next < count {
            let index = rest.batch[rest.next];
            if let Some(source) = self.source(index) {
                f(source);
            }
            rest.next += 1;
        }
        let mut batch = std::mem::take(&mut rest.batch);
        batch.clear();
        let mut kept = self.batch.borrow_mut();
        if kept.capacity() < batch.capacity() {
            *kept = batch;
        }
        count
    }

    /// Writes the output queued so far (the drain's closes and refusals).
    pub(crate) fn flush_pending_output(&self) {
        self.flush_dirty();
    }

    /// Writes the output of the turn. A long batch (a publish to thousands of
    /// subscribers) looks at the sockets every `POLL_WHILE_FLUSHING` writes:
    /// input that arrived meanwhile (the next messages of a publisher) is
    /// handled at once, so the subscribers not yet written get it in the same
    /// write. Only the first batch does, so that a flood of input cannot keep
    /// the turn from ending (timers, reads deferred to the next turn).
    fn flush_dirty(&self) {
        let mut written = 0usize;
        self.run_list(&self.dirty, |s| {
            s.flush();
            written += 1;
            if written % POLL_WHILE_FLUSHING == 0 {
                // An error here shows again at the next turn's poll.
                let _ = self.poll_and_handle(Some(Duration::ZERO));
            }
        });
        while self.run_list(&self.dirty, |s| s.flush()) > 0 {}
    }

    fn free_graveyard(&self) {
        let dead = std::mem::take(&mut *self.graveyard.borrow_mut());
        for source in dead {
            // SAFETY: buried objects came from Box::into_raw and nothing refers to
            // them once the dispatch that buried them has returned.
            drop(unsafe { Box::from_raw(source.as_ptr()) });
        }
    }

    /// Detaches every registered object (their sockets are closed, no handlers
    /// run); objects the program owns can still be released afterwards.
    pub fn detach_all(&self) {
        self.watches.forget_all();
        let slots = std::mem::take(&mut *self.slots.borrow_mut());
        for source in slots.into_iter().flatten() {
            // SAFETY: live while in a slot.
            if unsafe { source.as_ref() }.detach() {
                // SAFETY: objects the reactor owns came from Box::into_raw.
                unsafe { self.bury(source) };
            }
        }
        self.free_graveyard();
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        self.remote().leave_group();
        self.shared.close();
        self.detach_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::event::Message;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A job that counts its runs; the Arc's count shows whether the queue
    /// still holds it.
    fn counting_job(runs: &Arc<std::sync::atomic::AtomicUsize>) -> Job {
        let runs = Arc::clone(runs);
        Box::new(move |_| {
            runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
    }

    #[test]
    #[cfg_attr(miri, ignore = "epoll: not run under Miri")]
    fn a_job_runs_once_and_a_refused_one_is_not_kept() {
        let reactor = Reactor::new().unwrap();
        let remote = reactor.remote();
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        remote.defer(counting_job(&runs)).unwrap();
        assert_eq!(Arc::strong_count(&runs), 2, "queued");
        reactor.dispatch(1000).unwrap();
        assert_eq!(runs.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(Arc::strong_count(&runs), 1, "run and dropped");
        drop(reactor);
        // Nobody will run it: refused, and nothing of it kept.
        assert_eq!(remote.defer(counting_job(&runs)), Err(Error::State));
        assert_eq!(Arc::strong_count(&runs), 1, "a refused job is not queued");
        assert_eq!(runs.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    #[cfg_attr(miri, ignore = "epoll and sockets: not run under Miri")]
    fn the_job_queue_is_bounded_in_jobs_and_in_published_bytes() {
        let reactor = Reactor::new().unwrap();
        let remote = reactor.remote();
        let ran = Arc::new(AtomicUsize::new(0));
        let job = || -> Job {
            let ran = Arc::clone(&ran);
            Box::new(move |_| {
                ran.fetch_add(1, Ordering::Relaxed);
            })
        };
        // A thread deferring faster than the reactor runs jobs is told so.
        let refused = (0..4 * MAX_QUEUED_JOBS).position(|_| remote.defer(job()).is_err());
        assert_eq!(refused, Some(MAX_QUEUED_JOBS));
        assert!(matches!(remote.defer(job()), Err(Error::QueueFull)));
        reactor.dispatch(0).unwrap();
        assert_eq!(ran.load(Ordering::Relaxed), MAX_QUEUED_JOBS);
        remote.defer(job()).unwrap();
        reactor.dispatch(0).unwrap();
        // Publishes from other threads: bounded in bytes too.
        // Framed: 1 MiB with its 10-byte header.
        let message = vec![7u8; (1 << 20) - 10];
        let refused = (0..1000).position(|_| remote.publish("t", Message::Binary(&message)).is_err());
        assert_eq!(refused, Some(MAX_QUEUED_BYTES >> 20));
        reactor.dispatch(0).unwrap();
        remote.publish("t", Message::Binary(&message)).unwrap();
        // One larger than the bound passes when nothing else waits.
        reactor.dispatch(0).unwrap();
        let huge = vec![7u8; MAX_QUEUED_BYTES + 1];
        remote.publish("t", Message::Binary(&huge)).unwrap();
    }
}

//! A WebSocket connection on a reactor: its socket, its session (receiver and
//! sender), its callbacks and its timer.
//!
//! All state sits in `Cell`/`RefCell` and every method takes `&self`, because the
//! program's callbacks run in the middle of the connection's own work and may call
//! back into it (send, close, pause, release).
//!
//! An idle connection is small: the session keeps no buffer when nothing is
//! incomplete, output goes through the reactor's shared buffer while input is
//! processed, the callback functions live in a table shared by connections set up
//! alike, and what is rarely needed sits in a box made on demand (`Extra`).

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void, CString};
use std::io::ErrorKind;
use std::net::ToSocketAddrs;
use std::os::fd::IntoRawFd;
use std::sync::Arc;

use mio::unix::SourceFd;
use mio::{Interest, Token};

use crate::proto::close_code::CloseCode;
use crate::proto::config::Config;
use crate::proto::error::{Error, Result};
use crate::proto::event::{Event, MessageKind};
use crate::proto::receiver::{Handler, Receiver};
use crate::proto::role::Role;
use crate::proto::sender::Sender;
use crate::proto::session::client_parts;
pub use crate::runtime::callbacks::*;
use crate::runtime::reactor::{Reactor, NO_TOKEN};
use crate::runtime::transport::{Socket, Transport};
use crate::runtime::url::WsUrl;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Created; no socket yet (or stopped).
    Idle,
    /// Client: TCP connect in progress.
    Connecting,
    /// Opening handshake in progress.
    Handshaking,
    Open,
    /// Socket closed, callbacks called.
    Closed,
}

/// Bits of `Conn::flags`.
const PAUSED: u16 = 1;
/// Input may be waiting in the socket (the last read did not drain it).
const READABLE: u16 = 2;
/// Queued in the reactor's dirty list.
const DIRTY: u16 = 4;
/// A drain callback is owed once output falls low.
const DRAIN_WANTED: u16 = 8;
const RELEASED: u16 = 16;
/// A close frame was sent or received: the close timer runs.
const CLOSING: u16 = 32;
/// Queued in the reactor's ready list.
const READY: u16 = 64;
/// The peer closed its side: read until EOF, a short read does not mean drained.
const PEER_CLOSED: u16 = 512;
/// The timer must be re-armed once the running feed returns.
const REARM: u16 = 1024;
/// Writable events are asked for (only while output waits for socket room).
const WRITE_INTEREST: u16 = 2048;
/// `arg` holds the arg of the callbacks set so far.
const HAS_ARG: u16 = 128;
/// Callbacks were set with different args: see `Extra::args`.
const SPLIT_ARGS: u16 = 256;

/// Reads per readiness event before other connections get their turn.
const READS_PER_TURN: usize = 16;

/// What few connections need, made on demand.
#[derive(Default)]
struct Extra {
    /// Per-callback args, when they differ (`SPLIT_ARGS`).
    args: [usize; CALLBACKS],
    close_reason: String,
    subprotocol: Option<CString>,
    /// Input read but not processed because reading was paused mid-buffer.
    backlog: Vec<u8>,
    /// Bytes the gbase read callback did not consume.
    read_tail: Vec<u8>,
    /// Options set on this connection, instead of the reactor's.
    config: Option<Arc<Config>>,
}

pub struct Conn {
    reactor: Cell<*const Reactor>,
    rx: RefCell<Option<Receiver>>,
    tx: RefCell<Option<Sender>>,
    fns: Cell<*const CallbackFns>,
    arg: Cell<*mut c_void>,
    extra: RefCell<Option<Box<Extra>>>,
    timer_deadline: Cell<u64>,
    fd: Cell<c_int>,
    token: Cell<u32>,
    timer_prev: Cell<u32>,
    timer_next: Cell<u32>,
    /// Reactor milliseconds, truncated to 32 bits (compared with wrapping_sub).
    started_ms: Cell<u32>,
    last_input_ms: Cell<u32>,
    ping_sent_ms: Cell<u32>,
    closing_since_ms: Cell<u32>,
    timer_slot: Cell<u16>,
    flags: Cell<u16>,
    close_code: Cell<u16>,
    phase: Cell<Phase>,
}

/// Routes session events to the connection during a feed.
struct ConnEvents<'a> {
    conn: &'a Conn,
}

impl Handler for ConnEvents<'_> {
    fn with_sender<R>(&mut self, f: impl FnOnce(&mut Sender) -> R) -> R {
        let mut tx = self.conn.tx.borrow_mut();
        match tx.as_mut() {
            Some(tx) => f(tx),
            // A callback stopped or released the connection: what the session
            // still writes goes nowhere.
            None => f(&mut Sender::new(Role::Server, 0)),
        }
    }

    fn on_event(&mut self, event: Event<'_>) {
        self.conn.deliver(event);
    }

    fn stopped(&self) -> bool {
        self.conn.has(PAUSED | RELEASED) || !matches!(self.conn.phase.get(), Phase::Handshaking | Phase::Open)
    }
}

fn type_code(kind: MessageKind) -> c_int {
    match kind {
        MessageKind::Text => 1,
        MessageKind::Binary => 2,
    }
}

impl Conn {
    pub fn new(reactor: *const Reactor) -> Conn {
        Conn {
            reactor: Cell::new(reactor),
            rx: RefCell::new(None),
            tx: RefCell::new(None),
            fns: Cell::new(&NO_CALLBACKS),
            arg: Cell::new(std::ptr::null_mut()),
            extra: RefCell::new(None),
            timer_deadline: Cell::new(u64::MAX),
            fd: Cell::new(-1),
            token: Cell::new(NO_TOKEN),
            timer_prev: Cell::new(NO_TOKEN),
            timer_next: Cell::new(NO_TOKEN),
            started_ms: Cell::new(0),
            last_input_ms: Cell::new(0),
            ping_sent_ms: Cell::new(0),
            closing_since_ms: Cell::new(0),
            timer_slot: Cell::new(0),
            flags: Cell::new(0),
            close_code: Cell::new(0),
            phase: Cell::new(Phase::Idle),
        }
    }

    fn reactor(&self) -> Option<&Reactor> {
        // SAFETY: the reactor outlives the connections made on it (documented) and
        // detaches them (setting this pointer to NULL) if it is released first.
        unsafe { self.reactor.get().as_ref() }
    }

    /// The reactor and this connection's token, while registered.
    fn registered(&self) -> Option<(&Reactor, u32)> {
        match self.token.get() {
            NO_TOKEN => None,
            token => self.reactor().map(|r| (r, token)),
        }
    }

    fn has(&self, flag: u16) -> bool {
        self.flags.get() & flag != 0
    }

    fn set(&self, flag: u16) {
        self.flags.set(self.flags.get() | flag);
    }

    fn clear(&self, flag: u16) {
        self.flags.set(self.flags.get() & !flag);
    }

    fn ptr(&self) -> *mut Conn {
        self as *const Conn as *mut Conn
    }

    fn socket(&self) -> Socket {
        Socket(self.fd.get())
    }

    fn extra(&self) -> std::cell::RefMut<'_, Box<Extra>> {
        std::cell::RefMut::map(self.extra.borrow_mut(), |e| e.get_or_insert_with(Box::default))
    }

    fn with_extra<R>(&self, f: impl FnOnce(&Extra) -> R) -> Option<R> {
        self.extra.borrow().as_deref().map(f)
    }

    fn now32(&self) -> u32 {
        self.reactor().map_or(0, Reactor::now_ms) as u32
    }

    // ------------------------------------------------------------ callbacks

    fn callbacks(&self) -> &CallbackFns {
        // SAFETY: `fns` points to NO_CALLBACKS or to a table interned by the
        // reactor, which keeps it until it is dropped; a connection the reactor
        // outlives is detached first, which points `fns` back to NO_CALLBACKS.
        unsafe { &*self.fns.get() }
    }

    fn arg_of(&self, slot: usize) -> *mut c_void {
        if self.has(SPLIT_ARGS) {
            self.with_extra(|e| e.args[slot] as *mut c_void)
                .unwrap_or(std::ptr::null_mut())
        } else {
            self.arg.get()
        }
    }

    pub fn set_callback(&self, callback: Callback, arg: *mut c_void) {
        let Some(reactor) = self.reactor() else { return };
        let fns = callback.apply(*self.callbacks());
        self.fns.set(reactor.intern_callbacks(fns));
        if !self.has(HAS_ARG) {
            self.arg.set(arg);
            self.set(HAS_ARG);
        } else if self.has(SPLIT_ARGS) || arg != self.arg.get() {
            if !self.has(SPLIT_ARGS) {
                let common = self.arg.get() as usize;
                self.extra().args = [common; CALLBACKS];
                self.set(SPLIT_ARGS);
            }
            self.extra().args[callback.index()] = arg as usize;
        }
        // Streaming receive can be switched on or off while running.
        if let Ok(mut rx) = self.rx.try_borrow_mut() {
            if let Some(rx) = rx.as_mut() {
                rx.set_streaming(self.callbacks().fragment.is_some());
            }
        }
    }

    // ------------------------------------------------------------ setup

    fn config_now(&self) -> Arc<Config> {
        if let Some(Some(config)) = self.with_extra(|e| e.config.clone()) {
            return config;
        }
        self.reactor().map(Reactor::config).unwrap_or_default()
    }

    pub fn set_config(&self, config: Arc<Config>) -> Result<()> {
        if self.phase.get() != Phase::Idle {
            return Err(Error::State);
        }
        self.extra().config = Some(config);
        Ok(())
    }

    pub fn fd(&self) -> c_int {
        self.fd.get()
    }

    /// Takes ownership of a connected socket (closed on release or stop).
    pub fn set_fd(&self, fd: c_int) -> Result<()> {
        if self.phase.get() != Phase::Idle || fd < 0 {
            return Err(Error::State);
        }
        let previous = self.fd.replace(fd);
        if previous >= 0 && previous != fd {
            // An fd handed over earlier and never started: still ours.
            Socket(previous).close();
        }
        Ok(())
    }

    /// Server role on the socket given with `set_fd`.
    pub fn start(&self) -> Result<()> {
        if self.phase.get() != Phase::Idle || self.fd.get() < 0 {
            return Err(Error::State);
        }
        let socket = self.socket();
        socket.set_nonblocking().map_err(|_| Error::Io)?;
        socket.set_nodelay();
        let config = self.config_now();
        let mut rx = Receiver::server(Arc::clone(&config));
        rx.set_streaming(self.callbacks().fragment.is_some());
        rx.set_http(self.callbacks().http.is_some());
        let tx = Sender::new(Role::Server, config.max_output);
        self.open_socket(rx, tx, Phase::Handshaking)
    }

    /// Client role: resolve, connect without blocking, then the opening handshake.
    pub fn connect(&self, url: &str) -> Result<()> {
        if self.phase.get() != Phase::Idle || self.fd.get() >= 0 {
            return Err(Error::State);
        }
        let url = WsUrl::parse(url)?;
        let config = self.config_now();
        let (mut rx, tx) = client_parts(Arc::clone(&config), &url.host_header, &url.path)?;
        rx.set_streaming(self.callbacks().fragment.is_some());
        if self.reactor().is_none() {
            return Err(Error::State);
        }
        // Name resolution may block (literals do not).
        let addr = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|_| Error::Io)?
            .next()
            .ok_or(Error::Io)?;
        let stream = mio::net::TcpStream::connect(addr).map_err(|_| Error::Io)?;
        self.fd.set(stream.into_raw_fd());
        self.socket().set_nodelay();
        let result = self.open_socket(rx, tx, Phase::Connecting);
        if result.is_err() {
            self.socket().close();
            self.fd.set(-1);
        }
        result
    }

    fn open_socket(&self, rx: Receiver, tx: Sender, phase: Phase) -> Result<()> {
        let reactor = self.reactor().ok_or(Error::State)?;
        let token = reactor.add_conn(self);
        let fd = self.fd.get();
        // Writable events only matter while connecting or while output waits.
        let interest = match phase {
            Phase::Connecting => Interest::READABLE | Interest::WRITABLE,
            _ => Interest::READABLE,
        };
        if reactor
            .registry()
            .register(&mut SourceFd(&fd), token, interest)
            .is_err()
        {
            reactor.remove(token);
            return Err(Error::Io);
        }
        self.token.set(token.0 as u32);
        *self.rx.borrow_mut() = Some(rx);
        *self.tx.borrow_mut() = Some(tx);
        self.phase.set(phase);
        self.flags
            .set(self.flags.get() & (PAUSED | RELEASED | HAS_ARG | SPLIT_ARGS));
        if phase == Phase::Connecting {
            self.set(WRITE_INTEREST);
        }
        self.close_code.set(0);
        if let Some(extra) = self.extra.borrow_mut().as_mut() {
            extra.close_reason.clear();
        }
        let now = self.now32();
        self.started_ms.set(now);
        self.last_input_ms.set(now);
        self.ping_sent_ms.set(0);
        self.arm_timer();
        if phase == Phase::Handshaking {
            // Bytes may have arrived before registration.
            self.set(READABLE);
            self.schedule_ready();
        }
        Ok(())
    }

    // ------------------------------------------------------------ state

    pub fn established(&self) -> Result<()> {
        match self.phase.get() {
            Phase::Open if !self.has(CLOSING) => Ok(()),
            Phase::Open | Phase::Closed => Err(Error::Closed),
            _ => Err(Error::NotOpen),
        }
    }

    pub fn buffered_amount(&self) -> usize {
        self.tx
            .try_borrow()
            .ok()
            .and_then(|tx| tx.as_ref().map(Sender::buffered))
            .unwrap_or(0)
    }

    pub fn subprotocol(&self) -> *const c_char {
        self.with_extra(|e| e.subprotocol.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()))
            .unwrap_or(std::ptr::null())
    }

    // ------------------------------------------------------------ sending

    /// Runs a send on the sender, then schedules the write and the drain signal.
    fn with_tx(&self, f: impl FnOnce(&mut Sender) -> Result<()>) -> Result<()> {
        let result = {
            let mut tx = self.tx.try_borrow_mut().map_err(|_| Error::Reentrant)?;
            let tx = match tx.as_mut() {
                Some(tx) => tx,
                None if self.phase.get() == Phase::Closed => return Err(Error::Closed),
                None => return Err(Error::NotOpen),
            };
            let result = f(tx);
            if matches!(result, Err(Error::Full)) || tx.is_full() {
                self.set(DRAIN_WANTED);
            }
            result
        };
        if result.is_ok() {
            self.schedule_flush();
        }
        result
    }

    pub fn send(&self, kind: MessageKind, data: &[u8]) -> Result<()> {
        // A large message leaves at once, straight from `data`, behind what
        // output waits (unless the socket is known to be full).
        let socket_full = self.has(WRITE_INTEREST) || self.has(RELEASED);
        let socket = self.socket();
        self.with_tx(|tx| {
            tx.send_direct(kind, data, |pending, payload| {
                if socket_full {
                    return Ok(0);
                }
                socket.write2(pending, payload)
            })
        })
    }

    pub fn send_fragment(&self, kind: MessageKind, data: &[u8], fin: bool) -> Result<()> {
        self.with_tx(|tx| tx.send_fragment(kind, data, fin))
    }

    pub fn ping(&self, data: &[u8]) -> Result<()> {
        self.with_tx(|tx| tx.ping(data))
    }

    pub fn close(&self, code: u16, reason: &str) -> Result<()> {
        self.with_tx(|tx| tx.close(code, reason))?;
        if self.close_code.get() == 0 {
            self.close_code.set(code);
            self.extra().close_reason = reason.to_owned();
        }
        self.begin_closing();
        Ok(())
    }

    pub fn http_respond(&self, status: u16, content_type: &str, body: &[u8]) -> Result<()> {
        self.with_tx(|tx| tx.http_response(status, content_type, body))
    }

    /// Output is written at the end of the turn, or right after this connection's
    /// input is processed: all of a turn's output leaves in one write.
    fn schedule_flush(&self) {
        if self.has(DIRTY) {
            return;
        }
        if let Some((reactor, token)) = self.registered() {
            self.set(DIRTY);
            reactor.mark_dirty(Token(token as usize));
        }
    }

    fn schedule_ready(&self) {
        if self.has(READY) {
            return;
        }
        if let Some((reactor, token)) = self.registered() {
            self.set(READY);
            reactor.mark_ready(Token(token as usize));
        }
    }

    // ------------------------------------------------------------ flow control

    pub fn pause_read(&self) -> Result<()> {
        if self.phase.get() == Phase::Idle {
            return Err(Error::State);
        }
        self.set(PAUSED);
        Ok(())
    }

    pub fn resume_read(&self) -> Result<()> {
        if self.phase.get() == Phase::Idle {
            return Err(Error::State);
        }
        self.clear(PAUSED);
        if self.has_input() {
            self.schedule_ready();
        }
        Ok(())
    }

    /// Input is waiting: in the socket, or held back by a pause.
    fn has_input(&self) -> bool {
        self.has(READABLE) || self.with_extra(|e| !e.backlog.is_empty()).unwrap_or(false)
    }

    fn can_read(&self) -> bool {
        if self.has(PAUSED | RELEASED) || !matches!(self.phase.get(), Phase::Handshaking | Phase::Open) {
            return false;
        }
        let wants = self
            .rx
            .try_borrow()
            .ok()
            .and_then(|rx| rx.as_ref().map(Receiver::wants_input));
        let full = self
            .tx
            .try_borrow()
            .ok()
            .and_then(|tx| tx.as_ref().map(Sender::is_full));
        wants == Some(true) && full == Some(false)
    }

    // ------------------------------------------------------------ reactor events

    pub fn on_event(&self, readable: bool, writable: bool, peer_closed: bool) {
        if peer_closed {
            self.set(PEER_CLOSED);
        }
        if self.phase.get() == Phase::Connecting {
            self.check_connected();
            if self.phase.get() != Phase::Handshaking {
                return;
            }
        }
        if writable {
            self.flush();
        }
        if readable {
            self.set(READABLE);
            self.read_input();
        }
    }

    /// Continues reading input left over (backlog, or unread socket data).
    pub fn on_ready(&self) {
        self.clear(READY);
        self.read_input();
    }

    fn check_connected(&self) {
        match self.socket().connect_status() {
            Ok(true) => {
                self.phase.set(Phase::Handshaking);
                self.schedule_flush();
            }
            Ok(false) => {}
            Err(_) => self.finish(CloseCode::ABNORMAL.0, "connection failed"),
        }
    }

    /// Processes input a pause left unprocessed. Returns false while some is
    /// still held back (paused again): newer input must wait behind it.
    fn feed_backlog(&self) -> bool {
        let Some(mut backlog) = self.with_extra(|_| ()).and_then(|_| {
            let mut extra = self.extra();
            (!extra.backlog.is_empty()).then(|| std::mem::take(&mut extra.backlog))
        }) else {
            return true;
        };
        self.feed(&mut backlog);
        self.after_input();
        self.with_extra(|e| e.backlog.is_empty()).unwrap_or(true)
    }

    /// Reads and processes input until the socket is drained, reading must stop,
    /// or this connection had its share of the turn; then writes the replies.
    fn read_input(&self) {
        let Some(reactor) = self.reactor() else { return };
        if !self.can_read() {
            return;
        }
        if self.feed_backlog() {
            self.read_socket(reactor);
        }
        self.flush();
    }

    fn read_socket(&self, reactor: &Reactor) {
        let mut reads = 0;
        while self.can_read() && self.has(READABLE) {
            if reads == READS_PER_TURN {
                self.schedule_ready();
                break;
            }
            reads += 1;
            // The rest of a large frame goes straight into the message being
            // reassembled; anything else into the reactor's shared buffer.
            let mut buffer = None;
            let (read, room) = match self.read_direct() {
                Some(direct) => direct,
                None => {
                    let mut b = reactor.take_read_buffer();
                    let read = self.socket().read(&mut b);
                    let room = b.len();
                    buffer = Some(b);
                    (read, room)
                }
            };
            match read {
                Ok(0) => {
                    if let Some(b) = buffer {
                        reactor.return_read_buffer(b);
                    }
                    self.clear(READABLE);
                    self.on_eof();
                    return;
                }
                Ok(n) => {
                    if n < room && !self.has(PEER_CLOSED) {
                        // A short read drained the socket; new data raises a new
                        // event (but an EOF already signalled raises none).
                        self.clear(READABLE);
                    }
                    if let Some(mut b) = buffer {
                        self.last_input_ms.set(self.now32());
                        self.feed(&mut b[..n]);
                        reactor.return_read_buffer(b);
                    }
                    self.after_input();
                }
                Err(e) => {
                    if let Some(b) = buffer {
                        reactor.return_read_buffer(b);
                    }
                    match e.kind() {
                        ErrorKind::WouldBlock => self.clear(READABLE),
                        ErrorKind::Interrupted => {}
                        _ => {
                            self.clear(READABLE);
                            self.finish(CloseCode::ABNORMAL.0, "read failed");
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Reads straight into the reassembly buffer when at least a read buffer's
    /// worth of a data frame's payload is still to come (see
    /// `Receiver::direct_room`); what was read is processed at once. Returns the
    /// read's outcome and the room offered, or `None` to read the usual way.
    fn read_direct(&self) -> Option<(std::io::Result<usize>, usize)> {
        let mut rx = self.rx.try_borrow_mut().ok()?;
        let receiver = rx.as_mut()?;
        let room = receiver.direct_room(crate::runtime::reactor::READ_BUFFER_SIZE)?;
        let len = room.len();
        let read = self.socket().read_uninit(room);
        if let Ok(n @ 1..) = read {
            self.last_input_ms.set(self.now32());
            // SAFETY: read_uninit wrote the first `n` bytes of the room just
            // returned by direct_room, and the receiver was not touched since.
            let _ = unsafe { receiver.direct_filled(n, &mut ConnEvents { conn: self }) };
        }
        Some((read, len))
    }

    /// Gives input to the session; keeps what a pause left unprocessed.
    fn feed(&self, data: &mut [u8]) {
        let Ok(mut rx) = self.rx.try_borrow_mut() else { return };
        let Some(receiver) = rx.as_mut() else { return };
        let used = receiver.feed(data, &mut ConnEvents { conn: self });
        drop(rx);
        if let Ok(used) = used {
            if used < data.len() && self.has(PAUSED) && !self.has(RELEASED) {
                self.extra().backlog.extend_from_slice(&data[used..]);
            }
        }
    }

    fn on_eof(&self) {
        if let Ok(mut rx) = self.rx.try_borrow_mut() {
            if let Some(receiver) = rx.as_mut() {
                let _ = receiver.feed_eof(&mut ConnEvents { conn: self });
            }
        }
        self.flush();
        self.finish_with_recorded_code();
    }

    /// Ends the connection with the close code and reason seen so far.
    fn finish_with_recorded_code(&self) {
        let code = match self.close_code.get() {
            0 => CloseCode::ABNORMAL.0,
            code => code,
        };
        let reason = self
            .extra
            .borrow_mut()
            .as_mut()
            .map(|e| std::mem::take(&mut e.close_reason))
            .unwrap_or_default();
        self.finish(code, &reason);
    }

    /// After input: the end of the session, if it came.
    fn after_input(&self) {
        if self.phase.get() == Phase::Closed || self.has(RELEASED) {
            return;
        }
        if self.has(REARM) {
            self.clear(REARM);
            self.arm_timer();
        }
        let (rx_closed, close_received) = match self.rx.try_borrow() {
            Ok(rx) => rx
                .as_ref()
                .map_or((false, false), |rx| (rx.is_closed(), rx.close_received())),
            Err(_) => (false, false),
        };
        if rx_closed || close_received {
            self.begin_closing();
        }
    }

    fn begin_closing(&self) {
        if !self.has(CLOSING) {
            self.set(CLOSING);
            self.closing_since_ms.set(self.now32());
            self.arm_timer();
        }
    }

    /// Writes pending output (one write for all the turn produced), then ends the
    /// connection if its session is over.
    pub fn flush(&self) {
        self.clear(DIRTY);
        if !matches!(self.phase.get(), Phase::Handshaking | Phase::Open) || self.has(RELEASED) {
            return;
        }
        loop {
            let written = {
                let tx = self.tx.borrow();
                let Some(tx) = tx.as_ref() else { return };
                let pending = tx.pending();
                if pending.is_empty() {
                    break;
                }
                self.socket().write(pending)
            };
            match written {
                Ok(n) => {
                    if let Some(tx) = self.tx.borrow_mut().as_mut() {
                        let _ = tx.consume(n);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // The socket is full: the next writable event continues.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.want_writable(true);
                    break;
                }
                Err(_) => {
                    self.finish(CloseCode::ABNORMAL.0, "write failed");
                    return;
                }
            }
        }
        self.after_flush();
    }

    /// Asks for writable events, or stops asking (one system call, only when
    /// output starts or stops waiting for room in the socket).
    fn want_writable(&self, on: bool) {
        if self.has(WRITE_INTEREST) == on {
            return;
        }
        let Some((reactor, token)) = self.registered() else {
            return;
        };
        let interest = if on {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let fd = self.fd.get();
        if reactor
            .registry()
            .reregister(&mut SourceFd(&fd), Token(token as usize), interest)
            .is_ok()
        {
            if on {
                self.set(WRITE_INTEREST);
            } else {
                self.clear(WRITE_INTEREST);
            }
        }
    }

    fn after_flush(&self) {
        let (buffered, max_output, full) = match self.tx.borrow().as_ref() {
            Some(tx) => (tx.buffered(), tx.max_output(), tx.is_full()),
            None => return,
        };
        if buffered == 0 {
            self.want_writable(false);
            let rx_closed = self
                .rx
                .try_borrow()
                .ok()
                .and_then(|rx| rx.as_ref().map(Receiver::is_closed));
            if rx_closed == Some(true) {
                self.finish_with_recorded_code();
                return;
            }
        }
        if self.has(DRAIN_WANTED) && buffered <= max_output / 4 {
            self.clear(DRAIN_WANTED);
            if let Some(f) = self.callbacks().drain {
                f(self.ptr(), self.arg_of(slot::DRAIN));
            }
        }
        if !full && self.has_input() && self.can_read() {
            self.schedule_ready();
        }
    }

    // ------------------------------------------------------------ events to the program

    fn deliver(&self, event: Event<'_>) {
        let cb = self.callbacks();
        let con = self.ptr();
        match event {
            Event::Open { subprotocol, .. } => {
                self.phase.set(Phase::Open);
                if let Some(name) = subprotocol.and_then(|p| CString::new(p).ok()) {
                    self.extra().subprotocol = Some(name);
                }
                self.arm_timer();
                if let Some(f) = cb.build {
                    f(self.fd.get(), self.arg_of(slot::BUILD));
                }
            }
            Event::Message { kind, data } => {
                if let Some(f) = cb.message {
                    f(
                        con,
                        self.arg_of(slot::MESSAGE),
                        type_code(kind),
                        data.as_ptr(),
                        data.len(),
                    );
                } else if let Some(f) = cb.read {
                    self.deliver_gbase(f, self.arg_of(slot::READ), data);
                }
            }
            Event::Fragment { kind, data, fin } => {
                if let Some(f) = cb.fragment {
                    let arg = self.arg_of(slot::FRAGMENT);
                    f(con, arg, type_code(kind), data.as_ptr(), data.len(), fin as c_int);
                }
            }
            Event::Ping(_) => {}
            Event::Pong(data) => {
                if let Some(f) = cb.pong {
                    f(con, self.arg_of(slot::PONG), data.as_ptr(), data.len());
                }
            }
            Event::Close { code, reason } => {
                self.close_code.set(code);
                self.extra().close_reason = reason.to_owned();
            }
            Event::Error(error) => {
                if self.close_code.get() == 0 {
                    let code = error.close_code().unwrap_or(CloseCode::ABNORMAL);
                    self.close_code.set(code.0);
                    self.extra().close_reason = error.to_string();
                }
            }
            Event::HttpRequest { method, path } => {
                self.close_code.set(CloseCode::NORMAL.0);
                if let Some(f) = cb.http {
                    let method = CString::new(method).unwrap_or_default();
                    let path = CString::new(path).unwrap_or_default();
                    f(con, self.arg_of(slot::HTTP), method.as_ptr(), path.as_ptr());
                }
            }
        }
    }

    /// gbase's read callback: bytes it leaves unconsumed come back in front of the
    /// next message.
    fn deliver_gbase(
        &self,
        f: extern "C" fn(c_int, *mut c_void, *const c_char, c_int) -> c_int,
        arg: *mut c_void,
        data: &[u8],
    ) {
        let mut tail = self
            .extra
            .borrow_mut()
            .as_mut()
            .map(|e| std::mem::take(&mut e.read_tail))
            .unwrap_or_default();
        let bytes: &[u8] = if tail.is_empty() {
            data
        } else {
            tail.extend_from_slice(data);
            &tail
        };
        let Ok(len) = c_int::try_from(bytes.len()) else {
            let _ = self.close(CloseCode::MESSAGE_TOO_BIG.0, "message too big for the read callback");
            return;
        };
        let consumed = f(self.fd.get(), arg, bytes.as_ptr().cast(), len);
        if consumed < 0 {
            let _ = self.close(CloseCode::INTERNAL_ERROR.0, "");
            return;
        }
        let consumed = (consumed as usize).min(bytes.len());
        if consumed < bytes.len() {
            let rest = bytes[consumed..].to_vec();
            self.extra().read_tail = rest;
        }
    }

    // ------------------------------------------------------------ timers

    pub fn timer_deadline(&self) -> u64 {
        self.timer_deadline.get()
    }

    /// (prev, next, slot) in the reactor's timer wheel, if armed.
    pub fn timer_links(&self) -> Option<(u32, u32, u16)> {
        (self.timer_deadline.get() != u64::MAX)
            .then(|| (self.timer_prev.get(), self.timer_next.get(), self.timer_slot.get()))
    }

    pub fn set_timer_links(&self, prev: u32, next: u32, deadline: u64, slot: u16) {
        self.timer_prev.set(prev);
        self.timer_next.set(next);
        self.timer_deadline.set(deadline);
        self.timer_slot.set(slot);
    }

    pub fn set_timer_prev(&self, prev: u32) {
        self.timer_prev.set(prev);
    }

    pub fn set_timer_next(&self, next: u32) {
        self.timer_next.set(next);
    }

    pub fn clear_timer_links(&self) {
        self.set_timer_links(NO_TOKEN, NO_TOKEN, u64::MAX, 0);
    }

    /// Milliseconds since `then` (a truncated reactor time).
    fn since(&self, then: u32) -> u64 {
        self.now32().wrapping_sub(then) as u64
    }

    /// Milliseconds until the next moment a timer has something to check.
    fn next_wait(&self) -> Option<u64> {
        let rx = self.rx.try_borrow().ok()?;
        let config = rx.as_ref()?.config();
        let left = |since: u32, timeout: u32| (timeout as u64).saturating_sub(self.since(since));
        let mut wait: Option<u64> = None;
        let mut consider = |t: u64| wait = Some(wait.map_or(t, |w| w.min(t)));
        match self.phase.get() {
            Phase::Connecting | Phase::Handshaking => {
                consider(left(self.started_ms.get(), config.handshake_timeout_ms))
            }
            Phase::Open => {
                if config.idle_timeout_ms > 0 && !self.has(CLOSING) {
                    consider(left(self.last_input_ms.get(), config.idle_timeout_ms));
                }
                if config.ping_interval_ms > 0 && !self.has(CLOSING) {
                    match self.ping_sent_ms.get() {
                        0 => consider(left(self.last_input_ms.get(), config.ping_interval_ms)),
                        sent => consider(left(sent, config.pong_timeout_ms)),
                    }
                }
            }
            Phase::Idle | Phase::Closed => return None,
        }
        if self.has(CLOSING) {
            consider(left(self.closing_since_ms.get(), config.close_timeout_ms));
        }
        wait
    }

    /// Puts this connection in the reactor's timer wheel for its next deadline
    /// (or takes it out when it has none).
    fn arm_timer(&self) {
        let Some((reactor, token)) = self.registered() else {
            return;
        };
        if self.rx.try_borrow().is_err() {
            // Inside a feed (the session is busy): done when it returns.
            self.set(REARM);
            return;
        }
        match self.next_wait() {
            Some(wait) => {
                let deadline = reactor.now_ms() + wait;
                if deadline != self.timer_deadline.get() {
                    reactor.arm_timer(self, token, deadline);
                }
            }
            None => reactor.disarm_timer(self, token),
        }
    }

    pub fn on_timer(&self) {
        let Some(config) = self
            .rx
            .try_borrow()
            .ok()
            .and_then(|rx| rx.as_ref().map(|r| Arc::clone(r.config())))
        else {
            return;
        };
        let now = self.now32();
        match self.phase.get() {
            Phase::Connecting | Phase::Handshaking => {
                if self.since(self.started_ms.get()) >= config.handshake_timeout_ms as u64 {
                    self.finish(CloseCode::ABNORMAL.0, "handshake timeout");
                    return;
                }
            }
            Phase::Open if self.has(CLOSING) => {
                if self.since(self.closing_since_ms.get()) >= config.close_timeout_ms as u64 {
                    let code = match self.close_code.get() {
                        0 => CloseCode::ABNORMAL.0,
                        code => code,
                    };
                    self.finish(code, "close timeout");
                    return;
                }
            }
            Phase::Open => {
                if config.idle_timeout_ms > 0 && self.since(self.last_input_ms.get()) >= config.idle_timeout_ms as u64 {
                    let _ = self.close(CloseCode::GOING_AWAY.0, "idle timeout");
                }
                if config.ping_interval_ms > 0 && !self.has(CLOSING) {
                    let sent = self.ping_sent_ms.get();
                    // Input since the ping answers it; input in the very millisecond
                    // counts (pings go out only after a quiet interval).
                    let answered = sent != 0 && self.since(self.last_input_ms.get()) <= self.since(sent);
                    if answered {
                        self.ping_sent_ms.set(0);
                    } else if sent != 0 && self.since(sent) >= config.pong_timeout_ms as u64 {
                        self.finish(CloseCode::ABNORMAL.0, "pong timeout");
                        return;
                    }
                    if self.ping_sent_ms.get() == 0
                        && self.since(self.last_input_ms.get()) >= config.ping_interval_ms as u64
                        && self.ping(b"").is_ok()
                    {
                        self.ping_sent_ms.set(now.max(1));
                    }
                }
            }
            Phase::Idle | Phase::Closed => return,
        }
        self.arm_timer();
    }

    // ------------------------------------------------------------ the end

    /// Ends the connection: deregisters and closes the socket, and calls the close
    /// callbacks (once), with the socket still open during them.
    fn finish(&self, code: u16, reason: &str) {
        if matches!(self.phase.get(), Phase::Closed | Phase::Idle) {
            return;
        }
        self.phase.set(Phase::Closed);
        self.deregister();
        if !self.has(RELEASED) {
            let cb = *self.callbacks();
            if let Some(f) = cb.close_ex {
                let reason = CString::new(reason).unwrap_or_default();
                f(
                    self.ptr(),
                    self.arg_of(slot::CLOSE_EX),
                    code as c_int,
                    reason.as_ptr(),
                    reason.as_bytes().len(),
                );
            }
            if let Some(f) = cb.close {
                f(self.fd.get(), self.arg_of(slot::CLOSE));
            }
        }
        self.drop_socket();
    }

    fn deregister(&self) {
        if let Some((reactor, token)) = self.registered() {
            reactor.disarm_timer(self, token);
            let fd = self.fd.get();
            let _ = reactor.registry().deregister(&mut SourceFd(&fd));
            reactor.remove(Token(token as usize));
        }
        self.token.set(NO_TOKEN);
    }

    /// Closes the socket and frees the session's buffers.
    fn drop_socket(&self) {
        if self.fd.get() >= 0 && self.phase.get() != Phase::Idle {
            self.socket().close();
        }
        self.fd.set(-1);
        if let Ok(mut rx) = self.rx.try_borrow_mut() {
            rx.take();
        }
        if let Ok(mut tx) = self.tx.try_borrow_mut() {
            tx.take();
        }
        if let Some(extra) = self.extra.borrow_mut().as_mut() {
            extra.backlog = Vec::new();
            extra.read_tail = Vec::new();
        }
    }

    /// Drops the connection without a closing handshake or callbacks; it may be
    /// started again with a new socket.
    pub fn stop(&self) -> Result<()> {
        if self.phase.get() == Phase::Idle {
            return Err(Error::State);
        }
        self.deregister();
        self.drop_socket();
        self.phase.set(Phase::Idle);
        self.flags.set(self.flags.get() & (RELEASED | HAS_ARG | SPLIT_ARGS));
        Ok(())
    }

    /// The reactor is going away.
    pub fn detach(&self) {
        let _ = self.stop();
        self.fns.set(&NO_CALLBACKS);
        self.reactor.set(std::ptr::null());
    }

    /// Frees the connection now, or when the running dispatch ends if called
    /// from a callback. Closes the socket without callbacks.
    ///
    /// # Safety
    /// `this` came from `Box::into_raw` and is not used by the caller afterwards.
    pub unsafe fn release(this: *mut Conn) {
        // SAFETY: live per the caller.
        let conn = unsafe { &*this };
        if conn.phase.get() == Phase::Idle && conn.fd.get() >= 0 {
            // Handed over with set_fd but never started: still ours to close.
            conn.socket().close();
            conn.fd.set(-1);
        }
        conn.set(RELEASED);
        conn.deregister();
        conn.drop_socket();
        match conn.reactor() {
            Some(reactor) if reactor.is_dispatching() => reactor.bury_conn(this),
            // SAFETY: from Box::into_raw; no dispatch can be using it.
            _ => drop(unsafe { Box::from_raw(this) }),
        }
    }
}

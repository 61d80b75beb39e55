//! A WebSocket connection on a reactor: its socket, its session (receiver and
//! sender), its callbacks and its timers.
//!
//! All state sits in `Cell`/`RefCell` and every method takes `&self`, because the
//! program's callbacks run in the middle of the connection's own work and may call
//! back into it (send, close, pause, release).

#![allow(non_camel_case_types)] // callback types carry their C names

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void, CString};
use std::io::{ErrorKind, Read, Write};
use std::net::ToSocketAddrs;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{Interest, Token};

use crate::close_code::CloseCode;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::{Event, MessageKind};
use crate::reactor::Reactor;
use crate::receiver::{Handler, Receiver};
use crate::role::Role;
use crate::sender::Sender;
use crate::session::client_parts;
use crate::url::WsUrl;

/// gbase's read callback: a complete message (`buffer` is not NUL-terminated).
/// Returns the bytes consumed: bytes left unconsumed are delivered again in front
/// of the next message, as gbase's buffer did; a negative value closes the
/// connection (close code 1011).
pub type wsconn_read_func =
    Option<extern "C" fn(fd: c_int, arg: *mut c_void, buffer: *const c_char, buflen: c_int) -> c_int>;
/// gbase's build callback: the opening handshake completed.
pub type wsconn_build_func = Option<extern "C" fn(fd: c_int, arg: *mut c_void)>;
/// gbase's close callback: the connection closed; called once, with the socket
/// still open (it is closed when the callback returns). The connection may be
/// released inside.
pub type wsconn_close_func = Option<extern "C" fn(fd: c_int, arg: *mut c_void)>;
/// A complete message with its type (`WSCONN_MSG_TEXT`: valid UTF-8, or
/// `WSCONN_MSG_BINARY`). When set, it is called instead of the read callback.
pub type wsconn_message_func =
    Option<extern "C" fn(con: *mut Conn, arg: *mut c_void, r#type: c_int, data: *const u8, len: usize)>;
/// Streaming receive: each piece of a message as it arrives, `fin` nonzero on the
/// last. When set, no message is reassembled and neither the message nor the
/// read callback is called.
pub type wsconn_fragment_func =
    Option<extern "C" fn(con: *mut Conn, arg: *mut c_void, r#type: c_int, data: *const u8, len: usize, fin: c_int)>;
/// The connection closed. `code`: the peer's close code (1005 if its close frame
/// had none); or the one sent to it when it broke the protocol (1002, 1007,
/// 1009…); 1000 after a plain HTTP exchange; 1006 when TCP dropped, an I/O error
/// or a timeout ended it without a closing handshake. `reason` is NUL-terminated.
/// Called before the close callback, with the socket still open.
pub type wsconn_close_ex_func =
    Option<extern "C" fn(con: *mut Conn, arg: *mut c_void, code: c_int, reason: *const c_char, reason_len: usize)>;
/// Output fell to a quarter of the max output after a send failed with
/// `WSCONN_ERR_FULL` or left output at half of it or more: sending may resume.
pub type wsconn_drain_func = Option<extern "C" fn(con: *mut Conn, arg: *mut c_void)>;
/// A pong arrived.
pub type wsconn_pong_func = Option<extern "C" fn(con: *mut Conn, arg: *mut c_void, data: *const u8, len: usize)>;
/// A plain HTTP request (no WebSocket upgrade). Answer it with
/// `wsconn_http_respond` inside the callback, or the library answers 404. The
/// connection closes after the response. The return value is ignored.
pub type wsconn_http_func =
    Option<extern "C" fn(con: *mut Conn, arg: *mut c_void, method: *const c_char, path: *const c_char) -> c_int>;

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

/// Reads per readiness event before other connections get their turn.
const READS_PER_TURN: usize = 16;

#[derive(Clone, Copy)]
struct Callbacks {
    read: (wsconn_read_func, *mut c_void),
    build: (wsconn_build_func, *mut c_void),
    close: (wsconn_close_func, *mut c_void),
    message: (wsconn_message_func, *mut c_void),
    fragment: (wsconn_fragment_func, *mut c_void),
    close_ex: (wsconn_close_ex_func, *mut c_void),
    drain: (wsconn_drain_func, *mut c_void),
    pong: (wsconn_pong_func, *mut c_void),
    http: (wsconn_http_func, *mut c_void),
}

/// Which callback a setter sets.
pub enum Callback {
    Read(wsconn_read_func),
    Build(wsconn_build_func),
    Close(wsconn_close_func),
    Message(wsconn_message_func),
    Fragment(wsconn_fragment_func),
    CloseEx(wsconn_close_ex_func),
    Drain(wsconn_drain_func),
    Pong(wsconn_pong_func),
    Http(wsconn_http_func),
}

pub struct Conn {
    reactor: Cell<*const Reactor>,
    token: Cell<Option<Token>>,
    fd: Cell<c_int>,
    socket: RefCell<Option<TcpStream>>,
    phase: Cell<Phase>,
    flags: Cell<u16>,
    rx: RefCell<Option<Receiver>>,
    tx: RefCell<Option<Sender>>,
    config: RefCell<Option<Arc<Config>>>,
    callbacks: Cell<Callbacks>,
    /// Input read but not processed because reading was paused mid-buffer.
    backlog: RefCell<Vec<u8>>,
    /// Bytes the gbase read callback did not consume.
    read_tail: RefCell<Vec<u8>>,
    close_code: Cell<u16>,
    close_reason: RefCell<String>,
    subprotocol: RefCell<Option<CString>>,
    started_ms: Cell<u64>,
    last_input_ms: Cell<u64>,
    ping_sent_ms: Cell<u64>,
    closing_since_ms: Cell<u64>,
    timer_generation: Cell<u32>,
    timer_deadline: Cell<u64>,
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
        let none = std::ptr::null_mut();
        Conn {
            reactor: Cell::new(reactor),
            token: Cell::new(None),
            fd: Cell::new(-1),
            socket: RefCell::new(None),
            phase: Cell::new(Phase::Idle),
            flags: Cell::new(0),
            rx: RefCell::new(None),
            tx: RefCell::new(None),
            config: RefCell::new(None),
            callbacks: Cell::new(Callbacks {
                read: (None, none),
                build: (None, none),
                close: (None, none),
                message: (None, none),
                fragment: (None, none),
                close_ex: (None, none),
                drain: (None, none),
                pong: (None, none),
                http: (None, none),
            }),
            backlog: RefCell::new(Vec::new()),
            read_tail: RefCell::new(Vec::new()),
            close_code: Cell::new(0),
            close_reason: RefCell::new(String::new()),
            subprotocol: RefCell::new(None),
            started_ms: Cell::new(0),
            last_input_ms: Cell::new(0),
            ping_sent_ms: Cell::new(0),
            closing_since_ms: Cell::new(0),
            timer_generation: Cell::new(0),
            timer_deadline: Cell::new(u64::MAX),
        }
    }

    fn reactor(&self) -> Option<&Reactor> {
        // SAFETY: the reactor outlives the connections made on it (documented) and
        // detaches them (setting this pointer to NULL) if it is released first.
        unsafe { self.reactor.get().as_ref() }
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

    fn config_now(&self) -> Arc<Config> {
        if let Some(config) = self.config.borrow().as_ref() {
            return Arc::clone(config);
        }
        self.reactor().map(Reactor::config).unwrap_or_default()
    }

    // ------------------------------------------------------------ setup

    pub fn set_callback(&self, callback: Callback, arg: *mut c_void) {
        let mut cb = self.callbacks.get();
        match callback {
            Callback::Read(f) => cb.read = (f, arg),
            Callback::Build(f) => cb.build = (f, arg),
            Callback::Close(f) => cb.close = (f, arg),
            Callback::Message(f) => cb.message = (f, arg),
            Callback::Fragment(f) => cb.fragment = (f, arg),
            Callback::CloseEx(f) => cb.close_ex = (f, arg),
            Callback::Drain(f) => cb.drain = (f, arg),
            Callback::Pong(f) => cb.pong = (f, arg),
            Callback::Http(f) => cb.http = (f, arg),
        }
        self.callbacks.set(cb);
        // Streaming receive can be switched on or off while running.
        if let Ok(mut rx) = self.rx.try_borrow_mut() {
            if let Some(rx) = rx.as_mut() {
                rx.set_streaming(cb.fragment.0.is_some());
            }
        }
    }

    pub fn set_config(&self, config: Arc<Config>) -> Result<()> {
        if self.phase.get() != Phase::Idle {
            return Err(Error::State);
        }
        *self.config.borrow_mut() = Some(config);
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
            // SAFETY: an fd handed over earlier and never started: still ours.
            unsafe { libc::close(previous) };
        }
        Ok(())
    }

    /// Closes a socket handed over with `set_fd` but never started.
    fn close_unstarted_fd(&self) {
        if self.phase.get() == Phase::Idle && self.socket.borrow().is_none() {
            let fd = self.fd.replace(-1);
            if fd >= 0 {
                // SAFETY: the program gave this fd to the connection, which owns it.
                unsafe { libc::close(fd) };
            }
        }
    }

    /// Server role on the socket given with `set_fd`.
    pub fn start(&self) -> Result<()> {
        if self.phase.get() != Phase::Idle || self.fd.get() < 0 {
            return Err(Error::State);
        }
        let fd = self.fd.get();
        // The program may hand over a blocking socket.
        // SAFETY: fcntl on an fd the program gave us; failures are reported.
        let nonblocking = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) >= 0
        };
        if !nonblocking {
            return Err(Error::Io);
        }
        // SAFETY: the program gave the socket to this connection, which now owns it.
        let socket = unsafe { TcpStream::from_raw_fd(fd) };
        let _ = socket.set_nodelay(true);
        let config = self.config_now();
        let mut rx = Receiver::server(Arc::clone(&config));
        let cb = self.callbacks.get();
        rx.set_streaming(cb.fragment.0.is_some());
        rx.set_http(cb.http.0.is_some());
        let tx = Sender::new(Role::Server, config.max_output);
        let result = self.open_socket(socket, rx, tx, Phase::Handshaking);
        if result.is_err() {
            // The socket was closed with the stream that wrapped it.
            self.fd.set(-1);
        }
        result
    }

    /// Client role: resolve, connect without blocking, then the opening handshake.
    pub fn connect(&self, url: &str) -> Result<()> {
        if self.phase.get() != Phase::Idle || self.fd.get() >= 0 {
            return Err(Error::State);
        }
        let url = WsUrl::parse(url)?;
        let config = self.config_now();
        let (mut rx, tx) = client_parts(Arc::clone(&config), &url.host_header, &url.path)?;
        let cb = self.callbacks.get();
        rx.set_streaming(cb.fragment.0.is_some());
        // Name resolution may block (literals do not).
        let addr = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|_| Error::Io)?
            .next()
            .ok_or(Error::Io)?;
        let socket = TcpStream::connect(addr).map_err(|_| Error::Io)?;
        let _ = socket.set_nodelay(true);
        let fd = socket.as_raw_fd();
        self.open_socket(socket, rx, tx, Phase::Connecting)?;
        self.fd.set(fd);
        Ok(())
    }

    fn open_socket(&self, mut socket: TcpStream, rx: Receiver, tx: Sender, phase: Phase) -> Result<()> {
        let reactor = self.reactor().ok_or(Error::State)?;
        let token = reactor.add_conn(self);
        if reactor
            .registry()
            .register(&mut socket, token, Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            reactor.remove(token);
            return Err(Error::Io);
        }
        self.token.set(Some(token));
        *self.socket.borrow_mut() = Some(socket);
        *self.rx.borrow_mut() = Some(rx);
        *self.tx.borrow_mut() = Some(tx);
        self.phase.set(phase);
        self.flags.set(self.flags.get() & (PAUSED | RELEASED));
        self.close_code.set(0);
        self.close_reason.borrow_mut().clear();
        let now = reactor.now_ms();
        self.started_ms.set(now);
        self.last_input_ms.set(now);
        self.ping_sent_ms.set(0);
        self.timer_deadline.set(u64::MAX);
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
        self.subprotocol
            .borrow()
            .as_ref()
            .map_or(std::ptr::null(), |p| p.as_ptr())
    }

    pub fn timer_generation(&self) -> u32 {
        self.timer_generation.get()
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
        self.with_tx(|tx| tx.send(kind, data))
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
            *self.close_reason.borrow_mut() = reason.to_owned();
        }
        self.begin_closing();
        Ok(())
    }

    pub fn http_respond(&self, status: u16, content_type: &str, body: &[u8]) -> Result<()> {
        self.with_tx(|tx| tx.http_response(status, content_type, body))
    }

    fn schedule_flush(&self) {
        if self.has(DIRTY) {
            return;
        }
        if let (Some(reactor), Some(token)) = (self.reactor(), self.token.get()) {
            self.set(DIRTY);
            reactor.mark_dirty(token);
        }
    }

    fn schedule_ready(&self) {
        if self.has(READY) {
            return;
        }
        if let (Some(reactor), Some(token)) = (self.reactor(), self.token.get()) {
            self.set(READY);
            reactor.mark_ready(token);
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
        self.has(READABLE) || !self.backlog.borrow().is_empty()
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

    pub fn on_event(&self, readable: bool, writable: bool) {
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

    /// Processes input a pause left unprocessed. Returns false while some is
    /// still held back (paused again): newer input must wait behind it.
    fn feed_backlog(&self) -> bool {
        if self.backlog.borrow().is_empty() {
            return true;
        }
        let mut backlog = std::mem::take(&mut *self.backlog.borrow_mut());
        self.feed(&mut backlog);
        self.after_input();
        self.backlog.borrow().is_empty()
    }

    fn check_connected(&self) {
        let status = match self.socket.borrow().as_ref() {
            Some(socket) => match socket.take_error() {
                Ok(Some(_)) | Err(_) => Err(()),
                Ok(None) => match socket.peer_addr() {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == ErrorKind::NotConnected => Ok(false),
                    Err(_) => Err(()),
                },
            },
            None => return,
        };
        match status {
            Ok(true) => {
                self.phase.set(Phase::Handshaking);
                self.schedule_flush();
            }
            Ok(false) => {}
            Err(()) => self.finish(CloseCode::ABNORMAL.0, "connection failed"),
        }
    }

    /// Reads and processes input until the socket is drained, reading must stop,
    /// or this connection had its share of the turn.
    fn read_input(&self) {
        let Some(reactor) = self.reactor() else { return };
        if !self.can_read() || !self.feed_backlog() {
            return;
        }
        let mut reads = 0;
        while self.can_read() && self.has(READABLE) {
            if reads == READS_PER_TURN {
                self.schedule_ready();
                break;
            }
            reads += 1;
            let mut buffer = reactor.take_read_buffer();
            let read = match self.socket.borrow().as_ref() {
                Some(mut socket) => socket.read(&mut buffer),
                None => Ok(0),
            };
            match read {
                Ok(0) => {
                    reactor.return_read_buffer(buffer);
                    self.clear(READABLE);
                    self.on_eof();
                    return;
                }
                Ok(n) => {
                    if n < buffer.len() {
                        // A short read drained the socket; new data raises a new event.
                        self.clear(READABLE);
                    }
                    self.last_input_ms.set(reactor.now_ms());
                    self.feed(&mut buffer[..n]);
                    reactor.return_read_buffer(buffer);
                    self.after_input();
                }
                Err(e) => {
                    reactor.return_read_buffer(buffer);
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

    /// Gives input to the session; keeps what a pause left unprocessed.
    fn feed(&self, data: &mut [u8]) {
        let Ok(mut rx) = self.rx.try_borrow_mut() else { return };
        let Some(receiver) = rx.as_mut() else { return };
        let used = receiver.feed(data, &mut ConnEvents { conn: self });
        drop(rx);
        if let Ok(used) = used {
            if used < data.len() && self.has(PAUSED) && !self.has(RELEASED) {
                self.backlog.borrow_mut().extend_from_slice(&data[used..]);
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
        let code = match self.close_code.get() {
            0 => CloseCode::ABNORMAL.0,
            code => code,
        };
        let reason = std::mem::take(&mut *self.close_reason.borrow_mut());
        self.finish(code, &reason);
    }

    /// After input: schedule the output it caused, and the end of the session.
    fn after_input(&self) {
        if self.phase.get() == Phase::Closed || self.has(RELEASED) {
            return;
        }
        if self.buffered_amount() > 0 {
            self.schedule_flush();
        }
        let (rx_closed, close_received) = match self.rx.try_borrow() {
            Ok(rx) => rx
                .as_ref()
                .map_or((false, false), |rx| (rx.is_closed(), rx.close_received())),
            Err(_) => (false, false),
        };
        if rx_closed || close_received {
            self.begin_closing();
            if rx_closed {
                // Server side: the session is over once its last bytes are written.
                self.schedule_flush();
            }
        }
    }

    fn begin_closing(&self) {
        if !self.has(CLOSING) {
            self.set(CLOSING);
            self.closing_since_ms.set(self.reactor().map_or(0, Reactor::now_ms));
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
                match self.socket.borrow().as_ref() {
                    Some(mut socket) => socket.write(pending),
                    None => return,
                }
            };
            match written {
                Ok(n) => {
                    if let Some(tx) = self.tx.borrow_mut().as_mut() {
                        let _ = tx.consume(n);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // The socket is full: the next writable event continues.
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.finish(CloseCode::ABNORMAL.0, "write failed");
                    return;
                }
            }
        }
        self.after_flush();
    }

    fn after_flush(&self) {
        let (buffered, max_output, full) = match self.tx.borrow().as_ref() {
            Some(tx) => (tx.buffered(), self.config_now().max_output, tx.is_full()),
            None => return,
        };
        let rx_closed = self
            .rx
            .try_borrow()
            .ok()
            .and_then(|rx| rx.as_ref().map(Receiver::is_closed));
        if buffered == 0 && rx_closed == Some(true) {
            let code = match self.close_code.get() {
                0 => CloseCode::ABNORMAL.0,
                code => code,
            };
            let reason = std::mem::take(&mut *self.close_reason.borrow_mut());
            self.finish(code, &reason);
            return;
        }
        if self.has(DRAIN_WANTED) && buffered <= max_output / 4 {
            self.clear(DRAIN_WANTED);
            let (f, arg) = self.callbacks.get().drain;
            if let Some(f) = f {
                f(self.ptr(), arg);
            }
        }
        if !full && self.has_input() && self.can_read() {
            self.schedule_ready();
        }
    }

    // ------------------------------------------------------------ events to the program

    fn deliver(&self, event: Event<'_>) {
        let cb = self.callbacks.get();
        let con = self.ptr();
        match event {
            Event::Open { subprotocol, .. } => {
                self.phase.set(Phase::Open);
                *self.subprotocol.borrow_mut() = subprotocol.and_then(|p| CString::new(p).ok());
                self.arm_timer();
                if let (Some(f), arg) = cb.build {
                    f(self.fd.get(), arg);
                }
            }
            Event::Message { kind, data } => {
                if let (Some(f), arg) = cb.message {
                    f(con, arg, type_code(kind), data.as_ptr(), data.len());
                } else if let (Some(f), arg) = cb.read {
                    self.deliver_gbase(f, arg, data);
                }
            }
            Event::Fragment { kind, data, fin } => {
                if let (Some(f), arg) = cb.fragment {
                    f(con, arg, type_code(kind), data.as_ptr(), data.len(), fin as c_int);
                }
            }
            Event::Ping(_) => {}
            Event::Pong(data) => {
                if let (Some(f), arg) = cb.pong {
                    f(con, arg, data.as_ptr(), data.len());
                }
            }
            Event::Close { code, reason } => {
                self.close_code.set(code);
                *self.close_reason.borrow_mut() = reason.to_owned();
            }
            Event::Error(error) => {
                if self.close_code.get() == 0 {
                    let code = error.close_code().unwrap_or(CloseCode::ABNORMAL);
                    self.close_code.set(code.0);
                    *self.close_reason.borrow_mut() = error.to_string();
                }
            }
            Event::HttpRequest { method, path } => {
                self.close_code.set(CloseCode::NORMAL.0);
                if let (Some(f), arg) = cb.http {
                    let method = CString::new(method).unwrap_or_default();
                    let path = CString::new(path).unwrap_or_default();
                    f(con, arg, method.as_ptr(), path.as_ptr());
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
        let mut tail = std::mem::take(&mut *self.read_tail.borrow_mut());
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
            *self.read_tail.borrow_mut() = rest;
        }
    }

    // ------------------------------------------------------------ timers

    /// The next moment a timer of this connection has something to check.
    fn next_deadline(&self) -> Option<u64> {
        let config = self.config_now();
        let ms = |v: u32| v as u64;
        let mut deadline: Option<u64> = None;
        let mut consider = |t: u64| deadline = Some(deadline.map_or(t, |d| d.min(t)));
        match self.phase.get() {
            Phase::Connecting | Phase::Handshaking => consider(self.started_ms.get() + ms(config.handshake_timeout_ms)),
            Phase::Open => {
                if config.idle_timeout_ms > 0 && !self.has(CLOSING) {
                    consider(self.last_input_ms.get() + ms(config.idle_timeout_ms));
                }
                if config.ping_interval_ms > 0 && !self.has(CLOSING) {
                    match self.ping_sent_ms.get() {
                        0 => consider(self.last_input_ms.get() + ms(config.ping_interval_ms)),
                        sent => consider(sent + ms(config.pong_timeout_ms)),
                    }
                }
            }
            Phase::Idle | Phase::Closed => return None,
        }
        if self.has(CLOSING) {
            consider(self.closing_since_ms.get() + ms(config.close_timeout_ms));
        }
        deadline
    }

    /// Makes sure the reactor wakes this connection by its next deadline.
    fn arm_timer(&self) {
        let (Some(reactor), Some(token)) = (self.reactor(), self.token.get()) else {
            return;
        };
        let Some(deadline) = self.next_deadline() else { return };
        // A later deadline needs no new timer: the armed one fires first and re-arms.
        if deadline < self.timer_deadline.get() {
            let generation = self.timer_generation.get().wrapping_add(1);
            self.timer_generation.set(generation);
            self.timer_deadline.set(deadline);
            reactor.schedule_timer(token, deadline, generation);
        }
    }

    pub fn on_timer(&self) {
        self.timer_deadline.set(u64::MAX);
        let Some(reactor) = self.reactor() else { return };
        let now = reactor.now_ms();
        let config = self.config_now();
        let ms = |v: u32| v as u64;
        match self.phase.get() {
            Phase::Connecting | Phase::Handshaking => {
                if now >= self.started_ms.get() + ms(config.handshake_timeout_ms) {
                    self.finish(CloseCode::ABNORMAL.0, "handshake timeout");
                    return;
                }
            }
            Phase::Open => {
                if self.has(CLOSING) {
                    if now >= self.closing_since_ms.get() + ms(config.close_timeout_ms) {
                        let code = match self.close_code.get() {
                            0 => CloseCode::ABNORMAL.0,
                            code => code,
                        };
                        self.finish(code, "close timeout");
                        return;
                    }
                } else {
                    if config.idle_timeout_ms > 0 && now >= self.last_input_ms.get() + ms(config.idle_timeout_ms) {
                        let _ = self.close(CloseCode::GOING_AWAY.0, "idle timeout");
                    }
                    if config.ping_interval_ms > 0 && !self.has(CLOSING) {
                        let sent = self.ping_sent_ms.get();
                        // Input in the very millisecond of the ping counts as its answer
                        // (pings go out only after a quiet interval, so it came after).
                        if sent != 0 && self.last_input_ms.get() >= sent {
                            self.ping_sent_ms.set(0);
                        } else if sent != 0 && now >= sent + ms(config.pong_timeout_ms) {
                            self.finish(CloseCode::ABNORMAL.0, "pong timeout");
                            return;
                        }
                        if self.ping_sent_ms.get() == 0
                            && now >= self.last_input_ms.get() + ms(config.ping_interval_ms)
                            && self.ping(b"").is_ok()
                        {
                            self.ping_sent_ms.set(now.max(1));
                        }
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
        self.timer_generation.set(self.timer_generation.get().wrapping_add(1));
        self.deregister();
        if !self.has(RELEASED) {
            let cb = self.callbacks.get();
            if let (Some(f), arg) = cb.close_ex {
                let reason = CString::new(reason).unwrap_or_default();
                f(self.ptr(), arg, code as c_int, reason.as_ptr(), reason.as_bytes().len());
            }
            if let (Some(f), arg) = cb.close {
                f(self.fd.get(), arg);
            }
        }
        self.drop_socket();
    }

    fn deregister(&self) {
        if let Some(token) = self.token.take() {
            if let Some(reactor) = self.reactor() {
                if let Some(socket) = self.socket.borrow_mut().as_mut() {
                    let _ = reactor.registry().deregister(socket);
                }
                reactor.remove(token);
            }
        }
    }

    /// Closes the socket and frees the session's buffers.
    fn drop_socket(&self) {
        self.socket.borrow_mut().take();
        self.fd.set(-1);
        if let Ok(mut rx) = self.rx.try_borrow_mut() {
            rx.take();
        }
        if let Ok(mut tx) = self.tx.try_borrow_mut() {
            tx.take();
        }
        self.backlog.borrow_mut().clear();
        self.read_tail.borrow_mut().clear();
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
        self.flags.set(self.flags.get() & RELEASED);
        Ok(())
    }

    /// The reactor is going away.
    pub fn detach(&self) {
        let _ = self.stop();
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
        conn.close_unstarted_fd();
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

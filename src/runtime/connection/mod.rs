//! A WebSocket connection on a reactor: its socket, its session, its handler
//! and its timer.
//!
//! Every method takes `&self` and all state sits in `Cell`/`RefCell`, because
//! the handler runs in the middle of the connection's own work and may call
//! back into it (send, close, pause, stop, release).
//!
//! An idle connection is small: the session keeps no buffer when nothing is
//! incomplete, output borrows the thread's spare buffer only while it waits,
//! and what is rarely needed sits in a box made on demand (`Extra`).
//!
//! The parts: `input` (reading and feeding the session), `output` (writing),
//! `delivery` (session events to the handler), `memory` (the reactor's memory
//! budget), `timeouts` (the timers),
//! `ending` (close, stop, release), `connector` (the client side: resolve,
//! connect, redirects), `tunnel` (a client's proxy dialogue), `reconnect`
//! (a client's next attempt), `client_state` (what a client keeps between
//! them), `secure` (TLS between the socket and the session), `published`
//! (topics it subscribes to, published frames waiting for its socket),
//! `upgrade` (the program's decision on a server's upgrade), `counted` (its share of the reactor's counters and log), `draining` (how
//! it ends when the reactor drains).

mod client_state;
mod connector;
mod counted;
mod delivery;
mod draining;
mod ending;
mod input;
mod memory;
mod output;
mod published;
mod reconnect;
mod ring;
mod secure;
mod timeouts;
mod tunnel;
mod upgrade;

use std::cell::{Cell, Ref, RefCell};
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::Arc;

use mio::Token;

use crate::proto::deflate::Compress;
use crate::proto::error::Error as SessionError;
use crate::proto::event::{Message, MessageKind};
use crate::proto::session::Session;
use crate::proto::state::State;
use crate::runtime::acceptor::accepted::{self, Accepted, AcceptedParts};
use crate::runtime::config::ConnConfig;
use crate::runtime::error::{Error, Result};
use crate::runtime::handler::ConnHandler;
use crate::runtime::reactor::{Reactor, Source};
use crate::runtime::stats::Bump;
use crate::runtime::timers::{TimerLinks, NO_TOKEN};
use crate::runtime::tls::Stream;
use crate::runtime::transport::{Socket, Transport};

/// Where a connection is in its life. While `Running`, the session's state
/// says the rest (handshake, open, closing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Created, or stopped: no socket.
    Idle,
    /// Client: the host name is being resolved (off the reactor's thread).
    Resolving,
    /// Client: TCP connect in progress (to the server, or to its proxy).
    Connecting,
    /// Client: the proxy is asked for a tunnel to the server (over TLS to
    /// an `https://` proxy).
    Tunneling,
    /// The session runs over the socket.
    Running,
    /// The socket is closed and the handler was told.
    Closed,
    /// Client: no socket, between two attempts of a reconnection (or until
    /// the close callbacks of a close made before it opened).
    Waiting,
}

bitflags::bitflags! {
    /// What remains of a connection's state besides its lifecycle and session.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Flags: u16 {
        /// The program paused reading.
        const PAUSED = 1;
        /// Input may be waiting in the socket (the last read did not drain it).
        const READABLE = 1 << 1;
        /// Queued in the reactor's list of output to write.
        const DIRTY = 1 << 2;
        /// Queued in the reactor's list of input to read.
        const READY = 1 << 3;
        /// A drain event is owed once output falls low.
        const DRAIN_WANTED = 1 << 4;
        /// Released by the program: freed once the dispatch ends.
        const RELEASED = 1 << 5;
        /// A close frame was sent or received, or the session ended: the close
        /// timer runs.
        const CLOSING = 1 << 6;
        /// The peer closed its side: read until EOF, a short read does not mean drained.
        const PEER_CLOSED = 1 << 7;
        /// Writable events are asked for (only while output waits for socket room).
        const WRITE_INTEREST = 1 << 8;
        /// The reactor owns the connection and frees it once it is closed.
        const OWNED_BY_REACTOR = 1 << 9;
        /// Options were set on this connection (`set_config`), not taken from the reactor.
        const OWN_CONFIG = 1 << 10;
        /// Streaming receive (handler's `on_fragment`), for the next messages.
        const STREAMING = 1 << 11;
        /// Plain HTTP requests go to the handler's `on_http`.
        const SERVE_HTTP = 1 << 12;
        /// The session is to be dropped once the feed running it returns.
        const DROP_SESSION = 1 << 13;
        /// A data message is arriving (since `started_ms`): the message timer runs.
        const IN_MESSAGE = 1 << 14;
        /// Not read because the reactor's memory budget is spent.
        const HELD_BACK = 1 << 15;
    }
}

bitflags::bitflags! {
    /// What the reactor's counters know of a connection (a byte of its own:
    /// `Flags` is full; it fits the padding, the connection does not grow).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Counted: u8 {
        /// Counted in `handshakes_pending`.
        const PENDING = 1;
        /// Counted in `connections_open`.
        const OPEN = 1 << 1;
        /// Its refusal was noted (`note_refusal`).
        const REFUSED = 1 << 2;
        /// Client role.
        const CLIENT = 1 << 3;
        /// The reactor drains: close with 1001 once its fragmented send ends.
        const GOING_AWAY = 1 << 4;
        /// Counted in `reconnects_waiting`.
        const WAITING = 1 << 5;
    }
}

/// What few connections need, made on demand.
#[derive(Default)]
struct Extra {
    close_reason: String,
    close_error: Option<Error>,
    /// The code of the close this side began (0: the peer began, or none).
    initiated_code: u16,
    /// Input read but not processed because reading was paused mid-buffer.
    backlog: Vec<u8>,
    /// TLS records received on the io_uring transport and not yet given to
    /// rustls (it was full, or reading stopped): they go before newer ones.
    ring_records: Vec<u8>,
    /// Client role: its URL, route, responses and reconnection.
    client: Option<Box<client_state::ClientState>>,
    /// TLS between the socket and the session (boxed: rustls' state is large).
    tls: Option<Box<Stream>>,
    /// Its topics and the published frames waiting for its socket.
    subscriber: published::Subscriber,
    /// What its acceptor decided for its socket (TLS to serve, the client's
    /// address from a PROXY header, its place in the limits).
    accepted: Option<Box<AcceptedParts>>,
}

/// A WebSocket connection on a reactor: a socket, its session, the program's
/// handler of its events, and its timers.
pub struct Connection<H: ConnHandler> {
    reactor: Cell<*const Reactor>,
    session: RefCell<Option<Session>>,
    handler: H,
    /// Taken out and put back around each use (a `Cell` costs no borrow flag).
    config: Cell<Option<Arc<ConnConfig>>>,
    extra: RefCell<Option<Box<Extra>>>,
    timer: TimerLinks,
    fd: Cell<RawFd>,
    token: Cell<u32>,
    /// Reactor milliseconds, truncated to 32 bits (compared with wrapping_sub).
    /// When the connection began (for the handshake timeout), then when the
    /// message being received began (for the message timeout).
    started_ms: Cell<u32>,
    last_input_ms: Cell<u32>,
    ping_sent_ms: Cell<u32>,
    /// Until the close: when the last message went in or out (compression
    /// streams are trimmed after a quiet while). From the close on: when the
    /// close began (for the close timeout). One field, as a closing
    /// connection trims nothing.
    mark_ms: Cell<u32>,
    flags: Cell<Flags>,
    close_code: Cell<u16>,
    lifecycle: Cell<Lifecycle>,
    counted: Cell<Counted>,
    /// The socket was made by this library (its acceptor or its connector):
    /// non-blocking, close-on-exec, with TCP_NODELAY, and no other descriptor
    /// of it exists, so closing it takes it out of the poll. A socket the
    /// program hands over is none of these for sure.
    own_socket: Cell<bool>,
}

impl<H: ConnHandler> Connection<H> {
    /// A connection on `reactor` (which must outlive it), owned by the program:
    /// give it a socket with `set_fd` + `start` (server) or call `connect`
    /// (client); free it with [`Connection::release`].
    pub fn create(reactor: &Reactor, handler: H) -> NonNull<Connection<H>> {
        NonNull::from(Box::leak(Box::new(Connection {
            reactor: Cell::new(reactor),
            session: RefCell::new(None),
            handler,
            config: Cell::new(None),
            extra: RefCell::new(None),
            timer: TimerLinks::default(),
            fd: Cell::new(-1),
            token: Cell::new(NO_TOKEN),
            started_ms: Cell::new(0),
            last_input_ms: Cell::new(0),
            ping_sent_ms: Cell::new(0),
            mark_ms: Cell::new(0),
            flags: Cell::new(Flags::empty()),
            close_code: Cell::new(0),
            lifecycle: Cell::new(Lifecycle::Idle),
            counted: Cell::new(Counted::empty()),
            own_socket: Cell::new(false),
        })))
    }

    /// Serves the server role on an accepted socket (taken over, closed at the
    /// end) with a connection the reactor owns and frees once it is closed.
    pub fn serve(reactor: &Reactor, fd: RawFd, handler: H) -> Result<()> {
        let ptr = Self::create(reactor, handler);
        // SAFETY: just created; nothing else refers to it yet.
        let conn = unsafe { ptr.as_ref() };
        conn.set(Flags::OWNED_BY_REACTOR);
        let started = conn.set_fd(fd).and_then(|()| conn.start());
        if started.is_err() {
            // SAFETY: from `create`; not registered.
            unsafe { Self::release(ptr.as_ptr()) };
        }
        started
    }

    pub fn handler(&self) -> &H {
        &self.handler
    }

    pub(crate) fn reactor(&self) -> Option<&Reactor> {
        // SAFETY: the reactor is pinned (it never moves), outlives the
        // connections made on it (documented) and detaches them (setting this
        // pointer to NULL) if it is dropped first.
        unsafe { self.reactor.get().as_ref() }
    }

    /// The reactor and this connection's token, while registered.
    fn registered(&self) -> Option<(&Reactor, Token)> {
        match self.token.get() {
            NO_TOKEN => None,
            token => self.reactor().map(|r| (r, Token(token as usize))),
        }
    }

    /// This connection as the reactor sees it.
    fn as_source(&self) -> NonNull<dyn Source> {
        NonNull::from(self as &dyn Source)
    }

    #[inline]
    pub(crate) fn has(&self, flag: Flags) -> bool {
        self.flags.get().intersects(flag)
    }

    #[inline]
    pub(crate) fn set(&self, flag: Flags) {
        self.flags.set(self.flags.get() | flag);
    }

    #[inline]
    pub(crate) fn clear(&self, flag: Flags) {
        self.flags.set(self.flags.get() - flag);
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

    /// The session, while there is one.
    #[inline]
    fn session(&self) -> Option<Ref<'_, Session>> {
        Ref::filter_map(self.session.borrow(), Option::as_ref).ok()
    }

    // ------------------------------------------------------------ setup

    /// The options this connection runs (or will start) with.
    pub fn config(&self) -> Arc<ConnConfig> {
        let config = self.config.take();
        let current = config
            .clone()
            .unwrap_or_else(|| self.reactor().map(Reactor::config).unwrap_or_default());
        self.config.set(config);
        current
    }

    /// Uses these options instead of the reactor's. Only before `start`/`connect`.
    pub fn set_config(&self, config: Arc<ConnConfig>) -> Result<()> {
        if self.lifecycle.get() != Lifecycle::Idle {
            return Err(Error::State);
        }
        self.config.set(Some(config));
        self.set(Flags::OWN_CONFIG);
        Ok(())
    }

    /// Client role: adds a header line to this connection's upgrade requests
    /// (after the config's; checked as `Config::add_header` checks). The
    /// connection keeps its own copy of the options from then on (as with
    /// `set_config`, which replaces them: call that first). Only before
    /// `connect`.
    pub fn add_header(&self, name: &str, value: &str) -> Result<()> {
        if self.lifecycle.get() != Lifecycle::Idle {
            return Err(Error::State);
        }
        let mut config = (*self.config()).clone();
        Arc::make_mut(&mut config.protocol).add_header(name, value)?;
        self.set_config(Arc::new(config))
    }

    /// Streaming receive: messages reach `on_fragment` piece by piece and are
    /// never reassembled (for huge messages). A switch takes effect at the next
    /// message.
    pub fn set_streaming(&self, on: bool) {
        if on {
            self.set(Flags::STREAMING);
        } else {
            self.clear(Flags::STREAMING);
        }
        if let Some(session) = self.session() {
            session.set_streaming(on);
        }
    }

    /// Server role: a request that is not a WebSocket upgrade goes to
    /// `on_http` instead of being refused with 400. Only before `start`.
    pub fn set_serve_http(&self, on: bool) {
        if on {
            self.set(Flags::SERVE_HTTP);
        } else {
            self.clear(Flags::SERVE_HTTP);
        }
    }

    /// The socket, or -1.
    pub fn fd(&self) -> RawFd {
        self.fd.get()
    }

    /// Takes ownership of a connected socket (closed on release or stop).
    /// Inside an acceptor's callback, the socket being accepted comes with
    /// what the acceptor decided for it (TLS, the PROXY address, its place in
    /// the limits), and from then on belongs to this connection whatever the
    /// callback returns.
    pub fn set_fd(&self, fd: RawFd) -> Result<()> {
        if self.lifecycle.get() != Lifecycle::Idle || fd < 0 {
            return Err(Error::State);
        }
        let parts = accepted::take(fd).map(|a| a.into_parts().1);
        self.adopt(fd, parts);
        Ok(())
    }

    /// Takes an accepted socket with its acceptor's decisions (from
    /// `accepted::take`, possibly on another thread): `start` then serves it
    /// as the acceptor would have.
    pub fn set_accepted(&self, accepted: Accepted) -> Result<()> {
        if self.lifecycle.get() != Lifecycle::Idle {
            return Err(Error::State);
        }
        let (fd, parts) = accepted.into_parts();
        self.adopt(fd, Some(parts));
        Ok(())
    }

    fn adopt(&self, fd: RawFd, parts: Option<AcceptedParts>) {
        let previous = self.fd.replace(fd);
        if previous >= 0 && previous != fd {
            // An fd handed over earlier and never started: still ours.
            Socket(previous).close();
        }
        // With parts, it comes from an acceptor of ours.
        self.own_socket.set(parts.is_some());
        let parts = parts.filter(|p| p.tls.is_some() || p.peer.is_some() || p.ticket.is_some());
        if parts.is_some() || self.extra.borrow().is_some() {
            self.extra().accepted = parts.map(Box::new);
        }
    }

    /// The client's address: from the PROXY header its acceptor read, else
    /// the socket's peer (IPv4-mapped addresses as IPv4). `None` without a
    /// socket.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        let proxied = self.with_extra(|e| e.accepted.as_ref().and_then(|a| a.peer)).flatten();
        proxied.or_else(|| (self.fd.get() >= 0).then(|| self.socket().peer_addr()).flatten())
    }

    /// A new session with the connection's options, in place of the old one.
    fn install_session(&self, session: Session) -> Result<()> {
        session.set_streaming(self.has(Flags::STREAMING));
        session.set_serve_http(self.has(Flags::SERVE_HTTP));
        let mut slot = self.session.try_borrow_mut().map_err(|_| Error::Reentrant)?;
        if let Some(old) = slot.replace(session) {
            self.discharge(&old);
        }
        self.clear(Flags::DROP_SESSION);
        Ok(())
    }

    /// Server role on the socket given with `set_fd`.
    pub fn start(&self) -> Result<()> {
        if self.lifecycle.get() != Lifecycle::Idle || self.fd.get() < 0 {
            return Err(Error::State);
        }
        let reactor = self.reactor().filter(|r| !r.drain_begun()).ok_or(Error::State)?;
        if !self.own_socket.get() {
            // A program may hand over a blocking socket; ours are ready.
            let socket = self.socket();
            socket
                .set_nonblocking()
                .map_err(|_| Error::Io("making the socket non-blocking"))?;
            socket.set_nodelay();
        }
        // TLS when the socket comes from an acceptor serving TLS.
        let served = self
            .extra
            .borrow_mut()
            .as_mut()
            .and_then(|e| e.accepted.as_mut())
            .and_then(|a| a.tls.take());
        let stream = served.map(|t| Stream::server(&t)).transpose()?;
        let config = self.config();
        let session = Session::server(Arc::clone(&config.protocol));
        session.set_decides_upgrades(self.handler.decides_upgrades());
        self.install_session(session)?;
        self.config.set(Some(config));
        self.set_tls(stream);
        let token = reactor.add(self.as_source());
        let on_ring = self.open_on_ring(reactor, token);
        if !on_ring {
            if let Err(e) = self.register(reactor, token, false) {
                reactor.remove(token);
                return Err(e);
            }
        }
        // Bytes that arrived before the registration are reported by the
        // next poll (epoll and kqueue look at a socket when it is added):
        // no read now that would most often find nothing.
        self.begin(token, Lifecycle::Running);
        self.count_begin(false);
        if on_ring {
            // The ring's first receive is armed by a read in this turn.
            self.set(Flags::READABLE);
            self.schedule_ready();
        }
        Ok(())
    }

    /// Registers the socket with the poll under `token`.
    fn register(&self, reactor: &Reactor, token: Token, writable: bool) -> Result<()> {
        let interest = if writable {
            mio::Interest::READABLE | mio::Interest::WRITABLE
        } else {
            mio::Interest::READABLE
        };
        let fd = self.fd.get();
        reactor
            .registry()
            .register(&mut mio::unix::SourceFd(&fd), token, interest)
            .map_err(|_| Error::Io("registering the socket"))?;
        if writable {
            self.set(Flags::WRITE_INTEREST);
        }
        Ok(())
    }

    /// The connection runs from now on, registered under `token`.
    fn begin(&self, token: Token, lifecycle: Lifecycle) {
        self.token.set(token.0 as u32);
        self.lifecycle.set(lifecycle);
        let kept = Flags::PAUSED
            | Flags::RELEASED
            | Flags::OWNED_BY_REACTOR
            | Flags::OWN_CONFIG
            | Flags::STREAMING
            | Flags::SERVE_HTTP
            | Flags::WRITE_INTEREST;
        self.flags.set(self.flags.get() & kept);
        self.close_code.set(0);
        if let Some(extra) = self.extra.borrow_mut().as_mut() {
            extra.close_reason.clear();
            extra.close_error = None;
            extra.initiated_code = 0;
        }
        let now = self.now32();
        self.started_ms.set(now);
        self.last_input_ms.set(now);
        self.mark_ms.set(now);
        self.ping_sent_ms.set(0);
        self.arm_timer();
    }

    // ------------------------------------------------------------ state

    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle.get()
    }

    /// The session's state, while there is a session.
    pub fn state(&self) -> Option<State> {
        self.session().map(|s| s.state())
    }

    /// `Ok` when the opening handshake is complete and no close has started.
    pub fn established(&self) -> Result<()> {
        match (self.lifecycle.get(), self.state()) {
            (Lifecycle::Running, Some(State::Open)) if !self.has(Flags::CLOSING) => Ok(()),
            (Lifecycle::Running, Some(State::Handshake | State::Deciding)) => Err(SessionError::NotOpen.into()),
            (Lifecycle::Running | Lifecycle::Closed, _) => Err(SessionError::Closed.into()),
            _ => Err(SessionError::NotOpen.into()),
        }
    }

    /// Output bytes queued and not yet written (over TLS, not yet encrypted),
    /// published frames included.
    pub fn buffered_amount(&self) -> usize {
        self.session().map_or(0, |s| s.buffered() + s.in_flight()) + self.published_bytes()
    }

    /// What ended the connection (`None` for a completed closing handshake, or
    /// while it runs): readable in `on_close` and afterwards.
    pub fn close_error(&self) -> Option<Error> {
        self.with_extra(|e| e.close_error).flatten()
    }

    // ------------------------------------------------------------ sending

    /// Runs a send on the session, then schedules the write and the drain signal.
    #[inline(always)]
    fn with_session(&self, f: impl FnOnce(&Session) -> crate::proto::error::Result<()>) -> Result<()> {
        let session = self.session().ok_or_else(|| self.no_session())?;
        let result = f(&session);
        self.sent(&session, result)
    }

    /// Why there is nothing to send on.
    fn no_session(&self) -> Error {
        match self.lifecycle.get() {
            Lifecycle::Closed => SessionError::Closed,
            _ => SessionError::NotOpen,
        }
        .into()
    }

    /// After a send: the drain signal is owed when output is (or would go)
    /// over half the limit; what was queued is written at the end of the turn.
    #[inline(always)]
    fn sent(&self, session: &Session, result: crate::proto::error::Result<()>) -> Result<()> {
        if matches!(result, Err(SessionError::Full)) || session.is_full() {
            self.set(Flags::DRAIN_WANTED);
        }
        if result.is_ok() {
            self.schedule_flush();
        }
        result.map_err(Error::from)
    }

    /// Sends a whole message (text must be UTF-8).
    pub fn send(&self, kind: MessageKind, data: &[u8]) -> Result<()> {
        self.send_message(Message::new(kind, data)?)
    }

    /// Sends a message, e.g. one received: a large one leaves at once, straight
    /// from its bytes, behind what output waits (unless the socket is known to
    /// be full).
    #[inline(always)]
    pub fn send_message(&self, message: Message<'_>) -> Result<()> {
        // `with_session` written out: its closure was a call of its own.
        let session = self.session().ok_or_else(|| self.no_session())?;
        let socket = self.socket();
        let result = session
            .send_direct_counted(message, |pending, payload| {
                // Over TLS, every byte goes through the records; published
                // frames waiting go first; on the ring, the ring sends.
                // (Asked only for large messages.)
                if self.has(Flags::WRITE_INTEREST | Flags::RELEASED)
                    || self.is_tls()
                    || self.has_published()
                    || self.runs_on_ring()
                {
                    return Ok(0);
                }
                let written = socket.write2(pending, payload);
                if let (Ok(n), Some(c)) = (&written, self.counters()) {
                    c.wire_bytes_out.add(*n as u64);
                }
                written
            })
            .map(|compressed| {
                self.count_sent(message.as_bytes().len(), true, compressed);
                self.message_passed_on(&session);
            });
        self.sent(&session, result)
    }

    /// Sends a message choosing whether it is compressed (permessage-deflate).
    pub fn send_message_with(&self, message: Message<'_>, compress: Compress) -> Result<()> {
        match compress {
            Compress::Auto => self.send_message(message),
            _ => {
                let mut compressed = false;
                self.with_session(|s| s.send_counted(message, compress).map(|c| compressed = c))?;
                self.count_sent(message.as_bytes().len(), true, compressed);
                self.message_passed();
                Ok(())
            }
        }
    }

    /// The `Sec-WebSocket-Extensions` in force (empty: none, or not open).
    pub fn extensions(&self) -> String {
        self.session().map(|s| s.extensions()).unwrap_or_default()
    }

    pub fn send_fragment(&self, kind: MessageKind, data: &[u8], fin: bool) -> Result<()> {
        self.with_session(|s| s.send_fragment(kind, data, fin))?;
        self.count_sent(data.len(), fin, false);
        self.fragment_sent(fin);
        self.message_passed();
        if fin {
            self.go_away_if_asked();
        }
        Ok(())
    }

    pub fn ping(&self, data: &[u8]) -> Result<()> {
        self.with_session(|s| s.ping(data))?;
        if let Some(c) = self.counters() {
            c.pings_out.add(1);
        }
        Ok(())
    }

    /// Starts the closing handshake; the handler's `on_close` follows when the
    /// peer answers, or after the close timeout.
    ///
    /// A client that has not opened yet (it resolves, connects, talks to its
    /// proxy or runs the handshake) or waits to connect again is closed at
    /// once, for good: its `on_close` follows at the next turn, with `code`
    /// and `reason` and no error. Inside `on_close`, this cancels the
    /// reconnection it announced.
    pub fn close(&self, code: u16, reason: &str) -> Result<()> {
        if self.close_client(code, reason)? {
            return Ok(());
        }
        self.with_session(|s| s.close(code, reason))?;
        self.stop_reconnecting();
        if self.close_code.get() == 0 {
            self.close_code.set(code);
            let mut extra = self.extra();
            extra.close_reason = reason.to_owned();
            extra.initiated_code = code;
        }
        self.begin_closing();
        Ok(())
    }

    /// Answers the plain HTTP request being handled (from inside `on_http`).
    pub fn http_respond(&self, status: u16, content_type: &str, body: &[u8]) -> Result<()> {
        self.with_session(|s| s.http_response(status, content_type, body))
    }

    // ------------------------------------------------------------ flow control

    /// Stops reading (and delivering what was already read) until `resume_read`.
    pub fn pause_read(&self) -> Result<()> {
        if self.lifecycle.get() == Lifecycle::Idle {
            return Err(Error::State);
        }
        self.set(Flags::PAUSED);
        Ok(())
    }

    pub fn resume_read(&self) -> Result<()> {
        if self.lifecycle.get() == Lifecycle::Idle {
            return Err(Error::State);
        }
        self.clear(Flags::PAUSED);
        if self.has_input() {
            self.schedule_ready();
        }
        Ok(())
    }
}

impl<H: ConnHandler> Source for Connection<H> {
    fn on_event(&self, readable: bool, writable: bool, peer_closed: bool) {
        self.on_poll_event(readable, writable, peer_closed);
    }

    fn on_ready(&self) {
        self.clear(Flags::READY);
        self.read_input();
    }

    fn flush(&self) {
        // Flushed already in this turn (right after its input) unless output
        // was queued since.
        if self.has(Flags::DIRTY) {
            Connection::flush(self);
        }
    }

    fn on_timer(&self) {
        Connection::on_timer(self);
    }

    fn timer_links(&self) -> Option<&TimerLinks> {
        Some(&self.timer)
    }

    fn on_resolved(&self, request: u32, addrs: std::io::Result<Vec<std::net::SocketAddr>>) {
        self.resolved(request, addrs);
    }

    fn on_ring(&self, event: crate::runtime::uring::RingEvent<'_>) {
        self.ring_event(event);
    }

    fn deliver(&self, frame: &std::rc::Rc<crate::runtime::topics::HeldFrame>) -> crate::runtime::topics::Delivery {
        self.deliver_published(frame)
    }

    fn refuse_pending(&self, status: u16) -> bool {
        self.refuse_if_pending(status)
    }

    fn close_slow(&self) {
        self.log(crate::runtime::log::LogEvent::SlowClosed, || {
            "slow subscriber closed with 1008".to_owned()
        });
        let _ = self.close(
            crate::proto::close_code::CloseCode::POLICY_VIOLATION.0,
            "slow subscriber",
        );
    }

    fn drain(&self) {
        self.begin_draining();
    }

    fn cut(&self) -> bool {
        self.cut_drained()
    }

    fn detach(&self) -> bool {
        Connection::detach(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    impl ConnHandler for Nothing {}

    /// Without the `tls` feature, `wss://` is refused at once with a clear error.
    #[test]
    #[cfg(not(feature = "tls"))]
    fn wss_without_tls_built_in_is_refused() {
        let reactor = Reactor::new().unwrap();
        let conn = Connection::create(&reactor, Nothing);
        // SAFETY: just created; released below and not used afterwards.
        let c = unsafe { conn.as_ref() };
        assert_eq!(
            c.connect("wss://127.0.0.1:9/"),
            Err(Error::Tls(crate::runtime::tls::TlsError::NotBuilt))
        );
        assert_eq!(c.lifecycle(), Lifecycle::Idle);
        // SAFETY: from `create`, not used afterwards.
        unsafe { Connection::release(conn.as_ptr()) };
    }

    /// TLS (and whatever else is rare) lives in `Extra`: a plain connection must
    /// not grow with it. The number is today's, on 64-bit targets.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_connection_stays_small() {
        assert_eq!(std::mem::size_of::<Connection<Nothing>>(), 168);
    }
}

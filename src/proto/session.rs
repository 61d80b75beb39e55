//! A WebSocket session: the owner of a connection's protocol state. It joins
//! the receiving part (handshake and frame parsing) and the sending part
//! (framing into the output buffer) around one [`State`], and it is where the
//! re-entrancy rules live: the program's event handler may call back into the
//! session it is handling.

use std::cell::{Cell, Ref, RefCell};
use std::mem::MaybeUninit;
use std::sync::Arc;

use crate::proto::config::Config;
use crate::proto::deflate::{Agreed, Compress};
use crate::proto::error::{Error, Result};
use crate::proto::event::{Event, Message, MessageKind};
use crate::proto::frame::OpCode;
use crate::proto::handshake::{client, server};
use crate::proto::receiver::{Link, Receiver};
use crate::proto::role::Role;
use crate::proto::sender::{Sender, DIRECT_SEND_MIN};
use crate::proto::state::State;

mod decision;

pub use decision::Subprotocol;

/// What the program gives [`Session::feed`]: the receiver of the session's events.
/// Closures `FnMut(&Session, Event)` are handlers.
pub trait EventHandler {
    /// One event; `session` may be used to answer from inside (see [`Session`]).
    fn on_event(&mut self, session: &Session, event: Event<'_>);

    /// Checked after every event: `true` makes `feed` return at once, reporting
    /// how far it got (the program paused reading or is dropping the session).
    fn stopped(&self) -> bool {
        false
    }

    /// A data message was received compressed (permessage-deflate); told
    /// once it is whole, before its event (or its last fragment's). Nothing
    /// by default (the runtime counts them).
    fn compressed_message(&mut self) {}
}

impl<F: FnMut(&Session, Event<'_>)> EventHandler for F {
    fn on_event(&mut self, session: &Session, event: Event<'_>) {
        self(session, event)
    }
}

/// A session, sans I/O: received bytes go in through [`Session::feed`], events
/// come out to an [`EventHandler`]; sends go in, and the bytes to write come out
/// through [`Session::pending`] and [`Session::consume`].
///
/// Every method takes `&self`, so a handler may call any of them on the session
/// whose event it handles, with two exceptions: `feed` and `feed_eof` return
/// [`Error::Reentrant`] there (input is already being processed) and
/// `read_direct` returns `None`; and a send fails with [`Error::Reentrant`]
/// while the program holds the [`Ref`] that `pending` returned.
///
/// ```
/// use std::sync::Arc;
/// use wsconn::{Config, Event, Session};
///
/// let server = Session::server(Arc::new(Config::default()));
/// let client = Session::client(Arc::new(Config::default()), "localhost", "/").unwrap();
/// let mut request = client.pending().to_vec();
/// client.consume(request.len()).unwrap();
/// server.feed(&mut request, &mut |_: &Session, _: Event<'_>| {}).unwrap();
/// let mut response = server.pending().to_vec();
/// client.feed(&mut response, &mut |s: &Session, event: Event<'_>| {
///     if let Event::Open { .. } = event {
///         s.send_text("hello").unwrap();
///     }
/// }).unwrap();
/// assert!(client.buffered() > 0);
/// ```
pub struct Session {
    config: Arc<Config>,
    state: Cell<State>,
    /// The role and the two switches, in one byte (see [`Options`]): with
    /// the packed deflate agreement, the small fields fit one word.
    options: Cell<Options>,
    /// `memory` in KiB as of the last `memory_change` (fits the padding after
    /// the flags above: the session does not grow).
    reported_kib: Cell<u32>,
    /// permessage-deflate once agreed, packed (0: none) to fit the padding.
    deflate: Cell<u16>,
    /// Lent out for the whole of a feed (`Options::FEEDING` says so): a
    /// `Cell` and a flag bit rather than a `RefCell`, so that the receiver
    /// has a word for its decompression without the session growing.
    rx: Cell<Receiver>,
    /// Borrowed only inside one call, never while the program runs.
    tx: RefCell<Sender>,
}

bitflags::bitflags! {
    /// A session's role and switches.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Options: u8 {
        const CLIENT = 1;
        const STREAMING = 2;
        const SERVE_HTTP = 4;
        /// The receiver is lent out: a feed (and maybe a handler) runs.
        const FEEDING = 8;
        /// Server role: permessage-deflate is answered without context takeover.
        const NO_TAKEOVER = 16;
        /// Server role: the program decides upgrades (`Event::Upgrade`).
        const DECIDES_UPGRADES = 32;
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role())
            .field("state", &self.state())
            .field("deflate", &self.deflate())
            .field("buffered", &self.tx.try_borrow().map(|tx| tx.buffered()).ok())
            .finish_non_exhaustive()
    }
}

/// The receiver, taken out of its session for one call and put back when the
/// call ends (also if it unwinds).
struct RxLoan<'a> {
    session: &'a Session,
    rx: Receiver,
}

impl Drop for RxLoan<'_> {
    fn drop(&mut self) {
        self.session.rx.set(std::mem::take(&mut self.rx));
        self.session.switch(Options::FEEDING, false);
    }
}

/// The session lent to its receiver during a feed.
struct Feeding<'a, H> {
    session: &'a Session,
    handler: &'a mut H,
}

impl<H: EventHandler> Link for Feeding<'_, H> {
    fn config(&self) -> &Arc<Config> {
        &self.session.config
    }

    fn role(&self) -> Role {
        self.session.role()
    }

    fn state(&self) -> State {
        self.session.state.get()
    }

    fn set_state(&mut self, state: State) {
        self.session.state.set(state);
    }

    fn deflate(&self) -> Option<Agreed> {
        self.session.deflate()
    }

    fn set_deflate(&mut self, agreed: Option<Agreed>) {
        self.session.deflate.set(agreed.map_or(0, |a| a.pack()));
    }

    fn context_takeover_allowed(&self) -> bool {
        !self.session.options.get().contains(Options::NO_TAKEOVER)
    }

    fn streaming(&self) -> bool {
        self.session.options.get().contains(Options::STREAMING)
    }

    fn serves_http(&self) -> bool {
        self.session.options.get().contains(Options::SERVE_HTTP) && self.session.role() == Role::Server
    }

    fn decides_upgrades(&self) -> bool {
        self.session.options.get().contains(Options::DECIDES_UPGRADES) && self.session.role() == Role::Server
    }

    fn with_sender<R>(&mut self, f: impl FnOnce(&mut Sender, Role, usize) -> R) -> R {
        let s = self.session;
        f(&mut s.tx.borrow_mut(), s.role(), s.config.max_output())
    }

    #[inline(always)]
    fn on_event(&mut self, event: Event<'_>) {
        self.handler.on_event(self.session, event)
    }

    fn compressed_message(&mut self) {
        self.handler.compressed_message()
    }

    fn stopped(&self) -> bool {
        self.handler.stopped()
    }
}

impl Session {
    /// A server session: it expects the client's opening handshake as its first input.
    pub fn server(config: Arc<Config>) -> Session {
        Session::new(config, Role::Server, Receiver::default(), Sender::default())
    }

    /// A client session: the upgrade request (a GET of `path` with `Host: host`
    /// and a fresh key, then the config's subprotocols, deflate offer and
    /// header lines) is queued at once. [`Error::InvalidArgument`] unless both
    /// are printable ASCII without spaces and `path` starts with '/'.
    pub fn client(config: Arc<Config>, host: &str, path: &str) -> Result<Session> {
        Session::client_with_headers(config, host, path, &[])
    }

    /// [`Session::client`], with `extra` header lines after the config's
    /// (each checked as [`Config::add_header`] checks them).
    pub fn client_with_headers(
        config: Arc<Config>,
        host: &str,
        path: &str,
        extra: &[(String, String)],
    ) -> Result<Session> {
        let key = client::new_key();
        let mut tx = Sender::default();
        let mut request = Vec::new();
        client::write_request(&mut request, host, path, &key, &config, extra)?;
        tx.buffer().extend_from_slice(&request);
        Ok(Session::new(
            config,
            Role::Client,
            Receiver::client(key, path.to_owned()),
            tx,
        ))
    }

    fn new(config: Arc<Config>, role: Role, rx: Receiver, tx: Sender) -> Session {
        Session {
            config,
            state: Cell::new(State::Handshake),
            options: Cell::new(match role {
                Role::Server => Options::empty(),
                Role::Client => Options::CLIENT,
            }),
            reported_kib: Cell::new(0),
            deflate: Cell::new(0),
            rx: Cell::new(rx),
            tx: RefCell::new(tx),
        }
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    #[inline]
    pub fn role(&self) -> Role {
        if self.options.get().contains(Options::CLIENT) {
            Role::Client
        } else {
            Role::Server
        }
    }

    fn switch(&self, option: Options, on: bool) {
        let mut options = self.options.get();
        options.set(option, on);
        self.options.set(options);
    }

    /// The receiver, for a call that may run the program's handler;
    /// [`Error::Reentrant`] while a feed runs.
    fn lend_rx(&self) -> Result<RxLoan<'_>> {
        if self.options.get().contains(Options::FEEDING) {
            return Err(Error::Reentrant);
        }
        self.switch(Options::FEEDING, true);
        Ok(RxLoan {
            session: self,
            rx: self.rx.take(),
        })
    }

    /// Looks at the receiver (with `f`, which must not panic: the receiver is
    /// out of its cell meanwhile); `None` while a feed runs (inside a handler).
    fn peek_rx<R>(&self, f: impl FnOnce(&Receiver) -> R) -> Option<R> {
        if self.options.get().contains(Options::FEEDING) {
            return None;
        }
        let rx = self.rx.take();
        let seen = f(&rx);
        self.rx.set(rx);
        Some(seen)
    }

    /// Where the session stands; exact at any time, also inside a handler.
    #[inline]
    pub fn state(&self) -> State {
        self.state.get()
    }

    /// Streaming receive: data payloads are reported as they arrive
    /// (`Event::Fragment`) instead of reassembled, so the program need not hold a
    /// huge message in memory; the size limits still apply. A switch takes effect
    /// at the next message.
    pub fn set_streaming(&self, on: bool) {
        self.switch(Options::STREAMING, on);
    }

    /// Server role: report a request without `Upgrade: websocket` as
    /// `Event::HttpRequest` (the program may answer it) instead of answering 400.
    pub fn set_serve_http(&self, on: bool) {
        self.switch(Options::SERVE_HTTP, on);
    }

    /// Server role: whether permessage-deflate may be agreed with context
    /// takeover, as the config says (the default), or only without it, both
    /// ways (e.g. while memory is short: such a connection keeps no
    /// compression stream between messages). Read when the opening handshake
    /// is answered.
    pub fn set_context_takeover_allowed(&self, allowed: bool) {
        self.switch(Options::NO_TAKEOVER, !allowed);
    }

    // ------------------------------------------------------------ input

    /// Processes received bytes (unmasked in place) and returns how many were
    /// used: all, unless the handler stopped the feed (the rest must then be fed
    /// again later). On a failure the close frame or HTTP error it calls for is
    /// queued, an `Error` event is delivered, and the error is returned. Bytes
    /// arriving after the session closed are ignored (used).
    pub fn feed(&self, data: &mut [u8], handler: &mut impl EventHandler) -> Result<usize> {
        let mut loan = self.lend_rx()?;
        loan.rx.feed(data, &mut Feeding { session: self, handler })
    }

    /// The peer closed its side of the TCP connection. `Ok` when the closing
    /// handshake had completed, else [`Error::Eof`] (also reported as an event).
    pub fn feed_eof(&self, handler: &mut impl EventHandler) -> Result<()> {
        let mut loan = self.lend_rx()?;
        loan.rx.feed_eof(&mut Feeding { session: self, handler })
    }

    /// Reads the rest of a large data frame straight into the message being
    /// reassembled, saving the copy out of a read buffer. When a reassembled data
    /// frame has at least `min` payload bytes still to come, `read` is offered
    /// room for at most that payload (so it cannot take the next frame's bytes);
    /// what it read is processed at once, with the same events as `feed` (a
    /// protocol error fails the session as in `feed`: see [`Session::state`]).
    /// `None`: no such frame, or input is already being processed (called from
    /// a handler); read the usual way.
    ///
    /// # Safety
    /// `read` returns `Ok(n)` only after initializing the first `n` bytes of the
    /// room it was given.
    pub unsafe fn read_direct(
        &self,
        min: usize,
        read: impl FnOnce(&mut [MaybeUninit<u8>]) -> std::io::Result<usize>,
        handler: &mut impl EventHandler,
    ) -> Option<std::io::Result<usize>> {
        let mut loan = self.lend_rx().ok()?;
        let rx = &mut loan.rx;
        let room = rx.direct_room(min)?;
        let len = room.len();
        let result = read(room);
        if let Ok(n @ 1..) = result {
            if n > len {
                return Some(Err(std::io::ErrorKind::InvalidInput.into()));
            }
            // SAFETY: `read` initialized the first `n` bytes of the room
            // direct_room just gave (the caller's guarantee), and the receiver
            // was not used since.
            let _ = unsafe { rx.direct_filled(n, &mut Feeding { session: self, handler }) };
        }
        Some(result)
    }

    // ------------------------------------------------------------ memory

    /// Bytes held (buffers by capacity, not by what they hold now):
    /// incomplete input (the handshake head, a frame or message cut by a
    /// read), output not yet consumed, and permessage-deflate's streams
    /// (or, trimmed, the peer's window). An idle session holds none, but
    /// a window. `None` while input is being processed (inside a handler).
    pub fn memory(&self) -> Option<usize> {
        let tx = self.tx.try_borrow().ok()?;
        self.peek_rx(|rx| rx.memory() + tx.memory())
    }

    /// Whether the session holds buffers that grow with what is read:
    /// incomplete input, or output waiting (compression streams, bounded and
    /// given back by a trim, do not count). `true` inside a handler.
    pub fn holds_buffers(&self) -> bool {
        let output = self.tx.try_borrow().map_or(true, |tx| tx.holds_output());
        output || self.peek_rx(|rx| rx.input_memory() > 0).unwrap_or(true)
    }

    /// How much [`Session::memory`] changed since the last call, in bytes
    /// rounded up to whole KiB: what a program keeping a total over many sessions
    /// adds (and gives back with [`Session::memory_reported`] when it drops the
    /// session). 0 inside a handler (asked again later, nothing is lost).
    pub fn memory_change(&self) -> isize {
        self.memory().map_or(0, |now| self.report_memory(now))
    }

    /// [`Session::memory_change`] and [`Session::receiving_message`] in one
    /// look at the session, as a runtime asks after every read and write.
    pub fn memory_change_and_message(&self) -> (isize, bool) {
        let Ok(tx) = self.tx.try_borrow() else {
            return (0, false);
        };
        let seen = self.peek_rx(|rx| (rx.memory() + tx.memory(), rx.in_message()));
        drop(tx);
        seen.map_or((0, false), |(now, receiving)| (self.report_memory(now), receiving))
    }

    /// Notes `now` bytes held; returns the change since the last note, in
    /// whole KiB.
    fn report_memory(&self, now: usize) -> isize {
        let kib = u32::try_from(now.div_ceil(1024)).unwrap_or(u32::MAX);
        let before = self.reported_kib.replace(kib);
        (kib as isize - before as isize) * 1024
    }

    /// The total of the changes [`Session::memory_change`] reported so far.
    pub fn memory_reported(&self) -> usize {
        self.reported_kib.get() as usize * 1024
    }

    /// permessage-deflate with context takeover: gives back the memory of
    /// this session's compression streams, keeping only what RFC 7692 obliges
    /// it to keep. The compressor is dropped (the next compressed message
    /// starts a new stream; the peer decodes it as usual); the peer's
    /// decompressor is reduced to its window, the last
    /// min(bytes inflated, 2^window_bits) bytes it produced (about 1 KiB after
    /// a 1 KiB message, 32 KiB at most), and restored at the next compressed
    /// message. An idle connection thus goes from about 180-430 KiB to a few
    /// KiB; the cost is a new compressor and a restored window at the next
    /// message, and a smaller ratio on it: call this when the session has
    /// been idle for a while, not after every message.
    ///
    /// Safe to call at any time between feeds: a compressed message being
    /// received keeps its decompressor (this is then a no-op for it), and
    /// fragmented messages are never compressed when sent. Nothing to do
    /// without context takeover. [`Error::Reentrant`] inside a handler.
    pub fn trim_compression(&self) -> Result<()> {
        let mut loan = self.lend_rx()?;
        let mut tx = self.sender()?;
        loan.rx.trim_compression();
        tx.trim_compression();
        Ok(())
    }

    /// Whether [`Session::trim_compression`] would give memory back now
    /// (`true` inside a handler, where the receiver cannot be looked at).
    pub fn can_trim_compression(&self) -> bool {
        let deflater = self.tx.try_borrow().map_or(true, |tx| tx.holds_deflater());
        deflater || self.peek_rx(|rx| rx.can_trim_compression()).unwrap_or(true)
    }

    /// A data message has begun arriving and has not ended (false inside a
    /// handler, where input is being processed).
    pub fn receiving_message(&self) -> bool {
        self.peek_rx(|rx| rx.in_message()).unwrap_or(false)
    }

    // ------------------------------------------------------------ output

    /// The bytes waiting to be written. Holding the returned [`Ref`] makes sends
    /// fail with [`Error::Reentrant`]: drop it before sending.
    pub fn pending(&self) -> Ref<'_, [u8]> {
        Ref::map(self.tx.borrow(), Sender::pending)
    }

    /// Marks `n` pending bytes as written ([`Error::InvalidArgument`] if more
    /// than pending). A drained session holds no output buffer.
    pub fn consume(&self, n: usize) -> Result<()> {
        let mut tx = self.sender()?;
        tx.consume(n)?;
        drop(tx.take_drained());
        Ok(())
    }

    /// `consume`, keeping a drained buffer for [`Session::take_drained_output`]
    /// (a runtime's pool takes it once the turn's output is written).
    pub(crate) fn consume_keeping(&self, n: usize) -> Result<()> {
        self.sender()?.consume(n)
    }

    /// Number of bytes waiting to be written.
    pub fn buffered(&self) -> usize {
        self.tx.borrow().buffered()
    }

    /// Takes the pending output out whole, for a writer that needs the bytes
    /// to stay where they are until the kernel has written them (io_uring):
    /// returns the buffer and where the pending bytes start in it, or `None`
    /// when nothing is pending. Those bytes count as in flight (held, and
    /// against the max output) until [`Session::written_out`]; once written,
    /// the buffer may be lent again ([`Session::lend_output_buffer`]).
    /// [`Error::Reentrant`] inside a handler that holds the output.
    pub fn take_output(&self) -> Result<Option<(Vec<u8>, usize)>> {
        Ok(self.sender()?.take_output())
    }

    /// Takes the output buffer once everything in it was written (`None`
    /// while output waits, or when none is held): a program serving many
    /// sessions keeps one such buffer and lends it ([`Session::lend_output_buffer`])
    /// to the session about to produce output, so that idle sessions hold
    /// none and busy ones allocate none.
    pub fn take_drained_output(&self) -> Option<Vec<u8>> {
        self.tx.try_borrow_mut().ok()?.take_drained()
    }

    /// Gives the session an empty buffer for its next output if it holds
    /// none; else (or inside a handler that holds the output) `buffer`
    /// comes back.
    pub fn lend_output_buffer(&self, buffer: Vec<u8>) -> Option<Vec<u8>> {
        match self.tx.try_borrow_mut() {
            Ok(mut tx) => tx.lend_buffer(buffer),
            Err(_) => Some(buffer),
        }
    }

    /// Puts `bytes`, the end of what [`Session::take_output`] took, back in
    /// front of the output: they are not written now (they stop counting as
    /// in flight).
    pub fn give_back_output(&self, bytes: &[u8]) -> Result<()> {
        self.sender()?.give_back_output(bytes);
        Ok(())
    }

    /// `n` bytes taken with [`Session::take_output`] were written (or never
    /// will be: the connection ended).
    pub fn written_out(&self, n: usize) -> Result<()> {
        self.sender()?.written_out(n);
        Ok(())
    }

    /// Bytes taken with [`Session::take_output`] and not yet written.
    pub fn in_flight(&self) -> usize {
        self.tx.borrow().in_flight()
    }

    /// Whether output reached half the configured max output: the program should
    /// stop reading until it drains.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.tx.borrow().is_full(self.config.max_output())
    }

    /// Whether the program should read from the socket: more input is expected
    /// and output is not over its high-water mark (a peer that does not read is
    /// not read either), and while an upgrade is being decided, the bytes held
    /// meanwhile are under the handshake size limit.
    pub fn wants_read(&self) -> bool {
        self.state().wants_input() && !self.is_full() && self.input_room() != Some(0)
    }

    /// Whether output is waiting to be written.
    pub fn wants_write(&self) -> bool {
        self.buffered() > 0
    }

    // ------------------------------------------------------------ sending

    /// The sender, for one short call.
    #[inline(always)]
    fn sender(&self) -> Result<std::cell::RefMut<'_, Sender>> {
        self.tx.try_borrow_mut().map_err(|_| Error::Reentrant)
    }

    /// The sender, when data may be sent now.
    #[inline(always)]
    fn open_sender(&self) -> Result<std::cell::RefMut<'_, Sender>> {
        self.state().check_send()?;
        self.sender()
    }

    /// Sends a whole message. Text must be UTF-8 ([`Error::InvalidArgument`] and
    /// nothing queued otherwise). Fails with [`Error::Full`] when output is over
    /// the limit, [`Error::NotOpen`] before the handshake, [`Error::Closed`] after
    /// a close, [`Error::InvalidArgument`] while a fragmented message is unfinished.
    pub fn send(&self, kind: MessageKind, data: &[u8]) -> Result<()> {
        self.send_message(Message::new(kind, data)?)
    }

    /// Sends a text message; being a `str`, it is not validated again.
    pub fn send_text(&self, text: &str) -> Result<()> {
        self.send_message(Message::Text(text))
    }

    /// Sends a message, e.g. one received (an echo costs no second UTF-8 check:
    /// the text's type says it is valid).
    #[inline(always)]
    pub fn send_message(&self, message: Message<'_>) -> Result<()> {
        self.send_message_with(message, Compress::Auto)
    }

    /// Sends a message like `send_message`, choosing whether it is compressed
    /// (when permessage-deflate was agreed; see [`Session::extensions`]).
    // Inlined: a small echo is a few checks and two copies, and the calls
    // down to the output buffer would cost as much again.
    #[inline(always)]
    pub fn send_message_with(&self, message: Message<'_>, compress: Compress) -> Result<()> {
        self.send_counted(message, compress).map(|_| ())
    }

    /// `send_message_with`, telling whether the message went compressed
    /// (for the runtime's counters).
    #[inline(always)]
    pub(crate) fn send_counted(&self, message: Message<'_>, compress: Compress) -> Result<bool> {
        let mut tx = self.open_sender()?;
        let data = message.as_bytes();
        tx.check_message(data, self.config.max_output())?;
        Ok(match self.compression(data.len(), compress) {
            Some((agreed, config)) => tx.write_compressed(self.role(), message.kind(), data, &agreed, config),
            None => {
                tx.write_message(self.role(), message.kind(), data);
                false
            }
        })
    }

    /// The agreement and settings to compress a message of `len` bytes
    /// with, if it is to be compressed.
    #[inline(always)]
    fn compression(&self, len: usize, compress: Compress) -> Option<(Agreed, &crate::proto::deflate::DeflateConfig)> {
        if self.deflate.get() == 0 {
            return None;
        }
        let agreed = self.deflate()?;
        let config = self.config.deflate()?;
        // An empty message goes as it is: nothing to gain, and an empty
        // compressed payload is the one form peers disagree on.
        let wanted = len > 0
            && match compress {
                Compress::Auto => len >= config.min_size(),
                Compress::Always => true,
                Compress::Never => false,
            };
        wanted.then_some((agreed, config))
    }

    /// permessage-deflate as agreed in the opening handshake (`None`: not
    /// offered, not accepted, or the handshake is not done).
    pub fn deflate(&self) -> Option<Agreed> {
        Agreed::unpack(self.deflate.get())
    }

    /// Whether permessage-deflate was agreed with context takeover in either
    /// direction (compression streams live between messages). Cheap: asked
    /// for every message.
    #[inline]
    pub fn keeps_compression_context(&self) -> bool {
        // Both no-context-takeover bits set (1 | 2), or nothing agreed (0):
        // no stream outlives its message.
        let packed = self.deflate.get();
        packed != 0 && packed & 3 != 3
    }

    /// The `Sec-WebSocket-Extensions` value in force: what the server
    /// answered. Empty without extensions.
    pub fn extensions(&self) -> String {
        self.deflate().map(|a| a.response()).unwrap_or_default()
    }

    /// Sends a message like `send_message`, but a large one (server role) is
    /// offered to `write` straight from its bytes: `write(pending, data)` writes
    /// what output waits and then the message in one gathered write and returns
    /// how many bytes it took; only what it did not take is copied into the
    /// output buffer.
    #[inline(always)]
    pub fn send_direct(
        &self,
        message: Message<'_>,
        write: impl FnOnce(&[u8], &[u8]) -> std::io::Result<usize>,
    ) -> Result<()> {
        self.send_direct_counted(message, write).map(|_| ())
    }

    /// `send_direct`, telling whether the message went compressed (for the
    /// runtime's counters).
    #[inline(always)]
    pub(crate) fn send_direct_counted(
        &self,
        message: Message<'_>,
        write: impl FnOnce(&[u8], &[u8]) -> std::io::Result<usize>,
    ) -> Result<bool> {
        if message.as_bytes().len() < DIRECT_SEND_MIN {
            return self.send_counted(message, Compress::Auto);
        }
        self.send_large(message, write)
    }

    /// `send_direct_counted` of a message of `DIRECT_SEND_MIN` bytes or more.
    #[inline(never)]
    fn send_large(
        &self,
        message: Message<'_>,
        write: impl FnOnce(&[u8], &[u8]) -> std::io::Result<usize>,
    ) -> Result<bool> {
        let data = message.as_bytes();
        if self.role() == Role::Client || self.compression(data.len(), Compress::Auto).is_some() {
            // A client's payload is masked, a compressed one is compressed:
            // both copied anyway.
            return self.send_counted(message, Compress::Auto);
        }
        let mut tx = self.open_sender()?;
        tx.check_message(data, self.config.max_output())?;
        tx.write_direct(message.kind(), data, write);
        Ok(false)
    }

    /// Sends one fragment of a message; the first fragment's `kind` is the
    /// message's, later ones must repeat it; `fin` ends the message. Text is
    /// validated across fragments; an invalid fragment is refused and queues nothing.
    pub fn send_fragment(&self, kind: MessageKind, data: &[u8], fin: bool) -> Result<()> {
        self.open_sender()?
            .send_fragment(self.role(), kind, data, fin, self.config.max_output())
    }

    /// Whether a fragmented message is being sent (its last fragment not yet:
    /// nothing else but control frames may be sent meanwhile). `false` while
    /// the program holds what `pending` returned.
    pub fn sending_fragments(&self) -> bool {
        self.tx.try_borrow().is_ok_and(|tx| tx.sending_fragments())
    }

    /// Sends a ping (payload at most 125 bytes).
    pub fn ping(&self, data: &[u8]) -> Result<()> {
        self.open_sender()?
            .send_control(self.role(), OpCode::Ping, data, self.config.max_output())
    }

    /// Sends an unsolicited pong (pings are answered automatically).
    pub fn pong(&self, data: &[u8]) -> Result<()> {
        self.open_sender()?
            .send_control(self.role(), OpCode::Pong, data, self.config.max_output())
    }

    /// Starts the closing handshake. `code` must be valid on the wire, or 1005 for
    /// a close frame without a status; `reason` at most 123 bytes (needs a code).
    /// Nothing may be sent afterwards.
    pub fn close(&self, code: u16, reason: &str) -> Result<()> {
        let mut tx = self.open_sender()?;
        let code = Sender::check_close(code, reason)?;
        tx.queue_close(self.role(), code, reason);
        self.state.set(State::CloseSent);
        Ok(())
    }

    /// Answers the plain HTTP request being handled (see `Event::HttpRequest`);
    /// the session closes after the response. [`Error::NotOpen`] outside that
    /// event or when already answered.
    pub fn http_response(&self, status: u16, content_type: &str, body: &[u8]) -> Result<()> {
        if self.state() != State::HttpRequest {
            return Err(Error::NotOpen);
        }
        let printable = |s: &str| s.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
        if !(100..=999).contains(&status) || content_type.is_empty() || !printable(content_type) {
            return Err(Error::InvalidArgument);
        }
        let mut tx = self.sender()?;
        server::write_http_response(tx.buffer(), status, content_type, body);
        self.state.set(State::Closed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mask::apply_mask;

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    const RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Accept: ";

    fn ignore(_: &Session, _: Event<'_>) {}

    /// A server session past its handshake, its output drained.
    fn open_server(max_output: usize) -> Session {
        let mut config = Config::default();
        config.set_max_output(max_output).unwrap();
        let s = Session::server(Arc::new(config));
        s.feed(&mut REQUEST.to_vec(), &mut ignore).unwrap();
        assert!(s.pending().starts_with(RESPONSE));
        s.consume(s.buffered()).unwrap();
        assert_eq!(s.state(), State::Open);
        s
    }

    /// A client session past its handshake, its output drained.
    fn open_client() -> Session {
        let c = Session::client(Arc::new(Config::default()), "x", "/").unwrap();
        let key = {
            let request = std::str::from_utf8(&c.pending()).unwrap().to_owned();
            let line = request.lines().find(|l| l.starts_with("Sec-WebSocket-Key: ")).unwrap();
            line["Sec-WebSocket-Key: ".len()..].to_owned()
        };
        c.consume(c.buffered()).unwrap();
        let mut response = RESPONSE.to_vec();
        response.extend_from_slice(crate::proto::handshake::accept_key(key.as_bytes()).as_bytes());
        response.extend_from_slice(b"\r\n\r\n");
        c.feed(&mut response, &mut ignore).unwrap();
        assert_eq!(c.state(), State::Open);
        c
    }

    fn drain(s: &Session) -> Vec<u8> {
        let out = s.pending().to_vec();
        s.consume(out.len()).unwrap();
        out
    }

    #[test]
    fn memory_counts_every_buffer_that_grows_and_returns_to_zero() {
        let s = Session::server(Arc::new(Config::default()));
        // A handshake head cut by a read is held.
        s.feed(&mut REQUEST[..20].to_vec(), &mut ignore).unwrap();
        assert!(s.memory().unwrap() >= 20);
        s.feed(&mut REQUEST[20..].to_vec(), &mut ignore).unwrap();
        // The 101 answer waits as output.
        assert!(s.memory().unwrap() >= s.buffered() && s.buffered() > 0);
        let mut charged = s.memory_change();
        drain(&s);
        charged += s.memory_change();
        assert_eq!((s.memory(), charged), (Some(0), 0), "idle once drained");
        // A message cut by a read: its bytes are held until it ends.
        let payload = vec![b'a'; 3000];
        let mut frame = vec![0x81, 0x80 | 126, (3000u16 >> 8) as u8, (3000 & 0xff) as u8, 0, 0, 0, 0];
        frame.extend_from_slice(&payload);
        s.feed(&mut frame[..1500].to_vec(), &mut ignore).unwrap();
        assert!(s.receiving_message());
        // The whole frame is reserved once its header is read: what is held.
        assert!(s.memory().unwrap() >= 3000);
        charged += s.memory_change();
        assert_eq!(charged, 4096, "3 KB held, counted in whole KiB");
        let mut echoed = 0;
        s.feed(&mut frame[1500..].to_vec(), &mut |s: &Session, e: Event<'_>| {
            if let Event::Message(m) = e {
                s.send_message(m).unwrap();
                echoed += 1;
            }
        })
        .unwrap();
        assert_eq!(echoed, 1);
        assert!(!s.receiving_message());
        let held = s.memory().unwrap();
        assert!(
            held >= s.buffered() && held < s.buffered() + 1024,
            "only the echo is held: {held}"
        );
        charged += s.memory_change();
        assert_eq!(charged as usize, s.memory_reported());
        // A failure mid-message drops the input held; draining drops the rest.
        s.feed(&mut frame[..1000].to_vec(), &mut ignore).unwrap();
        s.feed(&mut [0x81, 0x80, 0, 0, 0, 0], &mut ignore).unwrap_err();
        drain(&s);
        charged += s.memory_change();
        assert_eq!((s.memory(), charged), (Some(0), 0), "nothing held after the end");
    }

    #[test]
    fn nothing_before_the_handshake() {
        let s = Session::server(Arc::new(Config::default()));
        assert_eq!(s.send(MessageKind::Text, b"hi"), Err(Error::NotOpen));
        assert_eq!(s.ping(b""), Err(Error::NotOpen));
        assert_eq!(s.close(1000, ""), Err(Error::NotOpen));
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn rfc_unmasked_frames() {
        let s = open_server(1 << 20);
        s.send(MessageKind::Text, b"Hello").unwrap();
        assert_eq!(drain(&s), [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        s.ping(b"Hello").unwrap();
        assert_eq!(drain(&s), [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        s.send_fragment(MessageKind::Text, b"Hel", false).unwrap();
        s.send_fragment(MessageKind::Text, b"lo", true).unwrap();
        assert_eq!(drain(&s), [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
        s.send(MessageKind::Binary, &[7; 256]).unwrap();
        assert_eq!(&drain(&s)[..4], &[0x82, 0x7E, 0x01, 0x00]);
        s.send(MessageKind::Binary, &vec![7; 65536]).unwrap();
        assert_eq!(&drain(&s)[..10], &[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    /// What a normal send of `data` after `before` queues, written or not.
    fn wire_of(before: &[u8], kind: MessageKind, data: &[u8]) -> Vec<u8> {
        let s = open_server(1 << 20);
        if !before.is_empty() {
            s.send(MessageKind::Binary, before).unwrap();
        }
        s.send(kind, data).unwrap();
        drain(&s)
    }

    #[test]
    fn direct_sends_put_the_same_bytes_on_the_wire_whatever_the_socket_takes() {
        let data: String = (0..DIRECT_SEND_MIN + 1000)
            .map(|i| (b'a' + (i % 26) as u8) as char)
            .collect();
        let before = b"queued first";
        let expected = wire_of(before, MessageKind::Text, data.as_bytes());
        let queued_len = expected.len() - data.len();
        for takes in [
            0,
            1,
            5,
            queued_len - 1,
            queued_len,
            queued_len + 1,
            expected.len() - 1,
            expected.len(),
        ] {
            let s = open_server(1 << 20);
            s.send(MessageKind::Binary, before).unwrap();
            let mut wire = Vec::new();
            s.send_direct(Message::Text(&data), |pending, payload| {
                assert!(
                    pending.ends_with(&[0x81, 0x7F, 0, 0, 0, 0, 0, 1, 3, 0xE8]),
                    "header queued last"
                );
                wire.extend_from_slice(pending);
                wire.extend_from_slice(payload);
                wire.truncate(takes);
                Ok(takes)
            })
            .unwrap();
            assert_eq!(s.buffered(), expected.len() - takes, "takes {takes}");
            wire.extend_from_slice(&s.pending());
            assert_eq!(wire, expected, "takes {takes}");
        }
    }

    #[test]
    fn a_failed_direct_write_keeps_everything_queued() {
        let data = vec![9u8; DIRECT_SEND_MIN];
        let s = open_server(1 << 20);
        s.send_direct(
            Message::Binary(&data),
            |_, _| Err(std::io::ErrorKind::BrokenPipe.into()),
        )
        .unwrap();
        assert_eq!(drain(&s), wire_of(b"", MessageKind::Binary, &data));
    }

    #[test]
    fn direct_sends_keep_the_rules_of_send() {
        let never = |_: &[u8], _: &[u8]| -> std::io::Result<usize> { panic!("nothing may be written") };
        let s = open_server(1 << 20);
        let mut bad = vec![b'x'; DIRECT_SEND_MIN];
        bad[100] = 0xFF;
        assert_eq!(Message::new(MessageKind::Text, &bad), Err(Error::InvalidArgument));
        s.send_fragment(MessageKind::Binary, b"x", false).unwrap();
        assert_eq!(
            s.send_direct(Message::Binary(&bad), never),
            Err(Error::InvalidArgument),
            "fragmented message open"
        );
        let s = open_server(1000);
        s.send(MessageKind::Binary, b"waiting").unwrap();
        assert_eq!(s.send_direct(Message::Binary(&bad), never), Err(Error::Full));
        s.close(1000, "").unwrap();
        assert_eq!(s.send_direct(Message::Binary(&bad), never), Err(Error::Closed));
        // Small messages and client frames (masked) go through the buffer.
        let s = open_server(1 << 20);
        s.send_direct(Message::Binary(b"small"), never).unwrap();
        assert_eq!(s.buffered(), 7);
        let c = open_client();
        c.send_direct(Message::Binary(&bad), never).unwrap();
        assert_eq!(c.buffered(), bad.len() + 14);
    }

    #[test]
    fn client_frames_are_masked() {
        let c = open_client();
        c.send(MessageKind::Text, b"Hello").unwrap();
        let out = drain(&c);
        assert_eq!(out[0], 0x81);
        assert_eq!(out[1], 0x80 | 5);
        let mut payload = out[6..].to_vec();
        apply_mask(&mut payload, out[2..6].try_into().unwrap(), 0);
        assert_eq!(payload, b"Hello");
    }

    #[test]
    fn invalid_sends_queue_nothing() {
        let s = open_server(1 << 20);
        assert_eq!(s.send(MessageKind::Text, b"\xff"), Err(Error::InvalidArgument));
        assert_eq!(s.ping(&[0; 126]), Err(Error::InvalidArgument));
        assert_eq!(s.close(1005, "why"), Err(Error::InvalidArgument));
        for code in [0, 999, 1004, 1006, 1015, 2000, 5000] {
            assert_eq!(s.close(code, ""), Err(Error::InvalidArgument), "code {code}");
        }
        assert_eq!(s.close(1000, &"x".repeat(124)), Err(Error::InvalidArgument));
        s.send_fragment(MessageKind::Text, b"\xe2\x82", false).unwrap();
        let before = s.buffered();
        assert_eq!(
            s.send_fragment(MessageKind::Text, b"\x28", true),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            s.send_fragment(MessageKind::Binary, b"x", true),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            s.send(MessageKind::Binary, b"x"),
            Err(Error::InvalidArgument),
            "fragmented message open"
        );
        assert_eq!(s.buffered(), before);
        s.send_fragment(MessageKind::Text, b"\xac", true).unwrap();
        assert_eq!(s.state(), State::Open);
    }

    #[test]
    fn nothing_after_close() {
        let s = open_server(1 << 20);
        s.close(1000, "bye").unwrap();
        assert_eq!(s.state(), State::CloseSent);
        assert_eq!(drain(&s), [0x88, 0x05, 0x03, 0xE8, b'b', b'y', b'e']);
        assert_eq!(s.send(MessageKind::Text, b"late"), Err(Error::Closed));
        assert_eq!(s.close(1000, ""), Err(Error::Closed));
        // A ping after our close gets no pong.
        let mut ping = vec![0x89, 0x81, 1, 2, 3, 4, b'x' ^ 1];
        s.feed(&mut ping, &mut ignore).unwrap();
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn backpressure() {
        let s = open_server(100);
        s.send(MessageKind::Binary, &[0; 1000]).unwrap(); // larger than the cap, buffer empty
        assert_eq!(s.send(MessageKind::Binary, b"x"), Err(Error::Full));
        assert!(s.is_full());
        s.consume(s.buffered()).unwrap();
        s.send(MessageKind::Binary, &[0; 40]).unwrap();
        s.send(MessageKind::Binary, &[0; 40]).unwrap();
        assert_eq!(s.send(MessageKind::Binary, &[0; 40]), Err(Error::Full));
        assert_eq!(s.buffered(), 84);
        assert_eq!(s.consume(85), Err(Error::InvalidArgument));
    }

    #[test]
    fn handlers_may_call_back_but_not_feed_again() {
        let s = open_server(1 << 20);
        // A masked "hi" (key 0): answered from inside, with the state exact there.
        let mut frame = vec![0x81, 0x82, 0, 0, 0, 0, b'h', b'i'];
        let mut seen = Vec::new();
        s.feed(&mut frame, &mut |s: &Session, e: Event<'_>| {
            if let Event::Message(m) = e {
                seen.push((s.state(), s.feed(&mut [], &mut ignore), s.feed_eof(&mut ignore)));
                s.send_message(m).unwrap();
                let held = s.pending();
                assert_eq!(s.ping(b""), Err(Error::Reentrant), "output borrowed by the program");
                drop(held);
                s.close(1000, "").unwrap();
                seen.push((s.state(), Ok(0), Ok(())));
            }
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                (State::Open, Err(Error::Reentrant), Err(Error::Reentrant)),
                (State::CloseSent, Ok(0), Ok(()))
            ]
        );
        assert_eq!(drain(&s), [0x81, 0x02, b'h', b'i', 0x88, 0x02, 0x03, 0xE8]);
    }
}

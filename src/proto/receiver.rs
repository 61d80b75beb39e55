//! The input side of a session: the opening handshake, then frames. Bytes are
//! processed where they lie (unmasked in place); a complete unfragmented message
//! is handed over without a copy, and only what is cut by a read boundary is kept.

use std::mem::MaybeUninit;
use std::sync::Arc;

use crate::proto::close_code::CloseCode;
use crate::proto::config::Config;
use crate::proto::deflate::allowance::Allowance;
use crate::proto::deflate::inflater::{Inflater, TAIL};
use crate::proto::deflate::Agreed;
use crate::proto::error::{Error, Result};
use crate::proto::event::{Event, Message, MessageKind};
use crate::proto::frame::{FrameHeader, OpCode, WholeFrame, MAX_HEADER_LEN};
use crate::proto::handshake::headers::Headers;
use crate::proto::handshake::request::UpgradeRequest;
use crate::proto::handshake::{client, may_be_complete, server, MAX_HEADERS};
use crate::proto::mask::apply_mask;
use crate::proto::role::Role;
use crate::proto::sender::Answering;
use crate::proto::sender::Sender;
use crate::proto::short_utf8;
use crate::proto::state::State;
use crate::proto::utf8::Utf8Validator;

/// What the receiver works with, lent by its session for one call: the
/// session's settings and state, its sender (for handshake answers and
/// automatic pong and close replies) and the program's event handler. The
/// sender is lent only for short calls, never across an event, so the program
/// may send from inside its handler.
pub(crate) trait Link {
    fn config(&self) -> &Arc<Config>;
    fn role(&self) -> Role;
    fn state(&self) -> State;
    fn set_state(&mut self, state: State);
    /// permessage-deflate, once agreed in the opening handshake.
    fn deflate(&self) -> Option<Agreed>;
    fn set_deflate(&mut self, agreed: Option<Agreed>);
    /// Server role: whether permessage-deflate may be agreed with context
    /// takeover (each side keeping a stream between messages); when not,
    /// offers are answered without it both ways.
    fn context_takeover_allowed(&self) -> bool;
    /// Deliver data messages piece by piece (`Event::Fragment`).
    fn streaming(&self) -> bool;
    /// Report plain HTTP requests (`Event::HttpRequest`) instead of refusing them.
    fn serves_http(&self) -> bool;
    /// Server: the program decides upgrades (`Event::Upgrade`).
    fn decides_upgrades(&self) -> bool;
    fn with_sender<R>(&mut self, f: impl FnOnce(&mut Sender, Role, usize) -> R) -> R;
    fn on_event(&mut self, event: Event<'_>);
    /// A compressed data message was received whole (before its event).
    fn compressed_message(&mut self);
    /// Checked after every event: `true` makes `feed` return at once, reporting
    /// how far it got (the program paused reading or dropped the session).
    fn stopped(&self) -> bool;
}

/// What a handshake head parsed so far is.
enum Parsed {
    /// Not all there yet.
    Incomplete,
    /// Client role: an interim response of this length, passed over.
    Interim(usize),
    /// The head, of this length, was handled (the session opened, failed or
    /// answered plain HTTP).
    Done(usize),
}

/// A frame whose payload is still arriving.
#[derive(Debug, Clone, Copy)]
struct PartialFrame {
    opcode: OpCode,
    fin: bool,
    remaining: u64,
    mask: Option<[u8; 4]>,
    offset: usize,
}

/// What a receiver holds only while something is incomplete: the handshake head,
/// a frame header or payload cut by a read, a message spanning frames. An idle
/// connection has none of it (see `Receiver::part`).
#[derive(Debug)]
struct Partial {
    /// Handshake bytes received so far (only while the head is incomplete);
    /// while an upgrade is being decided, the bytes the client sent after
    /// its request (frames, once it is accepted).
    head: Vec<u8>,
    /// Server: the upgrade request waiting for the program's decision.
    pending: Option<Box<UpgradeRequest>>,
    /// Client role: the `Sec-WebSocket-Key` sent, and the path requested.
    client_request: Option<Box<(String, String)>>,
    /// Client role: bytes of interim (1xx) responses passed over.
    interim: usize,
    header: [u8; MAX_HEADER_LEN],
    header_len: u8,
    frame: Option<PartialFrame>,
    /// The data message being received, if it spans frames or reads.
    message: Option<MessageKind>,
    /// That message is delivered piece by piece (streaming was on when it began).
    streamed: bool,
    /// That message is compressed (RSV1 on its first frame).
    compressed: bool,
    /// Bytes a compressed message inflated to so far.
    inflated: usize,
    message_buf: Vec<u8>,
    /// Payload bytes of the data message being received, over all its frames.
    message_len: u64,
    control_buf: Vec<u8>,
    utf8: Utf8Validator,
}

impl Partial {
    const fn new() -> Partial {
        Partial {
            head: Vec::new(),
            pending: None,
            client_request: None,
            interim: 0,
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            frame: None,
            message: None,
            streamed: false,
            compressed: false,
            inflated: 0,
            message_buf: Vec::new(),
            message_len: 0,
            control_buf: Vec::new(),
            utf8: Utf8Validator::new(),
        }
    }

    /// Nothing incomplete is held: the box can go.
    fn is_idle(&self) -> bool {
        self.head.is_empty()
            && self.pending.is_none()
            && self.client_request.is_none()
            && self.header_len == 0
            && self.frame.is_none()
            && self.message.is_none()
    }

    /// Bytes held: the state itself, its buffers' capacity and the upgrade
    /// request waiting for the program's decision.
    fn memory(&self) -> usize {
        std::mem::size_of::<Partial>()
            + self.head.capacity()
            + self.message_buf.capacity()
            + self.control_buf.capacity()
            + self.pending.as_ref().map_or(0, |r| r.memory())
    }
}

/// permessage-deflate on the receiving side, from the first compressed
/// message on. Apart from the incomplete state: a stream kept between
/// messages keeps no partial-message buffer alive.
#[derive(Debug, Default)]
struct Inflating {
    /// The peer's stream: with context takeover, kept between messages
    /// (trimmed to its window when idle, see `Receiver::trim_compression`);
    /// without, lent by the thread's pool while a compressed message arrives.
    stream: Option<Box<Inflater>>,
    /// What the peer may still make this side inflate.
    allowance: Allowance,
}

/// What `Receiver::part` shows when nothing is incomplete.
static IDLE: Partial = Partial::new();

/// The parsing state of a session's input. An idle receiver holds nothing but
/// empty pointers (and, once compressed messages came, its decompression).
#[derive(Debug, Default)]
pub(crate) struct Receiver {
    part: Option<Box<Partial>>,
    inflating: Option<Box<Inflating>>,
}

/// Reassembly buffers up to this size are kept for reuse (in the thread's pool).
const KEEP_CAPACITY: usize = 4 << 20;
/// Bytes unmasked and validated together (fits the L1/L2 caches).
const CACHE_BLOCK: usize = 16 << 10;
/// Idle `Partial` boxes kept per thread for the next connection that needs one.
const SPARE_PARTS: usize = 4;

thread_local! {
    /// Incomplete-state boxes (with their reassembly buffers) given back by idle
    /// receivers of this thread: the next message cut by a read reuses one
    /// instead of allocating (a reactor and its connections share a thread).
    // The boxes themselves are what is reused: receivers hold `Box<Partial>`.
    #[allow(clippy::vec_box)]
    static SPARES: std::cell::RefCell<Vec<Box<Partial>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Receiver {
    /// A client receiver expecting the answer to a request sent with `key` for `path`.
    pub fn client(key: String, path: String) -> Self {
        Receiver {
            part: Some(Box::new(Partial {
                client_request: Some(Box::new((key, path))),
                ..Partial::new()
            })),
            inflating: None,
        }
    }

    /// The incomplete state, read-only (the shared empty one when idle).
    fn part(&self) -> &Partial {
        self.part.as_deref().unwrap_or(&IDLE)
    }

    /// The incomplete state, taken from the thread's spares or allocated on
    /// first need.
    fn part_mut(&mut self) -> &mut Partial {
        part_in(&mut self.part)
    }

    /// Gives the incomplete state back once nothing is pending: an idle receiver
    /// holds no buffer.
    fn release_idle_part(&mut self) {
        if self.part.as_ref().is_some_and(|p| p.is_idle()) {
            let mut part = self.part.take().expect("checked above");
            part.head = Vec::new();
            part.interim = 0;
            part.message_len = 0;
            part.inflated = 0;
            part.compressed = false;
            part.message_buf.clear();
            part.control_buf.clear();
            part.utf8.reset();
            if part.message_buf.capacity() > KEEP_CAPACITY {
                part.message_buf = Vec::new();
            }
            SPARES.with(|s| {
                let mut spares = s.borrow_mut();
                if spares.len() < SPARE_PARTS {
                    spares.push(part);
                }
            });
        }
    }

    /// Bytes held for incomplete input (the handshake head, a frame or message
    /// cut by a read, counted by capacity: what is held, not what is in use)
    /// and for decompression (the peer's stream or its kept window); 0 when
    /// idle without a kept stream.
    pub fn memory(&self) -> usize {
        self.input_memory() + self.compression_memory()
    }

    /// The part of [`Receiver::memory`] that incomplete input holds: it grows
    /// as input is read, and ends with the message.
    pub fn input_memory(&self) -> usize {
        self.part.as_deref().map_or(0, Partial::memory)
    }

    /// The part of [`Receiver::memory`] that decompression holds between
    /// messages: bounded per connection, and given back by a trim.
    pub fn compression_memory(&self) -> usize {
        self.inflating.as_deref().map_or(0, |i| {
            std::mem::size_of::<Inflating>() + i.stream.as_ref().map_or(0, |s| s.memory())
        })
    }

    /// A data message has begun and not ended.
    pub fn in_message(&self) -> bool {
        self.part().message.is_some()
    }

    /// Whether `trim_compression` would drop a stream now.
    pub fn can_trim_compression(&self) -> bool {
        let stream = self.inflating.as_deref().and_then(|i| i.stream.as_deref());
        !self.part().compressed && stream.is_some_and(|s| s.can_trim())
    }

    /// Context takeover between messages: trims the peer's stream to the
    /// window its next message may refer to (nothing if that is empty). A
    /// compressed message under way keeps its stream: it is mid-block.
    pub fn trim_compression(&mut self) {
        if self.part().compressed {
            return;
        }
        if let Some(inflating) = self.inflating.as_deref_mut() {
            if let Some(stream) = inflating.stream.as_deref_mut() {
                stream.trim();
                if stream.is_empty() {
                    inflating.stream = None;
                }
            }
        }
    }

    /// Processes received bytes and returns how many were used: all of them,
    /// unless the handler stopped the feed (then the rest must be fed again later).
    /// Events go to `h`; on a failure the matching close frame or HTTP error is
    /// queued, an `Error` event is delivered and the error is returned. Bytes
    /// arriving after the session closed are ignored (used).
    pub fn feed<H: Link>(&mut self, data: &mut [u8], h: &mut H) -> Result<usize> {
        let result = self.feed_inner(data, h);
        self.release_idle_part();
        result
    }

    fn feed_inner<H: Link>(&mut self, data: &mut [u8], h: &mut H) -> Result<usize> {
        let mut start = 0;
        if self.part().pending.is_some() && h.state() != State::Deciding {
            self.announce_decision(h)?;
        }
        if h.state().receives_frames() && !self.part().head.is_empty() {
            // Frames sent before the upgrade was accepted, left by a pause.
            if !self.feed_held_frames(h)? || h.stopped() {
                return Ok(0);
            }
        }
        if h.state() == State::Handshake {
            start = self.feed_handshake(data, h)?;
            if h.stopped() {
                return Ok(start);
            }
        }
        if h.state() == State::Deciding {
            return Ok(start + self.hold_early(&data[start..], h)?);
        }
        if h.state().receives_frames() {
            return Ok(start + self.feed_frames(&mut data[start..], h)?);
        }
        Ok(data.len())
    }

    // ---------------------------------------------------------------- decision

    /// Server: how many more bytes may be fed while the upgrade is being
    /// decided (the client's early bytes are held up to the handshake size
    /// limit); `None` when input is not limited so.
    pub fn input_room(&self, state: State, cap: usize) -> Option<usize> {
        (state == State::Deciding).then(|| cap.saturating_sub(self.part().head.len()))
    }

    /// The request waiting for the program's decision.
    pub fn pending_request(&self) -> Option<&UpgradeRequest> {
        self.part().pending.as_deref()
    }

    /// The upgrade was refused: the request and what the client sent since go.
    pub fn drop_pending(&mut self) {
        if self.part().pending.is_some() {
            self.drop_buffers();
        }
    }

    /// Keeps bytes the client sent while its upgrade is being decided, up to
    /// the handshake size limit (431 beyond it).
    fn hold_early<H: Link>(&mut self, data: &[u8], h: &mut H) -> Result<usize> {
        let cap = h.config().max_handshake_size();
        if self.part().head.len() + data.len() > cap {
            h.with_sender(|tx, _, _| tx.set_answering(None));
            return self.reject(
                server::Rejection {
                    status: 431,
                    error: Error::HandshakeTooLarge,
                },
                h,
            );
        }
        if !data.is_empty() {
            self.part_mut().head.extend_from_slice(data);
        }
        Ok(data.len())
    }

    /// The program decided (outside the request's event): an accepted upgrade
    /// opens (`Event::Open`) and the bytes held meanwhile are read as frames;
    /// a refused one has nothing more to do.
    fn announce_decision<H: Link>(&mut self, h: &mut H) -> Result<()> {
        let request = self.part_mut().pending.take().expect("checked by the caller");
        if h.state() != State::Open {
            self.part_mut().head = Vec::new();
            return Ok(());
        }
        let chosen = h.with_sender(|tx, _, _| tx.take_answering()).and_then(|a| a.chosen);
        h.on_event(Event::Open {
            path: request.target(),
            subprotocol: chosen.as_deref(),
            headers: Headers::default(),
        });
        Ok(())
    }

    /// Frames held from before the upgrade was accepted; false while some
    /// remain (the handler paused).
    fn feed_held_frames<H: Link>(&mut self, h: &mut H) -> Result<bool> {
        let mut held = std::mem::take(&mut self.part_mut().head);
        let used = self.feed_frames(&mut held, h)?;
        if used < held.len() {
            held.drain(..used);
            self.part_mut().head = held;
            return Ok(false);
        }
        Ok(true)
    }

    /// The peer closed its side of the TCP connection.
    pub fn feed_eof<H: Link>(&mut self, h: &mut H) -> Result<()> {
        if h.state() == State::Handshake && h.role() == Role::Server && !self.part().head.is_empty() {
            // A head held back unparsed (no line end came since) may already be
            // malformed: refuse it with its HTTP error rather than just dropping it.
            let head = std::mem::take(&mut self.part_mut().head);
            self.parse_head(&head, h)?;
        }
        match h.state() {
            State::Handshake | State::Deciding | State::Open | State::CloseSent => {
                self.end(h);
                h.on_event(Event::Error(Error::Eof));
                Err(Error::Eof)
            }
            State::HttpRequest | State::AwaitingEof | State::Closed => {
                h.set_state(State::Closed);
                Ok(())
            }
        }
    }

    // ---------------------------------------------------------------- handshake

    /// Returns how many bytes of `data` the handshake used.
    fn feed_handshake<H: Link>(&mut self, data: &[u8], h: &mut H) -> Result<usize> {
        let cap = h.config().max_handshake_size();
        let buffered = self.part().head.len();
        if buffered == 0 {
            // The usual case: the whole head in one read, parsed where it lies; and
            // garbage is refused at once.
            let mut pos = 0;
            loop {
                match self.parse_head(&data[pos..], h)? {
                    Parsed::Done(head_len) => return Ok(pos + head_len),
                    Parsed::Interim(len) => pos += self.skip_interim(len, h)?,
                    Parsed::Incomplete => break,
                }
            }
            let rest = &data[pos..];
            self.part_mut().head.extend_from_slice(&rest[..rest.len().min(cap + 1)]);
            return Ok(data.len());
        }
        // A head cut across reads: accumulate up to the cap (plus one byte, so that
        // an over-long head is told apart from a complete one). Parsing again only
        // when a line may have ended, or the size doubled, keeps a head that
        // trickles in byte by byte from costing quadratic time.
        let take = data.len().min((cap + 1).saturating_sub(buffered));
        self.part_mut().head.extend_from_slice(&data[..take]);
        let total = buffered + take;
        let doubled = buffered.leading_zeros() != total.leading_zeros();
        if !may_be_complete(&data[..take]) && !doubled && total <= cap {
            return Ok(data.len());
        }
        let mut head = std::mem::take(&mut self.part_mut().head);
        let mut pos = 0;
        loop {
            match self.parse_head(&head[pos..], h)? {
                // Bytes after the head came from `data`: they are frames. (What
                // was kept before never holds a whole head.)
                Parsed::Done(head_len) => return Ok((pos + head_len).saturating_sub(buffered)),
                Parsed::Interim(len) => pos += self.skip_interim(len, h)?,
                Parsed::Incomplete => {
                    head.drain(..pos);
                    self.part_mut().head = head;
                    return Ok(data.len());
                }
            }
        }
    }

    /// Client role: an interim response (1xx) of `len` bytes is passed over;
    /// all of them together are held to the handshake's size cap, so that a
    /// server sending them without end fails the handshake.
    fn skip_interim<H: Link>(&mut self, len: usize, h: &mut H) -> Result<usize> {
        let part = self.part_mut();
        part.interim = part.interim.saturating_add(len);
        if part.interim > h.config().max_handshake_size() {
            self.end(h);
            h.on_event(Event::Error(Error::HandshakeTooLarge));
            return Err(Error::HandshakeTooLarge);
        }
        Ok(len)
    }

    /// Parses a request or response head; on success opens the session.
    fn parse_head<H: Link>(&mut self, buf: &[u8], h: &mut H) -> Result<Parsed> {
        let config = Arc::clone(h.config());
        match h.role() {
            Role::Server => match server::parse_head_copying(buf, &config, h.decides_upgrades()) {
                Ok(None) => Ok(Parsed::Incomplete),
                Ok(Some(server::Parsed::Plain { method, path, .. })) if h.serves_http() => {
                    h.set_state(State::HttpRequest);
                    h.on_event(Event::HttpRequest { method, path });
                    if h.state() == State::HttpRequest {
                        // The program did not answer.
                        h.with_sender(|tx, _, _| {
                            server::write_http_response(tx.buffer(), 404, "text/plain", b"Not Found\n")
                        });
                    }
                    h.set_state(State::Closed);
                    Ok(Parsed::Done(buf.len()))
                }
                Ok(Some(server::Parsed::Plain { .. })) => self.reject(
                    server::Rejection {
                        status: 400,
                        error: Error::Handshake("no Upgrade: websocket header"),
                    },
                    h,
                ),
                Ok(Some(server::Parsed::Upgrade(req))) if req.copy.is_some() => self.ask_program(req, h),
                Ok(Some(server::Parsed::Upgrade(req))) => {
                    let mut deflate = req.deflate;
                    if let Some(agreed) = deflate.as_mut().filter(|_| !h.context_takeover_allowed()) {
                        // A server may always ask for this (RFC 7692 §7.1.1).
                        agreed.server_no_context_takeover = true;
                        agreed.client_no_context_takeover = true;
                    }
                    h.with_sender(|tx, _, _| {
                        server::write_accept(tx.buffer(), req.key, req.subprotocol, deflate.as_ref())
                    });
                    h.set_deflate(deflate);
                    h.set_state(State::Open);
                    h.on_event(Event::Open {
                        path: req.path,
                        subprotocol: req.subprotocol,
                        headers: Headers::default(),
                    });
                    Ok(Parsed::Done(req.head_len))
                }
                Err(rejection) => self.reject(rejection, h),
            },
            Role::Client => {
                let request = self
                    .part_mut()
                    .client_request
                    .take()
                    .expect("client receiver has its request");
                let (key, path) = &*request;
                let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let failure = match client::parse_head(buf, key, &config, &mut storage) {
                    Ok(None) => {
                        self.part_mut().client_request = Some(request);
                        return Ok(Parsed::Incomplete);
                    }
                    Ok(Some(client::Head::Interim(len))) => {
                        self.part_mut().client_request = Some(request);
                        return Ok(Parsed::Interim(len));
                    }
                    Ok(Some(client::Head::Upgrade(resp, headers))) => {
                        h.set_deflate(resp.deflate);
                        h.set_state(State::Open);
                        h.on_event(Event::Open {
                            path,
                            subprotocol: resp.subprotocol,
                            headers,
                        });
                        return Ok(Parsed::Done(resp.head_len));
                    }
                    Ok(Some(client::Head::Refused { status, headers, .. })) => {
                        self.end(h);
                        h.on_event(Event::Refused { status, headers });
                        Error::Refused(status)
                    }
                    Err(error) => {
                        self.end(h);
                        error
                    }
                };
                h.on_event(Event::Error(failure));
                Err(failure)
            }
        }
    }

    /// Hands a valid upgrade request to the program (`Event::Upgrade`). Decided
    /// inside the event, the session opens (or ends) at once; otherwise the
    /// request is kept until the decision.
    fn ask_program<H: Link>(&mut self, mut req: server::Request<'_>, h: &mut H) -> Result<Parsed> {
        let request = req.copy.take().expect("checked by the caller");
        let answering = Answering {
            key: req.key.to_vec(),
            deflate: req.deflate,
            default_subprotocol: req.subprotocol.map(str::to_owned),
            offered: request.subprotocols().map(str::to_owned).collect(),
            chosen: None,
        };
        h.with_sender(|tx, _, _| tx.set_answering(Some(Box::new(answering))));
        h.set_state(State::Deciding);
        h.on_event(Event::Upgrade(&request));
        match h.state() {
            State::Open => {
                let chosen = h.with_sender(|tx, _, _| tx.take_answering()).and_then(|a| a.chosen);
                h.on_event(Event::Open {
                    path: request.target(),
                    subprotocol: chosen.as_deref(),
                    headers: Headers::default(),
                });
            }
            State::Deciding => self.part_mut().pending = Some(request),
            _ => self.end(h),
        }
        Ok(Parsed::Done(req.head_len))
    }

    /// Refuses the opening handshake with an HTTP error.
    fn reject<H: Link, T>(&mut self, rejection: server::Rejection, h: &mut H) -> Result<T> {
        h.with_sender(|tx, _, _| server::write_rejection(tx.buffer(), rejection.status));
        self.end(h);
        h.on_event(Event::Error(rejection.error));
        Err(rejection.error)
    }

    // ---------------------------------------------------------------- frames

    /// Returns how many bytes were used (all unless stopped).
    fn feed_frames<H: Link>(&mut self, data: &mut [u8], h: &mut H) -> Result<usize> {
        // Neither changes during a feed.
        let masked = h.role() == Role::Server;
        let limit = h.config().max_frame_size().min(h.config().max_message_size());
        let mut pos = 0;
        while pos < data.len() && h.state().receives_frames() {
            if h.stopped() {
                return Ok(pos);
            }
            if self.part.is_none() {
                // Nothing incomplete: the usual whole data frame is recognised
                // and checked at once (`WholeFrame`), anything else goes on below.
                if let Some(frame) = WholeFrame::decode(&data[pos..], masked, limit) {
                    let start = pos + frame.header_len;
                    pos = start + frame.payload_len;
                    if let Some(key) = frame.mask {
                        // Short text: unmasked and checked in one pass over a
                        // 32-byte window (`unmask_and_validate` says why).
                        let checked = match data.get_mut(start..start + 32) {
                            Some(window) if frame.opcode == OpCode::Text && frame.payload_len <= 32 => {
                                let window = window.try_into().expect("32 bytes");
                                short_utf8::unmask_and_validate(window, frame.payload_len, key)
                            }
                            _ => None,
                        };
                        let payload = &mut data[start..pos];
                        match checked {
                            Some(true) => self.deliver_whole(MessageKind::Text, payload, h),
                            Some(false) => return self.fail(Error::InvalidUtf8, h),
                            None => {
                                apply_mask(payload, key, 0);
                                self.whole_message(frame.opcode, payload, h)?;
                            }
                        }
                        continue;
                    }
                    self.whole_message(frame.opcode, &data[start..pos], h)?;
                    continue;
                }
            }
            if let Some(frame) = self.part().frame {
                let take = frame.remaining.min((data.len() - pos) as u64) as usize;
                self.payload_chunk(frame, &mut data[pos..pos + take], h)?;
                pos += take;
                continue;
            }
            let Some((header, used)) = self.next_header(&data[pos..], h)? else {
                return Ok(data.len());
            };
            pos += used;
            self.check_header(&header, h).or_else(|e| self.fail(e, h))?;
            let avail = (data.len() - pos) as u64;
            let fits = header.payload_len <= avail;
            let is_data = !header.opcode.is_control();
            if fits && (!is_data || (header.fin && self.part().message.is_none())) {
                // The whole frame is here: handle it in place.
                let payload = &mut data[pos..pos + header.payload_len as usize];
                pos += payload.len();
                if let Some(key) = header.mask {
                    apply_mask(payload, key, 0);
                }
                if is_data && header.rsv != 0 {
                    self.whole_compressed(header.opcode, payload, h)?;
                } else if is_data {
                    self.whole_message(header.opcode, payload, h)?;
                } else {
                    self.control_frame(header.opcode, payload, h)?;
                }
            } else {
                if header.opcode != OpCode::Continuation && is_data {
                    let streamed = h.streaming();
                    let part = self.part_mut();
                    part.message = Some(kind_of(header.opcode));
                    part.streamed = streamed;
                    part.compressed = header.rsv != 0;
                }
                let frame = PartialFrame {
                    opcode: header.opcode,
                    fin: header.fin,
                    remaining: header.payload_len,
                    mask: header.mask,
                    offset: 0,
                };
                self.part_mut().frame = Some(frame);
                if header.payload_len == 0 {
                    self.payload_chunk(frame, &mut [], h)?;
                }
            }
        }
        Ok(data.len())
    }

    /// Decodes the next header, completing one cut by the previous read. Returns
    /// the header and how many bytes of `data` it used, or `None` when `data` ends
    /// inside it (the bytes are kept).
    fn next_header<H: Link>(&mut self, data: &[u8], h: &mut H) -> Result<Option<(FrameHeader, usize)>> {
        let have = self.part().header_len as usize;
        if have == 0 {
            return match FrameHeader::decode(data) {
                Ok(Some(found)) => Ok(Some(found)),
                Ok(None) => {
                    self.part_mut().header[..data.len()].copy_from_slice(data);
                    self.part_mut().header_len = data.len() as u8;
                    Ok(None)
                }
                Err(e) => self.fail(e, h),
            };
        }
        let add = (MAX_HEADER_LEN - have).min(data.len());
        self.part_mut().header[have..have + add].copy_from_slice(&data[..add]);
        match FrameHeader::decode(&self.part_mut().header[..have + add]) {
            Ok(Some((header, len))) => {
                self.part_mut().header_len = 0;
                Ok(Some((header, len - have)))
            }
            Ok(None) => {
                self.part_mut().header_len = (have + add) as u8;
                Ok(None)
            }
            Err(e) => self.fail(e, h),
        }
    }

    /// The rules that need the session's state (§5.1–5.4) and the size limits,
    /// checked before any payload byte is stored.
    fn check_header<H: Link>(&self, header: &FrameHeader, h: &H) -> Result<()> {
        // RSV1 is permessage-deflate's, once agreed: on the first frame of a
        // compressed data message only (RFC 7692 §6). RSV2 and RSV3 are no one's.
        let rsv1 = header.rsv & 0b100 != 0;
        if header.rsv & 0b011 != 0 || (rsv1 && h.deflate().is_none()) {
            return Err(Error::Protocol("reserved bits set without a negotiated extension"));
        }
        if rsv1 && header.opcode.is_control() {
            return Err(Error::Protocol("RSV1 set on a control frame"));
        }
        if rsv1 && header.opcode == OpCode::Continuation {
            return Err(Error::Protocol("RSV1 set on a continuation frame"));
        }
        match (h.role(), header.mask.is_some()) {
            (Role::Server, false) => return Err(Error::Protocol("unmasked frame from a client")),
            (Role::Client, true) => return Err(Error::Protocol("masked frame from a server")),
            _ => {}
        }
        match header.opcode {
            OpCode::Continuation if self.part().message.is_none() => {
                return Err(Error::Protocol("continuation frame without a message to continue"))
            }
            OpCode::Text | OpCode::Binary if self.part().message.is_some() => {
                return Err(Error::Protocol("new message inside a fragmented message"))
            }
            _ => {}
        }
        if !header.opcode.is_control() {
            let so_far = self.part().message_len;
            let config = h.config();
            if header.payload_len > config.max_frame_size() as u64
                || so_far + header.payload_len > config.max_message_size() as u64
            {
                return Err(Error::MessageTooBig);
            }
        }
        Ok(())
    }

    /// A complete, unfragmented message lying in the input: delivered in place.
    #[inline(always)]
    fn whole_message<H: Link>(&mut self, opcode: OpCode, payload: &[u8], h: &mut H) -> Result<()> {
        let kind = kind_of(opcode);
        if kind == MessageKind::Text && Utf8Validator::validate_complete(payload).is_err() {
            return self.fail(Error::InvalidUtf8, h);
        }
        self.deliver_whole(kind, payload, h);
        Ok(())
    }

    /// `whole_message` once its text is known valid.
    #[inline(always)]
    fn deliver_whole<H: Link>(&mut self, kind: MessageKind, payload: &[u8], h: &mut H) {
        if h.streaming() {
            h.on_event(Event::Fragment {
                kind,
                data: payload,
                fin: true,
            });
        } else {
            deliver_message(h, kind, payload);
        }
    }

    /// A complete, unfragmented compressed message lying in the input:
    /// inflated into the reassembly buffer and delivered from there.
    fn whole_compressed<H: Link>(&mut self, opcode: OpCode, payload: &[u8], h: &mut H) -> Result<()> {
        let streamed = h.streaming();
        let part = self.part_mut();
        part.message = Some(kind_of(opcode));
        part.streamed = streamed;
        part.compressed = true;
        part.message_len = payload.len() as u64;
        self.compressed_piece(payload, true, h)
    }

    /// The next piece of a compressed message's payload (unmasked), `last`
    /// when it ends the message: inflated (within the message size limit),
    /// validated as it comes out (text), and delivered, as one fragment
    /// (streaming) or as the message once complete.
    fn compressed_piece<H: Link>(&mut self, input: &[u8], last: bool, h: &mut H) -> Result<()> {
        let agreed = h.deflate().expect("RSV1 is accepted only once deflate is agreed");
        let peer = h.role().peer();
        let (takeover, bits) = (!agreed.no_context_takeover(peer), agreed.window_bits(peer));
        let config = h.config();
        let max = config.max_message_size();
        let ratio = config.deflate().map_or(0, |d| d.max_inflate_ratio());
        let inflating = self.inflating.get_or_insert_with(Box::default);
        let inflater = inflating.stream.get_or_insert_with(|| {
            if takeover {
                Inflater::new(bits)
            } else {
                Inflater::lend(bits)
            }
        });
        let part = part_in(&mut self.part);
        let kind = part.message.expect("a compressed piece belongs to a message");
        // Within both the message limit and what the peer's compressed bytes
        // so far allow.
        let room = max.saturating_sub(part.inflated);
        let allowed = inflating.allowance.available(input.len(), ratio);
        let mut budget = room.min(allowed);
        let before = budget;
        let utf8 = &mut part.utf8;
        // Fail fast: invalid text is refused as soon as it is inflated.
        let mut check = |out: &mut Vec<u8>, start: usize| match kind {
            MessageKind::Text => utf8.feed(&out[start..]).map_err(|_| Error::InvalidUtf8),
            MessageKind::Binary => Ok(()),
        };
        let mut result = inflater.inflate(input, &mut part.message_buf, &mut budget, &mut check);
        // An empty payload is an empty message: no tail is added, which
        // would leave the stream inside a stored block.
        if result.is_ok() && last && !inflater.ended() && part.message_len > 0 {
            result = inflater.inflate(&TAIL, &mut part.message_buf, &mut budget, &mut check);
        }
        let made = before - budget;
        part.inflated += made;
        inflating.allowance.spend(allowed, made, ratio);
        if result == Err(Error::MessageTooBig) && allowed < room {
            result = Err(Error::InflateRatio);
        }
        if result.is_ok() && last && kind == MessageKind::Text && part.utf8.finish().is_err() {
            result = Err(Error::InvalidUtf8);
        }
        if let Err(error) = result {
            return self.fail(error, h);
        }
        if last {
            self.message_inflated(takeover);
            h.compressed_message();
        }
        let part = self.part_mut();
        if part.streamed {
            if !part.message_buf.is_empty() || last {
                h.on_event(Event::Fragment {
                    kind,
                    data: &part.message_buf,
                    fin: last,
                });
                self.part_mut().message_buf.clear();
            }
        } else if last {
            deliver_message(h, kind, &part.message_buf);
            self.part_mut().message_buf.clear();
        }
        Ok(())
    }

    /// A compressed message ended: the stream is given back (no context
    /// takeover) or kept; one that ended with a final block starts afresh.
    fn message_inflated(&mut self, takeover: bool) {
        if let Some(inflating) = self.inflating.as_deref_mut() {
            if !takeover {
                if let Some(lent) = inflating.stream.take() {
                    Inflater::give_back(lent);
                }
            } else if let Some(stream) = inflating.stream.as_deref_mut().filter(|s| s.ended()) {
                stream.reset();
            }
        }
        let part = self.part_mut();
        part.message = None;
        part.message_len = 0;
        part.inflated = 0;
        part.compressed = false;
    }

    /// Part of a frame's payload (possibly all of it, possibly empty).
    fn payload_chunk<H: Link>(&mut self, mut frame: PartialFrame, chunk: &mut [u8], h: &mut H) -> Result<()> {
        if self.reassembled_frame().is_some() {
            // Reassembled: stored as received, then unmasked and checked in place.
            // (`remaining` still counts this chunk.)
            let part = self.part_mut();
            reserve_for_frame(&mut part.message_buf, frame.remaining);
            let start = part.message_buf.len();
            part.message_buf.extend_from_slice(chunk);
            return self.stored_payload(start, h);
        }
        if let Some(key) = frame.mask {
            apply_mask(chunk, key, frame.offset);
        }
        frame.offset += chunk.len();
        frame.remaining -= chunk.len() as u64;
        let done = frame.remaining == 0;
        self.part_mut().frame = if done { None } else { Some(frame) };
        if !frame.opcode.is_control() && self.part().compressed {
            self.part_mut().message_len += chunk.len() as u64;
            return self.compressed_piece(chunk, done && frame.fin, h);
        }
        if frame.opcode.is_control() {
            self.part_mut().control_buf.extend_from_slice(chunk);
            if done {
                let payload = std::mem::take(&mut self.part_mut().control_buf);
                self.control_frame(frame.opcode, &payload, h)?;
                self.part_mut().control_buf = payload;
                self.part_mut().control_buf.clear();
            }
            return Ok(());
        }
        let kind = self.part_mut().message.expect("a data frame belongs to a message");
        // Fail fast: invalid text is refused the moment its bytes arrive.
        if kind == MessageKind::Text && self.part_mut().utf8.feed(chunk).is_err() {
            return self.fail(Error::InvalidUtf8, h);
        }
        self.part_mut().message_len += chunk.len() as u64;
        let last = done && frame.fin;
        if last && kind == MessageKind::Text && self.part_mut().utf8.finish().is_err() {
            return self.fail(Error::InvalidUtf8, h);
        }
        if !chunk.is_empty() || last {
            h.on_event(Event::Fragment {
                kind,
                data: chunk,
                fin: last,
            });
        }
        if last {
            self.part_mut().message = None;
            self.part_mut().message_len = 0;
        }
        Ok(())
    }

    /// Payload bytes of the current data frame were appended to the reassembly
    /// buffer at `start..`: unmasks and validates them there (failing fast on
    /// invalid text) and delivers the message when its last byte is in.
    fn stored_payload<H: Link>(&mut self, start: usize, h: &mut H) -> Result<()> {
        let part = self.part_mut();
        let mut frame = part.frame.expect("a data frame is being received");
        let kind = part.message.expect("a data frame belongs to a message");
        let chunk = &mut part.message_buf[start..];
        let len = chunk.len();
        // Unmasked and validated a cache-sized block at a time: one trip
        // through memory instead of two for a large read.
        let mut valid = true;
        for (i, block) in chunk.chunks_mut(CACHE_BLOCK).enumerate() {
            if let Some(key) = frame.mask {
                apply_mask(block, key, frame.offset + i * CACHE_BLOCK);
            }
            if kind == MessageKind::Text && part.utf8.feed(block).is_err() {
                valid = false;
                break;
            }
        }
        frame.offset += len;
        frame.remaining -= len as u64;
        part.message_len += len as u64;
        let done = frame.remaining == 0;
        part.frame = if done { None } else { Some(frame) };
        let last = done && frame.fin;
        if !valid || (last && kind == MessageKind::Text && part.utf8.finish().is_err()) {
            return self.fail(Error::InvalidUtf8, h);
        }
        if last {
            part.message = None;
            part.message_len = 0;
            deliver_message(h, kind, &self.part_mut().message_buf);
            self.part_mut().message_buf.clear();
        }
        Ok(())
    }

    // ----------------------------------------------------------- direct reads

    /// Room to read the rest of a large data frame's payload straight into the
    /// reassembly buffer, saving the copy out of a read buffer: at most the
    /// frame's remaining payload (so the read cannot take the next frame's
    /// bytes). `None` unless a reassembled data frame has at least `min` payload
    /// bytes still to come.
    pub fn direct_room(&mut self, min: usize) -> Option<&mut [MaybeUninit<u8>]> {
        let frame = self.reassembled_frame().filter(|f| f.remaining >= min as u64)?;
        let buf = &mut self.part_mut().message_buf;
        reserve_for_frame(buf, frame.remaining);
        let room = buf.spare_capacity_mut();
        let len = room.len().min(frame.remaining as usize);
        Some(&mut room[..len])
    }

    /// `n` bytes were read into the start of the room `direct_room` gave: they
    /// are processed as payload (unmasked, validated, the message delivered when
    /// complete), with the same events and errors as `feed`.
    ///
    /// # Safety
    /// The first `n` bytes of the slice the last `direct_room` call returned
    /// were written (initialized), and the receiver was not used in between.
    pub unsafe fn direct_filled<H: Link>(&mut self, n: usize, h: &mut H) -> Result<()> {
        let room = self.reassembled_frame().map_or(0, |frame| {
            let buf = &self.part().message_buf;
            (buf.capacity() - buf.len()).min(frame.remaining as usize)
        });
        if n > room {
            return Err(Error::InvalidArgument);
        }
        let buf = &mut self.part_mut().message_buf;
        let start = buf.len();
        // SAFETY: `n` is within the spare capacity `direct_room` exposed (checked
        // above), and the caller guarantees those `n` bytes were initialized.
        unsafe { buf.set_len(start + n) };
        let result = self.stored_payload(start, h);
        self.release_idle_part();
        result
    }

    /// The data frame in progress whose payload goes to the reassembly buffer.
    fn reassembled_frame(&self) -> Option<PartialFrame> {
        let frame = self.part().frame?;
        // A frame in progress exists only while frames are received (ending
        // the session drops it).
        let part = self.part();
        (!part.streamed && !part.compressed && !frame.opcode.is_control()).then_some(frame)
    }

    fn control_frame<H: Link>(&mut self, opcode: OpCode, payload: &[u8], h: &mut H) -> Result<()> {
        match opcode {
            OpCode::Ping => {
                if h.state() == State::Open {
                    h.with_sender(|tx, role, max_output| tx.auto_pong(role, payload, max_output));
                }
                h.on_event(Event::Ping(payload));
            }
            OpCode::Pong => h.on_event(Event::Pong(payload)),
            OpCode::Close => {
                let (code, reason) = match parse_close_payload(payload) {
                    Ok(parsed) => parsed,
                    Err(e) => return self.fail(e, h),
                };
                // Answered by echoing its status code, unless a close was sent already.
                if h.state() == State::Open {
                    h.with_sender(|tx, role, _| tx.queue_close(role, code, ""));
                }
                h.set_state(match h.role() {
                    Role::Server => State::Closed,
                    Role::Client => State::AwaitingEof,
                });
                self.drop_buffers();
                h.on_event(Event::Close { code: code.0, reason });
            }
            _ => unreachable!("data opcodes are not control frames"),
        }
        Ok(())
    }

    /// Fails the session with `error`: queues the close frame it calls for,
    /// reports it, and returns it.
    fn fail<H: Link, T>(&mut self, error: Error, h: &mut H) -> Result<T> {
        if let (State::Open, Some(code)) = (h.state(), error.close_code()) {
            h.with_sender(|tx, role, _| tx.queue_close(role, code, error.close_reason()));
        }
        self.end(h);
        h.on_event(Event::Error(error));
        Err(error)
    }

    /// Ends the session: nothing more is received or sent.
    fn end<H: Link>(&mut self, h: &mut H) {
        h.with_sender(|tx, _, _| tx.end());
        h.set_state(State::Closed);
        self.drop_buffers();
    }

    fn drop_buffers(&mut self) {
        self.part = None;
        self.inflating = None;
    }
}

/// Splits a close frame's payload into a valid status code and UTF-8 reason.
fn parse_close_payload(payload: &[u8]) -> Result<(CloseCode, &str)> {
    match payload {
        [] => Ok((CloseCode::NO_STATUS, "")),
        [_] => Err(Error::Protocol("close frame with a 1-byte payload")),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_valid_on_wire() {
                return Err(Error::Protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| Error::InvalidUtf8)?;
            Ok((code, reason))
        }
    }
}

/// The incomplete state in `slot`, taken from the thread's spares or
/// allocated on first need.
fn part_in(slot: &mut Option<Box<Partial>>) -> &mut Partial {
    slot.get_or_insert_with(|| {
        SPARES
            .with(|s| s.borrow_mut().pop())
            .unwrap_or_else(|| Box::new(Partial::new()))
    })
}

/// Delivers a complete message; text was validated (as a whole, or piece by
/// piece as it arrived).
#[inline(always)]
fn deliver_message<H: Link>(h: &mut H, kind: MessageKind, data: &[u8]) {
    let message = match kind {
        // SAFETY: every text message is validated as UTF-8 before it is delivered.
        MessageKind::Text => Message::Text(unsafe { std::str::from_utf8_unchecked(data) }),
        MessageKind::Binary => Message::Binary(data),
    };
    h.on_event(Event::Message(message));
}

/// Makes room in the reassembly buffer for `payload_left` more bytes of the
/// current frame at once (instead of growing by doubling), but for at most
/// KEEP_CAPACITY of them: a length claim alone must not reserve much.
fn reserve_for_frame(buf: &mut Vec<u8>, payload_left: u64) {
    let wanted = payload_left.min(KEEP_CAPACITY as u64) as usize;
    if buf.capacity() - buf.len() < wanted {
        buf.reserve(wanted);
    }
}

fn kind_of(opcode: OpCode) -> MessageKind {
    match opcode {
        OpCode::Text => MessageKind::Text,
        _ => MessageKind::Binary,
    }
}

//! A whole session fed arbitrary bytes in arbitrary pieces, with an event handler
//! that echoes every message, checked against a model of what it must do.
//!
//! What is checked, for every input:
//! - nothing panics; `feed` returns an error exactly when it delivered an `Error`
//!   event, with the same error, and uses all its bytes unless the handler
//!   stopped it; `feed_eof` fails only a session still running; bytes and EOF
//!   after the end are ignored;
//! - events come in a legal order: `Open` (or a refusal) first, no event at all
//!   after `Error`, `Close` or `HttpRequest`; text messages are UTF-8, sizes
//!   within the configured limits, control payloads at most 125 bytes;
//! - the session's `state()` is exact inside every event and after every call,
//!   and so are `wants_read()` and `wants_write()`; feeding the session from
//!   inside its own event is refused (`Error::Reentrant`, no direct read), and
//!   so are sends once it is closed or while it answers a plain HTTP request;
//! - the output, at every event and after every call, is exactly what the event
//!   calls for: the 101 answer to the request's key at `Open`, an HTTP refusal with
//!   the matching status at a handshake error, one pong with the ping's payload
//!   (or none when output is full), one close frame echoing the peer's code, one
//!   close frame with the error's code, one frame per successful echo; every frame
//!   well-formed and masked exactly when the client wrote it;
//! - sends succeed or fail exactly as the sender's rules say (closed, fragmented
//!   message open, output full);
//! - the same stream fed in one piece to a plain `Session` (no streaming, no
//!   pauses, no direct reads) gives the same events and the same frames, though
//!   every other feed call is followed by `trim_compression`.

use std::sync::Arc;

use wsconn::proto::deflate::Agreed;
use wsconn::proto::frame::OpCode;
use wsconn::proto::handshake::server;
use wsconn::{
    CloseCode, Config, DeflateConfig, Error, Event, EventHandler, Message, MessageKind, Role, Session, State,
};

use crate::frames::{check_close_payload, check_frame_sequence, parse_frames, Frame};
use crate::{chunk_ranges, Reader};

/// The path the client requests.
pub const CLIENT_PATH: &str = "/chat";

/// What an input asks for.
///
/// Layout: `flags`, `limits`, a count byte `k`, then `k % 16` chunk lengths (used in
/// turn to cut the stream; none: one piece), then the stream. Bits 4-5 of `k`:
/// permessage-deflate configured (1 shared, 2 dedicated with 15-bit windows,
/// 3 with 9-bit ones); received messages may then be compressed, the echoes
/// are not (its `min_size` is out of reach), so the output model holds.
///
/// `flags`: bit 0 streaming receive (`Session::set_streaming`: `Event::Fragment`);
/// bit 1 serve plain HTTP (server, `Session::set_serve_http`); bit 2 the handler
/// pauses the feed after every event (its `stopped()` turns true); bit 3 answer
/// plain HTTP requests with a 200 (else 404 is sent); bit 4 client: no 101 response
/// is put before the stream (the stream must be one); bit 5 echo messages as two
/// fragments; bit 6 subprotocols `superchat, chat`; bit 7 the payload of a data
/// frame in progress is given by direct reads (`Session::read_direct`) where
/// offered. Every run drives one `Session`.
///
/// `limits`: two bits each for `max_frame_size`, `max_message_size`, `max_output`
/// and `max_handshake_size`, from the low bits up; 0 is the default.
#[derive(Debug, Clone)]
pub struct Params {
    pub role: Role,
    pub streaming: bool,
    pub http: bool,
    pub pause: bool,
    pub http_answer: bool,
    pub raw_response: bool,
    pub echo_fragments: bool,
    pub direct: bool,
    pub config: Config,
    pub lengths: Vec<u8>,
    pub stream: Vec<u8>,
}

impl Params {
    pub fn parse(role: Role, data: &[u8]) -> Params {
        let mut r = Reader::new(data);
        let flags = r.byte();
        let limits = r.byte();
        let count = r.byte();
        let lengths = r.take(count as usize % 16).to_vec();
        let pick = |shift: u32, values: [usize; 4]| values[(limits >> shift) as usize & 3];
        let mut config = Config::default();
        // A limit of 0 is refused by `Config` now (it would refuse everything). The
        // value 1 stands where this layout used to pick 0 for the frame and
        // message limits: the smallest valid one, still refusing almost every
        // data frame.
        config
            .set_max_frame_size(pick(0, [16 << 20, 1, 125, 1000]))
            .expect("a valid limit");
        config
            .set_max_message_size(pick(2, [16 << 20, 1, 200, 3000]))
            .expect("a valid limit");
        config
            .set_max_output(pick(4, [16 << 20, 1, 300, 4096]))
            .expect("a valid limit");
        config
            .set_max_handshake_size(pick(6, [8 << 10, 100, 300, 1000]))
            .expect("a valid limit");
        let deflate = match count >> 4 & 3 {
            0 => None,
            1 => Some(DeflateConfig::shared()),
            2 => DeflateConfig::dedicated(15).ok(),
            _ => DeflateConfig::dedicated(9).ok(),
        };
        config.set_deflate(deflate.map(|mut d| {
            d.set_min_size(usize::MAX);
            d
        }));
        if flags & 0x40 != 0 {
            for name in ["superchat", "chat"] {
                config.add_subprotocol(name).expect("a valid subprotocol");
            }
        }
        Params {
            role,
            streaming: flags & 1 != 0,
            http: flags & 2 != 0 && role == Role::Server,
            pause: flags & 4 != 0,
            http_answer: flags & 8 != 0,
            raw_response: flags & 0x10 != 0 && role == Role::Client,
            echo_fragments: flags & 0x20 != 0,
            direct: flags & 0x80 != 0,
            config,
            lengths,
            stream: r.rest().to_vec(),
        }
    }
}

/// An event with owned data, as compared between runs (messages reassembled from
/// streamed fragments; handshake errors compared by kind only: a head refused as
/// malformed whole may be refused as too large when cut at the cap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Open(String, Option<String>),
    Message(MessageKind, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, String),
    Http(String, String),
    HandshakeError,
    Error(Error),
}

/// What one run produced.
#[derive(Debug)]
pub struct Outcome {
    pub events: Vec<Ev>,
    /// The output after the handshake bytes, decoded.
    pub frames: Vec<Frame>,
    /// All output bytes (client: after the request).
    pub output: Vec<u8>,
    /// Calls that `read_direct` served (the harness checks they happen).
    pub direct_reads: usize,
    /// Feeds that the handler stopped before all their bytes were used.
    pub stopped_feeds: usize,
}

/// The handler of a paused run: stops the feed after each event.
struct Pausing<'a> {
    rec: &'a mut Recorder,
    stopped: bool,
}

impl EventHandler for Pausing<'_> {
    fn on_event(&mut self, session: &Session, event: Event<'_>) {
        self.rec.on_event(session, event);
        self.stopped = true;
    }

    fn stopped(&self) -> bool {
        self.stopped
    }
}

/// Evaluates `$call` with `$h` bound to the run's event handler for `$rec`: one
/// that stops the feed after each event when `$pause`, else a plain closure (the
/// usual kind of handler). Gives the call's value and whether the handler stopped.
macro_rules! with_handler {
    ($rec:expr, $pause:expr, |$h:ident| $call:expr) => {
        if $pause {
            let mut $h = Pausing {
                rec: $rec,
                stopped: false,
            };
            let value = $call;
            (value, $h.stopped)
        } else {
            let rec: &mut Recorder = $rec;
            let mut $h = |s: &Session, e: Event<'_>| rec.on_event(s, e);
            ($call, false)
        }
    };
}

/// A handler for calls that must not deliver any event.
fn no_events(_: &Session, e: Event<'_>) {
    panic!("an event from a refused call: {}", ev_name(&e));
}

/// What the server's `Open` must match: the request in the stream.
struct ExpectedRequest {
    key: Vec<u8>,
    path: String,
    subprotocol: Option<String>,
    deflate: Option<Agreed>,
}

/// Watches the events and the output of one session.
struct Recorder {
    role: Role,
    streaming: bool,
    http_answer: bool,
    echo_fragments: bool,
    config: Arc<Config>,
    what: String,
    request: Option<ExpectedRequest>,
    /// Output bytes (of `pending()`) already accounted for.
    seen: usize,
    /// Where frames start in the output (after the 101 response).
    frames_start: Option<usize>,
    events: Vec<Ev>,
    opened: bool,
    /// An `Error`, `Close` or `HttpRequest` was delivered: nothing may follow.
    terminal: Option<String>,
    /// Client role: the status of the server's refusal, when one came.
    refused: Option<u16>,
    /// The `Error` delivered during the current call.
    call_error: Option<Error>,
    /// A 404 is due after the `HttpRequest` event (the handler did not answer).
    expect_404: bool,
    /// The sender model: a close frame was queued or the session failed.
    tx_closed: bool,
    /// The sender model: a fragmented echo is open, of this kind.
    tx_fragments: Option<MessageKind>,
    /// Streaming receive: the message being reassembled.
    partial: Option<(MessageKind, Vec<u8>)>,
    /// The sum of `memory_change()` so far, as a memory budget keeps it.
    charged: isize,
}

/// An event's `Debug`, cut to about 200 bytes (at a character boundary).
fn ev_name(e: &Event<'_>) -> String {
    let s = format!("{e:?}");
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// How the echo of a message is sent.
#[derive(Debug, Clone, Copy)]
enum Send<'a> {
    /// `send_message` with the message as delivered (text not checked again).
    Message(Message<'a>),
    /// `send` (text checked).
    Whole(MessageKind, &'a [u8]),
    /// `send_fragment`, `fin` or not.
    Fragment(MessageKind, &'a [u8], bool),
}

impl Recorder {
    fn on_event(&mut self, s: &Session, event: Event<'_>) {
        let what = self.what.clone();
        if let Some(t) = &self.terminal {
            panic!("{what}: event {} after {t}", ev_name(&event));
        }
        let new = s.pending()[self.seen..].to_vec();
        let before = self.seen;
        self.seen = s.buffered();
        self.check_inside(s, &event);
        match event {
            Event::Upgrade(_) => panic!("{what}: no upgrade decision was asked for"),
            Event::Open { path, subprotocol, .. } => {
                assert!(!self.opened, "{what}: second Open");
                self.opened = true;
                if let Some(p) = subprotocol {
                    assert!(
                        self.config.subprotocols().iter().any(|s| s == p),
                        "{what}: subprotocol {p:?}"
                    );
                }
                match self.role {
                    Role::Server => {
                        let req = self
                            .request
                            .as_ref()
                            .unwrap_or_else(|| panic!("{what}: Open, but the stream's head is not a valid request"));
                        assert_eq!(path, req.path, "{what}: Open path");
                        assert_eq!(subprotocol, req.subprotocol.as_deref(), "{what}: Open subprotocol");
                        let mut expected = Vec::new();
                        server::write_accept(&mut expected, &req.key, subprotocol, req.deflate.as_ref());
                        assert_eq!(
                            String::from_utf8_lossy(&new),
                            String::from_utf8_lossy(&expected),
                            "{what}: output at Open is not the 101 for the request's key"
                        );
                        self.frames_start = Some(self.seen);
                    }
                    Role::Client => {
                        assert_eq!(path, CLIENT_PATH, "{what}: Open path");
                        assert!(new.is_empty(), "{what}: client output at Open: {new:02x?}");
                        self.frames_start = Some(before);
                    }
                }
                self.events
                    .push(Ev::Open(path.to_owned(), subprotocol.map(str::to_owned)));
            }
            Event::Refused { status, headers } => {
                assert!(self.role == Role::Client && !self.opened, "{what}: Refused");
                assert!(!(100..200).contains(&status), "{what}: refused with {status}");
                assert!(headers.len() <= 64, "{what}: {} header lines", headers.len());
                assert!(self.refused.is_none(), "{what}: second Refused");
                assert!(new.is_empty(), "{what}: client output at Refused: {new:02x?}");
                self.refused = Some(status);
            }
            Event::HttpRequest { method, path } => {
                assert!(self.role == Role::Server && !self.opened, "{what}: HttpRequest");
                assert!(new.is_empty(), "{what}: output at HttpRequest: {new:02x?}");
                self.terminal = Some("HttpRequest".into());
                self.tx_closed = true;
                self.events.push(Ev::Http(method.to_owned(), path.to_owned()));
                // No frame may be sent while a plain request is answered.
                self.refused(s, Error::NotOpen, "HttpRequest");
                if self.http_answer {
                    let body = format!("{method} {path}");
                    s.http_response(200, "text/plain", body.as_bytes())
                        .unwrap_or_else(|e| panic!("{what}: http_response failed: {e}"));
                    let mut expected = Vec::new();
                    server::write_http_response(&mut expected, 200, "text/plain", body.as_bytes());
                    assert_eq!(s.pending()[self.seen..], expected[..], "{what}: http_response output");
                    self.seen = s.buffered();
                    assert_eq!(s.state(), State::Closed, "{what}: state after http_response");
                    assert_eq!(
                        s.http_response(200, "text/plain", b""),
                        Err(Error::NotOpen),
                        "{what}: second http_response"
                    );
                    assert_eq!(s.buffered(), self.seen, "{what}: a refused http_response queued output");
                } else {
                    self.expect_404 = true;
                }
            }
            Event::Message(message) => {
                assert!(self.opened, "{what}: Message before Open");
                assert!(!self.streaming, "{what}: Message in streaming mode");
                assert!(new.is_empty(), "{what}: output at Message: {new:02x?}");
                self.message(s, message);
            }
            Event::Fragment { kind, data, fin } => {
                assert!(self.opened, "{what}: Fragment before Open");
                assert!(self.streaming, "{what}: Fragment without streaming");
                assert!(new.is_empty(), "{what}: output at Fragment: {new:02x?}");
                assert!(!data.is_empty() || fin, "{what}: empty non-final fragment");
                let (k, mut buf) = self.partial.take().unwrap_or((kind, Vec::new()));
                assert_eq!(k, kind, "{what}: fragment kind changed inside a message");
                buf.extend_from_slice(data);
                if kind == MessageKind::Text {
                    if let Err(e) = std::str::from_utf8(&buf) {
                        assert!(
                            !fin && e.error_len().is_none(),
                            "{what}: streamed text is not UTF-8 (fin {fin}): {buf:02x?}"
                        );
                    }
                }
                if fin {
                    // The reassembled message, made the way a program would
                    // (`Message::new` checks text), echoed with `send`.
                    let message = Message::new(kind, &buf)
                        .unwrap_or_else(|e| panic!("{what}: streamed message refused by Message::new: {e}"));
                    self.message(s, message);
                } else {
                    assert!(
                        buf.len() <= self.config.max_message_size(),
                        "{what}: streamed message over max_message_size"
                    );
                    self.partial = Some((kind, buf));
                }
            }
            Event::Ping(payload) => {
                assert!(self.opened, "{what}: Ping before Open");
                assert!(payload.len() <= 125, "{what}: ping of {} bytes", payload.len());
                let room = before == 0 || before + payload.len() + 14 <= self.config.max_output();
                if self.tx_closed || !room {
                    assert!(new.is_empty(), "{what}: pong queued while closed or full: {new:02x?}");
                } else {
                    let frames = parse_frames(&new, self.role, &what);
                    let expected = Frame {
                        fin: true,
                        opcode: OpCode::Pong,
                        payload: payload.to_vec(),
                    };
                    assert_eq!(frames, [expected], "{what}: output at Ping is not its pong");
                }
                self.events.push(Ev::Ping(payload.to_vec()));
            }
            Event::Pong(payload) => {
                assert!(self.opened, "{what}: Pong before Open");
                assert!(payload.len() <= 125, "{what}: pong of {} bytes", payload.len());
                assert!(new.is_empty(), "{what}: output at Pong: {new:02x?}");
                self.events.push(Ev::Pong(payload.to_vec()));
            }
            Event::Close { code, reason } => {
                assert!(self.opened, "{what}: Close before Open");
                assert!(
                    code == CloseCode::NO_STATUS.0 || CloseCode(code).is_valid_on_wire(),
                    "{what}: Close with code {code}"
                );
                assert!(reason.len() <= 123, "{what}: close reason of {} bytes", reason.len());
                assert!(code != CloseCode::NO_STATUS.0 || reason.is_empty());
                if self.tx_closed {
                    assert!(new.is_empty(), "{what}: second close frame queued: {new:02x?}");
                } else {
                    let payload = if code == CloseCode::NO_STATUS.0 {
                        Vec::new()
                    } else {
                        code.to_be_bytes().to_vec()
                    };
                    let expected = Frame {
                        fin: true,
                        opcode: OpCode::Close,
                        payload,
                    };
                    assert_eq!(
                        parse_frames(&new, self.role, &what),
                        [expected],
                        "{what}: the reply to Close({code}) is not its close frame"
                    );
                }
                self.tx_closed = true;
                self.terminal = Some(format!("Close({code})"));
                self.partial = None;
                self.events.push(Ev::Close(code, reason.to_owned()));
                self.refused(s, Error::Closed, "Close");
            }
            Event::Error(e) => {
                self.terminal = Some(format!("Error({e:?})"));
                self.call_error = Some(e);
                self.partial = None;
                if !self.opened {
                    assert!(
                        matches!(e, Error::Handshake(_) | Error::HandshakeTooLarge | Error::Eof | Error::Refused(_)),
                        "{what}: error {e:?} during the handshake"
                    );
                    if let Error::Refused(status) = e {
                        assert_eq!(self.refused, Some(status), "{what}: Refused({status}) without its event");
                    }
                    if self.role == Role::Server && e != Error::Eof {
                        let status = match e {
                            Error::HandshakeTooLarge => 431,
                            Error::Handshake("unsupported Sec-WebSocket-Version") => 426,
                            _ => 400,
                        };
                        let mut expected = Vec::new();
                        server::write_rejection(&mut expected, status);
                        assert_eq!(
                            String::from_utf8_lossy(&new),
                            String::from_utf8_lossy(&expected),
                            "{what}: output at {e:?} is not the {status} refusal"
                        );
                    } else {
                        assert!(new.is_empty(), "{what}: output at {e:?}: {new:02x?}");
                    }
                } else {
                    assert!(
                        matches!(
                            e,
                            Error::Protocol(_) | Error::InvalidUtf8 | Error::MessageTooBig | Error::Eof
                        ),
                        "{what}: error {e:?} after Open"
                    );
                    match (self.tx_closed, e.close_code()) {
                        (false, Some(code)) => {
                            let frames = parse_frames(&new, self.role, &what);
                            assert!(
                                frames.len() == 1 && frames[0].opcode == OpCode::Close,
                                "{what}: output at {e:?} is not one close frame: {frames:?}"
                            );
                            check_close_payload(&frames[0].payload, &what);
                            assert_eq!(
                                frames[0].payload[..2],
                                code.0.to_be_bytes(),
                                "{what}: close code for {e:?}"
                            );
                        }
                        _ => assert!(new.is_empty(), "{what}: output at {e:?}: {new:02x?}"),
                    }
                }
                self.tx_closed = true;
                let ev = match e {
                    Error::Handshake(_) | Error::HandshakeTooLarge => Ev::HandshakeError,
                    e => Ev::Error(e),
                };
                self.events.push(ev);
                self.refused(s, Error::Closed, "Error");
            }
        }
    }

    /// Inside every event: the state is exact, and the session refuses to be fed
    /// again (it is processing input) without a change.
    fn check_inside(&self, s: &Session, event: &Event<'_>) {
        let what = &self.what;
        let expected = match event {
            Event::Open { .. } | Event::Message(_) | Event::Fragment { .. } | Event::Ping(_) | Event::Pong(_) => {
                State::Open
            }
            Event::HttpRequest { .. } => State::HttpRequest,
            Event::Upgrade(_) => State::Deciding,
            Event::Refused { .. } => State::Closed,
            // A client that got the close frame waits for the server to close TCP (§7.1.1).
            Event::Close { .. } if self.role == Role::Client => State::AwaitingEof,
            Event::Close { .. } | Event::Error(_) => State::Closed,
        };
        assert_eq!(s.state(), expected, "{what}: state at {}", ev_name(event));
        let mut byte = [0x81];
        assert_eq!(
            s.feed(&mut byte, &mut no_events),
            Err(Error::Reentrant),
            "{what}: feed inside {}",
            ev_name(event)
        );
        assert_eq!(byte, [0x81], "{what}: a refused feed changed its input");
        assert_eq!(
            s.feed_eof(&mut no_events),
            Err(Error::Reentrant),
            "{what}: feed_eof inside {}",
            ev_name(event)
        );
        let read = |_: &mut [std::mem::MaybeUninit<u8>]| -> std::io::Result<usize> {
            panic!("{what}: a direct read offered inside an event")
        };
        // SAFETY: `read` initializes nothing and never returns (it panics if called).
        assert!(
            unsafe { s.read_direct(1, read, &mut no_events) }.is_none(),
            "{what}: read_direct inside {}",
            ev_name(event)
        );
        assert_eq!(s.buffered(), self.seen, "{what}: refused calls queued output");
        assert_eq!(s.state(), expected, "{what}: refused calls changed the state");
    }

    /// Sends are refused with `error` (the session is closed, or answering plain
    /// HTTP) and queue nothing.
    fn refused(&self, s: &Session, error: Error, at: &str) {
        let what = &self.what;
        assert_eq!(s.send_text("late"), Err(error), "{what}: send_text at {at}");
        assert_eq!(s.send(MessageKind::Binary, b"late"), Err(error), "{what}: send at {at}");
        assert_eq!(s.ping(b""), Err(error), "{what}: ping at {at}");
        assert_eq!(s.close(1000, ""), Err(error), "{what}: close at {at}");
        assert_eq!(s.buffered(), self.seen, "{what}: a refused send at {at} queued output");
    }

    /// A whole message arrived (as delivered, or reassembled from streamed
    /// fragments): check it and echo it.
    fn message(&mut self, s: &Session, message: Message<'_>) {
        let what = &self.what;
        let (kind, data) = (message.kind(), message.as_bytes());
        if kind == MessageKind::Text {
            assert!(
                matches!(message, Message::Text(_)) && std::str::from_utf8(data).is_ok(),
                "{what}: text message is not UTF-8: {data:02x?}"
            );
        }
        assert!(
            data.len() <= self.config.max_message_size(),
            "{what}: message of {} bytes, max_message_size {}",
            data.len(),
            self.config.max_message_size()
        );
        if self.echo_fragments {
            let mut mid = data.len() / 2;
            if let Message::Text(text) = message {
                while !text.is_char_boundary(mid) {
                    mid -= 1;
                }
            }
            if self.send(s, Send::Fragment(kind, &data[..mid], false)) {
                self.send(s, Send::Fragment(kind, &data[mid..], true));
            }
        } else if self.streaming {
            // Reassembled here: sent like any bytes a program has (text checked).
            self.send(s, Send::Whole(kind, data));
        } else {
            // As delivered: its type says the text is valid.
            self.send(s, Send::Message(message));
        }
        self.events.push(Ev::Message(kind, data.to_vec()));
    }

    /// One send, checked against the sender's rules; returns whether it succeeded.
    fn send(&mut self, s: &Session, call: Send<'_>) -> bool {
        let what = self.what.clone();
        let before = s.buffered();
        assert_eq!(before, self.seen, "{what}: unaccounted output before a send");
        let (kind, data, fin) = match call {
            Send::Message(m) => (m.kind(), m.as_bytes(), None),
            Send::Whole(kind, data) => (kind, data, None),
            Send::Fragment(kind, data, fin) => (kind, data, Some(fin)),
        };
        let result = match call {
            Send::Message(m) => s.send_message(m),
            Send::Whole(kind, data) => s.send(kind, data),
            Send::Fragment(kind, data, fin) => s.send_fragment(kind, data, fin),
        };
        let expected = if self.tx_closed {
            Err(Error::Closed)
        } else if match fin {
            None => self.tx_fragments.is_some(),
            Some(_) => self.tx_fragments.is_some_and(|k| k != kind),
        } {
            Err(Error::InvalidArgument)
        } else if before > 0 && before + data.len() + 14 > self.config.max_output() {
            Err(Error::Full)
        } else {
            Ok(())
        };
        assert_eq!(
            result,
            expected,
            "{what}: {call:?} of {} bytes with {before} buffered",
            data.len()
        );
        let new = s.pending()[before..].to_vec();
        self.seen = s.buffered();
        if result.is_err() {
            assert!(new.is_empty(), "{what}: a failed send queued {new:02x?}");
            return false;
        }
        let opcode = match (fin, self.tx_fragments) {
            (Some(_), Some(_)) => OpCode::Continuation,
            _ if kind == MessageKind::Text => OpCode::Text,
            _ => OpCode::Binary,
        };
        let frame = Frame {
            fin: fin.unwrap_or(true),
            opcode,
            payload: data.to_vec(),
        };
        assert_eq!(
            parse_frames(&new, self.role, &what),
            [frame],
            "{what}: a send queued something else"
        );
        if let Some(fin) = fin {
            self.tx_fragments = if fin { None } else { Some(kind) };
        }
        true
    }

    /// The memory changes summed are what the session holds (KiB-rounded), and
    /// that covers its pending output.
    fn check_memory(&mut self, s: &Session, call: &str) {
        let what = &self.what;
        self.charged += s.memory_change();
        let memory = s.memory().expect("memory outside of a feed");
        assert_eq!(
            self.charged,
            s.memory_reported() as isize,
            "{what}: memory changes summed after {call}"
        );
        assert_eq!(
            s.memory_reported(),
            memory.div_ceil(1024) * 1024,
            "{what}: memory reported after {call}"
        );
        assert!(
            memory >= s.buffered(),
            "{what}: memory {memory} < output {} after {call}",
            s.buffered()
        );
    }

    /// After each `feed`, `read_direct` or `feed_eof` call: its result matches the
    /// events (`None`: a direct read, whose errors only the `Error` event
    /// reports), and no output appeared outside of events but the 404 that ends
    /// an unanswered request. The state is the model's.
    fn after_call(&mut self, s: &Session, result: Option<Result<(), Error>>, call: &str) {
        let what = self.what.clone();
        match (self.call_error.take(), result) {
            (_, None) | (None, Some(Ok(()))) => {}
            (Some(e), Some(Err(r))) => assert_eq!(e, r, "{what}: {call} returned another error than its Error event"),
            (e, Some(r)) => panic!("{what}: {call} returned {r:?}, Error event {e:?}"),
        }
        let new = s.pending()[self.seen..].to_vec();
        self.seen = s.buffered();
        if std::mem::take(&mut self.expect_404) {
            let mut expected = Vec::new();
            server::write_http_response(&mut expected, 404, "text/plain", b"Not Found\n");
            assert_eq!(new, expected, "{what}: no 404 after an unanswered HttpRequest");
        } else {
            assert!(
                new.is_empty(),
                "{what}: output outside of events after {call}: {new:02x?}"
            );
        }
        self.check_memory(s, call);
        let buffered = s.buffered();
        let full = buffered >= self.config.max_output() / 2;
        assert_eq!(s.is_full(), full, "{what}: is_full with {buffered} buffered");
        assert_eq!(
            s.wants_write(),
            buffered > 0,
            "{what}: wants_write with {buffered} buffered"
        );
        let expected = match &self.terminal {
            None if self.opened => State::Open,
            None => State::Handshake,
            // A client that got the close frame waits for the server to close TCP (§7.1.1).
            Some(t) if self.role == Role::Client && t.starts_with("Close") && call != "feed_eof" => State::AwaitingEof,
            Some(_) => State::Closed,
        };
        let (state, wants_read) = (s.state(), s.wants_read());
        let what_state = self.terminal.as_deref().unwrap_or("no end");
        assert_eq!(state, expected, "{what}: state after {call} ({what_state})");
        assert_eq!(
            wants_read,
            expected != State::Closed && !full,
            "{what}: wants_read after {call} ({what_state}) with {buffered} buffered"
        );
    }
}

/// The options of one run (the reference run turns them off).
struct Mode {
    streaming: bool,
    pause: bool,
    direct: bool,
}

impl Mode {
    fn of(p: &Params) -> Mode {
        Mode {
            streaming: p.streaming,
            pause: p.pause,
            direct: p.direct,
        }
    }
}

/// Runs one session over `p.stream` cut by `lengths`, checking as it goes.
fn run(p: &Params, lengths: &[u8], mode: Mode, what: &str) -> Outcome {
    let Mode {
        streaming,
        pause,
        direct,
    } = mode;
    let config = Arc::new(p.config.clone());
    let mut stream = Vec::new();
    let s = match p.role {
        Role::Server => Session::server(Arc::clone(&config)),
        Role::Client => {
            let s = Session::client(Arc::clone(&config), "localhost", CLIENT_PATH).expect("client session");
            let request = s.pending().to_vec();
            s.consume(request.len()).expect("consume the request");
            assert_eq!(s.buffered(), 0);
            assert_eq!(s.consume(1), Err(Error::InvalidArgument), "consumed more than pending");
            let (key, deflate) = check_client_request(&request, &config);
            if !p.raw_response {
                let mut response = crate::response_101(&key);
                if let Some(agreed) = deflate {
                    // The answer our server gives to the offer.
                    response.truncate(response.len() - 2);
                    response.extend_from_slice(
                        format!("Sec-WebSocket-Extensions: {}\r\n\r\n", agreed.response()).as_bytes(),
                    );
                }
                stream.extend_from_slice(&response);
            }
            s
        }
    };
    assert_eq!(
        (s.role(), s.state()),
        (p.role, State::Handshake),
        "{what}: a new session"
    );
    s.set_serve_http(p.http);
    s.set_streaming(streaming);
    stream.extend_from_slice(&p.stream);
    let request = match p.role {
        Role::Server => match server::parse_request(&stream, &config) {
            Ok(Some(req)) => Some(ExpectedRequest {
                key: req.key.to_vec(),
                path: req.path.to_owned(),
                subprotocol: req.subprotocol.map(str::to_owned),
                deflate: req.deflate,
            }),
            _ => None,
        },
        Role::Client => None,
    };
    let mut rec = Recorder {
        role: p.role,
        streaming,
        http_answer: p.http_answer,
        echo_fragments: p.echo_fragments,
        config: Arc::clone(&config),
        what: what.to_owned(),
        request,
        seen: 0,
        charged: 0,
        frames_start: None,
        events: Vec::new(),
        opened: false,
        terminal: None,
        refused: None,
        call_error: None,
        expect_404: false,
        tx_closed: false,
        tx_fragments: None,
        partial: None,
    };

    let (mut direct_reads, mut stopped_feeds) = (0, 0);
    for (i, range) in chunk_ranges(stream.len(), lengths).into_iter().enumerate() {
        let chunk = &mut stream[range.clone()];
        let call = format!("feed #{i} of bytes {range:?}");
        let mut off = 0;
        let mut rounds = 0;
        loop {
            let left = chunk.len() - off;
            let ((used, result, direct_read), stopped) = with_handler!(&mut rec, pause, |h| {
                let src = &chunk[off..];
                let offered = if direct {
                    let read = |room: &mut [std::mem::MaybeUninit<u8>]| {
                        let n = room.len().min(left);
                        for (slot, byte) in room.iter_mut().zip(&src[..n]) {
                            slot.write(*byte);
                        }
                        Ok(n)
                    };
                    // SAFETY: `read` initializes the first `n` bytes of the room
                    // it is given before it returns `Ok(n)`.
                    unsafe { s.read_direct(1, read, &mut h) }
                } else {
                    None
                };
                match offered {
                    Some(read) => (read.expect("a read from memory"), None, true),
                    None => {
                        let result = s.feed(&mut chunk[off..], &mut h);
                        (*result.as_ref().unwrap_or(&left), Some(result.map(|_| ())), false)
                    }
                }
            });
            rec.after_call(&s, result, &call);
            // A trim between feeds changes nothing the session delivers (with
            // context takeover, it drops streams that the next message restores).
            if i % 2 == 1 {
                assert_eq!(s.trim_compression(), Ok(()), "{what}: trim after {call}");
                rec.check_memory(&s, "trim_compression");
            }
            assert!(used <= left, "{what}: {call} used {used} of {left} bytes");
            assert!(
                used == left || stopped || direct_read,
                "{what}: {call} used {used} of {left} bytes without being stopped"
            );
            direct_reads += direct_read as usize;
            stopped_feeds += (stopped && !direct_read && used < left) as usize;
            off += used;
            if off == chunk.len() {
                break;
            }
            rounds += 1;
            assert!(
                rounds <= chunk.len() + 1,
                "{what}: {call}: a paused feed makes no progress"
            );
        }
    }
    let (result, _) = with_handler!(&mut rec, pause, |h| s.feed_eof(&mut h));
    let was_running = rec.terminal.is_none();
    rec.after_call(&s, Some(result), "feed_eof");
    if was_running {
        assert_eq!(
            rec.events.last(),
            Some(&Ev::Error(Error::Eof)),
            "{what}: feed_eof on a running session"
        );
    }
    assert_eq!(s.state(), State::Closed, "{what}: state after feed_eof");
    assert!(!s.wants_read(), "{what}: wants to read after feed_eof");
    // The end is final: more bytes are ignored (used, no event), EOF again is no error.
    let mut late = [0x81, 0x80, 0, 0, 0, 0];
    assert_eq!(
        s.feed(&mut late, &mut |s: &Session, e: Event<'_>| rec.on_event(s, e)),
        Ok(late.len()),
        "{what}: bytes after the end"
    );
    assert_eq!(
        s.feed_eof(&mut |s: &Session, e: Event<'_>| rec.on_event(s, e)),
        Ok(()),
        "{what}: EOF after the end"
    );
    rec.after_call(&s, Some(Ok(())), "feed_eof");
    // Everything after the handshake is a well-formed sequence of frames.
    let output = s.pending().to_vec();
    let frames = match rec.frames_start {
        Some(start) => {
            let frames = parse_frames(&output[start..], p.role, what);
            check_frame_sequence(&frames, what);
            frames
        }
        None => Vec::new(),
    };
    if p.role == Role::Server && rec.frames_start.is_none() {
        assert!(
            output.is_empty() || output.starts_with(b"HTTP/1.1 "),
            "{what}: output without a handshake: {output:02x?}"
        );
    }
    // Ended and drained, the session holds nothing: a budget gets it all back.
    s.consume(output.len()).expect("consume the output");
    rec.check_memory(&s, "the end");
    assert_eq!(rec.charged, 0, "{what}: memory still charged at the end");
    Outcome {
        events: rec.events,
        frames,
        output,
        direct_reads,
        stopped_feeds,
    }
}

/// The client's request is one our server accepts (with the client's deflate
/// settings, if any); returns its key and what our server would agree on.
fn check_client_request(request: &[u8], config: &Config) -> (String, Option<Agreed>) {
    let mut server_config = Config::default();
    for name in config.subprotocols() {
        server_config.add_subprotocol(name).expect("a valid subprotocol");
    }
    server_config.set_deflate(config.deflate().cloned());
    let req = server::parse_request(request, &server_config)
        .unwrap_or_else(|r| panic!("our server refuses our client's request: {r:?}"))
        .expect("the request is complete");
    assert_eq!(req.head_len, request.len());
    assert_eq!(req.path, CLIENT_PATH);
    assert_eq!(
        req.deflate.is_some(),
        config.deflate().is_some(),
        "our server declines our offer"
    );
    (std::str::from_utf8(req.key).expect("ASCII key").to_owned(), req.deflate)
}

/// Runs the input as given, then the same stream in one piece on a plain session
/// (no streaming, no pauses, no direct reads; serving HTTP as asked), and compares.
pub fn check(role: Role, data: &[u8]) {
    let p = Params::parse(role, data);
    let a = run(&p, &p.lengths, Mode::of(&p), "cut");
    let plain = Mode {
        streaming: false,
        pause: false,
        direct: false,
    };
    let b = run(&p, &[], plain, "whole");
    // A head is parsed only once a line ends in the bytes just received, so garbage
    // after the last newline of a cut head is never looked at: such a session ends
    // at EOF where the whole stream is refused at once. Accepted as equivalent.
    let deferred_refusal = a.events == [Ev::Error(Error::Eof)] && b.events == [Ev::HandshakeError];
    if deferred_refusal {
        return;
    }
    assert_eq!(
        a.events, b.events,
        "events differ between the cut stream and the whole one"
    );
    assert_eq!(
        a.frames, b.frames,
        "frames differ between the cut stream and the whole one"
    );
    let handshake_error = a.events.contains(&Ev::HandshakeError);
    if role == Role::Server && !handshake_error {
        assert_eq!(
            a.output, b.output,
            "server output differs between the cut stream and the whole one"
        );
    }
}

/// The input run as given (for tests of the harness itself).
pub fn outcome(role: Role, data: &[u8]) -> Outcome {
    let p = Params::parse(role, data);
    run(&p, &p.lengths, Mode::of(&p), "cut")
}

/// The events of the input run as given.
pub fn events(role: Role, data: &[u8]) -> Vec<Ev> {
    outcome(role, data).events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::seeds;

    fn seed(target: &str, name: &str) -> Vec<u8> {
        seeds(target)
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no seed {name}"))
            .1
    }

    #[test]
    fn the_sample_session_is_not_vacuous() {
        for (target, role) in [("session_server", Role::Server), ("session_client", Role::Client)] {
            for name in ["seed-session", "seed-session-bytewise", "seed-session-echo-fragments"] {
                let evs = super::events(role, &seed(target, name));
                let path = if role == Role::Server { "/chat" } else { CLIENT_PATH };
                let sub = (name == "seed-session-echo-fragments" && role == Role::Server).then(|| "superchat".into());
                assert_eq!(evs[0], Ev::Open(path.into(), sub), "{target} {name}");
                assert_eq!(evs[1], Ev::Message(MessageKind::Text, b"Hello".to_vec()));
                assert_eq!(evs[2], Ev::Message(MessageKind::Text, b"Hello".to_vec()));
                assert_eq!(evs[3], Ev::Ping(b"Hello".to_vec()));
                assert!(matches!(evs.last(), Some(Ev::Close(1000 | 1001, _))), "{evs:?}");
                assert_eq!(evs.len(), 10, "{target} {name}: {evs:?}");
            }
        }
        let evs = super::events(Role::Server, &seed("session_server", "seed-invalid-utf8"));
        assert_eq!(evs.last(), Some(&Ev::Error(Error::InvalidUtf8)));
        let evs = super::events(Role::Server, &seed("session_server", "seed-http-404"));
        assert_eq!(evs, [Ev::Http("GET".into(), "/index.html".into())]);
        let evs = super::events(Role::Client, &seed("session_client", "seed-own-response"));
        assert_eq!(evs, [Ev::HandshakeError]);
    }

    #[test]
    fn the_options_take_effect() {
        for (target, role, name) in [
            ("session_server", Role::Server, "seed-session-direct"),
            ("session_server", Role::Server, "seed-session-direct-paused"),
            ("session_client", Role::Client, "seed-session-direct"),
        ] {
            let out = super::outcome(role, &seed(target, name));
            assert!(out.direct_reads > 0, "{target} {name}: no direct read");
            assert_eq!(out.events.len(), 10, "{target} {name}: {:?}", out.events);
        }
        for (target, role, name) in [
            ("session_server", Role::Server, "seed-session-paused"),
            ("session_server", Role::Server, "seed-session-direct-paused"),
            ("session_client", Role::Client, "seed-session-streaming-paused"),
        ] {
            let out = super::outcome(role, &seed(target, name));
            assert!(out.stopped_feeds > 0, "{target} {name}: no feed was stopped");
            assert_eq!(out.events.len(), 10, "{target} {name}: {:?}", out.events);
        }
        // Streamed, the fragmented messages are reassembled by the harness into
        // the same events.
        let streamed = super::events(Role::Server, &seed("session_server", "seed-session-streaming-cut"));
        assert_eq!(
            streamed,
            super::events(Role::Server, &seed("session_server", "seed-session"))
        );
    }

    #[test]
    fn compressed_messages_arrive_whole() {
        for (target, role, name) in [
            ("session_server", Role::Server, "seed-deflate-shared"),
            ("session_server", Role::Server, "seed-deflate-dedicated-cut"),
            ("session_client", Role::Client, "seed-deflate-dedicated-9"),
        ] {
            let evs = super::events(role, &seed(target, name));
            let hello = Ev::Message(MessageKind::Text, b"Hello".to_vec());
            assert_eq!(evs[1..3], [hello.clone(), hello], "{target} {name}");
            assert_eq!(
                evs[3],
                Ev::Message(MessageKind::Binary, vec![b'x'; 1807]),
                "{target} {name}"
            );
            assert!(matches!(evs[4], Ev::Close(1000, _)), "{target} {name}: {evs:?}");
        }
    }

    #[test]
    fn a_wrong_model_is_caught() {
        // The harness must be able to fail: a server fed an unmasked frame fails,
        // and the check that expects its close frame sees 1002.
        let evs = super::events(Role::Server, &seed("session_server", "seed-unmasked"));
        assert_eq!(
            evs.last(),
            Some(&Ev::Error(Error::Protocol("unmasked frame from a client")))
        );
    }
}

//! Driving wsconn sessions in memory: feed bytes, collect events as owned
//! values, read what a session wrote. The helpers that need wsconn's types;
//! frames and the RFC samples come from `wsconn-testkit`.

use std::sync::Arc;
use wsconn::{Config, Event, Message, MessageKind, Session};
use wsconn_testkit::REQUEST;

/// An event with owned data, to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Open(String, Option<String>),
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, String),
    Error(wsconn::Error),
    Fragment(MessageKind, Vec<u8>, bool),
    Http(String, String),
    /// An upgrade request to decide (its target).
    Upgrade(String),
    Refused(u16),
}

impl From<Event<'_>> for Ev {
    fn from(e: Event<'_>) -> Ev {
        match e {
            Event::Open { path, subprotocol, .. } => Ev::Open(path.into(), subprotocol.map(Into::into)),
            Event::Refused { status, .. } => Ev::Refused(status),
            Event::Message(Message::Text(text)) => Ev::Text(text.to_owned()),
            Event::Message(Message::Binary(data)) => Ev::Binary(data.to_vec()),
            Event::Ping(d) => Ev::Ping(d.to_vec()),
            Event::Pong(d) => Ev::Pong(d.to_vec()),
            Event::Close { code, reason } => Ev::Close(code, reason.into()),
            Event::Error(e) => Ev::Error(e),
            Event::Fragment { kind, data, fin } => Ev::Fragment(kind, data.to_vec(), fin),
            Event::HttpRequest { method, path } => Ev::Http(method.into(), path.into()),
            Event::Upgrade(request) => Ev::Upgrade(request.target().into()),
        }
    }
}

/// The default config with one change.
pub fn config_with(change: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    change(&mut config);
    config
}

pub fn server() -> Session {
    server_with(Config::default())
}

pub fn server_with(config: Config) -> Session {
    Session::server(Arc::new(config))
}

/// A server session past the handshake, its output drained.
pub fn open_server_with(config: Config) -> Session {
    let s = server_with(config);
    let events = feed(&s, REQUEST).0;
    assert_eq!(events, vec![Ev::Open("/chat".into(), None)]);
    drain(&s);
    s
}

pub fn open_server() -> Session {
    open_server_with(Config::default())
}

/// Feeds bytes (copied, since the session unmasks in place); returns the events and the result.
pub fn feed(s: &Session, bytes: &[u8]) -> (Vec<Ev>, wsconn::Result<()>) {
    let mut events = Vec::new();
    let mut data = bytes.to_vec();
    let result = s.feed(&mut data, &mut |_: &Session, e: Event<'_>| events.push(Ev::from(e)));
    (events, result.map(|_| ()))
}

/// Feeds bytes in pieces cut at `cuts`.
pub fn feed_pieces(s: &Session, bytes: &[u8], cuts: &[usize]) -> (Vec<Ev>, wsconn::Result<()>) {
    let mut events = Vec::new();
    let mut last = 0;
    for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
        let (mut evs, result) = feed(s, &bytes[last..cut]);
        events.append(&mut evs);
        if result.is_err() {
            return (events, result);
        }
        last = cut;
    }
    (events, Ok(()))
}

/// Takes all pending output.
pub fn drain(s: &Session) -> Vec<u8> {
    let out = s.pending().to_vec();
    s.consume(out.len()).unwrap();
    out
}

/// Splits unmasked frames into (first byte, payload).
pub fn parse_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (header, len) = wsconn::proto::frame::FrameHeader::decode(bytes)
            .unwrap()
            .expect("complete frame");
        assert!(header.mask.is_none(), "server frames are unmasked");
        let end = len + header.payload_len as usize;
        frames.push((bytes[0], bytes[len..end].to_vec()));
        bytes = &bytes[end..];
    }
    frames
}

/// The close code of the single close frame in `out`.
pub fn close_code_sent(out: &[u8]) -> Option<u16> {
    let frames = parse_frames(out);
    let (b0, payload) = frames.last()?;
    if *b0 != 0x88 {
        return None;
    }
    Some(if payload.len() >= 2 {
        u16::from_be_bytes([payload[0], payload[1]])
    } else {
        1005
    })
}

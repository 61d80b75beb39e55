//! A server session that agreed on permessage-deflate (RFC 7692), fed hostile
//! compressed frames: bombs, broken streams, RSV1 where it does not belong.
//!
//! Input layout: `mode`, `offer`, `windows`, a count byte `k` (`k % 16` chunk
//! lengths follow, used in turn to cut the stream), then the body.
//!
//! - `mode`: bit 0 dedicated (context takeover, `8 + (mode >> 1) % 8` window
//!   bits) else shared; bit 4 streaming receive; bit 5 echo every message
//!   (compressed as agreed); bit 6 the body is plain messages the harness
//!   compresses and frames itself (below), else it is the wire bytes after
//!   the handshake; bit 7 a small output limit.
//! - `offer`: the client's `Sec-WebSocket-Extensions` offer; bit 0
//!   server_no_context_takeover, bit 1 client_no_context_takeover, bit 2
//!   server_max_window_bits (value from `windows`' low nibble), bit 3
//!   client_max_window_bits (bare, or with the high nibble's value when bit 4),
//!   bit 5 an unknown extension offered first, bit 6 a second offer
//!   (plain `permessage-deflate`), bit 7 the header name in lower case.
//! - `windows`: two nibbles, a window value each: 0-7 stand for 8-15; 8-15
//!   for invalid values (`7`, `16`, `08`, none, ...).
//! - Plain body: messages as `flags`, `len` (two bytes, little-endian), the
//!   bytes; `flags` bit 0 binary, bits 1-2 how many frames the compressed
//!   payload is cut into (1 + n), bit 3 a ping between them, bit 4 sent
//!   uncompressed.
//!
//! What is checked: nothing panics; `Session::memory()` stays under three
//! times the message limit plus 256 KiB plus the compression state the
//! agreement allows; no message (or streamed message) is longer than the
//! limit; text is UTF-8; and for plain bodies, the messages delivered are
//! exactly those sent, in order, until an error that one of them explains
//! (too long, or text that is not UTF-8).

use std::sync::Arc;

use wsconn::proto::deflate::deflater::Deflater;
use wsconn::proto::deflate::Agreed;
use wsconn::{Compress, Config, DeflateConfig, Error, Event, Message, MessageKind, Session, State};
use wsconn_testkit::{frame, MASK, REQUEST};

use crate::{chunk_ranges, Reader};

/// The message limit: small, so that bombs reach it quickly.
pub const MAX_MESSAGE: usize = 64 << 10;

/// A window-bits value as the offer writes it (`None`: no value).
fn window_text(nibble: u8) -> Option<String> {
    match nibble & 15 {
        n @ 0..=7 => Some((8 + n).to_string()),
        8 => Some("7".into()),
        9 => Some("16".into()),
        10 => Some("08".into()),
        11 => Some("\"12\"".into()),
        12 => Some("".into()),
        13 => Some("15, x".into()),
        14 => Some("-1".into()),
        _ => None,
    }
}

/// The `Sec-WebSocket-Extensions` header line of the request.
pub fn offer_header(offer: u8, windows: u8) -> String {
    let mut value = String::new();
    if offer & 0x20 != 0 {
        value.push_str("x-webkit-deflate-frame, ");
    }
    value.push_str("permessage-deflate");
    if offer & 1 != 0 {
        value.push_str("; server_no_context_takeover");
    }
    if offer & 2 != 0 {
        value.push_str("; client_no_context_takeover");
    }
    if offer & 4 != 0 {
        value.push_str("; server_max_window_bits");
        if let Some(v) = window_text(windows) {
            value.push('=');
            value.push_str(&v);
        }
    }
    if offer & 8 != 0 {
        value.push_str("; client_max_window_bits");
        if offer & 0x10 != 0 {
            if let Some(v) = window_text(windows >> 4) {
                value.push('=');
                value.push_str(&v);
            }
        }
    }
    if offer & 0x40 != 0 {
        value.push_str(", permessage-deflate");
    }
    let name = if offer & 0x80 != 0 {
        "sec-websocket-extensions"
    } else {
        "Sec-WebSocket-Extensions"
    };
    format!("{name}: {value}\r\n")
}

/// The opening request with the offer (RFC 6455 §1.3's, one header added).
pub fn request(offer: u8, windows: u8) -> Vec<u8> {
    let head = &REQUEST[..REQUEST.len() - 2];
    let mut out = head.to_vec();
    out.extend_from_slice(offer_header(offer, windows).as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// The server's settings for `mode`.
pub fn config(mode: u8) -> Config {
    let deflate = if mode & 1 != 0 {
        DeflateConfig::dedicated(8 + (mode >> 1) % 8).expect("valid window bits")
    } else {
        DeflateConfig::shared()
    };
    let mut config = Config::default();
    config.set_max_message_size(MAX_MESSAGE).expect("a valid limit");
    if mode & 0x80 != 0 {
        config.set_max_output(4096).expect("a valid limit");
    }
    config.set_deflate(Some(deflate));
    config
}

/// One message of a plain body.
#[derive(Debug, Clone)]
struct Plain {
    kind: MessageKind,
    data: Vec<u8>,
    pieces: usize,
    ping: bool,
    raw: bool,
}

fn parse_plain(body: &[u8]) -> Vec<Plain> {
    let mut r = Reader::new(body);
    let mut out = Vec::new();
    while !r.is_empty() {
        let flags = r.byte();
        let len = u16::from_le_bytes([r.byte(), r.byte()]) as usize;
        out.push(Plain {
            kind: if flags & 1 != 0 {
                MessageKind::Binary
            } else {
                MessageKind::Text
            },
            data: r.take(len).to_vec(),
            pieces: 1 + (flags as usize >> 1 & 3),
            ping: flags & 8 != 0,
            raw: flags & 0x10 != 0,
        });
    }
    out
}

/// The client frames of plain messages, compressed as `agreed` allows the
/// client to (its window, its context), and each message's payload length.
fn encode_plain(messages: &[Plain], agreed: &Agreed) -> (Vec<u8>, Vec<usize>) {
    let client = wsconn::Role::Client;
    let bits = agreed.window_bits(client);
    let mut own = (!agreed.no_context_takeover(client)).then(|| Deflater::new(bits, 6, 8));
    let (mut out, mut lens) = (Vec::new(), Vec::new());
    for m in messages {
        let opcode = if m.kind == MessageKind::Text { 1 } else { 2 };
        let (payload, rsv1) = if m.raw {
            (m.data.clone(), 0)
        } else {
            let mut packed = Vec::new();
            match own.as_mut() {
                Some(d) => d.compress(&m.data, &mut packed),
                None => Deflater::compress_alone(bits, 6, 8, &m.data, &mut packed),
            }
            (packed, 0x40)
        };
        lens.push(payload.len());
        let step = payload.len().div_ceil(m.pieces).max(1);
        let mut pieces: Vec<&[u8]> = payload.chunks(step).collect();
        if pieces.is_empty() {
            pieces.push(&[]);
        }
        let last = pieces.len() - 1;
        for (i, piece) in pieces.iter().enumerate() {
            let fin = if i == last { 0x80 } else { 0 };
            let b0 = if i == 0 { fin | rsv1 | opcode } else { fin };
            out.extend(frame(b0, piece, Some(MASK)));
            if m.ping && i == 0 {
                out.extend(frame(0x89, b"between", Some(MASK)));
            }
        }
    }
    (out, lens)
}

/// What the handler saw.
#[derive(Default)]
struct Seen {
    messages: Vec<(MessageKind, Vec<u8>)>,
    /// The streamed message being put together.
    partial: Option<(MessageKind, Vec<u8>)>,
    error: Option<Error>,
    opened: bool,
    echo: bool,
}

impl Seen {
    fn on_event(&mut self, s: &Session, event: Event<'_>) {
        match event {
            Event::Open { .. } => self.opened = true,
            Event::Upgrade(_) => panic!("no upgrade decision was asked for"),
            Event::Message(m) => {
                let data = m.as_bytes();
                assert!(data.len() <= MAX_MESSAGE, "message of {} bytes", data.len());
                if let Message::Text(t) = m {
                    assert_eq!(t.len(), data.len());
                }
                if m.kind() == MessageKind::Text {
                    assert!(std::str::from_utf8(data).is_ok(), "text message is not UTF-8");
                }
                if self.echo {
                    // Full output and the like are the sender's to refuse.
                    let _ = s.send_message_with(m, Compress::Always);
                }
                self.messages.push((m.kind(), data.to_vec()));
            }
            Event::Fragment { kind, data, fin } => {
                let (k, buf) = self.partial.get_or_insert_with(|| (kind, Vec::new()));
                assert_eq!(*k, kind, "a streamed message changed its kind");
                buf.extend_from_slice(data);
                assert!(buf.len() <= MAX_MESSAGE, "streamed message of {} bytes", buf.len());
                if fin {
                    let (kind, data) = self.partial.take().expect("just inserted");
                    if kind == MessageKind::Text {
                        assert!(std::str::from_utf8(&data).is_ok(), "streamed text is not UTF-8");
                    }
                    self.messages.push((kind, data));
                }
            }
            Event::Error(e) => self.error = Some(e),
            Event::Ping(_) | Event::Pong(_) | Event::Close { .. } | Event::HttpRequest { .. } | Event::Refused { .. } => {}
        }
    }
}

/// The most a session may hold (see the module's doc).
fn memory_bound(config: &Config) -> usize {
    let state = config.deflate().map_or(0, |d| d.connection_memory());
    MAX_MESSAGE * 3 + (256 << 10) + state
}

fn check_memory(s: &Session, bound: usize, at: &str) {
    let memory = s.memory().expect("memory outside of a feed");
    assert!(memory < bound, "memory {memory} >= {bound} after {at}");
}

pub fn check(data: &[u8]) {
    run(data);
}

/// Runs and checks the input; returns how many messages were delivered and
/// the error the session ended with, if any.
pub fn run(data: &[u8]) -> (usize, Option<Error>) {
    let mut r = Reader::new(data);
    let (mode, offer, windows) = (r.byte(), r.byte(), r.byte());
    let count = r.byte() as usize % 16;
    let lengths = r.take(count).to_vec();
    let body = r.rest();
    let config = Arc::new(config(mode));
    let bound = memory_bound(&config);
    let s = Session::server(Arc::clone(&config));
    s.set_streaming(mode & 0x10 != 0);
    let mut seen = Seen {
        echo: mode & 0x20 != 0,
        ..Seen::default()
    };
    let mut handler = |s: &Session, e: Event<'_>| seen.on_event(s, e);
    let mut head = request(offer, windows);
    let _ = s.feed(&mut head, &mut handler);
    if s.state() != State::Open {
        // Only a value that breaks the header's syntax refuses the request.
        let odd = |nibble: u8| nibble & 15 >= 8;
        assert!(
            matches!(seen.error, Some(Error::Handshake(_))) && (odd(windows) || odd(windows >> 4)),
            "the request was refused: {:?} {}",
            seen.error,
            offer_header(offer, windows)
        );
        return (0, seen.error);
    }
    let agreed = s.deflate();
    assert!(
        agreed.is_some() || offer & 0x40 == 0 && (offer & 4 != 0 || offer & 0x18 == 0x18),
        "a valid offer was declined: {}",
        offer_header(offer, windows)
    );
    let output = s.pending().to_vec();
    s.consume(output.len()).expect("consume the 101");
    if let Some(a) = &agreed {
        let line = format!("\r\nSec-WebSocket-Extensions: {}\r\n", a.response());
        assert!(
            crate::contains(&output, line.as_bytes()),
            "the 101 does not state the agreement"
        );
    }
    let plain = (mode & 0x40 != 0).then(|| parse_plain(body));
    let (mut stream, wire) = match (&plain, &agreed) {
        (Some(messages), Some(a)) => encode_plain(messages, a),
        _ => (body.to_vec(), Vec::new()),
    };
    let mut handler = |s: &Session, e: Event<'_>| seen.on_event(s, e);
    for range in chunk_ranges(stream.len(), &lengths) {
        let _ = s.feed(&mut stream[range], &mut handler);
        check_memory(&s, bound, "a feed");
        let pending = s.buffered();
        s.consume(pending).expect("consume the output");
        if s.state() == State::Closed {
            break;
        }
    }
    let _ = s.feed_eof(&mut handler);
    check_memory(&s, bound, "EOF");
    if let (Some(messages), Some(_)) = (plain, agreed) {
        check_plain(&messages, &wire, &seen);
    }
    (seen.messages.len(), seen.error)
}

/// The messages delivered are those sent, up to an error one of them explains.
fn check_plain(sent: &[Plain], wire: &[usize], seen: &Seen) {
    let got = &seen.messages;
    assert!(
        got.len() <= sent.len(),
        "{} messages from {} sent",
        got.len(),
        sent.len()
    );
    for (i, (m, (kind, data))) in sent.iter().zip(got).enumerate() {
        assert_eq!((m.kind, &m.data), (*kind, data), "message {i} differs");
    }
    match (sent.get(got.len()), seen.error) {
        (None, e) => assert!(matches!(e, None | Some(Error::Eof)), "{e:?} after every message"),
        (Some(m), Some(Error::MessageTooBig)) => {
            let packed = wire[got.len()];
            assert!(
                m.data.len().max(packed) > MAX_MESSAGE,
                "{} bytes ({packed} compressed) too big",
                m.data.len()
            )
        }
        (Some(m), Some(Error::InvalidUtf8)) => {
            assert!(m.kind == MessageKind::Text && std::str::from_utf8(&m.data).is_err())
        }
        (Some(m), e) => panic!("message {} ({} bytes) not delivered: {e:?}", got.len(), m.data.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::seeds;

    #[test]
    #[cfg_attr(miri, ignore = "slow under Miri; the seeds run there in tests/corpus.rs")]
    fn the_seeds_reach_the_inflater() {
        let outcome = |name: &str| {
            let (_, input) = seeds("inflate")
                .into_iter()
                .find(|(n, _)| n == &format!("seed-{name}"))
                .unwrap_or_else(|| panic!("no seed {name}"));
            run(&input)
        };
        let protocol = |e: Option<Error>| matches!(e, Some(Error::Protocol(_)));
        assert_eq!(outcome("shared-hello"), (2, None));
        assert_eq!(outcome("shared-hello-bytewise"), (2, None));
        assert_eq!(outcome("fragmented"), (1, Some(Error::Eof)));
        assert_eq!(outcome("fragmented-streaming"), (1, Some(Error::Eof)));
        assert_eq!(outcome("bomb"), (0, Some(Error::MessageTooBig)));
        assert_eq!(outcome("bomb-streaming-dedicated"), (0, Some(Error::MessageTooBig)));
        assert!(protocol(outcome("rsv1-ping").1));
        assert!(protocol(outcome("rsv1-continuation").1));
        assert!(protocol(outcome("rsv1-declined").1));
        assert!(protocol(outcome("invalid-block-type").1));
        let (n, e) = outcome("final-block");
        assert!(n == 1 && protocol(e), "{n} {e:?}");
        assert_eq!(outcome("invalid-utf8"), (0, Some(Error::InvalidUtf8)));
        assert_eq!(outcome("dedicated-15-takeover"), (3, Some(Error::Eof)));
        assert_eq!(outcome("dedicated-9-offer"), (2, None));
        assert_eq!(outcome("plain-shared"), (5, Some(Error::Eof)));
        assert_eq!(outcome("plain-dedicated-takeover"), (5, Some(Error::Eof)));
        assert_eq!(outcome("plain-invalid-utf8"), (5, Some(Error::InvalidUtf8)));
        assert_eq!(outcome("plain-window-8"), (1, Some(Error::Eof)));
        // The hand-made bomb is valid deflate: 64 KiB of it inflate to zeros.
        let bomb = crate::seeds::zero_bomb(64 << 10);
        let mut inflater = wsconn::proto::deflate::inflater::Inflater::new(15);
        let (mut out, mut budget) = (Vec::new(), usize::MAX);
        let tail = wsconn::proto::deflate::inflater::TAIL;
        inflater
            .inflate(&bomb, &mut out, &mut budget, &mut |_, _| Ok(()))
            .unwrap();
        inflater
            .inflate(&tail, &mut out, &mut budget, &mut |_, _| Ok(()))
            .unwrap();
        assert!(out.len() == 1 + ((64 << 10) - 1) / 258 * 258 && out.iter().all(|&b| b == 0));
        // Any literal: 9-bit codes too.
        for byte in [b'x', 200] {
            let mut inflater = wsconn::proto::deflate::inflater::Inflater::new(9);
            let (mut out, mut budget) = (Vec::new(), usize::MAX);
            let packed = crate::seeds::repeat_bomb(byte, 517);
            inflater
                .inflate(&packed, &mut out, &mut budget, &mut |_, _| Ok(()))
                .unwrap();
            inflater
                .inflate(&tail, &mut out, &mut budget, &mut |_, _| Ok(()))
                .unwrap();
            assert_eq!(out, vec![byte; 517]);
        }
    }
}

//! permessage-deflate with context takeover, trimmed between messages
//! (`Session::trim_compression`): every message still decodes, also when the
//! peer's next message refers back across the trim (checked with an
//! independent zlib-rs compressor keeping its context), and a trim during a
//! fragmented message, received or sent, changes nothing.

#[allow(dead_code)]
mod session_driver;

use std::sync::Arc;

use session_driver::{drain, feed, feed_pieces, Ev};
use wsconn::{Config, DeflateConfig, Error, Event, MessageKind, Session};
use wsconn_testkit::{client_frame, first_byte, OP_CONT, OP_TEXT};
use zlib_rs::{Deflate, DeflateFlush};

/// RSV1 in a frame's first byte.
const RSV1: u8 = 0x40;

/// A server and a client session with context takeover both ways and
/// `bits`-bit windows, past a handshake made in memory; every non-empty
/// message is compressed.
fn pair(bits: u8) -> (Session, Session) {
    let mut deflate = DeflateConfig::dedicated(bits).unwrap();
    deflate.set_min_size(0);
    let mut config = Config::default();
    config.set_deflate(Some(deflate));
    let config = Arc::new(config);
    let s = Session::server(Arc::clone(&config));
    let c = Session::client(config, "localhost", "/").unwrap();
    assert_eq!(feed(&s, &drain(&c)).1, Ok(()));
    assert_eq!(feed(&c, &drain(&s)).1, Ok(()));
    assert_eq!(s.deflate(), c.deflate());
    (s, c)
}

/// Letters that compress poorly on their own (a message of them shrinks only
/// by referring to an earlier one).
fn noise(len: usize, seed: u64) -> String {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (b'a' + (state % 26) as u8) as char
        })
        .collect()
}

/// Sends `text` from `from`, feeds it to `to`; returns the wire size.
fn send(from: &Session, to: &Session, text: &str) -> usize {
    from.send_text(text).unwrap();
    let wire = drain(from);
    assert_ne!(wire[0] & RSV1, 0, "compressed");
    let (events, result) = feed(to, &wire);
    assert_eq!(result, Ok(()), "{events:?}");
    assert_eq!(events, vec![Ev::Text(text.to_owned())]);
    wire.len()
}

#[test]
fn trims_after_none_one_and_many_messages_keep_every_message_decodable() {
    for bits in [9u8, 15] {
        // When to trim: never, after the first message, after every one,
        // after every third, only once far more than a window was seen.
        let schedules: [&dyn Fn(usize) -> bool; 5] =
            [&|_| false, &|i| i == 0, &|_| true, &|i| i % 3 == 2, &|i| i == 11];
        for (n, trim_after) in schedules.iter().enumerate() {
            let (s, c) = pair(bits);
            // Trimming before anything was compressed holds nothing.
            s.trim_compression().unwrap();
            c.trim_compression().unwrap();
            assert_eq!((s.memory(), c.memory()), (Some(0), Some(0)));
            let mut seen = 0;
            for i in 0..12 {
                // Repeated text (back-references within and across messages)
                // and, every fourth time, a window's worth of noise.
                let text = if i % 4 == 3 {
                    noise(3 << bits, i as u64)
                } else {
                    format!("message {}: {{\"user\":\"someone\",\"ok\":true}} ", i % 2).repeat(40)
                };
                seen += text.len();
                send(&s, &c, &text);
                send(&c, &s, &text);
                if trim_after(i) {
                    s.trim_compression().unwrap();
                    c.trim_compression().unwrap();
                    // What is left: the peer's window, and the box around it.
                    let window = seen.min(1 << bits);
                    for side in [&s, &c] {
                        let held = side.memory().unwrap();
                        assert!(
                            held >= window && held < window + 1024,
                            "bits {bits} schedule {n} message {i}: {held} bytes held"
                        );
                    }
                }
            }
        }
    }
}

/// An independent raw-deflate compressor keeping its context, standing for a
/// peer; every message is sync-flushed and loses its tail (RFC 7692 §7.2.1).
struct Reference(Deflate);

impl Reference {
    fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; data.len() * 2 + 64];
        let before = self.0.total_out();
        self.0.compress(data, &mut out, DeflateFlush::SyncFlush).unwrap();
        out.truncate((self.0.total_out() - before) as usize);
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
        out.truncate(out.len() - 4);
        out
    }
}

#[test]
fn a_peer_referring_back_across_the_trim_is_decoded() {
    for bits in [9u8, 15] {
        let (s, c) = pair(bits);
        drop(c);
        let mut peer = Reference(Deflate::new(6, false, bits));
        let window = 1usize << bits;
        // More than a window first, then a message the next ones repeat,
        // as long as the compressor reaches back (its window less 262 bytes):
        // the copies refer to the far end of the window.
        let mut history = vec![noise(3 * window, 1), noise(window - 300, 2)];
        let repeated = history[1].clone();
        history.extend([repeated.clone(), repeated.clone(), repeated]);
        let mut sizes = Vec::new();
        for (i, text) in history.iter().enumerate() {
            let packed = peer.compress(text.as_bytes());
            sizes.push(packed.len());
            let (events, result) = feed(&s, &client_frame(first_byte(true, OP_TEXT) | RSV1, &packed));
            assert_eq!(result, Ok(()), "bits {bits} message {i}");
            assert_eq!(events, vec![Ev::Text(text.clone())], "bits {bits} message {i}");
            s.trim_compression().unwrap();
            assert!(s.memory().unwrap() < window + 1024);
        }
        // The repeats were sent as back-references into the trimmed window.
        for &size in &sizes[2..] {
            assert!(size * 10 < sizes[1], "bits {bits}: {sizes:?}");
        }
    }
}

#[test]
fn a_trim_while_a_compressed_message_arrives_changes_nothing() {
    let (s, c) = pair(15);
    let text = "fragmented, compressed, and long enough to span frames. ".repeat(200);
    // The client's stream has history, so that the message refers back.
    send(&c, &s, &text[..500]);
    c.send_text(&text).unwrap();
    let whole = drain(&c);
    // Refragmented by hand: the client's single frame cut into three.
    let (header_len, payload) = split_frame(&whole);
    let key: [u8; 4] = whole[header_len - 4..header_len].try_into().unwrap();
    let packed: Vec<u8> = payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]).collect();
    let third = packed.len() / 3;
    let mut wire = client_frame(first_byte(false, OP_TEXT) | RSV1, &packed[..third]);
    let second_frame = wire.len();
    wire.extend(client_frame(first_byte(false, OP_CONT), &packed[third..2 * third]));
    wire.extend(client_frame(first_byte(true, OP_CONT), &packed[2 * third..]));
    // Cut inside the first frame, between frames, inside the last one.
    let mut events = Vec::new();
    let mut last = 0;
    for at in [10, second_frame, wire.len() - 5, wire.len()] {
        let held = s.memory().unwrap();
        s.trim_compression().unwrap();
        if last > 0 {
            assert!(s.receiving_message());
            assert_eq!(s.memory().unwrap(), held, "the stream is kept mid-message");
        }
        let (got, result) = feed(&s, &wire[last..at]);
        assert_eq!(result, Ok(()));
        events.extend(got);
        last = at;
    }
    assert_eq!(events, vec![Ev::Text(text.clone())]);
    // And the stream goes on from there, trimmed.
    s.trim_compression().unwrap();
    send(&c, &s, &text);
}

/// A client frame's header length and (masked) payload.
fn split_frame(frame: &[u8]) -> (usize, &[u8]) {
    let header_len = match frame[1] & 0x7f {
        126 => 8,
        127 => 14,
        _ => 6,
    };
    (header_len, &frame[header_len..])
}

#[test]
fn a_trim_while_a_fragmented_message_is_sent_changes_nothing() {
    let (s, c) = pair(9);
    let text = "a compressed message before and after. ".repeat(10);
    send(&s, &c, &text);
    s.send_fragment(MessageKind::Text, b"first half, ", false).unwrap();
    s.trim_compression().unwrap();
    s.send_fragment(MessageKind::Text, b"second half", true).unwrap();
    let (events, result) = feed_pieces(&c, &drain(&s), &[3]);
    assert_eq!(result, Ok(()));
    assert_eq!(events, vec![Ev::Text("first half, second half".into())]);
    send(&s, &c, &text);
    send(&c, &s, &text);
}

#[test]
fn a_trim_inside_a_handler_is_refused() {
    let (s, c) = pair(15);
    c.send_text(&"x".repeat(100)).unwrap();
    let mut wire = drain(&c);
    let mut results = Vec::new();
    s.feed(&mut wire, &mut |s: &Session, e: Event<'_>| {
        if let Event::Message(m) = e {
            results.push(s.trim_compression());
            s.send_message(m).unwrap();
        }
    })
    .unwrap();
    assert_eq!(results, [Err(Error::Reentrant)]);
    assert!(s.can_trim_compression());
    s.trim_compression().unwrap();
    assert!(!s.can_trim_compression());
    let (events, _) = feed(&c, &drain(&s));
    assert_eq!(events, vec![Ev::Text("x".repeat(100))]);
}

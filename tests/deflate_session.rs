//! permessage-deflate through the sans-IO session: negotiation end to end,
//! compressed messages of many sizes in frames of many sizes under every
//! parameter set, the RSV1 rules, empty messages, and bombs.

#[allow(dead_code)]
mod session_driver;

use std::sync::Arc;

use session_driver::{close_code_sent, drain, feed, feed_pieces, parse_frames, Ev};
use wsconn::proto::deflate::deflater::Deflater;
use wsconn::{Compress, Config, DeflateConfig, Error, Event, Message, MessageKind, Session};
use wsconn_testkit::{client_frame, first_byte, OP_BINARY, OP_CONT, OP_PING, OP_TEXT};

/// RSV1 in a frame's first byte.
const RSV1: u8 = 0x40;

fn config(deflate: Option<DeflateConfig>) -> Arc<Config> {
    let mut c = Config::default();
    c.set_deflate(deflate);
    Arc::new(c)
}

/// A server and a client session past a handshake made in memory.
fn pair(server: Option<DeflateConfig>, client: Option<DeflateConfig>) -> (Session, Session) {
    let s = Session::server(config(server));
    let c = Session::client(config(client), "localhost", "/").unwrap();
    let (events, result) = feed(&s, &drain(&c));
    assert_eq!(result, Ok(()), "{events:?}");
    let (events, result) = feed(&c, &drain(&s));
    assert_eq!(result, Ok(()), "{events:?}");
    assert!(matches!(events[..], [Ev::Open(..)]), "{events:?}");
    (s, c)
}

/// The parameter sets a connection may agree on, as (server, client) configs.
fn parameter_sets() -> Vec<(&'static str, DeflateConfig, DeflateConfig)> {
    let dedicated = |bits| DeflateConfig::dedicated(bits).unwrap();
    let mut server_only_takeover = DeflateConfig::dedicated(15).unwrap();
    server_only_takeover.set_client_no_context_takeover(true);
    let mut everything = DeflateConfig::dedicated(15).unwrap();
    everything.set_min_size(0);
    vec![
        ("shared", DeflateConfig::shared(), DeflateConfig::shared()),
        ("dedicated 15", dedicated(15), dedicated(15)),
        ("dedicated 12/9", dedicated(12), dedicated(9)),
        ("dedicated 8", dedicated(8), dedicated(8)),
        ("server takeover only", server_only_takeover, dedicated(15)),
        (
            "shared server, dedicated client",
            DeflateConfig::shared(),
            dedicated(10),
        ),
        (
            "dedicated server, shared client",
            dedicated(11),
            DeflateConfig::shared(),
        ),
        ("min size 0", everything.clone(), everything),
    ]
}

/// JSON-like text of `len` bytes (compressible, as real traffic is).
fn json(len: usize, seed: usize) -> String {
    let mut text = String::new();
    let mut i = seed;
    while text.len() < len {
        text += &format!("{{\"id\":{i},\"name\":\"user{}\",\"ok\":true}},", i % 97);
        i += 1;
    }
    text.truncate(len);
    text
}

const SIZES: [usize; 9] = [0, 1, 16, 64, 100, 1000, 16 << 10, 64 << 10, 128 << 10];

/// Sends `message` from `from` and feeds it to `to` cut at `cut`-byte reads;
/// returns what arrived and whether RSV1 was set on the wire.
fn transfer(from: &Session, to: &Session, message: Message<'_>, cut: usize) -> (Vec<Ev>, bool) {
    from.send_message(message).unwrap();
    let wire = drain(from);
    let rsv1 = wire[0] & RSV1 != 0;
    let cuts: Vec<usize> = (cut..wire.len()).step_by(cut).collect();
    let (events, result) = feed_pieces(to, &wire, &cuts);
    assert_eq!(result, Ok(()), "{events:?}");
    (events, rsv1)
}

#[test]
fn both_sides_agree_and_report_the_same_parameters() {
    for (name, server, client) in parameter_sets() {
        let (s, c) = pair(Some(server), Some(client));
        assert!(s.deflate().is_some(), "{name}");
        assert_eq!(s.deflate(), c.deflate(), "{name}");
        assert_eq!(s.extensions(), c.extensions(), "{name}");
        assert!(s.extensions().starts_with("permessage-deflate"), "{name}");
    }
    // Offered but not configured on the server, and the reverse: no extension.
    let (s, c) = pair(None, Some(DeflateConfig::shared()));
    assert_eq!((s.deflate(), c.deflate()), (None, None));
    assert_eq!(c.extensions(), "");
    let (s, c) = pair(Some(DeflateConfig::shared()), None);
    assert_eq!((s.deflate(), c.deflate()), (None, None));
}

#[test]
fn messages_of_every_size_round_trip_under_every_parameter_set() {
    for (name, server, client) in parameter_sets() {
        let (s, c) = pair(Some(server), Some(client));
        for (round, &size) in SIZES.iter().enumerate() {
            let text = json(size, round);
            let binary: Vec<u8> = text.bytes().rev().collect();
            // Reads cut at odd places: a frame header, a compressed code, the tail.
            for cut in [1usize, 7, 1000, 1 << 20] {
                if cut == 1 && size > 1000 {
                    continue;
                }
                for (from, to) in [(&s, &c), (&c, &s)] {
                    let (events, rsv1) = transfer(from, to, Message::Text(&text), cut);
                    assert_eq!(events, vec![Ev::Text(text.clone())], "{name} {size} {cut}");
                    let min = from.config().deflate().unwrap().min_size();
                    if size < min {
                        assert!(
                            !rsv1,
                            "{name}: a {size}-byte message under the threshold went compressed"
                        );
                    }
                    if size >= 1000 {
                        assert!(rsv1, "{name}: compressible {size} bytes went uncompressed");
                    }
                    let (events, _) = transfer(from, to, Message::Binary(&binary), cut);
                    assert_eq!(events, vec![Ev::Binary(binary.clone())], "{name} {size} {cut}");
                }
            }
        }
    }
}

#[test]
fn compression_shrinks_json_and_takeover_shrinks_repeats_more() {
    let text = json(1000, 0);
    let wire_size = |server: DeflateConfig| {
        let (s, c) = pair(Some(server.clone()), Some(server));
        let sizes: Vec<usize> = (0..2)
            .map(|_| {
                s.send_text(&text).unwrap();
                let wire = drain(&s);
                assert_eq!(feed(&c, &wire).0, vec![Ev::Text(text.clone())]);
                wire.len()
            })
            .collect();
        sizes
    };
    let shared = wire_size(DeflateConfig::shared());
    let dedicated = wire_size(DeflateConfig::dedicated(15).unwrap());
    assert!(shared[0] * 2 < text.len(), "{shared:?}");
    assert_eq!(shared[0], shared[1], "no context takeover: the same bytes each time");
    assert!(dedicated[1] * 2 < dedicated[0], "{dedicated:?}");
}

#[test]
fn the_program_chooses_per_message() {
    let (s, c) = pair(Some(DeflateConfig::shared()), Some(DeflateConfig::shared()));
    let text = json(5000, 1);
    s.send_message_with(Message::Text(&text), Compress::Never).unwrap();
    let plain = drain(&s);
    assert_eq!(plain[0] & RSV1, 0);
    assert_eq!(feed(&c, &plain).0, vec![Ev::Text(text.clone())]);
    s.send_message_with(Message::Text("tiny, yet compressed: tiny tiny tiny"), Compress::Always)
        .unwrap();
    let small = drain(&s);
    assert_ne!(small[0] & RSV1, 0);
    assert_eq!(
        feed(&c, &small).0,
        vec![Ev::Text("tiny, yet compressed: tiny tiny tiny".into())]
    );
    // Random bytes do not shrink: without context takeover they go as they are.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    s.send_message_with(Message::Binary(&noise), Compress::Always).unwrap();
    assert_eq!(drain(&s)[0] & RSV1, 0);
}

/// The client's compressor, as agreed.
struct Compressor {
    deflater: Box<Deflater>,
    agreed: wsconn::proto::deflate::Agreed,
}

/// An agreed server session, and a compressor standing for its client.
fn server_and_compressor(server: DeflateConfig) -> (Session, Compressor) {
    let (s, c) = pair(Some(server), Some(DeflateConfig::dedicated(15).unwrap()));
    drop(c);
    let agreed = s.deflate().unwrap();
    let deflater = Deflater::new(agreed.client_max_window_bits, 6, 8);
    (s, Compressor { deflater, agreed })
}

/// A message compressed as the client must: from an empty window unless
/// context takeover was agreed.
fn compressed(d: &mut Compressor, data: &[u8]) -> Vec<u8> {
    if d.agreed.client_no_context_takeover {
        d.deflater = Deflater::new(d.agreed.client_max_window_bits, 6, 8);
    }
    let mut out = Vec::new();
    d.deflater.compress(data, &mut out);
    out
}

#[test]
fn fragmented_compressed_messages_with_pings_between() {
    for server in [DeflateConfig::shared(), DeflateConfig::dedicated(15).unwrap()] {
        let (s, mut d) = server_and_compressor(server.clone());
        for piece in [1usize, 3, 100, 4096] {
            let text = json(20_000, piece);
            let packed = compressed(&mut d, text.as_bytes());
            let chunks: Vec<&[u8]> = packed.chunks(piece).collect();
            let mut wire = Vec::new();
            for (i, chunk) in chunks.iter().enumerate() {
                let fin = i + 1 == chunks.len();
                let b0 = if i == 0 {
                    first_byte(fin, OP_TEXT) | RSV1
                } else {
                    first_byte(fin, OP_CONT)
                };
                wire.extend(client_frame(b0, chunk));
                if i % 50 == 0 {
                    wire.extend(client_frame(first_byte(true, OP_PING), b"p"));
                }
            }
            let (events, result) = feed(&s, &wire);
            assert_eq!(result, Ok(()));
            let texts: Vec<&Ev> = events.iter().filter(|e| !matches!(e, Ev::Ping(_))).collect();
            assert_eq!(texts, vec![&Ev::Text(text)], "{server:?} {piece}");
            assert!(parse_frames(&drain(&s)).iter().all(|(b0, _)| *b0 == 0x8A), "pongs only");
        }
    }
}

#[test]
fn streaming_delivers_inflated_pieces() {
    let (s, mut d) = server_and_compressor(DeflateConfig::shared());
    s.set_streaming(true);
    let text = json(300_000, 3);
    let packed = compressed(&mut d, text.as_bytes());
    let mut wire = client_frame(first_byte(false, OP_TEXT) | RSV1, &packed[..packed.len() / 2]);
    wire.extend(client_frame(first_byte(true, OP_CONT), &packed[packed.len() / 2..]));
    let (events, result) = feed_pieces(&s, &wire, &[5000, 20_000]);
    assert_eq!(result, Ok(()));
    let mut joined = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let Ev::Fragment(MessageKind::Text, data, fin) = event else {
            panic!("{event:?}")
        };
        assert_eq!(*fin, i + 1 == events.len());
        joined.extend_from_slice(data);
    }
    assert!(events.len() >= 3, "{}", events.len());
    assert_eq!(joined, text.as_bytes());
}

#[test]
fn rsv1_rules() {
    let (s, mut d) = server_and_compressor(DeflateConfig::shared());
    let packed = compressed(&mut d, b"hello hello hello");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("RSV1 on a ping", client_frame(first_byte(true, OP_PING) | RSV1, b"")),
        ("RSV1 on a continuation", {
            let mut w = client_frame(first_byte(false, OP_TEXT) | RSV1, &packed[..3]);
            w.extend(client_frame(first_byte(true, OP_CONT) | RSV1, &packed[3..]));
            w
        }),
        ("RSV2", client_frame(first_byte(true, OP_TEXT) | 0x20, b"x")),
        ("RSV3", client_frame(first_byte(true, OP_BINARY) | 0x10, b"x")),
        (
            "garbage deflate data",
            client_frame(first_byte(true, OP_BINARY) | RSV1, &[0xff; 8]),
        ),
    ];
    drop(s);
    for (what, wire) in cases {
        let (s, _) = server_and_compressor(DeflateConfig::shared());
        let (_, result) = feed(&s, &wire);
        assert!(matches!(result, Err(Error::Protocol(_))), "{what}: {result:?}");
        assert_eq!(close_code_sent(&drain(&s)), Some(1002), "{what}");
    }
    // Without the extension, RSV1 is still a protocol error.
    let s = session_driver::open_server();
    let (_, result) = feed(&s, &client_frame(first_byte(true, OP_TEXT) | RSV1, &packed));
    assert_eq!(s.deflate(), None);
    assert!(matches!(result, Err(Error::Protocol(_))));
    assert_eq!(close_code_sent(&drain(&s)), Some(1002));
}

#[test]
fn empty_messages_compressed_and_not_then_more() {
    for server in [DeflateConfig::shared(), DeflateConfig::dedicated(15).unwrap()] {
        let (s, mut d) = server_and_compressor(server);
        let mut wire = client_frame(first_byte(true, OP_TEXT) | RSV1, &[0x00]);
        wire.extend(client_frame(first_byte(true, OP_TEXT) | RSV1, &[]));
        wire.extend(client_frame(first_byte(true, OP_TEXT), &[]));
        wire.extend(client_frame(
            first_byte(true, OP_BINARY) | RSV1,
            &compressed(&mut d, b""),
        ));
        wire.extend(client_frame(
            first_byte(true, OP_TEXT) | RSV1,
            &compressed(&mut d, b"after"),
        ));
        // An empty compressed message in two empty frames.
        wire.extend(client_frame(first_byte(false, OP_BINARY) | RSV1, &[]));
        wire.extend(client_frame(first_byte(true, OP_CONT), &[]));
        let (events, result) = feed(&s, &wire);
        assert_eq!(result, Ok(()));
        assert_eq!(
            events,
            vec![
                Ev::Text(String::new()),
                Ev::Text(String::new()),
                Ev::Text(String::new()),
                Ev::Binary(Vec::new()),
                Ev::Text("after".into()),
                Ev::Binary(Vec::new()),
            ]
        );
        // An empty message is sent uncompressed, even when asked.
        s.send_message_with(Message::Text(""), Compress::Always).unwrap();
        assert_eq!(drain(&s), [0x81, 0x00]);
    }
}

#[test]
fn invalid_utf8_fails_fast_on_inflated_bytes() {
    let (s, mut d) = server_and_compressor(DeflateConfig::shared());
    let mut bad = json(100_000, 0).into_bytes();
    bad[10] = 0xff;
    let packed = compressed(&mut d, &bad);
    // Only the first part of the message is sent: the error comes before its end.
    let half = client_frame(first_byte(false, OP_TEXT) | RSV1, &packed[..packed.len() / 2]);
    let (_, result) = feed(&s, &half);
    assert_eq!(result, Err(Error::InvalidUtf8));
    assert_eq!(close_code_sent(&drain(&s)), Some(1007));
}

#[test]
fn a_bomb_is_closed_with_1009_at_the_limit() {
    let mut server = Config::default();
    server.set_deflate(Some(DeflateConfig::shared()));
    server.set_max_message_size(1 << 20).unwrap();
    let s = Session::server(Arc::new(server));
    let c = Session::client(config(Some(DeflateConfig::shared())), "localhost", "/").unwrap();
    assert_eq!(feed(&s, &drain(&c)).1, Ok(()));
    drain(&s);
    // 64 MiB of zeros compress to about 64 KiB: under every wire limit.
    let mut packed = Vec::new();
    Deflater::new(15, 9, 9).compress(&vec![0u8; 64 << 20], &mut packed);
    assert!(packed.len() < 128 << 10, "{}", packed.len());
    let mut delivered = 0;
    let mut wire = client_frame(first_byte(true, OP_BINARY) | RSV1, &packed);
    let result = s.feed(&mut wire, &mut |_: &Session, e: Event<'_>| {
        if let Event::Message(m) = e {
            delivered += m.as_bytes().len();
        }
    });
    assert_eq!(result, Err(Error::MessageTooBig));
    assert_eq!(delivered, 0);
    assert_eq!(close_code_sent(&drain(&s)), Some(1009));
}

#[test]
fn a_peer_whose_messages_inflate_far_more_than_they_weigh_is_closed() {
    let (s, _c) = pair(Some(DeflateConfig::shared()), Some(DeflateConfig::shared()));
    drain(&s);
    // 1 MiB of zeros on its own compresses to about 1 KiB: a ratio of 1,000,
    // each message well under the message limit.
    let mut packed = Vec::new();
    Deflater::compress_alone(15, 9, 9, &vec![0u8; 1 << 20], &mut packed);
    assert!(packed.len() < 2 << 10, "{}", packed.len());
    let mut delivered = 0;
    let mut result = Ok(0);
    for _ in 0..64 {
        let mut wire = client_frame(first_byte(true, OP_BINARY) | RSV1, &packed);
        result = s.feed(&mut wire, &mut |_: &Session, e: Event<'_>| {
            if let Event::Message(_) = e {
                delivered += 1;
            }
        });
        if result.is_err() {
            break;
        }
    }
    println!(
        "1 MiB from {} bytes, again and again: {delivered} delivered, then {result:?}",
        packed.len()
    );
    assert_eq!(
        result,
        Err(Error::InflateRatio),
        "64 MiB inflated from {} KiB",
        (64 * packed.len()) >> 10
    );
    assert!(delivered <= 2, "{delivered} messages of 1 MiB delivered");
    assert_eq!(close_code_sent(&drain(&s)), Some(1009));
}

#[test]
fn repeated_messages_under_context_takeover_stay_under_the_inflate_ratio() {
    let dedicated = DeflateConfig::dedicated(15).unwrap();
    let (s, c) = pair(Some(dedicated.clone()), Some(dedicated));
    drain(&s);
    let text = json(1000, 0);
    let mut wire = Vec::new();
    let mut compressed = 0;
    const MESSAGES: usize = 20_000;
    for _ in 0..MESSAGES {
        c.send_text(&text).unwrap();
        let frame = drain(&c);
        compressed += frame.len() - 6;
        wire.extend_from_slice(&frame);
    }
    println!(
        "{MESSAGES} repeats of 1000 bytes: {compressed} bytes compressed, a ratio of {}",
        MESSAGES * 1000 / compressed
    );
    let mut delivered = 0;
    s.feed(&mut wire, &mut |_: &Session, e: Event<'_>| {
        if let Event::Message(_) = e {
            delivered += 1;
        }
    })
    .unwrap();
    assert_eq!(delivered, MESSAGES);
}

//! The session's protocol rules (RFC 6455 §5–7), checked on byte vectors.

mod session_driver;
use session_driver::*;
use wsconn::{Config, Error, Event, MessageKind, Session, State};
use wsconn_testkit::{client_frame, server_frame, REQUEST};

#[test]
fn rfc_5_7_examples_to_a_server() {
    let s = open_server();
    // Masked "Hello" exactly as in the RFC.
    let masked_hello = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    assert_eq!(feed(&s, &masked_hello).0, vec![Ev::Text("Hello".into())]);
    // Fragmented "Hel" + "lo", masked.
    let mut fragmented = client_frame(0x01, b"Hel");
    fragmented.extend(client_frame(0x80, b"lo"));
    assert_eq!(feed(&s, &fragmented).0, vec![Ev::Text("Hello".into())]);
    // Ping "Hello" → pong "Hello" (unmasked, from the server).
    assert_eq!(
        feed(&s, &client_frame(0x89, b"Hello")).0,
        vec![Ev::Ping(b"Hello".to_vec())]
    );
    assert_eq!(drain(&s), vec![0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    // 256 bytes and 64 KiB of binary.
    for len in [256, 65536] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        assert_eq!(feed(&s, &client_frame(0x82, &payload)).0, vec![Ev::Binary(payload)]);
    }
}

#[test]
fn rfc_5_7_unmasked_examples_to_a_client() {
    let client = wsconn::Session::client(std::sync::Arc::new(Config::default()), "h", "/").unwrap();
    let request = drain(&client);
    let key_line = String::from_utf8(request).unwrap();
    let key = key_line
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap()
        .to_owned();
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        wsconn::proto::handshake::accept_key(key.as_bytes())
    );
    // The response and the RFC's frames in one read: bytes after the head are frames.
    let mut bytes = response.into_bytes();
    bytes.extend([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    bytes.extend([0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
    bytes.extend([0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    let (events, result) = feed(&client, &bytes);
    assert_eq!(result, Ok(()));
    assert_eq!(
        events,
        vec![
            Ev::Open("/".into(), None),
            Ev::Text("Hello".into()),
            Ev::Text("Hello".into()),
            Ev::Ping(b"Hello".to_vec())
        ]
    );
    // The client's pong is masked.
    let pong = drain(&client);
    assert_eq!(&pong[..2], &[0x8a, 0x85]);
    // A masked frame from a server is a protocol error.
    let (events, result) = feed(&client, &client_frame(0x81, b"x"));
    assert_eq!(result, Err(Error::Protocol("masked frame from a server")));
    assert!(matches!(events.last(), Some(Ev::Error(_))));
}

/// A stream of frames exercising every length encoding, fragments and a control
/// frame between fragments, with the events it must produce.
fn sample_stream() -> (Vec<u8>, Vec<Ev>) {
    let big: Vec<u8> = (0..70000u32).map(|i| (i * 7) as u8).collect();
    let mut bytes = Vec::new();
    let mut events = Vec::new();
    bytes.extend(client_frame(0x81, "héllo".as_bytes()));
    events.push(Ev::Text("héllo".into()));
    bytes.extend(client_frame(0x82, &[]));
    events.push(Ev::Binary(vec![]));
    bytes.extend(client_frame(0x82, &big[..300]));
    events.push(Ev::Binary(big[..300].to_vec()));
    bytes.extend(client_frame(0x01, "κό".as_bytes()));
    bytes.extend(client_frame(0x89, b"between"));
    events.push(Ev::Ping(b"between".to_vec()));
    bytes.extend(client_frame(0x00, &[]));
    bytes.extend(client_frame(0x80, "σμε".as_bytes()));
    events.push(Ev::Text("κόσμε".into()));
    bytes.extend(client_frame(0x82, &big));
    events.push(Ev::Binary(big.clone()));
    bytes.extend(client_frame(0x8a, b"pong"));
    events.push(Ev::Pong(b"pong".to_vec()));
    bytes.extend(client_frame(0x88, &[0x03, 0xe8, b'o', b'k']));
    events.push(Ev::Close(1000, "ok".into()));
    (bytes, events)
}

#[test]
fn every_split_point_gives_the_same_events() {
    let (bytes, expected) = sample_stream();
    // Split points around every frame boundary and inside the small frames; the big
    // frame is split at a sample of points (every byte would be 70k sessions).
    let mut points: Vec<usize> = (0..=400).collect();
    points.extend((400..bytes.len()).step_by(997));
    points.extend(bytes.len() - 200..=bytes.len());
    for split in points {
        let s = open_server();
        let (events, result) = feed_pieces(&s, &bytes, &[split]);
        assert_eq!(result, Ok(()), "split at {split}");
        assert_eq!(events, expected, "split at {split}");
        assert_eq!(s.state(), State::Closed);
    }
}

#[test]
fn byte_at_a_time() {
    let (bytes, expected) = sample_stream();
    let small = &bytes[..bytes.len().min(400)];
    let s = open_server();
    let cuts: Vec<usize> = (1..small.len()).collect();
    let (events, result) = feed_pieces(&s, small, &cuts);
    assert_eq!(result, Ok(()));
    assert_eq!(events, expected[..events.len()].to_vec());
    assert!(events.len() >= 4);
}

#[test]
fn handshake_split_at_every_byte_keeps_following_frames() {
    let mut bytes = REQUEST.to_vec();
    bytes.extend(client_frame(0x81, b"first"));
    for split in 0..=bytes.len() {
        let s = server();
        let (events, result) = feed_pieces(&s, &bytes, &[split]);
        assert_eq!(result, Ok(()), "split {split}");
        assert_eq!(
            events,
            vec![Ev::Open("/chat".into(), None), Ev::Text("first".into())],
            "split {split}"
        );
        let out = String::from_utf8(drain(&s)).unwrap();
        assert!(out.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    }
    // And byte by byte.
    let s = server();
    let cuts: Vec<usize> = (1..bytes.len()).collect();
    let (events, _) = feed_pieces(&s, &bytes, &cuts);
    assert_eq!(events.len(), 2);
}

#[test]
fn handshake_rejections_answer_http_and_close() {
    let s = server();
    let bad = String::from_utf8(REQUEST.to_vec())
        .unwrap()
        .replace("Version: 13", "Version: 8");
    let (events, result) = feed(&s, bad.as_bytes());
    assert!(matches!(result, Err(Error::Handshake(_))));
    assert!(matches!(events.as_slice(), [Ev::Error(Error::Handshake(_))]));
    let out = String::from_utf8(drain(&s)).unwrap();
    assert!(out.starts_with("HTTP/1.1 426 Upgrade Required\r\n") && out.contains("Sec-WebSocket-Version: 13"));
    assert!(!s.wants_read() && !s.wants_write());
    assert_eq!(s.send(MessageKind::Text, b"x"), Err(Error::Closed));

    // A head that grows past the cap, a byte at a time, is refused with 431.
    let s = server_with(config_with(|c| c.set_max_handshake_size(256).unwrap()));
    let mut result = Ok(());
    for _ in 0..300 {
        result = feed(&s, b"a").1;
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(Error::HandshakeTooLarge));
    assert!(String::from_utf8(drain(&s)).unwrap().starts_with("HTTP/1.1 431 "));
}

/// Feeds `bytes` to an open server and returns the close code it sent and the error.
fn violation(bytes: &[u8]) -> (Option<u16>, Option<Error>) {
    violation_with(Config::default(), bytes)
}

fn violation_with(config: Config, bytes: &[u8]) -> (Option<u16>, Option<Error>) {
    let s = open_server_with(config);
    let (events, result) = feed(&s, bytes);
    let code = close_code_sent(&drain(&s));
    if let Err(e) = result {
        assert_eq!(events.last(), Some(&Ev::Error(e)), "the error is reported as an event");
        assert!(!s.wants_read(), "a failed session reads no more");
    }
    (code, result.err())
}

#[test]
fn protocol_violations_close_with_1002() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked client frame", server_frame(0x81, b"hi")),
        ("rsv1", client_frame(0xC1, b"hi")),
        ("rsv2", client_frame(0xA1, b"hi")),
        ("rsv3", client_frame(0x91, b"hi")),
        ("opcode 3", client_frame(0x83, b"")),
        ("opcode 7", client_frame(0x87, b"")),
        ("opcode 11", client_frame(0x8B, b"")),
        ("opcode 15", client_frame(0x8F, b"")),
        ("fragmented ping", client_frame(0x09, b"")),
        ("ping of 126 bytes", client_frame(0x89, &[0; 126])),
        ("continuation without start", client_frame(0x80, b"x")),
        ("continuation without start, not fin", client_frame(0x00, b"x")),
        (
            "text inside fragmented message",
            [client_frame(0x01, b"a"), client_frame(0x81, b"b")].concat(),
        ),
        (
            "binary inside fragmented message",
            [client_frame(0x02, b"a"), client_frame(0x02, b"b")].concat(),
        ),
        ("close with 1-byte payload", client_frame(0x88, &[3])),
        (
            "64-bit length with top bit",
            vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
        ),
    ];
    for (name, bytes) in cases {
        let (code, error) = violation(&bytes);
        assert_eq!(code, Some(1002), "{name}");
        assert!(matches!(error, Some(Error::Protocol(_))), "{name}: {error:?}");
    }
}

#[test]
fn every_close_code() {
    for code in 0..=5100u16 {
        let s = open_server();
        let (events, result) = feed(&s, &client_frame(0x88, &code.to_be_bytes()));
        let sent = close_code_sent(&drain(&s));
        if wsconn::CloseCode(code).is_valid_on_wire() {
            assert_eq!(result, Ok(()), "code {code}");
            assert_eq!(events, vec![Ev::Close(code, String::new())], "code {code}");
            assert_eq!(sent, Some(code), "code {code} is echoed");
        } else {
            assert_eq!(sent, Some(1002), "code {code}");
        }
        assert_eq!(s.state(), State::Closed);
        assert!(!s.wants_read());
    }
}

#[test]
fn close_frames_with_and_without_reason() {
    let s = open_server();
    let (events, _) = feed(&s, &client_frame(0x88, &[]));
    assert_eq!(events, vec![Ev::Close(1005, String::new())]);
    assert_eq!(
        drain(&s),
        vec![0x88, 0x00],
        "an empty close is answered with an empty close"
    );

    let mut payload = vec![0x0f, 0xa0];
    payload.extend("déjà vu".as_bytes());
    let s = open_server();
    assert_eq!(
        feed(&s, &client_frame(0x88, &payload)).0,
        vec![Ev::Close(4000, "déjà vu".into())]
    );

    let (code, error) = violation(&client_frame(0x88, &[0x03, 0xe8, 0xce, 0xba, 0xe1, 0xbd]));
    assert_eq!((code, error), (Some(1007), Some(Error::InvalidUtf8)));
}

#[test]
fn data_after_close_is_ignored_and_nothing_is_sent() {
    let s = open_server();
    let mut bytes = client_frame(0x88, &[0x03, 0xe8]);
    bytes.extend(client_frame(0x81, b"late"));
    bytes.extend(client_frame(0x89, b"late ping"));
    let (events, result) = feed(&s, &bytes);
    assert_eq!(result, Ok(()));
    assert_eq!(events, vec![Ev::Close(1000, String::new())]);
    assert_eq!(parse_frames(&drain(&s)), vec![(0x88, vec![0x03, 0xe8])]);
    assert_eq!(s.send(MessageKind::Text, b"x"), Err(Error::Closed));
    assert_eq!(feed(&s, &client_frame(0x81, b"more")).0, vec![]);
}

#[test]
fn server_initiated_close_waits_for_the_reply() {
    let s = open_server();
    s.close(1001, "going").unwrap();
    assert_eq!(s.state(), State::CloseSent);
    assert!(s.wants_read());
    // Messages still arrive until the peer's close.
    assert_eq!(
        feed(&s, &client_frame(0x81, b"in flight")).0,
        vec![Ev::Text("in flight".into())]
    );
    let (events, _) = feed(&s, &client_frame(0x88, &[0x03, 0xe9]));
    assert_eq!(events, vec![Ev::Close(1001, String::new())]);
    let frames = parse_frames(&drain(&s));
    assert_eq!(frames.len(), 1, "no second close frame");
    assert_eq!(s.state(), State::Closed);
    assert!(!s.wants_read() && !s.wants_write());
}

#[test]
fn invalid_utf8_fails_fast() {
    // Whole frame.
    assert_eq!(
        violation(&client_frame(0x81, b"ab\xff")),
        (Some(1007), Some(Error::InvalidUtf8))
    );
    // In the first fragment, before the message ends.
    assert_eq!(
        violation(&client_frame(0x01, b"\xed\xa0\x80")),
        (Some(1007), Some(Error::InvalidUtf8))
    );
    // Truncated code point at the end of the message.
    let bytes = [client_frame(0x01, b"ok\xce"), client_frame(0x80, b"")].concat();
    assert_eq!(violation(&bytes), (Some(1007), Some(Error::InvalidUtf8)));
    // Inside a frame that has not fully arrived: the bad byte alone triggers 1007.
    let s = open_server();
    let mut payload = b"valid start ".to_vec();
    payload.push(0xf8);
    payload.extend(vec![b'x'; 1000]);
    let frame = client_frame(0x81, &payload);
    let (_, result) = feed(&s, &frame[..30]);
    assert_eq!(result, Err(Error::InvalidUtf8));
    assert_eq!(close_code_sent(&drain(&s)), Some(1007));
    // Code points split across fragments are fine.
    let s = open_server();
    let bytes = [
        client_frame(0x01, b"\xe2"),
        client_frame(0x00, b"\x82"),
        client_frame(0x80, b"\xac"),
    ]
    .concat();
    assert_eq!(feed(&s, &bytes).0, vec![Ev::Text("€".into())]);
}

#[test]
fn size_limits_close_with_1009_before_allocating() {
    // A header claiming 2^63 - 1 bytes: refused on the header alone.
    let huge = [0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4];
    assert_eq!(violation(&huge), (Some(1009), Some(Error::MessageTooBig)));
    // 1 GiB claimed with a 16 MiB limit.
    let gib = [0x82, 0xFF, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4];
    assert_eq!(violation(&gib), (Some(1009), Some(Error::MessageTooBig)));
    // Frame limit.
    let config = config_with(|c| c.set_max_frame_size(100).unwrap());
    assert_eq!(
        violation_with(config.clone(), &client_frame(0x82, &[0; 101])),
        (Some(1009), Some(Error::MessageTooBig))
    );
    assert_eq!(violation_with(config, &client_frame(0x82, &[0; 100])), (None, None));
    // Message limit over the sum of fragments.
    let config = config_with(|c| c.set_max_message_size(100).unwrap());
    let bytes = [client_frame(0x02, &[0; 60]), client_frame(0x80, &[0; 41])].concat();
    assert_eq!(
        violation_with(config.clone(), &bytes),
        (Some(1009), Some(Error::MessageTooBig))
    );
    let bytes = [client_frame(0x02, &[0; 60]), client_frame(0x80, &[0; 40])].concat();
    assert_eq!(violation_with(config, &bytes), (None, None));
}

#[test]
fn pings_are_answered_even_inside_fragmented_messages() {
    let s = open_server();
    let bytes = [
        client_frame(0x01, b"a"),
        client_frame(0x89, b"p1"),
        client_frame(0x89, &[7; 125]),
        client_frame(0x80, b"b"),
    ]
    .concat();
    let (events, _) = feed(&s, &bytes);
    assert_eq!(
        events,
        vec![Ev::Ping(b"p1".to_vec()), Ev::Ping(vec![7; 125]), Ev::Text("ab".into())]
    );
    assert_eq!(
        parse_frames(&drain(&s)),
        vec![(0x8a, b"p1".to_vec()), (0x8a, vec![7; 125])]
    );
    // Unsolicited pongs are reported and not answered.
    let (events, _) = feed(&s, &client_frame(0x8a, b"u"));
    assert_eq!(events, vec![Ev::Pong(b"u".to_vec())]);
    assert!(drain(&s).is_empty());
}

#[test]
fn sending_from_inside_the_event_handler_echoes() {
    let s = open_server();
    let bytes = [client_frame(0x81, b"one"), client_frame(0x82, b"two")].concat();
    let mut data = bytes.clone();
    s.feed(&mut data, &mut |s: &Session, e: Event<'_>| {
        if let Event::Message(m) = e {
            s.send_message(m).unwrap();
        }
    })
    .unwrap();
    assert_eq!(
        parse_frames(&drain(&s)),
        vec![(0x81, b"one".to_vec()), (0x82, b"two".to_vec())]
    );
}

#[test]
fn backpressure_stops_reading_at_half_and_refuses_sends_at_the_limit() {
    let s = open_server_with(config_with(|c| c.set_max_output(1000).unwrap()));
    s.send(MessageKind::Binary, &[0; 400]).unwrap();
    assert!(s.wants_read(), "404 bytes queued: under the high-water mark");
    s.send(MessageKind::Binary, &[0; 100]).unwrap();
    assert!(!s.wants_read(), "506 bytes queued: stop reading");
    assert_eq!(s.send(MessageKind::Binary, &[0; 600]), Err(Error::Full));
    assert_eq!(s.buffered(), 506, "a refused send queued nothing");
    s.send(MessageKind::Binary, &[0; 400]).unwrap();
    drain(&s);
    assert!(s.wants_read());
    // A frame larger than the limit still goes into an empty buffer.
    s.send(MessageKind::Binary, &[0; 5000]).unwrap();
    assert_eq!(s.send(MessageKind::Binary, b"x"), Err(Error::Full));
}

#[test]
fn eof_without_close_is_abnormal() {
    let s = open_server();
    let mut events = Vec::new();
    assert_eq!(
        s.feed_eof(&mut |_: &Session, e: Event<'_>| events.push(Ev::from(e))),
        Err(Error::Eof)
    );
    assert_eq!(events, vec![Ev::Error(Error::Eof)]);
    assert!(!s.wants_read());
    assert_eq!(s.state(), State::Closed);
}

#[test]
fn client_and_server_sessions_talk() {
    let config = std::sync::Arc::new(Config::with_subprotocols(&["chat"]).unwrap());
    let client = wsconn::Session::client(config.clone(), "localhost:9001", "/room?id=1").unwrap();
    let server = wsconn::Session::server(config);
    let mut log = Vec::new();
    let mut to_server = drain(&client);
    server
        .feed(&mut to_server, &mut |_: &Session, e: Event<'_>| {
            log.push(("server", Ev::from(e)))
        })
        .unwrap();
    let mut to_client = drain(&server);
    client
        .feed(&mut to_client, &mut |tx: &Session, e: Event<'_>| {
            if matches!(e, wsconn::Event::Open { .. }) {
                tx.send(MessageKind::Text, "ünïcode".as_bytes()).unwrap();
                tx.send_fragment(MessageKind::Binary, &[1; 70000], false).unwrap();
                tx.ping(b"are you there").unwrap();
                tx.send_fragment(MessageKind::Binary, &[2; 10], true).unwrap();
                tx.close(1000, "done").unwrap();
            }
            log.push(("client", Ev::from(e)));
        })
        .unwrap();
    let mut to_server = drain(&client);
    server
        .feed(&mut to_server, &mut |_: &Session, e: Event<'_>| {
            log.push(("server", Ev::from(e)))
        })
        .unwrap();
    let mut to_client = drain(&server);
    client
        .feed(&mut to_client, &mut |_: &Session, e: Event<'_>| {
            log.push(("client", Ev::from(e)))
        })
        .unwrap();
    let mut both = vec![1u8; 70000];
    both.extend([2; 10]);
    assert_eq!(
        log,
        vec![
            ("server", Ev::Open("/room?id=1".into(), Some("chat".into()))),
            ("client", Ev::Open("/room?id=1".into(), Some("chat".into()))),
            ("server", Ev::Text("ünïcode".into())),
            ("server", Ev::Ping(b"are you there".to_vec())),
            ("server", Ev::Binary(both)),
            ("server", Ev::Close(1000, "done".into())),
            ("client", Ev::Pong(b"are you there".to_vec())),
            ("client", Ev::Close(1000, String::new())),
        ]
    );
    assert_eq!(server.state(), State::Closed);
    assert!(!server.wants_read());
    // The client waits for the server to close TCP first.
    assert!(client.wants_read());
    assert_eq!(client.feed_eof(&mut |_: &Session, _: Event<'_>| {}), Ok(()));
    assert!(!client.wants_read());
}

#[test]
fn streaming_receive_reports_pieces_as_they_arrive() {
    let s = open_server_with(config_with(|c| c.set_max_message_size(100).unwrap()));
    s.set_streaming(true);
    let frame = client_frame(0x01, &[b'a'; 60]);
    let mut events = Vec::new();
    for piece in [
        &frame[..30],
        &frame[30..],
        &client_frame(0x80, b"end"),
        &client_frame(0x82, b"whole"),
    ] {
        events.extend(feed(&s, piece).0);
    }
    assert_eq!(
        events,
        vec![
            Ev::Fragment(MessageKind::Text, vec![b'a'; 24], false),
            Ev::Fragment(MessageKind::Text, vec![b'a'; 36], false),
            Ev::Fragment(MessageKind::Text, b"end".to_vec(), true),
            Ev::Fragment(MessageKind::Binary, b"whole".to_vec(), true),
        ]
    );
    // Limits still apply over the sum of the pieces.
    let bytes = [client_frame(0x02, &[0; 60]), client_frame(0x80, &[0; 41])].concat();
    assert_eq!(feed(&s, &bytes).1, Err(Error::MessageTooBig));
}

#[test]
fn streaming_switches_at_message_boundaries() {
    let s = open_server();
    // A message begun reassembled stays reassembled, and the reverse.
    assert_eq!(feed(&s, &client_frame(0x01, b"ab")).1, Ok(()));
    s.set_streaming(true);
    assert_eq!(feed(&s, &client_frame(0x80, b"cd")).0, vec![Ev::Text("abcd".into())]);
    assert_eq!(feed(&s, &client_frame(0x01, b"ef")).1, Ok(()));
    s.set_streaming(false);
    assert_eq!(
        feed(&s, &client_frame(0x80, b"gh")).0,
        vec![Ev::Fragment(MessageKind::Text, b"gh".to_vec(), true)]
    );
    assert_eq!(feed(&s, &client_frame(0x81, b"ij")).0, vec![Ev::Text("ij".into())]);
}

#[test]
fn plain_http_requests_can_be_answered() {
    for answer in [true, false] {
        let s = server();
        s.set_serve_http(true);
        let mut seen = Vec::new();
        let mut request = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        s.feed(&mut request, &mut |s: &Session, e: Event<'_>| {
            seen.push((Ev::from(e), s.state()));
            if answer {
                s.http_response(200, "text/html", b"<p>hi</p>").unwrap();
            }
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![(Ev::Http("GET".into(), "/index.html".into()), State::HttpRequest)]
        );
        let out = String::from_utf8(s.pending().to_vec()).unwrap();
        if answer {
            assert!(
                out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("\r\n\r\n<p>hi</p>"),
                "{out}"
            );
        } else {
            assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out}");
        }
        assert_eq!(s.state(), State::Closed);
        assert!(!s.wants_read());
        assert_eq!(
            s.http_response(200, "text/plain", b""),
            Err(Error::NotOpen),
            "one response only"
        );
    }
}

#[test]
fn a_malformed_head_cut_across_reads_is_refused_at_eof() {
    let s = server();
    assert_eq!(feed(&s, b"GET /chat HTTP/1.1\r\nHost: example.com\r\nX").1, Ok(()));
    assert_eq!(feed(&s, &[0xff; 8]).1, Ok(()), "no line end yet: not parsed");
    let mut events = Vec::new();
    let result = s.feed_eof(&mut |_: &Session, e: Event<'_>| events.push(Ev::from(e)));
    assert!(matches!(result, Err(Error::Handshake(_))), "{result:?}");
    assert!(String::from_utf8_lossy(&drain(&s)).starts_with("HTTP/1.1 400 "));
}

/// A direct read of the next `n` bytes of `wire` (of at least `min` still to
/// come): `None` when none is offered, else the room offered and the outcome.
fn direct_read(
    s: &Session,
    events: &mut Vec<Ev>,
    wire: &[u8],
    min: usize,
    n: usize,
) -> Option<(usize, std::io::Result<usize>)> {
    let mut room = 0;
    let mut handler = |_: &Session, e: Event<'_>| events.push(Ev::from(e));
    // SAFETY: the closure initializes the bytes it reports (at most the room).
    let result = unsafe {
        s.read_direct(
            min,
            |buf| {
                room = buf.len();
                let take = n.min(buf.len());
                for (slot, byte) in buf.iter_mut().zip(&wire[..take]) {
                    slot.write(*byte);
                }
                Ok(n)
            },
            &mut handler,
        )
    };
    result.map(|r| (room, r))
}

#[test]
fn direct_reads_reassemble_like_feeds_and_never_take_the_next_frame() {
    let text: Vec<u8> = "κόσμε ok ".repeat(20_000).into_bytes(); // multi-byte, ~200 KB
    let wire = [client_frame(0x81, &text), client_frame(0x82, b"next")].concat();
    let first_len = wire.len() - client_frame(0x82, b"next").len();
    for (head, steps) in [
        (100usize, vec![1usize, 7, 65_536, 3]),
        (14, vec![150_000]),
        (5_000, vec![]),
    ] {
        let s = open_server_with(config_with(|c| c.set_max_output(1 << 24).unwrap()));
        let mut events = feed(&s, &wire[..head]).0;
        let mut pos = head;
        for n in steps {
            let (room, result) = direct_read(&s, &mut events, &wire[pos..], 1, n).expect("offered");
            assert!(room >= n, "room {room} for {n} bytes");
            assert_eq!(result.unwrap(), n);
            pos += n;
        }
        // The room ends where the frame ends: the next frame is never read into it.
        let left = first_len - pos;
        let (room, result) = direct_read(&s, &mut events, &wire[pos..], 1, left).expect("frame not complete");
        assert_eq!((room, result.unwrap()), (left, left));
        assert!(
            direct_read(&s, &mut events, &[], 1, 0).is_none(),
            "no frame in progress"
        );
        events.extend(feed(&s, &wire[first_len..]).0);
        assert_eq!(
            events,
            vec![
                Ev::Text(String::from_utf8(text.clone()).unwrap()),
                Ev::Binary(b"next".to_vec())
            ],
            "head {head}"
        );
    }
}

#[test]
fn direct_reads_fail_fast_on_invalid_text_and_refuse_overfills() {
    let mut text = vec![b'a'; 200_000];
    text[150_000] = 0xC0; // an overlong lead byte
    let wire = client_frame(0x81, &text);
    let s = open_server_with(config_with(|c| c.set_max_output(1 << 24).unwrap()));
    let mut events = feed(&s, &wire[..1000]).0;
    assert!(
        direct_read(&s, &mut events, &[], 200_000, 0).is_none(),
        "less than the minimum is to come"
    );
    // A read that claims more than the room offered is refused, and nothing is processed.
    let (room, _) = direct_read(&s, &mut events, &wire[1000..], 1, 0).unwrap();
    let (_, result) = direct_read(&s, &mut events, &wire[1000..], 1, room + 1).unwrap();
    assert_eq!(result.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    let (_, result) = direct_read(&s, &mut events, &wire[1000..], 1, 100_000).unwrap();
    assert_eq!(result.unwrap(), 100_000);
    assert!(events.is_empty());
    let (_, result) = direct_read(&s, &mut events, &wire[101_000..], 1, 60_000).unwrap();
    assert_eq!(result.unwrap(), 60_000);
    assert_eq!(
        events,
        vec![Ev::Error(Error::InvalidUtf8)],
        "fails as the bad byte arrives"
    );
    assert_eq!(close_code_sent(&s.pending()), Some(1007));
    assert!(direct_read(&s, &mut events, &[], 1, 0).is_none());
}

#[test]
fn no_direct_reads_for_streaming_or_control_frames() {
    let s = open_server();
    let mut events = Vec::new();
    assert!(direct_read(&s, &mut events, &[], 1, 0).is_none(), "nothing in progress");
    let ping = client_frame(0x89, &[1; 100]);
    assert_eq!(feed(&s, &ping[..10]).1, Ok(()));
    assert!(direct_read(&s, &mut events, &[], 1, 0).is_none(), "control frame");
    assert_eq!(feed(&s, &ping[10..]).1, Ok(()));
    s.set_streaming(true);
    assert_eq!(feed(&s, &client_frame(0x82, &[0; 100_000])[..50]).1, Ok(()));
    assert!(direct_read(&s, &mut events, &[], 1, 0).is_none(), "streaming");
}

/// A client session's key, from its request.
fn client_key(request: &[u8]) -> String {
    let text = String::from_utf8_lossy(request);
    let line = text.lines().find(|l| l.starts_with("Sec-WebSocket-Key: ")).unwrap();
    line["Sec-WebSocket-Key: ".len()..].to_owned()
}

#[test]
fn a_client_passes_over_interim_answers_and_reports_refusals_cut_anywhere() {
    let config = std::sync::Arc::new(config_with(|c| c.add_header("X-Client", "1").unwrap()));
    let interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n";
    let client = wsconn::Session::client(config.clone(), "h", "/").unwrap();
    let request = drain(&client);
    assert!(String::from_utf8_lossy(&request).contains("\r\nX-Client: 1\r\n"));
    let accept = wsconn::proto::handshake::accept_key(client_key(&request).as_bytes());
    let opened = format!(
        "{interim}HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\nX-Server: yes\r\n\r\n"
    );
    let refused = format!("{interim}HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n\r\n");
    for cut in 0..opened.len() {
        // The same client each time would need its key: a new one per cut.
        let c = wsconn::Session::client(config.clone(), "h", "/").unwrap();
        let key = client_key(&drain(&c));
        let answer = opened.replace(&accept, &wsconn::proto::handshake::accept_key(key.as_bytes()));
        let mut headers = None;
        let mut bytes = answer.into_bytes();
        let (first, second) = bytes.split_at_mut(cut.min(opened.len()));
        for part in [first, second] {
            c.feed(part, &mut |_: &Session, e: Event<'_>| {
                if let Event::Open { headers: h, .. } = e {
                    headers = h.get("x-server", 0).map(<[u8]>::to_vec);
                }
            })
            .unwrap();
        }
        assert_eq!(
            (c.state(), headers.as_deref()),
            (State::Open, Some(&b"yes"[..])),
            "cut at {cut}"
        );
    }
    for cut in 0..refused.len() {
        let c = wsconn::Session::client(config.clone(), "h", "/").unwrap();
        drain(&c);
        let (mut events, first) = feed(&c, &refused.as_bytes()[..cut]);
        let (more, last) = feed(&c, &refused.as_bytes()[cut..]);
        events.extend(more);
        assert_eq!(first, Ok(()), "cut at {cut}");
        assert_eq!(last, Err(Error::Refused(429)), "cut at {cut}");
        assert_eq!(
            events,
            [Ev::Refused(429), Ev::Error(Error::Refused(429))],
            "cut at {cut}"
        );
        assert!(!c.wants_read() && !c.wants_write());
    }
}

//! Hand-made seeds for each target (written to `corpus/TARGET/seed-*` by
//! `cargo run --example make_seeds`): the RFC 6455 examples and typical sessions.

use wsconn::proto::deflate::deflater::Deflater;
use wsconn_testkit::{MASK, REQUEST_WITH_SUBPROTOCOLS, RESPONSE};

/// The targets, in the order `run-ci.sh` runs them.
pub const TARGETS: &[&str] = &[
    "handshake_request",
    "handshake_response",
    "frame_decode",
    "utf8",
    "session_server",
    "session_client",
    "ffi_session",
    "inflate",
    "proxy_header",
];

/// A frame with first byte `b0` and `payload`, masked with the key of RFC 6455
/// §5.7 when `masked`.
fn frame(b0: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    wsconn_testkit::frame(b0, payload, masked.then_some(MASK))
}

/// A session input: flags, limits, chunk lengths, stream (see `session::Params`).
fn session_input(flags: u8, limits: u8, lengths: &[u8], stream: &[u8]) -> Vec<u8> {
    let mut out = vec![flags, limits, lengths.len() as u8];
    out.extend_from_slice(lengths);
    out.extend_from_slice(stream);
    out
}

/// The frames of RFC 6455 §5.7 and a few more, as a client (`masked`) or server sends them.
fn sample_frames(masked: bool) -> Vec<u8> {
    let f = |b0, p: &[u8]| frame(b0, p, masked);
    let mut out = Vec::new();
    out.extend(f(0x81, b"Hello"));
    out.extend(f(0x01, b"Hel"));
    out.extend(f(0x80, b"lo"));
    out.extend(f(0x89, b"Hello"));
    out.extend(f(0x8A, b"Hello"));
    out.extend(f(0x82, &[7; 256]));
    out.extend(f(0x01, "κόσ".as_bytes()));
    out.extend(f(0x89, b"in between"));
    out.extend(f(0x80, "με".as_bytes()));
    out.extend(f(0x82, b""));
    out
}

/// Compressed messages (RSV1 on their first frame): the "Hello" of RFC 7692
/// §7.2.3.1, whole and fragmented, and 1807 bytes of `x` (any window
/// inflates it). Made by hand: cheap under Miri.
fn compressed_frames(masked: bool) -> Vec<u8> {
    let f = |b0, p: &[u8]| frame(b0, p, masked);
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let mut out = f(0xc1, &hello);
    out.extend(f(0x41, &hello[..3]));
    out.extend(f(0x80, &hello[3..]));
    out.extend(f(0xc2, &repeat_bomb(b'x', 1 + 7 * 258)));
    out
}

fn close(code: u16, reason: &str, masked: bool) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    frame(0x88, &payload, masked)
}

/// A raw deflate stream of `len` zero bytes (see [`repeat_bomb`]).
pub fn zero_bomb(len: usize) -> Vec<u8> {
    repeat_bomb(0, len)
}

/// A raw deflate stream of `len` bytes `byte` (`len - 1` rounded down to a
/// multiple of 258, plus one), as small as deflate makes it: one
/// fixed-Huffman block of the literal, then matches of 258 bytes at distance
/// 1 (13 bits each), then the empty stored block of a sync flush without its
/// `00 00 ff ff`. Written by hand, not by the library's compressor.
pub fn repeat_bomb(byte: u8, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    // Bits go LSB first; Huffman codes most significant bit first.
    let mut put = |value: u32, n: u32, huffman: bool, out: &mut Vec<u8>| {
        let v = if huffman {
            value.reverse_bits() >> (32 - n)
        } else {
            value
        };
        acc |= v << bits;
        bits += n;
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    };
    put(0b010, 3, false, &mut out); // not final, fixed Huffman
                                    // Literals 0-143: codes 0x30-0xbf (8 bits); 144-255: 0x190-0x1ff (9).
    match byte {
        0..=143 => put(0x30 + u32::from(byte), 8, true, &mut out),
        _ => put(0x190 + u32::from(byte - 144), 9, true, &mut out),
    }
    for _ in 0..len.saturating_sub(1) / 258 {
        put(0b1100_0101, 8, true, &mut out); // length 258 (code 285)
        put(0, 5, true, &mut out); // distance 1
    }
    put(0, 7, true, &mut out); // end of block (256)
    put(0, 3, false, &mut out); // not final, stored
    if bits > 0 {
        out.push(acc as u8);
    }
    out
}

/// `(name, bytes)` seeds for `target`.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(&str, Vec<u8>)> = Vec::new();
    let with_cap = |lo: u8, hi: u8, flags: u8, body: &[u8]| {
        let mut v = vec![lo, hi, flags];
        v.extend_from_slice(body);
        v
    };
    match target {
        "handshake_request" => {
            // 0x1f40 = 8000: max_handshake_size 8001.
            out.push(("rfc", with_cap(0x40, 0x1f, 0, REQUEST_WITH_SUBPROTOCOLS)));
            out.push(("rfc-subprotocols", with_cap(0x40, 0x1f, 1, REQUEST_WITH_SUBPROTOCOLS)));
            out.push(("rfc-cap-100", with_cap(99, 0, 0, REQUEST_WITH_SUBPROTOCOLS)));
            out.push((
                "plain-get",
                with_cap(0x40, 0x1f, 0, b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"),
            ));
            out.push((
                "post",
                with_cap(0x40, 0x1f, 0, b"POST /form HTTP/1.0\r\nContent-Length: 0\r\n\r\n"),
            ));
            let v8 = String::from_utf8_lossy(REQUEST_WITH_SUBPROTOCOLS).replace("Version: 13", "Version: 8");
            out.push(("version-8", with_cap(0x40, 0x1f, 0, v8.as_bytes())));
            out.push((
                "hixie-76",
                with_cap(
                    0x40,
                    0x1f,
                    0,
                    b"GET /demo HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\nSec-WebSocket-Protocol: sample\r\nUpgrade: WebSocket\r\n\
Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\nOrigin: http://example.com\r\n\r\n^n:ds[4U",
                ),
            ));
            let bare = b"GET / HTTP/1.1\nhost: h\nupgrade: WebSocket\nconnection: keep-alive, Upgrade\n\
sec-websocket-key:   AAAAAAAAAAAAAAAAAAAAAA==  \nsec-websocket-version: 13\n\n";
            out.push(("lf-only", with_cap(0x40, 0x1f, 1, bare)));
        }
        "handshake_response" => {
            out.push(("rfc", with_cap(0x40, 0x1f, 0, RESPONSE)));
            let chat =
                String::from_utf8_lossy(RESPONSE).replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: chat\r\n\r\n");
            out.push(("subprotocol", with_cap(0x40, 0x1f, 1, chat.as_bytes())));
            out.push(("subprotocol-not-offered", with_cap(0x40, 0x1f, 0, chat.as_bytes())));
            out.push(("cap-50", with_cap(49, 0, 0, RESPONSE)));
            out.push((
                "not-101",
                with_cap(0x40, 0x1f, 0, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            ));
            let ext = String::from_utf8_lossy(RESPONSE)
                .replace("\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n");
            out.push(("extension", with_cap(0x40, 0x1f, 0, ext.as_bytes())));
        }
        "frame_decode" => {
            out.push(("text-hello", vec![0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]));
            out.push((
                "masked-hello",
                vec![0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
            ));
            out.push(("fragment-first", vec![0x01, 0x03, 0x48, 0x65, 0x6c]));
            out.push(("fragment-last", vec![0x80, 0x02, 0x6c, 0x6f]));
            out.push(("ping", vec![0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]));
            out.push((
                "masked-pong",
                vec![0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
            ));
            out.push(("binary-256", vec![0x82, 0x7E, 0x01, 0x00]));
            out.push(("binary-64k", vec![0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]));
            out.push(("masked-64bit", vec![0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4]));
            out.push(("non-minimal-16", vec![0x82, 0x7E, 0x00, 0x05]));
            out.push(("close-1000", vec![0x88, 0x02, 0x03, 0xe8]));
        }
        "utf8" => {
            let u = |lengths: &[u8], text: &[u8]| {
                let mut v = vec![lengths.len() as u8];
                v.extend_from_slice(lengths);
                v.extend_from_slice(text);
                v
            };
            out.push(("kosme-whole", u(&[], "κόσμε".as_bytes())));
            out.push(("mixed-bytewise", u(&[1], "Hello-µ@ßöäüàá-UTF-8!! 𝄞 €".as_bytes())));
            out.push((
                "max-code-points",
                u(&[3, 1, 2], "\u{7f}\u{7ff}\u{ffff}\u{10ffff}".as_bytes()),
            ));
            out.push(("surrogate-split", u(&[2, 1], b"ab\xed\xa0\x80cd")));
            out.push(("above-max-split", u(&[1], b"\xf4\x90\x80\x80")));
            out.push(("overlong-split", u(&[1, 0], b"\xe0\x80\xaf")));
            out.push((
                "fail-fast",
                u(
                    &[14, 5],
                    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80hello",
                ),
            ));
            out.push(("truncated-end", u(&[2], b"\xce\xba\xe1\xbd")));
        }
        "session_server" => {
            let mut stream = REQUEST_WITH_SUBPROTOCOLS.to_vec();
            stream.extend(sample_frames(true));
            let mut closing = stream.clone();
            closing.extend(close(1000, "bye", true));
            out.push(("session", session_input(0, 0, &[], &closing)));
            out.push(("session-bytewise", session_input(0, 0, &[1], &closing)));
            out.push(("session-streaming-cut", session_input(1, 0, &[100, 3, 7], &closing)));
            out.push(("session-paused", session_input(4, 0, &[50, 200], &closing)));
            out.push(("session-echo-fragments", session_input(0x60, 0, &[], &closing)));
            out.push(("session-small-limits", session_input(0, 0b1010_1010, &[], &stream)));
            out.push(("session-direct", session_input(0x80, 0, &[90, 230, 5], &closing)));
            out.push(("session-direct-paused", session_input(0x84, 0, &[60, 17], &closing)));
            let mut bad_utf8 = REQUEST_WITH_SUBPROTOCOLS.to_vec();
            bad_utf8.extend(frame(0x01, "κόσμε".as_bytes(), true));
            bad_utf8.extend(frame(0x80, b"\xed\xa0\x80", true));
            out.push(("invalid-utf8", session_input(1, 0, &[], &bad_utf8)));
            let mut bad_close = REQUEST_WITH_SUBPROTOCOLS.to_vec();
            bad_close.extend(close(1005, "", true));
            out.push(("bad-close-code", session_input(0, 0, &[], &bad_close)));
            let mut unmasked = REQUEST_WITH_SUBPROTOCOLS.to_vec();
            unmasked.extend(frame(0x81, b"Hello", false));
            out.push(("unmasked", session_input(0, 0, &[], &unmasked)));
            let plain = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
            out.push(("http-404", session_input(2, 0, &[10], plain)));
            out.push(("http-answered", session_input(0x0A, 0, &[], plain)));
            out.push(("rejected", session_input(0, 0, &[], b"GET / HTTP/1.0\r\n\r\n")));
            // permessage-deflate offered and configured (bits 4-5 of the count
            // byte): compressed messages in, plain echoes out.
            let offer = String::from_utf8_lossy(REQUEST_WITH_SUBPROTOCOLS).replace(
                "\r\n\r\n",
                "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
            );
            let mut deflated = offer.into_bytes();
            deflated.extend(compressed_frames(true));
            deflated.extend(close(1000, "bye", true));
            for (name, bits, lengths) in [
                ("deflate-shared", 0x10, &[][..]),
                ("deflate-dedicated-cut", 0x20, &[9, 1]),
            ] {
                let mut input = session_input(1, 0, lengths, &deflated);
                input[2] |= bits;
                out.push((name, input));
            }
        }
        "session_client" => {
            let mut stream = sample_frames(false);
            let mut closing = stream.clone();
            closing.extend(close(1001, "going", false));
            out.push(("session", session_input(0, 0, &[], &closing)));
            out.push(("session-bytewise", session_input(0, 0, &[1], &closing)));
            out.push(("session-streaming-paused", session_input(5, 0, &[130, 9], &closing)));
            out.push(("session-echo-fragments", session_input(0x20, 0, &[], &closing)));
            out.push(("session-direct", session_input(0x80, 0, &[40, 3, 251], &closing)));
            out.push(("session-small-limits", session_input(0, 0b1110_1010, &[], &stream)));
            stream.extend(frame(0x81, b"masked", true));
            out.push(("masked-from-server", session_input(0, 0, &[], &stream)));
            out.push(("close-no-status", session_input(0, 0, &[], &frame(0x88, b"", false))));
            // Bit 4: no 101 is put first; the stream brings a response of its own
            // (refused: its accept value cannot match the client's random key).
            out.push(("own-response", session_input(0x10, 0, &[], RESPONSE)));
            // permessage-deflate (9-bit windows): the harness's 101 agrees.
            let mut deflated = compressed_frames(false);
            deflated.extend(close(1000, "", false));
            let mut input = session_input(0, 0, &[], &deflated);
            input[2] |= 0x30;
            out.push(("deflate-dedicated-9", input));
        }
        "ffi_session" => {
            // One options byte (bit 0 client, bit 1 free in the callback of event
            // 1 + bits 2-4, bit 5 drain half after each feed), then a session input.
            let pick = |target: &str, name: &str| {
                seeds(target)
                    .into_iter()
                    .find(|(n, _)| n == &format!("seed-{name}"))
                    .expect("seed")
                    .1
            };
            let with = |options: u8, input: Vec<u8>| {
                let mut v = vec![options];
                v.extend(input);
                v
            };
            out.push(("server", with(0, pick("session_server", "session"))));
            out.push((
                "server-bytewise-drain",
                with(0x20, pick("session_server", "session-bytewise")),
            ));
            out.push((
                "server-free-at-3",
                with(0x02 | 2 << 2, pick("session_server", "session")),
            ));
            out.push((
                "server-echo-fragments",
                with(0, pick("session_server", "session-echo-fragments")),
            ));
            out.push((
                "server-invalid-utf8",
                with(0x20, pick("session_server", "invalid-utf8")),
            ));
            out.push(("server-rejected", with(0, pick("session_server", "rejected"))));
            out.push(("client", with(1, pick("session_client", "session"))));
            out.push((
                "client-free-at-close",
                with(0x03 | 7 << 2, pick("session_client", "session")),
            ));
            out.push((
                "client-small-limits",
                with(0x21, pick("session_client", "session-small-limits")),
            ));
            // Found by the fuzzer: a callback's refused feed reset the "feeding"
            // flag, so a free later in the same feed freed the session at once
            // (use after free in the outer feed). Replayed under Miri.
            out.push((
                "client-free-after-refused-feed",
                vec![
                    0x1f, 0x00, 0x00, 0x00, 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x01, 0x03, 0x48, 0x65, 0x6c,
                    0x80, 0x02, 0x6c, 0x6f, 0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x8a, 0x05, 0x48, 0x1f, 0x00,
                    0x00, 0x00, 0x81, 0x05, 0x48, 0x65, 0x6e, 0x6c, 0x6f, 0x01, 0x03, 0x48, 0x6c, 0x6f, 0x8a, 0x05,
                    0x05, 0x48, 0x65, 0x6c, 0x6f, 0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x00, 0x00, 0xff, 0xff, 0xff,
                    0x67,
                ],
            ));
        }
        "proxy_header" => {
            let v2_ipv4 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x07\x7f\x00\x00\x01\x9c\x40\x00\x50";
            let v2_local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";
            let lines: [(&str, &[u8]); 6] = [
                (
                    "v1-tcp4",
                    b"PROXY TCP4 192.0.2.7 127.0.0.1 56324 9998\r\nGET / HTTP/1.1\r\n",
                ),
                ("v1-tcp6", b"PROXY TCP6 2001:db8::1 ::1 4000 443\r\n\x16\x03\x01"),
                ("v1-unknown", b"PROXY UNKNOWN\r\n"),
                ("v2-ipv4", v2_ipv4),
                ("v2-local", v2_local),
                ("not-proxy", b"GET / HTTP/1.1\r\n\r\n"),
            ];
            for (name, bytes) in lines {
                out.push((name, bytes.to_vec()));
            }
        }
        "inflate" => {
            // See `inflate`: mode, offer, windows, chunk lengths, body.
            let input = |mode: u8, offer: u8, windows: u8, lengths: &[u8], body: &[u8]| {
                let mut v = vec![mode, offer, windows, lengths.len() as u8];
                v.extend_from_slice(lengths);
                v.extend_from_slice(body);
                v
            };
            let masked = |b0: u8, payload: &[u8]| frame(b0, payload, true);
            let packed = |data: &[u8]| {
                let mut out = Vec::new();
                Deflater::compress_alone(15, 9, 8, data, &mut out);
                out
            };
            // RFC 7692 §7.2.3.1: "Hello" compressed, RSV1 on a text frame.
            let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
            let mut wire = masked(0xc1, &hello);
            wire.extend(masked(0xc2, &packed(&[7; 300])));
            wire.extend(close(1000, "", true));
            out.push(("shared-hello", input(0x20, 0, 0, &[], &wire)));
            out.push(("shared-hello-bytewise", input(0x30, 0x0f, 0x44, &[1], &wire)));
            // Fragmented: RSV1 on the first frame only, a ping in between.
            let text = "κόσμε, the same words again and again, κόσμε".repeat(20);
            let p = packed(text.as_bytes());
            let (a, b) = p.split_at(p.len() / 3);
            let mut frags = masked(0x41, a);
            frags.extend(masked(0x89, b"ping"));
            frags.extend(masked(0x00, &b[..b.len() / 2]));
            frags.extend(masked(0x80, &b[b.len() / 2..]));
            out.push(("fragmented", input(0, 0x03, 0, &[], &frags)));
            out.push(("fragmented-streaming", input(0x10, 0, 0, &[5, 64], &frags)));
            // A bomb: 1 MiB of zeros in 6 KiB; the limit is 64 KiB.
            let bomb = masked(0xc2, &zero_bomb(1 << 20));
            out.push(("bomb", input(0, 0, 0, &[], &bomb)));
            out.push(("bomb-streaming-dedicated", input(0x1f, 0, 0, &[200], &bomb)));
            // RSV1 where it does not belong: a ping, a continuation.
            out.push(("rsv1-ping", input(0, 0, 0, &[], &masked(0xc9, &hello))));
            let mut cont = masked(0x01, b"He");
            cont.extend(masked(0xc0, b"llo"));
            out.push(("rsv1-continuation", input(0, 0, 0, &[], &cont)));
            // RSV1 on a connection without the extension (the offer is
            // invalid: server_max_window_bits=16).
            out.push(("rsv1-declined", input(0, 0x04, 0x09, &[], &masked(0xc1, &hello))));
            // A final stored block; then one with more data after it; then
            // an invalid block type.
            let stored = [0x01, 0x05, 0x00, 0xfa, 0xff, b'H', b'e', b'l', b'l', b'o'];
            let mut fin = masked(0xc1, &stored);
            fin.extend(masked(0xc1, &[&stored[..], &[0x00]].concat()));
            out.push(("final-block", input(0x20, 0, 0, &[], &fin)));
            out.push((
                "invalid-block-type",
                input(0, 0, 0, &[], &masked(0xc1, &[0x07, 0xff, 0xff])),
            ));
            // Invalid UTF-8, compressed.
            out.push((
                "invalid-utf8",
                input(0, 0, 0, &[], &masked(0xc1, &packed(b"ok \xed\xa0\x80"))),
            ));
            // Context takeover (dedicated, 15 bits): the second message refers
            // back into the first.
            let mut own = Deflater::new(15, 6, 8);
            let mut takeover = Vec::new();
            for _ in 0..3 {
                let mut p = Vec::new();
                own.compress(text.as_bytes(), &mut p);
                takeover.extend(masked(0xc1, &p));
            }
            out.push(("dedicated-15-takeover", input(0x2f, 0, 0, &[], &takeover)));
            // Dedicated, 9-bit windows, offered by the client too.
            out.push(("dedicated-9-offer", input(0x23, 0x1c, 0x11, &[], &wire)));
            // Plain bodies, compressed by the harness as agreed.
            let plain = |flags: u8, data: &[u8]| {
                let mut v = vec![flags];
                v.extend_from_slice(&(data.len() as u16).to_le_bytes());
                v.extend_from_slice(data);
                v
            };
            let mut body = plain(0, text.as_bytes());
            body.extend(plain(0x0e, text.as_bytes()));
            body.extend(plain(0x01, &[3; 5000]));
            body.extend(plain(0x10, b"uncompressed"));
            body.extend(plain(0x02, b""));
            out.push(("plain-shared", input(0x40, 0, 0, &[], &body)));
            out.push(("plain-dedicated-takeover", input(0x7b, 0x08, 0, &[17, 3], &body)));
            let mut bad = body.clone();
            bad.extend(plain(0x04, b"\xce\xba\xe1"));
            out.push(("plain-invalid-utf8", input(0x43, 0x18, 0x11, &[], &bad)));
            out.push(("plain-window-8", input(0x41, 0, 0, &[], &plain(0x07, &[0x61; 5000]))));
        }
        _ => panic!("unknown target {target}"),
    }
    out.into_iter()
        .map(|(name, bytes)| (format!("seed-{name}"), bytes))
        .collect()
}

//! Frame codec benchmarks: wsconn against tungstenite and fastwebsockets, with a
//! memcpy of the same size as the physical reference.
//!
//! For each payload size (16 B, 1 KiB, 64 KiB, 1 MiB) and kind (text: JSON-like
//! with some 2-byte characters; binary; and, for decode, pure ASCII text too):
//!
//! decode (server side: a masked client frame in, the payload out):
//!   memcpy          copy of the payload size (the reference)
//!   wsconn_core     wsconn::proto::frame::FrameHeader::decode + wsconn::proto::mask::apply_mask
//!                   + (text) wsconn::proto::utf8::Utf8Validator::validate_complete, in place
//!   wsconn_session  copy of the frame into the read buffer (what read(2) does) +
//!                   wsconn::Session::feed (server role), the message event handled
//!   tungstenite     tungstenite::WebSocket::read (server role) over an in-memory
//!                   stream: its codec copies the frame into its buffer, parses the
//!                   header, unmasks, and for text checks UTF-8 with std::str::from_utf8
//!   fastws_core     fastwebsockets::Frame::unmask (fastwebsockets::unmask inside)
//!                   + (text) Frame::is_utf8 (simdutf8), in place; its header parser
//!                   is private, so no header parsing here
//!   fastwebsockets  fastwebsockets::WebSocket::read_frame (server role) over an
//!                   in-memory stream: copy into its buffer, header, unmask, UTF-8
//!
//! encode (client side: a payload in, a masked frame out):
//!   memcpy          copy of the payload size
//!   wsconn_core     fresh key (wsconn::proto::random::mask_key) + FrameHeader::encode +
//!                   copy of the payload into the output buffer + apply_mask
//!   wsconn_session  wsconn::Session (client) send + consume: the above plus,
//!                   for text, the UTF-8 check `send` does on bytes of unknown
//!                   validity
//!   tungstenite     tungstenite::WebSocket::send (client role) into a sink that
//!                   drops the bytes: random key, header, copy, mask, flush
//!   fastwebsockets  what fastwebsockets' WriteHalf does before its syscall: random
//!                   key, mask the caller's payload in place (Frame::mask), then
//!                   above 1 KiB only the header (it writes with writev, no copy),
//!                   else Frame::write (header + copy into its write buffer)
//!
//! The in-place decoders run on one buffer again and again: unmasking a second
//! time masks again, and the text key (wsconn_bench::TEXT_KEY) keeps both states
//! valid UTF-8, so every pass does the full work on cache-resident data, as a
//! decoder does on bytes read(2) just wrote.
//!
//! Run: `cargo bench --bench codec` in benches/ (add criterion options after
//! `--`, e.g. `-- --measurement-time 1`); `python3 codec_table.py` prints the table.

use std::hint::black_box;
use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput};

use wsconn::proto::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use wsconn::proto::mask::apply_mask;
use wsconn::proto::utf8::Utf8Validator;
use wsconn::{Config, Event, MessageKind, Session};
use wsconn_bench::{ascii_payload, payload, BINARY_KEY, TEXT_KEY};
use wsconn_testkit::{frame, upgrade_request, FIN, OP_BINARY, OP_TEXT};

const SIZES: [usize; 4] = [16, 1 << 10, 64 << 10, 1 << 20];

/// An endless stream of the same bytes (a peer sending one frame over and over);
/// writes are accepted and dropped.
struct Repeat {
    data: Vec<u8>,
    pos: usize,
}

impl Repeat {
    fn new(data: Vec<u8>) -> Self {
        Repeat { data, pos: 0 }
    }

    fn fill(&mut self, out: &mut [u8]) -> usize {
        if self.data.is_empty() {
            return 0;
        }
        let mut n = 0;
        while n < out.len() {
            let take = (out.len() - n).min(self.data.len() - self.pos);
            out[n..n + take].copy_from_slice(&self.data[self.pos..self.pos + take]);
            n += take;
            self.pos = (self.pos + take) % self.data.len();
        }
        n
    }
}

impl Read for Repeat {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Ok(self.fill(buf))
    }
}

impl Write for Repeat {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        black_box(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl tokio::io::AsyncRead for Repeat {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let n = this.fill(buf.initialize_unfilled());
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Repeat {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        black_box(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Runs a future that never waits (in-memory streams are always ready).
fn run_ready<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("in-memory future returned Pending"),
    }
}

#[derive(Clone, Copy)]
struct Case {
    binary: bool,
    /// Text that is pure ASCII (else JSON-like text with some 2-byte characters).
    ascii: bool,
    size: usize,
}

impl Case {
    fn key(self) -> [u8; 4] {
        if self.binary {
            BINARY_KEY
        } else {
            TEXT_KEY
        }
    }
    fn opcode(self) -> u8 {
        if self.binary {
            OP_BINARY
        } else {
            OP_TEXT
        }
    }
    fn kind(self) -> MessageKind {
        if self.binary {
            MessageKind::Binary
        } else {
            MessageKind::Text
        }
    }
    fn payload(self) -> Vec<u8> {
        if self.ascii {
            ascii_payload(self.size, 0)
        } else {
            payload(self.binary, self.size, 0)
        }
    }
    fn wire(self) -> Vec<u8> {
        frame(FIN | self.opcode(), &self.payload(), Some(self.key()))
    }
}

/// Records whether the session opened.
fn note_open(opened: &mut bool) -> impl FnMut(&Session, Event<'_>) + '_ {
    |_, ev| *opened |= matches!(ev, Event::Open { .. })
}

/// A server session past its opening handshake.
fn open_server() -> Session {
    let mut config = Config::default();
    config.set_max_frame_size(64 << 20).unwrap();
    config.set_max_message_size(64 << 20).unwrap();
    config.set_max_output(64 << 20).unwrap();
    let server = Session::server(Arc::new(config));
    let mut req = upgrade_request("127.0.0.1", "/");
    let mut opened = false;
    server.feed(&mut req, &mut note_open(&mut opened)).expect("handshake");
    assert!(opened, "server session did not open");
    server.consume(server.buffered()).unwrap();
    server
}

/// A client session past its opening handshake.
fn open_client() -> Session {
    let mut config = Config::default();
    config.set_max_output(64 << 20).unwrap();
    let config = Arc::new(config);
    let client = Session::client(config.clone(), "127.0.0.1", "/").expect("client");
    let server = Session::server(config);
    let mut req = client.pending().to_vec();
    client.consume(req.len()).unwrap();
    server.feed(&mut req, &mut |_: &Session, _: Event<'_>| {}).unwrap();
    let mut resp = server.pending().to_vec();
    let mut opened = false;
    client.feed(&mut resp, &mut note_open(&mut opened)).unwrap();
    assert!(opened, "client session did not open");
    client
}

fn decode(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, case: Case) {
    let size = case.size;
    let text = !case.binary;
    let wire = case.wire();
    let expected = case.payload();

    g.bench_with_input(BenchmarkId::new("memcpy", size), &size, |b, _| {
        let src = expected.clone();
        let mut dst = vec![0u8; size];
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        })
    });

    g.bench_with_input(BenchmarkId::new("wsconn_core", size), &size, |b, _| {
        let mut buf = wire.clone();
        b.iter(|| {
            let buf = black_box(&mut buf[..]);
            let (h, n) = FrameHeader::decode(buf).unwrap().expect("whole header");
            let payload = &mut buf[n..n + h.payload_len as usize];
            apply_mask(payload, h.mask.expect("masked"), 0);
            if text {
                assert!(Utf8Validator::validate_complete(payload).is_ok());
            }
            black_box(payload);
        });
        // An even number of passes leaves the frame masked; either way it must
        // be one of the two states.
        let n = wire.len() - size;
        assert!(buf[n..] == wire[n..] || buf[n..] == expected[..]);
    });

    g.bench_with_input(BenchmarkId::new("wsconn_session", size), &size, |b, _| {
        let session = open_server();
        let mut buf = vec![0u8; wire.len()];
        let mut messages = 0u64;
        b.iter(|| {
            buf.copy_from_slice(black_box(&wire));
            session
                .feed(&mut buf, &mut |_: &Session, ev: Event<'_>| {
                    if let Event::Message(message) = ev {
                        black_box(message.as_bytes());
                        messages += 1;
                    }
                })
                .unwrap();
        });
        assert!(messages > 0);
        assert_eq!(session.buffered(), 0, "the session queued output");
    });

    g.bench_with_input(BenchmarkId::new("tungstenite", size), &size, |b, _| {
        use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
        let config = WebSocketConfig::default()
            .max_message_size(Some(64 << 20))
            .max_frame_size(Some(64 << 20));
        let mut ws = WebSocket::from_raw_socket(Repeat::new(wire.clone()), Role::Server, Some(config));
        b.iter(|| {
            let msg = ws.read().expect("message");
            assert_eq!(msg.len(), size);
            black_box(msg);
        });
    });

    g.bench_with_input(BenchmarkId::new("fastws_core", size), &size, |b, _| {
        use fastwebsockets::{Frame, OpCode, Payload};
        let mut buf = wire.clone();
        let n = wire.len() - size;
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        b.iter(|| {
            let payload = black_box(&mut buf[n..]);
            let mut frame = Frame::new(true, opcode, Some(case.key()), Payload::BorrowedMut(payload));
            frame.unmask();
            if text {
                assert!(frame.is_utf8());
            }
            black_box(&frame.payload[..]);
        });
    });

    g.bench_with_input(BenchmarkId::new("fastwebsockets", size), &size, |b, _| {
        use fastwebsockets::{Role, WebSocket};
        let mut ws = WebSocket::after_handshake(Repeat::new(wire.clone()), Role::Server);
        ws.set_max_message_size(64 << 20);
        b.iter(|| {
            let frame = run_ready(ws.read_frame()).expect("frame");
            assert_eq!(frame.payload.len(), size);
            black_box(&frame.payload[..]);
        });
    });
}

fn encode(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, case: Case) {
    let size = case.size;
    let text = !case.binary;
    let data = case.payload();

    g.bench_with_input(BenchmarkId::new("memcpy", size), &size, |b, _| {
        let mut dst = vec![0u8; size];
        b.iter(|| {
            dst.copy_from_slice(black_box(&data));
            black_box(&mut dst);
        })
    });

    g.bench_with_input(BenchmarkId::new("wsconn_core", size), &size, |b, _| {
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        let mut out: Vec<u8> = Vec::with_capacity(size + MAX_HEADER_LEN);
        b.iter(|| {
            let data = black_box(&data[..]);
            let key = wsconn::proto::random::mask_key();
            let header = FrameHeader {
                fin: true,
                rsv: 0,
                opcode,
                mask: Some(key),
                payload_len: data.len() as u64,
            };
            let mut head = [0u8; MAX_HEADER_LEN];
            let h = header.encode(&mut head);
            out.clear();
            out.extend_from_slice(&head[..h]);
            out.extend_from_slice(data);
            apply_mask(&mut out[h..], key, 0);
            black_box(&out);
        });
    });

    g.bench_with_input(BenchmarkId::new("wsconn_session", size), &size, |b, _| {
        let client = open_client();
        let kind = case.kind();
        b.iter(|| {
            client.send(kind, black_box(&data)).unwrap();
            let n = black_box(&*client.pending()).len();
            client.consume(n).unwrap();
        });
    });

    g.bench_with_input(BenchmarkId::new("tungstenite", size), &size, |b, _| {
        use tungstenite::protocol::{Role, WebSocket};
        use tungstenite::{Bytes, Message, Utf8Bytes};
        let mut ws = WebSocket::from_raw_socket(Repeat::new(Vec::new()), Role::Client, None);
        let bytes = Bytes::from(data.clone());
        let utf8 = text.then(|| Utf8Bytes::try_from(bytes.clone()).expect("text payload"));
        b.iter(|| {
            let msg = match &utf8 {
                Some(utf8) => Message::Text(utf8.clone()),
                None => Message::Binary(bytes.clone()),
            };
            ws.send(msg).expect("send");
        });
    });

    g.bench_with_input(BenchmarkId::new("fastwebsockets", size), &size, |b, _| {
        use fastwebsockets::{Frame, OpCode, Payload};
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        // The caller's own payload buffer, masked in place as fastwebsockets does.
        let mut work = data.clone();
        let mut write_buffer: Vec<u8> = Vec::with_capacity(2);
        b.iter(|| {
            let mut frame = Frame::new(true, opcode, None, Payload::BorrowedMut(black_box(&mut work[..])));
            frame.mask();
            if size > 1024 {
                let mut head = [0u8; 16];
                let h = frame.fmt_head(&mut head);
                black_box(&head[..h]);
                black_box(&frame.payload[..]);
            } else {
                black_box(frame.write(&mut write_buffer));
            }
        });
    });
}

fn codec(c: &mut Criterion) {
    // decode_ascii: the same text benchmarks on pure ASCII, where UTF-8
    // validators take their fast path.
    let groups = [
        ("decode", "text"),
        ("decode", "ascii"),
        ("decode", "binary"),
        ("encode", "text"),
        ("encode", "binary"),
    ];
    for (op, kind) in groups {
        let (binary, ascii) = (kind == "binary", kind == "ascii");
        let mut g = c.benchmark_group(format!("{op}_{kind}"));
        for size in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let case = Case { binary, ascii, size };
            if op == "decode" {
                decode(&mut g, case);
            } else {
                encode(&mut g, case);
            }
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    // Short defaults so the whole suite stays around two minutes; criterion's
    // command-line options (--measurement-time, --warm-up-time, --sample-size,
    // --nresamples)
    // override them.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(700))
        .sample_size(30)
        .nresamples(10_000)
        .without_plots();
    targets = codec
}
criterion_main!(benches);

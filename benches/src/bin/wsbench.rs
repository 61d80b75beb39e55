//! wsbench: a WebSocket load generator for echo servers on this machine.
//!
//! One thread, event-driven (mio, edge-triggered epoll). Client frames are
//! encoded and masked once at start; sending a message queues a reference to a
//! pre-encoded frame, written with writev. Every echo is parsed (FIN, opcode,
//! length, no mask) and its payload compared byte for byte with what was sent,
//! in order; fragmented echoes are accepted. It talks only to 127.0.0.0/8 and
//! stops by itself: every phase has a deadline.
//!
//! Modes (each prints one JSON line on stdout; exit status 1 on any error):
//!
//!   wsbench echo --port P [--conns C] [--inflight N] [--size S] [--binary]
//!                [--seconds T] [--warmup W] [--pid SERVER_PID]
//!       C connections each keep N messages of S bytes in flight for W + T
//!       seconds; messages echoed during the last T seconds are counted.
//!       Reports messages/s, MB/s (payload, one way) and latency p50/p99/p99.9
//!       (from each message's send time to its echo's arrival).
//!   wsbench connect --port P [--conns C] [--seconds T] [--pid SERVER_PID]
//!       C concurrent clients loop over: TCP connect, opening handshake, close
//!       frame, the server's close frame, close. Reports cycles per second.
//!   wsbench idle --port P --conns N --pid SERVER_PID [--settle-ms M] [--size S]
//!       Opens N connections (handshake done), reads the server's VmRSS from
//!       /proc/PID/status before and after, reports the growth per connection,
//!       then sends one message on every connection and checks every echo (and
//!       reads VmRSS again).
//!
//! Common options: --host 127.0.0.1 (any 127.x.y.z), --path /, --label NAME
//! (copied into the JSON), --deflate (offer permessage-deflate, RFC 7692, as
//! `permessage-deflate; client_max_window_bits`; the server must accept it.
//! Every message is sent compressed, each on its own (a fresh stream, which
//! every agreement allows) with the client window the server allows, and
//! echoes with RSV1 are inflated, with the server's context kept unless it
//! agreed to server_no_context_takeover, before they are compared), --tls CA_FILE
//! (wss://: TLS over every connection, rustls trusting the PEM certificates of
//! CA_FILE, a full handshake each time, the chain and the server's signature
//! checked on the first handshake with each certificate; each connect cycle
//! then includes the TLS handshake). The JSON gives the generator's CPU use during the
//! measured window (client_cpu_util, 1.0 = one core), and the server's
//! (server_cpu_util) when --pid is given: the side near 1.0 is the limit.

use std::collections::VecDeque;
use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use wsconn_bench::cpu::{cpu_seconds, process_cpu_seconds};
use wsconn_bench::deflate::{self, Agreed, Inflater};
use wsconn_bench::tls::{TlsClient, Transport};
use wsconn_bench::{accept_key, payload};
use wsconn_testkit::{frame, upgrade_request, FIN, KEY, OP_BINARY, OP_CLOSE, OP_PONG, OP_TEXT};

/// Distinct payloads sent in turn on a connection, so that an echo delivered
/// out of order, twice or to the wrong connection does not compare equal.
const VARIANTS: usize = 8;
/// Connections opening (TCP connect or handshake) at once.
const MAX_OPENING: usize = 128;
/// The shared read buffer.
const READ_BUF: usize = 256 << 10;
/// Latency samples kept (beyond that, messages are counted but not timed).
const MAX_SAMPLES: usize = 40_000_000;
const MAX_IOV: usize = 64;
/// Frames up to this length are written from `Plan::run`.
const RUN_FRAME_MAX: usize = 1024;
/// Messages in `Plan::run` (a multiple of VARIANTS).
const RUN_MESSAGES: usize = 8 * VARIANTS;
/// permessage-deflate's bit in the first byte of a frame.
const RSV1: u8 = 0x40;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Echo,
    Connect,
    Idle,
}

struct Args {
    mode: Mode,
    host: Ipv4Addr,
    port: u16,
    path: String,
    conns: usize,
    inflight: usize,
    size: usize,
    binary: bool,
    deflate: bool,
    /// wss://: the CA file to trust.
    tls: Option<String>,
    seconds: f64,
    warmup: Option<f64>,
    pid: Option<u32>,
    settle_ms: u64,
    label: String,
}

fn usage(msg: &str) -> ! {
    eprintln!("wsbench: {msg}");
    eprintln!(
        "usage: wsbench echo --port P [--conns C] [--inflight N] [--size S] [--binary] [--seconds T] [--warmup W]\n\
         \x20      wsbench connect --port P [--conns C] [--seconds T]\n\
         \x20      wsbench idle --port P --conns N --pid SERVER_PID [--settle-ms M]\n\
         common: [--host 127.x.y.z] [--path /] [--label NAME] [--pid SERVER_PID] [--deflate] [--tls CA_FILE]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let mode = match it.next().as_deref() {
        Some("echo") => Mode::Echo,
        Some("connect") => Mode::Connect,
        Some("idle") => Mode::Idle,
        Some("-h" | "--help") => usage("help"),
        _ => usage("the first argument is the mode: echo, connect or idle"),
    };
    let mut a = Args {
        mode,
        host: Ipv4Addr::LOCALHOST,
        port: 0,
        path: "/".into(),
        conns: if mode == Mode::Connect { 8 } else { 1 },
        inflight: 1,
        size: 32,
        binary: false,
        deflate: false,
        tls: None,
        seconds: 3.0,
        warmup: None,
        pid: None,
        settle_ms: 500,
        label: String::new(),
    };
    fn num<T: std::str::FromStr>(name: &str, v: Option<String>) -> T {
        v.and_then(|s| s.parse().ok())
            .unwrap_or_else(|| usage(&format!("{name} needs a number")))
    }
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--host" => {
                let h = it.next().unwrap_or_default();
                a.host = if h == "localhost" {
                    Ipv4Addr::LOCALHOST
                } else {
                    h.parse().unwrap_or_else(|_| usage("--host needs an IPv4 address"))
                };
            }
            "--port" => a.port = num("--port", it.next()),
            "--path" => a.path = it.next().unwrap_or_else(|| usage("--path needs a value")),
            "--conns" => a.conns = num("--conns", it.next()),
            "--inflight" => a.inflight = num("--inflight", it.next()),
            "--size" => a.size = num("--size", it.next()),
            "--binary" => a.binary = true,
            "--deflate" => a.deflate = true,
            "--tls" => a.tls = Some(it.next().unwrap_or_else(|| usage("--tls needs a CA file"))),
            "--seconds" => a.seconds = num("--seconds", it.next()),
            "--warmup" => a.warmup = Some(num("--warmup", it.next())),
            "--pid" => a.pid = Some(num("--pid", it.next())),
            "--settle-ms" => a.settle_ms = num("--settle-ms", it.next()),
            "--label" => a.label = it.next().unwrap_or_default(),
            other => usage(&format!("unknown option {other}")),
        }
    }
    // The only targets allowed: this machine's loopback range.
    if a.host.octets()[0] != 127 {
        usage("only 127.0.0.0/8 targets are allowed");
    }
    if a.port == 0 {
        usage("--port is required");
    }
    if a.conns == 0 || a.inflight == 0 || !(a.seconds > 0.0 && a.seconds <= 3600.0) {
        usage("--conns and --inflight must be > 0, --seconds in (0, 3600]");
    }
    if a.size > 64 << 20 {
        usage("--size is at most 64 MiB");
    }
    if a.mode == Mode::Idle && a.pid.is_none() {
        usage("idle needs --pid SERVER_PID");
    }
    if !a.path.starts_with('/') {
        usage("--path starts with /");
    }
    a
}

/// The frames one run sends, encoded once.
struct Plan {
    opcode: u8,
    size: usize,
    /// Masked client frames, one per variant.
    frames: Vec<Vec<u8>>,
    /// Their payloads, as the echo must carry them.
    payloads: Vec<Vec<u8>>,
    /// For small frames: the frames of variants 0, 1, … in a row, cycled
    /// RUN_MESSAGES times, so that any run of consecutive messages is one
    /// contiguous slice (one copy in the kernel instead of one per iovec).
    /// Empty for large frames.
    run: Vec<u8>,
    request: Vec<u8>,
    accept: String,
    close_frame: Vec<u8>,
    /// --deflate: permessage-deflate is offered.
    deflate: bool,
    /// What the first server answer agreed to (every answer must agree the
    /// same): the frames are compressed for it.
    agreed: Option<Agreed>,
}

impl Plan {
    fn new(a: &Args) -> Plan {
        let payloads: Vec<Vec<u8>> = (0..VARIANTS).map(|v| payload(a.binary, a.size, v)).collect();
        let opcode = if a.binary { OP_BINARY } else { OP_TEXT };
        let frames = payloads
            .iter()
            .enumerate()
            .map(|(v, p)| {
                frame(
                    FIN | opcode,
                    p,
                    Some([0xa5 ^ v as u8, 0x3c, 0x5a, 0xc3 ^ (v as u8) << 3]),
                )
            })
            .collect::<Vec<Vec<u8>>>();
        // All frames have the same length (same size, same header form).
        let run = if frames[0].len() <= RUN_FRAME_MAX {
            (0..RUN_MESSAGES)
                .flat_map(|i| frames[i % VARIANTS].iter().copied())
                .collect()
        } else {
            Vec::new()
        };
        let mut request = upgrade_request(&format!("{}:{}", a.host, a.port), &a.path);
        if a.deflate {
            request.truncate(request.len() - 2);
            request.extend_from_slice(format!("Sec-WebSocket-Extensions: {}\r\n\r\n", deflate::OFFER).as_bytes());
        }
        Plan {
            opcode,
            size: a.size,
            frames,
            payloads,
            run,
            request,
            accept: accept_key(KEY),
            close_frame: frame(FIN | OP_CLOSE, &1000u16.to_be_bytes(), Some([1, 2, 3, 4])),
            deflate: a.deflate,
            agreed: None,
        }
    }

    /// Takes a server's permessage-deflate answer: the first one makes the
    /// frames compressed messages (RSV1, each compressed on its own within
    /// the client window agreed); later ones must agree the same.
    fn agree(&mut self, answer: Option<&str>) -> Result<(), String> {
        let agreed = match (self.deflate, answer) {
            (false, None) => return Ok(()),
            (false, Some(a)) => return Err(format!("an extension was not offered but answered: {a:?}")),
            (true, None) => return Err("the server declined permessage-deflate".into()),
            (true, Some(a)) => deflate::parse_answer(a)?,
        };
        match self.agreed {
            Some(first) if first == agreed => return Ok(()),
            Some(first) => return Err(format!("deflate agreements differ: {first:?}, then {agreed:?}")),
            None => {}
        }
        self.frames = self
            .payloads
            .iter()
            .enumerate()
            .map(|(v, p)| {
                let packed = deflate::compress_alone(p, agreed.client_max_window_bits)?;
                let mask = [0xa5 ^ v as u8, 0x3c, 0x5a, 0xc3 ^ (v as u8) << 3];
                Ok(frame(FIN | RSV1 | self.opcode, &packed, Some(mask)))
            })
            .collect::<Result<_, String>>()?;
        // Compressed frames differ in length: no contiguous run.
        self.run = Vec::new();
        self.agreed = Some(agreed);
        Ok(())
    }

    fn variant(conn_id: usize, msg: u64) -> usize {
        (conn_id + msg as usize) % VARIANTS
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Connecting,
    Handshake,
    Open,
    /// Our close frame is queued or sent; waiting for the server's.
    Closing,
}

/// Incremental parser of the server's frames.
#[derive(Default)]
struct Rx {
    hdr: [u8; 14],
    hdr_len: usize,
    /// Payload bytes left in the current frame (Some while inside a payload).
    left: Option<u64>,
    op: u8,
    fin: bool,
    /// Inside a data message (first frame seen, FIN not yet).
    in_msg: bool,
    /// Payload bytes of the current message received so far.
    off: usize,
    ctrl: Vec<u8>,
    /// The current message has RSV1: its payload is collected in `packed`
    /// and inflated at its end.
    compressed: bool,
    packed: Vec<u8>,
}

/// What a chunk of input produced.
#[derive(Default)]
struct RxOut {
    messages: u64,
    /// Of which compressed (RSV1).
    compressed: u64,
    close: Option<u16>,
    pings: Vec<Vec<u8>>,
}

struct Conn {
    sock: Transport,
    id: usize,
    phase: Phase,
    opened_ns: u64,
    /// Handshake request, close frame, pongs.
    raw: Vec<u8>,
    raw_pos: usize,
    hs_in: Vec<u8>,
    /// Messages queued so far (the next one's index).
    next_msg: u64,
    /// Messages queued and not yet completely written: [next_msg - queued, next_msg).
    queued: u64,
    /// Bytes of the oldest queued message already written.
    first_off: usize,
    /// Echoes received (the index of the message being received).
    rx_msg: u64,
    rx: Rx,
    sent_at: VecDeque<u64>,
    got_close: bool,
    /// The server's compression context (kept when it takes context over).
    inflater: Option<Box<Inflater>>,
}

/// Decompression shared by all connections: a stream for servers that start
/// every message afresh, and the output buffer.
#[derive(Default)]
struct Unpack {
    shared: Inflater,
    out: Vec<u8>,
}

impl Conn {
    /// Parses server bytes, checking echoes against the plan.
    fn parse(&mut self, plan: &Plan, unpack: &mut Unpack, mut d: &[u8], out: &mut RxOut) -> Result<(), String> {
        while !d.is_empty() {
            let rx = &mut self.rx;
            match rx.left {
                None => {
                    // Header: 2 bytes, then the extended length.
                    let need = if rx.hdr_len < 2 {
                        2
                    } else {
                        2 + match rx.hdr[1] & 0x7f {
                            126 => 2,
                            127 => 8,
                            _ => 0,
                        }
                    };
                    let take = (need - rx.hdr_len).min(d.len());
                    rx.hdr[rx.hdr_len..rx.hdr_len + take].copy_from_slice(&d[..take]);
                    rx.hdr_len += take;
                    d = &d[take..];
                    if rx.hdr_len < need || need == 2 && rx.hdr[1] & 0x7f >= 126 {
                        continue;
                    }
                    let (b0, b1) = (rx.hdr[0], rx.hdr[1]);
                    if b1 & 0x80 != 0 {
                        return Err("the server sent a masked frame".into());
                    }
                    // RSV1 only on the first frame of a message, and only with deflate.
                    let rsv1_ok = plan.agreed.is_some() && matches!(b0 & 0x0f, 0x1 | 0x2);
                    if b0 & 0x30 != 0 || (b0 & RSV1 != 0 && !rsv1_ok) {
                        return Err(format!("RSV bits set in a server frame (0x{b0:02x})"));
                    }
                    let len = match b1 & 0x7f {
                        126 => u16::from_be_bytes([rx.hdr[2], rx.hdr[3]]) as u64,
                        127 => u64::from_be_bytes(rx.hdr[2..10].try_into().unwrap()),
                        n => n as u64,
                    };
                    rx.hdr_len = 0;
                    rx.fin = b0 & 0x80 != 0;
                    rx.op = b0 & 0x0f;
                    match rx.op {
                        0x1 | 0x2 => {
                            if rx.in_msg {
                                return Err("a new message started inside a fragmented one".into());
                            }
                            if rx.op != plan.opcode {
                                return Err(format!("echo has opcode {} instead of {}", rx.op, plan.opcode));
                            }
                            if self.sent_at.is_empty() {
                                return Err("a message arrived that was not sent (or echoed twice)".into());
                            }
                            rx.in_msg = true;
                            rx.off = 0;
                            rx.compressed = b0 & RSV1 != 0;
                            rx.packed.clear();
                        }
                        0x0 => {
                            if !rx.in_msg {
                                return Err("continuation frame outside a message".into());
                            }
                        }
                        0x8..=0xA => {
                            if !rx.fin || len > 125 {
                                return Err("bad control frame from the server".into());
                            }
                            rx.ctrl.clear();
                        }
                        op => return Err(format!("reserved opcode {op} from the server")),
                    }
                    if rx.op < 0x8 && rx.compressed {
                        // Compressed, an echo may be a little larger than sent.
                        if (rx.packed.len() as u64 + len) > plan.size as u64 * 2 + 1024 {
                            return Err(format!("compressed echo far longer than the {} bytes sent", plan.size));
                        }
                    } else if rx.op < 0x8 && rx.off as u64 + len > plan.size as u64 {
                        return Err(format!("echo longer than the {} bytes sent", plan.size));
                    }
                    rx.left = Some(len);
                }
                Some(left) => {
                    let take = (left.min(d.len() as u64)) as usize;
                    if rx.op < 0x8 && rx.compressed {
                        rx.packed.extend_from_slice(&d[..take]);
                    } else if rx.op < 0x8 {
                        let v = Plan::variant(self.id, self.rx_msg);
                        if d[..take] != plan.payloads[v][rx.off..rx.off + take] {
                            return Err(format!(
                                "echo payload differs from message {} (variant {v}) at bytes {}..{}",
                                self.rx_msg,
                                rx.off,
                                rx.off + take
                            ));
                        }
                        rx.off += take;
                    } else {
                        rx.ctrl.extend_from_slice(&d[..take]);
                    }
                    d = &d[take..];
                    rx.left = Some(left - take as u64);
                }
            }
            // A frame whose payload is complete.
            if self.rx.left == Some(0) {
                let rx = &mut self.rx;
                rx.left = None;
                match rx.op {
                    0x0..=0x2 if rx.fin => {
                        if rx.compressed {
                            let v = Plan::variant(self.id, self.rx_msg);
                            let agreed = plan.agreed.expect("RSV1 is accepted only with deflate");
                            let inflater = if agreed.server_no_context_takeover {
                                &mut unpack.shared
                            } else {
                                self.inflater.get_or_insert_with(Default::default)
                            };
                            let result = inflater.message(&rx.packed, &mut unpack.out, plan.size);
                            if agreed.server_no_context_takeover {
                                unpack.shared.reset();
                            }
                            result?;
                            if unpack.out != plan.payloads[v] {
                                return Err(format!(
                                    "inflated echo ({} bytes) differs from message {} (variant {v})",
                                    unpack.out.len(),
                                    self.rx_msg
                                ));
                            }
                            rx.off = unpack.out.len();
                            rx.compressed = false;
                            out.compressed += 1;
                            if rx.packed.capacity() > 64 << 10 {
                                rx.packed = Vec::new();
                            }
                        }
                        if rx.off != plan.size {
                            return Err(format!("echo of {} bytes instead of {}", rx.off, plan.size));
                        }
                        rx.in_msg = false;
                        self.rx_msg += 1;
                        out.messages += 1;
                    }
                    0x8 => {
                        let code = if rx.ctrl.len() >= 2 {
                            u16::from_be_bytes([rx.ctrl[0], rx.ctrl[1]])
                        } else {
                            1005
                        };
                        out.close = Some(code);
                    }
                    0x9 => out.pings.push(rx.ctrl.clone()),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn queue_message(&mut self, now: u64) {
        self.next_msg += 1;
        self.queued += 1;
        self.sent_at.push_back(now);
    }

    /// Writes what is queued: raw bytes first, then messages (writev of the
    /// pre-encoded frames). Ok(true) when everything was written.
    fn flush(&mut self, plan: &Plan) -> std::io::Result<bool> {
        if !self.sock.push()? {
            return Ok(false);
        }
        while self.raw_pos < self.raw.len() {
            match self.sock.write(&self.raw[self.raw_pos..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.raw_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.raw_pos > 0 {
            self.raw.clear();
            self.raw_pos = 0;
        }
        while self.queued > 0 {
            let first = self.next_msg - self.queued;
            let written = if plan.run.is_empty() {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let count = (self.queued as usize).min(MAX_IOV);
                for (j, slot) in iov.iter_mut().enumerate().take(count) {
                    let f = &plan.frames[Plan::variant(self.id, first + j as u64)];
                    *slot = IoSlice::new(if j == 0 { &f[self.first_off..] } else { f });
                }
                self.sock.write_vectored(&iov[..count])
            } else {
                let flen = plan.frames[0].len();
                let v = Plan::variant(self.id, first);
                let count = (self.queued as usize).min(RUN_MESSAGES - v);
                self.sock
                    .write(&plan.run[v * flen + self.first_off..(v + count) * flen])
            };
            let mut n = match written {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut short = false;
            while n > 0 {
                let f = plan.frames[Plan::variant(self.id, self.next_msg - self.queued)].len();
                let rem = f - self.first_off;
                if n >= rem {
                    n -= rem;
                    self.queued -= 1;
                    self.first_off = 0;
                } else {
                    self.first_off += n;
                    n = 0;
                    short = true;
                }
            }
            if short {
                // The socket buffer is full: wait for the writable edge.
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Checks the server's handshake response; returns its length and its
/// `Sec-WebSocket-Extensions` value, if any.
fn check_response(resp: &[u8], accept: &str) -> Result<Option<(usize, Option<String>)>, String> {
    let Some(end) = resp.windows(4).position(|w| w == b"\r\n\r\n") else {
        if resp.len() > 16 << 10 {
            return Err("handshake response over 16 KiB".into());
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&resp[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 101") {
        return Err(format!("handshake refused: {status:?}"));
    }
    let headers: Vec<(&str, &str)> = lines.filter_map(|l| l.split_once(':')).collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    };
    let got = header("sec-websocket-accept");
    if got.as_deref() != Some(accept) {
        return Err(format!("bad Sec-WebSocket-Accept {got:?}"));
    }
    Ok(Some((end + 4, header("sec-websocket-extensions"))))
}

fn read_rss_kb(pid: u32) -> Result<u64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

/// A JSON object written by hand (no dependency needed for one line).
struct Json(Vec<String>);

impl Json {
    fn num(&mut self, k: &str, v: f64) {
        let v = if v.is_finite() { v } else { 0.0 };
        if v.fract() == 0.0 && v.abs() < 1e15 {
            self.0.push(format!("\"{k}\":{}", v as i64));
        } else {
            self.0.push(format!("\"{k}\":{v:.3}"));
        }
    }
    fn str(&mut self, k: &str, v: &str) {
        let esc: String = v
            .chars()
            .flat_map(|c| match c {
                '"' => "\\\"".chars().collect::<Vec<_>>(),
                '\\' => "\\\\".chars().collect(),
                c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32).chars().collect(),
                c => vec![c],
            })
            .collect();
        self.0.push(format!("\"{k}\":\"{esc}\""));
    }
    fn bool(&mut self, k: &str, v: bool) {
        self.0.push(format!("\"{k}\":{v}"));
    }
    fn line(&self) -> String {
        format!("{{{}}}", self.0.join(","))
    }
}

struct Bench {
    a: Args,
    plan: Plan,
    addr: SocketAddr,
    /// wss://: every connection's TLS settings.
    tls: Option<TlsClient>,
    poll: Poll,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    start: Instant,
    rbuf: Vec<u8>,
    unpack: Unpack,
    next_id: usize,
    /// Connections to open still.
    to_open: usize,
    opening: usize,
    open: usize,
    /// Echo: messages may be queued until then (ns since start).
    send_until: u64,
    measure_from: u64,
    measure_to: u64,
    measured: u64,
    lat: Vec<u32>,
    /// Connect mode: cycles completed in the window, and their durations.
    cycles: u64,
    errors: u64,
    first_error: Option<String>,
    closes_ok: u64,
    /// Idle mode: connections whose check message came back.
    idle_echoed: u64,
    /// Echoes received and verified, over the whole run.
    verified: u64,
    /// Of which compressed (permessage-deflate).
    compressed_echoes: u64,
    /// CPU seconds (ours, and the server's when --pid is given) at the start
    /// and the end of the measured window.
    cpu_at_start: Option<(f64, Option<f64>)>,
    cpu_at_end: Option<(f64, Option<f64>)>,
}

impl Bench {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn error(&mut self, msg: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(msg);
        }
    }

    fn open_one(&mut self) -> Result<(), String> {
        let tcp = TcpStream::connect(self.addr).map_err(|e| format!("connect: {e}"))?;
        let sock = Transport::new(tcp, self.tls.as_ref())?;
        let idx = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        let mut conn = Conn {
            sock,
            id: self.next_id,
            phase: Phase::Connecting,
            opened_ns: self.now(),
            raw: Vec::new(),
            raw_pos: 0,
            hs_in: Vec::new(),
            next_msg: 0,
            queued: 0,
            first_off: 0,
            rx_msg: 0,
            rx: Rx::default(),
            sent_at: VecDeque::with_capacity(self.a.inflight),
            got_close: false,
            inflater: None,
        };
        self.next_id += 1;
        self.poll
            .registry()
            .register(&mut conn.sock.tcp, Token(idx), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| format!("register: {e}"))?;
        self.conns[idx] = Some(conn);
        self.opening += 1;
        self.to_open -= 1;
        Ok(())
    }

    fn open_more(&mut self) {
        while self.to_open > 0 && self.opening < MAX_OPENING {
            if let Err(e) = self.open_one() {
                self.error(e);
                self.to_open -= 1;
            }
        }
    }

    fn drop_conn(&mut self, idx: usize) {
        if let Some(mut c) = self.conns[idx].take() {
            let _ = self.poll.registry().deregister(&mut c.sock.tcp);
            match c.phase {
                Phase::Connecting | Phase::Handshake => self.opening -= 1,
                _ => self.open -= 1,
            }
            self.free.push(idx);
        }
    }

    /// Handles readiness of connection `idx`.
    fn service(&mut self, idx: usize) {
        let Some(mut c) = self.conns[idx].take() else { return };
        let result = self.service_conn(&mut c);
        let phase_before = c.phase;
        self.conns[idx] = Some(c);
        match result {
            Ok(true) => {}
            Ok(false) => self.drop_conn(idx),
            Err(e) => {
                let e = format!("connection {idx} ({phase_before:?}): {e}");
                self.error(e);
                self.drop_conn(idx);
            }
        }
    }

    /// Ok(false): the connection is finished and is to be dropped.
    fn service_conn(&mut self, c: &mut Conn) -> Result<bool, String> {
        if c.phase == Phase::Connecting {
            if let Ok(Some(e)) | Err(e) = c.sock.tcp.take_error() {
                return Err(format!("connect: {e}"));
            }
            match c.sock.tcp.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(true),
                Err(e) => return Err(format!("connect: {e}")),
            }
            c.sock.tcp.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
            c.phase = Phase::Handshake;
            c.raw.extend_from_slice(&self.plan.request);
        }
        // Read everything available.
        loop {
            let n = match c.sock.read(&mut self.rbuf) {
                Ok(0) => {
                    if c.got_close {
                        return Ok(false);
                    }
                    return Err("the server closed the connection".into());
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read: {e}")),
            };
            let now = self.now();
            let mut data_start = 0;
            if c.phase == Phase::Handshake {
                c.hs_in.extend_from_slice(&self.rbuf[..n]);
                let Some((len, extensions)) = check_response(&c.hs_in, &self.plan.accept)? else {
                    continue;
                };
                self.plan.agree(extensions.as_deref())?;
                // Bytes after the response are frames.
                let extra = c.hs_in.len() - len;
                data_start = n - extra;
                c.hs_in = Vec::new();
                c.phase = Phase::Open;
                self.opening -= 1;
                self.open += 1;
                self.on_open(c);
            }
            let mut out = RxOut::default();
            // Split borrow: parse reads the plan and the shared buffer.
            let (plan, rbuf) = (&self.plan, &self.rbuf);
            c.parse(plan, &mut self.unpack, &rbuf[data_start..n], &mut out)?;
            for p in out.pings.drain(..) {
                c.raw.extend_from_slice(&frame(FIN | OP_PONG, &p, Some([9, 8, 7, 6])));
            }
            self.compressed_echoes += out.compressed;
            if out.messages > 0 {
                self.on_echoes(c, out.messages, now)?;
            }
            if let Some(code) = out.close {
                if c.phase != Phase::Closing {
                    return Err(format!("the server closed the session (code {code})"));
                }
                if code != 1000 {
                    return Err(format!("the server answered close 1000 with {code}"));
                }
                c.got_close = true;
                self.closes_ok += 1;
                if self.a.mode == Mode::Connect {
                    let now = self.now();
                    if now >= self.measure_from && now < self.measure_to {
                        self.cycles += 1;
                        if self.lat.len() < MAX_SAMPLES {
                            self.lat.push((now - c.opened_ns).min(u32::MAX as u64) as u32);
                        }
                    }
                    // The closing handshake is done: close TCP now.
                    return Ok(false);
                }
            }
            if n < self.rbuf.len() {
                // A short read drained the socket; the next arrival is a new edge.
                break;
            }
        }
        c.flush(&self.plan).map_err(|e| format!("write: {e}"))?;
        Ok(true)
    }

    fn on_open(&mut self, c: &mut Conn) {
        // Echo and idle traffic starts once every connection is open; a connect
        // cycle closes at once.
        if self.a.mode == Mode::Connect {
            c.phase = Phase::Closing;
            c.raw.extend_from_slice(&self.plan.close_frame);
        }
    }

    fn on_echoes(&mut self, c: &mut Conn, k: u64, now: u64) -> Result<(), String> {
        self.verified += k;
        for _ in 0..k {
            let sent = c.sent_at.pop_front().ok_or("an echo arrived for no message sent")?;
            match self.a.mode {
                Mode::Echo => {
                    if now >= self.measure_from && now < self.measure_to {
                        self.measured += 1;
                        if self.lat.len() < MAX_SAMPLES {
                            self.lat.push((now - sent).min(u32::MAX as u64) as u32);
                        }
                    }
                    if now < self.send_until {
                        c.queue_message(now);
                    }
                }
                Mode::Idle => self.idle_echoed += 1,
                Mode::Connect => return Err("unexpected message in connect mode".into()),
            }
        }
        Ok(())
    }

    /// Runs the event loop until `done` or the deadline; Err on timeout.
    fn run_until(
        &mut self,
        deadline: Duration,
        what: &str,
        mut done: impl FnMut(&Bench) -> bool,
    ) -> Result<(), String> {
        let mut events = Events::with_capacity(1024);
        let end = Instant::now() + deadline;
        while !done(self) {
            let now = Instant::now();
            if now >= end {
                return Err(format!("timed out waiting for {what}"));
            }
            let wait = (end - now).min(Duration::from_millis(5));
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != ErrorKind::Interrupted {
                    return Err(format!("poll: {e}"));
                }
            }
            for ev in events.iter() {
                self.service(ev.token().0);
            }
            self.after_events();
        }
        Ok(())
    }

    /// Work between event batches: open more connections (connect mode keeps
    /// its clients cycling).
    fn after_events(&mut self) {
        let now = self.now();
        if self.measure_to > 0 {
            let sample = || (cpu_seconds(), self.a.pid.and_then(process_cpu_seconds));
            if self.cpu_at_start.is_none() && now >= self.measure_from {
                self.cpu_at_start = Some(sample());
            }
            if self.cpu_at_end.is_none() && now >= self.measure_to {
                self.cpu_at_end = Some(sample());
            }
        }
        if self.a.mode == Mode::Connect && now < self.send_until {
            let active = self.opening + self.open;
            self.to_open = self.a.conns.saturating_sub(active);
        }
        self.open_more();
    }

    fn for_each_open(&mut self, mut f: impl FnMut(&mut Conn, &Plan, u64)) {
        let now = self.now();
        for idx in 0..self.conns.len() {
            let Some(mut c) = self.conns[idx].take() else { continue };
            if c.phase == Phase::Open {
                f(&mut c, &self.plan, now);
                let r = c.flush(&self.plan);
                self.conns[idx] = Some(c);
                if let Err(e) = r {
                    self.error(format!("connection {idx}: write: {e}"));
                    self.drop_conn(idx);
                }
            } else {
                self.conns[idx] = Some(c);
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.conns.iter().flatten().map(|c| c.sent_at.len()).sum()
    }

    /// Sends a close frame on every open connection and waits for the answers.
    fn close_all(&mut self, timeout: Duration) {
        self.for_each_open(|c, plan, _| {
            c.phase = Phase::Closing;
            c.raw.extend_from_slice(&plan.close_frame);
        });
        let r = self.run_until(timeout, "the close handshakes", |b| {
            b.conns.iter().flatten().all(|c| c.got_close)
        });
        if let Err(e) = r {
            let missing = self.conns.iter().flatten().filter(|c| !c.got_close).count();
            self.error(format!("{e}: {missing} connections got no close frame"));
        }
    }

    fn open_all(&mut self, n: usize, timeout: Duration) -> Result<(), String> {
        self.to_open = n;
        self.open_more();
        let r = self.run_until(timeout, "connections to open", |b| b.to_open == 0 && b.opening == 0);
        if self.open < n {
            return Err(format!(
                "{} of {n} connections opened{}",
                self.open,
                self.first_error
                    .as_ref()
                    .map(|e| format!(" (first error: {e})"))
                    .unwrap_or_default()
            ));
        }
        r
    }
}

fn run(a: Args) -> (Json, bool) {
    let plan = Plan::new(&a);
    let addr = SocketAddr::V4(SocketAddrV4::new(a.host, a.port));
    let tls = a.tls.as_deref().map(|ca| TlsClient::new(ca, a.host.into()));
    let tls = tls.transpose().unwrap_or_else(|e| usage(&e));
    let mut b = Bench {
        plan,
        addr,
        tls,
        poll: Poll::new().expect("epoll"),
        conns: Vec::new(),
        free: Vec::new(),
        start: Instant::now(),
        rbuf: vec![0u8; READ_BUF],
        unpack: Unpack::default(),
        next_id: 0,
        to_open: 0,
        opening: 0,
        open: 0,
        send_until: 0,
        measure_from: 0,
        measure_to: 0,
        measured: 0,
        lat: Vec::new(),
        cycles: 0,
        errors: 0,
        first_error: None,
        closes_ok: 0,
        idle_echoed: 0,
        verified: 0,
        compressed_echoes: 0,
        cpu_at_start: None,
        cpu_at_end: None,
        a,
    };
    let mut j = Json(Vec::new());
    let mode = b.a.mode;
    j.str(
        "mode",
        match mode {
            Mode::Echo => "echo",
            Mode::Connect => "connect",
            Mode::Idle => "idle",
        },
    );
    if !b.a.label.is_empty() {
        let label = b.a.label.clone();
        j.str("label", &label);
    }
    j.num("conns", b.a.conns as f64);
    j.bool("tls", b.tls.is_some());
    let secs = b.a.seconds;
    let ns = |s: f64| (s * 1e9) as u64;
    let result: Result<(), String> = (|| match mode {
        Mode::Echo => {
            j.num("inflight", b.a.inflight as f64);
            j.num("size", b.a.size as f64);
            j.bool("binary", b.a.binary);
            b.open_all(b.a.conns, Duration::from_secs(30))?;
            let warm = b.a.warmup.unwrap_or((secs / 4.0).min(1.0));
            let t0 = b.now();
            b.measure_from = t0 + ns(warm);
            b.measure_to = b.measure_from + ns(secs);
            b.send_until = b.measure_to;
            let inflight = b.a.inflight;
            b.for_each_open(|c, _, now| {
                for _ in 0..inflight {
                    c.queue_message(now);
                }
            });
            let until = b.measure_to;
            b.run_until(Duration::from_secs_f64(warm + secs + 5.0), "the run", |b| {
                b.now() >= until
            })?;
            // Every message sent must come back.
            b.run_until(Duration::from_secs(20), "the last echoes", |b| b.in_flight() == 0)?;
            b.close_all(Duration::from_secs(5));
            let mut lat = std::mem::take(&mut b.lat);
            lat.sort_unstable();
            j.num("seconds", secs);
            j.num("messages", b.measured as f64);
            j.num("msgs_per_s", b.measured as f64 / secs);
            j.num("mb_per_s", b.measured as f64 * b.a.size as f64 / secs / 1e6);
            j.num("p50_us", percentile(&lat, 0.50));
            j.num("p99_us", percentile(&lat, 0.99));
            j.num("p999_us", percentile(&lat, 0.999));
            j.num("echoes_verified", b.verified as f64);
            if b.measured == 0 {
                return Err("no echo in the measured window".into());
            }
            Ok(())
        }
        Mode::Connect => {
            let warm = b.a.warmup.unwrap_or((secs / 10.0).min(0.5));
            let t0 = b.now();
            b.measure_from = t0 + ns(warm);
            b.measure_to = b.measure_from + ns(secs);
            b.send_until = b.measure_to;
            b.to_open = b.a.conns;
            b.open_more();
            let until = b.measure_to;
            b.run_until(Duration::from_secs_f64(warm + secs + 5.0), "the run", |b| {
                b.now() >= until
            })?;
            // Let the cycles under way finish.
            b.run_until(Duration::from_secs(10), "the last cycles", |b| b.opening + b.open == 0)?;
            let mut lat = std::mem::take(&mut b.lat);
            lat.sort_unstable();
            j.num("seconds", secs);
            j.num("cycles", b.cycles as f64);
            j.num("connects_per_s", b.cycles as f64 / secs);
            j.num("cycle_p50_us", percentile(&lat, 0.50));
            j.num("cycle_p99_us", percentile(&lat, 0.99));
            if b.cycles == 0 {
                return Err("no connection completed in the measured window".into());
            }
            Ok(())
        }
        Mode::Idle => {
            let pid = b.a.pid.unwrap();
            let n = b.a.conns;
            let settle = Duration::from_millis(b.a.settle_ms);
            let before = read_rss_kb(pid)?;
            b.open_all(n, Duration::from_secs(120))?;
            b.run_until(settle, "", |_| false).ok();
            let after_open = read_rss_kb(pid)?;
            // Every connection must still echo.
            b.for_each_open(|c, _, now| c.queue_message(now));
            b.run_until(Duration::from_secs(60), "the echo of every idle connection", |b| {
                b.in_flight() == 0
            })?;
            b.run_until(settle, "", |_| false).ok();
            let after_echo = read_rss_kb(pid)?;
            j.num("pid", pid as f64);
            j.num("rss_before_kb", before as f64);
            j.num("rss_open_kb", after_open as f64);
            j.num("rss_after_echo_kb", after_echo as f64);
            j.num(
                "rss_per_conn_b",
                (after_open as f64 - before as f64) * 1024.0 / n as f64,
            );
            j.num(
                "rss_per_conn_after_echo_b",
                (after_echo as f64 - before as f64) * 1024.0 / n as f64,
            );
            j.num("echoed", b.idle_echoed as f64);
            if b.idle_echoed != n as u64 {
                return Err(format!("{} of {n} idle connections echoed", b.idle_echoed));
            }
            Ok(())
        }
    })();
    if let Err(e) = result {
        b.error(e);
    }
    // How busy the generator and the server were during the measured window
    // (over the whole run for idle): near 1.0 means that side is the limit.
    match (b.cpu_at_start, b.cpu_at_end) {
        (Some((c0, s0)), Some((c1, s1))) => {
            let window = (b.measure_to - b.measure_from) as f64 / 1e9;
            j.num("client_cpu_util", (c1 - c0) / window);
            if let (Some(s0), Some(s1)) = (s0, s1) {
                j.num("server_cpu_util", (s1 - s0) / window);
            }
        }
        _ => j.num("client_cpu_util", cpu_seconds() / b.start.elapsed().as_secs_f64()),
    }
    if b.a.deflate {
        let agreed = b.plan.agreed.map(|a| format!("{a:?}")).unwrap_or_default();
        j.str("deflate", &agreed);
        j.num("echoes_compressed", b.compressed_echoes as f64);
    }
    j.num("errors", b.errors as f64);
    let ok = b.errors == 0;
    j.bool("ok", ok);
    if let Some(e) = &b.first_error {
        j.str("error", e);
    }
    (j, ok)
}

fn main() {
    let args = parse_args();
    let (json, ok) = run(args);
    println!("{}", json.line());
    if !ok {
        std::process::exit(1);
    }
}

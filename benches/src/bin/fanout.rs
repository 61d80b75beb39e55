//! fanout: a load generator for publish/subscribe servers (chat rooms): N
//! subscribers and one publisher join the same room; the publisher sends
//! messages that the server publishes to everyone in the room (the publisher
//! included, which it ignores), with at most W messages not yet delivered to
//! every subscriber. One thread, edge-triggered epoll (mio).
//!
//!   fanout --port P [--subs N] [--size S] [--seconds T] [--window W]
//!          [--path /room/bench] [--pid SERVER_PID] [--label NAME]
//!          [--pub-port P2]
//!
//! With --pub-port the publisher joins the room on another server (a second
//! node of a relayed chat): what is measured then crosses the relay.
//!
//! Each message is text: its sequence number and send time (hex), padded to S
//! bytes. Every subscriber checks that sequence numbers only grow and that
//! each message has S bytes; a gap is counted as lost (a server may drop for
//! a slow subscriber), a repeat or a wrong size as an error. Reports one JSON
//! line: deliveries per second (messages received by subscribers during the
//! measured T seconds), messages published per second, the subscriber-side
//! delay (send to receipt) p50/p99, lost and errors, and both sides' CPU use.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use wsconn_bench::cpu::{cpu_seconds, process_cpu_seconds};
use wsconn_testkit::{client_frame, first_byte, upgrade_request, OP_TEXT};

/// A message older than this that some subscriber never got no longer holds
/// the window (counted lost by whoever lacks it).
const GIVE_UP: Duration = Duration::from_secs(2);
const WARMUP: Duration = Duration::from_millis(500);

struct Args {
    port: u16,
    pub_port: Option<u16>,
    subs: usize,
    size: usize,
    seconds: f64,
    window: usize,
    path: String,
    pid: Option<u32>,
    label: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        port: 0,
        pub_port: None,
        subs: 1000,
        size: 32,
        seconds: 3.0,
        window: 8,
        path: "/room/bench".into(),
        pid: None,
        label: String::new(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--port" => a.port = value.parse().expect("--port"),
            "--pub-port" => a.pub_port = Some(value.parse().expect("--pub-port")),
            "--subs" => a.subs = value.parse().expect("--subs"),
            "--size" => a.size = value.parse().expect("--size"),
            "--seconds" => a.seconds = value.parse().expect("--seconds"),
            "--window" => a.window = value.parse().expect("--window"),
            "--path" => a.path = value,
            "--pid" => a.pid = Some(value.parse().expect("--pid")),
            "--label" => a.label = value,
            other => panic!("fanout: unknown argument {other}"),
        }
        i += 2;
    }
    assert!(a.port > 0, "fanout: --port is required");
    assert!(a.size >= 32, "fanout: --size is at least 32");
    a
}

/// One client connection.
struct Client {
    stream: TcpStream,
    open: bool,
    /// Unparsed input (a frame cut by a read, or the response head).
    partial: Vec<u8>,
    last_seq: Option<u64>,
}

struct Bench {
    a: Args,
    start: Instant,
    clients: Vec<Client>,
    publisher: usize,
    /// Send times (ns since start) by sequence number.
    sent_at: Vec<u64>,
    /// Subscribers that got each message not yet delivered to all, from `base`.
    pending: VecDeque<u32>,
    base: u64,
    measure_from: u64,
    measure_to: u64,
    first_measured_seq: u64,
    deliveries: u64,
    delays_us: Vec<u32>,
    lost: u64,
    errors: u64,
    first_error: Option<String>,
    opened: usize,
}

fn now_ns(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

impl Bench {
    fn error(&mut self, msg: String) {
        self.errors += 1;
        self.first_error.get_or_insert(msg);
    }

    fn connect(&mut self, poll: &Poll, port: u16) -> Result<(), String> {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut stream = StdStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).ok();
        stream
            .write_all(&upgrade_request("127.0.0.1", &self.a.path))
            .map_err(|e| format!("write the handshake: {e}"))?;
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut stream = TcpStream::from_std(stream);
        let token = Token(self.clients.len());
        poll.registry()
            .register(&mut stream, token, Interest::READABLE)
            .map_err(|e| e.to_string())?;
        self.clients.push(Client {
            stream,
            open: false,
            partial: Vec::new(),
            last_seq: None,
        });
        Ok(())
    }

    /// Reads what client `i` has, handling the response head and the frames.
    fn read(&mut self, i: usize, buf: &mut [u8]) {
        loop {
            let n = match self.clients[i].stream.read(buf) {
                Ok(0) => {
                    self.error(format!("client {i}: the server closed the connection"));
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.error(format!("client {i}: read: {e}"));
                    return;
                }
            };
            let mut data = std::mem::take(&mut self.clients[i].partial);
            let used = if data.is_empty() {
                let used = self.parse(i, &buf[..n]);
                data.extend_from_slice(&buf[used..n]);
                data.len()
            } else {
                data.extend_from_slice(&buf[..n]);
                let used = self.parse(i, &data);
                data.drain(..used);
                data.len()
            };
            let _ = used;
            self.clients[i].partial = data;
        }
    }

    /// Parses the response head and whole frames; returns the bytes used.
    fn parse(&mut self, i: usize, data: &[u8]) -> usize {
        let mut pos = 0;
        if !self.clients[i].open {
            let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                return 0;
            };
            if !data.starts_with(b"HTTP/1.1 101") {
                self.error(format!("client {i}: no 101"));
            }
            self.clients[i].open = true;
            self.opened += 1;
            pos = end + 4;
        }
        while data.len() - pos >= 2 {
            let f = &data[pos..];
            let (len, head) = match f[1] & 0x7f {
                126 if f.len() >= 4 => (u16::from_be_bytes([f[2], f[3]]) as usize, 4),
                127 if f.len() >= 10 => (u64::from_be_bytes(f[2..10].try_into().unwrap()) as usize, 10),
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if f.len() < head + len {
                break;
            }
            if f[0] & 0x0f == OP_TEXT && i != self.publisher {
                self.receive(i, &f[head..head + len]);
            } else if f[0] & 0x0f != OP_TEXT {
                self.error(format!("client {i}: opcode {:#x}", f[0]));
            }
            pos += head + len;
        }
        pos
    }

    fn receive(&mut self, i: usize, payload: &[u8]) {
        let now = now_ns(self.start);
        let seq = std::str::from_utf8(&payload[..16.min(payload.len())])
            .ok()
            .and_then(|s| u64::from_str_radix(s, 16).ok());
        let Some(seq) = seq.filter(|_| payload.len() == self.a.size) else {
            return self.error(format!("client {i}: a damaged message of {} bytes", payload.len()));
        };
        match self.clients[i].last_seq {
            Some(last) if seq <= last => return self.error(format!("client {i}: {seq} after {last}")),
            Some(last) => self.lost += seq - last - 1,
            None => {}
        }
        self.clients[i].last_seq = Some(seq);
        if seq >= self.base {
            if let Some(count) = self.pending.get_mut((seq - self.base) as usize) {
                *count += 1;
            }
        }
        if seq >= self.first_measured_seq && now >= self.measure_from && now < self.measure_to {
            self.deliveries += 1;
            let delay = now.saturating_sub(self.sent_at[seq as usize]) / 1000;
            self.delays_us.push(delay.min(u32::MAX as u64) as u32);
        }
    }

    /// Sends the next message if the window allows.
    fn publish(&mut self) -> bool {
        let subs = self.a.subs as u32;
        let now = now_ns(self.start);
        while let Some(&count) = self.pending.front() {
            let old = now.saturating_sub(self.sent_at[self.base as usize]) > GIVE_UP.as_nanos() as u64;
            if count < subs && !old {
                break;
            }
            self.pending.pop_front();
            self.base += 1;
        }
        if self.pending.len() >= self.a.window {
            return false;
        }
        let seq = self.sent_at.len() as u64;
        let mut text = format!("{seq:016x}{now:016x}");
        text.push_str(&"x".repeat(self.a.size - 32));
        let frame = client_frame(first_byte(true, OP_TEXT), text.as_bytes());
        let stream = &mut self.clients[self.publisher].stream;
        // Small frames into an empty socket buffer: written whole or not at all
        // in practice; a short write is an error of the run.
        match stream.write(&frame) {
            Ok(n) if n == frame.len() => {}
            Ok(_) => {
                self.error("publisher: short write".into());
                return false;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) => {
                self.error(format!("publisher: {e}"));
                return false;
            }
        }
        self.sent_at.push(now);
        self.pending.push_back(0);
        true
    }

    fn run(&mut self) -> Result<(), String> {
        let mut poll = Poll::new().map_err(|e| e.to_string())?;
        let mut events = Events::with_capacity(4096);
        let mut buf = vec![0u8; 256 << 10];
        let deadline = Instant::now() + Duration::from_secs(60);
        // Subscribers in batches (the listen backlog), then the publisher.
        while self.clients.len() <= self.a.subs {
            let batch_end = (self.clients.len() + 500).min(self.a.subs + 1);
            while self.clients.len() < batch_end {
                let port = match self.a.pub_port {
                    Some(p) if self.clients.len() == self.a.subs => p,
                    _ => self.a.port,
                };
                self.connect(&poll, port)?;
            }
            while self.opened < self.clients.len() {
                if Instant::now() > deadline {
                    return Err(format!(
                        "only {} of {} connections opened",
                        self.opened,
                        self.clients.len()
                    ));
                }
                self.turn(&mut poll, &mut events, &mut buf, 50);
            }
        }
        self.publisher = self.a.subs;
        // Sync: publish until every subscriber got a message (all have joined).
        let sync_deadline = Instant::now() + Duration::from_secs(30);
        while self.clients[..self.a.subs].iter().any(|c| c.last_seq.is_none()) {
            if Instant::now() > sync_deadline {
                return Err("not every subscriber got the first messages".into());
            }
            self.publish();
            self.turn(&mut poll, &mut events, &mut buf, 20);
        }
        let warm = now_ns(self.start) + WARMUP.as_nanos() as u64;
        self.measure_from = warm;
        self.measure_to = warm + (self.a.seconds * 1e9) as u64;
        let mut cpu = None;
        let mut server_cpu = None;
        let mut first_set = false;
        loop {
            let now = now_ns(self.start);
            if !first_set && now >= self.measure_from {
                first_set = true;
                self.first_measured_seq = self.sent_at.len() as u64;
                cpu = Some(cpu_seconds());
                server_cpu = self.a.pid.and_then(process_cpu_seconds);
            }
            if now >= self.measure_to {
                break;
            }
            while self.publish() {}
            self.turn(&mut poll, &mut events, &mut buf, 1);
        }
        let elapsed = self.a.seconds;
        let client_util = cpu.map(|c| (cpu_seconds() - c) / elapsed);
        let server_util = match (server_cpu, self.a.pid.and_then(process_cpu_seconds)) {
            (Some(a), Some(b)) => Some((b - a) / elapsed),
            _ => None,
        };
        self.report(client_util, server_util);
        Ok(())
    }

    fn turn(&mut self, poll: &mut Poll, events: &mut Events, buf: &mut [u8], timeout_ms: u64) {
        if poll.poll(events, Some(Duration::from_millis(timeout_ms))).is_err() {
            return;
        }
        let ready: Vec<usize> = events.iter().map(|e| e.token().0).collect();
        for i in ready {
            self.read(i, buf);
        }
    }

    fn report(&mut self, client_util: Option<f64>, server_util: Option<f64>) {
        self.delays_us.sort_unstable();
        let pct = |p: f64| -> f64 {
            if self.delays_us.is_empty() {
                return 0.0;
            }
            let at = ((self.delays_us.len() as f64 * p).ceil() as usize).clamp(1, self.delays_us.len()) - 1;
            self.delays_us[at] as f64
        };
        let published = (self.sent_at.len() as u64).saturating_sub(self.first_measured_seq);
        let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
        println!(
            "{{\"ok\":{},\"label\":\"{}\",\"subs\":{},\"size\":{},\"window\":{},\"seconds\":{},\
             \"deliveries_per_s\":{:.0},\"published_per_s\":{:.0},\"p50_us\":{},\"p99_us\":{},\
             \"lost\":{},\"errors\":{},\"first_error\":{},\"client_cpu_util\":{},\"server_cpu_util\":{}}}",
            self.errors == 0,
            self.a.label,
            self.a.subs,
            self.a.size,
            self.a.window,
            self.a.seconds,
            self.deliveries as f64 / self.a.seconds,
            published as f64 / self.a.seconds,
            pct(0.5),
            pct(0.99),
            self.lost,
            self.errors,
            self.first_error
                .as_ref()
                .map_or("null".to_string(), |e| format!("{e:?}")),
            opt(client_util),
            opt(server_util),
        );
    }
}

fn main() {
    let a = parse_args();
    let mut bench = Bench {
        a,
        start: Instant::now(),
        clients: Vec::new(),
        publisher: usize::MAX,
        sent_at: Vec::new(),
        pending: VecDeque::new(),
        base: 0,
        measure_from: u64::MAX,
        measure_to: u64::MAX,
        first_measured_seq: u64::MAX,
        deliveries: 0,
        delays_us: Vec::new(),
        lost: 0,
        errors: 0,
        first_error: None,
        opened: 0,
    };
    if let Err(e) = bench.run() {
        println!("{{\"ok\":false,\"label\":\"{}\",\"error\":{e:?}}}", bench.a.label);
        std::process::exit(1);
    }
    if bench.errors > 0 {
        std::process::exit(1);
    }
}

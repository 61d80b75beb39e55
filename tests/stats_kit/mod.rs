//! What tests/runtime_stats.rs runs its scenarios with: a server on a
//! reactor thread of its own (its handler acts by request path), the check
//! that a scenario moved exactly the counters it should, and clients (raw
//! sockets, or library clients on the server's reactor).
#![allow(dead_code)]

use std::cell::Cell;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use wsconn::proto::handshake::request::UpgradeRequest;
use wsconn::runtime::acceptor::Acceptor;
use wsconn::runtime::client::backoff::Backoff;
use wsconn::runtime::config::ConnConfig;
use wsconn::runtime::connection::Connection;
use wsconn::runtime::error::Error;
use wsconn::runtime::handler::{ConnHandler, Ending, UpgradeDecision};
use wsconn::runtime::log::{Level, LogEvent, LogRecord};
use wsconn::runtime::reactor::{Reactor, Remote};
use wsconn::runtime::stats::Stats;
use wsconn::{Message, MessageKind};
use wsconn_testkit::{wait_closed, Frame, WsClient, OP_CLOSE};

pub const WAIT: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------ server

/// What the server does with a connection, from its path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Echo,
    Subscribe(&'static str),
    Publish(&'static str),
    /// Keeps what it gets.
    Sink,
    /// Closes with 4000 at its first message.
    Bye,
    /// Counts an inflate-ratio close at its first message and closes with 1009.
    InflateRatio,
    /// Sends the first fragment of a message at once, the last one when a
    /// message comes.
    Fragments,
}

/// The server's handler: what it does comes from the request's path.
struct Srv {
    mode: Cell<Mode>,
}

impl ConnHandler for Srv {
    fn decides_upgrades(&self) -> bool {
        true
    }

    /// `/no` is refused (403), `/later` left pending; the rest accepted.
    fn on_upgrade(&self, _conn: &Connection<Self>, request: &UpgradeRequest) -> UpgradeDecision {
        match request.target() {
            "/no" => UpgradeDecision::Reject(403),
            "/later" => UpgradeDecision::Pending,
            _ => UpgradeDecision::Accept,
        }
    }

    fn on_open(&self, conn: &Connection<Self>, path: &str, _subprotocol: Option<&str>) {
        let mode = match path {
            "/room" => Mode::Subscribe("room"),
            "/slow-room" => Mode::Subscribe("slow"),
            "/closing-room" => Mode::Subscribe("closing"),
            "/pub" => Mode::Publish("room"),
            "/pub-slow" => Mode::Publish("slow"),
            "/pub-closing" => Mode::Publish("closing"),
            "/sink" => Mode::Sink,
            "/bye" => Mode::Bye,
            "/inflate" => Mode::InflateRatio,
            "/fragments" => Mode::Fragments,
            _ => Mode::Echo,
        };
        if mode == Mode::Fragments {
            conn.send_fragment(MessageKind::Text, b"first ", false).unwrap();
        }
        if let Mode::Subscribe(topic) = mode {
            conn.subscribe(topic).expect("subscribed");
        }
        self.mode.set(mode);
    }

    fn on_message(&self, conn: &Connection<Self>, message: Message<'_>) {
        match self.mode.get() {
            Mode::Echo => conn.send_message(message).expect("echo"),
            Mode::Publish(topic) => {
                conn.publish_to_others(topic, message).expect("published");
            }
            Mode::Bye => conn.close(4000, "bye").expect("close"),
            Mode::InflateRatio => {
                conn.count_inflate_ratio_close("1 KiB to 1 GiB");
                conn.close(1009, "inflate ratio").expect("close");
            }
            Mode::Fragments => conn.send_fragment(MessageKind::Text, b"last", true).unwrap(),
            Mode::Subscribe(_) | Mode::Sink => {}
        }
    }

    fn on_http(&self, conn: &Connection<Self>, _method: &str, path: &str) {
        let _ = path;
        conn.http_respond(200, "text/plain", b"ok\n").expect("respond");
    }

    fn on_close(&self, conn: &Connection<Self>, _ending: &Ending<'_>) {
        // SAFETY: made by `serve` below with `Connection::create`; released
        // once, here (allowed inside its own handler).
        unsafe { Connection::release(conn as *const Connection<Self> as *mut Connection<Self>) };
    }
}

/// Serves `fd` with a `Srv` that also answers plain HTTP; a small send
/// buffer, so that a subscriber that does not read is slow soon.
pub fn serve(reactor: &Reactor, fd: i32) -> bool {
    let small: libc::c_int = 4096;
    // SAFETY: setsockopt on the accepted socket with a valid int option.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let ptr = Connection::create(
        reactor,
        Srv {
            mode: Cell::new(Mode::Echo),
        },
    );
    // SAFETY: just created; released in its on_close, or here if it fails.
    let conn = unsafe { ptr.as_ref() };
    conn.set_serve_http(true);
    if conn.set_fd(fd).and_then(|()| conn.start()).is_err() {
        // SAFETY: not started: nothing else refers to it.
        unsafe { Connection::release(ptr.as_ptr()) };
    }
    true
}

/// The reactor on its thread, and a handle to run jobs there.
pub struct Server {
    remote: Remote,
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    pub fn start() -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let stopping = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let reactor = Reactor::new().unwrap();
            let acceptor = Acceptor::create(&reactor);
            // SAFETY: just created; released below after the last dispatch.
            let a = unsafe { acceptor.as_ref() };
            a.set_on_accept(Some(Box::new(serve)));
            a.start("127.0.0.1", 0).unwrap();
            tx.send((reactor.remote(), a.port().unwrap())).unwrap();
            while !stopping.load(Ordering::Relaxed) {
                reactor.dispatch(20).unwrap();
            }
            // SAFETY: created above; no dispatch runs anymore.
            unsafe { Acceptor::release(acceptor.as_ptr()) };
        });
        let (remote, port) = rx.recv().unwrap();
        Server {
            remote,
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// Runs `job` on the reactor's thread and returns what it returned.
    pub fn on<T: Send + 'static>(&self, job: impl FnOnce(&Reactor) -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        self.remote
            .defer(Box::new(move |r| {
                let _ = tx.send(job(r));
            }))
            .unwrap();
        rx.recv_timeout(WAIT).expect("the reactor ran the job")
    }

    pub fn stats(&self) -> Stats {
        self.on(|r| r.stats())
    }

    /// Waits until no connection is open or pending, then returns the stats.
    pub fn quiet_stats(&self) -> Stats {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.stats();
            if s.connections_open == 0 && s.handshakes_pending == 0 && s.budget_bytes == 0 {
                return s;
            }
            assert!(Instant::now() < deadline, "connections still open: {s:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sets the config of the connections made from now on.
    pub fn configure(&self, f: impl FnOnce(&mut ConnConfig) + Send + 'static) {
        self.on(move |r| {
            let mut config = ConnConfig::default();
            f(&mut config);
            r.set_config(Arc::new(config));
        });
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ------------------------------------------------------------------ expectations

#[derive(Clone, Copy, Debug)]
pub enum Moved {
    /// By exactly this much.
    By(u64),
    /// By something.
    Some,
    /// Maybe (e.g. a TLS alert written or not).
    Maybe,
}

pub use Moved::{By, Maybe, Some as Any};

/// Runs `scenario`, then checks that the counters listed moved as said and
/// that every other one stayed put.
pub fn check(server: &Server, name: &str, expected: &[(&str, Moved)], scenario: impl FnOnce()) {
    for (field, _) in expected {
        assert!(Stats::NAMES.contains(field), "{name}: no counter {field}");
    }
    let before = server.quiet_stats();
    scenario();
    let after = server.quiet_stats();
    let mut wrong = Vec::new();
    for ((field, b), a) in Stats::NAMES.iter().zip(before.values()).zip(after.values()) {
        let delta = a.wrapping_sub(b);
        let ok = match expected.iter().find(|(f, _)| f == field).map(|(_, m)| *m) {
            None => delta == 0,
            Some(By(n)) => delta == n,
            Some(Any) => delta > 0,
            Some(Maybe) => true,
        };
        if !ok {
            wrong.push(format!("{field} moved by {delta}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{name}: {}\nexpected {expected:?}\nafter {after:?}",
        wrong.join(", ")
    );
}

pub const WIRE: [(&str, Moved); 2] = [("wire_bytes_in", Any), ("wire_bytes_out", Any)];

pub fn with_wire(list: &[(&'static str, Moved)]) -> Vec<(&'static str, Moved)> {
    let mut all = WIRE.to_vec();
    all.extend_from_slice(list);
    all
}

// ------------------------------------------------------------------ clients

pub fn deadline() -> Instant {
    Instant::now() + WAIT
}

/// Reads frames until one with `opcode`; answers pings on the way.
pub fn read_until(c: &mut WsClient, opcode: u8) -> Frame {
    loop {
        let f = c
            .read_frame(deadline())
            .unwrap_or_else(|e| panic!("waiting for {opcode:#x}: {e:?}"));
        if f.opcode == opcode {
            return f;
        }
    }
}

/// A clean close from the client's side: 1000, the answer, the server's EOF.
pub fn close_cleanly(mut c: WsClient) {
    c.send_close(1000).unwrap();
    read_until(&mut c, OP_CLOSE);
    wait_closed(&mut c.stream, deadline()).unwrap();
}

/// The server closes: its close frame is answered, then its EOF awaited.
pub fn answer_close(mut c: WsClient) -> u16 {
    let f = read_until(&mut c, OP_CLOSE);
    c.send_close(1000).unwrap();
    wait_closed(&mut c.stream, deadline()).unwrap();
    u16::from_be_bytes([f.payload[0], f.payload[1]])
}

/// A client whose receive buffer is small (a subscriber that does not read
/// is slow soon).
pub fn slow_client(port: u16, path: &str) -> WsClient {
    let (c, _) = WsClient::open_with(port, path, "");
    let small: libc::c_int = 2048;
    // SAFETY: setsockopt on the client's socket with a valid int option.
    unsafe {
        libc::setsockopt(
            c.stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    c
}

pub fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).unwrap()
}

/// A library client on the server's reactor: sends one text message, closes
/// once it comes back; or just reports its end.
struct Dialer {
    text: String,
    ended: Arc<Mutex<Option<u16>>>,
}

impl ConnHandler for Dialer {
    fn on_open(&self, conn: &Connection<Self>, _path: &str, _subprotocol: Option<&str>) {
        conn.send(MessageKind::Text, self.text.as_bytes()).unwrap();
    }

    fn on_message(&self, conn: &Connection<Self>, _message: Message<'_>) {
        conn.close(1000, "done").unwrap();
    }

    fn on_close(&self, conn: &Connection<Self>, ending: &Ending<'_>) {
        *self.ended.lock().unwrap() = Some(ending.code);
        // SAFETY: made with `Connection::create` in `dial`; released once, here.
        unsafe { Connection::release(conn as *const Connection<Self> as *mut Connection<Self>) };
    }
}

/// Dials `url` from the server's reactor; returns the close code it ends with.
pub fn dial(server: &Server, url: String, text: &str) -> u16 {
    let ended = Arc::new(Mutex::new(None));
    let (mine, text) = (Arc::clone(&ended), text.to_owned());
    server.on(move |r| {
        let conn = Connection::create(r, Dialer { text, ended: mine });
        // SAFETY: just created; released in its on_close.
        if unsafe { conn.as_ref() }.connect(&url).is_err() {
            // SAFETY: never started.
            unsafe { Connection::release(conn.as_ptr()) };
        }
    });
    let end = Instant::now() + WAIT;
    loop {
        if let Some(code) = *ended.lock().unwrap() {
            return code;
        }
        assert!(Instant::now() < end, "the dialer never ended");
        thread::sleep(Duration::from_millis(10));
    }
}

/// How a reconnecting client's connection ended, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub code: u16,
    pub error: Option<Error>,
    /// The wait announced for the next attempt (`None`: none follows).
    pub retry_in: Option<u64>,
}

pub type Endings = Arc<Mutex<Vec<Ended>>>;

/// A library client that reconnects: records each end, and is released
/// once no attempt follows.
struct Redialer {
    endings: Endings,
}

impl ConnHandler for Redialer {
    fn on_close(&self, conn: &Connection<Self>, ending: &Ending<'_>) {
        let retry_in = conn.reconnect_delay();
        self.endings.lock().unwrap().push(Ended {
            code: ending.code,
            error: ending.error,
            retry_in,
        });
        if retry_in.is_none() {
            // SAFETY: made with `Connection::create` in `redial`; released
            // once, here, when it is over.
            unsafe { Connection::release(conn as *const Connection<Self> as *mut Connection<Self>) };
        }
    }
}

/// A reconnecting client on the server's reactor, dialing `url` every
/// `wait_ms`: its address (to `close_redialer` it while it waits) and its
/// endings.
pub fn redial(server: &Server, url: String, wait_ms: u32) -> (usize, Endings) {
    let endings = Endings::default();
    let mine = Arc::clone(&endings);
    let address = server.on(move |r| {
        let conn = Connection::create(r, Redialer { endings: mine });
        // SAFETY: just created; released in its on_close once it is over.
        let c = unsafe { conn.as_ref() };
        let mut config = ConnConfig::default();
        config.client.reconnect = Some(Backoff::new(wait_ms, wait_ms).unwrap());
        c.set_config(Arc::new(config)).unwrap();
        c.connect(&url).unwrap();
        conn.as_ptr() as usize
    });
    (address, endings)
}

/// Closes a client from `redial` that was not released yet.
pub fn close_redialer(server: &Server, address: usize) {
    server.on(move |_| {
        // SAFETY: a live connection from `redial` on this reactor (the caller
        // saw that no ending released it).
        let conn = unsafe { &*(address as *const Connection<Redialer>) };
        conn.close(1000, "enough").unwrap();
    });
}

/// Waits until `endings` holds `n`, then returns them.
pub fn wait_endings(endings: &Endings, n: usize) -> Vec<Ended> {
    let end = Instant::now() + WAIT;
    loop {
        let seen = endings.lock().unwrap().clone();
        if seen.len() >= n {
            return seen;
        }
        assert!(Instant::now() < end, "{n} endings awaited, seen {seen:?}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// An upgrade request for `path`, with `extra` header lines.
pub fn upgrade(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Another acceptor on the server's reactor, serving as the first, set up
/// by `setup` before it starts; returns its port.
pub fn acceptor(server: &Server, setup: impl FnOnce(&Acceptor) + Send + 'static) -> u16 {
    server.on(move |r| {
        let acceptor = Acceptor::create(r);
        // SAFETY: just created; lives as long as the reactor (detached with it).
        let a = unsafe { acceptor.as_ref() };
        setup(a);
        a.set_on_accept(Some(Box::new(serve)));
        a.start("127.0.0.1", 0).unwrap();
        a.port().unwrap()
    })
}

/// The lines the reactor's log told, collected.
pub type Lines = Arc<Mutex<Vec<LogLine>>>;

/// A line: its event, level, whether it names a connection, the peer, the message.
pub type LogLine = (LogEvent, Level, bool, Option<SocketAddr>, String);

pub fn collect_log(server: &Server, per_second: u32) -> Lines {
    let lines: Lines = Arc::default();
    let sink = Arc::clone(&lines);
    server.on(move |r| {
        r.set_log_rate(per_second);
        r.set_log(
            Some(Box::new(move |l: &LogRecord<'_>| {
                sink.lock()
                    .unwrap()
                    .push((l.event, l.level, l.conn.is_some(), l.peer, l.message.to_owned()))
            })),
            Level::Debug,
        );
    });
    lines
}

pub fn tls_pem() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

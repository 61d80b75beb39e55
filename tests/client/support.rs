//! What the client tests share: a recording client handler, servers that
//! answer whatever a test wants (raw HTTP on a thread), and an echo server
//! on a thread of its own that a test can stop and start again.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wsconn::runtime::config::ConnConfig;
use wsconn::runtime::connection::Connection;
use wsconn::runtime::error::Error;
use wsconn::runtime::handler::{ConnHandler, Ending};
use wsconn::runtime::reactor::Reactor;
use wsconn::Message;

use crate::rust_echo::Echo;

/// How a connection ended, and what the client could tell then.
#[derive(Debug, Clone)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
    pub error: Option<Error>,
    pub status: u16,
    pub proxy_status: u16,
    /// `reconnect_delay` in the close callback.
    pub delay: Option<u64>,
    /// The header the client watches, in the answer that refused it.
    pub header: Option<String>,
    pub at: Instant,
}

/// What a client saw.
#[derive(Default)]
pub struct Log {
    pub opens: Cell<u32>,
    pub open_times: RefCell<Vec<Instant>>,
    /// The status and watched header of the last 101.
    pub open_status: Cell<u16>,
    pub open_header: RefCell<Option<String>>,
    pub open_path: RefCell<String>,
    pub messages: RefCell<Vec<String>>,
    pub closes: RefCell<Vec<Closed>>,
}

impl Log {
    pub fn closed(&self) -> usize {
        self.closes.borrow().len()
    }

    pub fn last_close(&self) -> Closed {
        self.closes.borrow().last().cloned().expect("closed")
    }
}

pub type Hook = Box<dyn Fn(&Connection<Client>, &Log)>;

/// A client that records everything; sends `greeting` once open and closes
/// (1000) when its echo comes back.
pub struct Client {
    pub log: Rc<Log>,
    pub greeting: Option<String>,
    /// Close (1000) once the greeting comes back.
    pub close_on_echo: bool,
    pub watch: &'static str,
    pub on_close: Option<Hook>,
}

fn header(conn: &Connection<Client>, name: &str) -> Option<String> {
    conn.with_response(|b| {
        b.and_then(|b| b.get(name, 0))
            .map(|v| String::from_utf8_lossy(v).into_owned())
    })
}

impl ConnHandler for Client {
    fn on_open(&self, conn: &Connection<Self>, path: &str, _subprotocol: Option<&str>) {
        let log = &self.log;
        log.opens.set(log.opens.get() + 1);
        log.open_times.borrow_mut().push(Instant::now());
        log.open_status.set(conn.handshake_status());
        *log.open_header.borrow_mut() = header(conn, self.watch);
        *log.open_path.borrow_mut() = path.to_owned();
        if let Some(greeting) = &self.greeting {
            conn.send(wsconn::MessageKind::Text, greeting.as_bytes()).unwrap();
        }
    }

    fn on_message(&self, conn: &Connection<Self>, message: Message<'_>) {
        let text = String::from_utf8_lossy(message.as_bytes()).into_owned();
        let done = self.close_on_echo && self.greeting.as_deref() == Some(text.as_str());
        self.log.messages.borrow_mut().push(text);
        if done {
            conn.close(1000, "done").unwrap();
        }
    }

    fn on_close(&self, conn: &Connection<Self>, ending: &Ending<'_>) {
        self.log.closes.borrow_mut().push(Closed {
            code: ending.code,
            reason: ending.reason.to_owned(),
            error: ending.error,
            status: conn.handshake_status(),
            proxy_status: conn.proxy_status(),
            delay: conn.reconnect_delay(),
            header: header(conn, self.watch),
            at: Instant::now(),
        });
        if let Some(hook) = &self.on_close {
            hook(conn, &self.log);
        }
    }
}

/// A client of `url` with `config`, set up by `setup` before it connects.
pub fn client_with(
    reactor: &Reactor,
    url: &str,
    config: ConnConfig,
    setup: impl FnOnce(&mut Client),
) -> (NonNull<Connection<Client>>, Rc<Log>) {
    let log = Rc::new(Log::default());
    let mut handler = Client {
        log: Rc::clone(&log),
        greeting: Some("hello".to_owned()),
        close_on_echo: true,
        watch: "x-watched",
        on_close: None,
    };
    setup(&mut handler);
    let conn = Connection::create(reactor, handler);
    // SAFETY: just created; released by the caller.
    let c = unsafe { conn.as_ref() };
    c.set_config(Arc::new(config)).unwrap();
    c.connect(url).expect("connect accepted");
    (conn, log)
}

pub fn client(reactor: &Reactor, url: &str, config: ConnConfig) -> (NonNull<Connection<Client>>, Rc<Log>) {
    client_with(reactor, url, config, |_| {})
}

/// Releases a client made here.
pub fn release(conn: NonNull<Connection<Client>>) {
    // SAFETY: from `client_with`, not used afterwards.
    unsafe { Connection::release(conn.as_ptr()) };
}

/// Dispatches for `ms` milliseconds.
pub fn dispatch_for(reactor: &Reactor, ms: u64) {
    let end = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < end {
        reactor.dispatch(10).unwrap();
    }
}

/// A config with this handshake timeout.
pub fn config_with_timeout(ms: u32) -> ConnConfig {
    let mut config = ConnConfig::default();
    config.timeouts.set_handshake_ms(ms).unwrap();
    config
}

// ------------------------------------------------------------ raw servers

/// What a raw server does with a connection, given the request head.
pub enum Reply {
    /// Writes this, then closes.
    Close(Vec<u8>),
    /// Writes this, then keeps the connection until the client closes it.
    Hold(Vec<u8>),
    /// Writes this again and again until the client goes.
    Repeat(Vec<u8>),
    /// Never answers (keeps the connection until the client closes it).
    Silent,
}

/// A raw TCP server on 127.0.0.1 (a thread per connection).
pub struct RawServer {
    pub port: u16,
    /// The request heads read, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    pub accepted: Arc<AtomicUsize>,
}

impl RawServer {
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Reads up to the end of a head (or what comes within a short while).
fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    head
}

fn hold(mut stream: TcpStream) {
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 4096];
    while let Ok(1..) = stream.read(&mut buf) {}
}

/// Serves every connection with `reply`, given what was read of its request
/// head (raw: a SOCKS greeting is no head, and comes as it is).
pub fn raw_server(reply: impl Fn(&[u8]) -> Reply + Send + Sync + 'static) -> RawServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let accepted = Arc::new(AtomicUsize::new(0));
    let reply = Arc::new(reply);
    let (seen, count) = (Arc::clone(&requests), Arc::clone(&accepted));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let (reply, seen) = (Arc::clone(&reply), Arc::clone(&seen));
            std::thread::spawn(move || {
                let head = read_head(&mut stream);
                seen.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
                match reply(&head) {
                    Reply::Close(bytes) => {
                        let _ = stream.write_all(&bytes);
                    }
                    Reply::Hold(bytes) => {
                        let _ = stream.write_all(&bytes);
                        hold(stream);
                    }
                    Reply::Repeat(bytes) => while stream.write_all(&bytes).is_ok() {},
                    Reply::Silent => hold(stream),
                }
            });
        }
    });
    RawServer {
        port,
        requests,
        accepted,
    }
}

/// The value of header `name` in a request head.
pub fn request_header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// A 101 answering the upgrade request `head`, with `extra` header lines
/// (each ending in CRLF).
pub fn upgrade_reply(head: &[u8], extra: &str) -> Vec<u8> {
    let head = String::from_utf8_lossy(head);
    let key = request_header(&head, "Sec-WebSocket-Key").unwrap_or_default();
    let accept = wsconn::proto::handshake::accept_key(key.as_bytes());
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// The request target of a request head.
pub fn target_of(head: &[u8]) -> String {
    let head = String::from_utf8_lossy(head);
    head.split(' ').nth(1).unwrap_or_default().to_owned()
}

// ------------------------------------------------------------ a server on a thread

/// An echo server on a reactor of its own thread: stopping it drops the
/// reactor, which closes its listening socket and every connection at once
/// (the clients see TCP end, as when a server process dies).
pub struct ThreadServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ThreadServer {
    /// Listens on `port` (0: any).
    pub fn start(port: u16) -> ThreadServer {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let reactor = Reactor::new().unwrap();
            let acceptor = wsconn::runtime::acceptor::Acceptor::create(&reactor);
            // SAFETY: just created; released below after the last dispatch.
            let a = unsafe { acceptor.as_ref() };
            a.set_on_accept(Some(Box::new(|reactor, fd| {
                Connection::serve(reactor, fd, Echo).is_ok()
            })));
            let started = a.start("127.0.0.1", port as i32).map(|()| a.port().unwrap());
            let failed = started.is_err();
            tx.send(started).unwrap();
            while !failed && !stopping.load(Ordering::SeqCst) {
                reactor.dispatch(10).unwrap();
            }
            // SAFETY: from `create`, not used afterwards.
            unsafe { wsconn::runtime::acceptor::Acceptor::release(acceptor.as_ptr()) };
        });
        let port = rx.recv().unwrap().expect("listening");
        ThreadServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for ThreadServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

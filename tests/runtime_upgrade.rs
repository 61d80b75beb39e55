//! Who may connect, on the reactor: the program's decision at the upgrade
//! (at once or pending), answers written byte for byte, nothing that splits
//! a response, the origin allow-list, per-address limits, PROXY headers and
//! the explicit hand-off of accepted sockets to another reactor's thread,
//! the fd's owner after the accept callback, IPv6 addresses; and pending
//! decisions under load: 100 pending while open connections keep echoing,
//! 1,000 never decided ended by the handshake timeout (fds back to the
//! baseline), a client that leaves while its decision is pending.
//!
//! One server thread serves every case (the reactor and its connections
//! stay on it); the test thread drives raw clients and asks the server
//! thread for decisions through the reactor's job queue.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsconn::proto::handshake::answer::Header;
use wsconn::proto::handshake::request::UpgradeRequest;
use wsconn::proto::session::Subprotocol;
use wsconn::runtime::acceptor::{accepted, Acceptor};
use wsconn::runtime::config::ConnConfig;
use wsconn::runtime::connection::Connection;
use wsconn::runtime::handler::{ConnHandler, UpgradeDecision};
use wsconn::runtime::reactor::{Reactor, Remote};
use wsconn::runtime::refusal::Refusal;
use wsconn::{Config, Message};
use wsconn_testkit::client_frame;
use wsconn_testkit::{upgrade_request, RESPONSE};

/// The server's handler: decides by the request's path.
struct Server;

type Conn = Connection<Server>;

thread_local! {
    /// Every connection made (released at the end), and the pending ones.
    static CONNS: RefCell<Vec<*const Conn>> = const { RefCell::new(Vec::new()) };
    static PENDING: RefCell<Vec<*const Conn>> = const { RefCell::new(Vec::new()) };
    /// What `/split` saw when it tried to smuggle lines.
    static SPLIT_ERRORS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn h<'a>(name: &'a str, value: &'a str) -> Header<'a> {
    Header {
        name,
        value: value.as_bytes(),
    }
}

impl ConnHandler for Server {
    fn decides_upgrades(&self) -> bool {
        true
    }

    fn on_upgrade(&self, conn: &Conn, request: &UpgradeRequest) -> UpgradeDecision {
        let path = request.target().to_owned();
        match path.as_str() {
            "/pending" => {
                PENDING.with(|p| p.borrow_mut().push(conn));
                UpgradeDecision::Pending
            }
            "/reject" => {
                let cookie = request.header("cookie", 1).unwrap_or(b"none").to_vec();
                let body = format!("second cookie: {}", String::from_utf8_lossy(&cookie));
                conn.upgrade_reject(
                    418,
                    &[h("X-Reason", "teapot"), h("Content-Type", "text/plain")],
                    body.as_bytes(),
                )
                .unwrap();
                UpgradeDecision::Accept // ignored: decided inside
            }
            "/split" => {
                let bad = [
                    h("Set-Cookie", "a=1\r\nX-Injected: 1"),
                    h("Set-Cookie", "a=1\nX-Injected: 1"),
                    h("X-Nul", "a\0b"),
                    h("Bad Name", "1"),
                    h("Content-Length", "0"),
                ];
                for header in bad {
                    let accept = conn.upgrade_accept(Subprotocol::Default, &[header]);
                    let reject = conn.upgrade_reject(403, &[header], b"");
                    SPLIT_ERRORS.with(|e| e.borrow_mut().push(format!("{accept:?} {reject:?}")));
                }
                conn.upgrade_reject(99, &[], b"").unwrap_err();
                conn.upgrade_accept(Subprotocol::Named("not-offered"), &[]).unwrap_err();
                conn.upgrade_accept(Subprotocol::Default, &[h("Set-Cookie", "id=1; Path=/")])
                    .unwrap();
                UpgradeDecision::Reject(500) // ignored: decided inside
            }
            "/peer" => {
                let peer = conn.peer_addr().map(|a| a.to_string()).unwrap_or_default();
                conn.upgrade_reject(403, &[h("X-Peer", &peer)], b"").unwrap();
                UpgradeDecision::Pending
            }
            _ => UpgradeDecision::Accept,
        }
    }

    fn on_message(&self, conn: &Conn, message: Message<'_>) {
        let _ = conn.send_message(message);
    }
}

/// The server thread's reactor, its acceptors' ports and a handle.
struct Served {
    remote: Remote,
    port: u16,
    v6_port: u16,
    proxy_port: u16,
    handoff_port: u16,
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

fn serve_connection(reactor: &Reactor, fd: i32) -> bool {
    let conn = Connection::create(reactor, Server);
    // SAFETY: just created; released at the end of the test.
    let c = unsafe { conn.as_ref() };
    CONNS.with(|list| list.borrow_mut().push(conn.as_ptr()));
    c.set_fd(fd).unwrap();
    // Whatever it returns now, the connection owns the fd (it was claimed).
    c.start().is_ok() && fd % 2 == 0
}

fn start_server() -> Served {
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        let reactor = Reactor::new().unwrap();
        let mut protocol = Config::default();
        protocol.add_allowed_origin("https://good.example").unwrap();
        let mut config = ConnConfig {
            protocol: Arc::new(protocol),
            ..ConnConfig::default()
        };
        config.timeouts.set_handshake_ms(1500).unwrap();
        reactor.set_config(Arc::new(config));
        let listen = |ip: &str, configure: &dyn Fn(&Acceptor)| {
            let acc = Acceptor::create(&reactor);
            // SAFETY: just created; lives until the thread ends.
            let a = unsafe { acc.as_ref() };
            configure(a);
            a.set_on_accept(Some(Box::new(serve_connection)));
            a.start(ip, 0).unwrap();
            a.port().unwrap()
        };
        let port = listen("127.0.0.1", &|a| a.set_limits(0, 3).unwrap());
        let v6_port = listen("::1", &|_| {});
        let proxy_port = listen("127.0.0.1", &|a| {
            a.set_proxy_protocol(true).unwrap();
            a.set_limits(0, 1).unwrap();
        });
        // Hand-off: sockets taken in the callback, started on another thread.
        let (handoff_tx, handoff_rx) = mpsc::channel::<accepted::Accepted>();
        let handoff = Acceptor::create(&reactor);
        // SAFETY: just created; lives until the thread ends.
        let a = unsafe { handoff.as_ref() };
        a.set_proxy_protocol(true).unwrap();
        a.set_on_accept(Some(Box::new(move |_, fd| {
            handoff_tx.send(accepted::take(fd).unwrap()).unwrap();
            false // ignored: taken
        })));
        a.start("127.0.0.1", 0).unwrap();
        let handoff_port = a.port().unwrap();
        std::thread::spawn(move || {
            let worker = Reactor::new().unwrap();
            let mut conns = Vec::new();
            while let Ok(accepted) = handoff_rx.recv_timeout(Duration::from_secs(60)) {
                let conn = Connection::create(&worker, Server);
                // SAFETY: just created; released below.
                let c = unsafe { conn.as_ref() };
                c.set_accepted(accepted).unwrap();
                c.start().unwrap();
                conns.push(conn);
                let until = Instant::now() + Duration::from_secs(2);
                while Instant::now() < until {
                    worker.dispatch(10).unwrap();
                }
            }
            for conn in conns {
                // SAFETY: from create, not used afterwards.
                unsafe { Connection::release(conn.as_ptr()) };
            }
        });
        tx.send((reactor.remote(), port, v6_port, proxy_port, handoff_port))
            .unwrap();
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            reactor.dispatch(10).unwrap();
        }
        for conn in CONNS.with(|c| c.take()) {
            // SAFETY: made by serve_connection, not used afterwards.
            unsafe { Connection::release(conn.cast_mut()) };
        }
    });
    let (remote, port, v6_port, proxy_port, handoff_port) = rx.recv().unwrap();
    Served {
        remote,
        port,
        v6_port,
        proxy_port,
        handoff_port,
        thread: Some(thread),
        stop,
    }
}

impl Served {
    /// Runs `f` on the server's thread and returns what it returns.
    fn on_server<R: Send + 'static>(&self, f: impl FnOnce(&Reactor) -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        self.remote
            .defer(Box::new(move |reactor| tx.send(f(reactor)).unwrap()))
            .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    connect_from(None, addr)
}

/// A client on a loopback address of its own (the limits count by address).
fn connect_from(source: Option<std::net::IpAddr>, addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).unwrap();
    if let Some(ip) = source {
        socket.bind(&SocketAddr::new(ip, 0).into()).unwrap();
    }
    socket.connect(&addr.into()).unwrap();
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn request(path: &str, extra: &str) -> Vec<u8> {
    let mut r = upgrade_request("x", path);
    r.truncate(r.len() - 2);
    r.extend_from_slice(extra.as_bytes());
    r.extend_from_slice(b"\r\n");
    r
}

/// Everything until the peer closes.
fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    s.read_exact(&mut out).unwrap();
    out
}

fn echo(s: &mut TcpStream, text: &[u8]) {
    s.write_all(&client_frame(0x81, text)).unwrap();
    let got = read_exact(s, 2 + text.len());
    assert_eq!(&got[2..], text);
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn who_may_connect() {
    let served = start_server();
    let addr: SocketAddr = ([127, 0, 0, 1], served.port).into();

    // A refusal, byte for byte; repeated headers reachable.
    let mut s = connect(addr);
    s.write_all(&request("/reject", "Cookie: a=1\r\nCookie: b=2\r\n"))
        .unwrap();
    assert_eq!(
        read_all(&mut s),
        b"HTTP/1.1 418 Client Error\r\nX-Reason: teapot\r\nContent-Type: text/plain\r\n\
          Content-Length: 18\r\nConnection: close\r\n\r\nsecond cookie: b=2"
    );

    // Nothing splits a response; the one good line goes out as given.
    let mut s = connect(addr);
    s.write_all(&request("/split", "")).unwrap();
    let mut expected = RESPONSE[..RESPONSE.len() - 2].to_vec();
    expected.extend_from_slice(b"Set-Cookie: id=1; Path=/\r\n\r\n");
    assert_eq!(read_exact(&mut s, expected.len()), expected);
    echo(&mut s, b"after split");
    let errors = served.on_server(|_| SPLIT_ERRORS.with(|e| e.take()));
    assert_eq!(errors.len(), 5);
    for e in errors {
        assert_eq!(e, "Err(Session(InvalidArgument)) Err(Session(InvalidArgument))");
    }

    // The origin list: 403 before the program sees the request.
    let mut s = connect(addr);
    s.write_all(&request("/", "Origin: https://evil.example\r\n")).unwrap();
    assert!(read_all(&mut s).starts_with(b"HTTP/1.1 403 Forbidden\r\n"));
    let mut s = connect(addr);
    s.write_all(&request("/", "Origin: https://GOOD.example\r\n")).unwrap();
    assert_eq!(read_exact(&mut s, RESPONSE.len()), RESPONSE);
    drop(s);

    // Pending: early bytes kept and echoed once accepted; 100 pending while
    // an open connection keeps echoing promptly.
    let mut open = connect(addr);
    open.write_all(&request("/", "")).unwrap();
    read_exact(&mut open, RESPONSE.len());
    let mut pending: Vec<TcpStream> = (0..100)
        .map(|i| {
            let mut s = connect_from(Some(source_of(i)), addr);
            let mut r = request("/pending", "");
            r.extend_from_slice(&client_frame(0x81, b"early"));
            s.write_all(&r).unwrap();
            s
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(10);
    while served.on_server(|_| PENDING.with(|p| p.borrow().len())) < 100 {
        assert!(Instant::now() < until, "the 100 requests reached the program");
        std::thread::sleep(Duration::from_millis(10));
    }
    for i in 0..50 {
        let t = Instant::now();
        echo(&mut open, format!("while pending {i}").as_bytes());
        assert!(t.elapsed() < Duration::from_secs(1), "echo {i} took {:?}", t.elapsed());
    }
    let accepted = served.on_server(|_| {
        PENDING.with(|p| {
            p.take()
                .into_iter()
                // SAFETY: kept alive until the end of the test (CONNS).
                .map(|c| unsafe { &*c }.upgrade_accept(Subprotocol::Default, &[]).is_ok())
                .filter(|ok| *ok)
                .count()
        })
    });
    assert_eq!(accepted, 100);
    for s in &mut pending {
        assert_eq!(read_exact(s, RESPONSE.len()), RESPONSE);
        assert_eq!(read_exact(s, 7), b"\x81\x05early");
        echo(s, b"later");
    }
    drop(pending);

    // A client that leaves while pending: the connection ends; a decision
    // taken afterwards says so.
    let mut s = connect(addr);
    s.write_all(&request("/pending", "")).unwrap();
    while served.on_server(|_| PENDING.with(|p| p.borrow().len())) < 1 {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(s);
    std::thread::sleep(Duration::from_millis(200));
    let late = served.on_server(|_| {
        let c = PENDING.with(|p| p.take()).pop().unwrap();
        // SAFETY: kept alive until the end of the test (CONNS).
        let c = unsafe { &*c };
        (
            c.upgrade_accept(Subprotocol::Default, &[]),
            c.upgrade_reject(403, &[], b""),
            c.close_error(),
        )
    });
    assert_eq!(
        format!("{late:?}"),
        "(Err(Session(Closed)), Err(Session(Closed)), Some(Session(Eof)))"
    );

    // 1,000 never decided: the handshake timeout ends them, fds come back.
    let baseline = served.on_server(|_| open_fds());
    let refused_before = served.on_server(|r| r.refused(Refusal::Timeout));
    let mut never: Vec<TcpStream> = (0..1000)
        .map(|i| {
            let mut s = connect_from(Some(source_of(i)), addr);
            s.write_all(&request("/pending", "")).unwrap();
            s
        })
        .collect();
    for s in &mut never {
        let answer = read_all(s);
        assert!(answer.is_empty(), "closed without an answer");
    }
    drop(never);
    let until = Instant::now() + Duration::from_secs(10);
    while served.on_server(|_| open_fds()) > baseline {
        assert!(Instant::now() < until, "fds back to the baseline");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(served.on_server(|r| r.refused(Refusal::Timeout)) - refused_before, 1000);
    served.on_server(|_| PENDING.with(|p| p.take().len()));

    // Limits: 3 per address; a fourth from the same address is closed at
    // accept, another address still gets in.
    let limited: std::net::IpAddr = [127, 0, 0, 3].into();
    let held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = connect_from(Some(limited), addr);
            s.write_all(&request("/", "")).unwrap();
            read_exact(&mut s, RESPONSE.len());
            s
        })
        .collect();
    let mut over = connect_from(Some(limited), addr);
    let _ = over.write_all(&request("/", ""));
    assert!(read_all(&mut over).is_empty(), "over the limit: closed at accept");
    let mut other = connect_from(Some([127, 0, 0, 2].into()), addr);
    other.write_all(&request("/", "")).unwrap();
    assert_eq!(read_exact(&mut other, RESPONSE.len()), RESPONSE);
    assert!(served.on_server(|r| r.refused(Refusal::Limits)) >= 1);
    drop(held);

    // IPv6: the peer's address as the program sees it.
    let mut s = connect(([0, 0, 0, 0, 0, 0, 0, 1], served.v6_port).into());
    s.write_all(&request("/peer", "")).unwrap();
    let answer = String::from_utf8(read_all(&mut s)).unwrap();
    assert!(answer.contains("X-Peer: [::1]:"), "{answer}");

    // PROXY protocol: the header's address is the client's, for the program
    // and the limits (1 per address).
    let proxied = |client: &str, path: &str| {
        let mut s = connect(([127, 0, 0, 1], served.proxy_port).into());
        let mut bytes = format!("PROXY TCP4 {client} 127.0.0.1 40000 80\r\n").into_bytes();
        bytes.extend_from_slice(&request(path, ""));
        s.write_all(&bytes).unwrap();
        s
    };
    let mut s = proxied("192.0.2.7", "/peer");
    let answer = String::from_utf8(read_all(&mut s)).unwrap();
    assert!(answer.contains("X-Peer: 192.0.2.7:40000"), "{answer}");
    let mut first = proxied("192.0.2.8", "/");
    assert_eq!(read_exact(&mut first, RESPONSE.len()), RESPONSE);
    let mut second = proxied("192.0.2.8", "/");
    assert!(
        read_all(&mut second).is_empty(),
        "the same client twice: over its limit"
    );
    let mut third = proxied("192.0.2.9", "/");
    assert_eq!(read_exact(&mut third, RESPONSE.len()), RESPONSE);
    let mut garbage = connect(([127, 0, 0, 1], served.proxy_port).into());
    garbage.write_all(&request("/", "")).unwrap();
    assert!(read_all(&mut garbage).is_empty(), "no PROXY header: closed");

    // The hand-off: taken in the callback, started on another reactor's
    // thread, with the address the acceptor read.
    let mut s = connect(([127, 0, 0, 1], served.handoff_port).into());
    let mut bytes = b"PROXY TCP6 2001:db8::5 ::1 4242 443\r\n".to_vec();
    bytes.extend_from_slice(&request("/peer", ""));
    s.write_all(&bytes).unwrap();
    let answer = String::from_utf8(read_all(&mut s)).unwrap();
    assert!(answer.contains("X-Peer: [2001:db8::5]:4242"), "{answer}");
}

/// Clients from many loopback addresses (the limit counts 3 per address).
fn source_of(i: usize) -> std::net::IpAddr {
    [127, 1, (i / 250) as u8, (i % 250 + 1) as u8].into()
}

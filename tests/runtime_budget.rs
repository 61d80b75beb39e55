//! The reactor's memory budget from Rust: large messages from several clients
//! at once all complete under a budget smaller than their sum (one keeps being
//! read while the others wait), and every byte charged comes back however a
//! connection ends: a clean close, a protocol error, EOF in mid-message, a stop.
//! Over budget, connections that hold only compression streams are still
//! read, and the message and idle clocks of the connections held back stop.
//! A peer whose compressed messages inflate past the ratio is closed (1009)
//! and counted.

mod rust_echo;

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use rust_echo::{dedicated_deflate, echo_server, Echo};
use wsconn::proto::deflate::deflater::Deflater;
use wsconn::runtime::acceptor::Acceptor;
use wsconn::runtime::config::ConnConfig;
use wsconn::runtime::connection::Connection;
use wsconn::runtime::handler::ConnHandler;
use wsconn::runtime::reactor::{MemoryUsage, Reactor};
use wsconn::{Config, DeflateConfig, Message, MessageKind};

use wsconn_testkit::{WsClient, OP_BINARY, OP_CLOSE, OP_CONT, OP_TEXT};

/// RSV1 in a frame's first byte: a compressed message.
const RSV1: u8 = 0x40;

const MIB: usize = 1 << 20;

/// How a client ends its connection.
type End = fn(&mut WsClient);

/// When a client stops waiting for a frame.
fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// A payload that tells its client and position apart.
fn payload(client: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + client * 13 + i / 4099) as u8).collect()
}

/// Runs the reactor until `done` says so (checking the usage each turn).
fn run(reactor: &Reactor, seconds: u64, mut done: impl FnMut(MemoryUsage) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done(reactor.memory_usage()) {
        assert!(
            Instant::now() < deadline,
            "timed out; usage {:?}",
            reactor.memory_usage()
        );
        reactor.dispatch(20).expect("dispatch");
    }
}

#[test]
fn large_messages_from_many_clients_all_complete_under_a_small_budget() {
    let reactor = Reactor::new().unwrap();
    reactor.set_memory_budget(2 * MIB);
    let (acceptor, port) = echo_server(&reactor);
    let (done_tx, done_rx) = mpsc::channel();
    let clients = 6;
    let size = 3 * MIB;
    for c in 0..clients {
        let done_tx = done_tx.clone();
        thread::spawn(move || {
            let mut s = WsClient::open(port, "/");
            let data = payload(c, size);
            // In 64 KiB frames: the server reassembles a fragmented message.
            let chunks: Vec<&[u8]> = data.chunks(64 << 10).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                let opcode = if i == 0 { OP_BINARY } else { OP_CONT };
                s.send_frame(i + 1 == chunks.len(), opcode, chunk).expect("send");
            }
            let echo = s.read_frame(deadline()).expect("the echo");
            done_tx
                .send((c, echo.opcode == OP_BINARY && echo.payload == data))
                .unwrap();
            s.send_close(1000).unwrap();
            let _ = s.read_frame(deadline());
        });
    }
    let mut results = Vec::new();
    let mut most_waiting = 0;
    run(&reactor, 60, |usage| {
        most_waiting = most_waiting.max(usage.waiting);
        results.extend(done_rx.try_iter());
        results.len() == clients
    });
    assert!(results.iter().all(|&(_, whole)| whole), "echoes not whole: {results:?}");
    assert!(most_waiting > 0, "the budget never held a connection back");
    run(&reactor, 10, |usage| {
        usage
            == MemoryUsage {
                buffered: 0,
                waiting: 0,
            }
    });
    // SAFETY: created by `echo_server`, not used afterwards.
    unsafe { Acceptor::release(acceptor.as_ptr()) };
}

#[test]
fn every_byte_charged_comes_back_however_connections_end() {
    let reactor = Reactor::new().unwrap();
    let (acceptor, port) = echo_server(&reactor);
    // Each client holds a partial message, then ends its way.
    let ends: [(&str, End); 3] = [
        ("eof in mid-message", |s| s.shutdown()),
        ("protocol error", |s| {
            // A new message inside the fragmented one: 1002.
            s.send_frame(true, OP_TEXT, b"x").unwrap();
        }),
        ("clean close", |s| {
            s.send_frame(true, OP_CONT, b"end").unwrap();
            s.send_close(1000).unwrap();
        }),
    ];
    // Clients on threads (the reactor runs on this one): each sends its
    // partial message, then ends its way when told.
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = std::sync::Arc::new(std::sync::Mutex::new(go_rx));
    let clients: Vec<_> = ends
        .iter()
        .map(|&(name, end)| {
            let go_rx = std::sync::Arc::clone(&go_rx);
            thread::spawn(move || {
                let mut s = WsClient::open(port, "/");
                s.send_frame(false, OP_BINARY, &payload(0, 300_000))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                go_rx.lock().unwrap().recv().unwrap();
                end(&mut s);
                // Until the server has dropped the connection.
                while s.read_frame(deadline()).is_ok() {}
            })
        })
        .collect();
    // The partial messages are charged...
    run(&reactor, 20, |usage| usage.buffered >= ends.len() * 300_000);
    // ...and given back once each connection ended.
    for _ in &ends {
        go_tx.send(()).unwrap();
    }
    run(&reactor, 20, |usage| {
        usage
            == MemoryUsage {
                buffered: 0,
                waiting: 0,
            }
    });
    run(&reactor, 20, |_| clients.iter().all(|c| c.is_finished()));
    // SAFETY: created by `echo_server`, not used afterwards.
    unsafe { Acceptor::release(acceptor.as_ptr()) };
}

#[test]
fn a_connection_released_in_mid_message_gives_its_memory_back() {
    let reactor = Reactor::new().unwrap();
    // Connections the program owns (and releases), not the reactor.
    let conns: Rc<RefCell<Vec<NonNull<Connection<Echo>>>>> = Rc::default();
    let acceptor = Acceptor::create(&reactor);
    // SAFETY: just created, released at the end of the test.
    let a = unsafe { acceptor.as_ref() };
    let owned = Rc::clone(&conns);
    a.set_on_accept(Some(Box::new(move |reactor, fd| {
        let conn = Connection::create(reactor, Echo);
        // SAFETY: just created; released by the test.
        let c = unsafe { conn.as_ref() };
        owned.borrow_mut().push(conn);
        c.set_fd(fd).is_ok() && c.start().is_ok()
    })));
    a.start("127.0.0.1", 0).expect("listening");
    let port = a.port().unwrap();
    let client = thread::spawn(move || {
        let mut s = WsClient::open(port, "/");
        s.send_frame(false, OP_BINARY, &payload(1, 200_000)).unwrap();
        // Until the server drops the connection.
        while s.read_frame(deadline()).is_ok() {}
    });
    run(&reactor, 20, |usage| usage.buffered >= 200_000);
    for conn in conns.borrow_mut().drain(..) {
        // SAFETY: from `create`, not used afterwards.
        unsafe { Connection::release(conn.as_ptr()) };
    }
    assert_eq!(
        reactor.memory_usage(),
        MemoryUsage {
            buffered: 0,
            waiting: 0
        }
    );
    run(&reactor, 20, |_| client.is_finished());
    // SAFETY: not used afterwards.
    unsafe { Acceptor::release(acceptor.as_ptr()) };
}

/// Counts the messages a client connection gets back.
struct Counting(Rc<Cell<usize>>);

impl ConnHandler for Counting {
    fn on_message(&self, _conn: &Connection<Self>, _message: Message<'_>) {
        self.0.set(self.0.get() + 1);
    }
}

/// Runs both reactors (on this thread) until `done` says so.
fn run_both(server: &Reactor, client: &Reactor, seconds: u64, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; server usage {:?}",
            server.memory_usage()
        );
        server.dispatch(5).expect("dispatch");
        client.dispatch(5).expect("dispatch");
    }
}

#[test]
fn over_budget_idle_connections_holding_compression_streams_still_get_small_messages_through() {
    let reactor = Reactor::new().unwrap();
    reactor.set_memory_budget(MIB);
    reactor.set_config(dedicated_deflate(0));
    let (acceptor, port) = echo_server(&reactor);
    // A client with context takeover: one compressed exchange, then quiet.
    let clients = Reactor::new().unwrap();
    let echoes = Rc::new(Cell::new(0));
    let conn = Connection::create(&clients, Counting(Rc::clone(&echoes)));
    // SAFETY: just created; released at the end.
    let c = unsafe { conn.as_ref() };
    c.set_config(dedicated_deflate(0)).unwrap();
    c.connect(&format!("ws://127.0.0.1:{port}/")).unwrap();
    run_both(&reactor, &clients, 20, "the handshake", || c.established().is_ok());
    let text = "{\"id\":7,\"name\":\"someone\",\"ok\":true},".repeat(20);
    c.send(MessageKind::Text, text.as_bytes()).unwrap();
    run_both(&reactor, &clients, 20, "the first echo", || echoes.get() == 1);
    // Partial uploads fill the budget, and stall.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let stop_rx = std::sync::Arc::new(std::sync::Mutex::new(stop_rx));
    let uploaders: Vec<_> = (0..2)
        .map(|i| {
            let stop_rx = std::sync::Arc::clone(&stop_rx);
            thread::spawn(move || {
                let mut s = WsClient::open(port, "/");
                s.send_frame(false, OP_BINARY, &payload(i, 800 << 10)).unwrap();
                let _ = stop_rx.lock().unwrap().recv();
            })
        })
        .collect();
    run(&reactor, 20, |usage| usage.buffered >= MIB);
    // The quiet connection holds streams, not a message: it is still read.
    c.send(MessageKind::Text, text.as_bytes()).unwrap();
    run_both(&reactor, &clients, 10, "the echo over budget", || echoes.get() == 2);
    drop(stop_tx);
    for u in uploaders {
        u.join().unwrap();
    }
    // SAFETY: from `create`, not used afterwards.
    unsafe { Connection::release(conn.as_ptr()) };
    // SAFETY: created by `echo_server`, not used afterwards.
    unsafe { Acceptor::release(acceptor.as_ptr()) };
}

#[test]
fn the_message_and_idle_clocks_stop_while_the_budget_holds_a_connection_back() {
    const TIMEOUT_MS: u64 = 2000;
    let reactor = Reactor::new().unwrap();
    reactor.set_memory_budget(MIB);
    let mut config = ConnConfig::default();
    config.timeouts.set_message_ms(TIMEOUT_MS as u32);
    // B is silent for 60% of it before the budget holds it back.
    config.timeouts.set_idle_ms(TIMEOUT_MS as u32 * 9 / 10);
    reactor.set_config(Arc::new(config));
    let (acceptor, port) = echo_server(&reactor);
    let (go_tx, go_rx) = mpsc::channel::<()>();
    // B: part of its message, then the rest once told; it must be echoed.
    let b_data = payload(2, 700 << 10);
    let b = thread::spawn(move || {
        let mut s = WsClient::open(port, "/");
        s.send_frame(false, OP_BINARY, &b_data[..200 << 10]).unwrap();
        go_rx.recv().unwrap();
        s.send_frame(true, OP_CONT, &b_data[200 << 10..]).unwrap();
        let echo = s.read_frame(deadline()).expect("B's echo");
        echo.opcode == OP_BINARY && echo.payload == b_data
    });
    run(&reactor, 10, |usage| usage.buffered >= 200 << 10);
    let started = Instant::now();
    // B's clock runs for 60% of the timeout…
    run(&reactor, 10, |_| {
        started.elapsed() >= Duration::from_millis(TIMEOUT_MS * 6 / 10)
    });
    // …then A fills the budget and goes on for 60% of the timeout more,
    // the budget's holder; B, sending meanwhile, waits for it.
    let a = thread::spawn(move || {
        let mut s = WsClient::open(port, "/");
        let data = payload(1, 3 * MIB);
        s.send_frame(false, OP_BINARY, &data[..MIB]).unwrap();
        let chunks: Vec<&[u8]> = data[MIB..].chunks(100 << 10).collect();
        let pause = Duration::from_millis(TIMEOUT_MS * 6 / 10 / chunks.len() as u64);
        for (i, chunk) in chunks.iter().enumerate() {
            thread::sleep(pause);
            s.send_frame(i + 1 == chunks.len(), OP_CONT, chunk).unwrap();
        }
        let echo = s.read_frame(deadline()).expect("A's echo");
        echo.payload == data
    });
    let mut go = Some(go_tx);
    let mut most_waiting = 0;
    run(&reactor, 30, |usage| {
        if usage.buffered >= MIB {
            if let Some(go) = go.take() {
                go.send(()).unwrap();
            }
        }
        most_waiting = most_waiting.max(usage.waiting);
        a.is_finished() && b.is_finished()
    });
    let elapsed = started.elapsed();
    assert!(a.join().unwrap(), "A's echo");
    assert!(b.join().unwrap(), "B was not echoed (closed after {elapsed:?}?)");
    assert!(most_waiting > 0, "the budget never held B back");
    assert!(
        elapsed > Duration::from_millis(TIMEOUT_MS),
        "B's message took {elapsed:?}: the test needs it to outlast the timeout"
    );
    // SAFETY: created by `echo_server`, not used afterwards.
    unsafe { Acceptor::release(acceptor.as_ptr()) };
}

#[test]
fn a_peer_whose_messages_inflate_past_the_ratio_is_closed_and_counted() {
    let reactor = Reactor::new().unwrap();
    let mut protocol = Config::default();
    protocol.set_deflate(Some(DeflateConfig::shared()));
    reactor.set_config(Arc::new(ConnConfig {
        protocol: Arc::new(protocol),
        ..ConnConfig::default()
    }));
    // A server that reads messages and answers none.
    struct Quiet;
    impl ConnHandler for Quiet {}
    let acceptor = Acceptor::create(&reactor);
    // SAFETY: just created; released at the end.
    let a = unsafe { acceptor.as_ref() };
    a.set_on_accept(Some(Box::new(|reactor, fd| {
        Connection::serve(reactor, fd, Quiet).is_ok()
    })));
    a.start("127.0.0.1", 0).unwrap();
    let port = a.port().unwrap();
    // 1 MiB of zeros compresses to about 1 KiB, message after message.
    let mut bomb = Vec::new();
    Deflater::compress_alone(15, 9, 9, &vec![0u8; MIB], &mut bomb);
    let client = thread::spawn(move || {
        let (mut s, _) = WsClient::open_with(port, "/", "Sec-WebSocket-Extensions: permessage-deflate\r\n");
        for _ in 0..16 {
            if s.send_frame(true, OP_BINARY | RSV1, &bomb).is_err() {
                break;
            }
        }
        loop {
            match s.read_frame(deadline()) {
                Ok(f) if f.opcode == OP_CLOSE => return u16::from_be_bytes([f.payload[0], f.payload[1]]),
                Ok(_) => {}
                Err(e) => panic!("no close: {e:?}"),
            }
        }
    });
    run(&reactor, 20, |_| client.is_finished());
    assert_eq!(client.join().unwrap(), 1009);
    assert_eq!(reactor.inflate_ratio_closes(), 1);
    // SAFETY: from `create`, not used afterwards.
    unsafe { Acceptor::release(acceptor.as_ptr()) };
}

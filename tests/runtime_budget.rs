//! The reactor's memory budget from Rust: large messages from several clients
//! at once all complete under a budget smaller than their sum (one keeps being
//! read while the others wait), and every byte charged comes back however a
//! connection ends: a clean close, a protocol error, EOF in mid-message, a stop.

mod rust_echo;

use std::cell::RefCell;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rust_echo::{echo_server, Echo};
use wsconn::runtime::acceptor::Acceptor;
use wsconn::runtime::connection::Connection;
use wsconn::runtime::reactor::{MemoryUsage, Reactor};

use wsconn_testkit::{WsClient, OP_BINARY, OP_CONT, OP_TEXT};

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

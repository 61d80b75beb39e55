//! Topics from Rust, on the order of bytes on the wire: a published message
//! goes between what the connection sent before and after it was published;
//! one published in the middle of a fragmented send waits for its last
//! fragment; a client-role subscriber sends a masked copy (the server
//! receiving it checks the mask). A reactor runs on its own thread; raw
//! clients (testkit's `WsClient`) read what arrives.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use wsconn::runtime::acceptor::Acceptor;
use wsconn::runtime::connection::Connection;
use wsconn::runtime::handler::ConnHandler;
use wsconn::runtime::reactor::Reactor;
use wsconn::{Message, MessageKind};
use wsconn_testkit::{Frame, WsClient, OP_CONT, OP_TEXT};

/// Server connections: subscribe to "t" when open; commands by message.
struct Member {
    reactor: *const Reactor,
    /// Messages received by the server (from the client-role subscriber).
    received: mpsc::Sender<String>,
}

impl Member {
    fn reactor(&self) -> &Reactor {
        // SAFETY: the reactor outlives its connections (it is dropped last, on its thread).
        unsafe { &*self.reactor }
    }
}

impl ConnHandler for Member {
    fn on_open(&self, conn: &Connection<Self>, _path: &str, _subprotocol: Option<&str>) {
        assert!(conn.subscribe("t").unwrap());
        assert!(!conn.subscribe("t").unwrap(), "twice is once");
    }

    fn on_message(&self, conn: &Connection<Self>, message: Message<'_>) {
        let Message::Text(text) = message else { return };
        let publish = |m: &str| self.reactor().publish("t", Message::Text(m), None);
        match text {
            "around" => {
                conn.send(MessageKind::Text, b"before").unwrap();
                assert_eq!(publish("published"), 1);
                conn.send(MessageKind::Text, b"after").unwrap();
            }
            "fragmented" => {
                conn.send_fragment(MessageKind::Text, b"one-", false).unwrap();
                assert_eq!(publish("waits"), 1);
                conn.send_fragment(MessageKind::Text, b"two", true).unwrap();
                conn.send(MessageKind::Text, b"after").unwrap();
            }
            "others" => {
                assert_eq!(conn.publish_to_others("t", Message::Text("not to me")).unwrap(), 0);
                conn.send(MessageKind::Text, b"done").unwrap();
            }
            other => self.received.send(other.to_owned()).unwrap(),
        }
    }
}

/// A client-role connection subscribing to "t" once open.
struct Subscriber(mpsc::Sender<()>);

impl ConnHandler for Subscriber {
    fn on_open(&self, conn: &Connection<Self>, _path: &str, _subprotocol: Option<&str>) {
        conn.subscribe("t").unwrap();
        self.0.send(()).unwrap();
    }
}

fn text(frame: &Frame) -> (u8, bool, String) {
    (
        frame.opcode,
        frame.fin,
        String::from_utf8(frame.payload.clone()).unwrap(),
    )
}

#[test]
fn published_frames_keep_their_place_among_a_connection_s_own_output() {
    let stop = Arc::new(AtomicBool::new(false));
    let (port_tx, port_rx) = mpsc::channel();
    let (received_tx, received_rx) = mpsc::channel();
    let (subscribed_tx, subscribed_rx) = mpsc::channel();
    let (publish_tx, publish_rx) = mpsc::channel::<()>();
    let stopping = Arc::clone(&stop);
    let server = thread::spawn(move || {
        let reactor = Reactor::new().unwrap();
        let acceptor = Acceptor::create(&reactor);
        // SAFETY: released below, after the last dispatch.
        let a = unsafe { acceptor.as_ref() };
        let r: *const Reactor = &*reactor;
        a.set_on_accept(Some(Box::new(move |reactor, fd| {
            let member = Member {
                reactor: r,
                received: received_tx.clone(),
            };
            Connection::serve(reactor, fd, member).is_ok()
        })));
        a.start("127.0.0.1", 0).unwrap();
        let port = a.port().unwrap();
        port_tx.send(port).unwrap();
        let mut client = None;
        while !stopping.load(Ordering::Relaxed) {
            reactor.dispatch(10).unwrap();
            if publish_rx.try_recv().is_ok() {
                // A client-role subscriber on the same reactor, then a publish
                // that reaches it (and is sent masked to the server).
                let c = Connection::create(&reactor, Subscriber(subscribed_tx.clone()));
                // SAFETY: just created; released below.
                unsafe { c.as_ref() }
                    .connect(&format!("ws://127.0.0.1:{port}/"))
                    .unwrap();
                client = Some(c);
            }
            if subscribed_rx.try_recv().is_ok() {
                // The raw client's server side, the client-role connection and
                // its server side.
                assert_eq!(reactor.subscribers("t"), 3);
                reactor.publish("t", Message::Text("to the server"), None);
            }
        }
        if let Some(c) = client {
            // SAFETY: from create, not used afterwards.
            unsafe { Connection::release(c.as_ptr()) };
        }
        // SAFETY: from create, not used afterwards.
        unsafe { Acceptor::release(acceptor.as_ptr()) };
    });
    let port = port_rx.recv().unwrap();
    let mut client = WsClient::open(port, "/");
    let deadline = || Instant::now() + Duration::from_secs(10);
    let read = |client: &mut WsClient| text(&client.read_frame(deadline()).unwrap());

    client.send_text("around").unwrap();
    for expected in ["before", "published", "after"] {
        assert_eq!(read(&mut client), (OP_TEXT, true, expected.into()));
    }
    client.send_text("fragmented").unwrap();
    assert_eq!(read(&mut client), (OP_TEXT, false, "one-".into()));
    assert_eq!(read(&mut client), (OP_CONT, true, "two".into()));
    assert_eq!(read(&mut client), (OP_TEXT, true, "waits".into()));
    assert_eq!(read(&mut client), (OP_TEXT, true, "after".into()));
    client.send_text("others").unwrap();
    assert_eq!(read(&mut client), (OP_TEXT, true, "done".into()));

    publish_tx.send(()).unwrap();
    let got = received_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(got, "to the server");
    // The raw client got it too, once.
    assert_eq!(read(&mut client), (OP_TEXT, true, "to the server".into()));
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
}

/// Server connections that join "room" once open.
struct Joiner;

impl ConnHandler for Joiner {
    fn on_open(&self, conn: &Connection<Self>, _path: &str, _subprotocol: Option<&str>) {
        conn.subscribe("room").unwrap();
    }
}

/// Client connections: count what arrives (joining "room" on their own
/// reactor when `join`).
struct Counter {
    join: bool,
    received: Rc<Cell<usize>>,
}

impl ConnHandler for Counter {
    fn on_open(&self, conn: &Connection<Self>, _path: &str, _subprotocol: Option<&str>) {
        if self.join {
            conn.subscribe("room").unwrap();
        }
    }

    fn on_message(&self, _conn: &Connection<Self>, _message: Message<'_>) {
        self.received.set(self.received.get() + 1);
    }
}

/// A server reactor whose connections join "room", and `n` clients of it on
/// a second reactor (both run by this thread). The clients join "room" on
/// their own reactor too when `join`.
struct Room {
    // Boxed: connections and acceptors keep the address of their reactor.
    server: std::pin::Pin<Box<Reactor>>,
    clients: std::pin::Pin<Box<Reactor>>,
    acceptor: std::ptr::NonNull<Acceptor>,
    conns: Vec<std::ptr::NonNull<Connection<Counter>>>,
    received: Rc<Cell<usize>>,
    port: u16,
}

impl Room {
    fn new(n: usize, join: bool, budget: usize) -> Room {
        let server = Reactor::new().unwrap();
        let clients = Reactor::new().unwrap();
        let acceptor = Acceptor::create(&server);
        // SAFETY: released in Drop, after the last dispatch.
        let a = unsafe { acceptor.as_ref() };
        a.set_on_accept(Some(Box::new(|reactor, fd| {
            Connection::serve(reactor, fd, Joiner).is_ok()
        })));
        a.start("127.0.0.1", 0).unwrap();
        let port = a.port().unwrap();
        server.set_memory_budget(budget);
        clients.set_memory_budget(budget);
        let received = Rc::new(Cell::new(0));
        let conns = (0..n)
            .map(|_| {
                let conn = Connection::create(
                    &clients,
                    Counter {
                        join,
                        received: Rc::clone(&received),
                    },
                );
                // SAFETY: just created; released in Drop.
                unsafe { conn.as_ref() }
                    .connect(&format!("ws://127.0.0.1:{port}/"))
                    .unwrap();
                conn
            })
            .collect();
        let room = Room {
            server,
            clients,
            acceptor,
            conns,
            received,
            port,
        };
        room.run("every member to join", || {
            room.server.subscribers("room") == n && (!join || room.clients.subscribers("room") == n)
        });
        room
    }

    fn run(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: server {:?}, clients {:?}",
                self.server.memory_usage(),
                self.clients.memory_usage()
            );
            self.server.dispatch(5).unwrap();
            self.clients.dispatch(5).unwrap();
        }
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        for conn in self.conns.drain(..) {
            // SAFETY: from `create`, not used afterwards.
            unsafe { Connection::release(conn.as_ptr()) };
        }
        // SAFETY: from `create`, not used afterwards.
        unsafe { Acceptor::release(self.acceptor.as_ptr()) };
    }
}

#[test]
fn a_published_frame_is_charged_once_however_many_subscribers_hold_it() {
    const MEMBERS: usize = 100;
    let room = Room::new(MEMBERS, false, 64 << 20);
    let payload = vec![5u8; 1 << 20];
    // Two publishes in one turn: both wait for the sockets, shared.
    assert_eq!(room.server.publish("room", Message::Binary(&payload), None), MEMBERS);
    let charged = room.server.memory_usage().buffered;
    assert_eq!(
        room.server.publish("room", Message::Binary(&payload), None),
        MEMBERS,
        "the second publish, with {charged} bytes charged for the first"
    );
    let charged = room.server.memory_usage().buffered;
    println!(
        "2 × 1 MiB published to {MEMBERS} subscribers: {} KiB charged",
        charged >> 10
    );
    assert!(charged < 3 << 20, "{charged} bytes charged for two frames of 1 MiB");
    room.run("every delivery", || room.received.get() == 2 * MEMBERS);
    room.run("every charge back", || room.server.memory_usage().buffered == 0);
}

#[test]
fn a_budget_filled_by_uploads_does_not_silence_a_room() {
    const MEMBERS: usize = 5;
    let room = Room::new(MEMBERS, false, 1 << 20);
    let port = room.port;
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let uploader = thread::spawn(move || {
        let mut s = WsClient::open(port, "/");
        s.send_frame(false, wsconn_testkit::OP_BINARY, &vec![1u8; 2 << 20])
            .unwrap();
        let _ = stop_rx.recv();
    });
    room.run("the budget to fill", || room.server.memory_usage().buffered >= 1 << 20);
    // The uploader joined too (and reads nothing).
    let subscribers = room.server.subscribers("room");
    assert_eq!(subscribers, MEMBERS + 1);
    for i in 0..20 {
        let text = format!("message {i}");
        assert_eq!(
            room.server.publish("room", Message::Text(&text), None),
            subscribers,
            "{text} over a budget filled by an upload"
        );
    }
    room.run("every delivery", || room.received.get() == 20 * MEMBERS);
    drop(stop_tx);
    uploader.join().unwrap();
}

#[test]
fn copies_for_client_role_subscribers_are_charged_when_made_and_bounded() {
    const MEMBERS: usize = 20;
    const BUDGET: usize = 4 << 20;
    let room = Room::new(MEMBERS, true, BUDGET);
    let payload = vec![6u8; 1 << 20];
    // Each client-role subscriber needs a masked copy.
    let reached = room.clients.publish("room", Message::Binary(&payload), None);
    let charged = room.clients.memory_usage().buffered;
    println!(
        "1 MiB published to {MEMBERS} client-role subscribers: {reached} copies, {} KiB charged",
        charged >> 10
    );
    assert!(
        charged >= reached << 20,
        "{reached} copies made, {charged} bytes charged"
    );
    assert!(
        reached <= BUDGET / (1 << 20) + 1,
        "{reached} copies of 1 MiB under a 4 MiB budget"
    );
    room.run("the copies to leave", || room.clients.memory_usage().buffered == 0);
}

//! Topics from Rust, on the order of bytes on the wire: a published message
//! goes between what the connection sent before and after it was published;
//! one published in the middle of a fragmented send waits for its last
//! fragment; a client-role subscriber sends a masked copy (the server
//! receiving it checks the mask). A reactor runs on its own thread; raw
//! clients (testkit's `WsClient`) read what arrives.

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

//! Reactor connections with context takeover give their compression streams
//! back once idle (`Timeouts::deflate_idle_ms`), as the memory budget shows,
//! and still decode every message afterwards, also when the peer keeps its
//! context and refers back across the trim; messages a peer sends while the
//! server closes do not put off the close timeout.

mod rust_echo;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rust_echo::dedicated_deflate;
use wsconn::runtime::acceptor::Acceptor;
use wsconn::runtime::config::ConnConfig;
use wsconn::runtime::connection::Connection;
use wsconn::runtime::handler::ConnHandler;
use wsconn::runtime::reactor::Reactor;
use wsconn::{Message, MessageKind};
use wsconn_testkit::{client_frame, first_byte, upgrade_request, OP_TEXT};

struct Echo;

impl ConnHandler for Echo {
    fn on_message(&self, conn: &Connection<Self>, message: Message<'_>) {
        conn.send_message(message).expect("echo accepted");
    }
}

/// Keeps the texts echoed back.
struct Client(Rc<RefCell<Vec<String>>>);

impl ConnHandler for Client {
    fn on_message(&self, _conn: &Connection<Self>, message: Message<'_>) {
        if let Message::Text(text) = message {
            self.0.borrow_mut().push(text.to_owned());
        }
    }
}

#[test]
fn idle_streams_are_trimmed_and_messages_still_decode() {
    let server = Reactor::new().unwrap();
    server.set_config(dedicated_deflate(30));
    let acceptor = Acceptor::create(&server);
    // SAFETY: released at the end, after the last dispatch.
    let a = unsafe { acceptor.as_ref() };
    a.set_on_accept(Some(Box::new(|reactor, fd| {
        Connection::serve(reactor, fd, Echo).is_ok()
    })));
    a.start("127.0.0.1", 0).unwrap();
    // The client keeps its context: what it sends after the server trimmed
    // refers to what the server inflated before.
    let client = Reactor::new().unwrap();
    let echoed = Rc::new(RefCell::new(Vec::new()));
    let conn = Connection::create(&client, Client(Rc::clone(&echoed)));
    // SAFETY: released at the end, not used afterwards.
    let c = unsafe { conn.as_ref() };
    c.set_config(dedicated_deflate(0)).unwrap();
    c.connect(&format!("ws://127.0.0.1:{}/", a.port().unwrap())).unwrap();
    let run_until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            let held = server.memory_usage().buffered;
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} ({held} bytes held)"
            );
            server.dispatch(1).unwrap();
            client.dispatch(1).unwrap();
        }
    };
    run_until("the handshake", &|| c.established().is_ok());
    let text: String = (0..40)
        .map(|i| format!("{{\"id\":{i},\"name\":\"user{i}\"}},"))
        .collect();
    for round in 0..4 {
        c.send(MessageKind::Text, text.as_bytes()).unwrap();
        run_until("the echo", &|| echoed.borrow().len() == round + 1);
        assert_eq!(echoed.borrow()[round], text, "round {round}");
        // Just after the echo the server holds a compressor and a
        // decompressor; once idle, only the client's window: all it sent
        // so far (the budget counts whole KiB).
        assert!(server.memory_usage().buffered > 100 << 10, "round {round}");
        let window = (round + 1) * text.len();
        run_until("the trim", &|| server.memory_usage().buffered <= window + (2 << 10));
        assert!(server.memory_usage().buffered >= window, "round {round}");
    }
    // SAFETY: created above; neither is used afterwards.
    unsafe {
        Connection::release(conn.as_ptr());
        Acceptor::release(acceptor.as_ptr());
    }
}

/// Closes at the first message.
struct CloseAtOnce;

impl ConnHandler for CloseAtOnce {
    fn on_message(&self, conn: &Connection<Self>, _message: Message<'_>) {
        // Later messages (the peer goes on) find it closing already.
        let _ = conn.close(1000, "bye");
    }
}

#[test]
fn messages_sent_while_the_server_closes_do_not_put_off_its_close_timeout() {
    let server = Reactor::new().unwrap();
    let mut config = ConnConfig::clone(&dedicated_deflate(1000));
    config.timeouts.set_close_ms(300).unwrap();
    server.set_config(Arc::new(config));
    let acceptor = Acceptor::create(&server);
    // SAFETY: released at the end, after the last dispatch.
    let a = unsafe { acceptor.as_ref() };
    a.set_on_accept(Some(Box::new(|reactor, fd| {
        Connection::serve(reactor, fd, CloseAtOnce).is_ok()
    })));
    a.start("127.0.0.1", 0).unwrap();
    let mut peer = TcpStream::connect(("127.0.0.1", a.port().unwrap())).unwrap();
    peer.set_nonblocking(true).unwrap();
    let mut request = upgrade_request("127.0.0.1", "/");
    let end = request.len() - 2;
    request.splice(end..end, *b"Sec-WebSocket-Extensions: permessage-deflate\r\n");
    peer.write_all(&request).unwrap();
    // Messages every 20 ms, never a close: only the close timeout ends it.
    let started = Instant::now();
    let mut received = Vec::new();
    let mut next_send = Instant::now();
    let ended = loop {
        assert!(started.elapsed() < Duration::from_secs(8), "still open after 8 s");
        server.dispatch(5).unwrap();
        let mut buf = [0u8; 4096];
        match peer.read(&mut buf) {
            Ok(0) => break started.elapsed(),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break started.elapsed(),
            Err(e) => panic!("read: {e}"),
        }
        if received.windows(4).any(|w| w == b"\r\n\r\n") && Instant::now() >= next_send {
            let _ = peer.write_all(&client_frame(first_byte(true, OP_TEXT), b"still here"));
            next_send = Instant::now() + Duration::from_millis(20);
        }
    };
    let head = String::from_utf8_lossy(&received);
    assert!(head.contains("permessage-deflate"), "agreed on the extension: {head}");
    assert!(received.windows(2).any(|w| w == [0x88, 5]), "the server sent its close");
    assert!(ended < Duration::from_secs(3), "closed after {ended:?}");
    // SAFETY: created above, not used afterwards.
    unsafe { Acceptor::release(acceptor.as_ptr()) };
}

//! Reactor connections with context takeover give their compression streams
//! back once idle (`Timeouts::deflate_idle_ms`), as the memory budget shows,
//! and still decode every message afterwards, also when the peer keeps its
//! context and refers back across the trim.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsconn::runtime::acceptor::Acceptor;
use wsconn::runtime::config::ConnConfig;
use wsconn::runtime::connection::Connection;
use wsconn::runtime::handler::ConnHandler;
use wsconn::runtime::reactor::Reactor;
use wsconn::{Config, DeflateConfig, Message, MessageKind};

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

/// Context takeover both ways; streams trimmed after `trim_ms` idle (0: never).
fn config(trim_ms: u32) -> Arc<ConnConfig> {
    let mut protocol = Config::default();
    protocol.set_deflate(Some(DeflateConfig::dedicated(15).unwrap()));
    let mut config = ConnConfig {
        protocol: Arc::new(protocol),
        ..ConnConfig::default()
    };
    config.timeouts.set_deflate_idle_ms(trim_ms);
    Arc::new(config)
}

#[test]
fn idle_streams_are_trimmed_and_messages_still_decode() {
    let server = Reactor::new().unwrap();
    server.set_config(config(30));
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
    c.set_config(config(0)).unwrap();
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

//! The echo server the Rust-only runtime tests share: a `ConnHandler` that
//! sends every message back as it came, on an acceptor of the test's reactor.
#![allow(dead_code)]

use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsconn::runtime::acceptor::Acceptor;
use wsconn::runtime::config::ConnConfig;
use wsconn::runtime::connection::Connection;
use wsconn::runtime::handler::ConnHandler;
use wsconn::runtime::reactor::Reactor;
use wsconn::{Config, DeflateConfig, Message};

/// The server side: every message back as it came.
pub struct Echo;

impl ConnHandler for Echo {
    fn on_message(&self, conn: &Connection<Self>, message: Message<'_>) {
        conn.send_message(message).expect("echo accepted");
    }
}

/// A listening echo server on `reactor`, set up by `configure` before it
/// starts (e.g. TLS); returns the acceptor (released by the caller after the
/// last dispatch) and its port.
pub fn echo_server_with(reactor: &Reactor, configure: impl FnOnce(&Acceptor)) -> (NonNull<Acceptor>, u16) {
    let acceptor = Acceptor::create(reactor);
    // SAFETY: just created; released by the caller after the last dispatch.
    let a = unsafe { acceptor.as_ref() };
    configure(a);
    a.set_on_accept(Some(Box::new(|reactor, fd| {
        Connection::serve(reactor, fd, Echo).is_ok()
    })));
    a.start("127.0.0.1", 0).expect("listening");
    (acceptor, a.port().expect("a port"))
}

/// A plain listening echo server on `reactor`.
pub fn echo_server(reactor: &Reactor) -> (NonNull<Acceptor>, u16) {
    echo_server_with(reactor, |_| {})
}

/// Dispatches `reactor` until `done` says so; fails after `seconds`.
pub fn run_until(reactor: &Reactor, seconds: u64, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        reactor.dispatch(50).expect("dispatch");
    }
}

/// permessage-deflate with context takeover both ways (15-bit windows);
/// streams trimmed after `trim_ms` without a message (0: never).
pub fn dedicated_deflate(trim_ms: u32) -> Arc<ConnConfig> {
    let mut protocol = Config::default();
    protocol.set_deflate(Some(DeflateConfig::dedicated(15).unwrap()));
    let mut config = ConnConfig {
        protocol: Arc::new(protocol),
        ..ConnConfig::default()
    };
    config.timeouts.set_deflate_idle_ms(trim_ms);
    Arc::new(config)
}

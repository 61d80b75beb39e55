//! Reconnection: across a server restart on the same port, with waits
//! within the backoff's bounds (by the clock); names resolved again for
//! every attempt; stopped by a release or a close in the close callback, or
//! by a close while it waits.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wsconn::runtime::client::backoff::Backoff;
use wsconn::runtime::config::ConnConfig;
use wsconn::runtime::connection::{Connection, Lifecycle};
use wsconn::runtime::error::Error;
use wsconn::runtime::reactor::Reactor;

use crate::rust_echo::run_until;
use crate::support::*;

fn reconnecting(min_ms: u32, max_ms: u32) -> ConnConfig {
    let mut config = ConnConfig::default();
    config.client.reconnect = Some(Backoff::new(min_ms, max_ms).unwrap());
    config
}

/// A server that takes each connection and closes it at once.
fn hanging_up() -> RawServer {
    raw_server(|_| Reply::Close(Vec::new()))
}

#[test]
fn reconnects_across_a_server_restart_within_its_backoff() {
    let (min, max) = (60, 480);
    let backoff = Backoff::new(min, max).unwrap();
    let server = ThreadServer::start(0);
    let port = server.port;
    let reactor = Reactor::new().unwrap();
    let url = format!("ws://127.0.0.1:{port}/live");
    let (conn, log) = client_with(&reactor, &url, reconnecting(min, max), |c| c.close_on_echo = false);
    run_until(&reactor, 10, || log.messages.borrow().len() == 1);

    server.stop();
    run_until(&reactor, 10, || log.closed() >= 4);
    let server = ThreadServer::start(port);
    run_until(&reactor, 10, || log.messages.borrow().len() == 2);
    assert_eq!(log.opens.get(), 2, "the build callback runs again");

    let closes = log.closes.borrow().clone();
    assert_eq!(
        closes[0].error,
        Some(Error::Session(wsconn::Error::Eof)),
        "the server went"
    );
    for (n, close) in closes.iter().enumerate() {
        let delay = close.delay.expect("a retry follows every end");
        let ceiling = backoff.ceiling(n as u32) as u64;
        assert!(
            delay >= min as u64 - 8 && delay <= ceiling,
            "wait {n}: {delay} ms, not in [{min}, {ceiling}]"
        );
        // When the next attempt ended (refused at once) or opened.
        let next = match closes.get(n + 1) {
            Some(next) => next.at,
            None => log.open_times.borrow()[1],
        };
        let waited = next.duration_since(close.at).as_millis() as u64;
        assert!(
            waited + 16 >= delay && waited <= delay + 250,
            "wait {n}: announced {delay} ms, took {waited} ms"
        );
        if n > 0 {
            assert_eq!(
                close.error,
                Some(Error::Io("connect")),
                "refused while the server was down"
            );
        }
    }

    // The program's close ends it for good.
    // SAFETY: released below.
    let c = unsafe { conn.as_ref() };
    c.close(1000, "bye").unwrap();
    let ends = log.closed();
    run_until(&reactor, 10, || log.closed() == ends + 1);
    assert_eq!(log.last_close().delay, None);
    dispatch_for(&reactor, 300);
    assert_eq!((log.opens.get(), log.closed()), (2, ends + 1));
    release(conn);
    server.stop();
}

#[test]
fn a_release_in_the_close_callback_stops_it() {
    let server = hanging_up();
    let reactor = Reactor::new().unwrap();
    let url = format!("ws://127.0.0.1:{}/", server.port);
    let released = Rc::new(Cell::new(false));
    let flag = Rc::clone(&released);
    let (conn, log) = client_with(&reactor, &url, reconnecting(10, 20), move |c| {
        c.on_close = Some(Box::new(move |conn, log| {
            if log.closed() == 3 {
                // SAFETY: from `client_with`; not used afterwards.
                unsafe {
                    wsconn::runtime::connection::Connection::release(
                        conn as *const Connection<Client> as *mut Connection<Client>,
                    )
                };
                flag.set(true);
            }
        }));
    });
    run_until(&reactor, 10, || released.get());
    dispatch_for(&reactor, 300);
    assert_eq!((log.closed(), server.accepted.load(Ordering::SeqCst)), (3, 3));
    assert!(log.closes.borrow().iter().all(|c| c.delay.is_some()));
    let _ = conn;
}

#[test]
fn a_close_stops_it_inside_the_callback_or_while_it_waits() {
    let server = hanging_up();
    let reactor = Reactor::new().unwrap();
    let url = format!("ws://127.0.0.1:{}/", server.port);

    // Inside the close callback: no attempt, no callback more.
    let (conn, log) = client_with(&reactor, &url, reconnecting(10, 20), |c| {
        c.on_close = Some(Box::new(|conn, log| {
            if log.closed() == 2 {
                conn.close(1000, "enough").unwrap();
                assert_eq!(conn.reconnect_delay(), None);
            }
        }));
    });
    run_until(&reactor, 10, || log.closed() == 2);
    dispatch_for(&reactor, 200);
    assert_eq!((log.closed(), server.accepted.load(Ordering::SeqCst)), (2, 2));
    release(conn);

    // While it waits (a long wait): its close callbacks run once more, at
    // the next turn, telling that nothing follows.
    let (conn, log) = client(&reactor, &url, reconnecting(60_000, 60_000));
    run_until(&reactor, 10, || log.closed() == 1);
    // SAFETY: released below.
    let c = unsafe { conn.as_ref() };
    assert_eq!(c.lifecycle(), Lifecycle::Waiting);
    assert!(c.reconnect_delay().is_some_and(|d| d > 50_000));
    c.close(1001, "shutting down").unwrap();
    assert_eq!(log.closed(), 1);
    run_until(&reactor, 5, || log.closed() == 2);
    let last = log.last_close();
    assert_eq!(
        (last.code, last.reason.as_str(), last.error, last.delay),
        (1001, "shutting down", None, None)
    );
    assert_eq!(c.lifecycle(), Lifecycle::Closed);

    // Stopped while it waits: nothing at all.
    c.connect(&url).unwrap();
    run_until(&reactor, 10, || log.closed() == 3);
    assert_eq!(c.lifecycle(), Lifecycle::Waiting);
    c.stop().unwrap();
    dispatch_for(&reactor, 100);
    assert_eq!((log.closed(), c.lifecycle()), (3, Lifecycle::Idle));
    release(conn);
}

#[test]
fn names_are_resolved_again_for_every_attempt() {
    let server = hanging_up();
    let reactor = Reactor::new().unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    reactor.set_resolver(Arc::new(move |host: &str, port: u16| {
        assert_eq!(host, "again.test");
        counter.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(5));
        Ok(vec![([127, 0, 0, 1], port).into()])
    }));
    let url = format!("ws://again.test:{}/", server.port);
    let (conn, log) = client(&reactor, &url, reconnecting(10, 20));
    run_until(&reactor, 10, || log.closed() == 3);
    release(conn);
    assert_eq!(asked.load(Ordering::SeqCst), 3);
    assert_eq!(server.accepted.load(Ordering::SeqCst), 3);
}

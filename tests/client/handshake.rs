//! The opening handshake as a client: the headers it sends (the program's,
//! and Basic authorization from the URL), the server's answer (status and
//! headers, in `on_open` or after a refusal), hostile answers, and a
//! restart from the close callback.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use base64::Engine;
use wsconn::runtime::config::ConnConfig;
use wsconn::runtime::connection::Connection;
use wsconn::runtime::error::Error;
use wsconn::runtime::reactor::Reactor;
use wsconn::Error as SessionError;

use crate::rust_echo::{echo_server, run_until};
use crate::support::*;

#[test]
fn request_headers_and_url_credentials_reach_the_server() {
    let server = raw_server(|head| Reply::Hold(upgrade_reply(head, "X-Watched:  from the server \r\n")));
    let reactor = Reactor::new().unwrap();
    let mut config = ConnConfig::default();
    let protocol = Arc::make_mut(&mut config.protocol);
    protocol.add_header("Origin", "https://app.example").unwrap();
    protocol.add_header("Cookie", "a=1; b=2").unwrap();
    // What the handshake owns, or what would break the head, is refused.
    for (name, value) in [
        ("Sec-WebSocket-Key", "x"),
        ("Host", "x"),
        ("X-Bad", "a\r\nInjected: 1"),
        ("Bad Name", "x"),
    ] {
        assert!(protocol.add_header(name, value).is_err(), "{name}");
    }
    let url = format!("ws://us%65r:p%40ss@127.0.0.1:{}/path?q=1", server.port);
    let log = Rc::new(Log::default());
    let conn = Connection::create(
        &reactor,
        Client {
            log: Rc::clone(&log),
            greeting: None,
            close_on_echo: false,
            watch: "x-watched",
            on_close: None,
        },
    );
    // SAFETY: just created; released below.
    let c = unsafe { conn.as_ref() };
    c.set_config(Arc::new(config.clone())).unwrap();
    c.add_header("X-Token", "t0k3n").unwrap();
    assert_eq!(
        c.add_header("Upgrade", "h2c"),
        Err(Error::Session(SessionError::InvalidArgument))
    );
    c.connect(&url).unwrap();
    assert_eq!(c.add_header("X-Late", "1"), Err(Error::State), "only before connect");
    run_until(&reactor, 10, || log.opens.get() == 1);
    assert_eq!(log.open_status.get(), 101);
    assert_eq!(log.open_header.borrow().as_deref(), Some("from the server"));
    assert_eq!(*log.open_path.borrow(), "/path?q=1");
    release(conn);
    let head = server.requests().pop().unwrap();
    assert!(head.starts_with("GET /path?q=1 HTTP/1.1\r\n"), "{head}");
    assert_eq!(
        request_header(&head, "Host").as_deref(),
        Some(&*format!("127.0.0.1:{}", server.port))
    );
    assert_eq!(request_header(&head, "Origin").as_deref(), Some("https://app.example"));
    assert_eq!(request_header(&head, "Cookie").as_deref(), Some("a=1; b=2"));
    assert_eq!(request_header(&head, "X-Token").as_deref(), Some("t0k3n"));
    let basic = base64::engine::general_purpose::STANDARD.encode("user:p@ss");
    assert_eq!(request_header(&head, "Authorization"), Some(format!("Basic {basic}")));
    assert!(!head.contains("X-Late") && !head.contains("Injected"));

    // The program's own Authorization wins over the URL's.
    Arc::make_mut(&mut config.protocol)
        .add_header("Authorization", "Bearer abc")
        .unwrap();
    let (conn, log) = client_with(&reactor, &url, config, |c| c.greeting = None);
    run_until(&reactor, 10, || log.opens.get() == 1);
    release(conn);
    let head = server.requests().pop().unwrap();
    assert_eq!(head.matches("Authorization").count(), 1, "{head}");
    assert_eq!(request_header(&head, "Authorization").as_deref(), Some("Bearer abc"));
}

#[test]
fn a_refusal_reports_its_status_and_headers() {
    let server = raw_server(|head| {
        Reply::Close(match target_of(head).as_str() {
            "/login" => {
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n"
                    .to_vec()
            }
            "/busy" => b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\r\n".to_vec(),
            _ => b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n\r\n".to_vec(),
        })
    });
    let reactor = Reactor::new().unwrap();
    for (path, status, watch, value) in [
        ("/login", 401, "www-authenticate", "Basic realm=\"x\""),
        ("/busy", 503, "Retry-After", "5"),
        // Redirects are not followed unless allowed: a refusal like others.
        ("/moved", 302, "location", "/elsewhere"),
    ] {
        let url = format!("ws://127.0.0.1:{}{path}", server.port);
        let (conn, log) = client_with(&reactor, &url, ConnConfig::default(), |c| c.watch = watch);
        run_until(&reactor, 10, || log.closed() > 0);
        release(conn);
        let closed = log.last_close();
        assert_eq!(log.opens.get(), 0);
        assert_eq!(
            closed.error,
            Some(Error::Session(SessionError::Refused(status))),
            "{path}"
        );
        assert_eq!((closed.code, closed.status), (1006, status), "{path}");
        assert_eq!(closed.header.as_deref(), Some(value), "{path}");
        assert_eq!(closed.delay, None, "no reconnection configured");
    }
}

/// The largest amount of memory the reactor's connections held, sampled
/// after every turn until `done`.
fn peak_memory_until(reactor: &Reactor, done: impl Fn() -> bool) -> usize {
    let mut peak = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out");
        reactor.dispatch(10).unwrap();
        peak = peak.max(reactor.memory_usage().buffered);
    }
    peak
}

#[test]
fn hostile_answers_end_with_their_error_and_hold_nothing() {
    let server = raw_server(|head| match target_of(head).as_str() {
        "/huge" => {
            let mut block = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
            while block.len() < 1 << 20 {
                block.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
            }
            Reply::Close(block)
        }
        "/storm" => Reply::Repeat(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n".to_vec()),
        "/lines" => {
            let lines: String = (0..100).map(|i| format!("X-{i}: {i}\r\n")).collect();
            Reply::Close(format!("HTTP/1.1 101 Switching Protocols\r\n{lines}\r\n").into_bytes())
        }
        "/garbage" => Reply::Close(b"\x00\x01\x02 not http at all\r\n\r\n".to_vec()),
        // A few interim answers, then the real one: passed over.
        _ => {
            let mut reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n".to_vec();
            reply.extend_from_slice(&upgrade_reply(head, ""));
            Reply::Hold(reply)
        }
    });
    let reactor = Reactor::new().unwrap();
    for (path, error) in [
        ("/huge", SessionError::HandshakeTooLarge),
        ("/storm", SessionError::HandshakeTooLarge),
        ("/lines", SessionError::HandshakeTooLarge),
        ("/garbage", SessionError::Handshake("malformed HTTP response")),
    ] {
        let url = format!("ws://127.0.0.1:{}{path}", server.port);
        let (conn, log) = client(&reactor, &url, config_with_timeout(5000));
        let peak = peak_memory_until(&reactor, || log.closed() > 0);
        release(conn);
        assert_eq!(log.last_close().error, Some(Error::Session(error)), "{path}");
        assert!(peak <= 16 << 10, "{path}: {peak} bytes held");
    }
    let url = format!("ws://127.0.0.1:{}/interim", server.port);
    let (conn, log) = client_with(&reactor, &url, ConnConfig::default(), |c| c.greeting = None);
    run_until(&reactor, 10, || log.opens.get() == 1);
    assert_eq!(log.open_status.get(), 101);
    release(conn);
}

/// Closes and restarts itself from its first close callback, as a program
/// writing its own reconnection does.
fn restarting(reactor: &Reactor, url: &str, stop_first: bool) -> Rc<Log> {
    let url_again = url.to_owned();
    let results = Rc::new(Cell::new(None));
    let seen = Rc::clone(&results);
    let (conn, log) = client_with(reactor, url, config_with_timeout(300), move |c| {
        c.on_close = Some(Box::new(move |conn, log| {
            if log.closed() == 1 {
                let stopped = if stop_first { conn.stop() } else { Ok(()) };
                seen.set(Some((stopped, conn.connect(&url_again))));
            }
        }));
    });
    run_until(reactor, 10, || log.opens.get() == 2 && log.closed() == 2);
    // Nothing more: before, the restarted connection lost its socket and
    // its close callback came back every handshake timeout.
    dispatch_for(reactor, 700);
    assert_eq!((log.opens.get(), log.closed()), (2, 2));
    assert_eq!(results.get(), Some((Ok(()), Ok(()))));
    release(conn);
    log
}

#[test]
fn a_connection_restarted_from_its_close_callback_runs() {
    let reactor = Reactor::new().unwrap();
    let (acceptor, port) = echo_server(&reactor);
    let url = format!("ws://127.0.0.1:{port}/");
    for stop_first in [true, false] {
        let log = restarting(&reactor, &url, stop_first);
        assert_eq!(*log.messages.borrow(), ["hello", "hello"]);
        assert!(log.closes.borrow().iter().all(|c| c.code == 1000 && c.error.is_none()));
    }
    // SAFETY: from `echo_server`, after the last dispatch of its clients.
    unsafe { wsconn::runtime::acceptor::Acceptor::release(acceptor.as_ptr()) };
}

#[test]
fn closing_before_the_connection_opens_ends_it_at_the_next_turn() {
    // A server that never answers the upgrade.
    let server = raw_server(|_| Reply::Silent);
    let reactor = Reactor::new().unwrap();
    let url = format!("ws://127.0.0.1:{}/", server.port);
    let (conn, log) = client(&reactor, &url, ConnConfig::default());
    run_until(&reactor, 10, || server.requests().len() == 1);
    // SAFETY: released below.
    let c = unsafe { conn.as_ref() };
    assert_eq!(c.close(999, ""), Err(Error::Session(SessionError::InvalidArgument)));
    c.close(4000, "changed my mind").unwrap();
    assert_eq!(log.closed(), 0, "not inside the call");
    run_until(&reactor, 5, || log.closed() == 1);
    let closed = log.last_close();
    assert_eq!(
        (closed.code, closed.reason.as_str(), closed.error),
        (4000, "changed my mind", None)
    );
    assert_eq!(c.close(1000, ""), Err(Error::Session(SessionError::Closed)));
    release(conn);
}

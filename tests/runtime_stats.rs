//! A reactor's counters (`Reactor::stats`) and log, scenario by scenario,
//! in one process: each scenario must move exactly the counters it should,
//! by what it should, and no other. The server runs on a thread of its own;
//! its clients are raw sockets (testkit's `WsClient`) or, for compression
//! and a failed dial, library clients on the server's reactor. The log under
//! a flood of bad handshakes stays within its rate, and a drain ends with
//! one 1001 answered, one connection cut and one handshake refused with 503.

mod stats_kit;

use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use stats_kit::*;
use wsconn::runtime::error::Error;
use wsconn::runtime::log::{Level, LogEvent};
use wsconn::runtime::tls::ServerTls;
use wsconn::runtime::topics::SlowPolicy;
use wsconn::{Config, DeflateConfig};
use wsconn_testkit::{
    client_frame, first_byte, free_port, http_request, wait_closed, WsClient, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING,
    OP_PONG, OP_TEXT,
};

// ------------------------------------------------------------------ the scenarios

#[test]
fn every_counter_moves_when_it_should_and_no_other() {
    let server = Server::start();
    traffic_and_closes(&server);
    timers_and_limits(&server);
    publish_subscribe(&server);
    memory_budget(&server);
    compression_and_dialing(&server);
    tls_refused(&server);
    refusals(&server);
    reconnection(&server);
    out_of_file_descriptors(&server);
    flood_of_bad_handshakes(&server);
    drain(&server);
}

/// A connection that opened.
const OPENED: [(&str, Moved); 2] = [("connections_accepted", By(1)), ("handshakes_completed", By(1))];

/// Traffic, plain HTTP, refused handshakes and every way an open connection ends.
fn traffic_and_closes(server: &Server) {
    let port = server.port;
    check(
        server,
        "echo and a clean close",
        &with_wire(&[
            OPENED[0],
            OPENED[1],
            ("messages_in", By(2)),
            ("messages_out", By(2)),
            ("payload_bytes_in", By(10)),
            ("payload_bytes_out", By(10)),
            ("closes_normal", By(1)),
        ]),
        || {
            let mut c = WsClient::open(port, "/echo");
            c.send_text("hello").unwrap();
            assert_eq!(read_until(&mut c, OP_TEXT).payload, b"hello");
            // A fragmented message counts once, its bytes all.
            c.send_frame(false, OP_BINARY, b"wor").unwrap();
            c.send_frame(true, OP_CONT, b"ld").unwrap();
            assert_eq!(read_until(&mut c, OP_BINARY).payload, b"world");
            close_cleanly(c);
        },
    );

    check(
        server,
        "a ping answered",
        &with_wire(&[
            OPENED[0],
            OPENED[1],
            ("pings_in", By(1)),
            ("pongs_out", By(1)),
            ("closes_normal", By(1)),
        ]),
        || {
            let mut c = WsClient::open(port, "/echo");
            c.send_frame(true, OP_PING, b"p").unwrap();
            assert_eq!(read_until(&mut c, OP_PONG).payload, b"p");
            close_cleanly(c);
        },
    );

    check(
        server,
        "plain HTTP",
        &with_wire(&[("connections_accepted", By(1)), ("http_requests", By(1))]),
        || {
            let r = http_request(port, "GET /http HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            assert_eq!(r.status, 200);
        },
    );

    check(
        server,
        "a bad handshake",
        &with_wire(&[("connections_accepted", By(1)), ("refused_bad_request", By(1))]),
        || {
            let request = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                           Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
            assert_eq!(http_request(port, request).unwrap().status, 426);
        },
    );

    check(
        server,
        "a peer that breaks the protocol",
        &with_wire(&[OPENED[0], OPENED[1], ("closes_protocol", By(1))]),
        || {
            let mut c = WsClient::open(port, "/echo");
            // Unmasked: 1002.
            c.stream.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
            let f = read_until(&mut c, OP_CLOSE);
            assert_eq!(&f.payload[..2], &1002u16.to_be_bytes());
            wait_closed(&mut c.stream, deadline()).unwrap();
        },
    );

    check(
        server,
        "a peer that leaves without a close",
        &with_wire(&[OPENED[0], OPENED[1], ("closes_eof_io", By(1))]),
        || {
            let c = WsClient::open(port, "/echo");
            c.shutdown();
        },
    );

    check(
        server,
        "the program closes with an application code",
        &with_wire(&[
            OPENED[0],
            OPENED[1],
            ("messages_in", By(1)),
            ("payload_bytes_in", By(3)),
            ("closes_other", By(1)),
        ]),
        || {
            let mut c = WsClient::open(port, "/bye");
            c.send_text("bye").unwrap();
            assert_eq!(answer_close(c), 4000);
        },
    );

    check(
        server,
        "an inflate-ratio close (the counting function)",
        &with_wire(&[
            OPENED[0],
            OPENED[1],
            ("messages_in", By(1)),
            ("payload_bytes_in", By(1)),
            ("inflate_ratio_closes", By(1)),
            ("closes_too_big", By(1)),
        ]),
        || {
            let mut c = WsClient::open(port, "/inflate");
            c.send_text("z").unwrap();
            assert_eq!(answer_close(c), 1009);
        },
    );
}

/// Timers and limits, with a config of their own.
fn timers_and_limits(server: &Server) {
    let port = server.port;
    server.configure(|c| {
        c.timeouts.set_handshake_ms(200).unwrap();
        c.timeouts.set_idle_ms(300);
        let mut protocol = Config::default();
        protocol.set_max_message_size(100).unwrap();
        c.protocol = Arc::new(protocol);
    });
    check(
        server,
        "a handshake that never comes",
        &[("connections_accepted", By(1)), ("refused_timeout", By(1))],
        || {
            let mut s = connect(port);
            wait_closed(&mut s, deadline()).unwrap();
        },
    );
    check(
        server,
        "the idle timeout",
        &with_wire(&[OPENED[0], OPENED[1], ("closes_going_away", By(1))]),
        || assert_eq!(answer_close(WsClient::open(port, "/echo")), 1001),
    );
    check(
        server,
        "a message too big",
        &with_wire(&[OPENED[0], OPENED[1], ("closes_too_big", By(1))]),
        || {
            let mut c = WsClient::open(port, "/echo");
            c.send_text(&"x".repeat(200)).unwrap();
            let f = read_until(&mut c, OP_CLOSE);
            assert_eq!(&f.payload[..2], &1009u16.to_be_bytes());
            c.send_close(1000).unwrap();
            wait_closed(&mut c.stream, deadline()).unwrap();
        },
    );

    server.configure(|c| {
        c.timeouts.set_ping_interval_ms(150);
        c.timeouts.set_pong_ms(200).unwrap();
    });
    check(
        server,
        "keepalive: a ping answered",
        &with_wire(&[
            OPENED[0],
            OPENED[1],
            ("pings_out", Any),
            ("pongs_in", Any),
            ("closes_normal", By(1)),
        ]),
        || {
            let mut c = WsClient::open(port, "/echo");
            let ping = read_until(&mut c, OP_PING);
            c.send_frame(true, OP_PONG, &ping.payload).unwrap();
            close_cleanly(c);
        },
    );
    check(
        server,
        "keepalive: a ping not answered",
        &with_wire(&[OPENED[0], OPENED[1], ("pings_out", Any), ("closes_timeout", By(1))]),
        || {
            let mut c = WsClient::open(port, "/sink");
            wait_closed(&mut c.stream, deadline()).unwrap();
        },
    );
    server.configure(|_| {});
}

/// Publish to subscribers, and slow subscribers skipped or closed.
fn publish_subscribe(server: &Server) {
    let port = server.port;
    check(
        server,
        "publish to two subscribers",
        &with_wire(&[
            ("connections_accepted", By(3)),
            ("handshakes_completed", By(3)),
            ("messages_in", By(1)),
            ("payload_bytes_in", By(4)),
            ("publishes", By(1)),
            ("published_deliveries", By(2)),
            ("messages_out", By(2)),
            ("payload_bytes_out", By(8)),
            ("closes_normal", By(3)),
        ]),
        || {
            let mut subs = [WsClient::open(port, "/room"), WsClient::open(port, "/room")];
            let mut publisher = WsClient::open(port, "/pub");
            publisher.send_text("news").unwrap();
            for s in &mut subs {
                assert_eq!(read_until(s, OP_TEXT).payload, b"news");
            }
            for c in subs.into_iter().chain([publisher]) {
                close_cleanly(c);
            }
        },
    );

    server.configure(|c| {
        let mut protocol = Config::default();
        protocol.set_max_output(2048).unwrap();
        c.protocol = Arc::new(protocol);
    });
    server.on(|r| r.set_topic_policy("closing", SlowPolicy::Close));
    let published = 300u64;
    let body = "p".repeat(1000);
    for (name, sub_path, pub_path, slow) in [
        (
            "a slow subscriber skipped",
            "/slow-room",
            "/pub-slow",
            ("slow_skipped", Any),
        ),
        (
            "a slow subscriber closed",
            "/closing-room",
            "/pub-closing",
            ("slow_closed", By(1)),
        ),
    ] {
        let closes = if slow.0 == "slow_skipped" {
            vec![("closes_normal", By(2))]
        } else {
            vec![("closes_normal", By(1)), ("closes_policy", By(1))]
        };
        let mut expected = with_wire(&[
            ("connections_accepted", By(2)),
            ("handshakes_completed", By(2)),
            ("messages_in", By(published)),
            ("payload_bytes_in", By(published * 1000)),
            ("publishes", By(published)),
            ("published_deliveries", Any),
            ("messages_out", Any),
            ("payload_bytes_out", Any),
            slow,
        ]);
        expected.extend(closes);
        check(server, name, &expected, || {
            let subscriber = slow_client(port, sub_path);
            let mut publisher = WsClient::open(port, pub_path);
            let publishes = |s: &Server| s.stats().publishes;
            let start = publishes(server);
            for _ in 0..published {
                publisher.send_text(&body).unwrap();
            }
            // All published: the publisher's messages were read.
            let end = Instant::now() + WAIT;
            while publishes(server) < start + published {
                assert!(Instant::now() < end, "not all published: {:?}", server.stats());
                thread::sleep(Duration::from_millis(5));
            }
            close_cleanly(publisher);
            if slow.0 == "slow_skipped" {
                close_cleanly(subscriber);
            } else {
                assert_eq!(answer_close(subscriber), 1008);
            }
        });
    }
    server.configure(|_| {});
}

/// A connection held back by the memory budget.
fn memory_budget(server: &Server) {
    let port = server.port;
    server.on(|r| r.set_memory_budget(1));
    check(
        server,
        "a connection held back by the memory budget",
        &with_wire(&[
            ("connections_accepted", By(2)),
            ("handshakes_completed", By(2)),
            ("messages_in", By(2)),
            ("payload_bytes_in", By(2 * 100_000)),
            ("budget_pauses", Any),
            ("closes_normal", By(2)),
        ]),
        || {
            let payload = vec![7u8; 100_000];
            let frame = client_frame(first_byte(true, OP_BINARY), &payload);
            let (mut a, mut b) = (WsClient::open(port, "/sink"), WsClient::open(port, "/sink"));
            // Both hold part of a message (over the budget of 1 byte); b goes
            // on first and is let finish its message; a, going on, waits.
            a.stream.write_all(&frame[..20_000]).unwrap();
            thread::sleep(Duration::from_millis(100));
            b.stream.write_all(&frame[..20_000]).unwrap();
            thread::sleep(Duration::from_millis(100));
            b.stream.write_all(&frame[20_000..40_000]).unwrap();
            thread::sleep(Duration::from_millis(100));
            a.stream.write_all(&frame[20_000..40_000]).unwrap();
            let end = Instant::now() + WAIT;
            while server.stats().budget_waiting != 1 {
                assert!(Instant::now() < end, "a never waited: {:?}", server.stats());
                thread::sleep(Duration::from_millis(5));
            }
            b.stream.write_all(&frame[40_000..]).unwrap();
            a.stream.write_all(&frame[40_000..]).unwrap();
            close_cleanly(a);
            close_cleanly(b);
        },
    );
    server.on(|r| r.set_memory_budget(256 << 20));
}

/// Compression both ways and a failed dial, with library clients on the reactor.
fn compression_and_dialing(server: &Server) {
    let port = server.port;
    server.configure(|c| {
        let mut protocol = Config::default();
        protocol.set_deflate(Some(DeflateConfig::shared()));
        c.protocol = Arc::new(protocol);
    });
    check(
        server,
        "compressed both ways (a library client on the reactor)",
        &with_wire(&[
            ("connections_accepted", By(1)),
            ("connections_dialed", By(1)),
            ("handshakes_completed", By(2)),
            ("messages_in", By(2)),
            ("messages_out", By(2)),
            ("payload_bytes_in", By(600)),
            ("payload_bytes_out", By(600)),
            ("compressed_messages_in", By(2)),
            ("compressed_messages_out", By(2)),
            ("closes_normal", By(2)),
        ]),
        || {
            let code = dial(server, format!("ws://127.0.0.1:{port}/echo"), &"abc".repeat(100));
            assert_eq!(code, 1000);
        },
    );
    server.configure(|_| {});

    check(
        server,
        "a client that cannot connect",
        &[("connections_dialed", By(1)), ("client_handshakes_failed", By(1))],
        || {
            assert_eq!(dial(server, format!("ws://127.0.0.1:{}/", free_port()), "x"), 1006);
        },
    );
}

/// Plain HTTP on a TLS port.
fn tls_refused(server: &Server) {
    let (cert, key) = tls_pem();
    let tls_port = acceptor(server, move |a| {
        a.set_tls(Some(ServerTls::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()));
    });
    check(
        server,
        "plain HTTP on a TLS port",
        &[
            ("connections_accepted", By(1)),
            ("refused_tls", By(1)),
            ("wire_bytes_in", Any),
            ("wire_bytes_out", Maybe),
        ],
        || {
            let mut s = connect(tls_port);
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            wait_closed(&mut s, deadline()).unwrap();
        },
    );
}

/// Who may connect: an Origin not allowed, the program's refusal, the
/// acceptor's limits, a PROXY header that is not one, a refusal behind a
/// valid one. Each counted once under its reason, and logged with the
/// client's address (the PROXY header's when there is one).
fn refusals(server: &Server) {
    let port = server.port;
    let lines = collect_log(server, 100);
    server.configure(|c| {
        let mut protocol = Config::default();
        protocol.add_allowed_origin("https://good.example").unwrap();
        c.protocol = Arc::new(protocol);
    });
    check(
        server,
        "a handshake refused for its Origin",
        &with_wire(&[("connections_accepted", By(1)), ("refused_origin", By(1))]),
        || {
            let r = http_request(port, &upgrade("/echo", "Origin: https://evil.example\r\n")).unwrap();
            assert_eq!(r.status, 403);
        },
    );
    server.configure(|_| {});
    check(
        server,
        "the program refuses",
        &with_wire(&[("connections_accepted", By(1)), ("refused_program", By(1))]),
        || assert_eq!(http_request(port, &upgrade("/no", "")).unwrap().status, 403),
    );

    let limited = acceptor(server, |a| a.set_limits(0, 1).unwrap());
    check(
        server,
        "over the acceptor's limits",
        &with_wire(&[
            OPENED[0],
            OPENED[1],
            ("refused_limits", By(1)),
            ("closes_normal", By(1)),
        ]),
        || {
            let first = WsClient::open(limited, "/echo");
            let mut second = connect(limited);
            wait_closed(&mut second, deadline()).unwrap();
            close_cleanly(first);
        },
    );

    let proxied = acceptor(server, |a| a.set_proxy_protocol(true).unwrap());
    check(
        server,
        "not a PROXY header",
        &[("proxy_header_failures", By(1))],
        || {
            let mut s = connect(proxied);
            s.write_all(upgrade("/echo", "").as_bytes()).unwrap();
            wait_closed(&mut s, deadline()).unwrap();
        },
    );
    check(
        server,
        "refused behind a PROXY header",
        &with_wire(&[("connections_accepted", By(1)), ("refused_program", By(1))]),
        || {
            let mut s = connect(proxied);
            s.write_all(b"PROXY TCP4 192.0.2.7 127.0.0.1 4000 80\r\n").unwrap();
            s.write_all(upgrade("/no", "").as_bytes()).unwrap();
            let mut answer = String::new();
            std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
            assert!(answer.starts_with("HTTP/1.1 403 "), "{answer:?}");
        },
    );

    server.on(|r| r.set_log(None, Level::Debug));
    let lines = lines.lock().unwrap().clone();
    let told = |event: LogEvent| -> Vec<_> { lines.iter().filter(|l| l.0 == event).cloned().collect() };
    let local = |l: &LogLine| l.3.is_some_and(|p| p.ip().is_loopback());
    let [origin] = &told(LogEvent::OriginRefused)[..] else {
        panic!("one origin line: {lines:?}")
    };
    assert!(origin.2 && local(origin) && origin.4.contains("origin"), "{origin:?}");
    assert_eq!(origin.1, Level::Warn);
    let [program, proxied_program] = &told(LogEvent::ProgramRefused)[..] else {
        panic!("two program lines: {lines:?}")
    };
    assert!(program.2 && local(program) && program.4.contains("403"), "{program:?}");
    assert_eq!(
        proxied_program.3,
        Some("192.0.2.7:4000".parse().unwrap()),
        "the PROXY header's address: {proxied_program:?}"
    );
    // No connection was made of these: the socket's address.
    let [limit] = &told(LogEvent::LimitRefused)[..] else {
        panic!("one limit line: {lines:?}")
    };
    assert!(!limit.2 && local(limit) && limit.4.contains("limits"), "{limit:?}");
    let [header] = &told(LogEvent::ProxyHeaderFailed)[..] else {
        panic!("one PROXY header line: {lines:?}")
    };
    assert!(!header.2 && local(header) && header.4.contains("PROXY"), "{header:?}");
}

/// A client waiting to reconnect is counted (`reconnects_waiting`) and
/// logged until a close ends it.
fn reconnection(server: &Server) {
    let lines = collect_log(server, 100);
    check(
        server,
        "a client waiting to reconnect",
        &[("connections_dialed", By(1)), ("client_handshakes_failed", By(1))],
        || {
            let (client, endings) = redial(server, format!("ws://127.0.0.1:{}/", free_port()), 10_000);
            let first = wait_endings(&endings, 1).remove(0);
            assert!(first.retry_in.is_some(), "{first:?}");
            assert_eq!(server.stats().reconnects_waiting, 1);
            close_redialer(server, client);
            let last = wait_endings(&endings, 2).remove(1);
            assert_eq!((last.code, last.retry_in), (1000, None));
            assert_eq!(server.stats().reconnects_waiting, 0);
        },
    );
    server.on(|r| r.set_log(None, Level::Debug));
    let lines = lines.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|l| l.0 == LogEvent::ReconnectWaiting && l.2 && l.4.contains("reconnecting in")),
        "{lines:?}"
    );
}

/// The lowest fd number not in use: the next socket gets it.
fn lowest_free_fd() -> u64 {
    // SAFETY: fcntl on an fd number: a closed one is an error (EBADF).
    (0..).find(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0).unwrap() as u64
}

fn set_fd_limit(soft: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = soft;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// accept() fails for want of a file descriptor (this test process runs
/// one test: nothing else opens any meanwhile); once there are some again,
/// the connection that waited is taken with the next one. On io_uring the
/// kernel takes RLIMIT_NOFILE when the multishot accept is armed (before
/// the limit drops here): that accept does not fail, and the connection is
/// taken at once; the counts after it are the same.
fn out_of_file_descriptors(server: &Server) {
    let port = server.port;
    let on_ring = server.on(|r| r.io()) == wsconn::runtime::uring::IoBackend::Uring;
    check(
        server,
        "accept out of file descriptors",
        &with_wire(&[
            ("accept_failures", if on_ring { By(0) } else { Any }),
            ("connections_accepted", By(2)),
            ("handshakes_completed", By(1)),
            ("closes_normal", By(1)),
        ]),
        || {
            let mut saved = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit with a valid struct.
            assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut saved) }, 0);
            // Room for the client's socket, none for the server's (fd
            // numbers must stay under the limit).
            set_fd_limit(lowest_free_fd() + 1);
            let waiting = connect(port);
            let end = Instant::now() + WAIT;
            while !on_ring && server.stats().accept_failures == 0 {
                assert!(Instant::now() < end, "accept never failed");
                thread::sleep(Duration::from_millis(5));
            }
            set_fd_limit(saved.rlim_cur);
            drop(waiting);
            close_cleanly(WsClient::open(port, "/echo"));
        },
    );
}

/// 100 bad handshakes in a row: the log tells at most 5 a second of them,
/// then one "suppressed" line; the counter of suppressed lines adds up.
fn flood_of_bad_handshakes(server: &Server) {
    let lines = collect_log(server, 5);
    let port = server.port;
    let flood = 100u64;
    check(
        server,
        "a flood of bad handshakes",
        &with_wire(&[
            ("connections_accepted", By(flood)),
            ("refused_bad_request", By(flood)),
            ("log_suppressed", Any),
        ]),
        || {
            for _ in 0..flood {
                let r = http_request(port, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n").unwrap();
                assert_eq!(r.status, 400);
            }
        },
    );
    let suppressed = server.stats().log_suppressed;
    // The summary comes once the second of the suppressed lines is over.
    let end = Instant::now() + WAIT;
    let summaries = || {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.0 == LogEvent::HandshakeRefused && l.4.starts_with("suppressed "))
            .map(|l| l.4.split(' ').nth(1).unwrap().parse::<u64>().unwrap())
            .sum::<u64>()
    };
    while summaries() < suppressed {
        assert!(Instant::now() < end, "no summary line: {:?}", lines.lock().unwrap());
        thread::sleep(Duration::from_millis(20));
    }
    let lines = lines.lock().unwrap().clone();
    let told: Vec<_> = lines
        .iter()
        .filter(|l| l.0 == LogEvent::HandshakeRefused && !l.4.starts_with("suppressed "))
        .collect();
    assert_eq!(told.len() as u64 + suppressed, flood, "every line told or counted");
    assert_eq!(summaries(), suppressed);
    // The flood lasted well under a second a line: the rate held.
    assert!(told.len() <= 5 * 3, "{} lines told", told.len());
    for l in &told {
        assert_eq!(l.1, Level::Warn);
        assert!(l.2, "the connection is given");
        assert!(l.3.is_some_and(|p| p.ip().is_loopback()), "the peer is given: {l:?}");
        assert!(l.4.contains("handshake refused"), "{l:?}");
    }
    server.on(|r| r.set_log(None, Level::Debug));
}

/// A drain: an open connection answers its 1001, another never does and is
/// cut at the deadline, a handshake in progress and one waiting for the
/// program's decision are refused with 503, one sending a fragmented message
/// gets its 1001 after the last fragment, a client waiting to reconnect ends
/// (its last close callbacks, no attempt after); the listener closes; the
/// function runs once with one cut.
fn drain(server: &Server) {
    let port = server.port;
    let lines = collect_log(server, 100);
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    check(
        server,
        "a drain",
        &with_wire(&[
            ("connections_accepted", By(5)),
            ("connections_dialed", By(1)),
            ("client_handshakes_failed", By(1)),
            ("handshakes_completed", By(3)),
            ("messages_in", By(1)),
            ("payload_bytes_in", By(2)),
            ("messages_out", By(1)),
            ("payload_bytes_out", By(10)),
            ("refused_draining", By(2)),
            ("closes_going_away", By(2)),
            ("closes_timeout", By(1)),
            ("drain_cut", By(1)),
            ("draining", By(1)),
        ]),
        || {
            let polite = WsClient::open(port, "/echo");
            let mut silent = WsClient::open(port, "/sink");
            let mut sending = WsClient::open(port, "/fragments");
            let first = sending.read_frame(deadline()).unwrap();
            assert_eq!(
                (first.fin, first.opcode, &first.payload[..]),
                (false, OP_TEXT, &b"first "[..])
            );
            let mut pending = connect(port);
            pending.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            let mut undecided = connect(port);
            undecided.write_all(upgrade("/later", "").as_bytes()).unwrap();
            let (_, endings) = redial(server, format!("ws://127.0.0.1:{}/", free_port()), 10_000);
            assert!(wait_endings(&endings, 1)[0].retry_in.is_some());
            let end = Instant::now() + WAIT;
            let waiting = |s: wsconn::runtime::stats::Stats| (s.handshakes_pending, s.reconnects_waiting);
            while waiting(server.stats()) != (2, 1) {
                assert!(Instant::now() < end, "not all waiting: {:?}", server.stats());
                thread::sleep(Duration::from_millis(5));
            }
            server.on(move |r| {
                r.drain(
                    700,
                    Box::new(move |_, cut| {
                        let _ = tx.send((cut, Instant::now()));
                    }),
                )
                .unwrap();
            });
            assert_eq!(answer_close(polite), 1001);
            // No close in the middle of a message: the drain waits for its end.
            assert!(matches!(
                sending.read_frame(Instant::now() + Duration::from_millis(150)),
                Err(wsconn_testkit::ReadError::Timeout)
            ));
            sending.send_text("go").unwrap();
            let last = sending.read_frame(deadline()).unwrap();
            assert_eq!(
                (last.fin, last.opcode, &last.payload[..]),
                (true, OP_CONT, &b"last"[..])
            );
            assert_eq!(answer_close(sending), 1001);
            for s in [&mut pending, &mut undecided] {
                let mut answer = String::new();
                std::io::Read::read_to_string(s, &mut answer).unwrap();
                assert!(answer.starts_with("HTTP/1.1 503 "), "{answer:?}");
            }
            // The client waiting to reconnect ended, for good.
            let last = wait_endings(&endings, 2).remove(1);
            assert_eq!(
                (last.code, last.error, last.retry_in),
                (1006, Some(Error::Drained), None)
            );
            // The silent one got its 1001 too, and is cut at the deadline.
            let f = read_until(&mut silent, OP_CLOSE);
            assert_eq!(&f.payload[..2], &1001u16.to_be_bytes());
            wait_closed(&mut silent.stream, deadline()).unwrap();
        },
    );
    let (cut, when) = rx.recv_timeout(WAIT).expect("the drain ended");
    assert_eq!(cut, 1);
    let took = when - started;
    assert!(took >= Duration::from_millis(650), "cut before the deadline: {took:?}");
    assert!(rx.try_recv().is_err(), "the function runs once");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "still listening");
    let events: Vec<LogEvent> = lines.lock().unwrap().iter().map(|l| l.0).collect();
    for e in [
        LogEvent::DrainStarted,
        LogEvent::HandshakeRefused,
        LogEvent::DrainCut,
        LogEvent::DrainDone,
    ] {
        assert!(events.contains(&e), "{e:?} not in {events:?}");
    }
}

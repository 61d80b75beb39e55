//! TLS on the runtime, from Rust: `wss://` clients of a TLS acceptor on one
//! reactor; each client failure reaching `on_close` as its own error; a
//! certificate reload; plain HTTP and garbage on the TLS port (closed, and
//! counted by the acceptor).
#![cfg(feature = "tls")]

mod certs;

mod rust_echo;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certs::{Leaf, TestCa};
use rust_echo::{echo_server_with, run_until};
use wsconn::runtime::acceptor::Acceptor;
use wsconn::runtime::config::ConnConfig;
use wsconn::runtime::connection::Connection;
use wsconn::runtime::error::Error;
use wsconn::runtime::handler::{ConnHandler, Ending};
use wsconn::runtime::reactor::Reactor;
use wsconn::runtime::tls::{ClientTls, ServerTls, TlsError};
use wsconn::{Message, MessageKind};

/// A listening echo server serving `leaf` over TLS (or plain); returns its port.
fn server(reactor: &Reactor, leaf: Option<&Leaf>) -> (NonNull<Acceptor>, u16) {
    echo_server_with(reactor, |a| {
        if let Some(leaf) = leaf {
            a.set_tls(Some(
                ServerTls::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap(),
            ));
        }
    })
}

#[derive(Default)]
struct Log {
    opened: Cell<bool>,
    echoes: Cell<usize>,
    /// Keep echoing until told to close.
    close_after: Cell<usize>,
    ended: RefCell<Option<(u16, Option<Error>)>>,
}

struct Client(Rc<Log>);

fn payload(i: usize) -> Vec<u8> {
    (0..i * 997 % 100_000).map(|j| b'a' + ((i + j) % 26) as u8).collect()
}

impl ConnHandler for Client {
    fn on_open(&self, conn: &Connection<Self>, _path: &str, _subprotocol: Option<&str>) {
        self.0.opened.set(true);
        conn.send(MessageKind::Binary, &payload(0)).unwrap();
    }

    fn on_message(&self, conn: &Connection<Self>, message: Message<'_>) {
        let i = self.0.echoes.get();
        assert_eq!(message.as_bytes(), payload(i), "echo {i}");
        self.0.echoes.set(i + 1);
        if i + 1 < self.0.close_after.get() {
            conn.send(MessageKind::Binary, &payload(i + 1)).unwrap();
        } else {
            conn.close(1000, "done").unwrap();
        }
    }

    fn on_close(&self, _conn: &Connection<Self>, ending: &Ending<'_>) {
        *self.0.ended.borrow_mut() = Some((ending.code, ending.error));
    }
}

/// A client of `url` trusting `ca` (None: the system's store), that closes
/// after `echoes` echoes.
fn client(reactor: &Reactor, url: &str, ca: Option<&str>, echoes: usize) -> (NonNull<Connection<Client>>, Rc<Log>) {
    let log = Rc::new(Log::default());
    log.close_after.set(echoes);
    let conn = Connection::create(reactor, Client(Rc::clone(&log)));
    // SAFETY: just created; released by the caller.
    let c = unsafe { conn.as_ref() };
    if let Some(ca) = ca {
        let mut tls = ClientTls::default();
        tls.set_ca_pem(ca.as_bytes()).unwrap();
        let config = ConnConfig {
            tls,
            ..ConnConfig::default()
        };
        c.set_config(Arc::new(config)).unwrap();
    }
    c.connect(url).expect("connect accepted");
    (conn, log)
}

fn ended(log: &Log) -> Option<(u16, Option<Error>)> {
    *log.ended.borrow()
}

/// Runs a client to its end; returns how it ended.
fn outcome(reactor: &Reactor, url: &str, ca: Option<&str>) -> (bool, Option<(u16, Option<Error>)>) {
    let (conn, log) = client(reactor, url, ca, 3);
    run_until(reactor, 20, || log.ended.borrow().is_some());
    // SAFETY: created by `client`, not used afterwards.
    unsafe { Connection::release(conn.as_ptr()) };
    (log.opened.get(), ended(&log))
}

#[test]
fn wss_echo_with_a_trusted_ca_by_ip_and_by_name() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new("wsconn test CA");
    let leaf = ca.leaf(&["localhost", "127.0.0.1"]);
    let (acceptor, port) = server(&reactor, Some(&leaf));
    let clients: Vec<_> = ["127.0.0.1", "localhost"]
        .iter()
        .flat_map(|host| (0..3).map(move |_| format!("wss://{host}:{port}/echo")))
        .map(|url| client(&reactor, &url, Some(&ca.cert_pem), 30))
        .collect();
    run_until(&reactor, 60, || {
        clients.iter().all(|(_, log)| log.ended.borrow().is_some())
    });
    for (conn, log) in clients {
        assert_eq!(log.echoes.get(), 30);
        assert_eq!(ended(&log), Some((1000, None)));
        // SAFETY: created by `client`, not used afterwards.
        unsafe { Connection::release(conn.as_ptr()) };
    }
    // SAFETY: created by `server`, not used afterwards.
    unsafe { Acceptor::release(acceptor.as_ptr()) };
}

#[test]
fn each_client_failure_reaches_on_close_as_its_own_error() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new("wsconn test CA");
    let other_ca = TestCa::new("another CA");
    let good = ca.leaf(&["127.0.0.1"]);
    let wrong_name = ca.leaf(&["other.example"]);
    let expired = ca.expired_leaf(&["127.0.0.1"]);
    let (good_acceptor, good_port) = server(&reactor, Some(&good));
    let (name_acceptor, name_port) = server(&reactor, Some(&wrong_name));
    let (expired_acceptor, expired_port) = server(&reactor, Some(&expired));
    let (plain_acceptor, plain_port) = server(&reactor, None);
    let tls_failure = |kind| (false, Some((1006, Some(Error::Tls(kind)))));
    let url = |port: u16| format!("wss://127.0.0.1:{port}/");
    assert_eq!(
        outcome(&reactor, &url(good_port), Some(&other_ca.cert_pem)),
        tls_failure(TlsError::UnknownCa)
    );
    // The system's store does not know the test CA either.
    assert_eq!(
        outcome(&reactor, &url(good_port), None),
        tls_failure(TlsError::UnknownCa)
    );
    assert_eq!(
        outcome(&reactor, &url(name_port), Some(&ca.cert_pem)),
        tls_failure(TlsError::NameMismatch)
    );
    assert_eq!(
        outcome(&reactor, &url(expired_port), Some(&ca.cert_pem)),
        tls_failure(TlsError::Expired)
    );
    assert_eq!(
        outcome(&reactor, &url(plain_port), Some(&ca.cert_pem)),
        tls_failure(TlsError::NotTls)
    );
    // The server saw our alert (unknown CA) and goes on serving.
    let (opened, end) = outcome(&reactor, &url(good_port), Some(&ca.cert_pem));
    assert!(opened);
    assert_eq!(end, Some((1000, None)));
    // SAFETY: created by `server`, not used afterwards.
    unsafe {
        for a in [good_acceptor, name_acceptor, expired_acceptor, plain_acceptor] {
            Acceptor::release(a.as_ptr());
        }
    }
}

/// A server whose certificate is self-signed and marked CA:TRUE (what
/// `openssl req -x509` makes): trusted when the client's CA file holds that
/// very certificate, after the name and validity checks; otherwise refused
/// with the precise reason.
#[test]
fn a_self_signed_ca_certificate_in_the_ca_file_is_trusted_as_the_server_s() {
    let reactor = Reactor::new().unwrap();
    let own = certs::self_signed_ca(&["127.0.0.1", "localhost"], false);
    let expired = certs::self_signed_ca(&["127.0.0.1"], true);
    let stranger = certs::self_signed_ca(&["127.0.0.1"], false);
    let root = TestCa::new("wsconn test root");
    let intermediate = root.ca_leaf(&["127.0.0.1"]);
    let (own_acceptor, own_port) = server(&reactor, Some(&own));
    let (stranger_acceptor, stranger_port) = server(&reactor, Some(&stranger));
    let (expired_acceptor, expired_port) = server(&reactor, Some(&expired));
    let (intermediate_acceptor, intermediate_port) = server(&reactor, Some(&intermediate));
    let tls_failure = |kind| (false, Some((1006, Some(Error::Tls(kind)))));

    let (opened, end) = outcome(&reactor, &format!("wss://127.0.0.1:{own_port}/"), Some(&own.cert_pem));
    assert!(opened, "refused: {end:?}");
    assert_eq!(end, Some((1000, None)));
    let (opened, end) = outcome(&reactor, &format!("wss://localhost:{own_port}/"), Some(&own.cert_pem));
    assert!(opened, "refused by name: {end:?}");
    // Among other certificates of the file too.
    let file = format!("{}{}", stranger.cert_pem, own.cert_pem);
    let (opened, _) = outcome(&reactor, &format!("wss://127.0.0.1:{own_port}/"), Some(&file));
    assert!(opened);

    // The name and the validity are still checked.
    assert_eq!(
        outcome(
            &reactor,
            &format!("wss://localhost:{stranger_port}/"),
            Some(&stranger.cert_pem)
        ),
        tls_failure(TlsError::NameMismatch)
    );
    assert_eq!(
        outcome(
            &reactor,
            &format!("wss://127.0.0.1:{expired_port}/"),
            Some(&expired.cert_pem)
        ),
        tls_failure(TlsError::Expired)
    );
    // Not the certificate of the file: self-signed by an unknown authority.
    assert_eq!(
        outcome(
            &reactor,
            &format!("wss://127.0.0.1:{own_port}/"),
            Some(&stranger.cert_pem)
        ),
        tls_failure(TlsError::UnknownCa)
    );
    // A CA certificate, signed by a trusted one, is no server's certificate.
    assert_eq!(
        outcome(
            &reactor,
            &format!("wss://127.0.0.1:{intermediate_port}/"),
            Some(&root.cert_pem)
        ),
        tls_failure(TlsError::CaCertificate)
    );
    // SAFETY: created by `server`, not used afterwards.
    unsafe {
        for a in [own_acceptor, stranger_acceptor, expired_acceptor, intermediate_acceptor] {
            Acceptor::release(a.as_ptr());
        }
    }
}

#[test]
fn a_reload_serves_the_new_certificate_while_old_connections_go_on() {
    let reactor = Reactor::new().unwrap();
    let old_ca = TestCa::new("old CA");
    let new_ca = TestCa::new("new CA");
    let (acceptor, port) = server(&reactor, Some(&old_ca.leaf(&["127.0.0.1"])));
    // SAFETY: released at the end of the test.
    let a = unsafe { acceptor.as_ref() };
    let url = format!("wss://127.0.0.1:{port}/");
    let (old, old_log) = client(&reactor, &url, Some(&old_ca.cert_pem), usize::MAX);
    run_until(&reactor, 20, || old_log.echoes.get() > 5);
    // A bad certificate is refused and changes nothing.
    assert_eq!(
        ServerTls::from_pem(b"not PEM", b"nor this").unwrap_err(),
        TlsError::Credentials
    );
    let new_leaf = new_ca.leaf(&["127.0.0.1"]);
    a.set_tls(Some(
        ServerTls::from_pem(new_leaf.cert_pem.as_bytes(), new_leaf.key_pem.as_bytes()).unwrap(),
    ));
    let (opened, end) = outcome(&reactor, &url, Some(&new_ca.cert_pem));
    assert!(opened);
    assert_eq!(end, Some((1000, None)));
    assert_eq!(
        outcome(&reactor, &url, Some(&old_ca.cert_pem)),
        (false, Some((1006, Some(Error::Tls(TlsError::UnknownCa)))))
    );
    // The connection made before the reload kept echoing all along.
    let before = old_log.echoes.get();
    run_until(&reactor, 20, || old_log.echoes.get() > before + 5);
    assert!(ended(&old_log).is_none());
    // SAFETY: created by `client`/`server`, not used afterwards.
    unsafe {
        Connection::release(old.as_ptr());
        Acceptor::release(acceptor.as_ptr());
    }
}

#[test]
fn the_certificate_is_chosen_by_the_name_the_client_asks_for() {
    let reactor = Reactor::new().unwrap();
    reactor.set_resolver(Arc::new(|_: &str, port: u16| {
        Ok(vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))])
    }));
    let ca = TestCa::new("wsconn test CA");
    let (acceptor, port) = server(&reactor, Some(&ca.leaf(&["default.test"])));
    // SAFETY: released at the end of the test.
    let a = unsafe { acceptor.as_ref() };
    let (one, two) = (ca.leaf(&["a.test"]), ca.leaf(&["b.test"]));
    let tls = a.tls().unwrap();
    let tls = tls
        .with_name_pem("a.test", one.cert_pem.as_bytes(), one.key_pem.as_bytes())
        .unwrap();
    let tls = tls
        .with_name_pem("B.TEST", two.cert_pem.as_bytes(), two.key_pem.as_bytes())
        .unwrap();
    // A key that is not the certificate's is refused.
    let mismatched = tls.with_name_pem("c.test", one.cert_pem.as_bytes(), two.key_pem.as_bytes());
    assert_eq!(mismatched.unwrap_err(), TlsError::Credentials);
    a.set_tls(Some(tls));
    for name in ["a.test", "b.test", "default.test"] {
        let (opened, end) = outcome(&reactor, &format!("wss://{name}:{port}/"), Some(&ca.cert_pem));
        assert!(opened, "{name}");
        assert_eq!(end, Some((1000, None)), "{name}");
    }
    // Any other name gets the default certificate, which is not for it.
    assert_eq!(
        outcome(&reactor, &format!("wss://c.test:{port}/"), Some(&ca.cert_pem)),
        (false, Some((1006, Some(Error::Tls(TlsError::NameMismatch)))))
    );
    // A reload of the default certificate keeps the names.
    let renewed = ca.leaf(&["default.test", "c.test"]);
    let reloaded = a
        .tls()
        .unwrap()
        .with_default_pem(renewed.cert_pem.as_bytes(), renewed.key_pem.as_bytes())
        .unwrap();
    a.set_tls(Some(reloaded));
    for name in ["a.test", "b.test", "c.test", "default.test"] {
        let (opened, end) = outcome(&reactor, &format!("wss://{name}:{port}/"), Some(&ca.cert_pem));
        assert!(opened, "{name} after the reload");
        assert_eq!(end, Some((1000, None)), "{name} after the reload");
    }
    // SAFETY: created by `server`, not used afterwards.
    unsafe { Acceptor::release(acceptor.as_ptr()) };
}

#[test]
fn the_handshake_timeout_covers_the_tls_handshake() {
    let reactor = Reactor::new().unwrap();
    let mut config = ConnConfig::default();
    config.timeouts.set_handshake_ms(300).unwrap();
    reactor.set_config(Arc::new(config));
    let ca = TestCa::new("wsconn test CA");
    let (acceptor, port) = server(&reactor, Some(&ca.leaf(&["127.0.0.1"])));
    // Silent, and half a ClientHello: both are dropped at the timeout.
    for flight in [&b""[..], &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01][..]] {
        let peer = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        (&peer).write_all(flight).unwrap();
        peer.set_nonblocking(true).unwrap();
        let started = Instant::now();
        run_until(&reactor, 10, || closed(&peer));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
    }
    // SAFETY: created by `server`, not used afterwards.
    unsafe { Acceptor::release(acceptor.as_ptr()) };
}

/// The server closed the connection (and sent nothing before).
fn closed(peer: &std::net::TcpStream) -> bool {
    match peer.peek(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => panic!("the server sent something"),
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

#[test]
fn plain_http_and_garbage_on_the_tls_port_are_closed_while_others_go_on() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new("wsconn test CA");
    let (acceptor, port) = server(&reactor, Some(&ca.leaf(&["127.0.0.1"])));
    let url = format!("wss://127.0.0.1:{port}/");
    let (busy, busy_log) = client(&reactor, &url, Some(&ca.cert_pem), usize::MAX);
    run_until(&reactor, 20, || busy_log.echoes.get() > 2);
    let flights: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8],
        &[0u8; 4096],
    ];
    // SAFETY: created by `server`, released below.
    let a = unsafe { acceptor.as_ref() };
    assert_eq!(a.tls_refused(), 0, "the busy client's handshake was not refused");
    for (i, flight) in flights.into_iter().enumerate() {
        if i == 2 {
            // A reload keeps the count.
            let leaf = ca.leaf(&["127.0.0.1"]);
            a.set_tls(Some(
                ServerTls::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap(),
            ));
        }
        let peer = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        (&peer).write_all(flight).unwrap();
        peer.set_nonblocking(true).unwrap();
        let before = busy_log.echoes.get();
        // The server closes it (after an alert, at most) and echoes meanwhile.
        let closed = Cell::new(false);
        run_until(&reactor, 20, || {
            let mut buf = [0u8; 256];
            loop {
                match (&peer).read(&mut buf) {
                    Ok(0) => closed.set(true),
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed.set(true),
                    Err(_) => {}
                }
                break;
            }
            closed.get() && busy_log.echoes.get() > before
        });
        assert_eq!(a.tls_refused(), i as u64 + 1, "refusals counted after flight {i}");
    }
    assert!(ended(&busy_log).is_none());
    // SAFETY: created by `client`/`server`, not used afterwards.
    unsafe {
        Connection::release(busy.as_ptr());
        Acceptor::release(acceptor.as_ptr());
    }
}

/// Floods its client with numbered 64 KiB messages up to `total`, pausing at
/// `Full` and going on at the drain; records the most output it held.
struct Flood {
    sent: Cell<usize>,
    total: usize,
    most_buffered: Rc<Cell<usize>>,
}

impl Flood {
    fn send_more(&self, conn: &Connection<Self>) {
        while self.sent.get() < self.total {
            let mut message = vec![(self.sent.get() % 251) as u8; 64 * 1024];
            message[..8].copy_from_slice(&(self.sent.get() as u64).to_be_bytes());
            match conn.send(MessageKind::Binary, &message) {
                Ok(()) => self.sent.set(self.sent.get() + 1),
                Err(Error::Session(wsconn::proto::error::Error::Full)) => break,
                Err(e) => panic!("send: {e}"),
            }
            let buffered = conn.buffered_amount();
            self.most_buffered.set(self.most_buffered.get().max(buffered));
        }
    }
}

impl ConnHandler for Flood {
    fn on_open(&self, conn: &Connection<Self>, _path: &str, _subprotocol: Option<&str>) {
        self.send_more(conn);
    }

    fn on_drain(&self, conn: &Connection<Self>) {
        self.send_more(conn);
    }
}

/// Counts the numbered messages, in order.
struct Sink(Rc<Cell<usize>>);

impl ConnHandler for Sink {
    fn on_message(&self, _conn: &Connection<Self>, message: Message<'_>) {
        let n = u64::from_be_bytes(message.as_bytes()[..8].try_into().unwrap()) as usize;
        assert_eq!(n, self.0.get(), "messages in order");
        assert_eq!(message.as_bytes().len(), 64 * 1024);
        self.0.set(n + 1);
    }
}

#[test]
fn a_client_that_stops_reading_holds_the_tls_server_to_its_max_output() {
    const TOTAL: usize = 200; // 12.5 MiB, over ten times the max output
    let reactor = Reactor::new().unwrap();
    let mut config = ConnConfig::default();
    Arc::make_mut(&mut config.protocol).set_max_output(1 << 20).unwrap();
    let ca = TestCa::new("wsconn test CA");
    config.tls.set_ca_pem(ca.cert_pem.as_bytes()).unwrap();
    reactor.set_config(Arc::new(config));
    let leaf = ca.leaf(&["127.0.0.1"]);
    let acceptor = Acceptor::create(&reactor);
    // SAFETY: just created; released at the end of the test.
    let a = unsafe { acceptor.as_ref() };
    a.set_tls(Some(
        ServerTls::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap(),
    ));
    let most_buffered = Rc::new(Cell::new(0));
    let most = Rc::clone(&most_buffered);
    a.set_on_accept(Some(Box::new(move |reactor, fd| {
        let flood = Flood {
            sent: Cell::new(0),
            total: TOTAL,
            most_buffered: Rc::clone(&most),
        };
        Connection::serve(reactor, fd, flood).is_ok()
    })));
    a.start("127.0.0.1", 0).unwrap();
    let received = Rc::new(Cell::new(0));
    let conn = Connection::create(&reactor, Sink(Rc::clone(&received)));
    // SAFETY: just created; released at the end of the test.
    let c = unsafe { conn.as_ref() };
    c.connect(&format!("wss://127.0.0.1:{}/", a.port().unwrap())).unwrap();
    run_until(&reactor, 20, || received.get() > 0);
    c.pause_read().unwrap();
    let paused = Instant::now();
    while paused.elapsed() < Duration::from_secs(1) {
        reactor.dispatch(20).unwrap();
    }
    // The server stopped at its max output (one message may pass it).
    assert!(
        most_buffered.get() <= (1 << 20) + 64 * 1024 + 64,
        "{}",
        most_buffered.get()
    );
    assert!(received.get() < TOTAL);
    c.resume_read().unwrap();
    run_until(&reactor, 60, || received.get() == TOTAL);
    // SAFETY: created above, not used afterwards.
    unsafe {
        Connection::release(conn.as_ptr());
        Acceptor::release(acceptor.as_ptr());
    }
}

/// Runs a client of `url` trusting `ca` and showing `identity` (if any) to
/// its end: whether it opened, how it ended, its echoes.
fn outcome_with_identity(
    reactor: &Reactor,
    url: &str,
    ca: &str,
    identity: Option<&Leaf>,
) -> (bool, Option<Error>, usize) {
    let log = Rc::new(Log::default());
    log.close_after.set(3);
    let conn = Connection::create(reactor, Client(Rc::clone(&log)));
    // SAFETY: just created; released below.
    let c = unsafe { conn.as_ref() };
    let mut tls = ClientTls::default();
    tls.set_ca_pem(ca.as_bytes()).unwrap();
    if let Some(leaf) = identity {
        tls.set_client_cert_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())
            .unwrap();
    }
    c.set_config(Arc::new(ConnConfig {
        tls,
        ..ConnConfig::default()
    }))
    .unwrap();
    c.connect(url).expect("connect accepted");
    run_until(reactor, 20, || log.ended.borrow().is_some());
    // SAFETY: created above, not used afterwards.
    unsafe { Connection::release(conn.as_ptr()) };
    let error = ended(&log).and_then(|(_, e)| e);
    (log.opened.get(), error, log.echoes.get())
}

#[test]
fn a_server_requiring_client_certificates_takes_only_those_its_ca_signed() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new("wsconn server CA");
    let client_ca = TestCa::new("wsconn client CA");
    let (acceptor, port) = server(&reactor, Some(&ca.leaf(&["127.0.0.1"])));
    // SAFETY: created by `server`, released below.
    let a = unsafe { acceptor.as_ref() };
    let required = a
        .tls()
        .unwrap()
        .with_client_ca_pem(Some(client_ca.cert_pem.as_bytes()))
        .unwrap();
    assert!(required.requires_client_certificate());
    a.set_tls(Some(required));
    let url = format!("wss://127.0.0.1:{port}/");

    let (opened, error, echoes) =
        outcome_with_identity(&reactor, &url, &ca.cert_pem, Some(&client_ca.leaf(&["client"])));
    assert!(opened && error.is_none() && echoes == 3, "{opened} {error:?} {echoes}");
    assert_eq!(a.tls_refused(), 0);

    for (i, identity) in [None, Some(ca.leaf(&["client"]))].iter().enumerate() {
        let (opened, error, _) = outcome_with_identity(&reactor, &url, &ca.cert_pem, identity.as_ref());
        assert!(!opened, "client {i} opened");
        assert!(matches!(error, Some(Error::Tls(_))), "client {i}: {error:?}");
        // The server's side of the refusal ends on its next turns.
        run_until(&reactor, 20, || a.tls_refused() == i as u64 + 1);
    }

    // A reload keeps the requirement; NULL lifts it.
    let leaf = ca.leaf(&["127.0.0.1"]);
    let reloaded = a
        .tls()
        .unwrap()
        .with_default_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())
        .unwrap();
    assert!(reloaded.requires_client_certificate());
    a.set_tls(Some(reloaded.with_client_ca_pem(None).unwrap()));
    let (opened, error, echoes) = outcome_with_identity(&reactor, &url, &ca.cert_pem, None);
    assert!(opened && error.is_none() && echoes == 3, "{opened} {error:?} {echoes}");
    // SAFETY: created by `server`, not used afterwards.
    unsafe { Acceptor::release(acceptor.as_ptr()) };
}

/// Records how each connection it serves ended.
struct EndRecorder(Rc<RefCell<Vec<Option<Error>>>>);

impl ConnHandler for EndRecorder {
    fn on_close(&self, _conn: &Connection<Self>, ending: &Ending<'_>) {
        self.0.borrow_mut().push(ending.error);
    }
}

/// A ClientHello that claims the largest handshake message rustls takes
/// (64 KiB), sent in full records: more than its buffer holds. The server
/// refuses it as a TLS failure of its own kind, not as a socket error.
#[test]
fn a_handshake_message_over_the_tls_buffers_ends_with_its_own_error() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new("wsconn test CA");
    let leaf = ca.leaf(&["127.0.0.1"]);
    let ends = Rc::new(RefCell::new(Vec::new()));
    let acceptor = Acceptor::create(&reactor);
    // SAFETY: released below.
    let a = unsafe { acceptor.as_ref() };
    a.set_tls(Some(
        ServerTls::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap(),
    ));
    let recorded = Rc::clone(&ends);
    a.set_on_accept(Some(Box::new(move |reactor, fd| {
        Connection::serve(reactor, fd, EndRecorder(Rc::clone(&recorded))).is_ok()
    })));
    a.start("127.0.0.1", 0).unwrap();
    let peer = std::net::TcpStream::connect(("127.0.0.1", a.port().unwrap())).unwrap();
    let mut body = vec![1u8, 0x00, 0xff, 0xff];
    body.resize(4 + 0xffff, 0x41);
    let writer = std::thread::spawn(move || {
        for record in body.chunks(16 * 1024) {
            let mut flight = vec![0x16, 0x03, 0x01];
            flight.extend_from_slice(&(record.len() as u16).to_be_bytes());
            flight.extend_from_slice(record);
            if (&peer).write_all(&flight).is_err() {
                break;
            }
        }
        peer
    });
    run_until(&reactor, 20, || !ends.borrow().is_empty());
    drop(writer.join().unwrap());
    assert_eq!(*ends.borrow(), vec![Some(Error::Tls(TlsError::BufferFull))]);
    assert_eq!(a.tls_refused(), 1, "counted as a refused handshake");
    // SAFETY: created above, not used afterwards.
    unsafe { Acceptor::release(acceptor.as_ptr()) };
}

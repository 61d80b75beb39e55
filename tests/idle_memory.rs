//! Bytes held per idle connection on the server side — plain, TLS, and with
//! permessage-deflate in each mode after one compressed exchange, with the
//! dedicated streams kept or trimmed once idle — counted by
//! an allocator that keeps each thread's live bytes: the server's reactor runs
//! on its own thread, so the clients' memory is not counted. Prints the
//! numbers (for the README's table) and guards against them growing.

#[cfg(feature = "tls")]
mod certs;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[cfg(feature = "tls")]
use certs::TestCa;
use wsconn::runtime::acceptor::Acceptor;
use wsconn::runtime::config::ConnConfig;
use wsconn::runtime::connection::Connection;
use wsconn::runtime::handler::ConnHandler;
use wsconn::runtime::reactor::Reactor;
use wsconn::runtime::tls::{ClientTls, ServerTls};
use wsconn::{Config, DeflateConfig, Message, MessageKind};
use wsconn_testkit::{live_bytes, PerThreadAllocator};

#[global_allocator]
static ALLOCATOR: PerThreadAllocator = PerThreadAllocator;

const CONNECTIONS: usize = 200;

struct Echo;

impl ConnHandler for Echo {
    fn on_message(&self, conn: &Connection<Self>, message: Message<'_>) {
        conn.send_message(message).expect("echo accepted");
    }
}

/// Sends one message, counts its echo, then stays idle.
struct Client(Rc<Cell<usize>>);

/// What each client sends: 1 KiB of JSON-like text, compressed when agreed.
fn greeting() -> String {
    (0..60)
        .map(|i| format!("{{\"id\":{i},\"ok\":true}},"))
        .collect::<String>()[..1000]
        .to_owned()
}

impl ConnHandler for Client {
    fn on_open(&self, conn: &Connection<Self>, _path: &str, _subprotocol: Option<&str>) {
        conn.send(MessageKind::Text, greeting().as_bytes()).unwrap();
    }

    fn on_message(&self, _conn: &Connection<Self>, _message: Message<'_>) {
        self.0.set(self.0.get() + 1);
    }
}

/// Compression streams of idle connections are kept for their whole life…
const NEVER_TRIM: u32 = 0;
/// …or trimmed after this long without a message (well within the time the
/// connections are left idle before they are counted).
const TRIM_MS: u32 = 20;

/// A connection config with permessage-deflate set as given, its streams
/// trimmed after `trim_ms` idle.
fn with_deflate(deflate: &Option<DeflateConfig>, trim_ms: u32) -> ConnConfig {
    let mut protocol = Config::default();
    protocol.set_deflate(deflate.clone());
    let mut config = ConnConfig {
        protocol: Arc::new(protocol),
        ..ConnConfig::default()
    };
    config.timeouts.set_deflate_idle_ms(trim_ms);
    config
}

/// The server's live bytes per idle connection, with `tls` served and
/// `deflate` on both sides (streams trimmed after `trim_ms` idle).
fn bytes_per_idle_connection(
    tls: Option<(ServerTls, ClientTls)>,
    deflate: Option<DeflateConfig>,
    trim_ms: u32,
) -> isize {
    let stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(AtomicIsize::new(0));
    let (port_tx, port_rx) = mpsc::channel();
    let server_tls = tls.as_ref().map(|(s, _)| s.clone());
    let server_config = Arc::new(with_deflate(&deflate, trim_ms));
    let server = {
        let (stop, live) = (Arc::clone(&stop), Arc::clone(&live));
        std::thread::spawn(move || {
            let reactor = Reactor::new().unwrap();
            reactor.set_config(server_config);
            let acceptor = Acceptor::create(&reactor);
            // SAFETY: released below, after the last dispatch.
            let a = unsafe { acceptor.as_ref() };
            a.set_tls(server_tls);
            a.set_on_accept(Some(Box::new(|reactor, fd| {
                Connection::serve(reactor, fd, Echo).is_ok()
            })));
            a.start("127.0.0.1", 0).unwrap();
            port_tx.send(a.port().unwrap()).unwrap();
            while !stop.load(Ordering::Relaxed) {
                reactor.dispatch(10).unwrap();
                live.store(live_bytes(), Ordering::Relaxed);
            }
            // SAFETY: created above, not used afterwards.
            unsafe { Acceptor::release(acceptor.as_ptr()) };
        })
    };
    let port = port_rx.recv().unwrap();
    let reactor = Reactor::new().unwrap();
    let echoes = Rc::new(Cell::new(0));
    let (scheme, config) = match tls {
        Some((_, client)) => (
            "wss",
            ConnConfig {
                tls: client,
                ..with_deflate(&deflate, trim_ms)
            },
        ),
        None => ("ws", with_deflate(&deflate, trim_ms)),
    };
    let config = Arc::new(config);
    let connect = |n: usize| -> Vec<_> {
        (0..n)
            .map(|_| {
                let conn = Connection::create(&reactor, Client(Rc::clone(&echoes)));
                // SAFETY: just created; released at the end.
                let c = unsafe { conn.as_ref() };
                c.set_config(Arc::clone(&config)).unwrap();
                c.connect(&format!("{scheme}://127.0.0.1:{port}/")).unwrap();
                conn
            })
            .collect()
    };
    let run_until = |done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "timed out");
            reactor.dispatch(10).unwrap();
        }
    };
    // One connection first, so that the server's per-thread spares exist.
    let mut conns = connect(1);
    run_until(&|| echoes.get() == 1);
    std::thread::sleep(Duration::from_millis(200));
    let before = live.load(Ordering::Relaxed);
    conns.extend(connect(CONNECTIONS));
    run_until(&|| echoes.get() == CONNECTIONS + 1);
    std::thread::sleep(Duration::from_millis(200));
    let after = live.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    for conn in conns {
        // SAFETY: created by `connect`, not used afterwards.
        unsafe { Connection::release(conn.as_ptr()) };
    }
    (after - before) / CONNECTIONS as isize
}

#[test]
#[cfg(feature = "tls")]
fn idle_connection_memory_plain_and_tls() {
    let ca = TestCa::new("wsconn test CA");
    let leaf = ca.leaf(&["127.0.0.1"]);
    let server = ServerTls::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let mut client = ClientTls::default();
    client.set_ca_pem(ca.cert_pem.as_bytes()).unwrap();
    let plain = bytes_per_idle_connection(None, None, NEVER_TRIM);
    let tls = bytes_per_idle_connection(Some((server, client)), None, NEVER_TRIM);
    println!("bytes per idle server connection: plain {plain}, TLS {tls}");
    // Plain: the connection and its session (the README says ~270 bytes).
    assert!(plain < 1024, "plain idle connection: {plain} bytes");
    // TLS adds rustls' state and whatever buffers it keeps once idle (about
    // 8 KB when this was written).
    assert!(tls < 16 * 1024, "TLS idle connection: {tls} bytes");
}

#[test]
fn idle_connection_memory_with_permessage_deflate() {
    let plain = bytes_per_idle_connection(None, None, NEVER_TRIM);
    let shared = bytes_per_idle_connection(None, Some(DeflateConfig::shared()), NEVER_TRIM);
    let dedicated = DeflateConfig::dedicated(15).unwrap();
    let mut small = DeflateConfig::dedicated(9).unwrap();
    small.set_mem_level(1).unwrap();
    let kept = |config: &DeflateConfig, trim_ms| bytes_per_idle_connection(None, Some(config.clone()), trim_ms);
    let (dedicated_bytes, small_bytes) = (kept(&dedicated, NEVER_TRIM), kept(&small, NEVER_TRIM));
    let (dedicated_trimmed, small_trimmed) = (kept(&dedicated, TRIM_MS), kept(&small, TRIM_MS));
    println!(
        "bytes per idle server connection after one compressed message each way: plain {plain}, \
         shared {shared}, dedicated 15-bit {dedicated_bytes} ({dedicated_trimmed} trimmed), \
         dedicated 9-bit mem 1 {small_bytes} ({small_trimmed} trimmed)"
    );
    // The shared mode keeps nothing per connection once a message is done:
    // what it costs is the 2-byte agreement, inside the session's padding.
    assert!(shared < 1024, "shared mode: {shared} bytes per idle connection");
    assert!(shared - plain < 64, "shared {shared} vs plain {plain}");
    // Untrimmed, a dedicated connection keeps its compressor and
    // decompressor, about what the config says it costs.
    for (bytes, config) in [(dedicated_bytes, &dedicated), (small_bytes, &small)] {
        let expected = config.connection_memory() as isize;
        assert!(
            bytes > expected / 2 && bytes < expected * 3 / 2,
            "dedicated: {bytes} bytes per idle connection, expected about {expected}"
        );
    }
    // Trimmed, it keeps the client's window: the 1000 bytes of its message
    // (15-bit), or the last 512 of them (9-bit), and a few hundred bytes of
    // state around them.
    let message = greeting().len() as isize;
    for (trimmed, window) in [(dedicated_trimmed, message), (small_trimmed, 512)] {
        assert!(
            trimmed - plain >= window && trimmed - plain < window + 2048,
            "trimmed: {trimmed} bytes per idle connection (plain {plain}), window {window}"
        );
        assert!(trimmed < 4096, "trimmed: {trimmed} bytes per idle connection");
    }
}

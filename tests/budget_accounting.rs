//! What a connection really holds against what the memory budget is charged,
//! counted by an allocator that keeps each thread's live bytes (the server's
//! reactor runs on a thread of its own): a kept decompressor does not pin
//! the largest message a connection received; compression streams over the
//! budget are shed; a message published to TLS subscribers is held once,
//! not once per subscriber. Prints the figures (README, memory budget).

#[cfg(feature = "tls")]
mod certs;
mod rust_echo;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use rust_echo::dedicated_deflate;
use wsconn::runtime::acceptor::Acceptor;
use wsconn::runtime::connection::Connection;
use wsconn::runtime::handler::ConnHandler;
use wsconn::runtime::reactor::Reactor;
use wsconn::{Compress, Config, DeflateConfig, Event, Message, MessageKind, Session};
use wsconn_testkit::{live_bytes, PerThreadAllocator, WsClient, OP_BINARY};

#[global_allocator]
static ALLOCATOR: PerThreadAllocator = PerThreadAllocator;

const KIB: isize = 1 << 10;
const MIB: isize = 1 << 20;

fn drain(s: &Session) -> Vec<u8> {
    let out = s.pending().to_vec();
    s.consume(out.len()).unwrap();
    out
}

fn ignore(_: &Session, _: Event<'_>) {}

/// A server session and a client configured alike, past a handshake made in memory.
fn pair(deflate: Option<DeflateConfig>) -> (Session, Session) {
    let mut config = Config::default();
    config.set_deflate(deflate);
    let config = Arc::new(config);
    let s = Session::server(Arc::clone(&config));
    let c = Session::client(config, "localhost", "/").unwrap();
    s.feed(&mut drain(&c), &mut ignore).unwrap();
    c.feed(&mut drain(&s), &mut ignore).unwrap();
    (s, c)
}

/// What a server session holds, by the allocator and by its own count, after
/// one small compressed message and then an 8 MiB one sent uncompressed,
/// cut by 64 KiB reads.
fn held_after_a_large_message(deflate: Option<DeflateConfig>) -> (isize, usize) {
    let (s, c) = pair(deflate);
    c.send_text(&"small and compressed, ".repeat(10)).unwrap();
    let mut small = drain(&c);
    let large = vec![7u8; 8 << 20];
    c.send_message_with(Message::Binary(&large), Compress::Never).unwrap();
    let wire = drain(&c);
    drop((c, large));
    let mut piece = vec![0u8; 64 << 10];
    let before = live_bytes();
    s.feed(&mut small, &mut ignore).unwrap();
    let mut messages = 0;
    for chunk in wire.chunks(piece.len()) {
        piece[..chunk.len()].copy_from_slice(chunk);
        s.feed(&mut piece[..chunk.len()], &mut |_: &Session, e: Event<'_>| {
            if let Event::Message(_) = e {
                messages += 1;
            }
        })
        .unwrap();
    }
    assert_eq!(messages, 1);
    (live_bytes() - before, s.memory().unwrap())
}

#[test]
fn a_kept_decompressor_does_not_pin_the_largest_message() {
    let (plain, _) = held_after_a_large_message(None);
    let (dedicated, reported) = held_after_a_large_message(Some(DeflateConfig::dedicated(15).unwrap()));
    let kept = dedicated - plain;
    println!("held after an 8 MiB message: plain {plain} B, dedicated {kept} B more, {reported} B reported");
    // The decompressor and its window (about 47 KiB), not the message.
    assert!(
        kept < 256 * KIB,
        "a dedicated connection keeps {kept} bytes more than a plain one"
    );
    assert!(
        reported as isize + 16 * KIB >= kept,
        "{kept} bytes held, {reported} reported"
    );
}

/// Server connections: echo, and subscribe to "room" when open.
struct Member;

impl ConnHandler for Member {
    fn on_open(&self, conn: &Connection<Self>, _path: &str, _subprotocol: Option<&str>) {
        conn.subscribe("room").unwrap();
    }

    fn on_message(&self, conn: &Connection<Self>, message: Message<'_>) {
        conn.send_message(message).expect("echo accepted");
    }
}

/// A server reactor on its own thread (its live bytes counted there), with
/// `configure` applied before it listens. `command` runs on that thread when
/// the test sets `go`; what the server reports is sent back.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    live: Arc<AtomicIsize>,
    buffered: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

type Command = Box<dyn FnOnce(&Reactor) -> String + Send>;

impl Server {
    fn start(
        configure: impl FnOnce(&Reactor, &Acceptor) + Send + 'static,
        commands: mpsc::Receiver<(Command, mpsc::Sender<String>)>,
    ) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(AtomicIsize::new(0));
        let buffered = Arc::new(AtomicUsize::new(0));
        let (port_tx, port_rx) = mpsc::channel();
        let thread = {
            let (stop, live, buffered) = (Arc::clone(&stop), Arc::clone(&live), Arc::clone(&buffered));
            thread::spawn(move || {
                let reactor = Reactor::new().unwrap();
                let acceptor = Acceptor::create(&reactor);
                // SAFETY: released below, after the last dispatch.
                let a = unsafe { acceptor.as_ref() };
                configure(&reactor, a);
                a.set_on_accept(Some(Box::new(|reactor, fd| {
                    Connection::serve(reactor, fd, Member).is_ok()
                })));
                a.start("127.0.0.1", 0).unwrap();
                port_tx.send(a.port().unwrap()).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    reactor.dispatch(5).unwrap();
                    while let Ok((command, answer)) = commands.try_recv() {
                        let _ = answer.send(command(&reactor));
                    }
                    live.store(live_bytes(), Ordering::Relaxed);
                    buffered.store(reactor.memory_usage().buffered, Ordering::Relaxed);
                }
                // SAFETY: created above, not used afterwards.
                unsafe { Acceptor::release(acceptor.as_ptr()) };
            })
        };
        Server {
            port: port_rx.recv().unwrap(),
            stop,
            live,
            buffered,
            thread: Some(thread),
        }
    }

    /// Its live bytes, a few turns of its loop from now.
    fn live(&self) -> isize {
        thread::sleep(Duration::from_millis(30));
        self.live.load(Ordering::Relaxed)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Client connections: count the messages that come back.
struct Counting(Rc<Cell<usize>>, Rc<RefCell<String>>);

impl ConnHandler for Counting {
    fn on_open(&self, conn: &Connection<Self>, _path: &str, _subprotocol: Option<&str>) {
        *self.1.borrow_mut() = conn.extensions();
    }

    fn on_message(&self, _conn: &Connection<Self>, _message: Message<'_>) {
        self.0.set(self.0.get() + 1);
    }
}

fn run_until(reactor: &Reactor, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        reactor.dispatch(5).unwrap();
    }
}

#[test]
fn compression_streams_over_the_budget_are_shed() {
    const BUDGET: usize = 3 << 20;
    const CLIENTS: usize = 24;
    let (_commands, command_rx) = mpsc::channel();
    // Streams are never trimmed for being idle: only the budget sheds them.
    let server = Server::start(
        |reactor, _| {
            reactor.set_memory_budget(BUDGET);
            reactor.set_config(dedicated_deflate(0));
        },
        command_rx,
    );
    let before = server.live();
    let reactor = Reactor::new().unwrap();
    let config = dedicated_deflate(0);
    let echoes = Rc::new(Cell::new(0));
    let agreed = Rc::new(RefCell::new(String::new()));
    let conns: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let conn = Connection::create(&reactor, Counting(Rc::clone(&echoes), Rc::clone(&agreed)));
            // SAFETY: just created; released at the end.
            let c = unsafe { conn.as_ref() };
            c.set_config(Arc::clone(&config)).unwrap();
            c.connect(&format!("ws://127.0.0.1:{}/", server.port)).unwrap();
            conn
        })
        .collect();
    let text = "{\"id\":1,\"name\":\"someone\",\"ok\":true},".repeat(30);
    run_until(&reactor, "the handshakes", || {
        // SAFETY: live until released below.
        conns.iter().all(|c| unsafe { c.as_ref() }.established().is_ok())
    });
    for round in 1..=3 {
        for conn in &conns {
            // SAFETY: as above.
            unsafe { conn.as_ref() }
                .send(MessageKind::Text, text.as_bytes())
                .unwrap();
        }
        run_until(&reactor, "the echoes", || echoes.get() == round * CLIENTS);
    }
    let held = server.live() - before;
    println!(
        "{CLIENTS} connections with context takeover under a {} MiB budget: {} KiB held, {} KiB charged",
        BUDGET >> 20,
        held / KIB,
        server.buffered.load(Ordering::Relaxed) >> 10
    );
    assert!(
        held < BUDGET as isize + MIB,
        "{held} bytes held by {CLIENTS} connections under a {BUDGET}-byte budget"
    );
    for conn in conns {
        // SAFETY: from `create`, not used afterwards.
        unsafe { Connection::release(conn.as_ptr()) };
    }
}

#[test]
fn over_the_budget_new_connections_agree_on_no_context_takeover() {
    let (_commands, command_rx) = mpsc::channel();
    let server = Server::start(
        |reactor, _| {
            reactor.set_memory_budget(1 << 20);
            reactor.set_config(dedicated_deflate(0));
        },
        command_rx,
    );
    let port = server.port;
    // A partial upload fills the budget.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let uploader = thread::spawn(move || {
        let mut s = WsClient::open(port, "/");
        s.send_frame(false, OP_BINARY, &vec![1u8; 2 << 20]).unwrap();
        let _ = done_rx.recv();
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.buffered.load(Ordering::Relaxed) < 1 << 20 {
        assert!(Instant::now() < deadline, "the upload did not fill the budget");
        thread::sleep(Duration::from_millis(10));
    }
    let reactor = Reactor::new().unwrap();
    let agreed = Rc::new(RefCell::new(String::new()));
    let conn = Connection::create(&reactor, Counting(Rc::default(), Rc::clone(&agreed)));
    // SAFETY: just created; released at the end.
    let c = unsafe { conn.as_ref() };
    c.set_config(dedicated_deflate(0)).unwrap();
    c.connect(&format!("ws://127.0.0.1:{port}/")).unwrap();
    run_until(&reactor, "the handshake", || c.established().is_ok());
    let agreed = agreed.borrow().clone();
    println!("agreed over the budget: {agreed}");
    assert!(
        agreed.contains("server_no_context_takeover") && agreed.contains("client_no_context_takeover"),
        "agreed {agreed:?} over the budget"
    );
    // SAFETY: from `create`, not used afterwards.
    unsafe { Connection::release(conn.as_ptr()) };
    drop(done_tx);
    uploader.join().unwrap();
}

#[cfg(feature = "tls")]
#[test]
fn a_message_published_to_tls_subscribers_is_held_once() {
    use certs::TestCa;
    use wsconn::runtime::config::ConnConfig;
    use wsconn::runtime::tls::{ClientTls, ServerTls};
    const SUBSCRIBERS: usize = 40;
    let ca = TestCa::new("wsconn test CA");
    let leaf = ca.leaf(&["127.0.0.1"]);
    let tls = ServerTls::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let (commands, command_rx) = mpsc::channel::<(Command, mpsc::Sender<String>)>();
    let server = Server::start(move |_, acceptor| acceptor.set_tls(Some(tls)), command_rx);
    let reactor = Reactor::new().unwrap();
    let mut client = ClientTls::default();
    client.set_ca_pem(ca.cert_pem.as_bytes()).unwrap();
    let config = Arc::new(ConnConfig {
        tls: client,
        ..ConnConfig::default()
    });
    let received = Rc::new(Cell::new(0));
    let conns: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            let conn = Connection::create(&reactor, Counting(Rc::clone(&received), Rc::default()));
            // SAFETY: just created; released at the end.
            let c = unsafe { conn.as_ref() };
            c.set_config(Arc::clone(&config)).unwrap();
            c.connect(&format!("wss://127.0.0.1:{}/", server.port)).unwrap();
            conn
        })
        .collect();
    let ask = |command: Command| {
        let (answer_tx, answer_rx) = mpsc::channel();
        commands.send((command, answer_tx)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            reactor.dispatch(5).unwrap();
            if let Ok(answer) = answer_rx.try_recv() {
                return answer;
            }
            assert!(Instant::now() < deadline, "the server did not answer");
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while ask(Box::new(|r| r.subscribers("room").to_string())) != SUBSCRIBERS.to_string() {
        assert!(Instant::now() < deadline, "the subscribers did not join");
    }
    // Published and measured in one turn of the server: before anything is written.
    let figures = ask(Box::new(|r| {
        let payload = vec![b'x'; 1 << 20];
        let before = live_bytes();
        let reached = r.publish("room", Message::Binary(&payload), None);
        let held = live_bytes() - before;
        format!("{reached} {held} {}", r.memory_usage().buffered)
    }));
    let figures: Vec<usize> = figures.split(' ').map(|f| f.parse().unwrap()).collect();
    let (reached, held, charged) = (figures[0], figures[1] as isize, figures[2]);
    println!(
        "1 MiB published to {SUBSCRIBERS} TLS subscribers: {} KiB held, {} KiB charged",
        held / KIB,
        charged >> 10
    );
    assert_eq!(reached, SUBSCRIBERS);
    assert!(
        held < 4 * MIB,
        "{held} bytes held for 1 MiB published to {SUBSCRIBERS} subscribers"
    );
    assert!(charged >= 1 << 20, "{charged} bytes charged for what is held");
    run_until(&reactor, "every delivery", || received.get() == SUBSCRIBERS);
    for conn in conns {
        // SAFETY: from `create`, not used afterwards.
        unsafe { Connection::release(conn.as_ptr()) };
    }
}

//! The runtime from Rust, with no C at all: an echo server and its clients as
//! `ConnHandler`s on one reactor; and a client whose host name resolves slowly,
//! which must not hold up the other connections of its reactor.

mod rust_echo;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rust_echo::{echo_server, run_until};
use wsconn::runtime::acceptor::Acceptor;
use wsconn::runtime::connection::Connection;
use wsconn::runtime::error::Error;
use wsconn::runtime::handler::{ConnHandler, Ending};
use wsconn::runtime::reactor::Reactor;
use wsconn::{Message, MessageKind};

/// What a client saw.
#[derive(Default)]
struct Log {
    opened: Cell<bool>,
    echoes: Cell<usize>,
    ended: RefCell<Option<(u16, Option<Error>)>>,
}

/// A client that sends `total` messages one after another (text and binary in
/// turn, growing sizes), checks each echo, then closes.
struct Client {
    total: usize,
    log: Rc<Log>,
    /// Counted for the other threads of the test.
    echo_counter: Arc<AtomicUsize>,
}

fn payload(i: usize) -> Vec<u8> {
    (0..i * 37 % 70_000).map(|j| b'a' + ((i + j) % 26) as u8).collect()
}

impl Client {
    fn send(&self, conn: &Connection<Self>, i: usize) {
        let kind = if i % 2 == 0 {
            MessageKind::Text
        } else {
            MessageKind::Binary
        };
        conn.send(kind, &payload(i)).expect("send accepted");
    }
}

impl ConnHandler for Client {
    fn on_open(&self, conn: &Connection<Self>, path: &str, _subprotocol: Option<&str>) {
        assert_eq!(path, "/echo");
        self.log.opened.set(true);
        self.send(conn, 0);
    }

    fn on_message(&self, conn: &Connection<Self>, message: Message<'_>) {
        let i = self.log.echoes.get();
        assert_eq!(
            message.kind(),
            if i % 2 == 0 {
                MessageKind::Text
            } else {
                MessageKind::Binary
            }
        );
        assert_eq!(message.as_bytes(), payload(i), "echo {i}");
        self.log.echoes.set(i + 1);
        self.echo_counter.fetch_add(1, Ordering::Relaxed);
        if i + 1 < self.total {
            self.send(conn, i + 1);
        } else {
            conn.close(1000, "done").expect("close accepted");
        }
    }

    fn on_close(&self, _conn: &Connection<Self>, ending: &Ending<'_>) {
        *self.log.ended.borrow_mut() = Some((ending.code, ending.error));
    }
}

/// A client connection on `reactor` (released by the caller).
fn client(
    reactor: &Reactor,
    url: &str,
    total: usize,
    counter: &Arc<AtomicUsize>,
) -> (std::ptr::NonNull<Connection<Client>>, Rc<Log>) {
    let log = Rc::new(Log::default());
    let handler = Client {
        total,
        log: Rc::clone(&log),
        echo_counter: Arc::clone(counter),
    };
    let conn = Connection::create(reactor, handler);
    // SAFETY: just created; released by the caller.
    unsafe { conn.as_ref() }.connect(url).expect("connect accepted");
    (conn, log)
}

#[test]
fn echo_server_and_clients_in_rust_only() {
    echo_server_and_clients(&Reactor::new().unwrap());
}

/// With busy polling, the same traffic; and an idle dispatch still returns
/// at its timeout (the spin never runs past it).
#[test]
fn busy_polling_serves_the_same_and_keeps_the_dispatch_timeout() {
    let reactor = Reactor::new().unwrap();
    reactor.set_busy_poll(Duration::from_millis(200));
    assert_eq!(reactor.busy_poll(), Duration::from_millis(200));
    echo_server_and_clients(&reactor);
    reactor.set_busy_poll(Duration::from_secs(3600));
    assert_eq!(reactor.busy_poll(), Duration::from_secs(1), "at most a second");
    let start = std::time::Instant::now();
    assert_eq!(reactor.dispatch(20).unwrap(), 0, "nothing to do");
    // 20 ms of spinning, not the second: a bound no scheduling delay reaches.
    assert!(start.elapsed() < Duration::from_millis(800), "{:?}", start.elapsed());
}

fn echo_server_and_clients(reactor: &Reactor) {
    let (acceptor, port) = echo_server(reactor);
    let counter = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..5)
        .map(|_| client(reactor, &format!("ws://127.0.0.1:{port}/echo"), 40, &counter))
        .collect();
    run_until(reactor, 30, || {
        clients.iter().all(|(_, log)| log.ended.borrow().is_some())
    });
    for (conn, log) in clients {
        assert!(log.opened.get());
        assert_eq!(log.echoes.get(), 40);
        // The server answered our close: a clean end, no error.
        assert_eq!(*log.ended.borrow(), Some((1000, None)));
        // SAFETY: created by `client`, not used afterwards.
        unsafe { Connection::release(conn.as_ptr()) };
    }
    assert_eq!(counter.load(Ordering::Relaxed), 200);
    // SAFETY: created by `echo_server`, not used afterwards.
    unsafe { Acceptor::release(acceptor.as_ptr()) };
}

#[test]
fn a_slow_name_resolution_does_not_hold_up_the_reactor() {
    let reactor = Reactor::new().unwrap();
    let (acceptor, port) = echo_server(&reactor);
    let counter = Arc::new(AtomicUsize::new(0));
    // Echoes counted while the name is being resolved: the resolver records
    // the count when it starts and when it answers.
    let window = Arc::new((AtomicUsize::new(usize::MAX), AtomicUsize::new(usize::MAX)));
    let (seen, slow) = (Arc::clone(&counter), Arc::clone(&window));
    reactor.set_resolver(Arc::new(move |host: &str, port: u16| {
        assert_eq!(host, "slow.example");
        slow.0.store(seen.load(Ordering::Relaxed), Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(1500));
        slow.1.store(seen.load(Ordering::Relaxed), Ordering::Relaxed);
        Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
    }));
    let (busy, busy_log) = client(&reactor, &format!("ws://127.0.0.1:{port}/echo"), 1_000_000, &counter);
    run_until(&reactor, 10, || busy_log.echoes.get() > 0);
    let (named, named_log) = client(
        &reactor,
        &format!("ws://slow.example:{port}/echo"),
        3,
        &Arc::new(AtomicUsize::new(0)),
    );
    run_until(&reactor, 30, || named_log.ended.borrow().is_some());
    let during = window.1.load(Ordering::Relaxed) - window.0.load(Ordering::Relaxed);
    // A reactor blocked in the resolution would have echoed nothing meanwhile;
    // one that keeps running echoes hundreds or thousands of messages in 1.5 s.
    assert!(during >= 20, "only {during} echoes while the name was resolved");
    assert!(named_log.opened.get());
    assert_eq!(named_log.echoes.get(), 3);
    assert_eq!(*named_log.ended.borrow(), Some((1000, None)));
    // SAFETY: created by `client`/`echo_server`, not used afterwards.
    unsafe {
        Connection::release(busy.as_ptr());
        Connection::release(named.as_ptr());
        Acceptor::release(acceptor.as_ptr());
    }
}

#[test]
fn names_resolve_with_the_system_resolver_and_failures_reach_on_close() {
    let reactor = Reactor::new().unwrap();
    let (acceptor, port) = echo_server(&reactor);
    let counter = Arc::new(AtomicUsize::new(0));
    let (local, local_log) = client(&reactor, &format!("ws://localhost:{port}/echo"), 2, &counter);
    run_until(&reactor, 30, || local_log.ended.borrow().is_some());
    assert_eq!(local_log.echoes.get(), 2);
    assert_eq!(*local_log.ended.borrow(), Some((1000, None)));
    reactor.set_resolver(Arc::new(|_: &str, _: u16| Err(std::io::ErrorKind::NotFound.into())));
    let (missing, missing_log) = client(&reactor, &format!("ws://nowhere.invalid:{port}/echo"), 2, &counter);
    run_until(&reactor, 30, || missing_log.ended.borrow().is_some());
    assert!(!missing_log.opened.get());
    assert_eq!(
        *missing_log.ended.borrow(),
        Some((1006, Some(Error::Io("name resolution"))))
    );
    // SAFETY: created by `client`/`echo_server`, not used afterwards.
    unsafe {
        Connection::release(local.as_ptr());
        Connection::release(missing.as_ptr());
        Acceptor::release(acceptor.as_ptr());
    }
}

/// What the kernel says of a socket: O_NONBLOCK, FD_CLOEXEC, TCP_NODELAY.
fn socket_options(fd: std::os::fd::RawFd) -> (bool, bool, bool) {
    let mut nodelay: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: fcntl and getsockopt on an open fd; `nodelay` and `len` are
    // valid for writes of their sizes.
    let (status, descriptor, got) = unsafe {
        (
            libc::fcntl(fd, libc::F_GETFL),
            libc::fcntl(fd, libc::F_GETFD),
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&mut nodelay as *mut libc::c_int).cast(),
                &mut len,
            ),
        )
    };
    assert!(status >= 0 && descriptor >= 0 && got == 0, "fd {fd}");
    (
        status & libc::O_NONBLOCK != 0,
        descriptor & libc::FD_CLOEXEC != 0,
        nodelay != 0,
    )
}

/// An echo client's round trip through `port` (blocking, on its own thread).
fn one_echo(port: u16) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut ws = wsconn_testkit::WsClient::connect(port);
        ws.send_text("ping").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        ws.read_frame(deadline).expect("an echo").payload
    })
}

/// The acceptor's sockets come ready (non-blocking and close-on-exec from
/// accept4, TCP_NODELAY from the listening socket), so a connection started
/// on one changes nothing on it; a blocking socket the program hands over
/// is made non-blocking (and TCP_NODELAY) when its connection starts.
#[test]
fn accepted_sockets_come_ready_and_handed_over_ones_are_made_so() {
    let reactor = Reactor::new().unwrap();
    let seen = Rc::new(Cell::new(None));
    let acceptor = Acceptor::create(&reactor);
    // SAFETY: just created; released at the end.
    let a = unsafe { acceptor.as_ref() };
    let seen_in = Rc::clone(&seen);
    a.set_on_accept(Some(Box::new(move |reactor, fd| {
        seen_in.set(Some(socket_options(fd)));
        Connection::serve(reactor, fd, rust_echo::Echo).is_ok()
    })));
    a.start("127.0.0.1", 0).expect("listening");
    let client = one_echo(a.port().unwrap());
    run_until(&reactor, 30, || client.is_finished());
    assert_eq!(client.join().unwrap(), b"ping");
    assert_eq!(
        seen.get(),
        Some((true, true, true)),
        "accepted: non-blocking, close-on-exec, nodelay"
    );

    // The same from a listening socket handed over (as systemd does).
    seen.set(None);
    let handed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = handed.local_addr().unwrap().port();
    let other = Acceptor::create(&reactor);
    // SAFETY: just created; released at the end.
    let o = unsafe { other.as_ref() };
    let seen_in = Rc::clone(&seen);
    o.set_on_accept(Some(Box::new(move |reactor, fd| {
        seen_in.set(Some(socket_options(fd)));
        Connection::serve(reactor, fd, rust_echo::Echo).is_ok()
    })));
    o.start_fd(std::os::fd::IntoRawFd::into_raw_fd(handed))
        .expect("listening");
    let client = one_echo(port);
    run_until(&reactor, 30, || client.is_finished());
    assert_eq!(client.join().unwrap(), b"ping");
    assert_eq!(seen.get(), Some((true, true, true)), "handed over: the same");

    // A socket from the program's own (blocking) accept.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = one_echo(listener.local_addr().unwrap().port());
    let (stream, _) = listener.accept().unwrap();
    let fd = std::os::fd::IntoRawFd::into_raw_fd(stream);
    assert!(!socket_options(fd).0, "std's accept gives a blocking socket");
    let conn = Connection::create(&reactor, rust_echo::Echo);
    // SAFETY: just created; released below.
    let c = unsafe { conn.as_ref() };
    c.set_fd(fd).unwrap();
    c.start().unwrap();
    assert_eq!(socket_options(fd), (true, true, true), "made non-blocking, nodelay");
    run_until(&reactor, 30, || client.is_finished());
    assert_eq!(client.join().unwrap(), b"ping");
    // SAFETY: created above, not used afterwards.
    unsafe {
        Connection::release(conn.as_ptr());
        Acceptor::release(acceptor.as_ptr());
        Acceptor::release(other.as_ptr());
    }
}

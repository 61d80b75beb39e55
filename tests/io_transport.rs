//! The reactor's transports: `WSCONN_IO` chooses epoll or io_uring (feature
//! `io-uring`), and io_uring falls back to epoll where the kernel refuses it
//! (here: a seccomp filter denying io_uring_setup, as container runtimes
//! do). Each reactor echoes the same traffic: pipelined messages of every
//! size up to a few hundred KiB (partial sends on the ring), then a close.
//!
//! The other runtime tests run on both transports: `make test` runs them
//! again with `WSCONN_IO=uring`, and the first test here makes sure that
//! such a run really is on the ring.

mod rust_echo;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rust_echo::{echo_server, run_until};
use wsconn::runtime::acceptor::Acceptor;
use wsconn::runtime::reactor::Reactor;
use wsconn::runtime::uring::{IoBackend, IO_ENV};
use wsconn_testkit::{build_examples, example, LoggedServer, WsClient};

/// Echoes pipelined messages of growing sizes on `reactor` and checks every
/// byte, then the close.
fn echoes(reactor: &Reactor) {
    let (acceptor, port) = echo_server(reactor);
    let done = Arc::new(AtomicBool::new(false));
    let finished = Arc::clone(&done);
    let client = std::thread::spawn(move || {
        let mut ws = WsClient::open(port, "/");
        let messages: Vec<String> = (0..120)
            .map(|i| {
                let len = (i * i * 31) % 300_000;
                (0..len).map(|j| (b'a' + ((i + j) % 26) as u8) as char).collect()
            })
            .collect();
        let writer = {
            let mut stream = ws.stream.try_clone().expect("clone");
            let messages = messages.clone();
            std::thread::spawn(move || {
                for m in &messages {
                    let frame = wsconn_testkit::client_frame(0x81, m.as_bytes());
                    std::io::Write::write_all(&mut stream, &frame).expect("send");
                }
            })
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        for (i, m) in messages.iter().enumerate() {
            let frame = ws.read_frame(deadline).expect("an echo");
            assert_eq!(frame.opcode, 1, "message {i}");
            assert!(frame.payload == m.as_bytes(), "message {i} echoed whole");
        }
        writer.join().expect("writer");
        ws.send_close(1000).expect("close");
        let frame = ws.read_frame(deadline).expect("the close answered");
        assert_eq!((frame.opcode, &frame.payload[..2]), (8, &1000u16.to_be_bytes()[..]));
        finished.store(true, Ordering::Release);
    });
    run_until(reactor, 60, || done.load(Ordering::Acquire) || client.is_finished());
    client.join().expect("the client saw every echo");
    // SAFETY: from `echo_server`; the dispatches are over.
    unsafe { Acceptor::release(acceptor.as_ptr()) };
}

/// A run with `WSCONN_IO=uring` runs on the ring, not on a silent fallback.
#[test]
fn the_environment_chooses_the_transport() {
    let reactor = Reactor::new().unwrap();
    let asked = std::env::var(IO_ENV).ok();
    let expected = match asked.as_deref() {
        Some("uring") if cfg!(feature = "io-uring") => IoBackend::Uring,
        Some("uring") | Some("epoll") => IoBackend::Epoll,
        _ => IoBackend::DEFAULT,
    };
    assert_eq!(reactor.io(), expected, "{IO_ENV}={asked:?}");
}

/// Whether process `pid` has an io_uring open (its fd links name it).
fn has_a_ring(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the server's fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .any(|link| link.to_string_lossy().contains("io_uring"))
}

/// The C library the examples link (built as `make test` builds it, with
/// the feature) follows `WSCONN_IO` too: with `uring`, the example server
/// has a ring; without, it has none. (Run by hand, set CARGO_FEATURES as
/// the Makefile does, or a `uring` run fails here.)
#[test]
fn the_c_examples_run_on_the_transport_the_environment_chooses() {
    build_examples();
    let asked = std::env::var(IO_ENV).ok();
    let mut server = LoggedServer::start(&example("echo_server"), &["0"], &[], "io-transport");
    let port = server.wait_for_port();
    let mut ws = WsClient::open(port, "/");
    ws.send_text("on which transport?").expect("send");
    let echo = ws
        .read_frame(Instant::now() + Duration::from_secs(10))
        .expect("an echo");
    assert_eq!(echo.payload, b"on which transport?");
    let expected = asked.as_deref() == Some("uring");
    assert_eq!(has_a_ring(server.pid()), expected, "{IO_ENV}={asked:?}");
}

#[test]
fn epoll_echoes_when_forced() {
    let reactor = Reactor::with_io(IoBackend::Epoll).unwrap();
    assert_eq!(reactor.io(), IoBackend::Epoll);
    echoes(&reactor);
}

#[test]
#[cfg(feature = "io-uring")]
fn the_ring_echoes() {
    let reactor = Reactor::with_io(IoBackend::Uring).unwrap();
    assert_eq!(reactor.io(), IoBackend::Uring, "io_uring works on this machine");
    echoes(&reactor);
}

/// Denies io_uring_setup to this thread (and what it starts) with EPERM, as
/// Docker's default seccomp profile does.
fn deny_io_uring() {
    const LD_NR: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let filter = [
        // The syscall number is at offset 0 of struct seccomp_data.
        libc::sock_filter {
            code: LD_NR,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: JEQ,
            jt: 0,
            jf: 1,
            k: libc::SYS_io_uring_setup as u32,
        },
        libc::sock_filter {
            code: RET,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        libc::sock_filter {
            code: RET,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: prctl with valid arguments; the filter outlives the call (the
    // kernel copies it).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0, "no_new_privs");
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &program as *const libc::sock_fprog
            ),
            0,
            "seccomp filter"
        );
    }
}

/// Where io_uring_setup is denied, a reactor asked for the ring runs on
/// epoll, and serves. Runs in a child process (the filter cannot be undone).
#[test]
fn epoll_serves_where_io_uring_setup_is_denied() {
    const CHILD: &str = "WSCONN_TEST_DENIED_CHILD";
    if std::env::var_os(CHILD).is_some() {
        deny_io_uring();
        // SAFETY: a raw io_uring_setup with a NULL params pointer: refused
        // before it is read, by the filter.
        let setup = unsafe { libc::syscall(libc::SYS_io_uring_setup, 8, std::ptr::null_mut::<u8>()) };
        assert_eq!(
            (setup, std::io::Error::last_os_error().raw_os_error()),
            (-1, Some(libc::EPERM)),
            "the filter denies io_uring_setup"
        );
        let reactor = Reactor::with_io(IoBackend::Uring).unwrap();
        assert_eq!(reactor.io(), IoBackend::Epoll, "fell back to epoll");
        return echoes(&reactor);
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "epoll_serves_where_io_uring_setup_is_denied",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env(IO_ENV, "uring")
        .output()
        .expect("the child runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{text}");
    assert!(text.contains("1 passed"), "the child ran the test:\n{text}");
}

/// The server's handler panics on "panic" (a program's bug); the program
/// catches it and goes on dispatching.
#[cfg(feature = "io-uring")]
struct Panicky;

#[cfg(feature = "io-uring")]
impl wsconn::runtime::handler::ConnHandler for Panicky {
    fn on_message(&self, conn: &wsconn::runtime::connection::Connection<Self>, message: wsconn::Message<'_>) {
        if let wsconn::Message::Text("panic") = message {
            panic!("a handler's bug");
        }
        conn.send_message(message).expect("echo accepted");
    }
}

/// A handler's panic unwinds out of `dispatch` in the middle of the ring's
/// completions: those not handled yet are handled at the next turn, and the
/// buffer being delivered goes back to the ring, so every other connection
/// (and the one whose handler panicked) goes on echoing whole messages.
/// (Epoll may lose the rest of such a turn's readiness, as `dispatch` says:
/// a completion lost would leave a send or a buffer taken for good.)
#[test]
#[cfg(feature = "io-uring")]
fn a_caught_panic_in_a_handler_loses_no_completion() {
    let reactor = Reactor::with_io(IoBackend::Uring).unwrap();
    assert_eq!(reactor.io(), IoBackend::Uring);
    let acceptor = Acceptor::create(&reactor);
    // SAFETY: just created; released after the last dispatch.
    let a = unsafe { acceptor.as_ref() };
    a.set_on_accept(Some(Box::new(|reactor, fd| {
        wsconn::runtime::connection::Connection::serve(reactor, fd, Panicky).is_ok()
    })));
    a.start("127.0.0.1", 0).expect("listening");
    let port = a.port().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let finished = Arc::clone(&done);
    let client = std::thread::spawn(move || {
        let mut clients: Vec<WsClient> = (0..8).map(|_| WsClient::open(port, "/")).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        for round in 0..20 {
            // Every client sends in the same turn; one of them sets the panic off.
            for (i, c) in clients.iter_mut().enumerate() {
                let text = if i == round % 8 && round % 3 == 0 {
                    "panic".to_owned()
                } else {
                    format!("round {round} client {i} {}", "x".repeat(round * 997 % 5000))
                };
                c.send_text(&text).expect("send");
            }
            for (i, c) in clients.iter_mut().enumerate() {
                if i == round % 8 && round % 3 == 0 {
                    continue;
                }
                let expected = format!("round {round} client {i} {}", "x".repeat(round * 997 % 5000));
                let echo = c
                    .read_frame(deadline)
                    .unwrap_or_else(|e| panic!("round {round} client {i}: {e:?}"));
                assert_eq!(echo.payload, expected.as_bytes(), "round {round} client {i}");
            }
        }
        finished.store(true, Ordering::Release);
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut panics = 0;
    while !done.load(Ordering::Acquire) && !client.is_finished() {
        assert!(Instant::now() < deadline, "timed out");
        let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reactor.dispatch(50)));
        if turn.is_err() {
            panics += 1;
        }
    }
    client.join().expect("every echo came back whole");
    assert!(panics >= 5, "the handler panicked ({panics} times)");
    // SAFETY: from `create`; the dispatches are over.
    unsafe { Acceptor::release(acceptor.as_ptr()) };
}

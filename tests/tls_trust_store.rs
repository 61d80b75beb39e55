//! The system's trust store, as a `wss://` client with default settings
//! uses it: read off the reactor's thread (a slow read must not stall the
//! loop), and a failed read is not remembered for the process (the next
//! connection reads it again).
//!
//! `SSL_CERT_FILE` says where the store is; the test points it at a missing
//! file, then at a FIFO it writes the test CA into only once the reactor has
//! been seen dispatching while the read waits. One test in its own binary:
//! the store is the process's, read at most once successfully.
#![cfg(feature = "tls")]

mod certs;

mod rust_echo;

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use certs::TestCa;
use rust_echo::{echo_server_with, run_until};
use wsconn::runtime::connection::Connection;
use wsconn::runtime::error::Error;
use wsconn::runtime::handler::{ConnHandler, Ending};
use wsconn::runtime::reactor::Reactor;
use wsconn::runtime::tls::{ServerTls, TlsError};

#[derive(Default)]
struct Log {
    opened: Cell<bool>,
    ended: RefCell<Option<Option<Error>>>,
}

struct Client(Rc<Log>);

impl ConnHandler for Client {
    fn on_open(&self, conn: &Connection<Self>, _path: &str, _subprotocol: Option<&str>) {
        self.0.opened.set(true);
        conn.close(1000, "done").unwrap();
    }

    fn on_close(&self, _conn: &Connection<Self>, ending: &Ending<'_>) {
        *self.0.ended.borrow_mut() = Some(ending.error);
    }
}

/// A client with the default TLS settings (the system's store) connecting to `url`.
fn connect(reactor: &Reactor, url: &str) -> (std::ptr::NonNull<Connection<Client>>, Rc<Log>) {
    let log = Rc::new(Log::default());
    let conn = Connection::create(reactor, Client(Rc::clone(&log)));
    // SAFETY: just created; released by the caller.
    let connected = unsafe { conn.as_ref() }.connect(url);
    assert_eq!(
        connected,
        Ok(()),
        "a trust store still to read is not this call's error"
    );
    (conn, log)
}

#[test]
fn the_trust_store_is_read_off_the_reactor_and_a_failed_read_is_tried_again() {
    let dir = certs::dir("trust-store");
    let missing = dir.join("missing.pem");
    std::env::set_var("SSL_CERT_FILE", &missing);
    std::env::remove_var("SSL_CERT_DIR");

    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new("wsconn trust store CA");
    let leaf = ca.leaf(&["127.0.0.1"]);
    let (acceptor, port) = echo_server_with(&reactor, |a| {
        a.set_tls(Some(
            ServerTls::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap(),
        ))
    });
    let url = format!("wss://127.0.0.1:{port}/");

    // 1. No store: the connection ends with the trust store's error.
    let (first, log) = connect(&reactor, &url);
    run_until(&reactor, 20, || log.ended.borrow().is_some());
    assert_eq!(*log.ended.borrow(), Some(Some(Error::Tls(TlsError::TrustStore))));
    assert!(!log.opened.get());

    // 2. The store, now a FIFO: reading it blocks until the test writes the CA.
    let fifo = dir.join("store.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success(), "mkfifo {}", fifo.display());
    std::env::set_var("SSL_CERT_FILE", &fifo);
    let written = Arc::new(AtomicBool::new(false));
    let write_store = {
        let (fifo, pem, written) = (fifo.clone(), ca.cert_pem.clone(), Arc::clone(&written));
        move || {
            if !written.swap(true, Ordering::SeqCst) {
                let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
                f.write_all(pem.as_bytes()).unwrap();
            }
        }
    };
    // Should the read block the reactor's thread, this unblocks it after a
    // while (and the test then fails on `written`).
    let (cancel, cancelled) = std::sync::mpsc::channel::<()>();
    let watchdog = {
        let write_store = write_store.clone();
        std::thread::spawn(move || {
            if cancelled.recv_timeout(Duration::from_secs(10)).is_err() {
                write_store();
            }
        })
    };
    let (second, log) = connect(&reactor, &url);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(300) {
        reactor.dispatch(20).unwrap();
    }
    assert!(
        !written.load(Ordering::SeqCst),
        "the reactor waited for the trust store to be read"
    );
    assert!(
        log.ended.borrow().is_none() && !log.opened.get(),
        "still waiting for the store"
    );
    cancel.send(()).unwrap();
    watchdog.join().unwrap();
    std::thread::spawn(write_store);
    run_until(&reactor, 20, || log.ended.borrow().is_some());
    assert!(
        log.opened.get(),
        "verified with the store read again: {:?}",
        log.ended.borrow()
    );
    assert_eq!(*log.ended.borrow(), Some(None));

    // 3. Read once, it is kept: connected at once.
    let (third, log) = connect(&reactor, &url);
    run_until(&reactor, 20, || log.ended.borrow().is_some());
    assert!(log.opened.get());

    // SAFETY: created above, not used afterwards.
    unsafe {
        Connection::release(first.as_ptr());
        Connection::release(second.as_ptr());
        Connection::release(third.as_ptr());
        wsconn::runtime::acceptor::Acceptor::release(acceptor.as_ptr());
    }
}

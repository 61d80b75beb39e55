//! Redirects followed when allowed: chains of relative and absolute
//! `Location`s to a real server (also from `ws://` to `wss://`), loops and
//! chains too long stopped, a missing `Location`.

use wsconn::runtime::config::ConnConfig;
use wsconn::runtime::error::Error;
use wsconn::runtime::reactor::Reactor;
use wsconn::runtime::tls::ServerTls;

use crate::certs::TestCa;
use crate::rust_echo::{echo_server, echo_server_with, run_until};
use crate::support::*;

fn redirects(max: u8) -> ConnConfig {
    let mut config = ConnConfig::default();
    config.client.max_redirects = max;
    config
}

#[test]
fn chains_loops_and_limits() {
    let reactor = Reactor::new().unwrap();
    let (plain, echo_port) = echo_server(&reactor);
    let ca = TestCa::new("wsconn redirect CA");
    let leaf = ca.leaf(&["localhost"]);
    let (secure, tls_port) = echo_server_with(&reactor, |a| {
        a.set_tls(Some(
            ServerTls::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap(),
        ))
    });
    let server = raw_server(move |head| {
        let to = |status: u16, location: &str| {
            Reply::Close(format!("HTTP/1.1 {status} Moved\r\nLocation: {location}\r\n\r\n").into_bytes())
        };
        match target_of(head).as_str() {
            "/start" => to(301, "next?step=2"),
            "/next?step=2" => to(308, "/absolute"),
            "/absolute" => to(307, &format!("ws://127.0.0.1:{echo_port}/final")),
            "/to-wss" => to(303, &format!("https://localhost:{tls_port}/secure")),
            "/a" => to(302, "/b"),
            "/b" => to(302, "/a"),
            "/self" => to(302, "/self"),
            "/nowhere" => Reply::Close(b"HTTP/1.1 302 Found\r\n\r\n".to_vec()),
            "/ftp" => to(302, "ftp://127.0.0.1/x"),
            _ => Reply::Close(b"HTTP/1.1 404 Not Found\r\n\r\n".to_vec()),
        }
    });
    let at = |path: &str| format!("ws://127.0.0.1:{}{path}", server.port);

    // Relative, absolute-path and absolute Locations, to the real server.
    let (conn, log) = client(&reactor, &at("/start"), redirects(5));
    run_until(&reactor, 10, || log.closed() > 0);
    release(conn);
    assert_eq!(log.opens.get(), 1);
    assert_eq!(*log.open_path.borrow(), "/final");
    assert_eq!(*log.messages.borrow(), ["hello"], "echoed by the server at the end");
    assert_eq!(log.last_close().error, None);

    // ws:// to wss:// (`https:` standing for `wss:`), verified for its own name.
    let mut config = redirects(2);
    config.tls.set_ca_pem(ca.cert_pem.as_bytes()).unwrap();
    let (conn, log) = client(&reactor, &at("/to-wss"), config);
    run_until(&reactor, 10, || log.closed() > 0);
    release(conn);
    assert_eq!((log.opens.get(), log.open_path.borrow().as_str()), (1, "/secure"));

    let before = server.requests().len();
    for (path, max, error) in [
        ("/a", 10, "a loop"),
        ("/self", 10, "a loop"),
        ("/start", 2, "more redirects than allowed"),
        ("/nowhere", 1, "no Location"),
        ("/ftp", 1, "Location is not a WebSocket URL"),
    ] {
        let (conn, log) = client(&reactor, &at(path), redirects(max));
        run_until(&reactor, 10, || log.closed() > 0);
        release(conn);
        let closed = log.last_close();
        assert_eq!(closed.error, Some(Error::Redirect(error)), "{path}");
        assert!(closed.status >= 300 && closed.status < 400, "{path}: {}", closed.status);
        assert_eq!(log.opens.get(), 0);
    }
    let asked: Vec<String> = server.requests()[before..]
        .iter()
        .map(|h| target_of(h.as_bytes()))
        .collect();
    assert_eq!(
        asked,
        [
            "/a",
            "/b",
            "/self",
            "/start",
            "/next?step=2",
            "/absolute",
            "/nowhere",
            "/ftp"
        ],
        "a loop stops at the first URL seen again, a limit at the redirect past it"
    );
    for acceptor in [plain, secure] {
        // SAFETY: from `echo_server*`, after the last dispatch of its clients.
        unsafe { wsconn::runtime::acceptor::Acceptor::release(acceptor.as_ptr()) };
    }
}

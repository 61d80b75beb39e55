//! Through real proxies: `ws://` and `wss://` through tinyproxy
//! (`http://`), haproxy's TLS in front of it (`https://`), and microsocks
//! (`socks5://`, `socks5h://`), with credentials; TLS with the server
//! inside the tunnel, checked for the server's name; a name only the proxy
//! resolves. Then every refusal with its own error and status, proxies
//! that hang up, answer garbage or nothing, and the routing of
//! environment proxies (`no_proxy` matched and missed).

use std::sync::Arc;

use wsconn::runtime::client::no_proxy::NoProxy;
use wsconn::runtime::client::proxy_rules::ProxyRules;
use wsconn::runtime::client::proxy_url::ProxyUrl;
use wsconn::runtime::config::ConnConfig;
use wsconn::runtime::error::Error;
use wsconn::runtime::reactor::Reactor;
use wsconn::runtime::resolver::system_resolver;
use wsconn::runtime::tls::{ServerTls, TlsError};

use crate::certs::TestCa;
use crate::real_proxies::{self, PASSWORD, PROXY_ONLY_NAME, USER};
use crate::rust_echo::{echo_server, echo_server_with, run_until};
use crate::support::*;

/// A reactor whose own resolver does not know `PROXY_ONLY_NAME`.
fn reactor() -> std::pin::Pin<Box<Reactor>> {
    let reactor = Reactor::new().unwrap();
    let system = system_resolver();
    reactor.set_resolver(Arc::new(move |host: &str, port: u16| match host {
        PROXY_ONLY_NAME => Err(std::io::ErrorKind::NotFound.into()),
        _ => system(host, port),
    }));
    reactor
}

fn via(proxy: &str, ca: Option<&str>) -> ConnConfig {
    let mut config = config_with_timeout(5000);
    config.client.proxies = ProxyRules::fixed(Some(ProxyUrl::parse(proxy).unwrap()), NoProxy::default());
    if let Some(ca) = ca {
        config.tls.set_ca_pem(ca.as_bytes()).unwrap();
    }
    config
}

fn server_tls(ca: &TestCa, names: &[&str]) -> ServerTls {
    let leaf = ca.leaf(names);
    ServerTls::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap()
}

#[test]
fn ws_and_wss_through_every_kind_of_proxy() {
    let dir = real_proxies::dir("kinds");
    let ca = TestCa::new("wsconn proxy test CA");
    let http = real_proxies::tinyproxy(&dir);
    let socks = real_proxies::microsocks(&dir);
    let front = ca.leaf(&["127.0.0.1"]);
    let https = real_proxies::tls_front(&dir, &format!("{}{}", front.cert_pem, front.key_pem), http.port);

    let reactor = reactor();
    let (plain, ws_port) = echo_server(&reactor);
    let (secure, wss_port) = echo_server_with(&reactor, |a| {
        a.set_tls(Some(server_tls(&ca, &["127.0.0.1", PROXY_ONLY_NAME])))
    });
    // A certificate for another name: the check is the server's, not the proxy's.
    let (other, other_port) = echo_server_with(&reactor, |a| a.set_tls(Some(server_tls(&ca, &["localhost"]))));

    let auth = format!("{USER}:{PASSWORD}@127.0.0.1");
    let proxies = [
        format!("http://{auth}:{}", http.port),
        format!("https://{auth}:{}", https.port),
        format!("socks5://{auth}:{}", socks.port),
        format!("socks5h://{auth}:{}", socks.port),
    ];
    let mut runs = Vec::new();
    for proxy in &proxies {
        for url in [
            format!("ws://127.0.0.1:{ws_port}/plain"),
            format!("wss://127.0.0.1:{wss_port}/secure"),
        ] {
            let (conn, log) = client(&reactor, &url, via(proxy, Some(&ca.cert_pem)));
            runs.push((format!("{url} via {proxy}"), conn, log, None));
        }
    }
    // A name only the proxy resolves: socks5h:// sends it, socks5:// cannot.
    let socks5h = &proxies[3];
    for url in [
        format!("ws://{PROXY_ONLY_NAME}:{ws_port}/by-name"),
        format!("wss://{PROXY_ONLY_NAME}:{wss_port}/by-name"),
    ] {
        let (conn, log) = client(&reactor, &url, via(socks5h, Some(&ca.cert_pem)));
        runs.push((format!("{url} via {socks5h}"), conn, log, None));
    }
    let only_the_proxy = format!("ws://{PROXY_ONLY_NAME}:{ws_port}/");
    let (conn, log) = client(&reactor, &only_the_proxy, via(&proxies[2], None));
    runs.push((
        "socks5:// resolves here".into(),
        conn,
        log,
        Some(Error::Io("name resolution")),
    ));
    for proxy in [&proxies[0], &proxies[1]] {
        let url = format!("wss://127.0.0.1:{other_port}/");
        let (conn, log) = client(&reactor, &url, via(proxy, Some(&ca.cert_pem)));
        runs.push((
            format!("{url} via {proxy}"),
            conn,
            log,
            Some(Error::Tls(TlsError::NameMismatch)),
        ));
    }

    run_until(&reactor, 20, || runs.iter().all(|(_, _, log, _)| log.closed() > 0));
    for (what, conn, log, failure) in runs {
        release(conn);
        let closed = log.last_close();
        match failure {
            None => {
                assert_eq!(*log.messages.borrow(), ["hello"], "{what}: {closed:?}");
                assert_eq!((closed.code, closed.error), (1000, None), "{what}");
            }
            Some(error) => {
                assert_eq!(log.opens.get(), 0, "{what}");
                assert_eq!(closed.error, Some(error), "{what}");
            }
        }
    }
    for acceptor in [plain, secure, other] {
        // SAFETY: from `echo_server*`, after the last dispatch of its clients.
        unsafe { wsconn::runtime::acceptor::Acceptor::release(acceptor.as_ptr()) };
    }
}

#[test]
fn every_refusal_and_broken_proxy_has_its_error() {
    let dir = real_proxies::dir("refusals");
    let http = real_proxies::tinyproxy(&dir);
    let socks = real_proxies::microsocks(&dir);
    let hangs_up = raw_server(|_| Reply::Close(Vec::new()));
    let garbage = raw_server(|_| Reply::Close(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()));
    let silent = raw_server(|_| Reply::Silent);
    let dead = wsconn_testkit::free_port();
    let reactor = reactor();
    let (acceptor, ws_port) = echo_server(&reactor);
    let closed_port = wsconn_testkit::free_port();
    let target = format!("ws://127.0.0.1:{ws_port}/");
    let nowhere = format!("ws://127.0.0.1:{closed_port}/");
    let (h, s) = (http.port, socks.port);
    let cases: Vec<(String, &str, Error, u16)> = vec![
        // tinyproxy answers wrong credentials with 401, none with 407.
        (
            format!("http://{USER}:wrong@127.0.0.1:{h}"),
            &target,
            Error::ProxyAuth(401),
            401,
        ),
        (format!("http://127.0.0.1:{h}"), &target, Error::ProxyAuth(407), 407),
        (
            format!("http://{USER}:{PASSWORD}@127.0.0.1:{h}"),
            &nowhere,
            Error::ProxyRefused(500),
            500,
        ),
        (
            format!("socks5h://{USER}:wrong@127.0.0.1:{s}"),
            &target,
            Error::ProxyAuth(2),
            2,
        ),
        (format!("socks5h://127.0.0.1:{s}"), &target, Error::ProxyAuth(255), 255),
        (
            format!("socks5://{USER}:{PASSWORD}@127.0.0.1:{s}"),
            &nowhere,
            Error::ProxyRefused(5),
            5,
        ),
        (
            format!("http://127.0.0.1:{}", hangs_up.port),
            &target,
            Error::ProxyProtocol("the proxy closed the connection before the tunnel was open"),
            0,
        ),
        (
            format!("socks5://127.0.0.1:{}", garbage.port),
            &target,
            Error::ProxyProtocol("the proxy's answer is not SOCKS5"),
            0,
        ),
        (
            format!("http://127.0.0.1:{}", silent.port),
            &target,
            Error::Timeout("handshake"),
            0,
        ),
        (
            format!("socks5h://127.0.0.1:{}", silent.port),
            &target,
            Error::Timeout("handshake"),
            0,
        ),
        (format!("http://127.0.0.1:{dead}"), &target, Error::Io("connect"), 0),
        (
            format!("http://{PROXY_ONLY_NAME}:{h}"),
            &target,
            Error::Io("name resolution"),
            0,
        ),
    ];
    let runs: Vec<_> = cases
        .into_iter()
        .map(|(proxy, url, error, status)| {
            let mut config = via(&proxy, None);
            config.timeouts.set_handshake_ms(600).unwrap();
            let (conn, log) = client(&reactor, url, config);
            (proxy, conn, log, error, status)
        })
        .collect();
    run_until(&reactor, 20, || runs.iter().all(|(_, _, log, _, _)| log.closed() > 0));
    for (proxy, conn, log, error, status) in runs {
        release(conn);
        let closed = log.last_close();
        assert_eq!(
            (closed.error, closed.proxy_status, closed.status),
            (Some(error), status, 0),
            "{proxy}"
        );
        assert_eq!(closed.code, 1006, "{proxy}");
        if proxy.contains(PROXY_ONLY_NAME) {
            assert_eq!(closed.reason, "resolving the proxy's name failed");
        }
    }
    // SAFETY: from `echo_server`, after the last dispatch of its clients.
    unsafe { wsconn::runtime::acceptor::Acceptor::release(acceptor.as_ptr()) };
}

#[test]
fn environment_proxies_are_skipped_for_no_proxy_hosts() {
    let reactor = reactor();
    let (acceptor, port) = echo_server(&reactor);
    // The environment names a proxy where nothing listens: a connection
    // that succeeds went directly, one that goes through it fails.
    let dead = wsconn_testkit::free_port();
    let env = [
        ("http_proxy", format!("http://127.0.0.1:{dead}")),
        ("HTTPS_PROXY", format!("http://127.0.0.1:{dead}")),
        ("no_proxy", "example.test, .internal.test ,127.0.0.0/8".to_owned()),
    ];
    let rules = ProxyRules::from_env(|name| env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())).unwrap();
    reactor.set_resolver(Arc::new(|host: &str, port: u16| match host {
        "db.internal.test" | "example.test" | "public.test" => Ok(vec![([127, 0, 0, 1], port).into()]),
        _ => Err(std::io::ErrorKind::NotFound.into()),
    }));
    let mut runs = Vec::new();
    for (host, direct) in [
        ("127.0.0.1", true),
        ("db.internal.test", true),
        ("example.test", true),
        ("public.test", false),
    ] {
        let mut config = config_with_timeout(5000);
        config.client.proxies = rules.clone();
        let (conn, log) = client(&reactor, &format!("ws://{host}:{port}/"), config);
        runs.push((host, direct, conn, log));
    }
    run_until(&reactor, 20, || runs.iter().all(|(_, _, _, log)| log.closed() > 0));
    for (host, direct, conn, log) in runs {
        release(conn);
        let closed = log.last_close();
        match direct {
            true => assert_eq!((log.opens.get(), closed.error), (1, None), "{host}"),
            false => {
                assert_eq!(closed.error, Some(Error::Io("connect")), "{host}");
                assert_eq!(closed.reason, "connecting to the proxy failed", "{host}");
            }
        }
    }
    // SAFETY: from `echo_server`, after the last dispatch of its clients.
    unsafe { wsconn::runtime::acceptor::Acceptor::release(acceptor.as_ptr()) };
}

//! Interop with Node.js's `ws` library (npm package `ws`, pinned by
//! `tests/interop/node/package-lock.json`):
//!
//! - `tests/interop/node/client.mjs` (text, binary, empty, 1 MiB, fragmented
//!   sends, ping/pong, 100 pipelined messages, close 1000 echoed) against
//!   `c-examples/echo_server` (reactor API) and `c-examples/epoll_echo`
//!   (sans-IO API);
//! - the same over `wss://` against `echo_server --tls-cert --tls-key` (a test
//!   CA trusted through `NODE_EXTRA_CA_CERTS`);
//! - `c-examples/client` against `tests/interop/node/server.mjs`, an echo
//!   server on `ws`.
//!
//! `node_modules` is installed with `npm ci` on first use, so `cargo test`
//! works alone.  Nothing is skipped: a missing `node` or `npm` fails the test
//! (on Debian: apt-get install nodejs npm).

mod certs;

use std::time::Duration;
use wsconn_testkit::{build_examples, example, example_command, node, node_dir, node_script, run, LoggedServer};

const NODE_CLIENT_TIMEOUT: Duration = Duration::from_secs(150);
const C_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs client.mjs against `ws://127.0.0.1:PORT/echo` served by `server` (a
/// C example), and requires every check to pass.
fn node_client_against(server: &str) {
    node_client_with(server, None);
}

/// The same; with `tls`, over `wss://localhost` to a server given a
/// certificate from a test CA that Node is told to trust.
fn node_client_with(server: &str, tls: Option<&str>) {
    build_examples();
    node();
    let (args, ca_file) = match tls {
        Some(tag) => {
            let (args, ca) = certs::echo_server_tls_args(tag, &["localhost"]);
            (args, Some(ca))
        }
        None => (vec!["0".to_string()], None),
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let tag = format!("node-client-{server}{}", if tls.is_some() { "-tls" } else { "" });
    let mut srv = LoggedServer::start(&example(server), &args, &[], &tag);
    let port = srv.wait_for_port();
    srv.wait_until_accepting(port);

    let url = match tls {
        Some(_) => format!("wss://localhost:{port}/echo"),
        None => format!("ws://127.0.0.1:{port}/echo"),
    };
    let mut cmd = node_script("client.mjs");
    if let Some(ca) = &ca_file {
        cmd.env("NODE_EXTRA_CA_CERTS", ca);
    }
    cmd.arg(&url);
    let done = run(cmd, NODE_CLIENT_TIMEOUT).unwrap_or_else(|e| panic!("{e}\n--- {server} log ---\n{}", srv.log()));
    let report = format!("{}\n--- {server} log ---\n{}", done.report(), srv.log());
    assert!(done.status.success(), "node client.mjs {url} failed: {report}");
    let last = done.stdout.lines().last().unwrap_or_default();
    let passed = last
        .strip_suffix(" passed, 0 failed")
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("unexpected summary {last:?}: {report}"));
    assert!(passed >= 11, "only {passed} checks ran: {report}");
    for check in ["text", "binary_1mib", "fragmented_text", "ping_pong", "close_1000"] {
        assert!(
            done.stdout.lines().any(|l| l == format!("ok {check}")),
            "no \"ok {check}\": {report}"
        );
    }
    srv.assert_running("after the node client");
}

#[test]
fn node_ws_client_against_echo_server() {
    node_client_against("echo_server");
}

#[test]
fn node_ws_client_over_wss_against_echo_server() {
    node_client_with("echo_server", Some("node-wss-client"));
}

#[test]
fn node_ws_client_against_epoll_echo() {
    node_client_against("epoll_echo");
}

#[test]
fn c_client_against_node_ws_server() {
    build_examples();
    let node_path = node();
    let script = node_dir().join("server.mjs");
    let script = script.to_str().expect("UTF-8 path");
    let mut srv = LoggedServer::start(&node_path, &[script, "0"], &[], "node-ws-server");
    let port = srv.wait_for_port();
    srv.wait_until_accepting(port);

    let url = format!("ws://127.0.0.1:{port}/echo");
    let messages = ["hello", "w\u{f6}rld \u{2713} \u{1f600}", "", "last one"];
    let mut cmd = example_command(&example("client"));
    cmd.arg(&url).args(messages);
    let done = run(cmd, C_CLIENT_TIMEOUT).unwrap_or_else(|e| panic!("{e}\n--- node server log ---\n{}", srv.log()));
    let report = format!("{}\n--- node server log ---\n{}", done.report(), srv.log());
    assert!(done.status.success(), "client {url} failed: {report}");
    let expected: String = messages.iter().map(|m| format!("{m}\n")).collect();
    assert_eq!(done.stdout, expected, "{report}");

    // The server saw the messages and the client's close 1000.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !srv.log().lines().any(|l| l.starts_with("close ")) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = srv.log();
    assert!(log.contains("open /echo"), "{report}");
    assert_eq!(
        log.lines().filter(|l| l.starts_with("message text ")).count(),
        messages.len(),
        "{report}"
    );
    assert!(
        log.lines().any(|l| l.trim_end() == "close 1000"),
        "the node server did not see close 1000: {report}"
    );
    assert!(!log.contains("error "), "{report}");
    srv.assert_running("after the client");
    srv.terminate();
}

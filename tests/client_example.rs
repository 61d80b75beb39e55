//! `c-examples/client` as a user runs it: `-H` headers and URL credentials
//! reaching the server, `--proxy` through tinyproxy, the refusals it prints
//! (`handshake refused: 401`, `proxy refused: 407`), `--proxy-env` with
//! `no_proxy` matched and missed, and `--reconnect` across a restart of
//! `echo_server` on the same port: every stdin line echoed once, in order.
#![cfg(feature = "tls")]

#[path = "client/real_proxies.rs"]
mod real_proxies;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use real_proxies::{PASSWORD, USER};
use wsconn_testkit::{build_examples, example, example_command, free_port, run, signal, Finished, LoggedServer};

const TIMEOUT: Duration = Duration::from_secs(30);

/// The proxy variables a CI machine might set: none reaches the client but
/// those a test gives.
const PROXY_VARIABLES: &[&str] = &[
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "ws_proxy",
    "WS_PROXY",
    "wss_proxy",
    "WSS_PROXY",
    "no_proxy",
    "NO_PROXY",
];

fn client(args: &[&str], env: &[(&str, String)]) -> Finished {
    let mut cmd = example_command(&example("client"));
    for name in PROXY_VARIABLES {
        cmd.env_remove(name);
    }
    cmd.args(["-T", "10"]).args(args).envs(env.iter().map(|(n, v)| (n, v)));
    run(cmd, TIMEOUT).unwrap_or_else(|e| panic!("client {args:?}: {e}"))
}

/// A raw server that keeps the request head it reads and answers `reply`.
fn raw_server(reply: &'static [u8]) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&heads);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                head.extend_from_slice(line.as_bytes());
                line.clear();
            }
            seen.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
            let _ = stream.write_all(reply);
        }
    });
    (port, heads)
}

fn echo_server(port: u16, tag: &str) -> LoggedServer {
    let mut server = LoggedServer::start(&example("echo_server"), &[&port.to_string()], &[], tag);
    server.wait_until_accepting(port);
    server
}

#[test]
fn headers_proxies_and_refusals() {
    build_examples();
    let dir = real_proxies::dir("example");
    let tinyproxy = real_proxies::tinyproxy(&dir);
    let echo_port = free_port();
    let _echo = echo_server(echo_port, "client-example-echo");
    let echo = format!("ws://127.0.0.1:{echo_port}/");
    let proxy = format!("http://{USER}:{PASSWORD}@127.0.0.1:{}", tinyproxy.port);

    let done = client(
        &[
            "-H",
            "X-Trace: abc",
            "-H",
            "Cookie: a=1",
            "--proxy",
            &proxy,
            &echo,
            "hello",
        ],
        &[],
    );
    assert!(done.status.success(), "{}", done.report());
    assert_eq!(done.stdout, "hello\n");

    // The headers, and the URL's credentials as Basic authorization.
    let (port, heads) = raw_server(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\n\r\n");
    let done = client(
        &["-H", "X-Trace:  abc", &format!("ws://u:p@127.0.0.1:{port}/x"), "hi"],
        &[],
    );
    assert!(!done.status.success());
    assert!(done.stderr.contains("handshake refused: 401"), "{}", done.report());
    let head = heads.lock().unwrap().pop().unwrap();
    assert!(
        head.contains("\r\nX-Trace: abc\r\n") && head.contains("\r\nAuthorization: Basic dTpw\r\n"),
        "{head}"
    );

    let done = client(&["-H", "Host: evil", &echo, "hi"], &[]);
    assert_eq!(done.status.code(), Some(1), "{}", done.report());
    assert!(
        done.stderr.contains("header 'Host: evil': error -2"),
        "{}",
        done.report()
    );

    let anonymous = format!("http://127.0.0.1:{}", tinyproxy.port);
    let done = client(&["--proxy", &anonymous, &echo, "hi"], &[]);
    assert!(!done.status.success());
    assert!(done.stderr.contains("proxy refused: 407"), "{}", done.report());

    // --proxy-env: no_proxy missed goes through the proxy, matched does not.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let env = |proxy: &str, no_proxy: &str| vec![("http_proxy", proxy.to_owned()), ("no_proxy", no_proxy.to_owned())];
    let done = client(
        &["--proxy-env", &echo, "through"],
        &env(&proxy, "example.test,.internal"),
    );
    assert!(done.status.success() && done.stdout == "through\n", "{}", done.report());
    let log = std::fs::read_to_string(dir.join("tinyproxy.log")).unwrap();
    assert!(
        log.contains(&format!("CONNECT 127.0.0.1:{echo_port} ")),
        "tinyproxy saw no CONNECT:\n{log}"
    );
    let done = client(&["--proxy-env", &echo, "direct"], &env(&dead, "localhost, 127.0.0.0/8"));
    assert!(done.status.success() && done.stdout == "direct\n", "{}", done.report());
    let done = client(&["--proxy-env", &echo, "lost"], &env(&dead, "localhost"));
    assert!(!done.status.success());
    assert!(
        done.stderr.contains("connecting to the proxy failed"),
        "{}",
        done.report()
    );
}

#[test]
fn reconnect_keeps_every_line_across_a_server_restart() {
    build_examples();
    let port = free_port();
    let mut server = echo_server(port, "client-reconnect-1");
    let mut child = example_command(&example("client"))
        .args(["-T", "20", "--reconnect", &format!("ws://127.0.0.1:{port}/")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, echoes) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let stderr = wsconn_testkit::read_on_thread(child.stderr.take());
    let mut seen = Vec::new();
    let expect = |seen: &mut Vec<String>, count: usize| {
        let deadline = Instant::now() + TIMEOUT;
        while seen.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            seen.push(echoes.recv_timeout(left).expect("an echo"));
        }
    };
    let lines: Vec<String> = (1..=15).map(|i| format!("line {i}")).collect();
    for line in &lines[..5] {
        writeln!(stdin, "{line}").unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    expect(&mut seen, 5);
    // The server dies; lines keep coming while it is away.
    signal(server.pid(), "KILL").unwrap();
    server.wait_exit(Duration::from_secs(10));
    for line in &lines[5..10] {
        writeln!(stdin, "{line}").unwrap();
        std::thread::sleep(Duration::from_millis(60));
    }
    let _server = echo_server(port, "client-reconnect-2");
    for line in &lines[10..] {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    expect(&mut seen, 15);
    let status = wsconn_testkit::wait_until(&mut child, Instant::now() + TIMEOUT).unwrap();
    let stderr = stderr.join().unwrap();
    assert_eq!(seen, lines, "every line once, in order\n{stderr}");
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{stderr}");
    assert!(stderr.contains("reconnecting in"), "{stderr}");
    assert!(echoes.try_recv().is_err(), "nothing more");
}

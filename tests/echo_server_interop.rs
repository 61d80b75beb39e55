//! Interop tests for the reactor C examples, `c-examples/echo_server` and
//! `c-examples/client`:
//!
//! - echo_server (linked against the .so, the .a, and the ASan + UBSan
//!   build) against the Python `websockets` client
//!   (`tests/interop/echo_server_client.py`), its plain HTTP answers, and the
//!   C client example; the ASan build must exit 0 on SIGTERM with no
//!   sanitizer report (leaks included);
//! - the C client against epoll_echo (the sans-IO server) and its failures;
//! - the system calls echo_server makes per connection (under strace).
//!
//! Nothing here is skipped (see `wsconn-testkit`).

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};
use wsconn_testkit::{
    build_asan_examples, build_examples, example, example_command, free_port, http_request, python_script, root, run,
    run_with_input, sanitizer_report, signal, Finished, LoggedServer, ReadError, WsClient, SANITIZER_ENV,
};

const PY_CLIENT_TIMEOUT: Duration = Duration::from_secs(180);
const C_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// One build of the two examples.
struct Flavour {
    server: &'static str,
    client: &'static str,
    asan: bool,
}

impl Flavour {
    fn build(&self) {
        if self.asan {
            build_asan_examples();
        } else {
            build_examples();
        }
    }

    fn env(&self) -> &'static [(&'static str, &'static str)] {
        if self.asan {
            SANITIZER_ENV
        } else {
            &[]
        }
    }
}

fn outcome(result: &Result<Finished, String>) -> (bool, String) {
    match result {
        Ok(done) => (done.status.success(), done.report()),
        Err(e) => (false, e.clone()),
    }
}

/// Runs the C client example and checks that it printed exactly `expected`
/// and exited 0.  Returns a failure description, if any.
fn client_echoes(
    client: &str,
    env: &[(&str, &str)],
    url: &str,
    args: &[&str],
    stdin: Option<&str>,
    expected: &str,
) -> Result<(), String> {
    let mut cmd = example_command(&example(client));
    cmd.arg(url).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let what = format!("{client} {url} {args:?} (stdin {stdin:?})");
    let result = run_with_input(cmd, stdin.map(str::as_bytes), C_CLIENT_TIMEOUT);
    let (ok, report) = outcome(&result);
    let done = result.map_err(|e| format!("{what}: {e}"))?;
    if !ok {
        return Err(format!("{what} failed: {report}"));
    }
    if done.stdout != expected {
        return Err(format!(
            "{what}: stdout {:?}, expected {expected:?}\n{report}",
            done.stdout
        ));
    }
    if let Some(line) = sanitizer_report(&done.stderr) {
        return Err(format!("{what}: sanitizer report: {line}\n{report}"));
    }
    Ok(())
}

/// GET /, GET /index.html, GET /nope, and an upgrade with an unsupported
/// Sec-WebSocket-Version.
fn http_checks(port: u16) -> Vec<String> {
    let mut failures = Vec::new();
    let index = std::fs::read(root().join("c-examples").join("index.html")).expect("read c-examples/index.html");

    for path in ["/", "/index.html"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        match http_request(port, &req) {
            Ok(r) if r.status == 200 && r.body == index => {
                let ct = r.header("Content-Type").unwrap_or_default();
                if !ct.starts_with("text/html") {
                    failures.push(format!("GET {path}: Content-Type {ct:?}, expected text/html"));
                }
            }
            Ok(r) => failures.push(format!(
                "GET {path}: status {}, body {} bytes (index.html has {}), headers {:?}",
                r.status,
                r.body.len(),
                index.len(),
                r.headers
            )),
            Err(e) => failures.push(format!("GET {path}: {e}")),
        }
    }

    let req = format!("GET /nope HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    match http_request(port, &req) {
        Ok(r) if r.status == 404 => {}
        Ok(r) => failures.push(format!("GET /nope: status {}, expected 404", r.status)),
        Err(e) => failures.push(format!("GET /nope: {e}")),
    }

    let req = format!(
        "GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 8\r\n\r\n"
    );
    match http_request(port, &req) {
        Ok(r) if r.status == 426 => {
            if r.header("Sec-WebSocket-Version") != Some("13") {
                failures.push(format!(
                    "Sec-WebSocket-Version: 8: 426 without \"Sec-WebSocket-Version: 13\": {:?}",
                    r.headers
                ));
            }
        }
        Ok(r) => failures.push(format!("Sec-WebSocket-Version: 8: status {}, expected 426", r.status)),
        Err(e) => failures.push(format!("Sec-WebSocket-Version: 8: {e}")),
    }
    failures
}

/// Everything against one flavour of echo_server.
fn echo_server_suite(f: Flavour) {
    f.build();
    let mut server = LoggedServer::start(&example(f.server), &["0"], f.env(), f.server);
    let port = server.wait_for_port();
    let url = format!("ws://127.0.0.1:{port}/echo");
    let mut failures = Vec::new();

    // The websockets client.
    let mut py = python_script("echo_server_client.py");
    py.arg(&url);
    let (ok, report) = outcome(&run(py, PY_CLIENT_TIMEOUT));
    println!("echo_server_client.py:\n{report}");
    if !ok {
        failures.push(format!("echo_server_client.py failed: {report}"));
    }
    server.assert_running("during the websockets checks");

    // Plain HTTP.
    failures.extend(http_checks(port));
    server.assert_running("during the HTTP checks");

    // The C client, with arguments and with stdin.
    let env = f.env();
    if let Err(e) = client_echoes(f.client, env, &url, &["hello", "wörld"], None, "hello\nwörld\n") {
        failures.push(e);
    }
    if let Err(e) = client_echoes(f.client, env, &url, &[], Some("one\n\ntwo ✓\n"), "one\n\ntwo ✓\n") {
        failures.push(e);
    }
    server.assert_running("during the client checks");

    // Shown if terminate() panics (a non-zero exit, e.g. a sanitizer's).
    for failure in &failures {
        eprintln!("check failed before the shutdown: {failure}");
    }
    server.terminate();
    let log = server.log();
    if f.asan {
        if let Some(line) = sanitizer_report(&log) {
            failures.push(format!("sanitizer report from {}: {line}", f.server));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed {} check(s):\n{}\n--- server log ---\n{log}",
        f.server,
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn echo_server_shared() {
    echo_server_suite(Flavour {
        server: "echo_server",
        client: "client",
        asan: false,
    });
}

#[test]
fn echo_server_static() {
    echo_server_suite(Flavour {
        server: "echo_server_static",
        client: "client_static",
        asan: false,
    });
}

#[test]
fn echo_server_asan() {
    echo_server_suite(Flavour {
        server: "echo_server_asan",
        client: "client_asan",
        asan: true,
    });
}

/// gbase mode (-g): text echoed through the read callback and wsconn_send().
#[test]
fn echo_server_gbase_mode() {
    build_examples();
    let mut server = LoggedServer::start(&example("echo_server"), &["-g", "0"], &[], "echo_server-g");
    let port = server.wait_for_port();
    let url = format!("ws://127.0.0.1:{port}/echo");
    let result = client_echoes("client", &[], &url, &["hello", "wörld", ""], None, "hello\nwörld\n\n");
    server.assert_running("after the client");
    server.terminate();
    if let Err(e) = result {
        panic!("{e}\n--- server log ---\n{}", server.log());
    }
}

/// The reactor client against the sans-IO server.
#[test]
fn client_against_epoll_echo() {
    build_examples();
    let mut server = LoggedServer::start(&example("epoll_echo"), &["0"], &[], "epoll_echo-client");
    let port = server.wait_for_port();
    let url = format!("ws://127.0.0.1:{port}/echo");
    let mut failures = Vec::new();
    for client in ["client", "client_static"] {
        if let Err(e) = client_echoes(client, &[], &url, &["hello", "wörld"], None, "hello\nwörld\n") {
            failures.push(e);
        }
        if let Err(e) = client_echoes(client, &[], &url, &[], Some("a\nb\n"), "a\nb\n") {
            failures.push(e);
        }
    }
    server.assert_running("after the clients");
    server.terminate();
    assert!(
        failures.is_empty(),
        "{}\n--- server log ---\n{}",
        failures.join("\n"),
        server.log()
    );
}

/// Connection refused, a bad URL, and a server that never answers the
/// handshake: exit status 1 (the client's failure status: not a crash, not
/// a loader error), in bounded time, nothing on stdout.
#[test]
fn client_failures() {
    build_examples();
    let client = example("client");

    let refused = format!("ws://127.0.0.1:{}/echo", free_port());
    let mut cmd = example_command(&client);
    cmd.args([refused.as_str(), "hello"]);
    let done = run(cmd, C_CLIENT_TIMEOUT).expect("client against a closed port did not finish");
    assert!(
        !done.status.success(),
        "client against a closed port: {}",
        done.report()
    );
    assert_eq!(done.stdout, "", "client against a closed port: {}", done.report());

    let mut cmd = example_command(&client);
    cmd.args(["http://127.0.0.1:1/echo", "hello"]);
    let done = run(cmd, C_CLIENT_TIMEOUT).expect("client with a bad URL did not finish");
    assert_eq!(
        done.status.code(),
        Some(1),
        "client with an http:// URL: {}",
        done.report()
    );

    // A TCP server that accepts and never answers: the client gives up after
    // its deadline (-T 2), well before the test's timeout.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cmd = example_command(&client);
    cmd.args(["-T", "2", &format!("ws://127.0.0.1:{port}/echo"), "hello"]);
    let start = std::time::Instant::now();
    let done = run(cmd, C_CLIENT_TIMEOUT).expect("client against a silent server did not finish");
    drop(listener);
    assert!(
        !done.status.success(),
        "client against a silent server: {}",
        done.report()
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "client took {:?} to give up on a silent server with -T 2",
        start.elapsed()
    );
}

/// `echo_server -t 2`: two reactors on two threads share the port (SO_REUSEPORT);
/// the whole websockets suite (200 concurrent connections included) still passes.
#[test]
fn echo_server_two_threads() {
    build_examples();
    let mut server = LoggedServer::start(&example("echo_server"), &["-t", "2", "0"], &[], "echo_server-t2");
    let port = server.wait_for_port();
    let mut py = python_script("echo_server_client.py");
    py.arg(format!("ws://127.0.0.1:{port}/echo"));
    let (ok, report) = outcome(&run(py, PY_CLIENT_TIMEOUT));
    server.assert_running("after the websockets client");
    server.terminate();
    assert!(
        ok,
        "echo_server -t 2 failed:\n{report}\n--- server log ---\n{}",
        server.log()
    );
}

/// The system calls `echo_server_static` makes while `cycles` clients, one
/// after another, connect, upgrade and close (each waits for the server to
/// close TCP), counted by name with `strace -f -c`.
fn syscalls_of_cycles(cycles: usize) -> HashMap<String, u64> {
    let dir = root().join("target").join("c-example-interop");
    let counts = dir.join(format!("strace-{cycles}.txt"));
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-c", "-o"])
        .arg(&counts)
        .arg(example("echo_server_static"))
        .arg("0");
    let mut server = LoggedServer::spawn(
        "strace echo_server_static",
        cmd,
        dir.join(format!("strace-{cycles}.log")),
    );
    let port = server.wait_for_port();
    for _ in 0..cycles {
        let mut ws = WsClient::connect(port);
        ws.send_close(1000).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let reply = ws.read_frame(deadline).expect("the close reply");
        assert_eq!(reply.opcode, 8, "a close frame");
        match ws.read_frame(deadline) {
            Err(ReadError::Closed(_)) => {}
            other => panic!("the server should close TCP after the close: {other:?}"),
        }
    }
    // SIGTERM to the server, strace's child; strace writes its counts and
    // exits with it.
    let strace = server.pid();
    let children = std::fs::read_to_string(format!("/proc/{strace}/task/{strace}/children")).unwrap();
    let pid: u32 = children.split_whitespace().next().expect("the server").parse().unwrap();
    signal(pid, "TERM").unwrap();
    server.wait_exit(Duration::from_secs(20));
    let table = std::fs::read_to_string(&counts).unwrap();
    // Rows: % time, seconds, usecs/call, calls, [errors,] syscall.
    table
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let name = *fields.last()?;
            let calls = fields.get(3)?.parse().ok()?;
            (fields.len() >= 5 && name != "total").then(|| (name.to_owned(), calls))
        })
        .collect()
}

/// What connect + upgrade + close costs the server, per connection: one
/// epoll_ctl (no EPOLL_CTL_DEL before the close, which takes the socket
/// out of the poll), two reads (the request, the close frame; none that
/// finds nothing), two sends (the 101, the close), one close; no fcntl and
/// no setsockopt (accept4 makes the socket non-blocking and close-on-exec,
/// TCP_NODELAY comes from the listening socket). accept4 and epoll_wait are
/// not counted: how many connections one of them serves depends on how
/// they arrive. The difference of two runs leaves out start and exit.
#[test]
fn echo_server_syscalls_per_connection() {
    build_examples();
    let (few, many) = (5, 45);
    let before = syscalls_of_cycles(few);
    let after = syscalls_of_cycles(many);
    let per = |name: &str| {
        let count = |table: &HashMap<String, u64>| table.get(name).copied().unwrap_or(0) as f64;
        (count(&after) - count(&before)) / (many - few) as f64
    };
    let mut names: Vec<&String> = after.keys().filter(|n| per(n) != 0.0).collect();
    names.sort();
    let table: Vec<String> = names.iter().map(|n| format!("{n}: {:.2}", per(n))).collect();
    println!("system calls per connection: {}", table.join(", "));
    for (name, most) in [
        ("setsockopt", 0.0),
        ("fcntl", 0.0),
        ("getpeername", 0.0),
        ("epoll_ctl", 1.0),
        ("read", 2.0),
        ("sendto", 2.0),
        ("close", 1.0),
    ] {
        assert!(
            per(name) <= most,
            "{name}: {:.2} per connection, at most {most} expected ({})",
            per(name),
            table.join(", ")
        );
    }
}

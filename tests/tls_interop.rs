//! TLS with other implementations, through the C examples: Python
//! `websockets` as a `wss://` client of `echo_server --tls-cert --tls-key`
//! (and its page over `https://`), `c-examples/client` against a Python
//! `wss://` server, the client's failure codes, mutual TLS both ways, and a
//! reload by SIGHUP.
//! Certificates are made by the test (rcgen). Nothing is skipped.

mod certs;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use certs::TestCa;
use wsconn_testkit::{
    build_examples, example, example_command, python, python_script, run, Finished, LoggedServer as Server,
};

const TIMEOUT: Duration = Duration::from_secs(60);

/// The certificate files of a test: a CA, and a server certificate it signed
/// for 127.0.0.1 and localhost.
struct Files {
    ca: String,
    cert: String,
    key: String,
}

fn files(dir: &Path, ca: &TestCa, prefix: &str) -> Files {
    let leaf = ca.leaf(&["127.0.0.1", "localhost"]);
    Files {
        ca: certs::write(dir, &format!("{prefix}ca.pem"), &ca.cert_pem),
        cert: certs::write(dir, &format!("{prefix}cert.pem"), &leaf.cert_pem),
        key: certs::write(dir, &format!("{prefix}key.pem"), &leaf.key_pem),
    }
}

fn tls_echo_server(f: &Files, tag: &str) -> (Server, u16) {
    build_examples();
    let args = ["--tls-cert", &f.cert, "--tls-key", &f.key, "0"];
    let mut server = Server::start(&example("echo_server"), &args, &[], tag);
    let port = server.wait_for_port();
    server.wait_until_accepting(port);
    (server, port)
}

/// `c-examples/client [--ca CA] URL hello world` to its end.
fn client(url: &str, ca: Option<&str>) -> Finished {
    client_with(url, ca, &[])
}

fn client_with(url: &str, ca: Option<&str>, args: &[&str]) -> Finished {
    let mut cmd = example_command(&example("client"));
    cmd.args(["-T", "20"]).args(args);
    if let Some(ca) = ca {
        cmd.args(["--ca", ca]);
    }
    cmd.args([url, "hello", "world"]);
    run(cmd, TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

/// The client echoed both messages and closed cleanly.
fn assert_echoed(done: &Finished, server: &Server) {
    assert!(
        done.status.success() && done.stdout.contains("hello") && done.stdout.contains("world"),
        "client failed: {}\n--- server log ---\n{}",
        done.report(),
        server.log()
    );
}

/// The client failed with `code` (its close error, printed as "error CODE:").
fn assert_failed_with(done: &Finished, code: i32) {
    assert!(
        !done.status.success() && done.stderr.contains(&format!("error {code}:")),
        "expected error {code}: {}",
        done.report()
    );
}

#[test]
fn python_websockets_is_a_wss_client_of_echo_server_and_the_page_is_served_over_https() {
    let dir = certs::dir("python-wss-client");
    let f = files(&dir, &TestCa::new("wsconn test CA"), "");
    let (mut server, port) = tls_echo_server(&f, "tls-echo-server-python");
    let mut checks = python_script("echo_client.py");
    // Python's ssl trusts the test CA through OpenSSL's SSL_CERT_FILE.
    checks
        .env("SSL_CERT_FILE", &f.ca)
        .arg(format!("wss://localhost:{port}/echo"));
    let done = run(checks, TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        done.status.success(),
        "{}\n--- server log ---\n{}",
        done.report(),
        server.log()
    );
    let mut page = Command::new(python());
    page.env("SSL_CERT_FILE", &f.ca).args([
        "-c",
        "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())",
        &format!("https://127.0.0.1:{port}/"),
    ]);
    let done = run(page, TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        done.status.success() && done.stdout.contains("wss://"),
        "the page over https: {}",
        done.report()
    );
    server.assert_running("after the checks");
    server.terminate();
}

#[test]
fn the_c_client_speaks_wss_to_python_and_reports_each_failure() {
    build_examples();
    let dir = certs::dir("c-client-wss");
    let ca = TestCa::new("wsconn test CA");
    let f = files(&dir, &ca, "");
    let (python_server, port) = python_wss_server(&[&f.cert, &f.key], "python-wss-server");
    assert_echoed(
        &client(&format!("wss://localhost:{port}/echo"), Some(&f.ca)),
        &python_server,
    );
    assert_echoed(
        &client(&format!("wss://127.0.0.1:{port}/echo"), Some(&f.ca)),
        &python_server,
    );
    // Unknown CA: the system's store does not have the test CA.
    assert_failed_with(&client(&format!("wss://localhost:{port}/echo"), None), -20);
    let other = certs::write(&dir, "other-ca.pem", &TestCa::new("other").cert_pem);
    assert_failed_with(&client(&format!("wss://localhost:{port}/echo"), Some(&other)), -20);
    // Name mismatch: a certificate for another name.
    let wrong = ca.leaf(&["other.example"]);
    let wrong_cert = certs::write(&dir, "wrong-cert.pem", &wrong.cert_pem);
    let wrong_key = certs::write(&dir, "wrong-key.pem", &wrong.key_pem);
    let (_wrong_server, wrong_port) = python_wss_server(&[&wrong_cert, &wrong_key], "python-wss-server-wrong-name");
    assert_failed_with(&client(&format!("wss://localhost:{wrong_port}/echo"), Some(&f.ca)), -21);
    // A plain server on the port: not TLS.
    let mut plain = Server::start(&example("echo_server"), &["0"], &[], "plain-echo-server-for-wss");
    let plain_port = plain.wait_for_port();
    plain.wait_until_accepting(plain_port);
    assert_failed_with(&client(&format!("wss://127.0.0.1:{plain_port}/echo"), Some(&f.ca)), -25);
    // A CA file that is not there.
    assert_failed_with(
        &client(&format!("wss://127.0.0.1:{port}/echo"), Some("/nonexistent.pem")),
        -18,
    );
    plain.assert_running("after the wss:// client");
    plain.terminate();
}

#[test]
fn the_c_client_shows_its_certificate_to_a_server_that_asks() {
    build_examples();
    let dir = certs::dir("c-client-mtls");
    let ca = TestCa::new("wsconn test CA");
    let f = files(&dir, &ca, "");
    let me = ca.leaf(&["client.example"]);
    let my_cert = certs::write(&dir, "client-cert.pem", &me.cert_pem);
    let my_key = certs::write(&dir, "client-key.pem", &me.key_pem);
    let (server, port) = python_wss_server(&[&f.cert, &f.key, &f.ca], "python-wss-server-mtls");
    let url = format!("wss://localhost:{port}/echo");
    assert_echoed(
        &client_with(&url, Some(&f.ca), &["--cert", &my_cert, "--key", &my_key]),
        &server,
    );
    // Without one, the server refuses it. Under TLS 1.3 the client has finished
    // its handshake by then; Python's asyncio closes the socket without always
    // sending its alert first, so the end is an alert (-24) or an EOF (-13).
    assert_refused(&client(&url, Some(&f.ca)));
}

/// The client was refused before its upgrade: a TLS alert (-24) or, when the
/// server's close overtook it, an EOF (-13).
fn assert_refused(done: &Finished) {
    assert!(
        !done.status.success()
            && !done.stdout.contains("hello")
            && (done.stderr.contains("error -24:") || done.stderr.contains("error -13:")),
        "{}",
        done.report()
    );
}

#[test]
fn echo_server_requires_client_certificates_signed_by_its_client_ca() {
    build_examples();
    let dir = certs::dir("echo-server-mtls");
    let ca = TestCa::new("wsconn test CA");
    let client_ca = TestCa::new("wsconn client CA");
    let f = files(&dir, &ca, "");
    let client_ca_file = certs::write(&dir, "client-ca.pem", &client_ca.cert_pem);
    let identity = |leaf: certs::Leaf, name: &str| {
        (
            certs::write(&dir, &format!("{name}-cert.pem"), &leaf.cert_pem),
            certs::write(&dir, &format!("{name}-key.pem"), &leaf.key_pem),
        )
    };
    let (good_cert, good_key) = identity(client_ca.leaf(&["client.example"]), "good");
    let (other_cert, other_key) = identity(ca.leaf(&["client.example"]), "other");
    let args = [
        "--tls-cert",
        &f.cert,
        "--tls-key",
        &f.key,
        "--tls-client-ca",
        &client_ca_file,
        "0",
    ];
    let mut server = Server::start(&example("echo_server"), &args, &[], "echo-server-mtls");
    let port = server.wait_for_port();
    server.wait_until_accepting(port);
    let url = format!("wss://localhost:{port}/echo");
    assert_echoed(
        &client_with(&url, Some(&f.ca), &["--cert", &good_cert, "--key", &good_key]),
        &server,
    );
    assert_refused(&client(&url, Some(&f.ca)));
    assert_refused(&client_with(
        &url,
        Some(&f.ca),
        &["--cert", &other_cert, "--key", &other_key],
    ));
    // Still serving the clients it takes.
    assert_echoed(
        &client_with(&url, Some(&f.ca), &["--cert", &good_cert, "--key", &good_key]),
        &server,
    );
}

/// `tests/interop/wss_echo_server.py ARGS…`, listening; returns it and its port.
fn python_wss_server(args: &[&str], tag: &str) -> (Server, u16) {
    let script = wsconn_testkit::root()
        .join("tests")
        .join("interop")
        .join("wss_echo_server.py");
    let script = script.to_string_lossy();
    let args: Vec<&str> = std::iter::once(script.as_ref()).chain(args.iter().copied()).collect();
    let mut server = Server::start(&python(), &args, &[], tag);
    let port = server.wait_for_port();
    server.wait_until_accepting(port);
    (server, port)
}

#[test]
fn sighup_reloads_the_certificate_and_a_bad_file_keeps_the_old_one() {
    let dir = certs::dir("reload");
    let old = files(&dir, &TestCa::new("old CA"), "old-");
    let (mut server, port) = tls_echo_server(&old, "tls-echo-server-reload");
    let url = format!("wss://127.0.0.1:{port}/echo");
    assert_echoed(&client(&url, Some(&old.ca)), &server);
    // New files in place of the served ones, then SIGHUP.
    let new = files(&dir, &TestCa::new("new CA"), "new-");
    std::fs::copy(&new.cert, &old.cert).unwrap();
    std::fs::copy(&new.key, &old.key).unwrap();
    hup_and_wait(&mut server, 1, "success");
    assert_echoed(&client(&url, Some(&new.ca)), &server);
    assert_failed_with(&client(&url, Some(&old.ca)), -20);
    // A broken file: the reload fails and the new certificate stays.
    std::fs::write(&old.cert, "not a certificate").unwrap();
    hup_and_wait(&mut server, 2, "TLS certificate or key missing, unreadable or invalid");
    assert_echoed(&client(&url, Some(&new.ca)), &server);
    server.terminate();
}

/// Sends SIGHUP and waits for the `n`th reload line, which must say `outcome`.
fn hup_and_wait(server: &mut Server, n: usize, outcome: &str) {
    let mut kill = Command::new("sh");
    kill.arg("-c").arg(format!("kill -HUP {}", server.pid()));
    run(kill, TIMEOUT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log();
        let reloads: Vec<&str> = log.lines().filter(|l| l.contains("TLS reload:")).collect();
        if reloads.len() >= n {
            assert!(reloads[n - 1].ends_with(outcome), "reload {n}: {}", reloads[n - 1]);
            return;
        }
        server.assert_running("while reloading");
        assert!(Instant::now() < deadline, "no reload line:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The self-signed certificate most programs start with, made by the real
/// `openssl req -x509` (OpenSSL 3 marks it CA:TRUE): `c-examples/client --ca
/// cert.pem` trusts `echo_server --tls-cert cert.pem` as curl, Python and Node
/// do. A certificate from another such run is refused, saying why.
#[test]
fn the_c_client_trusts_the_self_signed_certificate_openssl_req_makes() {
    use wsconn::ffi::wsconn_result::WSCONN_ERR_TLS_UNKNOWN_CA;
    build_examples();
    let dir = certs::dir("openssl-self-signed");
    let make = |name: &str| {
        let (cert, key) = (
            dir.join(format!("{name}-cert.pem")),
            dir.join(format!("{name}-key.pem")),
        );
        let mut cmd = Command::new("openssl");
        cmd.args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .args(["-days", "2", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert);
        let done = run(cmd, TIMEOUT).unwrap_or_else(|e| panic!("openssl req: {e}"));
        assert!(done.status.success(), "openssl req: {}", done.report());
        (cert.to_str().unwrap().to_owned(), key.to_str().unwrap().to_owned())
    };
    let (cert, key) = make("server");
    let (other_cert, _) = make("other");
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", &cert])
        .output()
        .expect("openssl x509");
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"),
        "this openssl no longer marks its self-signed certificates CA:TRUE: the test shows nothing"
    );
    let f = Files {
        ca: cert.clone(),
        cert,
        key,
    };
    let (server, port) = tls_echo_server(&f, "echo-server-openssl-self-signed");
    assert_echoed(&client(&format!("wss://localhost:{port}/"), Some(&f.ca)), &server);
    assert_echoed(&client(&format!("wss://127.0.0.1:{port}/"), Some(&f.ca)), &server);
    assert_failed_with(
        &client(&format!("wss://localhost:{port}/"), Some(&other_cert)),
        WSCONN_ERR_TLS_UNKNOWN_CA as i32,
    );
}

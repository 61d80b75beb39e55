//! Interop test for the sans-IO C example: builds `c-examples/` with make,
//! starts each epoll_echo binary and runs the Python `websockets` client
//! (`tests/interop/echo_client.py`) against it.
//!
//! Nothing here is skipped: a missing `make`, `python3` or `websockets`
//! (which is installed into `target/venv` on first use) fails the test.
//! Set `WSCONN_PYTHON` to use a Python that already has `websockets`.

use std::time::Duration;
use wsconn_testkit::{
    build_asan_examples, build_examples, example, python_script, run, sanitizer_report, LoggedServer, SANITIZER_ENV,
};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Builds the examples, starts `c-examples/<binary>` on a free port and runs
/// the Python echo checks against it.
fn interop(binary: &str) {
    interop_with(binary, &[]);
}

fn interop_with(binary: &str, env: &[(&str, &str)]) {
    build_examples();

    // Port 0: the server picks a free port and prints it.
    let mut server = LoggedServer::start(&example(binary), &["0"], env, binary);
    let port = server.wait_for_port();
    server.wait_until_accepting(port);

    let mut client = python_script("echo_client.py");
    client.arg(format!("ws://127.0.0.1:{port}/echo"));
    let result = run(client, CLIENT_TIMEOUT);

    let report = match &result {
        Ok(done) => done.report(),
        Err(e) => e.clone(),
    };
    let passed = matches!(&result, Ok(done) if done.status.success());
    assert!(
        passed,
        "echo_client.py against {} failed: {report}\n--- server log ---\n{}",
        server.name,
        server.log()
    );
    println!("{report}");

    server.assert_running("during the checks");
    server.terminate();
    if let Some(line) = sanitizer_report(&server.log()) {
        panic!("{} reported: {line}\n--- server log ---\n{}", server.name, server.log());
    }
}

#[test]
fn epoll_echo_shared_interop() {
    interop("epoll_echo");
}

#[test]
fn epoll_echo_static_interop() {
    interop("epoll_echo_static");
}

/// The same checks on the AddressSanitizer + UBSan build; a clean SIGTERM exit
/// runs LeakSanitizer, and any report fails the test.
#[test]
fn epoll_echo_asan_interop() {
    build_asan_examples();
    interop_with("epoll_echo_asan", SANITIZER_ENV);
}

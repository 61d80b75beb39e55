//! `tests/c/upgrade_test.c` under AddressSanitizer + UndefinedBehaviorSanitizer
//! (leaks are errors): who may connect, seen from C.
//!
//! - `pending`: reactor connections whose upgrade decision is pending; a
//!   client that leaves, then the program decides (from a timer, inside the
//!   close callback, or by freeing everything in the close callback): the
//!   documented `WSCONN_ERR_CLOSED`, no use after free, no leak; the request
//!   read through pointers taken in the callback while pending; accept and
//!   reject later byte for byte; decisions from another thread
//!   (`wsconn_reactor_defer`) and from another connection's callback; the
//!   handshake timeout; refusing all pending; a connection released while
//!   pending or inside its upgrade callback (no callback after that).
//! - `session`: the sans-IO session's decision functions
//!   (`wsconn_session_set_upgrade_func`, `wsconn_session_upgrade_accept` /
//!   `_reject`, `wsconn_session_request_*`), a session freed inside its
//!   upgrade callback.
//! - `tls`: TLS sockets taken in the accept callback (`wsconn_accepted_take`)
//!   and served by a reactor on another thread (`wsconn_set_accepted`): wss://
//!   echoes, ws:// fails; mutual TLS with the upgrade callback deciding on the
//!   SNI name (`wsconn_tls_server_name`) and the client's certificate
//!   (`wsconn_tls_peer_certificate`). Certificates made here (rcgen).

mod certs;

use std::process::Command;
use std::time::Duration;

use wsconn_testkit::{build_test_programs, run, sanitizer_env, sanitizer_report, test_program};

/// Runs `upgrade_test_asan ARGS`: exit 0, "N passed, 0 failed" with N of at
/// least `min_checks`, no sanitizer report.
fn run_checks(args: &[&str], min_checks: u32) {
    build_test_programs(&["upgrade_test_asan"]);
    let mut cmd = Command::new(test_program("upgrade_test_asan"));
    cmd.args(args);
    sanitizer_env(&mut cmd);
    let done = run(cmd, Duration::from_secs(120)).unwrap_or_else(|e| panic!("{e}"));
    let report = done.report();
    if let Some(line) = sanitizer_report(&done.stderr) {
        panic!("upgrade_test {}: sanitizer report: {line}\n{report}", args[0]);
    }
    assert!(done.status.success(), "upgrade_test {}: {report}", args[0]);
    let summary = done.stdout.lines().find(|l| l.ends_with(" failed")).unwrap_or("");
    let passed: u32 = summary.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(summary.ends_with(" 0 failed") && passed >= min_checks, "{report}");
    println!("upgrade_test {}: {summary}", args[0]);
}

#[test]
fn pending_decisions_and_leaving_clients_under_asan() {
    run_checks(&["pending"], 240);
}

#[test]
fn session_decisions_under_asan() {
    run_checks(&["session"], 110);
}

#[test]
fn tls_hand_off_and_mutual_tls_decisions_under_asan() {
    let dir = certs::dir("upgrade-c");
    let ca = certs::TestCa::new("wsconn upgrade test CA");
    let server = ca.leaf(&["localhost", "127.0.0.1"]);
    let alice = ca.leaf(&["alice.client.test"]);
    let bob = ca.leaf(&["bob.client.test"]);
    let files = [
        certs::write(&dir, "server.pem", &server.cert_pem),
        certs::write(&dir, "server.key", &server.key_pem),
        certs::write(&dir, "ca.pem", &ca.cert_pem),
        certs::write(&dir, "alice.pem", &alice.cert_pem),
        certs::write(&dir, "alice.key", &alice.key_pem),
        certs::write(&dir, "bob.pem", &bob.cert_pem),
        certs::write(&dir, "bob.key", &bob.key_pem),
    ];
    let mut args = vec!["tls"];
    args.extend(files.iter().map(String::as_str));
    run_checks(&args, 40);
    let _ = std::fs::remove_dir_all(&dir);
}

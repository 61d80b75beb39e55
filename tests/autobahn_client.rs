//! The client role against a fuzzing-server stand-in: `c-examples/autobahn_client`
//! (the testee client of the Autobahn Testsuite's fuzzing server, on the
//! reactor API) runs every case of `tests/autobahn_standin/server.py` (our
//! own stand-in for `wstest -m fuzzingserver`, standard-library Python with
//! hand-written frames), in the shared build and in the ASan + UBSan build;
//! over TLS (`wss://`); and the compression cases (`--deflate`, Autobahn's
//! 12.x and 13.x in the client role) with `-z` (shared mode) and, over TLS,
//! `--deflate-dedicated 9`.
//!
//! The stand-in judges each case (echoes, pongs, close codes, masking of
//! every client frame, nothing after the client's close frame) and ends with
//! "N passed, M failed"; every case must pass.  A last test checks that the
//! stand-in does fail a client that breaks the rules (unmasked frames).
//!
//! Nothing here is skipped: a missing `python3` or `make` fails the test.

#[cfg(feature = "tls")]
mod certs;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};
use wsconn_testkit::{
    build_asan_examples, build_examples, example, example_command, find_on_path, first_byte, frame, free_port, root,
    run, sanitizer_report, wait_closed, LoggedServer, WsClient, SANITIZER_ENV,
};

/// For the whole client run (25 cases, one with a 16 MiB message, ~6 s).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(240);
/// The stand-in gives up waiting for /updateReports after this (it then
/// reports the cases not run as failed and exits 1).
const STANDIN_TIMEOUT_S: u32 = 300;
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// At least this many rows in the stand-in's table: 12 cases, getCaseCount, updateReports.
const MIN_ROWS: usize = 14;

/// How a run differs from the plain one: the client's options, the
/// stand-in's, and whether it is `wss://`.
#[derive(Default)]
struct Options {
    client: Vec<String>,
    standin: Vec<String>,
    secure: bool,
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `opts` with TLS: the stand-in serves a certificate for 127.0.0.1 from a
/// new test CA, which the client trusts.
#[cfg(feature = "tls")]
fn over_tls(tag: &str, mut opts: Options) -> Options {
    let dir = certs::dir(tag);
    let ca = certs::TestCa::new("wsconn test CA");
    let leaf = ca.leaf(&["127.0.0.1"]);
    opts.standin.extend([
        "--tls-cert".to_string(),
        certs::write(&dir, "cert.pem", &leaf.cert_pem),
        "--tls-key".to_string(),
        certs::write(&dir, "key.pem", &leaf.key_pem),
    ]);
    opts.client
        .extend(["--ca".to_string(), certs::write(&dir, "ca.pem", &ca.cert_pem)]);
    opts.secure = true;
    opts
}

fn standin_script() -> PathBuf {
    root().join("tests").join("autobahn_standin").join("server.py")
}

/// Starts the stand-in on a free port, requiring the client to use `agent`;
/// its log is `target/autobahn-standin/<tag>.log`.
fn start_standin(tag: &str, agent: &str) -> LoggedServer {
    start_standin_with(tag, agent, &[])
}

fn start_standin_with(tag: &str, agent: &str, args: &[String]) -> LoggedServer {
    let python = find_on_path("python3")
        .unwrap_or_else(|| panic!("python3 not found on PATH: the stand-in needs Python 3 (apt-get install python3)"));
    let timeout = STANDIN_TIMEOUT_S.to_string();
    let mut cmd = Command::new(python);
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .arg(standin_script())
        .args(["--port", "0", "--agent", agent, "--timeout", &timeout])
        .args(args);
    let log = root().join("target/autobahn-standin").join(format!("{tag}.log"));
    LoggedServer::spawn("the stand-in", cmd, log)
}

/// Waits for the stand-in to exit on its own; returns its status and log.
fn standin_result(standin: &mut LoggedServer) -> (ExitStatus, String) {
    let status = standin.wait_exit(EXIT_TIMEOUT);
    (status, standin.log())
}

/// The (passed, failed) counts of the stand-in's closing line.
fn summary(log: &str) -> Option<(usize, usize)> {
    log.lines().rev().find_map(|line| {
        let (p, rest) = line.trim().split_once(" passed, ")?;
        let f = rest.strip_suffix(" failed")?;
        Some((p.parse().ok()?, f.parse().ok()?))
    })
}

/// Runs `binary` (an autobahn_client build) against a fresh stand-in and
/// requires every case to pass.
fn run_all_cases(binary: &str, env: &[(&str, &str)]) {
    run_all_cases_with(binary, binary, env, &Options::default());
}

/// The same, the client and the stand-in run with `opts`; `tag` names the run.
fn run_all_cases_with(binary: &str, tag: &str, env: &[(&str, &str)], opts: &Options) {
    let agent = format!("wsconn-{tag}");
    let mut standin = start_standin_with(tag, &agent, &opts.standin);
    let port = standin.wait_for_port();

    let mut cmd = example_command(&example(binary));
    let scheme = if opts.secure { "wss" } else { "ws" };
    cmd.args(&opts.client)
        .arg(format!("{scheme}://127.0.0.1:{port}"))
        .arg(&agent);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let client =
        run(cmd, CLIENT_TIMEOUT).unwrap_or_else(|e| panic!("{binary}: {e}\n--- stand-in log ---\n{}", standin.log()));
    let elapsed = started.elapsed();
    let (status, log) = standin_result(&mut standin);
    let report = format!(
        "--- {binary} ({:?}, {elapsed:.1?}) ---\n{}--- stand-in ({status}) ---\n{log}",
        client.status,
        client.report()
    );

    if let Some(line) = sanitizer_report(&format!("{}{}", client.stdout, client.stderr)) {
        panic!("{binary}: sanitizer report: {line}\n{report}");
    }
    assert!(client.status.success(), "{binary} failed\n{report}");
    let (passed, failed) =
        summary(&log).unwrap_or_else(|| panic!("no \"N passed, M failed\" line from the stand-in\n{report}"));
    assert_eq!(failed, 0, "the stand-in failed {failed} cases\n{report}");
    assert!(
        passed >= MIN_ROWS,
        "only {passed} checks passed (expected at least {MIN_ROWS})\n{report}"
    );
    assert!(status.success(), "the stand-in exited with {status}\n{report}");

    // The client ran every case the stand-in has, one line each.
    let cases = passed - 2; // minus getCaseCount and updateReports
    let first = format!("autobahn_client: {cases} cases");
    assert!(client.stdout.contains(&first), "expected {first:?}\n{report}");
    for i in 1..=cases {
        let line = format!("case {i}/{cases}: ");
        assert!(client.stdout.contains(&line), "no {line:?} line\n{report}");
    }
    assert!(
        client.stdout.contains("autobahn_client: reports updated (closed 1000)"),
        "no reports line\n{report}"
    );
}

#[test]
fn autobahn_client_passes_every_standin_case() {
    build_examples();
    run_all_cases("autobahn_client", &[]);
}

#[test]
fn autobahn_client_asan_passes_every_standin_case() {
    build_asan_examples();
    run_all_cases("autobahn_client_asan", SANITIZER_ENV);
}

/// Autobahn's 12.x and 13.x in the client role: the shared mode's offer
/// (no context takeover), answered as offered, with either window lowered,
/// with client_no_context_takeover imposed, or declined.
#[test]
fn autobahn_client_with_shared_compression_passes_every_compression_case() {
    build_examples();
    let opts = Options {
        client: strings(&["-z"]),
        standin: strings(&["--deflate"]),
        secure: false,
    };
    run_all_cases_with("autobahn_client", "deflate-shared", &[], &opts);
}

/// The same with context takeover (9-bit windows), over TLS.
#[cfg(feature = "tls")]
#[test]
fn autobahn_client_with_dedicated_compression_over_tls_passes_every_compression_case() {
    build_examples();
    let opts = Options {
        client: strings(&["--deflate-dedicated", "9"]),
        standin: strings(&["--deflate"]),
        secure: false,
    };
    let opts = over_tls("autobahn-deflate-tls", opts);
    run_all_cases_with("autobahn_client", "deflate-dedicated-tls", &[], &opts);
}

/// Every case over `wss://` (the 16 MiB one included).
#[cfg(feature = "tls")]
#[test]
fn autobahn_client_over_tls_passes_every_standin_case() {
    build_examples();
    let opts = over_tls("autobahn-tls", Options::default());
    run_all_cases_with("autobahn_client", "tls", &[], &opts);
}

#[test]
fn autobahn_client_reports_a_connect_failure() {
    build_examples();
    // A port nobody listens on: the client must say so and exit 1.
    let port = free_port();
    let mut cmd = example_command(&example("autobahn_client"));
    cmd.arg(format!("ws://127.0.0.1:{port}"));
    let done = run(cmd, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done.status.code(), Some(1), "{}", done.report());
    assert!(
        done.stderr.contains("cannot connect to ws://127.0.0.1:") && done.stderr.contains("/getCaseCount"),
        "no clear connect error: {}",
        done.report()
    );
}

// --- the stand-in fails a client that breaks the rules -------------------------

/// Reads one (unmasked) server frame: (first byte, payload).
fn read_frame(c: &mut WsClient) -> (u8, Vec<u8>) {
    let f = c
        .read_frame(Instant::now() + Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("read from the stand-in: {e:?}"));
    assert!(
        f.payload.len() < 1 << 20,
        "unexpected frame length {} for case 1",
        f.payload.len()
    );
    (first_byte(f.fin, f.opcode), f.payload)
}

/// Answers the stand-in's close frame and waits for it to close TCP.
fn answer_close(c: &mut WsClient, mask: Option<[u8; 4]>) {
    let (b0, payload) = read_frame(c);
    assert_eq!(b0, 0x88, "expected a close frame, got {b0:#x} {payload:?}");
    c.stream.write_all(&frame(0x88, &payload[..2], mask)).unwrap();
    let _ = wait_closed(&mut c.stream, Instant::now() + Duration::from_secs(10));
}

#[test]
fn standin_fails_a_client_that_sends_unmasked_frames() {
    let mut standin = start_standin("unmasked-client", "raw");
    let port = standin.wait_for_port();

    // Case 1, echoed correctly but without masking.
    let mut c = WsClient::open(port, "/runCase?case=1&agent=raw");
    let (b0, payload) = read_frame(&mut c);
    assert_eq!(b0 & 0x0f, 1, "case 1 is expected to start with a text message");
    c.stream.write_all(&frame(b0, &payload, None)).unwrap();
    answer_close(&mut c, None);

    // The reports, done right.
    let mut c = WsClient::open(port, "/updateReports?agent=raw");
    answer_close(&mut c, Some([1, 2, 3, 4]));

    let (status, log) = standin_result(&mut standin);
    assert!(
        !status.success(),
        "the stand-in passed a client that did not mask\n{log}"
    );
    let case1 = log
        .lines()
        .find(|l| l.trim_start().starts_with("1  "))
        .unwrap_or_else(|| panic!("no row for case 1\n{log}"));
    assert!(
        case1.contains("FAIL") && case1.contains("unmasked text frame from the client"),
        "case 1 not failed for masking: {case1}\n{log}"
    );
    let (passed, failed) = summary(&log).unwrap_or_else(|| panic!("no summary line\n{log}"));
    // updateReports passed; case 1 failed; the other cases were not run.
    assert_eq!(passed, 1, "{log}");
    assert!(failed >= MIN_ROWS - 1, "{log}");
}

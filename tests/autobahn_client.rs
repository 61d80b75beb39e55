//! The client role against a fuzzing-server stand-in: `c-examples/autobahn_client`
//! (the testee client of the Autobahn Testsuite's fuzzing server, on the
//! reactor API) runs every case of `tests/autobahn_standin/server.py` (our
//! own stand-in for `wstest -m fuzzingserver`, standard-library Python with
//! hand-written frames), in the shared build and in the ASan + UBSan build.
//!
//! The stand-in judges each case (echoes, pongs, close codes, masking of
//! every client frame, nothing after the client's close frame) and ends with
//! "N passed, M failed"; every case must pass.  A last test checks that the
//! stand-in does fail a client that breaks the rules (unmasked frames).
//!
//! Nothing here is skipped: a missing `python3` or `make` fails the test.

mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use support::{build_asan_examples, build_examples, example, example_command, root, run, sanitizer_findings, ASAN_ENV};

/// For the whole client run (25 cases, one with a 16 MiB message, ~6 s).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(240);
/// The stand-in gives up waiting for /updateReports after this (it then
/// reports the cases not run as failed and exits 1).
const STANDIN_TIMEOUT_S: u32 = 300;
const START_TIMEOUT: Duration = Duration::from_secs(15);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// At least this many rows in the stand-in's table: 12 cases, getCaseCount, updateReports.
const MIN_ROWS: usize = 14;

fn standin_script() -> PathBuf {
    root().join("tests").join("autobahn_standin").join("server.py")
}

/// `name` found on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The stand-in server process; killed when dropped (also on panic).
struct StandIn {
    child: Child,
    log: PathBuf,
}

impl StandIn {
    /// Starts the stand-in on a free port, requiring the client to use `agent`.
    fn start(tag: &str, agent: &str) -> StandIn {
        let python = on_path("python3").unwrap_or_else(|| {
            panic!("python3 not found on PATH: the stand-in needs Python 3 (apt-get install python3)")
        });
        let dir = root().join("target").join("autobahn-standin");
        std::fs::create_dir_all(&dir).expect("create the log directory");
        let log = dir.join(format!("{tag}.log"));
        let file = File::create(&log).expect("create the stand-in log");
        let timeout = STANDIN_TIMEOUT_S.to_string();
        let child = Command::new(&python)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .arg(standin_script())
            .args(["--port", "0", "--agent", agent, "--timeout", &timeout])
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} {}: {e}", python.display(), standin_script().display()));
        StandIn { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for "autobahn_standin listening on 127.0.0.1:PORT".
    fn port(&mut self) -> u16 {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = self.log();
            if let Some(port) = log.lines().find_map(|l| {
                l.strip_prefix("autobahn_standin listening on 127.0.0.1:")
                    .and_then(|p| p.trim().parse().ok())
            }) {
                return port;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the stand-in exited before listening: {status}\n--- its log ---\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "the stand-in printed no \"listening on\" line within {START_TIMEOUT:?}\n--- its log ---\n{log}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the stand-in to exit on its own; returns its status and log.
    fn wait(&mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return (status, self.log()),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => panic!(
                    "the stand-in did not exit within {EXIT_TIMEOUT:?} after the client\n--- its log ---\n{}",
                    self.log()
                ),
                Err(e) => panic!("waiting for the stand-in: {e}"),
            }
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let agent = format!("wsconn-{binary}");
    let mut standin = StandIn::start(binary, &agent);
    let port = standin.port();

    let mut cmd = example_command(&example(binary));
    cmd.arg(format!("ws://127.0.0.1:{port}")).arg(&agent);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let client =
        run(cmd, CLIENT_TIMEOUT).unwrap_or_else(|e| panic!("{binary}: {e}\n--- stand-in log ---\n{}", standin.log()));
    let elapsed = started.elapsed();
    let (status, log) = standin.wait();
    let report = format!(
        "--- {binary} ({:?}, {elapsed:.1?}) ---\n{}--- stand-in ({status}) ---\n{log}",
        client.status,
        client.report()
    );

    if let Some(findings) = sanitizer_findings(&format!("{}{}", client.stdout, client.stderr)) {
        panic!("{binary}: sanitizer report:\n{findings}\n{report}");
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
    run_all_cases("autobahn_client_asan", ASAN_ENV);
}

#[test]
fn autobahn_client_reports_a_connect_failure() {
    build_examples();
    // A port nobody listens on: the client must say so and exit 1.
    let port = support::free_port();
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

fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).expect("read from the stand-in");
    buf
}

/// Reads one (unmasked) server frame: (first byte, payload).
fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let head = read_exact(s, 2);
    assert_eq!(head[1] & 0x80, 0, "the stand-in sent a masked frame");
    let len = match head[1] & 0x7f {
        126 => u16::from_be_bytes(read_exact(s, 2).try_into().unwrap()) as usize,
        127 => u64::from_be_bytes(read_exact(s, 8).try_into().unwrap()) as usize,
        n => n as usize,
    };
    assert!(len < 1 << 20, "unexpected frame length {len} for case 1");
    (head[0], read_exact(s, len))
}

/// A client frame with a small payload, masked or not.
fn client_frame(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut f = vec![b0, payload.len() as u8 | if mask.is_some() { 0x80 } else { 0 }];
    match mask {
        Some(key) => {
            f.extend_from_slice(&key);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

/// Opens `path` on the stand-in and completes the opening handshake.
fn raw_connect(port: u16, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the stand-in");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.extend(read_exact(&mut s, 1));
        assert!(head.len() < 4096, "no end of the handshake response");
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101 "), "handshake refused: {head}");
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "wrong accept key: {head}"
    );
    s
}

/// Answers the stand-in's close frame and waits for it to close TCP.
fn answer_close(s: &mut TcpStream, mask: Option<[u8; 4]>) {
    let (b0, payload) = read_frame(s);
    assert_eq!(b0, 0x88, "expected a close frame, got {b0:#x} {payload:?}");
    s.write_all(&client_frame(0x88, &payload[..2], mask)).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
}

#[test]
fn standin_fails_a_client_that_sends_unmasked_frames() {
    let mut standin = StandIn::start("unmasked-client", "raw");
    let port = standin.port();

    // Case 1, echoed correctly but without masking.
    let mut s = raw_connect(port, "/runCase?case=1&agent=raw");
    let (b0, payload) = read_frame(&mut s);
    assert_eq!(b0 & 0x0f, 1, "case 1 is expected to start with a text message");
    s.write_all(&client_frame(b0, &payload, None)).unwrap();
    answer_close(&mut s, None);

    // The reports, done right.
    let mut s = raw_connect(port, "/updateReports?agent=raw");
    answer_close(&mut s, Some([1, 2, 3, 4]));

    let (status, log) = standin.wait();
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

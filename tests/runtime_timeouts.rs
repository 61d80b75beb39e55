//! Timeouts on the reactor API, against `tests/c/timeout_server.c` (an echo
//! server with handshake timeout 500 ms, ping interval 300 ms, pong timeout
//! 300 ms), plain and ASan + UBSan builds:
//! - a half-sent handshake is closed after ~0.5 s (not before 0.3 s, by 3 s);
//! - a client that never answers pings gets pings, then is disconnected;
//! - a client that answers pings stays connected and keeps getting echoes;
//! - 50 half-open handshakes at once do not delay a normal client, and all
//!   50 are closed by the timeout.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use wsconn_testkit::{
    build_test_programs, field, wait_closed, Frame, ReadError, WatchedProcess, WsClient, OP_CLOSE, OP_PING, OP_PONG,
    OP_TEXT,
};

const HALF_HANDSHAKE: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n";

/// Not closed before this (the timeout is 500 ms).
const EARLIEST: Duration = Duration::from_millis(300);
/// Closed by this.
const LATEST: Duration = Duration::from_secs(3);

fn server(asan: bool) -> WatchedProcess {
    build_test_programs(&["timeout_server", "timeout_server_asan"]);
    WatchedProcess::start_test_server(if asan { "timeout_server_asan" } else { "timeout_server" }, &[])
}

/// SIGTERM; requires a clean exit and no sanitizer report.
fn finish(mut server: WatchedProcess) -> Vec<String> {
    server.assert_running("before SIGTERM");
    let status = server.terminate();
    server.assert_clean_exit(status);
    server.lines()
}

/// Close callbacks the server logged, as (code, established).
fn closes(lines: &[String]) -> Vec<(i64, i64)> {
    lines
        .iter()
        .filter(|l| l.starts_with("close "))
        .map(|l| (field(l, "code"), field(l, "established")))
        .collect()
}

/// What `wsconn_close_error` said in each close callback.
fn close_errors(lines: &[String]) -> Vec<i64> {
    lines
        .iter()
        .filter(|l| l.starts_with("close "))
        .map(|l| field(l, "error"))
        .collect()
}

/// Opens TCP, sends half a handshake; the server must close it in 0.3–3 s.
fn half_handshake(asan: bool) {
    let server = server(asan);
    let mut stream = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    let start = Instant::now();
    stream.write_all(HALF_HANDSHAKE).expect("write half a handshake");
    let (closed_at, bytes) = wait_closed(&mut stream, start + LATEST)
        .unwrap_or_else(|e| panic!("half handshake not closed within {LATEST:?}: {e}\n{}", server.log()));
    let after = closed_at - start;
    assert!(
        after >= EARLIEST,
        "closed after {after:?}: before the 500 ms handshake timeout\n{}",
        server.log()
    );
    println!("half handshake closed after {after:?} ({bytes} bytes received first)");
    server.wait_line(Duration::from_secs(5), |l| l.starts_with("close "));
    let lines = finish(server);
    let c = closes(&lines);
    assert_eq!(c.len(), 1, "{lines:?}");
    assert_eq!(c[0].1, 0, "established before the handshake finished? {lines:?}");
    assert_eq!(close_errors(&lines), vec![-15], "WSCONN_ERR_TIMEOUT: {lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("open ")), "{lines:?}");
}

#[test]
fn half_handshake_is_closed() {
    half_handshake(false);
}

#[test]
fn half_handshake_is_closed_asan() {
    half_handshake(true);
}

/// Completes the handshake, never answers pings: pings arrive, then the
/// server drops the connection.
fn unanswered_pings(asan: bool) {
    let server = server(asan);
    let mut client = WsClient::connect(server.port());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(5);
    let mut frames: Vec<Frame> = Vec::new();
    let end = loop {
        match client.read_frame(deadline) {
            Ok(frame) => frames.push(frame),
            Err(ReadError::Closed(kind)) => break kind,
            Err(e) => panic!(
                "not disconnected within 5 s without pongs: {e:?}; frames {frames:?}\n{}",
                server.log()
            ),
        }
    };
    let after = start.elapsed();
    let pings = frames.iter().filter(|f| f.opcode == OP_PING).count();
    println!("disconnected after {after:?} ({end:?}); frames received: {frames:?}");
    assert!(
        pings >= 1,
        "no ping before the disconnect: {frames:?}\n{}",
        server.log()
    );
    assert_eq!(frames[0].opcode, OP_PING, "first frame: {frames:?}");
    // Only pings and, at most, a final close frame.
    for (i, f) in frames.iter().enumerate() {
        let last = i + 1 == frames.len();
        assert!(
            f.opcode == OP_PING || (last && f.opcode == OP_CLOSE),
            "unexpected frame {i}: {f:?}"
        );
        assert!(f.fin && f.payload.len() <= 125, "bad control frame {f:?}");
    }
    // Ping interval 300 ms + pong timeout 300 ms: not before ~0.6 s.
    assert!(
        after >= Duration::from_millis(500),
        "disconnected after only {after:?}\n{}",
        server.log()
    );
    server.wait_line(Duration::from_secs(5), |l| l.starts_with("close "));
    let lines = finish(server);
    let c = closes(&lines);
    assert_eq!(c.len(), 1, "{lines:?}");
    assert_eq!(c[0], (1006, 1), "close callback of a pong timeout: {lines:?}");
    assert_eq!(close_errors(&lines), vec![-15], "WSCONN_ERR_TIMEOUT: {lines:?}");
}

#[test]
fn unanswered_pings_disconnect() {
    unanswered_pings(false);
}

#[test]
fn unanswered_pings_disconnect_asan() {
    unanswered_pings(true);
}

/// A client that answers pings: reads frames until `until`, answering pings;
/// returns the text messages received and the number of pings.
fn read_answering(client: &mut WsClient, until: Instant, texts: &mut Vec<String>) -> Result<usize, String> {
    let mut pings = 0;
    loop {
        match client.read_frame(until) {
            Ok(f) if f.opcode == OP_PING => {
                pings += 1;
                client
                    .send_frame(true, OP_PONG, &f.payload)
                    .map_err(|e| format!("sending a pong: {e}"))?;
            }
            Ok(f) if f.opcode == OP_TEXT && f.fin => {
                texts.push(String::from_utf8(f.payload).map_err(|e| e.to_string())?)
            }
            Ok(f) => return Err(format!("unexpected frame {f:?}")),
            Err(ReadError::Timeout) => return Ok(pings),
            Err(e) => return Err(format!("{e:?}")),
        }
    }
}

/// Sends `text` and waits (answering pings) up to `within` for its echo.
fn echo(client: &mut WsClient, text: &str, within: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    client.send_text(text).map_err(|e| format!("send: {e}"))?;
    let deadline = start + within;
    loop {
        match client.read_frame(deadline) {
            Ok(f) if f.opcode == OP_PING => client
                .send_frame(true, OP_PONG, &f.payload)
                .map_err(|e| format!("sending a pong: {e}"))?,
            Ok(f) if f.opcode == OP_TEXT && f.fin && f.payload == text.as_bytes() => return Ok(start.elapsed()),
            Ok(f) => return Err(format!("unexpected frame {f:?} while waiting for the echo of {text:?}")),
            Err(e) => return Err(format!("no echo of {text:?} within {within:?}: {e:?}")),
        }
    }
}

/// Answers pings and stays connected for 2.5 s, sending a message only every
/// 1 s (longer than ping interval + pong timeout), and gets every echo.
fn answered_pings(asan: bool) {
    let server = server(asan);
    let mut client = WsClient::connect(server.port());
    let start = Instant::now();
    let mut pings = 0;
    let mut texts = Vec::new();
    for i in 0..3 {
        let text = format!("still here {i}");
        echo(&mut client, &text, Duration::from_secs(2)).unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        pings += read_answering(&mut client, Instant::now() + Duration::from_secs(1), &mut texts)
            .unwrap_or_else(|e| panic!("after {:?}: {e}\n{}", start.elapsed(), server.log()));
    }
    assert!(texts.is_empty(), "unexpected messages {texts:?}");
    let alive = start.elapsed();
    assert!(alive >= Duration::from_millis(2500), "{alive:?}");
    assert!(pings >= 2, "only {pings} pings in {alive:?}\n{}", server.log());
    // Still connected: one more echo, then a clean closing handshake.
    echo(&mut client, "last", Duration::from_secs(2)).unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    client.send_close(1000).expect("send close");
    let deadline = Instant::now() + Duration::from_secs(3);
    let close = loop {
        match client.read_frame(deadline) {
            Ok(f) if f.opcode == OP_PING => {}
            Ok(f) => break f,
            Err(e) => panic!("no close reply: {e:?}\n{}", server.log()),
        }
    };
    assert_eq!(close.opcode, OP_CLOSE);
    assert_eq!(close.payload.get(..2), Some(&1000u16.to_be_bytes()[..]));
    println!("connected {alive:?}, {pings} pings answered");
    server.wait_line(Duration::from_secs(5), |l| l.starts_with("close "));
    let lines = finish(server);
    assert_eq!(closes(&lines), vec![(1000, 1)], "{lines:?}");
    assert_eq!(close_errors(&lines), vec![0], "a clean closing handshake: {lines:?}");
}

#[test]
fn answered_pings_stay_connected() {
    answered_pings(false);
}

#[test]
fn answered_pings_stay_connected_asan() {
    answered_pings(true);
}

/// 50 half-open handshakes at once; a normal client meanwhile gets prompt
/// echoes; all 50 are closed by the handshake timeout.
fn many_half_open(asan: bool) {
    const HALF_OPEN: usize = 50;
    let server = server(asan);
    let start = Instant::now();
    let mut half: Vec<TcpStream> = (0..HALF_OPEN)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", server.port())).unwrap_or_else(|e| panic!("connect {i}: {e}"));
            s.write_all(HALF_HANDSHAKE).expect("write half a handshake");
            s
        })
        .collect();
    let opened = Instant::now();

    // A normal client: prompt echoes while the 50 are pending and while
    // they time out (every 25 ms for 1 s after they opened).
    let mut client = WsClient::connect(server.port());
    let mut slowest = Duration::ZERO;
    let mut echoes = 0;
    while opened.elapsed() < Duration::from_secs(1) {
        let took = echo(&mut client, &format!("message {echoes}"), Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        slowest = slowest.max(took);
        echoes += 1;
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(echoes >= 10, "only {echoes} echoes in 1 s");
    assert!(
        slowest < Duration::from_millis(200),
        "an echo took {slowest:?} with {HALF_OPEN} half-open handshakes\n{}",
        server.log()
    );
    let echoes_done = start.elapsed();

    // Every half-open one closed, not too early, not too late.
    for (i, s) in half.iter_mut().enumerate() {
        let (closed_at, _) = wait_closed(s, opened + LATEST)
            .unwrap_or_else(|e| panic!("half-open {i} not closed within {LATEST:?}: {e}\n{}", server.log()));
        assert!(
            closed_at - start >= EARLIEST,
            "half-open {i} closed after {:?}\n{}",
            closed_at - start,
            server.log()
        );
    }
    // The normal client is still served.
    echo(&mut client, "after", Duration::from_secs(1)).unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    println!("{echoes} echoes (slowest {slowest:?}) done after {echoes_done:?}; {HALF_OPEN} half-open closed");
    let unestablished = server
        .try_wait_lines(Duration::from_secs(5), HALF_OPEN, &|l| {
            l.starts_with("close ") && l.contains(" established=0")
        })
        .unwrap_or_else(|| {
            panic!(
                "not {HALF_OPEN} close callbacks for unestablished connections\n{}",
                server.log()
            )
        });
    assert_eq!(unestablished.len(), HALF_OPEN);
    drop(client);
    let lines = finish(server);
    let c = closes(&lines);
    assert_eq!(c.iter().filter(|(_, est)| *est == 0).count(), HALF_OPEN, "{lines:?}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("accept ")).count(), HALF_OPEN + 1);
}

#[test]
fn many_half_open_handshakes() {
    many_half_open(false);
}

#[test]
fn many_half_open_handshakes_asan() {
    many_half_open(true);
}

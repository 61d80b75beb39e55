//! permessage-deflate (RFC 7692) interop with Python's `websockets` and
//! Node's `ws`, in both roles:
//!
//! - their clients (`tests/interop/deflate_peer.py client`,
//!   `tests/interop/node/deflate_client.mjs`) against `echo_server -z` (shared
//!   mode), `echo_server --deflate-dedicated 15` and `9` (context takeover)
//!   and `epoll_echo -z` (sans-IO), each offering six parameter sets (Node
//!   seven): the server's exact answer is checked, and text and binary messages
//!   of 0 B to 1 MiB, and 64 KiB in 4 frames, must come back equal and, from
//!   1 KiB on, compressed; and 20 Python connections interleave the halves of
//!   their compressed messages, and against the dedicated servers a Python
//!   client repeats a message after pauses longer than the servers' compression
//!   idle time (back-references across their trim);
//! - `c-examples/client` (`-z`, `--deflate-dedicated 15` and `11`) against
//!   their servers (`deflate_peer.py server`, `node/server.mjs PORT SET`) with
//!   five server parameter sets: the client's `extensions:` line and the
//!   server's answer must name the expected parameters, and the messages
//!   must be echoed (one of 100 KiB, which the servers send back in 4
//!   frames);
//! - decompression bombs (64 MiB and 1 GiB of zeros, compressed by zlib, in
//!   one frame or many) sent to `echo_server -z`, `--deflate-dedicated 15`
//!   and `epoll_echo -z`: closed with 1009, the server's peak RSS bounded, and
//!   it goes on serving; and 1 GiB from a server to `c-examples/client`
//!   (`-z`, `--deflate-dedicated 15`): closed with 1009, its peak RSS bounded.
//!
//! Each interop test prints its matrix (peer, role, parameters, outcome) to
//! stderr (`--nocapture` shows it). Nothing is skipped: a missing `node`,
//! `npm`, `python3` or `websockets` fails the test.

use std::collections::BTreeSet;
use std::io::Write;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wsconn_testkit::{
    build_examples, client_frame, example, example_command, first_byte, node, node_dir, node_script, python,
    python_script, read_on_thread, root, run, run_with_input, server_frame, wait_until, KilledOnDrop, LoggedServer,
    WsClient, OP_BINARY, OP_CLOSE, OP_CONT, OP_TEXT,
};

const PEER_TIMEOUT: Duration = Duration::from_secs(120);
const C_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The client parameter sets of the peers' client scripts, in this order.
/// The last is Node's alone: asked for 8-bit windows, it compresses with 9
/// bits (zlib has no 8-bit raw deflate), which a server must take; Python's
/// `websockets` does not offer 8 bits for itself at all.
const CLIENT_SETS: [&str; 7] = [
    "default",
    "server_no_context_takeover",
    "client_no_context_takeover",
    "windows_10_9",
    "server_window_8",
    "no_client_window",
    "client_window_8",
];

/// A wsconn server and its answer to each of [`CLIENT_SETS`] (as the peers'
/// offers word them: a client window named without a value, as both do by
/// default).
struct WsconnServer {
    program: &'static str,
    args: &'static [&'static str],
    answers: [&'static str; 7],
}

const SHARED_ANSWERS: [&str; 7] = [
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; \
     client_max_window_bits=9",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=8",
];

const WSCONN_SERVERS: [WsconnServer; 4] = [
    WsconnServer {
        program: "echo_server",
        args: &["-z"],
        answers: SHARED_ANSWERS,
    },
    WsconnServer {
        program: "echo_server",
        args: &["--deflate-dedicated", "15"],
        answers: [
            "permessage-deflate",
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate",
            "permessage-deflate; client_max_window_bits=8",
        ],
    },
    WsconnServer {
        program: "echo_server",
        args: &["--deflate-dedicated", "9"],
        answers: [
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9",
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=8; client_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=8",
        ],
    },
    WsconnServer {
        program: "epoll_echo",
        args: &["-z"],
        answers: SHARED_ANSWERS,
    },
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    Python,
    Node,
}

impl Peer {
    /// The sets of [`CLIENT_SETS`] its client script offers.
    fn client_sets(self) -> &'static [&'static str] {
        match self {
            Peer::Python => &CLIENT_SETS[..6],
            Peer::Node => &CLIENT_SETS,
        }
    }

    /// The sets of [`SERVER_SETS`] its server script has.
    fn server_sets(self) -> &'static [&'static str] {
        match self {
            Peer::Python => &SERVER_SETS[..5],
            Peer::Node => &SERVER_SETS,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Peer::Python => "python websockets",
            Peer::Node => "node ws",
        }
    }
}

/// One line of an interop matrix; printed together at the end of a test.
struct Row {
    peer: &'static str,
    role: &'static str,
    wsconn: String,
    params: String,
    agreed: String,
    outcome: Result<(), String>,
}

/// Prints the matrix, then fails with every failed row.
fn finish(title: &str, rows: &[Row]) {
    let mut text = format!("\n{title}\n");
    for r in rows {
        let outcome = match &r.outcome {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("FAIL: {}", e.lines().next().unwrap_or_default()),
        };
        text.push_str(&format!(
            "{} ({}) | {} | {} | {} | {outcome}\n",
            r.peer, r.role, r.wsconn, r.params, r.agreed
        ));
    }
    eprintln!("{text}");
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let e = r.outcome.as_ref().err()?;
            Some(format!("{} ({}) | {} | {}: {e}", r.peer, r.role, r.wsconn, r.params))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The parameters of an extension header, whatever their order.
fn params_of(header: &str) -> BTreeSet<String> {
    header.split(';').map(|p| p.trim().to_ascii_lowercase()).collect()
}

/// Starts a wsconn example server on a free port; returns it and its port.
fn start_wsconn(server: &WsconnServer, tag: &str) -> (LoggedServer, u16) {
    let mut args = server.args.to_vec();
    args.push("0");
    let mut srv = LoggedServer::start(&example(server.program), &args, &[], tag);
    let port = srv.wait_for_port();
    srv.wait_until_accepting(port);
    (srv, port)
}

/// The peer's client script against each wsconn server with every set.
fn peer_clients_against_wsconn_servers(peer: Peer) {
    build_examples();
    let mut rows = Vec::new();
    for (i, server) in WSCONN_SERVERS.iter().enumerate() {
        let label = format!("{} {}", server.program, server.args.join(" "));
        let (mut srv, port) = start_wsconn(server, &format!("deflate-{}-client-{i}", peer_tag(peer)));
        let url = format!("ws://127.0.0.1:{port}/echo");
        let mut cmd = match peer {
            Peer::Python => {
                let mut cmd = python_script("deflate_peer.py");
                cmd.arg("client");
                cmd
            }
            Peer::Node => node_script("deflate_client.mjs"),
        };
        cmd.arg(&url).args(peer.client_sets());
        let done = run(cmd, PEER_TIMEOUT);
        srv.assert_running("after the peer's client");
        let report = match &done {
            Ok(d) => format!("{}\n--- {label} log ---\n{}", d.report(), srv.log()),
            Err(e) => format!("{e}\n--- {label} log ---\n{}", srv.log()),
        };
        let stdout = done.as_ref().map(|d| d.stdout.clone()).unwrap_or_default();
        for (set, expected) in peer.client_sets().iter().zip(server.answers) {
            let lines: Vec<&str> = stdout
                .lines()
                .filter_map(|l| l.strip_prefix(set)?.strip_prefix(' '))
                .collect();
            let agreed = lines
                .iter()
                .find_map(|l| l.strip_prefix("extensions: "))
                .unwrap_or("(none)");
            let oks = lines.iter().filter(|l| l.starts_with("ok ")).count();
            let outcome = if agreed != expected {
                Err(format!("answer {agreed:?}, expected {expected:?}\n{report}"))
            } else if let Some(fail) = lines.iter().find(|l| l.starts_with("FAIL")) {
                Err(format!("{fail}\n{report}"))
            } else if oks != 12 {
                Err(format!("{oks} of 12 checks passed\n{report}"))
            } else {
                Ok(())
            };
            rows.push(Row {
                peer: peer.name(),
                role: "client",
                wsconn: label.clone(),
                params: set.to_string(),
                agreed: agreed.to_string(),
                outcome,
            });
        }
        if peer == Peer::Python {
            rows.push(interleaved(&url, &label));
            srv.assert_running("after the interleaved messages");
            if server.args[0] == "--deflate-dedicated" {
                rows.push(idle(&url, &label));
                srv.assert_running("after the idle pauses");
            }
        }
        srv.terminate();
    }
    finish(
        &format!(
            "{} client -> wsconn server (text+binary 0 B..1 MiB, 64 KiB in 4 frames, echoed)",
            peer.name()
        ),
        &rows,
    );
}

/// A row for `deflate_peer.py MODE URL ARG`, which prints "MODE ok N" when
/// its check passes.
fn python_check(mode: &str, url: &str, arg: &str, label: &str, params: String) -> Row {
    let mut cmd = python_script("deflate_peer.py");
    cmd.args([mode, url, arg]);
    let outcome = match run(cmd, PEER_TIMEOUT) {
        Ok(done) if done.status.success() && done.stdout.contains(&format!("{mode} ok ")) => Ok(()),
        Ok(done) => Err(done.report()),
        Err(e) => Err(e),
    };
    Row {
        peer: Peer::Python.name(),
        role: "client",
        wsconn: label.to_string(),
        params,
        agreed: "default offer".to_string(),
        outcome,
    }
}

/// Connections whose compressed messages arrive interleaved, each held
/// half-inflated while the others go on: `deflate_peer.py interleaved`.
fn interleaved(url: &str, label: &str) -> Row {
    const CONNECTIONS: &str = "20";
    let params = format!("{CONNECTIONS} connections, 64 KiB texts in 2 frames interleaved");
    python_check("interleaved", url, CONNECTIONS, label, params)
}

/// Pauses longer than the server's compression idle time (1 s by default)
/// between messages the client compresses with back-references into earlier
/// ones: the server trims its streams and restores the client's window
/// (`deflate_peer.py idle`).
fn idle(url: &str, label: &str) -> Row {
    const PAUSE_MS: &str = "1500";
    let params = format!("a text repeated after pauses of {PAUSE_MS} ms (the server trims between)");
    python_check("idle", url, PAUSE_MS, label, params)
}

fn peer_tag(peer: Peer) -> &'static str {
    match peer {
        Peer::Python => "python",
        Peer::Node => "node",
    }
}

#[test]
fn python_client_against_wsconn_servers() {
    peer_clients_against_wsconn_servers(Peer::Python);
}

#[test]
fn node_client_against_wsconn_servers() {
    node();
    peer_clients_against_wsconn_servers(Peer::Node);
}

/// The server parameter sets of the peers' server scripts. The last is
/// Node's alone (as [`CLIENT_SETS`]' last): Python's `websockets` does not
/// compress with 8-bit windows.
const SERVER_SETS: [&str; 6] = [
    "default",
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_window_9",
    "client_window_10",
    "server_window_8",
];

/// How `c-examples/client` offers the extension.
const CLIENT_MODES: [&[&str]; 3] = [&["-z"], &["--deflate-dedicated", "15"], &["--deflate-dedicated", "11"]];

/// What the client agrees with each server set ([`SERVER_SETS`] ×
/// [`CLIENT_MODES`]), as it prints it; the servers answer the same
/// parameters, in their own order.
const CLIENT_AGREED: [[&str; 3]; 6] = [
    [
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        "permessage-deflate",
        "permessage-deflate; server_max_window_bits=11; client_max_window_bits=11",
    ],
    [
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_no_context_takeover",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=11; client_max_window_bits=11",
    ],
    [
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; client_no_context_takeover",
        "permessage-deflate; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=11",
    ],
    [
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9",
        "permessage-deflate; server_max_window_bits=9",
        "permessage-deflate; server_max_window_bits=9; client_max_window_bits=11",
    ],
    [
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=10",
        "permessage-deflate; client_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=11; client_max_window_bits=10",
    ],
    [
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8",
        "permessage-deflate; server_max_window_bits=8",
        "permessage-deflate; server_max_window_bits=8; client_max_window_bits=11",
    ],
];

/// `size` bytes of JSON-like ASCII text: compressible, not trivially.
fn json_like(size: usize, seed: usize) -> String {
    let mut text = String::with_capacity(size + 100);
    let mut i = seed;
    while text.len() < size {
        text.push_str(&format!(
            "{{\"id\":{i},\"user\":\"user-{}\",\"tags\":[\"alpha\",\"beta\"],\"score\":{}}},",
            i * 7919 % 10007,
            i * 31 % 1000
        ));
        i += 1;
    }
    text.truncate(size);
    text
}

/// What the C client sends (one stdin line each): one too short to be
/// compressed, an empty one (which Python's server compresses), a repeated
/// one (context takeover), non-ASCII, and 100 KiB.
fn client_messages() -> Vec<String> {
    vec![
        "hello".to_string(),
        String::new(),
        json_like(1024, 1),
        json_like(1024, 1),
        "w\u{f6}rld \u{2713} \u{1f600} ".repeat(20),
        json_like(100 << 10, 3),
    ]
}

/// Starts the peer's echo server with `set`.
fn start_peer_server(peer: Peer, set: &str) -> LoggedServer {
    let tag = format!("deflate-{}-server-{set}", peer_tag(peer));
    match peer {
        Peer::Python => {
            let mut cmd = python_script("deflate_peer.py");
            cmd.args(["server", set]);
            let log = root()
                .join("target")
                .join("c-example-interop")
                .join(format!("{tag}.log"));
            LoggedServer::spawn("deflate_peer.py", cmd, log)
        }
        Peer::Node => {
            let script = node_dir().join("server.mjs");
            LoggedServer::start(&node(), &[script.to_str().expect("UTF-8 path"), "0", set], &[], &tag)
        }
    }
}

/// Runs the C client in `mode` against `url`; returns what it agreed.
fn c_client_echoes(mode: &[&str], url: &str, messages: &[String]) -> Result<String, String> {
    let mut cmd = example_command(&example("client"));
    cmd.args(mode).arg(url);
    let input: String = messages.iter().map(|m| format!("{m}\n")).collect();
    let done = run_with_input(cmd, Some(input.as_bytes()), C_CLIENT_TIMEOUT)?;
    if !done.status.success() {
        return Err(format!("client {mode:?} failed: {}", done.report()));
    }
    if done.stdout != input {
        return Err(format!(
            "client {mode:?}: the echoes differ ({} bytes, {} sent)",
            done.stdout.len(),
            input.len()
        ));
    }
    done.stderr
        .lines()
        .find_map(|l| l.strip_prefix("extensions: "))
        .map(str::to_string)
        .ok_or_else(|| format!("client {mode:?}: no \"extensions:\" line: {}", done.report()))
}

/// Checks the server's log after the three clients: its answers, the
/// messages, and that they came compressed.
fn check_peer_server_log(peer: Peer, log: &str, expected: &[&str; 3], messages: &[String]) -> Result<(), String> {
    let answers: Vec<&str> = log.lines().filter_map(|l| l.strip_prefix("extensions: ")).collect();
    let wanted: Vec<BTreeSet<String>> = expected.iter().map(|e| params_of(e)).collect();
    if answers.iter().map(|a| params_of(a)).collect::<Vec<_>>() != wanted {
        return Err(format!("the server answered {answers:?}, expected {expected:?}"));
    }
    let closes: Vec<&str> = log.lines().filter(|l| l.starts_with("close ")).collect();
    if closes.len() != 3 || !closes.iter().all(|c| c.starts_with("close 1000")) {
        return Err(format!("closes {closes:?}, expected three 1000"));
    }
    // The Python server tells whether each message came with RSV1: every
    // one the client had to compress (its minimum size is 64 bytes) did.
    let expected: Vec<String> = messages
        .iter()
        .map(|m| match peer {
            Peer::Python if m.len() >= 64 => format!("message text {} compressed", m.len()),
            Peer::Python => format!("message text {} plain", m.len()),
            Peer::Node => format!("message text {}", m.len()),
        })
        .collect();
    let seen: Vec<&str> = log.lines().filter(|l| l.starts_with("message ")).collect();
    if seen.len() != 3 * expected.len() || seen.iter().zip(expected.iter().cycle()).any(|(s, e)| s != e) {
        return Err(format!("messages {seen:?}, expected 3 times {expected:?}"));
    }
    // The Node server tells what it read off the wire: less than half the text.
    if peer == Peer::Node {
        let sent: usize = messages.iter().map(String::len).sum();
        let wires: Vec<&str> = log.lines().filter_map(|l| l.strip_prefix("wire ")).collect();
        if wires.len() != 3 {
            return Err(format!("{} \"wire\" lines, expected 3", wires.len()));
        }
        for wire in wires {
            let wire: usize = wire.parse().map_err(|_| format!("wire {wire:?}"))?;
            if wire * 2 >= sent {
                return Err(format!("{wire} bytes on the wire for {sent} of text: not compressed"));
            }
        }
    }
    Ok(())
}

/// `c-examples/client` in each mode against the peer's server with each set.
fn c_client_against_peer_servers(peer: Peer) {
    build_examples();
    let messages = client_messages();
    let mut rows = Vec::new();
    for (set, agreed) in peer.server_sets().iter().zip(CLIENT_AGREED) {
        let mut srv = start_peer_server(peer, set);
        let port = srv.wait_for_port();
        srv.wait_until_accepting(port);
        let url = format!("ws://127.0.0.1:{port}/echo");
        let mut outcomes = Vec::new();
        for (mode, expected) in CLIENT_MODES.iter().zip(agreed) {
            let outcome = c_client_echoes(mode, &url, &messages).and_then(|got| {
                if got == expected {
                    Ok(got)
                } else {
                    Err(format!("the client agreed {got:?}, expected {expected:?}"))
                }
            });
            outcomes.push((mode.join(" "), expected, outcome));
        }
        // The closes are logged once the server has seen them.
        let deadline = Instant::now() + Duration::from_secs(10);
        while srv.log().lines().filter(|l| l.starts_with("close ")).count() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        srv.assert_running("after the clients");
        let log = srv.log();
        let server_check = check_peer_server_log(peer, &log, &agreed, &messages);
        for (mode, expected, outcome) in outcomes {
            let outcome = outcome
                .and_then(|_| server_check.clone())
                .map_err(|e| format!("{e}\n--- {} server log ---\n{log}", peer.name()));
            rows.push(Row {
                peer: peer.name(),
                role: "server",
                wsconn: format!("client {mode}"),
                params: set.to_string(),
                agreed: expected.to_string(),
                outcome,
            });
        }
        srv.terminate();
    }
    if peer == Peer::Node {
        rows.push(declined_by_node(&messages));
    }
    finish(
        &format!(
            "c-examples/client -> {} server (6 text messages, one empty; 100 KiB echoed in 4 frames)",
            peer.name()
        ),
        &rows,
    );
}

/// A server without the extension declines the offer: the client goes on
/// uncompressed.
fn declined_by_node(messages: &[String]) -> Row {
    let script = node_dir().join("server.mjs");
    let mut srv = LoggedServer::start(
        &node(),
        &[script.to_str().expect("UTF-8 path"), "0"],
        &[],
        "deflate-node-server-off",
    );
    let port = srv.wait_for_port();
    srv.wait_until_accepting(port);
    let outcome = c_client_echoes(&["-z"], &format!("ws://127.0.0.1:{port}/echo"), messages).and_then(|agreed| {
        if agreed.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the client agreed {agreed:?} with a server without the extension"
            ))
        }
    });
    srv.terminate();
    Row {
        peer: Peer::Node.name(),
        role: "server",
        wsconn: "client -z".to_string(),
        params: "perMessageDeflate: false".to_string(),
        agreed: "(declined)".to_string(),
        outcome,
    }
}

#[test]
fn c_client_against_python_server() {
    c_client_against_peer_servers(Peer::Python);
}

#[test]
fn c_client_against_node_server() {
    node();
    c_client_against_peer_servers(Peer::Node);
}

/// RSV1 in a frame's first byte.
const RSV1: u8 = 0x40;

/// `zeros_mib` MiB of zeros as one permessage-deflate payload: zlib's raw
/// deflate of 64 MiB, sync-flushed, repeated (each copy only refers to
/// itself, so the copies make one valid stream), without the final
/// `00 00 ff ff`.
fn zeros_bomb(zeros_mib: usize) -> Vec<u8> {
    assert_eq!(zeros_mib % 64, 0);
    let mut cmd = Command::new(python());
    cmd.args([
        "-c",
        "import sys, zlib\n\
         c = zlib.compressobj(9, zlib.DEFLATED, -15)\n\
         sys.stdout.buffer.write(c.compress(bytes(64 << 20)) + c.flush(zlib.Z_SYNC_FLUSH))",
    ]);
    let out = cmd.output().expect("run python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let segment = out.stdout;
    assert!(segment.ends_with(&[0, 0, 0xff, 0xff]), "not sync-flushed");
    let mut payload = segment.repeat(zeros_mib / 64);
    payload.truncate(payload.len() - 4);
    payload
}

/// VmHWM (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// A connection to `port` that agreed on permessage-deflate.
fn deflate_client(port: u16) -> WsClient {
    let (client, head) = WsClient::open_with(
        port,
        "/echo",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nsec-websocket-extensions: permessage-deflate"),
        "permessage-deflate not agreed: {head:?}"
    );
    client
}

/// `payload` as a compressed binary message from a client (masked), in one
/// frame or in frames of `fragment` bytes (RSV1 on the first only).
fn bomb_frames(payload: &[u8], fragment: Option<usize>) -> Vec<u8> {
    frames_of(payload, fragment, client_frame)
}

/// The same from a server (unmasked).
fn bomb_frames_from_server(payload: &[u8], fragment: Option<usize>) -> Vec<u8> {
    frames_of(payload, fragment, server_frame)
}

fn frames_of(payload: &[u8], fragment: Option<usize>, frame: fn(u8, &[u8]) -> Vec<u8>) -> Vec<u8> {
    let chunks: Vec<&[u8]> = payload.chunks(fragment.unwrap_or(payload.len())).collect();
    let mut wire = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let fin = i + 1 == chunks.len();
        let first = match i {
            0 => first_byte(fin, OP_BINARY) | RSV1,
            _ => first_byte(fin, OP_CONT),
        };
        wire.extend(frame(first, chunk));
    }
    wire
}

/// Sends `wire` (from another thread: the server may close before it has
/// read it all) and returns the close code the server answers with.
fn bomb_close_code(port: u16, wire: Vec<u8>) -> Result<u16, String> {
    let mut client = deflate_client(port);
    let mut writer = client.stream.try_clone().expect("clone the socket");
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(&wire);
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let result = match client.read_frame(deadline) {
        Ok(f) if f.opcode == OP_CLOSE && f.payload.len() >= 2 => Ok(u16::from_be_bytes([f.payload[0], f.payload[1]])),
        Ok(f) => Err(format!(
            "expected a close frame, got opcode {} ({} bytes)",
            f.opcode,
            f.payload.len()
        )),
        Err(e) => Err(format!("no close frame: {e:?}")),
    };
    client.shutdown();
    sending.join().expect("the sending thread");
    result
}

/// Each bomb against `server`, then an echo: rows of the matrix.
fn bombs_against(server: &WsconnServer, tag: &str, bombs: &[(String, Vec<u8>)]) -> Vec<Row> {
    let label = format!("{} {}", server.program, server.args.join(" "));
    let (mut srv, port) = start_wsconn(server, tag);
    // A first connection and echo, so that the peak includes them.
    let mut warm = deflate_client(port);
    warm.send_text(&json_like(16, 0)).unwrap();
    let echo = warm.read_frame(Instant::now() + Duration::from_secs(10)).unwrap();
    assert_eq!(echo.payload, json_like(16, 0).as_bytes());
    warm.send_close(1000).unwrap();
    let before = peak_rss_kib(srv.pid());

    let mut rows = Vec::new();
    for (what, wire) in bombs {
        let started = Instant::now();
        let outcome = match bomb_close_code(port, wire.clone()) {
            Ok(1009) => Ok(()),
            Ok(code) => Err(format!("close code {code}, expected 1009")),
            Err(e) => Err(e),
        };
        let took = started.elapsed();
        let grew = peak_rss_kib(srv.pid()).saturating_sub(before);
        let outcome = outcome.and_then(|()| {
            // The 16 MiB of the max message size, and room for the rest.
            if grew < (16 + 40) << 10 {
                Ok(())
            } else {
                Err(format!("the server's VmHWM grew by {} MiB", grew >> 10))
            }
        });
        rows.push(Row {
            peer: "raw client",
            role: "client",
            wsconn: label.clone(),
            params: what.clone(),
            agreed: format!("close 1009 in {took:.0?}, VmHWM +{} MiB", grew >> 10),
            outcome,
        });
        srv.assert_running("after a bomb");
    }

    // And it goes on serving (an echo under 64 bytes is sent uncompressed).
    let mut after = deflate_client(port);
    let text = json_like(40, 5);
    after.send_text(&text).unwrap();
    let echo = after.read_frame(Instant::now() + Duration::from_secs(10));
    rows.push(Row {
        peer: "raw client",
        role: "client",
        wsconn: label,
        params: "40 B echoed after the bombs".to_string(),
        agreed: String::new(),
        outcome: match echo {
            Ok(f) if f.opcode == OP_TEXT && f.payload == text.as_bytes() => Ok(()),
            other => Err(format!("echo {other:?}")),
        },
    });
    srv.terminate();
    rows
}

#[test]
fn inflate_bombs_against_wsconn_servers() {
    build_examples();
    let small = zeros_bomb(64);
    let large = zeros_bomb(1024);
    let bombs = [
        (
            format!("64 MiB of zeros in {} KiB, one frame", small.len() >> 10),
            bomb_frames(&small, None),
        ),
        (
            format!("1 GiB of zeros in {} KiB, one frame", large.len() >> 10),
            bomb_frames(&large, None),
        ),
        (
            format!("1 GiB of zeros in {} KiB, 64 KiB frames", large.len() >> 10),
            bomb_frames(&large, Some(64 << 10)),
        ),
    ];
    let servers = [
        ("deflate-bomb-shared", &WSCONN_SERVERS[0]),
        ("deflate-bomb-dedicated", &WSCONN_SERVERS[1]),
        ("deflate-bomb-epoll", &WSCONN_SERVERS[3]),
    ];
    let mut rows = Vec::new();
    for (tag, server) in servers {
        rows.extend(bombs_against(server, tag, &bombs));
    }
    finish("decompression bombs -> wsconn servers (max message 16 MiB)", &rows);
}

/// The first close frame among the masked frames of `bytes`: its code, or
/// `None` if none is complete yet.
fn client_close_code(bytes: &[u8]) -> Option<u16> {
    let mut at = 0;
    while bytes.len() >= at + 2 {
        let (b0, b1) = (bytes[at], bytes[at + 1]);
        let (len, mut header) = match b1 & 0x7f {
            126 => (
                usize::from(u16::from_be_bytes(bytes.get(at + 2..at + 4)?.try_into().ok()?)),
                4,
            ),
            127 => (
                usize::try_from(u64::from_be_bytes(bytes.get(at + 2..at + 10)?.try_into().ok()?)).ok()?,
                10,
            ),
            n => (usize::from(n), 2),
        };
        let mask: [u8; 4] = bytes.get(at + header..at + header + 4)?.try_into().ok()?;
        header += 4;
        let payload = bytes.get(at + header..at + header + len)?;
        if b0 & 0x0f == OP_CLOSE && len >= 2 {
            return Some(u16::from_be_bytes([payload[0] ^ mask[0], payload[1] ^ mask[1]]));
        }
        at += header + len;
    }
    None
}

/// Runs a program and prints "PEAK_KIB EXIT_CODE" once it has exited: a
/// real fork of a small process, since a child's ru_maxrss also counts the
/// memory of the process it was spawned from (the test's, here).
const PEAK_OF: &str = "import os, sys
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))";

/// `c-examples/client` in `mode` against a server that accepts its offer and
/// sends `wire`: the client's close code and its peak RSS (KiB).
fn bomb_the_client(mode: &[&str], answer: &str, wire: Vec<u8>) -> Result<(u16, u64), String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Without LD_LIBRARY_PATH, as every C example (see `example_command`).
    let mut cmd = example_command(&python());
    cmd.args(["-c", PEAK_OF])
        .arg(example("client"))
        .args(mode)
        .args(["-T", "20", &format!("ws://127.0.0.1:{port}/"), "hello"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut wrapper = KilledOnDrop(cmd.spawn().map_err(|e| format!("start the client: {e}"))?);
    let stdout = read_on_thread(wrapper.0.stdout.take());
    let stderr = read_on_thread(wrapper.0.stderr.take());
    let served = serve_bomb(&listener, &mut wrapper.0, answer, wire);
    let status = wait_until(&mut wrapper.0, Instant::now() + Duration::from_secs(20));
    let (stdout, stderr) = (stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default());
    let code = served?;
    let report = format!("{status:?}, stdout {stdout:?}, stderr {stderr:?}");
    let mut words = stdout.split_whitespace().map(str::parse::<i64>);
    match (status, words.next(), words.next()) {
        (Ok(Some(s)), Some(Ok(peak)), Some(Ok(exit))) if s.success() && exit != 0 => {
            Ok((code, u64::try_from(peak).unwrap_or(0)))
        }
        _ => Err(format!("the client did not fail as expected: {report}")),
    }
}

/// The server's side of [`bomb_the_client`]: the close code the client sends.
fn serve_bomb(
    listener: &std::net::TcpListener,
    client: &mut std::process::Child,
    answer: &str,
    wire: Vec<u8>,
) -> Result<u16, String> {
    use std::io::Read;
    // Not blocking: a client that never connects must not hang the test.
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sock = loop {
        match listener.accept() {
            Ok((sock, _)) => break sock,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                if let Ok(Some(status)) = client.try_wait() {
                    return Err(format!("the client exited before connecting: {status}"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    };
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut chunk).map_err(|e| format!("read the request: {e}"))?;
        if n == 0 {
            return Err("the client closed before its request".into());
        }
        got.extend_from_slice(&chunk[..n]);
    }
    let request = String::from_utf8_lossy(&got).into_owned();
    let key = request
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key").then(|| value.trim())
        })
        .ok_or_else(|| format!("no key in {request:?}"))?;
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Extensions: {answer}\r\n\r\n",
        wsconn::proto::handshake::accept_key(key.as_bytes())
    );
    sock.write_all(response.as_bytes())
        .map_err(|e| format!("write the response: {e}"))?;
    let mut writer = sock.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(&wire);
    });
    got.clear();
    let code = loop {
        if let Some(code) = client_close_code(&got) {
            break code;
        }
        match sock.read(&mut chunk) {
            Ok(0) => return Err("the client closed without a close frame".into()),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("no close frame: {e}")),
        }
    };
    let _ = sock.shutdown(std::net::Shutdown::Both);
    sending.join().unwrap();
    Ok(code)
}

/// The same bombs, the other way: from a server to `c-examples/client`.
#[test]
fn inflate_bombs_against_c_client() {
    build_examples();
    let large = zeros_bomb(1024);
    let mut rows = Vec::new();
    for (mode, answer) in [
        (
            &["-z"][..],
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        (&["--deflate-dedicated", "15"][..], "permessage-deflate"),
    ] {
        for (what, fragment) in [("one frame", None), ("64 KiB frames", Some(64 << 10))] {
            let wire = bomb_frames_from_server(&large, fragment);
            let outcome = bomb_the_client(mode, answer, wire);
            let agreed = match &outcome {
                Ok((code, peak)) => format!("close {code}, peak RSS {} MiB", peak >> 10),
                Err(_) => String::new(),
            };
            rows.push(Row {
                peer: "raw server",
                role: "server",
                wsconn: format!("client {}", mode.join(" ")),
                params: format!("1 GiB of zeros in {} KiB, {what}", large.len() >> 10),
                agreed,
                outcome: outcome.and_then(|(code, peak)| match code {
                    // The 16 MiB of the max message size, and room for the rest.
                    1009 if peak < (16 + 40) << 10 => Ok(()),
                    1009 => Err(format!("the client's peak RSS reached {} MiB", peak >> 10)),
                    _ => Err(format!("close code {code}, expected 1009")),
                }),
            });
        }
    }
    finish("decompression bombs -> c-examples/client (max message 16 MiB)", &rows);
}

//! The memory budget against `c-examples/echo_server`, attacked as in the
//! issue that asked for it: 100 clients each announce a 16 MiB message, send
//! 8 MiB of it and stall. The server's RSS must stay under its budget plus a
//! fixed margin, another client's echoes must keep coming, and once the
//! attackers finish their messages every one is echoed whole. Also: 20 clients
//! sending 16 MiB each at once under a 64 MiB budget all get their echoes (no
//! deadlock), and a message that stalls past the message timeout ends with 1008
//! although its client answers pings.

use std::io::Write;
use std::sync::{Arc, Barrier, OnceLock, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use wsconn_testkit::{
    build_examples, example, header, Frame, LoggedServer, WsClient, FIN, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING,
    OP_PONG, OP_TEXT,
};

const MIB: usize = 1 << 20;

/// RSS growth allowed over the budget: each held-back connection's last read
/// (64 KiB each), the one message allowed past the budget (16 MiB), the
/// per-thread buffers kept for reuse, and the allocator's slack.
const MARGIN: usize = 64 * MIB;

/// Generous: the server is loaded by the test's own clients on 2 cores.
const ECHO_WAIT: Duration = Duration::from_secs(60);

fn rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's /proc status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// A client frame with mask key 0 (the payload goes as it is: cheap to send).
fn frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = header(first_byte, payload.len() as u64, Some([0; 4]));
    f.extend_from_slice(payload);
    f
}

fn next_frame(c: &mut WsClient, wait: Duration) -> Frame {
    c.read_frame(Instant::now() + wait)
        .unwrap_or_else(|e| panic!("no frame: {e:?}"))
}

/// `len` bytes that differ from client to client (a shared pattern, computed
/// once, stamped with the client's number at both ends).
fn payload(client: usize, len: usize) -> Vec<u8> {
    static PATTERN: OnceLock<Vec<u8>> = OnceLock::new();
    let pattern = PATTERN.get_or_init(|| (0..16 * MIB).map(|i| (i * 31 + (i >> 12)) as u8).collect());
    let mut data = pattern[..len].to_vec();
    let stamp = (client as u64).to_be_bytes();
    let n = stamp.len().min(len);
    data[..n].copy_from_slice(&stamp[..n]);
    data[len - n..].copy_from_slice(&stamp[..n]);
    data
}

/// One test at a time: each sends gigabytes and measures a server's memory.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn start(args: &[&str], tag: &str) -> (LoggedServer, u16) {
    build_examples();
    let mut server = LoggedServer::start(&example("echo_server"), args, &[], tag);
    let port = server.wait_for_port();
    (server, port)
}

/// 32-byte echoes on a fresh connection; each must come back within `limit`.
fn echoes_stay_prompt(port: u16, count: usize, limit: Duration) {
    let mut c = WsClient::open(port, "/");
    for i in 0..count {
        let text = format!("prompt echo {i:020}");
        let started = Instant::now();
        c.send_text(&text).unwrap();
        let echo = c
            .read_frame(started + limit)
            .unwrap_or_else(|e| panic!("echo {i}: {e:?}"));
        assert_eq!(
            (echo.opcode, echo.payload.as_slice()),
            (OP_TEXT, text.as_bytes()),
            "echo {i}"
        );
        assert!(started.elapsed() < limit, "echo {i} took {:?}", started.elapsed());
        thread::sleep(Duration::from_millis(20));
    }
}

/// The attack, against a server started with `args`; `budget` is its whole
/// budget. Returns the largest RSS growth seen while the attackers stalled.
fn attack(args: &[&str], tag: &str, budget: usize) -> usize {
    const ATTACKERS: usize = 100;
    const SIZE: usize = 16 * MIB;
    let (mut server, port) = start(args, tag);
    let pid = server.pid();
    let before = rss(pid);
    // Held by the test until the attackers may finish (a barrier would wait
    // for the attackers the server holds back, blocked in their first write).
    let finish = Arc::new(RwLock::new(()));
    let hold = finish.write().unwrap();
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|a| {
            let mut c = WsClient::open(port, "/");
            let finish = Arc::clone(&finish);
            thread::spawn(move || {
                let data = payload(a, SIZE);
                c.stream
                    .write_all(&header(FIN | OP_BINARY, SIZE as u64, Some([0; 4])))
                    .unwrap();
                // Blocks while the server holds this connection back: TCP
                // pushes back, which is the point.
                c.stream.write_all(&data[..SIZE / 2]).expect("first half");
                drop(finish.read().unwrap());
                c.stream.write_all(&data[SIZE / 2..]).expect("second half");
                let echo = next_frame(&mut c, ECHO_WAIT);
                echo.opcode == OP_BINARY && echo.payload == data
            })
        })
        .collect();
    // The attackers send what they can; the server's memory settles.
    let mut most = 0;
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        most = most.max(rss(pid).saturating_sub(before));
        thread::sleep(Duration::from_millis(100));
    }
    server.assert_running("under attack");
    echoes_stay_prompt(port, 20, Duration::from_secs(2));
    most = most.max(rss(pid).saturating_sub(before));
    assert!(
        most < budget + MARGIN,
        "{tag}: RSS grew by {} MiB under a budget of {} MiB",
        most / MIB,
        budget / MIB
    );
    let log = server.log();
    let held_back = log.lines().any(|l| {
        l.contains(" bytes buffered, ") && l.ends_with(" connections waiting") && !l.ends_with(" 0 connections waiting")
    });
    assert!(held_back, "{tag}: -v never showed connections held back:\n{log}");
    // The attackers finish: every message is echoed whole.
    drop(hold);
    let whole = attackers
        .into_iter()
        .map(|t| t.join().expect("attacker"))
        .filter(|&w| w)
        .count();
    assert_eq!(whole, ATTACKERS, "{tag}: messages not echoed whole");
    server.assert_running("after the attack");
    most
}

#[test]
fn a_stalled_attack_stays_within_the_budget_and_loses_nothing() {
    let _alone = one_at_a_time();
    let most = attack(&["-v", "-m", "256", "0"], "budget-attack", 256 * MIB);
    eprintln!("RSS growth under attack with a 256 MiB budget: {} MiB", most / MIB);
}

#[test]
fn a_stalled_attack_stays_within_the_budget_with_two_reactors() {
    let _alone = one_at_a_time();
    let most = attack(&["-v", "-t", "2", "-m", "256", "0"], "budget-attack-t2", 256 * MIB);
    eprintln!(
        "RSS growth under attack, 2 reactors, 256 MiB budget: {} MiB",
        most / MIB
    );
}

#[test]
fn large_messages_all_complete_under_a_budget_smaller_than_their_sum() {
    let _alone = one_at_a_time();
    const CLIENTS: usize = 20;
    const SIZE: usize = 16 * MIB;
    let (mut server, port) = start(&["-m", "64", "0"], "budget-no-deadlock");
    let start = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                let mut client = WsClient::open(port, "/");
                let data = payload(c, SIZE);
                start.wait();
                client
                    .stream
                    .write_all(&frame(FIN | OP_BINARY, &data))
                    .expect("the message");
                let echo = next_frame(&mut client, ECHO_WAIT);
                echo.opcode == OP_BINARY && echo.payload == data
            })
        })
        .collect();
    let whole = clients
        .into_iter()
        .map(|t| t.join().expect("client"))
        .filter(|&w| w)
        .count();
    assert_eq!(whole, CLIENTS, "messages not echoed whole");
    server.assert_running("after the messages");
}

#[test]
fn a_message_stalled_past_the_message_timeout_ends_with_1008() {
    let _alone = one_at_a_time();
    let (mut server, port) = start(&["-T", "1000", "0"], "budget-message-timeout");
    let mut c = WsClient::open(port, "/");
    // The first fragment of a message, then only pings (answered: the
    // connection is alive, the message is not).
    c.stream.write_all(&frame(OP_BINARY, &payload(0, 1024))).unwrap();
    let started = Instant::now();
    let mut pongs = 0;
    let close = loop {
        c.stream.write_all(&frame(FIN | OP_PING, b"ping")).unwrap();
        let f = next_frame(&mut c, Duration::from_secs(10));
        match f.opcode {
            OP_PONG => pongs += 1,
            OP_CLOSE => break f.payload,
            other => panic!("unexpected frame {other:#x}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "no close after {pongs} pongs"
        );
        thread::sleep(Duration::from_millis(200));
    };
    assert!(pongs >= 2, "only {pongs} pongs before the close");
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1008);
    assert_eq!(&close[2..], b"message timeout");
    // A message whose fragments come in time is echoed.
    let mut c = WsClient::open(port, "/");
    c.stream.write_all(&frame(OP_TEXT, b"abc")).unwrap();
    thread::sleep(Duration::from_millis(500));
    c.stream.write_all(&frame(FIN | OP_CONT, b"def")).unwrap();
    let echo = next_frame(&mut c, Duration::from_secs(10));
    assert_eq!((echo.opcode, echo.payload.as_slice()), (OP_TEXT, &b"abcdef"[..]));
    server.assert_running("after the timeout");
}

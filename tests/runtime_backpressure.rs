//! Backpressure on the reactor API: `tests/c/backpressure_server.c` floods a
//! client that does not read for 2 seconds. The server must hit
//! `WSCONN_ERR_FULL`, wait for the drain callback and resume; the client
//! then receives every message exactly once, in order and byte-exact, and the
//! close frame 1000; the server's output buffer and its peak RSS stay bounded.
//! Run against the plain and the ASan + UBSan builds.

use std::thread;
use std::time::{Duration, Instant};
use wsconn_testkit::{build_test_programs, field, ReadError, WatchedProcess, WsClient, OP_BINARY, OP_CLOSE};

/// The byte at offset `i` of message `seq`'s payload (after its 4-byte number),
/// as `pattern_byte` in backpressure_server.c computes it.
fn pattern_byte(seq: u32, i: usize) -> u8 {
    ((seq.wrapping_mul(2_654_435_761) >> 24) ^ (i as u32).wrapping_mul(31) ^ (i >> 8) as u32) as u8
}

struct Config {
    messages: u32,
    payload: usize,
    frame: usize,
    max_output: usize,
}

fn backpressure(name: &str, args: &[&str], rss_limit_kib: i64) {
    build_test_programs(&["backpressure_server", "backpressure_server_asan"]);
    let mut server = WatchedProcess::start_test_server(name, args);
    let line = server.wait_line(Duration::from_secs(10), |l| l.starts_with("config "));
    let cfg = Config {
        messages: field(&line, "messages") as u32,
        payload: field(&line, "payload") as usize,
        frame: field(&line, "frame") as usize,
        max_output: field(&line, "max_output") as usize,
    };
    assert_eq!(cfg.frame, 4 + cfg.payload, "{line}");
    // 32 MiB in total: far more than the socket buffers and the output limit.
    assert!(cfg.messages as usize * cfg.frame >= 8 * cfg.max_output, "{line}");
    // Each message's frame on the wire: 4 header bytes up to 64 KiB.
    let wire_frame = cfg.frame
        + if cfg.frame < 126 {
            2
        } else if cfg.frame < 65536 {
            4
        } else {
            10
        };

    let mut client = WsClient::connect(server.port());
    server.wait_line(Duration::from_secs(10), |l| l.starts_with("open "));

    // Not reading: the socket buffers fill, then the server's output.
    thread::sleep(Duration::from_secs(2));
    server.assert_running("while the client was not reading");
    let full = server
        .try_wait_lines(Duration::from_secs(5), 1, &|l| l.starts_with("full "))
        .unwrap_or_else(|| panic!("the server never got WSCONN_ERR_FULL\n{}", server.log()));
    let sent_at_full = field(&full[0], "sent");
    assert!(
        sent_at_full < cfg.messages as i64,
        "FULL only after everything was queued: {full:?}\n{}",
        server.log()
    );
    assert!(
        !server.lines().iter().any(|l| l.starts_with("all ")),
        "the server queued all messages while the client was not reading\n{}",
        server.log()
    );

    // Now read everything.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut expected = vec![0u8; cfg.frame];
    for seq in 0..cfg.messages {
        let frame = client
            .read_frame(deadline)
            .unwrap_or_else(|e| panic!("message {seq}: {e:?}\n{}", server.log()));
        assert!(
            frame.opcode == OP_BINARY && frame.fin,
            "message {seq}: opcode {:#x} fin {} (len {})",
            frame.opcode,
            frame.fin,
            frame.payload.len()
        );
        assert_eq!(frame.payload.len(), cfg.frame, "message {seq}: length");
        let got_seq = u32::from_be_bytes(frame.payload[..4].try_into().unwrap());
        assert_eq!(got_seq, seq, "message out of order, duplicated or lost");
        expected[..4].copy_from_slice(&seq.to_be_bytes());
        for (i, b) in expected[4..].iter_mut().enumerate() {
            *b = pattern_byte(seq, i);
        }
        if frame.payload != expected {
            let at = frame.payload.iter().zip(&expected).position(|(a, b)| a != b).unwrap();
            panic!(
                "message {seq}: byte {at} is {:#04x}, expected {:#04x}",
                frame.payload[at], expected[at]
            );
        }
    }
    let close = client
        .read_frame(deadline)
        .unwrap_or_else(|e| panic!("close frame: {e:?}\n{}", server.log()));
    assert_eq!(close.opcode, OP_CLOSE, "after the last message: {close:?}");
    assert!(close.payload.len() >= 2, "close frame without a code");
    assert_eq!(u16::from_be_bytes([close.payload[0], close.payload[1]]), 1000);
    assert_eq!(&close.payload[2..], b"done");
    client.send_close(1000).expect("send the close reply");
    // Nothing after the close frame; then the server closes TCP.
    match client.read_frame(Instant::now() + Duration::from_secs(10)) {
        Err(ReadError::Closed(_)) => {}
        other => panic!("after the closing handshake: {other:?}\n{}", server.log()),
    }
    assert_eq!(client.unparsed(), 0);

    let status = server.wait_exit(Duration::from_secs(30));
    server.assert_clean_exit(status);
    let lines = server.lines();
    assert!(
        lines.iter().any(|l| l == "closed code=1000 reason="),
        "close_ex callback with 1000 missing\n{}",
        server.log()
    );
    let stats = lines
        .iter()
        .find(|l| l.starts_with("stats "))
        .unwrap_or_else(|| panic!("no stats line\n{}", server.log()))
        .clone();
    println!("{name}: {stats}");
    assert_eq!(field(&stats, "sent"), cfg.messages as i64, "{stats}");
    assert!(field(&stats, "full") >= 1, "{stats}");
    assert!(field(&stats, "drains") >= 1, "{stats}");
    assert_eq!(field(&stats, "errors"), 0, "{stats}");
    let max_buffered = field(&stats, "max_buffered") as usize;
    assert!(
        max_buffered <= cfg.max_output + wire_frame,
        "buffered {max_buffered} bytes: over the max output {} + one message {wire_frame}\n{stats}",
        cfg.max_output
    );
    // It did fill up to the limit: a send was refused because the next frame
    // did not fit.
    assert!(
        max_buffered + wire_frame > cfg.max_output,
        "max buffered {max_buffered} never came near the max output {}\n{stats}",
        cfg.max_output
    );
    let vmhwm = field(&stats, "vmhwm_kib");
    assert!(vmhwm > 0, "no VmHWM: {stats}");
    assert!(
        vmhwm < rss_limit_kib,
        "peak RSS {vmhwm} KiB over {rss_limit_kib} KiB for {} MiB sent\n{stats}",
        (cfg.messages as usize * cfg.frame) >> 20
    );
}

/// Peak RSS under 24 MiB for 32 MiB sent through a 256 KiB output limit:
/// less than the data sent, so holding it all would fail (the program itself
/// needs about 3 MiB).
#[test]
fn backpressure_server_bounded() {
    backpressure("backpressure_server", &[], 24 * 1024);
}

/// Messages of 100 KB leave straight from the program's buffer while the
/// socket takes them (only the rest is buffered): the same rules hold, with
/// 40 MB sent through a 1 MiB output limit.
#[test]
fn backpressure_server_large_messages() {
    backpressure("backpressure_server", &["400", "100000", "1048576"], 24 * 1024);
}

/// Under ASan freed memory sits in a quarantine (256 MiB by default) and
/// shadow memory adds to the RSS: the bound is looser, but still far from
/// holding every message (which, with the quarantine, would exceed it).
#[test]
fn backpressure_server_asan() {
    backpressure("backpressure_server_asan", &[], 256 * 1024);
}

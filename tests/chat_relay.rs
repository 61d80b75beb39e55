//! `c-examples/chat_server` with two nodes and a real `redis-server` (started
//! here on a loopback port): members of one room on both nodes see each
//! other's messages exactly once and in order per sender (node A runs two
//! reactor threads, so its room spans threads); a member of another room
//! sees none. Then Redis is killed: each node's local rooms keep working;
//! Redis is restarted on the same port and the relay resumes (the nodes
//! reconnect with backoff).

use std::collections::HashMap;
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use wsconn_testkit::{build_examples, example, free_port, root, LoggedServer, ReadError, WsClient, OP_TEXT};

/// Starts redis-server on 127.0.0.1:port, without persistence, and waits
/// until it accepts connections.
fn start_redis(port: u16, tag: &str) -> LoggedServer {
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    let log = root()
        .join("target")
        .join("c-example-interop")
        .join(format!("{tag}.log"));
    let redis = LoggedServer::spawn("redis-server", cmd, log);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not start:\n{}",
            redis.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
    redis
}

/// Waits until `node`'s log has `count` lines equal to `line`.
fn wait_lines(node: &LoggedServer, line: &str, count: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while node.log().lines().filter(|l| *l == line).count() < count {
        assert!(
            Instant::now() < deadline,
            "{}: no {count} × {line:?} in time:\n{}",
            node.name,
            node.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads `n` text messages.
fn read_texts(client: &mut WsClient, n: usize, who: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    (0..n)
        .map(|i| {
            let frame = client
                .read_frame(deadline)
                .unwrap_or_else(|e| panic!("{who}: message {i} of {n}: {e:?}"));
            assert_eq!(frame.opcode, OP_TEXT, "{who}");
            String::from_utf8(frame.payload).unwrap()
        })
        .collect()
}

/// Nothing more arrives for a while.
fn assert_quiet(client: &mut WsClient, who: &str) {
    match client.read_frame(Instant::now() + Duration::from_millis(300)) {
        Err(ReadError::Timeout) => {}
        other => panic!("{who}: expected nothing, got {other:?}"),
    }
}

/// Each sender's messages ("SENDER:SEQ") arrived exactly once each, in order.
fn assert_per_sender(texts: &[String], senders: &[(&str, usize)], who: &str) {
    let mut next: HashMap<&str, usize> = senders.iter().map(|(s, _)| (*s, 0)).collect();
    for text in texts {
        let (sender, seq) = text.rsplit_once(':').unwrap_or_else(|| panic!("{who}: {text:?}"));
        let expected = next
            .get_mut(sender)
            .unwrap_or_else(|| panic!("{who}: unexpected {text:?}"));
        assert_eq!(
            seq.parse::<usize>().unwrap(),
            *expected,
            "{who}: {text:?} out of order or twice"
        );
        *expected += 1;
    }
    for (sender, count) in senders {
        assert_eq!(next[sender], *count, "{who}: messages of {sender}");
    }
}

/// Every member of `clients` sends `per_sender` messages tagged `prefix+name`,
/// interleaved.
fn send_round(clients: &mut [(&str, &mut WsClient)], prefix: &str, per_sender: usize) {
    for seq in 0..per_sender {
        for (name, client) in clients.iter_mut() {
            client.send_text(&format!("{prefix}{name}:{seq}")).unwrap();
        }
    }
}

#[test]
fn two_nodes_relay_through_redis_and_survive_its_restart() {
    build_examples();
    let redis_port = free_port();
    let mut redis = start_redis(redis_port, "chat-redis-1");
    let redis_arg = format!("127.0.0.1:{redis_port}");
    let binary = example("chat_server");
    let mut a = LoggedServer::start(
        &binary,
        &["-t", "2", "-v", "--redis", &redis_arg, "0"],
        &[],
        "chat-node-a",
    );
    let mut b = LoggedServer::start(&binary, &["-v", "--redis", &redis_arg, "0"], &[], "chat-node-b");
    let (port_a, port_b) = (a.wait_for_port(), b.wait_for_port());
    wait_lines(&a, "redis subscribed", 1, Duration::from_secs(10));
    wait_lines(&b, "redis subscribed", 1, Duration::from_secs(10));

    // Two members on node A (likely on both threads), one on B; one elsewhere.
    let mut a1 = WsClient::open(port_a, "/room/lobby");
    let mut a2 = WsClient::open(port_a, "/room/lobby");
    let mut b1 = WsClient::open(port_b, "/room/lobby?from=b");
    let mut other = WsClient::open(port_b, "/room/other");
    thread::sleep(Duration::from_millis(100)); // every member joined

    const N: usize = 30;
    send_round(&mut [("a1", &mut a1), ("a2", &mut a2), ("b1", &mut b1)], "", N);
    let everyone = [("a1", N), ("a2", N), ("b1", N)];
    for (who, client) in [("a1", &mut a1), ("a2", &mut a2), ("b1", &mut b1)] {
        let texts = read_texts(client, 3 * N, who);
        assert_per_sender(&texts, &everyone, who);
        assert_quiet(client, who);
    }
    assert_quiet(&mut other, "other room");

    // Redis goes away: local rooms keep working, nothing crosses nodes.
    drop(redis);
    wait_lines(&a, "redis down", 1, Duration::from_secs(10));
    wait_lines(&b, "redis down", 1, Duration::from_secs(10));
    send_round(&mut [("a1", &mut a1), ("b1", &mut b1)], "down-", 5);
    for (who, client) in [("a1", &mut a1), ("a2", &mut a2)] {
        assert_per_sender(&read_texts(client, 5, who), &[("down-a1", 5)], who);
    }
    assert_per_sender(&read_texts(&mut b1, 5, "b1"), &[("down-b1", 5)], "b1");
    for (who, client) in [("a1", &mut a1), ("a2", &mut a2), ("b1", &mut b1)] {
        assert_quiet(client, who);
    }

    // Back on the same port: both nodes reconnect and the relay resumes.
    redis = start_redis(redis_port, "chat-redis-2");
    wait_lines(&a, "redis subscribed", 2, Duration::from_secs(15));
    wait_lines(&b, "redis subscribed", 2, Duration::from_secs(15));
    send_round(&mut [("a2", &mut a2), ("b1", &mut b1)], "up-", 10);
    let resumed = [("up-a2", 10), ("up-b1", 10)];
    for (who, client) in [("a1", &mut a1), ("a2", &mut a2), ("b1", &mut b1)] {
        assert_per_sender(&read_texts(client, 20, who), &resumed, who);
        assert_quiet(client, who);
    }
    assert_quiet(&mut other, "other room");
    a.assert_running("after the relay resumed");
    b.assert_running("after the relay resumed");
    drop(redis);
}

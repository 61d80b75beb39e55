//! A real haproxy (Debian's) in front of `echo_server --proxy-protocol
//! --max-conns-per-ip 1 -v`, once with `send-proxy` (PROXY protocol v1) and
//! once with `send-proxy-v2`: every connection reaches the server from
//! haproxy's address, yet the server sees each client's own address and
//! port (its log at the handshake), and the per-address limit counts
//! clients, not haproxy: clients from 127.0.0.2 and 127.0.0.3 both get in
//! while a second one from 127.0.0.2 is refused; once the first ones leave,
//! their places come back (the v2 round reuses both addresses).
//!
//! The same over TLS: haproxy passing `wss://` through (`send-proxy-v2`) to
//! `echo_server --proxy-protocol --tls-cert ...`, which reads the header
//! before TLS; the C client's echo comes back. haproxy connects from
//! 127.0.0.9 (`source`), so an address the server logs is never the
//! socket's own.
//!
//! haproxy runs in the foreground (`-db`) with a configuration written to a
//! temporary directory; nothing under /etc is read. Without haproxy the test
//! fails and says what to install.

mod certs;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use wsconn_testkit::{
    build_examples, client_frame, example, find_on_path, free_port, root, run, upgrade_request, LoggedServer, RESPONSE,
};

fn haproxy_binary() -> PathBuf {
    find_on_path("haproxy")
        .or_else(|| Some(PathBuf::from("/usr/sbin/haproxy")).filter(|p| p.is_file()))
        .unwrap_or_else(|| panic!("haproxy not found (PATH, /usr/sbin): on Debian, apt-get install haproxy"))
}

/// haproxy with one TCP frontend per PROXY protocol version to `upstream`,
/// and one with v2 to `tls_upstream`; returns it and the frontends' ports.
fn start_haproxy(upstream: u16, tls_upstream: u16) -> (LoggedServer, [u16; 3]) {
    let (v1, v2, v2_tls) = (free_port(), free_port(), free_port());
    let dir = root()
        .join("target")
        .join("haproxy-test")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "global\n    maxconn 200\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\
         listen proxy_v1\n    bind 127.0.0.1:{v1}\n    server echo 127.0.0.1:{upstream} send-proxy {SOURCE}\n\
         listen proxy_v2\n    bind 127.0.0.1:{v2}\n    server echo 127.0.0.1:{upstream} send-proxy-v2 {SOURCE}\n\
         listen proxy_v2_tls\n    bind 127.0.0.1:{v2_tls}\n    \
         server echo 127.0.0.1:{tls_upstream} send-proxy-v2 {SOURCE}\n"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(haproxy_binary());
    cmd.arg("-db").arg("-f").arg(&path);
    // Not probed: a probe would reach the server as a connection of its own.
    (
        LoggedServer::spawn("haproxy", cmd, dir.join("haproxy.log")),
        [v1, v2, v2_tls],
    )
}

/// haproxy's side of its connections to the servers.
const SOURCE: &str = "source 127.0.0.9";

/// A client from the loopback address `source`, through haproxy's `port`,
/// that sent its upgrade request (connecting again while haproxy starts).
fn client(haproxy: &mut LoggedServer, source: IpAddr, port: u16) -> TcpStream {
    let until = Instant::now() + Duration::from_secs(10);
    let socket = loop {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
        match socket.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into()) {
            Ok(()) => break socket,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && Instant::now() < until => {
                haproxy.assert_running("while starting");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("connect to haproxy's {port}: {e}\n{}", haproxy.log()),
        }
    };
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&upgrade_request("127.0.0.1", "/")).unwrap();
    s
}

/// The client got the 101 and an echo.
fn assert_echoes(s: &mut TcpStream, text: &[u8]) {
    let mut answer = vec![0; RESPONSE.len()];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(answer, RESPONSE);
    s.write_all(&client_frame(0x81, text)).unwrap();
    let mut echo = vec![0; 2 + text.len()];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(&echo[2..], text);
}

/// The client was closed without a byte of answer.
fn assert_refused(s: &mut TcpStream) {
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        got.is_empty(),
        "over the limit, yet answered: {:?}",
        String::from_utf8_lossy(&got)
    );
}

/// Waits until the server's log has `count` lines containing `needle`.
fn wait_log(server: &LoggedServer, needle: &str, count: usize) -> String {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log();
        if log.matches(needle).count() >= count {
            return log;
        }
        assert!(
            Instant::now() < until,
            "{count} × {needle:?} in the server's log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn haproxy_clients_are_seen_and_limited_by_their_own_address() {
    build_examples();
    let mut server = LoggedServer::start(
        &example("echo_server"),
        &["-v", "--proxy-protocol", "--max-conns-per-ip", "1", "0"],
        &[],
        "echo_server-haproxy",
    );
    let port = server.wait_for_port();
    let (tls_args, ca) = certs::echo_server_tls_args("haproxy", &["127.0.0.1"]);
    let mut tls_server_args = vec!["-v", "--proxy-protocol"];
    tls_server_args.extend(tls_args.iter().map(String::as_str));
    let mut tls_server = LoggedServer::start(
        &example("echo_server"),
        &tls_server_args,
        &[],
        "echo_server-haproxy-tls",
    );
    let tls_port = tls_server.wait_for_port();
    let (mut haproxy, [v1, v2, v2_tls]) = start_haproxy(port, tls_port);
    let (a, b): (IpAddr, IpAddr) = ([127, 0, 0, 2].into(), [127, 0, 0, 3].into());

    let mut handshakes = 0;
    for (version, front) in [("v1", v1), ("v2", v2)] {
        let mut first = client(&mut haproxy, a, front);
        assert_echoes(&mut first, format!("{version} from {a}").as_bytes());
        let mut other = client(&mut haproxy, b, front);
        assert_echoes(&mut other, format!("{version} from {b}").as_bytes());
        handshakes += 2;
        let log = wait_log(&server, "complete handshake", handshakes);
        for s in [&first, &other] {
            let me = s.local_addr().unwrap();
            let line = format!("complete handshake, peer {} port {}", me.ip(), me.port());
            assert!(
                log.contains(&line),
                "{version}: the server saw {me}: {line:?} in\n{log}"
            );
        }
        let mut second = client(&mut haproxy, a, front);
        assert_refused(&mut second);
        haproxy.assert_running(version);
        // The first ones leave: their places come back for the next round.
        drop((first, other));
        wait_log(&server, "] close\n", handshakes);
    }
    // Places given back were taken again (the v2 round reused both
    // addresses); the refused never reached the program.
    let log = server.log();
    assert_eq!(log.matches("complete handshake").count(), 4, "{log}");
    assert_eq!(log.matches("] connected").count(), 4, "{log}");
    assert!(!log.contains("127.0.0.9"), "haproxy's own address: {log}");

    // TLS behind haproxy: the header first, then the TLS handshake.
    let mut client = Command::new(example("client"));
    client.args(["--ca", &ca, &format!("wss://127.0.0.1:{v2_tls}/"), "through haproxy"]);
    let done = run(client, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    assert!(done.status.success(), "{}\n{}", done.report(), tls_server.log());
    assert_eq!(done.stdout.trim(), "through haproxy", "{}", done.report());
    let log = wait_log(&tls_server, "complete handshake, peer 127.0.0.1 port", 1);
    assert!(!log.contains("127.0.0.9"), "haproxy's own address: {log}");
    tls_server.terminate();
    server.terminate();
}

//! Operating the example servers, as an operator would:
//!
//! - SIGTERM with 200 clients open on `echo_server` (ASan build): each gets
//!   1001 and its closing handshake completes, one client that never answers
//!   is cut at the deadline, and the server exits 0 within it, with no
//!   sanitizer report;
//! - a restart on an inherited socket (systemd's LISTEN_FDS protocol, fd 3,
//!   shared by two reactors) while 8 clients connect and echo in a loop for
//!   6 s: the new process
//!   starts on the same socket, the old one gets SIGTERM, twice over; no
//!   connection is refused or reset, and clients that get 1001 reconnect;
//! - `GET /metrics` of `echo_server -t 2` (summed over its reactors) passes
//!   `promtool check metrics`, and a real Prometheus on 127.0.0.1 scrapes it
//!   every second (its API answers `up` and a counter); the same server,
//!   with `-v`, under a flood of bad handshakes: its log stays within its
//!   rate, the rest told in "suppressed" lines that add up;
//! - `chat_server` started by `systemd-socket-activate` (the socket as fd
//!   3): its /metrics passes promtool, SIGINT drains it and a second SIGINT
//!   cuts a client that never answers at once.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use wsconn_testkit::{
    build_asan_examples, build_examples, example, example_command, free_port, http_request, root, sanitizer_env,
    wait_closed, KilledOnDrop, OpenError, ReadError, WatchedProcess, WsClient, OP_CLOSE, OP_TEXT,
};

const WAIT: Duration = Duration::from_secs(10);

fn deadline() -> Instant {
    Instant::now() + WAIT
}

/// The close code of the next close frame (other frames skipped).
fn next_close(c: &mut WsClient, until: Instant) -> Result<u16, ReadError> {
    loop {
        let f = c.read_frame(until)?;
        if f.opcode == OP_CLOSE {
            return Ok(u16::from_be_bytes([f.payload[0], f.payload[1]]));
        }
    }
}

/// GET `path` from 127.0.0.1:port: its body (status 200 required).
fn get(port: u16, path: &str) -> String {
    let r = http_request(port, &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(r.status, 200, "GET {path}: {}", String::from_utf8_lossy(&r.body));
    String::from_utf8(r.body).unwrap()
}

/// The value of the series `series` (name and labels) in a metrics text.
fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until `series` reads `want` in the server's /metrics; returns the text.
fn metrics_until(port: u16, series: &str, want: u64) -> String {
    let end = deadline();
    loop {
        let text = get(port, "/metrics");
        if metric(&text, series) == Some(want) {
            return text;
        }
        assert!(Instant::now() < end, "{series} never read {want}:\n{text}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// `promtool check metrics` on `text`: no problem, no lint warning.
fn promtool_passes(text: &str, what: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (tests/deps.sh)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics on {what}: {}\n{said}\n{text}",
        out.status
    );
}

// ------------------------------------------------------------------ drain

#[test]
fn sigterm_closes_200_clients_with_1001_and_cuts_a_silent_one_at_the_deadline() {
    build_asan_examples();
    let drain = Duration::from_millis(1500);
    let mut cmd = example_command(&example("echo_server_asan"));
    cmd.args(["--drain-ms", "1500", "0"]);
    sanitizer_env(&mut cmd);
    let mut server = WatchedProcess::spawn("echo_server_asan", cmd);
    let port = server.port();
    let mut clients: Vec<WsClient> = (0..200).map(|_| WsClient::open(port, "/echo")).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send_text(&format!("m{i}")).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let f = c.read_frame(deadline()).unwrap();
        assert_eq!((f.opcode, f.payload), (OP_TEXT, format!("m{i}").into_bytes()));
    }
    let mut silent = WsClient::open(port, "/echo");
    metrics_until(port, "wsconn_connections_open", 201);

    let start = Instant::now();
    server.signal("TERM");
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(next_close(c, deadline()).unwrap(), 1001, "client {i}");
        c.send_close(1001).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        wait_closed(&mut c.stream, deadline()).unwrap_or_else(|e| panic!("client {i}: {e}"));
    }
    let answered = start.elapsed();
    assert!(answered < drain, "the closing handshakes took {answered:?}");
    // No one new is taken meanwhile.
    assert!(
        WsClient::try_open(port, "/").is_err(),
        "a connection accepted while draining"
    );

    assert_eq!(next_close(&mut silent, deadline()).unwrap(), 1001);
    let (cut, _) = wait_closed(&mut silent.stream, deadline()).unwrap();
    let cut = cut - start;
    assert!(
        cut >= drain - Duration::from_millis(100),
        "the silent client was cut after {cut:?}, before the deadline"
    );
    let status = server.wait_exit(WAIT);
    let exited = start.elapsed();
    server.assert_clean_exit(status);
    assert!(exited < drain + Duration::from_secs(3), "exited after {exited:?}");
    assert!(
        server
            .lines()
            .iter()
            .any(|l| l == "echo_server: thread 0 drained, 1 cut"),
        "{}",
        server.log()
    );
}

// ------------------------------------------------------------------ restart

/// `echo_server` on `listener`, handed over the way systemd does: as fd 3,
/// with LISTEN_FDS=1 and LISTEN_PID its own pid.
fn echo_server_on(listener: &TcpListener) -> WatchedProcess {
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" "$@""#)
        .arg(example("echo_server"))
        .args(["-t", "2", "--drain-ms", "3000", "0"])
        .env_remove("LD_LIBRARY_PATH");
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let ok = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(fd, 3) == 3
            };
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    WatchedProcess::spawn("echo_server", cmd)
}

/// What the looping clients saw.
#[derive(Default)]
struct Tally {
    echoes: u64,
    /// 1001s received, each answered, then a new connection.
    reconnects: u64,
    /// Handshakes answered 503 (in flight when a process began to drain).
    refused_503: u64,
    errors: Vec<String>,
}

/// Connects, echoes in a loop, reconnects after a 1001, until `stop`.
fn looping_client(id: usize, port: u16, stop: &AtomicBool, tally: &Mutex<Tally>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut c = match WsClient::try_open(port, "/echo") {
            Ok(c) => c,
            Err(OpenError::Refused(head)) if head.starts_with("HTTP/1.1 503 ") => {
                tally.lock().unwrap().refused_503 += 1;
                continue;
            }
            Err(e) => {
                tally.lock().unwrap().errors.push(format!("client {id}: {e}"));
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                c.send_close(1000).unwrap();
                if next_close(&mut c, deadline()).is_err() {
                    tally
                        .lock()
                        .unwrap()
                        .errors
                        .push(format!("client {id}: no close at the end"));
                }
                return;
            }
            n += 1;
            let text = format!("{id}-{n}");
            if let Err(e) = c.send_text(&text) {
                tally.lock().unwrap().errors.push(format!("client {id}: send: {e}"));
                break;
            }
            match c.read_frame(deadline()) {
                Ok(f) if f.opcode == OP_TEXT && f.payload == text.as_bytes() => tally.lock().unwrap().echoes += 1,
                Ok(f) if f.opcode == OP_CLOSE && f.payload.starts_with(&1001u16.to_be_bytes()) => {
                    let _ = c.send_close(1001);
                    match wait_closed(&mut c.stream, deadline()) {
                        Ok(_) => tally.lock().unwrap().reconnects += 1,
                        Err(e) => tally
                            .lock()
                            .unwrap()
                            .errors
                            .push(format!("client {id}: after 1001: {e}")),
                    }
                    break;
                }
                Ok(f) => {
                    tally
                        .lock()
                        .unwrap()
                        .errors
                        .push(format!("client {id}: unexpected {f:?}"));
                    break;
                }
                Err(e) => {
                    tally.lock().unwrap().errors.push(format!("client {id}: read: {e:?}"));
                    break;
                }
            }
        }
    }
}

#[test]
fn a_restart_on_the_inherited_socket_refuses_and_resets_no_one() {
    build_examples();
    // The socket, held by the test (a service manager's part) all along.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut current = echo_server_on(&listener);
    let line = current.wait_line(WAIT, |l| l.contains("listening on"));
    assert!(line.contains("(socket handed over)"), "{line}");
    assert_eq!(current.port(), port);

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let clients: Vec<_> = (0..8)
        .map(|id| {
            let (stop, tally) = (Arc::clone(&stop), Arc::clone(&tally));
            thread::spawn(move || looping_client(id, port, &stop, &tally))
        })
        .collect();
    let start = Instant::now();
    let mut reconnects = Vec::new();
    for restart_at in [Duration::from_millis(1500), Duration::from_millis(3500)] {
        thread::sleep(restart_at.saturating_sub(start.elapsed()));
        let next = echo_server_on(&listener);
        next.wait_line(WAIT, |l| l.contains("listening on"));
        let before = tally.lock().unwrap().reconnects;
        current.signal("TERM");
        let status = current.wait_exit(WAIT);
        current.assert_clean_exit(status);
        for thread in 0..2 {
            let line = format!("echo_server: thread {thread} drained, 0 cut");
            assert!(current.lines().contains(&line), "{}", current.log());
        }
        reconnects.push(tally.lock().unwrap().reconnects - before);
        current = next;
    }
    thread::sleep(Duration::from_secs(6).saturating_sub(start.elapsed()));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let status = current.terminate();
    current.assert_clean_exit(status);

    let tally = tally.lock().unwrap();
    assert!(tally.errors.is_empty(), "refused, reset or broken: {:#?}", tally.errors);
    // Every client was on the old process at each restart, got its 1001 and
    // came back (to the new one: the old one stopped accepting).
    for (i, n) in reconnects.iter().enumerate() {
        assert_eq!(*n, 8, "reconnects at restart {i}");
    }
    assert!(tally.echoes > 100, "{} echoes", tally.echoes);
    println!(
        "restarts: {} echoes, reconnects {reconnects:?}, handshakes answered 503 while draining: {}",
        tally.echoes, tally.refused_503
    );
}

// ------------------------------------------------------------------ metrics

/// A Prometheus server on 127.0.0.1 scraping `target` every second.
struct Prometheus {
    _child: KilledOnDrop,
    port: u16,
    dir: PathBuf,
}

impl Prometheus {
    fn start(target: u16) -> Prometheus {
        let dir = root()
            .join("target")
            .join(format!("operations-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
                 - job_name: echo_server\n    metrics_path: /metrics\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus is installed (tests/deps.sh)");
        Prometheus {
            _child: KilledOnDrop(child),
            port,
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// The value of an instant query with one result, once it has one.
    fn query(&self, query: &str, until: Instant) -> String {
        let encoded: String = query
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let request =
            format!("GET /api/v1/query?query={encoded} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let mut last = String::new();
        loop {
            if let Ok(r) = http_request(self.port, &request) {
                last = String::from_utf8_lossy(&r.body).into_owned();
                // {"status":"success","data":{"resultType":"vector","result":[{"metric":{…},"value":[T,"V"]}]}}
                if let Some(value) = last.split("\"value\":[").nth(1).and_then(|v| v.split('"').nth(1)) {
                    return value.to_owned();
                }
            }
            assert!(
                Instant::now() < until,
                "no answer to {query}: {last}\n--- prometheus ---\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn metrics_pass_promtool_prometheus_scrapes_them_and_the_log_keeps_its_rate() {
    build_examples();
    let mut server = WatchedProcess::spawn("echo_server", {
        let mut cmd = example_command(&example("echo_server"));
        cmd.args(["-v", "-t", "2", "0"]);
        cmd
    });
    let port = server.port();
    let prometheus = Prometheus::start(port);

    // A flood of bad handshakes, spread over both reactors.
    let flood = 300u64;
    let started = Instant::now();
    for _ in 0..flood {
        let r = http_request(port, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n").unwrap();
        assert_eq!(r.status, 400);
    }
    let seconds = started.elapsed().as_secs() + 1;
    // Their summaries come once each second with suppressed lines is over.
    let told = |server: &WatchedProcess| {
        let stderr = server.stderr();
        let lines: Vec<String> = stderr
            .lines()
            .filter(|l| l.contains(" WARN handshake_refused"))
            .map(str::to_owned)
            .collect();
        let suppressed: u64 = lines
            .iter()
            .filter_map(|l| l.split(": suppressed ").nth(1)?.split(' ').next()?.parse::<u64>().ok())
            .sum();
        let each = lines.iter().filter(|l| !l.contains(": suppressed ")).count() as u64;
        (each, suppressed)
    };
    let end = deadline();
    while {
        let (each, suppressed) = told(&server);
        each + suppressed < flood
    } {
        assert!(Instant::now() < end, "summaries missing:\n{}", server.stderr());
        thread::sleep(Duration::from_millis(50));
    }
    let (each, suppressed) = told(&server);
    assert_eq!(
        each + suppressed,
        flood,
        "every refusal told or counted:\n{}",
        server.stderr()
    );
    // At most 10 lines a second per reactor (two reactors).
    assert!(each <= 2 * 10 * seconds, "{each} lines in {seconds} s");
    assert!(suppressed > 0);

    // Ten clients, on both reactors: the sum shows all of them.
    let mut clients: Vec<WsClient> = (0..10).map(|_| WsClient::open(port, "/echo")).collect();
    for c in &mut clients {
        c.send_text("x").unwrap();
        assert_eq!(c.read_frame(deadline()).unwrap().payload, b"x");
    }
    let text = metrics_until(port, "wsconn_connections_open", 10);
    assert_eq!(
        metric(&text, "wsconn_handshakes_refused_total{reason=\"bad_request\"}"),
        Some(flood)
    );
    assert_eq!(metric(&text, "wsconn_log_suppressed_total"), Some(suppressed));
    assert!(metric(&text, "process_resident_memory_bytes").is_some_and(|v| v > 1 << 20));
    assert!(metric(&text, "process_open_fds").is_some_and(|v| v >= 10));
    promtool_passes(&text, "echo_server -t 2");

    // Prometheus scrapes it: the target is up, and a counter has its value.
    let until = Instant::now() + Duration::from_secs(30);
    assert_eq!(prometheus.query("up", until), "1");
    assert_eq!(prometheus.query("wsconn_connections_open", until), "10");
    assert_eq!(
        prometheus.query("wsconn_handshakes_refused_total{reason=\"bad_request\"}", until),
        flood.to_string()
    );

    for mut c in clients {
        c.send_close(1000).unwrap();
    }
    let status = server.terminate();
    server.assert_clean_exit(status);
}

// ------------------------------------------------------------------ chat_server

#[test]
fn chat_server_under_systemd_socket_activation_drains_and_a_second_signal_cuts() {
    build_examples();
    let port = free_port();
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg(example("chat_server"))
        .args(["--drain-ms", "20000", "-v"])
        .env_remove("LD_LIBRARY_PATH");
    let mut server = WatchedProcess::spawn("chat_server", cmd);
    // The tool listens, and starts the program at the first connection.
    let end = deadline();
    while !server.stderr().contains("Listening on") {
        server.assert_running("before listening");
        assert!(Instant::now() < end, "{}", server.log());
        thread::sleep(Duration::from_millis(20));
    }
    let text = get(port, "/metrics");
    let line = server.wait_line(WAIT, |l| l.contains("listening on"));
    assert!(line.contains("(socket handed over)"), "{line}");
    promtool_passes(&text, "chat_server");

    let mut members: Vec<WsClient> = (0..3).map(|_| WsClient::open(port, "/room/ops")).collect();
    members[0].send_text("hello").unwrap();
    for m in &mut members {
        assert_eq!(m.read_frame(deadline()).unwrap().payload, b"hello");
    }
    let silent = members.pop().unwrap();
    let start = Instant::now();
    server.signal("INT");
    let mut codes = HashMap::new();
    for mut m in members {
        let code = next_close(&mut m, deadline()).unwrap();
        *codes.entry(code).or_insert(0) += 1;
        m.send_close(1001).unwrap();
        wait_closed(&mut m.stream, deadline()).unwrap();
    }
    assert_eq!(codes, HashMap::from([(1001, 2)]));
    // The silent member keeps the drain going (its deadline is 20 s away);
    // a second signal cuts it at once.
    thread::sleep(Duration::from_millis(200));
    server.assert_running("with a member left");
    server.signal("INT");
    let status = server.wait_exit(WAIT);
    server.assert_clean_exit(status);
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    assert!(
        server
            .lines()
            .iter()
            .any(|l| l == "chat_server: thread 0 drained, 1 cut"),
        "{}",
        server.log()
    );
    assert!(server.stderr().contains("WARN drain_cut"), "{}", server.stderr());
    drop(silent);
}

//! Hostile clients against `c-examples/echo_server` (the reactor API):
//!
//! 1. slowloris: 1,000 half-open handshakes while a normal client echoes;
//!    the handshake timeout closes all of them (run on
//!    `tests/hostile/hostile_server`, which has a 1 s handshake timeout:
//!    echo_server has no option for it and its 10 s default is too slow);
//! 2. request heads over the 8 KiB cap: 431 (or 400) and close;
//! 3. frame headers claiming 2^63-1 bytes or 1 GiB: close 1009 at once, no
//!    large allocation (VmHWM) over 100 connections;
//! 4. a ping flood (200,000 pings of 8 and of 125 bytes) from a client that
//!    does not read, then reads;
//! 5. 10,000 concurrent connections on one reactor (VmRSS per connection);
//! 6. a client that stops reading its echoes (backpressure, bounded VmRSS,
//!    every echo in order afterwards);
//! 7. TCP resets (and plain FINs) mid-frame, mid-handshake, right after the
//!    handshake and with output pending, one at a time and in a burst while
//!    the server is stopped (SIGSTOP: the last bytes and the FIN/RST then
//!    arrive in one readiness event);
//! 8. garbage before the handshake: an HTTP error and close.
//!
//! After each case the server must be alive, serve a new client with prompt
//! echoes, and have closed the sockets of the hostile clients (its open fd
//! count returns to where it was). Memory figures come from
//! /proc/PID/status (VmRSS, VmHWM) and are printed (`--nocapture`).
//!
//! The cases run one at a time (a lock): they measure the server's memory and
//! latency, which a concurrent case on 2 cores would blur. std only; the few
//! libc calls std lacks (setrlimit, SO_LINGER) are declared below.
#![cfg(all(target_os = "linux", target_pointer_width = "64"))]

use std::ffi::{c_int, c_void};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use wsconn_testkit::{
    build_examples, client_frame, example, example_command, header, make_once, root, upgrade_request, wait_closed,
    Frame, ReadError, WatchedProcess, WsClient, FIN, MASK, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT,
};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------
// The libc calls std does not offer (Linux values; rlim_t is 64-bit here).

#[repr(C)]
struct RLimit {
    cur: u64,
    max: u64,
}

#[repr(C)]
struct Linger {
    onoff: c_int,
    linger: c_int,
}

const RLIMIT_NOFILE: c_int = 7;
const SOL_SOCKET: c_int = 1;
const SO_LINGER: c_int = 13;

extern "C" {
    fn getrlimit(resource: c_int, rlim: *mut RLimit) -> c_int;
    fn setrlimit(resource: c_int, rlim: *const RLimit) -> c_int;
    fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: u32) -> c_int;
}

/// Raises this process's soft RLIMIT_NOFILE to at least `needed` (up to the
/// hard limit); fails with what to do if the hard limit is too low.
fn raise_nofile(needed: u64) -> u64 {
    let mut lim = RLimit { cur: 0, max: 0 };
    // SAFETY: a valid pointer to a struct with the kernel's layout (two rlim_t).
    assert_eq!(
        unsafe { getrlimit(RLIMIT_NOFILE, &mut lim) },
        0,
        "getrlimit(RLIMIT_NOFILE)"
    );
    assert!(
        lim.max >= needed,
        "this test needs {needed} open files but the hard RLIMIT_NOFILE is {}: \
         raise it (e.g. `ulimit -Hn 20000` as root, or LimitNOFILE= in the CI runner)",
        lim.max
    );
    if lim.cur < needed {
        let new = RLimit {
            cur: needed.max(lim.cur),
            max: lim.max,
        };
        // SAFETY: as above.
        let rc = unsafe { setrlimit(RLIMIT_NOFILE, &new) };
        assert_eq!(
            rc,
            0,
            "setrlimit(RLIMIT_NOFILE, {needed}): {}",
            io::Error::last_os_error()
        );
    }
    lim.max
}

/// Closes `stream` with a TCP reset (SO_LINGER on, timeout 0).
fn reset(stream: TcpStream) {
    let linger = Linger { onoff: 1, linger: 0 };
    // SAFETY: a live socket and a correctly sized struct linger.
    let rc = unsafe {
        setsockopt(
            stream.as_raw_fd(),
            SOL_SOCKET,
            SO_LINGER,
            (&linger as *const Linger).cast(),
            std::mem::size_of::<Linger>() as u32,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER): {}", io::Error::last_os_error());
    drop(stream);
}

// ---------------------------------------------------------------------------
// Harness: one case at a time, the builds, the server process.

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds c-examples/ and tests/hostile/ (once per test process).
fn build() {
    build_examples();
    make_once("tests/hostile", &[]);
}

/// Memory of a process, from /proc/PID/status.
#[derive(Debug, Clone, Copy)]
struct Mem {
    rss_kib: u64,
    hwm_kib: u64,
}

/// What these cases read of a server besides its output: its memory and
/// open files from /proc, and a clean exit.
trait Measured {
    fn mem(&self) -> Mem;
    /// The number of open file descriptors of the server.
    fn fds(&self) -> usize;
    /// Waits until the server has at most `max` fds open (the hostile
    /// connections are closed); panics with the count otherwise.
    fn wait_fds_at_most(&mut self, max: usize, timeout: Duration, what: &str);
    /// SIGTERM, then requires exit status 0.
    fn stop(&mut self);
}

impl Measured for WatchedProcess {
    fn mem(&self) -> Mem {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}\n{}", self.log()));
        let field = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {path}"))
        };
        Mem {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        }
    }

    fn fds(&self) -> usize {
        let path = format!("/proc/{}/fd", self.pid());
        std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("read {path}: {e}\n{}", self.log()))
            .count()
    }

    fn wait_fds_at_most(&mut self, max: usize, timeout: Duration, what: &str) {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.fds();
            if n <= max {
                return;
            }
            self.assert_running(what);
            assert!(
                Instant::now() < deadline,
                "{what}: the server still has {n} fds open after {timeout:?} (expected at most {max}): \
                 connections not closed (or leaked)\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        let status = self.terminate();
        assert!(status.success(), "{} exited with {status}\n{}", self.name, self.log());
    }
}

fn echo_server_path() -> PathBuf {
    example("echo_server")
}

/// c-examples/echo_server on a free port; with `nofile`, started through
/// `sh -c 'ulimit -n N && exec ...'` (echo_server does not raise its own
/// limit).
fn start_echo_server(nofile: Option<u64>) -> (WatchedProcess, u16) {
    build();
    let binary = echo_server_path();
    let cmd = match nofile {
        None => {
            let mut cmd = example_command(&binary);
            cmd.arg("0");
            cmd
        }
        Some(n) => {
            let mut cmd = Command::new("sh");
            cmd.env_remove("LD_LIBRARY_PATH")
                .arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(&binary)
                .arg("0");
            cmd
        }
    };
    let server = WatchedProcess::spawn("echo_server", cmd);
    let port = server.port();
    (server, port)
}

/// tests/hostile/hostile_server with a handshake timeout.
fn start_hostile_server(handshake_ms: u32) -> (WatchedProcess, u16) {
    build();
    let binary = root().join("tests").join("hostile").join("hostile_server");
    let mut cmd = Command::new(binary);
    cmd.arg("0").arg(handshake_ms.to_string());
    let server = WatchedProcess::spawn("hostile_server", cmd);
    let port = server.port();
    (server, port)
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn tcp(port: u16) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr(port), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    s.set_nodelay(true).unwrap();
    s
}

/// Sends `text`, reads frames until its echo (pongs are skipped) and returns
/// the round-trip time. Panics if the echo is wrong or takes over `limit`.
fn echo_once(client: &mut WsClient, text: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    client.send_text(text).unwrap_or_else(|e| panic!("send {text:?}: {e}"));
    let deadline = start + limit;
    loop {
        match client.read_frame(deadline) {
            Ok(Frame { opcode: OP_PONG, .. }) => continue,
            Ok(f) => {
                assert_eq!(
                    (f.fin, f.opcode, f.payload.as_slice()),
                    (true, OP_TEXT, text.as_bytes()),
                    "wrong echo of {text:?}"
                );
                return start.elapsed();
            }
            Err(e) => panic!("echo of {text:?}: {e:?} within {limit:?}"),
        }
    }
}

/// Reads the close frame the server sends and its code, then the EOF.
fn expect_close(client: &mut WsClient, within: Duration) -> (u16, Duration) {
    let start = Instant::now();
    let deadline = start + within;
    let frame = match client.read_frame(deadline) {
        Ok(f) if f.opcode == OP_CLOSE => f,
        Ok(f) => panic!(
            "expected a close frame, got opcode {} ({} bytes)",
            f.opcode,
            f.payload.len()
        ),
        Err(e) => panic!("no close frame within {within:?}: {e:?}"),
    };
    let took = start.elapsed();
    assert!(
        frame.payload.len() >= 2,
        "close frame without a code: {:?}",
        frame.payload
    );
    let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
    wait_closed(&mut client.stream, deadline + Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("the server did not close TCP after its close frame {code}: {e}"));
    (code, took)
}

/// The server is alive and a new client gets 20 prompt echoes, then a clean
/// close.
fn assert_healthy(server: &mut WatchedProcess, port: u16, when: &str) {
    server.assert_running(when);
    let mut client = WsClient::connect(port);
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        worst = worst.max(echo_once(
            &mut client,
            &format!("health {i} {when}"),
            Duration::from_millis(500),
        ));
    }
    client.send_close(1000).expect("send close");
    let (code, _) = expect_close(&mut client, Duration::from_secs(2));
    assert_eq!(code, 1000, "{when}: close reply");
    server.assert_running(when);
    println!("healthy {when}: 20 echoes, worst {worst:?}");
}

/// How a raw exchange ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Eof,
    Reset,
    Timeout,
}

/// Writes `request` (write errors end the writing: the server closed), then
/// reads until the server closes or `within` passes.
fn raw_exchange(port: u16, request: &[u8], within: Duration) -> (Vec<u8>, End, Duration) {
    let mut s = tcp(port);
    let start = Instant::now();
    s.set_write_timeout(Some(within)).unwrap();
    let _ = s.write_all(request);
    read_until_end(&mut s, start + within, start)
}

fn read_until_end(s: &mut TcpStream, deadline: Instant, start: Instant) -> (Vec<u8>, End, Duration) {
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return (got, End::Timeout, start.elapsed());
        }
        s.set_read_timeout(Some(deadline - now)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (got, End::Eof, start.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => {
                return (got, End::Reset, start.elapsed())
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// The status code of an HTTP/1.1 response, if `raw` starts with one.
fn http_status(raw: &[u8]) -> Option<u16> {
    let rest = raw.strip_prefix(b"HTTP/1.1 ")?;
    std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
}

fn show(raw: &[u8]) -> String {
    let cut = &raw[..raw.len().min(300)];
    format!("{:?} ({} bytes)", String::from_utf8_lossy(cut), raw.len())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 32) as u8).collect()
    }
}

// ---------------------------------------------------------------------------
// 1. Slowloris.

#[test]
fn slowloris_half_open_handshakes_time_out_while_echoes_stay_prompt() {
    const HOLDERS: usize = 1000;
    const TIMEOUT_MS: u32 = 1000;
    let _serial = serial();
    raise_nofile(HOLDERS as u64 + 512);
    let (mut server, port) = start_hostile_server(TIMEOUT_MS);
    let mut normal = WsClient::connect(port);
    echo_once(&mut normal, "warm-up", Duration::from_secs(2));
    let fds_before = server.fds();

    let opening = Instant::now();
    let mut holders = Vec::with_capacity(HOLDERS);
    for i in 0..HOLDERS {
        let mut s = tcp(port);
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .unwrap_or_else(|e| panic!("slowloris {i}: write: {e}"));
        holders.push((s, Instant::now()));
        // Let the server run: a client connecting in a tight loop on
        // loopback can keep it off the CPU until its accept queue (backlog
        // 128) overflows, and each overflow costs a 1 s SYN retransmit.
        if i % 50 == 49 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    let opened_in = opening.elapsed();

    // A client arriving in the middle of it completes its handshake.
    let late_start = Instant::now();
    let mut late = WsClient::connect(port);
    let late_handshake = late_start.elapsed();
    assert!(
        late_handshake < Duration::from_millis(500),
        "a handshake during the slowloris took {late_handshake:?}"
    );

    // 100 echoes spread over ~1.5 s: they overlap the moment the handshake
    // timeout closes the 1,000.
    let mut latencies = Vec::with_capacity(100);
    for i in 0..100 {
        let client = if i % 2 == 0 { &mut normal } else { &mut late };
        latencies.push(echo_once(client, &format!("echo {i}"), Duration::from_millis(500)));
        thread::sleep(Duration::from_millis(15));
    }
    let worst = *latencies.iter().max().unwrap();
    let med = median(&mut latencies);
    println!(
        "slowloris: {HOLDERS} half-open connections opened in {opened_in:?}; late handshake {late_handshake:?}; \
         100 echoes: median {med:?}, worst {worst:?}"
    );
    assert!(
        med < Duration::from_millis(50),
        "median echo latency {med:?} during the slowloris"
    );

    // Every half-open connection is closed by the server: EOF (nothing sent),
    // about TIMEOUT_MS after it was opened.
    let mut sent_something = 0;
    for (i, (s, opened)) in holders.iter_mut().enumerate() {
        let deadline = *opened + Duration::from_millis(TIMEOUT_MS as u64) + Duration::from_secs(4);
        let (got, end, _) = read_until_end(s, deadline, *opened);
        assert!(
            end != End::Timeout,
            "slowloris connection {i} still open {:?} after it was opened (handshake timeout {TIMEOUT_MS} ms)",
            opened.elapsed()
        );
        if !got.is_empty() {
            sent_something += 1;
        }
    }
    let timed_out = |server: &WatchedProcess| {
        server.count_lines(|l| l.starts_with("close code=1006 established=0 reason=handshake timeout"))
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    while timed_out(&server) < HOLDERS && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        timed_out(&server),
        HOLDERS,
        "close callbacks with reason \"handshake timeout\"\n{}",
        server.log()
    );
    println!("slowloris: all {HOLDERS} closed by the handshake timeout ({sent_something} got bytes before the close)");
    drop(holders);
    // The two normal clients are still served.
    echo_once(&mut normal, "after the slowloris", Duration::from_millis(500));
    echo_once(&mut late, "after the slowloris", Duration::from_millis(500));
    server.wait_fds_at_most(fds_before + 1, Duration::from_secs(3), "after the slowloris");
    assert_healthy(&mut server, port, "after the slowloris");
    let errors = server.count_lines(|l| l.starts_with("error"));
    assert_eq!(errors, 0, "{}", server.log());
    server.stop();
}

// ---------------------------------------------------------------------------
// 2. Request heads over the size cap.

#[test]
fn oversized_request_heads_get_431_and_close() {
    let _serial = serial();
    let (mut server, port) = start_echo_server(None);
    let fds_before = server.fds();
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Sec-WebSocket-Version: 13\r\n";
    let big_value = "a".repeat(9 * 1024);
    let lines: String = (0..100)
        .map(|i| format!("X-Header-{i:03}: {}\r\n", "b".repeat(100 - 16)))
        .collect();
    assert_eq!(lines.len(), 100 * 100);
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        (
            "a 9 KiB header block",
            format!("GET / HTTP/1.1\r\nHost: x\r\n{upgrade}X-Big: {big_value}\r\n\r\n").into_bytes(),
            &[431, 400],
        ),
        (
            "a 9 KiB header block, unterminated",
            format!("GET / HTTP/1.1\r\nHost: x\r\n{upgrade}X-Big: {big_value}").into_bytes(),
            &[431, 400],
        ),
        (
            "100 header lines of 100 bytes",
            format!("GET / HTTP/1.1\r\nHost: x\r\n{upgrade}{lines}\r\n").into_bytes(),
            &[431, 400],
        ),
        (
            "a 10 KiB request line",
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n{upgrade}\r\n", "c".repeat(10 * 1024)).into_bytes(),
            &[431, 414, 400],
        ),
        (
            "a 10 KiB request line without a newline",
            format!("GET /{}", "c".repeat(10 * 1024)).into_bytes(),
            &[431, 414, 400],
        ),
    ];
    for (what, request, statuses) in &cases {
        let (got, end, took) = raw_exchange(port, request, Duration::from_secs(3));
        let status = http_status(&got);
        println!("{what}: {status:?}, then {end:?} after {took:?}");
        assert!(
            status.is_some_and(|s| statuses.contains(&s)),
            "{what}: expected HTTP {statuses:?}, got {} ({end:?} after {took:?})",
            show(&got)
        );
        assert!(
            end != End::Timeout,
            "{what}: the server answered {status:?} but did not close the connection"
        );
        assert!(
            took < Duration::from_secs(1),
            "{what}: answered and closed after {took:?}"
        );
    }

    // A client that streams 4 MiB of header bytes: the server answers (or
    // resets) and closes at once; the writer sees the connection end.
    let mut s = tcp(port);
    let start = Instant::now();
    s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut chunk = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ".to_vec();
    chunk.resize(64 * 1024, b'z');
    let mut written = 0usize;
    let write_error = loop {
        if written >= 4 * MIB as usize {
            break None;
        }
        match s.write(&chunk) {
            Ok(n) => written += n,
            Err(e) => break Some(e),
        }
        chunk.truncate(0);
        chunk.resize(64 * 1024, b'z');
    };
    let (got, end, took) = read_until_end(&mut s, start + Duration::from_secs(3), start);
    println!(
        "4 MiB header stream: {written} bytes written, write error {write_error:?}, response {:?}, {end:?} after {took:?}",
        http_status(&got)
    );
    assert!(
        end != End::Timeout,
        "4 MiB header stream: the server kept the connection open"
    );
    if !got.is_empty() {
        assert_eq!(http_status(&got), Some(431), "4 MiB header stream: {}", show(&got));
    }

    server.wait_fds_at_most(fds_before, Duration::from_secs(2), "after the oversized heads");
    assert_healthy(&mut server, port, "after the oversized heads");
    server.stop();
}

// ---------------------------------------------------------------------------
// 3. Frames claiming huge lengths.

#[test]
fn huge_frame_lengths_close_1009_at_once_without_allocating() {
    let _serial = serial();
    let (mut server, port) = start_echo_server(None);
    let fds_before = server.fds();

    for (what, len) in [
        ("2^63-1", i64::MAX as u64),
        ("1 GiB", 1 << 30),
        ("16 MiB + 1", 16 * MIB + 1),
    ] {
        for opcode in [OP_BINARY, OP_TEXT] {
            let mut c = WsClient::connect(port);
            c.stream.write_all(&header(FIN | opcode, len, Some(MASK))).unwrap();
            let (code, took) = expect_close(&mut c, Duration::from_secs(1));
            println!("frame of {what} (opcode {opcode}): close {code} after {took:?}");
            assert!(
                code == 1009 || (len > 1 << 62 && code == 1002),
                "frame claiming {what}: close {code}, expected 1009"
            );
        }
    }
    // A length with the most significant bit set is a protocol error.
    let mut c = WsClient::connect(port);
    c.stream
        .write_all(&header(FIN | OP_BINARY, 1 << 63, Some(MASK)))
        .unwrap();
    let (code, _) = expect_close(&mut c, Duration::from_secs(1));
    assert_eq!(code, 1002, "frame length with the MSB set");

    // 100 connections at once, half claiming 2^63-1 bytes, half 1 GiB.
    let before = server.mem();
    let mut clients: Vec<WsClient> = (0..100).map(|_| WsClient::connect(port)).collect();
    let after_handshakes = server.mem();
    let start = Instant::now();
    for (i, c) in clients.iter_mut().enumerate() {
        let len = if i % 2 == 0 { i64::MAX as u64 } else { 1 << 30 };
        c.stream.write_all(&header(FIN | OP_BINARY, len, Some(MASK))).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let (code, _) = expect_close(c, Duration::from_secs(2));
        assert_eq!(code, 1009, "connection {i}");
    }
    let took = start.elapsed();
    let after = server.mem();
    println!(
        "100 huge frame headers: all closed 1009 in {took:?}; VmRSS {:.1} -> {:.1} MiB \
         ({:.1} after the handshakes); VmHWM {:.1} -> {:.1} MiB",
        mib(before.rss_kib),
        mib(after.rss_kib),
        mib(after_handshakes.rss_kib),
        mib(before.hwm_kib),
        mib(after.hwm_kib)
    );
    assert!(
        after.hwm_kib - before.hwm_kib < 20 * KIB,
        "VmHWM grew by {:.1} MiB over 100 huge frame headers",
        mib(after.hwm_kib - before.hwm_kib)
    );
    assert!(took < Duration::from_secs(2), "100 closes took {took:?}");
    drop(clients);

    server.wait_fds_at_most(fds_before, Duration::from_secs(2), "after the huge frames");
    assert_healthy(&mut server, port, "after the huge frames");
    server.stop();
}

// ---------------------------------------------------------------------------
// 4. Ping flood.

#[test]
fn ping_flood_of_small_pings_from_a_client_that_does_not_read() {
    ping_flood(8);
}

/// The same with 125-byte pings: 25 MiB of pongs, more than the output limit.
#[test]
fn ping_flood_of_125_byte_pings_from_a_client_that_does_not_read() {
    ping_flood(125);
}

/// 200,000 pings of `payload` bytes (a sequence number, then padding).
fn ping_flood(payload: usize) {
    const PINGS: u64 = 200_000;
    let _serial = serial();
    let (mut server, port) = start_echo_server(None);
    let fds_before = server.fds();
    let mut observer = WsClient::connect(port);
    echo_once(&mut observer, "warm-up", Duration::from_secs(2));
    let before = server.mem();

    let flood = WsClient::connect(port);
    let mut wire = Vec::with_capacity(PINGS as usize * (payload + 6));
    let mut data = vec![0x70u8; payload];
    for seq in 0..PINGS {
        data[..8].copy_from_slice(&seq.to_be_bytes());
        wire.extend_from_slice(&client_frame(FIN | OP_PING, &data));
    }
    let total = wire.len() as u64;
    let written = Arc::new(AtomicU64::new(0));
    let write_failed = Arc::new(AtomicBool::new(false));
    let mut writer_stream = flood.stream.try_clone().unwrap();
    writer_stream
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let writer = {
        let (written, write_failed) = (Arc::clone(&written), Arc::clone(&write_failed));
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut off = 0usize;
            while off < wire.len() && Instant::now() < deadline {
                let end = (off + 64 * 1024).min(wire.len());
                match writer_stream.write(&wire[off..end]) {
                    Ok(n) => {
                        off += n;
                        written.store(off as u64, Ordering::SeqCst);
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => {
                        write_failed.store(true, Ordering::SeqCst);
                        break;
                    }
                }
            }
        })
    };

    // While the flood is written and nothing is read: the observer's echoes
    // stay prompt. The flooder starts reading when it is done writing or when
    // its writes have stalled for 1 s (the server stopped reading from it).
    let start = Instant::now();
    let mut latencies = Vec::new();
    let mut max_rss = before.rss_kib;
    let mut last_progress = (0u64, Instant::now());
    let mut i = 0;
    let stalled = loop {
        let w = written.load(Ordering::SeqCst);
        if w != last_progress.0 {
            last_progress = (w, Instant::now());
        }
        if w >= total || write_failed.load(Ordering::SeqCst) {
            break false;
        }
        if last_progress.1.elapsed() > Duration::from_secs(1) {
            break true;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the ping flood did not finish"
        );
        latencies.push(echo_once(
            &mut observer,
            &format!("during the flood {i}"),
            Duration::from_secs(1),
        ));
        max_rss = max_rss.max(server.mem().rss_kib);
        i += 1;
        thread::sleep(Duration::from_millis(10));
    };
    let flood_written = written.load(Ordering::SeqCst);
    let flood_time = start.elapsed();
    server.assert_running("during the ping flood");

    // Now the flooder reads: pongs in order, ending with the last ping's, or
    // a close from the server.
    let payload_len = payload;
    let reader = thread::spawn(move || {
        let mut flood = flood;
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut pongs, mut last): (u64, Option<u64>) = (0, None);
        loop {
            match flood.read_frame(deadline) {
                Ok(Frame {
                    opcode: OP_PONG,
                    payload: pong,
                    ..
                }) => {
                    assert_eq!(pong.len(), payload_len, "pong payload length");
                    let seq = u64::from_be_bytes(pong[..8].try_into().unwrap());
                    if let Some(l) = last {
                        assert!(seq > l, "pong {seq} after pong {l}");
                    }
                    last = Some(seq);
                    pongs += 1;
                    if seq == PINGS - 1 {
                        return (pongs, last, None);
                    }
                }
                Ok(f) if f.opcode == OP_CLOSE => return (pongs, last, Some(format!("close frame {:?}", f.payload))),
                Ok(f) => panic!("flooder got opcode {}", f.opcode),
                Err(ReadError::Closed(kind)) => return (pongs, last, Some(format!("TCP closed ({kind:?})"))),
                Err(e) => panic!("flooder: {e:?} after {pongs} pongs (last {last:?})"),
            }
        }
    });
    while !reader.is_finished() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the flooder's reads did not finish"
        );
        latencies.push(echo_once(
            &mut observer,
            &format!("while the flooder reads {i}"),
            Duration::from_secs(1),
        ));
        max_rss = max_rss.max(server.mem().rss_kib);
        i += 1;
        thread::sleep(Duration::from_millis(10));
    }
    let (pongs, last, closed) = reader.join().expect("flood reader");
    writer.join().expect("flood writer");
    let after = server.mem();
    let worst = *latencies.iter().max().unwrap_or(&Duration::ZERO);
    let count = latencies.len();
    let med = if latencies.is_empty() {
        Duration::ZERO
    } else {
        median(&mut latencies)
    };
    println!(
        "ping flood ({payload}-byte pings): {flood_written} of {total} bytes written in {flood_time:?} (stalled: {stalled}); \
         {pongs} pongs, last {last:?}, server closed: {closed:?}; observer {count} echoes, median {med:?}, \
         worst {worst:?}; server VmRSS {:.1} MiB before, max sampled {:.1} MiB, VmHWM {:.1} MiB",
        mib(before.rss_kib),
        mib(max_rss),
        mib(after.hwm_kib)
    );
    match closed {
        None => assert_eq!(last, Some(PINGS - 1)),
        Some(how) => println!("ping flood: the server closed the flooder: {how}"),
    }
    assert!(
        after.hwm_kib < 100 * KIB,
        "server VmHWM {:.1} MiB during the ping flood",
        mib(after.hwm_kib)
    );
    server.wait_fds_at_most(fds_before + 1, Duration::from_secs(3), "after the ping flood");
    assert_healthy(&mut server, port, "after the ping flood");
    drop(observer); // else echo_server waits 1 s for its close reply at exit
    server.stop();
}

// ---------------------------------------------------------------------------
// 5. 10,000 connections.

#[test]
fn ten_thousand_connections_on_one_reactor() {
    const CONNS: usize = 10_000;
    let _serial = serial();
    let hard = raise_nofile(CONNS as u64 + 500);
    let server_nofile = hard.min(20_000);
    let (mut server, port) = start_echo_server(Some(server_nofile));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no \"Max open files\" in /proc/PID/limits:\n{limits}"));
    assert!(soft >= CONNS as u64 + 100, "the server's soft RLIMIT_NOFILE is {soft}");
    let fds_before = server.fds();
    {
        // Warm up: the first connection allocates the reactor's read buffer.
        let mut c = WsClient::connect(port);
        echo_once(&mut c, "warm-up", Duration::from_secs(2));
    }
    let before = server.mem();

    let start = Instant::now();
    let mut clients = Vec::with_capacity(CONNS);
    for i in 0..CONNS {
        let mut stream = tcp(port);
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        raw_handshake(&mut stream).unwrap_or_else(|e| panic!("handshake of connection {i}: {e}"));
        clients.push(stream);
    }
    let connected = start.elapsed();
    server.assert_running("with 10,000 connections");
    let with_conns = server.mem();

    for (i, s) in clients.iter_mut().enumerate() {
        s.write_all(&client_frame(FIN | OP_TEXT, format!("message {i}").as_bytes()))
            .unwrap_or_else(|e| panic!("send on {i}: {e}"));
    }
    for (i, s) in clients.iter_mut().enumerate() {
        let text = format!("message {i}");
        let mut expected = vec![0x80 | OP_TEXT, text.len() as u8];
        expected.extend_from_slice(text.as_bytes());
        read_expected(s, &expected).unwrap_or_else(|e| panic!("echo on {i}: {e}"));
    }
    let echoed = start.elapsed();
    let after_echo = server.mem();
    let per_conn = (with_conns.rss_kib.saturating_sub(before.rss_kib)) * 1024 / CONNS as u64;
    let per_conn_echo = (after_echo.rss_kib.saturating_sub(before.rss_kib)) * 1024 / CONNS as u64;
    println!(
        "10k connections: opened in {connected:?}, all echoed by {echoed:?}; server VmRSS {:.1} MiB before, \
         {:.1} MiB with {CONNS} open ({per_conn} bytes per connection), {:.1} MiB after one echo each \
         ({per_conn_echo} bytes per connection); VmHWM {:.1} MiB",
        mib(before.rss_kib),
        mib(with_conns.rss_kib),
        mib(after_echo.rss_kib),
        mib(after_echo.hwm_kib)
    );
    assert!(per_conn_echo < 50 * KIB, "{per_conn_echo} bytes per connection");

    // A normal client is served with 10,000 connections open.
    assert_healthy(&mut server, port, "with 10,000 connections open");

    // Close them all with a closing handshake.
    for (i, s) in clients.iter_mut().enumerate() {
        s.write_all(&client_frame(FIN | OP_CLOSE, &1000u16.to_be_bytes()))
            .unwrap_or_else(|e| panic!("close on {i}: {e}"));
    }
    for (i, s) in clients.iter_mut().enumerate() {
        read_expected(s, &[0x88, 2, 0x03, 0xe8]).unwrap_or_else(|e| panic!("close reply on {i}: {e}"));
        wait_closed(s, Instant::now() + Duration::from_secs(10)).unwrap_or_else(|e| panic!("TCP close on {i}: {e}"));
    }
    let closed = start.elapsed();
    drop(clients);
    server.wait_fds_at_most(fds_before, Duration::from_secs(5), "after closing 10,000 connections");
    let after_close = server.mem();
    println!(
        "10k connections: all closed by {closed:?}; server VmRSS {:.1} MiB after closing",
        mib(after_close.rss_kib)
    );
    assert_healthy(&mut server, port, "after closing 10,000 connections");
    server.stop();
}

/// The opening handshake on a connected stream, reading byte by byte so that
/// nothing after the head is consumed. (WsClient keeps a 256 KiB read
/// buffer per client: too much for 10,000 of them.)
fn raw_handshake(stream: &mut TcpStream) -> Result<(), String> {
    stream
        .write_all(&upgrade_request("127.0.0.1", "/"))
        .map_err(|e| format!("write: {e}"))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => return Err(format!("EOF after {}", show(&head))),
            Err(e) => return Err(format!("read: {e} after {}", show(&head))),
        }
        if head.len() > 4096 {
            return Err(format!("no end of head: {}", show(&head)));
        }
    }
    if !head.starts_with(b"HTTP/1.1 101 ") {
        return Err(format!("not a 101: {}", show(&head)));
    }
    Ok(())
}

/// Reads exactly `expected.len()` bytes and compares them.
fn read_expected(stream: &mut TcpStream, expected: &[u8]) -> Result<(), String> {
    let mut got = vec![0u8; expected.len()];
    stream.read_exact(&mut got).map_err(|e| format!("read: {e}"))?;
    if got != expected {
        return Err(format!("got {got:?}, expected {expected:?}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 6. A client that stops reading.

/// Message `seq` of the no-reading client: 64 KiB, numbered.
fn big_message(seq: u32) -> Vec<u8> {
    let mut m: Vec<u8> = (0..64 * 1024)
        .map(|i: usize| (seq.wrapping_mul(2_654_435_761) >> 24) as u8 ^ (i as u8).wrapping_mul(31) ^ (i >> 8) as u8)
        .collect();
    m[..4].copy_from_slice(&seq.to_be_bytes());
    m
}

#[test]
fn a_client_that_stops_reading_is_paused_then_gets_every_echo_in_order() {
    let _serial = serial();
    let (mut server, port) = start_echo_server(None);
    let fds_before = server.fds();
    let client = WsClient::connect(port);
    let mut stream = client.stream.try_clone().unwrap();
    stream.set_write_timeout(Some(Duration::from_millis(50))).unwrap();
    let before = server.mem();

    // ~3 s of 64 KiB messages, nothing read.
    let start = Instant::now();
    let (mut seq, mut frame, mut off) = (0u32, client_frame(FIN | OP_BINARY, &big_message(0)), 0usize);
    let (mut sent_bytes, mut last_progress, mut max_rss) = (0u64, Instant::now(), before.rss_kib);
    let mut last_sample = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        match stream.write(&frame[off..]) {
            Ok(n) => {
                off += n;
                sent_bytes += n as u64;
                last_progress = Instant::now();
                if off == frame.len() {
                    seq += 1;
                    frame = client_frame(FIN | OP_BINARY, &big_message(seq));
                    off = 0;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("write of message {seq}: {e}"),
        }
        if last_sample.elapsed() >= Duration::from_millis(50) {
            max_rss = max_rss.max(server.mem().rss_kib);
            last_sample = Instant::now();
        }
    }
    let stalled_for = last_progress.elapsed();
    let during = server.mem();
    server.assert_running("while the client did not read");
    println!(
        "no-reading client: {seq} messages + {off} bytes ({:.1} MiB) sent in 3 s, writes stalled for the last \
         {stalled_for:?}; server VmRSS {:.1} MiB before, max sampled {:.1} MiB, VmHWM {:.1} -> {:.1} MiB",
        sent_bytes as f64 / MIB as f64,
        mib(before.rss_kib),
        mib(max_rss),
        mib(before.hwm_kib),
        mib(during.hwm_kib)
    );
    assert!(
        stalled_for > Duration::from_millis(1000),
        "the server kept reading from a client that does not read ({:.1} MiB accepted in 3 s, last write \
         {stalled_for:?} ago)",
        sent_bytes as f64 / MIB as f64
    );
    assert!(
        during.hwm_kib - before.rss_kib < 64 * KIB,
        "server memory grew by {:.1} MiB while the client did not read",
        mib(during.hwm_kib - before.rss_kib)
    );

    // Now read: every echo, in order, byte-exact; the message cut by the end
    // of the 3 s is finished first.
    let expected = if off > 0 { seq + 1 } else { seq };
    let reader = thread::spawn(move || {
        let mut client = client;
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in 0..expected {
            match client.read_frame(deadline) {
                Ok(f) => {
                    assert_eq!((f.fin, f.opcode), (true, OP_BINARY), "echo {n}");
                    assert!(
                        f.payload == big_message(n),
                        "echo {n} differs ({} bytes)",
                        f.payload.len()
                    );
                }
                Err(e) => panic!("echo {n} of {expected}: {e:?}"),
            }
        }
        client
    });
    stream.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    if off > 0 {
        stream.write_all(&frame[off..]).expect("finish the last message");
    }
    let mut client = reader.join().expect("every echo in order");
    println!(
        "no-reading client: all {expected} echoes received in order after {:?}",
        start.elapsed()
    );
    client.send_close(1000).unwrap();
    let (code, _) = expect_close(&mut client, Duration::from_secs(5));
    assert_eq!(code, 1000);
    server.wait_fds_at_most(fds_before, Duration::from_secs(2), "after the no-reading client");
    assert_healthy(&mut server, port, "after the no-reading client");
    server.stop();
}

// ---------------------------------------------------------------------------
// 7. TCP resets.

/// One way of leaving a connection abruptly: `open` makes a connection
/// (accepted by the server), `leave` sends a last piece and drops it.
struct Abrupt {
    what: &'static str,
    count: usize,
    open: fn(u16) -> TcpStream,
    leave: fn(TcpStream),
    /// Also run against a stopped server (the last bytes and the FIN/RST
    /// arrive together); not for writes that could fill the socket buffers.
    while_stopped: bool,
}

/// A connection that completed the opening handshake.
fn opened(port: u16) -> TcpStream {
    WsClient::connect(port).stream
}

/// A connection that sent nothing yet.
fn connected(port: u16) -> TcpStream {
    tcp(port)
}

/// A 1,000-byte frame cut after its header and 500 bytes.
fn half_frame() -> Vec<u8> {
    let frame = client_frame(FIN | OP_BINARY, &[0x5a; 1000]);
    frame[..8 + 500].to_vec()
}

const HALF_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnec";

const ABRUPT: &[Abrupt] = &[
    Abrupt {
        what: "RST mid-frame",
        count: 200,
        open: opened,
        leave: |mut s| {
            s.write_all(&half_frame()).unwrap();
            reset(s);
        },
        while_stopped: true,
    },
    Abrupt {
        what: "RST mid-handshake",
        count: 200,
        open: connected,
        leave: |mut s| {
            s.write_all(HALF_REQUEST).unwrap();
            reset(s);
        },
        while_stopped: true,
    },
    Abrupt {
        what: "FIN mid-frame (plain close)",
        count: 200,
        open: opened,
        leave: |mut s| {
            s.write_all(&half_frame()).unwrap();
            drop(s);
        },
        while_stopped: true,
    },
    Abrupt {
        what: "FIN mid-handshake (plain close)",
        count: 200,
        open: connected,
        leave: |mut s| {
            s.write_all(HALF_REQUEST).unwrap();
            drop(s);
        },
        while_stopped: true,
    },
    Abrupt {
        what: "RST after the handshake, nothing sent",
        count: 200,
        open: opened,
        leave: reset,
        while_stopped: true,
    },
    Abrupt {
        what: "RST with output pending (a 1 MiB echo never read)",
        count: 20,
        open: opened,
        leave: |mut s| {
            s.write_all(&client_frame(FIN | OP_BINARY, &vec![0xa5; MIB as usize]))
                .unwrap();
            thread::sleep(Duration::from_millis(5));
            reset(s);
        },
        while_stopped: false,
    },
];

/// Waits up to 2 s for the server's fd count to fall to `max`; returns how
/// many over it remain.
fn settle_fds(server: &mut WatchedProcess, max: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let open = server.fds();
        if open <= max || Instant::now() >= deadline {
            return open.saturating_sub(max);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `case` on a fresh server, one connection at a time, or all at once
/// while the server is stopped (SIGSTOP), as when it is busy or preempted:
/// each connection's last bytes and its FIN/RST then reach the server in a
/// single readiness event. Returns a failure, if any.
fn abrupt(case: &Abrupt, stopped: bool) -> Option<String> {
    let how = if stopped {
        "all while the server was stopped"
    } else {
        "one at a time"
    };
    let (mut server, port) = start_echo_server(None);
    let mut normal = WsClient::connect(port);
    echo_once(&mut normal, "warm-up", Duration::from_secs(2));
    let fds_before = server.fds();
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    if stopped {
        let mut streams = Vec::with_capacity(case.count);
        for i in 0..case.count {
            streams.push((case.open)(port));
            // Let the server accept (see the slowloris case: backlog 128).
            if i % 50 == 49 {
                thread::sleep(Duration::from_millis(1));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while server.fds() < fds_before + case.count {
            assert!(
                Instant::now() < deadline,
                "{}: the server did not accept them all",
                case.what
            );
            thread::sleep(Duration::from_millis(10));
        }
        thread::sleep(Duration::from_millis(20));
        server.signal("STOP");
        for s in streams {
            (case.leave)(s);
        }
        thread::sleep(Duration::from_millis(20));
        server.signal("CONT");
        worst = echo_once(&mut normal, case.what, Duration::from_millis(500));
    } else {
        for i in 0..case.count {
            (case.leave)((case.open)(port));
            if i % 20 == 19 {
                let text = format!("{} {i}", case.what);
                worst = worst.max(echo_once(&mut normal, &text, Duration::from_millis(500)));
            }
        }
    }
    server.assert_running(case.what);
    // The server must notice every one of them and close its socket.
    let left = settle_fds(&mut server, fds_before);
    println!(
        "{} x{}, {how}: {:?}, worst echo {worst:?}; {left} still open on the server 2 s later",
        case.what,
        case.count,
        start.elapsed()
    );
    echo_once(&mut normal, "after the resets", Duration::from_millis(500));
    assert_healthy(&mut server, port, case.what);
    drop(normal); // else echo_server waits 1 s for its close reply at exit
    server.stop();
    (left > 0).then(|| {
        format!(
            "{} x{}, {how}: the server still holds {left} of these connections 2 s later (it missed the \
             peer's RST/FIN)",
            case.what, case.count
        )
    })
}

#[test]
fn tcp_resets_mid_frame_and_mid_handshake() {
    let _serial = serial();
    let mut failures = Vec::new();
    for case in ABRUPT {
        failures.extend(abrupt(case, false));
        if case.while_stopped {
            failures.extend(abrupt(case, true));
        }
    }
    assert!(failures.is_empty(), "abrupt disconnects:\n{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// 8. Garbage before the handshake.

/// A TLS 1.2/1.3 ClientHello (SNI "localhost"), with no '\n' byte in it.
fn tls_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x03];
    hello.extend((0..32u8).map(|i| i.wrapping_mul(7).wrapping_add(0x40)));
    hello.push(0); // no session id
    let suites: [u16; 6] = [0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0x00ff];
    hello.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        hello.extend_from_slice(&s.to_be_bytes());
    }
    hello.extend_from_slice(&[1, 0]); // compression: null
    let sni = b"localhost";
    let mut ext = vec![0x00, 0x00];
    ext.extend_from_slice(&((sni.len() + 5) as u16).to_be_bytes());
    ext.extend_from_slice(&((sni.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    ext.extend_from_slice(sni);
    hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    hello.extend_from_slice(&ext);
    let mut handshake = vec![0x01, 0];
    handshake.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    assert!(!record.contains(&b'\n'));
    record
}

#[test]
fn garbage_before_the_handshake_gets_an_http_error_and_close() {
    let _serial = serial();
    let (mut server, port) = start_echo_server(None);
    let fds_before = server.fds();
    let ws_headers = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                      Sec-WebSocket-Version: 13\r\n";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let random_with_newlines = {
        let mut r = rng.bytes(1024);
        r[500] = b'\n';
        r
    };
    let random_without_newline: Vec<u8> = rng
        .bytes(1024)
        .into_iter()
        .map(|b| if b == b'\n' { 0 } else { b })
        .collect();
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("1 KiB of random bytes", random_with_newlines, &[400]),
        (
            "1 KiB of random bytes without a newline",
            random_without_newline,
            &[400],
        ),
        ("a TLS ClientHello", tls_client_hello(), &[400]),
        (
            "<policy-file-request/>\\0",
            b"<policy-file-request/>\0".to_vec(),
            &[400],
        ),
        (
            "an HTTP/1.0 upgrade request",
            format!("GET / HTTP/1.0\r\nHost: x\r\n{ws_headers}\r\n").into_bytes(),
            &[400, 426],
        ),
        (
            "a POST with Upgrade",
            format!("POST / HTTP/1.1\r\nHost: x\r\n{ws_headers}Content-Length: 0\r\n\r\n").into_bytes(),
            &[400, 405],
        ),
        (
            "Sec-WebSocket-Version: 8",
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
                ws_headers.replace("Version: 13", "Version: 8")
            )
            .into_bytes(),
            &[426],
        ),
        (
            "an upgrade with a 15-byte key",
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
                ws_headers.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ")
            )
            .into_bytes(),
            &[400],
        ),
        (
            "an upgrade without Host",
            format!("GET / HTTP/1.1\r\n{ws_headers}\r\n").into_bytes(),
            &[400],
        ),
        (
            "a NUL in a header name",
            format!("GET / HTTP/1.1\r\nHo\0st: x\r\n{ws_headers}\r\n").into_bytes(),
            &[400],
        ),
        (
            "a WebSocket frame instead of a request",
            client_frame(FIN | OP_TEXT, b"hello"),
            &[400],
        ),
    ];
    let mut failures = Vec::new();
    for (what, request, statuses) in &cases {
        let (got, end, took) = raw_exchange(port, request, Duration::from_secs(2));
        let status = http_status(&got);
        println!("{what}: {status:?}, then {end:?} after {took:?}");
        if !status.is_some_and(|s| statuses.contains(&s)) {
            failures.push(format!(
                "{what}: expected HTTP {statuses:?} and a close, got {} and {end:?} after {took:?}",
                show(&got)
            ));
        } else if end == End::Timeout {
            failures.push(format!("{what}: HTTP {status:?} but the connection stayed open"));
        }
        server.assert_running(what);
    }
    // A connection closed before sending anything: closed, nothing sent.
    let s = tcp(port);
    s.shutdown(Shutdown::Write).unwrap();
    let mut s = s;
    let start = Instant::now();
    let (got, end, took) = read_until_end(&mut s, start + Duration::from_secs(2), start);
    println!("an immediate FIN: {} bytes, then {end:?} after {took:?}", got.len());
    if end == End::Timeout || !got.is_empty() {
        failures.push(format!("an immediate FIN: got {} and {end:?}", show(&got)));
    }

    server.wait_fds_at_most(fds_before, Duration::from_secs(3), "after the garbage");
    assert_healthy(&mut server, port, "after the garbage");
    server.stop();
    assert!(
        failures.is_empty(),
        "garbage before the handshake:\n{}",
        failures.join("\n")
    );
}

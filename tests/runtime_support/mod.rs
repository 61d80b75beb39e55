//! Shared by the `tests/runtime_*.rs` tests: building the C test programs of
//! `tests/c/` (`make -C tests/c TARGETS`), running them with a time limit,
//! spotting sanitizer reports, driving a server program that prints
//! "listening on PORT", and a small raw WebSocket client over `TcpStream`.
//!
//! Nothing here skips: a missing `make`, compiler or library fails the test.
#![allow(dead_code)]

// The same file is `support::process`; a test using both harnesses
// (tests/hostile.rs) gets two copies of these small functions.
#[allow(clippy::duplicate_mod)]
#[path = "../support/process.rs"]
pub mod process;
pub use process::*;

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// `tests/c/NAME`.
pub fn program(name: &str) -> PathBuf {
    let path = root().join("tests").join("c").join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Sanitizer settings for the `_asan` programs: leaks are errors, UBSan
/// prints stacks. Harmless for the plain programs.
pub fn sanitizer_env(cmd: &mut Command) {
    cmd.env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1")
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        .env("LSAN_OPTIONS", "report_objects=1");
}

/// `make -C tests/c TARGETS...` (e.g. `["timeout_server", "timeout_server_asan"]`),
/// once per test process: the tests of one file run in parallel and must not
/// link the same programs at the same time, and each file asks for the same
/// targets every time. The Makefile runs `cargo build --release` first.
pub fn build(targets: &[&str]) {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let mut make = Command::new("make");
        make.arg("-C").arg(root().join("tests").join("c")).args(targets);
        let done = run(make, Duration::from_secs(900))?;
        if done.status.success() {
            Ok(())
        } else {
            Err(done.report())
        }
    });
    if let Err(e) = result {
        panic!("make -C tests/c {} failed: {e}", targets.join(" "));
    }
}

/// Lines a child printed so far, and whether its stdout ended.
#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    ended: bool,
}

/// A running server program from `tests/c/`. It must print "listening on
/// PORT" first. Killed when dropped (also when a test panics).
pub struct Server {
    pub name: String,
    pub port: u16,
    child: Child,
    out: Arc<(Mutex<Lines>, Condvar)>,
    err: Arc<Mutex<String>>,
    readers: Vec<thread::JoinHandle<()>>,
}

impl Server {
    /// Starts `tests/c/<name> 0 <args>` and waits for its port.
    pub fn start(name: &str, args: &[&str]) -> Server {
        let mut cmd = Command::new(program(name));
        cmd.arg("0").args(args);
        sanitizer_env(&mut cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let out: Arc<(Mutex<Lines>, Condvar)> = Arc::default();
        let err: Arc<Mutex<String>> = Arc::default();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let out2 = Arc::clone(&out);
        let err2 = Arc::clone(&err);
        let readers = vec![
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let (lock, cv) = &*out2;
                    lock.lock().unwrap().lines.push(line);
                    cv.notify_all();
                }
                let (lock, cv) = &*out2;
                lock.lock().unwrap().ended = true;
                cv.notify_all();
            }),
            thread::spawn(move || {
                let mut reader = BufReader::new(stderr);
                let mut buf = [0u8; 4096];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => err2.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n])),
                    }
                }
            }),
        ];
        let mut server = Server {
            name: name.to_owned(),
            port: 0,
            child,
            out,
            err,
            readers,
        };
        let line = server.wait_line(Duration::from_secs(20), |l| l.starts_with("listening on "));
        server.port = line["listening on ".len()..]
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}: bad line {line:?}\n{}", server.log()));
        assert!(server.port > 0, "{name} listens on port 0\n{}", server.log());
        server
    }

    pub fn lines(&self) -> Vec<String> {
        self.out.0.lock().unwrap().lines.clone()
    }

    pub fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    pub fn log(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            self.lines().join("\n"),
            self.name,
            self.stderr()
        )
    }

    /// Waits for a line matching `pred` (seen before or after this call).
    pub fn wait_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        self.try_wait_lines(timeout, 1, &pred)
            .and_then(|mut v| v.pop())
            .unwrap_or_else(|| panic!("{}: no matching line within {timeout:?}\n{}", self.name, self.log()))
    }

    /// Waits until `count` lines match `pred`; returns them, or None on timeout
    /// or when the program's output ended first.
    pub fn try_wait_lines(&self, timeout: Duration, count: usize, pred: &dyn Fn(&str) -> bool) -> Option<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.out;
        let mut guard = lock.lock().unwrap();
        loop {
            let found: Vec<String> = guard.lines.iter().filter(|l| pred(l)).cloned().collect();
            if found.len() >= count {
                return Some(found);
            }
            let now = Instant::now();
            if guard.ended || now >= deadline {
                return None;
            }
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    /// Panics (with the log) unless the server is still running.
    pub fn assert_running(&mut self, when: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited {when}: {status}\n{}", self.name, self.log());
        }
    }

    /// Waits for the program to exit by itself; then for its output.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => panic!("{} still running after {timeout:?}\n{}", self.name, self.log()),
                Err(e) => panic!("waiting for {}: {e}", self.name),
            }
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        status
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut kill = Command::new("sh");
        kill.arg("-c").arg(format!("kill -TERM {}", self.child.id()));
        match run(kill, Duration::from_secs(10)) {
            Ok(done) if done.status.success() => {}
            Ok(done) => panic!("kill -TERM {}: {}", self.name, done.report()),
            Err(e) => panic!("kill -TERM {}: {e}", self.name),
        }
        self.wait_exit(Duration::from_secs(20))
    }

    /// Requires exit status 0 and no sanitizer report (call after the exit).
    pub fn assert_clean_exit(&self, status: ExitStatus) {
        assert!(status.success(), "{} exited with {status}\n{}", self.name, self.log());
        if let Some(line) = sanitizer_report(&self.stderr()) {
            panic!("{}: sanitizer report: {line}\n{}", self.name, self.log());
        }
        let errors: Vec<String> = self.lines().into_iter().filter(|l| l.starts_with("error")).collect();
        assert!(
            errors.is_empty(),
            "{} reported errors: {errors:?}\n{}",
            self.name,
            self.log()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `key=value` from a line of `name value` words, parsed as a number.
pub fn field(line: &str, key: &str) -> i64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{key}= is not a number in {line:?}"))
}

// ---------------------------------------------------------------------------
// A raw WebSocket client.

/// The key of RFC 6455 §1.3 and the accept value it calls for.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// A frame read, or why not.
#[derive(Debug)]
pub enum ReadError {
    /// The server closed the connection (read returned 0 or ECONNRESET).
    Closed(io::ErrorKind),
    /// Nothing complete arrived before the deadline.
    Timeout,
    /// Anything else, including a malformed frame.
    Other(String),
}

pub struct WsClient {
    pub stream: TcpStream,
    /// Received bytes not parsed yet.
    buf: VecDeque<u8>,
    /// Read buffer.
    chunk: Vec<u8>,
}

/// The TCP connection ended: EOF or a reset.
pub fn is_closed_kind(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

/// Reads once from `stream` with a deadline: Ok(n > 0), or the ReadError.
pub fn read_some(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Result<usize, ReadError> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(ReadError::Timeout);
        }
        stream
            .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
            .map_err(|e| ReadError::Other(e.to_string()))?;
        match stream.read(buf) {
            Ok(0) => return Err(ReadError::Closed(io::ErrorKind::UnexpectedEof)),
            Ok(n) => return Ok(n),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_closed_kind(e.kind()) => return Err(ReadError::Closed(e.kind())),
            Err(e) => return Err(ReadError::Other(e.to_string())),
        }
    }
}

/// Waits until the server closes `stream` (reading and discarding what comes),
/// returning when; or Err on timeout.
pub fn wait_closed(stream: &mut TcpStream, deadline: Instant) -> Result<(Instant, usize), String> {
    let mut buf = [0u8; 4096];
    let mut got = 0;
    loop {
        match read_some(stream, &mut buf, deadline) {
            Ok(n) => got += n,
            Err(ReadError::Closed(_)) => return Ok((Instant::now(), got)),
            Err(ReadError::Timeout) => return Err(format!("still open at the deadline ({got} bytes received)")),
            Err(ReadError::Other(e)) => return Err(e),
        }
    }
}

impl WsClient {
    /// Connects to 127.0.0.1:port and completes the opening handshake.
    pub fn connect(port: u16) -> WsClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to {port}: {e}"));
        stream.set_nodelay(true).unwrap();
        let mut client = WsClient {
            stream,
            buf: VecDeque::new(),
            chunk: vec![0u8; 256 * 1024],
        };
        client.handshake("/");
        client
    }

    /// Sends the request for `path`, reads the response head and checks it.
    pub fn handshake(&mut self, path: &str) {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        self.stream.write_all(request.as_bytes()).expect("write the handshake");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut head = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match read_some(&mut self.stream, &mut chunk, deadline) {
                Ok(n) => head.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("handshake response: {e:?}; got {:?}", String::from_utf8_lossy(&head)),
            }
        };
        let text = String::from_utf8_lossy(&head[..end]).into_owned();
        assert!(text.starts_with("HTTP/1.1 101"), "not a 101 response: {text:?}");
        let lower = text.to_ascii_lowercase();
        assert!(
            lower.contains("\r\nupgrade: websocket\r\n"),
            "no Upgrade header: {text:?}"
        );
        assert!(
            text.contains(&format!(": {ACCEPT}\r\n")),
            "no Sec-WebSocket-Accept {ACCEPT}: {text:?}"
        );
        self.buf.extend(&head[end..]);
    }

    /// Writes a masked frame.
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.stream.write_all(&client_frame(fin, opcode, payload))
    }

    pub fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.send_frame(true, OP_TEXT, text.as_bytes())
    }

    /// A close frame with `code` and no reason.
    pub fn send_close(&mut self, code: u16) -> io::Result<()> {
        self.send_frame(true, OP_CLOSE, &code.to_be_bytes())
    }

    /// Parses one frame from the buffer, if it holds a complete one.
    fn parse(&mut self) -> Result<Option<Frame>, ReadError> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (b[0], b[1]);
        if b1 & 0x80 != 0 {
            return Err(ReadError::Other("the server masked a frame".into()));
        }
        if b0 & 0x70 != 0 {
            return Err(ReadError::Other(format!("RSV bits set: {b0:#04x}")));
        }
        let (len, header) = match b1 & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as u64, 4),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                for (i, x) in n.iter_mut().enumerate() {
                    *x = b[2 + i];
                }
                (u64::from_be_bytes(n), 10)
            }
            126 | 127 => return Ok(None),
            n => (n as u64, 2),
        };
        if len > (1 << 30) {
            return Err(ReadError::Other(format!("frame length {len}")));
        }
        let total = header + len as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        self.buf.drain(..header);
        let payload: Vec<u8> = self.buf.drain(..len as usize).collect();
        Ok(Some(Frame {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0f,
            payload,
        }))
    }

    /// Reads the next frame (control frames included), waiting until `deadline`.
    pub fn read_frame(&mut self, deadline: Instant) -> Result<Frame, ReadError> {
        loop {
            if let Some(frame) = self.parse()? {
                return Ok(frame);
            }
            let n = read_some(&mut self.stream, &mut self.chunk, deadline)?;
            self.buf.extend(&self.chunk[..n]);
        }
    }

    /// Bytes received and not parsed.
    pub fn unparsed(&self) -> usize {
        self.buf.len()
    }

    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// A masked client frame.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(if fin { 0x80 } else { 0 } | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

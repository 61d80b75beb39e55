//! Shared harness for the tests that run the C examples as processes:
//! building `c-examples/`, the Python venv with `websockets`, running
//! commands with timeouts, and example servers killed on drop.
//!
//! Nothing here skips: a missing `make`, `python3` or `websockets` (installed
//! into `target/venv` on first use) fails the test.  Set `WSCONN_PYTHON` to
//! use a Python that already has `websockets`.
#![allow(dead_code)]

pub mod certs;
pub mod process;
pub use process::*;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub const SERVER_START_TIMEOUT: Duration = Duration::from_secs(10);
pub const SERVER_EXIT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn example(name: &str) -> PathBuf {
    root().join("c-examples").join(name)
}

/// A command running `binary` (a C example) with the library it was linked
/// against.  `cargo test` puts `target/debug` (and its deps) on
/// LD_LIBRARY_PATH, which takes precedence over the examples' runpath to
/// `target/release`: the shared builds would load the debug `libwsconn.so`
/// of the test build instead, possibly older than the release one `make`
/// linked them against.
pub fn example_command(binary: &Path) -> Command {
    let mut cmd = Command::new(binary);
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd
}

/// Runs `make -C c-examples TARGET...` once per test process and target list.
/// Builds are serialized: the tests run in parallel and must not link the
/// same binaries at the same time.
fn make_examples(targets: &[&str]) {
    /// Each `make` run so far: its targets and its outcome.
    type Builds = Vec<(String, Result<(), String>)>;
    static DONE: Mutex<Builds> = Mutex::new(Vec::new());
    // Held during the build: one make at a time.
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    let key = targets.join(" ");
    let result = match done.iter().find(|(k, _)| *k == key) {
        Some((_, r)) => r.clone(),
        None => {
            let mut make = Command::new("make");
            make.arg("-C").arg(root().join("c-examples")).args(targets);
            let r = run_ok(make, Duration::from_secs(900)).map(|_| ());
            done.push((key, r.clone()));
            r
        }
    };
    if let Err(e) = result {
        panic!("building the C examples ({targets:?}) failed: {e}");
    }
}

/// `make -C c-examples`: every example, linked against the .so and the .a.
pub fn build_examples() {
    make_examples(&[]);
}

/// `make -C c-examples asan`: the NAME_asan builds (ASan + UBSan).
pub fn build_asan_examples() {
    make_examples(&["asan"]);
}

fn has_websockets(python: &Path) -> bool {
    let mut cmd = Command::new(python);
    cmd.args(["-c", "import websockets"]);
    matches!(run(cmd, Duration::from_secs(60)), Ok(f) if f.status.success())
}

/// A Python interpreter that can `import websockets`: `$WSCONN_PYTHON`, or
/// `target/venv/bin/python`, creating the venv (once per test process).
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = PYTHON.get_or_init(|| {
        if let Some(p) = std::env::var_os("WSCONN_PYTHON") {
            let p = PathBuf::from(p);
            return if has_websockets(&p) {
                Ok(p)
            } else {
                Err(format!("WSCONN_PYTHON={} cannot `import websockets`", p.display()))
            };
        }

        let venv = root().join("target").join("venv");
        let python = venv.join("bin").join("python");
        if !python.exists() {
            let mut cmd = Command::new("python3");
            cmd.arg("-m").arg("venv").arg(&venv);
            run_ok(cmd, Duration::from_secs(300))
                .map_err(|e| format!("creating the venv failed (on Debian: apt-get install python3-venv): {e}"))?;
        }
        if !has_websockets(&python) {
            let mut cmd = Command::new(venv.join("bin").join("pip"));
            cmd.args(["install", "-q", "websockets>=12"]);
            run_ok(cmd, Duration::from_secs(600))
                .map_err(|e| format!("installing websockets into the venv failed: {e}"))?;
            if !has_websockets(&python) {
                return Err(format!(
                    "{} still cannot `import websockets` after pip install",
                    python.display()
                ));
            }
        }
        Ok(python)
    });
    match result {
        Ok(p) => p.clone(),
        Err(e) => panic!("no Python with `websockets`: {e}"),
    }
}

/// A Python command for one of the scripts in `tests/interop/`.
pub fn python_script(script: &str) -> Command {
    let mut cmd = Command::new(python());
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(root().join("tests").join("interop").join(script));
    cmd
}

/// A port that nothing listens on (at the time of the call).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Environment for the ASan + UBSan builds: leaks and every UBSan report
/// are errors.
pub const ASAN_ENV: &[(&str, &str)] = &[
    ("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1"),
    ("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"),
];

/// What a sanitizer writes when it finds something.
pub const SANITIZER_MARKERS: &[&str] = &["ERROR: AddressSanitizer", "LeakSanitizer", "runtime error:"];

/// The sanitizer report lines in `output`, if any.
pub fn sanitizer_findings(output: &str) -> Option<String> {
    if SANITIZER_MARKERS.iter().any(|m| output.contains(m)) {
        Some(output.to_string())
    } else {
        None
    }
}

/// A running example server; killed when dropped (also when a test panics).
/// Its stdout and stderr go to `target/c-example-interop/<tag>.log`.
pub struct Server {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts `binary args...` with extra environment variables.  `tag`
    /// names the log file and must be unique among concurrent tests.
    pub fn start(binary: &Path, args: &[&str], env: &[(&str, &str)], tag: &str) -> Server {
        let name = binary.file_name().unwrap().to_string_lossy().into_owned();
        assert!(binary.exists(), "{} was not built", binary.display());
        let log_dir = root().join("target").join("c-example-interop");
        std::fs::create_dir_all(&log_dir).expect("create log dir");
        let log = log_dir.join(format!("{tag}.log"));
        let log_file = File::create(&log).expect("create server log");
        let mut cmd = example_command(binary);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log file"))
            .stderr(log_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Server { name, child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics (with the server's log) unless the server is still running.
    pub fn assert_running(&mut self, when: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited {when}: {status}\n--- server log ---\n{}",
                self.name,
                self.log()
            );
        }
    }

    /// Waits for the "NAME listening on 127.0.0.1:PORT" line the examples
    /// print once they accept connections, and returns PORT.
    pub fn wait_for_port(&mut self) -> u16 {
        let deadline = Instant::now() + SERVER_START_TIMEOUT;
        loop {
            let log = self.log();
            let port = log.lines().find_map(|line| {
                line.split_once(" listening on 127.0.0.1:")
                    .and_then(|(_, p)| p.trim().parse::<u16>().ok())
            });
            if let Some(port) = port {
                return port;
            }
            self.assert_running("before listening");
            if Instant::now() >= deadline {
                panic!(
                    "{} printed no \"listening on\" line within {SERVER_START_TIMEOUT:?}\n\
                     --- server log ---\n{log}",
                    self.name
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until a TCP connection to `port` succeeds.
    pub fn wait_until_accepting(&mut self, port: u16) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + SERVER_START_TIMEOUT;
        loop {
            self.assert_running("before accepting connections");
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} not accepting on {addr} after {SERVER_START_TIMEOUT:?}\n\
                     --- server log ---\n{}",
                    self.name,
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then requires a clean exit (status 0) within the timeout.
    pub fn terminate(&mut self) {
        // The shell's builtin `kill`: std has no way to send a signal.
        let mut kill = Command::new("sh");
        kill.arg("-c").arg(format!("kill -TERM {}", self.child.id()));
        if let Err(e) = run_ok(kill, Duration::from_secs(10)) {
            panic!("cannot send SIGTERM to {}: {e}", self.name);
        }
        let deadline = Instant::now() + SERVER_EXIT_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    assert!(
                        status.success(),
                        "{} exited with {status} on SIGTERM\n--- server log ---\n{}",
                        self.name,
                        self.log()
                    );
                    return;
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                Ok(None) => panic!(
                    "{} still running {SERVER_EXIT_TIMEOUT:?} after SIGTERM\n--- server log ---\n{}",
                    self.name,
                    self.log()
                ),
                Err(e) => panic!("waiting for {}: {e}", self.name),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // No-ops if it has already exited and been reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 response.
pub struct HttpResponse {
    pub status: u16,
    /// Header lines after the status line, as received.
    pub headers: Vec<String>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `request` (raw bytes) to 127.0.0.1:port and reads the response
/// until the server closes the connection.
pub fn http_request(port: u16, request: &str) -> Result<HttpResponse, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes())
        .map_err(|e| format!("write request: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read response (got {} bytes so far): {e}", raw.len()))?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {:?}", String::from_utf8_lossy(&raw)))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    Ok(HttpResponse {
        status,
        headers: lines.map(str::to_string).collect(),
        body: raw[end + 4..].to_vec(),
    })
}

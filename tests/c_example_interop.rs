//! Interop test for the C examples: builds `c-examples/` with make, starts each
//! echo server binary and runs the Python `websockets` client
//! (`tests/interop/echo_client.py`) against it.
//!
//! Nothing here is skipped: a missing `make`, `python3` or `websockets`
//! (which is installed into `target/venv` on first use) fails the test.
//! Set `WSCONN_PYTHON` to use a Python that already has `websockets`.

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

const SERVER_START_TIMEOUT: Duration = Duration::from_secs(10);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
const SERVER_EXIT_TIMEOUT: Duration = Duration::from_secs(10);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Output of a finished command, for messages.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn report(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

fn describe(cmd: &Command) -> String {
    format!("{cmd:?}")
}

/// Reads a child's pipe to the end on a thread.
fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs `cmd` to completion, capturing its output; kills it after `timeout`.
fn run(mut cmd: Command, timeout: Duration) -> Result<Finished, String> {
    let what = describe(&cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;

    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Ok(Finished { status, stdout, stderr }),
        None => Err(format!(
            "{what} did not finish within {timeout:?} and was killed\n\
             --- stdout ---\n{stdout}--- stderr ---\n{stderr}"
        )),
    }
}

/// Runs `cmd` and requires exit status 0.
fn run_ok(cmd: Command, timeout: Duration) -> Result<Finished, String> {
    let what = describe(&cmd);
    let done = run(cmd, timeout)?;
    if done.status.success() {
        Ok(done)
    } else {
        Err(format!("{what} failed: {}", done.report()))
    }
}

/// `make -C c-examples`, once per test process (the tests run in parallel
/// and must not link the same binaries at the same time).
fn build_examples() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let mut make = Command::new("make");
        make.arg("-C").arg(root().join("c-examples"));
        run_ok(make, Duration::from_secs(900)).map(|_| ())
    });
    if let Err(e) = result {
        panic!("building the C examples failed: {e}");
    }
}

fn has_websockets(python: &Path) -> bool {
    let mut cmd = Command::new(python);
    cmd.args(["-c", "import websockets"]);
    matches!(run(cmd, Duration::from_secs(60)), Ok(f) if f.status.success())
}

/// A Python interpreter that can `import websockets`: `$WSCONN_PYTHON`, or
/// `target/venv/bin/python`, creating the venv (once per test process).
fn python() -> PathBuf {
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

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// A running example server; killed when dropped (also when a test panics).
struct Server {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(binary: &Path, port: u16) -> Server {
        let name = binary.file_name().unwrap().to_string_lossy().into_owned();
        let log_dir = root().join("target").join("c-example-interop");
        std::fs::create_dir_all(&log_dir).expect("create log dir");
        let log = log_dir.join(format!("{name}.log"));
        let log_file = File::create(&log).expect("create server log");
        let child = Command::new(binary)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log file"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Server { name, child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics (with the server's log) unless the server is still running.
    fn assert_running(&mut self, when: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited {when}: {status}\n--- server log ---\n{}",
                self.name,
                self.log()
            );
        }
    }

    fn wait_until_accepting(&mut self, port: u16) {
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
    fn terminate(&mut self) {
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
                Ok(None) => panic!("{} still running {SERVER_EXIT_TIMEOUT:?} after SIGTERM", self.name),
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

/// Builds the examples, starts `c-examples/<binary>` on a free port and runs
/// the Python echo checks against it.
fn interop(binary: &str) {
    build_examples();
    let python = python();

    let binary = root().join("c-examples").join(binary);
    assert!(binary.exists(), "{} was not built", binary.display());

    let port = free_port();
    let mut server = Server::start(&binary, port);
    server.wait_until_accepting(port);

    let mut client = Command::new(&python);
    client
        .arg(root().join("tests").join("interop").join("echo_client.py"))
        .arg(format!("ws://127.0.0.1:{port}/echo"));
    let result = run(client, CLIENT_TIMEOUT);

    let report = match &result {
        Ok(done) => done.report(),
        Err(e) => e.clone(),
    };
    let passed = matches!(&result, Ok(done) if done.status.success());
    assert!(
        passed,
        "echo_client.py against {} failed: {report}\n--- server log ---\n{}",
        server.name,
        server.log()
    );
    println!("{report}");

    server.assert_running("during the checks");
    server.terminate();
}

#[test]
fn epoll_echo_shared_interop() {
    interop("epoll_echo");
}

#[test]
fn epoll_echo_static_interop() {
    interop("epoll_echo_static");
}

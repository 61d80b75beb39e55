//! A process whose output is watched line by line as it comes, so a test can
//! wait for what the program says it did: the C test programs and the servers
//! tests/hostile.rs measures.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::exit::{wait_until, KilledOnDrop};
use super::listening::{listening_port, SERVER_START_TIMEOUT};
use super::signal::signal;
use crate::programs::test_program;
use crate::sanitizer::{sanitizer_env, sanitizer_report};

/// How long a program may take to exit after SIGTERM.
pub const PROGRAM_EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// The stdout lines a log shows at most (the last ones).
const LOG_LINES: usize = 100;

/// Lines a child printed so far, and whether its stdout ended.
#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    ended: bool,
}

/// A running process; killed when dropped.
pub struct WatchedProcess {
    pub name: String,
    child: KilledOnDrop,
    out: Arc<(Mutex<Lines>, Condvar)>,
    err: Arc<Mutex<String>>,
    readers: Vec<thread::JoinHandle<()>>,
}

impl WatchedProcess {
    /// Starts `cmd` (stdin /dev/null), reading its stdout and stderr on threads.
    pub fn spawn(name: &str, mut cmd: Command) -> WatchedProcess {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
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
        WatchedProcess {
            name: name.to_owned(),
            child: KilledOnDrop(child),
            out,
            err,
            readers,
        }
    }

    /// Starts the server `tests/c/<name> 0 <args>` with the sanitizer
    /// settings, and waits until it listens.
    pub fn start_test_server(name: &str, args: &[&str]) -> WatchedProcess {
        let mut cmd = Command::new(test_program(name));
        cmd.arg("0").args(args);
        sanitizer_env(&mut cmd);
        let server = WatchedProcess::spawn(name, cmd);
        server.port();
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// The port of the "listening on" line, waiting for it.
    pub fn port(&self) -> u16 {
        let line = self.wait_line(SERVER_START_TIMEOUT, |l| listening_port(l).is_some());
        let port = listening_port(&line).expect("a listening line");
        assert!(port > 0, "{} listens on port 0\n{}", self.name, self.log());
        port
    }

    pub fn lines(&self) -> Vec<String> {
        self.out.0.lock().unwrap().lines.clone()
    }

    /// How many lines so far match `pred` (without copying them).
    pub fn count_lines(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.out.0.lock().unwrap().lines.iter().filter(|l| pred(l)).count()
    }

    pub fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// The output so far, for messages: the last stdout lines and all of stderr.
    pub fn log(&self) -> String {
        let out = self.out.0.lock().unwrap();
        let shown = &out.lines[out.lines.len().saturating_sub(LOG_LINES)..];
        format!(
            "--- {} stdout ({} lines, last {}) ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            out.lines.len(),
            shown.len(),
            shown.join("\n"),
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

    /// Panics (with the log) unless the process is still running.
    pub fn assert_running(&mut self, when: &str) {
        if let Ok(Some(status)) = self.child.0.try_wait() {
            panic!("{} exited {when}: {status}\n{}", self.name, self.log());
        }
    }

    /// Sends SIG`name` ("TERM", "STOP", "CONT"...); panics if it cannot.
    pub fn signal(&self, name: &str) {
        signal(self.pid(), name).unwrap_or_else(|e| panic!("kill -{name} {}: {e}", self.name));
    }

    /// Waits for the process to exit by itself; then for its output.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let status = match wait_until(&mut self.child.0, Instant::now() + timeout) {
            Ok(Some(status)) => status,
            Ok(None) => panic!("{} still running after {timeout:?}\n{}", self.name, self.log()),
            Err(e) => panic!("waiting for {}: {e}", self.name),
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        status
    }

    /// SIGTERM, then waits for the exit.
    #[must_use = "a status to check: assert_clean_exit, or at least success()"]
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(PROGRAM_EXIT_TIMEOUT)
    }

    /// Requires exit status 0, no sanitizer report and no line starting with
    /// "error" (call after the exit).
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

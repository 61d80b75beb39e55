//! A server whose output goes to a log file, kept after the test for a look:
//! the C examples and the Autobahn stand-in.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::exit::{wait_until, KilledOnDrop};
use super::listening::{listening_port, SERVER_START_TIMEOUT};
use super::signal::signal;
use crate::paths::root;
use crate::programs::example_command;

/// How long a server may take to exit after SIGTERM.
pub const SERVER_EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server; killed when dropped.
pub struct LoggedServer {
    pub name: String,
    child: KilledOnDrop,
    log: PathBuf,
}

impl LoggedServer {
    /// Starts `cmd`, its stdout and stderr going to the file `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> LoggedServer {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
        let log_file = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        cmd.stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone the log file"))
            .stderr(log_file);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        LoggedServer {
            name: name.to_owned(),
            child: KilledOnDrop(child),
            log,
        }
    }

    /// Starts the C example `binary args...` with extra environment variables;
    /// its log is `target/c-example-interop/<tag>.log`, so `tag` must be
    /// unique among concurrent tests.
    pub fn start(binary: &Path, args: &[&str], env: &[(&str, &str)], tag: &str) -> LoggedServer {
        let name = binary.file_name().unwrap().to_string_lossy().into_owned();
        assert!(binary.exists(), "{} was not built", binary.display());
        let mut cmd = example_command(binary);
        cmd.args(args).envs(env.iter().copied());
        let log = root()
            .join("target")
            .join("c-example-interop")
            .join(format!("{tag}.log"));
        LoggedServer::spawn(&name, cmd, log)
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics (with the server's log) unless the server is still running.
    pub fn assert_running(&mut self, when: &str) {
        if let Ok(Some(status)) = self.child.0.try_wait() {
            panic!(
                "{} exited {when}: {status}\n--- server log ---\n{}",
                self.name,
                self.log()
            );
        }
    }

    /// Waits for the "listening on" line and returns its port.
    pub fn wait_for_port(&mut self) -> u16 {
        let deadline = Instant::now() + SERVER_START_TIMEOUT;
        loop {
            let log = self.log();
            if let Some(port) = log.lines().find_map(listening_port) {
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

    /// Waits for the server to exit; panics (with its log) after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match wait_until(&mut self.child.0, Instant::now() + timeout) {
            Ok(Some(status)) => status,
            Ok(None) => panic!(
                "{} still running after {timeout:?}\n--- server log ---\n{}",
                self.name,
                self.log()
            ),
            Err(e) => panic!("waiting for {}: {e}", self.name),
        }
    }

    /// SIGTERM, then requires a clean exit (status 0) within the timeout.
    pub fn terminate(&mut self) {
        if let Err(e) = signal(self.child.0.id(), "TERM") {
            panic!("cannot send SIGTERM to {}: {e}", self.name);
        }
        let status = self.wait_exit(SERVER_EXIT_TIMEOUT);
        assert!(
            status.success(),
            "{} exited with {status} on SIGTERM\n--- server log ---\n{}",
            self.name,
            self.log()
        );
    }
}

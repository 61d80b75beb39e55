//! Running a command to completion with a time limit, its output captured.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::exit::wait_until;

/// Output of a finished command, for messages.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn report(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Reads a child's pipe to the end on a thread, so that a chatty child
/// cannot block on a full pipe.
pub fn read_on_thread(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs `cmd` to completion with `input` on its stdin (none: /dev/null),
/// capturing its output; kills it after `timeout`.
pub fn run_with_input(mut cmd: Command, input: Option<&[u8]>, timeout: Duration) -> Result<Finished, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;

    // Feed stdin and read both pipes on threads.
    let feeder = match (input, child.stdin.take()) {
        (Some(data), Some(mut stdin)) => {
            let data = data.to_vec();
            Some(thread::spawn(move || {
                let _ = stdin.write_all(&data);
            }))
        }
        _ => None,
    };
    let out = read_on_thread(child.stdout.take());
    let err = read_on_thread(child.stderr.take());

    let status = wait_until(&mut child, Instant::now() + timeout).map_err(|e| format!("waiting for {what}: {e}"))?;
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some(f) = feeder {
        let _ = f.join();
    }
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

/// Runs `cmd` to completion (stdin /dev/null), capturing its output.
pub fn run(cmd: Command, timeout: Duration) -> Result<Finished, String> {
    run_with_input(cmd, None, timeout)
}

/// Runs `cmd` and requires exit status 0.
pub fn run_ok(cmd: Command, timeout: Duration) -> Result<Finished, String> {
    let what = format!("{cmd:?}");
    let done = run(cmd, timeout)?;
    if done.status.success() {
        Ok(done)
    } else {
        Err(format!("{what} failed: {}", done.report()))
    }
}

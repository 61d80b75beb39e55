//! Signals to processes: std can only kill.

use std::process::Command;
use std::time::Duration;

use super::run::run_ok;

/// Sends SIG`name` ("TERM", "STOP", "CONT"...) to `pid` with the shell's
/// builtin `kill`.
pub fn signal(pid: u32, name: &str) -> Result<(), String> {
    let mut kill = Command::new("sh");
    kill.arg("-c").arg(format!("kill -{name} {pid}"));
    run_ok(kill, Duration::from_secs(10)).map(|_| ())
}

//! Waiting for a child with a time limit: std's `wait` has none.

use std::io;
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// Waits for `child` to exit, polling until `deadline`; Ok(None) if it is
/// still running then.
pub fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A child that is killed and reaped when dropped, so that a test that
/// panics leaves no server behind.
pub struct KilledOnDrop(pub Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        // No-ops if it has already exited and been reaped.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

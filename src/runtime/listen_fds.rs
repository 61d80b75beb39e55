//! Listening sockets handed over at start: systemd's socket activation
//! protocol (`sd_listen_fds(3)`), which other service managers and a
//! restarting server can speak too. The sockets are fds 3, 4, …;
//! `LISTEN_FDS` says how many, `LISTEN_PID` which process they are for (a
//! child that inherited the variables must not take them).

use std::os::fd::RawFd;

use crate::runtime::error::{Error, Result};

/// The first fd handed over.
pub const LISTEN_FDS_START: RawFd = 3;

/// How many listening sockets were handed to this process (fds 3 to 3+n-1),
/// 0 when none were (no `LISTEN_PID`, or another process's). Each gets
/// FD_CLOEXEC, so that programs this one starts do not inherit them. With
/// `unset_environment`, the three variables (`LISTEN_PID`, `LISTEN_FDS`,
/// `LISTEN_FDNAMES`) are removed, whatever the outcome: call it before
/// starting threads. `InvalidArgument` when a variable is not a number.
pub fn listen_fds(unset_environment: bool) -> Result<usize> {
    let result = read_listen_fds();
    if unset_environment {
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(name);
        }
    }
    result
}

fn read_listen_fds() -> Result<usize> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let count = count_for(pid.as_deref(), fds.as_deref(), std::process::id())?;
    for fd in LISTEN_FDS_START..LISTEN_FDS_START + count as RawFd {
        // SAFETY: fcntl on an fd number: a closed one is an error (EBADF),
        // which is reported below, not undefined behaviour.
        let ok = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            flags >= 0 && libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) >= 0
        };
        if !ok {
            return Err(Error::InvalidArgument("LISTEN_FDS names a closed fd"));
        }
    }
    Ok(count)
}

/// The count the variables give process `me`.
fn count_for(pid: Option<&str>, fds: Option<&str>, me: u32) -> Result<usize> {
    let Some(pid) = pid else { return Ok(0) };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| Error::InvalidArgument("LISTEN_PID is not a number"))?;
    if pid != me {
        return Ok(0);
    }
    let count: usize = fds
        .ok_or(Error::InvalidArgument("LISTEN_PID without LISTEN_FDS"))?
        .trim()
        .parse()
        .map_err(|_| Error::InvalidArgument("LISTEN_FDS is not a number"))?;
    Ok(count.min((i32::MAX - LISTEN_FDS_START) as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variables_are_read_as_systemd_writes_them() {
        assert_eq!(count_for(None, None, 7), Ok(0), "nothing handed over");
        assert_eq!(count_for(None, Some("2"), 7), Ok(0), "no LISTEN_PID: not ours");
        assert_eq!(count_for(Some("8"), Some("2"), 7), Ok(0), "another process's");
        assert_eq!(count_for(Some("7"), Some("2"), 7), Ok(2));
        assert_eq!(count_for(Some("7"), Some("0"), 7), Ok(0));
        assert!(count_for(Some("x"), Some("1"), 7).is_err());
        assert!(count_for(Some("7"), Some("one"), 7).is_err());
        assert!(count_for(Some("7"), None, 7).is_err());
    }
}

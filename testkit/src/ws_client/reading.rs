//! Reading a `TcpStream` against a deadline, telling a closed connection from
//! a slow one.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A read that got nothing, and why.
#[derive(Debug)]
pub enum ReadError {
    /// The server closed the connection (read returned 0 or ECONNRESET).
    Closed(io::ErrorKind),
    /// Nothing complete arrived before the deadline.
    Timeout,
    /// Anything else, including a malformed frame.
    Other(String),
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
/// returning when and how many bytes came; or Err on timeout.
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

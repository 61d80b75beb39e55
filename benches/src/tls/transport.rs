//! The byte stream a load-generator connection reads and writes: its TCP
//! socket, or TLS over it.

use std::io::{self, ErrorKind, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::ClientConnection;

use super::TlsClient;

/// A connection's byte stream. `read` returns less than asked only when the
/// socket has no more for now (or at its end), as a plain socket's does.
pub struct Transport {
    pub tcp: TcpStream,
    tls: Option<Box<ClientConnection>>,
}

impl Transport {
    pub fn new(tcp: TcpStream, tls: Option<&TlsClient>) -> Result<Transport, String> {
        let tls = match tls {
            None => None,
            Some(t) => {
                let mut conn =
                    ClientConnection::new(Arc::clone(&t.config), t.name.clone()).map_err(|e| format!("TLS: {e}"))?;
                // What the generator queues is bounded by its messages in flight.
                conn.set_buffer_limit(None);
                Some(Box::new(conn))
            }
        };
        Ok(Transport { tcp, tls })
    }

    /// Writes the TLS records waiting; Ok(false) when the socket is full.
    pub fn push(&mut self) -> io::Result<bool> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(true);
        };
        while tls.wants_write() {
            match tls.write_tls(&mut self.tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Takes plaintext: refused while records wait for the socket, so the
    /// caller sees the socket's backpressure.
    fn take<'a>(&mut self, bufs: impl Iterator<Item = &'a [u8]>) -> io::Result<usize> {
        if !self.push()? {
            return Err(ErrorKind::WouldBlock.into());
        }
        let tls = self.tls.as_deref_mut().expect("only over TLS");
        let mut n = 0;
        for b in bufs {
            tls.writer().write_all(b)?;
            n += b.len();
        }
        self.push()?;
        Ok(n)
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return self.tcp.read(buf);
        };
        let (mut filled, mut eof) = (0, false);
        loop {
            match tls.reader().read(&mut buf[filled..]) {
                Ok(0) => return Ok(filled),
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        return Ok(filled);
                    }
                    continue;
                }
                // TCP closed without close_notify: the WebSocket close was checked.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(filled),
                Err(e) if e.kind() == ErrorKind::WouldBlock && eof => return Ok(filled),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            match tls.read_tls(&mut self.tcp) {
                Ok(0) => eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock && filled > 0 => return Ok(filled),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            tls.process_new_packets()
                .map_err(|e| io::Error::new(ErrorKind::InvalidData, format!("TLS: {e}")))?;
            // Handshake messages to answer; a full socket is retried by the next flush.
            if tls.wants_write() {
                let _ = tls.write_tls(&mut self.tcp);
            }
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.tls {
            None => self.tcp.write(buf),
            Some(_) => self.take(std::iter::once(buf)),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self.tls {
            None => self.tcp.write_vectored(bufs),
            Some(_) => self.take(bufs.iter().map(|b| &**b)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

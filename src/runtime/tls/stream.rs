//! One connection's TLS state: a rustls connection moving bytes between the
//! socket (records) and the session (plaintext), never blocking.
//!
//! What rustls holds is bounded, not charged to the memory budget: records
//! waiting for the socket, up to [`BUFFER_LIMIT`] (the connection hands it
//! plaintext only once the records before are written, so one turn's worth);
//! plaintext taken before the handshake ends, up to [`BUFFER_LIMIT`];
//! received plaintext, 16 KiB plus one read (rustls refuses to read more until
//! it is taken, and the connection takes it all after each read); one record
//! being received (16 KiB and its overhead; 64 KiB during a handshake).

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::pki_types::ServerName;

use super::{ClientTls, ServerTls, TlsError};
use crate::runtime::transport::{Socket, Transport};

/// The TLS side of a connection (boxed in the connection's rarely-used part,
/// so plain connections do not grow).
pub(crate) struct Stream {
    conn: rustls::Connection,
    /// Where a server counts the handshakes it refuses.
    refused: Option<Arc<AtomicU64>>,
    /// TLS this one runs inside (a `wss://` server through an `https://`
    /// proxy): its records are the outer connection's plaintext.
    outer: Option<Box<Stream>>,
}

/// Bytes of records waiting for the socket, and of plaintext waiting for the
/// handshake, that a connection's rustls state holds at most (rustls' own
/// default, set here so that it stays what the bound above says).
pub(crate) const BUFFER_LIMIT: usize = 64 << 10;

/// `Socket` as the `io::Read`/`io::Write` rustls moves records through.
struct Io(Socket);

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream {
    pub(crate) fn server(tls: &ServerTls) -> Result<Stream, TlsError> {
        let mut conn = rustls::ServerConnection::new(Arc::clone(&tls.config)).map_err(|e| TlsError::from(&e))?;
        conn.set_buffer_limit(Some(BUFFER_LIMIT));
        Ok(Stream {
            conn: conn.into(),
            refused: Some(Arc::clone(&tls.refused)),
            outer: None,
        })
    }

    /// A client for `host` (sent as SNI, and checked against the certificate;
    /// an IP address is checked against the certificate's addresses).
    pub(crate) fn client(tls: &ClientTls, host: &str) -> Result<Stream, TlsError> {
        let name = ServerName::try_from(host.to_owned()).map_err(|_| TlsError::NameMismatch)?;
        let mut conn = rustls::ClientConnection::new(tls.config()?, name).map_err(|e| TlsError::from(&e))?;
        conn.set_buffer_limit(Some(BUFFER_LIMIT));
        Ok(Stream {
            conn: conn.into(),
            refused: None,
            outer: None,
        })
    }

    /// `inner` inside `outer` when there is one (set up and done with its
    /// own handshake: an `https://` proxy's), so that what `inner` sends and
    /// receives goes through it; else `inner` alone.
    pub(crate) fn within(mut inner: Box<Stream>, outer: Option<Box<Stream>>) -> Option<Box<Stream>> {
        inner.outer = outer;
        Some(inner)
    }

    /// Reads records from the socket (`Ok(0)`: the peer closed TCP). Inside
    /// an outer TLS connection: its plaintext, after reading the socket when
    /// it has none decrypted already.
    pub(crate) fn read_records(&mut self, socket: Socket) -> io::Result<usize> {
        let Some(outer) = self.outer.as_deref_mut() else {
            return self.conn.read_tls(&mut Io(socket));
        };
        if let Some(moved) = Self::take_from(&mut self.conn, outer)? {
            return Ok(moved);
        }
        let read = outer.read_records(socket)?;
        if read == 0 {
            return Ok(0);
        }
        outer.process().map_err(io::Error::other)?;
        // Part of a record: nothing to move yet, but not an end either.
        Ok(Self::take_from(&mut self.conn, outer)?.unwrap_or(read))
    }

    /// Moves what `outer` decrypted into `conn` as its records; `None`:
    /// nothing is waiting.
    fn take_from(conn: &mut rustls::Connection, outer: &mut Stream) -> io::Result<Option<usize>> {
        match conn.read_tls(&mut outer.conn.reader()) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Takes records received elsewhere (the io_uring transport's buffers)
    /// from the front of `records`: returns how many bytes rustls took (it
    /// takes less than all when its buffer is full; process and read the
    /// plaintext, then give it the rest). Only for a stream without an outer
    /// one (a server's).
    pub(crate) fn read_records_from(&mut self, records: &[u8]) -> io::Result<usize> {
        let mut rest = records;
        self.conn.read_tls(&mut rest)
    }

    /// Appends the records waiting to be sent to `out` (the io_uring
    /// transport sends them from there). Only for a stream without an outer
    /// one (a server's).
    pub(crate) fn write_records_into(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        let mut written = 0;
        while self.conn.wants_write() {
            written += self.conn.write_tls(out)?;
        }
        Ok(written)
    }

    /// Decrypts what was read, and queues any handshake answer or alert.
    pub(crate) fn process(&mut self) -> Result<(), TlsError> {
        self.conn
            .process_new_packets()
            .map(|_| ())
            .map_err(|e| TlsError::from(&e))
    }

    /// Plaintext received, into `buf`; 0 when there is none (yet, or any more).
    pub(crate) fn read_plaintext(&mut self, buf: &mut [u8]) -> usize {
        // WouldBlock: none yet; UnexpectedEof: TCP closed without close_notify,
        // which the socket's EOF reports anyway.
        self.conn.reader().read(buf).unwrap_or(0)
    }

    /// Takes plaintext to send (encrypted now, or once the handshake is done);
    /// returns how much was taken.
    pub(crate) fn write_plaintext(&mut self, data: &[u8]) -> usize {
        self.conn.writer().write(data).unwrap_or(0)
    }

    /// Records are waiting to be written to the socket.
    pub(crate) fn wants_write(&self) -> bool {
        self.conn.wants_write() || self.outer.as_ref().is_some_and(|o| o.wants_write())
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Writes waiting records to the socket (inside an outer TLS
    /// connection: as its plaintext, then its records).
    pub(crate) fn write_records(&mut self, socket: Socket) -> io::Result<usize> {
        let Some(outer) = self.outer.as_deref_mut() else {
            return self.conn.write_tls(&mut Io(socket));
        };
        if !outer.wants_write() && self.conn.wants_write() {
            self.conn.write_tls(&mut outer.conn.writer())?;
        }
        match outer.wants_write() {
            true => outer.write_records(socket),
            false => Ok(0),
        }
    }

    /// Server: the name the client asked for (SNI), once its hello came.
    pub(crate) fn server_name(&self) -> Option<&str> {
        match &self.conn {
            rustls::Connection::Server(s) => s.server_name(),
            rustls::Connection::Client(_) => None,
        }
    }

    /// Certificate `index` of the peer's chain (DER, its own first), once
    /// the handshake verified it (a server asks for one with mutual TLS).
    pub(crate) fn peer_certificate(&self, index: usize) -> Option<&[u8]> {
        self.conn.peer_certificates()?.get(index).map(|c| c.as_ref())
    }

    /// The handshake failed: a server counts it as refused.
    pub(crate) fn count_refusal(&self) {
        if let Some(refused) = self.refused.as_ref().filter(|_| self.conn.is_handshaking()) {
            refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Says goodbye (close_notify) if the socket has room; the TCP close follows.
    pub(crate) fn close(&mut self, socket: Socket) {
        self.conn.send_close_notify();
        let _ = self.write_records(socket);
        if let Some(outer) = self.outer.as_deref_mut() {
            outer.close(socket);
        }
    }
}

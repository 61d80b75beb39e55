//! A connection over TLS: records read from the socket are decrypted and the
//! plaintext fed to the session; the session's output is encrypted and written
//! in the turn's one write. The TLS state lives in the rarely-used `Extra`, so
//! a plain connection pays one check and no memory for it.
//!
//! Backpressure: session output moves into TLS only once the records before it
//! are written, so what waits stays counted in the session's output (its
//! `max_output`), and TLS holds at most one turn's records besides.

use std::io::ErrorKind;

use crate::proto::close_code::CloseCode;
use crate::runtime::connection::{Connection, Flags, Lifecycle};
use crate::runtime::error::Error;
use crate::runtime::handler::ConnHandler;
use crate::runtime::log::LogEvent;
use crate::runtime::reactor::Reactor;
use crate::runtime::refusal::Refusal;
use crate::runtime::stats::Bump;
use crate::runtime::tls::{self, Stream, TlsError};

/// What a pass of writing TLS output came to.
pub(super) enum TlsFlush {
    /// Everything is written.
    Done,
    /// The socket is full: wait for a writable event.
    Blocked,
    /// The connection ended.
    Failed,
}

impl<H: ConnHandler> Connection<H> {
    /// The connection runs over TLS.
    pub(super) fn is_tls(&self) -> bool {
        self.with_extra(|e| e.tls.is_some()).unwrap_or(false)
    }

    /// Server over TLS: the name the client asked for (SNI).
    pub fn tls_server_name(&self) -> Option<String> {
        self.with_extra(|e| e.tls.as_ref().and_then(|t| t.server_name().map(str::to_owned)))
            .flatten()
    }

    /// Runs `f` on certificate `index` (DER) of the peer's verified chain
    /// (a client's under mutual TLS, a server's): `None` without one.
    pub fn with_tls_peer_certificate<R>(&self, index: usize, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.with_extra(|e| e.tls.as_ref().and_then(|t| t.peer_certificate(index)).map(f))
            .flatten()
    }

    /// Runs over TLS from now on (set before the first byte moves).
    pub(super) fn set_tls(&self, stream: Option<Stream>) {
        if stream.is_some() || self.extra.borrow().is_some() {
            self.extra().tls = stream.map(Box::new);
        }
    }

    pub(super) fn with_tls<R>(&self, f: impl FnOnce(&mut Stream) -> R) -> Option<R> {
        let mut extra = self.extra.borrow_mut();
        extra.as_mut().and_then(|e| e.tls.as_deref_mut()).map(f)
    }

    /// Records wait for the socket, or the handshake still has to finish
    /// (output taken before it is sent after it).
    pub(super) fn tls_output_waiting(&self) -> bool {
        self.with_tls(|t| t.wants_write() || t.is_handshaking())
            .unwrap_or(false)
    }

    /// Reads records (a bounded number per turn) and feeds their plaintext.
    pub(super) fn read_tls_socket(&self, reactor: &Reactor, reads_per_turn: usize) {
        let socket = self.socket();
        // Plaintext decrypted earlier and left while reading waited (an
        // upgrade being decided, a pause).
        self.feed_plaintext(reactor);
        let mut reads = 0;
        while self.can_read() && self.has(Flags::READABLE) && self.budget_allows_read(reactor) {
            if reads == reads_per_turn {
                self.schedule_ready();
                break;
            }
            reads += 1;
            let read = self.with_tls(|t| t.read_records(socket)).unwrap_or(Ok(0));
            let eof = match read {
                Ok(0) => true,
                Ok(n) => {
                    reactor.counters().wire_bytes_in.add(n as u64);
                    false
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.clear(Flags::READABLE);
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.clear(Flags::READABLE);
                    if let Some(kind) = tls::read_refusal(&e) {
                        return self.fail_tls(kind);
                    }
                    return self.finish(CloseCode::ABNORMAL.0, "read failed", Some(Error::Io("read")));
                }
            };
            self.last_input_ms.set(self.now32());
            if let Some(Err(kind)) = self.with_tls(Stream::process) {
                return self.fail_tls(kind);
            }
            self.feed_plaintext(reactor);
            // Handshake answers, alerts, and the session's replies.
            self.schedule_flush();
            if eof {
                self.clear(Flags::READABLE);
                return self.on_eof();
            }
            if self.lifecycle.get() != Lifecycle::Running || self.has(Flags::RELEASED) {
                return;
            }
        }
    }

    /// Feeds all the plaintext decrypted so far (a pause keeps the rest in
    /// the backlog: rustls must be drained to go on reading).
    pub(super) fn feed_plaintext(&self, reactor: &Reactor) {
        loop {
            if !self.can_read() {
                return;
            }
            let mut buffer = reactor.take_read_buffer();
            let room = self.input_room(buffer.len());
            let n = self.with_tls(|t| t.read_plaintext(&mut buffer[..room])).unwrap_or(0);
            if n > 0 {
                self.feed(&mut buffer[..n]);
            }
            reactor.return_read_buffer(buffer);
            if n == 0 {
                return;
            }
            self.after_input();
            if self.lifecycle.get() != Lifecycle::Running || self.has(Flags::RELEASED) {
                return;
            }
        }
    }

    /// Sends the alert rustls queued, then ends with the TLS error.
    pub(super) fn fail_tls(&self, kind: TlsError) {
        // Refused as the acceptor counts it (`tls_refused`): in the TLS handshake.
        let detail = || format!("TLS failed: {kind}");
        match self.with_tls(|t| t.is_handshaking()).unwrap_or(false) {
            true => self.note_refusal(Refusal::Tls, detail),
            false => self.log(LogEvent::TlsFailed, detail),
        }
        let socket = self.socket();
        self.with_tls(|t| {
            t.count_refusal();
            t.write_records(socket)
        });
        // The reason says which failure (the close_ex callback's `reason`).
        self.finish(CloseCode::ABNORMAL.0, &kind.to_string(), Some(Error::Tls(kind)));
    }

    /// Encrypts the session's output and writes the records.
    pub(super) fn flush_tls(&self) -> TlsFlush {
        let socket = self.socket();
        loop {
            if !self.with_tls(|t| t.wants_write()).unwrap_or(false) && !self.encrypt_output() {
                return TlsFlush::Done;
            }
            match self.with_tls(|t| t.write_records(socket)) {
                None => return TlsFlush::Done,
                Some(Ok(n)) => {
                    if let Some(c) = self.counters() {
                        c.wire_bytes_out.add(n as u64);
                    }
                }
                Some(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
                Some(Err(e)) if e.kind() == ErrorKind::WouldBlock => return TlsFlush::Blocked,
                Some(Err(_)) => {
                    self.finish(CloseCode::ABNORMAL.0, "write failed", Some(Error::Io("write")));
                    return TlsFlush::Failed;
                }
            }
        }
    }

    /// Moves output into TLS (once the records before it are written):
    /// the session's, and published frames encrypted from where they lie,
    /// in their place among it. Returns false when nothing is to be
    /// written (no output, or output held until the handshake is done).
    pub(super) fn encrypt_output(&self) -> bool {
        let taken = if self.has_published() {
            self.encrypt_published()
        } else {
            let Some(session) = self.session() else {
                return false;
            };
            let pending = session.pending();
            if pending.is_empty() {
                return false;
            }
            let taken = self.with_tls(|t| t.write_plaintext(&pending)).unwrap_or(0);
            drop(pending);
            session
                .consume_keeping(taken)
                .expect("TLS took at most what was pending");
            taken
        };
        taken > 0 || self.with_tls(|t| t.wants_write()).unwrap_or(false)
    }

    /// Ends TLS with the socket: close_notify when the handshake was done, and
    /// the state (rustls buffers) freed.
    pub(super) fn end_tls(&self) {
        let socket = self.socket();
        let stream = self.extra.borrow_mut().as_mut().and_then(|e| e.tls.take());
        if let Some(mut stream) = stream {
            if self.fd.get() >= 0 && !stream.is_handshaking() {
                stream.close(socket);
            }
        }
    }
}

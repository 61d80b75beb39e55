//! Writing: output leaves once per turn (or right after the input that caused
//! it), writable events are asked for only while output waits for socket room,
//! and the drain event tells the program when sending may resume.

use std::io::ErrorKind;

use mio::Interest;

use crate::proto::close_code::CloseCode;
use crate::runtime::connection::published::PublishedFlush;
use crate::runtime::connection::secure::TlsFlush;
use crate::runtime::connection::{Connection, Flags, Lifecycle};
use crate::runtime::error::Error;
use crate::runtime::handler::ConnHandler;
use crate::runtime::stats::Bump;
use crate::runtime::transport::Transport;

impl<H: ConnHandler> Connection<H> {
    /// Output is written at the end of the turn, or right after this connection's
    /// input is processed: all of a turn's output leaves in one write.
    pub(super) fn schedule_flush(&self) {
        if self.has(Flags::DIRTY) {
            return;
        }
        if let Some((reactor, token)) = self.registered() {
            self.set(Flags::DIRTY);
            reactor.mark_dirty(token);
        }
    }

    pub(super) fn schedule_ready(&self) {
        if self.has(Flags::READY) {
            return;
        }
        if let Some((reactor, token)) = self.registered() {
            self.set(Flags::READY);
            reactor.mark_ready(token);
        }
    }

    /// Writes pending output (one write for all the turn produced), then ends the
    /// connection if its session is over.
    pub(super) fn flush(&self) {
        self.clear(Flags::DIRTY);
        if self.lifecycle.get() != Lifecycle::Running || self.has(Flags::RELEASED) {
            return;
        }
        if self.runs_on_ring() {
            self.flush_ring();
            return self.after_flush();
        }
        if self.is_tls() {
            if self.has_published() {
                self.drop_frames_if_closing();
            }
            match self.flush_tls() {
                TlsFlush::Done => {}
                TlsFlush::Blocked => self.want_writable(true),
                TlsFlush::Failed => return,
            }
            return self.after_flush();
        }
        if self.has_published() {
            match self.flush_published() {
                PublishedFlush::Done => {}
                PublishedFlush::Blocked => {
                    self.want_writable(true);
                    return self.after_flush();
                }
                PublishedFlush::Failed => return,
            }
        }
        loop {
            let (written, all) = {
                let Some(session) = self.session() else { return };
                let pending = session.pending();
                if pending.is_empty() {
                    break;
                }
                (self.socket().write(&pending), pending.len())
            };
            match written {
                Ok(n) => {
                    if let Some(c) = self.counters() {
                        c.wire_bytes_out.add(n as u64);
                    }
                    if let Some(session) = self.session() {
                        session
                            .consume_keeping(n)
                            .expect("the socket took at most what was pending");
                    }
                    if n == all {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // The socket is full: the next writable event continues.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.want_writable(true);
                    break;
                }
                Err(_) => {
                    self.finish(CloseCode::ABNORMAL.0, "write failed", Some(Error::Io("write")));
                    return;
                }
            }
        }
        self.after_flush();
    }

    /// Asks for writable events, or stops asking (one system call, only when
    /// output starts or stops waiting for room in the socket).
    fn want_writable(&self, on: bool) {
        if self.has(Flags::WRITE_INTEREST) == on {
            return;
        }
        let Some((reactor, token)) = self.registered() else {
            return;
        };
        let interest = if on {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let fd = self.fd.get();
        if reactor
            .registry()
            .reregister(&mut mio::unix::SourceFd(&fd), token, interest)
            .is_ok()
        {
            if on {
                self.set(Flags::WRITE_INTEREST);
            } else {
                self.clear(Flags::WRITE_INTEREST);
            }
        }
    }

    fn after_flush(&self) {
        self.account();
        let (buffered, max_output, full, wants_input) = match self.session() {
            Some(s) => (
                s.buffered() + s.in_flight() + self.published_bytes(),
                s.config().max_output(),
                s.is_full(),
                s.state().wants_input(),
            ),
            None => return,
        };
        if buffered == 0 && !self.tls_output_waiting() && !self.has_published() && !self.ring_sending() {
            self.want_writable(false);
            if !wants_input {
                self.finish_with_recorded_code();
                return;
            }
        }
        if self.has(Flags::DRAIN_WANTED) && buffered <= max_output / 4 {
            self.clear(Flags::DRAIN_WANTED);
            self.handler.on_drain(self);
        }
        if !full && self.has_input() && self.can_read() {
            self.schedule_ready();
        }
    }
}

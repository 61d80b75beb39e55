//! How a connection ends: closed (the handler is told once), stopped by the
//! program (silently, reusable), detached by a departing reactor, or released.

use crate::proto::close_code::CloseCode;
use crate::proto::error::Error as SessionError;
use crate::runtime::connection::{Connection, Flags, Lifecycle};
use crate::runtime::error::{Error, Result};
use crate::runtime::handler::{ConnHandler, Ending};
use crate::runtime::timers::NO_TOKEN;

/// Input left unread that is read away before the socket closes (beyond it,
/// the close resets the connection).
const UNREAD_INPUT_DISCARDED: usize = 256 << 10;

impl<H: ConnHandler> Connection<H> {
    /// Ends the connection: deregisters and closes the socket, and tells the
    /// handler (once), with the socket still open meanwhile. `error` is what
    /// went wrong, unless something was recorded already.
    ///
    /// A client that was redirected goes on to the next hop instead; one that
    /// reconnects waits for its next attempt after telling the handler. The
    /// handler may stop the connection, or start it again, from `on_close`:
    /// what it did then stands.
    pub(crate) fn finish(&self, code: u16, reason: &str, error: Option<Error>) {
        if matches!(self.lifecycle.get(), Lifecycle::Closed | Lifecycle::Idle) {
            return;
        }
        if let Some(next) = self.with_client(|c| c.redirect.take()).flatten() {
            return self.follow_redirect(next);
        }
        self.lifecycle.set(Lifecycle::Closed);
        if let Some(error) = error {
            self.extra().close_error.get_or_insert(error);
        }
        self.count_end(code);
        self.deregister();
        self.plan_retry();
        if !self.has(Flags::RELEASED) {
            let ending = Ending {
                code,
                reason,
                error: self.close_error(),
            };
            self.handler.on_close(self, &ending);
        }
        if self.lifecycle.get() != Lifecycle::Closed {
            // Stopped, or started again, from `on_close`: the old socket went
            // with the stop.
            return;
        }
        self.drop_socket();
        if self.has(Flags::RELEASED) || self.wait_for_retry() {
            return;
        }
        if self.has(Flags::OWNED_BY_REACTOR) {
            if let Some(reactor) = self.reactor() {
                self.set(Flags::RELEASED);
                // SAFETY: a connection the reactor owns came from `create` (a
                // leaked box) and nothing else frees it; it was deregistered above.
                // It is freed once the running dispatch is over.
                unsafe { reactor.bury(self.as_source()) };
            }
        }
    }

    /// Ends the connection with the close code and reason seen so far.
    pub(super) fn finish_with_recorded_code(&self) {
        let code = match self.close_code.get() {
            0 => CloseCode::ABNORMAL.0,
            code => code,
        };
        let reason = self
            .extra
            .borrow_mut()
            .as_mut()
            .map(|e| std::mem::take(&mut e.close_reason))
            .unwrap_or_default();
        self.finish(code, &reason, None);
    }

    fn deregister(&self) {
        self.forget_resolution();
        if let Some((reactor, token)) = self.registered() {
            self.uncount();
            self.leave_topics(reactor, token.0 as u32);
            reactor.disarm_timer(token);
            self.set_held_back(reactor.budget(), false);
            if reactor.budget().forget(token.0 as u32) {
                reactor.wake_waiting();
            }
            let fd = self.fd.get();
            // The socket is closed next (`drop_socket`, after `on_close`):
            // closing one of ours takes it out of the poll, no call needed
            // (and the ring forgets it by itself).
            if !self.leave_ring(reactor, token) && fd >= 0 && !self.own_socket.get() {
                let _ = reactor.registry().deregister(&mut mio::unix::SourceFd(&fd));
            }
            reactor.remove(token);
        }
        self.token.set(NO_TOKEN);
    }

    /// Whether this side failed the connection (a protocol error, a limit,
    /// a timeout): the peer may still be sending, and bytes that came after
    /// the last read would make the close a reset. Not after a closing
    /// handshake (nothing follows the peer's close) or the peer's EOF.
    fn failed_while_peer_sends(&self) -> bool {
        !matches!(self.close_error(), None | Some(Error::Session(SessionError::Eof)))
    }

    /// Closes the socket and frees the session and its buffers.
    pub(super) fn drop_socket(&self) {
        self.end_tls();
        self.clear_published();
        if self.fd.get() >= 0 && self.lifecycle.get() != Lifecycle::Idle {
            if self.has(Flags::READABLE) || self.failed_while_peer_sends() {
                // Input waits unread: closing would reset the connection,
                // and the close frame just sent must not be lost to a reset.
                // (Otherwise the last read drained the socket: another would
                // find nothing, unless the connection failed while the
                // peer was still sending.)
                self.socket().discard_input(UNREAD_INPUT_DISCARDED);
            }
            self.socket().close();
        }
        self.fd.set(-1);
        self.own_socket.set(false);
        match self.session.try_borrow_mut() {
            Ok(mut session) => {
                if let Some(session) = session.take() {
                    self.discharge(&session);
                }
            }
            // Its feed is running a handler: dropped when the feed returns.
            Err(_) => self.set(Flags::DROP_SESSION),
        }
        let backlog = self.extra.borrow_mut().as_mut().map_or(0, |e| {
            // Its place in the acceptor's limits goes with the socket.
            e.accepted = None;
            std::mem::take(&mut e.backlog).len() + std::mem::take(&mut e.ring_records).len()
        });
        self.charge(-(backlog as isize));
    }

    /// Drops a session whose end came while its feed was running.
    pub(super) fn drop_session_if_asked(&self) {
        if self.has(Flags::DROP_SESSION) {
            if let Ok(mut session) = self.session.try_borrow_mut() {
                if let Some(session) = session.take() {
                    self.discharge(&session);
                }
                self.clear(Flags::DROP_SESSION);
            }
        }
    }

    /// Drops the connection without a closing handshake or handler call; it may
    /// be started again with a new socket.
    pub fn stop(&self) -> Result<()> {
        if self.lifecycle.get() == Lifecycle::Idle {
            return Err(Error::State);
        }
        self.count_dropped();
        self.deregister();
        self.drop_socket();
        self.lifecycle.set(Lifecycle::Idle);
        self.with_client(|c| {
            c.retry_at = None;
            c.owed_close = None;
            c.redirect = None;
        });
        let kept = Flags::RELEASED | Flags::OWNED_BY_REACTOR | Flags::OWN_CONFIG | Flags::STREAMING | Flags::SERVE_HTTP;
        self.flags.set(self.flags.get() & (kept | Flags::DROP_SESSION));
        if !self.has(Flags::OWN_CONFIG) {
            self.config.set(None);
        }
        Ok(())
    }

    /// The reactor is going away. Returns whether the reactor owns (and must
    /// free) this connection.
    pub(super) fn detach(&self) -> bool {
        let _ = self.stop();
        self.reactor.set(std::ptr::null());
        self.has(Flags::OWNED_BY_REACTOR)
    }

    /// Frees the connection now, or when the running dispatch ends if called
    /// from a handler. Closes the socket without telling the handler; from
    /// inside its `on_close`, the socket stays open until `on_close` returns,
    /// as promised there.
    ///
    /// # Safety
    /// `this` came from [`Connection::create`] and is not used by the caller
    /// afterwards.
    pub unsafe fn release(this: *mut Self) {
        // SAFETY: live per the caller.
        let conn = unsafe { &*this };
        if conn.lifecycle.get() == Lifecycle::Idle && conn.fd.get() >= 0 {
            // Handed over with set_fd but never started: still ours to close.
            conn.socket().close();
            conn.fd.set(-1);
        }
        // Closed with its socket still there: `finish` is telling the handler,
        // and closes the socket (and goes on using the connection) after.
        let in_on_close = conn.lifecycle.get() == Lifecycle::Closed && conn.fd.get() >= 0;
        conn.set(Flags::RELEASED);
        conn.count_dropped();
        conn.deregister();
        if !in_on_close {
            conn.drop_socket();
        }
        match conn.reactor() {
            // SAFETY: from Box::leak in `create`; deregistered above.
            Some(reactor) if reactor.is_dispatching() || in_on_close => unsafe { reactor.bury(conn.as_source()) },
            // SAFETY: from Box::leak in `create`; no dispatch can be using it.
            _ => drop(unsafe { Box::from_raw(this) }),
        }
    }
}

//! A client's next attempt. With reconnection configured, a client whose
//! connection ends without the program closing it (EOF, an error, a
//! timeout, the server's close, a failed attempt) waits a backoff delay,
//! then connects again to the URL it was given (resolving names again): the
//! close callbacks learn whether and when (`reconnect_delay`), and the
//! program stops it by closing, stopping or releasing the connection.
//!
//! A close the program makes before the connection opened (while it
//! connects, or waits for the next attempt) ends it for good: its close
//! callbacks run at the next turn, never inside the program's call.

use crate::proto::sender::Sender;
use crate::proto::state::State;
use crate::runtime::connection::{Connection, Flags, Lifecycle};
use crate::runtime::error::{Error, Result};
use crate::runtime::handler::ConnHandler;

impl<H: ConnHandler> Connection<H> {
    /// Client role, with reconnection: the milliseconds until the next
    /// attempt, if one follows (inside the close callbacks, and while the
    /// connection waits for it); `None` otherwise.
    pub fn reconnect_delay(&self) -> Option<u64> {
        if !matches!(self.lifecycle.get(), Lifecycle::Closed | Lifecycle::Waiting) {
            return None;
        }
        let now = self.reactor()?.now_ms();
        self.with_client(|c| c.retry_at.map(|at| at.saturating_sub(now)))
            .flatten()
    }

    /// The connection ended: decides whether an attempt follows, and when.
    pub(super) fn plan_retry(&self) {
        let Some(backoff) = self.config().client.reconnect else {
            return;
        };
        let Some(reactor) = self.reactor() else {
            return;
        };
        let now = reactor.now_ms();
        // Once a drain began, nothing starts again.
        let ended = self.has(Flags::RELEASED) || reactor.drain_begun();
        self.with_client(|c| {
            c.retry_at = None;
            if c.closed || ended {
                return;
            }
            // A connection that lasted starts the backoff over.
            if c.opened_ms
                .take()
                .is_some_and(|opened| now - opened >= backoff.max_ms() as u64)
            {
                c.failures = 0;
            }
            let delay = backoff.random_delay(c.failures);
            c.failures = c.failures.saturating_add(1);
            c.retry_at = Some(now + delay as u64);
        });
    }

    /// After the close callbacks: waits for the planned attempt, if any.
    /// Returns whether one follows.
    pub(super) fn wait_for_retry(&self) -> bool {
        let planned = self.with_client(|c| c.retry_at).flatten();
        let (Some(reactor), Some(at)) = (self.reactor(), planned) else {
            return false;
        };
        let token = reactor.add(self.as_source());
        self.token.set(token.0 as u32);
        self.lifecycle.set(Lifecycle::Waiting);
        self.count_waiting(at.saturating_sub(reactor.now_ms()));
        self.arm_timer();
        true
    }

    /// While waiting: milliseconds until there is something to do.
    pub(super) fn waiting_wait(&self) -> Option<u64> {
        let now = self.reactor()?.now_ms();
        self.with_client(|c| match (&c.owed_close, c.retry_at) {
            (Some(_), _) => Some(0),
            (None, Some(at)) => Some(at.saturating_sub(now)),
            (None, None) => None,
        })
        .flatten()
    }

    /// The waiting connection's timer: the owed close callbacks, or the
    /// next attempt.
    pub(super) fn on_waiting_timer(&self) {
        let Some((reactor, token)) = self.registered() else {
            return;
        };
        if let Some((code, reason)) = self.with_client(|c| c.owed_close.take()).flatten() {
            // What ended the last attempt is not what ends this.
            self.extra().close_error = None;
            return self.finish(code, &reason, None);
        }
        match self.with_client(|c| c.retry_at).flatten() {
            Some(at) if at <= reactor.now_ms() => {}
            Some(_) => return self.arm_timer(),
            None => return,
        }
        self.with_client(|c| c.restart());
        let config = self.config();
        let Some(origin) = self.with_client(|c| c.origin.clone()) else {
            return;
        };
        let attempt = Self::prepare_hop(&config, origin).and_then(|hop| self.launch(token, hop, config, true));
        if let Err(e) = attempt {
            self.finish(
                crate::proto::close_code::CloseCode::ABNORMAL.0,
                "reconnection failed",
                Some(e),
            );
        }
    }

    /// Client role: the program closes a connection that has not opened (or
    /// waits to connect again), or cancels from its close callbacks the
    /// attempt they announced. `Ok(false)`: not such a case (the usual close
    /// applies).
    pub(super) fn close_client(&self, code: u16, reason: &str) -> Result<bool> {
        let lifecycle = self.lifecycle.get();
        let attempting = match lifecycle {
            Lifecycle::Resolving | Lifecycle::Connecting | Lifecycle::Tunneling | Lifecycle::Waiting => true,
            Lifecycle::Running => self.state() == Some(State::Handshake),
            Lifecycle::Closed => self.with_client(|c| c.retry_at.is_some()).unwrap_or(false),
            Lifecycle::Idle => false,
        };
        if !attempting || !self.is_client() {
            return Ok(false);
        }
        Sender::check_close(code, reason).map_err(Error::from)?;
        if lifecycle == Lifecycle::Closed {
            // Inside the close callbacks: the announced attempt is off.
            self.with_client(|c| {
                c.closed = true;
                c.retry_at = None;
            });
            return Ok(true);
        }
        let (reactor, _) = self.registered().ok_or(Error::State)?;
        self.drop_hop(reactor);
        self.with_client(|c| {
            c.closed = true;
            c.retry_at = None;
            c.redirect = None;
            c.owed_close = Some((code, reason.to_owned()));
        });
        self.lifecycle.set(Lifecycle::Waiting);
        self.arm_timer();
        Ok(true)
    }

    /// The program closed an open connection: it ends for good.
    pub(super) fn stop_reconnecting(&self) {
        self.with_client(|c| c.closed = true);
    }
}

//! The options of reactor connections: the protocol limits of their sessions,
//! and the timeouts the runtime enforces with its timers.

use std::sync::Arc;

use crate::proto::config::Config;
use crate::runtime::client::ClientOptions;
use crate::runtime::error::{Error, Result};
use crate::runtime::tls::ClientTls;

/// Timers of a reactor connection, in milliseconds. Every setter checks its
/// value, so a `Timeouts` that exists is a valid one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    handshake_ms: u32,
    idle_ms: u32,
    ping_interval_ms: u32,
    pong_ms: u32,
    close_ms: u32,
    message_ms: u32,
    deflate_idle_ms: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            handshake_ms: 10_000,
            idle_ms: 0,
            ping_interval_ms: 0,
            pong_ms: 10_000,
            close_ms: 5_000,
            message_ms: 60_000,
            deflate_idle_ms: 1_000,
        }
    }
}

/// A timeout of 0 would end every connection at once: a mistake, not a setting.
fn positive(ms: u32) -> Result<u32> {
    if ms == 0 {
        Err(Error::InvalidArgument("a timeout of 0"))
    } else {
        Ok(ms)
    }
}

impl Timeouts {
    /// Time allowed for the TCP connect and the opening handshake.
    pub fn handshake_ms(&self) -> u32 {
        self.handshake_ms
    }

    /// Close (1001) after this long without input; 0 = never.
    pub fn idle_ms(&self) -> u32 {
        self.idle_ms
    }

    /// Ping after this long without input; 0 = no keepalive.
    pub fn ping_interval_ms(&self) -> u32 {
        self.ping_interval_ms
    }

    /// Drop the connection when no input arrives this long after a ping.
    pub fn pong_ms(&self) -> u32 {
        self.pong_ms
    }

    /// Drop TCP when the closing handshake does not finish in time.
    pub fn close_ms(&self) -> u32 {
        self.close_ms
    }

    /// Close (1008) a connection whose message takes longer than this from its
    /// first byte to its last, so that memory held by a stalled partial message
    /// comes back; 0 = never.
    pub fn message_ms(&self) -> u32 {
        self.message_ms
    }

    /// permessage-deflate with context takeover: trim the connection's
    /// compression streams (`Session::trim_compression`) once no message has
    /// gone in or out for this long; 0 = never (keep them for life).
    pub fn deflate_idle_ms(&self) -> u32 {
        self.deflate_idle_ms
    }

    /// 0 keeps compression streams for the connection's life.
    pub fn set_deflate_idle_ms(&mut self, ms: u32) {
        self.deflate_idle_ms = ms;
    }

    /// 0 turns the message timeout off.
    pub fn set_message_ms(&mut self, ms: u32) {
        self.message_ms = ms;
    }

    /// [`Error::InvalidArgument`] for 0.
    pub fn set_handshake_ms(&mut self, ms: u32) -> Result<()> {
        self.handshake_ms = positive(ms)?;
        Ok(())
    }

    /// 0 turns the idle timeout off.
    pub fn set_idle_ms(&mut self, ms: u32) {
        self.idle_ms = ms;
    }

    /// 0 turns keepalive pings off.
    pub fn set_ping_interval_ms(&mut self, ms: u32) {
        self.ping_interval_ms = ms;
    }

    /// [`Error::InvalidArgument`] for 0.
    pub fn set_pong_ms(&mut self, ms: u32) -> Result<()> {
        self.pong_ms = positive(ms)?;
        Ok(())
    }

    /// [`Error::InvalidArgument`] for 0.
    pub fn set_close_ms(&mut self, ms: u32) -> Result<()> {
        self.close_ms = positive(ms)?;
        Ok(())
    }
}

/// Everything a reactor connection is configured with. Connections hold it
/// behind an `Arc`, so one value serves many.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnConfig {
    pub protocol: Arc<Config>,
    pub timeouts: Timeouts,
    /// How `wss://` clients verify servers (and show their own certificate).
    pub tls: ClientTls,
    /// Clients: proxies, redirects, reconnection.
    pub client: ClientOptions,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_timeouts_that_would_end_everything_are_refused() {
        let mut t = Timeouts::default();
        assert!(t.set_handshake_ms(0).is_err());
        assert!(t.set_pong_ms(0).is_err());
        assert!(t.set_close_ms(0).is_err());
        assert_eq!(t, Timeouts::default());
        t.set_idle_ms(0);
        t.set_ping_interval_ms(0);
        t.set_deflate_idle_ms(0);
        t.set_pong_ms(1).unwrap();
        assert_eq!(t.pong_ms(), 1);
    }
}

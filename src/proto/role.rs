//! Which end of the connection a session plays.

/// Servers receive masked frames and send unmasked ones; clients the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

//! Limits and options shared by the sessions of a program.

/// Session options. Sessions hold it behind an `Arc`, so one value serves many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Largest frame payload accepted from the peer (close 1009 above it).
    pub max_frame_size: usize,
    /// Largest message accepted from the peer, summed over its fragments (close 1009).
    pub max_message_size: usize,
    /// Output bytes a session may hold before sends fail with [`crate::Error::Full`].
    pub max_output: usize,
    /// Largest opening handshake (request or response head) accepted.
    pub max_handshake_size: usize,
    /// Subprotocols, in order of preference: a server selects the first of these the
    /// client offered; a client offers all of them.
    pub subprotocols: Vec<String>,
    /// Reactor connections: time allowed for the TCP connect and opening handshake.
    pub handshake_timeout_ms: u32,
    /// Reactor connections: close (1001) after this long without input; 0 = never.
    pub idle_timeout_ms: u32,
    /// Reactor connections: ping after this long without input; 0 = no keepalive.
    pub ping_interval_ms: u32,
    /// Reactor connections: drop the connection when no input arrives this long after a ping.
    pub pong_timeout_ms: u32,
    /// Reactor connections: drop TCP when the closing handshake does not finish in time.
    pub close_timeout_ms: u32,
}

pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 << 20;
pub const DEFAULT_MAX_OUTPUT: usize = 16 << 20;
pub const DEFAULT_MAX_HANDSHAKE_SIZE: usize = 8 << 10;

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_output: DEFAULT_MAX_OUTPUT,
            max_handshake_size: DEFAULT_MAX_HANDSHAKE_SIZE,
            subprotocols: Vec::new(),
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 0,
            ping_interval_ms: 0,
            pong_timeout_ms: 10_000,
            close_timeout_ms: 5_000,
        }
    }
}

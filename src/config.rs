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
        }
    }
}

//! permessage-deflate (RFC 7692): negotiation, and the compressor and
//! decompressor a session uses once it is agreed. The session decides which
//! messages are compressed (RSV1 on their first frame); this module only
//! turns bytes into bytes, within limits.

pub mod allowance;
pub mod config;
pub mod deflater;
pub mod inflater;
pub mod negotiation;
mod window;

pub use config::DeflateConfig;
pub use negotiation::Agreed;

/// Whether to compress a message sent on a connection that agreed on
/// permessage-deflate (without the extension nothing is compressed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compress {
    /// When at least [`DeflateConfig::min_size`] bytes long.
    #[default]
    Auto,
    /// Whatever its size.
    Always,
    /// Never: for small or already compressed payloads.
    Never,
}

//! What a program asks of permessage-deflate: the parameters to offer or
//! accept (RFC 7692 §7.1), how hard to compress, and which messages to leave
//! alone. Every setter checks its value, so a `DeflateConfig` that exists is valid.

use crate::proto::error::{Error, Result};

/// The LZ77 window sizes RFC 7692 allows, as powers of two.
pub const MIN_WINDOW_BITS: u8 = 8;
pub const MAX_WINDOW_BITS: u8 = 15;

/// permessage-deflate settings; a session has the extension only if its config holds one.
///
/// The two ways to spend memory:
/// - [`DeflateConfig::shared`] (the default): no context takeover in either
///   direction. Every message is compressed and decompressed on its own, with
///   streams shared by all the connections of a thread, so a compressed
///   connection costs no more memory than a plain one.
/// - [`DeflateConfig::dedicated`]: context takeover, each connection with its
///   own streams (allocated at its first compressed message, trimmed to the
///   peer's window once idle: see `Session::trim_compression`): better
///   ratios on small similar messages, at
///   [`DeflateConfig::connection_memory`] bytes per active connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: u8,
    client_max_window_bits: u8,
    level: u8,
    mem_level: u8,
    min_size: usize,
    max_inflate_ratio: u32,
}

/// The default of [`DeflateConfig::max_inflate_ratio`]: above what context
/// takeover gives messages that repeat earlier ones (100-200), far under a
/// bomb's (about 1,000).
pub const DEFAULT_MAX_INFLATE_RATIO: u32 = 256;

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig::shared()
    }
}

fn window_bits(bits: u8) -> Result<u8> {
    if (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits) {
        Ok(bits)
    } else {
        Err(Error::InvalidArgument)
    }
}

impl DeflateConfig {
    /// No context takeover either way, 15-bit windows, level 1, messages
    /// under 64 bytes sent as they are.
    pub fn shared() -> DeflateConfig {
        DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
            level: 1,
            mem_level: 8,
            min_size: 64,
            max_inflate_ratio: DEFAULT_MAX_INFLATE_RATIO,
        }
    }

    /// Context takeover both ways with `window_bits`-bit windows (8-15) both ways.
    pub fn dedicated(window_bits: u8) -> Result<DeflateConfig> {
        let mut config = DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            ..DeflateConfig::shared()
        };
        config.set_server_max_window_bits(window_bits)?;
        config.set_client_max_window_bits(window_bits)?;
        Ok(config)
    }

    /// The server starts each message with an empty window (asked for by a
    /// client, required by a server).
    pub fn server_no_context_takeover(&self) -> bool {
        self.server_no_context_takeover
    }

    /// The client starts each message with an empty window (asked for by
    /// either side).
    pub fn client_no_context_takeover(&self) -> bool {
        self.client_no_context_takeover
    }

    /// Largest window the server compresses with.
    pub fn server_max_window_bits(&self) -> u8 {
        self.server_max_window_bits
    }

    /// Largest window the client compresses with.
    pub fn client_max_window_bits(&self) -> u8 {
        self.client_max_window_bits
    }

    /// zlib compression level, 0 (store) to 9 (smallest).
    pub fn level(&self) -> u8 {
        self.level
    }

    /// zlib memory level, 1 to 9: the size of a compressor's match buffers.
    pub fn mem_level(&self) -> u8 {
        self.mem_level
    }

    /// Messages shorter than this are sent uncompressed.
    pub fn min_size(&self) -> usize {
        self.min_size
    }

    /// Inflated bytes a peer may make this side produce per compressed byte
    /// it sends, over the connection (with a reserve of 1 MiB, see
    /// `proto::deflate::allowance`); a peer past it is closed with 1009
    /// ([`crate::Error::InflateRatio`]). 0: no limit but the message size.
    pub fn max_inflate_ratio(&self) -> u32 {
        self.max_inflate_ratio
    }

    /// 0 turns the limit off.
    pub fn set_max_inflate_ratio(&mut self, ratio: u32) {
        self.max_inflate_ratio = ratio;
    }

    pub fn set_server_no_context_takeover(&mut self, on: bool) {
        self.server_no_context_takeover = on;
    }

    pub fn set_client_no_context_takeover(&mut self, on: bool) {
        self.client_no_context_takeover = on;
    }

    /// [`Error::InvalidArgument`] outside 8-15.
    pub fn set_server_max_window_bits(&mut self, bits: u8) -> Result<()> {
        self.server_max_window_bits = window_bits(bits)?;
        Ok(())
    }

    /// [`Error::InvalidArgument`] outside 8-15.
    pub fn set_client_max_window_bits(&mut self, bits: u8) -> Result<()> {
        self.client_max_window_bits = window_bits(bits)?;
        Ok(())
    }

    /// [`Error::InvalidArgument`] above 9.
    pub fn set_level(&mut self, level: u8) -> Result<()> {
        if level > 9 {
            return Err(Error::InvalidArgument);
        }
        self.level = level;
        Ok(())
    }

    /// [`Error::InvalidArgument`] outside 1-9.
    pub fn set_mem_level(&mut self, mem_level: u8) -> Result<()> {
        if !(1..=9).contains(&mem_level) {
            return Err(Error::InvalidArgument);
        }
        self.mem_level = mem_level;
        Ok(())
    }

    pub fn set_min_size(&mut self, bytes: usize) {
        self.min_size = bytes;
    }

    /// Bytes a connection holds for compression while it sends and receives
    /// compressed messages (until an idle trim, see `Session::trim_compression`),
    /// in the worst case (the largest windows the peer may choose): 0 in the
    /// shared mode; in a dedicated one, a compressor
    /// (about 132 KiB + 4 × 2^window_bits + 7 × 2^(mem_level + 6)) and a
    /// decompressor (about 47 KiB, whatever the window) for each direction
    /// that keeps its context.
    pub fn connection_memory(&self) -> usize {
        let deflate = |bits: u8| super::deflater::memory(bits, self.mem_level);
        let mut total = 0;
        // A server compresses with its own window and inflates the client's;
        // the worst case over both roles is what a config may be used for.
        if !self.server_no_context_takeover {
            total += deflate(self.server_max_window_bits).max(super::inflater::MEMORY);
        }
        if !self.client_no_context_takeover {
            total += deflate(self.client_max_window_bits).max(super::inflater::MEMORY);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_are_refused_and_change_nothing() {
        let mut c = DeflateConfig::shared();
        for bits in [0, 7, 16, 255] {
            assert_eq!(c.set_server_max_window_bits(bits), Err(Error::InvalidArgument));
            assert_eq!(c.set_client_max_window_bits(bits), Err(Error::InvalidArgument));
            assert!(DeflateConfig::dedicated(bits).is_err());
        }
        assert_eq!(c.set_level(10), Err(Error::InvalidArgument));
        assert_eq!(c.set_mem_level(0), Err(Error::InvalidArgument));
        assert_eq!(c.set_mem_level(10), Err(Error::InvalidArgument));
        assert_eq!(c, DeflateConfig::shared());
        assert_eq!(c.connection_memory(), 0);
        let d = DeflateConfig::dedicated(9).unwrap();
        assert!(!d.server_no_context_takeover() && !d.client_no_context_takeover());
        assert!(d.connection_memory() > 2 * (128 << 10));
    }
}

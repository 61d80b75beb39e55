//! The checks behind wsconn's fuzz targets.
//!
//! Each module has a `check(data)` that runs one part of the protocol core on
//! arbitrary bytes and panics when an invariant breaks (a panic inside wsconn is a
//! finding too). The libFuzzer targets in `fuzz_targets/` only call these, so the
//! committed corpus can also be replayed by `cargo test` on stable Rust and under
//! Miri (`tests/corpus.rs`).
//!
//! Input layouts (seeds in `corpus/` follow them; `examples/make_seeds.rs` writes
//! the hand-made ones):
//! - `handshake_request`, `handshake_response`: 2 bytes little-endian `n`, then a
//!   flags byte, then the HTTP head. `max_handshake_size = 1 + n % 9000`; flags
//!   bit 0 configures the subprotocols `superchat, chat`.
//! - `frame_decode`: the bytes of a frame header.
//! - `utf8`: a count byte `k` (`k % 16` chunk lengths follow, used in turn), then
//!   the text.
//! - `session_server`, `session_client`: see [`session::Params::parse`].
//! - `ffi_session`: see [`ffi_session`].
//! - `inflate`: see [`inflate`].
//! - `proxy_header`: the bytes a balancer sends first.

pub mod ffi_session;
pub mod frame_decode;
pub mod frames;
pub mod handshake_request;
pub mod handshake_response;
pub mod inflate;
pub mod proxy_header;
pub mod seeds;
pub mod session;
pub mod session_client;
pub mod session_server;
pub mod utf8;

/// Reads the leading parameter bytes of an input; missing bytes read as 0.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub(crate) fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// The server's 101 answer to a client request with `key`, as the client
/// harnesses put it before the stream.
pub(crate) fn response_101(key: &str) -> Vec<u8> {
    wsconn_testkit::upgrade_response(&wsconn::proto::handshake::accept_key(key.as_bytes()))
}

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Splits `len` bytes into consecutive ranges whose lengths are taken in turn from
/// `lengths` (0 = an empty feed). No lengths: one range. Never loops forever.
pub(crate) fn chunk_ranges(len: usize, lengths: &[u8]) -> Vec<std::ops::Range<usize>> {
    if lengths.is_empty() || lengths.iter().all(|&l| l == 0) {
        let mut ranges: Vec<_> = lengths.iter().map(|_| 0..0).collect();
        ranges.push(0..len);
        return ranges;
    }
    let mut ranges = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < len {
        let end = (pos + lengths[i % lengths.len()] as usize).min(len);
        ranges.push(pos..end);
        pos = end;
        i += 1;
    }
    if ranges.is_empty() {
        ranges.push(0..0);
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_ranges_cover_the_input() {
        for lengths in [&[][..], &[0], &[1], &[0, 3], &[5, 0, 2], &[255]] {
            for len in [0usize, 1, 7, 300] {
                let ranges = chunk_ranges(len, lengths);
                assert!(!ranges.is_empty());
                let mut pos = 0;
                for r in &ranges {
                    assert_eq!(r.start, pos);
                    pos = r.end;
                }
                assert_eq!(pos, len, "{lengths:?} {len}");
            }
        }
    }
}

//! Reading a decompressor's window back out, for a connection that drops its
//! stream between messages and restores the window later (inflateSetDictionary).
//! The stable zlib-rs API has no inflateGetDictionary, so the window is
//! replayed instead: a block of back-references only, each copying 258 bytes
//! from `len` bytes back, outputs the last `len` bytes in order. The stream
//! is left inside that block, so it must be dropped afterwards.

use zlib_rs::{Inflate, InflateFlush};

/// The longest match a deflate block may hold.
const MAX_MATCH: usize = 258;

/// Deflate bits, least significant first (RFC 1951 §3.1.1).
#[derive(Default)]
struct Bits {
    bytes: Vec<u8>,
    used: u32,
}

impl Bits {
    /// Appends the low `n` bits of `value`, least significant first.
    fn put(&mut self, value: u32, n: u32) {
        for i in 0..n {
            if self.used % 8 == 0 {
                self.bytes.push(0);
            }
            let bit = (value >> i) & 1;
            *self.bytes.last_mut().expect("pushed above") |= (bit as u8) << (self.used % 8);
            self.used += 1;
        }
    }

    /// Appends a Huffman code of `n` bits, most significant first.
    fn put_code(&mut self, code: u32, n: u32) {
        self.put(code.reverse_bits() >> (32 - n), n);
    }
}

/// The fixed-Huffman distance code of `distance` (1-32768), its extra bits
/// and their count (RFC 1951 §3.2.5).
fn distance_code(distance: usize) -> (u32, u32, u32) {
    let d = (distance - 1) as u32;
    if d < 4 {
        return (d, 0, 0);
    }
    let top = 31 - d.leading_zeros();
    let extra = top - 1;
    let code = 2 * top + ((d >> extra) & 1);
    (code, d & ((1 << extra) - 1), extra)
}

/// A fixed-Huffman block of `count` matches of 258 bytes at `distance`.
fn replay_block(distance: usize, count: usize) -> Vec<u8> {
    let mut bits = Bits::default();
    // Not final; type 01: fixed Huffman codes.
    bits.put(0, 1);
    bits.put(1, 2);
    let (code, extra, extra_len) = distance_code(distance);
    for _ in 0..count {
        // Length 258 is symbol 285, whose fixed code is 11000101.
        bits.put_code(0b1100_0101, 8);
        bits.put_code(code, 5);
        bits.put(extra, extra_len);
    }
    bits.bytes
}

/// The last `len` bytes `stream` inflated (at most its window, and no more
/// than it inflated), read by replaying them; `None` if the stream did not
/// give them (it was not between blocks). The stream cannot be used afterwards.
pub fn read_back(stream: &mut Inflate, len: usize) -> Option<Box<[u8]>> {
    if len == 0 {
        return Some(Box::default());
    }
    let block = replay_block(len, len.div_ceil(MAX_MATCH));
    let mut window = vec![0u8; len].into_boxed_slice();
    let before = stream.total_out();
    // Output room for exactly `len` bytes: the copies past it never come out.
    stream.decompress(&block, &mut window, InflateFlush::NoFlush).ok()?;
    (stream.total_out() - before == len as u64).then_some(window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_codes_match_rfc_1951() {
        assert_eq!(distance_code(1), (0, 0, 0));
        assert_eq!(distance_code(4), (3, 0, 0));
        assert_eq!(distance_code(5), (4, 0, 1));
        assert_eq!(distance_code(8), (5, 1, 1));
        assert_eq!(distance_code(257), (16, 0, 7));
        assert_eq!(distance_code(24577), (29, 0, 13));
        assert_eq!(distance_code(32768), (29, 8191, 13));
    }

    #[test]
    // Large inputs: minutes under Miri; the small cases cover the unsafe code.
    #[cfg_attr(miri, ignore)]
    fn the_window_comes_back_in_order() {
        let text: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
        // A stored block of `text` (not final), as a peer's stream would hold.
        let mut stored = vec![0x00];
        stored.extend_from_slice(&(text.len() as u16).to_le_bytes());
        stored.extend_from_slice(&(!(text.len() as u16)).to_le_bytes());
        stored.extend_from_slice(&text);
        for len in [1, 2, 257, 258, 259, 1000, 3000] {
            let mut stream = Inflate::new(false, 15);
            let mut out = vec![0u8; text.len()];
            stream.decompress(&stored, &mut out, InflateFlush::SyncFlush).unwrap();
            assert_eq!(out, text);
            let window = read_back(&mut stream, len).unwrap();
            assert_eq!(&window[..], &text[text.len() - len..], "len {len}");
        }
    }
}

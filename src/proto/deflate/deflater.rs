//! Compression of sent messages: a whole message at a time, flushed to a byte
//! boundary and without the `00 00 ff ff` tail (RFC 7692 §7.2.1).

use std::cell::RefCell;

use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Method, Strategy};

/// Compressors of this thread, shared by its connections without context
/// takeover (a message is compressed in one call, so one per setting does).
const SPARES: usize = 4;

thread_local! {
    // The boxes themselves are what is lent: sessions hold `Box<Deflater>`.
    #[allow(clippy::vec_box)]
    static POOL: RefCell<Vec<Box<Deflater>>> = const { RefCell::new(Vec::new()) };
}

/// The parameters a compressor is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Setting {
    window_bits: u8,
    level: u8,
    mem_level: u8,
}

/// A raw-deflate compressor.
pub struct Deflater {
    stream: Deflate,
    setting: Setting,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater").field("setting", &self.setting).finish()
    }
}

/// Bytes a compressor holds, as measured for the backend (its hash table is
/// 128 KiB whatever the memory level).
pub fn memory(window_bits: u8, mem_level: u8) -> usize {
    (132 << 10) + (4 << window_bits.max(9)) + (7 << (mem_level + 6))
}

impl Deflater {
    /// A compressor keeping to a `window_bits` window (8-15). The backend has
    /// no 256-byte window: for 8 bits it uses a 512-byte one and emits no
    /// back-references at all (Huffman coding only), which any window decodes.
    pub fn new(window_bits: u8, level: u8, mem_level: u8) -> Box<Deflater> {
        let setting = Setting {
            window_bits,
            level,
            mem_level,
        };
        let config = DeflateConfig {
            level: i32::from(level),
            method: Method::Deflated,
            window_bits: -i32::from(window_bits.max(9)),
            mem_level: i32::from(mem_level),
            strategy: if window_bits == 8 {
                Strategy::HuffmanOnly
            } else {
                Strategy::Default
            },
        };
        Box::new(Deflater {
            stream: Deflate::new_with_config(config),
            setting,
        })
    }

    /// Bytes this compressor holds.
    pub fn memory(&self) -> usize {
        memory(self.setting.window_bits, self.setting.mem_level)
    }

    /// Compresses `data` with the thread's compressor for this setting,
    /// starting from an empty window (no context takeover).
    pub fn compress_alone(window_bits: u8, level: u8, mem_level: u8, data: &[u8], out: &mut Vec<u8>) {
        let setting = Setting {
            window_bits,
            level,
            mem_level,
        };
        let lent = POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            let found = pool.iter().position(|d| d.setting == setting);
            found.map(|at| pool.swap_remove(at))
        });
        let mut deflater = lent.unwrap_or_else(|| Deflater::new(window_bits, level, mem_level));
        deflater.compress(data, out);
        deflater.stream.reset();
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() >= SPARES {
                pool.remove(0);
            }
            pool.push(deflater);
        });
    }

    /// Compresses `data` as one message, appending to `out`; the window is
    /// kept for the next message (context takeover). An empty message may
    /// come out empty: send it uncompressed instead (an empty compressed
    /// payload leaves a peer's decompressor inside a stored block).
    pub fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        let mut input = data;
        loop {
            let room = (input.len() / 2).max(256);
            out.reserve(room);
            let len = out.len();
            let spare = &mut out.spare_capacity_mut()[..room];
            let (in0, out0) = (self.stream.total_in(), self.stream.total_out());
            // Flushing with a sync flush is what leaves the message on a byte
            // boundary, ended by an empty stored block (the tail).
            let result = self.stream.compress_uninit(input, spare, DeflateFlush::SyncFlush);
            let used = (self.stream.total_in() - in0) as usize;
            let made = (self.stream.total_out() - out0) as usize;
            // SAFETY: the compressor initialized the first `made` bytes of the
            // spare capacity it was given (`made <= room`).
            unsafe { out.set_len(len + made) };
            input = &input[used..];
            // A compressor with valid parameters and room to write does not fail.
            debug_assert!(result.is_ok(), "{result:?}");
            if result.is_err() || (input.is_empty() && made < room) {
                break;
            }
        }
        // Every non-empty input ends with the tail; an empty one after an
        // earlier message may leave no byte at all (nothing to flush).
        debug_assert!(out[start..].ends_with(&super::inflater::TAIL) || data.is_empty());
        if out[start..].ends_with(&super::inflater::TAIL) {
            out.truncate(out.len() - 4);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::deflate::inflater::{Inflater, TAIL};

    fn inflate(window_bits: u8, packed: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut budget = usize::MAX;
        let mut inflater = Inflater::new(window_bits);
        let mut all = packed.to_vec();
        all.extend_from_slice(&TAIL);
        inflater
            .inflate(&all, &mut out, &mut budget, &mut |_, _| Ok(()))
            .unwrap();
        out
    }

    #[test]
    fn rfc_7692_hello_example() {
        // §7.2.3.1: "Hello" compressed with no context is c2 48 cd c9 c9 07 00
        // with level 9... any compressor's output must inflate back, and the
        // RFC's bytes must inflate to "Hello".
        assert_eq!(inflate(15, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]), b"Hello");
        let mut out = Vec::new();
        Deflater::compress_alone(15, 1, 8, b"Hello", &mut out);
        assert_eq!(inflate(15, &out), b"Hello");
        // An empty message compresses to one byte (§7.2.3.6 shows 00).
        let mut empty = Vec::new();
        Deflater::compress_alone(15, 1, 8, b"", &mut empty);
        assert_eq!(empty, [0x00]);
        assert_eq!(inflate(15, &empty), b"");
    }

    #[test]
    // Large inputs: minutes under Miri; the small cases cover the unsafe code.
    #[cfg_attr(miri, ignore)]
    fn context_takeover_reuses_the_window() {
        let message = b"the same sentence, again and again and again".repeat(3);
        let mut d = Deflater::new(15, 6, 8);
        let (mut first, mut second) = (Vec::new(), Vec::new());
        d.compress(&message, &mut first);
        d.compress(&message, &mut second);
        assert!(second.len() < first.len() / 2, "{} vs {}", second.len(), first.len());
    }

    #[test]
    // Large inputs: minutes under Miri; the small cases cover the unsafe code.
    #[cfg_attr(miri, ignore)]
    fn every_window_size_is_kept_to() {
        // Back-references never reach further than the agreed window: the
        // output inflates with a decompressor of exactly that window.
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8 ^ (i / 1000) as u8).collect();
        for bits in 8..=15 {
            let mut out = Vec::new();
            Deflater::new(bits, 6, 8).compress(&data, &mut out);
            assert_eq!(inflate(bits, &out), data, "window bits {bits}");
        }
        // Huffman-only coding for 8 bits: no match, however repetitive.
        let mut out = Vec::new();
        Deflater::new(8, 9, 8).compress(&[b'x'; 10_000], &mut out);
        assert!(out.len() > 10_000 / 8, "{}", out.len());
    }
}

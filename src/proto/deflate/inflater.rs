//! Decompression of received messages, a bounded chunk at a time: the
//! inflated size is checked against the message limit before more output
//! room is made, so a small frame that inflates to gigabytes costs at most
//! the limit.

use std::cell::RefCell;

use zlib_rs::{Inflate, InflateFlush, Status};

use crate::proto::error::{Error, Result};

/// What the peer's compressor leaves off every message (RFC 7692 §7.2.2).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Output produced per step (and checked against the limit).
const CHUNK: usize = 16 << 10;
/// Bytes a decompressor holds (its state and a 32 KiB window, whatever the
/// window bits), as measured.
pub const MEMORY: usize = 47 << 10;
/// Idle decompressors kept per thread for connections without context takeover.
const SPARES: usize = 2;

thread_local! {
    /// Decompressors of this thread lent to connections for one message at a
    /// time (no context takeover), with their window bits.
    // The boxes themselves are what is lent: sessions hold `Box<Inflater>`.
    #[allow(clippy::vec_box)]
    static POOL: RefCell<Vec<Box<Inflater>>> = const { RefCell::new(Vec::new()) };
}

/// A raw-deflate decompressor. With context takeover it may be trimmed
/// between messages to the window the peer may still refer to (see
/// [`Inflater::trim`]), and comes back to life at the next message.
pub struct Inflater {
    /// `None` while trimmed.
    stream: Option<Inflate>,
    /// While trimmed: the last bytes inflated, at most a window's worth.
    window: Box<[u8]>,
    /// Bytes of window the live stream was given when it was restored.
    restored: usize,
    window_bits: u8,
    /// The stream ended with a final block (BFINAL): a new message starts a
    /// new stream.
    ended: bool,
    /// The window could not be read back: the stream stays live until it
    /// starts afresh.
    pinned: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("window_bits", &self.window_bits)
            .finish()
    }
}

impl Inflater {
    /// A decompressor for a peer compressing with `window_bits` (8-15).
    pub fn new(window_bits: u8) -> Box<Inflater> {
        Box::new(Inflater {
            stream: Some(Inflate::new(false, window_bits)),
            window: Box::default(),
            restored: 0,
            window_bits,
            ended: false,
            pinned: false,
        })
    }

    /// One from the thread's pool (or a new one), for one message.
    pub fn lend(window_bits: u8) -> Box<Inflater> {
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            let found = pool.iter().position(|i| i.window_bits == window_bits);
            found.map(|at| pool.swap_remove(at))
        })
        .unwrap_or_else(|| Inflater::new(window_bits))
    }

    /// Gives a lent decompressor back, reset.
    pub fn give_back(mut inflater: Box<Inflater>) {
        inflater.reset();
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < SPARES {
                pool.push(inflater);
            }
        });
    }

    /// Starts afresh: an empty window.
    pub fn reset(&mut self) {
        if let Some(stream) = self.stream.as_mut() {
            stream.reset(false);
        }
        self.window = Box::default();
        self.restored = 0;
        self.ended = false;
        self.pinned = false;
    }

    /// Between messages: keeps only what the peer's next message may refer
    /// to (its last `min(inflated, 2^window_bits)` bytes of output) and drops
    /// the stream; the next message restores the window into a new one, which
    /// decodes exactly as the old one would have. Kept live (and not tried
    /// again) if the window cannot be read back: the peer did not end its
    /// last message between blocks, as RFC 7692 asks, and a peer that does
    /// so only spoils its own messages.
    pub fn trim(&mut self) {
        let Some(stream) = self.stream.as_mut().filter(|_| !self.pinned) else {
            return;
        };
        let seen = (self.restored as u64 + stream.total_out()).min(1 << self.window_bits);
        match super::window::read_back(stream, seen as usize) {
            Some(window) => {
                self.stream = None;
                self.window = window;
                self.restored = 0;
            }
            None => self.pinned = true,
        }
    }

    /// Whether a trim would drop the stream.
    pub fn can_trim(&self) -> bool {
        self.stream.is_some() && !self.pinned
    }

    /// Trimmed with nothing to remember: the decompressor may go.
    pub fn is_empty(&self) -> bool {
        self.stream.is_none() && self.window.is_empty()
    }

    /// Bytes held: a stream, or the window kept in its place.
    pub fn memory(&self) -> usize {
        std::mem::size_of::<Inflater>()
            + match self.stream {
                Some(_) => MEMORY,
                None => self.window.len(),
            }
    }

    /// The stream, restored with the kept window if it was trimmed.
    fn stream(&mut self) -> &mut Inflate {
        if self.stream.is_none() {
            let mut stream = Inflate::new(false, self.window_bits);
            if !self.window.is_empty() {
                // A raw stream takes a dictionary at any time before its data.
                let set = stream.set_dictionary(&self.window);
                debug_assert!(set.is_ok(), "{set:?}");
            }
            self.restored = std::mem::take(&mut self.window).len();
            self.stream = Some(stream);
        }
        self.stream.as_mut().expect("made above")
    }

    /// Inflates `input`, appending the output to `out` a chunk of at most
    /// 16 KiB at a time and calling `sink(out, start)` after each chunk with
    /// where the new bytes start (it may take them out of `out`). `budget` is
    /// how many more bytes the message may inflate to; going over it fails
    /// with [`Error::MessageTooBig`] before the excess is stored. Invalid
    /// compressed data fails with [`Error::Protocol`].
    pub fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        budget: &mut usize,
        sink: &mut dyn FnMut(&mut Vec<u8>, usize) -> Result<()>,
    ) -> Result<()> {
        loop {
            if input.is_empty() && self.ended {
                return Ok(());
            }
            if self.ended {
                return Err(Error::Protocol("data after the final deflate block"));
            }
            if *budget == 0 {
                // One byte of room tells whether anything more would come out.
                let mut probe = [0u8; 1];
                let (used, made, _) = self.step(input, &mut probe)?;
                if made > 0 {
                    return Err(Error::MessageTooBig);
                }
                input = &input[used..];
                if used == 0 {
                    return Ok(());
                }
                continue;
            }
            let room = CHUNK.min(*budget);
            grow(out, room);
            let start = out.len();
            let spare = &mut out.spare_capacity_mut()[..room];
            let (stepped, made) = self.step_uninit(input, spare);
            // SAFETY: the decompressor initialized the first `made` bytes of
            // the spare capacity it was given (`made <= room`), also when it
            // then met invalid data.
            unsafe { out.set_len(start + made) };
            *budget -= made;
            if made > 0 {
                // What came out before invalid data is checked first: where
                // the input is cut must not change which error is told.
                sink(out, start)?;
            }
            let (used, status) = stepped?;
            input = &input[used..];
            if status == Status::StreamEnd {
                self.ended = true;
                continue;
            }
            if made < room && (input.is_empty() || used == 0) {
                // All output is out: the rest of the input (if any) is a
                // part of a code that needs more bytes.
                return Ok(());
            }
        }
    }

    /// Whether the stream ended with a final block.
    pub fn ended(&self) -> bool {
        self.ended
    }

    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize, Status)> {
        let stream = self.stream();
        let (in0, out0) = (stream.total_in(), stream.total_out());
        let status = stream
            .decompress(input, output, InflateFlush::SyncFlush)
            .map_err(|_| Error::Protocol("invalid compressed data"))?;
        Ok(self.progress(in0, out0, status))
    }

    /// One decompression step into `output`: (bytes used and the status, or
    /// the error), and the bytes made, which count even when the step then
    /// met invalid data.
    fn step_uninit(
        &mut self,
        input: &[u8],
        output: &mut [std::mem::MaybeUninit<u8>],
    ) -> (Result<(usize, Status)>, usize) {
        let stream = self.stream();
        let (in0, out0) = (stream.total_in(), stream.total_out());
        let result = stream.decompress_uninit(input, output, InflateFlush::SyncFlush);
        let made = (stream.total_out() - out0) as usize;
        match result {
            Ok(status) => {
                let (used, made, status) = self.progress(in0, out0, status);
                (Ok((used, status)), made)
            }
            Err(_) => (Err(Error::Protocol("invalid compressed data")), made),
        }
    }

    fn progress(&mut self, in0: u64, out0: u64, status: Status) -> (usize, usize, Status) {
        let stream = self.stream();
        let used = (stream.total_in() - in0) as usize;
        let made = (stream.total_out() - out0) as usize;
        (used, made, status)
    }
}

/// Makes room for `room` more bytes, growing by at most double (never
/// reserving far beyond what the message may still take).
fn grow(out: &mut Vec<u8>, room: usize) {
    if out.capacity() - out.len() < room {
        let target = (out.capacity() * 2).max(out.len() + room);
        out.reserve_exact(target - out.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::deflate::deflater::Deflater;

    fn compress(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Deflater::new(15, 6, 8).compress(data, &mut out);
        out
    }

    fn inflate_all(inflater: &mut Inflater, input: &[u8], limit: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut budget = limit;
        inflater.inflate(input, &mut out, &mut budget, &mut |_, _| Ok(()))?;
        inflater.inflate(&TAIL, &mut out, &mut budget, &mut |_, _| Ok(()))?;
        Ok(out)
    }

    #[test]
    // Large inputs: minutes under Miri; the small cases cover the unsafe code.
    #[cfg_attr(miri, ignore)]
    fn round_trip_in_one_piece_and_byte_by_byte() {
        let text: Vec<u8> = (0..100_000u32)
            .flat_map(|i| format!("{{\"n\":{i}}},").into_bytes())
            .collect();
        let packed = compress(&text);
        assert!(packed.len() * 3 < text.len());
        assert_eq!(inflate_all(&mut Inflater::new(15), &packed, text.len()).unwrap(), text);
        let mut inflater = Inflater::new(15);
        let (mut out, mut budget) = (Vec::new(), text.len());
        for byte in packed.iter().chain(&TAIL) {
            inflater
                .inflate(std::slice::from_ref(byte), &mut out, &mut budget, &mut |_, _| Ok(()))
                .unwrap();
        }
        assert_eq!(out, text);
    }

    /// Bytes that came out before invalid data are checked before the data
    /// is refused, as they would be had the input been cut between the two:
    /// the error told does not depend on where reads end.
    #[test]
    fn what_came_out_before_invalid_data_is_checked_first() {
        // A stored block of two bytes that are not UTF-8, then a block of
        // the reserved type 3 (BFINAL 1, BTYPE 11).
        let payload = [0x00, 0x02, 0x00, 0xfd, 0xff, 0xff, 0xfe, 0x07];
        let not_text = |out: &mut Vec<u8>, start: usize| match std::str::from_utf8(&out[start..]) {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::InvalidUtf8),
        };
        for cut in [payload.len(), 7] {
            let (mut out, mut budget) = (Vec::new(), 100);
            let mut inflater = Inflater::new(15);
            let mut sink = not_text;
            let mut result = inflater.inflate(&payload[..cut], &mut out, &mut budget, &mut sink);
            if result.is_ok() {
                result = inflater.inflate(&payload[cut..], &mut out, &mut budget, &mut sink);
            }
            assert_eq!(result, Err(Error::InvalidUtf8), "cut at {cut}");
            assert_eq!(out, [0xff, 0xfe]);
        }
        // Without the text check, the block type is what is wrong.
        let (mut out, mut budget) = (Vec::new(), 100);
        let result = Inflater::new(15).inflate(&payload, &mut out, &mut budget, &mut |_, _| Ok(()));
        assert_eq!(result, Err(Error::Protocol("invalid compressed data")));
    }

    #[test]
    // Large inputs: minutes under Miri; the small cases cover the unsafe code.
    #[cfg_attr(miri, ignore)]
    fn the_limit_is_exact_and_checked_before_storing() {
        let data = vec![b'a'; 100_000];
        let packed = compress(&data);
        assert_eq!(
            inflate_all(&mut Inflater::new(15), &packed, 100_000).unwrap().len(),
            100_000
        );
        let mut out = Vec::new();
        let mut budget = 99_999;
        let mut inflater = Inflater::new(15);
        let result = inflater
            .inflate(&packed, &mut out, &mut budget, &mut |_, _| Ok(()))
            .and_then(|_| inflater.inflate(&TAIL, &mut out, &mut budget, &mut |_, _| Ok(())));
        assert_eq!(result, Err(Error::MessageTooBig));
        assert!(out.len() <= 99_999 && out.capacity() <= 2 * 99_999);
    }

    #[test]
    // Large inputs: minutes under Miri; the small cases cover the unsafe code.
    #[cfg_attr(miri, ignore)]
    fn a_bomb_stops_at_the_limit() {
        // 64 MiB of zeros packs into about 64 KiB; with a 1 MiB limit the
        // output buffer never grows past twice the limit.
        let packed = compress(&vec![0u8; 64 << 20]);
        let mut out = Vec::new();
        let mut budget = 1 << 20;
        let result = Inflater::new(15).inflate(&packed, &mut out, &mut budget, &mut |_, _| Ok(()));
        assert_eq!(result, Err(Error::MessageTooBig));
        assert!(out.capacity() <= 2 << 20, "{}", out.capacity());
    }

    #[test]
    // Large inputs: minutes under Miri; the small cases cover the unsafe code.
    #[cfg_attr(miri, ignore)]
    fn a_trimmed_stream_decodes_messages_that_refer_to_its_window() {
        for bits in [9, 15] {
            let mut deflater = Deflater::new(bits, 6, 8);
            let mut inflater = Inflater::new(bits);
            let mut seen = 0;
            for i in 0..6 {
                let text = format!("message {i}: the same words, again and again. ").repeat(20);
                let mut packed = Vec::new();
                deflater.compress(text.as_bytes(), &mut packed);
                assert_eq!(
                    inflate_all(&mut inflater, &packed, usize::MAX).unwrap(),
                    text.as_bytes()
                );
                seen += text.len();
                inflater.trim();
                assert!(!inflater.can_trim() && !inflater.is_empty());
                let window = seen.min(1 << bits);
                assert_eq!(inflater.memory(), std::mem::size_of::<Inflater>() + window);
            }
        }
        // Nothing inflated yet: nothing to keep.
        let mut fresh = Inflater::new(15);
        fresh.trim();
        assert!(fresh.is_empty());
    }

    #[test]
    fn garbage_and_data_after_a_final_block_are_refused() {
        let mut out = Vec::new();
        let mut budget = 1000;
        let garbage = [0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            Inflater::new(15).inflate(&garbage, &mut out, &mut budget, &mut |_, _| Ok(())),
            Err(Error::Protocol(_))
        ));
        // A stored final block ("hi"), then more.
        let final_block = [0x01, 0x02, 0x00, 0xfd, 0xff, b'h', b'i'];
        let mut inflater = Inflater::new(15);
        inflater
            .inflate(&final_block, &mut out, &mut budget, &mut |_, _| Ok(()))
            .unwrap();
        assert!(inflater.ended());
        assert_eq!(out, b"hi");
        assert!(inflater
            .inflate(&TAIL, &mut out, &mut budget, &mut |_, _| Ok(()))
            .is_err());
    }
}

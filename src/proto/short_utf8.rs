//! UTF-8 validation of short inputs (under 64 bytes: most text messages) in
//! one or two AVX2 vectors, with the lookup algorithm simdutf8 uses (Keiser
//! and Lemire, "Validating UTF-8 In Less Than One Instruction Per Byte",
//! 2021).
//!
//! simdutf8 hands inputs under 64 bytes to std's byte-by-byte validator, and
//! its SIMD path, fed a 64-byte block padded with zeros, spends most of its
//! time on setup and on the padding; here a whole first 32 bytes are read
//! in place, what is left is copied into a zeroed vector with a few
//! fixed-size copies, and up to 32 bytes are checked in about 30
//! instructions. The zeros after the input are ASCII: a sequence cut at the
//! end meets one and fails, as it must; one cut by the end of a full vector
//! is caught apart. Without AVX2 the caller uses another way.

/// Inputs shorter than this are handled here.
pub const SHORT_MAX: usize = 64;

/// Whether `bytes` (under [`SHORT_MAX`] long) is valid, complete UTF-8:
/// `None` when the CPU lacks AVX2 (or the input is longer).
#[inline]
pub fn validate(bytes: &[u8]) -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() < SHORT_MAX && std::is_x86_feature_detected!("avx2") {
        // SAFETY (all three): the CPU supports AVX2 (detected at run time,
        // cached by std). A whole first vector is read in place; what is
        // left is padded.
        return Some(match bytes.split_first_chunk::<32>() {
            None => unsafe { avx2::valid_32(&padded(bytes)) },
            Some((first, [])) => unsafe { avx2::valid_32(first) },
            Some((first, rest)) => unsafe { avx2::valid_64(first, &padded(rest)) },
        });
    }
    let _ = bytes;
    None
}

/// Unmasks the first `len` bytes of `window` (`len` at most 32) with `key`
/// (from its first byte) in place and says whether they are valid, complete
/// UTF-8; the bytes after them are left as they are. `None`, and nothing
/// done, when the CPU lacks AVX2. One 32-byte load and one 32-byte store:
/// checking (or copying, as an echo does) bytes unmasked by narrower stores
/// makes the next 32-byte load wait for them (a store-to-load forwarding
/// stall, half of the check's time in profiles).
#[inline]
pub fn unmask_and_validate(window: &mut [u8; 32], len: usize, key: [u8; 4]) -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    if len <= 32 && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (detected at run time, cached by std).
        return Some(unsafe { avx2::unmask_valid_32(window, len, key) });
    }
    let _ = (window, len, key);
    None
}

/// `bytes` (at most 32 long) followed by zeros, copied in at most two
/// overlapping copies of a fixed size each (no call to `memcpy`).
#[inline(always)]
fn padded(bytes: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 32];
    let len = bytes.len().min(32);
    let bytes = &bytes[..len];
    match len {
        16.. => {
            block[..16].copy_from_slice(&bytes[..16]);
            block[len - 16..len].copy_from_slice(&bytes[len - 16..]);
        }
        8..=15 => {
            block[..8].copy_from_slice(&bytes[..8]);
            block[len - 8..len].copy_from_slice(&bytes[len - 8..]);
        }
        4..=7 => {
            block[..4].copy_from_slice(&bytes[..4]);
            block[len - 4..len].copy_from_slice(&bytes[len - 4..]);
        }
        1..=3 => {
            block[0] = bytes[0];
            block[len / 2] = bytes[len / 2];
            block[len - 1] = bytes[len - 1];
        }
        0 => {}
    }
    block
}

#[cfg(target_arch = "x86_64")]
// The intrinsics are unsafe functions before Rust 1.87 and safe ones (in
// an AVX2 function) since: the blocks are needed for the first.
#[allow(unused_unsafe)]
mod avx2 {
    use std::arch::x86_64::*;

    // What a pair of bytes can be wrong in, one bit each (simdutf8's names).
    const TOO_SHORT: i8 = 1 << 0;
    const TOO_LONG: i8 = 1 << 1;
    const OVERLONG_3: i8 = 1 << 2;
    const TOO_LARGE: i8 = 1 << 3;
    const SURROGATE: i8 = 1 << 4;
    const OVERLONG_2: i8 = 1 << 5;
    const TOO_LARGE_1000: i8 = 1 << 6;
    const OVERLONG_4: i8 = 1 << 6;
    const TWO_CONTS: i8 = 1 << 7;
    const CARRY: i8 = TOO_SHORT | TOO_LONG | TWO_CONTS;

    /// By the high nibble of the previous byte.
    const BYTE_1_HIGH: [i8; 16] = [
        TOO_LONG,
        TOO_LONG,
        TOO_LONG,
        TOO_LONG,
        TOO_LONG,
        TOO_LONG,
        TOO_LONG,
        TOO_LONG,
        TWO_CONTS,
        TWO_CONTS,
        TWO_CONTS,
        TWO_CONTS,
        TOO_SHORT | OVERLONG_2,
        TOO_SHORT,
        TOO_SHORT | OVERLONG_3 | SURROGATE,
        TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4,
    ];

    /// By the low nibble of the previous byte.
    const BYTE_1_LOW: [i8; 16] = [
        CARRY | OVERLONG_3 | OVERLONG_2 | OVERLONG_4,
        CARRY | OVERLONG_2,
        CARRY,
        CARRY,
        CARRY | TOO_LARGE,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000 | SURROGATE,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
    ];

    /// By the high nibble of the byte itself.
    const BYTE_2_HIGH: [i8; 16] = [
        TOO_SHORT,
        TOO_SHORT,
        TOO_SHORT,
        TOO_SHORT,
        TOO_SHORT,
        TOO_SHORT,
        TOO_SHORT,
        TOO_SHORT,
        TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE_1000 | OVERLONG_4,
        TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE,
        TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
        TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
        TOO_SHORT,
        TOO_SHORT,
        TOO_SHORT,
        TOO_SHORT,
    ];

    /// A 16-entry table in both lanes.
    #[target_feature(enable = "avx2")]
    unsafe fn table(t: &[i8; 16]) -> __m256i {
        // SAFETY: reads the 16 bytes of `t`; AVX2 is there (the caller's
        // guarantee).
        unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(t.as_ptr().cast())) }
    }

    /// The error bits of the 32 bytes of `input`, `prev` being the 32 before.
    ///
    /// # Safety
    /// The CPU supports AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn errors(input: __m256i, prev: __m256i) -> __m256i {
        // SAFETY: register operations only, on a CPU with AVX2 (the
        // caller's guarantee); the tables are read whole.
        unsafe {
            let low_nibble = _mm256_set1_epi8(0x0F);
            // The bytes 1, 2 and 3 places before each byte of `input`.
            let before = _mm256_permute2x128_si256(prev, input, 0x21);
            let prev1 = _mm256_alignr_epi8(input, before, 16 - 1);
            let prev2 = _mm256_alignr_epi8(input, before, 16 - 2);
            let prev3 = _mm256_alignr_epi8(input, before, 16 - 3);
            let prev1_high = _mm256_and_si256(_mm256_srli_epi16(prev1, 4), low_nibble);
            let input_high = _mm256_and_si256(_mm256_srli_epi16(input, 4), low_nibble);
            let byte_1_high = _mm256_shuffle_epi8(table(&BYTE_1_HIGH), prev1_high);
            let byte_1_low = _mm256_shuffle_epi8(table(&BYTE_1_LOW), _mm256_and_si256(prev1, low_nibble));
            let byte_2_high = _mm256_shuffle_epi8(table(&BYTE_2_HIGH), input_high);
            let special = _mm256_and_si256(_mm256_and_si256(byte_1_high, byte_1_low), byte_2_high);
            // Third and fourth bytes of 3- and 4-byte sequences must be
            // continuations: the one case the tables leave open.
            let third = _mm256_subs_epu8(prev2, _mm256_set1_epi8((0b1110_0000u8 - 1) as i8));
            let fourth = _mm256_subs_epu8(prev3, _mm256_set1_epi8((0b1111_0000u8 - 1) as i8));
            let must23 = _mm256_cmpgt_epi8(_mm256_or_si256(third, fourth), _mm256_setzero_si256());
            let must23_80 = _mm256_and_si256(must23, _mm256_set1_epi8(0x80u8 as i8));
            _mm256_xor_si256(must23_80, special)
        }
    }

    /// Whether 32 bytes (input then zeros) are valid UTF-8. A sequence cut
    /// by the end of the 32 is an error (the input ends there at the latest).
    ///
    /// # Safety
    /// The CPU supports AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn valid_32(block: &[u8; 32]) -> bool {
        // SAFETY: the load reads the 32 bytes of the block; the rest are
        // register operations on a CPU with AVX2 (the caller's guarantee).
        unsafe { valid_vector(_mm256_loadu_si256(block.as_ptr().cast()), true) }
    }

    /// Whether 32 bytes in a register are valid UTF-8, zeros after the
    /// input (ASCII: a sequence cut there meets one and fails); `full`: the
    /// input fills all 32, and a lead byte among the last three that needs
    /// more bytes than are left is an error too.
    ///
    /// # Safety
    /// The CPU supports AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn valid_vector(a: __m256i, full: bool) -> bool {
        // SAFETY: register operations and a read of the 32-byte table, on a
        // CPU with AVX2 (the caller's guarantee).
        unsafe {
            if _mm256_movemask_epi8(a) == 0 {
                return true; // ASCII
            }
            let error = errors(a, _mm256_setzero_si256());
            let error = if full {
                let incomplete = _mm256_subs_epu8(a, _mm256_loadu_si256(INCOMPLETE.as_ptr().cast()));
                _mm256_or_si256(error, incomplete)
            } else {
                error
            };
            _mm256_testz_si256(error, error) == 1
        }
    }

    /// `unmask_and_validate` (see there).
    ///
    /// # Safety
    /// The CPU supports AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn unmask_valid_32(window: &mut [u8; 32], len: usize, key: [u8; 4]) -> bool {
        // SAFETY: the load and the store cover the 32 bytes of the window;
        // the rest are register operations on a CPU with AVX2 (the caller's
        // guarantee).
        unsafe {
            let masked = _mm256_loadu_si256(window.as_ptr().cast());
            // Byte i is the input's where i < len (both small: the signed
            // compare works); the key applies there only.
            let index = _mm256_loadu_si256(INDEX.as_ptr().cast());
            let keep = _mm256_cmpgt_epi8(_mm256_set1_epi8(len as i8), index);
            let key = _mm256_and_si256(_mm256_set1_epi32(i32::from_ne_bytes(key)), keep);
            let unmasked = _mm256_xor_si256(masked, key);
            _mm256_storeu_si256(window.as_mut_ptr().cast(), unmasked);
            valid_vector(_mm256_and_si256(unmasked, keep), len == 32)
        }
    }

    /// 0, 1, … 31.
    const INDEX: [u8; 32] = {
        let mut index = [0; 32];
        let mut i = 0;
        while i < 32 {
            index[i] = i as u8;
            i += 1;
        }
        index
    };

    /// Whether `first` then `rest` (input then zeros, the last byte a zero
    /// at least) are valid UTF-8.
    ///
    /// # Safety
    /// The CPU supports AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn valid_64(first: &[u8; 32], rest: &[u8; 32]) -> bool {
        // SAFETY: the loads read the 32 bytes of each array; the rest are
        // register operations on a CPU with AVX2 (the caller's guarantee).
        unsafe {
            let a = _mm256_loadu_si256(first.as_ptr().cast());
            let b = _mm256_loadu_si256(rest.as_ptr().cast());
            if _mm256_movemask_epi8(_mm256_or_si256(a, b)) == 0 {
                return true; // ASCII
            }
            let error = _mm256_or_si256(errors(a, _mm256_setzero_si256()), errors(b, a));
            _mm256_testz_si256(error, error) == 1
        }
    }

    /// The largest value each of 32 bytes may have with the input ending
    /// after them: a 4-, 3- or 2-byte lead in the last three is cut short.
    const INCOMPLETE: [u8; 32] = {
        let mut max = [0xFF; 32];
        max[29] = 0b1111_0000 - 1;
        max[30] = 0b1110_0000 - 1;
        max[31] = 0b1100_0000 - 1;
        max
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agrees(bytes: &[u8]) {
        if let Some(valid) = validate(bytes) {
            assert_eq!(valid, std::str::from_utf8(bytes).is_ok(), "{bytes:02x?}");
        }
    }

    /// The check in place agrees with std on every length, unmasks the
    /// input and leaves the bytes after it as they were, whatever they are.
    #[test]
    fn unmasking_in_place_agrees_with_std() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let samples: [&[u8]; 6] = [
            "héllo wörld, ünïcödé ☃ and 𝄞 at the end…".as_bytes(),
            b"plain ascii text that is long enough to fill 32",
            &[
                0xe2, 0x82, 0xac, 0xe2, 0x82, 0xac, 0xe2, 0x82, 0xac, 0xe2, 0x82, 0xac, 0xe2, 0x82, 0xac, 0xe2, 0x82,
            ],
            &[0xc3, 0x28, 0x41, 0x42],
            &[0xf0, 0x90, 0x80, 0x80, 0xed, 0xa0, 0x80, 0x41],
            &[0x41; 40],
        ];
        for sample in samples {
            for len in 0..=sample.len().min(32) {
                let mut window = [0xc3u8; 32]; // a lead byte after the input
                window[..len].copy_from_slice(&sample[..len]);
                let expected = std::str::from_utf8(&sample[..len]).is_ok();
                for (b, k) in window[..len].iter_mut().zip(key.iter().cycle()) {
                    *b ^= k;
                }
                let before = window;
                match unmask_and_validate(&mut window, len, key) {
                    Some(valid) => {
                        assert_eq!(valid, expected, "{:02x?}", &sample[..len]);
                        assert_eq!(&window[..len], &sample[..len], "unmasked");
                        assert_eq!(&window[len..], &before[len..], "the rest untouched");
                    }
                    None => assert_eq!(window, before, "nothing done"),
                }
            }
        }
    }

    #[test]
    fn padding_copies_every_length_exactly() {
        let source: Vec<u8> = (1..=32).collect();
        for len in 0..=32 {
            let block = padded(&source[..len]);
            assert_eq!(&block[..len], &source[..len], "len {len}");
            assert!(block[len..].iter().all(|&b| b == 0), "len {len}");
        }
    }

    // Text cut and corrupted at every length: `utf8::tests`, through
    // `Utf8Validator`.

    /// Every one- and two-byte sequence, and every lead byte with every
    /// second byte and a spread of third and fourth bytes, at places in the
    /// block where the vectors and lanes meet, cut and whole.
    #[test]
    // Half a million inputs, and without AVX2 under Miri `validate` declines
    // them all: nothing of ours would run, for an hour.
    #[cfg_attr(miri, ignore = "AVX2 only; too long under Miri")]
    fn agrees_with_std_on_every_sequence_at_the_seams() {
        const EDGES: [u8; 10] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0];
        let mut sequences: Vec<Vec<u8>> = Vec::new();
        for lead in 0..=255u8 {
            sequences.push(vec![lead]);
            for second in 0..=255u8 {
                sequences.push(vec![lead, second]);
                if lead >= 0xE0 {
                    for third in EDGES {
                        sequences.push(vec![lead, second, third]);
                        if lead >= 0xF0 {
                            for fourth in EDGES {
                                sequences.push(vec![lead, second, third, fourth]);
                            }
                        }
                    }
                }
            }
        }
        let places = [0usize, 13, 14, 15, 16, 29, 30, 31, 32, 33, 47, 48, 59, 60, 61, 62];
        let mut buf = [b'a'; SHORT_MAX];
        for (i, seq) in sequences.iter().enumerate() {
            // One place per sequence, each place in turn; and each sequence
            // also at the very end of the input.
            let at = places[i % places.len()].min(SHORT_MAX - 1 - seq.len());
            buf[at..at + seq.len()].copy_from_slice(seq);
            agrees(&buf[..at + seq.len()]);
            agrees(&buf[..at + seq.len() + 1]);
            buf[at..at + seq.len()].fill(b'a');
        }
    }

    #[test]
    fn known_cases() {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            assert_eq!(validate("κόσμε".as_bytes()), Some(true), "checked here with AVX2");
        }
        for ok in [
            "",
            "a",
            "κόσμε",
            "€",
            "𝄞",
            "\u{10FFFF}",
            "\u{FFFF}",
            "\u{D7FF}",
            "\u{E000}",
        ] {
            agrees(ok.as_bytes());
        }
        for bad in [
            &b"\xff"[..],
            b"\xc0\xaf",
            b"\xe0\x80\xaf",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\xf5\x80\x80\x80",
            b"\x80",
            b"\xce\xba\xe1\xbd",
            b"hello\xed\xbf\xbfworld",
        ] {
            agrees(bad);
        }
        // A 4-byte sequence across the two vectors, and leads cut by the
        // end of a 32- or a 63-byte input.
        let mut across = vec![b'x'; 30];
        across.extend_from_slice("𝄞".as_bytes());
        agrees(&across);
        for (len, lead) in [(63, 0xF0), (32, 0xC3), (32, 0xE2), (32, 0xF0), (31, 0xE2), (30, 0xF0)] {
            let mut cut = vec![b'x'; len - 1];
            cut.push(lead);
            agrees(&cut);
            for fill in 1..4 {
                let mut cut = vec![b'x'; len - fill];
                cut.push(lead);
                cut.extend(std::iter::repeat(0x80).take(fill - 1));
                agrees(&cut);
            }
        }
    }
}

//! Incremental UTF-8 validation that fails at the first invalid byte, across any
//! number of chunks (frames, fragments, partial reads).

use crate::proto::short_utf8;

/// Validation state between chunks: the bytes of a code point cut by a chunk boundary.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    carry: [u8; 4],
    carry_len: u8,
}

/// The input is not UTF-8 (or not a prefix of any UTF-8 string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    pub const fn new() -> Self {
        Utf8Validator {
            carry: [0; 4],
            carry_len: 0,
        }
    }

    /// Validates one whole buffer at once (the common, fast case).
    pub fn validate_complete(bytes: &[u8]) -> Result<(), InvalidUtf8> {
        let valid = match bytes.len() {
            len if len < SIMD_MIN => short_is_valid(bytes),
            _ => simdutf8::basic::from_utf8(bytes).is_ok(),
        };
        if valid {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }

    /// Validates the next chunk. Fails as soon as the bytes seen so far cannot be
    /// the start of valid UTF-8; an incomplete code point at the end is kept.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), InvalidUtf8> {
        if self.carry_len > 0 {
            let have = self.carry_len as usize;
            let want = sequence_len(self.carry[0]);
            let take = (want - have).min(bytes.len());
            self.carry[have..have + take].copy_from_slice(&bytes[..take]);
            self.carry_len += take as u8;
            bytes = &bytes[take..];
            match std::str::from_utf8(&self.carry[..self.carry_len as usize]) {
                Ok(_) => self.carry_len = 0,
                Err(e) if e.error_len().is_none() => return Ok(()),
                Err(_) => return Err(InvalidUtf8),
            }
        }
        if bytes.len() < SIMD_MIN && short_is_valid(bytes) {
            // Valid and complete: the usual case. (An incomplete tail makes
            // this fail: the general check below keeps it for the next chunk.)
            return Ok(());
        }
        match simdutf8::compat::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &bytes[e.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carry_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Ends the message: a code point left incomplete is an error. Resets the state.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.carry_len == 0;
        self.carry_len = 0;
        if complete {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }

    pub fn reset(&mut self) {
        self.carry_len = 0;
    }
}

/// Inputs shorter than this go to std's validator inside simdutf8 (its SIMD
/// works on 64-byte blocks): they are checked here (`short_is_valid`).
const SIMD_MIN: usize = short_utf8::SHORT_MAX;

/// Whether a short input (under `SIMD_MIN` bytes) is valid and complete
/// UTF-8: with AVX2, in two vectors (`short_utf8`); else, unless it is all
/// ASCII, padded with zeros (ASCII) to one block for simdutf8's SIMD code,
/// several times faster than std's byte-by-byte check on text that is not
/// all ASCII. A sequence cut at the end meets a zero and fails, as it must.
#[inline]
fn short_is_valid(bytes: &[u8]) -> bool {
    short_utf8::validate(bytes).unwrap_or_else(|| short_is_valid_without_avx2(bytes))
}

/// `short_is_valid` where `short_utf8` cannot help.
fn short_is_valid_without_avx2(bytes: &[u8]) -> bool {
    if is_ascii_short(bytes) {
        return true;
    }
    let mut block = [0u8; SIMD_MIN];
    block[..bytes.len()].copy_from_slice(bytes);
    simdutf8::basic::from_utf8(&block).is_ok()
}

/// Whether a short input is all ASCII, a word at a time.
fn is_ascii_short(bytes: &[u8]) -> bool {
    let mut high = 0u64;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        high |= u64::from_ne_bytes(word.try_into().expect("8-byte word"));
    }
    for &byte in words.remainder() {
        high |= u64::from(byte);
    }
    high & 0x8080_8080_8080_8080 == 0
}

/// Length of the sequence a valid lead byte starts (the carry only ever holds
/// lead bytes the validator already accepted as a valid prefix).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(bytes: &[u8], split: usize) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        v.feed(&bytes[..split])?;
        v.feed(&bytes[split..])?;
        v.finish()
    }

    const VALID: &[&str] = &["", "a", "héllo", "κόσμε", "€", "𝄞 music", "\u{10FFFF}", "\u{FFFF}"];
    const INVALID: &[&[u8]] = &[
        b"\xff",
        b"\xc0\xaf",               // overlong '/'
        b"\xe0\x80\xaf",           // overlong
        b"\xed\xa0\x80",           // surrogate U+D800
        b"\xf4\x90\x80\x80",       // above U+10FFFF
        b"\xf5\x80\x80\x80",       // invalid lead
        b"\x80",                   // lone continuation
        b"\xce\xba\xe1\xbd",       // truncated at end
        b"hello\xed\xbf\xbfworld", // surrogate U+DFFF
    ];

    #[test]
    fn valid_at_every_split() {
        for s in VALID {
            for split in 0..=s.len() {
                assert_eq!(feed_split(s.as_bytes(), split), Ok(()), "{s:?} at {split}");
            }
        }
    }

    #[test]
    fn invalid_at_every_split() {
        for bytes in INVALID {
            for split in 0..=bytes.len() {
                assert_eq!(feed_split(bytes, split), Err(InvalidUtf8), "{bytes:?} at {split}");
            }
        }
    }

    #[test]
    fn byte_at_a_time_matches_std() {
        let mut samples: Vec<Vec<u8>> = VALID.iter().map(|s| s.as_bytes().to_vec()).collect();
        samples.extend(INVALID.iter().map(|b| b.to_vec()));
        for bytes in samples {
            let mut v = Utf8Validator::new();
            let incremental = bytes.iter().try_for_each(|b| v.feed(&[*b])).and_then(|_| v.finish());
            assert_eq!(incremental.is_ok(), std::str::from_utf8(&bytes).is_ok(), "{bytes:?}");
        }
    }

    #[test]
    fn fails_fast_before_the_message_ends() {
        // The bad byte arrives in the first chunk: the error must come now,
        // not at finish().
        let mut v = Utf8Validator::new();
        assert_eq!(
            v.feed(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"),
            Err(InvalidUtf8)
        );
        // A lead byte that can never start a sequence fails alone.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"ab\xf8"), Err(InvalidUtf8));
        // An impossible second byte fails even while the code point is incomplete.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xe0"), Ok(()));
        assert_eq!(v.feed(b"\x80"), Err(InvalidUtf8));
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xf4"), Ok(()));
        assert_eq!(v.feed(b"\x90"), Err(InvalidUtf8));
    }

    /// Short inputs take a SIMD path (with AVX2, or padded for simdutf8
    /// without): both must agree with std on
    /// valid text, on every cut of it and on every single corrupted byte, at
    /// every length around the 64-byte block.
    #[test]
    fn short_inputs_agree_with_std() {
        let text = "{\"name\":\"κόσμε\",\"city\":\"Zürich\",\"note\":\"𝄞 €\",\"x\":\"ascii only here and more\"}";
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for len in 0..text.len().min(80) {
            let prefix = &text.as_bytes()[..len];
            let mut samples = vec![prefix.to_vec()];
            for _ in 0..8 {
                let mut bad = prefix.to_vec();
                if !bad.is_empty() {
                    let at = next() as usize % bad.len();
                    bad[at] = next() as u8;
                }
                samples.push(bad);
            }
            for bytes in samples {
                let std_ok = std::str::from_utf8(&bytes).is_ok();
                assert_eq!(Utf8Validator::validate_complete(&bytes).is_ok(), std_ok, "{bytes:?}");
                if bytes.len() < SIMD_MIN {
                    assert_eq!(short_is_valid_without_avx2(&bytes), std_ok, "{bytes:?}");
                }
                let mut v = Utf8Validator::new();
                assert_eq!(v.feed(&bytes).and_then(|_| v.finish()).is_ok(), std_ok, "{bytes:?}");
            }
        }
    }

    #[test]
    fn whole_buffer_validation() {
        assert!(Utf8Validator::validate_complete("héllo".as_bytes()).is_ok());
        assert!(Utf8Validator::validate_complete(b"\xed\xa0\x80").is_err());
    }
}

//! `Utf8Validator` fed in chunks against `std::str::from_utf8` on the whole.

use wsconn::proto::utf8::{InvalidUtf8, Utf8Validator};

use crate::{chunk_ranges, Reader};

/// Whether `bytes` cannot be the start of any UTF-8 string.
fn hopeless(bytes: &[u8]) -> bool {
    matches!(std::str::from_utf8(bytes), Err(e) if e.error_len().is_some())
}

pub fn check(data: &[u8]) {
    let mut r = Reader::new(data);
    let count = r.byte() as usize % 16;
    let lengths = r.take(count);
    let text = r.rest();
    let ranges = chunk_ranges(text.len(), lengths);
    let whole_ok = std::str::from_utf8(text).is_ok();

    assert_eq!(
        Utf8Validator::validate_complete(text).is_ok(),
        whole_ok,
        "validate_complete disagrees with std on {text:02x?}"
    );

    let mut v = Utf8Validator::new();
    // Twice with the same validator: finish() and reset() leave it as new.
    for pass in 0..2 {
        let mut failed_at = None;
        for (k, range) in ranges.iter().enumerate() {
            let prefix = &text[..range.end];
            match v.feed(&text[range.clone()]) {
                Ok(()) => assert!(
                    !hopeless(prefix),
                    "pass {pass}: chunk {k} accepted, but {prefix:02x?} starts no UTF-8 string"
                ),
                Err(InvalidUtf8) => {
                    assert!(
                        hopeless(prefix),
                        "pass {pass}: chunk {k} refused, but {prefix:02x?} may start a UTF-8 string"
                    );
                    failed_at = Some(k);
                    break;
                }
            }
        }
        match failed_at {
            Some(_) => {
                assert!(!whole_ok);
                v.reset();
            }
            None => assert_eq!(
                v.finish().is_ok(),
                whole_ok,
                "pass {pass}: finish() disagrees with std on {text:02x?} in chunks {ranges:?}"
            ),
        }
    }
}

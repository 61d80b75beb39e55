//! `FrameHeader::decode` on arbitrary bytes.

use wsconn::proto::frame::{FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use wsconn::Error;

pub fn check(data: &[u8]) {
    let result = FrameHeader::decode(data);
    match result {
        Ok(Some((h, n))) => check_header(data, h, n),
        Ok(None) => {
            assert!(data.len() < MAX_HEADER_LEN, "Ok(None) with {} bytes", data.len());
            // "Need more": 14 bytes always settle it.
            for fill in [0u8, 0xFF] {
                let mut padded = data.to_vec();
                padded.resize(MAX_HEADER_LEN, fill);
                assert!(
                    !matches!(FrameHeader::decode(&padded), Ok(None)),
                    "{data:02x?} padded to 14 bytes with {fill:02x} still needs more"
                );
            }
        }
        Err(e) => {
            assert!(
                matches!(e, Error::Protocol(_)),
                "decode error {e:?} is not a protocol error"
            );
            // An error is final: more bytes do not change it.
            for fill in [0u8, 0xFF] {
                let mut longer = data.to_vec();
                longer.extend_from_slice(&[fill; MAX_HEADER_LEN]);
                assert_eq!(
                    FrameHeader::decode(&longer),
                    Err(e),
                    "{data:02x?} extended with {fill:02x}"
                );
            }
        }
    }
}

fn check_header(data: &[u8], h: FrameHeader, n: usize) {
    assert!(n <= MAX_HEADER_LEN, "header length {n} > 14");
    assert!(n <= data.len(), "header length {n} > input length {}", data.len());
    let (b0, b1) = (data[0], data[1]);
    assert_eq!(h.fin, b0 & 0x80 != 0, "fin");
    assert_eq!(h.rsv, (b0 >> 4) & 7, "rsv");
    assert_eq!(h.opcode as u8, b0 & 0x0F, "opcode");
    assert_eq!(h.mask.is_some(), b1 & 0x80 != 0, "mask bit");
    let ext = match b1 & 0x7F {
        126 => 2,
        127 => 8,
        len => {
            assert_eq!(h.payload_len, len as u64, "7-bit length");
            0
        }
    };
    assert_eq!(n, 2 + ext + if h.mask.is_some() { 4 } else { 0 }, "header length");
    if let Some(key) = h.mask {
        assert_eq!(key[..], data[2 + ext..n], "masking key");
    }
    assert!(h.payload_len >> 63 == 0, "64-bit length with the top bit set");
    if h.opcode.is_control() {
        assert!(h.fin, "fragmented control frame accepted: {data:02x?}");
        assert!(
            h.payload_len <= MAX_CONTROL_PAYLOAD as u64,
            "control frame of {} bytes accepted",
            h.payload_len
        );
    }
    // Re-encoding gives the minimal form, which decodes to the same header.
    let mut out = [0u8; MAX_HEADER_LEN];
    let m = h.encode(&mut out);
    assert_eq!(m, FrameHeader::encoded_len(h.payload_len, h.mask.is_some()));
    assert_eq!(FrameHeader::decode(&out[..m]), Ok(Some((h, m))), "re-encoded header");
    let minimal = match ext {
        0 => true,
        2 => h.payload_len >= 126,
        _ => h.payload_len > 0xFFFF,
    };
    assert_eq!(m == n, minimal, "encoded length {m}, input header {n}");
    if minimal {
        assert_eq!(out[..m], data[..n], "a minimal header re-encodes to its own bytes");
    }
    // The header depends on its own bytes only, and every shorter prefix asks for more.
    assert_eq!(FrameHeader::decode(&data[..n]), Ok(Some((h, n))));
    for k in 0..n {
        assert_eq!(FrameHeader::decode(&data[..k]), Ok(None), "prefix of {k} bytes");
    }
}

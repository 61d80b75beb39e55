//! Frames written by hand (RFC 6455 §5.2), the one encoder of the tests, the
//! fuzz seeds and the benchmarks: wsconn's own codec is what they check.

use crate::rfc6455::MASK;

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The FIN bit of a frame's first byte.
pub const FIN: u8 = 0x80;

/// The first byte of a frame: FIN and the opcode, no RSV bit.
pub fn first_byte(fin: bool, opcode: u8) -> u8 {
    if fin {
        FIN | opcode
    } else {
        opcode
    }
}

/// A frame header claiming `payload_len` bytes, with the minimal length form
/// (7 bits, 16 bits or 64 bits) and the masking key when `mask` is given. On
/// its own it announces a payload that is never sent (absurd lengths).
pub fn header(first_byte: u8, payload_len: u64, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(14);
    out.push(first_byte);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload_len {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    out
}

/// A whole frame: the header, then `payload` masked with `mask` when given.
pub fn frame(first_byte: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = header(first_byte, payload.len() as u64, mask);
    out.reserve(payload.len());
    match mask {
        Some(key) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4])),
        None => out.extend_from_slice(payload),
    }
    out
}

/// A frame as a client sends it: masked, with the key of RFC 6455 §5.7.
pub fn client_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    frame(first_byte, payload, Some(MASK))
}

/// A frame as a server sends it: unmasked.
pub fn server_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    frame(first_byte, payload, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_examples_of_rfc_6455_section_5_7() {
        assert_eq!(server_frame(0x81, b"Hello"), [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(
            client_frame(0x81, b"Hello"),
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        assert_eq!(server_frame(0x01, b"Hel"), [0x01, 0x03, 0x48, 0x65, 0x6c]);
        assert_eq!(server_frame(0x80, b"lo"), [0x80, 0x02, 0x6c, 0x6f]);
        let mut binary_256 = vec![0x82, 0x7E, 0x01, 0x00];
        binary_256.extend([7; 256]);
        assert_eq!(server_frame(0x82, &[7; 256]), binary_256);
        assert_eq!(header(0x82, 65536, None), [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn each_length_form_at_its_edges() {
        for (len, header_len) in [(0usize, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            assert_eq!(server_frame(0x82, &vec![7; len]).len(), header_len + len);
            assert_eq!(
                frame(0x82, &vec![7; len], Some([1, 2, 3, 4])).len(),
                header_len + 4 + len
            );
        }
    }

    #[test]
    fn a_header_alone_claims_any_length() {
        assert_eq!(
            header(0x82, i64::MAX as u64, Some([1, 2, 3, 4])),
            [0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4]
        );
    }

    #[test]
    fn masking_twice_gives_the_payload_back() {
        let payload: Vec<u8> = (0..=255).collect();
        let masked = client_frame(first_byte(false, OP_BINARY), &payload);
        assert_eq!(masked[0], 0x02);
        let unmasked: Vec<u8> = masked[8..].iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]).collect();
        assert_eq!(unmasked, payload);
    }
}

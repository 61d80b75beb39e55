//! The frame header codec (RFC 6455 §5.2): opcodes, FIN/RSV bits, 7/16/64-bit
//! payload lengths and the masking key. Payloads are handled by the session.

use crate::proto::error::{Error, Result};

/// Frame opcodes. Reserved values are rejected when a header is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OpCode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl OpCode {
    fn from_bits(bits: u8) -> Result<OpCode> {
        Ok(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            0x3..=0x7 => return Err(Error::Protocol("reserved data opcode")),
            _ => return Err(Error::Protocol("reserved control opcode")),
        })
    }

    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// Largest payload a control frame may carry (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// Longest possible header: 2 + 8 (length) + 4 (mask).
pub const MAX_HEADER_LEN: usize = 14;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// The three RSV bits, in the low bits.
    pub rsv: u8,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

impl FrameHeader {
    /// Decodes a header from the start of `buf`: `Ok(None)` when more bytes are
    /// needed, else the header and its length in bytes. Structural rules that need
    /// no session state are checked here: reserved opcodes, control frames that are
    /// fragmented or longer than 125 bytes, and 64-bit lengths with the top bit set.
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>> {
        let [b0, b1, ..] = *buf else { return Ok(None) };
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0x7;
        let opcode = OpCode::from_bits(b0 & 0x0F)?;
        let masked = b1 & 0x80 != 0;
        let (payload_len, mut pos) = match b1 & 0x7F {
            126 => {
                let Some(bytes) = buf.get(2..4) else { return Ok(None) };
                (u16::from_be_bytes([bytes[0], bytes[1]]) as u64, 4)
            }
            127 => {
                let Some(bytes) = buf.get(2..10) else { return Ok(None) };
                let len = u64::from_be_bytes(bytes.try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(Error::Protocol("64-bit payload length with the top bit set"));
                }
                (len, 10)
            }
            len => (len as u64, 2),
        };
        if opcode.is_control() {
            if !fin {
                return Err(Error::Protocol("fragmented control frame"));
            }
            if payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(Error::Protocol("control frame payload longer than 125 bytes"));
            }
        }
        let mask = if masked {
            let Some(bytes) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            pos += 4;
            Some([bytes[0], bytes[1], bytes[2], bytes[3]])
        } else {
            None
        };
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, pos)))
    }

    /// Encodes the header with the minimal length encoding into `out`, returning
    /// the number of bytes written.
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (self.fin as u8) << 7 | (self.rsv & 0x7) << 4 | self.opcode as u8;
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut pos = match self.payload_len {
            len @ 0..=125 => {
                out[1] = mask_bit | len as u8;
                2
            }
            len @ 126..=0xFFFF => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[pos..pos + 4].copy_from_slice(&key);
            pos += 4;
        }
        pos
    }

    /// Length of the header that [`FrameHeader::encode`] writes.
    pub fn encoded_len(payload_len: u64, masked: bool) -> usize {
        let len_bytes = match payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + len_bytes + if masked { 4 } else { 0 }
    }
}

/// The frame most messages come in, recognised in a few instructions: FIN
/// set, no RSV bit, text or binary, masked exactly when `masked` says, a 7- or
/// 16-bit length of at most `limit`, and its payload all in the buffer. Any
/// other frame (control, fragment, RSV, 64-bit length, cut by the read, over
/// a limit, or breaking a rule) is left to the general path, which decodes
/// and checks it in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WholeFrame {
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub header_len: usize,
    pub payload_len: usize,
}

impl WholeFrame {
    #[inline(always)]
    pub fn decode(buf: &[u8], masked: bool, limit: usize) -> Option<WholeFrame> {
        let [b0, b1, ..] = *buf else { return None };
        let opcode = match b0 {
            0x81 => OpCode::Text,
            0x82 => OpCode::Binary,
            _ => return None,
        };
        if (b1 & 0x80 != 0) != masked {
            return None;
        }
        let (payload_len, len_end) = match b1 & 0x7F {
            127 => return None,
            126 => {
                let bytes = buf.get(2..4)?;
                (u16::from_be_bytes([bytes[0], bytes[1]]) as usize, 4)
            }
            len => (len as usize, 2),
        };
        let (mask, header_len) = if masked {
            let key = buf.get(len_end..len_end + 4)?;
            (Some([key[0], key[1], key[2], key[3]]), len_end + 4)
        } else {
            (None, len_end)
        };
        if payload_len > limit || buf.len() - header_len < payload_len {
            return None;
        }
        Some(WholeFrame {
            opcode,
            mask,
            header_len,
            payload_len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(buf: &[u8]) -> (FrameHeader, usize) {
        FrameHeader::decode(buf).unwrap().expect("complete header")
    }

    #[test]
    fn rfc_examples() {
        // §5.7 single-frame unmasked text "Hello".
        let (h, n) = decode_all(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(
            (h.fin, h.opcode, h.mask, h.payload_len, n),
            (true, OpCode::Text, None, 5, 2)
        );
        // Masked "Hello".
        let (h, n) = decode_all(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f]);
        assert_eq!((h.mask, h.payload_len, n), (Some([0x37, 0xfa, 0x21, 0x3d]), 5, 6));
        // Fragmented: "Hel" (not FIN) then "lo" continuation (FIN).
        let (h, _) = decode_all(&[0x01, 0x03, 0x48, 0x65, 0x6c]);
        assert_eq!((h.fin, h.opcode), (false, OpCode::Text));
        let (h, _) = decode_all(&[0x80, 0x02, 0x6c, 0x6f]);
        assert_eq!((h.fin, h.opcode), (true, OpCode::Continuation));
        // Unmasked ping "Hello".
        let (h, _) = decode_all(&[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!((h.opcode, h.payload_len), (OpCode::Ping, 5));
        // 256 bytes binary, 16-bit length.
        let (h, n) = decode_all(&[0x82, 0x7E, 0x01, 0x00]);
        assert_eq!((h.opcode, h.payload_len, n), (OpCode::Binary, 256, 4));
        // 64 KiB binary, 64-bit length.
        let (h, n) = decode_all(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn incomplete_headers_ask_for_more() {
        let full = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for len in 0..full.len() {
            assert_eq!(FrameHeader::decode(&full[..len]).unwrap(), None, "prefix {len}");
        }
        assert_eq!(decode_all(&full).1, 14);
    }

    #[test]
    fn structural_errors() {
        assert!(FrameHeader::decode(&[0x83, 0x00]).is_err(), "reserved data opcode");
        assert!(FrameHeader::decode(&[0x8B, 0x00]).is_err(), "reserved control opcode");
        assert!(FrameHeader::decode(&[0x09, 0x00]).is_err(), "fragmented ping");
        assert!(FrameHeader::decode(&[0x89, 126, 0, 126]).is_err(), "ping of 126 bytes");
        assert!(
            FrameHeader::decode(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]).is_err(),
            "top bit"
        );
        assert!(
            FrameHeader::decode(&[0x89, 125]).unwrap().is_some(),
            "ping of 125 is fine"
        );
        // 2^63 - 1 is a legal length on the wire (limits are the session's job).
        let (h, _) = decode_all(&[0x82, 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(h.payload_len, (1 << 63) - 1);
    }

    /// The quick decoder takes exactly the frames it describes, and agrees
    /// with the full one on each of them.
    #[test]
    fn whole_frames_agree_with_the_full_decoder() {
        let mut frames: Vec<Vec<u8>> = Vec::new();
        for b0 in [
            0x81u8, 0x82, 0x01, 0x02, 0x80, 0x88, 0x89, 0x8A, 0x83, 0xC1, 0xA2, 0x92, 0x8B,
        ] {
            for (len, masked) in [
                (0u64, true),
                (5, true),
                (5, false),
                (125, true),
                (126, true),
                (300, false),
            ] {
                let header = FrameHeader {
                    fin: b0 & 0x80 != 0,
                    rsv: (b0 >> 4) & 7,
                    opcode: OpCode::Text,
                    mask: masked.then_some([1, 2, 3, 4]),
                    payload_len: len,
                };
                let mut out = [0u8; MAX_HEADER_LEN];
                let n = header.encode(&mut out);
                let mut frame = out[..n].to_vec();
                frame[0] = b0;
                frame.extend(std::iter::repeat(b'x').take(len as usize));
                frames.push(frame);
            }
        }
        // A 64-bit length, even a small one, goes the general way.
        frames.push(vec![0x82, 127, 0, 0, 0, 0, 0, 0, 0, 1, b'x']);
        for frame in &frames {
            for masked in [true, false] {
                for limit in [0, 5, 300, usize::MAX] {
                    for cut in [frame.len(), frame.len().saturating_sub(1)] {
                        let buf = &frame[..cut];
                        let Some(quick) = WholeFrame::decode(buf, masked, limit) else {
                            continue;
                        };
                        let (full, n) = FrameHeader::decode(buf).unwrap().expect("complete");
                        assert!(full.fin && full.rsv == 0 && !full.opcode.is_control(), "{frame:?}");
                        assert_ne!(full.opcode, OpCode::Continuation, "{frame:?}");
                        assert_eq!(full.mask.is_some(), masked, "{frame:?}");
                        assert!(full.payload_len as usize <= limit, "{frame:?}");
                        assert!(n + full.payload_len as usize <= buf.len(), "{frame:?}");
                        assert_eq!(
                            (quick.opcode, quick.mask, quick.header_len, quick.payload_len as u64),
                            (full.opcode, full.mask, n, full.payload_len),
                            "{frame:?}"
                        );
                    }
                }
            }
        }
        // And it takes the common ones.
        let hello = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        assert_eq!(
            WholeFrame::decode(&hello, true, 100),
            Some(WholeFrame {
                opcode: OpCode::Text,
                mask: Some([0x37, 0xfa, 0x21, 0x3d]),
                header_len: 6,
                payload_len: 5
            })
        );
        assert_eq!(WholeFrame::decode(&hello[..10], true, 100), None, "cut");
        assert_eq!(WholeFrame::decode(&hello, true, 4), None, "over the limit");
        assert_eq!(WholeFrame::decode(&hello, false, 100), None, "masked toward a client");
    }

    #[test]
    fn encode_is_minimal_and_round_trips() {
        for len in [0u64, 1, 125, 126, 127, 65535, 65536, 1 << 32, (1 << 63) - 1] {
            for mask in [None, Some([9, 8, 7, 6])] {
                for opcode in [OpCode::Text, OpCode::Binary, OpCode::Continuation] {
                    let header = FrameHeader {
                        fin: true,
                        rsv: 0,
                        opcode,
                        mask,
                        payload_len: len,
                    };
                    let mut out = [0u8; MAX_HEADER_LEN];
                    let n = header.encode(&mut out);
                    assert_eq!(n, FrameHeader::encoded_len(len, mask.is_some()));
                    assert_eq!(decode_all(&out[..n]), (header, n));
                }
            }
        }
    }
}

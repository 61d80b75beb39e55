//! Decoding what a session wrote, to check it is well-formed for its role.

use wsconn::proto::frame::{FrameHeader, OpCode};
use wsconn::proto::mask::apply_mask;
use wsconn::{CloseCode, Role};

/// A frame a session wrote, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: OpCode,
    pub payload: Vec<u8>,
}

/// Decodes `bytes` as a whole number of frames written by `role`: every header
/// decodes, uses the minimal length encoding, has no RSV bit, is masked exactly
/// when a client wrote it, and its payload is all there. Panics otherwise.
pub fn parse_frames(bytes: &[u8], role: Role, what: &str) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let (header, n) = match FrameHeader::decode(rest) {
            Ok(Some(found)) => found,
            Ok(None) => panic!("{what}: output ends inside a frame header at byte {pos}: {rest:02x?}"),
            Err(e) => panic!("{what}: output has an invalid frame header at byte {pos} ({e}): {rest:02x?}"),
        };
        assert_eq!(header.rsv, 0, "{what}: output frame with RSV bits at byte {pos}");
        match role {
            Role::Server => assert!(
                header.mask.is_none(),
                "{what}: masked frame from a server at byte {pos}"
            ),
            Role::Client => assert!(
                header.mask.is_some(),
                "{what}: unmasked frame from a client at byte {pos}"
            ),
        }
        assert_eq!(
            n,
            FrameHeader::encoded_len(header.payload_len, header.mask.is_some()),
            "{what}: non-minimal length encoding at byte {pos}"
        );
        let len = usize::try_from(header.payload_len).expect("payload length fits in usize");
        assert!(
            rest.len() - n >= len,
            "{what}: output ends inside a frame payload at byte {pos} (header says {len}, {} left)",
            rest.len() - n
        );
        let mut payload = rest[n..n + len].to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        frames.push(Frame {
            fin: header.fin,
            opcode: header.opcode,
            payload,
        });
        pos += n + len;
    }
    frames
}

/// Checks the sequence of frames a session wrote, as a peer would: fragments
/// continue only an open message, text is UTF-8 across its fragments, control
/// frames are valid, and nothing follows a close frame.
pub fn check_frame_sequence(frames: &[Frame], what: &str) {
    let mut open: Option<(OpCode, Vec<u8>)> = None;
    let mut closed = false;
    for (i, f) in frames.iter().enumerate() {
        assert!(!closed, "{what}: frame {i} ({:?}) after a close frame", f.opcode);
        match f.opcode {
            OpCode::Text | OpCode::Binary => {
                assert!(
                    open.is_none(),
                    "{what}: frame {i} starts a message inside a fragmented one"
                );
                open = Some((f.opcode, f.payload.clone()));
            }
            OpCode::Continuation => {
                let Some((_, data)) = open.as_mut() else {
                    panic!("{what}: frame {i} continues no message")
                };
                data.extend_from_slice(&f.payload);
            }
            OpCode::Close => {
                check_close_payload(&f.payload, what);
                closed = true;
            }
            OpCode::Ping | OpCode::Pong => {}
        }
        if f.opcode.is_control() {
            assert!(f.fin && f.payload.len() <= 125, "{what}: bad control frame {i}");
            continue;
        }
        if let Some((opcode, data)) = &open {
            if *opcode == OpCode::Text {
                let ok = match std::str::from_utf8(data) {
                    Ok(_) => true,
                    Err(e) => !f.fin && e.error_len().is_none(),
                };
                assert!(ok, "{what}: text message ending at frame {i} is not UTF-8: {data:02x?}");
            }
            if f.fin {
                open = None;
            }
        }
    }
}

/// A close frame's payload: empty, or a code valid on the wire and a UTF-8 reason.
pub fn check_close_payload(payload: &[u8], what: &str) {
    match payload {
        [] => {}
        [_] => panic!("{what}: close frame with a 1-byte payload"),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            assert!(
                CloseCode(code).is_valid_on_wire(),
                "{what}: close frame with code {code}, not valid on the wire"
            );
            assert!(
                std::str::from_utf8(reason).is_ok(),
                "{what}: close reason is not UTF-8: {reason:02x?}"
            );
        }
    }
}

//! permessage-deflate (RFC 7692) for the load generator, written with flate2
//! (zlib-rs backend) rather than wsconn's own code: the offer, reading the
//! server's answer, compressing a message on its own and inflating replies.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// What the generator offers: the extension, letting the server choose the
/// client's window.
pub const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// What every compressed message ends with and leaves off (§7.2.1).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The parameters a server agreed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    pub server_max_window_bits: u8,
    pub client_max_window_bits: u8,
}

fn bits(name: &str, value: Option<&str>) -> Result<u8, String> {
    let v = value.ok_or_else(|| format!("{name} without a value"))?;
    match v.trim_matches('"').parse::<u8>() {
        Ok(b @ 8..=15) => Ok(b),
        _ => Err(format!("{name}={v} is not 8 to 15")),
    }
}

/// Reads the `Sec-WebSocket-Extensions` value of a 101 answering [`OFFER`].
pub fn parse_answer(value: &str) -> Result<Agreed, String> {
    let mut parts = value.split(';').map(str::trim);
    let name = parts.next().unwrap_or("");
    if !name.eq_ignore_ascii_case("permessage-deflate") || value.contains(',') {
        return Err(format!("the server answered the offer with {value:?}"));
    }
    let mut a = Agreed {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    for param in parts {
        let (key, val) = match param.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (param, None),
        };
        match key.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => a.server_no_context_takeover = true,
            "client_no_context_takeover" => a.client_no_context_takeover = true,
            "server_max_window_bits" => a.server_max_window_bits = bits(key, val)?,
            "client_max_window_bits" => a.client_max_window_bits = bits(key, val)?,
            _ => return Err(format!("unknown permessage-deflate parameter {param:?}")),
        }
    }
    Ok(a)
}

/// `data` compressed on its own (an empty window: valid whatever the
/// agreement) with at most a `window_bits` window, without the tail.
pub fn compress_alone(data: &[u8], window_bits: u8) -> Result<Vec<u8>, String> {
    if window_bits < 9 {
        // zlib has no 256-byte window for compressing.
        return Err(format!(
            "client_max_window_bits={window_bits}: the generator compresses with 9 bits or more"
        ));
    }
    let mut c = Compress::new_with_window_bits(Compression::default(), false, window_bits);
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let used = c.total_in() as usize;
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(1024));
        }
        c.compress_vec(&data[used..], &mut out, FlushCompress::Sync)
            .map_err(|e| format!("deflate: {e}"))?;
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    if !out.ends_with(&TAIL) {
        return Err("deflate: a sync flush did not end with 00 00 ff ff".into());
    }
    out.truncate(out.len() - TAIL.len());
    Ok(out)
}

/// A decompressor for one direction of one connection (or shared, reset after
/// every message, when the server agreed to server_no_context_takeover).
pub struct Inflater {
    stream: Decompress,
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater::new()
    }
}

impl Inflater {
    pub fn new() -> Inflater {
        // A 15-bit window decodes what any smaller window made.
        Inflater {
            stream: Decompress::new(false),
        }
    }

    /// Inflates one message's payload (tail added) into `out` (cleared
    /// first); fails if it would inflate to more than `limit` bytes.
    pub fn message(&mut self, payload: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), String> {
        out.clear();
        for part in [payload, &TAIL[..]] {
            let mut used = 0;
            loop {
                if out.capacity() - out.len() < 4096 {
                    if out.len() > limit {
                        return Err(format!("a compressed echo inflates to over {limit} bytes"));
                    }
                    out.reserve(out.capacity().max(16 << 10));
                }
                let (in0, out0) = (self.stream.total_in(), self.stream.total_out());
                let status = self
                    .stream
                    .decompress_vec(&part[used..], out, FlushDecompress::Sync)
                    .map_err(|e| format!("inflate: {e}"))?;
                used += (self.stream.total_in() - in0) as usize;
                let made = self.stream.total_out() - out0;
                let room_left = out.len() < out.capacity();
                if status == Status::StreamEnd || (used == part.len() && room_left) || (made == 0 && used == 0) {
                    break;
                }
            }
        }
        if out.len() > limit {
            return Err(format!("a compressed echo inflates to over {limit} bytes"));
        }
        Ok(())
    }

    /// Starts afresh (the next message is on its own).
    pub fn reset(&mut self) {
        self.stream.reset(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_at_every_window() {
        let data = crate::text_payload(20_000, 3);
        for bits in 9..=15 {
            let packed = compress_alone(&data, bits).unwrap();
            assert!(packed.len() < data.len() / 2, "{bits}: {}", packed.len());
            let mut out = Vec::new();
            let mut inflater = Inflater::new();
            inflater.message(&packed, &mut out, data.len()).unwrap();
            assert_eq!(out, data);
            // Context kept: the same stream takes the next message.
            inflater.message(&packed, &mut out, data.len()).unwrap();
            assert_eq!(out, data);
            assert!(inflater.message(&packed, &mut out, data.len() - 1).is_err());
        }
        // RFC 7692 §7.2.3.1.
        let mut out = Vec::new();
        Inflater::new()
            .message(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut out, 5)
            .unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn answers() {
        let a = parse_answer("permessage-deflate; server_no_context_takeover; client_max_window_bits=9").unwrap();
        assert!(a.server_no_context_takeover && !a.client_no_context_takeover);
        assert_eq!((a.server_max_window_bits, a.client_max_window_bits), (15, 9));
        assert!(parse_answer("x-webkit-deflate-frame").is_err());
        assert!(parse_answer("permessage-deflate; client_max_window_bits=16").is_err());
        assert!(parse_answer("permessage-deflate, permessage-deflate").is_err());
    }
}

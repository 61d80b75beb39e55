//! Helpers shared by the benchmarks: payloads, frame encoding and the opening
//! handshake, written independently of wsconn so the load generator does not
//! test wsconn with wsconn's own code.

use base64::Engine;
use sha1::{Digest, Sha1};

/// Opcodes of the two data frames.
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;

/// A masking key for text payloads that keeps [`text_payload`] valid UTF-8 when
/// applied: it only flips bits 0 and 4, which turn ASCII into ASCII, continuation
/// bytes into continuation bytes, and the lead bytes used (C2..CF, D2..DF) into
/// lead bytes of the same set. The codec benchmarks unmask one buffer in place
/// again and again; with this key every pass decodes valid UTF-8, so each pass
/// does the whole work (the masked and unmasked states are both valid text).
pub const TEXT_KEY: [u8; 4] = [0x11, 0x01, 0x10, 0x11];
/// Any key does for binary payloads.
pub const BINARY_KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// JSON-like text, mostly ASCII with some 2-byte characters (Greek, Latin-1):
/// a common shape for WebSocket text messages.
const TEXT_PATTERN: &str =
    "{\"id\":12345,\"name\":\"κόσμε\",\"city\":\"Zürich\",\"text\":\"lorem ipsum dolor sit amet, élan\"} ";

/// Valid UTF-8 of exactly `len` bytes, starting `variant` characters into the
/// pattern (so variants differ). See [`TEXT_KEY`] for why these characters.
pub fn text_payload(len: usize, variant: usize) -> Vec<u8> {
    let chars: Vec<char> = TEXT_PATTERN.chars().collect();
    let mut out = String::with_capacity(len + 4);
    let mut i = variant % chars.len();
    loop {
        let c = chars[i % chars.len()];
        if out.len() + c.len_utf8() > len {
            break;
        }
        out.push(c);
        i += 1;
    }
    while out.len() < len {
        out.push(' ');
    }
    debug_assert_eq!(out.len(), len);
    out.into_bytes()
}

/// Pure ASCII text of exactly `len` bytes (the fast path of UTF-8 validators).
pub fn ascii_payload(len: usize, variant: usize) -> Vec<u8> {
    const PATTERN: &[u8] = b"{\"id\":12345,\"name\":\"kosme\",\"text\":\"lorem ipsum dolor sit amet\"} ";
    (0..len).map(|i| PATTERN[(i + variant) % PATTERN.len()]).collect()
}

/// Pseudo-random bytes (xorshift), different for each `variant`.
pub fn binary_payload(len: usize, variant: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (variant as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The payload of a message of `len` bytes: text or binary.
pub fn payload(binary: bool, len: usize, variant: usize) -> Vec<u8> {
    if binary {
        binary_payload(len, variant)
    } else {
        text_payload(len, variant)
    }
}

/// One final frame with the minimal length encoding; masked when `mask` is given.
pub fn encode_frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// The `Sec-WebSocket-Accept` value for `key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// The client's fixed handshake key (any 16 bytes, base64).
pub const CLIENT_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The opening handshake request a client sends.
pub fn upgrade_request(host: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {CLIENT_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// The server's `101 Switching Protocols` answer to a request carrying `key`.
pub fn upgrade_response(key: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    )
    .into_bytes()
}

/// Runs a peer echo server: `NAME PORT` on the command line, one thread
/// (tokio's current_thread runtime), 127.0.0.1 only, TCP_NODELAY, one task per
/// connection running `serve`. Prints "NAME listening on 127.0.0.1:PORT".
pub fn run_peer<F, Fut>(name: &str, serve: F)
where
    F: Fn(tokio::net::TcpStream) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(p)) => p,
        _ => {
            eprintln!("usage: {name} PORT");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| {
                eprintln!("{name}: bind 127.0.0.1:{port}: {e}");
                std::process::exit(1);
            });
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        println!("{name} listening on 127.0.0.1:{port}");
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and the like: wait a little rather than spin.
                    eprintln!("{name}: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_accept_key() {
        assert_eq!(accept_key(CLIENT_KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn text_stays_valid_under_its_key() {
        for len in [0, 1, 2, 15, 16, 17, 100, 1024, 65536] {
            for variant in 0..8 {
                let p = text_payload(len, variant);
                assert_eq!(p.len(), len);
                assert!(std::str::from_utf8(&p).is_ok());
                let masked: Vec<u8> = p.iter().enumerate().map(|(i, b)| b ^ TEXT_KEY[i & 3]).collect();
                assert!(std::str::from_utf8(&masked).is_ok(), "len {len} variant {variant}");
            }
        }
    }

    #[test]
    fn ascii_is_ascii() {
        let p = ascii_payload(1000, 3);
        assert!(p.len() == 1000 && p.is_ascii());
    }

    #[test]
    fn frames_round_trip_lengths() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let f = encode_frame(OP_BINARY, &vec![7; len], Some(BINARY_KEY));
            let hdr = match len {
                0..=125 => 2,
                126..=0xFFFF => 4,
                _ => 10,
            };
            assert_eq!(f.len(), hdr + 4 + len);
        }
    }
}

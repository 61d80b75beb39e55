//! Helpers shared by the benchmarks: payloads, the accept value and the peer
//! servers' main loop. Frames and the handshake request come from
//! `wsconn-testkit`; like it, this is written independently of wsconn so the
//! load generator does not test wsconn with wsconn's own code.

pub mod cpu;
pub mod deflate;
pub mod tls;

use base64::Engine;
use sha1::{Digest, Sha1};

/// A masking key for text payloads that keeps [`text_payload`] valid UTF-8 when
/// applied: it only flips bits 0 and 4, which turn ASCII into ASCII, continuation
/// bytes into continuation bytes, and the lead bytes used (C2..CF, D2..DF) into
/// lead bytes of the same set. The codec benchmarks unmask one buffer in place
/// again and again; with this key every pass decodes valid UTF-8, so each pass
/// does the whole work (the masked and unmasked states are both valid text).
pub const TEXT_KEY: [u8; 4] = [0x11, 0x01, 0x10, 0x11];
/// Any key does for binary payloads.
pub const BINARY_KEY: [u8; 4] = wsconn_testkit::MASK;

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

/// The `Sec-WebSocket-Accept` value for `key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// The server's `101 Switching Protocols` answer to a request carrying `key`.
pub fn upgrade_response(key: &str) -> Vec<u8> {
    wsconn_testkit::upgrade_response(&accept_key(key))
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
        assert_eq!(accept_key(wsconn_testkit::KEY), wsconn_testkit::ACCEPT);
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
}

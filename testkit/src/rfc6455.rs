//! The samples of RFC 6455: a key and its accept value, the opening handshake
//! of §1.3 and the masking key of §5.7. Known answers, so a test can compare
//! bytes without computing them the way wsconn does.

/// The `Sec-WebSocket-Key` of §1.3.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The `Sec-WebSocket-Accept` value §1.3 gives for [`KEY`].
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The masking key of §5.7.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The request of §1.3 with only the headers a handshake needs (no Origin, no
/// subprotocols): what [`upgrade_request`] writes for that host and path.
pub const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// The request of §1.3 as the RFC prints it, Origin and subprotocols included.
pub const REQUEST_WITH_SUBPROTOCOLS: &[u8] =
    b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// The server's answer to [`REQUEST`] (no subprotocol chosen).
pub const RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/// The opening request a client sends for `path` on `host`, with [`KEY`].
pub fn upgrade_request(host: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// The server's `101 Switching Protocols` carrying `accept` (the caller
/// computes it from the request's key).
pub fn upgrade_response(accept: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builders_write_the_samples() {
        assert_eq!(upgrade_request("server.example.com", "/chat"), REQUEST);
        assert_eq!(upgrade_response(ACCEPT), RESPONSE);
    }

    #[test]
    fn the_full_request_only_adds_headers() {
        let full = String::from_utf8(REQUEST_WITH_SUBPROTOCOLS.to_vec()).unwrap();
        let extra = "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n";
        assert_eq!(full.replace(extra, "").as_bytes(), REQUEST);
    }
}

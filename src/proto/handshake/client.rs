//! Client side of the opening handshake: build the request (RFC 6455 §4.1) and
//! check the server's response.

use super::{accept_key, any_has_token, extensions, header_values, MAX_HEADERS};
use crate::proto::config::Config;
use crate::proto::deflate::{negotiation, Agreed, DeflateConfig};
use crate::proto::error::Error;
use base64::Engine;

/// A fresh `Sec-WebSocket-Key`: 16 random bytes in base64.
pub fn new_key() -> String {
    let mut nonce = [0u8; 16];
    crate::proto::random::fill(&mut nonce);
    base64::engine::general_purpose::STANDARD.encode(nonce)
}

/// Whether `text` can stand in a request line or header value as is.
fn is_plain(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic())
}

/// Appends the upgrade request to `out`. `host` is the Host header value
/// (with `:port` when not the default), `path` the request target.
pub fn write_request(
    out: &mut Vec<u8>,
    host: &str,
    path: &str,
    key: &str,
    subprotocols: &[String],
    deflate: Option<&DeflateConfig>,
) -> Result<(), Error> {
    if !is_plain(host) || !is_plain(path) || !path.starts_with('/') {
        return Err(Error::InvalidArgument);
    }
    if subprotocols.iter().any(|p| !is_plain(p) || p.contains(',')) {
        return Err(Error::InvalidArgument);
    }
    out.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n").as_bytes());
    out.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\r\nSec-WebSocket-Version: 13\r\n");
    if !subprotocols.is_empty() {
        out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        out.extend_from_slice(subprotocols.join(", ").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(config) = deflate {
        out.extend_from_slice(b"Sec-WebSocket-Extensions: ");
        out.extend_from_slice(negotiation::offer(config).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// A valid 101 response.
#[derive(Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// The subprotocol the server selected (one of those offered).
    pub subprotocol: Option<&'a str>,
    /// permessage-deflate, if offered and accepted.
    pub deflate: Option<Agreed>,
    /// Length of the response head; bytes after it are frames.
    pub head_len: usize,
}

/// Parses and checks the response at the start of `buf`. `Ok(None)`: incomplete.
pub fn parse_response<'c>(buf: &[u8], key: &str, config: &'c Config) -> Result<Option<Response<'c>>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= config.max_handshake_size() => {
            return Err(Error::HandshakeTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::HandshakeTooLarge),
        Err(_) => return Err(Error::Handshake("malformed HTTP response")),
    };
    if head_len > config.max_handshake_size() {
        return Err(Error::HandshakeTooLarge);
    }
    if response.code != Some(101) {
        return Err(Error::Handshake("the server did not answer 101 Switching Protocols"));
    }
    let headers = response.headers;
    if !any_has_token(headers, "Upgrade", "websocket") {
        return Err(Error::Handshake("no Upgrade: websocket in the response"));
    }
    if !any_has_token(headers, "Connection", "upgrade") {
        return Err(Error::Handshake("no Connection: upgrade in the response"));
    }
    let expected = accept_key(key.as_bytes());
    let mut accepts = header_values(headers, "Sec-WebSocket-Accept");
    match (accepts.next(), accepts.next()) {
        (Some(value), None) if value.trim_ascii() == expected.as_bytes() => {}
        _ => return Err(Error::Handshake("wrong Sec-WebSocket-Accept")),
    }
    let answer = extensions::parse_headers(headers)
        .map_err(|_| Error::Handshake("malformed Sec-WebSocket-Extensions in the response"))?;
    let deflate = match config.deflate() {
        Some(offered) => negotiation::check_response(&answer, offered)?,
        None if answer.is_empty() => None,
        None => {
            return Err(Error::Handshake(
                "the server selected an extension that was not offered",
            ))
        }
    };
    let mut protocols = header_values(headers, "Sec-WebSocket-Protocol");
    let subprotocol = match (protocols.next(), protocols.next()) {
        (None, _) => None,
        (Some(chosen), None) => {
            let chosen = chosen.trim_ascii();
            match config.subprotocols().iter().find(|p| p.as_bytes() == chosen) {
                Some(p) => Some(p.as_str()),
                None => {
                    return Err(Error::Handshake(
                        "the server selected a subprotocol that was not offered",
                    ))
                }
            }
        }
        (Some(_), Some(_)) => return Err(Error::Handshake("the server selected several subprotocols")),
    };
    Ok(Some(Response {
        subprotocol,
        deflate,
        head_len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const RESPONSE: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

    fn config() -> Config {
        Config::with_subprotocols(&["chat", "superchat"]).unwrap()
    }

    #[test]
    fn keys_are_fresh_16_byte_nonces() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        let decoded = base64::engine::general_purpose::STANDARD.decode(&a).unwrap();
        assert_eq!(decoded.len(), 16);
    }

    #[test]
    fn request_is_valid_for_our_server() {
        let mut out = Vec::new();
        write_request(
            &mut out,
            "example.com:8080",
            "/chat?x=1",
            KEY,
            config().subprotocols(),
            None,
        )
        .unwrap();
        let server_config = Config::with_subprotocols(&["superchat"]).unwrap();
        let req = crate::proto::handshake::server::parse_request(&out, &server_config)
            .unwrap()
            .unwrap();
        assert_eq!(req.path, "/chat?x=1");
        assert_eq!(req.subprotocol, Some("superchat"));
        assert_eq!(req.head_len, out.len());
    }

    #[test]
    fn request_arguments_are_checked() {
        let mut out = Vec::new();
        assert!(write_request(&mut out, "host\r\nX: y", "/", KEY, &[], None).is_err());
        assert!(write_request(&mut out, "host", "no-slash", KEY, &[], None).is_err());
        assert!(write_request(&mut out, "host", "/a b", KEY, &[], None).is_err());
        assert!(write_request(&mut out, "", "/", KEY, &[], None).is_err());
        assert!(out.is_empty(), "a refused request writes nothing");
    }

    #[test]
    fn valid_response_at_every_split() {
        let cfg = config();
        for len in 0..RESPONSE.len() {
            assert_eq!(parse_response(&RESPONSE.as_bytes()[..len], KEY, &cfg), Ok(None));
        }
        let r = parse_response(RESPONSE.as_bytes(), KEY, &cfg).unwrap().unwrap();
        assert_eq!(
            r,
            Response {
                subprotocol: None,
                deflate: None,
                head_len: RESPONSE.len()
            }
        );
    }

    #[test]
    fn bad_responses() {
        let cfg = config();
        let check = |resp: String| parse_response(resp.as_bytes(), KEY, &cfg);
        assert!(check(RESPONSE.replace("101 Switching Protocols", "200 OK")).is_err());
        assert!(check(RESPONSE.replace("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")).is_err());
        assert!(check(RESPONSE.replace("Upgrade: websocket\r\n", "")).is_err());
        assert!(check(RESPONSE.replace("Connection: Upgrade", "Connection: close")).is_err());
        let with = |extra: &str| RESPONSE.replace("\r\n\r\n", &format!("\r\n{extra}\r\n\r\n"));
        assert!(check(with("Sec-WebSocket-Extensions: permessage-deflate")).is_err());
        assert!(check(with("Sec-WebSocket-Protocol: mqtt")).is_err());
        assert!(check(with("Sec-WebSocket-Protocol: chat, superchat")).is_err());
        let ok = check(with("Sec-WebSocket-Protocol: superchat")).unwrap().unwrap();
        assert_eq!(ok.subprotocol, Some("superchat"));
        assert!(parse_response(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n", KEY, &Config::default()).is_err(), "subprotocol selected but none offered");
    }
}

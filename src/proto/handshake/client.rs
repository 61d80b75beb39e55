//! Client side of the opening handshake: build the request (RFC 6455 §4.1) and
//! check the server's response.

use super::headers::{check_request_header, Headers};
use super::{accept_key, any_has_token, extensions, header_values, MAX_HEADERS};
use crate::proto::config::Config;
use crate::proto::deflate::{negotiation, Agreed};
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
/// (with `:port` when not the default), `path` the request target; the
/// config's subprotocols, deflate offer and headers follow, then `extra`
/// header lines (e.g. the `Authorization` of a URL's credentials).
pub fn write_request(
    out: &mut Vec<u8>,
    host: &str,
    path: &str,
    key: &str,
    config: &Config,
    extra: &[(String, String)],
) -> Result<(), Error> {
    if !is_plain(host) || !is_plain(path) || !path.starts_with('/') {
        return Err(Error::InvalidArgument);
    }
    let subprotocols = config.subprotocols();
    if subprotocols.iter().any(|p| !is_plain(p) || p.contains(',')) {
        return Err(Error::InvalidArgument);
    }
    if extra.iter().any(|(n, v)| check_request_header(n, v).is_err()) {
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
    if let Some(offer) = config.deflate() {
        out.extend_from_slice(b"Sec-WebSocket-Extensions: ");
        out.extend_from_slice(negotiation::offer(offer).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in config.headers().iter().chain(extra) {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
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

/// What a complete response head is.
#[derive(Debug, PartialEq, Eq)]
pub enum Head<'a> {
    /// An interim response (1xx other than 101) of this length: skipped, the
    /// final one follows.
    Interim(usize),
    /// A valid 101: the connection is a WebSocket from the end of the head.
    Upgrade(Response<'a>, Headers<'a>),
    /// Any other final status: the server refused the upgrade (a redirect,
    /// 401, 403, 503…). The connection is not a WebSocket.
    Refused {
        status: u16,
        headers: Headers<'a>,
        head_len: usize,
    },
}

/// Parses and checks the response at the start of `buf`. `Ok(None)`: incomplete.
/// A status other than 101 is [`Error::Refused`].
pub fn parse_response<'c>(buf: &[u8], key: &str, config: &'c Config) -> Result<Option<Response<'c>>, Error> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match parse_head(buf, key, config, &mut storage)? {
        None => Ok(None),
        // The subprotocol again from the config: the head's storage ends here.
        Some(Head::Upgrade(response, _)) => Ok(Some(Response {
            subprotocol: response
                .subprotocol
                .and_then(|p| config.subprotocols().iter().find(|s| *s == p))
                .map(String::as_str),
            ..response
        })),
        Some(Head::Refused { status, .. }) => Err(Error::Refused(status)),
        Some(Head::Interim(_)) => Err(Error::Handshake("an interim response")),
    }
}

/// Parses the response head at the start of `buf`, its header lines kept in
/// `storage`, and checks a 101 against the request (sent with `key`).
/// `Ok(None)`: incomplete.
pub fn parse_head<'a, 'c>(
    buf: &'a [u8],
    key: &str,
    config: &'c Config,
    storage: &'a mut [httparse::Header<'a>],
) -> Result<Option<Head<'c>>, Error>
where
    'a: 'c,
{
    let mut response = httparse::Response::new(storage);
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
    let status = response.code.unwrap_or(0);
    let headers = response.headers;
    match status {
        101 => {}
        100..=199 => return Ok(Some(Head::Interim(head_len))),
        _ => {
            return Ok(Some(Head::Refused {
                status,
                headers: Headers::new(headers),
                head_len,
            }))
        }
    }
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
    let response = Response {
        subprotocol,
        deflate,
        head_len,
    };
    Ok(Some(Head::Upgrade(response, Headers::new(headers))))
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
        let mut cfg = config();
        cfg.add_header("Origin", "https://example.com").unwrap();
        cfg.add_header("Cookie", "a=b").unwrap();
        let extra = [("Authorization".to_owned(), "Basic dTpw".to_owned())];
        write_request(&mut out, "example.com:8080", "/chat?x=1", KEY, &cfg, &extra).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.ends_with("\r\nOrigin: https://example.com\r\nCookie: a=b\r\nAuthorization: Basic dTpw\r\n\r\n"),
            "{text}"
        );
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
        let cfg = Config::default();
        assert!(write_request(&mut out, "host\r\nX: y", "/", KEY, &cfg, &[]).is_err());
        assert!(write_request(&mut out, "host", "no-slash", KEY, &cfg, &[]).is_err());
        assert!(write_request(&mut out, "host", "/a b", KEY, &cfg, &[]).is_err());
        assert!(write_request(&mut out, "", "/", KEY, &cfg, &[]).is_err());
        let bad = [("Host".to_owned(), "x".to_owned())];
        assert!(write_request(&mut out, "host", "/", KEY, &cfg, &bad).is_err());
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
        assert_eq!(
            check(RESPONSE.replace("101 Switching Protocols", "200 OK")),
            Err(Error::Refused(200))
        );
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

    #[test]
    fn refusals_and_interim_responses_are_told_apart() {
        let cfg = config();
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n\r\nbody";
        match parse_head(head, KEY, &cfg, &mut storage) {
            Ok(Some(Head::Refused {
                status,
                headers,
                head_len,
            })) => {
                assert_eq!((status, head_len), (302, head.len() - 4));
                assert_eq!(headers.get("location", 0), Some(&b"/elsewhere"[..]));
            }
            other => panic!("{other:?}"),
        }
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
        assert_eq!(
            parse_head(interim, KEY, &cfg, &mut storage),
            Ok(Some(Head::Interim(interim.len())))
        );
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse_head(RESPONSE.as_bytes(), KEY, &cfg, &mut storage) {
            Ok(Some(Head::Upgrade(_, headers))) => assert_eq!(headers.get("upgrade", 0), Some(&b"websocket"[..])),
            other => panic!("{other:?}"),
        }
    }
}

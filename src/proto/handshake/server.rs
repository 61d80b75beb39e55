//! Server side of the opening handshake: validate the client's request (RFC 6455
//! §4.2.1) and answer 101, or an HTTP error (§4.2.2, §4.4).

use super::answer::{write_lines, Header};
use super::request::UpgradeRequest;
use super::{accept_key, any_has_token, extensions, header_values, origin, MAX_HEADERS};
use crate::proto::config::Config;
use crate::proto::deflate::{negotiation, Agreed};
use crate::proto::error::Error;
use base64::Engine;

/// A valid upgrade request.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The request target, e.g. `/chat?room=1`.
    pub path: &'a str,
    /// The `Sec-WebSocket-Key` as sent.
    pub key: &'a [u8],
    /// The subprotocol selected from the configured list, if the client offered one.
    pub subprotocol: Option<&'a str>,
    /// permessage-deflate, if configured and offered (the first valid offer).
    pub deflate: Option<Agreed>,
    /// Length of the request head; bytes after it are frames.
    pub head_len: usize,
    /// The whole request, copied, when asked for (a program decides).
    pub copy: Option<Box<UpgradeRequest>>,
}

/// What a complete request head is.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A valid WebSocket upgrade.
    Upgrade(Request<'a>),
    /// A plain HTTP request: no `Upgrade: websocket`.
    Plain {
        method: &'a str,
        path: &'a str,
        head_len: usize,
    },
}

/// A refused request: the HTTP status to answer and the error to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub error: Error,
}

fn reject(status: u16, why: &'static str) -> Rejection {
    let error = if status == 431 {
        Error::HandshakeTooLarge
    } else if status == 403 {
        Error::OriginNotAllowed
    } else {
        Error::Handshake(why)
    };
    Rejection { status, error }
}

/// Parses and validates the request at the start of `buf`. `Ok(None)`: incomplete.
pub fn parse_request<'a>(buf: &'a [u8], config: &'a Config) -> Result<Option<Request<'a>>, Rejection> {
    match parse_head(buf, config)? {
        None => Ok(None),
        Some(Parsed::Upgrade(request)) => Ok(Some(request)),
        Some(Parsed::Plain { .. }) => Err(reject(400, "no Upgrade: websocket header")),
    }
}

/// Parses the request at the start of `buf`: a validated upgrade, or a plain
/// HTTP request. `Ok(None)`: incomplete.
pub fn parse_head<'a>(buf: &'a [u8], config: &'a Config) -> Result<Option<Parsed<'a>>, Rejection> {
    parse_head_copying(buf, config, false)
}

/// [`parse_head`], with a copy of a valid upgrade request when `copy` is set
/// (for a program that reads it while it decides). Refuses with 403 a
/// request whose `Origin` the config does not allow.
pub fn parse_head_copying<'a>(buf: &'a [u8], config: &'a Config, copy: bool) -> Result<Option<Parsed<'a>>, Rejection> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= config.max_handshake_size() => {
            return Err(reject(431, "request head too large"))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(reject(431, "too many header lines")),
        Err(_) => return Err(reject(400, "malformed HTTP request")),
    };
    if head_len > config.max_handshake_size() {
        return Err(reject(431, "request head too large"));
    }
    let (method, path) = (request.method.unwrap_or("GET"), request.path.unwrap_or("/"));
    let headers = request.headers;
    if !any_has_token(headers, "Upgrade", "websocket") {
        return Ok(Some(Parsed::Plain { method, path, head_len }));
    }
    if method != "GET" {
        return Err(reject(400, "method is not GET"));
    }
    if request.version != Some(1) {
        return Err(reject(400, "HTTP version is not 1.1"));
    }
    if header_values(headers, "Host").next().is_none() {
        return Err(reject(400, "no Host header"));
    }
    if !any_has_token(headers, "Connection", "upgrade") {
        return Err(reject(400, "no Connection: upgrade header"));
    }
    let mut versions = header_values(headers, "Sec-WebSocket-Version");
    if versions.next().map(<[u8]>::trim_ascii) != Some(b"13") || versions.next().is_some() {
        return Err(reject(426, "unsupported Sec-WebSocket-Version"));
    }
    let mut keys = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Key"));
    let key: &'a [u8] = match (keys.next(), keys.next()) {
        (Some(key), None) => key.value.trim_ascii(),
        _ => return Err(reject(400, "not exactly one Sec-WebSocket-Key")),
    };
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(nonce) if nonce.len() == 16 => {}
        _ => return Err(reject(400, "Sec-WebSocket-Key is not 16 bytes in base64")),
    }
    let subprotocol = select_subprotocol(headers, config.subprotocols());
    let offers = extensions::parse_headers(headers).map_err(|_| reject(400, "malformed Sec-WebSocket-Extensions"))?;
    let deflate = config.deflate().and_then(|d| negotiation::accept(&offers, d));
    let (allowed, required) = (config.allowed_origins(), config.requires_origin());
    if (required || !allowed.is_empty()) && !origin::allowed(allowed, required, header_values(headers, "Origin")) {
        return Err(reject(403, "origin not allowed"));
    }
    let copy = copy.then(|| Box::new(UpgradeRequest::new(method, path, headers)));
    Ok(Some(Parsed::Upgrade(Request {
        path,
        key,
        subprotocol,
        deflate,
        head_len,
        copy,
    })))
}

/// The first configured subprotocol the client offered (server preference wins).
fn select_subprotocol<'c>(headers: &[httparse::Header<'_>], supported: &'c [String]) -> Option<&'c str> {
    supported.iter().map(String::as_str).find(|name| {
        header_values(headers, "Sec-WebSocket-Protocol")
            .flat_map(|v| v.split(|&b| b == b','))
            .any(|offered| offered.trim_ascii() == name.as_bytes())
    })
}

/// Appends the 101 response to `out`.
pub fn write_accept(out: &mut Vec<u8>, key: &[u8], subprotocol: Option<&str>, deflate: Option<&Agreed>) {
    write_accept_with(out, key, subprotocol, deflate, &[]);
}

/// Appends the 101 response with the program's extra lines (checked with
/// `answer::check_accept`) after the library's.
pub fn write_accept_with(
    out: &mut Vec<u8>,
    key: &[u8],
    subprotocol: Option<&str>,
    deflate: Option<&Agreed>,
    extra: &[Header<'_>],
) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept_key(key).as_bytes());
    if let Some(name) = subprotocol {
        out.extend_from_slice(b"\r\nSec-WebSocket-Protocol: ");
        out.extend_from_slice(name.as_bytes());
    }
    if let Some(agreed) = deflate {
        out.extend_from_slice(b"\r\nSec-WebSocket-Extensions: ");
        out.extend_from_slice(agreed.response().as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    write_lines(out, extra);
    out.extend_from_slice(b"\r\n");
}

/// The reason phrase of the statuses wsconn writes itself.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        402 => "Payment Required",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        451 => "Unavailable For Legal Reasons",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        504 => "Gateway Timeout",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        s if (400..500).contains(&s) => "Client Error",
        s if (500..600).contains(&s) => "Server Error",
        _ => "Status",
    }
}

/// Appends a complete HTTP response with a body; the connection closes after it.
pub fn write_http_response(out: &mut Vec<u8>, status: u16, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason_phrase(status),
        body.len()
    );
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
}

/// Appends an error response for `status` to `out`; the connection closes after it.
pub fn write_rejection(out: &mut Vec<u8>, status: u16) {
    let reason = reason_phrase(status);
    let extra = if status == 426 {
        "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    } else {
        ""
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\n{extra}Connection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{reason}\n",
        reason.len() + 1
    );
    out.extend_from_slice(response.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_REQUEST: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    fn parse(req: &str) -> Result<Option<Request<'_>>, Rejection> {
        // Leak the config so the borrow lives as long as the request text.
        let config: &'static Config = Box::leak(Box::new(Config::with_subprotocols(&["superchat", "chat"]).unwrap()));
        parse_request(req.as_bytes(), config)
    }

    fn status_of(req: &str) -> u16 {
        parse(req).expect_err("must be refused").status
    }

    #[test]
    fn rfc_request_is_accepted() {
        let r = parse(RFC_REQUEST).unwrap().unwrap();
        assert_eq!(r.path, "/chat");
        assert_eq!(r.key, b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(r.subprotocol, Some("superchat"));
        assert_eq!(r.head_len, RFC_REQUEST.len());
        let mut out = Vec::new();
        write_accept(&mut out, r.key, r.subprotocol, r.deflate.as_ref());
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(text.contains("Sec-WebSocket-Protocol: superchat\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    // Safe code over many inputs: long under Miri, which has nothing to find in it.
    #[cfg_attr(miri, ignore)]
    fn every_prefix_is_incomplete() {
        for len in 0..RFC_REQUEST.len() {
            assert_eq!(parse(&RFC_REQUEST[..len]), Ok(None), "prefix {len}");
        }
    }

    #[test]
    fn header_names_and_tokens_are_case_insensitive() {
        let req = RFC_REQUEST
            .replace("Upgrade: websocket", "UPGRADE: WebSocket")
            .replace("Connection: Upgrade", "connection: keep-alive, upgrade");
        assert!(parse(&req).unwrap().is_some());
    }

    #[test]
    fn refusals() {
        assert_eq!(status_of(&RFC_REQUEST.replace("GET", "POST")), 400);
        assert_eq!(status_of(&RFC_REQUEST.replace("HTTP/1.1", "HTTP/1.0")), 400);
        assert_eq!(status_of(&RFC_REQUEST.replace("Host: server.example.com\r\n", "")), 400);
        assert_eq!(status_of(&RFC_REQUEST.replace("Upgrade: websocket\r\n", "")), 400);
        assert_eq!(
            status_of(&RFC_REQUEST.replace("Connection: Upgrade", "Connection: close")),
            400
        );
        assert_eq!(
            status_of(&RFC_REQUEST.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=")),
            400
        );
        assert_eq!(status_of(&RFC_REQUEST.replace("dGhlIHNhbXBsZSBub25jZQ==", "!!!")), 400);
        let two_keys = RFC_REQUEST.replace("Origin", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin");
        assert_eq!(status_of(&two_keys), 400);
        assert_eq!(status_of("\x00\x01garbage\r\n\r\n"), 400);
        assert_eq!(status_of("<policy-file-request/>\0"), 400);
    }

    #[test]
    fn plain_requests_are_told_apart() {
        let config = Config::default();
        let plain = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            parse_head(plain, &config),
            Ok(Some(Parsed::Plain {
                method: "GET",
                path: "/index.html",
                head_len: plain.len()
            }))
        );
        let post = b"POST /form HTTP/1.0\r\n\r\n";
        assert!(matches!(
            parse_head(post, &config),
            Ok(Some(Parsed::Plain { method: "POST", .. }))
        ));
        assert_eq!(
            status_of("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            400,
            "plain requests are refused by parse_request"
        );
        let mut out = Vec::new();
        write_http_response(&mut out, 404, "text/plain", b"nope");
        assert_eq!(
            out,
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope"
        );
    }

    #[test]
    fn other_versions_get_426() {
        assert_eq!(status_of(&RFC_REQUEST.replace("Version: 13", "Version: 8")), 426);
        assert_eq!(
            status_of(&RFC_REQUEST.replace("Sec-WebSocket-Version: 13\r\n", "")),
            426
        );
        let mut out = Vec::new();
        write_rejection(&mut out, 426);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
    }

    #[test]
    fn hixie_76_request_gets_426() {
        let hixie = "GET /demo HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\nSec-WebSocket-Protocol: sample\r\n\
            Upgrade: WebSocket\r\nSec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n\
            Origin: http://example.com\r\n\r\n^n:ds[4U";
        assert_eq!(status_of(hixie), 426);
    }

    #[test]
    fn oversized_heads_get_431() {
        let padding = format!("X-Pad: {}\r\n", "a".repeat(9000));
        let big = RFC_REQUEST.replace("Origin", &format!("{padding}Origin"));
        assert_eq!(status_of(&big), 431);
        assert_eq!(status_of(&big[..8200]), 431, "an incomplete head over the cap");
        let many: String = (0..70).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(status_of(&RFC_REQUEST.replace("Origin", &format!("{many}Origin"))), 431);
    }

    #[test]
    fn subprotocol_selection() {
        let none = RFC_REQUEST.replace("Sec-WebSocket-Protocol: chat, superchat\r\n", "");
        assert_eq!(parse(&none).unwrap().unwrap().subprotocol, None);
        let only_chat = RFC_REQUEST.replace("chat, superchat", "chat");
        assert_eq!(parse(&only_chat).unwrap().unwrap().subprotocol, Some("chat"));
        let unknown = RFC_REQUEST.replace("chat, superchat", "mqtt");
        assert_eq!(parse(&unknown).unwrap().unwrap().subprotocol, None);
        let split = RFC_REQUEST.replace("chat, superchat", "mqtt\r\nSec-WebSocket-Protocol: chat");
        assert_eq!(parse(&split).unwrap().unwrap().subprotocol, Some("chat"));
    }
}

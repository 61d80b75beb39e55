//! The HTTP proxy dialogue (RFC 9110 §9.3.6): `CONNECT host:port`, with
//! `Proxy-Authorization: Basic` when the proxy URL has credentials; any 2xx
//! opens the tunnel, 407 asks for (other) credentials (as does 401, which
//! tinyproxy answers to wrong ones), anything else refuses.

use crate::runtime::error::{Error, Result};
use crate::runtime::url::Credentials;

/// Most header lines read in the proxy's answer.
const MAX_HEADERS: usize = 64;

/// The CONNECT request for `authority` (`host:port`, IPv6 in brackets).
pub fn request(authority: &str, credentials: Option<&Credentials>) -> Vec<u8> {
    let mut out = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(c) = credentials {
        out.push_str(&format!("Proxy-Authorization: {}\r\n", c.basic()));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Reads the proxy's answer at the start of `input` (at most `limit` bytes
/// long): `Ok(None)` while incomplete, `Ok(Some(len))` when the tunnel is
/// open (`len`: the answer's length), or the refusal.
pub fn answer(input: &[u8], limit: usize) -> Result<Option<usize>> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut storage);
    let len = match response.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if input.len() < limit => return Ok(None),
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return Err(Error::ProxyProtocol("the proxy's answer is too large"))
        }
        Err(_) => return Err(Error::ProxyProtocol("the proxy's answer is not HTTP")),
    };
    if len > limit {
        return Err(Error::ProxyProtocol("the proxy's answer is too large"));
    }
    match response.code.unwrap_or(0) {
        200..=299 => Ok(Some(len)),
        status @ (401 | 407) => Err(Error::ProxyAuth(status)),
        status => Err(Error::ProxyRefused(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request() {
        let c = Credentials {
            user: "u".into(),
            password: "p".into(),
        };
        assert_eq!(
            request("[::1]:443", Some(&c)),
            b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\nProxy-Authorization: Basic dTpw\r\n\r\n"
        );
        assert_eq!(request("h:80", None), b"CONNECT h:80 HTTP/1.1\r\nHost: h:80\r\n\r\n");
    }

    #[test]
    fn answers() {
        let ok = b"HTTP/1.0 200 Connection established\r\nProxy-agent: x\r\n\r\n";
        for cut in 0..ok.len() {
            assert_eq!(answer(&ok[..cut], 8192), Ok(None), "{cut}");
        }
        assert_eq!(answer(ok, 8192), Ok(Some(ok.len())));
        assert_eq!(answer(b"HTTP/1.1 204 Ok\r\n\r\n", 8192), Ok(Some(19)));
        assert_eq!(
            answer(b"HTTP/1.0 407 Proxy Authentication Required\r\n\r\n", 8192),
            Err(Error::ProxyAuth(407))
        );
        assert_eq!(
            answer(b"HTTP/1.1 403 Forbidden\r\n\r\n", 8192),
            Err(Error::ProxyRefused(403))
        );
        assert_eq!(
            answer(b"HTTP/1.1 502 Bad Gateway\r\n\r\n", 8192),
            Err(Error::ProxyRefused(502))
        );
        assert_eq!(
            answer(b"\x05\x00garbage\r\n\r\n", 8192),
            Err(Error::ProxyProtocol("the proxy's answer is not HTTP"))
        );
        let huge = [&b"HTTP/1.1 200 OK\r\nX: "[..], &[b'a'; 9000]].concat();
        assert_eq!(
            answer(&huge, 8192),
            Err(Error::ProxyProtocol("the proxy's answer is too large"))
        );
    }
}

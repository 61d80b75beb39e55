//! The program's answer to an upgrade request: the header lines it adds to a
//! 101 or to a refusal, checked so that nothing it passes can split the
//! response (names are tokens; values hold no CR, LF, NUL or other control
//! byte but tab), and the refusal it writes (status, headers, body).

use super::server::reason_phrase;
use crate::proto::config::is_token;
use crate::proto::error::{Error, Result};

/// A header line the program adds to its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a str,
    pub value: &'a [u8],
}

/// Lines the library writes itself in a 101: the program may not add them.
const ACCEPT_RESERVED: &[&str] = &[
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Content-Length",
    "Transfer-Encoding",
];

/// Lines the library writes itself in a refusal.
const REJECT_RESERVED: &[&str] = &["Connection", "Content-Length", "Transfer-Encoding"];

/// A field value: visible bytes, spaces, tabs and obs-text (RFC 9110 §5.5);
/// no CR, LF, NUL or other control byte.
fn is_field_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || b == b' ' || b.is_ascii_graphic() || b >= 0x80)
}

/// [`Error::InvalidArgument`] unless every line is a token and a clean value
/// and none is one the library writes itself.
fn check(headers: &[Header<'_>], reserved: &[&str]) -> Result<()> {
    for h in headers {
        if !is_token(h.name) || !is_field_value(h.value) || reserved.iter().any(|r| r.eq_ignore_ascii_case(h.name)) {
            return Err(Error::InvalidArgument);
        }
    }
    Ok(())
}

/// The extra lines of a 101.
pub fn check_accept(headers: &[Header<'_>]) -> Result<()> {
    check(headers, ACCEPT_RESERVED)
}

/// A refusal's status (400-599) and lines.
pub fn check_reject(status: u16, headers: &[Header<'_>]) -> Result<()> {
    if !(400..=599).contains(&status) {
        return Err(Error::InvalidArgument);
    }
    check(headers, REJECT_RESERVED)
}

/// Appends `headers` as lines.
pub fn write_lines(out: &mut Vec<u8>, headers: &[Header<'_>]) {
    for h in headers {
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends a refusal, exactly: the status line, the program's lines in its
/// order, `Content-Length`, `Connection: close`, the blank line, the body.
/// Checked beforehand with [`check_reject`].
pub fn write_reject(out: &mut Vec<u8>, status: u16, headers: &[Header<'_>], body: &[u8]) {
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
    write_lines(out, headers);
    out.extend_from_slice(format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'a>(name: &'a str, value: &'a str) -> Header<'a> {
        Header {
            name,
            value: value.as_bytes(),
        }
    }

    #[test]
    fn nothing_can_split_the_response() {
        for bad in [
            h("X-A", "1\r\nSet-Cookie: evil=1"),
            h("X-A", "1\nx"),
            h("X-A", "1\rx"),
            h("X-A", "a\0b"),
            h("X-A", "a\x7fb"),
            h("X A", "1"),
            h("X-A:", "1"),
            h("", "1"),
            h("X-A\r\nB", "1"),
            h("content-length", "1"),
            h("CONNECTION", "keep-alive"),
        ] {
            assert_eq!(check_reject(403, &[bad]), Err(Error::InvalidArgument), "{bad:?}");
            assert_eq!(check_accept(&[bad]), Err(Error::InvalidArgument), "{bad:?}");
        }
        assert_eq!(
            check_accept(&[h("Sec-WebSocket-Accept", "x")]),
            Err(Error::InvalidArgument)
        );
        assert_eq!(check_reject(401, &[h("Upgrade", "websocket")]), Ok(()));
        assert_eq!(check_accept(&[h("Set-Cookie", "a=b; Path=/\t; \u{e9}")]), Ok(()));
        for status in [0, 200, 399, 600, 101] {
            assert_eq!(check_reject(status, &[]), Err(Error::InvalidArgument));
        }
    }

    #[test]
    fn a_refusal_is_written_byte_for_byte() {
        let mut out = Vec::new();
        write_reject(
            &mut out,
            401,
            &[h("WWW-Authenticate", "Bearer"), h("X-Why", "no token")],
            b"who are you?",
        );
        assert_eq!(
            out,
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nX-Why: no token\r\n\
              Content-Length: 12\r\nConnection: close\r\n\r\nwho are you?"
        );
    }
}

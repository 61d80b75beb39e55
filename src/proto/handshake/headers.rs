//! Header fields of the opening handshake: the rules a header the program
//! adds must follow, a read-only view of a peer's headers (`Headers`), and an
//! owned copy of them (`HeaderBlock`) for what outlives the bytes they were
//! parsed from.

use crate::proto::config::is_token;
use crate::proto::error::{Error, Result};

/// Headers the handshake writes itself (or that would break its framing): a
/// program may not add them. `Sec-WebSocket-*` are all the handshake's.
const OWNED: &[&str] = &["host", "upgrade", "connection", "content-length", "transfer-encoding"];

/// Whether the program may add this header to its upgrade request.
pub fn is_owned_by_handshake(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    OWNED.contains(&lower.as_str()) || lower.starts_with("sec-websocket-")
}

/// Checks a header the program adds: the name an HTTP token and not one the
/// handshake writes, the value free of CR, LF and NUL (nothing it passes can
/// end the line or the head early). [`Error::InvalidArgument`] otherwise.
pub fn check_request_header(name: &str, value: &str) -> Result<()> {
    if !is_token(name) || is_owned_by_handshake(name) || value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(Error::InvalidArgument);
    }
    Ok(())
}

/// The header lines of a handshake head, as parsed, borrowed for one event.
#[derive(Clone, Copy, Default)]
pub struct Headers<'a>(&'a [httparse::Header<'a>]);

impl<'a> Headers<'a> {
    pub(crate) fn new(lines: &'a [httparse::Header<'a>]) -> Headers<'a> {
        Headers(lines)
    }

    /// The value of the `index`-th line (from 0) called `name` (any case).
    pub fn get(&self, name: &str, index: usize) -> Option<&'a [u8]> {
        self.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .nth(index)
            .map(|(_, v)| v)
    }

    /// Every line, in order: name and value (without surrounding blanks).
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.0.iter().map(|h| (h.name, h.value.trim_ascii()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// An owned copy (lines holding a NUL, which HTTP parsing refuses
    /// anyway, are left out: each field ends at its NUL).
    pub fn to_block(&self) -> HeaderBlock {
        let mut block = HeaderBlock::default();
        for (name, value) in self.iter().filter(|(n, v)| !n.contains('\0') && !v.contains(&0)) {
            block.bytes.extend_from_slice(name.as_bytes());
            block.bytes.push(0);
            block.bytes.extend_from_slice(value);
            block.bytes.push(0);
        }
        block
    }
}

impl std::fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
            .finish()
    }
}

/// Lines compare by what they say.
impl PartialEq for Headers<'_> {
    fn eq(&self, other: &Headers<'_>) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Headers<'_> {}

/// An owned copy of header lines, in one allocation: each name and value
/// followed by a NUL, so a value can be lent to C as it lies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderBlock {
    bytes: Vec<u8>,
}

impl HeaderBlock {
    /// The value of the `index`-th line called `name` (any case), with the
    /// NUL that follows it (so it can be read as a C string).
    pub fn get_with_nul(&self, name: &str, index: usize) -> Option<&[u8]> {
        let mut fields = self.bytes.split_inclusive(|&b| b == 0);
        let mut seen = 0;
        while let (Some(n), Some(v)) = (fields.next(), fields.next()) {
            if n[..n.len() - 1].eq_ignore_ascii_case(name.as_bytes()) {
                if seen == index {
                    return Some(v);
                }
                seen += 1;
            }
        }
        None
    }

    /// The value of the `index`-th line called `name` (any case).
    pub fn get(&self, name: &str, index: usize) -> Option<&[u8]> {
        self.get_with_nul(name, index).map(|v| &v[..v.len() - 1])
    }

    /// Bytes held.
    pub fn memory(&self) -> usize {
        self.bytes.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_program_may_add() {
        for (name, value) in [
            ("Authorization", "Basic dTpw"),
            ("Cookie", "a=b; c=d"),
            ("X-Empty", ""),
            ("Origin", "https://x"),
        ] {
            assert_eq!(check_request_header(name, value), Ok(()), "{name}");
        }
        for (name, value) in [
            ("", "x"),
            ("Bad Name", "x"),
            ("Bad:Name", "x"),
            ("X-Crlf", "a\r\nInjected: 1"),
            ("X-Lf", "a\nb"),
            ("X-Nul", "a\0b"),
            ("Host", "evil"),
            ("upgrade", "h2c"),
            ("CONNECTION", "close"),
            ("Sec-WebSocket-Key", "AAAA"),
            ("Sec-WebSocket-Version", "8"),
            ("sec-websocket-protocol", "chat"),
            ("Sec-WebSocket-Extensions", "x"),
            ("Content-Length", "5"),
            ("Transfer-Encoding", "chunked"),
        ] {
            assert_eq!(
                check_request_header(name, value),
                Err(Error::InvalidArgument),
                "{name}: {value:?}"
            );
        }
    }

    #[test]
    fn lines_are_found_by_name_and_index_in_any_case() {
        let mut storage = [httparse::EMPTY_HEADER; 8];
        let mut response = httparse::Response::new(&mut storage);
        let head = b"HTTP/1.1 401 No\r\nSet-Cookie: a=1\r\nWWW-Authenticate: Basic\r\nset-cookie:  b=2 \r\n\r\n";
        response.parse(head).unwrap();
        let headers = Headers::new(response.headers);
        assert_eq!(headers.len(), 3);
        assert_eq!(headers.get("SET-COOKIE", 0), Some(&b"a=1"[..]));
        assert_eq!(headers.get("Set-Cookie", 1), Some(&b"b=2"[..]));
        assert_eq!(headers.get("Set-Cookie", 2), None);
        assert_eq!(headers.get("X", 0), None);
        let block = headers.to_block();
        assert_eq!(block.get("set-cookie", 1), Some(&b"b=2"[..]));
        assert_eq!(block.get_with_nul("www-authenticate", 0), Some(&b"Basic\0"[..]));
        assert_eq!(block.get("www-authenticate", 1), None);
        assert_eq!(HeaderBlock::default().get("x", 0), None);
    }
}

//! The upgrade request as the program reads it while it decides: method,
//! target and every header line, copied once out of the read buffer (only for
//! sessions whose program decides upgrades), so that it can outlive the read
//! while the decision is pending.

/// An upgrade request, owned. Every string is stored followed by a zero byte
/// (`*_with_nul`), so that a C view of it needs no copy of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The strings, each followed by a zero byte: method, target, then each
    /// header's name and value.
    text: Vec<u8>,
    /// Where each string starts in `text`.
    starts: Vec<u32>,
}

impl UpgradeRequest {
    /// A copy of a parsed request (httparse refuses NUL bytes in a head, so
    /// no string is cut short by its terminator).
    pub(crate) fn new(method: &str, target: &str, headers: &[httparse::Header<'_>]) -> UpgradeRequest {
        let size =
            method.len() + target.len() + 2 + headers.iter().map(|h| h.name.len() + h.value.len() + 2).sum::<usize>();
        let mut request = UpgradeRequest {
            text: Vec::with_capacity(size),
            starts: Vec::with_capacity(2 + 2 * headers.len()),
        };
        request.push(method.as_bytes());
        request.push(target.as_bytes());
        for header in headers {
            request.push(header.name.as_bytes());
            request.push(header.value);
        }
        request
    }

    fn push(&mut self, text: &[u8]) {
        self.starts.push(self.text.len() as u32);
        self.text.extend_from_slice(text);
        self.text.push(0);
    }

    /// String `i`, with its terminating zero byte.
    fn string_with_nul(&self, i: usize) -> &[u8] {
        let start = self.starts[i] as usize;
        let end = self.starts.get(i + 1).map_or(self.text.len(), |&s| s as usize);
        &self.text[start..end]
    }

    fn string(&self, i: usize) -> &[u8] {
        let s = self.string_with_nul(i);
        &s[..s.len() - 1]
    }

    /// ASCII by construction (httparse checks tokens and the target).
    fn ascii(&self, i: usize) -> &str {
        std::str::from_utf8(self.string(i)).unwrap_or_default()
    }

    /// The method (always `GET` for a valid upgrade).
    pub fn method(&self) -> &str {
        self.ascii(0)
    }

    /// The request target, e.g. `/chat?room=1`.
    pub fn target(&self) -> &str {
        self.ascii(1)
    }

    pub fn method_with_nul(&self) -> &[u8] {
        self.string_with_nul(0)
    }

    pub fn target_with_nul(&self) -> &[u8] {
        self.string_with_nul(1)
    }

    /// Number of header lines.
    pub fn header_count(&self) -> usize {
        (self.starts.len() - 2) / 2
    }

    /// Header line `i` (in the order received): its name and value.
    pub fn header_at(&self, i: usize) -> Option<(&str, &[u8])> {
        (i < self.header_count()).then(|| (self.ascii(2 + 2 * i), self.string(3 + 2 * i)))
    }

    /// Header line `i`'s name and value, each with its terminating zero byte.
    pub fn header_at_with_nul(&self, i: usize) -> Option<(&[u8], &[u8])> {
        (i < self.header_count()).then(|| (self.string_with_nul(2 + 2 * i), self.string_with_nul(3 + 2 * i)))
    }

    /// The position of the `index`th line (from 0) called `name`
    /// (case-insensitive).
    fn find(&self, name: &str, index: usize) -> Option<usize> {
        (0..self.header_count())
            .filter(|&i| self.ascii(2 + 2 * i).eq_ignore_ascii_case(name))
            .nth(index)
    }

    /// The value of the `index`th header line called `name` (case-insensitive;
    /// index 0 is the first, repeated lines follow in order).
    pub fn header(&self, name: &str, index: usize) -> Option<&[u8]> {
        self.find(name, index).map(|i| self.string(3 + 2 * i))
    }

    pub fn header_with_nul(&self, name: &str, index: usize) -> Option<&[u8]> {
        self.find(name, index).map(|i| self.string_with_nul(3 + 2 * i))
    }

    /// The subprotocols the client offered, in its order, over all its
    /// `Sec-WebSocket-Protocol` lines.
    pub fn subprotocols(&self) -> impl Iterator<Item = &str> {
        (0..)
            .map_while(move |i| self.header("Sec-WebSocket-Protocol", i))
            .flat_map(|v| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|p| !p.is_empty())
            .filter_map(|p| std::str::from_utf8(p).ok())
    }

    /// Whether the client offered subprotocol `name`.
    pub fn offers_subprotocol(&self, name: &str) -> bool {
        self.subprotocols().any(|p| p == name)
    }

    /// Bytes held.
    pub fn memory(&self) -> usize {
        std::mem::size_of::<Self>() + self.text.capacity() + 4 * self.starts.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_reachable_in_order_and_by_name() {
        let head = b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\ncookie: b=2\r\n\
            Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Protocol: v3\r\nX-Bin: \xe9t\xe9\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut parsed = httparse::Request::new(&mut headers);
        parsed.parse(head).unwrap();
        let r = UpgradeRequest::new(parsed.method.unwrap(), parsed.path.unwrap(), parsed.headers);
        assert_eq!((r.method(), r.target()), ("GET", "/a?b=1"));
        assert_eq!(r.target_with_nul(), b"/a?b=1\0");
        assert_eq!(r.header_count(), 6);
        assert_eq!(r.header_at(1), Some(("Cookie", &b"a=1"[..])));
        assert_eq!(r.header_at(6), None);
        assert_eq!(r.header("COOKIE", 0), Some(&b"a=1"[..]));
        assert_eq!(r.header("cookie", 1), Some(&b"b=2"[..]));
        assert_eq!(r.header("cookie", 2), None);
        assert_eq!(r.header_with_nul("x-bin", 0), Some(&b"\xe9t\xe9\0"[..]));
        assert_eq!(r.subprotocols().collect::<Vec<_>>(), ["chat", "superchat", "v3"]);
        assert!(r.offers_subprotocol("v3") && !r.offers_subprotocol("chat2"));
    }
}

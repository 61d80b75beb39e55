//! The PROXY protocol header (HAProxy's spec, versions 1 and 2) a load
//! balancer sends before the client's bytes: parsed with the `ppp` crate,
//! bounded in size, reporting the client's address and the header's length
//! (what follows it is the client's own stream: TLS or HTTP).

use std::net::{IpAddr, SocketAddr};

use ppp::v2::Command;
use ppp::{v1, v2, HeaderResult, PartialResult};

/// The longest header accepted: a v1 line is at most 107 bytes; a v2 header
/// 16 bytes and its addresses and TLVs (a balancer sends a few hundred).
pub const MAX_HEADER_LEN: usize = 4096;

/// The longest v1 line, CRLF included (HAProxy's spec).
const V1_MAX_LEN: usize = 107;

/// What the bytes received so far are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// A valid header may still come: read more.
    Incomplete,
    /// Not a valid header (or longer than [`MAX_HEADER_LEN`]).
    Invalid,
    /// A header of `len` bytes; `source` is the client's address, `None`
    /// when the balancer speaks for itself (v2 LOCAL, e.g. a health check)
    /// or gives none (v1 UNKNOWN, v2 UNSPEC or UNIX): the socket's peer then
    /// stands.
    Complete { len: usize, source: Option<SocketAddr> },
}

/// Parses the start of a connection's bytes.
pub fn parse(buf: &[u8]) -> ProxyHeader {
    let buf = &buf[..buf.len().min(MAX_HEADER_LEN)];
    // A v1 line is judged once whole (ppp refuses some of its prefixes), and
    // a line longer than the spec's limit is invalid however it ends.
    let v1_prefix = b"PROXY ";
    let n = buf.len().min(v1_prefix.len());
    if buf[..n] == v1_prefix[..n] {
        return match buf.iter().position(|&b| b == b'\n') {
            None if buf.len() < V1_MAX_LEN => ProxyHeader::Incomplete,
            Some(end) if end < V1_MAX_LEN => v1_line(&buf[..=end]),
            _ => ProxyHeader::Invalid,
        };
    }
    let parsed = HeaderResult::parse(buf);
    if parsed.is_incomplete() {
        return if buf.len() >= MAX_HEADER_LEN {
            ProxyHeader::Invalid
        } else {
            ProxyHeader::Incomplete
        };
    }
    match parsed {
        HeaderResult::V1(_) => ProxyHeader::Invalid,
        HeaderResult::V2(Ok(header)) => {
            let source = match (header.command, header.addresses) {
                (Command::Local, _) => None,
                (Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
                }
                (Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
                }
                (Command::Proxy, _) => None,
            };
            ProxyHeader::Complete {
                len: header.len(),
                source,
            }
        }
        HeaderResult::V2(Err(_)) => ProxyHeader::Invalid,
    }
}

/// A whole v1 line (CRLF included): valid, or not.
fn v1_line(line: &[u8]) -> ProxyHeader {
    match HeaderResult::parse(line) {
        HeaderResult::V1(Ok(header)) => {
            let source = match header.addresses {
                v1::Addresses::Tcp4(a) => Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port)),
                v1::Addresses::Tcp6(a) => Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port)),
                v1::Addresses::Unknown => None,
            };
            ProxyHeader::Complete {
                len: line.len(),
                source,
            }
        }
        _ => ProxyHeader::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1() {
        let line = b"PROXY TCP4 192.0.2.7 127.0.0.1 56324 9998\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(line),
            ProxyHeader::Complete {
                len: 43,
                source: Some("192.0.2.7:56324".parse().unwrap())
            }
        );
        let v6 = b"PROXY TCP6 2001:db8::1 ::1 4000 443\r\n";
        assert_eq!(
            parse(v6),
            ProxyHeader::Complete {
                len: v6.len(),
                source: Some("[2001:db8::1]:4000".parse().unwrap())
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            ProxyHeader::Complete { len: 15, source: None }
        );
        for cut in 0..43 {
            assert_eq!(parse(&line[..cut]), ProxyHeader::Incomplete, "cut at {cut}");
        }
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), ProxyHeader::Invalid);
        assert_eq!(parse(b"PROXY TCP4 300.0.0.1 1.1.1.1 1 2\r\n"), ProxyHeader::Invalid);
        assert_eq!(parse(&[0x16, 3, 1, 0, 200]), ProxyHeader::Invalid, "a TLS hello");
        // A line over the spec's 107 bytes is invalid, also once its end comes.
        let long = [&b"PROXY TCP6 "[..], &[b'1'; 100], b" 5\r"].concat();
        assert_eq!(parse(&long), ProxyHeader::Invalid);
        assert_eq!(parse(&[&long[..], b"\n"].concat()), ProxyHeader::Invalid);
    }

    #[test]
    fn version_2() {
        let addresses: v2::Addresses = (
            "198.51.100.9:5000".parse::<SocketAddr>().unwrap(),
            "127.0.0.1:9998".parse::<SocketAddr>().unwrap(),
        )
            .into();
        let header =
            v2::Builder::with_addresses(v2::Version::Two | v2::Command::Proxy, v2::Protocol::Stream, addresses)
                .write_tlv(v2::Type::NoOp, &[0; 10])
                .unwrap()
                .build()
                .unwrap();
        let mut stream = header.clone();
        stream.extend_from_slice(b"\x16\x03\x01");
        assert_eq!(
            parse(&stream),
            ProxyHeader::Complete {
                len: header.len(),
                source: Some("198.51.100.9:5000".parse().unwrap())
            }
        );
        for cut in 0..header.len() {
            assert_eq!(parse(&header[..cut]), ProxyHeader::Incomplete, "cut at {cut}");
        }
        let local = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Local,
            v2::Protocol::Unspecified,
            v2::Addresses::Unspecified,
        )
        .build()
        .unwrap();
        assert_eq!(parse(&local), ProxyHeader::Complete { len: 16, source: None });
        let mut huge = header[..12].to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        huge.resize(MAX_HEADER_LEN + 10, 0);
        assert_eq!(parse(&huge), ProxyHeader::Invalid, "longer than the cap");
    }
}

//! `ws://` URLs (RFC 6455 §3) for client connections.

use crate::runtime::error::{Error, Result};

/// The parts of a `ws://host[:port][/path][?query]` URL a client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// Host to resolve (IPv6 literals without brackets).
    pub host: String,
    pub port: u16,
    /// The request target: path and query, at least "/".
    pub path: String,
    /// The `Host` header value: host, with `:port` when it is not 80.
    pub host_header: String,
}

impl WsUrl {
    /// Parses a `ws://` URL. `wss://` is refused (TLS is not built in yet), and so
    /// are fragments, user info, and anything that is not printable ASCII.
    pub fn parse(url: &str) -> Result<WsUrl> {
        if !url.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::InvalidArgument("not a ws:// URL"));
        }
        let rest = match url.get(..5) {
            Some(scheme) if scheme.eq_ignore_ascii_case("ws://") => &url[5..],
            _ => return Err(Error::InvalidArgument("not a ws:// URL")),
        };
        if rest.contains('#') {
            return Err(Error::InvalidArgument("not a ws:// URL"));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(Error::InvalidArgument("not a ws:// URL"));
        }
        let (host, port_text) = if let Some(bracketed) = authority.strip_prefix('[') {
            let end = bracketed.find(']').ok_or(Error::InvalidArgument("not a ws:// URL"))?;
            let after = &bracketed[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(Error::InvalidArgument("not a ws:// URL")),
            };
            (&bracketed[..end], port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(Error::InvalidArgument("not a ws:// URL"));
        }
        let port = match port_text {
            None => 80,
            Some(text) => text
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or(Error::InvalidArgument("not a ws:// URL"))?,
        };
        let host_header = match (authority.starts_with('['), port) {
            (true, 80) => format!("[{host}]"),
            (true, port) => format!("[{host}]:{port}"),
            (false, 80) => host.to_owned(),
            (false, port) => format!("{host}:{port}"),
        };
        Ok(WsUrl {
            host: host.to_owned(),
            port,
            path,
            host_header,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_urls() {
        let u = WsUrl::parse("ws://127.0.0.1:9001/echo?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 9001, "/echo?x=1")
        );
        assert_eq!(u.host_header, "127.0.0.1:9001");
        let u = WsUrl::parse("WS://example.com").unwrap();
        assert_eq!(
            (u.port, u.path.as_str(), u.host_header.as_str()),
            (80, "/", "example.com")
        );
        let u = WsUrl::parse("ws://[::1]:8080/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.host_header.as_str()),
            ("::1", 8080, "[::1]:8080")
        );
        let u = WsUrl::parse("ws://host?q").unwrap();
        assert_eq!(u.path, "/?q");
    }

    #[test]
    fn invalid_urls() {
        for bad in [
            "",
            "ws://",
            "http://x/",
            "wss://x/",
            "ws://x:0/",
            "ws://x:70000/",
            "ws://x:port/",
            "ws://[::1/",
            "ws://[::1]x/",
            "ws://user@x/",
            "ws://x/#frag",
            "ws://x/a b",
            "ws://:80/",
        ] {
            assert!(WsUrl::parse(bad).is_err(), "{bad:?}");
        }
    }
}

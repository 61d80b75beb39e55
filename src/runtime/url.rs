//! `ws://` and `wss://` URLs (RFC 6455 §3) for client connections.

use crate::runtime::error::{Error, Result};

/// The parts of a `ws[s]://host[:port][/path][?query]` URL a client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`: TLS, default port 443.
    pub secure: bool,
    /// Host to resolve (IPv6 literals without brackets).
    pub host: String,
    pub port: u16,
    /// The request target: path and query, at least "/".
    pub path: String,
    /// The `Host` header value: host, with `:port` when it is not the default.
    pub host_header: String,
}

impl WsUrl {
    /// Parses a `ws://` or `wss://` URL (whether TLS is built in is checked
    /// when connecting). Fragments, user info, and anything that is not
    /// printable ASCII are refused.
    pub fn parse(url: &str) -> Result<WsUrl> {
        if !url.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::InvalidArgument("not a ws:// URL"));
        }
        let (secure, rest) = if url.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("ws://")) {
            (false, &url[5..])
        } else if url.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("wss://")) {
            (true, &url[6..])
        } else {
            return Err(Error::InvalidArgument("not a ws:// URL"));
        };
        let default_port = if secure { 443 } else { 80 };
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
            None => default_port,
            Some(text) => text
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or(Error::InvalidArgument("not a ws:// URL"))?,
        };
        let host_header = match (authority.starts_with('['), port == default_port) {
            (true, true) => format!("[{host}]"),
            (true, false) => format!("[{host}]:{port}"),
            (false, true) => host.to_owned(),
            (false, false) => format!("{host}:{port}"),
        };
        Ok(WsUrl {
            secure,
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
        assert!(!u.secure);
        let u = WsUrl::parse("WSS://example.com/x").unwrap();
        assert!(u.secure);
        assert_eq!((u.port, u.host_header.as_str()), (443, "example.com"));
        let u = WsUrl::parse("wss://example.com:80/").unwrap();
        assert_eq!(u.host_header, "example.com:80");
    }

    #[test]
    fn invalid_urls() {
        for bad in [
            "",
            "ws://",
            "http://x/",
            "wss://",
            "wss:/x/",
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

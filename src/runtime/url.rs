//! `ws://` and `wss://` URLs (RFC 6455 §3) for client connections, with the
//! credentials of `ws://user:password@host/` (sent as Basic authorization).

use base64::Engine;

use crate::runtime::error::{Error, Result};

/// The parts of a `ws[s]://[user[:password]@]host[:port][/path][?query]` URL a
/// client needs.
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
    /// User and password of the URL, percent-decoded.
    pub credentials: Option<Credentials>,
}

/// A user name and password, as given (percent-decoded).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({:?}, ***)", self.user)
    }
}

impl Credentials {
    /// The value of an `Authorization` (or `Proxy-Authorization`) header:
    /// `Basic base64(user:password)` (RFC 7617).
    pub fn basic(&self) -> String {
        let pair = format!("{}:{}", self.user, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }
}

fn bad() -> Error {
    Error::InvalidArgument("not a ws:// URL")
}

/// Decodes `%XX` escapes; the result must be UTF-8.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// The parts of an authority: `[user[:password]@]host[:port]`.
pub(crate) struct Authority<'a> {
    pub credentials: Option<Credentials>,
    pub host: &'a str,
    pub port: Option<u16>,
    pub bracketed: bool,
}

/// Splits an authority; `None` when malformed (an empty host, a bad port,
/// an unclosed IPv6 bracket, a bad escape in the credentials).
pub(crate) fn parse_authority(authority: &str) -> Option<Authority<'_>> {
    let (credentials, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let credentials = Credentials {
                user: percent_decode(user)?,
                password: percent_decode(password)?,
            };
            (Some(credentials), hostport)
        }
        None => (None, authority),
    };
    let (host, port_text, bracketed) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let end = bracketed.find(']')?;
        let after = &bracketed[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return None,
        };
        (&bracketed[..end], port, true)
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port), false),
            None => (hostport, None, false),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port_text {
        None => None,
        Some(text) => Some(text.parse::<u16>().ok().filter(|p| *p != 0)?),
    };
    Some(Authority {
        credentials,
        host,
        port,
        bracketed,
    })
}

/// `host:port` as it stands in a `Host` header or a CONNECT request (IPv6
/// literals in brackets).
pub(crate) fn host_port(host: &str, port: u16) -> String {
    match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    }
}

impl WsUrl {
    /// Parses a `ws://` or `wss://` URL (whether TLS is built in is checked
    /// when connecting). Fragments, and anything that is not printable
    /// ASCII, are refused.
    pub fn parse(url: &str) -> Result<WsUrl> {
        if !url.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad());
        }
        let (secure, rest) = if url.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("ws://")) {
            (false, &url[5..])
        } else if url.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("wss://")) {
            (true, &url[6..])
        } else {
            return Err(bad());
        };
        if rest.contains('#') {
            return Err(bad());
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        let parts = parse_authority(authority).ok_or_else(bad)?;
        let default_port = if secure { 443 } else { 80 };
        let port = parts.port.unwrap_or(default_port);
        let host = parts.host;
        let host_header = match (parts.bracketed, port == default_port) {
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
            credentials: parts.credentials,
        })
    }

    /// The URL without its credentials (for messages and comparisons).
    pub fn without_credentials(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.host_header, self.path)
    }

    /// The same scheme, host and port.
    pub fn same_origin(&self, other: &WsUrl) -> bool {
        self.secure == other.secure && self.host.eq_ignore_ascii_case(&other.host) && self.port == other.port
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
        assert_eq!(u.credentials, None);
    }

    #[test]
    fn credentials_are_percent_decoded() {
        let u = WsUrl::parse("ws://us%65r:p%40ss:w@[::1]:81/x").unwrap();
        let c = u.credentials.clone().unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("user", "p@ss:w"));
        assert_eq!((u.host.as_str(), u.port), ("::1", 81));
        assert_eq!(u.without_credentials(), "ws://[::1]:81/x");
        // RFC 7617's example.
        let c = Credentials {
            user: "Aladdin".into(),
            password: "open sesame".into(),
        };
        assert_eq!(c.basic(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        let u = WsUrl::parse("ws://only@h/").unwrap();
        assert_eq!(u.credentials.unwrap().password, "");
        assert!(!format!("{:?}", WsUrl::parse("ws://u:secret@h/").unwrap()).contains("secret"));
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
            "ws://user@/",
            "ws://u%zz@x/",
            "ws://u%ff@x/",
            "ws://x/#frag",
            "ws://x/a b",
            "ws://:80/",
        ] {
            assert!(WsUrl::parse(bad).is_err(), "{bad:?}");
        }
    }
}

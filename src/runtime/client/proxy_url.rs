//! Proxy URLs, as curl reads them: `http://`, `https://` (TLS to the proxy),
//! `socks5://` (names resolved here) and `socks5h://` (names resolved by the
//! proxy), with optional `user:password@`; without a scheme, `http://`.

use crate::runtime::error::{Error, Result};
use crate::runtime::url::{parse_authority, Credentials};

/// How the proxy is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// HTTP CONNECT over plain TCP.
    Http,
    /// HTTP CONNECT over TLS to the proxy.
    Https,
    /// SOCKS5, the target's name resolved by the client.
    Socks5,
    /// SOCKS5, the target's name resolved by the proxy.
    Socks5h,
}

/// A proxy to reach targets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub kind: ProxyKind,
    /// Name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    pub credentials: Option<Credentials>,
}

fn bad() -> Error {
    Error::InvalidArgument("not a proxy URL (http://, https://, socks5://, socks5h://)")
}

impl ProxyUrl {
    /// Parses `[scheme://][user[:password]@]host[:port][/]`. Default ports as
    /// curl's: 443 for `https://`, else 1080. SOCKS5 credentials are at most
    /// 255 bytes each (RFC 1929).
    pub fn parse(url: &str) -> Result<ProxyUrl> {
        if url.is_empty() || !url.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad());
        }
        let (kind, rest) = match url.split_once("://") {
            None => (ProxyKind::Http, url),
            Some((scheme, rest)) => {
                let kind = match scheme.to_ascii_lowercase().as_str() {
                    "http" => ProxyKind::Http,
                    "https" => ProxyKind::Https,
                    "socks5" => ProxyKind::Socks5,
                    "socks5h" => ProxyKind::Socks5h,
                    _ => return Err(bad()),
                };
                (kind, rest)
            }
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(bad());
        }
        let parts = parse_authority(authority).ok_or_else(bad)?;
        let socks = matches!(kind, ProxyKind::Socks5 | ProxyKind::Socks5h);
        if let Some(c) = parts.credentials.as_ref().filter(|_| socks) {
            if c.user.len() > 255 || c.password.len() > 255 || c.user.is_empty() {
                return Err(bad());
            }
        }
        let default_port = if kind == ProxyKind::Https { 443 } else { 1080 };
        Ok(ProxyUrl {
            kind,
            host: parts.host.to_owned(),
            port: parts.port.unwrap_or(default_port),
            credentials: parts.credentials,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_with_its_defaults() {
        let p = ProxyUrl::parse("http://proxy.example:3128").unwrap();
        assert_eq!(
            (p.kind, p.host.as_str(), p.port),
            (ProxyKind::Http, "proxy.example", 3128)
        );
        let p = ProxyUrl::parse("proxy.example").unwrap();
        assert_eq!((p.kind, p.port), (ProxyKind::Http, 1080));
        let p = ProxyUrl::parse("HTTPS://u:p%3Aw@proxy/").unwrap();
        assert_eq!((p.kind, p.port), (ProxyKind::Https, 443));
        let c = p.credentials.unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("u", "p:w"));
        let p = ProxyUrl::parse("socks5://[::1]:1081").unwrap();
        assert_eq!((p.kind, p.host.as_str(), p.port), (ProxyKind::Socks5, "::1", 1081));
        let p = ProxyUrl::parse("socks5h://127.0.0.1").unwrap();
        assert_eq!((p.kind, p.port), (ProxyKind::Socks5h, 1080));
    }

    #[test]
    fn what_is_refused() {
        let long = format!("socks5://{}:p@h", "u".repeat(256));
        for bad in [
            "",
            "socks4://h:1080",
            "ftp://h",
            "http://",
            "http://h:0",
            "http://h/path",
            "http://h:1080?x",
            "http://h x",
            long.as_str(),
            "socks5://:p@h",
        ] {
            assert!(ProxyUrl::parse(bad).is_err(), "{bad:?}");
        }
    }
}

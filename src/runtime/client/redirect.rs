//! Following a redirect (301, 302, 303, 307, 308) as curl would: the
//! `Location` resolved against the URL that answered (RFC 3986 §5.2; `http:`
//! and `https:` stand for `ws:` and `wss:`), never from `wss://` down to
//! `ws://`, never to a URL already visited in the chain, and the URL's
//! credentials kept only for the same scheme, host and port.

use crate::runtime::error::{Error, Result};
use crate::runtime::url::WsUrl;

/// Whether `status` redirects.
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Where the redirect from `current` to `location` leads, checked against
/// the chain so far (`visited`: every URL that answered with a redirect,
/// `current` included).
pub fn next(current: &WsUrl, location: Option<&[u8]>, visited: &[String]) -> Result<WsUrl> {
    let location = location
        .and_then(|l| std::str::from_utf8(l).ok())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .ok_or(Error::Redirect("no Location"))?;
    let mut next = resolve(current, location)?;
    if current.secure && !next.secure {
        return Err(Error::Redirect("from wss:// to ws://"));
    }
    if next.credentials.is_none() && next.same_origin(current) {
        next.credentials.clone_from(&current.credentials);
    }
    let key = next.without_credentials();
    if visited.iter().any(|v| v.eq_ignore_ascii_case(&key)) {
        return Err(Error::Redirect("a loop"));
    }
    Ok(next)
}

fn invalid() -> Error {
    Error::Redirect("Location is not a WebSocket URL")
}

/// `location` as a URL, relative to `base`.
fn resolve(base: &WsUrl, location: &str) -> Result<WsUrl> {
    // The fragment is the client's own business.
    let location = location.split('#').next().unwrap_or_default();
    let scheme_end = location.find(':').filter(|&i| {
        location[..i]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            && !location[..i].is_empty()
    });
    if let Some(i) = scheme_end {
        let secure = match location[..i].to_ascii_lowercase().as_str() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            _ => return Err(invalid()),
        };
        let rest = location[i + 1..].strip_prefix("//").ok_or_else(invalid)?;
        let scheme = if secure { "wss" } else { "ws" };
        return WsUrl::parse(&format!("{scheme}://{rest}")).map_err(|_| invalid());
    }
    let scheme = if base.secure { "wss" } else { "ws" };
    if let Some(rest) = location.strip_prefix("//") {
        return WsUrl::parse(&format!("{scheme}://{rest}")).map_err(|_| invalid());
    }
    let (base_path, _) = base.path.split_once('?').unwrap_or((&base.path, ""));
    let target = if location.is_empty() {
        base.path.clone()
    } else if let Some(query) = location.strip_prefix('?') {
        format!("{base_path}?{query}")
    } else {
        let (path, query) = match location.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (location, None),
        };
        let merged = if path.starts_with('/') {
            path.to_owned()
        } else {
            let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{path}")
        };
        let mut target = remove_dot_segments(&merged);
        if let Some(query) = query {
            target.push('?');
            target.push_str(query);
        }
        target
    };
    let authority = &base.host_header;
    let mut url = WsUrl::parse(&format!("{scheme}://{authority}{target}")).map_err(|_| invalid())?;
    url.credentials.clone_from(&base.credentials);
    Ok(url)
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i == segments.len() - 1;
        match *segment {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(base: &str, location: &str) -> Result<String> {
        let base = WsUrl::parse(base).unwrap();
        let visited = [base.without_credentials()];
        next(&base, Some(location.as_bytes()), &visited).map(|u| u.without_credentials())
    }

    #[test]
    fn relative_locations() {
        let base = "ws://h:81/a/b/c?x=1";
        for (location, expected) in [
            ("/root", "ws://h:81/root"),
            ("d", "ws://h:81/a/b/d"),
            ("./d?y", "ws://h:81/a/b/d?y"),
            ("../d", "ws://h:81/a/d"),
            ("../../../../d", "ws://h:81/d"),
            ("?q=2", "ws://h:81/a/b/c?q=2"),
            ("d#frag", "ws://h:81/a/b/d"),
            ("//other:82/p", "ws://other:82/p"),
            ("/a/./b/../c/", "ws://h:81/a/c/"),
        ] {
            assert_eq!(from(base, location).as_deref(), Ok(expected), "{location}");
        }
    }

    #[test]
    fn absolute_locations_and_schemes() {
        assert_eq!(from("ws://h/", "wss://s:8443/x").as_deref(), Ok("wss://s:8443/x"));
        assert_eq!(from("ws://h/", "https://s/x").as_deref(), Ok("wss://s/x"));
        assert_eq!(from("ws://h/", "HTTP://s/x").as_deref(), Ok("ws://s/x"));
        assert_eq!(from("wss://h/", "//s/x").as_deref(), Ok("wss://s/x"));
        assert_eq!(from("wss://h/", "/x").as_deref(), Ok("wss://h/x"));
        assert_eq!(
            from("wss://h/", "ws://h/x"),
            Err(Error::Redirect("from wss:// to ws://"))
        );
        assert_eq!(
            from("wss://h/", "http://h/x"),
            Err(Error::Redirect("from wss:// to ws://"))
        );
        assert_eq!(from("ws://h/", "ftp://h/x"), Err(invalid()));
        assert_eq!(from("ws://h/", "mailto:x@h"), Err(invalid()));
        assert_eq!(from("ws://h/", "ws://"), Err(invalid()));
        assert_eq!(from("ws://h/", "/a b"), Err(invalid()));
        let base = WsUrl::parse("ws://h/").unwrap();
        assert_eq!(next(&base, None, &[]), Err(Error::Redirect("no Location")));
        assert_eq!(next(&base, Some(b"  "), &[]), Err(Error::Redirect("no Location")));
    }

    #[test]
    fn loops_are_stopped() {
        let a = WsUrl::parse("ws://h/a").unwrap();
        let visited = vec![a.without_credentials()];
        let b = next(&a, Some(b"/b"), &visited).unwrap();
        let visited = vec![a.without_credentials(), b.without_credentials()];
        assert_eq!(next(&b, Some(b"/a"), &visited), Err(Error::Redirect("a loop")));
        assert_eq!(next(&b, Some(b"ws://H/b"), &visited), Err(Error::Redirect("a loop")));
        assert!(next(&b, Some(b"/c"), &visited).is_ok());
    }

    #[test]
    fn credentials_stay_with_their_origin() {
        let base = WsUrl::parse("ws://u:p@h/a").unwrap();
        assert!(next(&base, Some(b"/b"), &[]).unwrap().credentials.is_some());
        assert!(next(&base, Some(b"ws://h:80/b"), &[]).unwrap().credentials.is_some());
        assert!(next(&base, Some(b"ws://other/b"), &[]).unwrap().credentials.is_none());
        assert!(next(&base, Some(b"wss://h/b"), &[]).unwrap().credentials.is_none());
        let own = next(&base, Some(b"ws://v:q@other/b"), &[])
            .unwrap()
            .credentials
            .unwrap();
        assert_eq!(own.user, "v");
    }
}

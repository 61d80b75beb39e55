//! Origins (RFC 6454) as a server's allow-list compares them: exact
//! scheme://host[:port], scheme and host case-insensitive, a scheme's default
//! port the same as none (browsers leave it out).

/// An origin in the form the allow-list compares: lowercase, without the
/// scheme's default port. `None` unless `text` is scheme://host[:port] and
/// nothing else (no path, user, query; a port of digits).
pub fn normalize(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme_ok = scheme.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok || rest.is_empty() {
        return None;
    }
    // An IPv6 host is bracketed; its colons are not the port's.
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (inside, after) = v6.split_once(']')?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (&rest[..inside.len() + 2], port)
        }
        None => match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        },
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~[]:%".contains(&b));
    if !host_ok {
        return None;
    }
    let (scheme, host) = (scheme.to_ascii_lowercase(), host.to_ascii_lowercase());
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u32>().ok().filter(|&p| p <= 65535)?)
        }
        Some(_) => return None,
    };
    let default = match scheme.as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    };
    Some(match port {
        Some(p) if Some(p) != default => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// Whether a request's `Origin` values (every line of it) pass: with an
/// allow-list, exactly one value, in the list; without, any, or none unless
/// one is required.
pub fn allowed<'v>(allowed: &[String], required: bool, mut values: impl Iterator<Item = &'v [u8]>) -> bool {
    let (first, second) = (values.next(), values.next());
    let value = match (first, second) {
        (None, _) => return !required,
        (Some(_), Some(_)) => return false,
        (Some(value), None) => value,
    };
    if allowed.is_empty() {
        return true;
    }
    let Some(origin) = std::str::from_utf8(value.trim_ascii()).ok().and_then(normalize) else {
        return false;
    };
    allowed.contains(&origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(normalize("https://Example.COM").as_deref(), Some("https://example.com"));
        assert_eq!(normalize("HTTPS://a.b:443").as_deref(), Some("https://a.b"));
        assert_eq!(normalize("http://a.b:8080").as_deref(), Some("http://a.b:8080"));
        assert_eq!(normalize("http://127.0.0.1:80").as_deref(), Some("http://127.0.0.1"));
        assert_eq!(normalize("http://[::1]:8080").as_deref(), Some("http://[::1]:8080"));
        assert_eq!(normalize("app://x").as_deref(), Some("app://x"));
        for bad in [
            "",
            "null",
            "example.com",
            "http://",
            "http://a.b/",
            "http://a.b/x",
            "http://u@a.b",
            "http://a.b:",
            "http://a.b:x",
            "http://a.b:99999",
            "1http://a",
            "http://a b",
            "http://[::1",
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_list_decides() {
        let list = vec!["https://good.example".to_owned(), "http://127.0.0.1:8000".to_owned()];
        let pass = |values: &[&str], required| allowed(&list, required, values.iter().map(|v| v.as_bytes()));
        assert!(pass(&["https://GOOD.example"], false));
        assert!(pass(&["https://good.example:443"], false));
        assert!(pass(&["http://127.0.0.1:8000"], false));
        assert!(!pass(&["http://good.example"], false), "scheme counts");
        assert!(!pass(&["https://good.example:8443"], false), "port counts");
        assert!(!pass(&["https://evil.example"], false));
        assert!(!pass(&["https://good.example.evil"], false));
        assert!(!pass(&["null"], false));
        assert!(
            !pass(&["https://good.example", "https://good.example"], false),
            "one Origin only"
        );
        assert!(pass(&[], false), "non-browser clients pass");
        assert!(!pass(&[], true), "unless one is required");
        assert!(allowed(&[], false, ["https://any".as_bytes()].into_iter()));
        assert!(!allowed(&[], true, std::iter::empty()));
    }
}

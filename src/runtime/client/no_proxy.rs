//! `no_proxy` as curl reads it: a comma-separated list of host names (each
//! also matching its subdomains; a leading or trailing dot ignored),
//! IP addresses and CIDR ranges (`10.0.0.0/8`, `::1`); or `*` alone, for
//! every host. Names are compared without regard to case; nothing is
//! resolved.

use std::net::IpAddr;

/// The hosts reached without the proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    list: String,
}

impl NoProxy {
    pub fn new(list: &str) -> NoProxy {
        NoProxy {
            list: list.trim().to_owned(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether `host` (a name, or an IP address, IPv6 with or without
    /// brackets) is reached directly.
    pub fn matches(&self, host: &str) -> bool {
        if self.list.is_empty() {
            return false;
        }
        if self.list == "*" {
            return true;
        }
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.entries().any(|entry| ip_matches(ip, entry)),
            Err(_) => {
                let name = host.strip_suffix('.').unwrap_or(host);
                self.entries().any(|entry| name_matches(name, entry))
            }
        }
    }

    /// The entries, as curl splits them: blanks around each, commas between
    /// (anything else after an entry ends the list).
    fn entries(&self) -> impl Iterator<Item = &str> {
        let mut rest = self.list.as_str();
        std::iter::from_fn(move || loop {
            rest = rest.trim_start_matches([' ', '\t']);
            if rest.is_empty() {
                return None;
            }
            let end = rest.find([' ', '\t', ',']).unwrap_or(rest.len());
            let entry = &rest[..end];
            rest = rest[end..].trim_start_matches([' ', '\t']);
            match rest.strip_prefix(',') {
                Some(after) => rest = after.trim_start_matches(','),
                None => rest = "",
            }
            if !entry.is_empty() {
                return Some(entry);
            }
        })
    }
}

/// `example.com` matches `example.com` and `www.example.com`, not
/// `nonexample.com`.
fn name_matches(name: &str, entry: &str) -> bool {
    let entry = entry.strip_suffix('.').unwrap_or(entry);
    let entry = entry.strip_prefix('.').unwrap_or(entry);
    if entry.is_empty() || entry.len() > name.len() {
        return false;
    }
    let split = name.len() - entry.len();
    if !name.is_char_boundary(split) || !name[split..].eq_ignore_ascii_case(entry) {
        return false;
    }
    split == 0 || name.as_bytes()[split - 1] == b'.'
}

/// An address, or a range `address/bits`, holding `ip` (no bits, or 0: the
/// address alone, as curl does).
fn ip_matches(ip: IpAddr, entry: &str) -> bool {
    let (address, bits) = match entry.split_once('/') {
        Some((address, bits)) => (address, bits.parse::<u32>().ok()),
        None => (entry, None),
    };
    let address = address
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(address);
    let Ok(address) = address.parse::<IpAddr>() else {
        return false;
    };
    match (ip, address) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => prefix_equal(&ip.octets(), &net.octets(), bits.unwrap_or(0)),
        (IpAddr::V6(ip), IpAddr::V6(net)) => prefix_equal(&ip.octets(), &net.octets(), bits.unwrap_or(0)),
        _ => false,
    }
}

/// Whether the first `bits` bits agree (0 or more than there are: all of them).
fn prefix_equal(a: &[u8], b: &[u8], bits: u32) -> bool {
    let total = a.len() as u32 * 8;
    let bits = if bits == 0 || bits > total { total } else { bits };
    let whole = (bits / 8) as usize;
    if a[..whole] != b[..whole] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_themselves_and_their_subdomains() {
        let n = NoProxy::new("example.com, .internal.test,LOCALHOST ,,other.org.");
        for host in [
            "example.com",
            "www.example.com",
            "a.b.Example.COM",
            "example.com.",
            "internal.test",
            "x.internal.test",
            "localhost",
            "other.org",
        ] {
            assert!(n.matches(host), "{host}");
        }
        for host in [
            "nonexample.com",
            "example.com.evil",
            "com",
            "internal.tes",
            "localhost.x",
            "otherorg",
        ] {
            assert!(!n.matches(host), "{host}");
        }
    }

    #[test]
    fn star_alone_matches_everything_and_empty_nothing() {
        assert!(NoProxy::new("*").matches("anything.example"));
        assert!(NoProxy::new(" * ").matches("10.0.0.1"));
        assert!(!NoProxy::new("").matches("x"));
        // As in curl, `*` inside a list is an ordinary (never matching) name.
        assert!(!NoProxy::new("a.test,*").matches("b.test"));
    }

    #[test]
    fn ip_literals_and_ranges() {
        let n = NoProxy::new("127.0.0.1,10.0.0.0/8,192.168.1.0/24,::1,[fd00::]/8");
        for host in ["127.0.0.1", "10.1.2.3", "192.168.1.200", "::1", "[::1]", "fd12::5"] {
            assert!(n.matches(host), "{host}");
        }
        for host in ["127.0.0.2", "11.0.0.1", "192.168.2.1", "::2", "fe80::1", "localhost"] {
            assert!(!n.matches(host), "{host}");
        }
        // A name entry never matches an address, nor an address a name.
        assert!(!NoProxy::new("localhost").matches("127.0.0.1"));
        assert!(!NoProxy::new("127.0.0.1").matches("localhost"));
        // /0 is the address alone, as in curl.
        assert!(!NoProxy::new("10.0.0.0/0").matches("10.0.0.1"));
        assert!(NoProxy::new("10.0.0.1/0").matches("10.0.0.1"));
    }

    #[test]
    fn curl_stops_at_what_is_not_a_comma() {
        // "a.test b.test": blanks do not separate entries.
        let n = NoProxy::new("a.test b.test");
        assert!(n.matches("a.test"));
        assert!(!n.matches("b.test"));
    }
}

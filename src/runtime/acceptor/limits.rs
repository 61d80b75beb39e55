//! An acceptor's limits on the connections it feeds: in all, and per client
//! address (IPv6 clients by /64, the block one host usually holds). A
//! connection holds a ticket while it lives; dropping it gives its place
//! back. Shared by threads (a ticket may travel with a socket handed to
//! another reactor), so the counts sit behind a lock, taken once at accept
//! and once at the end, and only on acceptors with limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The part of an address a limit counts: IPv4 whole, IPv6 by /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressKey(u128);

impl AddressKey {
    pub fn of(ip: IpAddr) -> AddressKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => AddressKey(u32::from(v4) as u128),
            IpAddr::V6(v6) => AddressKey((u128::from(v6) & !((1u128 << 64) - 1)) | 1),
        }
    }
}

/// Limits and what they count. 0 is no limit.
#[derive(Debug, Default)]
pub struct Limits {
    max_total: u32,
    max_per_address: u32,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    per_address: HashMap<AddressKey, u32>,
}

impl Limits {
    pub fn new(max_total: u32, max_per_address: u32) -> Arc<Limits> {
        Arc::new(Limits {
            max_total,
            max_per_address,
            counts: Mutex::default(),
        })
    }

    pub fn max_total(&self) -> u32 {
        self.max_total
    }

    pub fn max_per_address(&self) -> u32 {
        self.max_per_address
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for one more connection, from `ip` when it is known yet (with
    /// the PROXY protocol it comes later: [`Ticket::attach`]); `None` when
    /// over a limit.
    pub fn admit(self: &Arc<Limits>, ip: Option<IpAddr>) -> Option<Ticket> {
        let mut counts = self.counts();
        if self.max_total > 0 && counts.total >= self.max_total {
            return None;
        }
        let key = ip.filter(|_| self.max_per_address > 0).map(AddressKey::of);
        if let Some(key) = key {
            let n = counts.per_address.entry(key).or_insert(0);
            if *n >= self.max_per_address {
                return None;
            }
            *n += 1;
        }
        counts.total += 1;
        Some(Ticket {
            limits: Arc::clone(self),
            key,
        })
    }

    /// Connections counted now: in all, and from the address of `ip`.
    pub fn count(&self, ip: Option<IpAddr>) -> (u32, u32) {
        let counts = self.counts();
        let from = ip.and_then(|ip| counts.per_address.get(&AddressKey::of(ip)).copied());
        (counts.total, from.unwrap_or(0))
    }
}

/// A connection's place in the limits, given back when dropped.
#[derive(Debug)]
pub struct Ticket {
    limits: Arc<Limits>,
    key: Option<AddressKey>,
}

impl Ticket {
    /// Counts the connection against `ip` too (learnt from a PROXY header);
    /// false when that address is over its limit (the ticket still holds its
    /// place in the total until dropped).
    pub fn attach(&mut self, ip: IpAddr) -> bool {
        if self.key.is_some() || self.limits.max_per_address == 0 {
            return true;
        }
        let key = AddressKey::of(ip);
        let mut counts = self.limits.counts();
        let n = counts.per_address.entry(key).or_insert(0);
        if *n >= self.limits.max_per_address {
            return false;
        }
        *n += 1;
        self.key = Some(key);
        true
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = self.limits.counts();
        counts.total -= 1;
        if let Some(key) = self.key {
            if let Some(n) = counts.per_address.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    counts.per_address.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_and_given_back() {
        let limits = Limits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        let t1 = limits.admit(Some(a)).unwrap();
        let t2 = limits.admit(Some(a)).unwrap();
        assert!(limits.admit(Some(a)).is_none(), "per address");
        let t3 = limits.admit(Some(b)).unwrap();
        assert!(limits.admit(Some("10.0.0.3".parse().unwrap())).is_none(), "in all");
        assert_eq!(
            limits.count(Some("10.0.0.2".parse().unwrap())),
            (3, 1),
            "v4-mapped is v4"
        );
        drop(t3);
        let mut later = limits.admit(None).unwrap();
        assert!(!later.attach(a), "a's two places are taken");
        drop(t2);
        assert!(later.attach(a));
        drop((t1, later));
        assert_eq!(limits.count(Some(a)), (0, 0));
    }

    #[test]
    fn ipv6_counts_by_64() {
        let limits = Limits::new(0, 1);
        let _t = limits.admit(Some("2001:db8:1:2::1".parse().unwrap())).unwrap();
        assert!(limits.admit(Some("2001:db8:1:2:ffff::9".parse().unwrap())).is_none());
        assert!(limits.admit(Some("2001:db8:1:3::1".parse().unwrap())).is_some());
        assert!(limits.admit(Some("10.0.0.1".parse().unwrap())).is_some());
    }
}

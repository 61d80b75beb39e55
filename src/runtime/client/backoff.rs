//! Reconnection delays: exponential backoff with full jitter. The n-th wait
//! after consecutive failures is drawn uniformly between `min_ms` and a
//! ceiling that doubles each time (2, 4, 8… times `min_ms`) up to `max_ms`,
//! so that clients cut off together do not come back together.

use crate::runtime::error::{Error, Result};

/// The bounds of the waits between reconnection attempts, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    min_ms: u32,
    max_ms: u32,
}

impl Backoff {
    /// [`Error::InvalidArgument`] unless `0 < min_ms <= max_ms`.
    pub fn new(min_ms: u32, max_ms: u32) -> Result<Backoff> {
        if min_ms == 0 || max_ms < min_ms {
            return Err(Error::InvalidArgument("reconnect bounds: 0 < min <= max"));
        }
        Ok(Backoff { min_ms, max_ms })
    }

    pub fn min_ms(&self) -> u32 {
        self.min_ms
    }

    pub fn max_ms(&self) -> u32 {
        self.max_ms
    }

    /// The longest wait after `failures` consecutive failed attempts (the
    /// first wait follows 0 failures).
    pub fn ceiling(&self, failures: u32) -> u32 {
        let doubled = (self.min_ms as u64) << failures.saturating_add(1).min(32);
        doubled.min(self.max_ms as u64) as u32
    }

    /// The wait after `failures` failures, `random` drawn uniformly from all u32.
    pub fn delay(&self, failures: u32, random: u32) -> u32 {
        let span = (self.ceiling(failures) - self.min_ms) as u64 + 1;
        self.min_ms + ((random as u64 * span) >> 32) as u32
    }

    /// A wait drawn from the system's randomness.
    pub fn random_delay(&self, failures: u32) -> u32 {
        let mut bytes = [0u8; 4];
        crate::proto::random::fill(&mut bytes);
        self.delay(failures, u32::from_ne_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        assert!(Backoff::new(0, 10).is_err());
        assert!(Backoff::new(20, 10).is_err());
        assert!(Backoff::new(10, 10).is_ok());
    }

    #[test]
    fn the_ceiling_doubles_up_to_the_maximum() {
        let b = Backoff::new(100, 1000).unwrap();
        let ceilings: Vec<u32> = (0..6).map(|n| b.ceiling(n)).collect();
        assert_eq!(ceilings, [200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(b.ceiling(u32::MAX), 1000, "no overflow");
        let fixed = Backoff::new(50, 50).unwrap();
        assert_eq!((fixed.delay(0, 0), fixed.delay(7, u32::MAX)), (50, 50));
    }

    #[test]
    fn delays_cover_their_whole_window() {
        let b = Backoff::new(100, 1000).unwrap();
        for n in 0..5 {
            assert_eq!(b.delay(n, 0), 100);
            assert_eq!(b.delay(n, u32::MAX), b.ceiling(n));
            let mid = b.delay(n, u32::MAX / 2);
            assert!(mid > 100 && mid < b.ceiling(n), "{n}: {mid}");
        }
        let drawn: Vec<u32> = (0..200).map(|_| b.random_delay(3)).collect();
        assert!(drawn.iter().all(|d| (100..=1000).contains(d)));
        assert!(
            drawn.iter().any(|d| *d < 400) && drawn.iter().any(|d| *d > 700),
            "jittered"
        );
    }
}

//! How much a peer may make a connection inflate: compressed bytes buy
//! inflated ones at a fixed ratio, with a bounded reserve. A peer whose
//! messages inflate more than the ratio, message after message, runs out and
//! the connection is closed; one whose traffic stays under it never does.
//!
//! Why a ratio and not only the message limit: a 15 KiB frame may inflate to
//! 15 MiB, each time it is sent, so a peer could make the server inflate (and
//! validate, and an echo deflate again) a thousand times what it sends. Why a
//! reserve: a message may well inflate more than the ratio once (a mostly
//! empty buffer); what the reserve bounds is doing so again and again.

/// Inflated bytes every connection starts with, and at most keeps in reserve.
pub const RESERVE: u64 = 1 << 20;

/// The peer's credit of inflated bytes on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    credit: u64,
}

impl Default for Allowance {
    fn default() -> Self {
        Allowance { credit: RESERVE }
    }
}

impl Allowance {
    /// The most that `compressed` more bytes may inflate to at `ratio`
    /// inflated bytes per compressed byte (0: no limit).
    pub fn available(&self, compressed: usize, ratio: u32) -> usize {
        if ratio == 0 {
            return usize::MAX;
        }
        let bought = (compressed as u64).saturating_mul(u64::from(ratio));
        usize::try_from(self.credit.saturating_add(bought)).unwrap_or(usize::MAX)
    }

    /// `made` of what [`Allowance::available`] offered (`offered`) was
    /// inflated: the rest stays, up to the reserve.
    pub fn spend(&mut self, offered: usize, made: usize, ratio: u32) {
        if ratio != 0 {
            self.credit = (offered.saturating_sub(made) as u64).min(RESERVE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_under_the_ratio_never_runs_out_and_a_bomb_does() {
        let mut a = Allowance::default();
        // 100 KiB messages inflating 200 times their size: under 256.
        for _ in 0..1000 {
            let offered = a.available(512, 256);
            assert!(offered >= 100 << 10);
            a.spend(offered, 100 << 10, 256);
        }
        assert_eq!(a.available(0, 256), RESERVE as usize, "back to the full reserve");
        // 1 KiB inflating to 1 MiB, again and again: the reserve goes.
        let mut runs = 0;
        while a.available(1024, 256) >= 1 << 20 {
            let offered = a.available(1024, 256);
            a.spend(offered, 1 << 20, 256);
            runs += 1;
        }
        assert!(runs <= 2, "{runs}");
        assert_eq!(Allowance::default().available(1, 0), usize::MAX, "0: no limit");
    }
}

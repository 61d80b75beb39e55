//! Unpredictable bytes for masking keys and handshake nonces (RFC 6455 §5.3 and
//! §4.1 ask for a strong source of entropy). Bytes come from the OS in blocks,
//! so a client frame costs no system call.

use std::cell::RefCell;

const POOL_SIZE: usize = 4096;

struct Pool {
    bytes: [u8; POOL_SIZE],
    used: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { bytes: [0; POOL_SIZE], used: POOL_SIZE }) };
}

/// Fills `out` with bytes from the operating system's secure generator.
pub fn fill(out: &mut [u8]) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let mut written = 0;
        while written < out.len() {
            if pool.used == POOL_SIZE {
                getrandom::getrandom(&mut pool.bytes).expect("the OS random generator failed");
                pool.used = 0;
            }
            let take = (out.len() - written).min(POOL_SIZE - pool.used);
            let start = pool.used;
            out[written..written + take].copy_from_slice(&pool.bytes[start..start + take]);
            pool.used += take;
            written += take;
        }
    })
}

/// A fresh masking key.
pub fn mask_key() -> [u8; 4] {
    let mut key = [0u8; 4];
    fill(&mut key);
    key
}

#[cfg(test)]
mod tests {
    #[test]
    // Safe code over many inputs: long under Miri, which has nothing to find in it.
    #[cfg_attr(miri, ignore)]
    fn keys_differ() {
        let keys: std::collections::HashSet<[u8; 4]> = (0..2000).map(|_| super::mask_key()).collect();
        // 2000 draws from 2^32: a collision or a constant generator would show here.
        assert!(keys.len() > 1990);
    }
}

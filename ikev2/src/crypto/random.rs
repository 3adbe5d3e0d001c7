//! Randomness as a trait, so that every random byte an engine uses can come from a seed.

use core::fmt;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// A source of random bytes: nonces, SPIs, IVs, private keys. The protocol engine takes one
/// of these instead of reading the OS, so a whole run can be reproduced from a seed.
pub trait Random {
    /// Fills `buf` entirely with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

impl<R: Random + ?Sized> Random for &mut R {
    fn fill(&mut self, buf: &mut [u8]) {
        (**self).fill(buf)
    }
}

/// The operating system's CSPRNG (getrandom on Linux), through ring.
pub struct OsRandom {
    rng: ring::rand::SystemRandom,
}

impl OsRandom {
    /// A handle on the OS random source.
    pub fn new() -> Self {
        OsRandom {
            rng: ring::rand::SystemRandom::new(),
        }
    }
}

impl Default for OsRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl Random for OsRandom {
    /// # Panics
    ///
    /// If the operating system cannot produce random bytes. An IKE daemon without randomness
    /// would reuse nonces and keys, so stopping is the only safe answer; this does not depend on
    /// any input from the network.
    fn fill(&mut self, buf: &mut [u8]) {
        use ring::rand::SecureRandom;
        #[allow(clippy::expect_used)]
        self.rng
            .fill(buf)
            .expect("the operating system random number generator failed");
    }
}

impl fmt::Debug for OsRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OsRandom")
    }
}

/// A deterministic stream (ChaCha20 keyed by a 32-byte seed) for tests and simulations: the
/// same seed gives the same bytes on every platform. Never use it for real keys.
#[derive(Clone)]
pub struct SeededRandom {
    rng: ChaCha20Rng,
}

impl SeededRandom {
    /// The stream for a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SeededRandom {
            rng: ChaCha20Rng::from_seed(seed),
        }
    }

    /// The stream for a small integer seed (expanded as rand_core's `seed_from_u64` does).
    pub fn from_u64(seed: u64) -> Self {
        SeededRandom {
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }
}

impl Random for SeededRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        self.rng.fill_bytes(buf);
    }
}

impl fmt::Debug for SeededRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The state is the seed: never print it.
        f.write_str("SeededRandom(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let mut a = SeededRandom::from_u64(7);
        let mut b = SeededRandom::from_u64(7);
        let (mut x, mut y) = ([0u8; 40], [0u8; 40]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);

        let mut c = SeededRandom::from_u64(8);
        c.fill(&mut y);
        assert_ne!(x, y);
    }

    #[test]
    fn os_random_fills_the_whole_buffer() {
        let mut rng = OsRandom::new();
        let mut buf = [0u8; 64];
        rng.fill(&mut buf);
        assert!(buf.iter().any(|&b| b != 0));
    }
}

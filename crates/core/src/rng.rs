//! Randomness as an injected dependency: the OS CSPRNG in production, a seeded generator in tests.

use std::sync::Mutex;

use strongroom_crypto::{sha256_parts, Key32, KEY_LEN, NONCE_LEN};

/// A source of cryptographically strong random bytes.
pub trait Rng: Send + Sync + 'static {
    fn fill(&self, buf: &mut [u8]);
}

/// Convenience draws built on [`Rng::fill`].
pub trait RngExt {
    fn key(&self) -> Key32;
    fn nonce(&self) -> [u8; NONCE_LEN];
    fn array<const N: usize>(&self) -> [u8; N];
}

impl<R: Rng + ?Sized> RngExt for R {
    fn key(&self) -> Key32 {
        let mut k = [0u8; KEY_LEN];
        self.fill(&mut k);
        Key32::from_bytes(k)
    }

    fn nonce(&self) -> [u8; NONCE_LEN] {
        self.array()
    }

    fn array<const N: usize>(&self) -> [u8; N] {
        let mut a = [0u8; N];
        self.fill(&mut a);
        a
    }
}

/// The operating system's CSPRNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRng;

impl Rng for OsRng {
    fn fill(&self, buf: &mut [u8]) {
        if getrandom::getrandom(buf).is_err() {
            // Without an entropy source no key, nonce or token can be made safely: stop at once
            // rather than continue with predictable bytes.
            eprintln!("strongroom: the operating system's random source failed; stopping");
            std::process::abort();
        }
    }
}

/// A deterministic generator for tests: SHA-256 in counter mode over a seed. Not for production.
#[derive(Debug)]
pub struct SeededRng {
    state: Mutex<([u8; 32], u64)>,
}

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self {
            state: Mutex::new((
                sha256_parts(&[b"strongroom-test-rng", &seed.to_be_bytes()]),
                0,
            )),
        }
    }
}

impl Rng for SeededRng {
    fn fill(&self, buf: &mut [u8]) {
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        for chunk in buf.chunks_mut(32) {
            let (seed, counter) = &mut *guard;
            let block = sha256_parts(&[seed, &counter.to_be_bytes()]);
            *counter += 1;
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_repeatable_and_seed_dependent() {
        let a: [u8; 48] = SeededRng::new(1).array();
        let b: [u8; 48] = SeededRng::new(1).array();
        let c: [u8; 48] = SeededRng::new(2).array();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let r = SeededRng::new(1);
        let first: [u8; 16] = r.array();
        let second: [u8; 16] = r.array();
        assert_ne!(first, second);
    }

    #[test]
    fn os_rng_gives_distinct_keys() {
        assert_ne!(OsRng.key().expose(), OsRng.key().expose());
    }
}

//! Per-address rate limit for sign-in attempts: a token bucket per client IP, on the vault's
//! clock. It complements the per-account lockout (which stops guessing one account's password)
//! by slowing one address that tries many accounts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Attempts an address may burst.
pub const BURST: f64 = 20.0;
/// Attempts regained per minute.
pub const PER_MINUTE: f64 = 20.0;
/// Addresses tracked before idle ones are forgotten.
const MAX_TRACKED: usize = 100_000;

#[derive(Default)]
pub struct LoginLimiter {
    buckets: Mutex<HashMap<IpAddr, (f64, i64)>>,
}

impl LoginLimiter {
    /// Takes one attempt for `ip` at `now_ms`; false when the address must wait.
    pub fn allow(&self, ip: IpAddr, now_ms: i64) -> bool {
        let mut map = match self.buckets.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if map.len() >= MAX_TRACKED {
            map.retain(|_, (tokens, at)| refill(*tokens, *at, now_ms) < BURST);
        }
        let (tokens, at) = map.entry(ip).or_insert((BURST, now_ms));
        let available = refill(*tokens, *at, now_ms);
        if available < 1.0 {
            *tokens = available;
            *at = now_ms;
            return false;
        }
        *tokens = available - 1.0;
        *at = now_ms;
        true
    }
}

fn refill(tokens: f64, at: i64, now: i64) -> f64 {
    let elapsed_min = (now - at).max(0) as f64 / 60_000.0;
    (tokens + elapsed_min * PER_MINUTE).min(BURST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills() {
        let l = LoginLimiter::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..20 {
            assert!(l.allow(ip, 0));
        }
        assert!(!l.allow(ip, 0));
        assert!(l.allow(other, 0), "addresses are separate");
        assert!(!l.allow(ip, 2_000), "under one attempt regained");
        assert!(l.allow(ip, 3_100), "one regained every 3 s");
    }
}

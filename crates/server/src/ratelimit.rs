//! Per-client rate limit for sign-in attempts: a token bucket per client, on the vault's clock.
//! It complements the per-account lockout (which stops guessing one account's password) by
//! slowing one client that tries many accounts.
//!
//! - **Who the client is.** The connection's peer, unless that peer is a configured trusted
//!   proxy: then the right-most address in `X-Forwarded-For` that is not itself a trusted proxy
//!   (what a client sends further left can be forged, what the proxies append cannot).
//! - **Keys.** IPv4 addresses count one by one; IPv6 clients are keyed by their /64, since one
//!   host commonly holds a whole /64 and could otherwise rotate addresses at will.
//! - **Bounded, O(1).** Buckets live in two generations swapped every minute (an address idle
//!   for a minute has refilled its bucket anyway, so forgetting it changes nothing). A
//!   generation holds at most `MAX_TRACKED` clients; when it is full, new clients are refused
//!   until the next swap — under a flood from that many addresses, sign-in fails closed rather
//!   than forgetting who has been guessing. No sweep ever runs under the lock.
//!
//! Why not the `governor` crate: the limiter must run on the vault's injected clock (tests move
//! time; they never sleep), and the two-generation map above is the whole of what is needed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use axum::http::HeaderMap;

/// Attempts a client may burst.
pub const BURST: f64 = 20.0;
/// Attempts regained per minute.
pub const PER_MINUTE: f64 = 20.0;
/// Clients tracked per generation.
const MAX_TRACKED: usize = 100_000;
/// How long a generation lasts: the time a bucket takes to refill completely.
const GENERATION_MS: i64 = 60_000;

/// The key of a client: an IPv4 address, or the /64 of an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

impl std::fmt::Display for ClientKey {
    /// `192.0.2.7`, or `2001:db8:1:2::/64`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientKey::V4(o) => write!(f, "{}", std::net::Ipv4Addr::from(*o)),
            ClientKey::V6Prefix(p) => {
                let mut o = [0u8; 16];
                o[..8].copy_from_slice(p);
                write!(f, "{}/64", std::net::Ipv6Addr::from(o))
            }
        }
    }
}

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4.octets()),
                None => {
                    let o = v6.octets();
                    ClientKey::V6Prefix([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
                }
            },
        }
    }
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the right-most
/// untrusted address in `X-Forwarded-For`.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer.ip()) {
        return peer.ip();
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .map(|s| s.parse::<IpAddr>().ok())
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer.ip())
}

struct Generations {
    current: HashMap<ClientKey, (f64, i64)>,
    previous: HashMap<ClientKey, (f64, i64)>,
    started_at: i64,
}

pub struct LoginLimiter {
    inner: Mutex<Generations>,
    /// Attempts a client may burst; also the number regained per minute.
    burst: f64,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Generations {
                current: HashMap::new(),
                previous: HashMap::new(),
                started_at: i64::MIN,
            }),
            burst: BURST,
        }
    }
}

impl LoginLimiter {
    /// A limiter allowing `burst` attempts at once and regaining as many per minute.
    pub fn with_burst(burst: u32) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            ..Self::default()
        }
    }

    /// Takes one attempt for `ip` at `now_ms`; false when the client must wait.
    pub fn allow(&self, ip: IpAddr, now_ms: i64) -> bool {
        self.allow_key(ClientKey::of(ip), now_ms, MAX_TRACKED)
    }

    /// Whether `ip` has no attempt left at `now_ms`, without taking one.
    pub fn exhausted(&self, ip: IpAddr, now_ms: i64) -> bool {
        let key = ClientKey::of(ip);
        let g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let fresh = now_ms.saturating_sub(g.started_at) < GENERATION_MS;
        let known = fresh
            .then(|| g.current.get(&key))
            .flatten()
            .or_else(|| g.previous.get(&key));
        known.is_some_and(|&(tokens, at)| refill(tokens, at, now_ms, self.burst) < 1.0)
    }

    fn allow_key(&self, key: ClientKey, now_ms: i64, max: usize) -> bool {
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if now_ms.saturating_sub(g.started_at) >= GENERATION_MS {
            g.previous = std::mem::take(&mut g.current);
            g.started_at = now_ms;
        }
        let known = match g.current.get(&key) {
            Some(b) => Some(*b),
            None => g.previous.remove(&key),
        };
        if known.is_none() && g.current.len() >= max {
            return false;
        }
        let (tokens, at) = known.unwrap_or((self.burst, now_ms));
        let available = refill(tokens, at, now_ms, self.burst);
        let allowed = available >= 1.0;
        let left = if allowed { available - 1.0 } else { available };
        g.current.insert(key, (left, now_ms));
        allowed
    }
}

fn refill(tokens: f64, at: i64, now: i64, burst: f64) -> f64 {
    let elapsed_min = (now - at).max(0) as f64 / 60_000.0;
    (tokens + elapsed_min * burst * (PER_MINUTE / BURST)).min(burst)
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

    #[test]
    fn a_client_is_remembered_across_a_generation_swap() {
        let l = LoginLimiter::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(
            l.allow("10.0.0.2".parse().unwrap(), 0),
            "the generation starts at 0"
        );
        for _ in 0..20 {
            assert!(l.allow(ip, 59_000));
        }
        // At 60 s the generations swap; the exhausted bucket moves along instead of resetting.
        assert!(!l.allow(ip, 60_000), "still exhausted after the swap");
        assert!(l.allow(ip, 62_100), "and refilled at its own pace");
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let l = LoginLimiter::default();
        for i in 0..20u32 {
            let ip: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap();
            assert!(l.allow(ip, 0));
        }
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert!(!l.allow(same_64, 0), "one host, one bucket");
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.allow(other_64, 0));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let plain: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(ClientKey::of(mapped), ClientKey::of(plain));
    }

    #[test]
    fn a_full_table_refuses_new_clients_in_constant_time() {
        let l = LoginLimiter::default();
        let max = 1000;
        for i in 0..max as u32 {
            assert!(l.allow_key(ClientKey::V4(i.to_be_bytes()), 0, max));
        }
        assert!(
            !l.allow_key(ClientKey::V4([255; 4]), 0, max),
            "fails closed when full"
        );
        assert!(
            l.allow_key(ClientKey::V4(0u32.to_be_bytes()), 0, max),
            "known clients go on"
        );
        assert!(
            l.allow_key(ClientKey::V4([255; 4]), 60_000, max),
            "room again after the swap"
        );
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            "198.51.100.1, 203.0.113.9, 10.1.1.1".parse().unwrap(),
        );
        let proxy: SocketAddr = "10.0.0.2:443".parse().unwrap();
        let direct: SocketAddr = "192.0.2.5:443".parse().unwrap();
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap(),
            "the right-most untrusted address: what the client wrote further left is ignored"
        );
        assert_eq!(
            client_ip(direct, &h, &trusted),
            direct.ip(),
            "a direct client cannot claim another address"
        );
        assert_eq!(
            client_ip(proxy, &h, &[]),
            proxy.ip(),
            "no trusted proxies, no header"
        );
        let mut junk = HeaderMap::new();
        junk.append("x-forwarded-for", "not-an-address".parse().unwrap());
        assert_eq!(client_ip(proxy, &junk, &trusted), proxy.ip());
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy.ip());
    }
}

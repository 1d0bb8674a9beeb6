//! A small time-bounded cache for the lookups every request makes (API keys, schemas, roles).
//! Entries live at most `ttl` of real time; the vault also drops them when it changes what they
//! hold, so one node always sees its own changes at once and other nodes within `ttl`.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most entries kept; past that the cache is emptied and refills from the store.
const MAX_ENTRIES: usize = 100_000;

pub struct TtlCache<K, V> {
    ttl: Duration,
    map: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (V, Instant)>> {
        match self.map.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    #[allow(clippy::disallowed_methods)] // freshness of a cache, not domain time
    pub fn get(&self, k: &K) -> Option<V> {
        let map = self.lock();
        let (v, at) = map.get(k)?;
        (at.elapsed() < self.ttl).then(|| v.clone())
    }

    #[allow(clippy::disallowed_methods)] // freshness of a cache, not domain time
    pub fn insert(&self, k: K, v: V) {
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(k, (v, Instant::now()));
    }

    /// The cached value, or the one `load` reads (which is then cached). Errors are not cached.
    pub async fn get_or_load<E, F>(&self, k: K, load: F) -> Result<V, E>
    where
        F: std::future::Future<Output = Result<V, E>>,
    {
        if let Some(v) = self.get(&k) {
            return Ok(v);
        }
        let v = load.await?;
        self.insert(k, v.clone());
        Ok(v)
    }

    pub fn remove(&self, k: &K) {
        self.lock().remove(k);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_dropped() {
        let c = TtlCache::new(Duration::from_millis(50));
        c.insert(1, "a");
        assert_eq!(c.get(&1), Some("a"));
        c.remove(&1);
        assert_eq!(c.get(&1), None);
        c.insert(2, "b");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get(&2), None, "expired");
    }
}

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

    /// Like [`TtlCache::get_or_load`] for lookups that may find nothing: only found values are
    /// cached. A flood of lookups for keys that do not exist (random API tokens) then cannot
    /// fill the cache and evict the real entries.
    pub async fn get_or_load_found<E, F>(&self, k: K, load: F) -> Result<Option<V>, E>
    where
        F: std::future::Future<Output = Result<Option<V>, E>>,
    {
        if let Some(v) = self.get(&k) {
            return Ok(Some(v));
        }
        let v = load.await?;
        if let Some(v) = &v {
            self.insert(k, v.clone());
        }
        Ok(v)
    }

    /// How many entries are held (fresh or not).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    fn lookups_of_missing_keys_cannot_evict_real_entries() {
        let c: TtlCache<u64, &str> = TtlCache::new(Duration::from_secs(60));
        /// Runs a future that never waits (the loaders here are ready at once).
        fn run<F: std::future::Future>(f: F) -> F::Output {
            let mut f = std::pin::pin!(f);
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            match f.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(r) => r,
                std::task::Poll::Pending => unreachable!("the loader does not wait"),
            }
        }
        let real: Result<_, ()> = run(c.get_or_load_found(0, async { Ok(Some("real")) }));
        assert_eq!(real, Ok(Some("real")));
        for k in 1..=(MAX_ENTRIES as u64 + 10) {
            let found: Result<_, ()> = run(c.get_or_load_found(k, async { Ok(None) }));
            assert_eq!(found, Ok(None));
        }
        assert_eq!(c.len(), 1, "misses are not cached");
        assert_eq!(c.get(&0), Some("real"), "the real entry survived the flood");
    }

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

//! The key hierarchy in memory: the root key, unwrapped tenant KEKs and subject DEKs, each
//! cached in a bounded map so that a busy vault does not unwrap a key per request.
//!
//! ```text
//! root key ── wraps ──> tenant KEK v1..vn ── wraps ──> subject DEK (one per data subject)
//!                                      └─ derives (HKDF) ──> blind-index keys, subject-ref key
//! ```

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use strongroom_crypto::{derive_key, open, seal, Aad, Key32};

use crate::error::{Error, Result};
use crate::ids::{SubjectId, TenantId};
use crate::rng::{Rng, RngExt};
use crate::store::{SubjectRow, TenantKeyRow};

const ROOT_CHECK: &[u8] = b"strongroom root key check v1";

/// A bounded map with approximate LRU eviction: two generations; when the young one fills, the
/// old one is dropped and the young one becomes old. Lookups promote from old to young.
pub struct BoundedCache<K, V> {
    half: usize,
    inner: Mutex<(HashMap<K, V>, HashMap<K, V>)>,
}

impl<K: Eq + Hash + Clone, V: Clone> BoundedCache<K, V> {
    /// A cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            half: (capacity / 2).max(1),
            inner: Mutex::new((HashMap::new(), HashMap::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<K, V>, HashMap<K, V>)> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub fn get(&self, k: &K) -> Option<V> {
        let mut g = self.lock();
        if let Some(v) = g.0.get(k) {
            return Some(v.clone());
        }
        let v = g.1.remove(k)?;
        Self::insert_young(&mut g, self.half, k.clone(), v.clone());
        Some(v)
    }

    pub fn insert(&self, k: K, v: V) {
        let mut g = self.lock();
        Self::insert_young(&mut g, self.half, k, v);
    }

    pub fn remove(&self, k: &K) {
        let mut g = self.lock();
        g.0.remove(k);
        g.1.remove(k);
    }

    pub fn len(&self) -> usize {
        let g = self.lock();
        g.0.len() + g.1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert_young(g: &mut (HashMap<K, V>, HashMap<K, V>), half: usize, k: K, v: V) {
        if g.0.len() >= half && !g.0.contains_key(&k) {
            g.1 = std::mem::take(&mut g.0);
        }
        g.0.insert(k, v);
    }
}

/// The root key and the caches of keys unwrapped under it.
pub struct KeyRing {
    root: Key32,
    keks: BoundedCache<(TenantId, u32), Arc<Key32>>,
    deks: BoundedCache<(TenantId, SubjectId), Arc<Key32>>,
}

fn kek_aad(tenant: &TenantId, version: u32) -> Aad {
    Aad::new("tenant-kek")
        .str(tenant.as_str())
        .part(&version.to_be_bytes())
}

fn dek_aad(tenant: &TenantId, subject: &SubjectId, kek_version: u32) -> Aad {
    Aad::new("subject-dek")
        .str(tenant.as_str())
        .str(subject.as_str())
        .part(&kek_version.to_be_bytes())
}

impl KeyRing {
    pub fn new(root: Key32, dek_cache_entries: usize) -> Self {
        Self {
            root,
            keks: BoundedCache::new(4096),
            deks: BoundedCache::new(dek_cache_entries),
        }
    }

    /// The root key itself, for wrapping the few keys that hang directly under it.
    pub(crate) fn root(&self) -> &Key32 {
        &self.root
    }

    /// A value sealed under the root key, kept in the store to recognise the right root key.
    pub fn root_check(&self, rng: &dyn Rng) -> String {
        strongroom_crypto::hex(&seal(
            &self.root,
            0,
            rng.nonce(),
            &Aad::new("root-check"),
            ROOT_CHECK,
        ))
    }

    /// Whether `check` (from [`KeyRing::root_check`]) was made with this root key.
    pub fn verify_root_check(&self, check: &str) -> bool {
        strongroom_crypto::unhex(check)
            .and_then(|b| open(&self.root, &Aad::new("root-check"), &b).ok())
            .is_some_and(|pt| pt.as_slice() == ROOT_CHECK)
    }

    /// A fresh tenant KEK version, wrapped by the root key.
    pub fn new_kek(&self, rng: &dyn Rng, tenant: &TenantId, version: u32) -> (Arc<Key32>, Vec<u8>) {
        let kek = rng.key();
        let wrapped = seal(
            &self.root,
            0,
            rng.nonce(),
            &kek_aad(tenant, version),
            kek.expose(),
        );
        let kek = Arc::new(kek);
        self.keks.insert((tenant.clone(), version), kek.clone());
        (kek, wrapped)
    }

    /// The unwrapped KEK of a stored version.
    pub fn kek(&self, row: &TenantKeyRow) -> Result<Arc<Key32>> {
        let k = (row.tenant.clone(), row.version);
        if let Some(kek) = self.keks.get(&k) {
            return Ok(kek);
        }
        let bytes = open(&self.root, &kek_aad(&row.tenant, row.version), &row.wrapped)
            .map_err(|_| Error::integrity())?;
        let kek = Arc::new(Key32::from_slice(&bytes).ok_or_else(Error::integrity)?);
        self.keks.insert(k, kek.clone());
        Ok(kek)
    }

    /// Whether this KEK version is already unwrapped in memory.
    pub fn cached_kek(&self, tenant: &TenantId, version: u32) -> Option<Arc<Key32>> {
        self.keks.get(&(tenant.clone(), version))
    }

    /// A fresh subject with its DEK wrapped under `kek`.
    pub fn new_subject(
        &self,
        rng: &dyn Rng,
        tenant: &TenantId,
        kek_version: u32,
        kek: &Key32,
        ref_index: Option<[u8; 32]>,
        now: i64,
    ) -> (SubjectRow, Arc<Key32>) {
        let id = SubjectId::generate_at(rng, now);
        let dek = rng.key();
        let wrapped_dek = seal(
            kek,
            kek_version,
            rng.nonce(),
            &dek_aad(tenant, &id, kek_version),
            dek.expose(),
        );
        let dek = Arc::new(dek);
        self.deks.insert((tenant.clone(), id.clone()), dek.clone());
        let row = SubjectRow {
            tenant: tenant.clone(),
            id,
            kek_version,
            wrapped_dek,
            ref_index,
            created_at: now,
            flags: 0,
        };
        (row, dek)
    }

    /// The subject's DEK, unwrapped with the KEK version it names.
    pub fn dek(&self, row: &SubjectRow, kek: &Key32) -> Result<Arc<Key32>> {
        let k = (row.tenant.clone(), row.id.clone());
        if let Some(dek) = self.deks.get(&k) {
            return Ok(dek);
        }
        let bytes = open(
            kek,
            &dek_aad(&row.tenant, &row.id, row.kek_version),
            &row.wrapped_dek,
        )
        .map_err(|_| Error::integrity())?;
        let dek = Arc::new(Key32::from_slice(&bytes).ok_or_else(Error::integrity)?);
        self.deks.insert(k, dek.clone());
        Ok(dek)
    }

    /// Drops a subject's DEK from memory (after its key was destroyed in the store).
    pub fn forget_dek(&self, tenant: &TenantId, subject: &SubjectId) {
        self.deks.remove(&(tenant.clone(), subject.clone()));
    }

    /// Drops every key of a tenant from memory (after offboarding destroyed them in the store).
    pub fn forget_tenant(&self, tenant: &TenantId, kek_versions: &[u32], subjects: &[SubjectId]) {
        for v in kek_versions {
            self.keks.remove(&(tenant.clone(), *v));
        }
        for s in subjects {
            self.forget_dek(tenant, s);
        }
    }

    /// A cached DEK, if this subject's key is in memory.
    pub fn cached_dek(&self, tenant: &TenantId, subject: &SubjectId) -> Option<Arc<Key32>> {
        self.deks.get(&(tenant.clone(), subject.clone()))
    }

    /// Seals a user's TOTP secret under the root key, bound to the user.
    pub fn seal_user_secret(
        &self,
        rng: &dyn Rng,
        user: &crate::ids::UserId,
        secret: &[u8],
    ) -> Vec<u8> {
        seal(
            &self.root,
            0,
            rng.nonce(),
            &Aad::new("user-totp").str(user.as_str()),
            secret,
        )
    }

    /// Opens what [`KeyRing::seal_user_secret`] sealed.
    pub fn open_user_secret(
        &self,
        user: &crate::ids::UserId,
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        open(
            &self.root,
            &Aad::new("user-totp").str(user.as_str()),
            sealed,
        )
        .map_err(|_| Error::integrity())
    }

    /// The blind-index key of one field, derived from a tenant KEK.
    pub fn index_key(kek: &Key32, collection: &str, field: &str) -> Key32 {
        derive_key(
            kek,
            format!("blind-index\x00{collection}\x00{field}").as_bytes(),
        )
    }

    /// The key that names clients in the audit log by a pseudonym instead of their address.
    pub fn client_pseudonym_key(&self) -> Key32 {
        derive_key(&self.root, b"client-pseudonym")
    }

    /// The key that blind-indexes applications' subject references.
    pub fn subject_ref_key(kek: &Key32) -> Key32 {
        derive_key(kek, b"subject-ref")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;

    #[test]
    fn cache_is_bounded_and_keeps_recent_entries() {
        let c = BoundedCache::new(10);
        for i in 0..100 {
            c.insert(i, i);
            assert_eq!(c.get(&i), Some(i));
        }
        assert!(c.len() <= 10, "len {}", c.len());
        assert_eq!(c.get(&99), Some(99));
        assert_eq!(c.get(&0), None);
    }

    #[test]
    fn wrapped_keys_are_bound_to_their_owner() {
        let rng = SeededRng::new(9);
        let ring = KeyRing::new(rng.key(), 16);
        let t1 = TenantId::generate(&rng);
        let t2 = TenantId::generate(&rng);
        let (kek, wrapped) = ring.new_kek(&rng, &t1, 1);
        let fresh = KeyRing::new(Key32::from_bytes(*ring.root.expose()), 16);
        let row = TenantKeyRow {
            tenant: t1.clone(),
            version: 1,
            wrapped: wrapped.clone(),
            created_at: 0,
        };
        assert_eq!(fresh.kek(&row).unwrap().expose(), kek.expose());
        let moved = TenantKeyRow {
            tenant: t2,
            ..row.clone()
        };
        assert!(
            fresh.kek(&moved).is_err(),
            "a KEK copied to another tenant must not unwrap"
        );
        let other_root = KeyRing::new(rng.key(), 16);
        assert!(other_root.kek(&row).is_err());

        let (subject, dek) = ring.new_subject(&rng, &t1, 1, &kek, None, 0);
        assert_eq!(fresh.dek(&subject, &kek).unwrap().expose(), dek.expose());
        let mut swapped = subject.clone();
        swapped.id = SubjectId::generate(&rng);
        assert!(fresh.dek(&swapped, &kek).is_err());
    }

    #[test]
    fn root_check_recognises_the_right_key() {
        let rng = SeededRng::new(1);
        let ring = KeyRing::new(rng.key(), 4);
        let check = ring.root_check(&rng);
        assert!(ring.verify_root_check(&check));
        assert!(!KeyRing::new(rng.key(), 4).verify_root_check(&check));
        assert!(!ring.verify_root_check("zz"));
    }
}

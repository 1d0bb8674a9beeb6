//! Merkle proofs served from the stored tree: leaf hashes (level 0) and the interior nodes the
//! writer keeps every [`NODE_LEVEL_STEP`] levels. A proof needs at most two dozen perfect
//! subtrees per run, each the fold of at most 128 stored hashes read in one range query, so a
//! proof costs O(log n) reads and bounded memory however long the log is.

use std::collections::HashMap;

use strongroom_crypto::merkle::{self, Hash, Range};

use crate::store::{AuditStore, StoreError, StoreResult, NODE_LEVEL_STEP};

/// The tree hashes of `ranges` of a log's first leaves, read from stored hashes.
pub async fn range_hashes(
    store: &dyn AuditStore,
    log: &str,
    ranges: &[Range],
) -> StoreResult<Vec<Hash>> {
    let mut nodes: HashMap<(u32, u64), Hash> = HashMap::new();
    for &(lo, hi) in ranges {
        for (level, index) in merkle::perfect_cover(lo, hi) {
            if nodes.contains_key(&(level, index)) {
                continue;
            }
            let base = level - level % NODE_LEVEL_STEP;
            let count = 1u64 << (level - base);
            let below = store
                .find_audit_hashes(log, base, index << (level - base), count)
                .await?;
            if below.len() as u64 != count {
                return Err(missing(log, level, index));
            }
            let hash = merkle::fold_perfect(&below).ok_or_else(|| missing(log, level, index))?;
            nodes.insert((level, index), hash);
        }
    }
    ranges
        .iter()
        .map(|&(lo, hi)| {
            merkle::range_hash(lo, hi, &|level, index| nodes.get(&(level, index)).copied())
                .ok_or_else(|| StoreError::Corrupt(format!("audit log {log}: tree incomplete")))
        })
        .collect()
}

fn missing(log: &str, level: u32, index: u64) -> StoreError {
    StoreError::Corrupt(format!(
        "audit log {log}: stored tree node {level}/{index} is missing"
    ))
}

/// The root of a log's first `size` entries.
pub async fn root(store: &dyn AuditStore, log: &str, size: u64) -> StoreResult<Hash> {
    if size == 0 {
        return Ok(merkle::empty_root());
    }
    Ok(range_hashes(store, log, &[(0, size)]).await?[0])
}
